//! The node-wide renewal pace ([`RenewerConfig::renewal_rate`](crate::RenewerConfig::renewal_rate)),
//! shared fairly between tenants.
//!
//! Slots come `1/rate` apart. A renewal that arrives while nothing waits and
//! the last slot is far enough behind takes one at once; otherwise it joins
//! its tenant's queue, and one pacer task hands each slot to the next tenant
//! in round-robin order that has a renewal waiting (oldest first within a
//! tenant). A tenant with a hundred volumes due therefore gets one slot in
//! every (number of waiting tenants), not a hundred in a row.
//!
//! Written by hand (on tokio's clock, so paused-time tests see it) rather
//! than with a rate-limiting crate: the crates at hand (`governor`, tower's
//! `RateLimit`) pace one stream first come first served, and fairness
//! between keys is the point here.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

use crate::types::Tenant;

pub(crate) struct Pacer {
    spacing: Duration,
    state: Mutex<Queues>,
    /// Wakes the pacer task when a waiter arrives or the renewer stops.
    arrived: Notify,
    closed: AtomicBool,
}

struct Queues {
    /// Waiting renewals per tenant, oldest first.
    waiting: HashMap<Tenant, VecDeque<oneshot::Sender<()>>>,
    /// The tenants in `waiting`, in the order their turns come.
    ring: VecDeque<Tenant>,
    /// The earliest instant of the next slot.
    next: Instant,
}

fn lock(m: &Mutex<Queues>) -> MutexGuard<'_, Queues> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Pacer {
    /// A pacer of `rate` slots per second; its task runs until [`Pacer::close`].
    pub(crate) fn start(rate: f64) -> Arc<Self> {
        let pacer = Arc::new(Self {
            spacing: Duration::from_secs_f64(1.0 / rate),
            state: Mutex::new(Queues {
                waiting: HashMap::new(),
                ring: VecDeque::new(),
                next: Instant::now(),
            }),
            arrived: Notify::new(),
            closed: AtomicBool::new(false),
        });
        tokio::spawn(Arc::clone(&pacer).run());
        pacer
    }

    /// Waits for `tenant`'s next slot. Dropping the future gives up its place
    /// (a slot granted at that very moment is lost, never handed twice).
    pub(crate) async fn acquire(&self, tenant: &Tenant) {
        let rx = {
            let mut q = lock(&self.state);
            let now = Instant::now();
            if q.ring.is_empty() && now >= q.next {
                q.next = now + self.spacing;
                return;
            }
            let (tx, rx) = oneshot::channel();
            match q.waiting.get_mut(tenant) {
                Some(queue) => queue.push_back(tx),
                None => {
                    q.waiting.insert(tenant.clone(), VecDeque::from([tx]));
                    q.ring.push_back(tenant.clone());
                }
            }
            rx
        };
        self.arrived.notify_one();
        // An error means the pacer stopped (the renewer shut down): nothing
        // is paced any more.
        let _ = rx.await;
    }

    /// Renewals waiting for a slot, per tenant (for tests and metrics).
    #[cfg(test)]
    pub(crate) fn waiting(&self) -> HashMap<Tenant, usize> {
        lock(&self.state)
            .waiting
            .iter()
            .map(|(t, q)| (t.clone(), q.iter().filter(|tx| !tx.is_closed()).count()))
            .collect()
    }

    /// Stops the task; waiters are released.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let mut q = lock(&self.state);
        q.waiting.clear();
        q.ring.clear();
        drop(q);
        self.arrived.notify_one();
    }

    async fn run(self: Arc<Self>) {
        loop {
            if self.closed.load(Ordering::SeqCst) {
                return;
            }
            let wait_until = {
                let mut q = lock(&self.state);
                let now = Instant::now();
                if q.ring.is_empty() {
                    None
                } else if now < q.next {
                    Some(q.next)
                } else if self.grant_next(&mut q) {
                    // Keep the exact spacing when the timer woke a little
                    // late; after an idle gap, count from now (no burst).
                    q.next = if now > q.next + self.spacing {
                        now + self.spacing
                    } else {
                        q.next + self.spacing
                    };
                    continue;
                } else {
                    // Only given-up waiters were left.
                    continue;
                }
            };
            match wait_until {
                Some(at) => tokio::time::sleep_until(at).await,
                None => self.arrived.notified().await,
            }
        }
    }

    /// Hands one slot to the next tenant in turn with a live waiter; false
    /// when none was left.
    fn grant_next(&self, q: &mut Queues) -> bool {
        while let Some(tenant) = q.ring.pop_front() {
            let Some(queue) = q.waiting.get_mut(&tenant) else {
                continue;
            };
            let mut granted = false;
            while let Some(tx) = queue.pop_front() {
                // A waiter that gave up has dropped its receiver: skip it.
                if tx.send(()).is_ok() {
                    granted = true;
                    break;
                }
            }
            if queue.is_empty() {
                q.waiting.remove(&tenant);
            } else {
                q.ring.push_back(tenant);
            }
            if granted {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::Mutex as StdMutex;

    #[tokio::test(start_paused = true)]
    async fn slots_go_round_robin_between_tenants() {
        let pacer = Pacer::start(10.0);
        let order = Arc::new(StdMutex::new(Vec::new()));
        let mut tasks = Vec::new();
        // One tenant queues five renewals, then another queues two.
        for (tenant, n) in [("busy", 5), ("quiet", 2)] {
            for i in 0..n {
                let (p, order) = (Arc::clone(&pacer), Arc::clone(&order));
                tasks.push(tokio::spawn(async move {
                    p.acquire(&Tenant::from(tenant)).await;
                    order.lock().unwrap().push(format!("{tenant}{i}"));
                }));
                tokio::task::yield_now().await;
            }
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(
            *order.lock().unwrap(),
            [
                "busy0", "busy1", "quiet0", "busy2", "quiet1", "busy3", "busy4"
            ]
        );
        assert!(pacer.waiting().is_empty());
        pacer.close();
    }

    #[tokio::test(start_paused = true)]
    async fn slots_are_spaced_by_the_rate() {
        let pacer = Pacer::start(4.0);
        let start = Instant::now();
        for _ in 0..5 {
            pacer.acquire(&Tenant::default()).await;
        }
        // The first at once, then 250 ms apart.
        assert_eq!(start.elapsed(), Duration::from_millis(1000));
        pacer.close();
    }
}
