//! Request limits against the real binary and the fake API: a hostile
//! volume context is refused before anything is stored, nested file names
//! do not stall the health RPCs, and cancelled publishes of large RSA keys
//! leave no more generations running than `--max-concurrent-large-rsa`,
//! and unusable volume directories are set aside and removed after
//! `--quarantine-grace` unless something of them is mounted.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use cmcsi_proto::v1 as csi;
use cmcsi_testkit::in_mount_namespace;
use common::{Harness, Pod, free_port_address, scrape};
use tonic::Code;

const ISSUER: (&str, &str) = ("csi.cert-manager.io/issuer-name", "ca-issuer");
const DNS: (&str, &str) = ("csi.cert-manager.io/dns-names", "h.example.com");

/// Entries of the data root's volume directory (the tmpfs).
fn volumes_in(data_root: &Path) -> Vec<String> {
    match std::fs::read_dir(data_root.join("inmemfs")) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn oversized_volume_context_is_refused_and_nothing_is_stored() {
    in_mount_namespace!(async {
        let h = Harness::start(&[]).await;
        let pod = Pod::new("ns", "big");
        // 1.6 MB in one annotation-like key: far past the 256 KiB default.
        let huge = "x".repeat(1_600_000);
        let err = h
            .publish(
                "csi-big",
                &pod,
                &[ISSUER, DNS, ("example.com/blob", huge.as_str())],
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert!(
            err.message().contains("--max-volume-context-bytes")
                && err.message().contains("at most 262144"),
            "{}",
            err.message()
        );
        assert!(
            volumes_in(&h.data_root).is_empty(),
            "{:?}",
            volumes_in(&h.data_root)
        );
        assert!(
            h.api.requests("ns").is_empty(),
            "no CertificateRequest created"
        );
        // A normal publish still works afterwards.
        h.publish("csi-small", &pod, &[ISSUER, DNS]).await.unwrap();
    });
}

#[test]
fn nested_file_names_are_bounded_and_probe_stays_fast() {
    in_mount_namespace!(async {
        let h = Harness::start(&[]).await;
        let pod = Pod::new("ns", "deep");
        // Past the depth limit: refused, naming the flag.
        let too_deep = vec!["d"; 2000].join("/");
        let err = h
            .publish(
                "csi-too-deep",
                &pod,
                &[
                    ISSUER,
                    DNS,
                    ("csi.cert-manager.io/certificate-file", &too_deep),
                ],
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert!(
            err.message().contains("--max-file-name-depth"),
            "{}",
            err.message()
        );

        // Two publishes with the deepest and longest names allowed, while
        // Probe is timed.
        let component = "n".repeat(120);
        let deepest = |leaf: &str| {
            let mut parts = vec![component.as_str(); 7];
            parts.push(leaf);
            parts.join("/")
        };
        let (crt, key, ca) = (deepest("c.pem"), deepest("k.pem"), deepest("a.pem"));
        let socket = h.socket();
        let probe = tokio::spawn(async move {
            let mut identity = cmcsi_testkit::identity_client(&socket).await.unwrap();
            let mut worst = Duration::ZERO;
            let until = Instant::now() + Duration::from_secs(4);
            while Instant::now() < until {
                let t = Instant::now();
                identity.probe(csi::ProbeRequest {}).await.unwrap();
                worst = worst.max(t.elapsed());
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            worst
        });
        let attrs = [
            ISSUER,
            DNS,
            ("csi.cert-manager.io/certificate-file", crt.as_str()),
            ("csi.cert-manager.io/privatekey-file", key.as_str()),
            ("csi.cert-manager.io/ca-file", ca.as_str()),
        ];
        let pod2 = Pod::new("ns", "deep2");
        let (a, b) = tokio::join!(
            h.publish("csi-deep-1", &pod, &attrs),
            h.publish("csi-deep-2", &pod2, &attrs)
        );
        let target = a.unwrap();
        b.unwrap();
        assert!(!common::read(&target, &crt).is_empty());
        let worst = probe.await.unwrap();
        assert!(
            worst < Duration::from_millis(200),
            "Probe p100 {worst:?} during nested publishes"
        );
    });
}

#[test]
fn cancelled_large_rsa_publishes_leave_at_most_the_limit_running() {
    in_mount_namespace!(async {
        let addr = free_port_address();
        let h = Harness::start(&[
            "--metrics-bind-address",
            &addr,
            "--max-concurrent-large-rsa",
            "1",
        ])
        .await;
        let socket = h.socket();
        let mut publishes = Vec::new();
        for i in 0..20 {
            let vol = format!("csi-rsa-{i}");
            let pod = Pod::new("ns", &format!("rsa-{i}"));
            let req = Harness::request(
                &vol,
                &h.target(&vol),
                pod.context(&[ISSUER, DNS, ("csi.cert-manager.io/key-size", "8192")]),
            );
            let socket = socket.clone();
            publishes.push(tokio::spawn(async move {
                // The client gives up, as the kubelet does at its deadline.
                let _ = tokio::time::timeout(
                    Duration::from_millis(500),
                    common::publish_at(&socket, req),
                )
                .await;
            }));
        }
        for p in publishes {
            p.await.unwrap();
        }
        // Sample the gauges for a while after every client went away: the
        // cap holds, and at most that one generation is still running.
        let until = Instant::now() + Duration::from_secs(5);
        let mut seen = 0.0_f64;
        while Instant::now() < until {
            let large = scrape(&addr, "certmanager_csi_large_rsa_generations_running").unwrap();
            let all = scrape(&addr, "certmanager_csi_key_generations_running").unwrap();
            assert!(large <= 1.0, "{large} large RSA generations running");
            assert!(all <= 1.0, "{all} inline generations running");
            seen = seen.max(large);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The gauge is read, not always zero: the first generation (seconds
        // for RSA-8192) was seen running, or had finished already.
        assert!(seen <= 1.0);
        assert!(h.serving().await);
    });
}

#[test]
fn set_aside_volume_older_than_the_grace_period_is_removed_after_a_restart() {
    in_mount_namespace!(async {
        let addr = free_port_address();
        let mut h =
            Harness::start(&["--metrics-bind-address", &addr, "--quarantine-grace", "1s"]).await;
        // A volume directory whose metadata cannot be read, with a key beside it.
        let bad = h.volume_dir("csi-broken");
        std::fs::create_dir_all(&bad).unwrap();
        std::fs::write(bad.join("metadata.json"), b"{ not json").unwrap();
        std::fs::write(bad.join("pending-request.json"), b"secret key material").unwrap();
        let quarantine = h.data_root.join("inmemfs/.quarantine");

        // The restart sets it aside; it is younger than the grace period.
        h.restart_driver().await;
        assert!(!bad.exists());
        let entries = || -> usize {
            std::fs::read_dir(&quarantine)
                .map(|d| d.count())
                .unwrap_or(0)
        };
        assert_eq!(entries(), 1, "set aside, not yet removed");

        // Past the grace period, the next start's sweep removes it.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        h.restart_driver().await;
        common::eventually(
            "the set-aside volume removed",
            Duration::from_secs(10),
            || entries() == 0,
        )
        .await;
        common::eventually("the removal counted", Duration::from_secs(10), || {
            scrape(&addr, "certmanager_csi_quarantined_volumes_removed_total") == Some(1.0)
        })
        .await;
        assert!(h.serving().await);
    });
}

#[test]
fn unreadable_unmounted_volumes_are_swept_and_mounted_or_healthy_ones_stay() {
    in_mount_namespace!(async {
        let addr = free_port_address();
        let h = Harness::start(&[
            "--metrics-bind-address",
            &addr,
            "--quarantine-grace",
            "2s",
            "--abandoned-volume-sweep-interval",
            "500ms",
        ])
        .await;
        let healthy = h
            .publish("csi-healthy", &Pod::new("ns", "healthy"), &[ISSUER, DNS])
            .await
            .unwrap();
        // Issued and mounted, then its metadata is damaged: a Pod still has
        // its files, so it must stay.
        let mounted = h
            .publish(
                "csi-mounted-bad",
                &Pod::new("ns", "mounted"),
                &[ISSUER, DNS],
            )
            .await
            .unwrap();
        std::fs::write(
            h.volume_dir("csi-mounted-bad").join("metadata.json"),
            b"{ not json",
        )
        .unwrap();
        // Not mounted, nobody holds their lock, metadata unreadable in each
        // way: corrupt, over the 1 MiB read limit, missing. Each has a key.
        let oversized = vec![b' '; 1_100_000];
        let unreadable: [(&str, Option<&[u8]>); 3] = [
            ("csi-corrupt", Some(b"{ not json")),
            ("csi-oversized", Some(&oversized)),
            ("csi-no-metadata", None),
        ];
        for (id, meta) in unreadable {
            let dir = h.volume_dir(id);
            std::fs::create_dir_all(dir.join("data")).unwrap();
            if let Some(meta) = meta {
                std::fs::write(dir.join("metadata.json"), meta).unwrap();
            }
            std::fs::write(dir.join("pending-request.json"), b"secret key material").unwrap();
        }

        // The sweep sets them aside, and past the grace period removes them.
        common::eventually(
            "the unreadable volumes set aside",
            Duration::from_secs(10),
            || unreadable.iter().all(|(id, _)| !h.volume_dir(id).exists()),
        )
        .await;
        let quarantine = h.data_root.join("inmemfs/.quarantine");
        common::eventually(
            "the unreadable volumes removed after the grace period",
            Duration::from_secs(15),
            || {
                scrape(&addr, "certmanager_csi_quarantined_volumes_removed_total") == Some(3.0)
                    && std::fs::read_dir(&quarantine).is_ok_and(|d| d.count() == 0)
            },
        )
        .await;

        // Several sweeps later the mounted and the healthy volume are still
        // there, mounted, with their files.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        for (id, target) in [("csi-mounted-bad", &mounted), ("csi-healthy", &healthy)] {
            assert!(h.volume_dir(id).join("data").is_dir(), "{id} was removed");
            assert!(common::is_mounted(target), "{id} is no longer mounted");
            assert!(
                !common::read(target, "crt.pem").is_empty(),
                "{id} lost its certificate"
            );
        }
        assert_eq!(
            scrape(&addr, "certmanager_csi_quarantined_volumes_removed_total"),
            Some(3.0)
        );
        assert!(
            h.logs()
                .contains("the metadata of a mounted volume cannot be read"),
            "the kept volume is reported"
        );
        assert!(!h.logs().contains("secret key material"));

        // A retried publish of a swept volume starts afresh and succeeds.
        h.publish("csi-corrupt", &Pod::new("ns", "corrupt"), &[ISSUER, DNS])
            .await
            .unwrap();
        assert!(h.serving().await);
    });
}
