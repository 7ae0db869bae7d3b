//! The metrics endpoint's bounds ([`MetricsLimits`]) and their flags: any Pod
//! that reaches the node's driver can connect to it, so no client may hold
//! connections, memory or descriptors for long.

use std::time::Duration;

use clap::Args;

use super::parse::parse_duration_flag;

pub use crate::metrics::MetricsLimits;

/// The flags of [`MetricsLimits`].
#[derive(Debug, Clone, Args)]
pub struct MetricsFlags {
    /// Longest wait for the headers of a request to the metrics endpoint (Go duration).
    #[arg(long, default_value = "10s", value_parser = parse_duration_flag)]
    pub metrics_header_timeout: Duration,

    /// Metrics connections idle this long are closed (Go duration, at most 60s).
    #[arg(long, default_value = "30s", value_parser = parse_idle_timeout)]
    pub metrics_idle_timeout: Duration,

    /// Most open connections to the metrics endpoint; at the cap the longest-idle
    /// connection is closed to make room.
    #[arg(long, default_value_t = 64, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10_000))]
    pub metrics_max_connections: usize,
}

fn parse_idle_timeout(s: &str) -> Result<Duration, String> {
    let d = parse_duration_flag(s)?;
    if d.is_zero() || d > Duration::from_secs(60) {
        return Err(format!("{s:?}: give a duration from 1s to 60s"));
    }
    Ok(d)
}

impl MetricsFlags {
    /// The limits these flags set.
    pub fn into_limits(self) -> MetricsLimits {
        MetricsLimits {
            header_timeout: self.metrics_header_timeout,
            idle_timeout: self.metrics_idle_timeout,
            max_connections: self.metrics_max_connections,
        }
    }
}
