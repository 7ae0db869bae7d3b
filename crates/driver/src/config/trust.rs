//! Trust bundle sources' flags: `--trust-bundle-configmaps` and the bounds of the
//! ClusterTrustBundle and ConfigMap watches.

use clap::{ArgAction, Args};
use cmcsi_issuer_client::TrustOptions;

/// The flags of the trust bundle watches.
#[derive(Debug, Clone, Args)]
pub struct TrustFlags {
    /// Allow volumes to take their trust bundle from a ConfigMap in the Pod's
    /// namespace (trust-manager's Bundle targets); needs get/list/watch on
    /// configmaps (the chart's app.trustBundleConfigMaps adds it).
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value_t = false, default_missing_value = "true")]
    pub trust_bundle_configmaps: bool,

    /// Label selector of the trust bundle ConfigMaps the driver reads; others are
    /// refused with an error saying so.
    #[arg(long, default_value = cmcsi_issuer_client::DEFAULT_CONFIGMAP_LABEL)]
    pub trust_bundle_configmap_label: String,

    /// Most bytes of one volume's trust bundle, and of one source's bundle
    /// (1 MiB: a ClusterTrustBundle or ConfigMap holds at most that).
    #[arg(long, default_value_t = cmcsi_keygen::DEFAULT_MAX_TRUST_BUNDLE_BYTES,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(4096..=16 * 1024 * 1024))]
    pub max_trust_bundle_bytes: usize,

    /// Most ClusterTrustBundles and ConfigMaps the trust watches keep; further ones
    /// are ignored (and logged).
    #[arg(long, default_value_t = cmcsi_issuer_client::DEFAULT_MAX_TRUST_OBJECTS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000))]
    pub max_trust_bundle_objects: usize,

    /// Most bytes of bundles the trust watches keep, all objects together.
    #[arg(long, default_value_t = cmcsi_issuer_client::DEFAULT_MAX_TRUST_BYTES,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(4096..=1024 * 1024 * 1024))]
    pub max_trust_bundle_cache_bytes: usize,
}

impl TrustFlags {
    /// The watch options these flags describe.
    pub fn into_options(self) -> TrustOptions {
        let mut o = TrustOptions::default();
        o.configmaps = self.trust_bundle_configmaps;
        o.configmap_label = self.trust_bundle_configmap_label;
        o.max_objects = self.max_trust_bundle_objects;
        o.max_bytes = self.max_trust_bundle_cache_bytes;
        o.max_bundle_bytes = self.max_trust_bundle_bytes;
        o
    }
}
