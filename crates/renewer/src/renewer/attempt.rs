//! One attempt of one volume: waiting for the renewal pace (its tenant's
//! turn) and a permit, calling the issuer (cancellable, with the attempt
//! timeout), and recording the outcome: the next renewal after a success,
//! the backoff retry after a failure, the next check after "not ready", and
//! the event for subscribers.

use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::Duration;

use super::{Attempt, Inner, State, lock, timestamp};
use crate::limiter::Priority;
use crate::types::{
    FailureKind, IssuanceEvent, IssueFailure, IssueReason, Lifetime, Outcome, Tenant, VolumeId,
};
use rand::RngExt;

impl Inner {
    /// With `renewal_rate`, waits for this renewal's turn: starts are spaced
    /// `1/rate` apart, node-wide, and handed round-robin to the tenants with
    /// renewals waiting (see `pacer`).
    pub(super) async fn pace_renewal(&self, tenant: &Tenant) {
        if let Some(pacer) = &self.pacer {
            pacer.acquire(tenant).await;
        }
    }

    /// Spawns the attempt task for `volume`, whose slot was just taken off the
    /// queue.
    pub(super) fn start_attempt(self: &Arc<Self>, st: &mut State, volume: VolumeId) {
        let Some(entry) = st.volumes.get_mut(&volume) else {
            return;
        };
        let Some(slot) = entry.slot.take() else {
            return;
        };
        // The timer fired but the wall clock says "not yet": a due time beyond
        // the timer's horizon, or a system clock stepped back. Map it again.
        if slot.wall > self.config.clock.now() + Duration::from_secs(1) {
            self.schedule(st, &volume, slot.wall, slot.reason);
            return;
        }
        // A Pod without any certificate is as urgent as a starting Pod.
        let priority = if entry.has_certificate {
            Priority::Renewal
        } else {
            Priority::First
        };
        let cancelled = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(Arc::clone(self).run_attempt(
            volume,
            entry.tenant.clone(),
            entry.generation,
            slot.reason,
            priority,
            Arc::clone(&cancelled),
        ));
        entry.attempt = Some(Attempt {
            cancelled,
            abort: task.abort_handle(),
            in_flight: false,
        });
    }

    async fn run_attempt(
        self: Arc<Self>,
        volume: VolumeId,
        tenant: Tenant,
        generation: u64,
        reason: IssueReason,
        priority: Priority,
        cancelled: Arc<AtomicBool>,
    ) {
        if priority == Priority::Renewal {
            self.pace_renewal(&tenant).await;
        }
        let permit = self.limiter.acquire(priority).await;
        // What the floor counted from before: a "not ready" answer gives it back.
        let last_issued = {
            let now = self.config.clock.now();
            let mut st = lock(&self.state);
            match st.volumes.get_mut(&volume) {
                Some(e) if e.generation == generation && !cancelled.load(Ordering::SeqCst) => {
                    if let Some(a) = e.attempt.as_mut() {
                        a.in_flight = true;
                    }
                    e.last_issued.replace(now)
                }
                _ => return,
            }
        };
        tracing::debug!(volume = %volume, %reason, "issuing");
        let mut issuing = (self.issuer)(volume.clone(), reason, permit.clone());
        // Never poll the issuance again once the volume is forgotten.
        let guarded = poll_fn(|cx| {
            if cancelled.load(Ordering::SeqCst) {
                Poll::Ready(None)
            } else {
                issuing.as_mut().poll(cx).map(Some)
            }
        });
        let result = match self.config.issue_timeout {
            Some(limit) => match tokio::time::timeout(limit, guarded).await {
                Ok(result) => result,
                Err(_) => Some(Err(IssueFailure::new(format!(
                    "issuance did not finish within {}s",
                    limit.as_secs_f64()
                )))),
            },
            None => guarded.await,
        };
        drop(permit);
        if let Some(result) = result {
            self.finish(volume, generation, reason, result, last_issued);
        }
    }

    /// Records an attempt's result and schedules what comes next.
    fn finish(
        &self,
        volume: VolumeId,
        generation: u64,
        reason: IssueReason,
        result: Result<Lifetime, IssueFailure>,
        last_issued: Option<std::time::SystemTime>,
    ) {
        let now = self.config.clock.now();
        let mut st = lock(&self.state);
        if st.shutdown {
            return;
        }
        let Some(entry) = st.volumes.get_mut(&volume) else {
            return;
        };
        if entry.generation != generation {
            return;
        }
        entry.attempt = None;
        let woken = std::mem::take(&mut entry.woken);
        let outcome = match result {
            Ok(lifetime) => {
                entry.attempts = 0;
                entry.not_ready = 0;
                let disable_auto_renew = entry.disable_auto_renew;
                // What every volume shares answers again: the volumes that
                // failed because it did not are retried now, paced.
                st.unavailable.remove(&volume);
                for other in std::mem::take(&mut st.unavailable) {
                    let idle = st
                        .volumes
                        .get(&other)
                        .is_some_and(|e| e.attempt.is_none() && e.attempts > 0);
                    if idle {
                        self.schedule(&mut st, &other, now, IssueReason::Retry);
                    }
                }
                let Some(entry) = st.volumes.get_mut(&volume) else {
                    return;
                };
                entry.last_error = None;
                entry.has_certificate = true;
                entry.not_after = Some(lifetime.not_after);
                let planned =
                    (!disable_auto_renew).then(|| self.planner.next_issuance(&volume, &lifetime));
                let next_due =
                    planned.map(|due| self.schedule(&mut st, &volume, due, IssueReason::Renewal));
                tracing::info!(
                    volume = %volume,
                    %reason,
                    not_after = %timestamp(lifetime.not_after),
                    next_due = next_due.map(timestamp).as_deref().unwrap_or("never"),
                    "certificate issued"
                );
                Outcome::Issued {
                    not_after: lifetime.not_after,
                    next_due,
                }
            }
            Err(failure) if failure.kind() == FailureKind::NotReady => {
                // Nothing was issued: no failure counted, and the floor still
                // counts from the last real issuance.
                entry.last_issued = last_issued;
                entry.not_ready = entry.not_ready.saturating_add(1);
                let checks = entry.not_ready;
                let message = failure.message().to_owned();
                let unit: f64 = lock(&self.rng).random();
                let delay = self.config.not_ready_backoff.delay(checks, unit);
                let expired_at = entry.not_after.filter(|na| now > *na);
                let retry_at = self.schedule(&mut st, &volume, now + delay, IssueReason::Retry);
                match expired_at {
                    Some(na) => tracing::error!(
                        volume = %volume,
                        checks,
                        "certificate for volume {volume} EXPIRED at {}, still waiting: {message}",
                        timestamp(na)
                    ),
                    None => tracing::debug!(
                        volume = %volume,
                        %reason,
                        checks,
                        retry_in_ms = delay.as_millis() as u64,
                        "not ready; checking again later or when woken: {message}"
                    ),
                }
                Outcome::NotReady {
                    message,
                    checks,
                    retry_at,
                }
            }
            Err(failure) => {
                entry.not_ready = 0;
                entry.attempts = entry.attempts.saturating_add(1);
                if failure.kind() == FailureKind::Unavailable {
                    st.unavailable.insert(volume.clone());
                } else {
                    st.unavailable.remove(&volume);
                }
                let Some(entry) = st.volumes.get_mut(&volume) else {
                    return;
                };
                let attempts = entry.attempts;
                let message = failure.message().to_owned();
                entry.last_error = Some(message.clone());
                let unit: f64 = lock(&self.rng).random();
                let delay: Duration = self.config.backoff_delay(attempts, unit);
                let expired_at = entry.not_after.filter(|na| now > *na);
                let retry_at = self.schedule(&mut st, &volume, now + delay, IssueReason::Retry);
                match expired_at {
                    Some(na) => tracing::error!(
                        volume = %volume,
                        attempts,
                        retry_in_secs = delay.as_secs(),
                        "certificate for volume {volume} EXPIRED at {}, still retrying: {message}",
                        timestamp(na)
                    ),
                    None => tracing::warn!(
                        volume = %volume,
                        %reason,
                        attempts,
                        retry_in_secs = delay.as_secs(),
                        "issuance failed, the current certificate stays; retrying: {message}"
                    ),
                }
                Outcome::Failed {
                    message,
                    attempts,
                    retry_at,
                    expired: expired_at.is_some(),
                }
            }
        };
        if woken {
            // Woken while this attempt ran: one more, now (held to the floor).
            self.schedule(&mut st, &volume, now, IssueReason::Requested);
        }
        drop(st);
        // No receivers is fine.
        let _ = self.events.send(IssuanceEvent {
            volume,
            reason,
            outcome,
        });
    }
}
