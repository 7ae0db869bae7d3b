//! Trust bundle sources: the cluster's `ClusterTrustBundle`s and trust-manager's
//! ConfigMaps, watched (never polled) only while a volume on the node uses them.
//!
//! - `ClusterTrustBundle`s: one cluster-wide watch, started when the first volume
//!   using one registers; the API version is discovered at start (`v1`, else `v1beta1`,
//!   else `v1alpha1`) and logged. Of each object only its name, signer name, labels and
//!   bundle are kept.
//! - ConfigMaps (only when [`TrustOptions::configmaps`] is set): one watch per namespace
//!   that has a volume using one, with the label selector
//!   [`TrustOptions::configmap_label`] (trust-manager's `trust.cert-manager.io/bundle`
//!   by default), so nothing else of the namespace is read.
//!
//! Both are bounded: at most [`TrustOptions::max_objects`] objects and
//! [`TrustOptions::max_bytes`] bytes of bundles are kept; the rest are counted
//! ([`TrustWatch::ignored`]). A change calls the notifier with the volumes whose source
//! it touches, so the driver can rewrite their files.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use cmcsi_attrs::TrustSource;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::DynamicObject;
use kube::runtime::watcher::Event;
use tokio::sync::watch;

mod cluster_bundles;
mod configmaps;

/// trust-manager's label on its targets, the default ConfigMap label selector.
pub const DEFAULT_CONFIGMAP_LABEL: &str = "trust.cert-manager.io/bundle";
/// Default cap on the objects kept (ClusterTrustBundles and ConfigMaps together).
pub const DEFAULT_MAX_TRUST_OBJECTS: usize = 1000;
/// Default cap on the bytes of bundles kept (all objects together): 64 MiB.
pub const DEFAULT_MAX_TRUST_BYTES: usize = 64 * 1024 * 1024;
/// The versions of `certificates.k8s.io` tried for `ClusterTrustBundle`s, newest first.
pub const CLUSTER_TRUST_BUNDLE_VERSIONS: &[&str] = &["v1", "v1beta1", "v1alpha1"];

/// How the trust watches are bounded and what they read.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TrustOptions {
    /// Whether ConfigMap sources are allowed (`--trust-bundle-configmaps`).
    pub configmaps: bool,
    /// The label selector the ConfigMap watch uses (`--trust-bundle-configmap-label`).
    pub configmap_label: String,
    /// At most this many objects kept (`--max-trust-bundle-objects`).
    pub max_objects: usize,
    /// At most this many bytes of bundles kept (`--max-trust-bundle-cache-bytes`).
    pub max_bytes: usize,
    /// One object's bundle at most this large (`--max-trust-bundle-bytes`).
    pub max_bundle_bytes: usize,
}

impl Default for TrustOptions {
    fn default() -> Self {
        TrustOptions {
            configmaps: false,
            configmap_label: DEFAULT_CONFIGMAP_LABEL.to_owned(),
            max_objects: DEFAULT_MAX_TRUST_OBJECTS,
            max_bytes: DEFAULT_MAX_TRUST_BYTES,
            max_bundle_bytes: 1024 * 1024,
        }
    }
}

/// Why a source gives no bundle.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// No object matches the source.
    #[error("the trust bundle source {source_name} does not exist{hint}")]
    Missing {
        /// The source, for a person.
        source_name: String,
        /// What to do about it.
        hint: String,
    },
    /// The ConfigMap exists but lacks the label the driver selects on.
    #[error(
        "ConfigMap {namespace}/{name} is not a trust bundle: it lacks the label {selector:?} that the driver selects on (--trust-bundle-configmap-label); the driver reads only ConfigMaps that trust-manager writes: use a trust-manager Bundle's target, or add the label"
    )]
    NotLabelled {
        /// The ConfigMap's namespace.
        namespace: String,
        /// The ConfigMap's name.
        name: String,
        /// The label selector.
        selector: String,
    },
    /// ConfigMap sources are off on this node.
    #[error(
        "the volume's trust bundle is a ConfigMap, but this driver does not read ConfigMaps; start it with --trust-bundle-configmaps (chart value app.trustBundleConfigMaps), or use a ClusterTrustBundle"
    )]
    ConfigMapsDisabled,
    /// The API server serves no version of `ClusterTrustBundle`.
    #[error(
        "the API server serves no version of certificates.k8s.io ClusterTrustBundle (tried v1, v1beta1, v1alpha1); enable it (Kubernetes 1.33+ with the beta API on, or 1.37+)"
    )]
    NotServed,
    /// An object was too large, or the cache is full.
    #[error("the trust bundle source {source_name} is refused: {reason}")]
    Refused {
        /// The source.
        source_name: String,
        /// Which limit.
        reason: String,
    },
    /// The API could not be reached.
    #[error("reading trust bundles from the API failed: {0}")]
    Api(#[from] kube::Error),
    /// The watch has not listed its objects in time.
    #[error("the {0} watch has not synced yet; retry")]
    NotSynced(&'static str),
}

/// What is kept of one object: its bundle, or why it was refused.
#[derive(Debug, Clone)]
struct Kept {
    signer: Option<String>,
    labels: BTreeMap<String, String>,
    /// data key → PEM (a ClusterTrustBundle has one entry, key `""`).
    data: Result<BTreeMap<String, String>, String>,
    bytes: usize,
}

/// (namespace or `""`, name); `""` namespaces are ClusterTrustBundles.
type Key = (String, String);

#[derive(Default)]
struct Inner {
    volumes: HashMap<String, (TrustSource, String)>,
    ctb_started: bool,
    ctb_synced: bool,
    ctb_version: Option<&'static str>,
    ctb_task: Option<AbortOnDrop>,
    cm_tasks: HashMap<String, AbortOnDrop>,
    cm_synced: HashMap<String, bool>,
    objects: BTreeMap<Key, Kept>,
    relist: HashMap<String, BTreeMap<Key, Kept>>,
    bytes: usize,
    ignored: u64,
}

pub(crate) struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Called with the ids of the volumes whose trust bundle source changed.
pub type Notify = Arc<dyn Fn(Vec<String>) + Send + Sync>;

struct Shared {
    inner: Mutex<Inner>,
    opts: TrustOptions,
    notify: Notify,
    synced: watch::Sender<u64>,
}

/// The trust bundle watches. Cheap to clone.
#[derive(Clone)]
pub struct TrustWatch {
    shared: Arc<Shared>,
    client: kube::Client,
}

impl std::fmt::Debug for TrustWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustWatch").finish_non_exhaustive()
    }
}

fn ctb_matches(source: &TrustSource, name: &str, kept: &Kept) -> bool {
    source.matches_cluster_trust_bundle(name, kept.signer.as_deref(), &kept.labels)
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn keep(
        &self,
        signer: Option<String>,
        labels: BTreeMap<String, String>,
        data: BTreeMap<String, String>,
    ) -> Kept {
        let bytes: usize = data.iter().map(|(k, v)| k.len() + v.len()).sum();
        let too_large = data.values().find(|v| v.len() > self.opts.max_bundle_bytes);
        let data = match too_large {
            Some(v) => Err(format!(
                "its bundle is {} bytes, more than the {} allowed (--max-trust-bundle-bytes)",
                v.len(),
                self.opts.max_bundle_bytes
            )),
            None => Ok(data),
        };
        let bytes = if data.is_ok() { bytes } else { 0 };
        Kept {
            signer,
            labels,
            data,
            bytes,
        }
    }

    /// The volumes a change of `key` from `old` to `new` touches.
    fn touched(inner: &Inner, key: &Key, old: Option<&Kept>, new: Option<&Kept>) -> Vec<String> {
        inner
            .volumes
            .iter()
            .filter(|(_, (source, ns))| match source {
                TrustSource::ConfigMap { name, .. } => key.0 == *ns && key.1 == *name,
                TrustSource::ClusterTrustBundleName(_)
                | TrustSource::ClusterTrustBundleSigner { .. } => {
                    key.0.is_empty()
                        && (old.is_some_and(|k| ctb_matches(source, &key.1, k))
                            || new.is_some_and(|k| ctb_matches(source, &key.1, k)))
                }
            })
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Stores (or removes, for `None`) one object; returns the volumes touched.
    fn put(&self, inner: &mut Inner, key: Key, new: Option<Kept>) -> Vec<String> {
        let old = inner.objects.remove(&key);
        if let Some(o) = &old {
            inner.bytes -= o.bytes;
        }
        let mut new = new;
        if let Some(n) = &new
            && (inner.objects.len() >= self.opts.max_objects
                || inner.bytes + n.bytes > self.opts.max_bytes)
        {
            inner.ignored += 1;
            tracing::warn!(
                namespace = %key.0, name = %key.1,
                max_objects = self.opts.max_objects, max_bytes = self.opts.max_bytes,
                "trust bundle cache full (--max-trust-bundle-objects, --max-trust-bundle-cache-bytes); object not kept"
            );
            new = None;
        }
        let touched = Self::touched(inner, &key, old.as_ref(), new.as_ref());
        if let Some(n) = new {
            inner.bytes += n.bytes;
            inner.objects.insert(key, n);
        }
        touched
    }

    fn ctb_event(&self, event: Event<DynamicObject>) {
        self.apply(
            "",
            event,
            |obj| self.ctb_facts(obj),
            |inner| {
                inner.ctb_synced = true;
            },
        );
    }

    fn ctb_facts(&self, obj: &DynamicObject) -> Option<(Key, Kept)> {
        let name = obj.metadata.name.clone()?;
        let spec = obj.data.get("spec");
        let signer = spec
            .and_then(|s| s.get("signerName"))
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        let bundle = spec
            .and_then(|s| s.get("trustBundle"))
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_owned();
        let labels = obj
            .metadata
            .labels
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let data = [(String::new(), bundle)].into_iter().collect();
        Some(((String::new(), name), self.keep(signer, labels, data)))
    }

    fn cm_event(&self, ns: &str, event: Event<ConfigMap>) {
        let facts = |cm: &ConfigMap| -> Option<(Key, Kept)> {
            let name = cm.metadata.name.clone()?;
            let data = cm.data.clone().unwrap_or_default().into_iter().collect();
            Some((
                (ns.to_owned(), name),
                self.keep(None, BTreeMap::new(), data),
            ))
        };
        self.apply(ns, event, facts, |inner| {
            inner.cm_synced.insert(ns.to_owned(), true);
        });
    }

    /// One watch event of namespace `ns` (`""`: the ClusterTrustBundles):
    /// a relist is collected and replaces that namespace's objects when it
    /// ends (`synced` then marks it listed), other events store or remove
    /// one object; the volumes whose source changed are notified once.
    fn apply<T>(
        &self,
        ns: &str,
        event: Event<T>,
        facts: impl Fn(&T) -> Option<(Key, Kept)>,
        synced: impl FnOnce(&mut Inner),
    ) {
        let mut inner = self.lock();
        let mut touched = Vec::new();
        match event {
            Event::Init => {
                inner.relist.insert(ns.to_owned(), BTreeMap::new());
            }
            Event::InitApply(obj) => {
                if let Some((k, v)) = facts(&obj) {
                    inner.relist.entry(ns.to_owned()).or_default().insert(k, v);
                }
            }
            Event::InitDone => {
                let fresh = inner.relist.remove(ns).unwrap_or_default();
                let stale: Vec<Key> = inner
                    .objects
                    .keys()
                    .filter(|k| k.0 == ns && !fresh.contains_key(*k))
                    .cloned()
                    .collect();
                for k in stale {
                    touched.extend(self.put(&mut inner, k, None));
                }
                for (k, v) in fresh {
                    touched.extend(self.put(&mut inner, k, Some(v)));
                }
                synced(&mut inner);
            }
            Event::Apply(obj) => {
                if let Some((k, v)) = facts(&obj) {
                    touched = self.put(&mut inner, k, Some(v));
                }
            }
            Event::Delete(obj) => {
                if let Some((k, _)) = facts(&obj) {
                    touched = self.put(&mut inner, k, None);
                }
            }
        }
        drop(inner);
        self.synced.send_modify(|n| *n = n.wrapping_add(1));
        if !touched.is_empty() {
            touched.sort();
            touched.dedup();
            (self.notify)(touched);
        }
    }
}

/// How long a registration waits for a watch's first list.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);

impl TrustWatch {
    /// A watch set that starts nothing until a volume registers. `notify` is called
    /// (from the watch task; keep it short) with the volumes a change touches.
    pub fn new(client: kube::Client, opts: TrustOptions, notify: Notify) -> Self {
        TrustWatch {
            shared: Arc::new(Shared {
                inner: Mutex::new(Inner::default()),
                opts,
                notify,
                synced: watch::channel(0).0,
            }),
            client,
        }
    }

    /// Records that volume `volume_id` (of a Pod in `namespace`) uses `source`,
    /// starts the watch it needs, and waits for that watch's first list.
    pub async fn register(
        &self,
        volume_id: &str,
        namespace: &str,
        source: &TrustSource,
    ) -> Result<(), TrustError> {
        let is_cm = matches!(source, TrustSource::ConfigMap { .. });
        if is_cm && !self.shared.opts.configmaps {
            return Err(TrustError::ConfigMapsDisabled);
        }
        if !is_cm {
            self.start_ctb().await?;
        } else {
            self.start_cm(namespace);
        }
        self.shared
            .lock()
            .volumes
            .insert(volume_id.to_owned(), (source.clone(), namespace.to_owned()));
        self.wait_synced(is_cm.then_some(namespace)).await
    }

    /// Forgets a volume; stops its namespace's ConfigMap watch when no other volume
    /// there uses one.
    pub fn forget(&self, volume_id: &str) {
        let mut inner = self.shared.lock();
        let Some((source, ns)) = inner.volumes.remove(volume_id) else {
            return;
        };
        if matches!(source, TrustSource::ConfigMap { .. })
            && !inner
                .volumes
                .values()
                .any(|(s, n)| *n == ns && matches!(s, TrustSource::ConfigMap { .. }))
        {
            inner.cm_tasks.remove(&ns);
            inner.cm_synced.remove(&ns);
            let gone: Vec<Key> = inner
                .objects
                .keys()
                .filter(|k| k.0 == ns)
                .cloned()
                .collect();
            for k in gone {
                if let Some(o) = inner.objects.remove(&k) {
                    inner.bytes -= o.bytes;
                }
            }
        }
    }

    /// The PEM data of every object `source` selects, each with its name for errors,
    /// in name order. `Err(Missing)` when none does.
    pub async fn resolve(
        &self,
        namespace: &str,
        source: &TrustSource,
    ) -> Result<Vec<(String, String)>, TrustError> {
        let found = {
            let inner = self.shared.lock();
            let mut found = Vec::new();
            for (key, kept) in &inner.objects {
                let (label, pem_key) = match source {
                    TrustSource::ConfigMap { name, key: k } => {
                        if key.0 != namespace || key.1 != *name {
                            continue;
                        }
                        (format!("ConfigMap {namespace}/{name} key {k:?}"), k.clone())
                    }
                    _ => {
                        if !key.0.is_empty() || !ctb_matches(source, &key.1, kept) {
                            continue;
                        }
                        (format!("ClusterTrustBundle {:?}", key.1), String::new())
                    }
                };
                match &kept.data {
                    Err(reason) => {
                        return Err(TrustError::Refused {
                            source_name: label,
                            reason: reason.clone(),
                        });
                    }
                    Ok(data) => {
                        if let Some(pem) = data.get(&pem_key) {
                            found.push((label, pem.clone()));
                        } else {
                            return Err(TrustError::Missing {
                                source_name: label,
                                hint: format!(
                                    ": the ConfigMap has no key {pem_key:?}; set csi.cert-manager.io/trust-bundle-configmap-key to the key trust-manager's Bundle target names"
                                ),
                            });
                        }
                    }
                }
            }
            found
        };
        if !found.is_empty() {
            return Ok(found);
        }
        if let TrustSource::ConfigMap { name, .. } = source {
            // Not in the labelled watch: say why if it exists without the label.
            if self.config_map_exists(namespace, name).await? {
                return Err(TrustError::NotLabelled {
                    namespace: namespace.to_owned(),
                    name: name.clone(),
                    selector: self.shared.opts.configmap_label.clone(),
                });
            }
        }
        Err(TrustError::Missing {
            source_name: match source {
                TrustSource::ConfigMap { name, .. } => format!("ConfigMap {namespace}/{name}"),
                other => other.to_string(),
            },
            hint: String::new(),
        })
    }

    /// The metric labels (`kind`, source name) of `source` for a Pod in `namespace`.
    pub fn source_labels(namespace: &str, source: &TrustSource) -> (&'static str, String) {
        match source {
            TrustSource::ClusterTrustBundleName(n) => ("ClusterTrustBundle", n.clone()),
            TrustSource::ClusterTrustBundleSigner { signer_name, .. } => {
                ("ClusterTrustBundleSigner", signer_name.clone())
            }
            TrustSource::ConfigMap { name, .. } => ("ConfigMap", format!("{namespace}/{name}")),
        }
    }

    /// Volumes registered per source (`kind`, source name), for the metrics.
    pub fn volumes_per_source(&self) -> BTreeMap<(&'static str, String), usize> {
        let mut out = BTreeMap::new();
        for (source, ns) in self.shared.lock().volumes.values() {
            let key = match source {
                TrustSource::ClusterTrustBundleName(n) => ("ClusterTrustBundle", n.clone()),
                TrustSource::ClusterTrustBundleSigner { signer_name, .. } => {
                    ("ClusterTrustBundleSigner", signer_name.clone())
                }
                TrustSource::ConfigMap { name, .. } => ("ConfigMap", format!("{ns}/{name}")),
            };
            *out.entry(key).or_insert(0) += 1;
        }
        out
    }

    /// Objects not kept because a cap was reached.
    pub fn ignored(&self) -> u64 {
        self.shared.lock().ignored
    }

    /// The `certificates.k8s.io` version the ClusterTrustBundle watch uses, once started.
    pub fn cluster_trust_bundle_version(&self) -> Option<&'static str> {
        self.shared.lock().ctb_version
    }

    async fn wait_synced(&self, cm_ns: Option<&str>) -> Result<(), TrustError> {
        let mut rx = self.shared.synced.subscribe();
        let fut = async {
            loop {
                rx.borrow_and_update();
                {
                    let inner = self.shared.lock();
                    let ok = match cm_ns {
                        Some(ns) => inner.cm_synced.get(ns).copied().unwrap_or(false),
                        None => inner.ctb_synced,
                    };
                    if ok {
                        return;
                    }
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(SYNC_TIMEOUT, fut).await.map_err(|_| {
            TrustError::NotSynced(if cm_ns.is_some() {
                "ConfigMap"
            } else {
                "ClusterTrustBundle"
            })
        })
    }
}
