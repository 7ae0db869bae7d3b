//! Keystores end to end with the real binary: JKS (read with `keytool`), each
//! PKCS#12 profile (read with `openssl pkcs12`, `-legacy` for `LegacyRC2`), the
//! truststores and the credential bundle; all renewed together; passwords
//! from the request's `secrets` that open the keystores, survive a driver
//! restart and appear in no log line, error or Pod-readable file.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cmcsi_keygen::ChainSummary;
use cmcsi_testkit::in_mount_namespace;
use common::{Harness, Pod, eventually, http_get, read};

const P12_PASSWORD: &str = "p12-from-Secret-9f8e7d6c5b4a";
const JKS_PASSWORD: &str = "jks-from-Secret-1a2b3c4d5e6f";
const INLINE_PASSWORD: &str = "inline-p12-0a1b2c3d4e";

/// Every file of the `all` volume.
const FILES: &[&str] = &[
    "crt.pem",
    "key.pem",
    "ca.pem",
    "keystore.p12",
    "truststore.p12",
    "keystore.jks",
    "truststore.jks",
    "bundle.pem",
];

/// Copies `names` out of one file set of the mounted volume into `out`
/// (`..data` resolved once, retried when a renewal swaps the set meanwhile).
fn snapshot(target: &Path, names: &[&str], out: &Path) {
    'retry: for _ in 0..50 {
        let set = std::fs::read_link(target.join("..data")).unwrap();
        for n in names {
            match std::fs::read(target.join(&set).join(n)) {
                Ok(b) => std::fs::write(out.join(n), b).unwrap(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue 'retry,
                Err(e) => panic!("reading {n}: {e}"),
            }
        }
        return;
    }
    panic!("the file set kept changing under the reader");
}

fn run(cmd: &str, args: &[&str], dir: &Path) -> Result<Vec<u8>, String> {
    let out = Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("running {cmd}: {e}"))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(format!(
            "{cmd} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
fn has_keytool() -> bool {
    Command::new("keytool").arg("-help").output().is_ok()
}

/// The public key (DER) of a PEM private key file in `dir`.
fn pubkey_of_key(dir: &Path, file: &str) -> Vec<u8> {
    run(
        "openssl",
        &["pkey", "-in", file, "-pubout", "-outform", "DER"],
        dir,
    )
    .unwrap()
}

/// The SHA-256 fingerprint of the first certificate of a PEM file, as keytool prints it.
fn fingerprint(dir: &Path, file: &str) -> String {
    let out = run(
        "openssl",
        &["x509", "-in", file, "-noout", "-fingerprint", "-sha256"],
        dir,
    )
    .unwrap();
    let text = String::from_utf8(out).unwrap();
    text.trim().rsplit('=').next().unwrap().to_ascii_uppercase()
}

/// The key inside a PKCS#12 file, as its public key (DER).
fn pubkey_of_p12(dir: &Path, file: &str, password: &str, legacy: bool) -> Vec<u8> {
    let pass = format!("pass:{password}");
    let mut args = vec![
        "pkcs12",
        "-in",
        file,
        "-passin",
        &pass,
        "-nocerts",
        "-nodes",
        "-out",
        "p12key.pem",
    ];
    if legacy {
        args.push("-legacy");
    }
    run("openssl", &args, dir).unwrap();
    pubkey_of_key(dir, "p12key.pem")
}

/// Checks every file of one snapshot of the `all` volume against its key.pem,
/// crt.pem and ca.pem; returns the leaf's serial.
fn check_all(dir: &Path) -> String {
    let key = pubkey_of_key(dir, "key.pem");
    let leaf_fp = fingerprint(dir, "crt.pem");
    let ca_fp = fingerprint(dir, "ca.pem");

    // The bundle: PKCS#8 key first, then the leaf and the chain; its key is key.pem's.
    let bundle = std::fs::read_to_string(dir.join("bundle.pem")).unwrap();
    assert!(
        bundle.starts_with("-----BEGIN PRIVATE KEY-----"),
        "{bundle}"
    );
    assert_eq!(pubkey_of_key(dir, "bundle.pem"), key, "bundle key");
    assert_eq!(fingerprint(dir, "bundle.pem"), leaf_fp, "bundle leaf");

    // LegacyRC2 keystore: only with -legacy; holds key.pem's key.
    let pass = format!("pass:{P12_PASSWORD}");
    assert!(
        run(
            "openssl",
            &["pkcs12", "-in", "keystore.p12", "-passin", &pass, "-nodes"],
            dir
        )
        .is_err(),
        "LegacyRC2 read without -legacy"
    );
    run(
        "openssl",
        &[
            "pkcs12",
            "-legacy",
            "-info",
            "-nokeys",
            "-in",
            "keystore.p12",
            "-passin",
            &pass,
        ],
        dir,
    )
    .unwrap();
    assert_eq!(
        pubkey_of_p12(dir, "keystore.p12", P12_PASSWORD, true),
        key,
        "keystore.p12 key"
    );
    let trust = run(
        "openssl",
        &[
            "pkcs12",
            "-legacy",
            "-in",
            "truststore.p12",
            "-passin",
            &pass,
            "-nokeys",
            "-out",
            "trust.pem",
        ],
        dir,
    );
    trust.unwrap();
    assert_eq!(fingerprint(dir, "trust.pem"), ca_fp, "truststore.p12");

    if has_keytool() {
        let listing = String::from_utf8(
            run(
                "keytool",
                &[
                    "-list",
                    "-v",
                    "-keystore",
                    "keystore.jks",
                    "-storepass",
                    JKS_PASSWORD,
                ],
                dir,
            )
            .unwrap(),
        )
        .unwrap();
        let entry = listing
            .split("Alias name: ")
            .find(|e| e.starts_with("myapp\n"))
            .unwrap_or_else(|| panic!("no alias myapp in {listing}"));
        assert!(entry.contains("Entry type: PrivateKeyEntry"), "{entry}");
        let first = entry.split("Certificate[2]").next().unwrap();
        assert!(
            first.contains(&leaf_fp),
            "the entry's certificate is the leaf: {first}"
        );
        let trust = String::from_utf8(
            run(
                "keytool",
                &[
                    "-list",
                    "-v",
                    "-keystore",
                    "truststore.jks",
                    "-storepass",
                    JKS_PASSWORD,
                ],
                dir,
            )
            .unwrap(),
        )
        .unwrap();
        assert!(trust.contains("Alias name: ca\n"), "{trust}");
        assert!(trust.contains("Entry type: trustedCertEntry"), "{trust}");
        assert!(trust.contains(&ca_fp), "{trust}");
        // And the JKS key is key.pem's: keytool converts it, OpenSSL reads it.
        let _ = std::fs::remove_file(dir.join("from-jks.p12"));
        run(
            "keytool",
            &[
                "-importkeystore",
                "-srckeystore",
                "keystore.jks",
                "-srcstoretype",
                "JKS",
                "-srcstorepass",
                JKS_PASSWORD,
                "-srcalias",
                "myapp",
                "-destkeystore",
                "from-jks.p12",
                "-deststoretype",
                "PKCS12",
                "-deststorepass",
                "exported",
                "-noprompt",
            ],
            dir,
        )
        .unwrap();
        assert_eq!(
            pubkey_of_p12(dir, "from-jks.p12", "exported", false),
            key,
            "keystore.jks key"
        );
    } else {
        eprintln!("SKIPPED the keytool checks: keytool (OpenJDK) is not installed");
    }
    ChainSummary::from_pem(&std::fs::read(dir.join("crt.pem")).unwrap())
        .unwrap()
        .serial_hex
}

#[test]
fn keystores_from_secrets_renew_together_and_survive_a_restart() {
    in_mount_namespace!(async {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let metrics = format!("127.0.0.1:{port}");
        let mut h =
            Harness::start(&["--log-level", "trace", "--metrics-bind-address", &metrics]).await;
        let pod = Pod::new("ks", "java-app");
        let attrs = [
            ("csi.cert-manager.io/issuer-name", "ca-issuer"),
            ("csi.cert-manager.io/dns-names", "java.example.com"),
            // Java refuses a certificate with an empty subject and a
            // non-critical SAN extension, as the test CA writes them.
            ("csi.cert-manager.io/common-name", "java.example.com"),
            ("csi.cert-manager.io/key-algorithm", "ECDSA"),
            ("csi.cert-manager.io/duration", "6s"),
            ("csi.cert-manager.io/pkcs12-enable", "true"),
            ("csi.cert-manager.io/pkcs12-password-secret-key", "p12"),
            ("csi.cert-manager.io/pkcs12-profile", "LegacyRC2"),
            (
                "csi.cert-manager.io/pkcs12-truststore-filename",
                "truststore.p12",
            ),
            ("csi.cert-manager.io/jks-enable", "true"),
            ("csi.cert-manager.io/jks-password-secret-key", "jks"),
            ("csi.cert-manager.io/jks-alias", "MyApp"),
            ("csi.cert-manager.io/credential-bundle-file", "bundle.pem"),
        ];
        let vol = "csi-keystores-all";
        let target = h.target(vol);
        let mut req = Harness::request(vol, &target, pod.context(&attrs));
        req.secrets = HashMap::from([
            ("p12".to_string(), P12_PASSWORD.to_string()),
            ("jks".to_string(), JKS_PASSWORD.to_string()),
            ("unrelated".to_string(), "not-kept-7766".to_string()),
        ]);
        h.node().await.node_publish_volume(req).await.unwrap();

        let work = tempfile::tempdir().unwrap();
        snapshot(&target, FILES, work.path());
        let first = check_all(work.path());

        // A renewal replaces them all together.
        eventually("a renewal", Duration::from_secs(30), || {
            ChainSummary::from_pem(&read(&target, "crt.pem")).is_ok_and(|s| s.serial_hex != first)
        })
        .await;
        snapshot(&target, FILES, work.path());
        let second = check_all(work.path());
        assert_ne!(second, first);

        // After a restart the kubelet sends no secrets; renewals still use them.
        h.restart_driver().await;
        eventually(
            "a renewal after the restart",
            Duration::from_secs(30),
            || {
                ChainSummary::from_pem(&read(&target, "crt.pem"))
                    .is_ok_and(|s| s.serial_hex != second)
            },
        )
        .await;
        snapshot(&target, FILES, work.path());
        check_all(work.path());

        // Kept privately: 0600 beside metadata.json, only the named keys.
        let vol_dir = h.volume_dir(vol);
        let secrets_file = vol_dir.join(cmcsi_store::SECRETS_FILE);
        let mode = std::fs::metadata(&secrets_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let kept = std::fs::read_to_string(&secrets_file).unwrap();
        assert!(!kept.contains("not-kept-7766"), "an unrelated key was kept");
        let metadata = std::fs::read_to_string(vol_dir.join("metadata.json")).unwrap();
        for password in [P12_PASSWORD, JKS_PASSWORD] {
            assert!(!metadata.contains(password), "password in metadata.json");
            for name in FILES {
                let bytes = read(&target, name);
                assert!(
                    !String::from_utf8_lossy(&bytes).contains(password),
                    "password readable in {name}"
                );
            }
            assert!(!h.logs().contains(password), "password in the log");
        }
        let scraped = http_get(&metrics, "/metrics");
        assert!(scraped.contains("200 OK"), "{scraped}");
        for password in [P12_PASSWORD, JKS_PASSWORD, "not-kept-7766"] {
            assert!(!scraped.contains(password), "a password in the metrics");
        }
    });
}

#[test]
fn each_pkcs12_profile_and_secret_problems() {
    in_mount_namespace!(async {
        let h = Harness::start(&["--log-level", "trace"]).await;
        let pod = Pod::new("ks", "profiles");
        for (vol, profile, legacy) in [
            ("csi-ks-legacyrc2", "LegacyRC2", true),
            ("csi-ks-legacydes", "LegacyDES", false),
            ("csi-ks-modern", "Modern2023", false),
        ] {
            let target = h
                .publish(
                    vol,
                    &pod,
                    &[
                        ("csi.cert-manager.io/issuer-name", "ca-issuer"),
                        ("csi.cert-manager.io/dns-names", "p.example.com"),
                        ("csi.cert-manager.io/common-name", "p.example.com"),
                        ("csi.cert-manager.io/key-algorithm", "ECDSA"),
                        ("csi.cert-manager.io/pkcs12-enable", "true"),
                        ("csi.cert-manager.io/pkcs12-password", INLINE_PASSWORD),
                        ("csi.cert-manager.io/pkcs12-profile", profile),
                    ],
                )
                .await
                .unwrap();
            let work = tempfile::tempdir().unwrap();
            snapshot(&target, &["key.pem", "keystore.p12"], work.path());
            let pass = format!("pass:{INLINE_PASSWORD}");
            let info = run(
                "openssl",
                &[
                    "pkcs12",
                    "-info",
                    "-noout",
                    "-in",
                    "keystore.p12",
                    "-passin",
                    &pass,
                    if legacy { "-legacy" } else { "-nodes" },
                ],
                work.path(),
            );
            info.unwrap();
            assert_eq!(
                pubkey_of_p12(work.path(), "keystore.p12", INLINE_PASSWORD, legacy),
                pubkey_of_key(work.path(), "key.pem"),
                "{profile}"
            );
            if has_keytool() {
                let listing = run(
                    "keytool",
                    &[
                        "-list",
                        "-keystore",
                        "keystore.p12",
                        "-storetype",
                        "PKCS12",
                        "-storepass",
                        INLINE_PASSWORD,
                    ],
                    work.path(),
                )
                .unwrap();
                let listing = String::from_utf8(listing).unwrap();
                assert!(
                    listing.contains("certificate, ") && listing.contains("PrivateKeyEntry"),
                    "{profile}: {listing}"
                );
            } else {
                eprintln!("SKIPPED keytool on {profile}: keytool (OpenJDK) is not installed");
            }
        }

        // A Secret key the request's secrets lack: INVALID_ARGUMENT naming the
        // key, never a value; an inline password and a Secret key together too.
        let vol = "csi-ks-missing";
        let target = h.target(vol);
        let mut req = Harness::request(
            vol,
            &target,
            pod.context(&[
                ("csi.cert-manager.io/issuer-name", "ca-issuer"),
                ("csi.cert-manager.io/dns-names", "p.example.com"),
                ("csi.cert-manager.io/jks-enable", "true"),
                ("csi.cert-manager.io/jks-password-secret-key", "jks"),
                ("csi.cert-manager.io/pkcs12-enable", "true"),
                ("csi.cert-manager.io/pkcs12-password", INLINE_PASSWORD),
                ("csi.cert-manager.io/pkcs12-password-secret-key", "other"),
            ]),
        );
        req.secrets = HashMap::from([("other".to_string(), JKS_PASSWORD.to_string())]);
        let err = h.node().await.node_publish_volume(req).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
        let msg = err.message();
        assert!(msg.contains("has no key \"jks\""), "{msg}");
        assert!(msg.contains("give the password once"), "{msg}");
        assert!(
            !msg.contains(JKS_PASSWORD) && !msg.contains(INLINE_PASSWORD),
            "{msg}"
        );
        assert!(
            !h.logs().contains(JKS_PASSWORD),
            "a Secret value in the log"
        );
        assert!(!h.logs().contains(INLINE_PASSWORD), "a password in the log");
    });
}
