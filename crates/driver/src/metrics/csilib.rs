//! The Go driver's metrics (csi-lib's, v0.12: names, labels and help as it
//! has them), so dashboards built on them keep working:
//!
//! - `certmanager_csi_issue_requests_total{node,volume}` and
//!   `certmanager_csi_issue_errors_total{node,volume}`: with
//!   `--csi-lib-issue-labels`, instead of our per-issuer labels (one name
//!   cannot carry both label sets without `sum()` counting twice). `volume`
//!   is the volume id, as csi-lib labels it; a volume's series go when it
//!   is unpublished (csi-lib keeps them).
//! - `certmanager_csi_certificate_request_ready_status{name,namespace,condition,issuer_name,issuer_kind,issuer_group}`:
//!   1 for the `Ready` condition's status (`True`, `False`, `Unknown`) of
//!   each request the watch holds, 0 for the other two.
//! - `certmanager_csi_managed_certificate_request_count{node}` and
//!   `certmanager_csi_managed_volume_count{node}`.
//! - the `name` label (the CertificateRequest's name) on the expiration and
//!   renewal timestamp gauges; a renewal replaces its volume's series.
//!
//! `node` is the node's name where csi-lib puts a hash of it: the
//! PodMonitor honours the driver's labels and adds the node's name as
//! `node` to every series, so with the name the two agree (and the
//! dashboard's node filter works on these series too).
//!
//! Written from csi-lib's documented names and labels, not from its code.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::{MetricType, TypedMetric};

use super::{CertLabels, IssuerLabels, LiveStats};

/// csi-lib's labels of the issuance counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeVolumeLabels {
    /// The node's name (csi-lib: its hash; see the module's page).
    pub node: String,
    /// The CSI volume id.
    pub volume: String,
}

/// One request the watch holds, as the ready-status series shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestReady {
    /// The CertificateRequest's name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Its `Ready` condition's status (`True`, `False`, `Unknown`).
    pub ready: String,
    /// `issuerRef.name`.
    pub issuer_name: String,
    /// `issuerRef.kind` (empty when unset).
    pub issuer_kind: String,
    /// `issuerRef.group` (empty when unset).
    pub issuer_group: String,
}

/// An issuance counter served with our per-issuer labels or, with
/// `--csi-lib-issue-labels`, csi-lib's `{node, volume}`. Both are counted;
/// one is served.
#[derive(Clone, Debug, Default)]
pub(crate) struct IssueCounter {
    by_issuer: Family<IssuerLabels, Counter>,
    by_volume: Family<NodeVolumeLabels, Counter>,
    csi_lib_labels: Arc<AtomicBool>,
}

impl IssueCounter {
    pub(crate) fn inc(&self, issuer: &IssuerLabels, volume: &NodeVolumeLabels) {
        self.by_issuer.get_or_create(issuer).inc();
        self.by_volume.get_or_create(volume).inc();
    }

    pub(crate) fn remove(&self, volume: &NodeVolumeLabels) {
        self.by_volume.remove(volume);
    }
}

impl TypedMetric for IssueCounter {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for IssueCounter {
    fn encode(&self, encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        if self.csi_lib_labels.load(Ordering::Relaxed) {
            self.by_volume.encode(encoder)
        } else {
            self.by_issuer.encode(encoder)
        }
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

/// The node label and each volume's current certificate gauge labels.
#[derive(Debug, Default)]
pub(crate) struct CsiLib {
    node: Mutex<String>,
    current: Mutex<HashMap<String, CertLabels>>,
}

impl CsiLib {
    fn node(&self) -> String {
        self.node
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// csi-lib's labels of volume `volume_id`.
    pub(crate) fn volume_labels(&self, volume_id: &str) -> NodeVolumeLabels {
        NodeVolumeLabels {
            node: self.node(),
            volume: volume_id.to_owned(),
        }
    }

    /// Volume `volume_id`'s gauges carry `labels` from now on; the labels
    /// they carried before, when different (a renewal: another request).
    pub(crate) fn serve(&self, volume_id: &str, labels: &CertLabels) -> Option<CertLabels> {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        current
            .insert(volume_id.to_owned(), labels.clone())
            .filter(|old| old != labels)
    }

    /// Volume `volume_id` is gone; the labels its gauges carried.
    pub(crate) fn forget(&self, volume_id: &str) -> Option<CertLabels> {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(volume_id)
    }
}

impl super::Metrics {
    /// Serves csi-lib's series too: `node_id` is their `node` label;
    /// `issue_labels` is `--csi-lib-issue-labels`; the ready status and the
    /// managed counts are read from `live` at scrape time.
    pub fn with_csi_lib(
        mut self,
        node_id: &str,
        issue_labels: bool,
        live: Option<Arc<dyn LiveStats>>,
    ) -> Self {
        node_id.clone_into(
            &mut self
                .csi_lib
                .node
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        self.issue_requests
            .csi_lib_labels
            .store(issue_labels, Ordering::Relaxed);
        self.issue_errors
            .csi_lib_labels
            .store(issue_labels, Ordering::Relaxed);
        if let Some(live) = live {
            self.registry.register_collector(Box::new(CsiLibCollector {
                live,
                node: node_id.to_owned(),
            }));
        }
        self
    }
}

/// The Ready condition's three statuses, as csi-lib reports them.
const READY_STATUSES: [&str; 3] = ["True", "False", "Unknown"];

/// Reads the ready status and the managed counts at scrape time.
#[derive(Debug)]
struct CsiLibCollector {
    live: Arc<dyn LiveStats>,
    node: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReadyLabels {
    name: String,
    namespace: String,
    condition: String,
    issuer_name: String,
    issuer_kind: String,
    issuer_group: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabels {
    node: String,
}

impl Collector for CsiLibCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(values) = self.live.read() else {
            return Ok(());
        };
        let node = NodeLabels {
            node: self.node.clone(),
        };
        if let Some(r) = values.renewer {
            let managed = ConstGauge::new(r.managed as i64);
            let mut me = encoder.encode_descriptor(
                "certmanager_csi_managed_volume_count",
                "The number of managed volumes by the csi driver.",
                None,
                managed.metric_type(),
            )?;
            managed.encode(me.encode_family(&node)?)?;
        }
        if values.watch.is_none() {
            return Ok(());
        }
        let requests = self.live.requests();
        let count = ConstGauge::new(requests.len() as i64);
        let mut me = encoder.encode_descriptor(
            "certmanager_csi_managed_certificate_request_count",
            "The number of managed certificate requests by the csi driver.",
            None,
            count.metric_type(),
        )?;
        count.encode(me.encode_family(&node)?)?;
        let mut me = encoder.encode_descriptor(
            "certmanager_csi_certificate_request_ready_status",
            "The ready status of the certificate request.",
            None,
            MetricType::Gauge,
        )?;
        for r in &requests {
            for condition in READY_STATUSES {
                let labels = ReadyLabels {
                    name: r.name.clone(),
                    namespace: r.namespace.clone(),
                    condition: condition.to_owned(),
                    issuer_name: r.issuer_name.clone(),
                    issuer_kind: r.issuer_kind.clone(),
                    issuer_group: r.issuer_group.clone(),
                };
                let value = ConstGauge::new(i64::from(r.ready == condition));
                value.encode(me.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;

    fn spec(issuer: &str) -> cmcsi_attrs::CertificateSpec {
        let ctx: std::collections::BTreeMap<String, String> = [
            ("csi.cert-manager.io/issuer-name", issuer),
            ("csi.cert-manager.io/dns-names", "a.example.com"),
            ("csi.storage.k8s.io/pod.namespace", "ns"),
            ("csi.storage.k8s.io/pod.name", "web"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        match cmcsi_attrs::parse(&ctx) {
            Ok(spec) => spec,
            Err(e) => panic!("{e}"),
        }
    }

    fn series(m: &Metrics, prefix: &str) -> Vec<String> {
        m.encode()
            .lines()
            .filter(|l| l.starts_with(prefix))
            .map(str::to_owned)
            .collect()
    }

    const TARGET: &str = "/var/lib/kubelet/pods/u/volumes/kubernetes.io~csi/tls/mount";

    #[test]
    fn a_renewal_replaces_its_volumes_gauges_and_unpublish_removes_them() {
        let m = Metrics::new(None, 10).with_csi_lib("node-a", false, None);
        let t = |s| std::time::UNIX_EPOCH + std::time::Duration::from_secs(s);
        m.issued("csi-1", &spec("ca"), TARGET, "web-abc", t(100), Some(t(50)));
        m.issued(
            "csi-1",
            &spec("ca"),
            TARGET,
            "web-def",
            t(200),
            Some(t(150)),
        );
        let exp = series(
            &m,
            "certmanager_csi_certificate_request_expiration_timestamp_seconds{",
        );
        assert_eq!(exp.len(), 1, "{exp:?}");
        assert!(
            exp[0].contains("name=\"web-def\"") && exp[0].ends_with(" 200.0"),
            "{exp:?}"
        );
        let ren = series(
            &m,
            "certmanager_csi_certificate_request_renewal_timestamp_seconds{",
        );
        assert_eq!(ren.len(), 1, "{ren:?}");
        m.forget("csi-1");
        for gauge in [
            "certmanager_csi_certificate_request_expiration_timestamp_seconds{",
            "certmanager_csi_certificate_request_renewal_timestamp_seconds{",
        ] {
            assert!(series(&m, gauge).is_empty(), "{gauge}");
        }
    }

    #[test]
    fn the_issue_counters_carry_one_label_set_chosen_by_the_flag() {
        let t = std::time::UNIX_EPOCH;
        for csi_lib in [false, true] {
            let m = Metrics::new(None, 10).with_csi_lib("node-a", csi_lib, None);
            m.failed("csi-1", &spec("ca"));
            m.issued("csi-2", &spec("ca"), TARGET, "r", t, None);
            let req = series(&m, "certmanager_csi_issue_requests_total{");
            let err = series(&m, "certmanager_csi_issue_errors_total{");
            if csi_lib {
                assert_eq!(req.len(), 2, "{req:?}");
                assert!(
                    req.iter().all(|l| l.contains("node=\"node-a\"")
                        && l.contains("volume=\"csi-")
                        && !l.contains("issuer_name")),
                    "{req:?}"
                );
                assert_eq!(err.len(), 1, "{err:?}");
                m.forget("csi-1");
                assert_eq!(series(&m, "certmanager_csi_issue_requests_total{").len(), 1);
            } else {
                assert_eq!(req.len(), 1, "{req:?}");
                assert!(
                    req[0].contains("issuer_name=\"ca\"") && req[0].ends_with(" 2"),
                    "{req:?}"
                );
                assert!(!req[0].contains("volume="), "{req:?}");
            }
        }
    }
}
