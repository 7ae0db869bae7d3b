//! Trust bundle ConfigMaps: one labelled watch per namespace that has a volume using
//! one, and the check that tells an unlabelled ConfigMap from a missing one.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;

use super::{AbortOnDrop, TrustWatch};
use crate::watch_backoff::WatchBackoff;
use k8s_openapi::api::core::v1::ConfigMap;

impl TrustWatch {
    pub(super) fn start_cm(&self, ns: &str) {
        let mut inner = self.shared.lock();
        if inner.cm_tasks.contains_key(ns) {
            return;
        }
        let api = kube::Api::<ConfigMap>::namespaced(self.client.clone(), ns);
        let config = watcher::Config::default()
            .labels(&self.shared.opts.configmap_label)
            .any_semantic();
        let feed = Arc::clone(&self.shared);
        let owned = ns.to_owned();
        let task = tokio::spawn(async move {
            let backoff = WatchBackoff::new(Duration::from_millis(500), Duration::from_secs(30));
            let stream = watcher::watcher(api, config).backoff(backoff);
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                match event {
                    Ok(e) => feed.cm_event(&owned, e),
                    Err(e) => {
                        tracing::warn!(namespace = %owned, error = %e, "ConfigMap watch failed; retrying")
                    }
                }
            }
        });
        tracing::info!(namespace = %ns, selector = %self.shared.opts.configmap_label, "watching trust bundle ConfigMaps");
        inner.cm_tasks.insert(ns.to_owned(), AbortOnDrop(task));
    }

    /// Whether ConfigMap `namespace/name` exists at all (one GET of its metadata, on
    /// the error path only: the watch sees only labelled ones).
    pub(super) async fn config_map_exists(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<bool, kube::Error> {
        let api = kube::Api::<ConfigMap>::namespaced(self.client.clone(), namespace);
        Ok(api.get_metadata_opt(name).await?.is_some())
    }
}
