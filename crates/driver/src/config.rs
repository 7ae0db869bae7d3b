//! The driver's configuration: one struct, filled from command-line flags
//! (with the environment fallbacks the Go driver's chart relies on).

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

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
    about = "cert-manager CSI node driver: gives every Pod its own private key and certificate"
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
    fn missing_node_id_is_an_error() {
        let err = Cli::try_parse_from(["x", "--endpoint", "/tmp/x.sock"]).unwrap_err();
        assert!(err.to_string().contains("--node-id"), "{err}");
    }
}
