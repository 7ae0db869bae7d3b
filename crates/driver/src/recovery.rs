//! Recovery at start and the abandoned-volume sweep.

use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use cmcsi_attrs::CertificateSpec;
use cmcsi_keygen::ChainSummary;
use cmcsi_renewer::RestoredVolume;
use cmcsi_store::{self as store, Metadata, Store, StoreError};

use crate::driver::Driver;
use crate::error::DriverError;

/// A stored volume the renewer takes over, as read from the store.
struct Found {
    meta: Metadata,
    spec: Option<CertificateSpec>,
    /// The `notAfter` of the volume's current certificate, when it has one.
    not_after: Option<SystemTime>,
    /// The request that issued it, when recorded (the metrics' `name`).
    issued_by: Option<String>,
}

impl Driver {
    /// Schedules every stored volume with its certificate's expiry, so the
    /// expiry gauges and the renewer's EXPIRED log are right from the start;
    /// set-aside directories are reported.
    pub(crate) async fn recover(&self) -> Result<(), crate::RunError> {
        let started = Instant::now();
        let (found, set_aside) = self.on_store(restorable).await.map_err(|e| match e {
            DriverError::Store(e) => crate::RunError::Store(e),
            other => crate::RunError::Config(format!("recovering stored volumes: {other}")),
        })?;
        let mut restored = Vec::with_capacity(found.len());
        let mut trusting = Vec::new();
        for f in found {
            if f.spec.as_ref().is_some_and(|s| s.trust_bundle.is_some()) {
                trusting.push(f.meta.volume_id.clone());
            }
            if let Some(not_after) = f.not_after {
                self.events.remember_expiry(&f.meta.volume_id, not_after);
            }
            if let (Some(spec), Some(not_after)) = (&f.spec, f.not_after) {
                self.metrics.restored(
                    &f.meta.volume_id,
                    spec,
                    &f.meta.target_path,
                    f.issued_by.as_deref().unwrap_or_default(),
                    not_after,
                    f.meta.next_issuance_time,
                );
            }
            let disable = f.spec.as_ref().is_some_and(|s| s.disable_auto_renew);
            let tenant = crate::driver::tenant_of(&f.meta.volume_context);
            // Mounted empty, waiting for its Pod's gates or IP: checked at
            // once (not spread like overdue renewals); until the Pod is
            // ready the renewer's attempts answer "not ready".
            if f.meta.next_issuance_time.is_none() && self.needs_pod(&f.meta.volume_context) {
                self.renewer()
                    .manage_pending_in(tenant, f.meta.volume_id.as_str(), disable);
                continue;
            }
            let volume = RestoredVolume::new(
                f.meta.volume_id.as_str(),
                f.meta.next_issuance_time,
                disable,
            )
            .with_tenant(tenant);
            restored.push(match f.not_after {
                Some(not_after) => volume.with_not_after(not_after),
                None => volume,
            });
        }
        let n = restored.len();
        self.renewer().restore(restored);
        // Volumes with a trust bundle source: register them with the trust watch
        // and bring their bundle up to date (it may have changed while the driver
        // was down); later changes reach them through the watch.
        if !trusting.is_empty() {
            self.trust_changed(trusting);
        }
        tracing::info!(
            volumes = n,
            set_aside,
            duration_ms = started.elapsed().as_millis() as u64,
            "recovered stored volumes"
        );
        Ok(())
    }

    /// Runs the abandoned-volume sweep once now, then every
    /// `--abandoned-volume-sweep-interval` (zero: only once).
    pub(crate) fn spawn_sweeper(self: &Arc<Self>) {
        // Once now, then every interval. Holds only a weak reference between
        // sweeps, so it ends with the driver.
        let interval = self.config.abandoned_sweep_interval;
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(driver) = weak.upgrade() else { break };
                driver.sweep_abandoned().await;
                drop(driver);
                if interval.is_zero() {
                    break;
                }
                tokio::time::sleep(interval).await;
            }
        });
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
    /// The removed volumes' CertificateRequests are deleted too. Volumes
    /// whose metadata cannot be read are set aside instead (see
    /// [`Driver::set_aside_unreadable`]), and set-aside directories older
    /// than `--quarantine-grace` are removed first.
    pub(crate) async fn sweep_abandoned(self: &Arc<Self>) -> usize {
        let grace = self.config.quarantine_grace;
        if let Err(e) = self.on_store(move |s| s.purge_quarantine(grace)).await {
            tracing::warn!(error = %e, "could not remove set-aside volume directories");
        }
        let driver = Arc::clone(self);
        let sweep = move || driver.remove_abandoned();
        let Ok(removed) = crate::blocking::run((), "the abandoned-volume sweep", sweep).await
        else {
            return 0;
        };
        if removed.is_empty() {
            return 0;
        }
        for (id, _, _) in &removed {
            self.metrics.forget(id);
        }
        if let Ok(kube) = &self.kube
            && kube
                .issuer
                .wait_synced(self.config.issuance_timeout)
                .await
                .inspect_err(|e| {
                    tracing::warn!(error = %e, "not deleting the CertificateRequests of abandoned volumes")
                })
                .is_ok()
        {
            for (id, pod, namespace) in &removed {
                if let Err(e) = kube.issuer.cleanup(id, 0).await {
                    tracing::warn!(volume = %id, pod, namespace, error = %e, "could not delete the CertificateRequest of an abandoned volume");
                }
                kube.issuer.forget_volume(id);
            }
        }
        removed.len()
    }

    /// The store half of [`Driver::sweep_abandoned`]: the ids removed.
    /// Blocking (store IO); runs on the blocking pool.
    /// Each as `(volume id, pod, namespace)`.
    fn remove_abandoned(&self) -> Vec<(String, String, String)> {
        let ids = match self.store.volume_ids() {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "could not list volumes to remove abandoned ones");
                return Vec::new();
            }
        };
        let mut removed = Vec::new();
        for id in ids {
            // Held until the volume is dealt with: a publish or unpublish of
            // it waits meanwhile, and one in progress makes the sweep pass.
            let Some(_guard) = self.locks.try_lock(&id) else {
                continue;
            };
            match self.store.read_metadata(&id) {
                Ok(meta) => removed.extend(self.remove_if_abandoned(id, &meta)),
                Err(StoreError::Metadata { reason, .. }) => self.set_aside_unreadable(&id, &reason),
                // Gone meanwhile, or an IO error that may pass: next sweep.
                Err(_) => {}
            }
        }
        removed
    }

    /// Removes volume `id` (its lock held by the caller) when it was never
    /// issued and its Pod is gone (see [`Driver::sweep_abandoned`]).
    fn remove_if_abandoned(&self, id: String, meta: &Metadata) -> Option<(String, String, String)> {
        if meta.next_issuance_time.is_some() {
            return None;
        }
        let target = Path::new(&meta.target_path);
        let kubelet_dir = target.parent().filter(|p| p.is_absolute())?;
        match std::fs::symlink_metadata(kubelet_dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            _ => return None,
        }
        if store::is_mount_point(target).unwrap_or(true) {
            return None;
        }
        self.renewer().forget(&id);
        let (pod, namespace) = crate::events::pod_fields(&meta.volume_context);
        match self.store.remove_volume(&id) {
            Ok(true) => {
                tracing::info!(
                    volume = %id,
                    pod,
                    namespace,
                    target = %meta.target_path,
                    "removed a never-issued volume whose Pod is gone"
                );
                Some((id, pod.to_string(), namespace.to_string()))
            }
            Ok(false) => None,
            Err(e) => {
                tracing::warn!(volume = %id, pod, namespace, error = %e, "could not remove an abandoned volume");
                None
            }
        }
    }

    /// Sets aside volume `id` (its lock held by the caller), whose metadata
    /// cannot be read (`reason`: corrupt, over the size limit, missing),
    /// unless something of it is mounted.
    ///
    /// Such a volume answers every publish with `INTERNAL` and cannot renew,
    /// and without its metadata neither its target path nor its Pod is
    /// known, so the abandoned-volume rule (the kubelet's directory is gone)
    /// cannot be checked. The safe rule instead: nothing may use it (its lock
    /// is free, so no publish, unpublish or renewal is running, and the
    /// kernel's mount table shows no mount of it, so no Pod has its files),
    /// and it is not deleted but moved to the quarantine, exactly as a start
    /// does with what it cannot read. The sweep removes it, keys included,
    /// once it has been there longer than `--quarantine-grace` (counted in
    /// `certmanager_csi_quarantined_volumes_removed_total`); until then it
    /// can be moved back by hand. A retried publish of the volume starts
    /// afresh. Its CertificateRequests are left to that publish's clean-up or
    /// to cert-manager: deleting them here could race a retry that already
    /// made a new one.
    fn set_aside_unreadable(&self, id: &str, reason: &str) {
        match self.store.volume_mounted(id) {
            Ok(false) => {}
            Ok(true) => {
                tracing::warn!(volume = %id, reason, "the metadata of a mounted volume cannot be read; kept while it is mounted");
                return;
            }
            Err(e) => {
                tracing::warn!(volume = %id, reason, error = %e, "the metadata of a volume cannot be read, and whether it is mounted is unknown; kept");
                return;
            }
        }
        self.renewer().forget(id);
        if let Ok(kube) = &self.kube {
            kube.issuer.forget_volume(id);
        }
        match self.store.set_aside_volume(id, reason) {
            Ok(aside) => tracing::warn!(
                volume = %id,
                reason,
                moved_to = ?aside.moved_to,
                grace_s = self.config.quarantine_grace.as_secs(),
                "set aside an unmounted volume whose metadata cannot be read; it is removed with its keys after --quarantine-grace"
            ),
            Err(e) => {
                tracing::warn!(volume = %id, reason, error = %e, "could not set aside a volume whose metadata cannot be read")
            }
        }
    }
}

/// Blocking: lists the store, reports what it set aside, and reads each
/// issued volume's certificate expiry. Returns the volumes to restore and how
/// many directories were set aside.
fn restorable(store: &Store) -> Result<(Vec<Found>, usize), StoreError> {
    let recovery = store.list()?;
    for aside in &recovery.set_aside {
        tracing::warn!(
            volume = %aside.name,
            reason = %aside.reason,
            moved_to = ?aside.moved_to,
            "volume directory set aside"
        );
    }
    let mut found = Vec::with_capacity(recovery.volumes.len());
    for meta in recovery.volumes {
        // A never-issued volume is resumed here only when it is already
        // mounted (continue-on-not-ready). Otherwise its Pod is still
        // waiting in the kubelet, whose retried publish resumes the
        // recorded request; if the Pod is gone, nothing is requested
        // for it (csi-lib #8).
        if meta.next_issuance_time.is_none()
            && !store::is_mount_point(Path::new(&meta.target_path)).unwrap_or(false)
        {
            continue;
        }
        let spec = store
            .read_secrets(&meta.volume_id)
            .ok()
            .and_then(|secrets| crate::volume::parse_stored(&meta, secrets.iter(), None).ok())
            .map(|parsed| parsed.spec);
        let not_after = match (&spec, meta.next_issuance_time) {
            (Some(spec), Some(_)) => current_not_after(store, &meta, &spec.files.certificate),
            _ => None,
        };
        let issued_by = crate::health::issued_by(store, &meta.volume_id);
        found.push(Found {
            meta,
            spec,
            not_after,
            issued_by,
        });
    }
    Ok((found, recovery.set_aside.len()))
}

/// The `notAfter` of the certificate a volume serves now, if it can be read.
fn current_not_after(store: &Store, meta: &Metadata, file: &str) -> Option<SystemTime> {
    let volume_id = meta.volume_id.as_str();
    let (pod, namespace) = crate::events::pod_fields(&meta.volume_context);
    let pem = match store.read_current_file(volume_id, file) {
        Ok(Some(pem)) => pem,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!(volume = volume_id, pod, namespace, error = %e, "could not read the current certificate; its expiry is unknown until it renews");
            return None;
        }
    };
    match ChainSummary::from_pem(&pem) {
        Ok(summary) => Some(summary.not_after),
        Err(e) => {
            tracing::warn!(volume = volume_id, pod, namespace, error = %e, "the current certificate does not parse; its expiry is unknown until it renews");
            None
        }
    }
}
