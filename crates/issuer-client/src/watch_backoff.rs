//! The watches' reconnect backoff ([`WatchBackoff`]), shared by the request
//! cache, the Pod watch, the trust-bundle watches and the relist; a leaf, so
//! none of them imports another for it.
//!
//! Its delays are the workspace's one backoff, [`cmcsi_renewer::Backoff`]
//! (Go's `wait.Backoff`: the cap bounds a delay before jitter): here doubling
//! from the watch's minimum to its maximum with up to 25% jitter. This file
//! only adapts it to kube's watcher, which asks for delays one by one and
//! resets the count on a successful event.

use std::time::Duration;

use cmcsi_renewer::Backoff;

/// Up to this fraction of a delay is added, so that many nodes do not
/// relist in lockstep after an outage.
const JITTER: f64 = 0.25;

/// Exponential watch backoff with a little jitter, reset by any successful event.
#[derive(Clone)]
pub(crate) struct WatchBackoff {
    policy: Backoff,
    /// Retries since the last reset.
    retries: u32,
}

impl WatchBackoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        // A zero minimum would never grow; a millisecond is the least delay.
        let min = min.max(Duration::from_millis(1));
        Self {
            policy: Backoff {
                duration: min,
                factor: 2.0,
                jitter: JITTER,
                cap: max.max(min),
            },
            retries: 0,
        }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        self.retries = self.retries.saturating_add(1);
        // The draw in [0, 1) for the jitter; no randomness (an error from
        // the OS source) means no jitter, never no retry.
        let unit = f64::from(getrandom::u32().unwrap_or(0)) / (f64::from(u32::MAX) + 1.0);
        Some(self.policy.delay(self.retries, unit))
    }
}

impl kube::runtime::utils::Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.retries = 0;
    }
}
