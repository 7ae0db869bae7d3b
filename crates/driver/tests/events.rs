//! Kubernetes Events on the Pod (recorded by the fake API), the process,
//! build-info and client series of a scrape, and logs without escape codes.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use cmcsi_testkit::{Script, in_mount_namespace};
use common::*;
use serde_json::Value;

const ISSUER: (&str, &str) = ("csi.cert-manager.io/issuer-name", "ca-issuer");

/// The Events on `pod` with this reason.
fn with_reason(h: &Harness, pod: &Pod, reason: &str) -> Vec<Value> {
    h.api
        .events_regarding(&pod.namespace, &pod.name)
        .into_iter()
        .filter(|e| e["reason"] == reason)
        .collect()
}

/// Asserts the Event is about `pod` (name, namespace, uid), names its
/// CertificateRequest in `related` and in its note, and holds no secret.
fn check_event(e: &Value, pod: &Pod) -> String {
    assert_eq!(e["regarding"]["kind"], "Pod", "{e}");
    assert_eq!(e["regarding"]["uid"], pod.uid.as_str(), "{e}");
    assert_eq!(e["related"]["kind"], "CertificateRequest", "{e}");
    let name = e["related"]["name"].as_str().unwrap().to_string();
    let note = e["note"].as_str().unwrap();
    assert!(note.contains(&name), "the note names the request: {note}");
    assert!(
        !note.contains("PRIVATE KEY") && !note.contains(TOKEN),
        "{note}"
    );
    name
}

#[test]
fn denied_first_issuance_gives_one_event_then_renewed() {
    in_mount_namespace!(async {
        let addr = free_port_address();
        let h = Harness::start(&["--metrics-bind-address", &addr]).await;
        h.api.set_issuer(
            "strict",
            Script::Deny {
                reason: "PolicyDenied".into(),
                message: "no policy matches".into(),
            },
        );
        let pod = Pod::new("ns", "denied");
        let attrs = [
            ("csi.cert-manager.io/issuer-name", "strict"),
            ("csi.cert-manager.io/dns-names", "d.example.com"),
        ];
        // The kubelet retries a failed publish: a burst of 20 attempts.
        for _ in 0..20 {
            h.publish("csi-denied", &pod, &attrs).await.unwrap_err();
        }
        eventually("an IssuanceFailed Event", Duration::from_secs(10), || {
            !with_reason(&h, &pod, "IssuanceFailed").is_empty()
        })
        .await;
        // Give the background sender time to send anything more it would.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let failed = with_reason(&h, &pod, "IssuanceFailed");
        assert_eq!(
            failed.len(),
            1,
            "one Event for 20 denied attempts: {failed:?}"
        );
        let e = &failed[0];
        assert_eq!(e["type"], "Warning");
        check_event(e, &pod);
        let note = e["note"].as_str().unwrap();
        assert!(
            note.contains("denied") && note.contains("PolicyDenied"),
            "{note}"
        );
        let series = e["series"]["count"].as_i64().unwrap_or(1);
        assert!(series <= 2, "{e}");
        assert!(
            h.api.event_writes() <= 2,
            "at most two Event writes for 20 attempts"
        );

        // The issuer lets it through: one CertificateRenewed Event.
        h.api.set_issuer("strict", Script::Sign);
        h.publish("csi-denied", &pod, &attrs).await.unwrap();
        eventually(
            "a CertificateRenewed Event",
            Duration::from_secs(10),
            || !with_reason(&h, &pod, "CertificateRenewed").is_empty(),
        )
        .await;
        let renewed = with_reason(&h, &pod, "CertificateRenewed");
        assert_eq!(renewed[0]["type"], "Normal");
        check_event(&renewed[0], &pod);

        // A scrape after issuance has the process, build and client series.
        let body = http_get(&addr, "/metrics");
        for needle in [
            "process_resident_memory_bytes ",
            "process_cpu_seconds_total ",
            "process_open_fds ",
            "process_max_fds ",
            "process_start_time_seconds ",
            "process_virtual_memory_bytes ",
            "certmanager_csi_build_info{version=\"",
            // Dropped Events (none here): one series, no namespace label.
            "certmanager_csi_events_dropped_total 0",
            "rest_client_requests_total{verb=\"POST\",code=\"201\"",
            "rest_client_requests_total{verb=\"GET\",code=\"200\"",
            "rest_client_request_duration_seconds_bucket{",
        ] {
            assert!(body.contains(needle), "{needle} missing from:\n{body}");
        }

        // Text logs written to a file carry no escape codes, and the
        // failure lines name the Pod, its namespace and the request.
        let logs = h.logs();
        assert!(!logs.is_empty());
        assert!(!logs.contains('\u{1b}'), "ANSI escape in the log file");
        let failure = logs
            .lines()
            .find(|l| l.contains("outcome=\"failed\""))
            .expect("a failure log line");
        for needle in ["pod=\"denied\"", "namespace=\"ns\"", "request=\"ns/"] {
            assert!(failure.contains(needle), "{needle} missing: {failure}");
        }
    });
}

#[test]
fn failing_renewal_gives_one_event_then_renewed() {
    in_mount_namespace!(async {
        let h = Harness::start(&[
            "--log-format",
            "json",
            "--renewal-backoff-initial",
            "100ms",
            "--renewal-backoff-max",
            "200ms",
            // The floor between two issuances of a volume (default 10s) at
            // its smallest, so 20 retries fit in the test.
            "--min-issuance-interval",
            "1s",
        ])
        .await;
        let pod = Pod::new("ns", "renewing");
        h.publish(
            "csi-renewing",
            &pod,
            &[
                ISSUER,
                ("csi.cert-manager.io/dns-names", "r.example.com"),
                ("csi.cert-manager.io/duration", "1h"),
                ("csi.cert-manager.io/renew-before", "59m57s"),
            ],
        )
        .await
        .unwrap();
        assert!(with_reason(&h, &pod, "RenewalFailing").is_empty());
        h.api.set_issuer("ca-issuer", Script::fail());
        let failures = || {
            json_events(&h.logs(), 0)
                .iter()
                .filter(|e| e["outcome"] == "failed")
                .count()
        };
        eventually("20 failed renewals", Duration::from_secs(60), || {
            failures() >= 20
        })
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let failing = with_reason(&h, &pod, "RenewalFailing");
        assert_eq!(failing.len(), 1, "{failing:?}");
        assert_eq!(failing[0]["type"], "Warning");
        check_event(&failing[0], &pod);
        assert!(failing[0]["series"]["count"].as_i64().unwrap_or(1) <= 2);
        let writes = h.api.event_writes();
        assert!(writes <= 2, "{writes} Event writes for 20 failed renewals");

        // Every failure line names the Pod, the namespace and the request.
        for e in json_events(&h.logs(), 0)
            .iter()
            .filter(|e| e["outcome"] == "failed")
        {
            assert_eq!(e["pod"], "renewing", "{e}");
            assert_eq!(e["namespace"], "ns", "{e}");
            assert!(e["request"].as_str().unwrap().starts_with("ns/"), "{e}");
        }

        h.api.set_issuer("ca-issuer", Script::Sign);
        eventually(
            "a CertificateRenewed Event",
            Duration::from_secs(20),
            || !with_reason(&h, &pod, "CertificateRenewed").is_empty(),
        )
        .await;
        let renewed = with_reason(&h, &pod, "CertificateRenewed");
        assert_eq!(renewed.len(), 1, "{renewed:?}");
        check_event(&renewed[0], &pod);
    });
}

#[test]
fn events_can_be_turned_off() {
    in_mount_namespace!(async {
        let h = Harness::start(&["--events=false"]).await;
        h.api.set_issuer("strict", Script::deny());
        let pod = Pod::new("ns", "quiet");
        h.publish(
            "csi-quiet",
            &pod,
            &[
                ("csi.cert-manager.io/issuer-name", "strict"),
                ("csi.cert-manager.io/dns-names", "q.example.com"),
            ],
        )
        .await
        .unwrap_err();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(h.api.events().is_empty(), "{:?}", h.api.events());
    });
}
