//! Prometheus metrics (`certmanager_pod_signer_*`) and the health endpoints,
//! served at `--metrics-bind-address`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The outcome label of `certmanager_pod_signer_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `issued`, `denied`, `failed` or `unsupported_key_type`.
    pub outcome: &'static str,
}

/// The signer's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Requests finished, by outcome.
    pub requests: Family<OutcomeLabels, Counter>,
    /// Seconds from taking a request on to writing its status.
    pub latency: Histogram,
    /// Requests being issued now.
    pub in_flight: Gauge,
    /// Requests waiting.
    pub queued: Gauge,
    /// Requests not queued because a queue limit was reached (seen again at the next relist).
    pub overflowed: Counter,
    /// 1 while this replica holds the Lease.
    pub leader: Gauge,
    /// ClusterTrustBundle writes.
    pub trust_bundle_writes: Counter,
    ready: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every series.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("certmanager_pod_signer");
        let requests = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "requests",
            "PodCertificateRequests finished, by outcome",
            requests.clone(),
        );
        let latency = Histogram::new(exponential_buckets(0.005, 2.0, 16));
        registry.register(
            "issuance_duration_seconds",
            "Seconds from taking a PodCertificateRequest on to writing its status",
            latency.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "in_flight",
            "PodCertificateRequests being issued now",
            in_flight.clone(),
        );
        let queued = Gauge::default();
        registry.register(
            "queued",
            "PodCertificateRequests waiting to be issued",
            queued.clone(),
        );
        let overflowed = Counter::default();
        registry.register(
            "queue_overflows",
            "PodCertificateRequests left for the next relist because --max-queued or --max-queued-per-namespace was reached",
            overflowed.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease",
            leader.clone(),
        );
        let trust_bundle_writes = Counter::default();
        registry.register(
            "trust_bundle_writes",
            "ClusterTrustBundle creations and updates",
            trust_bundle_writes.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            in_flight,
            queued,
            overflowed,
            leader,
            trust_bundle_writes,
            ready: AtomicBool::new(false),
        }
    }

    /// Counts one finished request.
    pub fn finished(&self, outcome: &'static str, seconds: f64) {
        self.requests
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
        self.latency.observe(seconds);
    }

    /// Marks the signer ready (connected and watching, or a healthy follower).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::routing::get;
    let m = Arc::clone(&metrics);
    let r = Arc::clone(&metrics);
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let m = Arc::clone(&m);
                async move {
                    (
                        [(
                            http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        m.encode(),
                    )
                }
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let r = Arc::clone(&r);
                async move {
                    if r.ready.load(Ordering::Relaxed) {
                        (http::StatusCode::OK, "ok")
                    } else {
                        (http::StatusCode::SERVICE_UNAVAILABLE, "not ready")
                    }
                }
            }),
        );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
