//! R2, faults: the Kubernetes API down for longer than a renewal window,
//! 5xx and 429 answers, dropped watches and expired watch history, a slow
//! signer. Old certificates stay, renewals resume with backoff, and publish
//! answers are retryable codes with messages that say what is happening.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use cmcsi_keygen::ChainSummary;
use cmcsi_testkit::in_mount_namespace;
use cmcsi_testkit::{FakeApi, Fault, Script, Verb};
use common::{
    Harness, Pod, eventually, is_mounted, json_events, read_set, requests_for, serial, set_matches,
};
use tonic::Code;

const ISSUER: (&str, &str) = ("csi.cert-manager.io/issuer-name", "ca-issuer");

fn assert_whole(target: &std::path::Path) {
    let (k, c) = read_set(target, "key.pem", "crt.pem").expect("a file set");
    set_matches(&k, &c).unwrap();
}

/// Retries a publish the way the kubelet does, until it succeeds.
async fn publish_until_ok(h: &Harness, volume: &str, pod: &Pod, attrs: &[(&str, &str)]) {
    for _ in 0..60 {
        if h.publish(volume, pod, attrs).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("{volume} was never published");
}

#[test]
fn api_down_longer_than_a_renewal_window() {
    in_mount_namespace!(async {
        let h = Harness::start(&[
            "--log-format",
            "json",
            "--issuance-timeout",
            "2s",
            "--renewal-backoff-initial",
            "1s",
            "--renewal-backoff-max",
            "4s",
        ])
        .await;
        let pod = Pod::new("ns", "outage");
        let attrs = [
            ISSUER,
            ("csi.cert-manager.io/dns-names", "o.example.com"),
            ("csi.cert-manager.io/duration", "4s"),
            ("csi.cert-manager.io/key-algorithm", "ECDSA"),
        ];
        let target = h.publish("csi-outage", &pod, &attrs).await.unwrap();
        let before = read_set(&target, "key.pem", "crt.pem").unwrap();
        let not_after = ChainSummary::from_pem(&before.1).unwrap().not_after;

        h.api.go_down().await.unwrap();
        // Down until well past the certificate's renewal time and expiry.
        let log_at = h.logs().len();
        let other = h
            .publish(
                "csi-during",
                &Pod::new("ns", "during"),
                &[ISSUER, ("csi.cert-manager.io/dns-names", "d.example.com")],
            )
            .await
            .unwrap_err();
        assert!(
            matches!(other.code(), Code::Unavailable | Code::DeadlineExceeded),
            "{other:?}"
        );
        assert!(
            other.message().contains("Kubernetes API") && other.message().contains("retried"),
            "the message says what is happening: {}",
            other.message()
        );
        eventually(
            "three failed renewal attempts",
            Duration::from_secs(60),
            || {
                json_events(&h.logs(), log_at)
                    .iter()
                    .filter(|e| e["volume"] == "csi-outage" && e["attempts"].as_u64().is_some())
                    .count()
                    >= 3
            },
        )
        .await;
        assert!(
            std::time::SystemTime::now() > not_after,
            "the outage outlived the certificate"
        );
        // The old set stays, whole and mounted.
        assert!(is_mounted(&target));
        assert_eq!(read_set(&target, "key.pem", "crt.pem").unwrap(), before);

        // Backoff: attempts count up and the delay grows to the cap.
        let failures: Vec<(u64, u64)> = json_events(&h.logs(), log_at)
            .iter()
            .filter(|e| e["volume"] == "csi-outage" && e["attempts"].as_u64().is_some())
            .map(|e| {
                (
                    e["attempts"].as_u64().unwrap(),
                    e["retry_in_secs"].as_u64().unwrap(),
                )
            })
            .collect();
        for (i, (attempts, _)) in failures.iter().enumerate() {
            assert_eq!(*attempts, i as u64 + 1, "{failures:?}");
        }
        assert!(
            failures[0].1 <= 1,
            "first retry after the initial backoff: {failures:?}"
        );
        assert!(failures[2].1 >= 2, "the delay grows: {failures:?}");
        assert!(
            failures.iter().all(|f| f.1 <= 6),
            "capped (with jitter): {failures:?}"
        );

        h.api.come_up().await.unwrap();
        let old = ChainSummary::from_pem(&before.1).unwrap().serial_hex;
        eventually("renewal after the outage", Duration::from_secs(60), || {
            serial(&target) != old
        })
        .await;
        assert_whole(&target);
        assert!(is_mounted(&target));
        // And the volume that could not be published works now.
        publish_until_ok(
            &h,
            "csi-during",
            &Pod::new("ns", "during"),
            &[ISSUER, ("csi.cert-manager.io/dns-names", "d.example.com")],
        )
        .await;
        assert_whole(&h.target("csi-during"));
    });
}

#[test]
fn server_errors_and_throttling_on_create() {
    in_mount_namespace!(async {
        let h = Harness::start(&["--issuance-timeout", "5s"]).await;
        let pod = Pod::new("ns", "faults");
        let attrs = [ISSUER, ("csi.cert-manager.io/dns-names", "f.example.com")];

        for (i, fault) in [
            Fault::Status(500),
            Fault::Status(503),
            Fault::TooManyRequests {
                retry_after_secs: 1,
            },
        ]
        .into_iter()
        .enumerate()
        {
            let volume = format!("csi-fault-{i}");
            // Every create fails for a while: the publish fails with a
            // retryable code and says why.
            h.api.fail_next_verb(1000, Verb::Create, fault.clone());
            let st = h.publish(&volume, &pod, &attrs).await.unwrap_err();
            assert!(
                matches!(st.code(), Code::Unavailable | Code::DeadlineExceeded),
                "{fault:?}: {st:?}"
            );
            assert!(
                st.message().contains("Kubernetes API"),
                "{fault:?}: {}",
                st.message()
            );
            assert!(!is_mounted(&h.target(&volume)));
            h.api.clear_faults();
            // A couple of failures only: the next publish gets through.
            h.api.fail_next_verb(2, Verb::Create, fault.clone());
            publish_until_ok(&h, &volume, &pod, &attrs).await;
            assert_whole(&h.target(&volume));
            assert_eq!(
                requests_for(&h.api, &volume).len(),
                1,
                "{fault:?}: one request for the volume"
            );
        }
        // Faults on every verb (list, watch, get too).
        h.api.fail_next(20, Fault::Status(502));
        publish_until_ok(&h, "csi-fault-any", &pod, &attrs).await;
        assert_whole(&h.target("csi-fault-any"));
        assert!(h.serving().await);
    });
}

#[test]
fn dropped_watches_and_expired_history() {
    in_mount_namespace!(async {
        let h = Harness::start_with(
            FakeApi::builder().issuer("ca-issuer", Script::Delay(Duration::from_millis(1500))),
            &["--issuance-timeout", "20s"],
        )
        .await;
        let pod = Pod::new("ns", "watch");
        let attrs = [ISSUER, ("csi.cert-manager.io/dns-names", "w.example.com")];
        for round in 0..3 {
            let volume = format!("csi-watch-{round}");
            let req = Harness::request(&volume, &h.target(&volume), pod.context(&attrs));
            let mut node = h.node().await;
            let publish = tokio::spawn(async move { node.node_publish_volume(req).await });
            // While the driver waits for the signer, its watch is cut, and
            // the history it would resume from is gone.
            h.api
                .wait_for_request("ns", Duration::from_secs(20), |r| {
                    r["metadata"]["annotations"]["csi.cert-manager.io/volume-id"] == volume.as_str()
                })
                .await
                .unwrap();
            h.api.expire_watch_history();
            assert!(h.api.drop_watches() >= 1);
            tokio::time::sleep(Duration::from_millis(300)).await;
            h.api.drop_watches();
            publish.await.unwrap().unwrap();
            assert_whole(&h.target(&volume));
            assert_eq!(requests_for(&h.api, &volume).len(), 1);
        }
    });
}

#[test]
fn slow_signer_is_waited_for_and_resumed() {
    in_mount_namespace!(async {
        let h = Harness::start_with(
            FakeApi::builder().issuer("slow", Script::Delay(Duration::from_secs(6))),
            &["--issuance-timeout", "2s"],
        )
        .await;
        let pod = Pod::new("ns", "slow");
        let attrs = [
            ("csi.cert-manager.io/issuer-name", "slow"),
            ("csi.cert-manager.io/dns-names", "s.example.com"),
        ];
        let st = h.publish("csi-slow", &pod, &attrs).await.unwrap_err();
        assert_eq!(st.code(), Code::DeadlineExceeded, "{st:?}");
        let name = requests_for(&h.api, "csi-slow")[0]["metadata"]["name"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            st.message().contains(&name) && st.message().contains("waiting"),
            "names the request it waits for: {}",
            st.message()
        );
        // The kubelet retries; each retry waits on the same request.
        publish_until_ok(&h, "csi-slow", &pod, &attrs).await;
        assert_whole(&h.target("csi-slow"));
        let reqs = requests_for(&h.api, "csi-slow");
        assert_eq!(reqs.len(), 1, "no second request for a slow signer");
        assert_eq!(reqs[0]["metadata"]["name"], name.as_str());
        assert_eq!(h.api.counts().verb(Verb::Create), 1);
    });
}
