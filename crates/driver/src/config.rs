//! The driver's configuration: one struct, filled from command-line flags
//! (with the environment fallbacks the Go driver's chart relies on).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser, ValueEnum};

mod connection;
mod csilib;
mod events;
mod gates;
mod limits;
mod parse;
mod probe;
mod selinux;
mod serving;
mod tenants;
mod transport;
mod trust;
mod watch;

pub use crate::events::EventsConfig;
pub use crate::gates::{ConditionStatus, Gate, GateBackoff, IpFamily};
pub use connection::ConnectionFlags;
pub use csilib::CsiLibFlags;
pub use events::EventFlags;
pub use gates::GateFlags;
pub use limits::{DEFAULT_MAX_VOLUME_CONTEXT_BYTES, LimitFlags, RequestLimits};
pub use parse::{
    BindAddress, parse_bind_address, parse_duration_flag, parse_endpoint, parse_interval_flag,
    parse_size_flag,
};
use parse::{parse_min_issuance_interval, parse_node_id, parse_renewal_rate};
pub use probe::{DEFAULT_MAX_WATCH_OUTAGE, ReadinessFlags};
pub use selinux::{DEFAULT_SELINUX_VOLUME_SIZE, SelinuxFlags};
pub use serving::{MetricsFlags, MetricsLimits};
pub use tenants::{TenantFlags, TenantLimits};
pub(crate) use transport::check_token_transport;
pub use transport::{TransportFlags, TransportLimits, check_endpoint};
pub use trust::TrustFlags;
pub use watch::{ListStrategyFlag, WatchFlags, WatchLimits};

/// The default CSI driver name, as registered by the `CSIDriver` object.
pub const DEFAULT_DRIVER_NAME: &str = "csi.cert-manager.io";

/// The default `--data-root` (the DaemonSet's host directory is mounted there).
pub const DEFAULT_DATA_ROOT: &str = "/csi-data-dir";

/// Everything the driver needs to run. Built from [`Cli`] by the binary, or
/// directly by embedders and tests.
#[derive(Debug, Clone)]
pub struct Config {
    /// This node's name (`spec.nodeName`), returned by `NodeGetInfo` and
    /// hashed into the labels of every CertificateRequest the driver creates.
    pub node_id: String,
    /// Where the kubelet talks to the driver: a Unix socket, or TCP.
    pub endpoint: Endpoint,
    /// The CSI driver name (`csi.cert-manager.io`).
    pub driver_name: String,
    /// The node data root; keys and certificates live in `<data_root>/inmemfs`.
    pub data_root: PathBuf,
    /// Kubeconfig file; `None` means `KUBECONFIG`, then the in-cluster config.
    pub kubeconfig: Option<PathBuf>,
    /// Log verbosity.
    pub log_level: LogLevel,
    /// Log line format.
    pub log_format: LogFormat,
    /// Create CertificateRequests with the Pod's own ServiceAccount token
    /// (from `csi.storage.k8s.io/serviceAccount.tokens`).
    pub use_token_request: bool,
    /// Mount at once and issue in the background instead of failing the
    /// publish while the certificate is not yet issued.
    pub continue_on_not_ready: bool,
    /// Where to serve Prometheus metrics; `None` disables them.
    pub metrics_bind_address: Option<SocketAddr>,
    /// Client-side request rate towards the Kubernetes API (0 = default).
    pub kube_api_qps: f32,
    /// Client-side burst towards the Kubernetes API (0 = default).
    pub kube_api_burst: u32,
    /// RSA-2048 keys kept ready in memory (0 disables the pool).
    pub key_pool_size: usize,
    /// Issuances (first and renewals) in flight at once.
    pub max_concurrent_issuances: usize,
    /// How long one issuance may wait for cert-manager.
    pub issuance_timeout: Duration,
    /// Mount a tmpfs on `<data_root>/inmemfs` (keys never touch a disk).
    pub mount_tmpfs: bool,
    /// CertificateRequests kept per volume; older ones are deleted.
    pub max_requests_per_volume: usize,
    /// Window over which overdue renewals are spread after a restart.
    pub recovery_spread: Duration,
    /// Delay before retrying a failed renewal (doubles per failure).
    pub renewal_backoff_initial: Duration,
    /// The retry delay stops growing here.
    pub renewal_backoff_max: Duration,
    /// How often never-issued volumes whose Pod is gone are removed from the
    /// store (`ZERO` = only at start).
    pub abandoned_sweep_interval: Duration,
    /// Kubernetes Events on Pods (`--events`, `--event-interval`, `--event-queue-size`).
    pub events: crate::events::EventsConfig,
    /// Request limits of a publish (`--max-volume-context-bytes` and friends).
    pub request_limits: RequestLimits,
    /// Trust bundle sources (`--trust-bundle-configmaps`, `--max-trust-bundle-*`).
    pub trust: cmcsi_issuer_client::TrustOptions,
    /// How long set-aside (unusable) volume directories are kept before the
    /// sweep removes them.
    pub quarantine_grace: Duration,
    /// `size=` of the tmpfs the driver mounts, in bytes.
    pub tmpfs_size: u64,
    // ---- Go driver compatibility ----
    /// `--pod-readiness-gate`: all must hold before a volume is issued.
    pub pod_readiness_gates: Vec<crate::gates::Gate>,
    /// `--gate-backoff-*`: the delay between checks of a volume's gates.
    pub gate_backoff: crate::gates::GateBackoff,
    /// `--go-defaults`: new volumes get the Go driver's defaults (`tls.crt`,
    /// `tls.key`, `ca.crt`, 2160h, `LegacyRC2` PKCS#12).
    pub go_defaults: bool,
    /// kubectl's connection flags (`--context`, `--server`, `--token`, ...).
    pub connection: cmcsi_issuer_client::ConnectionOverrides,
    /// Most CertificateRequests the node-wide watch holds at once.
    pub max_watched_requests: usize,
    /// The watches' per-namespace, per-volume and Pod caps and list strategy.
    pub watch_limits: WatchLimits,
    /// The tmpfs budget and reserve, and what a Pod may ask for on opt-in.
    pub tenants: TenantLimits,
    /// The metrics endpoint's timeouts and connection cap.
    pub metrics_limits: MetricsLimits,
    /// A volume is issued at most once per this interval.
    pub min_issuance_interval: Duration,
    /// Node-wide renewals started per second (first issuances are not limited).
    pub max_renewals_per_second: f64,
    /// Distinct issuers (name, kind, group) the per-issuer counters label;
    /// further ones are counted under `other`.
    pub max_issuer_label_values: usize,
    /// `--max-watch-outage`: Probe answers not ready once the API watch has
    /// been failing this long (`ZERO`: never for that reason).
    pub max_watch_outage: Duration,
    /// `--csi-lib-issue-labels`: the issuance counters carry csi-lib's
    /// `{node, volume}` labels instead of the per-issuer ones.
    pub csi_lib_issue_labels: bool,
    /// `--selinux-volume-size`: the tmpfs of a volume published with an
    /// SELinux `context=` mount flag.
    pub selinux_volume_size: u64,
    /// `--allow-non-loopback-endpoint`, `--allow-insecure-token-request`.
    pub transport: TransportLimits,
}

/// Where the CSI gRPC service listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A Unix socket at this path (0600).
    Unix(PathBuf),
    /// TCP on `host:port` (`tcp://host:port`, as csi-lib accepts); no TLS,
    /// so only for a loopback address or a private network.
    Tcp(String),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix://{}", p.display()),
            Endpoint::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, in klog's JSON format (`ts`, `msg`, `v`)
    /// plus `level` and the event's fields ([`crate::logging`]).
    Json,
}

/// Log verbosity: a level name, or the Go driver's numeric `-v` levels as
/// klog uses them: 0 and 1 (and below) info, 2 to 4 debug, 5 and above trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Errors and warnings.
    Warn,
    /// One line per RPC and issuance (the default).
    Info,
    /// Internal decisions.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// The `tracing` filter directive for this level.
    pub fn as_directive(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

impl std::str::FromStr for LogLevel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(n) = s.trim().parse::<i64>() {
            return Ok(match n {
                ..=1 => LogLevel::Info,
                2..=4 => LogLevel::Debug,
                _ => LogLevel::Trace,
            });
        }
        Ok(match s.to_ascii_lowercase().as_str() {
            "error" => LogLevel::Error,
            "warn" | "warning" => LogLevel::Warn,
            "info" => LogLevel::Info,
            "debug" => LogLevel::Debug,
            "trace" => LogLevel::Trace,
            _ => {
                return Err(format!(
                    "unknown log level `{s}`: use error, warn, info, debug or trace \
                     (or a klog -v number: 0-1 info, 2-4 debug, 5 and above trace)"
                ));
            }
        })
    }
}

/// The headings `--help` groups the flags under (the Go driver's binary
/// groups its flags too).
pub mod heading {
    /// Node, driver name and CSI endpoint.
    pub const NODE: &str = "Node and CSI";
    /// Where and how volumes are kept.
    pub const STORAGE: &str = "Storage";
    /// The connection to the Kubernetes API.
    pub const KUBERNETES: &str = "Kubernetes API";
    /// Issuing certificates.
    pub const ISSUANCE: &str = "Issuance";
    /// When certificates are renewed.
    pub const RENEWAL: &str = "Renewal";
    /// Limits of one publish.
    pub const LIMITS: &str = "Limits";
    /// Kubernetes Events on Pods.
    pub const EVENTS: &str = "Events";
    /// Pod readiness gates (Go driver compatible).
    pub const GATES: &str = "Pod readiness gates";
    /// CSI Probe.
    pub const READINESS: &str = "Readiness";
    /// Logs.
    pub const LOGGING: &str = "Logging";
    /// Prometheus metrics.
    pub const METRICS: &str = "Metrics";
}

/// Shown after the flags in `--help`.
const AFTER_HELP: &str = "\
Environment:
  RUST_LOG      Replaces --log-level with a tracing filter, per module if wanted:
                RUST_LOG=info,cmcsi_issuer_client=debug (see docs/troubleshooting.md)
  NODE_ID, CSI_ENDPOINT, KUBECONFIG
                Defaults of --node-id, --endpoint and --kubeconfig

Subcommands:
  status        List this node's volumes from the data root (no API access needed):
                cert-manager-csi-driver status [--data-root DIR] [--output table|json]";

/// Command-line flags of `cert-manager-csi-driver`.
#[derive(Debug, Parser)]
#[command(
    name = "cert-manager-csi-driver",
    version = crate::build::VERSION_LINE,
    about = "cert-manager CSI node driver: gives every Pod its own private key and certificate",
    after_help = AFTER_HELP,
    args_override_self = true
)]
pub struct Cli {
    /// This node's name (in a DaemonSet: the spec.nodeName field reference).
    #[arg(long, env = "NODE_ID", value_parser = parse_node_id)]
    #[arg(help_heading = heading::NODE)]
    pub node_id: String,

    /// CSI endpoint: unix:///csi/csi.sock, unix://relative/path, a plain path,
    /// or tcp://host:port (no TLS: loopback or a private network only).
    #[arg(long, env = "CSI_ENDPOINT", value_parser = parse_endpoint)]
    #[arg(help_heading = heading::NODE)]
    pub endpoint: Endpoint,

    /// Name this driver registers as; must match the CSIDriver object.
    #[arg(long, default_value = DEFAULT_DRIVER_NAME)]
    #[arg(help_heading = heading::NODE)]
    pub driver_name: String,

    /// Node directory for the driver's state; keys live on a tmpfs under it.
    #[arg(long, default_value = DEFAULT_DATA_ROOT)]
    #[arg(help_heading = heading::STORAGE)]
    pub data_root: PathBuf,

    /// Kubeconfig file (default: $KUBECONFIG, then the in-cluster config).
    #[arg(long, env = "KUBECONFIG")]
    #[arg(help_heading = heading::KUBERNETES)]
    pub kubeconfig: Option<PathBuf>,

    /// Log level: error, warn, info, debug, trace, or a klog -v number as the
    /// Go driver takes (0-1 info, 2-4 debug, 5 and above trace).
    #[arg(
        long,
        short = 'v',
        default_value = "info",
        allow_negative_numbers = true
    )]
    #[arg(help_heading = heading::LOGGING)]
    pub log_level: LogLevel,

    /// Log format: text, or json (klog's JSON lines: ts, msg, v, then level and
    /// each event's fields; see docs/troubleshooting.md).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    #[arg(help_heading = heading::LOGGING)]
    pub log_format: LogFormat,

    /// Create CertificateRequests as the Pod's ServiceAccount, with the token the
    /// kubelet passes (needs the token-request CSIDriver variant).
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value_t = false, default_missing_value = "true")]
    #[arg(help_heading = heading::ISSUANCE)]
    pub use_token_request: bool,

    /// Publish at once and issue in the background; the Pod starts before its
    /// certificate exists and must tolerate missing files for a moment.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value_t = false, default_missing_value = "true")]
    #[arg(help_heading = heading::ISSUANCE)]
    pub continue_on_not_ready: bool,

    /// Serve Prometheus metrics at /metrics on this address (see `parse_bind_address`).
    #[arg(
        long,
        default_value = "0",
        value_parser = parse_bind_address,
        help = "Serve Prometheus metrics at /metrics on this address: :9402 (all interfaces, \
                IPv6 and IPv4), [::1]:9402, 127.0.0.1:9402, localhost:9402; 0 = off"
    )]
    #[arg(help_heading = heading::METRICS)]
    pub metrics_bind_address: BindAddress,

    /// Requests per second towards the Kubernetes API (0 = built-in default of 50).
    #[arg(long, default_value_t = 0.0)]
    #[arg(help_heading = heading::KUBERNETES)]
    pub kube_api_qps: f32,

    /// Burst of requests towards the Kubernetes API (0 = built-in default of 100).
    #[arg(long, default_value_t = 0)]
    #[arg(help_heading = heading::KUBERNETES)]
    pub kube_api_burst: u32,

    /// RSA-2048 keys generated ahead of demand and kept in memory (0 = no pool).
    #[arg(long, default_value_t = 4)]
    #[arg(help_heading = heading::ISSUANCE)]
    pub key_pool_size: usize,

    /// Issuances in flight at once; first issuances go ahead of renewals.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    #[arg(help_heading = heading::ISSUANCE)]
    pub max_concurrent_issuances: u32,

    /// How long one publish waits for cert-manager to sign (Go duration, e.g. 60s).
    #[arg(long, default_value = "60s", value_parser = parse_duration_flag)]
    #[arg(help_heading = heading::ISSUANCE)]
    pub issuance_timeout: Duration,

    /// Mount a tmpfs on `DATA_ROOT/inmemfs` so keys never touch a disk.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value_t = true, default_missing_value = "true")]
    #[arg(help_heading = heading::STORAGE)]
    pub mount_tmpfs: bool,

    /// CertificateRequests kept per volume; older ones are deleted before each issuance.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    #[arg(help_heading = heading::ISSUANCE)]
    pub max_requests_per_volume: u32,

    /// After a restart, overdue renewals are spread over this window (Go duration).
    #[arg(long, default_value = "30s", value_parser = parse_duration_flag)]
    #[arg(help_heading = heading::RENEWAL)]
    pub recovery_spread: Duration,

    /// Delay before retrying a failed renewal; it doubles with each further
    /// failure, plus up to 50% jitter (Go duration; the Go driver's 30s).
    #[arg(long, default_value = "30s", value_parser = parse_duration_flag)]
    #[arg(help_heading = heading::RENEWAL)]
    pub renewal_backoff_initial: Duration,

    /// The renewal retry delay stops growing here (Go duration).
    #[arg(long, default_value = "5m", value_parser = parse_duration_flag)]
    #[arg(help_heading = heading::RENEWAL)]
    pub renewal_backoff_max: Duration,

    /// How often to remove volumes that were never issued and whose Pod is
    /// gone (the kubelet never unpublishes a volume whose publish failed);
    /// always done at start; 0 = only at start (Go duration).
    #[arg(long, default_value = "5m", value_parser = parse_interval_flag)]
    #[arg(help_heading = heading::STORAGE)]
    pub abandoned_volume_sweep_interval: Duration,

    /// `--events`, `--event-interval`, `--event-queue-size`.
    #[command(flatten)]
    #[command(next_help_heading = heading::EVENTS)]
    pub events: EventFlags,

    /// `--max-volume-context-bytes` and the other limits of one publish.
    #[command(flatten)]
    #[command(next_help_heading = heading::LIMITS)]
    pub limits: LimitFlags,

    /// `--trust-bundle-configmaps` and the trust watches' bounds.
    #[command(flatten)]
    pub trust: TrustFlags,

    /// Unusable volume directories set aside (`inmemfs/.quarantine`: at start, and by
    /// the sweep when an unmounted volume's metadata cannot be read) are removed, keys
    /// included, by the sweep once they are older than this (Go duration); one still
    /// mounted is kept.
    #[arg(long, default_value = "24h", value_parser = parse_duration_flag)]
    #[arg(help_heading = heading::STORAGE)]
    pub quarantine_grace: Duration,

    /// Size of the tmpfs mounted on `DATA_ROOT/inmemfs` (bytes, or with Ki, Mi, Gi); its
    /// pages count against the container's memory limit, so keep it below that.
    #[arg(long, default_value = "32Mi", value_parser = parse_size_flag)]
    #[arg(help_heading = heading::STORAGE)]
    pub tmpfs_size: u64,
    // ---- Go driver compatibility: readiness gates, Go defaults, kubectl's connection flags ----
    /// `--pod-readiness-gate` and `--gate-backoff-*`.
    #[command(flatten)]
    #[command(next_help_heading = heading::GATES)]
    pub gates: GateFlags,

    /// New volumes that do not name their files or lifetime get the Go driver's
    /// defaults: tls.crt, tls.key, ca.crt, 2160h, LegacyRC2 PKCS#12 (and its
    /// tolerance of unknown attributes), instead of crt.pem, key.pem, ca.pem, 720h.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value_t = false, default_missing_value = "true")]
    #[arg(help_heading = heading::ISSUANCE)]
    pub go_defaults: bool,

    /// kubectl's connection flags (`--context`, `--server`, `--token`, ...).
    #[command(flatten)]
    #[command(next_help_heading = heading::KUBERNETES)]
    pub connection: ConnectionFlags,
    /// Most CertificateRequests the node-wide watch holds; further ones are
    /// ignored (counted in certmanager_csi_watch_ignored_requests, logged once).
    #[arg(long, default_value_t = cmcsi_issuer_client::DEFAULT_MAX_WATCHED_REQUESTS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    #[arg(help_heading = heading::KUBERNETES)]
    pub max_watched_requests: usize,
    /// `--max-watched-requests-per-namespace` and the watches' other limits.
    #[command(flatten)]
    pub watch: WatchFlags,
    /// `--tmpfs-volume-budget` and the other per-tenant limits.
    #[command(flatten)]
    pub tenants: TenantFlags,
    /// `--metrics-header-timeout` and the metrics endpoint's other bounds.
    #[command(flatten)]
    pub metrics_serving: MetricsFlags,

    /// A volume is issued at most once per this interval, however short its
    /// certificate's duration; a certificate already due when issued is
    /// renewed after this interval (Go duration, at least 1s).
    #[arg(long, default_value = "10s", value_parser = parse_min_issuance_interval)]
    #[arg(help_heading = heading::RENEWAL)]
    pub min_issuance_interval: Duration,

    /// Renewals started per second on this node, so that first issuances
    /// keep the API budget under load (first issuances are not limited).
    #[arg(long, default_value_t = 5.0, value_parser = parse_renewal_rate)]
    #[arg(help_heading = heading::RENEWAL)]
    pub max_renewals_per_second: f64,

    /// Distinct issuers (name, kind, group) the per-issuer counters carry as
    /// labels; the issuer names come from Pods, so further ones are counted
    /// under issuer_name="other" (and kind and group "other").
    #[arg(long, default_value_t = crate::metrics::DEFAULT_MAX_ISSUER_LABEL_VALUES,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000))]
    #[arg(help_heading = heading::METRICS)]
    pub max_issuer_label_values: usize,

    /// `--max-watch-outage`.
    #[command(flatten)]
    #[command(next_help_heading = heading::READINESS)]
    pub readiness: ReadinessFlags,

    /// `--csi-lib-issue-labels`.
    #[command(flatten)]
    #[command(next_help_heading = heading::METRICS)]
    pub csi_lib: CsiLibFlags,

    /// `--selinux-volume-size`.
    #[command(flatten)]
    #[command(next_help_heading = heading::STORAGE)]
    pub selinux: SelinuxFlags,

    /// `--allow-non-loopback-endpoint`, `--allow-insecure-token-request`.
    #[command(flatten)]
    pub transport: TransportFlags,
}

/// Why the flags cannot be used together.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FlagError(String);

impl Cli {
    /// Turns the parsed flags into the driver's configuration. Panics never;
    /// flag combinations the Go driver refuses are refused by
    /// [`Cli::try_into_config`].
    pub fn into_config(self) -> Config {
        self.build()
    }

    /// Like [`Cli::into_config`], with the Go driver's start-up checks:
    /// readiness gates need `--continue-on-not-ready=true`, and the gate
    /// backoff must be valid.
    pub fn try_into_config(self) -> Result<Config, FlagError> {
        let config = self.build();
        if !config.pod_readiness_gates.is_empty() && !config.continue_on_not_ready {
            return Err(FlagError(
                "--pod-readiness-gate needs --continue-on-not-ready=true: a volume whose gates \
                 do not hold yet is mounted empty and filled once they hold"
                    .into(),
            ));
        }
        config.gate_backoff.validate().map_err(FlagError)?;
        let mut config = config;
        if let Some(path) = config.connection.token_file.take() {
            // Read once, here, so a missing or empty file stops the start
            // with the flag's name rather than leaving a driver without API.
            config.connection.token = Some(
                cmcsi_issuer_client::read_token_file(&path)
                    .map_err(|e| FlagError(e.to_string()))?,
            );
        }
        check_endpoint(
            &config.endpoint,
            config.transport.allow_non_loopback_endpoint,
        )
        .map_err(FlagError)?;
        Ok(config)
    }

    fn build(self) -> Config {
        let gate_backoff = self.gates.backoff();
        Config {
            node_id: self.node_id,
            endpoint: self.endpoint,
            driver_name: self.driver_name,
            data_root: self.data_root,
            kubeconfig: self.kubeconfig,
            log_level: self.log_level,
            log_format: self.log_format,
            use_token_request: self.use_token_request,
            continue_on_not_ready: self.continue_on_not_ready,
            metrics_bind_address: self.metrics_bind_address.0,
            kube_api_qps: self.kube_api_qps,
            kube_api_burst: self.kube_api_burst,
            key_pool_size: self.key_pool_size,
            max_concurrent_issuances: self.max_concurrent_issuances as usize,
            issuance_timeout: self.issuance_timeout,
            mount_tmpfs: self.mount_tmpfs,
            max_requests_per_volume: self.max_requests_per_volume as usize,
            recovery_spread: self.recovery_spread,
            renewal_backoff_initial: self.renewal_backoff_initial,
            renewal_backoff_max: self.renewal_backoff_max.max(self.renewal_backoff_initial),
            abandoned_sweep_interval: self.abandoned_volume_sweep_interval,
            events: self.events.into_config(),
            request_limits: RequestLimits {
                allow_cert_manager_annotations: self.tenants.allow_cert_manager_annotations,
                ..self.limits.into_limits()
            },
            trust: self.trust.into_options(),
            quarantine_grace: self.quarantine_grace,
            tmpfs_size: self.tmpfs_size,
            pod_readiness_gates: self.gates.pod_readiness_gates,
            gate_backoff,
            go_defaults: self.go_defaults,
            connection: self.connection.into_overrides(),
            max_watched_requests: self.max_watched_requests,
            watch_limits: self.watch.into_limits(),
            tenants: self.tenants.into_limits(),
            metrics_limits: self.metrics_serving.into_limits(),
            min_issuance_interval: self.min_issuance_interval,
            max_renewals_per_second: self.max_renewals_per_second,
            max_issuer_label_values: self.max_issuer_label_values,
            max_watch_outage: self.readiness.max_watch_outage,
            csi_lib_issue_labels: self.csi_lib.csi_lib_issue_labels,
            selinux_volume_size: self.selinux.selinux_volume_size,
            transport: self.transport.into_limits(),
        }
    }
}

#[cfg(test)]
mod tests;
