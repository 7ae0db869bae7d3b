//! The one clock the renewer reads: wall time for certificates, tokio's
//! monotonic [`Instant`] for timers.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

/// About 30 years: where a wall time too far ahead to represent as an
/// [`Instant`] is parked (a certificate valid that long is renewed by a restart
/// long before then).
const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

/// Maps certificate (wall) times to tokio timer instants.
///
/// [`Clock::system`] reads the system clock each time, so a wall-clock step is
/// picked up by every schedule made after it. [`Clock::anchored`] fixes the
/// wall time at one tokio instant and lets wall time advance with tokio's
/// clock, so tests with paused time (`#[tokio::test(start_paused = true)]`)
/// see certificates expire as they advance time.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    anchor: Option<(SystemTime, Instant)>,
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl Clock {
    /// The system wall clock.
    pub fn system() -> Self {
        Self { anchor: None }
    }

    /// A clock whose wall time is `wall` now and advances with tokio's clock.
    pub fn anchored(wall: SystemTime) -> Self {
        Self {
            anchor: Some((wall, Instant::now())),
        }
    }

    /// The current wall time.
    pub fn now(&self) -> SystemTime {
        match self.anchor {
            None => SystemTime::now(),
            Some((wall, at)) => wall + Instant::now().saturating_duration_since(at),
        }
    }

    /// The tokio instant at which this clock will read `wall`; now for times
    /// already past.
    pub fn instant_for(&self, wall: SystemTime) -> Instant {
        let now_instant = Instant::now();
        match wall.duration_since(self.now()) {
            Ok(ahead) => now_instant
                .checked_add(ahead.min(FAR_FUTURE))
                .unwrap_or(now_instant),
            Err(_) => now_instant,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn anchored_clock_follows_paused_time() {
        let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let clock = Clock::anchored(base);
        let start = Instant::now();
        assert_eq!(clock.now(), base);
        let target = clock.instant_for(base + Duration::from_secs(90));
        assert_eq!(target - start, Duration::from_secs(90));
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(clock.now(), base + Duration::from_secs(60));
        // The mapping is stable as time moves.
        assert_eq!(clock.instant_for(base + Duration::from_secs(90)), target);
        // Past times map to now.
        assert_eq!(clock.instant_for(base), Instant::now());
    }
}
