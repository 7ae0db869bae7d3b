//! The watches' reconnect backoff ([`WatchBackoff`]), shared by the request
//! cache, the Pod watch and the relist; a leaf, so none of them imports
//! another for it.
//!
//! Not the renewer's `Backoff` (Go's `wait.Backoff`, the driver's one for
//! retries and waits): `cmcsi-renewer` sits below this crate in the layering,
//! so using it here would make issuer-client depend on the renewer.

use std::time::Duration;

use kube::runtime::utils::Backoff;

/// Exponential watch backoff with a little jitter, reset by any successful event.
#[derive(Clone)]
pub(crate) struct WatchBackoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl WatchBackoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        let max = max.max(min);
        Self {
            min,
            max,
            next: min,
        }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let current = self.next;
        self.next = (current * 2).min(self.max);
        // Up to +25% so that many nodes do not relist in lockstep after an outage.
        let jitter = getrandom::u32().unwrap_or(0) % 256;
        Some(current + current.mul_f64(f64::from(jitter) / 1024.0))
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = self.min;
    }
}
