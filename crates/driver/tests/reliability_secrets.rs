//! R5, secrets: with the driver logging at its most verbose level, the
//! token-request and PKCS#12 flows (first issuance, a republish with a
//! refreshed token, renewals, and failures of each) leave no token, no
//! password and no key material in the log, and no gRPC error message
//! carries any either.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use cmcsi_keygen::ChainSummary;
use cmcsi_testkit::in_mount_namespace;
use common::{Harness, Pod, TOKEN, eventually, read, read_set, tokens};

const POD_TOKEN: &str = "pod-sa-token-c2VjcmV0LXRva2VuLW9uZQ";
const POD_TOKEN_2: &str = "pod-sa-token-refreshed-dHdvLXR3by10d28";
const UNKNOWN_TOKEN: &str = "pod-sa-token-nobody-knows-bm9ib2R5";
const MALFORMED_TOKEN: &str = "pod-sa-token-in-broken-json-YnJva2Vu";
const PASSWORD: &str = "p12-Pa55w0rd-correct-horse-battery";

/// The base64 lines of a PEM private key: the key material itself.
fn key_lines(pem: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(pem)
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 16)
        .map(str::to_string)
        .collect()
}

#[test]
fn no_token_password_or_key_in_logs_or_errors() {
    in_mount_namespace!(async {
        let h = Harness::start(&[
            "--use-token-request",
            // The fake API is plain http here.
            "--allow-insecure-token-request",
            "--log-level",
            "trace",
            "--issuance-timeout",
            "5s",
        ])
        .await;
        h.api.add_token(POD_TOKEN, "system:serviceaccount:ns:app");
        h.api.add_token(POD_TOKEN_2, "system:serviceaccount:ns:app");
        let pod = Pod::new("ns", "secret-app");
        let tokens_1 = tokens(POD_TOKEN);
        let attrs = |t: &str| -> Vec<(&'static str, String)> {
            vec![
                ("csi.cert-manager.io/issuer-name", "ca-issuer".into()),
                ("csi.cert-manager.io/dns-names", "s.example.com".into()),
                ("csi.cert-manager.io/duration", "4s".into()),
                ("csi.cert-manager.io/pkcs12-enable", "true".into()),
                ("csi.cert-manager.io/pkcs12-password", PASSWORD.into()),
                ("csi.storage.k8s.io/serviceAccount.tokens", t.to_string()),
            ]
        };
        let as_refs =
            |v: &Vec<(&'static str, String)>| -> Vec<(&'static str, String)> { v.clone() };
        let publish = |vol: &'static str, a: Vec<(&'static str, String)>| {
            let pairs: Vec<(&str, &str)> = a.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let req = Harness::request(vol, &h.target(vol), pod.context(&pairs));
            let h = &h;
            async move { h.node().await.node_publish_volume(req).await.map(|_| ()) }
        };

        let mut errors = Vec::new();
        let mut keys = Vec::new();

        // RSA (PKCS#1) and ECDSA (PKCS#8) keys, with a PKCS#12 keystore.
        publish("csi-secret-rsa", as_refs(&attrs(&tokens_1)))
            .await
            .unwrap();
        let mut ec = attrs(&tokens_1);
        ec.push(("csi.cert-manager.io/key-algorithm", "ECDSA".into()));
        publish("csi-secret-ec", ec).await.unwrap();
        for vol in ["csi-secret-rsa", "csi-secret-ec"] {
            keys.push(read(&h.target(vol), "key.pem"));
        }
        // The kubelet republishes with a refreshed token; renewals use it.
        let rsa_target = h.target("csi-secret-rsa");
        let first = ChainSummary::from_pem(&read(&rsa_target, "crt.pem"))
            .unwrap()
            .serial_hex;
        publish("csi-secret-rsa", attrs(&tokens(POD_TOKEN_2)))
            .await
            .unwrap();
        h.api.remove_token(POD_TOKEN);
        eventually(
            "a renewal with the refreshed token",
            Duration::from_secs(30),
            || {
                read_set(&rsa_target, "key.pem", "crt.pem")
                    .is_some_and(|(_, c)| ChainSummary::from_pem(&c).unwrap().serial_hex != first)
            },
        )
        .await;
        keys.push(read(&rsa_target, "key.pem"));
        let pending_keys: Vec<Vec<u8>> = keys.clone();

        // Failures: an unknown token, a token in broken JSON, a password
        // with bad attributes, a password with a bad pkcs12-enable value.
        let failures: Vec<(&'static str, Vec<(&'static str, String)>)> = vec![
            ("csi-secret-unknown", attrs(&tokens(UNKNOWN_TOKEN))),
            (
                "csi-secret-malformed",
                attrs(&format!(
                    r#"{{"":{{"token":"{MALFORMED_TOKEN}","expirationTimestamp":"#
                )),
            ),
            ("csi-secret-badattr", {
                let mut a = attrs(&tokens(POD_TOKEN_2));
                a.push(("csi.cert-manager.io/key-size", "huge".into()));
                a
            }),
            ("csi-secret-badp12", {
                let mut a = attrs(&tokens(POD_TOKEN_2));
                a.retain(|(k, _)| *k != "csi.cert-manager.io/pkcs12-enable");
                a.push(("csi.cert-manager.io/pkcs12-enable", "maybe".into()));
                a
            }),
            // Invalid passwords: the message must say what is wrong without
            // quoting them.
            ("csi-secret-nulpw", {
                let mut a = attrs(&tokens(POD_TOKEN_2));
                a.retain(|(k, _)| *k != "csi.cert-manager.io/pkcs12-password");
                a.push((
                    "csi.cert-manager.io/pkcs12-password",
                    format!("{PASSWORD}\0"),
                ));
                a
            }),
            ("csi-secret-hugepw", {
                let mut a = attrs(&tokens(POD_TOKEN_2));
                a.retain(|(k, _)| *k != "csi.cert-manager.io/pkcs12-password");
                a.push(("csi.cert-manager.io/pkcs12-password", PASSWORD.repeat(200)));
                a
            }),
            ("csi-secret-notoken", {
                let mut a = attrs("");
                a.retain(|(k, _)| *k != "csi.storage.k8s.io/serviceAccount.tokens");
                a
            }),
        ];
        for (vol, a) in failures {
            match publish(vol, a).await {
                Err(st) => errors.push(format!("{vol}: {:?}: {}", st.code(), st.message())),
                Ok(()) => eprintln!("{vol}: accepted"),
            }
        }
        eprintln!("R5 errors:\n{}", errors.join("\n"));
        // A token the API rejects is the Pod's to fix, not a driver fault.
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("csi-secret-unknown: FailedPrecondition")),
            "{errors:?}"
        );

        let log = h.logs();
        assert!(
            log.len() > 10_000,
            "trace logging is on ({} bytes)",
            log.len()
        );
        let mut secrets: Vec<String> = [
            POD_TOKEN,
            POD_TOKEN_2,
            UNKNOWN_TOKEN,
            MALFORMED_TOKEN,
            PASSWORD,
            TOKEN,
            "PRIVATE KEY",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for k in &pending_keys {
            secrets.extend(key_lines(k));
        }
        // The Events the failures produced (on the Pods, in the API) too.
        let events = serde_json::to_string(&h.api.events()).unwrap();
        assert!(!h.api.events().is_empty(), "the failures produced Events");
        let mut leaks = Vec::new();
        for s in &secrets {
            if events.contains(s.as_str()) {
                leaks.push(format!("an Event contains {s:.30}..."));
            }
            if log.contains(s.as_str()) {
                let line = log.lines().find(|l| l.contains(s.as_str())).unwrap();
                leaks.push(format!("log contains {s:.30}...: {line:.300}"));
            }
            for e in &errors {
                if e.contains(s.as_str()) {
                    leaks.push(format!("gRPC error contains {s:.30}...: {e:.300}"));
                }
            }
        }
        // The password's obvious encodings too.
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(PASSWORD);
        assert!(
            !log.contains(&b64[..20]),
            "log contains the base64 password"
        );
        assert!(
            leaks.is_empty(),
            "{} leaks:\n{}",
            leaks.len(),
            leaks.join("\n")
        );
        // Something to check against: the flows did run.
        assert!(errors.iter().any(|e| e.contains("token")), "{errors:?}");
    });
}
