//! The driver's state, start-up and shutdown. Its jobs live beside it:
//! request handling in `publish`, recovery and the sweep in `recovery`,
//! metric names and labels in `metrics`.

use std::sync::{Arc, OnceLock, Weak};

use cmcsi_issuer_client::IssuerClient;
use cmcsi_keygen::KeyPool;
use cmcsi_renewer::{IssueFailure, IssueReason, Lifetime, Renewer, VolumeId};
use cmcsi_store::Store;

use crate::config::Config;
use crate::error::DriverError;
use crate::locks::{VolumeGuard, VolumeLocks};
use crate::metrics::{Live, Metrics};
use crate::pipeline::Pipeline;

/// The Kubernetes side, when configured.
pub(crate) struct Kube {
    pub(crate) issuer: IssuerClient,
    pub(crate) recorder: cmcsi_issuer_client::EventRecorder,
    /// The node's Pod watch, started when readiness gates or `${POD_IP}` first need it.
    pub(crate) pods: OnceLock<cmcsi_issuer_client::PodWatch>,
}

/// The driver: store, key pool, cert-manager client, renewer, metrics.
pub struct Driver {
    pub(crate) config: Config,
    pub(crate) store: Arc<Store>,
    pub(crate) pool: KeyPool,
    pub(crate) kube: Result<Kube, String>,
    pub(crate) renewer: OnceLock<Renewer>,
    pub(crate) locks: VolumeLocks,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) events: crate::events::Events,
    /// Volumes waiting for their Pod's readiness gates (see `gates`).
    pub(crate) gate_waits:
        std::sync::Mutex<std::collections::HashMap<String, tokio::task::AbortHandle>>,
    /// The driver itself, for tasks it starts (the gate waits).
    this: Weak<Driver>,
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

impl Driver {
    /// Opens the store, connects (lazily) to Kubernetes, starts the renewer
    /// and recovers every stored volume.
    pub async fn start(config: Config) -> Result<Arc<Driver>, crate::RunError> {
        let store = Arc::new(open_store(&config)?);
        let pool = KeyPool::new(cmcsi_keygen::PoolConfig {
            sizes: [(cmcsi_keygen::KeySpec::RSA_2048, config.key_pool_size)]
                .into_iter()
                .collect(),
            max_concurrent_large_rsa: config.request_limits.max_concurrent_large_rsa,
            ..Default::default()
        })
        .map_err(|e| crate::RunError::Config(format!("key pool: {e}")))?;
        let client_metrics = crate::metrics::ClientMetrics::default();
        let kube = connect(&config, &store, &client_metrics).await;
        let events = crate::events::Events::start(
            config.events,
            kube.as_ref().ok().map(|k| k.recorder.clone()),
        );
        let driver = Arc::new_cyclic(|weak: &Weak<Driver>| {
            let metrics = Arc::new(
                Metrics::new(
                    Some(Arc::new(Live(weak.clone()))),
                    config.max_issuer_label_values,
                )
                .with_runtime_series(&client_metrics),
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
                gate_waits: Default::default(),
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
                ..Default::default()
            },
        )
        .map_err(|e| crate::RunError::Config(e.to_string()))?;
        let _ = driver.renewer.set(renewer);
        driver.recover().await?;
        driver.spawn_sweeper();
        // Generate the pooled keys now rather than at the first take, so the
        // first Pods on a fresh node find them ready.
        driver.pool.fill();
        Ok(driver)
    }

    /// The driver as shared, while it is.
    pub(crate) fn me(&self) -> Option<Arc<Driver>> {
        self.this.upgrade()
    }

    pub(crate) fn renewer(&self) -> &Renewer {
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
    pub(crate) fn pipeline(&self) -> Result<Pipeline<'_>, DriverError> {
        let kube = self
            .kube
            .as_ref()
            .map_err(|e| DriverError::NoKubernetes(e.clone()))?;
        Ok(Pipeline {
            store: &self.store,
            pool: &self.pool,
            issuer: &kube.issuer,
            use_token_request: self.config.use_token_request,
            pod_ips: None,
            max_requests_per_volume: self.config.max_requests_per_volume,
            planner: self.renewer().planner(),
            timeout: self.config.issuance_timeout,
        })
    }

    /// One issuance with metrics and a log line.
    /// Runs store IO on Tokio's blocking pool, as the store asks of async
    /// callers, so a slow file system never stalls the async workers that
    /// serve other volumes and the health RPCs.
    pub(crate) async fn on_store<T, E>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, E> + Send + 'static,
    ) -> Result<T, DriverError>
    where
        T: Send + 'static,
        E: Into<DriverError> + Send + 'static,
    {
        let store = Arc::clone(&self.store);
        match tokio::task::spawn_blocking(move || f(&store)).await {
            Ok(result) => result.map_err(Into::into),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(DriverError::Worker(format!("node storage: {e}"))),
        }
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
        let held = guard.clone();
        self.on_store(move |s| {
            let result = f(s);
            drop(held);
            result
        })
        .await
    }

    /// A volume's metadata, read on the blocking pool.
    pub(crate) async fn read_metadata(
        &self,
        volume_id: &str,
    ) -> Result<cmcsi_store::Metadata, DriverError> {
        let id = volume_id.to_string();
        self.on_store(move |s| s.read_metadata(&id)).await
    }

    /// Stops background work.
    pub fn shutdown(&self) {
        if let Some(r) = self.renewer.get() {
            r.shutdown();
        }
    }
}

/// Opens the data root; with `--mount-tmpfs`, refuses one that is already a
/// mount point of another file system.
fn open_store(config: &Config) -> Result<Store, crate::RunError> {
    let store = Store::open(
        &config.data_root,
        cmcsi_store::StoreOptions {
            mount_tmpfs: config.mount_tmpfs,
            tmpfs_size: Some(config.tmpfs_size),
        },
    )?;
    if config.mount_tmpfs && !store.is_tmpfs() {
        // Something other than a tmpfs is already mounted there: with
        // --mount-tmpfs the keys must never reach a disk, so refuse.
        return Err(crate::RunError::Config(format!(
            "{} is already a mount point but not a tmpfs, so private keys would be \
             written to disk; unmount it, or pass --mount-tmpfs=false to accept keys on \
             that file system",
            config.data_root.join(cmcsi_store::INMEMFS_DIR).display()
        )));
    }
    Ok(store)
}

/// The Kubernetes side, or why there is none (the driver then serves the
/// volumes it has but issues nothing). The watch keeps only the requests
/// of the volumes in the store (and of those published later).
async fn connect(
    config: &Config,
    store: &Arc<Store>,
    client_metrics: &crate::metrics::ClientMetrics,
) -> Result<Kube, String> {
    let connection = cmcsi_issuer_client::client_from_config_with(
        config.kubeconfig.clone(),
        &config.connection,
        config.kube_api_qps,
        config.kube_api_burst,
    )
    .await
    .and_then(|c| c.with_observer(Arc::new(client_metrics.clone())));
    match connection {
        Ok(connection) => {
            let store = Arc::clone(store);
            let volumes = tokio::task::spawn_blocking(move || stored_volumes(&store))
                .await
                .unwrap_or_default();
            let options = cmcsi_issuer_client::IssuerOptions::default()
                .max_watched_requests(config.max_watched_requests)
                .managed_volumes(volumes);
            let kube = Kube {
                recorder: cmcsi_issuer_client::EventRecorder::new(
                    &connection,
                    &config.driver_name,
                    &config.node_id,
                ),
                issuer: IssuerClient::with_options(connection, &config.node_id, options),
                pods: OnceLock::new(),
            };
            if !config.pod_readiness_gates.is_empty() {
                // Gates apply to every volume: watch the node's Pods from the start.
                let _ = kube.pods.set(cmcsi_issuer_client::PodWatch::start(
                    kube.issuer.client().clone(),
                    &config.node_id,
                    crate::gates::annotation_keys(&config.pod_readiness_gates),
                ));
            }
            Ok(kube)
        }
        Err(e) => {
            tracing::error!(error = %e, "no Kubernetes API configuration; serving existing volumes only");
            Err(e.to_string())
        }
    }
}

/// The volumes in the store, as the watch needs them: id, the Pod's
/// namespace and uid from the stored context. Unreadable volumes are left
/// to recovery, which reports them. Blocking (store IO).
fn stored_volumes(store: &Store) -> Vec<cmcsi_issuer_client::ManagedVolume> {
    use cmcsi_attrs::keys;
    let Ok(ids) = store.volume_ids() else {
        return Vec::new();
    };
    ids.iter()
        .filter_map(|id| {
            let meta = store.read_metadata(id).ok()?;
            Some(cmcsi_issuer_client::ManagedVolume {
                volume_id: id.clone(),
                namespace: meta.volume_context.get(keys::POD_NAMESPACE)?.clone(),
                pod_uid: meta.volume_context.get(keys::POD_UID).cloned(),
            })
        })
        .collect()
}
