//! Settings, and the pure arithmetic of due times and backoff.

use std::time::{Duration, SystemTime};

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use crate::backoff::Backoff;
use crate::clock::Clock;
use crate::types::{Lifetime, VolumeId};

/// How the renewer schedules. [`Default`] gives the documented defaults;
/// change fields as needed, then pass it to
/// [`Renewer::start`](crate::Renewer::start), which checks it.
#[derive(Clone, Debug)]
pub struct RenewerConfig {
    /// At most this many issuances (first issuances and renewals together)
    /// run at once. Default 8.
    pub max_concurrent: usize,
    /// Renewal is moved earlier by a random amount of up to this fraction of
    /// the certificate's lifetime, so Pods created together do not renew
    /// together. In `[0, 1)`. Default 0.05.
    pub jitter_fraction: f64,
    /// The jitter never exceeds this. Default 1 hour.
    pub jitter_cap: Duration,
    /// Delay after the first failure. Default 30 s (the Go driver's).
    pub backoff_initial: Duration,
    /// Each further failure multiplies the delay by this (at least 1).
    /// Default 2.
    pub backoff_factor: f64,
    /// The delay stops growing here (applied before jitter, as the Go driver
    /// does). Default 5 minutes.
    pub backoff_cap: Duration,
    /// Each delay `d` becomes `d + random·backoff_jitter·d`. In `[0, 10]`.
    /// Default 0.5 (the Go driver's), giving 30–45 s, 60–90 s, 120–180 s,
    /// 240–360 s, then 300–450 s for ever.
    pub backoff_jitter: f64,
    /// On [`Renewer::restore`](crate::Renewer::restore), volumes already due
    /// are spread evenly over this window instead of all issuing at once.
    /// Default 2 minutes.
    pub recovery_spread: Duration,
    /// An attempt running longer than this fails (and frees its permit).
    /// `None` waits for ever. Default 60 s (the Go driver's).
    pub issue_timeout: Option<Duration>,
    /// A volume is issued at most once per this interval: every due time
    /// (renewal, retry, [`Renewer::wake`](crate::Renewer::wake))
    /// is moved to at least this long after the volume's last attempt
    /// started, so a certificate already due when issued (a `duration` of a
    /// second) is renewed after the interval, not at once. Default zero (no
    /// floor); the driver's `--min-issuance-interval` sets it (10 s).
    pub min_interval: Duration,
    /// Renewals (not first issuances) started per second, node-wide, spaced
    /// evenly; `None` (default) does not limit them. Keeps the API budget for
    /// first issuances when many renewals fall due together. The slots go
    /// round-robin to the [`Tenant`](crate::Tenant)s with renewals waiting,
    /// so one tenant's many volumes cannot starve another's.
    pub renewal_rate: Option<f64>,
    /// How often a volume whose attempt answered "not ready"
    /// ([`FailureKind::NotReady`](crate::FailureKind::NotReady)) is checked
    /// again, unless [`Renewer::wake`](crate::Renewer::wake) comes first.
    /// Default the Go driver's readiness-gate backoff: 1 s doubling to a
    /// 10 s cap, plus up to 50 %.
    pub not_ready_backoff: Backoff,
    /// Where wall time comes from. Default [`Clock::system`].
    pub clock: Clock,
    /// Seed for every random choice (jitter, backoff, recovery spread); `None`
    /// seeds from the operating system. Tests set it to get repeatable runs.
    pub seed: Option<u64>,
}

impl Default for RenewerConfig {
    fn default() -> Self {
        Self {
            max_concurrent: 8,
            jitter_fraction: 0.05,
            jitter_cap: Duration::from_secs(3600),
            backoff_initial: Duration::from_secs(30),
            backoff_factor: 2.0,
            backoff_cap: Duration::from_secs(300),
            backoff_jitter: 0.5,
            recovery_spread: Duration::from_secs(120),
            issue_timeout: Some(Duration::from_secs(60)),
            min_interval: Duration::ZERO,
            renewal_rate: None,
            not_ready_backoff: Backoff {
                duration: Duration::from_secs(1),
                factor: 2.0,
                jitter: 0.5,
                cap: Duration::from_secs(10),
            },
            clock: Clock::system(),
            seed: None,
        }
    }
}

/// Why [`Renewer::start`](crate::Renewer::start) refused to start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A setting is out of range.
    #[error("invalid renewer setting {field}: {reason}")]
    InvalidConfig {
        /// The [`RenewerConfig`] field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `start` was called outside a tokio runtime.
    #[error("the renewer must be started inside a tokio runtime")]
    NoRuntime,
}

impl RenewerConfig {
    /// Checks every field; the first bad one is reported.
    pub fn validate(&self) -> Result<(), StartError> {
        let bad = |field, reason| Err(StartError::InvalidConfig { field, reason });
        if self.max_concurrent == 0 {
            return bad("max_concurrent", "must be at least 1");
        }
        if !(0.0..1.0).contains(&self.jitter_fraction) {
            return bad("jitter_fraction", "must be in [0, 1)");
        }
        if !(self.backoff_factor.is_finite() && self.backoff_factor >= 1.0) {
            return bad("backoff_factor", "must be a finite number of at least 1");
        }
        if !(0.0..=10.0).contains(&self.backoff_jitter) {
            return bad("backoff_jitter", "must be in [0, 10]");
        }
        if self.backoff_initial.is_zero() {
            return bad("backoff_initial", "must be more than zero");
        }
        if self.backoff_cap < self.backoff_initial {
            return bad("backoff_cap", "must be at least backoff_initial");
        }
        if self.issue_timeout.is_some_and(|t| t.is_zero()) {
            return bad("issue_timeout", "must be more than zero");
        }
        if self
            .renewal_rate
            .is_some_and(|r| !(r.is_finite() && r >= 0.001))
        {
            return bad("renewal_rate", "must be a finite number of at least 0.001");
        }
        if let Err(reason) = self.not_ready_backoff.validate() {
            return bad("not_ready_backoff", reason);
        }
        Ok(())
    }

    /// The planner for this configuration and seed.
    pub(crate) fn planner(&self, seed: u64) -> Planner {
        Planner {
            jitter_fraction: self.jitter_fraction,
            jitter_cap: self.jitter_cap,
            seed,
        }
    }

    /// The failure backoff as a [`Backoff`] (Go's `wait.Backoff` rule: the cap
    /// applies before jitter).
    pub fn backoff(&self) -> Backoff {
        Backoff {
            duration: self.backoff_initial,
            factor: self.backoff_factor,
            jitter: self.backoff_jitter,
            cap: self.backoff_cap,
        }
    }

    /// The backoff delay before jitter after `attempts` consecutive failures
    /// (1 for the first): `initial · factor^(attempts−1)`, at most the cap.
    pub fn backoff_base(&self, attempts: u32) -> Duration {
        self.backoff().base(attempts)
    }

    /// The backoff delay with jitter: `base + unit·backoff_jitter·base`, where
    /// `unit` is in `[0, 1)`.
    pub fn backoff_delay(&self, attempts: u32, unit: f64) -> Duration {
        self.backoff().delay(attempts, unit)
    }
}

/// Computes a volume's next issuance time from what was just issued.
///
/// The jitter is random but fixed for a given seed, volume and `notAfter`, so
/// the driver can compute (with [`Renewer::planner`](crate::Renewer::planner))
/// exactly the time the renewer will use and store it in the volume's
/// metadata, from inside [`Issue::issue`](crate::Issue::issue).
#[derive(Clone, Debug)]
pub struct Planner {
    jitter_fraction: f64,
    jitter_cap: Duration,
    seed: u64,
}

impl Planner {
    /// The largest jitter for this lifetime: `jitter_fraction` of it, at most
    /// `jitter_cap`, and never so much that renewal would come before
    /// `notBefore`.
    pub fn max_jitter(&self, lifetime: &Lifetime) -> Duration {
        let room = lifetime
            .renewal_time()
            .duration_since(lifetime.not_before)
            .unwrap_or(Duration::ZERO);
        lifetime
            .duration()
            .mul_f64(self.jitter_fraction)
            .min(self.jitter_cap)
            .min(room)
    }

    /// When to issue next: [`Lifetime::renewal_time`] moved earlier by a
    /// jitter in `[0, max_jitter]`.
    pub fn next_issuance(&self, volume: &VolumeId, lifetime: &Lifetime) -> SystemTime {
        let base = lifetime.renewal_time();
        let not_after_nanos = lifetime
            .not_after
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let mut rng = SmallRng::seed_from_u64(
            self.seed ^ fnv1a(volume.as_str().as_bytes()) ^ (not_after_nanos as u64),
        );
        let unit: f64 = rng.random();
        let jitter = self.max_jitter(lifetime).mul_f64(unit);
        base.checked_sub(jitter).unwrap_or(base)
    }
}

/// 64-bit FNV-1a: a stable hash of the volume ID for the jitter seed. Written
/// out because `std`'s hasher is not guaranteed stable across releases and
/// five lines do not justify a dependency.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);
    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn t0() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    fn lifetime(d: Duration) -> Lifetime {
        Lifetime::new(t0(), t0() + d)
    }

    #[test]
    fn renewal_time_defaults_to_two_thirds_of_the_lifetime() {
        for (d, expect) in [
            (HOUR, t0() + Duration::from_secs(2400)),
            (DAY, t0() + 16 * HOUR),
            (90 * DAY, t0() + 60 * DAY),
            (Duration::from_secs(3), t0() + Duration::from_secs(2)),
        ] {
            assert_eq!(lifetime(d).renewal_time(), expect, "lifetime {d:?}");
        }
    }

    #[test]
    fn renew_before_is_used_only_inside_the_lifetime() {
        let l = lifetime(DAY);
        assert_eq!(l.with_renew_before(HOUR).renewal_time(), t0() + 23 * HOUR);
        assert_eq!(
            lifetime(90 * DAY)
                .with_renew_before(30 * DAY + HOUR)
                .renewal_time(),
            t0() + 60 * DAY - HOUR
        );
        // Equal to or longer than the lifetime: falls back to 2/3.
        assert_eq!(l.with_renew_before(DAY).renewal_time(), t0() + 16 * HOUR);
        assert_eq!(
            l.with_renew_before(2 * DAY).renewal_time(),
            t0() + 16 * HOUR
        );
        // Zero (accepted by the Go driver) renews at notAfter.
        assert_eq!(
            l.with_renew_before(Duration::ZERO).renewal_time(),
            t0() + DAY
        );
        // An inverted window renews at once (its notBefore).
        let inverted = Lifetime::new(t0() + DAY, t0());
        assert_eq!(inverted.renewal_time(), t0());
    }

    #[test]
    fn jitter_stays_within_its_bounds_and_spreads() {
        let cfg = RenewerConfig {
            jitter_fraction: 0.05,
            jitter_cap: HOUR,
            ..RenewerConfig::default()
        };
        let planner = cfg.planner(7);
        // 5% of 10 h = 30 min (under the cap); 5% of 90 d = 4.5 d, capped at 1 h.
        for (d, max) in [(10 * HOUR, 30 * 60), (90 * DAY, 3600)] {
            let l = lifetime(d);
            let max = Duration::from_secs(max);
            assert_eq!(planner.max_jitter(&l), max);
            let base = l.renewal_time();
            let dues: Vec<SystemTime> = (0..2000)
                .map(|i| planner.next_issuance(&VolumeId::from(format!("csi-{i}")), &l))
                .collect();
            let earliest = *dues.iter().min().unwrap();
            let latest = *dues.iter().max().unwrap();
            assert!(earliest >= base - max, "{d:?}: {earliest:?} before bound");
            assert!(latest <= base, "{d:?}: after the unjittered time");
            // Spread over (nearly) the whole window, not clumped.
            assert!(base.duration_since(earliest).unwrap() > max.mul_f64(0.95));
            assert!(base.duration_since(latest).unwrap() < max.mul_f64(0.05));
        }
    }

    #[test]
    fn jitter_is_repeatable_per_volume_and_seed() {
        let cfg = RenewerConfig::default();
        let l = lifetime(DAY);
        let v = VolumeId::from("csi-a");
        let a = cfg.planner(1).next_issuance(&v, &l);
        assert_eq!(a, cfg.planner(1).next_issuance(&v, &l));
        assert_ne!(a, cfg.planner(2).next_issuance(&v, &l));
        assert_ne!(
            a,
            cfg.planner(1).next_issuance(&VolumeId::from("csi-b"), &l)
        );
        // No jitter configured: exactly the renewal time.
        let none = RenewerConfig {
            jitter_fraction: 0.0,
            ..RenewerConfig::default()
        };
        assert_eq!(none.planner(1).next_issuance(&v, &l), l.renewal_time());
    }

    #[test]
    fn jitter_never_moves_renewal_before_not_before() {
        let cfg = RenewerConfig {
            jitter_fraction: 0.5,
            jitter_cap: DAY,
            ..RenewerConfig::default()
        };
        // renew-before 59 min of a 1 h certificate leaves 1 min of room.
        let l = lifetime(HOUR).with_renew_before(Duration::from_secs(59 * 60));
        let planner = cfg.planner(3);
        assert_eq!(planner.max_jitter(&l), Duration::from_secs(60));
        for i in 0..200 {
            let due = planner.next_issuance(&VolumeId::from(format!("v{i}")), &l);
            assert!(due >= l.not_before);
        }
    }

    #[test]
    fn backoff_follows_the_go_sequence_and_caps() {
        let cfg = RenewerConfig::default();
        let secs: Vec<u64> = (1..=8).map(|n| cfg.backoff_base(n).as_secs()).collect();
        assert_eq!(secs, [30, 60, 120, 240, 300, 300, 300, 300]);
        assert_eq!(cfg.backoff_base(u32::MAX), Duration::from_secs(300));
        // Additive jitter of up to half the base: 30-45 s ... 300-450 s.
        assert_eq!(cfg.backoff_delay(1, 0.0), Duration::from_secs(30));
        assert_eq!(cfg.backoff_delay(1, 1.0), Duration::from_secs(45));
        assert_eq!(cfg.backoff_delay(9, 1.0), Duration::from_secs(450));
        let custom = RenewerConfig {
            backoff_initial: Duration::from_secs(1),
            backoff_factor: 3.0,
            backoff_cap: Duration::from_secs(10),
            ..RenewerConfig::default()
        };
        let secs: Vec<u64> = (1..=4).map(|n| custom.backoff_base(n).as_secs()).collect();
        assert_eq!(secs, [1, 3, 9, 10]);
    }

    #[test]
    fn validate_rejects_bad_settings() {
        assert!(RenewerConfig::default().validate().is_ok());
        let cases: [(&str, RenewerConfig); 5] = [
            (
                "max_concurrent",
                RenewerConfig {
                    max_concurrent: 0,
                    ..Default::default()
                },
            ),
            (
                "jitter_fraction",
                RenewerConfig {
                    jitter_fraction: 1.0,
                    ..Default::default()
                },
            ),
            (
                "backoff_factor",
                RenewerConfig {
                    backoff_factor: 0.5,
                    ..Default::default()
                },
            ),
            (
                "backoff_jitter",
                RenewerConfig {
                    backoff_jitter: f64::NAN,
                    ..Default::default()
                },
            ),
            (
                "backoff_cap",
                RenewerConfig {
                    backoff_cap: Duration::from_secs(1),
                    ..Default::default()
                },
            ),
        ];
        for (field, cfg) in cases {
            match cfg.validate() {
                Err(StartError::InvalidConfig { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }
}
