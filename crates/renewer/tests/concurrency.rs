//! The concurrency cap, first issuances ahead of renewals, and forget.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cmcsi_renewer::{IssueReason, Lifetime, RenewerConfig};
use common::*;

/// `n` volumes with identical certificates and no jitter: all due together.
fn manage_together(renewer: &cmcsi_renewer::Renewer, cfg: &RenewerConfig, n: usize) {
    let now = cfg.clock.now();
    for i in 0..n {
        renewer.manage(
            format!("vol-{i}"),
            Lifetime::new(now, now + 3 * HOUR),
            false,
        );
    }
}

#[tokio::test(start_paused = true)]
async fn never_more_than_the_cap_in_flight() {
    let cfg = RenewerConfig {
        max_concurrent: 4,
        jitter_fraction: 0.0,
        ..config()
    };
    let issuer = FakeIssuer::gated(cfg.clock, 3 * HOUR);
    let renewer = start(&issuer, cfg.clone());
    manage_together(&renewer, &cfg, 40);
    tokio::time::sleep(2 * HOUR).await;
    settle().await;
    assert_eq!(issuer.in_flight(), 4);
    let stats = renewer.stats();
    assert_eq!((stats.in_flight, stats.queued), (4, 36));
    // Let them through a few at a time.
    let mut finished = 0;
    while finished < 40 {
        issuer.open(3);
        finished += 3;
        settle().await;
        assert!(issuer.in_flight() <= 4);
    }
    assert_eq!(issuer.call_count(), 40);
    assert_eq!(issuer.max_in_flight.load(Ordering::SeqCst), 4);
    let stats = renewer.stats();
    assert_eq!((stats.in_flight, stats.queued, stats.managed), (0, 0, 40));
}

#[tokio::test(start_paused = true)]
async fn first_issuances_go_ahead_of_queued_renewals() {
    let cfg = RenewerConfig {
        max_concurrent: 2,
        jitter_fraction: 0.0,
        ..config()
    };
    let issuer = FakeIssuer::gated(cfg.clock, 3 * HOUR);
    let renewer = start(&issuer, cfg.clone());
    manage_together(&renewer, &cfg, 6);
    tokio::time::sleep(2 * HOUR).await;
    settle().await;
    assert_eq!(issuer.call_count(), 2);
    assert_eq!(renewer.stats().queued, 4);

    // Two Pods start while four renewals are queued.
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut pods = Vec::new();
    for pod in ["pod-a", "pod-b"] {
        let (renewer, order) = (renewer.clone(), Arc::clone(&order));
        let (release, wait) = tokio::sync::oneshot::channel::<()>();
        pods.push((
            release,
            tokio::spawn(async move {
                let permit = renewer.acquire_first_issuance().await;
                order.lock().unwrap().push(pod);
                wait.await.unwrap();
                drop(permit);
            }),
        ));
        settle().await;
    }
    assert_eq!(renewer.stats().first_issuances_waiting, 2);

    // Each finished renewal hands its slot to a Pod, not to a queued renewal.
    issuer.open(1);
    settle().await;
    assert_eq!(*order.lock().unwrap(), ["pod-a"]);
    assert_eq!(issuer.call_count(), 2);
    issuer.open(1);
    settle().await;
    assert_eq!(*order.lock().unwrap(), ["pod-a", "pod-b"]);
    assert_eq!(issuer.call_count(), 2, "a renewal started ahead of a Pod");
    assert_eq!(renewer.stats().queued, 4);

    // Pods done: renewals resume.
    for (release, task) in pods {
        release.send(()).unwrap();
        task.await.unwrap();
    }
    settle().await;
    assert_eq!(issuer.call_count(), 4);
    issuer.open(4);
    settle().await;
    assert_eq!(issuer.call_count(), 6);
}

#[tokio::test(start_paused = true)]
async fn forget_during_an_in_flight_issuance_cancels_it() {
    let cfg = RenewerConfig {
        max_concurrent: 1,
        jitter_fraction: 0.0,
        ..config()
    };
    let issuer = FakeIssuer::gated(cfg.clock, 3 * HOUR);
    let renewer = start(&issuer, cfg.clone());
    let mut events = renewer.subscribe();
    manage_together(&renewer, &cfg, 2);
    tokio::time::sleep(2 * HOUR).await;
    settle().await;
    assert_eq!(issuer.call_count(), 1);
    let running = issuer.calls()[0].volume.clone();
    let other = if running.as_str() == "vol-0" {
        "vol-1"
    } else {
        "vol-0"
    };
    assert!(renewer.snapshot(running.as_str()).unwrap().in_flight);

    assert!(renewer.forget(running.as_str()));
    assert!(!renewer.forget(running.as_str()));
    assert_eq!(renewer.snapshot(running.as_str()), None);
    settle().await;
    // Its future was dropped mid-way, and its slot went to the other volume.
    assert_eq!(issuer.dropped.load(Ordering::SeqCst), 1);
    assert_eq!(issuer.in_flight(), 1);
    assert_eq!(issuer.calls()[1].volume.as_str(), other);
    // Opening the gate finishes only the other volume; the forgotten one is
    // never issued again and produces no event.
    issuer.open(10);
    let event = next_event(&mut events).await;
    assert_eq!(event.volume.as_str(), other);
    tokio::time::sleep(30 * DAY).await;
    assert!(issuer.calls_for(running.as_str()).len() == 1);
    while let Ok(event) = events.try_recv() {
        assert_ne!(event.volume, running);
    }
    assert_eq!(renewer.managed_count(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_volume_forgotten_while_queued_is_never_issued() {
    let cfg = RenewerConfig {
        max_concurrent: 1,
        jitter_fraction: 0.0,
        ..config()
    };
    let issuer = FakeIssuer::gated(cfg.clock, 3 * HOUR);
    let renewer = start(&issuer, cfg.clone());
    manage_together(&renewer, &cfg, 3);
    tokio::time::sleep(2 * HOUR).await;
    settle().await;
    assert_eq!(renewer.stats().queued, 2);
    let running = issuer.calls()[0].volume.clone();
    let queued: Vec<String> = (0..3)
        .map(|i| format!("vol-{i}"))
        .filter(|v| v != running.as_str())
        .collect();
    assert!(renewer.forget(&queued[0]));
    issuer.open(10);
    settle().await;
    assert!(issuer.calls_for(&queued[0]).is_empty());
    assert_eq!(issuer.calls_for(&queued[1]).len(), 1);
    assert_eq!(renewer.stats().queued, 0);
}

#[tokio::test(start_paused = true)]
async fn a_volume_with_no_certificate_goes_ahead_of_renewals() {
    let cfg = RenewerConfig {
        max_concurrent: 1,
        jitter_fraction: 0.0,
        ..config()
    };
    let issuer = FakeIssuer::gated(cfg.clock, 3 * HOUR);
    let renewer = start(&issuer, cfg.clone());
    manage_together(&renewer, &cfg, 3);
    tokio::time::sleep(2 * HOUR).await;
    settle().await;
    // Two renewals queued; then a background first issuance is requested.
    renewer.manage_pending("new-pod", false);
    settle().await;
    issuer.open(1);
    settle().await;
    let calls = issuer.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].volume.as_str(), "new-pod");
    assert_eq!(calls[1].reason, IssueReason::Requested);
    issuer.open(10);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(issuer.call_count(), 4);
}

/// On a multi-threaded runtime, with forgets racing the issuances: no
/// deadlock, no leaked slot, every remaining volume issued exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_forgets_on_a_multi_threaded_runtime_leave_a_consistent_state() {
    let cfg = RenewerConfig {
        max_concurrent: 3,
        seed: Some(9),
        ..RenewerConfig::default()
    };
    let issuer = FakeIssuer::new(cfg.clock, DAY);
    let renewer = start(&issuer, cfg);
    let mut events = renewer.subscribe();
    for i in 0..300 {
        renewer.manage_pending(format!("vol-{i}"), false);
    }
    let forgetter = {
        let renewer = renewer.clone();
        tokio::spawn(async move {
            for i in (0..300).step_by(3) {
                renewer.forget(&format!("vol-{i}"));
                tokio::task::yield_now().await;
            }
        })
    };
    forgetter.await.unwrap();
    let kept: Vec<String> = (0..300)
        .filter(|i| i % 3 != 0)
        .map(|i| format!("vol-{i}"))
        .collect();
    let wait_all = async {
        let mut done = std::collections::HashSet::new();
        while done.len() < kept.len() {
            // Forgotten volumes may have finished before their forget.
            let event = events.recv().await.unwrap();
            if kept.iter().any(|k| k.as_str() == event.volume.as_str()) {
                done.insert(event.volume);
            }
        }
    };
    // Generous: only here so a deadlock fails instead of hanging.
    tokio::time::timeout(Duration::from_secs(120), wait_all)
        .await
        .unwrap();
    for v in &kept {
        assert_eq!(issuer.calls_for(v).len(), 1, "{v}");
    }
    for i in (0..300).step_by(3) {
        assert!(issuer.calls_for(&format!("vol-{i}")).len() <= 1);
        assert_eq!(renewer.snapshot(&format!("vol-{i}")), None);
    }
    assert_eq!(renewer.managed_count(), 200);
    let stats = renewer.stats();
    assert_eq!((stats.in_flight, stats.queued), (0, 0));
    // Every slot came back.
    let permits = [
        renewer.acquire_first_issuance().await,
        renewer.acquire_first_issuance().await,
        renewer.acquire_first_issuance().await,
    ];
    assert!(issuer.max_in_flight.load(Ordering::SeqCst) <= 3);
    drop(permits);
}
