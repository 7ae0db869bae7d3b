//! `--max-watch-outage`: when a broken API watch makes the driver report
//! not ready on CSI `Probe`.

use std::time::Duration;

use clap::Args;

use super::parse_interval_flag;

/// Default of `--max-watch-outage`.
pub const DEFAULT_MAX_WATCH_OUTAGE: Duration = Duration::from_secs(120);

/// The readiness flags.
#[derive(Debug, Clone, Args)]
pub struct ReadinessFlags {
    /// CSI Probe answers not ready while the CertificateRequest watch has been
    /// failing for longer than this (the driver then cannot see cert-manager
    /// sign anything); ready again at its next event, or once no retry has
    /// failed for twice its backoff cap (30s). 0 = a failing watch never makes
    /// the driver not ready (Go duration).
    #[arg(long, default_value = "2m", value_parser = parse_interval_flag)]
    pub max_watch_outage: Duration,
}
