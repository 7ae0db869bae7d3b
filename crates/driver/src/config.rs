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
    /// Path of the Unix socket the kubelet talks to.
    pub endpoint: PathBuf,
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

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Log verbosity: a level name, or the Go driver's numeric `-v` levels.
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
        Ok(match s.to_ascii_lowercase().as_str() {
            "error" => LogLevel::Error,
            "warn" | "warning" => LogLevel::Warn,
            "info" | "0" | "1" => LogLevel::Info,
            "debug" | "2" | "3" => LogLevel::Debug,
            "trace" | "4" | "5" => LogLevel::Trace,
            _ => {
                return Err(format!(
                    "unknown log level `{s}`: use error, warn, info, debug or trace \
                     (or the Go driver's numbers 0-5)"
                ));
            }
        })
    }
}

/// Parses `--endpoint`: `unix:///abs/path`, `unix://relative/path` (as the Go
/// chart passes it, resolved against the working directory, like csi-lib
/// does) or a plain path.
pub fn parse_endpoint(s: &str) -> Result<PathBuf, String> {
    let path = if let Some(rest) = s.strip_prefix("unix://") {
        rest
    } else if s.contains("://") {
        return Err(format!(
            "unsupported endpoint `{s}`: the driver serves CSI only on a Unix socket; \
             use unix:///csi/csi.sock or a plain path"
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
    Ok(PathBuf::from(path))
}

/// An optional listen address (`--metrics-bind-address`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindAddress(pub Option<SocketAddr>);

/// Parses `--metrics-bind-address`: `0` (off), `:9402` (all interfaces) or
/// `host:port`.
pub fn parse_bind_address(s: &str) -> Result<BindAddress, String> {
    parse_socket_address(s).map(BindAddress)
}

fn parse_socket_address(s: &str) -> Result<Option<SocketAddr>, String> {
    let s = s.trim();
    if s.is_empty() || s == "0" {
        return Ok(None);
    }
    let full = if let Some(port) = s.strip_prefix(':') {
        format!("0.0.0.0:{port}")
    } else {
        s.to_string()
    };
    full.parse::<SocketAddr>().map(Some).map_err(|_| {
        format!(
            "invalid address `{s}`: use 0 to disable, :9402, or host:port such as 127.0.0.1:9402"
        )
    })
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
    version,
    about = "cert-manager CSI node driver: gives every Pod its own private key and certificate",
    args_override_self = true
)]
pub struct Cli {
    /// This node's name (in a DaemonSet: the spec.nodeName field reference).
    #[arg(long, env = "NODE_ID", value_parser = parse_node_id)]
    pub node_id: String,

    /// CSI endpoint: unix:///csi/csi.sock, unix://relative/path or a plain path.
    #[arg(long, env = "CSI_ENDPOINT", value_parser = parse_endpoint)]
    pub endpoint: PathBuf,

    /// Name this driver registers as; must match the CSIDriver object.
    #[arg(long, default_value = DEFAULT_DRIVER_NAME)]
    pub driver_name: String,

    /// Node directory for the driver's state; keys live on a tmpfs under it.
    #[arg(long, default_value = "/csi-data-dir")]
    pub data_root: PathBuf,

    /// Kubeconfig file (default: $KUBECONFIG, then the in-cluster config).
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// Log level: error, warn, info, debug, trace (or 0-5 as with the Go driver's -v).
    #[arg(long, short = 'v', default_value = "info")]
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

    /// Serve Prometheus metrics at /metrics on this address (:9402, host:port; 0 = off).
    #[arg(long, default_value = "0", value_parser = parse_bind_address)]
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

impl Cli {
    /// Turns the parsed flags into the driver's configuration.
    pub fn into_config(self) -> Config {
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
            max_watched_requests: self.max_watched_requests,
            min_issuance_interval: self.min_issuance_interval,
            max_renewals_per_second: self.max_renewals_per_second,
            max_issuer_label_values: self.max_issuer_label_values,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            parse_endpoint("unix:///csi/csi.sock").unwrap(),
            PathBuf::from("/csi/csi.sock")
        );
        assert_eq!(
            parse_endpoint("unix://plugin/csi.sock").unwrap(),
            PathBuf::from("plugin/csi.sock")
        );
        assert_eq!(
            parse_endpoint("/run/csi.sock").unwrap(),
            PathBuf::from("/run/csi.sock")
        );
        assert!(
            parse_endpoint("tcp://127.0.0.1:10000")
                .unwrap_err()
                .contains("Unix socket")
        );
        assert!(parse_endpoint("unix://").is_err());
    }

    #[test]
    fn log_levels() {
        assert_eq!("1".parse::<LogLevel>().unwrap(), LogLevel::Info);
        assert_eq!("DEBUG".parse::<LogLevel>().unwrap(), LogLevel::Debug);
        assert_eq!("5".parse::<LogLevel>().unwrap(), LogLevel::Trace);
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
            Some("0.0.0.0:9402".parse().unwrap())
        );
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
    fn missing_node_id_is_an_error() {
        let err = Cli::try_parse_from(["x", "--endpoint", "/tmp/x.sock"]).unwrap_err();
        assert!(err.to_string().contains("--node-id"), "{err}");
    }
}
