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
use std::sync::{Arc, Mutex, PoisonError, Weak};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::{MetricType, TypedMetric};

use super::{CertLabels, IssuerLabels};

/// csi-lib's labels of the issuance counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeVolumeLabels {
    /// The node's name (csi-lib: its hash; see the module's page).
    pub node: String,
    /// The CSI volume id.
    pub volume: String,
}

/// An issuance counter served with our per-issuer labels or, with
/// `--csi-lib-issue-labels`, csi-lib's `{node, volume}`. Both are counted;
/// one is served.
#[derive(Clone, Debug, Default)]
pub(crate) struct IssueCounter {
    pub(crate) by_issuer: Family<IssuerLabels, Counter>,
    pub(crate) by_volume: Family<NodeVolumeLabels, Counter>,
    csi_lib_labels: Arc<AtomicBool>,
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

/// csi-lib's per-volume state: the node's name and each volume's current
/// certificate gauge labels.
#[derive(Debug, Default)]
pub(crate) struct CsiLib {
    node: Mutex<String>,
    /// The labels each volume's expiration and renewal gauges carry now.
    current: Mutex<HashMap<String, CertLabels>>,
}

impl CsiLib {
    fn node(&self) -> String {
        self.node
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl super::Metrics {
    /// Serves csi-lib's series too: `node_id` is their `node` label;
    /// `issue_labels` is `--csi-lib-issue-labels`;
    /// the ready status and managed counts are read from `driver` at
    /// scrape time.
    pub(crate) fn with_csi_lib(
        mut self,
        node_id: &str,
        issue_labels: bool,
        driver: Weak<crate::driver::Driver>,
    ) -> Self {
        *self
            .csi_lib
            .node
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = node_id.to_owned();
        self.issue_requests
            .csi_lib_labels
            .store(issue_labels, Ordering::Relaxed);
        self.issue_errors
            .csi_lib_labels
            .store(issue_labels, Ordering::Relaxed);
        self.registry.register_collector(Box::new(CsiLibCollector {
            driver,
            node: self.csi_lib.node(),
        }));
        self
    }

    /// An issuance of `volume_id` ran: counted per issuer and per volume,
    /// and as an error when it `failed`.
    pub(crate) fn issuance_attempted(&self, volume_id: &str, issuer: IssuerLabels, failed: bool) {
        let volume = NodeVolumeLabels {
            node: self.csi_lib.node(),
            volume: volume_id.to_owned(),
        };
        self.issue_requests.by_issuer.get_or_create(&issuer).inc();
        self.issue_requests.by_volume.get_or_create(&volume).inc();
        if failed {
            self.issue_errors.by_issuer.get_or_create(&issuer).inc();
            self.issue_errors.by_volume.get_or_create(&volume).inc();
        }
    }

    /// Volume `volume_id` now serves a certificate that expires at
    /// `not_after` and is renewed at `next` (Unix seconds), issued by the
    /// request named in `labels.name`: its gauges are set, and those of its
    /// previous request removed.
    pub(crate) fn certificate_served(
        &self,
        volume_id: &str,
        labels: CertLabels,
        not_after: f64,
        next: Option<f64>,
    ) {
        let mut current = self
            .csi_lib
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = current.get(volume_id)
            && *old != labels
        {
            self.expiration.remove(old);
            self.renewal.remove(old);
        }
        self.expiration.get_or_create(&labels).set(not_after);
        match next {
            Some(next) => {
                self.renewal.get_or_create(&labels).set(next);
            }
            None => {
                self.renewal.remove(&labels);
            }
        }
        current.insert(volume_id.to_owned(), labels);
    }

    /// Volume `volume_id` was unpublished: its series go (the per-volume
    /// counters too, so the series count follows the node's volumes).
    pub(crate) fn volume_forgotten(&self, volume_id: &str) {
        let old = self
            .csi_lib
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(volume_id);
        if let Some(old) = old {
            self.expiration.remove(&old);
            self.renewal.remove(&old);
        }
        let volume = NodeVolumeLabels {
            node: self.csi_lib.node(),
            volume: volume_id.to_owned(),
        };
        self.issue_requests.by_volume.remove(&volume);
        self.issue_errors.by_volume.remove(&volume);
    }
}

/// The Ready condition's three statuses, as csi-lib reports them.
const READY_STATUSES: [&str; 3] = ["True", "False", "Unknown"];

/// Reads the ready status and the managed counts at scrape time.
#[derive(Debug)]
struct CsiLibCollector {
    driver: Weak<crate::driver::Driver>,
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
        let Some(d) = self.driver.upgrade() else {
            return Ok(());
        };
        let node = NodeLabels {
            node: self.node.clone(),
        };
        if let Some(r) = d.renewer.get() {
            let managed = ConstGauge::new(r.stats().managed as i64);
            let mut me = encoder.encode_descriptor(
                "certmanager_csi_managed_volume_count",
                "The number of managed volumes by the csi driver.",
                None,
                managed.metric_type(),
            )?;
            managed.encode(me.encode_family(&node)?)?;
        }
        let Ok(kube) = &d.kube else {
            return Ok(());
        };
        let requests = kube.issuer.watched_requests();
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
            let cr = &r.object;
            let status = cr
                .status
                .as_ref()
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
                .map_or("Unknown", |c| c.status.as_str());
            let issuer = &cr.spec.issuer_ref;
            for condition in READY_STATUSES {
                let labels = ReadyLabels {
                    name: r.key.name.clone(),
                    namespace: r.key.namespace.clone(),
                    condition: condition.to_owned(),
                    issuer_name: issuer.name.clone(),
                    issuer_kind: issuer.kind.clone().unwrap_or_default(),
                    issuer_group: issuer.group.clone().unwrap_or_default(),
                };
                let value = ConstGauge::new(i64::from(status == condition));
                value.encode(me.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;

    fn labels(name: &str) -> CertLabels {
        CertLabels {
            name: name.into(),
            namespace: "ns".into(),
            pod: "web".into(),
            volume: "tls".into(),
            issuer_name: "ca".into(),
            issuer_kind: "Issuer".into(),
            issuer_group: "cert-manager.io".into(),
        }
    }

    fn series(m: &Metrics, prefix: &str) -> Vec<String> {
        m.encode()
            .lines()
            .filter(|l| l.starts_with(prefix))
            .map(str::to_owned)
            .collect()
    }

    fn issuer() -> IssuerLabels {
        IssuerLabels {
            namespace: "ns".into(),
            issuer_name: "ca".into(),
            issuer_kind: "Issuer".into(),
            issuer_group: "cert-manager.io".into(),
        }
    }

    #[test]
    fn a_renewal_replaces_its_volumes_gauges_and_unpublish_removes_them() {
        let m = Metrics::new(None, 10).with_csi_lib("node-a", false, std::sync::Weak::new());
        m.certificate_served("csi-1", labels("web-abc"), 100.0, Some(50.0));
        m.certificate_served("csi-1", labels("web-def"), 200.0, Some(150.0));
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
        m.volume_forgotten("csi-1");
        for gauge in [
            "certmanager_csi_certificate_request_expiration_timestamp_seconds{",
            "certmanager_csi_certificate_request_renewal_timestamp_seconds{",
        ] {
            assert!(series(&m, gauge).is_empty(), "{gauge}");
        }
    }

    #[test]
    fn the_issue_counters_carry_one_label_set_chosen_by_the_flag() {
        for csi_lib in [false, true] {
            let m = Metrics::new(None, 10).with_csi_lib("node-a", csi_lib, std::sync::Weak::new());
            m.issuance_attempted("csi-1", issuer(), true);
            m.issuance_attempted("csi-2", issuer(), false);
            let req = series(&m, "certmanager_csi_issue_requests_total{");
            let err = series(&m, "certmanager_csi_issue_errors_total{");
            let node = "node-a";
            if csi_lib {
                assert_eq!(req.len(), 2, "{req:?}");
                assert!(
                    req.iter().all(|l| l.contains(&format!("node=\"{node}\""))
                        && l.contains("volume=\"csi-")
                        && !l.contains("issuer_name")),
                    "{req:?}"
                );
                assert_eq!(err.len(), 1, "{err:?}");
                m.volume_forgotten("csi-1");
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
