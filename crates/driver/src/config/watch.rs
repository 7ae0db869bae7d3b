//! What the driver's watches hold and how they list ([`WatchLimits`]), and
//! the flags that set it (`--max-watched-requests-per-namespace` and friends).
//! Anyone who may create a CertificateRequest can label it for this node,
//! and a node's Pods choose their annotations: these bound what that costs.

use clap::{Args, ValueEnum};
use cmcsi_issuer_client as ic;

/// The caps and list strategy of the CertificateRequest and Pod watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchLimits {
    /// Most requests held of one namespace.
    pub max_per_namespace: usize,
    /// Most requests held of one volume.
    pub max_per_volume: usize,
    /// Most Pods the Pod watch keeps.
    pub max_pods: usize,
    /// Most bytes of kept annotations per Pod.
    pub max_pod_annotation_bytes: usize,
    /// Streaming or paged lists.
    pub list_strategy: ic::ListStrategy,
    /// Page size of paged lists.
    pub list_page_size: u32,
}

impl Default for WatchLimits {
    fn default() -> Self {
        WatchLimits {
            max_per_namespace: ic::DEFAULT_MAX_WATCHED_REQUESTS_PER_NAMESPACE,
            max_per_volume: ic::DEFAULT_MAX_WATCHED_REQUESTS_PER_VOLUME,
            max_pods: ic::DEFAULT_MAX_WATCHED_PODS,
            max_pod_annotation_bytes: ic::DEFAULT_MAX_POD_ANNOTATION_BYTES,
            list_strategy: ic::ListStrategy::Auto,
            list_page_size: ic::DEFAULT_LIST_PAGE_SIZE,
        }
    }
}

/// `--list-strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListStrategyFlag {
    /// Streaming lists where the API server serves them (WatchList on:
    /// Kubernetes 1.32, 1.34 and later by default), else paged lists.
    Auto,
    /// Always streaming lists (sendInitialEvents=true watches).
    Streaming,
    /// Always paged lists (limit=--list-page-size, not from the watch cache).
    Paged,
}

/// The flags of [`WatchLimits`].
#[derive(Debug, Clone, Args)]
pub struct WatchFlags {
    /// Most CertificateRequests the watch holds of one namespace (below
    /// --max-watched-requests, so one namespace cannot fill the node's share);
    /// requests this driver creates are always admitted. Refusals are counted
    /// per namespace in certmanager_csi_watch_refused_requests_total.
    #[arg(long, default_value_t = ic::DEFAULT_MAX_WATCHED_REQUESTS_PER_NAMESPACE,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub max_watched_requests_per_namespace: usize,

    /// Most CertificateRequests the watch holds of one volume; requests this
    /// driver creates are always admitted.
    #[arg(long, default_value_t = ic::DEFAULT_MAX_WATCHED_REQUESTS_PER_VOLUME,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(2..=1_000_000))]
    pub max_watched_requests_per_volume: usize,

    /// Most Pods the node's Pod watch (readiness gates, ${POD_IP}) keeps;
    /// further Pods wait as if not yet seen.
    #[arg(long, default_value_t = ic::DEFAULT_MAX_WATCHED_PODS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub max_watched_pods: usize,

    /// Most bytes (keys and values) of the annotations the Pod watch keeps
    /// per Pod (those readiness gates name); annotations beyond it count as absent.
    #[arg(long, default_value_t = ic::DEFAULT_MAX_POD_ANNOTATION_BYTES,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(64..=1024 * 1024))]
    pub max_pod_annotation_bytes: usize,

    /// How the watches make their initial lists: streaming lists where the
    /// API server serves them, else pages of --list-page-size objects.
    #[arg(long, value_enum, default_value_t = ListStrategyFlag::Auto)]
    pub list_strategy: ListStrategyFlag,

    /// Objects per page of a paged list (each up to 1.5 MiB, etcd's object limit).
    #[arg(long, default_value_t = ic::DEFAULT_LIST_PAGE_SIZE,
          value_parser = clap::value_parser!(u32).range(1..=500))]
    pub list_page_size: u32,
}

impl WatchFlags {
    /// The limits these flags set.
    pub fn into_limits(self) -> WatchLimits {
        WatchLimits {
            max_per_namespace: self.max_watched_requests_per_namespace,
            max_per_volume: self.max_watched_requests_per_volume,
            max_pods: self.max_watched_pods,
            max_pod_annotation_bytes: self.max_pod_annotation_bytes,
            list_strategy: match self.list_strategy {
                ListStrategyFlag::Auto => ic::ListStrategy::Auto,
                ListStrategyFlag::Streaming => ic::ListStrategy::Streaming,
                ListStrategyFlag::Paged => ic::ListStrategy::Paged,
            },
            list_page_size: self.list_page_size,
        }
    }
}
