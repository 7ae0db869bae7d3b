//! Recovery at start and the abandoned-volume sweep.

use std::path::Path;
use std::time::Instant;

use cmcsi_renewer::RestoredVolume;
use cmcsi_store::StoreError;

use crate::driver::Driver;
use crate::mount;
use crate::pipeline;

impl Driver {
    pub(crate) fn recover(&self) -> Result<(), StoreError> {
        let started = Instant::now();
        let recovery = self.store.list()?;
        for aside in &recovery.set_aside {
            tracing::warn!(
                volume = %aside.name,
                reason = %aside.reason,
                moved_to = ?aside.moved_to,
                "volume directory set aside"
            );
        }
        let mut restored = Vec::with_capacity(recovery.volumes.len());
        for meta in &recovery.volumes {
            let disable = pipeline::spec_of(meta)
                .map(|s| s.disable_auto_renew)
                .unwrap_or(false);
            // A never-issued volume is resumed here only when it is already
            // mounted (continue-on-not-ready). Otherwise its Pod is still
            // waiting in the kubelet, whose retried publish resumes the
            // recorded request; if the Pod is gone, nothing is requested
            // for it (csi-lib #8).
            if meta.next_issuance_time.is_none()
                && !mount::is_mount_point(Path::new(&meta.target_path)).unwrap_or(false)
            {
                continue;
            }
            restored.push(RestoredVolume::new(
                meta.volume_id.as_str(),
                meta.next_issuance_time,
                disable,
            ));
        }
        let n = restored.len();
        self.renewer().restore(restored);
        tracing::info!(
            volumes = n,
            set_aside = recovery.set_aside.len(),
            duration_ms = started.elapsed().as_millis() as u64,
            "recovered stored volumes"
        );
        Ok(())
    }

    /// Removes never-issued volumes whose Pod is gone, returning how many.
    ///
    /// The kubelet never unpublishes a volume whose publish failed, so a Pod
    /// deleted while its certificate could not be issued would otherwise
    /// leave its volume directory (with the recorded key) on the node for
    /// good. A volume qualifies only when it has never been issued, nothing
    /// holds its lock, it is not mounted, and the kubelet's directory for it
    /// (the target path's parent, which the kubelet creates before
    /// publishing and removes with the Pod) no longer exists. Issued volumes
    /// are left to the kubelet's unpublish, which it replays after restarts.
    /// The removed volumes' CertificateRequests are deleted too.
    pub async fn sweep_abandoned(&self) -> usize {
        let removed = self.remove_abandoned();
        if removed.is_empty() {
            return 0;
        }
        if let Ok(kube) = &self.kube
            && kube.issuer.wait_synced(self.config.issuance_timeout).await
        {
            for id in &removed {
                if let Err(e) = kube.issuer.cleanup(id, 0).await {
                    tracing::warn!(volume = %id, error = %e, "could not delete the CertificateRequest of an abandoned volume");
                }
            }
        }
        removed.len()
    }

    /// The store half of [`Driver::sweep_abandoned`]: the ids removed.
    fn remove_abandoned(&self) -> Vec<String> {
        let ids = match self.store.volume_ids() {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "could not list volumes to remove abandoned ones");
                return Vec::new();
            }
        };
        let mut removed = Vec::new();
        for id in ids {
            let Some(_guard) = self.locks.try_lock(&id) else {
                continue;
            };
            let Ok(meta) = self.store.read_metadata(&id) else {
                continue;
            };
            if meta.next_issuance_time.is_some() {
                continue;
            }
            let target = Path::new(&meta.target_path);
            let Some(kubelet_dir) = target.parent().filter(|p| p.is_absolute()) else {
                continue;
            };
            match std::fs::symlink_metadata(kubelet_dir) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                _ => continue,
            }
            if mount::is_mount_point(target).unwrap_or(true) {
                continue;
            }
            self.renewer().forget(&id);
            match self.store.remove_volume(&id) {
                Ok(true) => {
                    tracing::info!(
                        volume = %id,
                        pod = meta.volume_context.get(cmcsi_attrs::keys::POD_NAME).map(String::as_str).unwrap_or(""),
                        namespace = meta.volume_context.get(cmcsi_attrs::keys::POD_NAMESPACE).map(String::as_str).unwrap_or(""),
                        target = %meta.target_path,
                        "removed a never-issued volume whose Pod is gone"
                    );
                    removed.push(id);
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(volume = %id, error = %e, "could not remove an abandoned volume")
                }
            }
        }
        removed
    }
}
