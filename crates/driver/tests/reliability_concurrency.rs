//! R4, concurrency: 50 concurrent publishes of one volume with unpublishes
//! interleaved, and 200 Pods churning on one node. No volume is ever
//! reported published while empty, and nothing leaks: no mounts,
//! directories, scheduled renewals or piled-up requests.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cmcsi_testkit::in_mount_namespace;
use cmcsi_testkit::{FakeApi, Script};
use common::{
    Harness, Pod, Rng, is_mounted, mounts_under, publish_at, read_set, requests_for, set_matches,
    unpublish_at,
};

const ATTRS: [(&str, &str); 3] = [
    ("csi.cert-manager.io/issuer-name", "ca-issuer"),
    ("csi.cert-manager.io/dns-names", "c.example.com"),
    ("csi.cert-manager.io/key-algorithm", "ECDSA"),
];

fn store_entries(h: &Harness) -> Vec<String> {
    std::fs::read_dir(h.data_root.join("inmemfs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect()
}

/// What one call saw, in a global order.
#[derive(Debug)]
struct Call {
    publish: bool,
    start: u64,
    end: u64,
    ok: bool,
    /// For a successful publish: whether a full set was readable right after.
    full: Option<bool>,
    read_at: u64,
}

#[test]
fn fifty_concurrent_publishes_of_one_volume_with_unpublishes() {
    in_mount_namespace!(async {
        let mut rng = Rng::from_env("R4a");
        let h = Harness::start_with(
            FakeApi::builder().issuer("ca-issuer", Script::Delay(Duration::from_millis(200))),
            &["--issuance-timeout", "10s"],
        )
        .await;
        let socket = h.socket();
        let volume = "csi-one-volume";
        let target = h.target(volume);
        let pod = Pod::new("ns", "one");
        let clock = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for i in 0..60 {
            let publish = i % 6 != 5; // 50 publishes, 10 unpublishes
            let delay = Duration::from_millis(rng.range(0, 1500));
            let (socket, target, clock) = (socket.clone(), target.clone(), Arc::clone(&clock));
            let ctx = pod.context(&ATTRS);
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let start = clock.fetch_add(1, Ordering::SeqCst);
                let result = if publish {
                    publish_at(&socket, Harness::request(volume, &target, ctx)).await
                } else {
                    unpublish_at(&socket, volume, &target).await
                };
                let end = clock.fetch_add(1, Ordering::SeqCst);
                let full = (publish && result.is_ok()).then(|| {
                    read_set(&target, "key.pem", "crt.pem")
                        .is_some_and(|(k, c)| set_matches(&k, &c).is_ok())
                });
                let read_at = clock.fetch_add(1, Ordering::SeqCst);
                if let Err(st) = &result {
                    assert!(
                        matches!(st.code(), tonic::Code::Aborted),
                        "only 'busy, retry' is acceptable here: {st:?}"
                    );
                }
                Call {
                    publish,
                    start,
                    end,
                    ok: result.is_ok(),
                    full,
                    read_at,
                }
            }));
        }
        let mut calls = Vec::new();
        for t in tasks {
            calls.push(t.await.unwrap());
        }
        let published = calls.iter().filter(|c| c.publish && c.ok).count();
        eprintln!(
            "R4a: {published} publishes and {} unpublishes succeeded",
            calls.iter().filter(|c| !c.publish && c.ok).count()
        );
        assert!(published >= 1);
        // A publish reported OK with no full set behind it is a bug,
        // unless an unpublish ran between the publish and the read.
        for c in calls.iter().filter(|c| c.full == Some(false)) {
            let excused = calls
                .iter()
                .any(|u| !u.publish && u.start < c.read_at && u.end > c.start);
            assert!(excused, "reported published but empty: {c:?}");
        }
        // Settle: one more publish must give a full volume, then an
        // unpublish must leave nothing behind.
        let mut node = h.node().await;
        node.node_publish_volume(Harness::request(volume, &target, pod.context(&ATTRS)))
            .await
            .unwrap();
        let (k, c) = read_set(&target, "key.pem", "crt.pem").unwrap();
        set_matches(&k, &c).unwrap();
        assert_eq!(
            mounts_under(&h.dir.path().join("pods")).len(),
            1,
            "exactly one mount"
        );
        unpublish_at(&socket, volume, &target).await.unwrap();
        assert!(!is_mounted(&target));
        assert!(mounts_under(&h.dir.path().join("pods")).is_empty());
        assert!(store_entries(&h).is_empty(), "{:?}", store_entries(&h));
        let reqs = requests_for(&h.api, volume);
        assert!(
            reqs.len() <= 2,
            "{} requests piled up for one volume",
            reqs.len()
        );
    });
}

#[test]
fn two_hundred_pods_churning_on_one_node() {
    in_mount_namespace!(async {
        let mut rng = Rng::from_env("R4b");
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let metrics = format!("127.0.0.1:{port}");
        let h = Harness::start(&[
            "--issuance-timeout",
            "20s",
            "--metrics-bind-address",
            &metrics,
        ])
        .await;
        let socket = h.socket();
        let sem = Arc::new(tokio::sync::Semaphore::new(20));
        let mut tasks = Vec::new();
        for i in 0..200 {
            let volume = format!("csi-churn-{i:03}");
            let target = h.target(&volume);
            let ctx = Pod::new("churn", &format!("pod-{i:03}")).context(&ATTRS);
            let socket = socket.clone();
            let sem = Arc::clone(&sem);
            // Some Pods are deleted while their volume is still being set
            // up: the kubelet gives up on the publish and unpublishes.
            let give_up = rng
                .chance(15)
                .then(|| Duration::from_millis(rng.range(1, 40)));
            tasks.push(tokio::spawn(async move {
                let _permit = sem.acquire().await.unwrap();
                let req = Harness::request(&volume, &target, ctx);
                match give_up {
                    Some(after) => {
                        let _ = tokio::time::timeout(after, publish_at(&socket, req)).await;
                    }
                    None => loop {
                        match publish_at(&socket, req.clone()).await {
                            Ok(()) => {
                                let (k, c) = read_set(&target, "key.pem", "crt.pem")
                                    .unwrap_or_else(|| panic!("{volume}: published but empty"));
                                set_matches(&k, &c).unwrap();
                                break;
                            }
                            Err(st) if st.code() == tonic::Code::Aborted => {
                                tokio::time::sleep(Duration::from_millis(50)).await
                            }
                            Err(st) => panic!("{volume}: {st:?}"),
                        }
                    },
                }
                loop {
                    match unpublish_at(&socket, &volume, &target).await {
                        Ok(()) => break,
                        Err(st) if st.code() == tonic::Code::Aborted => {
                            tokio::time::sleep(Duration::from_millis(50)).await
                        }
                        Err(st) => panic!("{volume}: unpublish: {st:?}"),
                    }
                }
                assert!(!target.exists(), "{volume}: target left behind");
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        // Abandoned publishes may still finish in the background (each
        // within the issuance timeout; slower on a loaded machine): wait
        // until nothing is left or the timeout has passed, then look for
        // leaks. A volume written after its unpublish stays, and fails below.
        let settle_by = std::time::Instant::now() + Duration::from_secs(25);
        while std::time::Instant::now() < settle_by
            && (!mounts_under(&h.dir.path().join("pods")).is_empty()
                || !store_entries(&h).is_empty())
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            mounts_under(&h.dir.path().join("pods")).is_empty(),
            "{:?}",
            mounts_under(&h.dir.path().join("pods"))
        );
        assert!(store_entries(&h).is_empty(), "{:?}", store_entries(&h));
        let pods_left: Vec<_> = std::fs::read_dir(h.dir.path().join("pods"))
            .unwrap()
            .filter_map(|e| {
                let p = e
                    .unwrap()
                    .path()
                    .join("volumes/kubernetes.io~csi/tls/mount");
                p.exists().then_some(p)
            })
            .collect();
        assert!(pods_left.is_empty(), "targets left: {pods_left:?}");
        let all = h.api.requests("churn");
        assert!(all.len() <= 200, "{} requests for 200 Pods", all.len());
        for i in 0..200 {
            let n = requests_for(&h.api, &format!("csi-churn-{i:03}")).len();
            assert!(n <= 1, "csi-churn-{i:03}: {n} requests");
        }
        // The renewer forgot every volume.
        let body = common::http_get(&format!("127.0.0.1:{port}"), "/metrics");
        let managed = body
            .lines()
            .find(|l| l.starts_with("certmanager_csi_managed_volume_count"))
            .unwrap_or_else(|| panic!("no managed volume gauge in:\n{body}"));
        let value: f64 = managed.rsplit(' ').next().unwrap().parse().unwrap();
        assert_eq!(value, 0.0, "{managed}");
        assert!(h.serving().await);
        assert!(!h.logs().contains("panicked"));
    });
}
