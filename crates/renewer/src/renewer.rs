//! The engine: one ordered schedule, one scheduler task, one task per running
//! attempt.

use std::collections::{BTreeMap, HashMap, hash_map};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use tokio::sync::{Notify, broadcast};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::config::{Planner, RenewerConfig, StartError};
use crate::limiter::{IssuancePermit, Limiter, Priority};
use crate::pacer::Pacer;
use crate::types::{
    IssuanceEvent, Issue, IssueFailure, IssueReason, Lifetime, Stats, Tenant, VolumeId, VolumeState,
};

mod attempt;

type IssueFuture = Pin<Box<dyn Future<Output = Result<Lifetime, IssueFailure>> + Send>>;
type IssueFn = dyn Fn(VolumeId, IssueReason, IssuancePermit) -> IssueFuture + Send + Sync;

/// How many events a slow [`Renewer::subscribe`] receiver may fall behind.
const EVENT_CAPACITY: usize = 1024;

/// A volume as stored before a restart, for [`Renewer::restore`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoredVolume {
    /// The volume.
    pub volume: VolumeId,
    /// The stored next issuance time; `None` when the volume never got a
    /// certificate (it is then due at once, like an overdue one).
    pub next_issuance: Option<SystemTime>,
    /// The current certificate's `notAfter`, if the caller read it (used to
    /// report expiry before the next success).
    pub not_after: Option<SystemTime>,
    /// The volume's `disable-auto-renew`: such a volume is only scheduled
    /// when it has no certificate yet.
    pub disable_auto_renew: bool,
    /// Whose volume it is, for the fair renewal pace (see [`Tenant`]).
    pub tenant: Tenant,
}

impl RestoredVolume {
    /// A restored volume without a known `notAfter`.
    pub fn new(
        volume: impl Into<VolumeId>,
        next_issuance: Option<SystemTime>,
        disable_auto_renew: bool,
    ) -> Self {
        Self {
            volume: volume.into(),
            next_issuance,
            not_after: None,
            disable_auto_renew,
            tenant: Tenant::default(),
        }
    }

    /// The same, belonging to `tenant` (see [`Tenant`]).
    #[must_use]
    pub fn with_tenant(mut self, tenant: impl Into<Tenant>) -> Self {
        self.tenant = tenant.into();
        self
    }

    /// The same, with the current certificate's `notAfter`.
    #[must_use]
    pub fn with_not_after(mut self, not_after: SystemTime) -> Self {
        self.not_after = Some(not_after);
        self
    }
}

/// Schedules certificate issuance for every managed volume.
///
/// A cheap handle: clones share one schedule. The scheduler stops when the
/// last handle is dropped or [`Renewer::shutdown`] is called. See the crate
/// documentation for an overview.
#[derive(Clone)]
pub struct Renewer {
    handle: Arc<Handle>,
}

/// Owned by the `Renewer` clones only (tasks hold `Inner`), so its drop means
/// no caller is left.
struct Handle {
    inner: Arc<Inner>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.inner.shutdown();
    }
}

struct Inner {
    config: RenewerConfig,
    planner: Planner,
    issuer: Box<IssueFn>,
    state: Mutex<State>,
    /// Wakes the scheduler when the earliest due instant moves earlier.
    wake: Notify,
    limiter: Arc<Limiter>,
    events: broadcast::Sender<IssuanceEvent>,
    rng: Mutex<SmallRng>,
    wakeups: AtomicU64,
    /// The node-wide renewal pace, shared fairly between tenants (with
    /// `renewal_rate`).
    pacer: Option<Arc<Pacer>>,
}

#[derive(Default)]
struct State {
    volumes: HashMap<VolumeId, Entry>,
    /// Due instants in order; the sequence number keeps keys unique.
    queue: BTreeMap<(Instant, u64), VolumeId>,
    seq: u64,
    generation: u64,
    shutdown: bool,
    /// Volumes waiting out the backoff of a [`FailureKind::Unavailable`]
    /// failure, retried as soon as another attempt succeeds.
    ///
    /// [`FailureKind::Unavailable`]: crate::FailureKind::Unavailable
    unavailable: std::collections::HashSet<VolumeId>,
}

struct Entry {
    /// Changes whenever the volume is re-managed, so a running attempt for an
    /// older registration can tell that its result is stale.
    generation: u64,
    not_after: Option<SystemTime>,
    has_certificate: bool,
    disable_auto_renew: bool,
    slot: Option<Slot>,
    attempt: Option<Attempt>,
    attempts: u32,
    last_error: Option<String>,
    /// When the volume's last issuance started (wall time), for the floor.
    last_issued: Option<SystemTime>,
    /// [`Renewer::wake`] was called while an attempt ran: another follows
    /// it, so what the wake was for is not lost to the attempt's result.
    woken: bool,
    /// Consecutive "not ready" answers since the last issuance or failure.
    not_ready: u32,
    /// Whose volume it is, for the fair renewal pace.
    tenant: Tenant,
}

struct Slot {
    key: (Instant, u64),
    wall: SystemTime,
    reason: IssueReason,
}

struct Attempt {
    cancelled: Arc<AtomicBool>,
    abort: AbortHandle,
    in_flight: bool,
}

impl Attempt {
    fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        self.abort.abort();
    }
}

impl Entry {
    fn new(generation: u64, disable_auto_renew: bool, tenant: Tenant) -> Self {
        Self {
            generation,
            not_after: None,
            has_certificate: false,
            disable_auto_renew,
            slot: None,
            attempt: None,
            attempts: 0,
            last_error: None,
            last_issued: None,
            woken: false,
            not_ready: 0,
            tenant,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn timestamp(t: SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .map(|ts| ts.to_string())
        .unwrap_or_else(|_| format!("{t:?}"))
}

impl Renewer {
    /// Checks `config` and starts the scheduler task on the current tokio
    /// runtime.
    pub fn start<I: Issue>(issuer: Arc<I>, config: RenewerConfig) -> Result<Self, StartError> {
        config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| StartError::NoRuntime)?;
        let seed = config.seed.unwrap_or_else(rand::random);
        let issue_fn =
            move |volume: VolumeId, reason: IssueReason, permit: IssuancePermit| -> IssueFuture {
                let issuer = Arc::clone(&issuer);
                Box::pin(async move { issuer.issue(volume, reason, permit).await })
            };
        let pacer = config.renewal_rate.map(Pacer::start);
        let inner = Arc::new(Inner {
            planner: config.planner(seed),
            limiter: Limiter::new(config.max_concurrent),
            rng: Mutex::new(SmallRng::seed_from_u64(seed.rotate_left(17) ^ 0x5eed)),
            config,
            issuer: Box::new(issue_fn),
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            events: broadcast::channel(EVENT_CAPACITY).0,
            wakeups: AtomicU64::new(0),
            pacer,
        });
        runtime.spawn(Arc::clone(&inner).run_scheduler());
        Ok(Self {
            handle: Arc::new(Handle { inner }),
        })
    }

    fn inner(&self) -> &Arc<Inner> {
        &self.handle.inner
    }

    /// Starts managing `volume` whose certificate was just issued, or replaces
    /// its schedule (a running attempt for it is cancelled, its failure count
    /// cleared). Returns the next issuance time, or `None` when
    /// `disable_auto_renew` is set (the volume is then never renewed).
    ///
    /// The volume belongs to the default [`Tenant`]; [`Renewer::manage_in`]
    /// names one.
    pub fn manage(
        &self,
        volume: impl Into<VolumeId>,
        lifetime: Lifetime,
        disable_auto_renew: bool,
    ) -> Option<SystemTime> {
        self.manage_in(Tenant::default(), volume, lifetime, disable_auto_renew)
    }

    /// [`Renewer::manage`] for a volume of `tenant`: its renewals share the
    /// node's pace fairly with other tenants' (see [`Tenant`]).
    pub fn manage_in(
        &self,
        tenant: impl Into<Tenant>,
        volume: impl Into<VolumeId>,
        lifetime: Lifetime,
        disable_auto_renew: bool,
    ) -> Option<SystemTime> {
        let volume = volume.into();
        let inner = self.inner();
        let mut st = lock(&inner.state);
        let now = inner.config.clock.now();
        let entry = st.replace_entry(&volume, disable_auto_renew, tenant.into());
        entry.has_certificate = true;
        entry.not_after = Some(lifetime.not_after);
        // The caller has just issued it: the floor counts from now.
        entry.last_issued = Some(now);
        if disable_auto_renew {
            return None;
        }
        let due = inner.planner.next_issuance(&volume, &lifetime);
        Some(inner.schedule(&mut st, &volume, due, IssueReason::Renewal))
    }

    /// Starts managing `volume` that has no certificate yet, due at once: the
    /// background first issuance of a volume published before it was ready.
    /// Failures are retried with backoff until one succeeds, "not ready"
    /// answers with [`RenewerConfig::not_ready_backoff`] or at the next
    /// [`Renewer::wake`]; then it is renewed like any other (unless
    /// `disable_auto_renew`). The volume belongs to the default [`Tenant`].
    pub fn manage_pending(&self, volume: impl Into<VolumeId>, disable_auto_renew: bool) {
        self.manage_pending_in(Tenant::default(), volume, disable_auto_renew);
    }

    /// [`Renewer::manage_pending`] for a volume of `tenant`.
    pub fn manage_pending_in(
        &self,
        tenant: impl Into<Tenant>,
        volume: impl Into<VolumeId>,
        disable_auto_renew: bool,
    ) {
        let volume = volume.into();
        let inner = self.inner();
        let mut st = lock(&inner.state);
        st.replace_entry(&volume, disable_auto_renew, tenant.into());
        let now = inner.config.clock.now();
        inner.schedule(&mut st, &volume, now, IssueReason::Requested);
    }

    /// Schedules every stored volume after a restart. A volume whose stored
    /// time is still ahead keeps it; the others (overdue, or never issued) are
    /// spread evenly over [`RenewerConfig::recovery_spread`], never-issued and
    /// most overdue first. Volumes with `disable_auto_renew` and a certificate
    /// are managed but not scheduled.
    pub fn restore(&self, volumes: impl IntoIterator<Item = RestoredVolume>) {
        let inner = self.inner();
        let now = inner.config.clock.now();
        let mut st = lock(&inner.state);
        let mut overdue: Vec<(Option<SystemTime>, VolumeId)> = Vec::new();
        for v in volumes {
            let entry = st.replace_entry(&v.volume, v.disable_auto_renew, v.tenant);
            entry.has_certificate = v.next_issuance.is_some();
            entry.not_after = v.not_after;
            match v.next_issuance {
                Some(_) if v.disable_auto_renew => {}
                Some(due) if due > now => {
                    inner.schedule(&mut st, &v.volume, due, IssueReason::Recovery);
                }
                due => overdue.push((due, v.volume)),
            }
        }
        // `None` (never issued) sorts first, then the most overdue.
        overdue.sort();
        let n = overdue.len() as f64;
        let spread = inner.config.recovery_spread;
        let mut rng = lock(&inner.rng);
        for (i, (_, volume)) in overdue.into_iter().enumerate() {
            // Stratified: slot i of n, at a random point inside its slot.
            let unit: f64 = rng.random();
            let offset = spread.mul_f64((i as f64 + unit) / n);
            inner.schedule(&mut st, &volume, now + offset, IssueReason::Recovery);
        }
    }

    /// Stops managing `volume`, at once: its schedule is removed and a running
    /// attempt is cancelled (its future is not polled again and its result,
    /// if any, is discarded). Returns whether the volume was managed.
    pub fn forget(&self, volume: &str) -> bool {
        let inner = self.inner();
        let mut st = lock(&inner.state);
        let Some(entry) = st.volumes.remove(volume) else {
            return false;
        };
        st.unavailable.remove(volume);
        if let Some(slot) = entry.slot {
            st.queue.remove(&slot.key);
        }
        if let Some(attempt) = entry.attempt {
            attempt.cancel();
        }
        true
    }

    /// Asks for a managed `volume`'s files to be rewritten soon: the one way
    /// for any event other than its own schedule (its Pod becoming ready, a
    /// trust bundle changing, an operator's request) to reach a volume, so
    /// the rewrite is serialised with the volume's other work and held to
    /// the same floor ([`RenewerConfig::min_interval`](crate::RenewerConfig::min_interval))
    /// and concurrency cap. The volume is issued now (reason
    /// [`IssueReason::Requested`]) or, when an attempt is running, once more
    /// right after it ends, whatever its outcome. A volume waiting after a
    /// "not ready" answer is checked again now: call this when what it
    /// waits for may have changed (the driver does for every change of the
    /// volume's Pod). Returns whether the volume is managed (an unmanaged
    /// volume has nothing to rewrite).
    pub fn wake(&self, volume: &str) -> bool {
        let inner = self.inner();
        let mut st = lock(&inner.state);
        let Some(entry) = st.volumes.get_mut(volume) else {
            return false;
        };
        if entry.attempt.is_some() {
            entry.woken = true;
        } else {
            let volume: VolumeId = volume.into();
            let now = inner.config.clock.now();
            inner.schedule(&mut st, &volume, now, IssueReason::Requested);
        }
        true
    }

    /// [`Renewer::wake`], under its earlier name.
    pub fn issue_now(&self, volume: &str) -> bool {
        self.wake(volume)
    }

    /// Waits for an issuance slot for a first issuance (a Pod waiting in
    /// `NodePublishVolume`). First issuances are served before any queued
    /// renewal; hold the permit while issuing.
    pub async fn acquire_first_issuance(&self) -> IssuancePermit {
        self.inner().limiter.acquire(Priority::First).await
    }

    /// The planner the renewer uses, to compute the next issuance time that
    /// [`Renewer::manage`] and renewals will use (for the volume's metadata).
    pub fn planner(&self) -> Planner {
        self.inner().planner.clone()
    }

    /// What the renewer knows about `volume`, if it is managed.
    pub fn snapshot(&self, volume: &str) -> Option<VolumeState> {
        let inner = self.inner();
        let now = inner.config.clock.now();
        let st = lock(&inner.state);
        st.volumes.get(volume).map(|e| VolumeState {
            due: e.slot.as_ref().map(|s| s.wall),
            retrying: e.attempts > 0,
            attempts: e.attempts,
            last_error: e.last_error.clone(),
            expired: e.not_after.is_some_and(|na| now > na),
            not_after: e.not_after,
            in_flight: e.attempt.as_ref().is_some_and(|a| a.in_flight),
            disable_auto_renew: e.disable_auto_renew,
            not_ready: e.not_ready,
            tenant: e.tenant.clone(),
        })
    }

    /// Counts over all managed volumes (walks them all: meant for a metrics
    /// scrape, not a hot path).
    pub fn stats(&self) -> Stats {
        let inner = self.inner();
        let now = inner.config.clock.now();
        let st = lock(&inner.state);
        let mut stats = Stats {
            managed: st.volumes.len(),
            scheduler_wakeups: inner.wakeups.load(Ordering::Relaxed),
            first_issuances_waiting: inner.limiter.waiting().0,
            ..Stats::default()
        };
        for e in st.volumes.values() {
            stats.retrying += usize::from(e.attempts > 0);
            stats.expired += usize::from(e.not_after.is_some_and(|na| now > na));
            stats.not_ready += usize::from(e.not_ready > 0);
            match &e.attempt {
                Some(a) if a.in_flight => stats.in_flight += 1,
                Some(_) => stats.queued += 1,
                None => {}
            }
        }
        stats
    }

    /// How many volumes are managed.
    pub fn managed_count(&self) -> usize {
        lock(&self.inner().state).volumes.len()
    }

    /// Receives an [`IssuanceEvent`] after every finished attempt (cancelled
    /// ones excepted). A receiver that falls more than 1024 events behind
    /// loses the oldest.
    pub fn subscribe(&self) -> broadcast::Receiver<IssuanceEvent> {
        self.inner().events.subscribe()
    }

    /// Stops the scheduler and cancels every running attempt. Later calls
    /// still update the bookkeeping but nothing is issued any more.
    pub fn shutdown(&self) {
        self.inner().shutdown();
    }
}

impl State {
    /// A fresh entry for `volume`, cancelling whatever the old one had going.
    fn replace_entry(
        &mut self,
        volume: &VolumeId,
        disable_auto_renew: bool,
        tenant: Tenant,
    ) -> &mut Entry {
        self.generation += 1;
        let fresh = Entry::new(self.generation, disable_auto_renew, tenant);
        match self.volumes.entry(volume.clone()) {
            hash_map::Entry::Occupied(mut slot) => {
                let old = slot.insert(fresh);
                if let Some(s) = old.slot {
                    self.queue.remove(&s.key);
                }
                if let Some(attempt) = old.attempt {
                    attempt.cancel();
                }
                slot.into_mut()
            }
            hash_map::Entry::Vacant(slot) => slot.insert(fresh),
        }
    }
}

impl Inner {
    /// Puts `volume` in the schedule at `due`, replacing its previous slot;
    /// never sooner than `min_interval` after its last attempt started.
    /// Returns the due time used.
    fn schedule(
        &self,
        st: &mut State,
        volume: &VolumeId,
        due: SystemTime,
        reason: IssueReason,
    ) -> SystemTime {
        let State {
            volumes,
            queue,
            seq,
            ..
        } = st;
        let Some(entry) = volumes.get_mut(volume) else {
            return due;
        };
        let floor = entry
            .last_issued
            .map(|last| last + self.config.min_interval);
        let due = match floor {
            Some(floor) if floor > due => {
                tracing::debug!(
                    volume = %volume,
                    %reason,
                    due = %timestamp(floor),
                    "due sooner than the minimum issuance interval allows; moved to the floor"
                );
                floor
            }
            _ => due,
        };
        if let Some(old) = entry.slot.take() {
            queue.remove(&old.key);
        }
        *seq += 1;
        let key = (self.config.clock.instant_for(due), *seq);
        let earliest = queue
            .first_key_value()
            .is_none_or(|(first, _)| key < *first);
        queue.insert(key, volume.clone());
        entry.slot = Some(Slot {
            key,
            wall: due,
            reason,
        });
        if earliest {
            self.wake.notify_one();
        }
        due
    }

    fn shutdown(&self) {
        let mut st = lock(&self.state);
        st.shutdown = true;
        st.queue.clear();
        for e in st.volumes.values_mut() {
            e.slot = None;
            if let Some(a) = e.attempt.take() {
                a.cancel();
            }
        }
        drop(st);
        if let Some(pacer) = &self.pacer {
            pacer.close();
        }
        self.wake.notify_one();
    }

    /// Sleeps until the earliest due instant (or until woken because an
    /// earlier one was added), starts an attempt for everything due, repeat.
    /// Nothing due means no wakeup.
    async fn run_scheduler(self: Arc<Self>) {
        loop {
            let next = {
                let mut st = lock(&self.state);
                if st.shutdown {
                    return;
                }
                let now = Instant::now();
                while let Some(entry) = st.queue.first_entry() {
                    if entry.key().0 > now {
                        break;
                    }
                    let volume = entry.remove();
                    self.start_attempt(&mut st, volume);
                }
                st.queue.first_key_value().map(|(key, _)| key.0)
            };
            match next {
                Some(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = self.wake.notified() => {}
                    }
                }
                None => self.wake.notified().await,
            }
            self.wakeups.fetch_add(1, Ordering::Relaxed);
        }
    }
}
