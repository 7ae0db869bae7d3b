//! Prometheus metrics (`prometheus-client`): every metric name, help text
//! and label set, and the one place each is recorded. The families are
//! private; the driver records through methods named for what happened
//! ([`Metrics::issued`], [`Metrics::failed`], [`Metrics::restored`],
//! [`Metrics::forget`], [`Metrics::published`]), so "where is metric X
//! recorded" has one answer: here. Serving `/metrics` is in `serve.rs`, the
//! `process_*` series read from `/proc` in `process.rs`.
//!
//! Names follow csi-lib's where one exists. Labels are bounded: the
//! per-issuer counters carry at most `--max-issuer-label-values` distinct
//! issuers (the rest count as `other`, since the issuer name comes from the
//! Pod); per-volume series are named by namespace, Pod and the Pod's volume
//! name, never a raw volume id, and are removed when the volume is
//! unpublished.

mod csilib;
mod process;
mod serve;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

pub use csilib::RequestReady;
use csilib::{CsiLib, IssueCounter};
pub use serve::{MetricsLimits, serve};

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

/// Default of `--max-issuer-label-values`.
pub const DEFAULT_MAX_ISSUER_LABEL_VALUES: usize = 100;

/// The label value issuers over the limit are counted under.
pub const OTHER_ISSUER: &str = "other";

/// Labels of per-certificate gauges: one series per volume.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CertLabels {
    /// The CertificateRequest that issued the certificate (csi-lib's label).
    pub name: String,
    /// The Pod's namespace.
    pub namespace: String,
    /// The Pod's name.
    pub pod: String,
    /// The volume's name in the Pod spec (from the target path), so two
    /// volumes of one Pod are two series.
    pub volume: String,
    /// `issuerRef.name`.
    pub issuer_name: String,
    /// `issuerRef.kind`.
    pub issuer_kind: String,
    /// `issuerRef.group`.
    pub issuer_group: String,
}

/// Labels of the trust bundle series: the source's kind and name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TrustLabels {
    /// `ClusterTrustBundle`, `ClusterTrustBundleSigner` or `ConfigMap`.
    pub kind: String,
    /// The bundle's or signer's name, or `namespace/name` of the ConfigMap.
    pub source: String,
}

/// What the driver's parts (renewer, watch, key pool, store) say now, read
/// at every scrape.
#[derive(Debug, Default, Clone, Copy)]
pub struct LiveValues {
    /// The renewer's counts, once it runs.
    pub renewer: Option<cmcsi_renewer::Stats>,
    /// The request watch's (ignored, held) counts, with Kubernetes.
    pub watch: Option<(cmcsi_issuer_client::IgnoredRequests, usize)>,
    /// The key pool's counts.
    pub pool: cmcsi_keygen::PoolStats,
    /// Set-aside volume directories removed after the grace.
    pub quarantine_removed: u64,
    /// Events dropped: their namespace's share of the queue, or the queue, was full.
    pub events_dropped: u64,
    /// How full the data root is.
    pub data_root: Option<cmcsi_store::Usage>,
}

/// The source of [`LiveValues`]; `None` once the driver is gone.
pub trait LiveStats: Send + Sync + std::fmt::Debug + 'static {
    /// The values now.
    fn read(&self) -> Option<LiveValues>;

    /// The `Ready` status of each request the watch holds now (csi-lib's
    /// `certmanager_csi_certificate_request_ready_status`).
    fn requests(&self) -> Vec<RequestReady> {
        Vec::new()
    }
}

#[derive(Debug)]
struct LiveCollector(Arc<dyn LiveStats>);

impl Collector for LiveCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(values) = self.0.read() else {
            return Ok(());
        };
        for (name, help, value, is_counter) in live_series(&values) {
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
    /// Issuance attempts (first and renewals), per issuer and per volume.
    issue_requests: IssueCounter,
    /// Failed issuance attempts.
    issue_errors: IssueCounter,
    /// csi-lib's node label and per-volume bookkeeping (`metrics/csilib.rs`).
    csi_lib: CsiLib,
    /// notAfter of each volume's current certificate (Unix seconds).
    expiration: Family<CertLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// When each volume's certificate is due for renewal (Unix seconds).
    renewal: Family<CertLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// NodePublishVolume latency.
    publish_seconds: Histogram,
    /// Volumes on the node per trust bundle source.
    trust_volumes: Family<TrustLabels, Gauge>,
    /// Refreshes that found their trust bundle source missing or refused.
    trust_missing: Family<TrustLabels, Counter>,
    /// When a volume's trust bundle was last rewritten (Unix seconds).
    trust_refreshed: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Issuers (name, kind, group) given their own label values so far.
    issuers: Mutex<HashSet<(String, String, String)>>,
    max_issuers: usize,
}

impl Metrics {
    /// A fresh set of metrics; `live` is read at every scrape; at most
    /// `max_issuers` distinct issuers label the per-issuer counters.
    pub fn new(live: Option<Arc<dyn LiveStats>>, max_issuers: usize) -> Self {
        let mut registry = Registry::default();
        let issue_requests = IssueCounter::default();
        registry.register(
            "certmanager_csi_issue_requests",
            "Issuance attempts, first issuances and renewals",
            issue_requests.clone(),
        );
        let issue_errors = IssueCounter::default();
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
        let trust_volumes = Family::<TrustLabels, Gauge>::default();
        registry.register(
            "certmanager_csi_trust_bundle_volumes",
            "Volumes on this node per trust bundle source",
            trust_volumes.clone(),
        );
        let trust_missing = Family::<TrustLabels, Counter>::default();
        registry.register(
            "certmanager_csi_trust_bundle_missing",
            "Trust bundle refreshes that found their source missing or refused (the last good bundle stays)",
            trust_missing.clone(),
        );
        let trust_refreshed = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "certmanager_csi_trust_bundle_last_refresh_timestamp_seconds",
            "When a volume's trust bundle was last rewritten without reissuing, Unix seconds",
            trust_refreshed.clone(),
        );
        if let Some(live) = live {
            registry.register_collector(Box::new(LiveCollector(live)));
        }
        Metrics {
            registry,
            issue_requests,
            issue_errors,
            csi_lib: CsiLib::default(),
            expiration,
            renewal,
            publish_seconds,
            trust_volumes,
            trust_missing,
            trust_refreshed,
            issuers: Mutex::new(HashSet::new()),
            max_issuers,
        }
    }

    /// The per-issuer labels for `spec`: its issuer, if it is among the
    /// first `max_issuers` seen, else `other` (logged the first time).
    pub(crate) fn issuer_labels(&self, spec: &cmcsi_attrs::CertificateSpec) -> IssuerLabels {
        let issuer = (
            spec.issuer.name.clone(),
            spec.issuer.kind.clone(),
            spec.issuer.group.clone(),
        );
        let mut seen = self.issuers.lock().unwrap_or_else(PoisonError::into_inner);
        let (issuer_name, issuer_kind, issuer_group) =
            if seen.contains(&issuer) || seen.len() < self.max_issuers {
                seen.insert(issuer.clone());
                issuer
            } else {
                if seen.insert((
                    OTHER_ISSUER.into(),
                    OTHER_ISSUER.into(),
                    OTHER_ISSUER.into(),
                )) {
                    tracing::warn!(
                        limit = self.max_issuers,
                        "more distinct issuers than --max-issuer-label-values={}; further ones \
                         are counted under issuer_name=\"other\" (raise the flag to see them)",
                        self.max_issuers
                    );
                }
                (
                    OTHER_ISSUER.into(),
                    OTHER_ISSUER.into(),
                    OTHER_ISSUER.into(),
                )
            };
        IssuerLabels {
            namespace: spec.pod.namespace.clone().unwrap_or_default(),
            issuer_name,
            issuer_kind,
            issuer_group,
        }
    }

    /// An issuance of `volume_id` (of `spec`, at `target_path`) by request
    /// `request` succeeded: one more attempt for its issuer and volume, and
    /// its certificate's expiry and next renewal (replacing the series of
    /// its previous request).
    pub(crate) fn issued(
        &self,
        volume_id: &str,
        spec: &cmcsi_attrs::CertificateSpec,
        target_path: &str,
        request: &str,
        not_after: SystemTime,
        next_issuance: Option<SystemTime>,
    ) {
        self.attempted(volume_id, spec, false);
        self.restored(
            volume_id,
            spec,
            target_path,
            request,
            not_after,
            next_issuance,
        );
    }

    /// An issuance of `volume_id` (of `spec`) failed: one more attempt and
    /// one more error for its issuer and volume.
    pub(crate) fn failed(&self, volume_id: &str, spec: &cmcsi_attrs::CertificateSpec) {
        self.attempted(volume_id, spec, true);
    }

    fn attempted(&self, volume_id: &str, spec: &cmcsi_attrs::CertificateSpec, failed: bool) {
        let issuer = self.issuer_labels(spec);
        let volume = self.csi_lib.volume_labels(volume_id);
        self.issue_requests.inc(&issuer, &volume);
        if failed {
            self.issue_errors.inc(&issuer, &volume);
        }
    }

    /// A stored volume was taken over at start (or just issued): its
    /// certificate's expiry and next renewal, counting no attempt. `request`
    /// is the request that issued it (empty when unknown).
    pub(crate) fn restored(
        &self,
        volume_id: &str,
        spec: &cmcsi_attrs::CertificateSpec,
        target_path: &str,
        request: &str,
        not_after: SystemTime,
        next_issuance: Option<SystemTime>,
    ) {
        let cert = cert_labels(spec, target_path, request);
        if let Some(old) = self.csi_lib.serve(volume_id, &cert) {
            self.expiration.remove(&old);
            self.renewal.remove(&old);
        }
        self.expiration
            .get_or_create(&cert)
            .set(crate::timefmt::unix_seconds(not_after));
        match next_issuance {
            Some(next) => {
                self.renewal
                    .get_or_create(&cert)
                    .set(crate::timefmt::unix_seconds(next));
            }
            None => {
                self.renewal.remove(&cert);
            }
        }
    }

    /// Volume `volume_id` was unpublished or removed: its series go (its
    /// per-volume counters too, so the series follow the node's volumes).
    pub(crate) fn forget(&self, volume_id: &str) {
        if let Some(old) = self.csi_lib.forget(volume_id) {
            self.expiration.remove(&old);
            self.renewal.remove(&old);
        }
        let volume = self.csi_lib.volume_labels(volume_id);
        self.issue_requests.remove(&volume);
        self.issue_errors.remove(&volume);
    }

    /// The volumes per trust bundle source now (series of sources no longer used go).
    pub(crate) fn trust_sources(
        &self,
        counts: &std::collections::BTreeMap<(&'static str, String), usize>,
    ) {
        self.trust_volumes.clear();
        for ((kind, source), n) in counts {
            let labels = TrustLabels {
                kind: (*kind).to_owned(),
                source: source.clone(),
            };
            self.trust_volumes.get_or_create(&labels).set(*n as i64);
        }
    }

    /// A refresh found the source of `kind`/`source` missing or refused.
    pub(crate) fn trust_missing(&self, kind: &str, source: &str) {
        let labels = TrustLabels {
            kind: kind.to_owned(),
            source: source.to_owned(),
        };
        self.trust_missing.get_or_create(&labels).inc();
    }

    /// A volume's trust bundle was rewritten now.
    pub(crate) fn trust_refreshed(&self) {
        self.trust_refreshed
            .set(crate::timefmt::unix_seconds(SystemTime::now()));
    }

    /// A NodePublishVolume call took `elapsed`.
    pub(crate) fn published(&self, elapsed: Duration) {
        self.publish_seconds.observe(elapsed.as_secs_f64());
    }

    /// The metrics in the Prometheus/OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The series of the renewer, the watch, the key pool and the store, as
/// `(name, help, value, is_counter)`.
fn live_series(d: &LiveValues) -> Vec<(&'static str, &'static str, f64, bool)> {
    let mut out = Vec::new();
    if let Some(s) = d.renewer {
        // certmanager_csi_managed_volume_count{node}: metrics/csilib.rs.
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
    if let Some((ignored, cached)) = d.watch {
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
            cached as f64,
            false,
        ));
    }
    if let Some(u) = d.data_root {
        out.push((
            "certmanager_csi_data_root_used_bytes",
            "Bytes in use on the data root's file system (the tmpfs every volume shares)",
            u.used_bytes as f64,
            false,
        ));
        out.push((
            "certmanager_csi_data_root_size_bytes",
            "Size of the data root's file system (--tmpfs-size)",
            u.size_bytes as f64,
            false,
        ));
    }
    let p = d.pool;
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
    out.push((
            "certmanager_csi_key_generations_running",
            "Key generations for publishes and renewals running now (a cancelled publish's counts until it ends)",
            p.inline_running as f64,
            false,
        ));
    out.push((
        "certmanager_csi_large_rsa_generations_running",
        "Generations of RSA keys above 4096 bits running now (at most --max-concurrent-large-rsa)",
        p.large_rsa_running as f64,
        false,
    ));
    out.push((
        "certmanager_csi_events_dropped",
        "Events on Pods not sent because their namespace's share of the queue \
         (--max-queued-events-per-namespace) or the queue (--event-queue-size) was full",
        d.events_dropped as f64,
        true,
    ));
    out.push((
            "certmanager_csi_quarantined_volumes_removed",
            "Set-aside volume directories (unusable at start, or unmounted with unreadable metadata) removed after --quarantine-grace",
            d.quarantine_removed as f64,
            true,
        ));
    out
}

/// The per-volume labels of a volume published at `target_path`.
pub(crate) fn cert_labels(
    spec: &cmcsi_attrs::CertificateSpec,
    target_path: &str,
    request: &str,
) -> CertLabels {
    CertLabels {
        name: request.to_owned(),
        namespace: spec.pod.namespace.clone().unwrap_or_default(),
        pod: spec.pod.name.clone().unwrap_or_default(),
        volume: pod_volume_name(target_path),
        issuer_name: spec.issuer.name.clone(),
        issuer_kind: spec.issuer.kind.clone(),
        issuer_group: spec.issuer.group.clone(),
    }
}

/// Labels of `rest_client_requests_total`: as client-go's, bounded (a fixed
/// set of verbs, status codes, the one configured API server).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClientRequestLabels {
    /// HTTP method (`GET`, `POST`, `PUT`, `PATCH`, `DELETE`, `OTHER`).
    pub verb: String,
    /// Status code, or `<error>` when no response came.
    pub code: String,
    /// `host:port` of the API server.
    pub host: String,
}

/// Labels of `rest_client_request_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClientLatencyLabels {
    /// HTTP method.
    pub verb: String,
    /// `host:port` of the API server.
    pub host: String,
}

/// Kubernetes client metrics, fed by the API connection's observer layer.
#[derive(Clone, Debug)]
pub struct ClientMetrics {
    /// Requests by verb, code and host.
    pub requests: Family<ClientRequestLabels, Counter>,
    /// Latency (to the response headers) by verb and host.
    pub duration: Family<ClientLatencyLabels, Histogram>,
}

impl Default for ClientMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            // client-go's buckets: 5 ms to about 60 s.
            duration: Family::new_with_constructor(|| {
                Histogram::new([
                    0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0,
                ])
            }),
        }
    }
}

impl cmcsi_issuer_client::ApiObserver for ClientMetrics {
    fn observe(&self, call: &cmcsi_issuer_client::ApiCall<'_>) {
        let code = call
            .code
            .map_or_else(|| "<error>".to_string(), |c| c.to_string());
        self.requests
            .get_or_create(&ClientRequestLabels {
                verb: call.verb.to_string(),
                code,
                host: call.host.to_string(),
            })
            .inc();
        self.duration
            .get_or_create(&ClientLatencyLabels {
                verb: call.verb.to_string(),
                host: call.host.to_string(),
            })
            .observe(call.elapsed.as_secs_f64());
    }
}

impl Metrics {
    /// Adds the process series, the build-info gauge and the Kubernetes
    /// client series to these metrics.
    pub fn with_runtime_series(mut self, client: &ClientMetrics) -> Self {
        self.registry.register(
            "rest_client_requests",
            "Kubernetes API requests by verb, status code and host",
            client.requests.clone(),
        );
        self.registry.register(
            "rest_client_request_duration_seconds",
            "Kubernetes API request latency, to the response headers, by verb and host",
            client.duration.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: crate::build::VERSION.into(),
                commit: crate::build::GIT_COMMIT.unwrap_or("unknown").into(),
                rustc: crate::build::RUSTC.into(),
            })
            .set(1);
        self.registry.register(
            "certmanager_csi_build_info",
            "Always 1; the labels say which build of the driver this is",
            build,
        );
        self.registry
            .register_collector(Box::new(process::ProcessCollector));
        self
    }
}

/// Labels of `certmanager_csi_build_info`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    commit: String,
    rustc: String,
}

/// The Pod's name for a volume, from the kubelet's target path
/// `.../pods/<uid>/volumes/kubernetes.io~csi/<volume-name>/mount`; the last
/// component when the path has another shape.
pub(crate) fn pod_volume_name(target_path: &str) -> String {
    let path = std::path::Path::new(target_path);
    let dir = match path.file_name() {
        Some(last) if last == "mount" => path.parent().unwrap_or(path),
        _ => path,
    };
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scrape_has_process_build_and_client_series() {
        let client = ClientMetrics::default();
        cmcsi_issuer_client::ApiObserver::observe(
            &client,
            &cmcsi_issuer_client::ApiCall {
                verb: "POST",
                host: "10.0.0.1:443",
                code: Some(201),
                elapsed: std::time::Duration::from_millis(20),
            },
        );
        let text = Metrics::new(None, DEFAULT_MAX_ISSUER_LABEL_VALUES)
            .with_runtime_series(&client)
            .encode();
        for want in [
            "process_resident_memory_bytes ",
            "process_cpu_seconds_total ",
            "process_open_fds ",
            "process_max_fds ",
            "process_start_time_seconds ",
            "process_virtual_memory_bytes ",
            "certmanager_csi_build_info{version=\"",
            "rest_client_requests_total{verb=\"POST\",code=\"201\",host=\"10.0.0.1:443\"} 1",
            "rest_client_request_duration_seconds_bucket{le=\"0.025\",verb=\"POST\",host=\"10.0.0.1:443\"} 1",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
    }

    fn spec(issuer: &str) -> cmcsi_attrs::CertificateSpec {
        let ctx: std::collections::BTreeMap<String, String> = [
            ("csi.cert-manager.io/issuer-name", issuer),
            ("csi.cert-manager.io/dns-names", "a.example.com"),
            ("csi.storage.k8s.io/pod.namespace", "ns"),
            ("csi.storage.k8s.io/pod.name", "p"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        match cmcsi_attrs::parse(&ctx) {
            Ok(spec) => spec,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn issuer_values_are_capped_into_other() {
        let m = Metrics::new(None, 2);
        assert_eq!(m.issuer_labels(&spec("a")).issuer_name, "a");
        assert_eq!(m.issuer_labels(&spec("b")).issuer_name, "b");
        let over = m.issuer_labels(&spec("c"));
        assert_eq!(
            (over.issuer_name.as_str(), over.issuer_kind.as_str()),
            (OTHER_ISSUER, OTHER_ISSUER)
        );
        assert_eq!(m.issuer_labels(&spec("d")).issuer_name, OTHER_ISSUER);
        // Those already seen keep their own values.
        assert_eq!(m.issuer_labels(&spec("a")).issuer_name, "a");
        for i in 0..500 {
            m.failed(&format!("csi-{i}"), &spec(&format!("x{i}")));
        }
        let text = m.encode();
        let series = text
            .lines()
            .filter(|l| l.starts_with("certmanager_csi_issue_requests_total{"))
            .count();
        assert_eq!(series, 1, "{text}");
    }

    #[test]
    fn volume_names_come_from_the_target_path() {
        assert_eq!(
            pod_volume_name("/var/lib/kubelet/pods/u-1/volumes/kubernetes.io~csi/tls/mount"),
            "tls"
        );
        assert_eq!(pod_volume_name("/somewhere/else"), "else");
        assert_eq!(pod_volume_name(""), "");
        let a = cert_labels(&spec("a"), "/p/u/volumes/kubernetes.io~csi/tls/mount", "r");
        let b = cert_labels(&spec("a"), "/p/u/volumes/kubernetes.io~csi/mtls/mount", "r");
        assert_ne!(a, b, "two volumes of one Pod are two series");
    }
}
