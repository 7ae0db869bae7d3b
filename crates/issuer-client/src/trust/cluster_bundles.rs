//! The one cluster-wide `ClusterTrustBundle` watch, its API version discovered at start.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;

use super::{AbortOnDrop, TrustWatch};
use crate::watch_backoff::WatchBackoff;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};

use super::{CLUSTER_TRUST_BUNDLE_VERSIONS, TrustError};

impl TrustWatch {
    pub(super) async fn start_ctb(&self) -> Result<(), TrustError> {
        if self.shared.lock().ctb_started {
            return Ok(());
        }
        let mut found = None;
        for v in CLUSTER_TRUST_BUNDLE_VERSIONS {
            match self
                .client
                .list_api_group_resources(&format!("certificates.k8s.io/{v}"))
                .await
            {
                Ok(list)
                    if list
                        .resources
                        .iter()
                        .any(|r| r.name == "clustertrustbundles") =>
                {
                    found = Some(*v);
                    break;
                }
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        let version = found.ok_or(TrustError::NotServed)?;
        let mut inner = self.shared.lock();
        if inner.ctb_started {
            return Ok(());
        }
        tracing::info!(version = %format!("certificates.k8s.io/{version}"), "watching ClusterTrustBundles");
        let ar = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("certificates.k8s.io", version, "ClusterTrustBundle"),
            "clustertrustbundles",
        );
        let api = kube::Api::<DynamicObject>::all_with(self.client.clone(), &ar);
        let feed = Arc::clone(&self.shared);
        let task = tokio::spawn(async move {
            let backoff = WatchBackoff::new(Duration::from_millis(500), Duration::from_secs(30));
            let stream =
                watcher::watcher(api, watcher::Config::default().any_semantic()).backoff(backoff);
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                match event {
                    Ok(e) => feed.ctb_event(e),
                    Err(e) => {
                        tracing::warn!(error = %e, "ClusterTrustBundle watch failed; retrying")
                    }
                }
            }
        });
        inner.ctb_started = true;
        inner.ctb_version = Some(version);
        inner.ctb_task = Some(AbortOnDrop(task));
        Ok(())
    }
}
