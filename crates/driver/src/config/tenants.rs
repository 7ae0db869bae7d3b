//! What one tenant may take of what the node's tenants share, and what a Pod
//! may ask the driver to do on its behalf ([`TenantLimits`]), and the flags
//! that set it: the per-volume tmpfs budget and renewal reserve,
//! cert-manager's own annotation keys, `${POD_IP}` of `hostNetwork` Pods.

use clap::{ArgAction, Args};

use super::parse::parse_size_flag;

/// Per-tenant shares and opt-ins.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TenantLimits {
    /// Most bytes one volume may take on the data root; `None`: a sixteenth of its size.
    pub volume_budget: Option<u64>,
    /// Bytes new volumes must leave free for renewals; `None`: an eighth of its size.
    pub renewal_reserve: Option<u64>,
    /// Accept pass-through annotation keys under `cert-manager.io/` and `*.cert-manager.io/`.
    pub allow_cert_manager_annotations: bool,
    /// Accept `${POD_IP}` for `hostNetwork` Pods (whose IP is the node's).
    pub allow_pod_ip_for_host_network: bool,
}

impl TenantLimits {
    /// The store's budget for a data root of `size` bytes.
    pub fn budget(&self, size: u64) -> cmcsi_store::Budget {
        let default = cmcsi_store::Budget::for_size(size);
        cmcsi_store::Budget {
            volume_bytes: self.volume_budget.unwrap_or(default.volume_bytes),
            reserve_bytes: self.renewal_reserve.unwrap_or(default.reserve_bytes),
        }
    }
}

/// The flags of [`TenantLimits`].
#[derive(Debug, Clone, Args)]
pub struct TenantFlags {
    /// Most bytes one volume may take on the tmpfs (metadata, keystore passwords
    /// from its Secret, and its files), checked before writing (bytes, or with
    /// Ki, Mi; default: a sixteenth of --tmpfs-size, 2Mi of the default 32Mi).
    #[arg(long, value_parser = parse_size_flag)]
    pub tmpfs_volume_budget: Option<u64>,

    /// Bytes of the tmpfs that new volumes must leave free, so renewals of
    /// existing volumes still fit when new ones are refused (bytes, or with Ki,
    /// Mi; default: an eighth of --tmpfs-size, 4Mi of the default 32Mi).
    #[arg(long, value_parser = parse_size_flag)]
    pub tmpfs_renewal_reserve: Option<u64>,

    /// Pass volume attributes under cert-manager.io/ and *.cert-manager.io/
    /// (which cert-manager and its issuers act on, e.g.
    /// venafi.cert-manager.io/pickup-id) to CertificateRequests as annotations;
    /// by default such keys are refused.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value_t = false, default_missing_value = "true")]
    pub allow_cert_manager_annotations: bool,

    /// Accept ${POD_IP} and ${POD_IPS} for hostNetwork Pods, whose address is the
    /// node's (a certificate for it names the node); by default refused.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value_t = false, default_missing_value = "true")]
    pub allow_pod_ip_for_host_network: bool,
}

impl TenantFlags {
    /// The limits these flags set.
    pub fn into_limits(self) -> TenantLimits {
        TenantLimits {
            volume_budget: self.tmpfs_volume_budget,
            renewal_reserve: self.tmpfs_renewal_reserve,
            allow_cert_manager_annotations: self.allow_cert_manager_annotations,
            allow_pod_ip_for_host_network: self.allow_pod_ip_for_host_network,
        }
    }
}
