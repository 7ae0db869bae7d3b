//! The ClusterTrustBundles the signer keeps: one per signer name in use,
//! named `<signer name with '/' as ':'>:trust-bundle` with `spec.signerName`
//! set, holding the CA certificates of the issuer's issued requests
//! (`status.ca`). When an issuer's CA changes, the old CA stays in the bundle
//! until `--trust-bundle-overlap` has passed since it was last seen, so Pods
//! keep trusting certificates from before the rotation; an expired CA goes at
//! once.
//!
//! When each CA was last seen is kept on the bundle itself (annotation
//! [`ANNOTATION_LAST_SEEN`]), so a restart or a failover loses nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::api::{Api, DynamicObject, PostParams};
use kube::core::ApiResource;
use serde_json::json;
use sha2::Digest;

/// When each CA of a bundle was last seen: `{"<sha256 of DER, hex>": "<RFC 3339>"}`.
pub const ANNOTATION_LAST_SEEN: &str = "pod-signer.cert-manager.io/ca-last-seen";
/// Label on every bundle the signer keeps.
pub const LABEL_MANAGED: &str = "pod-signer.cert-manager.io/managed";
/// At most this many signer names are remembered between writes (beyond it,
/// each issuance reads its bundle again).
const MAX_REMEMBERED: usize = 1024;
/// A CA's last-seen time is refreshed on the bundle at most this often.
const REFRESH: Duration = Duration::from_secs(3600);

/// The name of the bundle of `signer_name`.
pub fn bundle_name(signer_name: &str) -> String {
    format!("{}:trust-bundle", signer_name.replace('/', ":"))
}

/// One CA certificate: PEM block, DER hash, expiry.
#[derive(Clone, Debug)]
struct Ca {
    pem: String,
    fingerprint: String,
    not_after: jiff::Timestamp,
}

fn parse_cas(pem: &str) -> Vec<Ca> {
    let mut out = Vec::new();
    let marker = "-----END CERTIFICATE-----";
    let mut rest = pem;
    while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
        let Some(end) = rest[start..].find(marker) else {
            break;
        };
        let block = &rest[start..start + end + marker.len()];
        rest = &rest[start + end + marker.len()..];
        let Ok((_, der)) = der::pem::decode_vec(block.as_bytes()) else {
            continue;
        };
        let Ok(summary) = cmcsi_keygen::ChainSummary::from_pem(block.as_bytes()) else {
            continue;
        };
        let not_after =
            jiff::Timestamp::try_from(summary.not_after).unwrap_or(jiff::Timestamp::MAX);
        let fingerprint = sha2::Sha256::digest(&der)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        out.push(Ca {
            pem: format!("{block}\n"),
            fingerprint,
            not_after,
        });
    }
    out
}

/// What was last written for one signer name: the CAs' fingerprints, when,
/// and the SHA-256 of the `status.ca` PEM they came from.
type Written = (Vec<String>, Instant, [u8; 32]);

/// Keeps the bundles.
pub struct TrustPublisher {
    api: Api<DynamicObject>,
    ar: ApiResource,
    overlap: Duration,
    /// Per signer name: the CAs last written, when, and the SHA-256 of the
    /// `status.ca` PEM they came from (so the same PEM again is recognised
    /// without parsing its certificates: once per issuance otherwise).
    written: Mutex<HashMap<String, Written>>,
    /// One writer per bundle at a time.
    writing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for TrustPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustPublisher")
            .field("overlap", &self.overlap)
            .finish_non_exhaustive()
    }
}

impl TrustPublisher {
    /// A publisher writing ClusterTrustBundles of `version`.
    pub fn new(client: kube::Client, version: &str, overlap: Duration) -> Self {
        let ar = crate::types::cluster_trust_bundle_resource(version);
        Self {
            api: Api::all_with(client, &ar),
            ar,
            overlap,
            written: Mutex::new(HashMap::new()),
            writing: tokio::sync::Mutex::new(()),
        }
    }

    /// Records that `signer_name`'s issuer signed with the CA(s) in `ca_pem`;
    /// returns whether the bundle was written.
    pub async fn publish(&self, signer_name: &str, ca_pem: &str) -> Result<bool, kube::Error> {
        let raw: [u8; 32] = sha2::Sha256::digest(ca_pem.as_bytes()).into();
        if self.fresh_raw(signer_name, &raw) {
            return Ok(false);
        }
        let current = parse_cas(ca_pem);
        if current.is_empty() {
            return Ok(false);
        }
        let fps: Vec<String> = current.iter().map(|c| c.fingerprint.clone()).collect();
        if self.fresh(signer_name, &fps) {
            return Ok(false);
        }
        let _one_writer = self.writing.lock().await;
        if self.fresh(signer_name, &fps) {
            return Ok(false);
        }
        let name = bundle_name(signer_name);
        for _ in 0..5 {
            let now = jiff::Timestamp::now();
            let existing = self.api.get_opt(&name).await?;
            let (mut cas, mut seen, rv) = match &existing {
                Some(obj) => {
                    let bundle = obj
                        .data
                        .pointer("/spec/trustBundle")
                        .and_then(|v| v.as_str())
                        .unwrap_or("");
                    let seen: BTreeMap<String, String> = obj
                        .metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get(ANNOTATION_LAST_SEEN))
                        .and_then(|s| serde_json::from_str(s).ok())
                        .unwrap_or_default();
                    (
                        parse_cas(bundle),
                        seen,
                        obj.metadata.resource_version.clone(),
                    )
                }
                None => (Vec::new(), BTreeMap::new(), None),
            };
            let stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
            for c in &current {
                seen.insert(c.fingerprint.clone(), stamp.clone());
            }
            let overlap =
                jiff::SignedDuration::try_from(self.overlap).unwrap_or(jiff::SignedDuration::MAX);
            let keep_after = now.checked_sub(overlap).unwrap_or(jiff::Timestamp::MIN);
            // Current CAs first, then the older ones still inside the overlap.
            let mut next: Vec<Ca> = current.clone();
            cas.retain(|c| !fps.contains(&c.fingerprint));
            for c in cas {
                let last = seen
                    .get(&c.fingerprint)
                    .and_then(|s| s.parse::<jiff::Timestamp>().ok());
                if c.not_after > now
                    && last.is_some_and(|t| t >= keep_after)
                    && !next.iter().any(|n| n.fingerprint == c.fingerprint)
                {
                    next.push(c);
                }
            }
            next.retain(|c| c.not_after > now);
            if next.is_empty() {
                return Ok(false);
            }
            seen.retain(|fp, _| next.iter().any(|c| &c.fingerprint == fp));
            let bundle: String = next.iter().map(|c| c.pem.as_str()).collect();
            let mut obj: DynamicObject = serde_json::from_value(json!({
                "apiVersion": self.ar.api_version,
                "kind": "ClusterTrustBundle",
                "metadata": {
                    "name": name,
                    "labels": {LABEL_MANAGED: "true"},
                    "annotations": {ANNOTATION_LAST_SEEN: serde_json::to_string(&seen).unwrap_or_default()},
                },
                "spec": {"signerName": signer_name, "trustBundle": bundle},
            }))
            .map_err(kube::Error::SerdeError)?;
            let result = match rv {
                None => self.api.create(&PostParams::default(), &obj).await,
                Some(rv) => {
                    obj.metadata.resource_version = Some(rv);
                    self.api.replace(&name, &PostParams::default(), &obj).await
                }
            };
            match result {
                Ok(_) => {
                    let mut w = self
                        .written
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    if w.len() >= MAX_REMEMBERED {
                        w.clear();
                    }
                    w.insert(signer_name.to_owned(), (fps, Instant::now(), raw));
                    tracing::info!(bundle = %name, cas = next.len(), "published the trust bundle");
                    return Ok(true);
                }
                // Another writer (a previous leader) got there first: read again.
                Err(kube::Error::Api(e)) if e.code == 409 => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }

    fn fresh(&self, signer_name: &str, fps: &[String]) -> bool {
        let w = self
            .written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        w.get(signer_name).is_some_and(|(written, at, _)| {
            fps.iter().all(|f| written.contains(f)) && at.elapsed() < REFRESH
        })
    }

    /// Whether `status.ca` with this SHA-256 is the one last written, recently.
    fn fresh_raw(&self, signer_name: &str, raw: &[u8; 32]) -> bool {
        let w = self
            .written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        w.get(signer_name)
            .is_some_and(|(_, at, last)| last == raw && at.elapsed() < REFRESH)
    }
}
