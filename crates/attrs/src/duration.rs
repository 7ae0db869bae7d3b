//! Go `time.Duration` strings: parsing (`720h`, `1h30m`, `1.5h`, `300ms`) and
//! formatting (`2160h0m0s`).
//!
//! Written by hand because the attribute values and the CertificateRequest's
//! `spec.duration` use Go's exact grammar (fractions on any unit, `µs`, a bare
//! `0`, no `d` unit) and Go's exact output form; the general-purpose duration
//! crates accept and print other dialects (ISO 8601, `1 hour`, `1d`).

use std::time::Duration;

/// The largest duration Go can represent (`i64::MAX` nanoseconds, about 292
/// years); longer values are refused so the CertificateRequest stays readable
/// by cert-manager.
pub const MAX_GO_DURATION: Duration = Duration::new(9_223_372_036, 854_775_807);

/// Why a string is not a Go duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// The string is empty.
    #[error("empty duration")]
    Empty,
    /// The duration is negative (this crate only deals in lifetimes).
    #[error("negative duration")]
    Negative,
    /// A number is not followed by a unit (`"90"`); only a bare `0` may omit it.
    #[error("missing unit after {number:?}")]
    MissingUnit {
        /// The number without a unit.
        number: String,
    },
    /// The unit is not one of Go's (`d` and `w` are not).
    #[error("unknown unit {unit:?}")]
    UnknownUnit {
        /// The unit as written.
        unit: String,
    },
    /// A unit or separator appears where a number was expected.
    #[error("expected a number at {rest:?}")]
    ExpectedNumber {
        /// The unparsed remainder.
        rest: String,
    },
    /// The value exceeds Go's limit of about 292 years.
    #[error("longer than Go's maximum duration (2562047h47m16.854775807s)")]
    Overflow,
}

const NANOS_PER_SEC: u128 = 1_000_000_000;

fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        // Go accepts the micro sign (U+00B5) and the Greek mu (U+03BC).
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => NANOS_PER_SEC,
        "m" => 60 * NANOS_PER_SEC,
        "h" => 3_600 * NANOS_PER_SEC,
        _ => return None,
    })
}

/// Parses a Go duration string, as Go's `time.ParseDuration` does, into a
/// non-negative [`Duration`].
///
/// A sequence of decimal numbers, each with an optional fraction and a unit
/// (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`), with an optional leading `+`;
/// a bare `0` needs no unit. Negative durations are refused.
///
/// ```
/// use std::time::Duration;
/// use cmcsi_attrs::parse_go_duration;
///
/// assert_eq!(parse_go_duration("1h30m").unwrap(), Duration::from_secs(5400));
/// assert_eq!(parse_go_duration("1.5h").unwrap(), Duration::from_secs(5400));
/// assert_eq!(parse_go_duration("300ms").unwrap(), Duration::from_millis(300));
/// assert!(parse_go_duration("1d").is_err());
/// ```
pub fn parse_go_duration(input: &str) -> Result<Duration, DurationError> {
    let mut s = input;
    let mut negative = false;
    if let Some(rest) = s.strip_prefix('-') {
        negative = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, rest) = s.split_at(int_len);
        let mut frac_part = "";
        s = rest;
        if let Some(after_dot) = s.strip_prefix('.') {
            let frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &after_dot[..frac_len];
            s = &after_dot[frac_len..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(DurationError::ExpectedNumber { rest: s.to_owned() });
        }
        let unit_len = s
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        let (unit, rest) = s.split_at(unit_len);
        s = rest;
        if unit.is_empty() {
            let number = if frac_part.is_empty() {
                int_part.to_owned()
            } else {
                format!("{int_part}.{frac_part}")
            };
            return Err(DurationError::MissingUnit { number });
        }
        let per_unit = unit_nanos(unit).ok_or_else(|| DurationError::UnknownUnit {
            unit: unit.to_owned(),
        })?;
        // Integer part: a long run of digits overflows u128 long before it is
        // parsed, so check as we go.
        let mut whole: u128 = 0;
        for digit in int_part.bytes() {
            whole = whole
                .checked_mul(10)
                .and_then(|w| w.checked_add(u128::from(digit - b'0')))
                .ok_or(DurationError::Overflow)?;
            if whole > u128::from(u64::MAX) {
                return Err(DurationError::Overflow);
            }
        }
        let mut nanos = whole.checked_mul(per_unit).ok_or(DurationError::Overflow)?;
        // Fraction: digits past the 20th cannot change a nanosecond count of a
        // unit at most 3600e9 ns long, so (like Go) they are dropped.
        let mut numerator: u128 = 0;
        let mut scale: u128 = 1;
        for digit in frac_part.bytes().take(20) {
            numerator = numerator * 10 + u128::from(digit - b'0');
            scale *= 10;
        }
        nanos += numerator * per_unit / scale;
        total = total.checked_add(nanos).ok_or(DurationError::Overflow)?;
        if total > MAX_GO_DURATION.as_nanos() {
            return Err(DurationError::Overflow);
        }
    }
    if negative && total > 0 {
        return Err(DurationError::Negative);
    }
    let secs = u64::try_from(total / NANOS_PER_SEC).map_err(|_| DurationError::Overflow)?;
    // The remainder is below 1e9 and so fits.
    let sub = u32::try_from(total % NANOS_PER_SEC).map_err(|_| DurationError::Overflow)?;
    Ok(Duration::new(secs, sub))
}

/// Formats a duration the way Go's `time.Duration.String` does: `2160h0m0s`,
/// `1h30m0s`, `1.5s`, `300ms`, `0s`. This is the form the CertificateRequest's
/// `spec.duration` is written in, and [`parse_go_duration`] reads it back
/// exactly.
///
/// ```
/// use std::time::Duration;
/// use cmcsi_attrs::format_go_duration;
///
/// assert_eq!(format_go_duration(Duration::from_secs(2160 * 3600)), "2160h0m0s");
/// assert_eq!(format_go_duration(Duration::from_millis(1500)), "1.5s");
/// assert_eq!(format_go_duration(Duration::from_micros(300)), "300µs");
/// ```
pub fn format_go_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < NANOS_PER_SEC {
        return if nanos < 1_000 {
            format!("{nanos}ns")
        } else if nanos < 1_000_000 {
            format!("{}\u{b5}s", with_fraction(nanos, 3))
        } else {
            format!("{}ms", with_fraction(nanos, 6))
        };
    }
    let secs = nanos / NANOS_PER_SEC;
    let sub = nanos % NANOS_PER_SEC;
    let mut seconds = (secs % 60).to_string();
    if sub > 0 {
        let digits = format!("{sub:09}");
        seconds.push('.');
        seconds.push_str(digits.trim_end_matches('0'));
    }
    let minutes = secs / 60;
    if minutes == 0 {
        return format!("{seconds}s");
    }
    let hours = minutes / 60;
    if hours == 0 {
        return format!("{}m{seconds}s", minutes % 60);
    }
    format!("{hours}h{}m{seconds}s", minutes % 60)
}

/// `value / 10^precision` with the fraction's trailing zeros removed.
fn with_fraction(value: u128, precision: u32) -> String {
    let scale = 10u128.pow(precision);
    let whole = value / scale;
    let frac = value % scale;
    if frac == 0 {
        return whole.to_string();
    }
    let digits = format!("{frac:0width$}", width = precision as usize);
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn parses_go_examples() {
        assert_eq!(parse_go_duration("720h").unwrap(), secs(720 * 3600));
        assert_eq!(parse_go_duration("1h30m").unwrap(), secs(5400));
        assert_eq!(parse_go_duration("90m").unwrap(), secs(5400));
        assert_eq!(parse_go_duration("1.5h").unwrap(), secs(5400));
        assert_eq!(parse_go_duration("45s").unwrap(), secs(45));
        assert_eq!(
            parse_go_duration("300ms").unwrap(),
            Duration::from_millis(300)
        );
        assert_eq!(parse_go_duration("2160h0m0s").unwrap(), secs(2160 * 3600));
        assert_eq!(parse_go_duration("+5s").unwrap(), secs(5));
        assert_eq!(
            parse_go_duration(".5s").unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(parse_go_duration("5.s").unwrap(), secs(5));
        assert_eq!(parse_go_duration("1.5h30m").unwrap(), secs(7200));
        assert_eq!(
            parse_go_duration("10us").unwrap(),
            Duration::from_micros(10)
        );
        assert_eq!(
            parse_go_duration("10µs").unwrap(),
            Duration::from_micros(10)
        );
        assert_eq!(
            parse_go_duration("10μs").unwrap(),
            Duration::from_micros(10)
        );
        assert_eq!(parse_go_duration("7ns").unwrap(), Duration::from_nanos(7));
        assert_eq!(parse_go_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_go_duration("-0").unwrap(), Duration::ZERO);
        assert_eq!(parse_go_duration("0s").unwrap(), Duration::ZERO);
        assert_eq!(
            parse_go_duration("1.0000000001s").unwrap(),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn rejects_what_go_rejects() {
        assert_eq!(parse_go_duration(""), Err(DurationError::Empty));
        assert_eq!(parse_go_duration("-"), Err(DurationError::Empty));
        assert_eq!(
            parse_go_duration("90"),
            Err(DurationError::MissingUnit {
                number: "90".into()
            })
        );
        assert_eq!(
            parse_go_duration("1d"),
            Err(DurationError::UnknownUnit { unit: "d".into() })
        );
        assert_eq!(
            parse_go_duration("1H"),
            Err(DurationError::UnknownUnit { unit: "H".into() })
        );
        assert_eq!(
            parse_go_duration("h"),
            Err(DurationError::ExpectedNumber { rest: "h".into() })
        );
        assert_eq!(
            parse_go_duration(".h"),
            Err(DurationError::ExpectedNumber { rest: "h".into() })
        );
        assert_eq!(
            parse_go_duration("1h 30m"),
            Err(DurationError::UnknownUnit { unit: "h ".into() })
        );
        assert_eq!(parse_go_duration("-1h"), Err(DurationError::Negative));
        assert_eq!(parse_go_duration("2562048h"), Err(DurationError::Overflow));
        assert_eq!(
            parse_go_duration("99999999999999999999999999999999999999999h"),
            Err(DurationError::Overflow)
        );
        assert!(parse_go_duration("2562047h").is_ok());
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format_go_duration(Duration::ZERO), "0s");
        assert_eq!(format_go_duration(Duration::from_nanos(1)), "1ns");
        assert_eq!(format_go_duration(Duration::from_nanos(1_100)), "1.1µs");
        assert_eq!(format_go_duration(Duration::from_micros(2_200)), "2.2ms");
        assert_eq!(format_go_duration(Duration::from_millis(3_300)), "3.3s");
        assert_eq!(format_go_duration(secs(45)), "45s");
        assert_eq!(format_go_duration(secs(90)), "1m30s");
        assert_eq!(format_go_duration(secs(5400)), "1h30m0s");
        assert_eq!(format_go_duration(secs(720 * 3600)), "720h0m0s");
        assert_eq!(format_go_duration(secs(2160 * 3600)), "2160h0m0s");
        assert_eq!(
            format_go_duration(MAX_GO_DURATION),
            "2562047h47m16.854775807s"
        );
    }

    #[test]
    fn format_then_parse_is_identity() {
        for d in [
            Duration::from_nanos(1),
            Duration::from_nanos(999),
            Duration::from_nanos(1_000_001),
            Duration::new(1, 1),
            Duration::new(3_599, 999_999_999),
            secs(86_400 * 365),
            MAX_GO_DURATION,
        ] {
            assert_eq!(parse_go_duration(&format_go_duration(d)).unwrap(), d);
        }
    }
}
