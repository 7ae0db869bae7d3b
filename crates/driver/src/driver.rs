//! The driver's state and its two real operations: publish and unpublish.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use cmcsi_issuer_client::IssuerClient;
use cmcsi_keygen::KeyPool;
use cmcsi_proto::v1::{NodePublishVolumeRequest, NodeUnpublishVolumeRequest, volume_capability};
use cmcsi_renewer::{IssueFailure, IssueReason, Lifetime, Renewer, RestoredVolume, VolumeId};
use cmcsi_store::{Store, StoreError};

use crate::config::Config;
use crate::error::DriverError;
use crate::locks::VolumeLocks;
use crate::metrics::{CertLabels, IssuerLabels, LiveStats, Metrics};
use crate::mount;
use crate::pipeline::{self, Pipeline};

const EPHEMERAL_KEY: &str = "csi.storage.k8s.io/ephemeral";

/// The Kubernetes side, when configured.
struct Kube {
    issuer: IssuerClient,
}

/// The driver: store, key pool, cert-manager client, renewer, metrics.
pub struct Driver {
    config: Config,
    store: Store,
    pool: KeyPool,
    kube: Result<Kube, String>,
    renewer: OnceLock<Renewer>,
    locks: VolumeLocks,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("node_id", &self.config.node_id)
            .finish_non_exhaustive()
    }
}

/// The renewer's way back into the driver.
struct RenewalIssuer(Weak<Driver>);

impl cmcsi_renewer::Issue for RenewalIssuer {
    fn issue(
        &self,
        volume: VolumeId,
        reason: IssueReason,
    ) -> impl std::future::Future<Output = Result<Lifetime, IssueFailure>> + Send {
        let driver = self.0.upgrade();
        async move {
            let Some(driver) = driver else {
                return Err(IssueFailure::new("driver is shutting down"));
            };
            driver.renew(volume.as_str(), reason).await
        }
    }
}

#[derive(Debug)]
struct Live(Weak<Driver>);

impl LiveStats for Live {
    fn read(&self) -> Vec<(&'static str, &'static str, f64, bool)> {
        let Some(d) = self.0.upgrade() else {
            return vec![];
        };
        let mut out = Vec::new();
        if let Some(r) = d.renewer.get() {
            let s = r.stats();
            out.push((
                "certmanager_csi_managed_volume_count",
                "Volumes managed by this driver",
                s.managed as f64,
                false,
            ));
            out.push((
                "certmanager_csi_renewal_retrying_volumes",
                "Volumes whose last issuance attempt failed and is being retried",
                s.retrying as f64,
                false,
            ));
            out.push((
                "certmanager_csi_expired_certificates",
                "Volumes whose mounted certificate has expired (renewal keeps failing)",
                s.expired as f64,
                false,
            ));
            out.push((
                "certmanager_csi_issuances_in_flight",
                "Issuances running now",
                s.in_flight as f64,
                false,
            ));
        }
        let p = d.pool.stats();
        out.push((
            "certmanager_csi_key_pool_hits",
            "Keys served from the pool",
            p.hits as f64,
            true,
        ));
        out.push((
            "certmanager_csi_key_pool_misses",
            "Keys generated inline because the pool was empty",
            p.misses as f64,
            true,
        ));
        out.push((
            "certmanager_csi_key_pool_available",
            "Keys ready in the pool now",
            p.available as f64,
            false,
        ));
        out.push((
            "certmanager_csi_key_pool_refills",
            "Keys generated in the background for the pool",
            p.refills as f64,
            true,
        ));
        out
    }
}

impl Driver {
    /// Opens the store, connects (lazily) to Kubernetes, starts the renewer
    /// and recovers every stored volume.
    pub async fn start(config: Config) -> Result<Arc<Driver>, crate::RunError> {
        let store = Store::open(
            &config.data_root,
            cmcsi_store::StoreOptions {
                mount_tmpfs: config.mount_tmpfs,
            },
        )?;
        if config.mount_tmpfs && !store.is_tmpfs() {
            // Something other than a tmpfs is already mounted there: with
            // --mount-tmpfs the keys must never reach a disk, so refuse.
            return Err(crate::RunError::Config(format!(
                "{} is already a mount point but not a tmpfs, so private keys would be \
                 written to disk; unmount it, or pass --mount-tmpfs=false to accept keys on \
                 that file system",
                config.data_root.join("inmemfs").display()
            )));
        }
        let pool = KeyPool::new(cmcsi_keygen::PoolConfig {
            sizes: [(cmcsi_keygen::KeySpec::RSA_2048, config.key_pool_size)]
                .into_iter()
                .collect(),
            ..Default::default()
        })
        .map_err(|e| crate::RunError::Config(format!("key pool: {e}")))?;
        let kube = match cmcsi_issuer_client::client_from_config(
            config.kubeconfig.clone(),
            config.kube_api_qps,
            config.kube_api_burst,
        )
        .await
        {
            Ok(connection) => Ok(Kube {
                issuer: IssuerClient::new(connection, &config.node_id),
            }),
            Err(e) => {
                tracing::error!(error = %e, "no Kubernetes API configuration; serving existing volumes only");
                Err(e.to_string())
            }
        };
        let driver = Arc::new_cyclic(|weak: &Weak<Driver>| {
            let metrics = Arc::new(Metrics::new(Some(Arc::new(Live(weak.clone())))));
            Driver {
                config,
                store,
                pool,
                kube,
                renewer: OnceLock::new(),
                locks: VolumeLocks::default(),
                metrics,
            }
        });
        let renewer = Renewer::start(
            Arc::new(RenewalIssuer(Arc::downgrade(&driver))),
            cmcsi_renewer::RenewerConfig {
                max_concurrent: driver.config.max_concurrent_issuances,
                recovery_spread: driver.config.recovery_spread,
                backoff_initial: driver.config.renewal_backoff_initial,
                backoff_cap: driver.config.renewal_backoff_max,
                ..Default::default()
            },
        )
        .map_err(|e| crate::RunError::Config(e.to_string()))?;
        let _ = driver.renewer.set(renewer);
        driver.recover()?;
        // Once now, then every interval. Holds only a weak reference between
        // sweeps, so it ends with the driver.
        let interval = driver.config.abandoned_sweep_interval;
        let weak = Arc::downgrade(&driver);
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
        // Generate the pooled keys now rather than at the first take, so the
        // first Pods on a fresh node find them ready.
        driver.pool.fill();
        Ok(driver)
    }

    fn renewer(&self) -> &Renewer {
        // Set in `start` before the driver is shared.
        self.renewer
            .get()
            .unwrap_or_else(|| unreachable!("renewer is set at start"))
    }

    /// The driver's metrics.
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    /// Schedules every stored volume; set-aside directories are reported.
    fn recover(&self) -> Result<(), StoreError> {
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
            let disable = crate::keystores::stored_spec(&self.store, meta)
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

    fn pipeline(&self) -> Result<Pipeline<'_>, DriverError> {
        let kube = self
            .kube
            .as_ref()
            .map_err(|e| DriverError::NoKubernetes(e.clone()))?;
        Ok(Pipeline {
            store: &self.store,
            pool: &self.pool,
            issuer: &kube.issuer,
            use_token_request: self.config.use_token_request,
            max_requests_per_volume: self.config.max_requests_per_volume,
            planner: self.renewer().planner(),
            timeout: self.config.issuance_timeout,
        })
    }

    /// One issuance with metrics and a log line.
    async fn issue_logged(
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
                    && let Ok(spec) = crate::keystores::stored_spec(&self.store, &meta)
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
    async fn renew(&self, volume_id: &str, reason: IssueReason) -> Result<Lifetime, IssueFailure> {
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
        let spec =
            crate::keystores::publish_spec(&self.store, existing.as_ref(), &context, &req.secrets)?;
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
        crate::keystores::save_secrets(&self.store, volume_id, &spec)?;

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
            && let Ok(spec) = crate::keystores::stored_spec(&self.store, &meta)
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

    /// Stops background work.
    pub fn shutdown(&self) {
        if let Some(r) = self.renewer.get() {
            r.shutdown();
        }
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

fn issuer_labels(spec: &cmcsi_attrs::CertificateSpec) -> IssuerLabels {
    IssuerLabels {
        namespace: spec.pod.namespace.clone().unwrap_or_default(),
        issuer_name: spec.issuer.name.clone(),
        issuer_kind: spec.issuer.kind.clone(),
        issuer_group: spec.issuer.group.clone(),
    }
}

fn cert_labels(spec: &cmcsi_attrs::CertificateSpec) -> CertLabels {
    CertLabels {
        namespace: spec.pod.namespace.clone().unwrap_or_default(),
        pod: spec.pod.name.clone().unwrap_or_default(),
        issuer_name: spec.issuer.name.clone(),
        issuer_kind: spec.issuer.kind.clone(),
        issuer_group: spec.issuer.group.clone(),
    }
}

fn unix_seconds(t: std::time::SystemTime) -> f64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn jiff_like(t: std::time::SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .map(|ts| ts.to_string())
        .unwrap_or_default()
}
