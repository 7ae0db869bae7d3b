//! `--csi-lib-issue-labels`: which labels the issuance counters carry.

use clap::{ArgAction, Args};

/// The csi-lib compatibility flag of the metrics.
#[derive(Debug, Clone, Args)]
pub struct CsiLibFlags {
    /// certmanager_csi_issue_requests_total and certmanager_csi_issue_errors_total
    /// carry csi-lib's labels {node, volume} (node-name hash, volume id) instead of
    /// ours {namespace, issuer_name, issuer_kind, issuer_group}; one series name
    /// cannot carry both without sums counting twice (see docs/metrics.md). Every
    /// other csi-lib series is served either way.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value_t = false, default_missing_value = "true")]
    pub csi_lib_issue_labels: bool,
}
