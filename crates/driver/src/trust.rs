//! Trust bundles in volumes: which CA file an issuance writes when the volume names a
//! trust bundle source (`cluster-trust-bundle-*`, `trust-bundle-configmap`), and the
//! refresh that rewrites a volume's files, key and certificate unchanged, when a source
//! changes.
//!
//! The refresh is one function, [`Driver::refresh_trust`], run under the volume's lock
//! and writing in the store's one atomic swap. The trust watch's notifications reach it
//! through one queue ([`Driver::spawn_trust_refresher`]); that queue is the single hook
//! to move onto the renewer's per-volume wake once the renewer owns every wait.

use std::sync::Arc;

use cmcsi_attrs::{CertificateSpec, TrustBundle};
use cmcsi_issuer_client::{TrustError, TrustWatch};
use cmcsi_keygen::{self as keygen, ChainSummary, PrivateKey};
use cmcsi_store::FileSet;
use tokio::sync::mpsc;

use crate::driver::Driver;
use crate::error::DriverError;

/// The trust watch and the bound on one bundle, as an issuance needs them.
#[derive(Clone, Copy)]
pub(crate) struct TrustCtx<'a> {
    pub(crate) watch: &'a TrustWatch,
    pub(crate) max_bytes: usize,
}

/// The CA file of an issuance of `volume_id` whose spec names the trust bundle `tb`:
/// `Some(bundle)`, or `None` for the issuer's CA (an optional source that does not exist
/// yet). `current` is the volume's CA file now, if it has a file set: a source that
/// disappears or turns bad leaves it in place (logged), instead of failing the renewal.
pub(crate) async fn resolve(
    ctx: TrustCtx<'_>,
    volume_id: &str,
    namespace: &str,
    tb: &TrustBundle,
    current: Option<Vec<u8>>,
) -> Result<Option<Vec<u8>>, DriverError> {
    let outcome = async {
        ctx.watch.register(volume_id, namespace, &tb.source).await?;
        let sources = ctx.watch.resolve(namespace, &tb.source).await?;
        let max = ctx.max_bytes;
        // Parsing up to a megabyte of certificates is CPU work: off the async workers.
        tokio::task::spawn_blocking(move || {
            let mut bundle = keygen::TrustBundle::new(max);
            for (name, pem) in &sources {
                bundle.add_source(name, pem.as_bytes())?;
            }
            Ok::<_, keygen::Error>(bundle.to_pem().into_bytes())
        })
        .await
        .map_err(|e| DriverError::Worker(format!("trust bundle: {e}")))?
        .map_err(|e| DriverError::TrustBundle(e.to_string()))
    }
    .await;
    match outcome {
        Ok(pem) => Ok(Some(pem)),
        Err(e) => {
            let missing = matches!(
                e,
                DriverError::Trust(TrustError::Missing { .. } | TrustError::NotLabelled { .. })
            );
            if let Some(current) = current
                && !matches!(e, DriverError::Trust(TrustError::ConfigMapsDisabled))
            {
                tracing::warn!(
                    volume = volume_id,
                    source = %tb.source,
                    error = %e,
                    "TrustBundleMissing: keeping the volume's last good trust bundle"
                );
                return Ok(Some(current));
            }
            if missing && tb.optional {
                tracing::info!(
                    volume = volume_id,
                    source = %tb.source,
                    "optional trust bundle source missing; writing the issuer's CA until it appears"
                );
                return Ok(None);
            }
            Err(e)
        }
    }
}

/// The files of a volume with `ca` as its CA file, from its current key and chain:
/// the same names and keystores as an issuance writes (`pipeline::file_set`).
fn refreshed_files(
    spec: &CertificateSpec,
    key_pem: &[u8],
    chain_pem: &[u8],
    ca: &[u8],
) -> Result<FileSet, DriverError> {
    let key_text = std::str::from_utf8(key_pem)
        .map_err(|_| DriverError::Mount("the volume's key file is not PEM".into()))?;
    let key = PrivateKey::from_pem_any(key_text)?;
    let summary = ChainSummary::from_pem(chain_pem)?;
    let mut files = FileSet::new();
    files.insert(spec.files.private_key.clone(), key_pem.to_vec());
    files.insert(spec.files.certificate.clone(), chain_pem.to_vec());
    files.insert(spec.files.ca.clone(), ca.to_vec());
    crate::keystores::add_files(&mut files, spec, &key, &summary, chain_pem, ca)?;
    Ok(files)
}

impl Driver {
    /// The trust watch, when Kubernetes is configured.
    pub(crate) fn trust_ctx(&self) -> Option<TrustCtx<'_>> {
        let watch = self.trust.get()?;
        Some(TrustCtx {
            watch,
            max_bytes: self.config.trust.max_bundle_bytes,
        })
    }

    /// Starts the trust watch (no watch runs until a volume registers) and the task
    /// that turns its notifications into refreshes, one volume at a time per
    /// notification, each under the volume's lock.
    pub(crate) fn spawn_trust_refresher(self: &Arc<Self>) {
        let Ok(kube) = &self.kube else {
            return;
        };
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<String>>();
        let watch = TrustWatch::new(
            kube.issuer.client().clone(),
            self.config.trust.clone(),
            Arc::new(move |ids: Vec<String>| {
                let _ = tx.send(ids);
            }),
        );
        if self.trust.set(watch).is_err() {
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(ids) = rx.recv().await {
                let Some(driver) = weak.upgrade() else {
                    return;
                };
                for id in ids {
                    let d = Arc::clone(&driver);
                    tokio::spawn(async move {
                        if let Err(e) = d.refresh_trust(&id).await {
                            tracing::warn!(volume = %id, error = %e, "trust bundle refresh failed");
                        }
                    });
                }
            }
        });
    }

    /// Rewrites `volume_id`'s files with its trust bundle as it is now, key and
    /// certificate unchanged, no CertificateRequest: one atomic swap, under the
    /// volume's lock. Returns whether the files changed.
    pub(crate) async fn refresh_trust(&self, volume_id: &str) -> Result<bool, DriverError> {
        let Some(ctx) = self.trust_ctx() else {
            return Ok(false);
        };
        let Some(guard) = self
            .locks
            .lock(volume_id, self.config.issuance_timeout)
            .await
        else {
            return Err(DriverError::Busy(format!(
                "volume {volume_id} is busy; its trust bundle is refreshed by the next change or renewal"
            )));
        };
        let id = volume_id.to_owned();
        let loaded = self
            .on_store_locked(&guard, move |s| {
                let meta = s.read_metadata(&id)?;
                let spec = crate::keystores::stored_spec(s, &meta)?;
                let Some(_) = &spec.trust_bundle else {
                    return Ok::<_, DriverError>(None);
                };
                let read = |name: &str| {
                    s.read_current_file(&id, name)
                        .map(|f| f.map(|b| b.to_vec()))
                };
                let (Some(key), Some(crt)) = (
                    read(&spec.files.private_key)?,
                    read(&spec.files.certificate)?,
                ) else {
                    return Ok(None);
                };
                let ca = read(&spec.files.ca)?;
                Ok(Some((meta, spec, key, crt, ca)))
            })
            .await?;
        let Some((meta, spec, key, crt, ca)) = loaded else {
            return Ok(false);
        };
        let Some(tb) = &spec.trust_bundle else {
            return Ok(false);
        };
        let namespace = spec.pod.namespace.clone().unwrap_or_default();
        let Some(bundle) = resolve(ctx, volume_id, &namespace, tb, ca.clone()).await? else {
            return Ok(false);
        };
        if ca.as_deref() == Some(bundle.as_slice()) {
            return Ok(false);
        }
        let id = volume_id.to_owned();
        self.on_store_locked(&guard, move |s| {
            let files = refreshed_files(&spec, &key, &crt, &bundle)?;
            let gid = spec.fs_group.or_else(|| {
                meta.volume_mount_group
                    .as_deref()
                    .and_then(|g| g.parse::<u32>().ok())
            });
            s.write_files(&id, &files, gid)?;
            tracing::info!(volume = %id, source = %spec.trust_bundle.as_ref().map(|t| t.source.to_string()).unwrap_or_default(), "trust bundle refreshed");
            Ok::<_, DriverError>(true)
        })
        .await
    }
}
