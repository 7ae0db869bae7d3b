//! A scriptable fake issuer and helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use cmcsi_renewer::{
    Clock, IssuanceEvent, IssuancePermit, Issue, IssueFailure, IssueReason, Lifetime, Renewer,
    RenewerConfig, VolumeId,
};
use tokio::sync::{Semaphore, broadcast};
use tokio::time::Instant;

pub const MIN: Duration = Duration::from_secs(60);
pub const HOUR: Duration = Duration::from_secs(3600);
pub const DAY: Duration = Duration::from_secs(24 * 3600);

/// The wall time at which every test starts.
pub fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// A repeatable configuration on a clock anchored at [`t0`].
pub fn config() -> RenewerConfig {
    RenewerConfig {
        clock: Clock::anchored(t0()),
        seed: Some(42),
        ..RenewerConfig::default()
    }
}

#[derive(Clone, Debug)]
pub struct Call {
    pub volume: VolumeId,
    pub reason: IssueReason,
    pub at: Instant,
}

/// Issues `lifetime`-long certificates starting "now", or fails while
/// `failing` is set. With a gate, each issuance waits for one gate permit.
pub struct FakeIssuer {
    pub clock: Clock,
    pub lifetime: Duration,
    pub failing: AtomicBool,
    pub gate: Option<Semaphore>,
    pub calls: Mutex<Vec<Call>>,
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    /// Issuance futures dropped before they finished.
    pub dropped: AtomicUsize,
    /// With `keep_permits`, each issuance leaves a clone of its permit here,
    /// as blocking work it started and that outlives it would.
    pub keep_permits: AtomicBool,
    pub kept: Mutex<Vec<IssuancePermit>>,
}

impl FakeIssuer {
    pub fn new(clock: Clock, lifetime: Duration) -> Arc<Self> {
        Arc::new(Self::build(clock, lifetime, None))
    }

    pub fn gated(clock: Clock, lifetime: Duration) -> Arc<Self> {
        Arc::new(Self::build(clock, lifetime, Some(Semaphore::new(0))))
    }

    fn build(clock: Clock, lifetime: Duration, gate: Option<Semaphore>) -> Self {
        Self {
            clock,
            lifetime,
            failing: AtomicBool::new(false),
            gate,
            calls: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
            keep_permits: AtomicBool::new(false),
            kept: Mutex::new(Vec::new()),
        }
    }

    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Lets `n` gated issuances finish.
    pub fn open(&self, n: usize) {
        self.gate.as_ref().expect("gated issuer").add_permits(n);
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    pub fn call_count(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    pub fn calls_for(&self, volume: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.volume.as_str() == volume)
            .collect()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }
}

struct InFlight<'a> {
    issuer: &'a FakeIssuer,
    finished: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.issuer.in_flight.fetch_sub(1, Ordering::SeqCst);
        if !self.finished {
            self.issuer.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Issue for FakeIssuer {
    async fn issue(
        &self,
        volume: VolumeId,
        reason: IssueReason,
        permit: IssuancePermit,
    ) -> Result<Lifetime, IssueFailure> {
        if self.keep_permits.load(Ordering::SeqCst) {
            self.kept.lock().unwrap().push(permit);
        }
        self.calls.lock().unwrap().push(Call {
            volume,
            reason,
            at: Instant::now(),
        });
        let now_in_flight = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight
            .fetch_max(now_in_flight, Ordering::SeqCst);
        let mut guard = InFlight {
            issuer: self,
            finished: false,
        };
        if let Some(gate) = &self.gate {
            gate.acquire().await.unwrap().forget();
        }
        guard.finished = true;
        if self.failing.load(Ordering::SeqCst) {
            return Err(IssueFailure::new("issuer my-ca is not ready"));
        }
        let now = self.clock.now();
        Ok(Lifetime::new(now, now + self.lifetime))
    }
}

/// Lets every ready task run (paused time does not move while tasks are busy).
pub async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

/// The next event, skipping none; panics if the channel lagged or closed.
pub async fn next_event(rx: &mut broadcast::Receiver<IssuanceEvent>) -> IssuanceEvent {
    rx.recv().await.expect("event")
}

/// Starts a renewer over `issuer` with `cfg`.
pub fn start(issuer: &Arc<FakeIssuer>, cfg: RenewerConfig) -> Renewer {
    Renewer::start(Arc::clone(issuer), cfg).expect("start")
}

/// The instant the renewer's clock maps `wall` to.
pub fn instant_of(cfg: &RenewerConfig, wall: SystemTime) -> Instant {
    cfg.clock.instant_for(wall)
}

/// The formatted log lines of one test, captured from the test's own thread.
///
/// Why not a subscriber per test (`tracing::subscriber::set_default`): while
/// only one dispatcher exists, tracing-core computes a callsite's cached
/// interest from the default subscriber *of the thread that reaches the
/// callsite first*. When another test in the same process (one that sets no
/// subscriber) reaches the renewer's `warn!` first, the callsite is cached as
/// "never" and the capturing test loses that line: it failed about one run
/// in three under plain `cargo test`. So each test binary installs one global
/// subscriber, which every thread sees, and its writer appends to the buffer
/// of the capture open on the writing thread; lines from threads without one
/// are dropped, as they were with no subscriber.
///
/// `#[tokio::test]`'s default current-thread runtime runs the renewer's tasks
/// on the test's thread, so their lines are captured too.
///
/// Written here rather than taken from a crate: `tracing-test` keys its
/// capture by span, and the renewer's spawned tasks do not carry the test's
/// span.
pub struct LogCapture {
    buf: Arc<Mutex<Vec<u8>>>,
    previous: Option<Arc<Mutex<Vec<u8>>>>,
    /// Stays on the thread whose logs it captures.
    _not_send: std::marker::PhantomData<*const ()>,
}

thread_local! {
    static CAPTURE: std::cell::RefCell<Option<Arc<Mutex<Vec<u8>>>>> =
        const { std::cell::RefCell::new(None) };
}

/// Writes to the capture open on the current thread, if any.
struct ThreadCapture;

impl std::io::Write for ThreadCapture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|c| {
            if let Some(buf) = c.borrow().as_ref() {
                buf.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(bytes);
            }
        });
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Starts capturing what this thread logs at INFO and above, until the
/// returned capture is dropped.
pub fn capture_logs() -> LogCapture {
    static GLOBAL: std::sync::Once = std::sync::Once::new();
    GLOBAL.call_once(|| {
        if let Err(e) = tracing_subscriber::fmt()
            .with_writer(|| ThreadCapture)
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .try_init()
        {
            panic!("capture_logs needs the test binary's global subscriber, but one is set: {e}");
        }
        // A callsite another thread was registering while the global was
        // being set may have cached the "no subscriber" answer: ask again.
        tracing::callsite::rebuild_interest_cache();
    });
    let buf = Arc::new(Mutex::new(Vec::new()));
    let previous = CAPTURE.with(|c| c.replace(Some(Arc::clone(&buf))));
    LogCapture {
        buf,
        previous,
        _not_send: std::marker::PhantomData,
    }
}

impl LogCapture {
    /// Everything captured so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

impl Drop for LogCapture {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CAPTURE.with(|c| c.replace(previous));
    }
}
