//! Publish, republish, unpublish and mount orchestration, and the logged
//! issuance shared with the renewer's callback.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use cmcsi_attrs::{CertificateSpec, ParseOptions};
use cmcsi_renewer::{IssueFailure, IssueReason, Lifetime};
use cmcsi_store::{Metadata, StoreError};

use crate::driver::Driver;
use crate::error::DriverError;
use crate::locks::VolumeGuard;
use crate::metrics::{cert_labels, jiff_like, unix_seconds};
use crate::mount;
use crate::node::{PublishRequest, UnpublishRequest};
use crate::pipeline;

impl Driver {
    pub(crate) async fn issue_logged(
        &self,
        volume_id: &str,
        why: &str,
    ) -> Result<pipeline::Issued, DriverError> {
        let started = Instant::now();
        let result = match self.pipeline() {
            Ok(p) => p.issue(volume_id).await,
            Err(e) => Err(e),
        };
        let ms = started.elapsed().as_millis() as u64;
        match &result {
            Ok(issued) => {
                let labels = self.metrics.issuer_labels(&issued.spec);
                self.metrics.issue_requests.get_or_create(&labels).inc();
                let cert = cert_labels(&issued.spec, &issued.target_path);
                self.metrics
                    .expiration
                    .get_or_create(&cert)
                    .set(unix_seconds(issued.summary.not_after));
                if let Some(next) = issued.next_issuance {
                    self.metrics
                        .renewal
                        .get_or_create(&cert)
                        .set(unix_seconds(next));
                }
                tracing::info!(
                    volume = volume_id,
                    pod = issued.spec.pod.name.as_deref().unwrap_or(""),
                    namespace = issued.spec.pod.namespace.as_deref().unwrap_or(""),
                    request = %issued.request,
                    serial = %issued.summary.serial_hex,
                    not_after = %jiff_like(issued.summary.not_after),
                    kind = why,
                    outcome = "issued",
                    duration_ms = ms,
                    "issuance"
                );
            }
            Err(e) => {
                if let Ok(meta) = self.read_metadata(volume_id).await
                    && let Ok(spec) = pipeline::spec_of(&meta)
                {
                    let labels = self.metrics.issuer_labels(&spec);
                    self.metrics.issue_requests.get_or_create(&labels).inc();
                    self.metrics.issue_errors.get_or_create(&labels).inc();
                }
                tracing::warn!(
                    volume = volume_id,
                    kind = why,
                    outcome = "failed",
                    error = %e,
                    duration_ms = ms,
                    "issuance"
                );
            }
        }
        result
    }

    /// A renewal (or background first issuance) called by the renewer.
    pub(crate) async fn renew(
        &self,
        volume_id: &str,
        reason: IssueReason,
    ) -> Result<Lifetime, IssueFailure> {
        // Wait behind a publish or unpublish of the same volume.
        let Some(_guard) = self
            .locks
            .lock(volume_id, self.config.issuance_timeout)
            .await
        else {
            return Err(IssueFailure::new(
                "another operation on this volume is still in progress",
            ));
        };
        let id = volume_id.to_string();
        match self.on_store(move |s| s.volume_exists(&id)).await {
            Ok(true) => {}
            Ok(false) => return Err(IssueFailure::new("volume no longer exists")),
            Err(e) => return Err(IssueFailure::new(e.to_string())),
        }
        let why = reason.to_string();
        self.issue_logged(volume_id, &why)
            .await
            .map(|i| pipeline::lifetime_of(&i.summary, i.renew_before))
            .map_err(|e| IssueFailure::new(e.to_string()))
    }

    /// NodePublishVolume.
    pub(crate) async fn publish(&self, req: PublishRequest) -> Result<(), DriverError> {
        let started = Instant::now();
        let result = self.publish_inner(req).await;
        self.metrics
            .publish_seconds
            .observe(started.elapsed().as_secs_f64());
        result
    }

    async fn publish_inner(&self, req: PublishRequest) -> Result<(), DriverError> {
        let volume_id = req.volume_id.as_str();
        let target = req.target_path.as_path();

        // A republish of a running Pod (e.g. with a refreshed token) must
        // never fail or block on a renewal in flight.
        if let Some(done) = self.republish(volume_id, target, &req.context).await? {
            return done;
        }

        let Some(guard) = self
            .locks
            .lock(volume_id, self.config.issuance_timeout)
            .await
        else {
            return Err(busy(volume_id));
        };
        let (meta, spec) = self.prepare(&req, &guard).await?;

        if meta.next_issuance_time.is_none() {
            if self.config.continue_on_not_ready {
                self.renewer()
                    .manage_pending(volume_id, spec.disable_auto_renew);
            } else {
                let _permit = self.renewer().acquire_first_issuance().await;
                let issued = self.issue_logged(volume_id, "first").await?;
                self.renewer().manage(
                    volume_id,
                    pipeline::lifetime_of(&issued.summary, issued.renew_before),
                    spec.disable_auto_renew,
                );
            }
        }
        self.mount(volume_id, target).await
    }

    /// Under the volume's lock: its metadata (created at the first publish,
    /// the context updated when the kubelet sends a new one) and its spec.
    /// The spec comes from the context the volume was first published with;
    /// its warnings are logged here, once per publish.
    async fn prepare(
        &self,
        req: &PublishRequest,
        guard: &VolumeGuard,
    ) -> Result<(Metadata, CertificateSpec), DriverError> {
        let id = req.volume_id.clone();
        let existing = self
            .on_store(move |s| match s.read_metadata(&id) {
                Ok(m) => Ok(Some(m)),
                Err(StoreError::VolumeNotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            })
            .await?;
        let parsed = match &existing {
            Some(meta) => {
                cmcsi_attrs::parse_detailed(&meta.volume_context, &pipeline::options_of(meta))?
            }
            None => cmcsi_attrs::parse_detailed(&req.context, &ParseOptions::original())?,
        };
        for warning in &parsed.warnings {
            tracing::warn!(volume = %req.volume_id, warning = %warning, "volume attribute ignored");
        }
        let spec = parsed.spec;
        if self.config.use_token_request {
            pipeline::token_of(&req.context)?;
        }
        let meta = match existing {
            Some(mut meta) => {
                if meta.volume_context != req.context {
                    meta.volume_context = req.context.clone();
                    let m = meta.clone();
                    self.on_store_locked(guard, move |s| s.write_metadata(&m))
                        .await?;
                }
                meta
            }
            None => {
                let meta = pipeline::new_metadata(
                    &req.volume_id,
                    &req.target_path.to_string_lossy(),
                    &req.context,
                    req.mount_group,
                );
                let gid = spec.fs_group.or(req.mount_group);
                let m = meta.clone();
                self.on_store_locked(guard, move |s| s.create_volume(&m, gid))
                    .await?;
                meta
            }
        };
        Ok((meta, spec))
    }

    /// Handles a publish for a volume that already has a certificate:
    /// records a changed context (the token used for the next renewal) and
    /// makes sure it is mounted. `None` when this is not such a volume.
    async fn republish(
        &self,
        volume_id: &str,
        target: &Path,
        context: &BTreeMap<String, String>,
    ) -> Result<Option<Result<(), DriverError>>, DriverError> {
        match self.read_metadata(volume_id).await {
            Ok(m) if m.next_issuance_time.is_some() => {}
            // Not issued yet, gone, or half removed by an unpublish running
            // now: the locked path decides.
            _ => return Ok(None),
        }
        // Wait briefly; a renewal holding the lock will pick up the new
        // token on its next attempt anyway.
        let guard = self.locks.lock(volume_id, Duration::from_secs(2)).await;
        if let Some(guard) = &guard {
            // Read again under the lock: an unpublish may have removed the
            // volume while we waited.
            let meta = match self.read_metadata(volume_id).await {
                Ok(m) if m.next_issuance_time.is_some() => m,
                _ => return Ok(None),
            };
            if &meta.volume_context != context {
                let mut meta = meta;
                meta.volume_context = context.clone();
                if let Err(e) = self
                    .on_store_locked(guard, move |s| s.write_metadata(&meta))
                    .await
                {
                    tracing::warn!(volume = volume_id, error = %e, "could not record the refreshed volume context");
                }
            }
        }
        Ok(Some(self.mount(volume_id, target).await))
    }

    async fn mount(&self, volume_id: &str, target: &Path) -> Result<(), DriverError> {
        let id = volume_id.to_string();
        let data = self.on_store(move |s| s.data_dir(&id)).await?;
        let mount_err = |what: &str, e: std::io::Error| {
            DriverError::Mount(format!("{what} {}: {e}", target.display()))
        };
        match std::fs::create_dir_all(target) {
            Ok(()) => {}
            Err(e) => return Err(mount_err("creating target directory", e)),
        }
        if mount::is_mount_point(target).map_err(|e| mount_err("inspecting", e))? {
            return Ok(());
        }
        mount::bind_read_only(&data, target)
            .map_err(|e| mount_err("bind-mounting the volume at", e))
    }

    /// NodeUnpublishVolume: idempotent.
    pub(crate) async fn unpublish(&self, req: UnpublishRequest) -> Result<(), DriverError> {
        let volume_id = req.volume_id.as_str();
        let target = req.target_path.as_path();
        // Cancel a renewal in flight before waiting for the lock.
        self.renewer().forget(volume_id);
        let Some(guard) = self
            .locks
            .lock(volume_id, self.config.issuance_timeout)
            .await
        else {
            return Err(busy(volume_id));
        };
        self.renewer().forget(volume_id);
        if let Ok(kube) = &self.kube {
            kube.issuer.forget_volume(volume_id);
        }
        if let Ok(meta) = self.read_metadata(volume_id).await
            && let Ok(spec) = pipeline::spec_of(&meta)
        {
            let labels = cert_labels(&spec, &meta.target_path);
            self.metrics.expiration.remove(&labels);
            self.metrics.renewal.remove(&labels);
        }
        mount::unmount_if_mounted(target)
            .map_err(|e| DriverError::Mount(format!("unmounting {}: {e}", target.display())))?;
        match std::fs::remove_dir(target) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(target = %target.display(), error = %e, "target directory left in place")
            }
        }
        let id = volume_id.to_string();
        self.on_store_locked(&guard, move |s| s.remove_volume(&id))
            .await?;
        Ok(())
    }
}

/// The error for a volume whose lock is held past the wait.
fn busy(volume_id: &str) -> DriverError {
    DriverError::Busy(format!(
        "another operation on volume {volume_id} is still in progress; the kubelet will retry"
    ))
}
