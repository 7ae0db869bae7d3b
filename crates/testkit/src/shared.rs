//! What the server, the in-process issuer and the handle share: the store
//! behind a lock that wakes the wait helpers, tokens, counters, faults,
//! Events and Pods, and the handle's control messages to the server task.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Mutex, MutexGuard};

use serde_json::Value;
use tokio::sync::{oneshot, watch};

use crate::ca::TestCa;
use crate::script::IssuerState;
use crate::state::{State, UserInfo};
use crate::types::{Fault, Verb};

pub(crate) struct FaultRule {
    pub remaining: u64,
    pub verb: Option<Verb>,
    pub fault: Fault,
}

/// Everything behind the lock the server, the issuer and the handle share.
pub(crate) struct Shared {
    state: Mutex<State>,
    pub issuer: Mutex<IssuerState>,
    pub ca: TestCa,
    pub tokens: Mutex<HashMap<String, UserInfo>>,
    pub counts: Mutex<BTreeMap<(Verb, String), u64>>,
    pub faults: Mutex<VecDeque<FaultRule>>,
    /// `events.k8s.io/v1` Events by namespace and name, as last written.
    pub events: Mutex<BTreeMap<(String, String), Value>>,
    /// Event POSTs and PATCHes received (not in `counts`, never faulted).
    pub event_writes: AtomicU64,
    /// End watches after the client's `timeoutSeconds`, as the API server does.
    pub honour_watch_timeouts: AtomicBool,
    /// Bumped on every store change, for the wait helpers.
    pub changed: watch::Sender<u64>,
    /// Set when serving HTTPS.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Core v1 Pods (for the driver's node-scoped Pod watch).
    pub pods: Mutex<crate::pods::Pods>,
    /// PodCertificateRequests, ClusterTrustBundles and Leases.
    pub objects: Mutex<crate::objects::Store>,
}

impl Shared {
    /// A fresh server state: `state` and `issuer` as configured, `tokens`
    /// let in, no counts, faults, Events or Pods yet.
    pub fn new(
        state: State,
        issuer: IssuerState,
        ca: TestCa,
        tokens: HashMap<String, UserInfo>,
        honour_watch_timeouts: bool,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Self {
        let (changed, _) = watch::channel(0);
        Self {
            state: Mutex::new(state),
            issuer: Mutex::new(issuer),
            ca,
            tokens: Mutex::new(tokens),
            counts: Mutex::new(BTreeMap::new()),
            faults: Mutex::new(VecDeque::new()),
            events: Mutex::new(BTreeMap::new()),
            event_writes: AtomicU64::new(0),
            honour_watch_timeouts: AtomicBool::new(honour_watch_timeouts),
            changed,
            tls,
            pods: Mutex::new(crate::pods::Pods::default()),
            objects: Mutex::new(crate::objects::Store::default()),
        }
    }

    pub fn state(&self) -> StateGuard<'_> {
        StateGuard {
            guard: self.state.lock().unwrap_or_else(|e| e.into_inner()),
            changed: &self.changed,
        }
    }
}

/// A lock on the store that wakes the wait helpers when released.
pub(crate) struct StateGuard<'a> {
    guard: MutexGuard<'a, State>,
    changed: &'a watch::Sender<u64>,
}

impl std::ops::Deref for StateGuard<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        &self.guard
    }
}

impl std::ops::DerefMut for StateGuard<'_> {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.guard
    }
}

impl Drop for StateGuard<'_> {
    fn drop(&mut self) {
        let rv = self.guard.rv;
        self.changed.send_if_modified(|old| {
            let changed = *old != rv;
            *old = rv;
            changed
        });
    }
}

pub(crate) enum Ctl {
    Down(oneshot::Sender<()>),
    Up(oneshot::Sender<std::io::Result<()>>),
    Shutdown(oneshot::Sender<()>),
}

/// Locks `m`, carrying on after a panic elsewhere poisoned it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
