//! Operating a node: CSI `Probe` readiness, `NodeGetVolumeStats` (usage and
//! condition) and the `status` command, against the real driver binary,
//! testkit's fake API and its scripted issuer.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use cmcsi_proto::v1 as csi;
use cmcsi_testkit::{FakeApi, Script, in_mount_namespace};
use common::{BIN, Harness, Pod, eventually, fake_api};

async fn probe(h: &Harness) -> Option<bool> {
    let mut id = cmcsi_testkit::identity_client(&h.driver.socket)
        .await
        .unwrap();
    id.probe(csi::ProbeRequest {})
        .await
        .unwrap()
        .into_inner()
        .ready
}

/// Polls `Probe` until it answers `want`.
async fn probe_until(h: &Harness, want: bool, timeout: Duration) {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let got = probe(h).await;
        if got == Some(want) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Probe still answers {got:?}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn probe_is_not_ready_until_the_watch_lists_and_while_it_stays_broken() {
    in_mount_namespace!(async {
        let api = fake_api(FakeApi::builder().issuer("ca-issuer", Script::Sign)).await;
        api.go_down().await.unwrap();
        let h = Harness::with_api(api, &["--max-watch-outage", "2s"]).await;
        // The API is down: the CertificateRequest watch cannot list.
        for _ in 0..5 {
            assert_eq!(
                probe(&h).await,
                Some(false),
                "ready before the watch listed"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        h.api.come_up().await.unwrap();
        probe_until(&h, true, Duration::from_secs(30)).await;
        assert!(
            h.logs().contains("not ready: Probe answers not ready"),
            "the change is logged"
        );

        // Broken for longer than --max-watch-outage: not ready again.
        h.api.go_down().await.unwrap();
        probe_until(&h, false, Duration::from_secs(30)).await;
        assert!(
            h.logs().contains("--max-watch-outage"),
            "the log names the flag"
        );
        // Back up: the next event on the watch (a new volume's request)
        // makes it ready.
        h.api.come_up().await.unwrap();
        let pod = Pod::new("ns", "after-outage");
        let attrs = [
            ("csi.cert-manager.io/issuer-name", "ca-issuer"),
            ("csi.cert-manager.io/dns-names", "a.example.com"),
        ];
        for _ in 0..60 {
            if h.publish("csi-after-outage", &pod, &attrs).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        probe_until(&h, true, Duration::from_secs(30)).await;
    });
}

async fn volume_stats(h: &Harness, volume: &str) -> csi::NodeGetVolumeStatsResponse {
    h.node()
        .await
        .node_get_volume_stats(csi::NodeGetVolumeStatsRequest {
            volume_id: volume.into(),
            volume_path: h.target(volume).display().to_string(),
            staging_target_path: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
}

fn status(h: &Harness, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("status")
        .arg("--data-root")
        .arg(&h.data_root)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "status {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn status_and_volume_stats_tell_a_healthy_volume_from_one_whose_renewals_are_denied() {
    in_mount_namespace!(async {
        let api = fake_api(
            FakeApi::builder()
                .issuer("ca-issuer", Script::Sign)
                .issuer("strict-issuer", Script::Sign),
        )
        .await;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let metrics = format!("127.0.0.1:{port}");
        let h = Harness::with_api(
            api,
            &[
                "--metrics-bind-address",
                &metrics,
                "--csi-lib-issue-labels",
                "--min-issuance-interval",
                "1s",
                "--renewal-backoff-initial",
                "1s",
                "--renewal-backoff-max",
                "2s",
            ],
        )
        .await;
        let healthy = "csi-healthy";
        let denied = "csi-denied";
        h.publish(
            healthy,
            &Pod::new("team-a", "web"),
            &[
                ("csi.cert-manager.io/issuer-name", "ca-issuer"),
                ("csi.cert-manager.io/dns-names", "web.team-a.svc"),
            ],
        )
        .await
        .unwrap();
        h.publish(
            denied,
            &Pod::new("team-b", "api"),
            &[
                ("csi.cert-manager.io/issuer-name", "strict-issuer"),
                ("csi.cert-manager.io/dns-names", "api.team-b.svc"),
                ("csi.cert-manager.io/duration", "4s"),
                ("csi.cert-manager.io/key-algorithm", "ECDSA"),
            ],
        )
        .await
        .unwrap();
        // From now on the strict issuer denies: the renewal (due within
        // seconds) fails.
        h.api.set_issuer(
            "strict-issuer",
            Script::Deny {
                reason: "PolicyDenied".into(),
                message: "renewals are not allowed here".into(),
            },
        );
        let last_error = h
            .data_root
            .join("inmemfs")
            .join(denied)
            .join("last-error.json");
        eventually(
            "a recorded renewal failure",
            Duration::from_secs(60),
            || last_error.exists(),
        )
        .await;

        // NodeGetVolumeStats: the first volume normal, the second abnormal.
        let ok = volume_stats(&h, healthy).await;
        let cond = ok.volume_condition.unwrap();
        assert!(!cond.abnormal, "{cond:?}");
        assert!(cond.message.contains("valid until"), "{cond:?}");
        assert_eq!(ok.usage.len(), 2);
        let bytes = ok
            .usage
            .iter()
            .find(|u| u.unit == csi::volume_usage::Unit::Bytes as i32)
            .unwrap();
        let inodes = ok
            .usage
            .iter()
            .find(|u| u.unit == csi::volume_usage::Unit::Inodes as i32)
            .unwrap();
        assert!(bytes.used > 0 && bytes.available > 0, "{bytes:?}");
        assert_eq!(bytes.total, bytes.used + bytes.available);
        // data/, ..data, the set directory, three files and three links.
        assert!(inodes.used >= 8, "{inodes:?}");
        let bad = volume_stats(&h, denied).await.volume_condition.unwrap();
        assert!(bad.abnormal, "{bad:?}");
        assert!(
            bad.message.contains("last renewal failed") && bad.message.contains("denied"),
            "{bad:?}"
        );
        // Asked about another path, the volume is not there.
        let err = h
            .node()
            .await
            .node_get_volume_stats(csi::NodeGetVolumeStatsRequest {
                volume_id: healthy.into(),
                volume_path: h.target(denied).display().to_string(),
                staging_target_path: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");

        // status, as JSON.
        let json: serde_json::Value =
            serde_json::from_str(&status(&h, &["--output", "json"])).unwrap();
        let vols = json["volumes"].as_array().unwrap();
        assert_eq!(vols.len(), 2, "{json:#}");
        let a = vols.iter().find(|v| v["volumeId"] == healthy).unwrap();
        assert_eq!(a["namespace"], "team-a");
        assert_eq!(a["pod"], "web");
        assert_eq!(
            a["files"],
            serde_json::json!(["ca.pem", "crt.pem", "key.pem"])
        );
        assert!(a["notAfter"].as_str().unwrap().ends_with('Z'), "{a}");
        assert!(a["nextRenewal"].is_string(), "{a}");
        assert!(a["pendingRequest"].is_null(), "{a}");
        assert!(a["lastError"].is_null(), "{a}");
        assert_eq!(a["quarantined"], false);
        assert_eq!(a["abnormal"], false);
        let b = vols.iter().find(|v| v["volumeId"] == denied).unwrap();
        assert_eq!(
            (b["namespace"].as_str(), b["pod"].as_str()),
            (Some("team-b"), Some("api"))
        );
        assert_eq!(
            b["files"],
            serde_json::json!(["ca.pem", "crt.pem", "key.pem"])
        );
        let e = &b["lastError"];
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .contains("renewals are not allowed here"),
            "{b}"
        );
        assert!(e["failures"].as_u64().unwrap() >= 1, "{b}");
        assert_eq!(e["renewal"], true);
        assert_eq!(b["abnormal"], true);
        assert_eq!(b["quarantined"], false);
        // No key material, no token in the report.
        let text = json.to_string();
        assert!(!text.contains("PRIVATE KEY") && !text.contains("serviceAccount.tokens"));

        // status, as a table: a header and one line per volume.
        let table = status(&h, &[]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        for col in [
            "NAMESPACE/POD",
            "VOLUME",
            "FILES",
            "NOT AFTER",
            "NEXT RENEWAL",
            "PENDING",
            "LAST ERROR",
            "QUARANTINED",
        ] {
            assert!(lines[0].contains(col), "{table}");
        }
        let row_a = lines.iter().find(|l| l.contains(healthy)).unwrap();
        assert!(row_a.starts_with("team-a/web "), "{table}");
        assert!(row_a.contains("ca.pem,crt.pem,key.pem"), "{table}");
        assert!(row_a.trim_end().ends_with("no"), "{table}");
        let row_b = lines.iter().find(|l| l.contains(denied)).unwrap();
        assert!(row_b.starts_with("team-b/api "), "{table}");
        assert!(
            row_b.contains("(1x)") || row_b.contains("x): CertificateRequest team-b/"),
            "{table}"
        );
        assert!(row_b.contains("was denied"), "{table}");

        // With --csi-lib-issue-labels the issuance counters carry csi-lib's
        // {node, volume}: the denied volume's failures are its own.
        let body = common::http_get(&metrics, "/metrics");
        let node = "node-a";
        let errors: Vec<&str> = body
            .lines()
            .filter(|l| l.starts_with("certmanager_csi_issue_errors_total{"))
            .collect();
        assert!(
            !errors.is_empty()
                && errors.iter().all(|l| l.starts_with(&format!(
                    "certmanager_csi_issue_errors_total{{node=\"{node}\",volume=\"{denied}\"}}"
                ))),
            "{body}"
        );
        assert!(
            body.contains(&format!(
                "certmanager_csi_issue_requests_total{{node=\"{node}\",volume=\"{healthy}\"}} 1"
            )),
            "{body}"
        );
        assert!(
            !body.contains("certmanager_csi_issue_requests_total{namespace="),
            "{body}"
        );

        // A success clears the last error.
        h.api.set_issuer("strict-issuer", Script::Sign);
        eventually(
            "the failure cleared by a renewal",
            Duration::from_secs(60),
            || !last_error.exists(),
        )
        .await;
        let cond = volume_stats(&h, denied).await.volume_condition.unwrap();
        assert!(!cond.abnormal, "{cond:?}");
    });
}

#[test]
fn status_without_a_data_root_says_which_flag_to_pass() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["status", "--data-root"])
        .arg(dir.path().join("missing"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--data-root") && err.contains("missing"),
        "{err}"
    );
}

#[test]
fn an_selinux_context_gives_the_volume_a_file_system_of_its_own() {
    use std::os::unix::fs::MetadataExt;
    in_mount_namespace!(async {
        let h = Harness::start(&["--selinux-volume-size", "2Mi"]).await;
        let volume = "csi-selinux";
        let pod = Pod::new("ns", "labelled");
        let target = h.target(volume);
        let context = "system_u:object_r:container_file_t:s0:c1,c2";
        let mut req = Harness::request(
            volume,
            &target,
            pod.context(&[
                ("csi.cert-manager.io/issuer-name", "ca-issuer"),
                ("csi.cert-manager.io/dns-names", "l.example.com"),
            ]),
        );
        let with_flags = |req: &mut csi::NodePublishVolumeRequest, flags: Vec<String>| {
            if let Some(csi::volume_capability::AccessType::Mount(m)) = req
                .volume_capability
                .as_mut()
                .and_then(|c| c.access_type.as_mut())
            {
                m.mount_flags = flags;
            }
        };
        // A flag that is not a context is refused before anything is made.
        let mut bad = req.clone();
        with_flags(&mut bad, vec!["context=\"a:b:c\",size=1G".into()]);
        let err = h.node().await.node_publish_volume(bad).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
        assert!(err.message().contains("SELinux"), "{err:?}");

        with_flags(&mut req, vec![format!("context=\"{context}\"")]);
        h.node().await.node_publish_volume(req).await.unwrap();
        let inmemfs = h.data_root.join("inmemfs");
        let data = inmemfs.join(volume).join("data");
        // data/ is a tmpfs of its own (the kernel here has no SELinux, so
        // the label itself cannot be seen; the file system that carries it
        // can), and the Pod's bind mount shows that file system.
        assert!(common::is_mounted(&data));
        let dev = |p: &std::path::Path| std::fs::metadata(p).unwrap().dev();
        assert_ne!(dev(&data), dev(&inmemfs));
        assert_eq!(dev(&target), dev(&data));
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let line = info
            .lines()
            .find(|l| l.split(' ').nth(4) == Some(data.to_str().unwrap()))
            .unwrap();
        assert!(
            line.contains("tmpfs") && line.contains("size=2048k"),
            "{line}"
        );
        assert!(common::read(&target, "crt.pem").starts_with(b"-----BEGIN CERTIFICATE-----"));
        common::assert_read_only_on_host(&target, "a volume on its own tmpfs");
        // Either the label was applied or its absence is logged.
        let logs = h.logs();
        assert!(
            logs.contains("SELinux is not enabled in this kernel")
                || logs.contains("with the Pod's SELinux context"),
            "{logs}"
        );

        h.unpublish(volume).await.unwrap();
        assert!(
            !inmemfs.join(volume).exists(),
            "the volume is removed, its tmpfs too"
        );
        assert!(!common::is_mounted(&data));
    });
}
