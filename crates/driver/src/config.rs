//! The driver's configuration: one struct, filled from command-line flags
//! (with the environment fallbacks the Go driver's chart relies on).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser, ValueEnum};

/// The default CSI driver name, as registered by the `CSIDriver` object.
pub const DEFAULT_DRIVER_NAME: &str = "csi.cert-manager.io";

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
    /// A volume is issued at most once per this interval.
    pub min_issuance_interval: Duration,
    /// Node-wide renewals started per second (first issuances are not limited).
    pub max_renewals_per_second: f64,
    /// Distinct issuers (name, kind, group) the per-issuer counters label;
    /// further ones are counted under `other`.
    pub max_issuer_label_values: usize,
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

/// What one publish may ask of the node. Each limit exceeded is an
/// `INVALID_ARGUMENT` that names its flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLimits {
    /// Most bytes of the volume context, keys and values together.
    pub max_volume_context_bytes: usize,
    /// Most SANs of all kinds together.
    pub max_sans: usize,
    /// Most `/`-separated components in one file name.
    pub max_file_name_depth: usize,
    /// Most bytes in one file name.
    pub max_file_name_bytes: usize,
    /// Most RSA keys above 4096 bits generated at once.
    pub max_concurrent_large_rsa: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            max_volume_context_bytes: DEFAULT_MAX_VOLUME_CONTEXT_BYTES,
            max_sans: cmcsi_attrs::limits::MAX_SANS_TOTAL,
            max_file_name_depth: cmcsi_attrs::limits::DEFAULT_MAX_FILE_PATH_DEPTH,
            max_file_name_bytes: cmcsi_attrs::limits::DEFAULT_MAX_FILE_PATH_BYTES,
            max_concurrent_large_rsa: 1,
        }
    }
}

/// Default of `--max-volume-context-bytes` (256 KiB).
pub const DEFAULT_MAX_VOLUME_CONTEXT_BYTES: usize = 256 * 1024;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
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

/// Parses `--endpoint`: `unix:///abs/path`, `unix://relative/path` (as the Go
/// chart passes it, resolved against the working directory, like csi-lib
/// does), a plain path, or `tcp://host:port`.
pub fn parse_endpoint(s: &str) -> Result<Endpoint, String> {
    if let Some(addr) = s.strip_prefix("tcp://") {
        let addr = addr.trim_end_matches('/');
        let ok = addr
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
        if !ok {
            return Err(format!(
                "endpoint `{s}` is not tcp://host:port: use e.g. tcp://127.0.0.1:10000"
            ));
        }
        return Ok(Endpoint::Tcp(addr.to_string()));
    }
    let path = if let Some(rest) = s.strip_prefix("unix://") {
        rest
    } else if s.contains("://") {
        return Err(format!(
            "unsupported endpoint `{s}`: use unix:///csi/csi.sock, a plain path, \
             or tcp://host:port"
        ));
    } else {
        s
    };
    if path.is_empty() {
        return Err(format!(
            "endpoint `{s}` names no socket path: use e.g. unix:///csi/csi.sock"
        ));
    }
    if path.contains('\0') {
        return Err("endpoint contains a NUL byte".to_string());
    }
    Ok(Endpoint::Unix(PathBuf::from(path)))
}

/// An optional listen address (`--metrics-bind-address`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindAddress(pub Option<SocketAddr>);

/// Parses `--metrics-bind-address`: `0` (off), `:9402` (all interfaces,
/// IPv6 and IPv4: `[::]:9402`, falling back to `0.0.0.0` where the node has
/// no IPv6), `host:port` with an IPv4 address, `[ipv6]:port`, or a host name
/// (resolved once, at start).
pub fn parse_bind_address(s: &str) -> Result<BindAddress, String> {
    parse_socket_address(s).map(BindAddress)
}

fn parse_socket_address(s: &str) -> Result<Option<SocketAddr>, String> {
    use std::net::ToSocketAddrs;
    let s = s.trim();
    if s.is_empty() || s == "0" {
        return Ok(None);
    }
    let hint = "use 0 to disable, :9402, [::]:9402, or host:port such as 127.0.0.1:9402";
    if let Some(port) = s.strip_prefix(':') {
        let port: u16 = port
            .parse()
            .map_err(|_| format!("invalid address `{s}`: `{port}` is not a port; {hint}"))?;
        return Ok(Some(SocketAddr::from((
            std::net::Ipv6Addr::UNSPECIFIED,
            port,
        ))));
    }
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(Some(addr));
    }
    match s.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => s
            .to_socket_addrs()
            .map_err(|e| format!("invalid address `{s}`: cannot resolve `{host}`: {e}; {hint}"))?
            .next()
            .map(Some)
            .ok_or_else(|| format!("invalid address `{s}`: `{host}` has no address; {hint}")),
        _ => Err(format!("invalid address `{s}`: {hint}")),
    }
}

/// Parses a duration in Go's syntax (`60s`, `1m30s`, `2h`), as the Go
/// driver's flags do.
pub fn parse_duration_flag(s: &str) -> Result<Duration, String> {
    let d = cmcsi_attrs::parse_go_duration(s).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err(format!("`{s}` must be longer than zero"));
    }
    Ok(d)
}

/// A Go duration flag where `0` means "off".
pub fn parse_interval_flag(s: &str) -> Result<Duration, String> {
    if s.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    cmcsi_attrs::parse_go_duration(s).map_err(|e| e.to_string())
}

/// A Go duration flag that may be `0` (`--gate-backoff-cap`).
fn parse_any_duration(s: &str) -> Result<Duration, String> {
    parse_interval_flag(s)
}

fn parse_node_id(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("the node id must not be empty: pass the node's name \
                    (in a DaemonSet: the spec.nodeName field reference)"
            .to_string());
    }
    Ok(s.to_string())
}

/// Command-line flags of `cert-manager-csi-driver`.
#[derive(Debug, Parser)]
#[command(
    name = "cert-manager-csi-driver",
    version = crate::build::VERSION_LINE,
    about = "cert-manager CSI node driver: gives every Pod its own private key and certificate",
    args_override_self = true
)]
pub struct Cli {
    /// This node's name (in a DaemonSet: the spec.nodeName field reference).
    #[arg(long, env = "NODE_ID", value_parser = parse_node_id)]
    pub node_id: String,

    /// CSI endpoint: unix:///csi/csi.sock, unix://relative/path, a plain path,
    /// or tcp://host:port (no TLS: loopback or a private network only).
    #[arg(long, env = "CSI_ENDPOINT", value_parser = parse_endpoint)]
    pub endpoint: Endpoint,

    /// Name this driver registers as; must match the CSIDriver object.
    #[arg(long, default_value = DEFAULT_DRIVER_NAME)]
    pub driver_name: String,

    /// Node directory for the driver's state; keys live on a tmpfs under it.
    #[arg(long, default_value = "/csi-data-dir")]
    pub data_root: PathBuf,

    /// Kubeconfig file (default: $KUBECONFIG, then the in-cluster config).
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// Log level: error, warn, info, debug, trace, or a klog -v number as the
    /// Go driver takes (0-1 info, 2-4 debug, 5 and above trace).
    #[arg(
        long,
        short = 'v',
        default_value = "info",
        allow_negative_numbers = true
    )]
    pub log_level: LogLevel,

    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Create CertificateRequests as the Pod's ServiceAccount, with the token the
    /// kubelet passes (needs the token-request CSIDriver variant).
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value_t = false, default_missing_value = "true")]
    pub use_token_request: bool,

    /// Publish at once and issue in the background; the Pod starts before its
    /// certificate exists and must tolerate missing files for a moment.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value_t = false, default_missing_value = "true")]
    pub continue_on_not_ready: bool,

    /// Serve Prometheus metrics at /metrics on this address (see `parse_bind_address`).
    #[arg(
        long,
        default_value = "0",
        value_parser = parse_bind_address,
        help = "Serve Prometheus metrics at /metrics on this address: :9402 (all interfaces, \
                IPv6 and IPv4), [::1]:9402, 127.0.0.1:9402, localhost:9402; 0 = off"
    )]
    pub metrics_bind_address: BindAddress,

    /// Requests per second towards the Kubernetes API (0 = built-in default of 50).
    #[arg(long, default_value_t = 0.0)]
    pub kube_api_qps: f32,

    /// Burst of requests towards the Kubernetes API (0 = built-in default of 100).
    #[arg(long, default_value_t = 0)]
    pub kube_api_burst: u32,

    /// RSA-2048 keys generated ahead of demand and kept in memory (0 = no pool).
    #[arg(long, default_value_t = 4)]
    pub key_pool_size: usize,

    /// Issuances in flight at once; first issuances go ahead of renewals.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max_concurrent_issuances: u32,

    /// How long one publish waits for cert-manager to sign (Go duration, e.g. 60s).
    #[arg(long, default_value = "60s", value_parser = parse_duration_flag)]
    pub issuance_timeout: Duration,

    /// Mount a tmpfs on `DATA_ROOT/inmemfs` so keys never touch a disk.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value_t = true, default_missing_value = "true")]
    pub mount_tmpfs: bool,

    /// CertificateRequests kept per volume; older ones are deleted before each issuance.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_requests_per_volume: u32,

    /// After a restart, overdue renewals are spread over this window (Go duration).
    #[arg(long, default_value = "30s", value_parser = parse_duration_flag)]
    pub recovery_spread: Duration,

    /// Delay before retrying a failed renewal; it doubles with each further
    /// failure, plus up to 50% jitter (Go duration; the Go driver's 30s).
    #[arg(long, default_value = "30s", value_parser = parse_duration_flag)]
    pub renewal_backoff_initial: Duration,

    /// The renewal retry delay stops growing here (Go duration).
    #[arg(long, default_value = "5m", value_parser = parse_duration_flag)]
    pub renewal_backoff_max: Duration,

    /// How often to remove volumes that were never issued and whose Pod is
    /// gone (the kubelet never unpublishes a volume whose publish failed);
    /// always done at start; 0 = only at start (Go duration).
    #[arg(long, default_value = "5m", value_parser = parse_interval_flag)]
    pub abandoned_volume_sweep_interval: Duration,

    /// Record Kubernetes Events (events.k8s.io/v1) on the Pod when its
    /// certificate cannot be issued or renewed, is overdue or expired, and
    /// when it is renewed again after failures.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value_t = true, default_missing_value = "true")]
    pub events: bool,

    /// At most one Event per volume and reason in this interval, however often
    /// issuance is retried; repeats are counted in the next one (Go duration).
    #[arg(long, default_value = "5m", value_parser = parse_duration_flag)]
    pub event_interval: Duration,

    /// Events waiting to be sent to the API; when full, new ones are dropped
    /// (issuance never waits for an Event).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub event_queue_size: u32,
    /// Most bytes of one volume's attributes (keys and values together, the
    /// kubelet's included); a larger publish is refused before anything is stored
    /// (at most 512 KiB, so the stored metadata stays readable).
    #[arg(long, default_value_t = DEFAULT_MAX_VOLUME_CONTEXT_BYTES as u32, value_parser = clap::value_parser!(u32).range(4096..=512 * 1024))]
    pub max_volume_context_bytes: u32,

    /// Most SANs (dns-names, ip-sans and uri-sans together) in one volume (at most 256).
    #[arg(long, default_value_t = cmcsi_attrs::limits::MAX_SANS_TOTAL as u32, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub max_sans: u32,

    /// Most `/`-separated components in one file-name attribute (certs/tls.crt has 2).
    #[arg(long, default_value_t = cmcsi_attrs::limits::DEFAULT_MAX_FILE_PATH_DEPTH as u32, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub max_file_name_depth: u32,

    /// Most bytes in one file-name attribute.
    #[arg(long, default_value_t = cmcsi_attrs::limits::DEFAULT_MAX_FILE_PATH_BYTES as u32, value_parser = clap::value_parser!(u32).range(16..=4096))]
    pub max_file_name_bytes: u32,

    /// Most RSA keys above 4096 bits (key-size 8192) generated at once; more wait.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub max_concurrent_large_rsa: u32,

    /// Unusable volume directories set aside at start (`inmemfs/.quarantine`) are
    /// removed, keys included, by the sweep once they are older than this (Go duration).
    #[arg(long, default_value = "24h", value_parser = parse_duration_flag)]
    pub quarantine_grace: Duration,

    /// Size of the tmpfs mounted on `DATA_ROOT/inmemfs` (bytes, or with Ki, Mi, Gi); its
    /// pages count against the container's memory limit, so keep it below that.
    #[arg(long, default_value = "32Mi", value_parser = parse_size_flag)]
    pub tmpfs_size: u64,
    // ---- Go driver compatibility: readiness gates, Go defaults, kubectl's connection flags ----
    /// A condition the Pod must meet before its volume is issued (repeatable; all
    /// must hold): pod-ip:any|ipv4|ipv6, pod-condition:Type[=True|False|Unknown]
    /// (default True), pod-annotation:key (non-empty value). Needs
    /// --continue-on-not-ready=true: the volume is mounted empty and filled once
    /// the gates hold. Starts a watch of this node's Pods.
    #[arg(long = "pod-readiness-gate", value_parser = crate::gates::parse_gate)]
    pub pod_readiness_gates: Vec<crate::gates::Gate>,

    /// First delay between checks of a volume's gates (Go duration, > 0; default 1s).
    /// Setting any --gate-backoff-* flag sets all four (the others keep their defaults).
    #[arg(long, value_parser = parse_any_duration)]
    pub gate_backoff_duration: Option<Duration>,

    /// Each delay between gate checks is the previous times this (>= 1; default 2).
    #[arg(long)]
    pub gate_backoff_factor: Option<f64>,

    /// Up to this fraction of a gate delay is added at random (0 to 1; default 0.5).
    #[arg(long)]
    pub gate_backoff_jitter: Option<f64>,

    /// Gate delays stop growing here (Go duration; 0 = no cap, else >= the duration; default 10s).
    #[arg(long, value_parser = parse_any_duration)]
    pub gate_backoff_cap: Option<Duration>,

    /// New volumes that do not name their files or lifetime get the Go driver's
    /// defaults: tls.crt, tls.key, ca.crt, 2160h, LegacyRC2 PKCS#12 (and its
    /// tolerance of unknown attributes), instead of crt.pem, key.pem, ca.pem, 720h.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value_t = false, default_missing_value = "true")]
    pub go_defaults: bool,

    /// kubectl: the kubeconfig context to use.
    #[arg(long)]
    pub context: Option<String>,

    /// kubectl: the kubeconfig cluster to use.
    #[arg(long)]
    pub cluster: Option<String>,

    /// kubectl: the kubeconfig user to use.
    #[arg(long)]
    pub user: Option<String>,

    /// kubectl: the API server's address (overrides the kubeconfig's or in-cluster one).
    #[arg(long, short = 's')]
    pub server: Option<String>,

    /// kubectl: a bearer token for the API server (never logged; prefer a kubeconfig).
    #[arg(long, value_parser = parse_secret)]
    pub token: Option<cmcsi_issuer_client::SecretString>,

    /// kubectl: a PEM file of CA certificates for the API server.
    #[arg(long)]
    pub certificate_authority: Option<PathBuf>,

    /// kubectl: a PEM client certificate file.
    #[arg(long)]
    pub client_certificate: Option<PathBuf>,

    /// kubectl: the client certificate's PEM key file.
    #[arg(long)]
    pub client_key: Option<PathBuf>,

    /// kubectl: do not check the API server's certificate (insecure).
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value_t = false, default_missing_value = "true")]
    pub insecure_skip_tls_verify: bool,

    /// kubectl: the name to check the API server's certificate for.
    #[arg(long)]
    pub tls_server_name: Option<String>,

    /// kubectl: the user to impersonate.
    #[arg(long = "as")]
    pub as_user: Option<String>,

    /// kubectl: a group to impersonate (repeatable).
    #[arg(long = "as-group")]
    pub as_group: Vec<String>,

    /// kubectl: the uid to impersonate.
    #[arg(long = "as-uid")]
    pub as_uid: Option<String>,

    /// kubectl: the timeout of each API request (Go duration, or a number of
    /// seconds; 0 = none, the default). Watches are renewed by the driver itself.
    #[arg(long, default_value = "0", value_parser = parse_request_timeout)]
    pub request_timeout: Duration,
    /// Most CertificateRequests the node-wide watch holds; further ones are
    /// ignored (counted in certmanager_csi_watch_ignored_requests, logged once).
    #[arg(long, default_value_t = cmcsi_issuer_client::DEFAULT_MAX_WATCHED_REQUESTS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub max_watched_requests: usize,

    /// A volume is issued at most once per this interval, however short its
    /// certificate's duration; a certificate already due when issued is
    /// renewed after this interval (Go duration, at least 1s).
    #[arg(long, default_value = "10s", value_parser = parse_min_issuance_interval)]
    pub min_issuance_interval: Duration,

    /// Renewals started per second on this node, so that first issuances
    /// keep the API budget under load (first issuances are not limited).
    #[arg(long, default_value_t = 5.0, value_parser = parse_renewal_rate)]
    pub max_renewals_per_second: f64,

    /// Distinct issuers (name, kind, group) the per-issuer counters carry as
    /// labels; the issuer names come from Pods, so further ones are counted
    /// under issuer_name="other" (and kind and group "other").
    #[arg(long, default_value_t = crate::metrics::DEFAULT_MAX_ISSUER_LABEL_VALUES,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000))]
    pub max_issuer_label_values: usize,
}

fn parse_min_issuance_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration_flag(s)?;
    if d < Duration::from_secs(1) {
        return Err(format!(
            "--min-issuance-interval must be at least 1s (got {s}): a shorter floor lets one \
             volume create requests in a tight loop"
        ));
    }
    Ok(d)
}

fn parse_renewal_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && (0.01..=10_000.0).contains(&r) => Ok(r),
        _ => Err(format!(
            "--max-renewals-per-second must be a number from 0.01 to 10000 (got {s})"
        )),
    }
}

/// Parses a size: bytes, or a number with `Ki`, `Mi` or `Gi` (Kubernetes'
/// binary suffixes), at least 1 MiB.
pub fn parse_size_flag(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, ""),
    };
    let mult: u64 = match unit {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        _ => {
            return Err(format!(
                "`{s}`: use bytes or a number with Ki, Mi or Gi, e.g. 32Mi"
            ));
        }
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}`: use bytes or a number with Ki, Mi or Gi, e.g. 32Mi"))?;
    let bytes = n
        .checked_mul(mult)
        .ok_or_else(|| format!("`{s}` is too large"))?;
    if bytes < 1 << 20 {
        return Err(format!("`{s}` is below the smallest tmpfs size of 1Mi"));
    }
    Ok(bytes)
}

/// `--request-timeout`: kubectl takes `30s`, `1m` or a bare number of seconds.
fn parse_request_timeout(s: &str) -> Result<Duration, String> {
    if let Ok(n) = s.trim().parse::<u64>() {
        return Ok(Duration::from_secs(n));
    }
    parse_interval_flag(s)
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
        Ok(config)
    }

    fn build(self) -> Config {
        let defaults = crate::gates::GateBackoff::default();
        let gate_backoff = crate::gates::GateBackoff {
            duration: self.gate_backoff_duration.unwrap_or(defaults.duration),
            factor: self.gate_backoff_factor.unwrap_or(defaults.factor),
            jitter: self.gate_backoff_jitter.unwrap_or(defaults.jitter),
            cap: self.gate_backoff_cap.unwrap_or(defaults.cap),
        };
        let connection = {
            let mut c = cmcsi_issuer_client::ConnectionOverrides::default();
            c.context = self.context;
            c.cluster = self.cluster;
            c.user = self.user;
            c.server = self.server;
            c.token = self.token;
            c.certificate_authority = self.certificate_authority;
            c.client_certificate = self.client_certificate;
            c.client_key = self.client_key;
            c.insecure_skip_tls_verify = self.insecure_skip_tls_verify;
            c.tls_server_name = self.tls_server_name;
            c.impersonate = self.as_user;
            c.impersonate_groups = self.as_group;
            c.impersonate_uid = self.as_uid;
            c.request_timeout = (!self.request_timeout.is_zero()).then_some(self.request_timeout);
            c
        };
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
            events: crate::events::EventsConfig {
                enabled: self.events,
                interval: self.event_interval,
                queue_size: self.event_queue_size as usize,
            },
            request_limits: RequestLimits {
                max_volume_context_bytes: self.max_volume_context_bytes as usize,
                max_sans: self.max_sans as usize,
                max_file_name_depth: self.max_file_name_depth as usize,
                max_file_name_bytes: self.max_file_name_bytes as usize,
                max_concurrent_large_rsa: self.max_concurrent_large_rsa as usize,
            },
            quarantine_grace: self.quarantine_grace,
            tmpfs_size: self.tmpfs_size,
            pod_readiness_gates: self.pod_readiness_gates,
            gate_backoff,
            go_defaults: self.go_defaults,
            connection,
            max_watched_requests: self.max_watched_requests,
            min_issuance_interval: self.min_issuance_interval,
            max_renewals_per_second: self.max_renewals_per_second,
            max_issuer_label_values: self.max_issuer_label_values,
        }
    }
}

/// `--token`: kept as a secret from the start, so no `Debug` shows it.
fn parse_secret(s: &str) -> Result<cmcsi_issuer_client::SecretString, String> {
    Ok(cmcsi_issuer_client::SecretString::from(s.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let unix = |p: &str| Endpoint::Unix(PathBuf::from(p));
        assert_eq!(
            parse_endpoint("unix:///csi/csi.sock").unwrap(),
            unix("/csi/csi.sock")
        );
        assert_eq!(
            parse_endpoint("unix://plugin/csi.sock").unwrap(),
            unix("plugin/csi.sock")
        );
        assert_eq!(
            parse_endpoint("/run/csi.sock").unwrap(),
            unix("/run/csi.sock")
        );
        assert_eq!(
            parse_endpoint("tcp://127.0.0.1:10000").unwrap(),
            Endpoint::Tcp("127.0.0.1:10000".into())
        );
        assert_eq!(
            parse_endpoint("tcp://[::1]:10000").unwrap(),
            Endpoint::Tcp("[::1]:10000".into())
        );
        assert!(
            parse_endpoint("tcp://nowhere")
                .unwrap_err()
                .contains("host:port")
        );
        assert!(
            parse_endpoint("http://x")
                .unwrap_err()
                .contains("tcp://host:port")
        );
        assert!(parse_endpoint("unix://").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size_flag("32Mi").unwrap(), 32 << 20);
        assert_eq!(parse_size_flag("2097152").unwrap(), 2 << 20);
        assert_eq!(parse_size_flag("1Gi").unwrap(), 1 << 30);
        assert!(parse_size_flag("10").unwrap_err().contains("1Mi"));
        assert!(
            parse_size_flag("32MB")
                .unwrap_err()
                .contains("Ki, Mi or Gi")
        );
    }

    #[test]
    fn log_levels() {
        assert_eq!("1".parse::<LogLevel>().unwrap(), LogLevel::Info);
        assert_eq!("DEBUG".parse::<LogLevel>().unwrap(), LogLevel::Debug);
        assert_eq!("5".parse::<LogLevel>().unwrap(), LogLevel::Trace);
        assert_eq!("4".parse::<LogLevel>().unwrap(), LogLevel::Debug);
        assert_eq!("10".parse::<LogLevel>().unwrap(), LogLevel::Trace);
        assert_eq!("-1".parse::<LogLevel>().unwrap(), LogLevel::Info);
        assert_eq!("0".parse::<LogLevel>().unwrap(), LogLevel::Info);
        assert!("loud".parse::<LogLevel>().is_err());
    }

    #[test]
    fn flags_parse_with_defaults() {
        let cli = Cli::try_parse_from([
            "cert-manager-csi-driver",
            "--node-id",
            "node-a",
            "--endpoint",
            "unix:///tmp/x.sock",
        ])
        .unwrap();
        let c = cli.into_config();
        assert_eq!(c.driver_name, DEFAULT_DRIVER_NAME);
        assert_eq!(c.data_root, PathBuf::from("/csi-data-dir"));
        assert_eq!(c.log_format, LogFormat::Text);
    }

    #[test]
    fn bind_addresses() {
        assert_eq!(parse_socket_address("0").unwrap(), None);
        assert_eq!(
            parse_socket_address(":9402").unwrap(),
            Some("[::]:9402".parse().unwrap())
        );
        assert_eq!(
            parse_socket_address("[::]:9402").unwrap(),
            Some("[::]:9402".parse().unwrap())
        );
        assert_eq!(
            parse_socket_address("localhost:9402")
                .unwrap()
                .unwrap()
                .port(),
            9402
        );
        assert!(parse_socket_address(":x").unwrap_err().contains("port"));
        assert_eq!(
            parse_bind_address("127.0.0.1:1").unwrap(),
            BindAddress(Some("127.0.0.1:1".parse().unwrap()))
        );
        assert!(
            parse_socket_address("nowhere")
                .unwrap_err()
                .contains(":9402")
        );
    }

    #[test]
    fn boolean_flags_take_go_forms() {
        let base = ["x", "--node-id", "n", "--endpoint", "/s"];
        let c = Cli::try_parse_from(base).unwrap().into_config();
        assert!(!c.use_token_request && c.mount_tmpfs && !c.continue_on_not_ready);
        assert_eq!(c.issuance_timeout, Duration::from_secs(60));
        assert_eq!(c.renewal_backoff_initial, Duration::from_secs(30));
        assert_eq!(c.renewal_backoff_max, Duration::from_secs(300));
        assert_eq!(c.abandoned_sweep_interval, Duration::from_secs(300));
        let mut args = base.to_vec();
        args.extend([
            "--use-token-request",
            "--mount-tmpfs=false",
            "--continue-on-not-ready=true",
            "--abandoned-volume-sweep-interval=0",
        ]);
        let c = Cli::try_parse_from(args).unwrap().into_config();
        assert!(c.use_token_request && !c.mount_tmpfs && c.continue_on_not_ready);
        assert_eq!(c.abandoned_sweep_interval, Duration::ZERO);
        let mut args = base.to_vec();
        args.push("--abandoned-volume-sweep-interval=soon");
        let err = Cli::try_parse_from(args).unwrap_err().to_string();
        assert!(err.contains("abandoned-volume-sweep-interval"), "{err}");
    }

    #[test]
    fn event_flags() {
        let base = ["x", "--node-id", "n", "--endpoint", "/s"];
        let c = Cli::try_parse_from(base).unwrap().into_config();
        assert_eq!(c.events, crate::events::EventsConfig::default());
        let mut args = base.to_vec();
        args.extend([
            "--events=false",
            "--event-interval=1m",
            "--event-queue-size=8",
        ]);
        let c = Cli::try_parse_from(args).unwrap().into_config();
        assert!(!c.events.enabled);
        assert_eq!(c.events.interval, Duration::from_secs(60));
        assert_eq!(c.events.queue_size, 8);
    }

    #[test]
    fn missing_node_id_is_an_error() {
        let err = Cli::try_parse_from(["x", "--endpoint", "/tmp/x.sock"]).unwrap_err();
        assert!(err.to_string().contains("--node-id"), "{err}");
    }

    /// The container args the Go chart (v0.16) renders with every option set.
    pub(crate) const GO_CHART_ARGS: &[&str] = &[
        "cert-manager-csi-driver",
        "--log-level=5",
        "--driver-name=csi.cert-manager.io",
        "--node-id=node-a",
        "--endpoint=unix://plugin/csi.sock",
        "--data-root=csi-data-dir",
        "--use-token-request=false",
        "--continue-on-not-ready=true",
        "--kube-api-qps=20",
        "--kube-api-burst=40",
        "--pod-readiness-gate=pod-ip:any",
        "--pod-readiness-gate=pod-condition:Ready",
        "--gate-backoff-duration=2s",
        "--gate-backoff-factor=1.5",
        "--gate-backoff-jitter=0.1",
        "--gate-backoff-cap=20s",
        "--metrics-bind-address=:9402",
    ];

    #[test]
    fn the_go_charts_args_parse_with_their_meaning() {
        let c = Cli::try_parse_from(GO_CHART_ARGS)
            .unwrap()
            .try_into_config()
            .unwrap();
        assert_eq!(c.log_level, LogLevel::Trace);
        assert_eq!(c.pod_readiness_gates.len(), 2);
        assert_eq!(c.gate_backoff.duration, Duration::from_secs(2));
        assert_eq!(c.gate_backoff.factor, 1.5);
        assert_eq!(c.gate_backoff.jitter, 0.1);
        assert_eq!(c.gate_backoff.cap, Duration::from_secs(20));
        assert_eq!(c.kube_api_qps, 20.0);
        assert_eq!(c.metrics_bind_address, Some("[::]:9402".parse().unwrap()));
        assert!(c.continue_on_not_ready && !c.go_defaults);
    }

    #[test]
    fn gates_need_continue_on_not_ready_and_a_valid_backoff() {
        let base = ["x", "--node-id", "n", "--endpoint", "/s"];
        let mut args = base.to_vec();
        args.push("--pod-readiness-gate=pod-ip:any");
        let err = Cli::try_parse_from(&args)
            .unwrap()
            .try_into_config()
            .unwrap_err();
        assert!(
            err.to_string().contains("--continue-on-not-ready=true"),
            "{err}"
        );
        args.push("--continue-on-not-ready");
        args.push("--gate-backoff-cap=500ms");
        let err = Cli::try_parse_from(&args)
            .unwrap()
            .try_into_config()
            .unwrap_err();
        assert!(err.to_string().contains("--gate-backoff-cap"), "{err}");
        let mut args = base.to_vec();
        args.push("--pod-readiness-gate=pod-ip:ipv5");
        let err = Cli::try_parse_from(&args).unwrap_err().to_string();
        assert!(err.contains("any, ipv4 or ipv6"), "{err}");
        let c = Cli::try_parse_from(base)
            .unwrap()
            .try_into_config()
            .unwrap();
        assert_eq!(c.gate_backoff, crate::gates::GateBackoff::default());
    }

    #[test]
    fn kubectl_connection_flags_are_accepted() {
        let c = Cli::try_parse_from([
            "x",
            "--node-id",
            "n",
            "--endpoint",
            "/s",
            "--kubeconfig=/k",
            "--context=c",
            "--cluster=cl",
            "--user=u",
            "-s",
            "https://10.0.0.1:6443",
            "--token=sekret",
            "--certificate-authority=/ca.pem",
            "--client-certificate=/c.pem",
            "--client-key=/k.pem",
            "--insecure-skip-tls-verify",
            "--tls-server-name=api",
            "--as=alice",
            "--as-group=g1",
            "--as-group=g2",
            "--as-uid=42",
            "--request-timeout=30",
            "-v",
            "3",
        ])
        .unwrap()
        .try_into_config()
        .unwrap();
        let k = &c.connection;
        assert_eq!(k.server.as_deref(), Some("https://10.0.0.1:6443"));
        assert_eq!(k.impersonate_groups, ["g1", "g2"]);
        assert_eq!(k.request_timeout, Some(Duration::from_secs(30)));
        assert!(k.insecure_skip_tls_verify);
        assert_eq!(c.log_level, LogLevel::Debug);
        let shown = format!("{c:?}");
        assert!(!shown.contains("sekret"), "{shown}");
        let cli =
            Cli::try_parse_from(["x", "--node-id", "n", "--endpoint", "/s", "--token=sekret"])
                .unwrap();
        let shown = format!("{cli:?}");
        assert!(!shown.contains("sekret"), "{shown}");
    }

    #[test]
    fn help_lists_every_go_flag() {
        let help = <Cli as clap::CommandFactory>::command()
            .render_long_help()
            .to_string();
        for flag in [
            "-v, --log-level",
            "--node-id",
            "--endpoint",
            "--driver-name",
            "--data-root",
            "--use-token-request",
            "--metrics-bind-address",
            "--continue-on-not-ready",
            "--kube-api-qps",
            "--kube-api-burst",
            "--pod-readiness-gate",
            "--gate-backoff-duration",
            "--gate-backoff-factor",
            "--gate-backoff-jitter",
            "--gate-backoff-cap",
            "--kubeconfig",
            "--context",
            "--cluster",
            "--user",
            "-s, --server",
            "--token",
            "--certificate-authority",
            "--client-certificate",
            "--client-key",
            "--insecure-skip-tls-verify",
            "--tls-server-name",
            "--as ",
            "--as-group",
            "--as-uid",
            "--request-timeout",
            "--go-defaults",
        ] {
            assert!(help.contains(flag), "--help lacks {flag}");
        }
    }
}
