//! Publish, republish, unpublish and mount orchestration, and the logged
//! issuance shared with the renewer's callback.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use cmcsi_renewer::{IssueFailure, IssueReason, Lifetime};
use cmcsi_store::{Metadata, StoreError};

use crate::blocking::Cost;
use crate::driver::Driver;
use crate::error::DriverError;
use crate::events;
use crate::locks::VolumeGuard;
use crate::mount;
use crate::node::{PublishRequest, UnpublishRequest};
use crate::pipeline;
use crate::volume::Volume;

impl Driver {
    /// One issuance of `volume` (loaded once by the caller and handed down)
    /// with metrics, an Event and a log line, made under the volume's lock
    /// (`guard`) in one of the issuance slots (`permit`).
    pub(crate) async fn issue_logged(
        &self,
        volume: &Volume,
        why: &str,
        guard: &VolumeGuard,
        permit: cmcsi_renewer::IssuancePermit,
    ) -> Result<pipeline::Issued, DriverError> {
        let started = Instant::now();
        let result = match self.pipeline() {
            Ok(mut p) => {
                p.guard = Some(guard.clone());
                p.permit = Some(permit);
                p.issue(volume).await
            }
            Err(e) => Err(e),
        };
        let ms = started.elapsed().as_millis() as u64;
        if let Err(e) = &result {
            self.record_failure(volume.id(), guard, e).await;
        }
        match &result {
            Ok(issued) => self.log_issued(volume, why, ms, issued),
            Err(e) => self.log_failed(volume, why, ms, e),
        }
        result
    }

    /// Metrics, the Event and the log line of an issuance of `volume` that
    /// took `ms` milliseconds.
    fn log_issued(&self, volume: &Volume, why: &str, ms: u64, issued: &pipeline::Issued) {
        let (volume_id, spec) = (volume.id(), &volume.spec);
        self.metrics.issued(
            volume_id,
            spec,
            &volume.meta.target_path,
            &issued.request,
            issued.summary.not_after,
            issued.next_issuance,
        );
        self.events.succeeded(
            volume_id,
            events::pod_of(spec),
            events::request_named(spec, &issued.request),
            issued.summary.not_after,
        );
        tracing::info!(
            volume = volume_id,
            pod = spec.pod.name.as_deref().unwrap_or(""),
            namespace = spec.pod.namespace.as_deref().unwrap_or(""),
            request = %issued.request,
            serial = %issued.summary.serial_hex,
            not_after = %crate::timefmt::rfc3339(issued.summary.not_after),
            kind = why,
            outcome = "issued",
            duration_ms = ms,
            "issuance"
        );
    }

    /// Metrics, the Event and the log line of a failed issuance of `volume`.
    fn log_failed(&self, volume: &Volume, why: &str, ms: u64, e: &DriverError) {
        let (volume_id, spec) = (volume.id(), &volume.spec);
        self.metrics.failed(volume_id, spec);
        let pod = events::pod_of(spec);
        let renewal_due = volume.meta.next_issuance_time;
        self.events.failed(events::Failure {
            volume_id,
            pod: pod.clone(),
            first: renewal_due.is_none(),
            error: e,
            renewal_due,
        });
        let request = events::request_of(e);
        tracing::warn!(
            volume = volume_id,
            pod = pod.as_ref().map_or("", |p| p.name.as_str()),
            namespace = pod.as_ref().map_or("", |p| p.namespace.as_str()),
            request = request.as_ref().map(|r| r.to_string()).unwrap_or_default(),
            kind = why,
            outcome = "failed",
            error = %e,
            duration_ms = ms,
            "issuance"
        );
    }

    /// A renewal (or background first issuance) called by the renewer.
    pub(crate) async fn renew(
        &self,
        volume_id: &str,
        reason: IssueReason,
        permit: cmcsi_renewer::IssuancePermit,
    ) -> Result<Lifetime, IssueFailure> {
        // Wait behind a publish or unpublish of the same volume.
        let Some(guard) = self
            .locks
            .lock(volume_id, self.config.issuance_timeout)
            .await
        else {
            let meta = self.read_metadata(volume_id).await.ok();
            let (pod, namespace) = meta
                .as_ref()
                .map_or(("", ""), |m| events::pod_fields(&m.volume_context));
            tracing::warn!(
                volume = volume_id,
                pod,
                namespace,
                "renewal skipped: another operation on this volume is still in progress"
            );
            return Err(IssueFailure::new(
                "another operation on this volume is still in progress",
            ));
        };
        // Woken because its trust bundle changed: rewrite the files, key and
        // certificate unchanged, no request (a volume not issued yet is issued).
        if self.take_trust_pending(volume_id) && matches!(reason, IssueReason::Requested) {
            match self.refresh_trust(volume_id, &guard).await {
                Ok(Some(lifetime)) => return Ok(lifetime),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(volume = volume_id, error = %e, "trust bundle refresh failed; the current files stay");
                    return Err(IssueFailure::new(e.to_string()));
                }
            }
        }
        let why = reason.to_string();
        let volume = self
            .load_for_issuance(volume_id, &why)
            .await
            .map_err(|e| e.to_issue_failure())?;
        self.issue_logged(&volume, &why, &guard, permit)
            .await
            .map(|i| pipeline::lifetime_of(&i.summary, i.renew_before))
            .map_err(|e| e.to_issue_failure())
    }

    /// Under the volume's lock, the volume a renewal issues: its metadata
    /// and secrets read once, its Pod checked (every issuance, renewals too,
    /// re-reads the Pod's IPs for `${POD_IP}`), its context parsed once with
    /// those IPs. A Pod not ready is the renewer's "not ready" (checked again
    /// with the gate backoff, and woken when the Pod changes); for a volume
    /// already issued the first one of a row is also logged, counted and
    /// given its Event as a failed issuance.
    async fn load_for_issuance(&self, volume_id: &str, why: &str) -> Result<Volume, DriverError> {
        let started = Instant::now();
        let id = volume_id.to_string();
        let stored = self
            .on_store_as(Cost::Small, move |s| -> Result<_, DriverError> {
                let Some(meta) = Volume::read_metadata(s, &id)? else {
                    return Ok(None);
                };
                let secrets = s.read_secrets(&id)?;
                Ok(Some((meta, secrets)))
            })
            .await?;
        let Some((meta, secrets)) = stored else {
            return Err(DriverError::Gone(volume_id.to_string()));
        };
        match self.pod_ready(&meta.volume_context) {
            Ok(ips) => {
                let spec = crate::volume::parse_stored(&meta, secrets.iter(), ips)?.spec;
                Ok(Volume {
                    meta,
                    spec,
                    created: false,
                })
            }
            Err(e) => {
                if matches!(e, DriverError::PodNotReady(_)) {
                    self.wait_for_pod(volume_id, &meta.volume_context);
                    // Mounted empty until the Pod is ready (no failure), or
                    // already reported.
                    let waiting = self
                        .renewer()
                        .snapshot(volume_id)
                        .is_some_and(|s| s.not_ready > 0);
                    if meta.next_issuance_time.is_none() || waiting {
                        tracing::debug!(volume = volume_id, reason = %e, "waiting for the Pod");
                        return Err(e);
                    }
                }
                // The failure's labels and Event come from the spec with the
                // stand-in addresses, never issued.
                if let Ok(parsed) = crate::volume::parse_stored(&meta, secrets.iter(), None) {
                    let volume = Volume {
                        meta,
                        spec: parsed.spec,
                        created: false,
                    };
                    let ms = started.elapsed().as_millis() as u64;
                    self.log_failed(&volume, why, ms, &e);
                }
                Err(e)
            }
        }
    }

    /// NodePublishVolume.
    pub(crate) async fn publish(self: &Arc<Self>, req: PublishRequest) -> Result<(), DriverError> {
        let started = Instant::now();
        let result = self.publish_inner(req).await;
        self.metrics.published(started.elapsed());
        result
    }

    async fn publish_inner(self: &Arc<Self>, req: PublishRequest) -> Result<(), DriverError> {
        let volume_id = req.volume_id.as_str();
        let target = req.target_path.as_path();

        // The volume's lock free now (every first publish): one read of its
        // metadata under the lock decides between a republish and the
        // locked path.
        // A volume that is not there yet is created in the same blocking
        // task (one store hop for the read and the creation).
        let (guard, opened) = match self.locks.try_lock(volume_id) {
            Some(guard) => {
                let new = self.new_volume(&req);
                let opened = self
                    .on_store_locked_as(context_cost(&req.context), &guard, move |s| {
                        Ok::<_, DriverError>(match Volume::read_metadata(s, &new.id)? {
                            Some(meta) => Opened::Existing(meta),
                            None => Opened::Created(Box::new(new.create(s)?)),
                        })
                    })
                    .await?;
                match opened {
                    Opened::Existing(meta) if meta.next_issuance_time.is_some() => {
                        return self.republish_held(&req, guard, meta).await;
                    }
                    Opened::Existing(meta) => {
                        self.check_pod_ip(&req)?;
                        (guard, Opened::Existing(meta))
                    }
                    created => (guard, created),
                }
            }
            None => {
                // A republish of a running Pod (e.g. with a refreshed token)
                // never fails its volume, but waits for a renewal in flight.
                if let Some(done) = self.republish(&req).await {
                    return done;
                }
                self.check_pod_ip(&req)?;
                let Some(guard) = self
                    .locks
                    .lock(volume_id, self.config.issuance_timeout)
                    .await
                else {
                    return Err(busy(volume_id));
                };
                let id = req.volume_id.clone();
                let existing = self
                    .on_store_locked_as(Cost::Small, &guard, move |s| Volume::read_metadata(s, &id))
                    .await?;
                let opened = match existing {
                    Some(meta) => Opened::Existing(meta),
                    None => {
                        let new = self.new_volume(&req);
                        Opened::Created(Box::new(
                            self.on_store_locked_as(context_cost(&req.context), &guard, move |s| {
                                new.create(s)
                            })
                            .await?,
                        ))
                    }
                };
                (guard, opened)
            }
        };
        let volume = match opened {
            Opened::Existing(meta) => self.prepare(&req, &guard, meta).await?,
            Opened::Created(created) => {
                let (volume, warnings) = *created;
                log_warnings(&req.volume_id, &volume.spec, &warnings);
                volume
            }
        };
        self.apply_selinux_context(
            req.selinux_context.as_deref(),
            req.mount_group,
            &volume,
            &guard,
        )
        .await?;

        if !volume.issued() {
            let disable_auto_renew = volume.spec.disable_auto_renew;
            let tenant = crate::driver::tenant_of(&req.context);
            if self.config.continue_on_not_ready {
                // A refusal, not a wait (`${POD_IP}` of a hostNetwork Pod):
                // the kubelet shows it on the Pod and retries.
                if self.needs_pod(&req.context)
                    && let Err(e @ DriverError::InvalidRequest(_)) = self.pod_ready(&req.context)
                {
                    return Err(e);
                }
                // Issued in the background; a Pod not ready yet is the
                // renewer's "not ready", checked again until it is.
                self.renewer()
                    .manage_pending_in(tenant, volume_id, disable_auto_renew);
            } else {
                // The target directory is made beside the issuance: on the
                // blocking pool, while the key, the CSR and the API round
                // trip run (an ext4 `mkdir` alone can take half a
                // millisecond, a third of a first publish).
                let issue = async {
                    let permit = self.renewer().acquire_first_issuance().await;
                    self.issue_logged(&volume, "first", &guard, permit).await
                };
                let (target_state, issued) = tokio::join!(self.prepare_target(target), issue);
                let issued = match issued {
                    Ok(issued) => issued,
                    Err(e) => {
                        // Nothing is left behind that was not there before.
                        if let Ok(state) = target_state {
                            self.undo_target(target, state).await;
                        }
                        return Err(e);
                    }
                };
                self.renewer().manage_in(
                    tenant,
                    volume_id,
                    pipeline::lifetime_of(&issued.summary, issued.renew_before),
                    disable_auto_renew,
                );
                return self.attach(volume_id, target, target_state?);
            }
        }
        self.mount(volume_id, target).await
    }

    /// Refuses a new volume that uses `${POD_IP}` unless the driver mounts
    /// volumes before their Pod is ready.
    fn check_pod_ip(&self, req: &PublishRequest) -> Result<(), DriverError> {
        if self.refuses_pod_ip(req) {
            return Err(pod_ip_refused());
        }
        Ok(())
    }

    fn refuses_pod_ip(&self, req: &PublishRequest) -> bool {
        self.needs_pod(&req.context) && !self.config.continue_on_not_ready
    }

    /// What creating `req`'s volume needs, taken from the request and the
    /// flags (no IO), for [`NewVolume::create`] on the blocking pool.
    fn new_volume(&self, req: &PublishRequest) -> NewVolume {
        NewVolume {
            id: req.volume_id.clone(),
            target: req.target_path.to_string_lossy().into_owned(),
            context: req.context.clone(),
            secrets: req.secrets.clone(),
            mount_group: req.mount_group,
            go_defaults: self.config.go_defaults,
            limits: self.config.request_limits.clone(),
            token_request: self.config.use_token_request,
            refuse_pod_ip: self.refuses_pod_ip(req),
        }
    }

    /// Under the volume's lock: a volume that exists (its metadata `meta`,
    /// as read under the lock), the context updated when the kubelet sends a
    /// new one, and its spec, parsed once. The spec comes from the context
    /// the volume was first published with, its keystore passwords from the
    /// request's Secret data (kept in the store for renewals); its warnings
    /// are logged here, once per publish. A new volume is made by
    /// [`NewVolume::create`].
    async fn prepare(
        &self,
        req: &PublishRequest,
        guard: &VolumeGuard,
        mut meta: Metadata,
    ) -> Result<Volume, DriverError> {
        let parsed = if !req.secrets.is_empty() {
            crate::volume::parse_stored(&meta, req.secrets.iter(), None)?
        } else {
            let id = meta.volume_id.clone();
            let stored = self
                .on_store_as(Cost::Small, move |s| s.read_secrets(&id))
                .await?;
            crate::volume::parse_stored(&meta, stored.iter(), None)?
        };
        log_warnings(&req.volume_id, &parsed.spec, &parsed.warnings);
        let spec = parsed.spec;
        if self.config.use_token_request {
            pipeline::token_of(&req.context)?;
        }
        let context = stored_context(&req.context);
        // One blocking task for the metadata and the Secret-backed passwords.
        let secrets = crate::volume::secrets_of(&spec);
        let changed = meta.volume_context != context;
        if changed {
            meta.volume_context = context;
        }
        let m = meta.clone();
        self.on_store_locked_as(context_cost(&m.volume_context), guard, move |s| {
            if changed {
                s.write_metadata(&m)?;
            }
            s.write_secrets(&m.volume_id, &secrets)
        })
        .await?;
        Ok(Volume {
            meta,
            spec,
            created: false,
        })
    }

    /// Handles a publish for a volume that already has a certificate (the
    /// kubelet's republish, for instance with a refreshed token): `None`
    /// when this is not such a volume, and the locked path decides.
    ///
    /// Everything happens under the volume's lock, as a task of its own so
    /// that the kubelet giving up cannot cut it short: wait for the lock
    /// (a renewal may hold it, bounded by [`Driver::lock_hold_bound`]),
    /// record the new context where renewals read it (the metadata), then
    /// make sure the volume is mounted. The answer waits for that task,
    /// but never past the kubelet's deadline: a republish still waiting
    /// then answers OK when the target is mounted (a running Pod's volume
    /// is never failed) and leaves the task to record the context when the
    /// lock frees, before any renewal queued after it.
    async fn republish(self: &Arc<Self>, req: &PublishRequest) -> Option<Result<(), DriverError>> {
        let volume_id = req.volume_id.as_str();
        match self.read_metadata(volume_id).await {
            Ok(m) if m.next_issuance_time.is_some() => {}
            // Not issued yet, gone, or half removed by an unpublish running
            // now: the locked path decides.
            _ => return None,
        }
        let state = Arc::new(AtomicU8::new(WAITING));
        let mut task = tokio::spawn({
            let driver = Arc::clone(self);
            let id = req.volume_id.clone();
            let target = req.target_path.clone();
            let context = stored_context(&req.context);
            let state = Arc::clone(&state);
            async move { driver.republish_locked(&id, &target, context, &state).await }
        });
        // Dropped with this call, also when the kubelet cancels it: a task
        // still waiting for the lock then records the context only.
        let _abandon = Abandon(Arc::clone(&state));
        let joined = match req.deadline {
            None => task.await,
            Some(deadline) => {
                let answer_by = deadline
                    .checked_sub(ANSWER_MARGIN)
                    .unwrap_or(deadline)
                    .max(Instant::now());
                match tokio::time::timeout_at(answer_by.into(), &mut task).await {
                    Ok(joined) => joined,
                    Err(_) if abandon(&state) => {
                        return Some(self.answer_unlocked(volume_id, &req.target_path));
                    }
                    // The task took the lock just now: it only has to
                    // record and check the mount, so wait for it.
                    Err(_) => task.await,
                }
            }
        };
        Some(match joined {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Only a runtime shutting down cancels a task.
            Err(_) => Err(DriverError::Worker(format!("the republish of {volume_id}"))),
        })
    }

    /// The answer of a republish whose wait for the lock outlasted the
    /// kubelet's deadline: OK when the volume is mounted at the target
    /// (the context is recorded later), `ABORTED` otherwise (the kubelet
    /// retries, and the retry mounts under the lock).
    fn answer_unlocked(&self, volume_id: &str, target: &Path) -> Result<(), DriverError> {
        match mount::is_mount_point(target) {
            Ok(true) => {
                tracing::info!(
                    volume = volume_id,
                    "volume busy; answering the republish of the mounted volume now, its new \
                     context is recorded when the current operation ends"
                );
                Ok(())
            }
            Ok(false) | Err(_) => Err(busy(volume_id)),
        }
    }

    /// A republish under the volume's lock: records `context` when it
    /// changed, then (unless the call was abandoned before the lock was
    /// taken) mounts the volume at `target` if it is not mounted there.
    async fn republish_locked(
        &self,
        volume_id: &str,
        target: &Path,
        context: BTreeMap<String, String>,
        state: &AtomicU8,
    ) -> Result<(), DriverError> {
        let wait = self.lock_hold_bound();
        let Some(guard) = self.locks.lock(volume_id, wait).await else {
            let (pod, namespace) = events::pod_fields(&context);
            tracing::warn!(
                volume = volume_id,
                pod,
                namespace,
                wait_s = wait.as_secs(),
                "the refreshed volume context was not recorded: another operation held the \
                 volume's lock for longer than twice --issuance-timeout; the kubelet's next \
                 republish brings it again"
            );
            return Err(busy(volume_id));
        };
        let mount_it = state
            .compare_exchange(WAITING, HOLDING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        // Read again under the lock: an unpublish may have removed the
        // volume while we waited. Then the kubelet's last word was that
        // unpublish: neither the volume nor its target comes back.
        let id = volume_id.to_string();
        let meta = match self
            .on_store_as(Cost::Small, move |s| s.read_metadata(&id))
            .await
        {
            Ok(m) => m,
            Err(DriverError::Store(StoreError::VolumeNotFound { .. })) => {
                return Err(DriverError::Busy(format!(
                    "volume {volume_id} was unpublished while this publish waited for it; the \
                     kubelet will publish it again if the Pod still needs it"
                )));
            }
            Err(e) => return Err(e),
        };
        self.record_and_mount(volume_id, target, context, &guard, meta, mount_it)
            .await
    }

    /// A republish whose call took the volume's lock at once and read its
    /// metadata (`meta`, issued) under it: the same record and mount as
    /// [`Driver::republish_locked`], in a task of its own so the kubelet
    /// giving up cannot cut it short.
    async fn republish_held(
        self: &Arc<Self>,
        req: &PublishRequest,
        guard: VolumeGuard,
        meta: Metadata,
    ) -> Result<(), DriverError> {
        let driver = Arc::clone(self);
        let id = req.volume_id.clone();
        let target = req.target_path.clone();
        let context = stored_context(&req.context);
        let task = tokio::spawn(async move {
            driver
                .record_and_mount(&id, &target, context, &guard, meta, true)
                .await
        });
        match task.await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Only a runtime shutting down cancels a task.
            Err(_) => Err(DriverError::Worker(format!(
                "the republish of {}",
                req.volume_id
            ))),
        }
    }

    /// Under the volume's lock (`guard`): records `context` in the volume's
    /// metadata (`meta`, as read under the lock) when it changed and still
    /// parses, then, with `mount_it`, mounts the volume at `target` if it is
    /// not mounted there.
    async fn record_and_mount(
        &self,
        volume_id: &str,
        target: &Path,
        context: BTreeMap<String, String>,
        guard: &VolumeGuard,
        meta: Metadata,
        mount_it: bool,
    ) -> Result<(), DriverError> {
        if meta.volume_context != context {
            // Only a context that still parses (and, in token-request
            // mode, still has a token) replaces the one renewals use; its
            // problems are named by key, never by value.
            let usable = cmcsi_attrs::parse_with(&context, &crate::volume::options_of(&meta))
                .map_err(DriverError::from)
                .and_then(|_| {
                    if self.config.use_token_request {
                        pipeline::token_of(&context)
                            .map(drop)
                            .map_err(DriverError::from)
                    } else {
                        Ok(())
                    }
                });
            match usable {
                Ok(()) => {
                    let mut meta = meta;
                    meta.volume_context = context;
                    let cost = context_cost(&meta.volume_context);
                    self.on_store_locked_as(cost, guard, move |s| s.write_metadata(&meta))
                        .await?;
                }
                Err(e) => {
                    let (pod, namespace) = events::pod_fields(&context);
                    tracing::warn!(
                        volume = volume_id,
                        pod,
                        namespace,
                        error = %e,
                        "the republished volume context is invalid; renewals keep the previous one"
                    )
                }
            }
        }
        if !mount_it {
            return Ok(());
        }
        self.mount(volume_id, target).await
    }

    /// How long a republish waits for the volume's lock: twice the
    /// issuance timeout, as the holder (a renewal or a first issuance)
    /// waits up to the timeout for the node-wide watch and again for
    /// cert-manager.
    fn lock_hold_bound(&self) -> Duration {
        self.config.issuance_timeout.saturating_mul(2)
    }

    async fn mount(&self, volume_id: &str, target: &Path) -> Result<(), DriverError> {
        let state = self.prepare_target(target).await?;
        self.attach(volume_id, target, state)
    }

    /// Makes the target directory (the kubelet makes only its parent) and
    /// looks whether something is mounted there, on the blocking pool: a
    /// `mkdir` on the kubelet's file system is the slowest step of a first
    /// publish.
    async fn prepare_target(&self, target: &Path) -> Result<TargetState, DriverError> {
        let path = target.to_path_buf();
        crate::blocking::run((), "preparing the target directory", move || {
            let created = match std::fs::create_dir(&path) {
                Ok(()) => true,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => false,
                // A missing parent is made too, as before.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    std::fs::create_dir_all(&path)
                        .map_err(|e| mount_error(&path, "creating target directory", e))?;
                    true
                }
                Err(e) => return Err(mount_error(&path, "creating target directory", e)),
            };
            let mounted = !created
                && mount::is_mount_point(&path).map_err(|e| mount_error(&path, "inspecting", e))?;
            Ok(TargetState { created, mounted })
        })
        .await?
    }

    /// Removes a target directory [`Self::prepare_target`] made for a
    /// publish that then failed (best effort: the kubelet removes it too).
    /// A publish the kubelet abandons mid-issuance leaves its directory: the
    /// retry uses it, and the kubelet removes it with the Pod.
    async fn undo_target(&self, target: &Path, state: TargetState) {
        if !state.created {
            return;
        }
        let path = target.to_path_buf();
        let _ = crate::blocking::run((), "removing the target directory", move || {
            std::fs::remove_dir(&path)
        })
        .await;
    }

    /// Bind-mounts the volume's files read-only at a prepared target
    /// (a few syscalls, no file system walk).
    fn attach(
        &self,
        volume_id: &str,
        target: &Path,
        state: TargetState,
    ) -> Result<(), DriverError> {
        if state.mounted {
            return Ok(());
        }
        // A path, no IO.
        let data = self.store.data_dir(volume_id)?;
        mount::bind_read_only(&data, target)
            .map_err(|e| mount_error(target, "bind-mounting the volume at", e))
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
        self.events.forget(volume_id);
        if let Some(trust) = self.trust.get() {
            trust.forget(volume_id);
            self.metrics.trust_sources(&trust.volumes_per_source());
        }
        if let Ok(kube) = &self.kube {
            // The volume's requests go with it: the watch stops keeping them
            // below, so a later publish of the same volume id could not see
            // (and so never clean up) requests made before. A failure here
            // never fails the unpublish; the Pod's deletion collects them.
            if let Err(e) = kube.issuer.cleanup(volume_id, 0).await {
                tracing::warn!(volume = volume_id, error = %e, "could not delete the volume's CertificateRequests");
            }
            kube.issuer.forget_volume(volume_id);
        }
        self.metrics.forget(volume_id);
        mount::unmount_if_mounted(target).map_err(|source| DriverError::Mount {
            action: "unmounting",
            path: target.to_path_buf(),
            source,
        })?;
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

/// What [`Driver::prepare_target`] found at a publish's target.
#[derive(Clone, Copy, Debug)]
struct TargetState {
    /// The directory was made by this publish.
    created: bool,
    /// Something is mounted there already (a publish repeated after its
    /// answer was lost): nothing to mount.
    mounted: bool,
}

/// Most bytes of volume context (keys and values) whose parsing and
/// metadata write are [`Cost::Small`]: an ordinary context is 1–4 KiB, a
/// token included. `--max-volume-context-bytes` lets a Pod send up to 256
/// KiB by default, whose parsing and encoding would hold the worker (and
/// every other tenant's RPC on it): the blocking pool.
const SMALL_CONTEXT_BYTES: usize = 16 * 1024;

/// The cost of creating or rewriting a volume with `context`.
fn context_cost(context: &BTreeMap<String, String>) -> Cost {
    let bytes: usize = context.iter().map(|(k, v)| k.len() + v.len()).sum();
    Cost::small_if(bytes <= SMALL_CONTEXT_BYTES)
}

fn mount_error(path: &Path, action: &'static str, source: std::io::Error) -> DriverError {
    DriverError::Mount {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// How long before the kubelet's deadline a republish still waiting for the
/// volume's lock answers anyway (an answer after the deadline is lost).
const ANSWER_MARGIN: Duration = Duration::from_millis(500);

/// A republish's task is waiting for the volume's lock.
const WAITING: u8 = 0;
/// The task holds the lock: it records the context and mounts.
const HOLDING: u8 = 1;
/// The call answered (or was cancelled) first: the task only records the
/// context, and mounts nothing the kubelet was not told about.
const ABANDONED: u8 = 2;

/// Marks the call abandoned if its task has not taken the lock; `true`
/// when it had not.
fn abandon(state: &AtomicU8) -> bool {
    state
        .compare_exchange(WAITING, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
}

/// Abandons a republish's task when the call ends or is cancelled.
struct Abandon(Arc<AtomicU8>);

impl Drop for Abandon {
    fn drop(&mut self) {
        abandon(&self.0);
    }
}

/// The error for a volume whose lock is held past the wait.
fn busy(volume_id: &str) -> DriverError {
    DriverError::Busy(format!(
        "another operation on volume {volume_id} is still in progress; the kubelet will retry"
    ))
}

/// The part of a volume context the store keeps: every key with a prefix
/// (`csi.cert-manager.io/`, the kubelet's, annotation keys). A key without
/// one means nothing to the driver; attrs warns about it at publish, and it
/// is not stored, so it cannot grow the volume's metadata.
pub(crate) fn stored_context(context: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    context
        .iter()
        .filter(|(k, _)| k.contains('/'))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// A first publish's volume as read under its lock: there already, or
/// created by this publish (with the parse's warnings, to log).
enum Opened {
    Existing(Metadata),
    Created(Box<(Volume, Vec<String>)>),
}

/// What creating a volume needs from its first publish: owned, to run on
/// the blocking pool in the task that found the volume missing.
struct NewVolume {
    id: String,
    target: String,
    context: BTreeMap<String, String>,
    secrets: cmcsi_store::VolumeSecrets,
    mount_group: Option<u32>,
    go_defaults: bool,
    limits: crate::config::RequestLimits,
    token_request: bool,
    refuse_pod_ip: bool,
}

impl NewVolume {
    /// Checks the request, parses its context (once) and creates the volume
    /// with its metadata and Secret-backed passwords (blocking: store IO).
    /// Nothing is created when the request is refused.
    fn create(self, s: &cmcsi_store::Store) -> Result<(Volume, Vec<String>), DriverError> {
        if self.refuse_pod_ip {
            return Err(pod_ip_refused());
        }
        let parsed = crate::volume::parse_new(
            &self.context,
            self.secrets.iter(),
            self.go_defaults,
            &self.limits,
        )?;
        if self.token_request {
            pipeline::token_of(&self.context)?;
        }
        let spec = parsed.spec;
        let meta = pipeline::new_metadata(
            &self.id,
            &self.target,
            &stored_context(&self.context),
            self.mount_group,
            self.go_defaults,
        );
        let gid = spec.fs_group.or(self.mount_group);
        s.create_volume(&meta, gid)?;
        s.write_secrets(&meta.volume_id, &crate::volume::secrets_of(&spec))?;
        Ok((
            Volume {
                meta,
                spec,
                created: true,
            },
            parsed.warnings,
        ))
    }
}

/// The refusal of a new volume that uses `${POD_IP}` while the driver
/// mounts volumes only once issued.
fn pod_ip_refused() -> DriverError {
    DriverError::InvalidRequest(
        "this volume uses ${POD_IP} or ${POD_IPS}, but the Pod's IP address is \
         assigned only after its volumes are mounted: start the driver with \
         --continue-on-not-ready=true (it then mounts the volume empty and issues \
         once the Pod has an address), or remove the variable"
            .into(),
    )
}

/// Logs a parse's warnings, once per publish.
fn log_warnings(volume_id: &str, spec: &cmcsi_attrs::CertificateSpec, warnings: &[String]) {
    for warning in warnings {
        tracing::warn!(
            volume = %volume_id,
            pod = spec.pod.name.as_deref().unwrap_or(""),
            namespace = spec.pod.namespace.as_deref().unwrap_or(""),
            warning = %warning,
            "volume attribute ignored"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_context_is_written_on_the_blocking_pool() {
        let mut context = BTreeMap::from([(
            "csi.cert-manager.io/issuer-name".to_owned(),
            "ca".to_owned(),
        )]);
        assert_eq!(context_cost(&context), Cost::Small);
        context.insert(
            "csi.cert-manager.io/dns-names".to_owned(),
            "a".repeat(SMALL_CONTEXT_BYTES),
        );
        assert_eq!(context_cost(&context), Cost::Large);
    }
}
