//! End to end: the real driver binary, real read-only bind mounts in a
//! private mount namespace, testkit's fake API and test CA.

#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use cmcsi_keygen::{ChainSummary, PrivateKey};
use cmcsi_testkit::in_mount_namespace;
use cmcsi_testkit::{FakeApi, Script, Verb};
use common::{Harness, Pod, TOKEN, eventually, fake_api, http_get, is_mounted, read};
use tonic::Code;

const ISSUER: (&str, &str) = ("csi.cert-manager.io/issuer-name", "ca-issuer");

fn summary(target: &std::path::Path, file: &str) -> ChainSummary {
    ChainSummary::from_pem(&read(target, file)).unwrap()
}

fn key_matches(target: &std::path::Path, key: &str, cert: &str) -> bool {
    let pem = String::from_utf8(read(target, key)).unwrap();
    let key = PrivateKey::from_pem_any(&pem).unwrap();
    summary(target, cert).leaf_matches_key(&key)
}

#[test]
fn deployment_from_the_docs() {
    in_mount_namespace!(async {
        let h = Harness::start(&[]).await;
        let mut serials = Vec::new();
        let mut keys = Vec::new();
        for i in 0..5 {
            let pod = Pod::new("sandbox", &format!("my-csi-app-{i}"));
            let vol = format!("csi-{i:064x}");
            let target = h
                .publish(
                    &vol,
                    &pod,
                    &[
                        ISSUER,
                        (
                            "csi.cert-manager.io/dns-names",
                            "my-service.sandbox.svc.cluster.local",
                        ),
                    ],
                )
                .await
                .unwrap();
            assert!(is_mounted(&target));
            let s = summary(&target, "crt.pem");
            assert_eq!(s.dns_names, vec!["my-service.sandbox.svc.cluster.local"]);
            assert!(key_matches(&target, "key.pem", "crt.pem"));
            let key = String::from_utf8(read(&target, "key.pem")).unwrap();
            assert!(
                key.starts_with("-----BEGIN RSA PRIVATE KEY-----"),
                "PKCS#1 by default"
            );
            assert_eq!(read(&target, "ca.pem"), h.api.ca_pem().into_bytes());
            // 720h by default.
            let life = s.not_after.duration_since(s.not_before).unwrap();
            assert!(
                life >= Duration::from_secs(719 * 3600) && life <= Duration::from_secs(721 * 3600)
            );
            // Read-only for the Pod.
            assert!(std::fs::write(target.join("x"), b"x").is_err());
            serials.push(s.serial_hex);
            keys.push(key);
        }
        serials.sort();
        serials.dedup();
        keys.sort();
        keys.dedup();
        assert_eq!(serials.len(), 5, "every Pod has its own certificate");
        assert_eq!(keys.len(), 5, "every Pod has its own key");

        // The requests carry what cert-manager needs.
        let reqs = h.api.requests("sandbox");
        assert_eq!(reqs.len(), 5);
        let r = &reqs[0];
        assert_eq!(r["spec"]["issuerRef"]["name"], "ca-issuer");
        assert_eq!(r["spec"]["issuerRef"]["kind"], "Issuer");
        assert_eq!(r["spec"]["issuerRef"]["group"], "cert-manager.io");
        assert_eq!(r["metadata"]["ownerReferences"][0]["kind"], "Pod");
        assert!(
            r["metadata"]["labels"]["csi.cert-manager.io/node-id-hash"].is_string(),
            "{r}"
        );

        // Unpublish leaves the node clean.
        for i in 0..5 {
            let vol = format!("csi-{i:064x}");
            h.unpublish(&vol).await.unwrap();
            assert!(!h.target(&vol).exists());
            // Idempotent.
            h.unpublish(&vol).await.unwrap();
        }
        let left: Vec<_> = std::fs::read_dir(h.data_root.join("inmemfs"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(left.is_empty(), "volumes left behind: {left:?}");
    });
}

#[test]
fn every_key_algorithm() {
    in_mount_namespace!(async {
        let h = Harness::start(&[]).await;
        let pod = Pod::new("ns", "algos");
        for (i, (alg, size, header)) in [
            ("RSA", "3072", "RSA PRIVATE KEY"),
            ("ECDSA", "256", "PRIVATE KEY"),
            ("ECDSA", "384", "PRIVATE KEY"),
            ("ECDSA", "521", "PRIVATE KEY"),
            ("Ed25519", "", "PRIVATE KEY"),
        ]
        .into_iter()
        .enumerate()
        {
            let vol = format!("csi-alg-{i}");
            let mut attrs = vec![
                ISSUER,
                ("csi.cert-manager.io/dns-names", "a.example.com"),
                ("csi.cert-manager.io/key-algorithm", alg),
            ];
            if !size.is_empty() {
                attrs.push(("csi.cert-manager.io/key-size", size));
            }
            let target = h.publish(&vol, &pod, &attrs).await.unwrap();
            let key = String::from_utf8(read(&target, "key.pem")).unwrap();
            assert!(
                key.contains(&format!("BEGIN {header}")),
                "{alg}{size}: {key:.40}"
            );
            assert!(key_matches(&target, "key.pem", "crt.pem"), "{alg}{size}");
            let out = std::process::Command::new("openssl")
                .args(["pkey", "-noout", "-in"])
                .arg(target.join("key.pem"))
                .output()
                .unwrap();
            assert!(out.status.success(), "openssl reads the {alg}{size} key");
        }
    });
}

#[test]
fn pkcs12_fs_group_templates_and_nested_names() {
    in_mount_namespace!(async {
        let h = Harness::start(&[]).await;
        let pod = Pod::new("team-a", "web-0");
        let target = h
            .publish(
                "csi-p12",
                &pod,
                &[
                    ISSUER,
                    (
                        "csi.cert-manager.io/dns-names",
                        "${POD_NAME}.${POD_NAMESPACE}.svc",
                    ),
                    (
                        "csi.cert-manager.io/uri-sans",
                        "spiffe://cluster.local/ns/${POD_NAMESPACE}/sa/${SERVICE_ACCOUNT_NAME}",
                    ),
                    ("csi.cert-manager.io/common-name", "${POD_NAME}"),
                    ("csi.cert-manager.io/certificate-file", "bar/foo.crt"),
                    ("csi.cert-manager.io/privatekey-file", "bar/foo.key"),
                    ("csi.cert-manager.io/pkcs12-enable", "true"),
                    ("csi.cert-manager.io/pkcs12-password", "correct horse"),
                    ("csi.cert-manager.io/fs-group", "2000"),
                ],
            )
            .await
            .unwrap();
        let s = summary(&target, "bar/foo.crt");
        assert_eq!(s.dns_names, vec!["web-0.team-a.svc"]);
        assert_eq!(s.uris, vec!["spiffe://cluster.local/ns/team-a/sa/default"]);
        assert!(s.subject.contains("CN=web-0"), "{}", s.subject);
        assert!(key_matches(&target, "bar/foo.key", "bar/foo.crt"));
        let meta = std::fs::metadata(target.join("bar/foo.key")).unwrap();
        assert_eq!(meta.gid(), 2000);
        assert_eq!(meta.mode() & 0o777, 0o440);
        let out = std::process::Command::new("openssl")
            .args(["pkcs12", "-noout", "-passin", "pass:correct horse", "-in"])
            .arg(target.join("keystore.p12"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );

        // volume_mount_group (the Pod's fsGroup) when fs-group is not set.
        let mut req = Harness::request(
            "csi-group",
            &h.target("csi-group"),
            pod.context(&[ISSUER, ("csi.cert-manager.io/dns-names", "g.example.com")]),
        );
        if let Some(cmcsi_proto::v1::volume_capability::AccessType::Mount(m)) = req
            .volume_capability
            .as_mut()
            .and_then(|c| c.access_type.as_mut())
        {
            m.volume_mount_group = "3000".into();
        }
        h.node().await.node_publish_volume(req).await.unwrap();
        let meta = std::fs::metadata(h.target("csi-group").join("crt.pem")).unwrap();
        assert_eq!(meta.gid(), 3000);
    });
}

#[test]
fn renewal_is_seen_through_the_mount() {
    in_mount_namespace!(async {
        let h = Harness::start(&[]).await;
        let pod = Pod::new("ns", "renew");
        let base = [
            ISSUER,
            ("csi.cert-manager.io/dns-names", "r.example.com"),
            ("csi.cert-manager.io/duration", "6s"),
            ("csi.cert-manager.io/key-algorithm", "ECDSA"),
        ];
        let t1 = h.publish("csi-renew", &pod, &base).await.unwrap();
        let mut reuse = base.to_vec();
        reuse.push(("csi.cert-manager.io/reuse-private-key", "true"));
        let t2 = h.publish("csi-reuse", &pod, &reuse).await.unwrap();
        let (s1, k1) = (summary(&t1, "crt.pem").serial_hex, read(&t1, "key.pem"));
        let (s2, k2) = (summary(&t2, "crt.pem").serial_hex, read(&t2, "key.pem"));
        eventually("both renewed", Duration::from_secs(30), || {
            summary(&t1, "crt.pem").serial_hex != s1 && summary(&t2, "crt.pem").serial_hex != s2
        })
        .await;
        assert_ne!(
            read(&t1, "key.pem"),
            k1,
            "a new key at each renewal by default"
        );
        assert_eq!(read(&t2, "key.pem"), k2, "reuse-private-key keeps the key");
        assert!(key_matches(&t1, "key.pem", "crt.pem"));
        assert!(key_matches(&t2, "key.pem", "crt.pem"));
    });
}

#[test]
fn denied_and_failed_requests_say_why() {
    in_mount_namespace!(async {
        let h = Harness::start(&[]).await;
        h.api.set_issuer(
            "strict",
            Script::Deny {
                reason: "PolicyDenied".into(),
                message: "no policy matches".into(),
            },
        );
        h.api.set_issuer(
            "broken",
            Script::Fail {
                message: "signer exploded".into(),
            },
        );
        let pod = Pod::new("ns", "p");
        let st = h
            .publish(
                "csi-denied",
                &pod,
                &[
                    ("csi.cert-manager.io/issuer-name", "strict"),
                    ("csi.cert-manager.io/dns-names", "d.example.com"),
                ],
            )
            .await
            .unwrap_err();
        assert_eq!(st.code(), Code::FailedPrecondition, "{st:?}");
        assert!(st.message().contains("denied"), "{}", st.message());
        assert!(
            st.message().contains("PolicyDenied") || st.message().contains("no policy matches"),
            "{}",
            st.message()
        );
        let name = h.api.requests("ns")[0]["metadata"]["name"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            st.message().contains(&name),
            "names the request: {}",
            st.message()
        );

        let st = h
            .publish(
                "csi-failed",
                &pod,
                &[
                    ("csi.cert-manager.io/issuer-name", "broken"),
                    ("csi.cert-manager.io/dns-names", "f.example.com"),
                ],
            )
            .await
            .unwrap_err();
        assert_eq!(st.code(), Code::FailedPrecondition, "{st:?}");
        assert!(st.message().contains("signer exploded"), "{}", st.message());
        assert!(!is_mounted(&h.target("csi-failed")));
        // The target directory, made beside the issuance, goes with a
        // failed first publish: nothing is left that was not there before.
        for vol in ["csi-denied", "csi-failed"] {
            let target = h.target(vol);
            assert!(!target.exists(), "{} left behind", target.display());
            assert!(
                target.parent().unwrap().is_dir(),
                "the kubelet's parent stays"
            );
        }

        // Bad attributes: every problem at once.
        let st = h
            .publish(
                "csi-bad",
                &pod,
                &[
                    ("csi.cert-manager.io/dns-names", "x.example.com"),
                    ("csi.cert-manager.io/duration", "forever"),
                    ("csi.cert-manager.io/key-sise", "4096"),
                ],
            )
            .await
            .unwrap_err();
        assert_eq!(st.code(), Code::InvalidArgument);
        for needle in ["issuer-name", "duration", "key-size"] {
            assert!(st.message().contains(needle), "{needle}: {}", st.message());
        }
    });
}

#[test]
fn api_down_is_unavailable_then_works() {
    in_mount_namespace!(async {
        let h = Harness::start(&["--issuance-timeout", "3s"]).await;
        let pod = Pod::new("ns", "down");
        let attrs = [ISSUER, ("csi.cert-manager.io/dns-names", "u.example.com")];
        h.api.go_down().await.unwrap();
        let st = h.publish("csi-down", &pod, &attrs).await.unwrap_err();
        assert_eq!(st.code(), Code::Unavailable, "{st:?}");
        assert!(
            st.message().contains("CertificateRequest"),
            "says what failed: {}",
            st.message()
        );
        h.api.come_up().await.unwrap();
        let mut ok = None;
        for _ in 0..20 {
            match h.publish("csi-down", &pod, &attrs).await {
                Ok(t) => {
                    ok = Some(t);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
        let target = ok.expect("publish succeeds once the API is back");
        assert!(key_matches(&target, "key.pem", "crt.pem"));
    });
}

#[test]
fn concurrent_publishes_of_one_volume_never_mount_an_empty_volume() {
    in_mount_namespace!(async {
        let h = Harness::start(&[]).await;
        h.api
            .set_issuer("slow", Script::Delay(Duration::from_millis(800)));
        let pod = Pod::new("ns", "race");
        let attrs = [
            ("csi.cert-manager.io/issuer-name", "slow"),
            ("csi.cert-manager.io/dns-names", "c.example.com"),
        ];
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let req = Harness::request("csi-race", &h.target("csi-race"), pod.context(&attrs));
            let mut node = h.node().await;
            tasks.push(tokio::spawn(
                async move { node.node_publish_volume(req).await },
            ));
        }
        let mut oks = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => {
                    oks += 1;
                    // Success means the files are there.
                    assert!(key_matches(&h.target("csi-race"), "key.pem", "crt.pem"));
                }
                Err(st) => assert_eq!(st.code(), Code::Aborted, "{st:?}"),
            }
        }
        assert!(oks >= 1);
        assert_eq!(h.api.requests("ns").len(), 1, "one request for one volume");
    });
}

#[test]
fn killed_mid_issuance_resumes_the_same_request() {
    in_mount_namespace!(async {
        let mut h = Harness::start(&["--issuance-timeout", "2s"]).await;
        h.api.set_issuer("later", Script::Never);
        let pod = Pod::new("ns", "crash");
        let attrs = [
            ("csi.cert-manager.io/issuer-name", "later"),
            ("csi.cert-manager.io/dns-names", "k.example.com"),
        ];
        let err = h.publish("csi-crash", &pod, &attrs).await.unwrap_err();
        assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
        assert_eq!(h.api.requests("ns").len(), 1);
        h.kill_driver();
        h.restart_driver().await;
        // The issuer answers now; the kubelet retries the publish.
        h.api.set_issuer("later", Script::Sign);
        let name = h.api.requests("ns")[0]["metadata"]["name"]
            .as_str()
            .unwrap()
            .to_string();
        h.api.act_on("ns", &name, Script::Sign).await;
        let target = h.publish("csi-crash", &pod, &attrs).await.unwrap();
        assert!(key_matches(&target, "key.pem", "crt.pem"));
        assert_eq!(
            h.api.requests("ns").len(),
            1,
            "no second request after the crash"
        );
        assert_eq!(h.api.counts().verb(Verb::Create), 1);
    });
}

#[test]
fn never_issued_volumes_of_deleted_pods_are_removed() {
    in_mount_namespace!(async {
        let h = Harness::start(&[
            "--issuance-timeout",
            "2s",
            "--abandoned-volume-sweep-interval",
            "500ms",
        ])
        .await;
        h.api.set_issuer("later", Script::Never);
        let attrs = [
            ("csi.cert-manager.io/issuer-name", "later"),
            ("csi.cert-manager.io/dns-names", "g.example.com"),
        ];
        let (gone, alive) = ("csi-pod-gone", "csi-pod-alive");
        for vol in [gone, alive] {
            let err = h
                .publish(vol, &Pod::new("ns", vol), &attrs)
                .await
                .unwrap_err();
            assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
        }
        let stored = |vol: &str| h.data_root.join("inmemfs").join(vol).exists();
        assert!(stored(gone) && stored(alive));

        // The Pod is deleted: the kubelet removes its directory and, since
        // the publish never succeeded, calls no unpublish.
        std::fs::remove_dir_all(h.dir.path().join("pods").join(gone)).unwrap();
        eventually(
            "the abandoned volume to be removed",
            Duration::from_secs(10),
            || !stored(gone),
        )
        .await;
        assert!(
            h.logs()
                .contains("removed a never-issued volume whose Pod is gone"),
            "says so in the log"
        );
        let requests_of = |vol: &str| {
            h.api
                .requests("ns")
                .iter()
                .filter(|r| r["metadata"]["annotations"].to_string().contains(vol))
                .count()
        };
        eventually(
            "its CertificateRequest to be deleted",
            Duration::from_secs(10),
            || requests_of(gone) == 0,
        )
        .await;
        assert_eq!(requests_of(alive), 1);

        // The other Pod is still waiting: several sweeps later its volume
        // and its recorded request are intact, and the kubelet's retry is
        // served by the same request once the issuer signs.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(stored(alive), "a volume whose Pod still exists is kept");
        let name = h
            .api
            .requests("ns")
            .iter()
            .find(|r| r["metadata"]["annotations"].to_string().contains(alive))
            .map(|r| r["metadata"]["name"].as_str().unwrap().to_string())
            .expect("the live Pod's request");
        h.api.set_issuer("later", Script::Sign);
        h.api.act_on("ns", &name, Script::Sign).await;
        let target = h
            .publish(alive, &Pod::new("ns", alive), &attrs)
            .await
            .unwrap();
        assert!(key_matches(&target, "key.pem", "crt.pem"));
        assert_eq!(h.api.counts().verb(Verb::Create), 2, "no new request");

        // An issued, mounted volume is never swept, whatever the sweep sees.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert!(stored(alive) && is_mounted(&target));
    });
}

#[test]
fn killed_mid_life_renewals_continue() {
    in_mount_namespace!(async {
        let mut h = Harness::start(&["--recovery-spread", "1s"]).await;
        let pod = Pod::new("ns", "life");
        let target = h
            .publish(
                "csi-life",
                &pod,
                &[
                    ISSUER,
                    ("csi.cert-manager.io/dns-names", "l.example.com"),
                    ("csi.cert-manager.io/duration", "8s"),
                    ("csi.cert-manager.io/key-algorithm", "ECDSA"),
                ],
            )
            .await
            .unwrap();
        let first = summary(&target, "crt.pem").serial_hex;
        h.kill_driver();
        h.restart_driver().await;
        eventually("renewal after restart", Duration::from_secs(30), || {
            summary(&target, "crt.pem").serial_hex != first
        })
        .await;
        assert!(is_mounted(&target), "the Pod's mount survived the restart");
        assert!(key_matches(&target, "key.pem", "crt.pem"));
    });
}

#[test]
fn token_request_identity() {
    in_mount_namespace!(async {
        // Over HTTPS with the server's certificate checked, as in a cluster:
        // token-request mode needs no --allow-insecure-token-request there.
        let h = Harness::start_with(
            FakeApi::builder().tls().issuer("ca-issuer", Script::Sign),
            &["--use-token-request"],
        )
        .await;
        h.api
            .add_token("pod-sa-token", "system:serviceaccount:ns:app");
        let pod = Pod::new("ns", "tok");
        let tokens =
            r#"{"":{"token":"pod-sa-token","expirationTimestamp":"2999-01-01T00:00:00Z"}}"#;
        let target = h
            .publish(
                "csi-token",
                &pod,
                &[
                    ISSUER,
                    ("csi.cert-manager.io/dns-names", "t.example.com"),
                    ("csi.storage.k8s.io/serviceAccount.tokens", tokens),
                ],
            )
            .await
            .unwrap();
        assert!(key_matches(&target, "key.pem", "crt.pem"));
        let r = &h.api.requests("ns")[0];
        assert_eq!(r["spec"]["username"], "system:serviceaccount:ns:app");
        assert!(
            !h.logs().contains("pod-sa-token"),
            "the token never reaches the log"
        );

        // Without a token: a clear error, not a request as the driver.
        let st = h
            .publish(
                "csi-notoken",
                &pod,
                &[ISSUER, ("csi.cert-manager.io/dns-names", "t.example.com")],
            )
            .await
            .unwrap_err();
        assert!(st.message().contains("token"), "{}", st.message());
    });
}
#[test]
fn continue_on_not_ready_and_metrics() {
    in_mount_namespace!(async {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let h = Harness::start(&["--metrics-bind-address", &addr, "--continue-on-not-ready"]).await;
        h.api.set_issuer("later", Script::Never);
        let pod = Pod::new("ns", "cont");
        // The publish returns at once; the files arrive when cert-manager answers.
        let target = h
            .publish(
                "csi-cont",
                &pod,
                &[
                    ("csi.cert-manager.io/issuer-name", "later"),
                    ("csi.cert-manager.io/dns-names", "c.example.com"),
                ],
            )
            .await
            .unwrap();
        assert!(is_mounted(&target));
        assert!(!target.join("crt.pem").exists());
        let cr = h
            .api
            .wait_for_request("ns", Duration::from_secs(10), |_| true)
            .await
            .unwrap();
        let name = cr["metadata"]["name"].as_str().unwrap().to_string();
        h.api.act_on("ns", &name, Script::Sign).await;
        eventually(
            "files in the mounted volume",
            Duration::from_secs(20),
            || target.join("crt.pem").exists(),
        )
        .await;
        assert!(key_matches(&target, "key.pem", "crt.pem"));

        // The files appear in the swap, a moment before the issuance is recorded.
        eventually("the issuance in /metrics", Duration::from_secs(10), || {
            http_get(&addr, "/metrics").contains(
                "certmanager_csi_issue_requests_total{namespace=\"ns\",issuer_name=\"later\"",
            )
        })
        .await;
        let body = http_get(&addr, "/metrics");
        // csi-lib's names and labels (the Go driver's dashboards), the
        // request's `name` on the timestamp gauges among them.
        let node = "node-a";
        let issuer =
            "issuer_name=\"later\",issuer_kind=\"Issuer\",issuer_group=\"cert-manager.io\"";
        for needle in [
            format!("certmanager_csi_managed_volume_count{{node=\"{node}\"}} 1"),
            format!("certmanager_csi_managed_certificate_request_count{{node=\"{node}\"}} 1"),
            format!(
                "certmanager_csi_certificate_request_ready_status{{name=\"{name}\",namespace=\"ns\",condition=\"True\",{issuer}}} 1"
            ),
            format!(
                "certmanager_csi_certificate_request_ready_status{{name=\"{name}\",namespace=\"ns\",condition=\"False\",{issuer}}} 0"
            ),
            "certmanager_csi_issue_requests_total{namespace=\"ns\",issuer_name=\"later\"".into(),
            format!(
                "certmanager_csi_certificate_request_expiration_timestamp_seconds{{name=\"{name}\",namespace=\"ns\",pod=\"cont\""
            ),
            format!(
                "certmanager_csi_certificate_request_renewal_timestamp_seconds{{name=\"{name}\",namespace=\"ns\""
            ),
            "certmanager_csi_publish_duration_seconds_count 1".into(),
            "certmanager_csi_key_pool_hits_total".into(),
        ] {
            assert!(body.contains(&needle), "{needle} missing from:\n{body}");
        }
        assert!(!body.contains("csi-cont"), "no raw volume ids in labels");
        h.unpublish("csi-cont").await.unwrap();
        let body = http_get(&addr, "/metrics");
        assert!(
            body.contains(&format!(
                "certmanager_csi_managed_volume_count{{node=\"{node}\"}} 0"
            )),
            "{body}"
        );
        assert!(
            !body.contains("pod=\"cont\""),
            "per-Pod series go with the Pod"
        );
    });
}

#[test]
fn takes_over_a_volume_written_by_the_go_driver() {
    in_mount_namespace!(async {
        // A node where the Go driver ran: its layout, its metadata (no
        // format marker), its default file names, a renewal already due.
        let mut h = Harness::start(&["--recovery-spread", "1s"]).await;
        h.kill_driver();
        let pod = Pod::new("legacy", "go-pod");
        let vol = "csi-0000000000000000000000000000000000000000000000000000000000go01";
        let target = h.target(vol);
        let vol_dir = h.data_root.join("inmemfs").join(vol);
        let data = vol_dir.join("data");
        let ts = data.join("..2026_01_01_00_00_00.000000001");
        std::fs::create_dir_all(&ts).unwrap();
        for f in ["tls.crt", "tls.key", "ca.crt"] {
            std::fs::write(ts.join(f), b"old").unwrap();
            std::os::unix::fs::symlink(format!("..data/{f}"), data.join(f)).unwrap();
        }
        std::os::unix::fs::symlink("..2026_01_01_00_00_00.000000001", data.join("..data")).unwrap();
        let ctx = pod.context(&[ISSUER, ("csi.cert-manager.io/dns-names", "go.example.com")]);
        let meta = serde_json::json!({
            "volumeID": vol,
            "targetPath": target.display().to_string(),
            "nextIssuanceTime": "2026-01-01T00:00:00.000000001Z",
            "volumeContext": ctx,
        });
        std::fs::write(vol_dir.join("metadata.json"), meta.to_string()).unwrap();
        std::fs::create_dir_all(&target).unwrap();
        cmcsi_driver::mount::bind_read_only(&data, &target).unwrap();

        h.restart_driver().await;
        eventually(
            "the overdue Go volume renewed",
            Duration::from_secs(60),
            || std::fs::read(target.join("tls.crt")).is_ok_and(|c| c != b"old"),
        )
        .await;
        assert!(
            key_matches(&target, "tls.key", "tls.crt"),
            "Go file names kept"
        );
        assert!(!target.join("crt.pem").exists());
        let written = std::fs::read_to_string(vol_dir.join("metadata.json")).unwrap();
        assert!(
            !written.contains("cmcsi"),
            "still readable by the Go driver: {written}"
        );
        h.unpublish(vol).await.unwrap();
        assert!(!vol_dir.exists());
    });
}

/// One sample of the driver's `/metrics`.
fn scrape(addr: &str, name: &str) -> Option<f64> {
    http_get(addr, "/metrics").lines().find_map(|l| {
        let (n, v) = l.split_once(' ')?;
        (n == name).then(|| v.trim().parse().ok()).flatten()
    })
}

#[test]
fn key_pool_fills_at_start() {
    in_mount_namespace!(async {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let h = Harness::start(&["--metrics-bind-address", &addr, "--key-pool-size", "2"]).await;
        // No publish yet: the pool fills on its own.
        eventually("a full key pool", Duration::from_secs(60), || {
            scrape(&addr, "certmanager_csi_key_pool_available") == Some(2.0)
        })
        .await;
        assert_eq!(
            scrape(&addr, "certmanager_csi_key_pool_misses_total"),
            Some(0.0)
        );
        let pod = Pod::new("ns", "pooled");
        let target = h
            .publish(
                "csi-pooled",
                &pod,
                &[ISSUER, ("csi.cert-manager.io/dns-names", "p.example.com")],
            )
            .await
            .unwrap();
        assert!(key_matches(&target, "key.pem", "crt.pem"));
        assert_eq!(
            scrape(&addr, "certmanager_csi_key_pool_hits_total"),
            Some(1.0)
        );
        assert_eq!(
            scrape(&addr, "certmanager_csi_key_pool_misses_total"),
            Some(0.0)
        );
    });
}

/// The driver's ServiceAccount, as the manifests name it.
const DRIVER_USER: &str = "system:serviceaccount:cert-manager:cert-manager-csi-driver";

#[test]
fn https_api_with_a_client_certificate() {
    in_mount_namespace!(async {
        let api = fake_api(FakeApi::builder().tls().issuer("ca-issuer", Script::Sign)).await;
        let kc = api.client_cert_kubeconfig(DRIVER_USER).unwrap();
        let h = Harness::launch(api, Some(&kc), &[], &[]).await;
        let target = h
            .publish(
                "csi-client-cert",
                &Pod::new("ns", "p"),
                &[ISSUER, ("csi.cert-manager.io/dns-names", "c.example.com")],
            )
            .await
            .unwrap();
        assert!(key_matches(&target, "key.pem", "crt.pem"));
        let requests = h.api.requests("ns");
        assert_eq!(requests[0]["spec"]["username"], DRIVER_USER);
    });
}

#[test]
fn in_cluster_configuration_over_https() {
    in_mount_namespace!(async {
        let api = fake_api(FakeApi::builder().tls().issuer("ca-issuer", Script::Sign)).await;
        // What the kubelet gives the driver's Pod: a ServiceAccount token and
        // the cluster CA under /var/run/secrets, here on a tmpfs private to
        // this test's mount namespace.
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/var/run"])
            .status()
            .unwrap();
        assert!(status.success(), "mounting a private tmpfs on /var/run");
        let sa = std::path::Path::new("/var/run/secrets/kubernetes.io/serviceaccount");
        std::fs::create_dir_all(sa).unwrap();
        std::fs::write(sa.join("token"), TOKEN).unwrap();
        std::fs::write(sa.join("ca.crt"), api.ca_pem()).unwrap();
        std::fs::write(sa.join("namespace"), "cert-manager").unwrap();
        let env = [
            (
                "KUBERNETES_SERVICE_HOST".to_string(),
                "127.0.0.1".to_string(),
            ),
            (
                "KUBERNETES_SERVICE_PORT".to_string(),
                api.addr().port().to_string(),
            ),
        ];
        let h = Harness::launch(api, None, &env, &[]).await;
        let target = h
            .publish(
                "csi-in-cluster",
                &Pod::new("ns", "p"),
                &[ISSUER, ("csi.cert-manager.io/dns-names", "i.example.com")],
            )
            .await
            .unwrap();
        assert!(key_matches(&target, "key.pem", "crt.pem"));
        assert_eq!(h.api.requests("ns")[0]["spec"]["username"], DRIVER_USER);
    });
}

#[test]
fn running_driver_writes_no_core_dumps() {
    in_mount_namespace!(async {
        let h = Harness::start(&[]).await;
        let pid = h.driver.pid().unwrap();
        let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
        let core: Vec<&str> = limits
            .lines()
            .find_map(|l| l.strip_prefix("Max core file size"))
            .unwrap_or_else(|| panic!("no core size in /proc/{pid}/limits:\n{limits}"))
            .split_whitespace()
            .collect();
        assert_eq!(
            core[..2],
            ["0", "0"],
            "soft and hard core size limits of the running driver"
        );
        assert!(
            !h.logs().contains("process hardening:"),
            "hardening worked without warnings:\n{}",
            h.logs()
        );
    });
}
