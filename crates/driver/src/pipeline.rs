//! The issuance pipeline, one function used by publish and by the renewer:
//! key → CSR → CertificateRequest → await → check → write the file set →
//! metadata with the next due time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cmcsi_attrs::CertificateSpec;
use cmcsi_issuer_client::{self as ic, IssuerClient, SecretToken};
use cmcsi_keygen::{self as keygen, ChainSummary, PrivateKey};
use cmcsi_store::{FileSet, Metadata, Store, StoreError};
use serde::{Deserialize, Serialize};

use crate::blocking::Cost;
use crate::convert;
use crate::error::DriverError;
use crate::locks::VolumeGuard;
use crate::volume::Volume;

/// Name of the private side file holding an in-flight request and its key,
/// so a restarted driver resumes the request instead of asking again (Go
/// driver issue #119).
pub const PENDING_FILE: &str = "pending-request.json";

/// What the pipeline persists about an in-flight request (0600, on the
/// tmpfs, outside the Pod's `data/`), as read back.
///
/// The key is stored as its PEM lines, a JSON array of strings that need no
/// escapes (base64 and the armour lines): serde_json then hands out
/// borrowed slices of the (zeroizing) file buffer, instead of unescaping a
/// copy of the key into its internal scratch buffer, which it frees
/// without wiping. A record whose key lines need unescaping is refused.
#[derive(Deserialize)]
struct Pending<'a> {
    namespace: String,
    name: String,
    /// PKCS#8 PEM of the request's key, one line per entry.
    #[serde(borrow)]
    key: Vec<&'a str>,
}

/// The same record, borrowed for writing (the key is not copied out of its
/// zeroizing buffer).
#[derive(Serialize)]
struct PendingRef<'a> {
    namespace: &'a str,
    name: &'a str,
    key: Vec<&'a str>,
}

/// Encodes the pending record of request `namespace/name` for `key_pem`
/// into a zeroizing buffer (with no unwiped copy left behind on the way).
fn encode_pending(
    namespace: &str,
    name: &str,
    key_pem: &str,
) -> serde_json::Result<zeroize::Zeroizing<Vec<u8>>> {
    cmcsi_store::to_json_zeroizing(&PendingRef {
        namespace,
        name,
        key: key_pem.lines().collect(),
    })
}

/// Decodes a pending record: the request's namespace and name, and its
/// key's PEM in a zeroizing string. `None` for a record this version cannot
/// read (including one that would need a copy of the key to unescape).
fn decode_pending(raw: &[u8]) -> Option<(String, String, zeroize::Zeroizing<String>)> {
    let p: Pending<'_> = serde_json::from_slice(raw).ok()?;
    let len = p.key.iter().map(|l| l.len() + 1).sum();
    let mut pem = zeroize::Zeroizing::new(String::with_capacity(len));
    for line in &p.key {
        pem.push_str(line);
        pem.push('\n');
    }
    Some((p.namespace, p.name, pem))
}

/// The namespace and name of the request a pending record names, without
/// the key (for the `status` command).
pub(crate) fn pending_request(raw: &[u8]) -> Option<(String, String)> {
    decode_pending(raw).map(|(namespace, name, _key)| (namespace, name))
}

/// A submitted request: its key, its name and the key's PKCS#8 PEM.
type Submitted = (PrivateKey, String, zeroize::Zeroizing<String>);

/// The outcome of one successful issuance.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The new certificate's summary.
    pub summary: ChainSummary,
    /// The CertificateRequest that was signed.
    pub request: String,
    /// When the volume is next due (written to its metadata).
    pub next_issuance: Option<SystemTime>,
    /// `renew-before` of the volume.
    pub renew_before: Option<Duration>,
}

/// Everything one issuance needs.
pub struct Pipeline<'a> {
    /// The node store. Every read and write of it, and the CPU work on
    /// keys and certificates, runs on Tokio's blocking pool, so one
    /// tenant's publish never holds up the async workers that serve the
    /// health RPCs and every other volume.
    pub store: &'a Arc<Store>,
    /// The volume's lock, held by each blocking task the pipeline starts, so
    /// an issuance the kubelet gives up on cannot release the lock while a
    /// file set is still being written (an unpublish would race it).
    pub guard: Option<VolumeGuard>,
    /// The issuance's slot of `--max-concurrent-issuances`, held by each
    /// blocking task too: work a cancelled or timed-out issuance leaves
    /// running keeps its slot until it ends.
    pub permit: Option<cmcsi_renewer::IssuancePermit>,
    /// The key pool.
    pub pool: &'a keygen::KeyPool,
    /// The CertificateRequest client.
    pub issuer: &'a IssuerClient,
    /// Whether requests are created with the Pod's token.
    pub use_token_request: bool,
    /// Requests kept per volume.
    pub max_requests_per_volume: usize,
    /// Computes the next due time from a lifetime.
    pub planner: cmcsi_renewer::Planner,
    /// How long to wait for cert-manager.
    pub timeout: Duration,
    /// The trust bundle watch, for volumes that name a trust bundle source.
    pub(crate) trust: Option<crate::trust::TrustCtx<'a>>,
}

impl Pipeline<'_> {
    /// Issues (or renews) the certificate of `volume` (as loaded by the
    /// caller, its spec parsed with the Pod's addresses) and writes it.
    /// A failure leaves the current file set untouched.
    //
    // Longer than most functions on purpose: its order (record the request,
    // submit, await, check, write the files, then the metadata, then drop the
    // record) is what makes a crash at any point safe, so it reads top to
    // bottom in one place; the steps themselves are helpers.
    pub(crate) async fn issue(&self, volume: &Volume) -> Result<Issued, DriverError> {
        let volume_id = volume.id();
        let spec = &volume.spec;
        // A volume created by this operation has no pending record yet, nor
        // current files. With a trust bundle source, the CA file written last is
        // read too: it is kept when the source has gone.
        let (pending, current_ca) = if volume.created {
            (None, None)
        } else {
            let id = volume_id.to_owned();
            let ca_file = spec.trust_bundle.as_ref().map(|_| spec.files.ca.clone());
            // The CA file of a trust bundle can be large: the pool.
            self.blocking(Cost::small_if(ca_file.is_none()), move |s| {
                let pending = s.read_private(&id, PENDING_FILE)?;
                let current_ca = match ca_file {
                    Some(f) => s.read_current_file(&id, &f)?.map(|b| b.to_vec()),
                    None => None,
                };
                Ok((pending, current_ca))
            })
            .await?
        };
        let namespace = spec.pod.namespace.clone().ok_or_else(|| {
            DriverError::InvalidRequest(
                "the volume context has no csi.storage.k8s.io/pod.namespace: the CSIDriver \
                 object must set podInfoOnMount: true"
                    .into(),
            )
        })?;
        let token = if self.use_token_request {
            Some(token_of(&volume.meta.volume_context)?)
        } else {
            None
        };
        // The trust bundle first: a missing source fails before any request is made.
        let trust_ca = match (&spec.trust_bundle, self.trust) {
            (Some(tb), Some(ctx)) => {
                crate::trust::resolve(ctx, volume_id, spec, tb, current_ca).await?
            }
            _ => None,
        };

        // The watch keeps only requests of volumes it was told of: register
        // this one before its first request is created.
        self.issuer.manage_volume(ic::ManagedVolume {
            volume_id: volume_id.to_owned(),
            namespace: namespace.clone(),
            pod_uid: spec.pod.uid.clone(),
        });
        self.issuer.wait_synced(self.timeout).await?;
        // `pkcs8` is the key's PKCS#8 PEM as recorded with the request,
        // reused for the key file (encoding costs a public-key derivation).
        let (key, name, pkcs8) = match self.resumable(volume_id, pending).await? {
            Some(p) => p,
            None => {
                self.submit(volume_id, spec, &namespace, token.as_ref())
                    .await?
            }
        };
        let outcome = self
            .issuer
            .await_outcome((namespace.as_str(), name.as_str()), self.timeout)
            .await;
        let issued = match outcome {
            Ok(issued) => issued,
            Err(e) => {
                // A request that can never succeed is not resumed; a timed-out
                // one is (the next attempt waits on the same request).
                if !matches!(e, ic::IssueError::TimedOut { .. }) {
                    self.remove_pending(volume_id).await?;
                }
                return Err(e.into());
            }
        };

        // Checking the chain, encoding the keystores (PBKDF2 for PKCS#12)
        // and writing: one blocking task, in the crash-safe order; small
        // without keystores or a trust bundle and with a chain and CA of
        // ordinary size (a tenant's own CA issuer can return a CA of up to
        // a Secret's 1 MiB, whose parsing would hold the worker).
        let (id, planner) = (volume_id.to_owned(), self.planner.clone());
        let (mut meta, spec) = (volume.meta.clone(), volume.spec.clone());
        let cost = Cost::small_if(
            spec.files.pkcs12.is_none()
                && spec.files.jks.is_none()
                && trust_ca.is_none()
                && issued.certificate_pem.len() + issued.ca_pem.len() <= SMALL_CHAIN_BYTES,
        );
        self.blocking(cost, move |s| {
            let summary = ChainSummary::from_pem(&issued.certificate_pem)?;
            if !summary.leaf_matches_key(&key) {
                s.remove_private(&id, PENDING_FILE)?;
                return Err(DriverError::Key(keygen::Error::LeafKeyMismatch));
            }
            let files = file_set(&spec, &key, pkcs8, &issued, &summary, trust_ca.as_deref())?;
            let gid = spec.fs_group.or_else(|| {
                meta.volume_mount_group
                    .as_deref()
                    .and_then(|g| g.parse::<u32>().ok())
            });
            s.write_files(&id, &files, gid)?;

            let lifetime = lifetime_of(&summary, spec.renew_before);
            let next = planner.next_issuance(&id.as_str().into(), &lifetime);
            meta.next_issuance_time = Some(next);
            s.write_metadata(&meta)?;
            s.remove_private(&id, PENDING_FILE)?;
            // The success where `status` and volume health read it, in this
            // task rather than a hop of its own; failing to record it never
            // fails the issuance.
            if let Err(e) = crate::outcome::record_issued(s, &id, &name) {
                tracing::warn!(volume = %id, error = %e, "could not record the issuance's outcome for status and volume health");
            }
            Ok(Issued {
                summary,
                request: name,
                next_issuance: Some(next),
                renew_before: spec.renew_before,
            })
        })
        .await
    }

    /// Runs `f` on Tokio's blocking pool with the store, holding the
    /// volume's lock and the issuance's permit until it returns (see
    /// [`Pipeline::guard`] and [`Pipeline::permit`]).
    async fn blocking<T: Send + 'static>(
        &self,
        cost: Cost,
        f: impl FnOnce(&Store) -> Result<T, DriverError> + Send + 'static,
    ) -> Result<T, DriverError> {
        let held = (self.guard.clone(), self.permit.clone());
        crate::blocking::with_store(self.store, cost, held, "issuance task", f).await
    }

    /// Drops the volume's pending-request record.
    async fn remove_pending(&self, volume_id: &str) -> Result<(), DriverError> {
        let id = volume_id.to_owned();
        self.blocking(Cost::Small, move |s| {
            Ok(s.remove_private(&id, PENDING_FILE).map(drop)?)
        })
        .await
    }

    /// The volume's in-flight request, if its record (`pending`, as read
    /// from the store) names one that still exists and can still be issued,
    /// with the key it was made for.
    async fn resumable(
        &self,
        volume_id: &str,
        pending: Option<zeroize::Zeroizing<Vec<u8>>>,
    ) -> Result<Option<Submitted>, DriverError> {
        let Some(raw) = pending else {
            return Ok(None);
        };
        let (namespace, name, key_pem) = match decode_pending(&raw) {
            Some(p) => p,
            None => {
                tracing::warn!(
                    volume = volume_id,
                    "discarding unreadable pending-request record"
                );
                self.remove_pending(volume_id).await?;
                return Ok(None);
            }
        };
        let live = self
            .issuer
            .state(&namespace, &name)
            .is_some_and(|s| !s.phase.is_terminal() || s.issued().is_some());
        if !live {
            self.remove_pending(volume_id).await?;
            return Ok(None);
        }
        // Parsing (and checking) a large RSA key takes milliseconds.
        let (key, key_pem) = self
            .blocking(Cost::Large, move |_| {
                Ok((PrivateKey::from_pem_any(&key_pem)?, key_pem))
            })
            .await?;
        tracing::info!(
            volume = volume_id,
            request = %name,
            namespace = %namespace,
            "resuming in-flight CertificateRequest"
        );
        Ok(Some((key, name, key_pem)))
    }

    /// Makes a key and a CSR and creates the request, recording it first so
    /// a crash at any point never leads to a second request for it.
    async fn submit(
        &self,
        volume_id: &str,
        spec: &CertificateSpec,
        namespace: &str,
        token: Option<&SecretToken>,
    ) -> Result<Submitted, DriverError> {
        let key_spec = convert::key_spec(spec);
        let key = match self.reused_key(volume_id, spec, key_spec).await? {
            Some(k) => k,
            None => self.pool.take(&key_spec).await?,
        };
        self.issuer
            .cleanup(volume_id, self.max_requests_per_volume.saturating_sub(1))
            .await?;

        // Signing the CSR is CPU work (RSA-8192: tens of milliseconds), and
        // recording the request is store IO: one task on the blocking pool,
        // so health RPCs never wait behind either.
        let name = ic::generate_name(spec.pod.name.as_deref().unwrap_or_default())?;
        let params = convert::csr_params(spec);
        let (id, ns, request) = (volume_id.to_owned(), namespace.to_owned(), name.clone());
        let (key, csr, pkcs8) = self
            .blocking(cheap_key(&key_spec), move |s| {
                let csr = keygen::build_csr(&key, &params)?;
                let pkcs8 = key.to_pem(keygen::KeyEncoding::Pkcs8)?;
                let record =
                    encode_pending(&ns, &request, &pkcs8).map_err(DriverError::PendingRecord)?;
                s.write_private(&id, PENDING_FILE, &record)?;
                Ok((key, csr, pkcs8))
            })
            .await?;

        let req = convert::new_request(volume_id, spec, namespace, &name, csr);
        match self.issuer.submit(req, token).await {
            Ok(_) => Ok((key, name, pkcs8)),
            Err(e) => {
                if !e.is_retryable() {
                    self.remove_pending(volume_id).await?;
                }
                Err(e.into())
            }
        }
    }

    /// With `reuse-private-key`, the key currently in the volume, if it still
    /// matches the spec (a changed spec gets a new key, and says so).
    async fn reused_key(
        &self,
        volume_id: &str,
        spec: &CertificateSpec,
        key_spec: keygen::KeySpec,
    ) -> Result<Option<PrivateKey>, DriverError> {
        if !spec.reuse_private_key {
            return Ok(None);
        }
        let (id, file) = (volume_id.to_owned(), spec.files.private_key.clone());
        let pod = spec.pod.name.clone().unwrap_or_default();
        let namespace = spec.pod.namespace.clone().unwrap_or_default();
        self.blocking(cheap_key(&key_spec), move |s| {
            let current = match s.read_current_file(&id, &file) {
                Ok(Some(bytes)) => bytes,
                Ok(None) | Err(StoreError::VolumeNotFound { .. }) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            let Ok(pem) = std::str::from_utf8(&current) else {
                tracing::warn!(
                    volume = id,
                    pod,
                    namespace,
                    "current key file is not PEM; generating a new key"
                );
                return Ok(None);
            };
            match PrivateKey::from_pem(pem, &key_spec) {
                Ok(k) => Ok(Some(k)),
                Err(e) => {
                    tracing::info!(
                        volume = id,
                        reason = %e,
                        "not reusing the current key; generating a new one"
                    );
                    Ok(None)
                }
            }
        })
        .await
    }
}

/// Most bytes of PEM chain and CA whose check and writing are
/// [`Cost::Small`]: a leaf and a few intermediates are 1–8 KiB.
const SMALL_CHAIN_BYTES: usize = 16 * 1024;

/// [`Cost::Small`] for a key whose CSR signature (and parsing) takes tens of
/// microseconds: P-256 (through `ring`) and Ed25519. RSA, P-384 and P-521
/// take hundreds of microseconds to tens of milliseconds: the blocking pool.
fn cheap_key(spec: &keygen::KeySpec) -> Cost {
    Cost::small_if(matches!(
        spec,
        keygen::KeySpec::EcdsaP256 | keygen::KeySpec::Ed25519
    ))
}

/// The files a volume shows its Pod: key (in the spec's encoding; `pkcs8` is
/// the key's PKCS#8 PEM, reused to spare an encoding), chain, CA and, when
/// enabled, the keystores, truststores and credential bundle
/// ([`crate::keystores::add_files`]; add a new keystore format there).
fn file_set(
    spec: &CertificateSpec,
    key: &PrivateKey,
    pkcs8: zeroize::Zeroizing<String>,
    issued: &ic::Issued,
    summary: &ChainSummary,
    trust_ca: Option<&[u8]>,
) -> Result<FileSet, DriverError> {
    // A trust bundle, when the volume has one, replaces the issuer's CA everywhere.
    let ca = trust_ca.unwrap_or(&issued.ca_pem);
    let mut files = FileSet::new();
    let key_pem = match convert::key_encoding(spec) {
        keygen::KeyEncoding::Pkcs8 => pkcs8,
        other => key.to_pem(other)?,
    };
    files.insert(spec.files.private_key.clone(), key_pem.as_bytes().to_vec());
    files.insert(
        spec.files.certificate.clone(),
        issued.certificate_pem.clone(),
    );
    files.insert(spec.files.ca.clone(), ca.to_vec());
    crate::keystores::add_files(&mut files, spec, key, summary, &issued.certificate_pem, ca)?;
    Ok(files)
}

/// The Pod's ServiceAccount token from a volume context (token-request mode).
pub fn token_of(context: &BTreeMap<String, String>) -> Result<SecretToken, ic::TokenError> {
    SecretToken::from_context_value(
        context
            .get(ic::SERVICE_ACCOUNT_TOKENS_KEY)
            .map(String::as_str),
    )
}

/// The renewer's view of a certificate.
pub fn lifetime_of(
    summary: &ChainSummary,
    renew_before: Option<Duration>,
) -> cmcsi_renewer::Lifetime {
    let l = cmcsi_renewer::Lifetime::new(summary.not_before, summary.not_after);
    match renew_before {
        Some(rb) => l.with_renew_before(rb),
        None => l,
    }
}

/// Metadata for a volume seen for the first time.
///
/// With `go_defaults` the metadata is written as the Go driver writes it (no
/// format marker), so the volume keeps the Go driver's defaults for good,
/// also after a restart without `--go-defaults`.
pub fn new_metadata(
    volume_id: &str,
    target_path: &str,
    context: &BTreeMap<String, String>,
    mount_group: Option<u32>,
    go_defaults: bool,
) -> Metadata {
    let mut meta = Metadata::new(volume_id, target_path);
    if go_defaults {
        meta.format = cmcsi_store::MetadataFormat::GoDriver;
    }
    meta.volume_context = context.clone();
    meta.volume_mount_group = mount_group.map(|g| g.to_string());
    meta
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use zeroize::Zeroizing;

    fn key_pem() -> Zeroizing<String> {
        PrivateKey::generate(&keygen::KeySpec::EcdsaP256)
            .unwrap()
            .to_pem(keygen::KeyEncoding::Pkcs8)
            .unwrap()
    }

    #[test]
    fn pending_record_round_trips_through_zeroizing_buffers() {
        let pem = key_pem();
        let record: Zeroizing<Vec<u8>> = encode_pending("ns", "req-1", &pem).unwrap();
        let (namespace, name, back): (String, String, Zeroizing<String>) =
            decode_pending(&record).unwrap();
        assert_eq!((namespace.as_str(), name.as_str()), ("ns", "req-1"));
        assert_eq!(*back, *pem);
        assert!(PrivateKey::from_pem_any(&back).is_ok());
    }

    #[test]
    fn pending_key_is_stored_without_json_escapes() {
        let pem = key_pem();
        let record = encode_pending("ns", "req-1", &pem).unwrap();
        let text = std::str::from_utf8(&record).unwrap();
        assert!(
            !text.contains('\\'),
            "an escape would make the parser copy the key: {} bytes",
            text.len()
        );
    }

    #[test]
    fn pending_records_that_need_unescaping_are_refused() {
        let pem = key_pem();
        // The earlier format: the whole PEM as one string, newlines escaped.
        let old = serde_json::to_vec(&serde_json::json!({
            "namespace": "ns", "name": "req-1", "key": pem.as_str(),
        }))
        .unwrap();
        assert!(decode_pending(&old).is_none());
        let escaped = br#"{"namespace":"ns","name":"r","key":["a\nb"]}"#;
        assert!(decode_pending(escaped).is_none());
        assert!(decode_pending(b"not json").is_none());
    }
}
