//! The node's Pods, for readiness gates and `${POD_IP}`: one kube-runtime
//! watcher over the Pods scheduled to this node (`fieldSelector
//! spec.nodeName=<node>`), keeping of each Pod only what those read (name,
//! namespace, uid, IPs, condition types and statuses, and the annotations
//! the caller names). Nothing else of a Pod is kept.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::watch;

use crate::cache::WatchBackoff;

/// What the driver keeps of one Pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PodFacts {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.uid`.
    pub uid: String,
    /// `status.podIPs`, in the API's order (the primary first); unparsable entries dropped.
    pub pod_ips: Vec<IpAddr>,
    /// `status.conditions`: each condition's type and status.
    pub conditions: Vec<(String, String)>,
    /// The annotations named at [`PodWatch::start`], when present.
    pub annotations: BTreeMap<String, String>,
}

type Key = (String, String);

#[derive(Default)]
struct Inner {
    pods: HashMap<Key, PodFacts>,
    /// Objects seen during a relist, to drop the vanished ones at its end.
    relist: Option<HashMap<Key, PodFacts>>,
}

struct Shared {
    inner: Mutex<Inner>,
    /// Bumped on every change, so waiters re-check their gates.
    changed: watch::Sender<u64>,
    keep_annotations: Vec<String>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn facts(&self, pod: &Pod) -> Option<(Key, PodFacts)> {
        let meta = &pod.metadata;
        let key = (meta.namespace.clone()?, meta.name.clone()?);
        let status = pod.status.as_ref();
        let mut pod_ips: Vec<IpAddr> = status
            .and_then(|s| s.pod_ips.as_ref())
            .map(|ips| ips.iter().filter_map(|i| i.ip.parse().ok()).collect())
            .unwrap_or_default();
        if pod_ips.is_empty()
            && let Some(ip) = status.and_then(|s| s.pod_ip.as_deref())
            && let Ok(ip) = ip.parse()
        {
            pod_ips.push(ip);
        }
        let conditions = status
            .and_then(|s| s.conditions.as_ref())
            .map(|cs| {
                cs.iter()
                    .map(|c| (c.type_.clone(), c.status.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let annotations = meta
            .annotations
            .as_ref()
            .map(|a| {
                self.keep_annotations
                    .iter()
                    .filter_map(|k| a.get(k).map(|v| (k.clone(), v.clone())))
                    .collect()
            })
            .unwrap_or_default();
        Some((
            key.clone(),
            PodFacts {
                namespace: key.0,
                name: key.1,
                uid: meta.uid.clone().unwrap_or_default(),
                pod_ips,
                conditions,
                annotations,
            },
        ))
    }

    fn handle(&self, event: Event<Pod>) {
        let mut inner = self.lock();
        match event {
            Event::Init => inner.relist = Some(HashMap::new()),
            Event::InitApply(pod) => {
                if let Some((k, f)) = self.facts(&pod) {
                    inner.relist.get_or_insert_with(HashMap::new).insert(k, f);
                }
            }
            Event::InitDone => {
                if let Some(fresh) = inner.relist.take() {
                    inner.pods = fresh;
                }
            }
            Event::Apply(pod) => {
                if let Some((k, f)) = self.facts(&pod) {
                    inner.pods.insert(k, f);
                }
            }
            Event::Delete(pod) => {
                if let Some((k, _)) = self.facts(&pod) {
                    inner.pods.remove(&k);
                }
            }
        }
        drop(inner);
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// The node-scoped Pod watch. Cheap to clone; the watch stops when the last
/// clone is dropped.
#[derive(Clone)]
pub struct PodWatch {
    shared: Arc<Shared>,
    _task: Arc<AbortOnDrop>,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl std::fmt::Debug for PodWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodWatch")
            .field("pods", &self.shared.lock().pods.len())
            .finish_non_exhaustive()
    }
}

impl PodWatch {
    /// Starts watching the Pods on node `node_name` (needs `pods: list,
    /// watch`), keeping the annotations named in `keep_annotations`.
    pub fn start(client: kube::Client, node_name: &str, keep_annotations: Vec<String>) -> Self {
        let (changed, _) = watch::channel(0u64);
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner::default()),
            changed,
            keep_annotations,
        });
        let api = kube::Api::<Pod>::all(client);
        let config = watcher::Config::default()
            .fields(&format!("spec.nodeName={node_name}"))
            .any_semantic();
        let backoff = WatchBackoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let feed = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            let stream = watcher::watcher(api, config).backoff(backoff);
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                match event {
                    Ok(event) => feed.handle(event),
                    Err(e) => tracing::warn!(error = %e, "Pod watch failed; retrying"),
                }
            }
            tracing::error!("Pod watch ended");
        });
        PodWatch {
            shared,
            _task: Arc::new(AbortOnDrop(task)),
        }
    }

    /// What is known of Pod `namespace/name`, if the watch has seen it.
    pub fn get(&self, namespace: &str, name: &str) -> Option<PodFacts> {
        self.shared
            .lock()
            .pods
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// A receiver that sees a change whenever any Pod of the node changes.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.shared.changed.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodIP, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn shared() -> Shared {
        Shared {
            inner: Mutex::new(Inner::default()),
            changed: watch::channel(0).0,
            keep_annotations: vec!["keep/me".into()],
        }
    }

    fn pod(name: &str, ips: &[&str]) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                uid: Some("u".into()),
                annotations: Some(
                    [("keep/me", "1"), ("drop/me", "secret")]
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect(),
                ),
                ..Default::default()
            },
            status: Some(PodStatus {
                pod_ips: Some(ips.iter().map(|i| PodIP { ip: (*i).into() }).collect()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn keeps_only_what_gates_read_and_relists_drop_vanished_pods() {
        let s = shared();
        s.handle(Event::Apply(pod("a", &["10.0.0.1", "fd00::1"])));
        let a = s
            .lock()
            .pods
            .get(&("ns".into(), "a".into()))
            .cloned()
            .unwrap();
        assert_eq!(a.pod_ips.len(), 2);
        assert_eq!(a.conditions, vec![("Ready".to_owned(), "True".to_owned())]);
        assert_eq!(a.annotations.len(), 1);
        assert!(a.annotations.contains_key("keep/me"));
        s.handle(Event::Init);
        s.handle(Event::InitApply(pod("b", &[])));
        s.handle(Event::InitDone);
        let inner = s.lock();
        assert!(inner.pods.contains_key(&("ns".into(), "b".into())));
        assert!(!inner.pods.contains_key(&("ns".into(), "a".into())));
    }
}
