//! A trust bundle change reaching a volume: the trust watch's notifications reach a
//! volume only through the renewer's wake ([`Driver::trust_changed`]), so a refresh is
//! serialised with the volume's renewals under its lock, held to the same floor and cap;
//! the renewer's callback then runs [`Driver::refresh_trust`], which rewrites the files,
//! key and certificate unchanged, in the store's one atomic swap.

use std::sync::Arc;

use cmcsi_attrs::CertificateSpec;
use cmcsi_keygen::ChainSummary;

use crate::driver::Driver;
use crate::error::DriverError;
use crate::trust::{TrustCtx, refreshed_files, resolve};

impl Driver {
    /// The trust watch, when Kubernetes is configured.
    pub(crate) fn trust_ctx(&self) -> Option<TrustCtx<'_>> {
        let watch = self.trust.get()?;
        Some(TrustCtx {
            watch,
            max_bytes: self.config.trust.max_bundle_bytes,
            metrics: &self.metrics,
            events: &self.events,
        })
    }

    /// The trust bundle sources of these volumes changed (or may have, after a
    /// restart): mark each for a trust refresh and wake it through the renewer,
    /// the one way for an event to reach a volume. The renewer then calls
    /// [`Driver::renew`] with [`IssueReason::Requested`], which sees the mark
    /// and rewrites the files without issuing.
    pub(crate) fn trust_changed(&self, ids: Vec<String>) {
        let mut pending = self.trust_pending.lock().unwrap_or_else(|p| p.into_inner());
        for id in ids {
            if self.renewer().wake(&id) {
                pending.insert(id);
            }
        }
    }

    /// Takes `volume_id`'s trust refresh mark.
    pub(crate) fn take_trust_pending(&self, volume_id: &str) -> bool {
        self.trust_pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(volume_id)
    }

    /// Rewrites `volume_id`'s files with its trust bundle as it is now, key and
    /// certificate unchanged, no CertificateRequest: one atomic swap, under the
    /// volume's lock (`guard`, held by the caller, the renewer's callback).
    /// Returns the current certificate's lifetime (the renewal schedule stays), or
    /// `None` when the volume has no certificate yet (so it must be issued).
    pub(crate) async fn refresh_trust(
        &self,
        volume_id: &str,
        guard: &crate::locks::VolumeGuard,
    ) -> Result<Option<cmcsi_renewer::Lifetime>, DriverError> {
        let id = volume_id.to_owned();
        let loaded = self
            .on_store_locked(guard, move |s| {
                let meta = s.read_metadata(&id)?;
                let secrets = s.read_secrets(&id)?;
                let spec = crate::volume::parse_stored(&meta, secrets.iter(), None)?.spec;
                let volume = crate::volume::Volume {
                    meta,
                    spec,
                    created: false,
                };
                let spec = &volume.spec;
                let read = |name: &str| {
                    s.read_current_file(&id, name)
                        .map(|f| f.map(|b| b.to_vec()))
                };
                let (Some(key), Some(crt)) = (
                    read(&spec.files.private_key)?,
                    read(&spec.files.certificate)?,
                ) else {
                    return Ok::<_, DriverError>(None);
                };
                let ca = read(&spec.files.ca)?;
                Ok(Some((volume, key, crt, ca)))
            })
            .await?;
        let Some((volume, key, crt, ca)) = loaded else {
            return Ok(None);
        };
        let summary = ChainSummary::from_pem(&crt)?;
        let lifetime = crate::pipeline::lifetime_of(&summary, volume.spec.renew_before);
        let (Some(tb), Some(ctx)) = (&volume.spec.trust_bundle, self.trust_ctx()) else {
            return Ok(Some(lifetime));
        };
        let bundle = match resolve(ctx, volume_id, &volume.spec, tb, ca.clone()).await? {
            Some(b) => b,
            // Optional and still missing: the issuer's CA stays.
            None => return Ok(Some(lifetime)),
        };
        if ca.as_deref() == Some(bundle.as_slice()) {
            return Ok(Some(lifetime));
        }
        let id = volume_id.to_owned();
        let metrics = Arc::clone(&self.metrics);
        self.on_store_locked(guard, move |s| {
            let spec = &volume.spec;
            let files = refreshed_files(spec, &key, &crt, &bundle)?;
            let gid = spec.fs_group.or_else(|| {
                volume
                    .meta
                    .volume_mount_group
                    .as_deref()
                    .and_then(|g| g.parse::<u32>().ok())
            });
            s.write_files(&id, &files, gid)?;
            metrics.trust_refreshed();
            tracing::info!(
                volume = %id,
                source = %tb_name(spec),
                "trust bundle refreshed; key and certificate unchanged"
            );
            Ok::<_, DriverError>(())
        })
        .await?;
        Ok(Some(lifetime))
    }
}

fn tb_name(spec: &CertificateSpec) -> String {
    spec.trust_bundle
        .as_ref()
        .map(|t| t.source.to_string())
        .unwrap_or_default()
}
