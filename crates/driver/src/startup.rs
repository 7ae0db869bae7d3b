//! Start-up steps of `Driver::start` that need no driver yet: opening the
//! node store (and refusing keys on a disk) and connecting to Kubernetes
//! with the watch primed from the stored volumes ([`Kube`], the clients the
//! driver keeps).

use std::sync::{Arc, OnceLock};

use cmcsi_issuer_client::IssuerClient;
use cmcsi_store::Store;

use crate::config::Config;

/// The Kubernetes side, when configured.
pub(crate) struct Kube {
    pub(crate) issuer: IssuerClient,
    pub(crate) recorder: cmcsi_issuer_client::EventRecorder,
    /// The node's Pod watch, started when readiness gates or `${POD_IP}` first need it.
    pub(crate) pods: OnceLock<cmcsi_issuer_client::PodWatch>,
}

/// Opens the data root; with `--mount-tmpfs`, refuses one that is already a
/// mount point of another file system.
pub(crate) fn open_store(config: &Config) -> Result<Store, crate::RunError> {
    let store = Store::open(
        &config.data_root,
        cmcsi_store::StoreOptions {
            mount_tmpfs: config.mount_tmpfs,
            tmpfs_size: Some(config.tmpfs_size),
        },
    )?;
    let size = store.usage()?.size_bytes;
    let mut budget = config.tenants.budget(size);
    if !store.is_tmpfs() && config.tenants.renewal_reserve.is_none() {
        // The reserve guards the node's shared tmpfs, not a disk.
        budget.reserve_bytes = 0;
    }
    let store = store.with_budget(budget);
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
/// of the volumes in the store (and of those published later). The outer
/// error refuses the start: token-request mode over an insecure connection
/// without `--allow-insecure-token-request`.
pub(crate) async fn connect(
    config: &Config,
    store: &Arc<Store>,
    client_metrics: &crate::metrics::ClientMetrics,
) -> Result<Result<Kube, Arc<cmcsi_issuer_client::ConfigError>>, crate::RunError> {
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
            crate::config::check_token_transport(
                config.use_token_request,
                connection.insecure_transport(),
                config.transport.allow_insecure_token_request,
            )
            .map_err(crate::RunError::Config)?;
            let store = Arc::clone(store);
            let volumes =
                crate::blocking::run((), "listing stored volumes", move || stored_volumes(&store))
                    .await
                    .unwrap_or_default();
            let options = cmcsi_issuer_client::IssuerOptions::default()
                .max_watched_requests(config.max_watched_requests)
                .max_watched_requests_per(
                    config.watch_limits.max_per_namespace,
                    config.watch_limits.max_per_volume,
                )
                .lists(
                    config.watch_limits.list_strategy,
                    config.watch_limits.list_page_size,
                )
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
                let _ = kube.pods.set(cmcsi_issuer_client::PodWatch::start_with(
                    kube.issuer.client().clone(),
                    &config.node_id,
                    crate::gates::annotation_keys(&config.pod_readiness_gates),
                    pod_watch_options(&config.watch_limits),
                ));
            }
            Ok(Ok(kube))
        }
        Err(e) => {
            tracing::error!(error = %e, "no Kubernetes API configuration; serving existing volumes only");
            Ok(Err(Arc::new(e)))
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

/// The node's Pod watch's options from the watch limits.
pub(crate) fn pod_watch_options(
    limits: &crate::config::WatchLimits,
) -> cmcsi_issuer_client::PodWatchOptions {
    cmcsi_issuer_client::PodWatchOptions::default()
        .caps(limits.max_pods, limits.max_pod_annotation_bytes)
        .lists(limits.list_strategy, limits.list_page_size)
}
