//! The node's Pods, for readiness gates and `${POD_IP}`: one kube-runtime
//! watcher over the Pods scheduled to this node (`fieldSelector
//! spec.nodeName=<node>`), keeping of each Pod only what those read (name,
//! namespace, uid, IPs, condition types and statuses, and the annotations
//! the caller names). Nothing else of a Pod is kept, and what is kept is
//! capped: at most [`PodWatchOptions::max_pods`] Pods and
//! [`PodWatchOptions::max_annotation_bytes`] of kept annotations per Pod.
//! Lists stream or are paged as the request watch's (see
//! [`ListStrategy`](crate::ListStrategy)); each Pod is decoded without its
//! spec.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::watcher::{self, Event};
use serde::Deserialize;
use tokio::sync::watch;

use crate::relist::{DEFAULT_LIST_PAGE_SIZE, ListStrategy, Lists};
use crate::watch_backoff::WatchBackoff;

/// Default of [`PodWatchOptions::max_pods`]: well above the kubelet's
/// `maxPods` (110 by default).
pub const DEFAULT_MAX_WATCHED_PODS: usize = 1024;
/// Default of [`PodWatchOptions::max_annotation_bytes`].
pub const DEFAULT_MAX_POD_ANNOTATION_BYTES: usize = 16 * 1024;

/// Tuning for a [`PodWatch`]. `Default` suits production.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PodWatchOptions {
    /// Most Pods kept (default [`DEFAULT_MAX_WATCHED_PODS`]); further Pods
    /// are not kept (their volumes wait as for an unknown Pod), counted in
    /// [`PodWatch::refused`] and logged once per episode.
    pub max_pods: usize,
    /// Most bytes (keys and values) of the named annotations kept per Pod
    /// (default [`DEFAULT_MAX_POD_ANNOTATION_BYTES`]); annotations beyond it
    /// are not kept (as if absent) and counted in [`PodWatch::refused`].
    pub max_annotation_bytes: usize,
    /// How the initial lists are made.
    pub list_strategy: ListStrategy,
    /// Page size of paged lists.
    pub list_page_size: u32,
}

impl Default for PodWatchOptions {
    fn default() -> Self {
        Self {
            max_pods: DEFAULT_MAX_WATCHED_PODS,
            max_annotation_bytes: DEFAULT_MAX_POD_ANNOTATION_BYTES,
            list_strategy: ListStrategy::Auto,
            list_page_size: DEFAULT_LIST_PAGE_SIZE,
        }
    }
}

impl PodWatchOptions {
    /// Sets the caps.
    pub fn caps(mut self, max_pods: usize, max_annotation_bytes: usize) -> Self {
        self.max_pods = max_pods;
        self.max_annotation_bytes = max_annotation_bytes;
        self
    }

    /// Sets how lists are made and their page size.
    pub fn lists(mut self, strategy: ListStrategy, page_size: u32) -> Self {
        self.list_strategy = strategy;
        self.list_page_size = page_size.max(1);
        self
    }
}

/// The form the Pod watch decodes: metadata, `spec.hostNetwork` and the few
/// status fields the driver reads; the rest of the spec (containers,
/// volumes, ...) is skipped while decoding.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct WatchedPod {
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: WatchedPodSpec,
    #[serde(default)]
    status: Option<WatchedPodStatus>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WatchedPodSpec {
    #[serde(default)]
    host_network: bool,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WatchedPodStatus {
    #[serde(default, rename = "podIP")]
    pod_ip: Option<String>,
    #[serde(default, rename = "podIPs")]
    pod_ips: Option<Vec<WatchedPodIp>>,
    #[serde(default)]
    conditions: Option<Vec<WatchedCondition>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct WatchedPodIp {
    #[serde(default)]
    ip: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct WatchedCondition {
    #[serde(default, rename = "type")]
    type_: String,
    #[serde(default)]
    status: String,
}

impl kube::Resource for WatchedPod {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("Pod")
    }
    fn group(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("")
    }
    fn version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("v1")
    }
    fn plural(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("pods")
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

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
    /// `spec.hostNetwork`: the Pod's IP is the node's.
    pub host_network: bool,
}

type Key = (String, String);

#[derive(Default)]
struct Inner {
    pods: HashMap<Key, PodFacts>,
    /// Objects seen during a relist, to drop the vanished ones at its end.
    relist: Option<HashMap<Key, PodFacts>>,
}

/// Called with `(namespace, name)` of each Pod that changed.
type Listener = Arc<dyn Fn(&str, &str) + Send + Sync>;

struct Shared {
    inner: Mutex<Inner>,
    /// Bumped on every change, so waiters re-check their gates.
    changed: watch::Sender<u64>,
    /// Told which Pod changed ([`PodWatch::on_change`]).
    listener: Mutex<Option<Listener>>,
    keep_annotations: Vec<String>,
    max_pods: usize,
    max_annotation_bytes: usize,
    /// Pods and annotations not kept over a cap.
    refused: AtomicU64,
    /// Set while the Pod cap is hit, so it is logged once per episode.
    full: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn facts(&self, pod: &WatchedPod) -> Option<(Key, PodFacts)> {
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
        let mut annotations = BTreeMap::new();
        let mut bytes = 0usize;
        if let Some(a) = meta.annotations.as_ref() {
            for k in &self.keep_annotations {
                if let Some(v) = a.get(k) {
                    bytes = bytes.saturating_add(k.len() + v.len());
                    if bytes > self.max_annotation_bytes {
                        self.refused.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(
                            namespace = %key.0,
                            name = %key.1,
                            annotation = %k,
                            "not keeping a Pod annotation over --max-pod-annotation-bytes={}",
                            self.max_annotation_bytes
                        );
                        continue;
                    }
                    annotations.insert(k.clone(), v.clone());
                }
            }
        }
        Some((
            key.clone(),
            PodFacts {
                namespace: key.0,
                name: key.1,
                uid: meta.uid.clone().unwrap_or_default(),
                pod_ips,
                conditions,
                annotations,
                host_network: pod.spec.host_network,
            },
        ))
    }

    /// Whether a Pod not held yet fits under the cap (`held` Pods are held now).
    fn fits(&self, key: &Key, held: usize) -> bool {
        if held < self.max_pods {
            self.full.store(false, Ordering::Relaxed);
            return true;
        }
        self.refused.fetch_add(1, Ordering::Relaxed);
        if !self.full.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                namespace = %key.0,
                name = %key.1,
                "the Pod watch holds --max-watched-pods={} Pods; ignoring further ones \
                 until some are deleted",
                self.max_pods
            );
        }
        false
    }

    fn handle(&self, event: Event<WatchedPod>) {
        let mut inner = self.lock();
        // The Pods whose facts changed, for the listener.
        let mut touched: Vec<Key> = Vec::new();
        match event {
            Event::Init => inner.relist = Some(HashMap::new()),
            Event::InitApply(pod) => {
                if let Some((k, f)) = self.facts(&pod) {
                    let buffer = inner.relist.get_or_insert_with(HashMap::new);
                    if buffer.contains_key(&k) || self.fits(&k, buffer.len()) {
                        buffer.insert(k, f);
                    }
                }
            }
            Event::InitDone => {
                if let Some(fresh) = inner.relist.take() {
                    touched.extend(
                        fresh
                            .iter()
                            .filter(|(k, f)| inner.pods.get(*k) != Some(*f))
                            .map(|(k, _)| k.clone()),
                    );
                    touched.extend(
                        inner
                            .pods
                            .keys()
                            .filter(|k| !fresh.contains_key(*k))
                            .cloned(),
                    );
                    inner.pods = fresh;
                }
            }
            Event::Apply(pod) => {
                if let Some((k, f)) = self.facts(&pod)
                    && (inner.pods.contains_key(&k) || self.fits(&k, inner.pods.len()))
                    && inner.pods.get(&k) != Some(&f)
                {
                    touched.push(k.clone());
                    inner.pods.insert(k, f);
                }
            }
            Event::Delete(pod) => {
                if let Some((k, _)) = self.facts(&pod)
                    && inner.pods.remove(&k).is_some()
                {
                    touched.push(k);
                }
            }
        }
        drop(inner);
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
        let listener = self
            .listener
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(listener) = listener {
            for (namespace, name) in &touched {
                listener(namespace, name);
            }
        }
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
    /// watch`), keeping the annotations named in `keep_annotations`, with
    /// the default [`PodWatchOptions`].
    pub fn start(client: kube::Client, node_name: &str, keep_annotations: Vec<String>) -> Self {
        Self::start_with(
            client,
            node_name,
            keep_annotations,
            PodWatchOptions::default(),
        )
    }

    /// [`PodWatch::start`] with explicit options.
    pub fn start_with(
        client: kube::Client,
        node_name: &str,
        keep_annotations: Vec<String>,
        options: PodWatchOptions,
    ) -> Self {
        let (changed, _) = watch::channel(0u64);
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner::default()),
            changed,
            listener: Mutex::new(None),
            keep_annotations,
            max_pods: options.max_pods,
            max_annotation_bytes: options.max_annotation_bytes,
            refused: AtomicU64::new(0),
            full: AtomicBool::new(false),
        });
        let api = kube::Api::<WatchedPod>::all(client.clone());
        let config = watcher::Config::default().fields(&format!("spec.nodeName={node_name}"));
        let backoff = WatchBackoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let lists = Lists {
            strategy: options.list_strategy,
            page_size: options.list_page_size,
        };
        let feed = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            let setup = crate::relist::Setup {
                client,
                base: config,
                lists,
                backoff,
                what: "Pod",
            };
            crate::relist::run(
                setup,
                api,
                |event| feed.handle(event),
                |e| tracing::warn!(error = %e, "Pod watch failed; retrying"),
                |_| {},
            )
            .await;
        });
        PodWatch {
            shared,
            _task: Arc::new(AbortOnDrop(task)),
        }
    }

    /// Pods and Pod annotations not kept because of a cap.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::Relaxed)
    }

    /// How many Pods are kept.
    pub fn len(&self) -> usize {
        self.shared.lock().pods.len()
    }

    /// Whether no Pod is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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

    /// Calls `listener(namespace, name)` for each Pod whose kept facts
    /// change (added, changed, deleted, or changed across a relist), on the
    /// watch's task: keep it short and non-blocking. Replaces an earlier
    /// listener.
    pub fn on_change(&self, listener: impl Fn(&str, &str) + Send + Sync + 'static) {
        *self
            .shared
            .listener
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(listener));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Shared {
        Shared {
            inner: Mutex::new(Inner::default()),
            changed: watch::channel(0).0,
            listener: Mutex::new(None),
            keep_annotations: vec!["keep/me".into(), "keep/big".into()],
            max_pods: 3,
            max_annotation_bytes: 64,
            refused: AtomicU64::new(0),
            full: AtomicBool::new(false),
        }
    }

    fn pod(name: &str, ips: &[&str]) -> WatchedPod {
        WatchedPod {
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
            status: Some(WatchedPodStatus {
                pod_ips: Some(
                    ips.iter()
                        .map(|i| WatchedPodIp { ip: (*i).into() })
                        .collect(),
                ),
                conditions: Some(vec![WatchedCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn pods_and_annotation_bytes_are_capped() {
        let s = shared();
        for name in ["a", "b", "c", "d"] {
            s.handle(Event::Apply(pod(name, &[])));
        }
        assert_eq!(s.lock().pods.len(), 3, "the fourth Pod is over the cap");
        assert_eq!(s.refused.load(Ordering::Relaxed), 1);
        // A held Pod still updates; a deleted one makes room.
        s.handle(Event::Apply(pod("a", &["10.0.0.9"])));
        s.handle(Event::Delete(pod("b", &[])));
        s.handle(Event::Apply(pod("d", &[])));
        assert!(s.lock().pods.contains_key(&("ns".into(), "d".into())));
        // A kept annotation over the byte cap is not kept.
        let mut big = pod("a", &[]);
        big.metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert("keep/big".into(), "x".repeat(100));
        s.handle(Event::Apply(big));
        let a = s.lock().pods[&("ns".to_owned(), "a".to_owned())].clone();
        assert!(a.annotations.contains_key("keep/me"));
        assert!(!a.annotations.contains_key("keep/big"));
    }

    #[test]
    fn decodes_without_the_spec() {
        let pod: WatchedPod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": {"containers": [{"name": "c", "image": "i"}], "hostNetwork": true},
            "status": {"podIP": "10.0.0.1", "conditions": [{"type": "Ready", "status": "True"}]},
        }))
        .unwrap();
        let (_, facts) = shared().facts(&pod).unwrap();
        assert_eq!(facts.pod_ips, vec!["10.0.0.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(facts.conditions.len(), 1);
        assert!(facts.host_network);
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

    #[test]
    fn the_listener_hears_each_pod_whose_facts_change() {
        let s = shared();
        let heard = Arc::new(Mutex::new(Vec::<String>::new()));
        let h = Arc::clone(&heard);
        *s.listener.lock().unwrap() = Some(Arc::new(move |ns: &str, name: &str| {
            h.lock().unwrap().push(format!("{ns}/{name}"));
        }));
        let take = || std::mem::take(&mut *heard.lock().unwrap());
        s.handle(Event::Apply(pod("a", &[])));
        assert_eq!(take(), ["ns/a"]);
        // The same facts again (a status change the gates do not read): silent.
        s.handle(Event::Apply(pod("a", &[])));
        assert!(take().is_empty());
        s.handle(Event::Apply(pod("a", &["10.0.0.1"])));
        assert_eq!(take(), ["ns/a"]);
        // A relist tells of the Pods that changed or vanished meanwhile.
        s.handle(Event::Apply(pod("b", &[])));
        take();
        s.handle(Event::Init);
        s.handle(Event::InitApply(pod("a", &["10.0.0.1"])));
        s.handle(Event::InitApply(pod("c", &[])));
        s.handle(Event::InitDone);
        let mut relisted = take();
        relisted.sort();
        assert_eq!(relisted, ["ns/b", "ns/c"]);
        s.handle(Event::Delete(pod("a", &[])));
        assert_eq!(take(), ["ns/a"]);
    }
}
