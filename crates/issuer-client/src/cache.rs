//! The node-wide watch: one kube-runtime watcher feeding a map of the node's
//! requests, with one `tokio::sync::watch` channel per request so a waiter is
//! woken only by changes to the request it waits for.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use kube::runtime::watcher::{self, Event};
use tokio::sync::watch;

use crate::state::RequestState;
use crate::types::{CertificateRequest, WatchedRequest};
use crate::watch_backoff::WatchBackoff;
use crate::{ANNOTATION_VOLUME_ID, LABEL_NODE_ID_HASH, LABEL_VOLUME_ID_HASH, label_hash};

/// What the watch last knew of one request.
#[derive(Clone, Debug)]
pub(crate) enum Slot {
    /// Someone waits for it, but the watch has not shown it yet.
    Unseen,
    /// Its latest state.
    Present(Arc<CertificateRequest>),
    /// It was deleted (or vanished in a relist).
    Deleted,
}

struct Entry {
    /// Order of first sighting: breaks ties between equal creation timestamps.
    seq: u64,
    tx: watch::Sender<Slot>,
}

type Key = (String, String);

#[derive(Default)]
struct Inner {
    entries: HashMap<Key, Entry>,
    /// Present requests by their volume hash label, so a volume's requests
    /// are found without a scan of every request on the node (each publish
    /// looks them up; a tenant with many requests must not slow the others').
    by_volume: HashMap<String, HashSet<Key>>,
    /// Present requests by namespace and by volume, for the caps.
    tally: Tally,
    /// Objects of a relist in progress (between `Init` and `InitDone`).
    relist: Option<Relist>,
    next_seq: u64,
}

#[derive(Default)]
struct Relist {
    objects: HashMap<Key, Arc<CertificateRequest>>,
    tally: Tally,
}

/// How many held requests each namespace and each volume (namespace and
/// volume hash label) has, so a cap is checked without a scan.
///
/// Only a request that carries the volume hash label counts towards a
/// volume: one without it (the Pod signer's, or anything else labelled for
/// the node but made for no CSI volume) belongs to no volume, so it is
/// bounded by its namespace's and the node's caps alone. Lumping such
/// requests into one unlabelled "volume" would make the per-volume cap a
/// cap on all of them together.
#[derive(Default)]
struct Tally {
    /// All held requests (so the node's cap is checked without a scan).
    total: usize,
    namespaces: HashMap<String, usize>,
    volumes: HashMap<(String, String), usize>,
}

/// The request's volume hash label, if it carries one.
fn volume_label(cr: &CertificateRequest) -> Option<&String> {
    cr.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_VOLUME_ID_HASH))
}

impl Tally {
    fn add(&mut self, ns: &str, cr: &CertificateRequest) {
        self.total += 1;
        *self.namespaces.entry(ns.to_owned()).or_default() += 1;
        if let Some(volume) = volume_label(cr) {
            *self
                .volumes
                .entry((ns.to_owned(), volume.clone()))
                .or_default() += 1;
        }
    }

    fn remove(&mut self, ns: &str, cr: &CertificateRequest) {
        fn down<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: K) {
            if let Some(n) = map.get_mut(&key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    map.remove(&key);
                }
            }
        }
        self.total = self.total.saturating_sub(1);
        down(&mut self.namespaces, ns.to_owned());
        if let Some(volume) = volume_label(cr) {
            down(&mut self.volumes, (ns.to_owned(), volume.clone()));
        }
    }

    fn namespace(&self, ns: &str) -> usize {
        self.namespaces.get(ns).copied().unwrap_or(0)
    }

    /// Held requests of `cr`'s volume; `None` when `cr` belongs to no volume
    /// (no volume hash label), so no per-volume cap applies to it.
    fn volume(&self, ns: &str, cr: &CertificateRequest) -> Option<usize> {
        let volume = volume_label(cr)?;
        Some(
            self.volumes
                .get(&(ns.to_owned(), volume.clone()))
                .copied()
                .unwrap_or(0),
        )
    }
}

/// The watch's health, for readiness reporting and error messages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WatchHealth {
    /// The initial list has completed at least once.
    pub synced: bool,
    /// Completed lists (1 after start; more after `410 Gone` or restarts).
    pub lists: u64,
    /// The last error, cleared by the next successful event.
    pub last_error: Option<String>,
    /// Whether lists are streamed (`sendInitialEvents`) rather than paged
    /// (see [`ListStrategy`](crate::ListStrategy)).
    pub streaming_lists: bool,
    /// When the watch first failed since its last successful event (`None`
    /// while it works). A watch that reconnects without news sends no event,
    /// so this stays set until the next event; read it with
    /// [`WatchHealth::failing_for`], which also looks at `last_failure`.
    pub failing_since: Option<std::time::Instant>,
    /// When the watch last failed (each retry that fails moves it).
    pub last_failure: Option<std::time::Instant>,
}

impl WatchHealth {
    /// How long the watch has been failing at `now`: `None` when it works.
    ///
    /// A failing watch retries at least every `retry_bound` (its backoff
    /// cap) and each failed retry is recorded; one that reconnected but has
    /// had nothing to report since sends no event that would clear
    /// `failing_since`. So the watch counts as failing only while its last
    /// failure is more recent than `retry_bound` (plus the jitter of one
    /// retry).
    pub fn failing_for(
        &self,
        now: std::time::Instant,
        retry_bound: std::time::Duration,
    ) -> Option<std::time::Duration> {
        let since = self.failing_since?;
        let last = self.last_failure.unwrap_or(since);
        let grace = retry_bound.saturating_mul(2);
        (now.saturating_duration_since(last) <= grace).then(|| now.saturating_duration_since(since))
    }
}

/// A volume whose requests the watch keeps (see
/// [`IssuerOptions::managed_volumes`](crate::IssuerOptions::managed_volumes)).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ManagedVolume {
    /// The CSI volume id.
    pub volume_id: String,
    /// The Pod's namespace, where the volume's requests are created.
    pub namespace: String,
    /// The Pod's uid, the owner of the volume's requests; `None` skips the
    /// owner check (a context without `csi.storage.k8s.io/pod.uid`).
    pub pod_uid: Option<String>,
}

impl ManagedVolume {
    /// Whether `cr` was made for this volume: same namespace, the volume's
    /// hash label, the volume's id in the annotation (or none, as the Go
    /// driver writes), and the volume's Pod among its owners.
    fn owns(&self, cr: &CertificateRequest) -> bool {
        let meta = &cr.metadata;
        if meta.namespace.as_deref() != Some(self.namespace.as_str()) {
            return false;
        }
        let labelled = meta
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_VOLUME_ID_HASH))
            .is_some_and(|h| *h == label_hash(&self.volume_id));
        let annotated = meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_VOLUME_ID))
            .is_none_or(|v| *v == self.volume_id);
        let owned = self.pod_uid.as_ref().is_none_or(|uid| {
            meta.owner_references
                .iter()
                .flatten()
                .any(|o| o.kind == "Pod" && o.uid == *uid)
        });
        labelled && annotated && owned
    }
}

/// Counts of requests the watch saw but does not keep.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct IgnoredRequests {
    /// Labelled for this node but not made for a volume it manages.
    pub foreign: u64,
    /// Refused because the cache, the request's namespace or its volume
    /// already held its maximum (see [`IssuerClient::refused_by_namespace`](crate::IssuerClient::refused_by_namespace)).
    pub over_limit: u64,
}

/// Namespaces whose refusals are counted by name; refusals in further
/// namespaces are counted under [`OTHER_NAMESPACES`], so the tally itself
/// stays bounded.
pub const MAX_REFUSAL_NAMESPACES: usize = 256;
/// The namespace name refusals beyond [`MAX_REFUSAL_NAMESPACES`] are counted under.
pub const OTHER_NAMESPACES: &str = "other";

/// The caps on what the watch holds (see [`IssuerOptions`](crate::IssuerOptions)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Caps {
    /// All requests held.
    pub node: usize,
    /// Requests held of one namespace.
    pub namespace: usize,
    /// Requests held of one volume (namespace and volume hash label); a
    /// request without that label belongs to no volume and is not counted.
    pub volume: usize,
}

impl Caps {
    /// Only the node-wide cap.
    #[cfg(test)]
    pub(crate) fn node(max: usize) -> Self {
        Self {
            node: max,
            namespace: max,
            volume: max,
        }
    }
}

/// What the cache admits: only requests of managed volumes (when
/// `managed_only`), within the caps, and always the requests this client
/// created itself.
pub(crate) struct Admission {
    managed_only: bool,
    caps: Caps,
    /// Managed volumes by their hash label value.
    volumes: Mutex<HashMap<String, Vec<ManagedVolume>>>,
    /// Requests this client is creating or created (namespace, name): it
    /// names them before it creates them, so they are admitted whatever
    /// others have filled. Removed when they are deleted or their volume
    /// is forgotten. Values: the volume id.
    own: Mutex<HashMap<Key, String>>,
    foreign: AtomicU64,
    over_limit: AtomicU64,
    refused: Mutex<HashMap<String, u64>>,
    /// Set while a limit is hit, so the warning is logged once per episode.
    full: AtomicBool,
}

impl Admission {
    pub(crate) fn new(
        managed_only: bool,
        caps: Caps,
        volumes: impl IntoIterator<Item = ManagedVolume>,
    ) -> Self {
        let admission = Self {
            managed_only,
            caps,
            volumes: Mutex::new(HashMap::new()),
            own: Mutex::new(HashMap::new()),
            foreign: AtomicU64::new(0),
            over_limit: AtomicU64::new(0),
            refused: Mutex::new(HashMap::new()),
            full: AtomicBool::new(false),
        };
        for v in volumes {
            admission.manage(v);
        }
        admission
    }

    fn volumes(&self) -> MutexGuard<'_, HashMap<String, Vec<ManagedVolume>>> {
        self.volumes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn manage(&self, volume: ManagedVolume) {
        let mut volumes = self.volumes();
        let same = volumes.entry(label_hash(&volume.volume_id)).or_default();
        same.retain(|v| v.volume_id != volume.volume_id);
        same.push(volume);
    }

    pub(crate) fn forget(&self, volume_id: &str) {
        self.own
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, v| v != volume_id);
        let hash = label_hash(volume_id);
        let mut volumes = self.volumes();
        if let Some(same) = volumes.get_mut(&hash) {
            same.retain(|v| v.volume_id != volume_id);
            if same.is_empty() {
                volumes.remove(&hash);
            }
        }
    }

    /// Whether `cr` belongs to a managed volume (always, without `managed_only`).
    fn belongs(&self, cr: &CertificateRequest) -> bool {
        if !self.managed_only {
            return true;
        }
        let Some(hash) = cr
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_VOLUME_ID_HASH))
        else {
            return false;
        };
        self.volumes()
            .get(hash)
            .is_some_and(|same| same.iter().any(|v| v.owns(cr)))
    }

    /// Marks `namespace/name` as this client's own: admitted whatever the caps.
    pub(crate) fn expect(&self, namespace: &str, name: &str, volume_id: &str) {
        self.own
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                (namespace.to_owned(), name.to_owned()),
                volume_id.to_owned(),
            );
    }

    /// Undoes [`Admission::expect`] (the create failed, or it was deleted).
    pub(crate) fn unexpect(&self, key: &Key) {
        self.own
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    fn is_own(&self, key: &Key) -> bool {
        self.own
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(key)
    }

    fn count_refusal(&self, namespace: &str) {
        self.over_limit.fetch_add(1, Ordering::Relaxed);
        let mut refused = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
        let bucket = if refused.contains_key(namespace) || refused.len() < MAX_REFUSAL_NAMESPACES {
            namespace
        } else {
            OTHER_NAMESPACES
        };
        *refused.entry(bucket.to_owned()).or_default() += 1;
    }

    /// Refusals (over a cap) by namespace, sorted by name.
    pub(crate) fn refused_by_namespace(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = self
            .refused
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, n)| (k.clone(), *n))
            .collect();
        v.sort();
        v
    }

    pub(crate) fn ignored(&self) -> IgnoredRequests {
        IgnoredRequests {
            foreign: self.foreign.load(Ordering::Relaxed),
            over_limit: self.over_limit.load(Ordering::Relaxed),
        }
    }
}

/// Drops what the driver never reads from a kept object: managed fields,
/// labels and annotations other than its own, finalizers, owners other than
/// Pods, and the spec's CSR and the creator's groups, uid and extra fields
/// (already skipped when decoding a [`WatchedRequest`]).
fn slim(cr: &mut CertificateRequest) {
    let meta = &mut cr.metadata;
    meta.managed_fields = None;
    meta.finalizers = None;
    meta.generate_name = None;
    if let Some(labels) = meta.labels.as_mut() {
        labels.retain(|k, _| k == LABEL_NODE_ID_HASH || k == LABEL_VOLUME_ID_HASH);
    }
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.retain(|k, _| k == ANNOTATION_VOLUME_ID);
    }
    if let Some(owners) = meta.owner_references.as_mut() {
        owners.retain(|o| o.kind == "Pod");
    }
    let spec = &mut cr.spec;
    spec.request = Vec::new();
    spec.uid = None;
    spec.groups = Vec::new();
    spec.extra.clear();
}

/// The shared cache the watch task writes and the client reads.
pub(crate) struct Cache {
    inner: Mutex<Inner>,
    health: watch::Sender<WatchHealth>,
    pub(crate) admission: Admission,
}

fn key_of(cr: &CertificateRequest) -> Option<Key> {
    Some((cr.metadata.namespace.clone()?, cr.metadata.name.clone()?))
}

impl Cache {
    /// A cache that keeps every request it is shown, up to `usize::MAX`.
    #[cfg(test)]
    pub(crate) fn new() -> Self {
        Self::with_admission(Admission::new(false, Caps::node(usize::MAX), []))
    }

    pub(crate) fn with_admission(admission: Admission) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            health: watch::Sender::new(WatchHealth::default()),
            admission,
        }
    }

    /// Slims `cr` and decides whether it may be kept: it must belong to a
    /// managed volume, and a request not held yet must fit under the node's,
    /// its namespace's and (when it carries a volume label) its volume's caps (`held`: already held;
    /// `tally`/`present`: what is held now), unless this client created it.
    /// Counts what it refuses.
    fn admit(
        &self,
        key: &Key,
        cr: &mut CertificateRequest,
        held: bool,
        tally: &Tally,
        present: usize,
    ) -> bool {
        if !self.admission.belongs(cr) {
            self.admission.foreign.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                namespace = %key.0,
                name = %key.1,
                "ignoring a CertificateRequest labelled for this node that no volume of this node made"
            );
            return false;
        }
        if !held && !self.admission.is_own(key) {
            let caps = self.admission.caps;
            let over = if present >= caps.node {
                Some(("--max-watched-requests", caps.node))
            } else if tally.namespace(&key.0) >= caps.namespace {
                Some(("--max-watched-requests-per-namespace", caps.namespace))
            } else if tally
                .volume(&key.0, cr)
                .is_some_and(|held| held >= caps.volume)
            {
                Some(("--max-watched-requests-per-volume", caps.volume))
            } else {
                None
            };
            if let Some((flag, limit)) = over {
                self.admission.count_refusal(&key.0);
                if !self.admission.full.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        limit,
                        namespace = %key.0,
                        name = %key.1,
                        "the CertificateRequest watch holds {flag}={limit} requests; ignoring \
                         further ones there until some are deleted (requests this driver \
                         creates are still admitted; raise the flag if this node really has \
                         that many)"
                    );
                }
                return false;
            }
            self.admission.full.store(false, Ordering::Relaxed);
        }
        slim(cr);
        true
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn health(&self) -> WatchHealth {
        self.health.borrow().clone()
    }

    pub(crate) fn health_rx(&self) -> watch::Receiver<WatchHealth> {
        self.health.subscribe()
    }

    /// Applies one watcher event.
    pub(crate) fn handle(&self, event: Event<CertificateRequest>) {
        let mut inner = self.lock();
        match event {
            Event::Init => inner.relist = Some(Relist::default()),
            Event::InitApply(mut cr) => {
                if let Some(key) = key_of(&cr) {
                    // During a relist the new list is what counts, so the
                    // limit applies to the buffer, not to what it replaces.
                    let admitted = match inner.relist.as_ref() {
                        Some(buffer) => {
                            let held = buffer.objects.contains_key(&key);
                            self.admit(&key, &mut cr, held, &buffer.tally, buffer.objects.len())
                        }
                        None => {
                            let held = inner.holds(&key);
                            self.admit(&key, &mut cr, held, &inner.tally, inner.present())
                        }
                    };
                    if admitted {
                        let cr = Arc::new(cr);
                        match inner.relist.as_mut() {
                            Some(buffer) => {
                                if let Some(old) = buffer.objects.insert(key.clone(), cr.clone()) {
                                    buffer.tally.remove(&key.0, &old);
                                }
                                buffer.tally.add(&key.0, &cr);
                            }
                            None => inner.apply(key, cr),
                        }
                    }
                }
            }
            Event::InitDone => {
                let listed = inner.relist.take().unwrap_or_default().objects;
                // Whatever was present but is not in the new list is gone.
                let gone: Vec<Key> = inner
                    .entries
                    .iter()
                    .filter(|(k, e)| {
                        matches!(*e.tx.borrow(), Slot::Present(_)) && !listed.contains_key(*k)
                    })
                    .map(|(k, _)| k.clone())
                    .collect();
                for key in gone {
                    inner.delete(&key);
                }
                for (key, cr) in listed {
                    inner.apply(key, cr);
                }
                drop(inner);
                self.health.send_modify(|h| {
                    h.synced = true;
                    h.lists += 1;
                    h.last_error = None;
                    h.failing_since = None;
                    h.last_failure = None;
                });
                return;
            }
            Event::Apply(mut cr) => {
                if let Some(key) = key_of(&cr) {
                    let held = inner.holds(&key);
                    if self.admit(&key, &mut cr, held, &inner.tally, inner.present()) {
                        inner.apply(key, Arc::new(cr));
                    } else if held {
                        // It no longer qualifies (its volume was forgotten,
                        // or a label changed): drop what was held. A
                        // refused request that was never held leaves the
                        // slot alone: whoever waits there keeps waiting.
                        inner.delete(&key);
                    }
                }
            }
            Event::Delete(cr) => {
                if let Some(key) = key_of(&cr) {
                    inner.delete(&key);
                    self.admission.unexpect(&key);
                }
            }
        }
        drop(inner);
        if self.health.borrow().failing_since.is_some() {
            self.health.send_modify(|h| {
                h.last_error = None;
                h.failing_since = None;
                h.last_failure = None;
            });
        }
    }

    pub(crate) fn record_error(&self, err: &watcher::Error) {
        let text = crate::error::error_chain(err);
        tracing::warn!(error = %text, "CertificateRequest watch failed; retrying");
        let now = std::time::Instant::now();
        self.health.send_modify(|h| {
            h.last_error = Some(text);
            h.failing_since.get_or_insert(now);
            h.last_failure = Some(now);
        });
    }

    /// A receiver for `(namespace, name)`; creates an `Unseen` slot if needed.
    pub(crate) fn subscribe(&self, namespace: &str, name: &str) -> watch::Receiver<Slot> {
        let mut inner = self.lock();
        let key = (namespace.to_owned(), name.to_owned());
        if let Some(entry) = inner.entries.get(&key) {
            return entry.tx.subscribe();
        }
        let (tx, rx) = watch::channel(Slot::Unseen);
        inner.entries.insert(key, Entry { seq: 0, tx });
        rx
    }

    /// Forgets an `Unseen` slot nobody waits for any more. Call after dropping
    /// the receiver from [`Cache::subscribe`].
    pub(crate) fn release(&self, namespace: &str, name: &str) {
        let mut inner = self.lock();
        let key = (namespace.to_owned(), name.to_owned());
        let unused = inner
            .entries
            .get(&key)
            .is_some_and(|e| matches!(*e.tx.borrow(), Slot::Unseen) && e.tx.receiver_count() == 0);
        if unused {
            inner.entries.remove(&key);
        }
    }

    /// The latest state of one request.
    pub(crate) fn get(&self, namespace: &str, name: &str) -> Option<RequestState> {
        let inner = self.lock();
        let entry = inner
            .entries
            .get(&(namespace.to_owned(), name.to_owned()))?;
        let Slot::Present(cr) = &*entry.tx.borrow() else {
            return None;
        };
        RequestState::from_object(cr.clone())
    }

    /// Every present request matching `filter`, newest first (creation time,
    /// then order of first sighting).
    pub(crate) fn select(&self, filter: impl Fn(&CertificateRequest) -> bool) -> Vec<RequestState> {
        let inner = self.lock();
        newest_first(inner.entries.values(), filter)
    }

    /// [`Cache::select`] among the requests that carry the volume hash label
    /// `hash` only: a lookup in the label index, not a scan of every request.
    pub(crate) fn select_labelled(
        &self,
        hash: &str,
        filter: impl Fn(&CertificateRequest) -> bool,
    ) -> Vec<RequestState> {
        let inner = self.lock();
        let Some(keys) = inner.by_volume.get(hash) else {
            return Vec::new();
        };
        newest_first(keys.iter().filter_map(|k| inner.entries.get(k)), filter)
    }

    /// Number of present requests.
    pub(crate) fn len(&self) -> usize {
        self.lock().present()
    }

    /// Drops every held request of `volume_id` that no managed volume owns
    /// any more (after [`Admission::forget`]).
    pub(crate) fn drop_unowned(&self, volume_id: &str) {
        let hash = label_hash(volume_id);
        let mut inner = self.lock();
        let labelled = inner.by_volume.get(&hash).cloned().unwrap_or_default();
        let gone: Vec<Key> = labelled
            .into_iter()
            .filter(|k| {
                inner.entries.get(k).is_some_and(|e| match &*e.tx.borrow() {
                    Slot::Present(cr) => !self.admission.belongs(cr),
                    _ => false,
                })
            })
            .collect();
        for key in gone {
            inner.delete(&key);
        }
        if inner.present() < self.admission.caps.node {
            self.admission.full.store(false, Ordering::Relaxed);
        }
    }
}

impl Inner {
    fn holds(&self, key: &Key) -> bool {
        self.entries
            .get(key)
            .is_some_and(|e| matches!(*e.tx.borrow(), Slot::Present(_)))
    }

    /// Present requests: those the tally counts (every `apply` adds one,
    /// every replaced or deleted present one is taken out).
    fn present(&self) -> usize {
        self.tally.total
    }

    fn apply(&mut self, key: Key, cr: Arc<CertificateRequest>) {
        self.next_seq += 1;
        let seq = self.next_seq;
        self.tally.add(&key.0, &cr);
        let new_label = volume_label(&cr).cloned();
        if let Some(label) = &new_label {
            self.by_volume
                .entry(label.clone())
                .or_default()
                .insert(key.clone());
        }
        match self.entries.get_mut(&key) {
            Some(entry) => {
                if matches!(*entry.tx.borrow(), Slot::Unseen) {
                    entry.seq = seq;
                }
                if let Slot::Present(old) = entry.tx.send_replace(Slot::Present(cr)) {
                    self.tally.remove(&key.0, &old);
                    if volume_label(&old) != new_label.as_ref() {
                        unindex(&mut self.by_volume, &key, &old);
                    }
                }
            }
            None => {
                self.entries.insert(
                    key,
                    Entry {
                        seq,
                        tx: watch::Sender::new(Slot::Present(cr)),
                    },
                );
            }
        }
    }

    fn delete(&mut self, key: &Key) {
        if let Some(entry) = self.entries.remove(key)
            && let Slot::Present(old) = entry.tx.send_replace(Slot::Deleted)
        {
            self.tally.remove(&key.0, &old);
            unindex(&mut self.by_volume, key, &old);
        }
    }
}

/// Takes `key` (whose request was `old`) out of the label index.
fn unindex(index: &mut HashMap<String, HashSet<Key>>, key: &Key, old: &CertificateRequest) {
    if let Some(label) = volume_label(old)
        && let Some(keys) = index.get_mut(label)
    {
        keys.remove(key);
        if keys.is_empty() {
            index.remove(label);
        }
    }
}

/// The present requests of `entries` that `filter` accepts, newest first
/// (creation time, then order of first sighting).
fn newest_first<'a>(
    entries: impl Iterator<Item = &'a Entry>,
    filter: impl Fn(&CertificateRequest) -> bool,
) -> Vec<RequestState> {
    let mut found: Vec<(u64, RequestState)> = entries
        .filter_map(|e| match &*e.tx.borrow() {
            Slot::Present(cr) if filter(cr) => {
                RequestState::from_object(cr.clone()).map(|s| (e.seq, s))
            }
            _ => None,
        })
        .collect();
    found.sort_by(|(seq_a, a), (seq_b, b)| b.created.cmp(&a.created).then(seq_b.cmp(seq_a)));
    found.into_iter().map(|(_, s)| s).collect()
}

impl Inner {
    #[cfg(test)]
    fn index_matches_entries(&self) -> bool {
        let mut expected: HashMap<String, HashSet<Key>> = HashMap::new();
        for (k, e) in &self.entries {
            if let Slot::Present(cr) = &*e.tx.borrow()
                && let Some(label) = volume_label(cr)
            {
                expected.entry(label.clone()).or_default().insert(k.clone());
            }
        }
        expected == self.by_volume
    }
}

fn into_request(event: Event<WatchedRequest>) -> Event<CertificateRequest> {
    match event {
        Event::Init => Event::Init,
        Event::InitApply(w) => Event::InitApply(w.into()),
        Event::InitDone => Event::InitDone,
        Event::Apply(w) => Event::Apply(w.into()),
        Event::Delete(w) => Event::Delete(w.into()),
    }
}

/// Runs the watch forever, feeding `cache`.
pub(crate) async fn run(
    client: kube::Client,
    api: kube::Api<WatchedRequest>,
    config: watcher::Config,
    lists: crate::relist::Lists,
    backoff: WatchBackoff,
    cache: Arc<Cache>,
) {
    let setup = crate::relist::Setup {
        client,
        base: config,
        lists,
        backoff,
        what: "CertificateRequest",
    };
    crate::relist::run(
        setup,
        api,
        |event| cache.handle(into_request(event)),
        |err| cache.record_error(err),
        |streaming| cache.health.send_modify(|h| h.streaming_lists = streaming),
    )
    .await;
}

#[cfg(test)]
mod tests;
