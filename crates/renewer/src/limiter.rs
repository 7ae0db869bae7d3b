//! The concurrency cap shared by first issuances and renewals.
//!
//! Written by hand because tokio's `Semaphore` is strictly first-in first-out:
//! a first issuance queued behind a thousand renewals would wait for all of
//! them. This one keeps two queues and always serves the first-issuance queue
//! before the renewal queue.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

/// Which queue a waiter joins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Priority {
    /// A Pod is waiting for its first certificate.
    First,
    /// A certificate exists and is being renewed.
    Renewal,
}

pub(crate) struct Limiter {
    state: Mutex<Queues>,
}

struct Queues {
    available: usize,
    first: VecDeque<oneshot::Sender<()>>,
    renewal: VecDeque<oneshot::Sender<()>>,
}

fn lock(m: &Mutex<Queues>) -> MutexGuard<'_, Queues> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Limiter {
    pub(crate) fn new(permits: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(Queues {
                available: permits,
                first: VecDeque::new(),
                renewal: VecDeque::new(),
            }),
        })
    }

    /// Waits for a permit. Cancel-safe: dropping the future gives up its place
    /// (and passes on a permit that was granted but not yet taken).
    pub(crate) async fn acquire(self: &Arc<Self>, priority: Priority) -> IssuancePermit {
        loop {
            let rx = {
                let mut q = lock(&self.state);
                // Invariant: permits are only left available when no live
                // waiter is queued, so taking one here never jumps a queue.
                if q.available > 0 {
                    q.available -= 1;
                    return IssuancePermit::new(self);
                }
                let (tx, rx) = oneshot::channel();
                match priority {
                    Priority::First => q.first.push_back(tx),
                    Priority::Renewal => q.renewal.push_back(tx),
                }
                rx
            };
            let mut grant = Grant {
                rx: Some(rx),
                limiter: self,
            };
            if grant.wait().await {
                return IssuancePermit::new(self);
            }
        }
    }

    /// Hands a permit to the next live waiter, first issuances first.
    fn release(&self) {
        let mut q = lock(&self.state);
        loop {
            let next = match q.first.pop_front() {
                Some(tx) => Some(tx),
                None => q.renewal.pop_front(),
            };
            match next {
                // A waiter that gave up has dropped its receiver: skip it.
                Some(tx) => {
                    if tx.send(()).is_ok() {
                        return;
                    }
                }
                None => {
                    q.available += 1;
                    return;
                }
            }
        }
    }

    /// Live waiters: (first issuances, renewals).
    pub(crate) fn waiting(&self) -> (usize, usize) {
        let q = lock(&self.state);
        let live = |v: &VecDeque<oneshot::Sender<()>>| v.iter().filter(|t| !t.is_closed()).count();
        (live(&q.first), live(&q.renewal))
    }
}

/// A queued waiter's receiver; returns an unclaimed grant when dropped.
struct Grant<'a> {
    rx: Option<oneshot::Receiver<()>>,
    limiter: &'a Limiter,
}

impl Grant<'_> {
    /// True once granted.
    async fn wait(&mut self) -> bool {
        let Some(rx) = self.rx.as_mut() else {
            return false;
        };
        let granted = rx.await.is_ok();
        self.rx = None;
        granted
    }
}

impl Drop for Grant<'_> {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take() {
            rx.close();
            if rx.try_recv().is_ok() {
                self.limiter.release();
            }
        }
    }
}

/// One of the [`RenewerConfig::max_concurrent`](crate::RenewerConfig::max_concurrent)
/// issuance slots; released when the last clone is dropped. Hold it for the
/// whole issuance, and hand a clone to each blocking task the issuance
/// starts (key generation, file writes): the slot then stays taken until
/// that work ends, even when the issuance itself is cancelled or times out,
/// so abandoned work never runs beside a full set of new issuances.
#[derive(Clone)]
#[must_use = "the slot is released as soon as the permit is dropped"]
pub struct IssuancePermit {
    _slot: Arc<Slot>,
}

impl IssuancePermit {
    fn new(limiter: &Arc<Limiter>) -> Self {
        Self {
            _slot: Arc::new(Slot {
                limiter: Arc::clone(limiter),
            }),
        }
    }
}

/// The slot behind every clone of one permit.
struct Slot {
    limiter: Arc<Limiter>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.limiter.release();
    }
}

impl fmt::Debug for IssuancePermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuancePermit").finish_non_exhaustive()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::Mutex as StdMutex;

    #[tokio::test]
    async fn first_issuances_are_served_before_renewals() {
        let limiter = Limiter::new(1);
        let held = limiter.acquire(Priority::Renewal).await;
        let order = Arc::new(StdMutex::new(Vec::new()));
        let mut tasks = Vec::new();
        // Renewals queue first, then first issuances arrive.
        for (name, p) in [
            ("r1", Priority::Renewal),
            ("r2", Priority::Renewal),
            ("f1", Priority::First),
            ("f2", Priority::First),
        ] {
            let (l, order) = (Arc::clone(&limiter), Arc::clone(&order));
            tasks.push(tokio::spawn(async move {
                let _permit = l.acquire(p).await;
                order.lock().unwrap().push(name);
                tokio::task::yield_now().await;
            }));
            tokio::task::yield_now().await;
        }
        assert_eq!(limiter.waiting(), (2, 2));
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), ["f1", "f2", "r1", "r2"]);
        assert_eq!(lock(&limiter.state).available, 1);
    }

    #[tokio::test]
    async fn a_cancelled_waiter_does_not_leak_its_permit() {
        let limiter = Limiter::new(1);
        let held = limiter.acquire(Priority::First).await;
        let l = Arc::clone(&limiter);
        let waiter = tokio::spawn(async move { l.acquire(Priority::Renewal).await });
        tokio::task::yield_now().await;
        assert_eq!(limiter.waiting(), (0, 1));
        // Grant it and cancel it before it runs to take the grant.
        drop(held);
        waiter.abort();
        assert!(waiter.await.unwrap_err().is_cancelled());
        assert_eq!(lock(&limiter.state).available, 1);
        // And the slot is usable.
        let _again = limiter.acquire(Priority::Renewal).await;
        assert_eq!(lock(&limiter.state).available, 0);
    }

    #[tokio::test]
    async fn the_slot_is_held_until_the_last_clone_of_a_permit_drops() {
        let limiter = Limiter::new(1);
        let permit = limiter.acquire(Priority::First).await;
        // Blocking work started by the issuance keeps a clone...
        let work = permit.clone();
        drop(permit);
        assert_eq!(lock(&limiter.state).available, 0);
        let l = Arc::clone(&limiter);
        let next = tokio::spawn(async move { l.acquire(Priority::First).await });
        tokio::task::yield_now().await;
        assert_eq!(limiter.waiting(), (1, 0), "the next issuance still waits");
        // ...and the slot passes on when that work ends.
        drop(work);
        let _next = next.await.unwrap();
        assert_eq!(limiter.waiting(), (0, 0));
        assert_eq!(lock(&limiter.state).available, 0);
    }
}
