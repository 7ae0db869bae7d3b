//! How the driver writes a point in time: RFC 3339 in logs and Events, Unix
//! seconds in metrics. One helper each, so every message says it the same
//! way.

use std::time::SystemTime;

/// `t` in RFC 3339 (UTC, as `jiff` prints it); empty when out of range.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .map(|ts| ts.to_string())
        .unwrap_or_default()
}

/// `t` in Unix seconds (0 before the epoch).
pub(crate) fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn both_forms_of_one_instant() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20Z");
        assert_eq!(unix_seconds(t), 1_700_000_000.0);
        assert_eq!(
            unix_seconds(SystemTime::UNIX_EPOCH - Duration::from_secs(1)),
            0.0
        );
    }
}
