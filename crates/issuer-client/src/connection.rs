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

async fn load_config(kubeconfig: Option<PathBuf>) -> Result<kube::Config, ConfigError> {
    let options = KubeConfigOptions::default();
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
        Ok(config) => Ok(config),
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
