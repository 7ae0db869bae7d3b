//! The node-wide watch: one kube-runtime watcher feeding a map of the node's
//! requests, with one `tokio::sync::watch` channel per request so a waiter is
//! woken only by changes to the request it waits for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::WatchStreamExt;
use kube::runtime::utils::Backoff;
use kube::runtime::watcher::{self, Event};
use tokio::sync::watch;

use crate::state::RequestState;
use crate::types::CertificateRequest;

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
    /// Objects of a relist in progress (between `Init` and `InitDone`).
    relist: Option<HashMap<Key, Arc<CertificateRequest>>>,
    next_seq: u64,
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
}

/// The shared cache the watch task writes and the client reads.
pub(crate) struct Cache {
    inner: Mutex<Inner>,
    health: watch::Sender<WatchHealth>,
}

fn key_of(cr: &CertificateRequest) -> Option<Key> {
    Some((cr.metadata.namespace.clone()?, cr.metadata.name.clone()?))
}

impl Cache {
    pub(crate) fn new() -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            health: watch::Sender::new(WatchHealth::default()),
        }
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
            Event::Init => inner.relist = Some(HashMap::new()),
            Event::InitApply(cr) => {
                if let Some(key) = key_of(&cr) {
                    let cr = Arc::new(cr);
                    match inner.relist.as_mut() {
                        Some(buffer) => {
                            buffer.insert(key, cr);
                        }
                        None => inner.apply(key, cr),
                    }
                }
            }
            Event::InitDone => {
                let listed = inner.relist.take().unwrap_or_default();
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
                });
                return;
            }
            Event::Apply(cr) => {
                if let Some(key) = key_of(&cr) {
                    inner.apply(key, Arc::new(cr));
                }
            }
            Event::Delete(cr) => {
                if let Some(key) = key_of(&cr) {
                    inner.delete(&key);
                }
            }
        }
        drop(inner);
        if self.health.borrow().last_error.is_some() {
            self.health.send_modify(|h| h.last_error = None);
        }
    }

    pub(crate) fn record_error(&self, err: &watcher::Error) {
        let text = crate::error::error_chain(err);
        tracing::warn!(error = %text, "CertificateRequest watch failed; retrying");
        self.health.send_modify(|h| h.last_error = Some(text));
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
        let mut found: Vec<(u64, RequestState)> = inner
            .entries
            .values()
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

    /// Number of present requests.
    pub(crate) fn len(&self) -> usize {
        self.lock()
            .entries
            .values()
            .filter(|e| matches!(*e.tx.borrow(), Slot::Present(_)))
            .count()
    }
}

impl Inner {
    fn apply(&mut self, key: Key, cr: Arc<CertificateRequest>) {
        self.next_seq += 1;
        let seq = self.next_seq;
        match self.entries.get_mut(&key) {
            Some(entry) => {
                if matches!(*entry.tx.borrow(), Slot::Unseen) {
                    entry.seq = seq;
                }
                entry.tx.send_replace(Slot::Present(cr));
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
        if let Some(entry) = self.entries.remove(key) {
            entry.tx.send_replace(Slot::Deleted);
        }
    }
}

/// Exponential watch backoff with a little jitter, reset by any successful event.
pub(crate) struct WatchBackoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl WatchBackoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        let max = max.max(min);
        Self {
            min,
            max,
            next: min,
        }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let current = self.next;
        self.next = (current * 2).min(self.max);
        // Up to +25% so that many nodes do not relist in lockstep after an outage.
        let jitter = getrandom::u32().unwrap_or(0) % 256;
        Some(current + current.mul_f64(f64::from(jitter) / 1024.0))
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = self.min;
    }
}

/// Runs the watch forever, feeding `cache`.
pub(crate) async fn run(
    api: kube::Api<CertificateRequest>,
    config: watcher::Config,
    backoff: WatchBackoff,
    cache: Arc<Cache>,
) {
    let stream = watcher::watcher(api, config).backoff(backoff);
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(event) => cache.handle(event),
            Err(err) => cache.record_error(&err),
        }
    }
    tracing::error!("CertificateRequest watch ended");
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn cr(name: &str, uid: &str) -> CertificateRequest {
        CertificateRequest {
            metadata: ObjectMeta {
                namespace: Some("ns".into()),
                name: Some(name.into()),
                uid: Some(uid.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn relist_drops_vanished_objects_and_wakes_waiters() {
        let cache = Cache::new();
        cache.handle(Event::Init);
        cache.handle(Event::InitApply(cr("a", "1")));
        cache.handle(Event::InitApply(cr("b", "2")));
        assert_eq!(cache.len(), 0, "buffered until InitDone");
        cache.handle(Event::InitDone);
        assert_eq!(cache.len(), 2);
        assert!(cache.health().synced);

        let mut rx_a = cache.subscribe("ns", "a");
        let mut rx_waiting = cache.subscribe("ns", "c");
        assert!(matches!(*rx_a.borrow_and_update(), Slot::Present(_)));

        // A relist after 410 no longer has "a": it was deleted meanwhile.
        cache.handle(Event::Init);
        cache.handle(Event::InitApply(cr("b", "2")));
        cache.handle(Event::InitDone);
        assert!(rx_a.has_changed().unwrap_or(true));
        assert!(matches!(*rx_a.borrow_and_update(), Slot::Deleted));
        assert_eq!(cache.health().lists, 2);
        // Someone waiting for a not-yet-seen request keeps waiting.
        assert!(matches!(*rx_waiting.borrow_and_update(), Slot::Unseen));
        cache.handle(Event::Apply(cr("c", "3")));
        assert!(matches!(*rx_waiting.borrow_and_update(), Slot::Present(_)));
        assert!(cache.get("ns", "c").is_some());
        cache.handle(Event::Delete(cr("c", "3")));
        assert!(matches!(*rx_waiting.borrow_and_update(), Slot::Deleted));
        assert!(cache.get("ns", "c").is_none());
    }

    #[test]
    fn unseen_slots_are_released() {
        let cache = Cache::new();
        let rx = cache.subscribe("ns", "x");
        cache.release("ns", "x");
        assert_eq!(cache.lock().entries.len(), 1, "still waited on");
        drop(rx);
        cache.release("ns", "x");
        assert!(cache.lock().entries.is_empty());
    }

    #[test]
    fn backoff_doubles_to_max_and_resets() {
        let mut b = WatchBackoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let d: Vec<Duration> = (0..4).map(|_| b.next().unwrap()).collect();
        let within = |d: Duration, base: u64| {
            d >= Duration::from_millis(base) && d <= Duration::from_millis(base).mul_f64(1.25)
        };
        assert!(within(d[0], 100) && within(d[1], 200), "{d:?}");
        assert!(within(d[2], 350) && within(d[3], 350), "{d:?}");
        b.reset();
        assert!(within(b.next().unwrap(), 100));
    }
}
