//! When volumes are issued: due instants, replacement, disable-auto-renew,
//! explicit requests.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use cmcsi_renewer::{IssueReason, Lifetime, Outcome, RenewerConfig};
use common::*;
use tokio::time::{Instant, sleep_until};

/// For several lifetimes and renew-before values, the renewal happens exactly
/// at the planned (jittered) instant and not a moment before, and the next
/// one is planned from the new certificate.
#[tokio::test(start_paused = true)]
async fn renewals_happen_at_the_planned_instant_for_several_lifetimes() {
    let cases = [
        (HOUR, None, 40 * MIN),
        (HOUR, Some(10 * MIN), 50 * MIN),
        (DAY, None, 16 * HOUR),
        (DAY, Some(2 * DAY), 16 * HOUR), // longer than the lifetime: ignored
        (90 * DAY, None, 60 * DAY),
        (90 * DAY, Some(30 * DAY + HOUR), 60 * DAY - HOUR),
    ];
    for (lifetime, renew_before, unjittered) in cases {
        let cfg = config();
        let issuer = FakeIssuer::new(cfg.clock, lifetime);
        let renewer = start(&issuer, cfg.clone());
        let mut events = renewer.subscribe();
        let start = cfg.clock.now();
        let mut l = Lifetime::new(start, start + lifetime);
        if let Some(rb) = renew_before {
            l = l.with_renew_before(rb);
        }
        let due = renewer.manage("vol", l, false).unwrap();
        let planner = renewer.planner();
        assert_eq!(due, planner.next_issuance(&"vol".into(), &l));
        assert_eq!(renewer.snapshot("vol").unwrap().due, Some(due));
        // Jittered earlier, but by no more than the bound.
        let base = start + unjittered;
        assert_eq!(l.renewal_time(), base);
        assert!(
            due <= base && due >= base - planner.max_jitter(&l),
            "{lifetime:?}"
        );

        let at = instant_of(&cfg, due);
        sleep_until(at - Duration::from_millis(2)).await;
        settle().await;
        assert_eq!(issuer.call_count(), 0, "{lifetime:?}: issued early");

        let event = next_event(&mut events).await;
        let calls = issuer.calls();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].reason, IssueReason::Renewal);
        assert!(calls[0].at >= at && calls[0].at <= at + Duration::from_millis(1));
        let Outcome::Issued {
            not_after,
            next_due,
        } = event.outcome
        else {
            panic!("{event:?}")
        };
        let now = cfg.clock.now();
        assert_eq!(not_after, now + lifetime);
        let next = next_due.unwrap();
        assert_eq!(renewer.snapshot("vol").unwrap().due, Some(next));
        let new = Lifetime::new(now, now + lifetime);
        assert_eq!(next, planner.next_issuance(&"vol".into(), &new));
        renewer.shutdown();
    }
}

#[tokio::test(start_paused = true)]
async fn disable_auto_renew_volumes_are_never_renewed() {
    let cfg = config();
    let issuer = FakeIssuer::new(cfg.clock, HOUR);
    let renewer = start(&issuer, cfg.clone());
    let now = cfg.clock.now();
    assert_eq!(
        renewer.manage("once", Lifetime::new(now, now + HOUR), true),
        None
    );
    // A never-issued disable-auto-renew volume gets exactly its first one.
    renewer.manage_pending("pending-once", true);
    tokio::time::sleep(10 * DAY).await;
    let calls = issuer.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].volume.as_str(), "pending-once");
    assert_eq!(calls[0].reason, IssueReason::Requested);
    for v in ["once", "pending-once"] {
        let state = renewer.snapshot(v).unwrap();
        assert_eq!(state.due, None, "{v}");
        assert!(state.disable_auto_renew);
        assert!(state.expired, "{v}: managed past notAfter");
    }
    assert_eq!(renewer.stats().expired, 2);
    assert_eq!(renewer.managed_count(), 2);
}

#[tokio::test(start_paused = true)]
async fn manage_replaces_the_previous_schedule() {
    let cfg = RenewerConfig {
        jitter_fraction: 0.0,
        ..config()
    };
    let issuer = FakeIssuer::new(cfg.clock, HOUR);
    let renewer = start(&issuer, cfg.clone());
    let now = cfg.clock.now();
    let first = renewer
        .manage("vol", Lifetime::new(now, now + 3 * HOUR), false)
        .unwrap();
    assert_eq!(first, now + 2 * HOUR);
    let second = renewer
        .manage("vol", Lifetime::new(now, now + 30 * HOUR), false)
        .unwrap();
    assert_eq!(second, now + 20 * HOUR);
    sleep_until(instant_of(&cfg, first) + MIN).await;
    settle().await;
    assert_eq!(issuer.call_count(), 0);
    sleep_until(instant_of(&cfg, second)).await;
    settle().await;
    assert_eq!(issuer.call_count(), 1);
    assert_eq!(renewer.managed_count(), 1);
}

#[tokio::test(start_paused = true)]
async fn issue_now_runs_at_once_and_then_follows_the_new_certificate() {
    let cfg = RenewerConfig {
        jitter_fraction: 0.0,
        ..config()
    };
    let issuer = FakeIssuer::new(cfg.clock, 3 * HOUR);
    let renewer = start(&issuer, cfg.clone());
    let mut events = renewer.subscribe();
    let now = cfg.clock.now();
    renewer.manage("vol", Lifetime::new(now, now + 30 * DAY), false);
    assert!(!renewer.issue_now("unknown"));
    tokio::time::advance(MIN).await;
    let asked = Instant::now();
    assert!(renewer.issue_now("vol"));
    let event = next_event(&mut events).await;
    assert_eq!(event.reason, IssueReason::Requested);
    assert_eq!(issuer.calls()[0].at, asked);
    // The new certificate (3 h from now) is renewed at 2 h.
    let t = cfg.clock.now();
    assert_eq!(renewer.snapshot("vol").unwrap().due, Some(t + 2 * HOUR));
    let event = next_event(&mut events).await;
    assert_eq!(event.reason, IssueReason::Renewal);
    assert_eq!(cfg.clock.now(), t + 2 * HOUR);
}

#[tokio::test(start_paused = true)]
async fn a_pending_volume_is_issued_in_the_background_until_it_succeeds() {
    let cfg = RenewerConfig {
        backoff_jitter: 0.0,
        ..config()
    };
    let issuer = FakeIssuer::new(cfg.clock, DAY);
    issuer.set_failing(true);
    let renewer = start(&issuer, cfg.clone());
    let mut events = renewer.subscribe();
    let start_at = Instant::now();
    renewer.manage_pending("vol", false);
    for _ in 0..2 {
        assert!(matches!(
            next_event(&mut events).await.outcome,
            Outcome::Failed { .. }
        ));
    }
    issuer.set_failing(false);
    let event = next_event(&mut events).await;
    assert!(matches!(event.outcome, Outcome::Issued { .. }), "{event:?}");
    let calls = issuer.calls();
    let reasons: Vec<_> = calls.iter().map(|c| c.reason).collect();
    assert_eq!(
        reasons,
        [
            IssueReason::Requested,
            IssueReason::Retry,
            IssueReason::Retry
        ]
    );
    assert_eq!(calls[0].at, start_at);
    assert_eq!(calls[2].at - start_at, Duration::from_secs(30 + 60));
    let state = renewer.snapshot("vol").unwrap();
    assert!(!state.retrying);
    assert_eq!(state.attempts, 0);
    assert!(state.due.is_some());
}

/// Lifetimes beyond what a timer can represent (here 100 years) are scheduled
/// without panicking and are simply not due for a very long time.
#[tokio::test(start_paused = true)]
async fn very_long_lifetimes_are_scheduled_without_trouble() {
    let cfg = config();
    let issuer = FakeIssuer::new(cfg.clock, HOUR);
    let renewer = start(&issuer, cfg.clone());
    let now = cfg.clock.now();
    let l = Lifetime::new(now, now + 36_500 * DAY);
    let due = renewer.manage("ca", l, false).unwrap();
    assert!(due > now + 24_000 * DAY);
    // Past the timer horizon (30 years): the timer fires, nothing is issued.
    tokio::time::sleep(31 * 365 * DAY).await;
    settle().await;
    assert!(renewer.stats().scheduler_wakeups > 0);
    assert_eq!(issuer.call_count(), 0);
    assert_eq!(renewer.snapshot("ca").unwrap().due, Some(due));
}

/// `wake` is how any other event (a Pod becoming ready, a trust bundle
/// changing) rewrites a volume's files: at once when the volume is idle, and
/// once more after an attempt that is running when the wake comes, so the
/// reason for the wake is never lost to an attempt that started before it.
#[tokio::test(start_paused = true)]
async fn wake_rewrites_now_or_right_after_the_running_attempt() {
    let cfg = RenewerConfig {
        jitter_fraction: 0.0,
        ..config()
    };
    let issuer = FakeIssuer::gated(cfg.clock, 3 * HOUR);
    let renewer = start(&issuer, cfg.clone());
    let mut events = renewer.subscribe();
    let now = cfg.clock.now();
    assert!(
        !renewer.wake("unknown"),
        "nothing to rewrite for an unmanaged volume"
    );
    renewer.manage("vol", Lifetime::new(now, now + 30 * DAY), false);
    settle().await;
    assert_eq!(issuer.call_count(), 0);

    // Idle: issued now.
    assert!(renewer.wake("vol"));
    settle().await;
    assert_eq!(issuer.calls_for("vol").len(), 1);
    assert_eq!(issuer.calls()[0].reason, IssueReason::Requested);

    // Woken again while that attempt runs: another attempt follows it.
    assert!(renewer.wake("vol"));
    issuer.open(1);
    let first = next_event(&mut events).await;
    assert!(matches!(first.outcome, Outcome::Issued { .. }), "{first:?}");
    settle().await;
    let calls = issuer.calls_for("vol");
    assert_eq!(
        calls.len(),
        2,
        "the wake during the attempt was lost: {calls:?}"
    );
    assert_eq!(calls[1].reason, IssueReason::Requested);
    issuer.open(1);
    let second = next_event(&mut events).await;
    assert!(
        matches!(second.outcome, Outcome::Issued { .. }),
        "{second:?}"
    );
    // Then back to the schedule: renewed at 2 h of the 3 h certificate.
    let t = cfg.clock.now();
    assert_eq!(renewer.snapshot("vol").unwrap().due, Some(t + 2 * HOUR));
}
