//! The renewer owns every wait: a "not ready" answer (a Pod not meeting its
//! readiness gates) is checked again with the not-ready backoff or at once
//! on a wake, without counting as a failure or moving the issuance floor;
//! and the renewal pace is shared fairly between tenants.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use cmcsi_renewer::{
    Backoff, Clock, IssuancePermit, Issue, IssueFailure, IssueReason, Lifetime, Outcome,
    RenewerConfig, VolumeId,
};
use common::{config, settle};
use tokio::time::{Instant, sleep};

/// One attempt: (volume, when it ran, its wall time, the certificate's
/// notAfter if issued).
type Call = (String, Instant, SystemTime, Option<SystemTime>);

/// Answers "not ready" until `ready`; issues certificates whose lifetime
/// depends on the volume's name (`short-*` one second, others six).
struct Issuer {
    clock: Clock,
    ready: AtomicBool,
    /// Answers "unavailable" (the API is down) while set.
    down: AtomicBool,
    calls: Mutex<Vec<Call>>,
}

impl Issuer {
    fn new(clock: Clock, ready: bool) -> Arc<Self> {
        Arc::new(Self {
            clock,
            ready: AtomicBool::new(ready),
            down: AtomicBool::new(false),
            calls: Mutex::new(Vec::new()),
        })
    }

    fn calls_for(&self, volume: &str) -> Vec<(Instant, Option<SystemTime>)> {
        let calls = self.calls.lock().unwrap();
        calls
            .iter()
            .filter(|c| c.0 == volume)
            .map(|c| (c.1, c.3))
            .collect()
    }

    fn wall_calls_for(&self, volume: &str) -> Vec<(SystemTime, Option<SystemTime>)> {
        let calls = self.calls.lock().unwrap();
        calls
            .iter()
            .filter(|c| c.0 == volume)
            .map(|c| (c.2, c.3))
            .collect()
    }
}

impl Issue for Issuer {
    async fn issue(
        &self,
        volume: VolumeId,
        _reason: IssueReason,
        _permit: IssuancePermit,
    ) -> Result<Lifetime, IssueFailure> {
        let now = self.clock.now();
        if self.down.load(Ordering::SeqCst) {
            self.calls
                .lock()
                .unwrap()
                .push((volume.to_string(), Instant::now(), now, None));
            return Err(IssueFailure::unavailable(
                "the Kubernetes API is unreachable",
            ));
        }
        if !self.ready.load(Ordering::SeqCst) {
            self.calls
                .lock()
                .unwrap()
                .push((volume.to_string(), Instant::now(), now, None));
            return Err(IssueFailure::not_ready("Pod ns/p does not yet meet gate"));
        }
        let secs = if volume.as_str().starts_with("short-") {
            1
        } else {
            6
        };
        let not_after = now + Duration::from_secs(secs);
        self.calls
            .lock()
            .unwrap()
            .push((volume.to_string(), Instant::now(), now, Some(not_after)));
        Ok(Lifetime::new(now, not_after))
    }
}

#[tokio::test(start_paused = true)]
async fn not_ready_is_checked_with_its_backoff_and_at_once_when_woken() {
    let cfg = RenewerConfig {
        min_interval: Duration::from_secs(10),
        not_ready_backoff: Backoff {
            duration: Duration::from_secs(1),
            factor: 2.0,
            jitter: 0.0,
            cap: Duration::from_secs(4),
        },
        ..config()
    };
    let issuer = Issuer::new(cfg.clock, false);
    let renewer = cmcsi_renewer::Renewer::start(Arc::clone(&issuer), cfg.clone()).unwrap();
    let mut events = renewer.subscribe();
    let begin = Instant::now();
    renewer.manage_pending("gated", false);
    sleep(Duration::from_millis(15_500)).await;
    settle().await;
    // At 0, then 1, 2, 4, 4, 4 s apart (the cap): 0, 1, 3, 7, 11, 15.
    let at: Vec<u64> = issuer
        .calls_for("gated")
        .iter()
        .map(|c| c.0.duration_since(begin).as_secs())
        .collect();
    assert_eq!(at, [0, 1, 3, 7, 11, 15]);
    let state = renewer.snapshot("gated").unwrap();
    assert_eq!(state.not_ready, 6);
    assert_eq!(state.attempts, 0, "not ready is no failure");
    assert!(!state.retrying);
    assert_eq!(renewer.stats().not_ready, 1);
    match events.recv().await.unwrap().outcome {
        Outcome::NotReady { checks, .. } => assert_eq!(checks, 1),
        other => panic!("{other:?}"),
    }

    // The Pod becomes ready: a wake issues at once, the 10 s floor not
    // counting the checks (nothing was issued yet).
    issuer.ready.store(true, Ordering::SeqCst);
    let woken = Instant::now();
    assert!(renewer.wake("gated"));
    settle().await;
    let calls = issuer.calls_for("gated");
    let last = calls.last().unwrap();
    assert!(last.1.is_some(), "issued on the wake");
    assert_eq!(last.0, woken);
    let state = renewer.snapshot("gated").unwrap();
    assert_eq!(state.not_ready, 0);
    renewer.shutdown();
}

#[tokio::test(start_paused = true)]
async fn not_ready_checks_do_not_move_the_floor_of_an_issued_volume() {
    let cfg = RenewerConfig {
        min_interval: Duration::from_secs(10),
        ..config()
    };
    let issuer = Issuer::new(cfg.clock, true);
    let renewer = cmcsi_renewer::Renewer::start(Arc::clone(&issuer), cfg.clone()).unwrap();
    let now = cfg.clock.now();
    let begin = Instant::now();
    // Issued now; renewal due at once but held to the floor (10 s).
    renewer.manage(
        "vol",
        Lifetime::new(now, now + Duration::from_secs(3)),
        false,
    );
    issuer.ready.store(false, Ordering::SeqCst);
    sleep(Duration::from_secs(10)).await;
    settle().await;
    assert_eq!(issuer.calls_for("vol").len(), 1, "the renewal, not ready");
    // Checked again within the not-ready backoff (1-1.5 s), not the floor.
    sleep(Duration::from_millis(1600)).await;
    settle().await;
    assert_eq!(issuer.calls_for("vol").len(), 2);
    issuer.ready.store(true, Ordering::SeqCst);
    renewer.wake("vol");
    settle().await;
    let calls = issuer.calls_for("vol");
    assert_eq!(calls.len(), 3);
    assert!(calls[2].1.is_some());
    assert!(calls[2].0.duration_since(begin) < Duration::from_secs(12));
    renewer.shutdown();
}

/// Issue 25 item 5: one tenant's many short-lived volumes (always due, held
/// only by the floor) and another tenant's few, at 5 renewals/s node-wide.
/// First come first served, the few wait behind the many and expire; shared
/// round-robin, each is renewed inside its window.
#[tokio::test(start_paused = true)]
async fn renewals_are_fair_between_tenants() {
    let cfg = RenewerConfig {
        min_interval: Duration::from_secs(1),
        renewal_rate: Some(5.0),
        jitter_fraction: 0.0,
        ..config()
    };
    let issuer = Issuer::new(cfg.clock, true);
    let renewer = cmcsi_renewer::Renewer::start(Arc::clone(&issuer), cfg.clone()).unwrap();
    let now = cfg.clock.now();
    for i in 0..100 {
        renewer.manage_in(
            "busy",
            format!("short-{i}"),
            Lifetime::new(now, now + Duration::from_secs(1)),
            false,
        );
    }
    for i in 0..5 {
        renewer.manage_in(
            "quiet",
            format!("quiet-{i}"),
            Lifetime::new(now, now + Duration::from_secs(6)),
            false,
        );
    }
    sleep(Duration::from_secs(40)).await;
    settle().await;
    let mut renewals: HashMap<String, usize> = HashMap::new();
    for i in 0..5 {
        let volume = format!("quiet-{i}");
        let mut not_after = now + Duration::from_secs(6);
        let calls = issuer.wall_calls_for(&volume);
        for (wall, issued) in &calls {
            let wall = *wall;
            assert!(
                wall <= not_after,
                "{volume} renewed {:?} after its certificate expired",
                wall.duration_since(not_after).unwrap()
            );
            not_after = issued.unwrap();
        }
        renewals.insert(volume, calls.len());
    }
    // Renewed every 4 s (two thirds of 6 s) plus the wait for a slot, for 40 s.
    assert!(renewals.values().all(|n| *n >= 8), "{renewals:?}");
    renewer.shutdown();
}

/// B11's rule: renewals that fell due while the API was down are done at the
/// pace's rate once it answers again, not each at the end of its backoff.
#[tokio::test(start_paused = true)]
async fn after_an_outage_the_failed_renewals_follow_the_first_success() {
    let cfg = RenewerConfig {
        renewal_rate: Some(5.0),
        jitter_fraction: 0.0,
        ..config()
    };
    let issuer = Issuer::new(cfg.clock, true);
    let renewer = cmcsi_renewer::Renewer::start(Arc::clone(&issuer), cfg.clone()).unwrap();
    let now = cfg.clock.now();
    let begin = Instant::now();
    issuer.down.store(true, Ordering::SeqCst);
    // Twenty renewals due at 2 s (two thirds of 3 s): all fail, and back off
    // 30-45 s.
    for i in 0..20 {
        renewer.manage(
            format!("vol-{i}"),
            Lifetime::new(now - Duration::from_secs(1), now + Duration::from_secs(2)),
            false,
        );
    }
    sleep(Duration::from_secs(20)).await;
    settle().await;
    assert_eq!(renewer.stats().retrying, 20);
    issuer.down.store(false, Ordering::SeqCst);
    sleep(Duration::from_secs(60)).await;
    settle().await;
    let mut last = Duration::ZERO;
    let mut first = Duration::MAX;
    for i in 0..20 {
        let calls = issuer.calls_for(&format!("vol-{i}"));
        let (at, issued) = calls[1];
        assert!(issued.is_some(), "vol-{i}'s second attempt issues");
        last = last.max(at.duration_since(begin));
        first = first.min(at.duration_since(begin));
    }
    // The first retry at 32-47 s succeeds; the other 19 follow at 5 a second.
    assert!(
        last <= first + Duration::from_secs(4),
        "retried from {first:?} to {last:?}"
    );
    renewer.shutdown();
}
