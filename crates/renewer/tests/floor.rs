//! The issuance floor and the renewal pace: a volume whose certificate is
//! already due when issued is renewed once per `min_interval`, not in a
//! loop; renewals are spaced by `renewal_rate`, first issuances are not.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use cmcsi_renewer::{IssueReason, Lifetime, RenewerConfig};
use common::*;
use tokio::time::{Instant, sleep};

#[tokio::test(start_paused = true)]
async fn an_always_due_certificate_is_renewed_once_per_floor() {
    let cfg = RenewerConfig {
        min_interval: Duration::from_secs(10),
        ..config()
    };
    // Each certificate lives one second: due again as soon as it is issued.
    let issuer = FakeIssuer::new(cfg.clock, Duration::from_secs(1));
    let renewer = start(&issuer, cfg.clone());
    let now = cfg.clock.now();
    let begin = Instant::now();
    let due = renewer
        .manage(
            "vol",
            Lifetime::new(now, now + Duration::from_secs(1)),
            false,
        )
        .unwrap();
    assert_eq!(due, now + Duration::from_secs(10), "moved to the floor");
    sleep(Duration::from_secs(60)).await;
    settle().await;
    let calls = issuer.calls_for("vol");
    assert!(
        (5..=6).contains(&calls.len()),
        "{} issuances in 60 s with a 10 s floor",
        calls.len()
    );
    let mut last = begin;
    for c in &calls {
        assert!(
            c.at.duration_since(last) >= Duration::from_secs(10),
            "issued {:?} after the previous one",
            c.at.duration_since(last)
        );
        last = c.at;
    }
    // An explicit request is held to the floor too.
    renewer.issue_now("vol");
    settle().await;
    assert_eq!(
        issuer.calls_for("vol").len(),
        calls.len(),
        "issue_now obeys the floor"
    );
    renewer.shutdown();
}

#[tokio::test(start_paused = true)]
async fn renewals_are_paced_first_issuances_are_not() {
    let cfg = RenewerConfig {
        renewal_rate: Some(2.0),
        ..config()
    };
    let issuer = FakeIssuer::new(cfg.clock, HOUR);
    let renewer = start(&issuer, cfg.clone());
    let now = cfg.clock.now();
    let begin = Instant::now();
    // Ten renewals fall due together.
    for i in 0..10 {
        renewer.manage(
            format!("renew-{i}"),
            Lifetime::new(now - HOUR, now + Duration::from_secs(1)),
            false,
        );
    }
    // And a Pod's first issuance arrives meanwhile.
    renewer.manage_pending("first", false);
    sleep(Duration::from_millis(100)).await;
    settle().await;
    let first = issuer.calls_for("first");
    assert_eq!(first.len(), 1, "the first issuance is not paced");
    assert_eq!(first[0].reason, IssueReason::Requested);
    sleep(Duration::from_secs(10)).await;
    settle().await;
    let mut renewals: Vec<Instant> = issuer
        .calls()
        .iter()
        .filter(|c| c.reason == IssueReason::Renewal)
        .map(|c| c.at)
        .collect();
    renewals.sort();
    assert_eq!(renewals.len(), 10);
    // 2 per second: the tenth starts no sooner than 4.5 s after the first.
    assert!(renewals[9].duration_since(begin) >= Duration::from_millis(4500));
    for pair in renewals.windows(2) {
        assert!(pair[1].duration_since(pair[0]) >= Duration::from_millis(499));
    }
    renewer.shutdown();
}

#[test]
fn a_zero_renewal_rate_is_refused() {
    let cfg = RenewerConfig {
        renewal_rate: Some(0.0),
        ..RenewerConfig::default()
    };
    let err = cfg.validate().unwrap_err().to_string();
    assert!(err.contains("renewal_rate"), "{err}");
}
