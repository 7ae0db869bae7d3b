//! Flags (`--...`, with environment variables for the downward API) and the
//! checked [`Config`] they become.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::error::SignerError;
use crate::signer_name::AllowedIssuers;

/// Default of `--max-certificate-lifetime`: 91 days, the API's own cap.
pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(7_862_400);

/// The signer's flags.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "cert-manager-pod-signer",
    version,
    about = "Signs Kubernetes PodCertificateRequests with cert-manager issuers."
)]
#[non_exhaustive]
pub struct Cli {
    /// Kubeconfig file; without it, KUBECONFIG, then the in-cluster configuration.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// This replica's identity in the Lease (the downward API's Pod name).
    #[arg(long, env = "POD_NAME")]
    pub pod_name: String,
    /// This replica's namespace (the downward API's); the Lease lives here unless --lease-namespace says otherwise.
    #[arg(long, env = "POD_NAMESPACE")]
    pub pod_namespace: String,
    /// Namespace of the leader-election Lease (default: POD_NAMESPACE).
    #[arg(long)]
    pub lease_namespace: Option<String>,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "cert-manager-pod-signer")]
    pub lease_name: String,
    /// How long a Lease is held without renewal before another replica takes it (seconds).
    #[arg(long, default_value_t = 15)]
    pub lease_duration_seconds: u32,
    /// How often the leader renews, and a candidate retries (milliseconds).
    #[arg(long, default_value_t = 2000)]
    pub lease_retry_period_ms: u64,
    /// Where /metrics, /healthz and /readyz are served.
    #[arg(long, default_value = "0.0.0.0:9403")]
    pub metrics_bind_address: String,
    /// Signer names that may be used (comma-separated or repeated); an entry
    /// may end in `*`. Default: every ClusterIssuer and Issuer.
    #[arg(long, value_delimiter = ',')]
    pub allowed_issuers: Vec<String>,
    /// The longest certificate lifetime asked of an issuer, whatever a
    /// request's maxExpirationSeconds allows (Go duration, e.g. 24h).
    #[arg(long, default_value = "2184h")]
    pub max_certificate_lifetime: String,
    /// Create each CertificateRequest as the Pod's ServiceAccount (needs
    /// `impersonate` on serviceaccounts; see docs/pod-certificates.md).
    #[arg(long)]
    pub impersonate_service_account: bool,
    /// How long a CA stays in the published ClusterTrustBundle after the
    /// issuer last used it (Go duration). Cover the longest lifetime issued.
    #[arg(long, default_value = "2184h")]
    pub trust_bundle_overlap: String,
    /// Requests being issued at once, over all namespaces.
    #[arg(long, default_value_t = 512)]
    pub max_in_flight: usize,
    /// Requests of one namespace being issued at once (so one namespace's
    /// flood cannot delay another's).
    #[arg(long, default_value_t = 128)]
    pub max_in_flight_per_namespace: usize,
    /// Requests waiting, over all namespaces; beyond it new ones wait for a relist.
    #[arg(long, default_value_t = 20_000)]
    pub max_queued: usize,
    /// Requests of one namespace waiting; beyond it that namespace's new ones
    /// wait for a relist.
    #[arg(long, default_value_t = 2_000)]
    pub max_queued_per_namespace: usize,
    /// How long to await one CertificateRequest before looking again later (Go duration).
    #[arg(long, default_value = "5m")]
    pub issuance_timeout: String,
    /// CertificateRequests of this signer the watch holds at most.
    #[arg(long, default_value_t = 20_000)]
    pub max_watched_requests: usize,
    /// Client-side rate limit of API calls per second (0: the default, 50).
    #[arg(long, default_value_t = 0.0)]
    pub kube_api_qps: f32,
    /// Burst of the client-side rate limit (0: the default, 100).
    #[arg(long, default_value_t = 0)]
    pub kube_api_burst: u32,
    /// Log filter (tracing's EnvFilter syntax).
    #[arg(long, default_value = "info")]
    pub log_level: String,
}

/// The checked configuration [`crate::run`] takes.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Kubeconfig file.
    pub kubeconfig: Option<PathBuf>,
    /// Lease identity.
    pub identity: String,
    /// Lease namespace.
    pub lease_namespace: String,
    /// Lease name.
    pub lease_name: String,
    /// Lease duration.
    pub lease_duration: Duration,
    /// Renew / retry period.
    pub retry_period: Duration,
    /// Metrics and health address.
    pub metrics_bind_address: SocketAddr,
    /// Which signer names may be used.
    pub allowed: AllowedIssuers,
    /// Lifetime cap.
    pub max_lifetime: Duration,
    /// Impersonate the Pod's ServiceAccount.
    pub impersonate: bool,
    /// Trust bundle overlap.
    pub trust_bundle_overlap: Duration,
    /// In-flight cap.
    pub max_in_flight: usize,
    /// Per-namespace in-flight cap.
    pub max_in_flight_per_namespace: usize,
    /// Queue cap.
    pub max_queued: usize,
    /// Per-namespace queue cap.
    pub max_queued_per_namespace: usize,
    /// Await deadline.
    pub issuance_timeout: Duration,
    /// Watched CertificateRequests cap.
    pub max_watched_requests: usize,
    /// API qps.
    pub qps: f32,
    /// API burst.
    pub burst: u32,
}

fn duration(flag: &'static str, s: &str) -> Result<Duration, SignerError> {
    parse_go_duration(s).ok_or_else(|| SignerError::Config {
        flag,
        problem: format!("{s:?} is not a duration; use Go's form, e.g. 90m, 24h, 2184h"),
    })
}

/// Parses a Go duration of hours, minutes, seconds and milliseconds (`1h30m`, `90s`).
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (Duration::from_millis(1), 2)
        } else if rest.starts_with('h') {
            (Duration::from_secs(3600), 1)
        } else if rest.starts_with('m') {
            (Duration::from_secs(60), 1)
        } else if rest.starts_with('s') {
            (Duration::from_secs(1), 1)
        } else {
            return None;
        };
        total = total.checked_add(unit.checked_mul(u32::try_from(n).ok()?)?)?;
        rest = &rest[len..];
    }
    Some(total)
}

impl Cli {
    /// Checks every flag, naming the one that is wrong.
    pub fn try_into_config(self) -> Result<Config, SignerError> {
        let allowed =
            AllowedIssuers::new(self.allowed_issuers).map_err(|problem| SignerError::Config {
                flag: "--allowed-issuers",
                problem,
            })?;
        let metrics_bind_address =
            self.metrics_bind_address
                .parse()
                .map_err(|e| SignerError::Config {
                    flag: "--metrics-bind-address",
                    problem: format!("{:?} is not HOST:PORT ({e})", self.metrics_bind_address),
                })?;
        let max_lifetime = duration("--max-certificate-lifetime", &self.max_certificate_lifetime)?;
        if max_lifetime < Duration::from_secs(3600) {
            return Err(SignerError::Config {
                flag: "--max-certificate-lifetime",
                problem: "must be at least 1h, the shortest lifetime the API accepts".into(),
            });
        }
        for (flag, v) in [
            ("--max-in-flight", self.max_in_flight),
            (
                "--max-in-flight-per-namespace",
                self.max_in_flight_per_namespace,
            ),
            ("--max-queued", self.max_queued),
            ("--max-queued-per-namespace", self.max_queued_per_namespace),
            ("--max-watched-requests", self.max_watched_requests),
        ] {
            if v == 0 {
                return Err(SignerError::Config {
                    flag,
                    problem: "must be at least 1".into(),
                });
            }
        }
        if self.pod_name.is_empty() || self.pod_namespace.is_empty() {
            return Err(SignerError::Config {
                flag: "--pod-name/--pod-namespace",
                problem: "set POD_NAME and POD_NAMESPACE from the downward API (or pass the flags)"
                    .into(),
            });
        }
        if self.lease_duration_seconds == 0 || self.lease_retry_period_ms == 0 {
            return Err(SignerError::Config {
                flag: "--lease-duration-seconds/--lease-retry-period-ms",
                problem: "must be positive".into(),
            });
        }
        Ok(Config {
            kubeconfig: self.kubeconfig,
            identity: self.pod_name,
            lease_namespace: self
                .lease_namespace
                .unwrap_or_else(|| self.pod_namespace.clone()),
            lease_name: self.lease_name,
            lease_duration: Duration::from_secs(u64::from(self.lease_duration_seconds)),
            retry_period: Duration::from_millis(self.lease_retry_period_ms),
            metrics_bind_address,
            allowed,
            max_lifetime,
            impersonate: self.impersonate_service_account,
            trust_bundle_overlap: duration("--trust-bundle-overlap", &self.trust_bundle_overlap)?,
            max_in_flight: self.max_in_flight,
            max_in_flight_per_namespace: self.max_in_flight_per_namespace,
            max_queued: self.max_queued,
            max_queued_per_namespace: self.max_queued_per_namespace,
            issuance_timeout: duration("--issuance-timeout", &self.issuance_timeout)?,
            max_watched_requests: self.max_watched_requests,
            qps: self.kube_api_qps,
            burst: self.kube_api_burst,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_go_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(
            parse_go_duration("2184h"),
            Some(Duration::from_secs(2184 * 3600))
        );
        assert_eq!(parse_go_duration("1d"), None);
        assert_eq!(parse_go_duration(""), None);
    }

    #[test]
    fn bad_flags_name_themselves() {
        let cli = Cli::parse_from([
            "x",
            "--pod-name=a",
            "--pod-namespace=b",
            "--max-certificate-lifetime=10m",
        ]);
        let e = cli.try_into_config().unwrap_err().to_string();
        assert!(e.contains("--max-certificate-lifetime"), "{e}");
        let cli = Cli::parse_from([
            "x",
            "--pod-name=a",
            "--pod-namespace=b",
            "--allowed-issuers=example.com/x",
        ]);
        let e = cli.try_into_config().unwrap_err().to_string();
        assert!(e.contains("--allowed-issuers"), "{e}");
        let cli = Cli::parse_from(["x", "--pod-name=a", "--pod-namespace=b"]);
        let c = cli.try_into_config().unwrap();
        assert_eq!(c.lease_namespace, "b");
    }
}
