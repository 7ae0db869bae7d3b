//! [`Backoff`]: the one backoff of the workspace's retries (the renewer's
//! failed issuances and its "not ready" checks, which are the driver's
//! readiness-gate waits), with the semantics
//! of Go's `wait.Backoff` (k8s.io/apimachinery), which the Go driver uses
//! for both.

use std::time::Duration;

/// Delays between retries: `duration · factor^(n−1)` before the `n`th retry,
/// at most `cap`, then plus a random `jitter` fraction of it.
///
/// The cap rule, as Go's `wait.Backoff.Step`: the cap bounds the delay
/// *before* jitter, and jitter is added on top, so a capped delay is
/// `cap` to `cap · (1 + jitter)`. A zero `cap` means no cap (delays stop
/// growing at a day).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The first delay (> 0).
    pub duration: Duration,
    /// Each delay is the previous one times this (>= 1).
    pub factor: f64,
    /// Up to this fraction of a delay is added at random (>= 0).
    pub jitter: f64,
    /// Delays (before jitter) stop growing here; `ZERO` = no cap.
    pub cap: Duration,
}

/// Where delays stop growing when there is no cap.
const NO_CAP: Duration = Duration::from_secs(86_400);

impl Backoff {
    /// The delay before jitter before retry number `n` (1 for the first):
    /// `duration · factor^(n−1)`, at most the cap.
    pub fn base(&self, n: u32) -> Duration {
        let exponent = i32::try_from(n.saturating_sub(1)).unwrap_or(i32::MAX);
        let secs = self.duration.as_secs_f64() * self.factor.powi(exponent);
        let cap = if self.cap.is_zero() { NO_CAP } else { self.cap };
        if secs.is_finite() && secs < cap.as_secs_f64() {
            Duration::from_secs_f64(secs)
        } else {
            cap
        }
    }

    /// The delay before retry number `n` with jitter: `base + unit·jitter·base`,
    /// where `unit` is the random draw in `[0, 1)`.
    pub fn delay(&self, n: u32, unit: f64) -> Duration {
        let base = self.base(n);
        base + base.mul_f64(self.jitter * unit.clamp(0.0, 1.0))
    }

    /// Checks the fields: `duration` > 0, `factor` finite and >= 1, `jitter`
    /// in `[0, 10]`, `cap` zero (no cap) or at least `duration`. The reason
    /// of the first bad one.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.duration.is_zero() {
            return Err("the first delay must be more than zero");
        }
        if !(self.factor.is_finite() && self.factor >= 1.0) {
            return Err("the factor must be a finite number of at least 1");
        }
        if !(0.0..=10.0).contains(&self.jitter) {
            return Err("the jitter must be in [0, 10]");
        }
        if !self.cap.is_zero() && self.cap < self.duration {
            return Err("the cap must be zero (no cap) or at least the first delay");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_then_adds_jitter_on_top() {
        let b = Backoff {
            duration: Duration::from_secs(1),
            factor: 2.0,
            jitter: 0.5,
            cap: Duration::from_secs(10),
        };
        let secs: Vec<u64> = (1..=6).map(|n| b.base(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 10, 10]);
        assert_eq!(b.delay(1, 0.0), Duration::from_secs(1));
        assert_eq!(b.delay(1, 1.0), Duration::from_millis(1500));
        // Capped before jitter: up to half the cap on top.
        assert_eq!(b.delay(9, 1.0), Duration::from_secs(15));
        let open = Backoff {
            cap: Duration::ZERO,
            ..b
        };
        assert_eq!(open.base(6), Duration::from_secs(32));
        assert_eq!(open.base(u32::MAX), NO_CAP);
    }
}
