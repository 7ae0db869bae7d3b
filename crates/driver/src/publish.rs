//! Publish, republish, unpublish and mount orchestration, and the logged
//! issuance shared with the renewer's callback.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use cmcsi_proto::v1::{NodePublishVolumeRequest, NodeUnpublishVolumeRequest, volume_capability};
use cmcsi_renewer::{IssueFailure, IssueReason, Lifetime};
use cmcsi_store::StoreError;

use crate::driver::Driver;
use crate::error::DriverError;
use crate::metrics::{cert_labels, issuer_labels, jiff_like, unix_seconds};
use crate::mount;
use crate::pipeline;

const EPHEMERAL_KEY: &str = "csi.storage.k8s.io/ephemeral";

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
                let labels = issuer_labels(&issued.spec);
                self.metrics.issue_requests.get_or_create(&labels).inc();
                let cert = cert_labels(&issued.spec);
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
                if let Ok(meta) = self.store.read_metadata(volume_id)
                    && let Ok(spec) = pipeline::spec_of(&meta)
                {
                    let labels = issuer_labels(&spec);
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
        match self.store.volume_exists(volume_id) {
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
    pub async fn publish(&self, req: NodePublishVolumeRequest) -> Result<(), DriverError> {
        let started = Instant::now();
        let result = self.publish_inner(req).await;
        self.metrics
            .publish_seconds
            .observe(started.elapsed().as_secs_f64());
        result
    }

    async fn publish_inner(&self, req: NodePublishVolumeRequest) -> Result<(), DriverError> {
        let volume_id = req.volume_id.as_str();
        cmcsi_store::check_volume_id(volume_id)
            .map_err(|e| DriverError::InvalidRequest(format!("volume_id: {e}")))?;
        let target = check_target_path(&req.target_path)?;
        if req.volume_context.get(EPHEMERAL_KEY).map(String::as_str) != Some("true") {
            return Err(DriverError::InvalidRequest(
                "only inline ephemeral volumes are supported: declare the volume under \
                 pod.spec.volumes[].csi (csi.storage.k8s.io/ephemeral must be \"true\"; the \
                 CSIDriver object must list volumeLifecycleModes: [Ephemeral])"
                    .into(),
            ));
        }
        if !req.readonly {
            return Err(DriverError::InvalidRequest(
                "pod.spec.volumes[].csi.readOnly must be set to true".into(),
            ));
        }
        let mount_group = match req
            .volume_capability
            .as_ref()
            .and_then(|c| c.access_type.as_ref())
        {
            Some(volume_capability::AccessType::Mount(m)) => m.volume_mount_group.clone(),
            Some(volume_capability::AccessType::Block(_)) => {
                return Err(DriverError::InvalidRequest(
                    "block volumes are not supported: use a filesystem (mount) volume".into(),
                ));
            }
            None => String::new(),
        };
        if !mount_group.is_empty() && mount_group.parse::<u32>().is_err() {
            return Err(DriverError::InvalidRequest(format!(
                "volume_capability.mount.volume_mount_group `{mount_group}` is not a numeric group id"
            )));
        }
        let context: BTreeMap<String, String> = req.volume_context.into_iter().collect();

        // A republish of a running Pod (e.g. with a refreshed token) must
        // never fail or block on a renewal in flight.
        if let Some(done) = self.republish(volume_id, target, &context).await? {
            return done;
        }

        let Some(_guard) = self
            .locks
            .lock(volume_id, self.config.issuance_timeout)
            .await
        else {
            return Err(DriverError::Busy(format!(
                "another operation on volume {volume_id} is still in progress; the kubelet will retry"
            )));
        };

        let existing = match self.store.read_metadata(volume_id) {
            Ok(m) => Some(m),
            Err(StoreError::VolumeNotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        let spec = match &existing {
            Some(meta) => pipeline::spec_of(meta)?,
            None => cmcsi_attrs::parse(&context)?,
        };
        if self.config.use_token_request {
            pipeline::token_of(&context)?;
        }
        let meta = match existing {
            Some(mut meta) => {
                if meta.volume_context != context {
                    meta.volume_context = context;
                    self.store.write_metadata(&meta)?;
                }
                meta
            }
            None => {
                let meta =
                    pipeline::new_metadata(volume_id, &req.target_path, &context, &mount_group);
                let gid = spec.fs_group.or_else(|| mount_group.parse().ok());
                self.store.create_volume(&meta, gid)?;
                meta
            }
        };

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
        self.mount(volume_id, target)
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
        match self.store.read_metadata(volume_id) {
            Ok(m) if m.next_issuance_time.is_some() => {}
            // Not issued yet, gone, or half removed by an unpublish running
            // now: the locked path decides.
            _ => return Ok(None),
        }
        // Wait briefly; a renewal holding the lock will pick up the new
        // token on its next attempt anyway.
        let guard = self.locks.lock(volume_id, Duration::from_secs(2)).await;
        if guard.is_some() {
            // Read again under the lock: an unpublish may have removed the
            // volume while we waited.
            let meta = match self.store.read_metadata(volume_id) {
                Ok(m) if m.next_issuance_time.is_some() => m,
                _ => return Ok(None),
            };
            if &meta.volume_context != context {
                let mut meta = meta;
                meta.volume_context = context.clone();
                if let Err(e) = self.store.write_metadata(&meta) {
                    tracing::warn!(volume = volume_id, error = %e, "could not record the refreshed volume context");
                }
            }
        }
        Ok(Some(self.mount(volume_id, target)))
    }

    fn mount(&self, volume_id: &str, target: &Path) -> Result<(), DriverError> {
        let data = self.store.data_dir(volume_id)?;
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
    pub async fn unpublish(&self, req: NodeUnpublishVolumeRequest) -> Result<(), DriverError> {
        let volume_id = req.volume_id.as_str();
        cmcsi_store::check_volume_id(volume_id)
            .map_err(|e| DriverError::InvalidRequest(format!("volume_id: {e}")))?;
        let target = check_target_path(&req.target_path)?;
        // Cancel a renewal in flight before waiting for the lock.
        self.renewer().forget(volume_id);
        let Some(_guard) = self
            .locks
            .lock(volume_id, self.config.issuance_timeout)
            .await
        else {
            return Err(DriverError::Busy(format!(
                "another operation on volume {volume_id} is still in progress; the kubelet will retry"
            )));
        };
        self.renewer().forget(volume_id);
        if let Ok(meta) = self.store.read_metadata(volume_id)
            && let Ok(spec) = pipeline::spec_of(&meta)
        {
            let labels = cert_labels(&spec);
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
        self.store.remove_volume(volume_id)?;
        Ok(())
    }
}

fn check_target_path(path: &str) -> Result<&Path, DriverError> {
    let p = Path::new(path);
    if !p.is_absolute() || path.contains('\0') {
        return Err(DriverError::InvalidRequest(format!(
            "target_path `{}` must be an absolute path",
            path.escape_debug()
        )));
    }
    if p.components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(DriverError::InvalidRequest(format!(
            "target_path `{}` must not contain `..`",
            path.escape_debug()
        )));
    }
    if let Ok(m) = std::fs::symlink_metadata(p)
        && m.file_type().is_symlink()
    {
        return Err(DriverError::InvalidRequest(format!(
            "target_path `{path}` is a symbolic link; refusing to mount through it"
        )));
    }
    Ok(p)
}
