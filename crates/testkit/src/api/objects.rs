//! [`FakeApi`]'s helpers for PodCertificateRequests, ClusterTrustBundles,
//! Leases and the test issuer's CAs.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::{Error, FakeApi, lock};
use crate::objects::{CTB, LEASE, PCR};

impl FakeApi {
    /// Which versions of `certificates.k8s.io` (PodCertificateRequests and
    /// ClusterTrustBundles) the server serves, from `v1` and `v1beta1`
    /// (default both; `["v1beta1"]` is a cluster on Kubernetes 1.35–1.36).
    pub fn set_certificates_versions(&self, versions: &[&str]) {
        lock(&self.shared.objects).certificates_versions =
            versions.iter().map(|v| (*v).to_owned()).collect();
    }

    /// Creates a PodCertificateRequest directly in the store (no HTTP, not
    /// counted), validated as the API server does; returns the stored
    /// object (as `v1`) or the API's error `Status` object.
    pub fn insert_pod_certificate_request(&self, ns: &str, obj: Value) -> Result<Value, Value> {
        lock(&self.shared.objects)
            .create(&PCR, "v1", ns, obj)
            .map_err(|e| e.status_json())
    }

    /// One PodCertificateRequest (as `v1`).
    pub fn pod_certificate_request(&self, ns: &str, name: &str) -> Option<Value> {
        lock(&self.shared.objects).get(&PCR, ns, name).ok()
    }

    /// Every PodCertificateRequest (as `v1`), sorted by namespace and name.
    pub fn pod_certificate_requests(&self) -> Vec<Value> {
        lock(&self.shared.objects).list(&PCR, None)
    }

    /// Every ClusterTrustBundle (as `v1`), sorted by name.
    pub fn cluster_trust_bundles(&self) -> Vec<Value> {
        lock(&self.shared.objects).list(&CTB, None)
    }

    /// One Lease.
    pub fn lease(&self, ns: &str, name: &str) -> Option<Value> {
        lock(&self.shared.objects).get(&LEASE, ns, name).ok()
    }

    /// Waits until `pred` holds for the PodCertificateRequests and
    /// ClusterTrustBundles (woken by every change to them, no polling);
    /// `Err(Timeout)` after `timeout` (tokio time).
    pub async fn wait_for_objects(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&[Value], &[Value]) -> bool,
    ) -> Result<(), Error> {
        let mut rx = lock(&self.shared.objects).subscribe();
        let fut = async {
            loop {
                rx.borrow_and_update();
                let (pcrs, ctbs) = (
                    self.pod_certificate_requests(),
                    self.cluster_trust_bundles(),
                );
                if pred(&pcrs, &ctbs) {
                    return Ok(());
                }
                if rx.changed().await.is_err() {
                    return Err(Error::Stopped);
                }
            }
        };
        tokio::time::timeout(timeout, fut)
            .await
            .unwrap_or(Err(Error::Timeout(timeout)))
    }

    /// Gives issuer `name` a new CA of its own: requests signed from now on
    /// chain to it (and carry it as `status.ca`), as after a CA rotation.
    /// Returns the new CA's certificate (PEM).
    pub fn rotate_issuer_ca(&self, name: &str) -> Result<String, Error> {
        let ca = Arc::new(crate::ca::TestCa::new()?);
        let pem = ca.cert_pem().to_owned();
        lock(&self.shared.issuer).cas.insert(name.to_owned(), ca);
        Ok(pem)
    }

    /// The CA issuer `name` signs with now (its own after
    /// [`FakeApi::rotate_issuer_ca`], else the test CA), PEM.
    pub fn issuer_ca_pem(&self, name: &str) -> String {
        lock(&self.shared.issuer)
            .cas
            .get(name)
            .map_or_else(|| self.ca_pem(), |ca| ca.cert_pem().to_owned())
    }
}
