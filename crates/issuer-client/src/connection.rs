//! Building API clients: from a kubeconfig or the in-cluster environment,
//! rate limited, and per-Pod token clients over the same server and TLS settings.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use kube::client::ClientBuilder;
use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig};

use crate::error::ConfigError;
use crate::ratelimit::RateLimit;
use crate::token::SecretToken;

/// The driver's connection to the API server: its client, the configuration
/// it came from (for per-Pod token clients), and the shared rate limit.
#[derive(Clone)]
pub struct ApiConnection {
    client: kube::Client,
    config: kube::Config,
    limit: RateLimit,
    observer: Option<Arc<dyn ApiObserver>>,
}

impl std::fmt::Debug for ApiConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConnection")
            .field("server", &self.config.cluster_url)
            .field("qps", &self.limit.qps())
            .field("burst", &self.limit.burst())
            .finish_non_exhaustive()
    }
}

/// Loads the API configuration and builds a rate-limited client.
///
/// Looks, in order, at `kubeconfig` (when given), the `KUBECONFIG`
/// environment variable, the in-cluster environment (ServiceAccount token and
/// CA, `KUBERNETES_SERVICE_HOST`), and finally `~/.kube/config`. Servers may be
/// `https` (CA from the kubeconfig or the cluster, or `insecure-skip-tls-verify`)
/// or plain `http`; credentials may be a bearer token, a token file or a
/// client certificate. `qps`/`burst` of 0 pick the defaults
/// ([`crate::DEFAULT_QPS`], [`crate::DEFAULT_BURST`]).
pub async fn client_from_config(
    kubeconfig: Option<PathBuf>,
    qps: f32,
    burst: u32,
) -> Result<ApiConnection, ConfigError> {
    let config = load_config(kubeconfig).await?;
    ApiConnection::new(config, qps, burst)
}

/// kubectl's connection flags (`--context`, `--server`, `--token`, `--as`,
/// ...), applied over whatever configuration is loaded, as kubectl applies
/// them. `Debug` never shows the token.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct ConnectionOverrides {
    /// `--context`: the kubeconfig context to use.
    pub context: Option<String>,
    /// `--cluster`: the kubeconfig cluster to use.
    pub cluster: Option<String>,
    /// `--user`: the kubeconfig user to use.
    pub user: Option<String>,
    /// `--server`: the API server's address.
    pub server: Option<String>,
    /// `--token`: a bearer token.
    pub token: Option<secrecy::SecretString>,
    /// `--token-file`: a file holding the bearer token, read once when the
    /// overrides are applied (at start); exclusive with `token`.
    pub token_file: Option<PathBuf>,
    /// `--certificate-authority`: a PEM file of CA certificates for the server.
    pub certificate_authority: Option<PathBuf>,
    /// `--client-certificate`: a PEM client certificate file.
    pub client_certificate: Option<PathBuf>,
    /// `--client-key`: its PEM key file.
    pub client_key: Option<PathBuf>,
    /// `--insecure-skip-tls-verify`: do not check the server's certificate.
    pub insecure_skip_tls_verify: bool,
    /// `--tls-server-name`: the name to check the server's certificate for.
    pub tls_server_name: Option<String>,
    /// `--as`: the user to impersonate.
    pub impersonate: Option<String>,
    /// `--as-group`: the groups to impersonate.
    pub impersonate_groups: Vec<String>,
    /// `--as-uid`: the uid to impersonate.
    pub impersonate_uid: Option<String>,
    /// `--request-timeout`: the timeout of each API request (`None`: no timeout).
    pub request_timeout: Option<std::time::Duration>,
}

impl std::fmt::Debug for ConnectionOverrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionOverrides")
            .field("context", &self.context)
            .field("cluster", &self.cluster)
            .field("user", &self.user)
            .field("server", &self.server)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_file", &self.token_file)
            .field("certificate_authority", &self.certificate_authority)
            .field("client_certificate", &self.client_certificate)
            .field("client_key", &self.client_key)
            .field("insecure_skip_tls_verify", &self.insecure_skip_tls_verify)
            .field("tls_server_name", &self.tls_server_name)
            .field("impersonate", &self.impersonate)
            .field("impersonate_groups", &self.impersonate_groups)
            .field("impersonate_uid", &self.impersonate_uid)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

impl ConnectionOverrides {
    /// Applies the overrides that act on a loaded configuration.
    pub fn apply(&self, config: &mut kube::Config) -> Result<(), ConfigError> {
        if let Some(server) = &self.server {
            config.cluster_url = server.parse().map_err(|e| ConfigError::Override {
                flag: "--server",
                problem: format!("`{server}` is not a URL ({e}); use e.g. https://10.0.0.1:6443"),
            })?;
        }
        if self.token.is_some() && self.token_file.is_some() {
            return Err(ConfigError::Override {
                flag: "--token-file",
                problem: "--token and --token-file both give the bearer token; pass only one"
                    .into(),
            });
        }
        if let Some(token) = &self.token {
            config.auth_info.token = Some(token.clone());
            config.auth_info.token_file = None;
        }
        if let Some(path) = &self.token_file {
            config.auth_info.token = Some(read_token_file(path)?);
            config.auth_info.token_file = None;
        }
        if let Some(ca) = &self.certificate_authority {
            // kube re-reads this file, as it does the in-cluster CA.
            config.root_cert_file = Some(ca.clone());
            config.root_cert = None;
        }
        if let Some(cert) = &self.client_certificate {
            config.auth_info.client_certificate = Some(cert.to_string_lossy().into_owned());
            config.auth_info.client_certificate_data = None;
        }
        if let Some(key) = &self.client_key {
            config.auth_info.client_key = Some(key.to_string_lossy().into_owned());
            config.auth_info.client_key_data = None;
        }
        if self.insecure_skip_tls_verify {
            config.accept_invalid_certs = true;
        }
        if let Some(name) = &self.tls_server_name {
            config.tls_server_name = Some(name.clone());
        }
        if let Some(user) = &self.impersonate {
            config.auth_info.impersonate = Some(user.clone());
        }
        if !self.impersonate_groups.is_empty() {
            config.auth_info.impersonate_groups = Some(self.impersonate_groups.clone());
        }
        if let Some(uid) = &self.impersonate_uid {
            config.auth_info.impersonate_uid = Some(uid.clone());
        }
        if let Some(t) = self.request_timeout {
            config.read_timeout = Some(t);
            config.write_timeout = Some(t);
        }
        Ok(())
    }

    fn kubeconfig_options(&self) -> KubeConfigOptions {
        KubeConfigOptions {
            context: self.context.clone(),
            cluster: self.cluster.clone(),
            user: self.user.clone(),
        }
    }
}

/// The most bytes `--token-file` may hold (a ServiceAccount token is about
/// 1 KiB; OIDC tokens with many claims a few KiB).
pub const MAX_TOKEN_FILE_BYTES: u64 = 64 * 1024;

/// Reads `--token-file` once: the token is the file's content without
/// surrounding whitespace (a trailing newline, as `echo` writes it; client-go
/// trims it too). Errors name the flag and the file, never the content.
///
/// Read once rather than handed to kube's own `token_file`, which re-reads
/// the file every minute but keeps a trailing newline (every request would
/// then fail with an invalid header). A rotated token needs a restart; a
/// kubeconfig's `tokenFile` or the in-cluster token are re-read by kube.
pub fn read_token_file(path: &std::path::Path) -> Result<secrecy::SecretString, ConfigError> {
    use std::io::Read;
    let fail = |problem: String| ConfigError::Override {
        flag: "--token-file",
        problem,
    };
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => fail(format!(
            "{shown} does not exist; pass the path of a file that holds the bearer token"
        )),
        std::io::ErrorKind::PermissionDenied => fail(format!(
            "{shown} cannot be read by the driver (permission denied); make it readable by              the driver's user"
        )),
        _ => fail(format!("cannot open {shown}: {e}")),
    })?;
    let mut bytes = zeroize::Zeroizing::new(Vec::new());
    file.take(MAX_TOKEN_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(format!("cannot read {shown}: {e}")))?;
    if bytes.len() as u64 > MAX_TOKEN_FILE_BYTES {
        return Err(fail(format!(
            "{shown} is larger than {MAX_TOKEN_FILE_BYTES} bytes, too large for a bearer token;              pass the file that holds only the token"
        )));
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| fail(format!("{shown} is not UTF-8 text; a bearer token is text")))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(fail(format!(
            "{shown} is empty; write the bearer token into it"
        )));
    }
    if token.chars().any(|c| c.is_control() || c == ' ') {
        return Err(fail(format!(
            "{shown} holds more than one word or control characters; a bearer token is one \
             word of printable text"
        )));
    }
    Ok(secrecy::SecretString::from(token.to_owned()))
}

/// How a connection exposes what is sent over it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InsecureTransport {
    /// The server's URL is `http://`: no encryption at all.
    PlainHttp,
    /// The server's certificate is not checked (`insecure-skip-tls-verify`).
    SkipTlsVerify,
}

impl std::fmt::Display for InsecureTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            InsecureTransport::PlainHttp => "is plain http:// (not encrypted)",
            InsecureTransport::SkipTlsVerify => {
                "does not check the server's certificate (insecure-skip-tls-verify)"
            }
        })
    }
}

/// [`client_from_config`] with kubectl's connection flags applied.
pub async fn client_from_config_with(
    kubeconfig: Option<PathBuf>,
    overrides: &ConnectionOverrides,
    qps: f32,
    burst: u32,
) -> Result<ApiConnection, ConfigError> {
    let mut config = load_config_with(kubeconfig, &overrides.kubeconfig_options()).await?;
    overrides.apply(&mut config)?;
    ApiConnection::new(config, qps, burst)
}

async fn load_config(kubeconfig: Option<PathBuf>) -> Result<kube::Config, ConfigError> {
    load_config_with(kubeconfig, &KubeConfigOptions::default()).await
}

async fn load_config_with(
    kubeconfig: Option<PathBuf>,
    options: &KubeConfigOptions,
) -> Result<kube::Config, ConfigError> {
    let options = options.clone();
    if let Some(path) = kubeconfig {
        let kc = Kubeconfig::read_from(&path).map_err(|source| ConfigError::Kubeconfig {
            path: path.clone(),
            source,
        })?;
        return kube::Config::from_custom_kubeconfig(kc, &options)
            .await
            .map_err(|source| ConfigError::Kubeconfig { path, source });
    }
    if let Some(env) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        // KUBECONFIG may list several files; kube merges them.
        return kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|source| ConfigError::Kubeconfig {
                path: PathBuf::from(env),
                source,
            });
    }
    match kube::Config::incluster() {
        Ok(config) => {
            for (flag, set) in [
                ("--context", options.context.is_some()),
                ("--cluster", options.cluster.is_some()),
                ("--user", options.user.is_some()),
            ] {
                if set {
                    tracing::warn!(
                        flag,
                        "ignored: there is no kubeconfig (in-cluster configuration), so it names nothing"
                    );
                }
            }
            Ok(config)
        }
        Err(in_cluster) => {
            kube::Config::from_kubeconfig(&options)
                .await
                .map_err(|kc| ConfigError::NotFound {
                    in_cluster: in_cluster.to_string(),
                    kubeconfig: kc.to_string(),
                })
        }
    }
}

impl ApiConnection {
    /// Builds the rate-limited client for `config`. kube's own retry of 429/503
    /// is turned off: callers see [`crate::IssueError::ApiUnavailable`] at once
    /// and retry with their own backoff, inside their own deadline.
    ///
    /// The server's certificate is checked against the CA the configuration
    /// names (the kubeconfig's `certificate-authority[-data]` or the
    /// ServiceAccount's `ca.crt`) and nothing else: with no CA named, kube
    /// would fall back to the system's trust store, which a minimal image has
    /// not got (every client build then fails, even for a plain-HTTP server),
    /// and which should not vouch for a cluster's API server anyway. So an
    /// empty set of roots stands in for a missing CA: plain HTTP and
    /// `insecure-skip-tls-verify` work, and an HTTPS server whose CA is not
    /// named fails its handshake with an unknown-issuer error.
    pub fn new(mut config: kube::Config, qps: f32, burst: u32) -> Result<Self, ConfigError> {
        config.default_retry = false;
        if config.root_cert.is_none() {
            config.root_cert = Some(Vec::new());
        }
        let limit = RateLimit::new(qps, burst);
        let client = build(config.clone(), &limit, None).map_err(ConfigError::Client)?;
        Ok(Self {
            client,
            config,
            limit,
            observer: None,
        })
    }

    /// The same connection, with every API call (the driver's own and the
    /// per-Pod token clients') reported to `observer` once its response
    /// headers arrive.
    pub fn with_observer(mut self, observer: Arc<dyn ApiObserver>) -> Result<Self, ConfigError> {
        self.client = build(self.config.clone(), &self.limit, Some(&observer))
            .map_err(ConfigError::Client)?;
        self.observer = Some(observer);
        Ok(self)
    }

    /// The driver's own client.
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// The configuration the client was built from.
    pub fn config(&self) -> &kube::Config {
        &self.config
    }

    /// Whether what is sent over this connection can be read or replayed by
    /// someone on the path: a plain `http://` server, or a server whose
    /// certificate is not checked. `None` for `https://` with a checked
    /// certificate.
    pub fn insecure_transport(&self) -> Option<InsecureTransport> {
        if self.config.cluster_url.scheme_str() != Some("https") {
            Some(InsecureTransport::PlainHttp)
        } else if self.config.accept_invalid_certs {
            Some(InsecureTransport::SkipTlsVerify)
        } else {
            None
        }
    }

    /// The rate limit shared by this client and every token client made from it.
    pub fn rate_limit(&self) -> &RateLimit {
        &self.limit
    }

    /// A client with the same server, TLS settings (CA, insecure, server
    /// name), proxy, headers and timeouts, that authenticates with `token`
    /// only: the driver's own credentials (token, client certificate,
    /// impersonation) are not carried over. Shares the rate limit.
    pub fn client_for_token(&self, token: &SecretToken) -> Result<kube::Client, kube::Error> {
        let mut config = self.config.clone();
        config.auth_info = AuthInfo {
            token: Some(secrecy::SecretString::from(token.expose())),
            ..AuthInfo::default()
        };
        build(config, &self.limit, self.observer.as_ref())
    }
}

fn build(
    config: kube::Config,
    limit: &RateLimit,
    observer: Option<&Arc<dyn ApiObserver>>,
) -> Result<kube::Client, kube::Error> {
    let host = config.cluster_url.authority().map(|a| a.to_string());
    let builder = ClientBuilder::try_from(config)?.with_layer(limit);
    Ok(match observer {
        Some(observer) => builder
            .with_layer(&Observe {
                observer: Arc::clone(observer),
                host: Arc::from(host.unwrap_or_default()),
            })
            .build(),
        None => builder.build(),
    })
}

/// One finished API call, as an [`ApiObserver`] sees it. Every field is
/// bounded: the verb is one of a fixed set, the host is the configured
/// server's, the code a status code.
#[derive(Debug, Clone, Copy)]
pub struct ApiCall<'a> {
    /// The HTTP method (`GET`, `POST`, `PUT`, `PATCH`, `DELETE`), or `OTHER`.
    pub verb: &'static str,
    /// `host:port` of the API server.
    pub host: &'a str,
    /// The response's status code; `None` when no response came (connection
    /// refused, TLS failure, timeout).
    pub code: Option<u16>,
    /// From sending the request to the response headers (for a watch: until
    /// the stream opened, not its whole life).
    pub elapsed: Duration,
}

/// Told of every API call a connection makes (for client metrics).
pub trait ApiObserver: Send + Sync + 'static {
    /// Called once per call, after the response headers or the error.
    fn observe(&self, call: &ApiCall<'_>);
}

/// The tower layer that reports calls to an [`ApiObserver`]. Outside the
/// rate limit, so throttling waits are not counted as latency.
#[derive(Clone)]
struct Observe {
    observer: Arc<dyn ApiObserver>,
    host: Arc<str>,
}

impl<S> tower::Layer<S> for Observe {
    type Service = Observed<S>;
    fn layer(&self, inner: S) -> Observed<S> {
        Observed {
            inner,
            observer: Arc::clone(&self.observer),
            host: Arc::clone(&self.host),
        }
    }
}

struct Observed<S> {
    inner: S,
    observer: Arc<dyn ApiObserver>,
    host: Arc<str>,
}

fn verb_of(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::PATCH => "PATCH",
        http::Method::DELETE => "DELETE",
        _ => "OTHER",
    }
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for Observed<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        let verb = verb_of(req.method());
        let observer = Arc::clone(&self.observer);
        let host = Arc::clone(&self.host);
        let started = Instant::now();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let result = fut.await;
            observer.observe(&ApiCall {
                verb,
                host: &host,
                code: result.as_ref().ok().map(|r| r.status().as_u16()),
                elapsed: started.elapsed(),
            });
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_apply_to_a_loaded_config() {
        let mut config = kube::Config::new("https://old:6443".parse().unwrap());
        let o = ConnectionOverrides {
            server: Some("https://10.0.0.1:6443".into()),
            token: Some(secrecy::SecretString::from("tok".to_owned())),
            certificate_authority: Some(PathBuf::from("/ca.pem")),
            client_certificate: Some(PathBuf::from("/c.pem")),
            client_key: Some(PathBuf::from("/k.pem")),
            insecure_skip_tls_verify: true,
            tls_server_name: Some("api".into()),
            impersonate: Some("alice".into()),
            impersonate_groups: vec!["g".into()],
            impersonate_uid: Some("42".into()),
            request_timeout: Some(std::time::Duration::from_secs(5)),
            ..Default::default()
        };
        o.apply(&mut config).unwrap();
        assert_eq!(config.cluster_url.host(), Some("10.0.0.1"));
        assert!(config.auth_info.token.is_some());
        assert_eq!(config.root_cert_file, Some(PathBuf::from("/ca.pem")));
        assert_eq!(config.auth_info.client_key.as_deref(), Some("/k.pem"));
        assert!(config.accept_invalid_certs);
        assert_eq!(config.tls_server_name.as_deref(), Some("api"));
        assert_eq!(config.auth_info.impersonate.as_deref(), Some("alice"));
        assert_eq!(config.auth_info.impersonate_uid.as_deref(), Some("42"));
        assert_eq!(config.read_timeout, Some(std::time::Duration::from_secs(5)));
        assert!(!format!("{o:?}").contains("tok\""));

        let bad = ConnectionOverrides {
            server: Some("not a url".into()),
            ..Default::default()
        };
        let err = bad.apply(&mut config).unwrap_err().to_string();
        assert!(err.contains("--server"), "{err}");
    }

    fn token_file_error(content: Option<&[u8]>) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        if let Some(c) = content {
            std::fs::write(&path, c).unwrap();
        }
        let o = ConnectionOverrides {
            token_file: Some(path),
            ..Default::default()
        };
        let mut config = kube::Config::new("https://api:6443".parse().unwrap());
        o.apply(&mut config).unwrap_err().to_string()
    }

    #[test]
    fn token_file_is_read_once_and_trimmed() {
        use secrecy::ExposeSecret;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cr3t-token\n").unwrap();
        let o = ConnectionOverrides {
            token_file: Some(path.clone()),
            ..Default::default()
        };
        let mut config = kube::Config::new("https://api:6443".parse().unwrap());
        o.apply(&mut config).unwrap();
        assert_eq!(
            config.auth_info.token.as_ref().unwrap().expose_secret(),
            "s3cr3t-token",
            "the trailing newline is not part of the token"
        );
        assert!(config.auth_info.token_file.is_none());
        assert!(!format!("{o:?}").contains("s3cr3t"));
    }

    #[test]
    fn token_file_problems_name_the_flag_never_the_content() {
        let missing = token_file_error(None);
        assert!(
            missing.contains("--token-file") && missing.contains("does not exist"),
            "{missing}"
        );
        let empty = token_file_error(Some(b" \n"));
        assert!(
            empty.contains("--token-file") && empty.contains("is empty"),
            "{empty}"
        );
        let big = vec![b'a'; MAX_TOKEN_FILE_BYTES as usize + 1];
        let big = token_file_error(Some(&big));
        assert!(big.contains("larger than"), "{big}");
        let two = token_file_error(Some(b"secret-one\nsecret-two\n"));
        assert!(two.contains("one word"), "{two}");
        assert!(
            !two.contains("secret-"),
            "the content is never shown: {two}"
        );
        let binary = token_file_error(Some(&[0xff, 0xfe]));
        assert!(binary.contains("UTF-8"), "{binary}");

        let dir = tempfile::tempdir().unwrap();
        let both = ConnectionOverrides {
            token: Some(secrecy::SecretString::from("t".to_owned())),
            token_file: Some(dir.path().join("token")),
            ..Default::default()
        };
        let mut config = kube::Config::new("https://api:6443".parse().unwrap());
        let err = both.apply(&mut config).unwrap_err().to_string();
        assert!(err.contains("--token and --token-file"), "{err}");
    }

    #[test]
    fn unreadable_token_file_says_permission_denied() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "t").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
        if std::fs::read(&path).is_ok() {
            // Root reads any file (CAP_DAC_OVERRIDE): a directory in its
            // place gives the other kind of unreadable.
            std::fs::remove_file(&path).unwrap();
            std::fs::create_dir(&path).unwrap();
        }
        let o = ConnectionOverrides {
            token_file: Some(path),
            ..Default::default()
        };
        let mut config = kube::Config::new("https://api:6443".parse().unwrap());
        let err = o.apply(&mut config).unwrap_err().to_string();
        assert!(
            err.contains("--token-file")
                && (err.contains("permission denied") || err.contains("cannot read")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn insecure_transports_are_told_apart() {
        let conn = |url: &str, skip: bool| {
            let mut config = kube::Config::new(url.parse().unwrap());
            config.accept_invalid_certs = skip;
            ApiConnection::new(config, 0.0, 0).unwrap()
        };
        assert_eq!(
            conn("http://127.0.0.1:8080", false).insecure_transport(),
            Some(InsecureTransport::PlainHttp)
        );
        assert_eq!(
            conn("https://127.0.0.1:6443", true).insecure_transport(),
            Some(InsecureTransport::SkipTlsVerify)
        );
        assert_eq!(
            conn("https://127.0.0.1:6443", false).insecure_transport(),
            None
        );
    }
}
