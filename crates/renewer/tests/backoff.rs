//! Failed issuances: backoff sequence, cap, jitter, expiry, timeouts.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use cmcsi_renewer::{IssueReason, Lifetime, Outcome, RenewerConfig};
use common::*;
use tokio::time::Instant;

/// Gaps between consecutive calls, in seconds.
fn gaps(calls: &[Call]) -> Vec<f64> {
    calls
        .windows(2)
        .map(|w| (w[1].at - w[0].at).as_secs_f64())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn failures_back_off_from_30s_doubling_to_a_5_minute_cap() {
    let cfg = RenewerConfig {
        jitter_fraction: 0.0,
        backoff_jitter: 0.0,
        ..config()
    };
    let issuer = FakeIssuer::new(cfg.clock, DAY);
    issuer.set_failing(true);
    let renewer = start(&issuer, cfg.clone());
    let mut events = renewer.subscribe();
    let now = cfg.clock.now();
    renewer.manage("vol", Lifetime::new(now, now + DAY), false);
    for n in 1..=8u32 {
        let event = next_event(&mut events).await;
        let Outcome::Failed {
            message,
            attempts,
            retry_at,
            expired,
        } = event.outcome
        else {
            panic!("{event:?}")
        };
        assert_eq!(attempts, n);
        assert_eq!(message, "issuer my-ca is not ready");
        assert!(!expired);
        let state = renewer.snapshot("vol").unwrap();
        assert!(state.retrying);
        assert_eq!(state.attempts, n);
        assert_eq!(
            state.last_error.as_deref(),
            Some("issuer my-ca is not ready")
        );
        assert_eq!(state.due, Some(retry_at));
    }
    let calls = issuer.calls();
    assert_eq!(calls[0].reason, IssueReason::Renewal);
    assert!(calls[1..].iter().all(|c| c.reason == IssueReason::Retry));
    assert_eq!(
        gaps(&calls),
        [30.0, 60.0, 120.0, 240.0, 300.0, 300.0, 300.0]
    );
    assert_eq!(renewer.stats().retrying, 1);

    // The issuer recovers: the failure state clears and renewal follows the
    // new certificate.
    issuer.set_failing(false);
    let event = next_event(&mut events).await;
    assert!(matches!(event.outcome, Outcome::Issued { .. }));
    assert_eq!(gaps(&issuer.calls()).last(), Some(&300.0));
    let state = renewer.snapshot("vol").unwrap();
    assert!(!state.retrying);
    assert_eq!(state.attempts, 0);
    assert_eq!(state.last_error, None);
    let t = cfg.clock.now();
    assert_eq!(state.due, Some(t + 16 * HOUR));
    assert_eq!(renewer.stats().retrying, 0);
}

#[tokio::test(start_paused = true)]
async fn backoff_jitter_stays_within_the_go_bounds() {
    let cfg = config(); // backoff_jitter 0.5
    let issuer = FakeIssuer::new(cfg.clock, DAY);
    issuer.set_failing(true);
    let renewer = start(&issuer, cfg.clone());
    let mut events = renewer.subscribe();
    // 20 volumes failing together must not retry in lockstep.
    for i in 0..20 {
        renewer.manage_pending(format!("vol-{i}"), false);
    }
    for _ in 0..20 * 7 {
        next_event(&mut events).await;
    }
    let mut second_gaps = Vec::new();
    for i in 0..20 {
        let g = gaps(&issuer.calls_for(&format!("vol-{i}")));
        assert!(g.len() >= 6, "{g:?}");
        for (n, gap) in g.iter().enumerate() {
            let base = [30.0, 60.0, 120.0, 240.0, 300.0]
                .get(n)
                .copied()
                .unwrap_or(300.0);
            // Calls land on millisecond ticks, hence the small slack.
            assert!(
                *gap >= base && *gap <= base * 1.5 + 0.002,
                "gap {n} = {gap} outside [{base}, {}]",
                base * 1.5
            );
        }
        second_gaps.push(g[1]);
    }
    second_gaps.sort_by(f64::total_cmp);
    second_gaps.dedup();
    assert!(
        second_gaps.len() > 10,
        "retries in lockstep: {second_gaps:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_expired_certificate_keeps_retrying_and_says_so_loudly() {
    let logs = capture_logs();

    let cfg = RenewerConfig {
        backoff_jitter: 0.0,
        ..config()
    };
    let issuer = FakeIssuer::new(cfg.clock, DAY);
    issuer.set_failing(true);
    let renewer = start(&issuer, cfg.clone());
    let mut events = renewer.subscribe();
    let now = cfg.clock.now();
    let not_after = now + 30 * MIN;
    renewer.manage("vol", Lifetime::new(now, not_after), false);

    let mut saw_expired = 0;
    let mut last_at = None;
    for _ in 0..30 {
        let event = next_event(&mut events).await;
        let Outcome::Failed { expired, .. } = event.outcome else {
            panic!("{event:?}")
        };
        // Expired exactly when the failure happened after notAfter.
        assert_eq!(expired, cfg.clock.now() > not_after);
        if expired {
            saw_expired += 1;
            let at = Instant::now();
            if let Some(prev) = last_at {
                assert_eq!(at - prev, Duration::from_secs(300), "retrying at the cap");
            }
            last_at = Some(at);
        }
    }
    assert!(saw_expired >= 20, "{saw_expired}");
    let state = renewer.snapshot("vol").unwrap();
    assert!(state.expired && state.retrying);
    assert_eq!(state.not_after, Some(not_after));
    assert_eq!(renewer.stats().expired, 1);

    let text = logs.text();
    let loud: Vec<&str> = text.lines().filter(|l| l.contains("EXPIRED")).collect();
    assert_eq!(loud.len(), saw_expired, "{text}");
    assert!(loud[0].contains("ERROR"), "{}", loud[0]);
    assert!(
        loud[0].contains("certificate for volume vol EXPIRED at 2027-01-15T08:30:00Z, still retrying: issuer my-ca is not ready"),
        "{}",
        loud[0]
    );
    // Failures before expiry are warnings.
    assert!(
        text.lines()
            .any(|l| l.contains("WARN") && l.contains("retrying"))
    );
}

#[tokio::test(start_paused = true)]
async fn a_hung_issuance_times_out_frees_its_slot_and_backs_off() {
    let cfg = RenewerConfig {
        max_concurrent: 1,
        backoff_jitter: 0.0,
        issue_timeout: Some(MIN),
        ..config()
    };
    let issuer = FakeIssuer::gated(cfg.clock, DAY); // never opened
    let renewer = start(&issuer, cfg.clone());
    let mut events = renewer.subscribe();
    let started = Instant::now();
    renewer.manage_pending("vol", false);
    let event = next_event(&mut events).await;
    let Outcome::Failed { message, .. } = event.outcome else {
        panic!("{event:?}")
    };
    assert_eq!(message, "issuance did not finish within 60s");
    assert_eq!(Instant::now() - started, MIN);
    assert_eq!(issuer.dropped.load(std::sync::atomic::Ordering::SeqCst), 1);
    // The slot is free again.
    let permit =
        tokio::time::timeout(Duration::from_secs(1), renewer.acquire_first_issuance()).await;
    assert!(permit.is_ok());
    drop(permit);
    // And the retry comes 30 s after the failure.
    next_event(&mut events).await;
    let calls = issuer.calls();
    assert_eq!(calls[1].at - calls[0].at, MIN + Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_attempt_keeps_its_slot_while_its_work_still_runs() {
    let cfg = RenewerConfig {
        max_concurrent: 1,
        backoff_jitter: 0.0,
        issue_timeout: Some(MIN),
        ..config()
    };
    let issuer = FakeIssuer::gated(cfg.clock, DAY); // never opened
    issuer
        .keep_permits
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let renewer = start(&issuer, cfg.clone());
    let mut events = renewer.subscribe();
    renewer.manage_pending("vol", false);
    let event = next_event(&mut events).await;
    assert!(matches!(event.outcome, Outcome::Failed { .. }), "{event:?}");
    assert_eq!(issuer.dropped.load(std::sync::atomic::Ordering::SeqCst), 1);
    // The attempt is over, but the work it handed a permit to is not: the
    // only slot stays taken, so no new issuance starts beside that work.
    let waiting =
        tokio::time::timeout(Duration::from_secs(1), renewer.acquire_first_issuance()).await;
    assert!(
        waiting.is_err(),
        "the slot was free while the work still ran"
    );
    // The work ends: the slot is free.
    issuer.kept.lock().unwrap().clear();
    let permit =
        tokio::time::timeout(Duration::from_secs(1), renewer.acquire_first_issuance()).await;
    assert!(permit.is_ok());
}
