//! Restart: restoring stored volumes.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, SystemTime};

use cmcsi_renewer::{IssueReason, RenewerConfig, RestoredVolume};
use common::*;

#[tokio::test(start_paused = true)]
async fn restart_with_1000_overdue_volumes_spreads_them_over_the_window() {
    let spread = 10 * MIN;
    let cfg = RenewerConfig {
        recovery_spread: spread,
        max_concurrent: 16,
        ..config()
    };
    let issuer = FakeIssuer::new(cfg.clock, DAY);
    let renewer = start(&issuer, cfg.clone());
    let now = cfg.clock.now();
    let mut stored = Vec::new();
    // 1000 overdue by between 1 s and ~11 days, 10 never issued, 5 still ahead.
    for i in 0..1000u64 {
        let overdue = Duration::from_secs(1 + (i * 7919) % (11 * 24 * 3600));
        stored.push(RestoredVolume::new(
            format!("old-{i}"),
            Some(now - overdue),
            false,
        ));
    }
    for i in 0..10 {
        stored.push(RestoredVolume::new(format!("never-{i}"), None, false));
    }
    for i in 0..5u32 {
        stored.push(RestoredVolume::new(
            format!("later-{i}"),
            Some(now + HOUR * (i + 1)),
            false,
        ));
    }
    renewer.restore(stored);
    assert_eq!(renewer.managed_count(), 1015);

    let due = |v: &str| renewer.snapshot(v).unwrap().due.unwrap();
    let offset = |t: SystemTime| t.duration_since(now).unwrap();
    // Never-issued volumes come first, then the most overdue.
    let last_never = (0..10).map(|i| due(&format!("never-{i}"))).max().unwrap();
    let first_old = (0..1000).map(|i| due(&format!("old-{i}"))).min().unwrap();
    assert!(last_never < first_old);
    let most_overdue = (0..1000u64)
        .max_by_key(|i| (i * 7919) % (11 * 24 * 3600))
        .unwrap();
    let least_overdue = (0..1000u64)
        .min_by_key(|i| (i * 7919) % (11 * 24 * 3600))
        .unwrap();
    assert!(due(&format!("old-{most_overdue}")) < due(&format!("old-{least_overdue}")));
    // Every overdue volume is inside the window, spread evenly over it.
    let mut buckets = [0usize; 10];
    for v in (0..1000)
        .map(|i| format!("old-{i}"))
        .chain((0..10).map(|i| format!("never-{i}")))
    {
        let off = offset(due(&v));
        assert!(off < spread, "{v} at {off:?}");
        buckets[(off.as_secs_f64() / spread.as_secs_f64() * 10.0) as usize] += 1;
    }
    assert!(
        buckets.iter().all(|&b| (99..=103).contains(&b)),
        "{buckets:?}"
    );
    // Volumes not yet due keep their stored time.
    for i in 0..5u32 {
        assert_eq!(due(&format!("later-{i}")), now + HOUR * (i + 1));
    }

    // Issuance follows the spread: about half after half the window, all of
    // them by its end, and none of the later ones.
    tokio::time::sleep(spread / 2).await;
    let half = issuer.call_count();
    assert!((480..=530).contains(&half), "{half}");
    tokio::time::sleep(spread / 2).await;
    assert_eq!(issuer.call_count(), 1010);
    assert!(
        issuer
            .calls()
            .iter()
            .all(|c| c.reason == IssueReason::Recovery)
    );
    assert!(
        issuer
            .max_in_flight
            .load(std::sync::atomic::Ordering::SeqCst)
            <= 16
    );
    // And each is then scheduled from its new certificate.
    assert!(offset(due("old-0")) > 10 * HOUR);
}

#[tokio::test(start_paused = true)]
async fn restore_honours_disable_auto_renew_and_not_after() {
    let cfg = config();
    let issuer = FakeIssuer::new(cfg.clock, DAY);
    let renewer = start(&issuer, cfg.clone());
    let now = cfg.clock.now();
    renewer.restore([
        // Has a certificate and must not be renewed: never scheduled.
        RestoredVolume::new("one-shot", Some(now - HOUR), true),
        // Never issued: needs its first certificate even with disable-auto-renew.
        RestoredVolume::new("one-shot-pending", None, true),
        // Already expired: reported as such until it is renewed.
        RestoredVolume::new("expired", Some(now - 2 * HOUR), false).with_not_after(now - HOUR),
    ]);
    assert_eq!(renewer.snapshot("one-shot").unwrap().due, None);
    assert!(renewer.snapshot("expired").unwrap().expired);
    assert_eq!(renewer.stats().expired, 1);
    tokio::time::sleep(cfg.recovery_spread).await;
    let mut issued: Vec<String> = issuer
        .calls()
        .iter()
        .map(|c| c.volume.to_string())
        .collect();
    issued.sort();
    assert_eq!(issued, ["expired", "one-shot-pending"]);
    assert!(!renewer.snapshot("expired").unwrap().expired);
    assert_eq!(renewer.snapshot("one-shot-pending").unwrap().due, None);
    tokio::time::sleep(30 * DAY).await;
    assert_eq!(issuer.calls_for("one-shot").len(), 0);
    assert_eq!(issuer.calls_for("one-shot-pending").len(), 1);
}
