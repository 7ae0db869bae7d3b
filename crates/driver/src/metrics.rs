//! Prometheus metrics (`prometheus-client`), served as text at `/metrics`.
//!
//! Names follow csi-lib's where one exists. Labels are bounded: namespace,
//! Pod and issuer, never a raw volume id; per-Pod series are removed when the
//! volume is unpublished.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of per-issuer counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IssuerLabels {
    /// The Pod's namespace.
    pub namespace: String,
    /// `issuerRef.name`.
    pub issuer_name: String,
    /// `issuerRef.kind`.
    pub issuer_kind: String,
    /// `issuerRef.group`.
    pub issuer_group: String,
}

/// Labels of per-certificate gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CertLabels {
    /// The Pod's namespace.
    pub namespace: String,
    /// The Pod's name.
    pub pod: String,
    /// `issuerRef.name`.
    pub issuer_name: String,
    /// `issuerRef.kind`.
    pub issuer_kind: String,
    /// `issuerRef.group`.
    pub issuer_group: String,
}

/// Numbers read from other components (key pool, renewer) at scrape time.
pub trait LiveStats: Send + Sync + std::fmt::Debug + 'static {
    /// `(name, help, value, is_counter)` for each series.
    fn read(&self) -> Vec<(&'static str, &'static str, f64, bool)>;
}

#[derive(Debug)]
struct LiveCollector(Arc<dyn LiveStats>);

impl Collector for LiveCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, help, value, is_counter) in self.0.read() {
            if is_counter {
                let c = ConstCounter::new(value as u64);
                let me = encoder.encode_descriptor(name, help, None, c.metric_type())?;
                c.encode(me)?;
            } else {
                let g = ConstGauge::new(value);
                let me = encoder.encode_descriptor(name, help, None, g.metric_type())?;
                g.encode(me)?;
            }
        }
        Ok(())
    }
}

/// The driver's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Issuance attempts (first and renewals).
    pub issue_requests: Family<IssuerLabels, Counter>,
    /// Failed issuance attempts.
    pub issue_errors: Family<IssuerLabels, Counter>,
    /// notAfter of each volume's current certificate (Unix seconds).
    pub expiration: Family<CertLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// When each volume's certificate is due for renewal (Unix seconds).
    pub renewal: Family<CertLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// NodePublishVolume latency.
    pub publish_seconds: Histogram,
}

impl Metrics {
    /// A fresh set of metrics; `live` is read at every scrape.
    pub fn new(live: Option<Arc<dyn LiveStats>>) -> Self {
        let mut registry = Registry::default();
        let issue_requests = Family::<IssuerLabels, Counter>::default();
        registry.register(
            "certmanager_csi_issue_requests",
            "Issuance attempts, first issuances and renewals",
            issue_requests.clone(),
        );
        let issue_errors = Family::<IssuerLabels, Counter>::default();
        registry.register(
            "certmanager_csi_issue_errors",
            "Failed issuance attempts",
            issue_errors.clone(),
        );
        let expiration = Family::default();
        registry.register(
            "certmanager_csi_certificate_request_expiration_timestamp_seconds",
            "Expiry (notAfter) of the certificate mounted in each Pod, Unix seconds",
            Family::clone(&expiration),
        );
        let renewal = Family::default();
        registry.register(
            "certmanager_csi_certificate_request_renewal_timestamp_seconds",
            "When the certificate mounted in each Pod is due for renewal, Unix seconds",
            Family::clone(&renewal),
        );
        let publish_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "certmanager_csi_publish_duration_seconds",
            "NodePublishVolume latency",
            publish_seconds.clone(),
        );
        if let Some(live) = live {
            registry.register_collector(Box::new(LiveCollector(live)));
        }
        Metrics {
            registry,
            issue_requests,
            issue_errors,
            expiration,
            renewal,
            publish_seconds,
        }
    }

    /// The metrics in the Prometheus/OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Serves `/metrics` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let m = Arc::clone(&metrics);
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
    );
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(address = %addr, "serving metrics at /metrics");
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Series read from the renewer and the key pool at scrape time.
#[derive(Debug)]
pub(crate) struct Live(pub(crate) std::sync::Weak<crate::driver::Driver>);

impl LiveStats for Live {
    fn read(&self) -> Vec<(&'static str, &'static str, f64, bool)> {
        let Some(d) = self.0.upgrade() else {
            return vec![];
        };
        let mut out = Vec::new();
        if let Some(r) = d.renewer.get() {
            let s = r.stats();
            out.push((
                "certmanager_csi_managed_volume_count",
                "Volumes managed by this driver",
                s.managed as f64,
                false,
            ));
            out.push((
                "certmanager_csi_renewal_retrying_volumes",
                "Volumes whose last issuance attempt failed and is being retried",
                s.retrying as f64,
                false,
            ));
            out.push((
                "certmanager_csi_expired_certificates",
                "Volumes whose mounted certificate has expired (renewal keeps failing)",
                s.expired as f64,
                false,
            ));
            out.push((
                "certmanager_csi_issuances_in_flight",
                "Issuances running now",
                s.in_flight as f64,
                false,
            ));
        }
        if let Ok(kube) = &d.kube {
            let ignored = kube.issuer.ignored_requests();
            out.push((
                "certmanager_csi_watch_ignored_requests",
                "CertificateRequests labelled for this node that the watch did not keep: \
                 not made for a volume of this node, or over --max-watched-requests",
                (ignored.foreign + ignored.over_limit) as f64,
                true,
            ));
            out.push((
                "certmanager_csi_watched_requests",
                "CertificateRequests the node-wide watch holds now",
                kube.issuer.cached_requests() as f64,
                false,
            ));
        }
        let p = d.pool.stats();
        out.push((
            "certmanager_csi_key_pool_hits",
            "Keys served from the pool",
            p.hits as f64,
            true,
        ));
        out.push((
            "certmanager_csi_key_pool_misses",
            "Keys generated inline because the pool was empty",
            p.misses as f64,
            true,
        ));
        out.push((
            "certmanager_csi_key_pool_available",
            "Keys ready in the pool now",
            p.available as f64,
            false,
        ));
        out.push((
            "certmanager_csi_key_pool_refills",
            "Keys generated in the background for the pool",
            p.refills as f64,
            true,
        ));
        out
    }
}

pub(crate) fn issuer_labels(spec: &cmcsi_attrs::CertificateSpec) -> IssuerLabels {
    IssuerLabels {
        namespace: spec.pod.namespace.clone().unwrap_or_default(),
        issuer_name: spec.issuer.name.clone(),
        issuer_kind: spec.issuer.kind.clone(),
        issuer_group: spec.issuer.group.clone(),
    }
}

pub(crate) fn cert_labels(spec: &cmcsi_attrs::CertificateSpec) -> CertLabels {
    CertLabels {
        namespace: spec.pod.namespace.clone().unwrap_or_default(),
        pod: spec.pod.name.clone().unwrap_or_default(),
        issuer_name: spec.issuer.name.clone(),
        issuer_kind: spec.issuer.kind.clone(),
        issuer_group: spec.issuer.group.clone(),
    }
}

pub(crate) fn unix_seconds(t: std::time::SystemTime) -> f64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

pub(crate) fn jiff_like(t: std::time::SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .map(|ts| ts.to_string())
        .unwrap_or_default()
}
