//! The Go driver's users' drop-in: the driver started with the container args
//! the Go chart (v0.16) renders, Pod readiness gates over the fake API's
//! Pods, `${POD_IP}` re-read at each renewal, and `--go-defaults`.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use cmcsi_keygen::ChainSummary;
use cmcsi_testkit::in_mount_namespace;
use common::{Harness, Pod, eventually, read, requests_for};

const ISSUER: (&str, &str) = ("csi.cert-manager.io/issuer-name", "ca-issuer");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The Go chart's container args with every option set (two gates and all
/// four backoff flags). `--endpoint` and `--data-root` are the harness's
/// (the test's own directories), the metrics port a free one.
fn go_chart_args(metrics_port: u16) -> Vec<String> {
    [
        "--log-level=5",
        "--driver-name=csi.cert-manager.io",
        "--node-id=node-a",
        "--use-token-request=false",
        "--continue-on-not-ready=true",
        "--kube-api-qps=20",
        "--kube-api-burst=40",
        "--pod-readiness-gate=pod-ip:any",
        "--pod-readiness-gate=pod-condition:Ready",
        "--gate-backoff-duration=1s",
        "--gate-backoff-factor=2",
        "--gate-backoff-jitter=0.5",
        "--gate-backoff-cap=2s",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("--metrics-bind-address=:{metrics_port}")])
    .collect()
}

fn cert(target: &std::path::Path) -> Option<ChainSummary> {
    let pem = std::fs::read(target.join("crt.pem")).ok()?;
    ChainSummary::from_pem(&pem).ok()
}

#[test]
fn gated_volume_is_mounted_empty_and_issued_once_the_pod_is_ready() {
    in_mount_namespace!(async {
        let port = free_port();
        let args = go_chart_args(port);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let h = Harness::start(&args).await;
        let pod = Pod::new("ns", "gated");
        h.api.put_pod("ns", "gated", &pod.uid, "node-a");
        let volume = "csi-gated";
        let target = h
            .publish(
                volume,
                &pod,
                &[
                    ISSUER,
                    ("csi.cert-manager.io/ip-sans", "${POD_IP}"),
                    ("csi.cert-manager.io/duration", "6s"),
                    ("csi.cert-manager.io/key-algorithm", "ECDSA"),
                ],
            )
            .await
            .unwrap();
        assert!(common::is_mounted(&target), "mounted at once");
        assert!(!target.join("crt.pem").exists(), "mounted empty");
        // The metrics endpoint of the Go chart's args serves (dual-stack `:port`).
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());

        // An IP but not Ready: nothing requested.
        h.api.set_pod_ips("ns", "gated", &["10.1.0.7"]);
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(
            requests_for(&h.api, volume).is_empty(),
            "no CertificateRequest before every gate holds"
        );
        assert!(!target.join("crt.pem").exists());

        h.api.set_pod_condition("ns", "gated", "Ready", "True");
        eventually(
            "issued once the gates hold",
            Duration::from_secs(20),
            || cert(&target).is_some(),
        )
        .await;
        assert!(!requests_for(&h.api, volume).is_empty());
        let first = cert(&target).unwrap();
        assert_eq!(
            first.ip_addresses,
            vec!["10.1.0.7".parse::<std::net::IpAddr>().unwrap()]
        );
        assert!(!read(&target, "key.pem").is_empty());

        // The IP changes: the next renewal carries the new one.
        h.api.set_pod_ips("ns", "gated", &["10.1.0.8"]);
        eventually("renewed with the new IP", Duration::from_secs(30), || {
            cert(&target).is_some_and(|c| {
                c.ip_addresses == vec!["10.1.0.8".parse::<std::net::IpAddr>().unwrap()]
            })
        })
        .await;
        h.unpublish(volume).await.unwrap();
    });
}

#[test]
fn pod_ip_without_continue_on_not_ready_is_invalid_argument() {
    in_mount_namespace!(async {
        let h = Harness::start(&[]).await;
        let pod = Pod::new("ns", "early");
        let err = h
            .publish(
                "csi-early",
                &pod,
                &[ISSUER, ("csi.cert-manager.io/ip-sans", "${POD_IP}")],
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(
            err.message().contains("--continue-on-not-ready"),
            "{}",
            err.message()
        );
        assert!(requests_for(&h.api, "csi-early").is_empty());
    });
}

#[test]
fn go_defaults_give_tls_files_and_2160h() {
    in_mount_namespace!(async {
        let h = Harness::start(&["--go-defaults"]).await;
        let pod = Pod::new("ns", "godefaults");
        let target = h
            .publish(
                "csi-godefaults",
                &pod,
                &[ISSUER, ("csi.cert-manager.io/dns-names", "g.example.com")],
            )
            .await
            .unwrap();
        for f in ["tls.crt", "tls.key", "ca.crt"] {
            assert!(target.join(f).exists(), "{f} missing");
        }
        assert!(!target.join("crt.pem").exists());
        let c = ChainSummary::from_pem(&read(&target, "tls.crt")).unwrap();
        let life = c.not_after.duration_since(c.not_before).unwrap();
        assert_eq!(life, Duration::from_secs(2160 * 3600));
    });
}

/// The renewer owns the wait: with a gate backoff of a minute, a Pod that
/// becomes ready is still issued at once, because the Pod watch wakes the
/// volume in the renewer; after a restart the wait resumes the same way.
#[test]
fn a_pod_change_wakes_the_waiting_volume_and_a_restart_resumes_the_wait() {
    in_mount_namespace!(async {
        let mut h = Harness::start(&[
            "--continue-on-not-ready=true",
            "--pod-readiness-gate=pod-condition:Ready",
            "--gate-backoff-duration=60s",
            "--gate-backoff-cap=60s",
        ])
        .await;
        let pod = Pod::new("ns", "slow");
        h.api.put_pod("ns", "slow", &pod.uid, "node-a");
        let volume = "csi-slow";
        let target = h
            .publish(
                volume,
                &pod,
                &[ISSUER, ("csi.cert-manager.io/dns-names", "slow.example")],
            )
            .await
            .unwrap();
        assert!(!target.join("crt.pem").exists(), "mounted empty");
        tokio::time::sleep(Duration::from_secs(2)).await;
        // Across a restart the volume still waits (no request), checked at once.
        h.restart_driver().await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(requests_for(&h.api, volume).is_empty());
        h.api.set_pod_condition("ns", "slow", "Ready", "True");
        eventually(
            "issued at the Pod's change, long before the 60 s backoff",
            Duration::from_secs(15),
            || cert(&target).is_some(),
        )
        .await;
        h.unpublish(volume).await.unwrap();
    });
}
