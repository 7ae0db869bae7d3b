//! The driver's state, start-up and shutdown. Its jobs live beside it:
//! request handling in `publish`, recovery and the sweep in `recovery`,
//! metric names and labels in `metrics`, the start-up steps that need no
//! driver yet (store, Kubernetes connection) in `startup`.

use std::sync::{Arc, OnceLock, Weak};

use cmcsi_keygen::KeyPool;
use cmcsi_renewer::{IssueFailure, IssueReason, Lifetime, Renewer, VolumeId};
use cmcsi_store::Store;

use crate::blocking::Cost;
use crate::config::Config;
use crate::error::DriverError;
use crate::locks::{VolumeGuard, VolumeLocks};
use crate::metrics::{LiveStats, LiveValues, Metrics};
use crate::pipeline::Pipeline;
use crate::startup::Kube;

/// The driver: store, key pool, cert-manager client, renewer, metrics.
pub struct Driver {
    pub(crate) config: Config,
    pub(crate) store: Arc<Store>,
    pub(crate) pool: KeyPool,
    pub(crate) kube: Result<Kube, Arc<cmcsi_issuer_client::ConfigError>>,
    pub(crate) renewer: OnceLock<Renewer>,
    pub(crate) locks: VolumeLocks,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) events: crate::events::Events,
    /// Volumes waiting for their Pod (readiness gates, `${POD_IP}`), by
    /// Pod: woken in the renewer when that Pod changes (see `readiness`).
    pub(crate) pod_waiters: std::sync::Mutex<PodWaiters>,
    /// The trust bundle watches (see `trust`), set at start when Kubernetes is
    /// configured.
    pub(crate) trust: OnceLock<cmcsi_issuer_client::TrustWatch>,
    /// Volumes woken for a trust refresh (see `trust`), not a reissue.
    pub(crate) trust_pending: std::sync::Mutex<std::collections::HashSet<String>>,
    /// The driver itself, for tasks and callbacks it starts (the Pod watch's).
    this: Weak<Driver>,
}

/// Volumes waiting for a Pod, by the Pod's (namespace, name).
pub(crate) type PodWaiters =
    std::collections::HashMap<(String, String), std::collections::HashSet<String>>;

/// The renewer's tenant of a volume: its Pod's namespace (empty when the
/// kubelet sends no Pod information), so renewals are paced fairly between
/// namespaces.
pub(crate) fn tenant_of(
    context: &std::collections::BTreeMap<String, String>,
) -> cmcsi_renewer::Tenant {
    context
        .get(cmcsi_attrs::keys::POD_NAMESPACE)
        .map_or_else(cmcsi_renewer::Tenant::default, |ns| {
            cmcsi_renewer::Tenant::from(ns.as_str())
        })
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("node_id", &self.config.node_id)
            .finish_non_exhaustive()
    }
}

/// What the metrics read from the driver's parts at each scrape.
#[derive(Debug)]
struct Live(Weak<Driver>);

impl LiveStats for Live {
    fn read(&self) -> Option<LiveValues> {
        let d = self.0.upgrade()?;
        Some(LiveValues {
            renewer: d.renewer.get().map(Renewer::stats),
            watch: d
                .kube
                .as_ref()
                .ok()
                .map(|k| (k.issuer.ignored_requests(), k.issuer.cached_requests())),
            pool: d.pool.stats(),
            quarantine_removed: d.store.quarantine_removed(),
            events_dropped: d.events.dropped(),
            data_root: d.store.usage().ok(),
        })
    }

    fn requests(&self) -> Vec<crate::metrics::RequestReady> {
        let Some(d) = self.0.upgrade() else {
            return Vec::new();
        };
        let Ok(kube) = &d.kube else {
            return Vec::new();
        };
        kube.issuer
            .watched_requests()
            .into_iter()
            .map(|r| {
                let cr = &r.object;
                let ready = cr
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
                    .map_or("Unknown", |c| c.status.as_str())
                    .to_owned();
                let issuer = &cr.spec.issuer_ref;
                crate::metrics::RequestReady {
                    name: r.key.name.clone(),
                    namespace: r.key.namespace.clone(),
                    ready,
                    issuer_name: issuer.name.clone(),
                    issuer_kind: issuer.kind.clone().unwrap_or_default(),
                    issuer_group: issuer.group.clone().unwrap_or_default(),
                }
            })
            .collect()
    }
}

/// The renewer's way back into the driver.
struct RenewalIssuer(Weak<Driver>);

impl cmcsi_renewer::Issue for RenewalIssuer {
    fn issue(
        &self,
        volume: VolumeId,
        reason: IssueReason,
        permit: cmcsi_renewer::IssuancePermit,
    ) -> impl std::future::Future<Output = Result<Lifetime, IssueFailure>> + Send {
        let driver = self.0.upgrade();
        async move {
            let Some(driver) = driver else {
                return Err(IssueFailure::new("driver is shutting down"));
            };
            driver.renew(volume.as_str(), reason, permit).await
        }
    }
}

impl Driver {
    /// Opens the store, connects (lazily) to Kubernetes, starts the renewer
    /// and recovers every stored volume.
    pub async fn start(config: Config) -> Result<Arc<Driver>, crate::RunError> {
        let store = Arc::new(crate::startup::open_store(&config)?);
        let pool = KeyPool::new(cmcsi_keygen::PoolConfig {
            sizes: [(cmcsi_keygen::KeySpec::RSA_2048, config.key_pool_size)]
                .into_iter()
                .collect(),
            max_concurrent_large_rsa: config.request_limits.max_concurrent_large_rsa,
            ..Default::default()
        })
        .map_err(|e| crate::RunError::Config(format!("key pool: {e}")))?;
        let client_metrics = crate::metrics::ClientMetrics::default();
        let kube = crate::startup::connect(&config, &store, &client_metrics).await?;
        let events = crate::events::Events::start(
            config.events,
            kube.as_ref().ok().map(|k| k.recorder.clone()),
        );
        let driver = Arc::new_cyclic(|weak: &Weak<Driver>| {
            let live: Arc<dyn crate::metrics::LiveStats> = Arc::new(Live(weak.clone()));
            let metrics = Arc::new(
                Metrics::new(Some(Arc::clone(&live)), config.max_issuer_label_values)
                    .with_runtime_series(&client_metrics)
                    .with_csi_lib(&config.node_id, config.csi_lib_issue_labels, Some(live)),
            );
            Driver {
                events,
                config,
                store,
                pool,
                kube,
                renewer: OnceLock::new(),
                locks: VolumeLocks::default(),
                metrics,
                pod_waiters: Default::default(),
                trust: OnceLock::new(),
                trust_pending: Default::default(),
                this: weak.clone(),
            }
        });
        let renewer = Renewer::start(
            Arc::new(RenewalIssuer(Arc::downgrade(&driver))),
            cmcsi_renewer::RenewerConfig {
                max_concurrent: driver.config.max_concurrent_issuances,
                recovery_spread: driver.config.recovery_spread,
                backoff_initial: driver.config.renewal_backoff_initial,
                backoff_cap: driver.config.renewal_backoff_max,
                min_interval: driver.config.min_issuance_interval,
                renewal_rate: Some(driver.config.max_renewals_per_second),
                not_ready_backoff: driver.config.gate_backoff.backoff(),
                ..Default::default()
            },
        )
        .map_err(|e| crate::RunError::Config(e.to_string()))?;
        let _ = driver.renewer.set(renewer);
        driver.listen_to_pods();
        driver.start_trust_watch();
        driver.recover().await?;
        driver.spawn_sweeper();
        // Generate the pooled keys now rather than at the first take, so the
        // first Pods on a fresh node find them ready.
        driver.pool.fill();
        Ok(driver)
    }

    /// A weak handle on the driver, for callbacks that must not keep it alive.
    pub(crate) fn weak(&self) -> Weak<Driver> {
        self.this.clone()
    }

    pub(crate) fn renewer(&self) -> &Renewer {
        // Set in `start` before the driver is shared.
        self.renewer
            .get()
            .unwrap_or_else(|| unreachable!("renewer is set at start"))
    }

    /// Starts the trust watch (no watch runs until a volume registers). Its
    /// notifications go to [`Driver::trust_changed`].
    pub(crate) fn start_trust_watch(self: &Arc<Self>) {
        let Ok(kube) = &self.kube else {
            return;
        };
        let weak = Arc::downgrade(self);
        let watch = cmcsi_issuer_client::TrustWatch::new(
            kube.issuer.client().clone(),
            self.config.trust.clone(),
            Arc::new(move |ids: Vec<String>| {
                if let Some(driver) = weak.upgrade() {
                    driver.trust_changed(ids);
                }
            }),
        );
        let _ = self.trust.set(watch);
    }

    /// The driver's metrics.
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    /// Schedules every stored volume; set-aside directories are reported.
    pub(crate) fn pipeline(&self) -> Result<Pipeline<'_>, DriverError> {
        let kube = self
            .kube
            .as_ref()
            .map_err(|e| DriverError::NoKubernetes(Arc::clone(e)))?;
        Ok(Pipeline {
            store: &self.store,
            guard: None,
            permit: None,
            pool: &self.pool,
            issuer: &kube.issuer,
            use_token_request: self.config.use_token_request,
            max_requests_per_volume: self.config.max_requests_per_volume,
            planner: self.renewer().planner(),
            timeout: self.config.issuance_timeout,
            trust: self.trust_ctx(),
        })
    }

    /// Runs store IO on Tokio's blocking pool, as the store asks of async
    /// callers (through [`crate::blocking`]).
    pub(crate) async fn on_store<T, E>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, E> + Send + 'static,
    ) -> Result<T, DriverError>
    where
        T: Send + 'static,
        E: Into<DriverError> + Send + 'static,
    {
        self.on_store_as(Cost::Large, f).await
    }

    /// [`Driver::on_store`] for store IO of cost `cost`: a few small files
    /// of one volume are [`Cost::Small`] and run here (on the tmpfs).
    pub(crate) async fn on_store_as<T, E>(
        &self,
        cost: Cost,
        f: impl FnOnce(&Store) -> Result<T, E> + Send + 'static,
    ) -> Result<T, DriverError>
    where
        T: Send + 'static,
        E: Into<DriverError> + Send + 'static,
    {
        crate::blocking::with_store(&self.store, cost, (), "node storage", f).await
    }

    /// [`Driver::on_store`] for a change made under the volume's lock: the
    /// blocking task holds the lock too, so a publish the kubelet gives up
    /// on cannot release it while the change is still being made (an
    /// unpublish would then race the half-made change).
    pub(crate) async fn on_store_locked<T, E>(
        &self,
        guard: &VolumeGuard,
        f: impl FnOnce(&Store) -> Result<T, E> + Send + 'static,
    ) -> Result<T, DriverError>
    where
        T: Send + 'static,
        E: Into<DriverError> + Send + 'static,
    {
        self.on_store_locked_as(Cost::Large, guard, f).await
    }

    /// [`Driver::on_store_locked`] for store IO of cost `cost` (see
    /// [`Driver::on_store_as`]).
    pub(crate) async fn on_store_locked_as<T, E>(
        &self,
        cost: Cost,
        guard: &VolumeGuard,
        f: impl FnOnce(&Store) -> Result<T, E> + Send + 'static,
    ) -> Result<T, DriverError>
    where
        T: Send + 'static,
        E: Into<DriverError> + Send + 'static,
    {
        crate::blocking::with_store(&self.store, cost, guard.clone(), "node storage", f).await
    }

    /// A volume's metadata: one small file, read here when the data root is
    /// the tmpfs ([`Cost::Small`]), else on the blocking pool.
    pub(crate) async fn read_metadata(
        &self,
        volume_id: &str,
    ) -> Result<cmcsi_store::Metadata, DriverError> {
        let id = volume_id.to_string();
        self.on_store_as(Cost::Small, move |s| s.read_metadata(&id))
            .await
    }

    /// Stops background work.
    pub fn shutdown(&self) {
        if let Some(r) = self.renewer.get() {
            r.shutdown();
        }
    }
}
