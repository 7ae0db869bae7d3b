//! Many volumes cost nothing while nothing is due.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use cmcsi_renewer::Lifetime;
use common::*;
use tokio::time::{advance, sleep_until};

#[tokio::test(start_paused = true)]
async fn ten_thousand_volumes_cause_no_wakeups_before_the_first_due_instant() {
    let cfg = config();
    let issuer = FakeIssuer::new(cfg.clock, 30 * DAY);
    let renewer = start(&issuer, cfg.clone());
    settle().await;
    let now = cfg.clock.now();
    // Pods started over the last few hours, with 1-day to 90-day certificates.
    let mut first_due = None;
    for i in 0..10_000u32 {
        let not_before = now - Duration::from_secs(u64::from(i % 7200));
        let lifetime = DAY * (1 + i % 90);
        let due = renewer
            .manage(
                format!("csi-{i:05}"),
                Lifetime::new(not_before, not_before + lifetime),
                false,
            )
            .unwrap();
        first_due = Some(first_due.map_or(due, |d: std::time::SystemTime| d.min(due)));
    }
    let first_due = first_due.unwrap();
    assert_eq!(renewer.managed_count(), 10_000);
    // Let the scheduler take in the new earliest instant.
    settle().await;
    let baseline = renewer.stats().scheduler_wakeups;
    assert!(baseline <= 2, "{baseline} wakeups while managing");

    // Advance (in steps, as a long-running node would) to just before the
    // first due instant: no wakeup, no issuance.
    let first_at = instant_of(&cfg, first_due);
    let step = Duration::from_secs(600);
    while tokio::time::Instant::now() + step < first_at - Duration::from_millis(2) {
        advance(step).await;
        settle().await;
    }
    sleep_until(first_at - Duration::from_millis(2)).await;
    settle().await;
    assert_eq!(renewer.stats().scheduler_wakeups, baseline);
    assert_eq!(issuer.call_count(), 0);

    // At the first due instant: one wakeup, one issuance.
    advance(Duration::from_millis(3)).await;
    settle().await;
    assert_eq!(issuer.call_count(), 1);
    assert_eq!(renewer.stats().scheduler_wakeups, baseline + 1);
    let stats = renewer.stats();
    assert_eq!(
        (stats.managed, stats.in_flight, stats.queued),
        (10_000, 0, 0)
    );
}
