//! [`KeyPool`]: keys generated ahead of demand, so RSA generation leaves the Pod's start path.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot::error::TryRecvError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot, watch};

use crate::{Error, KeySpec, PrivateKey, Result};

/// How many keys of each spec to keep ready, and how many to generate at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// Keys kept ready per spec. A spec that is absent or mapped to 0 is not pooled:
    /// [`KeyPool::take`] generates it inline.
    pub sizes: BTreeMap<KeySpec, usize>,
    /// Most background generations running at once, over all specs (at least 1). Inline
    /// generations in [`KeyPool::take`] are not counted: they are on a Pod's start path
    /// and must not queue behind refills.
    pub max_concurrent_generations: usize,
    /// Most generations of RSA keys larger than [`LARGE_RSA_BITS`] running at once,
    /// inline and background together (at least 1). One RSA-8192 key takes seconds of a
    /// core; without this cap a handful of Pods asking for them would take every core.
    pub max_concurrent_large_rsa: usize,
}

/// RSA keys with more bits than this count against
/// [`PoolConfig::max_concurrent_large_rsa`].
pub const LARGE_RSA_BITS: u32 = 4096;

/// Generations whose [`KeyPool::take`] was cancelled, kept per spec (running or done) for
/// the next take of the same spec (which a retry of the same volume is): it joins one
/// instead of starting a second generation. The keys of more are dropped when made.
const ORPHANS_KEPT: usize = 4;

impl Default for PoolConfig {
    /// Four RSA-2048 keys (the default key spec, and the only slow one in common use),
    /// nothing for ECDSA and Ed25519 (microseconds to generate), one background generation
    /// at a time so refills take at most one core from the node.
    fn default() -> Self {
        PoolConfig {
            sizes: BTreeMap::from([(KeySpec::RSA_2048, 4)]),
            max_concurrent_generations: 1,
            max_concurrent_large_rsa: 1,
        }
    }
}

/// Counters for metrics, as plain numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// [`KeyPool::take`] calls served from the pool.
    pub hits: u64,
    /// [`KeyPool::take`] calls for a pooled spec that found the pool empty and generated
    /// inline.
    pub misses: u64,
    /// [`KeyPool::take`] calls for a spec that is not pooled (always generated inline).
    pub unpooled: u64,
    /// Keys added to the pool by background generation.
    pub refills: u64,
    /// Background generations that failed.
    pub refill_failures: u64,
    /// Keys ready in the pool now, over all specs.
    pub available: usize,
    /// Background generations scheduled and not yet finished (waiting or running).
    pub pending: usize,
    /// Background generations running now.
    pub running: usize,
    /// Most background generations ever seen running at once.
    pub peak_running: usize,
    /// Generations for [`KeyPool::take`] running now on blocking threads. A take that is
    /// cancelled leaves its generation counted here until the thread finishes.
    pub inline_running: usize,
    /// Generations of RSA keys above [`LARGE_RSA_BITS`] running now, inline and
    /// background together; never more than [`PoolConfig::max_concurrent_large_rsa`].
    pub large_rsa_running: usize,
    /// Keys made for a cancelled take and handed to a later take of the same spec.
    pub orphans_adopted: u64,
}

type Generator = dyn Fn(&KeySpec) -> Result<PrivateKey> + Send + Sync;

/// A bounded pool of ready private keys per [`KeySpec`], refilled in the background on
/// Tokio's blocking threads.
///
/// Cheap to clone (shared state). Pooled keys live only in memory and are zeroized when
/// dropped, like every [`PrivateKey`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cmcsi_keygen::Error> {
/// use cmcsi_keygen::{KeyPool, KeySpec, PoolConfig};
///
/// let pool = KeyPool::new(PoolConfig::default())?; // 4 × RSA-2048, 1 generation at a time
/// pool.fill(); // start generating the configured keys in the background
/// let key = pool.take(&KeySpec::EcdsaP384).await?; // not pooled: generated inline
/// assert_eq!(key.spec(), KeySpec::EcdsaP384);
/// let stats = pool.stats(); // hits, misses, unpooled, refills ... for metrics
/// assert_eq!(stats.unpooled, 1);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct KeyPool {
    inner: Arc<Inner>,
}

struct Inner {
    targets: BTreeMap<KeySpec, usize>,
    slots: Mutex<HashMap<KeySpec, Slot>>,
    permits: Arc<Semaphore>,
    /// Caps generations of RSA keys above [`LARGE_RSA_BITS`].
    large_rsa: Arc<Semaphore>,
    generator: Arc<Generator>,
    /// Whether the generator is [`PrivateKey::generate`], whose non-RSA keys
    /// take tens of microseconds: cheaper made on the caller's thread than
    /// handed to a blocking thread and back.
    inline_cheap: bool,
    /// Takes waiting for a key made for them, and their generations running
    /// on blocking threads (also those whose take was cancelled, whose key a
    /// retry joins). Refills wait while there are any: a Pod waiting for its
    /// key gets the CPU first, and a burst of misses is not slowed by keys
    /// made for later.
    inline: watch::Sender<usize>,
    hits: AtomicU64,
    misses: AtomicU64,
    unpooled: AtomicU64,
    refills: AtomicU64,
    refill_failures: AtomicU64,
    running: AtomicUsize,
    peak_running: AtomicUsize,
    inline_running: AtomicUsize,
    large_rsa_running: AtomicUsize,
    orphans_adopted: AtomicU64,
    /// Number of scheduled, unfinished background generations.
    pending: watch::Sender<usize>,
}

/// Where the key of one inline generation arrives.
type Outcome = oneshot::Receiver<Result<PrivateKey>>;

#[derive(Default)]
struct Slot {
    keys: VecDeque<PrivateKey>,
    /// Generations of cancelled takes, running or done (at most [`ORPHANS_KEPT`]).
    orphans: VecDeque<Outcome>,
    scheduled: usize,
}

impl fmt::Debug for KeyPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPool")
            .field("targets", &self.inner.targets)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl KeyPool {
    /// A pool generating keys with [`PrivateKey::generate`]. Nothing is generated until
    /// [`KeyPool::fill`] or the first [`KeyPool::take`].
    ///
    /// Fails when a configured spec is invalid (e.g. RSA below 2048 bits).
    pub fn new(config: PoolConfig) -> Result<KeyPool> {
        let mut pool = Self::with_generator(config, PrivateKey::generate)?;
        if let Some(inner) = Arc::get_mut(&mut pool.inner) {
            inner.inline_cheap = true;
        }
        Ok(pool)
    }

    /// A pool with a custom key source (tests; a hardware generator). The function runs on
    /// a blocking thread.
    pub fn with_generator<F>(config: PoolConfig, generator: F) -> Result<KeyPool>
    where
        F: Fn(&KeySpec) -> Result<PrivateKey> + Send + Sync + 'static,
    {
        let mut targets = config.sizes;
        targets.retain(|_, n| *n > 0);
        for spec in targets.keys() {
            spec.validate()?;
        }
        let (pending, _) = watch::channel(0);
        Ok(KeyPool {
            inner: Arc::new(Inner {
                targets,
                slots: Mutex::new(HashMap::new()),
                permits: Arc::new(Semaphore::new(config.max_concurrent_generations.max(1))),
                large_rsa: Arc::new(Semaphore::new(config.max_concurrent_large_rsa.max(1))),
                generator: Arc::new(generator),
                inline_cheap: false,
                inline: watch::channel(0).0,
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
                unpooled: AtomicU64::new(0),
                refills: AtomicU64::new(0),
                refill_failures: AtomicU64::new(0),
                running: AtomicUsize::new(0),
                peak_running: AtomicUsize::new(0),
                inline_running: AtomicUsize::new(0),
                large_rsa_running: AtomicUsize::new(0),
                orphans_adopted: AtomicU64::new(0),
                pending,
            }),
        })
    }

    /// Takes a key of `spec`: a pooled one when there is one (a hit), else one generated
    /// now (a miss): on a blocking thread, except non-RSA keys of the default generator,
    /// which are made in place (they take tens of microseconds). Either way, schedules
    /// background refills.
    ///
    /// RSA keys above [`LARGE_RSA_BITS`] wait for one of
    /// [`PoolConfig::max_concurrent_large_rsa`] permits; the permit moves into the blocking
    /// thread, so cancelling the take never frees it while the key is still being made.
    ///
    /// A take cancelled mid-generation leaves its generation to the next take of the same
    /// spec, of any kind and size: that take gets its key when it is made already, or
    /// else, unless the pool has one ready, joins it (waits for it) instead of starting a
    /// second one. So a publish that the kubelet cancels and retries never has two
    /// generations running for it. Such a take counts neither as a hit nor as a miss, but
    /// in [`PoolStats::orphans_adopted`].
    pub async fn take(&self, spec: &KeySpec) -> Result<PrivateKey> {
        if let Some(key) = self.inner.adopt_ready(spec) {
            return Ok(key);
        }
        let pooled = self.inner.targets.contains_key(spec);
        let key = if pooled {
            self.inner
                .lock()
                .get_mut(spec)
                .and_then(|s| s.keys.pop_front())
        } else {
            None
        };
        if let Some(key) = key {
            self.fill();
            self.inner.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(key);
        }
        if let Some(key) = self.join_orphan(spec).await {
            return Ok(key);
        }
        let counter = if pooled {
            &self.inner.misses
        } else {
            &self.inner.unpooled
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if self.inner.inline_cheap && !matches!(spec, KeySpec::Rsa { .. }) {
            self.fill();
            return (self.inner.generator)(spec);
        }
        // Counted before the refill is scheduled, so that refill waits for us.
        let _inline = InlineGeneration::start(&self.inner);
        self.fill();
        let spec = *spec;
        let large = loop {
            let large = self.inner.large_permit(&spec).await?;
            // While we waited, a take of this spec may have been cancelled: its key, or
            // else its generation, is ours (without holding a permit meanwhile).
            if large.is_none() {
                break None;
            }
            if let Some(key) = self.inner.adopt_ready(&spec) {
                return Ok(key);
            }
            if !self.inner.has_orphan(&spec) {
                break large;
            }
            drop(large);
            if let Some(key) = self.join_orphan(&spec).await {
                return Ok(key);
            }
        };
        let (tx, rx) = oneshot::channel();
        let inner = Arc::clone(&self.inner);
        // Counted until the key is made, also when this take is cancelled before.
        let running = InlineGeneration::start(&self.inner);
        tokio::task::spawn_blocking(move || {
            let result = inner.generate(&spec, large, &inner.inline_running);
            drop(running);
            // When nobody waits any more (more orphans than are kept), the key is
            // dropped, and zeroized with it.
            let _ = tx.send(result);
        });
        Awaited::new(&self.inner, spec, rx)
            .wait()
            .await
            .unwrap_or_else(|| {
                Err(Error::Generate {
                    spec,
                    reason: "the generator thread ended without a key".into(),
                })
            })
    }

    /// Joins generations left by cancelled takes of `spec`, oldest first, until one
    /// makes a key; `None` when there are none (left), or all failed.
    async fn join_orphan(&self, spec: &KeySpec) -> Option<PrivateKey> {
        loop {
            let rx = self.inner.lock().get_mut(spec)?.orphans.pop_front()?;
            let _waiting = InlineGeneration::start(&self.inner);
            if let Some(Ok(key)) = Awaited::new(&self.inner, *spec, rx).wait().await {
                self.inner.orphans_adopted.fetch_add(1, Ordering::Relaxed);
                return Some(key);
            }
        }
    }

    /// Schedules background generations until every pooled spec has its configured number
    /// of keys ready or on the way. Returns at once.
    ///
    /// Needs a Tokio runtime; outside one it logs a warning and does nothing.
    pub fn fill(&self) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("key pool refill skipped: not inside a Tokio runtime");
            return;
        };
        let mut to_start = Vec::new();
        {
            let mut slots = self.inner.lock();
            for (spec, target) in &self.inner.targets {
                let slot = slots.entry(*spec).or_default();
                while slot.keys.len() + slot.scheduled < *target {
                    slot.scheduled += 1;
                    to_start.push(*spec);
                }
            }
        }
        if to_start.is_empty() {
            return;
        }
        self.inner.pending.send_modify(|n| *n += to_start.len());
        for spec in to_start {
            let inner = Arc::clone(&self.inner);
            handle.spawn(async move { inner.refill_one(spec).await });
        }
    }

    /// Waits until no background generation is scheduled or running (the pool is as full
    /// as it will get without another `take`).
    pub async fn wait_idle(&self) {
        let mut rx = self.inner.pending.subscribe();
        // The sender lives in `inner`, which `self` keeps alive, so this cannot fail.
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// Keys of `spec` ready now.
    pub fn available(&self, spec: &KeySpec) -> usize {
        self.inner.lock().get(spec).map_or(0, |s| s.keys.len())
    }

    /// The configured pool size for `spec` (0 when not pooled).
    pub fn target(&self, spec: &KeySpec) -> usize {
        self.inner.targets.get(spec).copied().unwrap_or(0)
    }

    /// Counters and gauges for metrics.
    pub fn stats(&self) -> PoolStats {
        let available = self.inner.lock().values().map(|s| s.keys.len()).sum();
        let i = &self.inner;
        PoolStats {
            hits: i.hits.load(Ordering::Relaxed),
            misses: i.misses.load(Ordering::Relaxed),
            unpooled: i.unpooled.load(Ordering::Relaxed),
            refills: i.refills.load(Ordering::Relaxed),
            refill_failures: i.refill_failures.load(Ordering::Relaxed),
            available,
            pending: *i.pending.borrow(),
            running: i.running.load(Ordering::Relaxed),
            peak_running: i.peak_running.load(Ordering::Relaxed),
            inline_running: i.inline_running.load(Ordering::SeqCst),
            large_rsa_running: i.large_rsa_running.load(Ordering::SeqCst),
            orphans_adopted: i.orphans_adopted.load(Ordering::Relaxed),
        }
    }
}

/// Counts itself in a gauge while it lives (also when the thread unwinds).
struct Counted<'a>(&'a AtomicUsize);

impl<'a> Counted<'a> {
    fn start(gauge: &'a AtomicUsize) -> Self {
        gauge.fetch_add(1, Ordering::SeqCst);
        Counted(gauge)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One take waiting for its key, or one inline generation; counted in [`Inner::inline`]
/// while it lives.
struct InlineGeneration(Arc<Inner>);

impl InlineGeneration {
    fn start(inner: &Arc<Inner>) -> Self {
        inner.inline.send_modify(|n| *n += 1);
        InlineGeneration(Arc::clone(inner))
    }
}

impl Drop for InlineGeneration {
    fn drop(&mut self) {
        self.0.inline.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// The key of an inline generation, on its way to a take. Dropped before it arrives (the
/// take was cancelled), the generation is parked in its spec's slot for the next take of
/// that spec to join.
struct Awaited<'a> {
    inner: &'a Inner,
    spec: KeySpec,
    rx: Option<Outcome>,
}

impl<'a> Awaited<'a> {
    fn new(inner: &'a Inner, spec: KeySpec, rx: Outcome) -> Self {
        Awaited {
            inner,
            spec,
            rx: Some(rx),
        }
    }

    /// The generation's result; `None` when its thread ended without one (a panic).
    async fn wait(mut self) -> Option<Result<PrivateKey>> {
        let rx = self.rx.as_mut()?;
        let result = rx.await.ok();
        self.rx = None;
        result
    }
}

impl Drop for Awaited<'_> {
    fn drop(&mut self) {
        if let Some(rx) = self.rx.take() {
            self.inner.park(self.spec, rx);
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, HashMap<KeySpec, Slot>> {
        // A panic while holding the lock leaves the map consistent (every update is a
        // single push/pop/counter change), so poisoning is ignored.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A permit of the large-RSA cap when `spec` needs one.
    async fn large_permit(&self, spec: &KeySpec) -> Result<Option<OwnedSemaphorePermit>> {
        if !matches!(spec, KeySpec::Rsa { bits } if *bits > LARGE_RSA_BITS) {
            return Ok(None);
        }
        Arc::clone(&self.large_rsa)
            .acquire_owned()
            .await
            .map(Some)
            .map_err(|_| Error::Generate {
                spec: *spec,
                reason: "key pool is shut down".into(),
            })
    }

    /// Runs the generator on this (blocking) thread, counted in `gauge` (and in the
    /// large-RSA gauge while `large` is held), and releases `large` when done.
    fn generate(
        &self,
        spec: &KeySpec,
        large: Option<OwnedSemaphorePermit>,
        gauge: &AtomicUsize,
    ) -> Result<PrivateKey> {
        let _running = Counted::start(gauge);
        let _large = large.map(|p| (p, Counted::start(&self.large_rsa_running)));
        (self.generator)(spec)
    }

    /// A key already made by the generation of a cancelled take of `spec`, if any.
    /// Generations that failed are forgotten on the way; running ones stay.
    fn adopt_ready(&self, spec: &KeySpec) -> Option<PrivateKey> {
        let mut slots = self.lock();
        let slot = slots.get_mut(spec)?;
        let mut key = None;
        slot.orphans.retain_mut(|rx| {
            if key.is_some() {
                return true;
            }
            match rx.try_recv() {
                Ok(Ok(k)) => {
                    key = Some(k);
                    false
                }
                Err(TryRecvError::Empty) => true,
                Ok(Err(_)) | Err(TryRecvError::Closed) => false,
            }
        });
        if key.is_some() {
            self.orphans_adopted.fetch_add(1, Ordering::Relaxed);
        }
        key
    }

    /// Whether a cancelled take of `spec` left a generation.
    fn has_orphan(&self, spec: &KeySpec) -> bool {
        self.lock().get(spec).is_some_and(|s| !s.orphans.is_empty())
    }

    /// Keeps the generation of a cancelled take for the next take of `spec`.
    fn park(&self, spec: KeySpec, rx: Outcome) {
        let mut slots = self.lock();
        let slot = slots.entry(spec).or_default();
        if slot.orphans.len() < ORPHANS_KEPT {
            slot.orphans.push_back(rx);
        }
    }

    async fn refill_one(self: Arc<Self>, spec: KeySpec) {
        // Yield to takes generating inline (the sender lives in `self`).
        let _ = self.inline.subscribe().wait_for(|n| *n == 0).await;
        let result = match Arc::clone(&self.permits).acquire_owned().await {
            Ok(permit) => {
                let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
                self.peak_running.fetch_max(now, Ordering::SeqCst);
                let res = match self.large_permit(&spec).await {
                    Ok(large) => {
                        let inner = Arc::clone(&self);
                        tokio::task::spawn_blocking(move || {
                            // Background generations are counted in `running` by the
                            // caller; this gauge is a throwaway.
                            let unused = AtomicUsize::new(0);
                            inner.generate(&spec, large, &unused)
                        })
                        .await
                    }
                    Err(e) => Ok(Err(e)),
                };
                self.running.fetch_sub(1, Ordering::SeqCst);
                drop(permit);
                res.unwrap_or_else(|e| {
                    Err(Error::Generate {
                        spec,
                        reason: format!("generator task failed: {e}"),
                    })
                })
            }
            // The semaphore is never closed; treat it as a failed generation anyway.
            Err(_) => Err(Error::Generate {
                spec,
                reason: "key pool is shut down".into(),
            }),
        };
        {
            let mut slots = self.lock();
            let slot = slots.entry(spec).or_default();
            slot.scheduled = slot.scheduled.saturating_sub(1);
            match result {
                Ok(key) => {
                    slot.keys.push_back(key);
                    self.refills.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%spec, ready = slot.keys.len(), "key pool refilled");
                }
                Err(e) => {
                    self.refill_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%spec, error = %e, "key pool refill failed");
                }
            }
        }
        self.pending.send_modify(|n| *n = n.saturating_sub(1));
    }
}
