//! R-lows: the small ways a tenant or a careless setting exposes what the
//! driver guards, each refused with a message that names the flag allowing
//! it, against the real binary and the fake API:
//! - `${POD_IP}` of a `hostNetwork` Pod (the node's address);
//! - a `tcp://` CSI endpoint on an address that is not loopback;
//! - token-request mode over plain `http://` or `--insecure-skip-tls-verify`;
//! - `--token-file` that is missing or empty;
//! - an issuer's message with control characters, escaped in the Event note.
//!
//! cert-manager's own annotation keys are refused in `reliability_budget`;
//! the Event queue's per-namespace share is in the driver's events unit
//! tests (one namespace floods, another's Event still goes out).

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cmcsi_keygen::ChainSummary;
use cmcsi_testkit::{FakeApi, Script, in_mount_namespace};
use common::{BIN, Harness, Pod, TOKEN, eventually, fake_api, requests_for};

const ISSUER: (&str, &str) = ("csi.cert-manager.io/issuer-name", "ca-issuer");
const POD_IP: (&str, &str) = ("csi.cert-manager.io/ip-sans", "${POD_IP}");

fn cert(target: &Path) -> Option<ChainSummary> {
    let pem = std::fs::read(target.join("crt.pem")).ok()?;
    ChainSummary::from_pem(&pem).ok()
}

/// Runs the driver with `args` (after `--node-id` and a private data root)
/// and expects it to refuse to start: it must exit, unsuccessfully, within
/// 30 s. Returns what it wrote to stderr.
fn refused_start(dir: &Path, args: &[&str]) -> String {
    let log = dir.join("refused.log");
    let mut child = Command::new(BIN)
        .args(["--node-id", "node-a", "--mount-tmpfs=false", "--data-root"])
        .arg(dir.join("data"))
        .args(args)
        .env_remove("KUBECONFIG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the driver started with {args:?} instead of refusing:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(!status.success(), "{args:?} exited with {status}: {stderr}");
    stderr
}

#[test]
fn pod_ip_of_a_host_network_pod_is_refused_unless_allowed() {
    in_mount_namespace!(async {
        let h = Harness::start(&["--continue-on-not-ready"]).await;
        // The hostNetwork Pod exists first; the other Pod's issuance below
        // shows the node's Pod watch has seen both.
        let host = Pod::new("ns", "hostnet");
        h.api.put_pod("ns", "hostnet", &host.uid, "node-a");
        h.api.set_pod_host_network("ns", "hostnet", true);
        h.api.set_pod_ips("ns", "hostnet", &["10.9.0.1"]);
        let other = Pod::new("ns", "other");
        h.api.put_pod("ns", "other", &other.uid, "node-a");
        h.api.set_pod_ips("ns", "other", &["10.1.0.7"]);
        let target = h
            .publish("csi-other", &other, &[ISSUER, POD_IP])
            .await
            .unwrap();
        eventually("the other Pod issued", Duration::from_secs(20), || {
            cert(&target).is_some()
        })
        .await;

        let err = h
            .publish("csi-hostnet", &host, &[ISSUER, POD_IP])
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
        for needle in [
            "Pod ns/hostnet uses hostNetwork",
            "the node's address",
            "--allow-pod-ip-for-host-network",
        ] {
            assert!(
                err.message().contains(needle),
                "{needle}: {}",
                err.message()
            );
        }
        assert!(
            requests_for(&h.api, "csi-hostnet").is_empty(),
            "nothing requested for the refused volume"
        );

        // A Pod the watch has not seen yet at the mount: the volume is
        // mounted empty and waits; once the watch sees a hostNetwork Pod, the
        // refusal reaches the Pod as an IssuanceFailed Event.
        let late = Pod::new("ns", "late");
        let late_target = h
            .publish("csi-late", &late, &[ISSUER, POD_IP])
            .await
            .unwrap();
        h.api.put_pod("ns", "late", &late.uid, "node-a");
        h.api.set_pod_host_network("ns", "late", true);
        h.api.set_pod_ips("ns", "late", &["10.9.0.2"]);
        eventually(
            "an IssuanceFailed Event naming the flag",
            Duration::from_secs(20),
            || {
                h.api.events_regarding("ns", "late").iter().any(|e| {
                    e["reason"] == "IssuanceFailed"
                        && e["note"]
                            .as_str()
                            .is_some_and(|n| n.contains("--allow-pod-ip-for-host-network"))
                })
            },
        )
        .await;
        assert!(cert(&late_target).is_none(), "never issued");
        assert!(requests_for(&h.api, "csi-late").is_empty());
        drop(h);

        // The node's administrator allows it: the certificate names the
        // Pod's (the node's) address.
        let h =
            Harness::start(&["--continue-on-not-ready", "--allow-pod-ip-for-host-network"]).await;
        h.api.put_pod("ns", "hostnet", &host.uid, "node-a");
        h.api.set_pod_host_network("ns", "hostnet", true);
        h.api.set_pod_ips("ns", "hostnet", &["10.9.0.1"]);
        let target = h
            .publish("csi-hostnet", &host, &[ISSUER, POD_IP])
            .await
            .unwrap();
        eventually("issued when allowed", Duration::from_secs(20), || {
            cert(&target).is_some()
        })
        .await;
        assert_eq!(
            cert(&target).unwrap().ip_addresses,
            vec!["10.9.0.1".parse::<std::net::IpAddr>().unwrap()]
        );
    });
}

#[test]
fn non_loopback_tcp_endpoint_is_refused_unless_allowed() {
    in_mount_namespace!(async {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let exposed = format!("tcp://0.0.0.0:{port}");
        let stderr = refused_start(dir.path(), &["--endpoint", &exposed]);
        for needle in [
            "not a loopback address",
            "no TLS and no authentication",
            "--allow-non-loopback-endpoint",
        ] {
            assert!(stderr.contains(needle), "{needle}: {stderr}");
        }

        // Allowed (only 127.0.0.1 is ever connected to): it serves.
        let mut child = Command::new(BIN)
            .args(["--node-id", "node-a", "--mount-tmpfs=false", "--data-root"])
            .arg(dir.path().join("data"))
            .args(["--endpoint", &exposed, "--allow-non-loopback-endpoint"])
            .env_remove("KUBECONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(child.try_wait().unwrap().is_none(), "the driver exited");
            assert!(Instant::now() < deadline, "the driver never listened");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
    });
}

#[test]
fn token_request_over_an_insecure_connection_is_refused_unless_allowed() {
    in_mount_namespace!(async {
        let dir = tempfile::tempdir().unwrap();
        // Plain http.
        let api = fake_api(FakeApi::builder().issuer("ca-issuer", Script::Sign)).await;
        let kubeconfig = dir.path().join("kubeconfig-http");
        api.write_kubeconfig(&kubeconfig, TOKEN).unwrap();
        let kc = kubeconfig.to_str().unwrap();
        let sock = dir.path().join("csi.sock");
        let sock = sock.to_str().unwrap();
        let base = [
            "--endpoint",
            sock,
            "--kubeconfig",
            kc,
            "--use-token-request",
        ];
        let stderr = refused_start(dir.path(), &base);
        for needle in [
            "--use-token-request",
            "is plain http://",
            "--allow-insecure-token-request",
        ] {
            assert!(stderr.contains(needle), "{needle}: {stderr}");
        }
        // Without token-request mode, plain http is the operator's choice.
        let h = Harness::with_api(api, &[]).await;
        assert!(h.serving().await);
        drop(h);

        // HTTPS without checking the server's certificate.
        let api = fake_api(FakeApi::builder().tls().issuer("ca-issuer", Script::Sign)).await;
        let kubeconfig = dir.path().join("kubeconfig-https");
        api.write_kubeconfig(&kubeconfig, TOKEN).unwrap();
        let kc = kubeconfig.to_str().unwrap();
        let args = [
            "--endpoint",
            sock,
            "--kubeconfig",
            kc,
            "--use-token-request",
            "--insecure-skip-tls-verify",
        ];
        let stderr = refused_start(dir.path(), &args);
        for needle in [
            "does not check the server's certificate",
            "--allow-insecure-token-request",
        ] {
            assert!(stderr.contains(needle), "{needle}: {stderr}");
        }
        // The same with the certificate checked starts and serves.
        let h = Harness::with_api(api, &["--use-token-request"]).await;
        assert!(h.serving().await);
    });
}

#[test]
fn token_file_problems_stop_the_start_with_the_flag_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-token");
    let stderr = refused_start(
        dir.path(),
        &[
            "--endpoint",
            "/nonexistent/csi.sock",
            "--token-file",
            missing.to_str().unwrap(),
        ],
    );
    assert!(
        stderr.contains("--token-file") && stderr.contains("does not exist"),
        "{stderr}"
    );
    let empty = dir.path().join("empty-token");
    std::fs::write(&empty, "\n").unwrap();
    let stderr = refused_start(
        dir.path(),
        &[
            "--endpoint",
            "/nonexistent/csi.sock",
            "--token-file",
            empty.to_str().unwrap(),
        ],
    );
    assert!(
        stderr.contains("--token-file") && stderr.contains("is empty"),
        "{stderr}"
    );
    let stderr = refused_start(
        dir.path(),
        &[
            "--endpoint",
            "/nonexistent/csi.sock",
            "--token",
            "t",
            "--token-file",
            empty.to_str().unwrap(),
        ],
    );
    assert!(stderr.contains("cannot be used with"), "{stderr}");
}

#[test]
fn token_file_authenticates_the_driver() {
    in_mount_namespace!(async {
        let api = fake_api(FakeApi::builder().issuer("ca-issuer", Script::Sign)).await;
        let dir = tempfile::tempdir().unwrap();
        // A kubeconfig without credentials; the token comes from the file.
        let kubeconfig = dir.path().join("kubeconfig");
        api.write_kubeconfig(&kubeconfig, "").unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
        let h = Harness::launch(
            api,
            None,
            &[],
            &[
                "--kubeconfig",
                kubeconfig.to_str().unwrap(),
                "--token-file",
                token.to_str().unwrap(),
            ],
        )
        .await;
        let pod = Pod::new("ns", "tokfile");
        let target = h
            .publish(
                "csi-tokfile",
                &pod,
                &[ISSUER, ("csi.cert-manager.io/dns-names", "t.example.com")],
            )
            .await
            .unwrap();
        assert!(cert(&target).is_some(), "issued with the file's token");
        assert!(!h.logs().contains(TOKEN), "the token is never logged");
    });
}

#[test]
fn control_characters_of_an_issuer_message_are_escaped_in_the_event() {
    in_mount_namespace!(async {
        let h = Harness::start(&[]).await;
        h.api.set_issuer(
            "forging",
            Script::Deny {
                reason: "Policy".into(),
                message: "no\nWarning  FakeReason  forged line\u{1b}[31m".into(),
            },
        );
        let pod = Pod::new("ns", "forged");
        h.publish(
            "csi-forged",
            &pod,
            &[
                ("csi.cert-manager.io/issuer-name", "forging"),
                ("csi.cert-manager.io/dns-names", "f.example.com"),
            ],
        )
        .await
        .unwrap_err();
        eventually("an IssuanceFailed Event", Duration::from_secs(10), || {
            !h.api.events_regarding("ns", "forged").is_empty()
        })
        .await;
        let events = h.api.events_regarding("ns", "forged");
        let note = events[0]["note"].as_str().unwrap();
        assert!(note.contains("forged line"), "{note}");
        assert!(!note.chars().any(char::is_control), "{note:?}");
        assert!(note.contains("\\n") && note.contains("\\u{1b}"), "{note}");
    });
}
