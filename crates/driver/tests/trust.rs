//! Trust bundles end to end with the real binary, real mounts and the fake API
//! serving ClusterTrustBundles (v1, or only v1beta1) and ConfigMaps with watches:
//! the CA file holds the bundle, follows its source without reissuing, survives a CA
//! rotation (checked with OpenSSL), refuses bad sources and keeps working after a
//! restart.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cmcsi_keygen::TrustBundle;
use cmcsi_testkit::{FakeApi, Script, in_mount_namespace};
use common::*;

const SIGNER: &str = "example.com/demo";
const CTB_PROD: &str = "example.com:demo:prod";
const CTB_DEV: &str = "example.com:demo:dev";
const NS: &str = "ns";
/// The per-volume floor between rewrites (default 10s), lowered so the story runs fast;
/// a refresh goes through the renewer's wake, which keeps it.
const FLOOR: &str = "--min-issuance-interval=1s";

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The bundle the driver must write for these PEM sources.
fn bundle(sources: &[&str]) -> Vec<u8> {
    let mut b = TrustBundle::new(1 << 20);
    for (i, s) in sources.iter().enumerate() {
        b.add_source(&i.to_string(), s.as_bytes()).unwrap();
    }
    b.to_pem().into_bytes()
}

fn attrs<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut a = vec![
        ("csi.cert-manager.io/issuer-name", "ca-issuer"),
        ("csi.cert-manager.io/dns-names", "svc.example.com"),
    ];
    a.extend_from_slice(extra);
    a
}

fn requests(api: &FakeApi) -> usize {
    api.requests(NS).len()
}

/// `openssl verify -CAfile ca leaf` (the leaf is the first certificate of `crt`).
fn openssl_verifies(ca: &Path, crt: &Path) -> Result<(), String> {
    let out = Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(ca)
        .arg(crt)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// `keytool -list` of a truststore: the number of entries it reports.
fn keytool_entries(store: &Path, store_type: &str) -> Option<usize> {
    let out = Command::new("keytool")
        .args([
            "-list",
            "-storetype",
            store_type,
            "-storepass",
            "changeit",
            "-keystore",
        ])
        .arg(store)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "keytool: {text}");
    let n = text
        .split("contains ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(n)
}

/// The whole story, run once per served API version.
async fn scenario(h: &mut Harness, configmaps: bool, metrics: Option<&str>) {
    let ca0 = h.api.issuer_ca_pem("ca-issuer");
    let extra = h.api.rotate_issuer_ca("unrelated-ca").unwrap();
    h.api
        .put_cluster_trust_bundle(CTB_PROD, Some(SIGNER), &labels(&[("env", "prod")]), &ca0)
        .unwrap();
    h.api
        .put_cluster_trust_bundle(CTB_DEV, Some(SIGNER), &labels(&[("env", "dev")]), &extra)
        .unwrap();

    // By name, with both truststores.
    let pod = Pod::new(NS, "by-name");
    let by_name = h
        .publish(
            "by-name",
            &pod,
            &attrs(&[
                ("csi.cert-manager.io/cluster-trust-bundle-name", CTB_PROD),
                ("csi.cert-manager.io/jks-enable", "true"),
                ("csi.cert-manager.io/jks-password", "changeit"),
                ("csi.cert-manager.io/pkcs12-enable", "true"),
                ("csi.cert-manager.io/pkcs12-password", "changeit"),
                (
                    "csi.cert-manager.io/pkcs12-truststore-filename",
                    "truststore.p12",
                ),
            ]),
        )
        .await
        .unwrap();
    assert_eq!(read(&by_name, "ca.pem"), bundle(&[&ca0]));
    // By signer, all bundles, and with a label selector.
    let all = h
        .publish(
            "by-signer",
            &Pod::new(NS, "by-signer"),
            &attrs(&[(
                "csi.cert-manager.io/cluster-trust-bundle-signer-name",
                SIGNER,
            )]),
        )
        .await
        .unwrap();
    assert_eq!(read(&all, "ca.pem"), bundle(&[&ca0, &extra]));
    let dev = h
        .publish(
            "by-selector",
            &Pod::new(NS, "by-selector"),
            &attrs(&[
                (
                    "csi.cert-manager.io/cluster-trust-bundle-signer-name",
                    SIGNER,
                ),
                (
                    "csi.cert-manager.io/cluster-trust-bundle-label-selector",
                    "env=dev",
                ),
            ]),
        )
        .await
        .unwrap();
    assert_eq!(read(&dev, "ca.pem"), bundle(&[&extra]));

    // ConfigMaps: labelled, unlabelled, garbage; or the flag is off.
    let trust_label = labels(&[("trust.cert-manager.io/bundle", "my-bundle")]);
    let data = |pem: &str| labels(&[("trust-bundle.pem", pem)]);
    h.api
        .put_config_map(NS, "my-bundle", &trust_label, &data(&ca0))
        .unwrap();
    h.api
        .put_config_map(NS, "unlabelled", &BTreeMap::new(), &data(&ca0))
        .unwrap();
    h.api
        .put_config_map(NS, "garbage", &trust_label, &data("not a certificate"))
        .unwrap();
    let cm = |name: &'static str| attrs(&[("csi.cert-manager.io/trust-bundle-configmap", name)]);
    if configmaps {
        let target = h
            .publish("by-cm", &Pod::new(NS, "by-cm"), &cm("my-bundle"))
            .await
            .unwrap();
        assert_eq!(read(&target, "ca.pem"), bundle(&[&ca0]));
        let e = h
            .publish("unlabelled", &Pod::new(NS, "u"), &cm("unlabelled"))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
        assert!(e.message().contains("lacks the label"), "{}", e.message());
        let e = h
            .publish("garbage", &Pod::new(NS, "g"), &cm("garbage"))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
        assert!(
            e.message().contains("ConfigMap ns/garbage") && e.message().contains("outside PEM"),
            "{}",
            e.message()
        );
    } else {
        let e = h
            .publish("by-cm", &Pod::new(NS, "by-cm"), &cm("my-bundle"))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
        assert!(
            e.message().contains("--trust-bundle-configmaps"),
            "{}",
            e.message()
        );
    }

    // Missing sources: non-optional fails naming it, before any request; optional
    // falls back to the issuer's CA.
    let before = requests(&h.api);
    let e = h
        .publish(
            "missing",
            &Pod::new(NS, "missing"),
            &attrs(&[("csi.cert-manager.io/cluster-trust-bundle-name", "nope")]),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
    assert!(
        e.message().contains("ClusterTrustBundle \"nope\""),
        "{}",
        e.message()
    );
    assert_eq!(
        requests(&h.api),
        before,
        "no request for a volume without its bundle"
    );
    let optional = h
        .publish(
            "optional",
            &Pod::new(NS, "optional"),
            &attrs(&[
                ("csi.cert-manager.io/cluster-trust-bundle-name", "nope"),
                ("csi.cert-manager.io/trust-bundle-optional", "true"),
            ]),
        )
        .await
        .unwrap();
    assert_eq!(read(&optional, "ca.pem"), ca0.as_bytes());
    // Two sources at once.
    let e = h
        .publish(
            "two",
            &Pod::new(NS, "two"),
            &attrs(&[
                ("csi.cert-manager.io/cluster-trust-bundle-name", CTB_PROD),
                ("csi.cert-manager.io/trust-bundle-configmap", "my-bundle"),
            ]),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    assert!(
        e.message().contains("at most one trust bundle source"),
        "{}",
        e.message()
    );

    // A CA rotation: the issuer's CA changes and the bundle holds old and new.
    let (crt0, key0) = (read(&by_name, "crt.pem"), read(&by_name, "key.pem"));
    let before = requests(&h.api);
    let ca1 = h.api.rotate_issuer_ca("ca-issuer").unwrap();
    h.api
        .put_cluster_trust_bundle(
            CTB_PROD,
            Some(SIGNER),
            &labels(&[("env", "prod")]),
            &format!("{ca0}{ca1}"),
        )
        .unwrap();
    let both = bundle(&[&ca0, &ca1]);
    eventually(
        "the CA file to follow its source",
        Duration::from_secs(10),
        || read(&by_name, "ca.pem") == both,
    )
    .await;
    assert_eq!(read(&by_name, "crt.pem"), crt0, "certificate unchanged");
    assert_eq!(read(&by_name, "key.pem"), key0, "key unchanged");
    assert_eq!(
        requests(&h.api),
        before,
        "no CertificateRequest for a trust refresh"
    );
    for (file, ty) in [("truststore.jks", "JKS"), ("truststore.p12", "PKCS12")] {
        if let Some(n) = keytool_entries(&by_name.join(file), ty) {
            assert_eq!(n, 2, "{file} holds both CAs");
        }
    }
    let after = h
        .publish(
            "after",
            &Pod::new(NS, "after"),
            &attrs(&[("csi.cert-manager.io/cluster-trust-bundle-name", CTB_PROD)]),
        )
        .await
        .unwrap();
    assert_eq!(read(&after, "ca.pem"), both);
    // Each verifies the other's leaf with its own CA file; the issuer's CA alone would not.
    openssl_verifies(&by_name.join("ca.pem"), &after.join("crt.pem")).unwrap();
    openssl_verifies(&after.join("ca.pem"), &by_name.join("crt.pem")).unwrap();
    assert!(openssl_verifies(&optional.join("ca.pem"), &after.join("crt.pem")).is_err());

    // A source deleted: the last good bundle stays, with an Event on the Pod.
    assert!(h.api.delete_cluster_trust_bundle(CTB_DEV));
    eventually(
        "a TrustBundleMissing Event",
        Duration::from_secs(15),
        || {
            h.api
                .events_regarding(NS, "by-selector")
                .iter()
                .any(|e| e["reason"] == "TrustBundleMissing")
        },
    )
    .await;
    assert_eq!(read(&dev, "ca.pem"), bundle(&[&extra]));
    if let Some(addr) = metrics {
        let body = http_get(addr, "/metrics");
        for needle in [
            "certmanager_csi_trust_bundle_volumes{kind=\"ClusterTrustBundle\",source=\"example.com:demo:prod\"} 2",
            "certmanager_csi_trust_bundle_volumes{kind=\"ClusterTrustBundleSigner\",source=\"example.com/demo\"} 2",
            "certmanager_csi_trust_bundle_missing_total{kind=\"ClusterTrustBundleSigner\",source=\"example.com/demo\"} 1",
        ] {
            assert!(body.contains(needle), "{needle} not in\n{body}");
        }
        let refreshed = metric_value(
            &body,
            "certmanager_csi_trust_bundle_last_refresh_timestamp_seconds",
        );
        assert!(refreshed.is_some_and(|t| t > 1.0e9), "{body}");
    }

    // After a restart, a change still reaches existing volumes.
    h.restart_driver().await;
    let ca2 = h.api.rotate_issuer_ca("third-ca").unwrap();
    h.api
        .put_cluster_trust_bundle(CTB_DEV, Some(SIGNER), &labels(&[("env", "prod")]), &ca2)
        .unwrap();
    let expect = bundle(&[&ca0, &ca1, &ca2]);
    eventually(
        "a change after a restart to reach the volume",
        Duration::from_secs(10),
        || read(&all, "ca.pem") == expect,
    )
    .await;
}

#[test]
fn cluster_trust_bundles_v1_and_configmaps() {
    in_mount_namespace!(async {
        let api = fake_api(FakeApi::builder().issuer("ca-issuer", Script::Sign)).await;
        let addr = free_port_address();
        let mut h = Harness::with_api(
            api,
            &[
                "--trust-bundle-configmaps",
                "--metrics-bind-address",
                &addr,
                FLOOR,
            ],
        )
        .await;
        scenario(&mut h, true, Some(&addr)).await;
    });
}

#[test]
fn only_v1beta1_served_and_configmaps_off() {
    in_mount_namespace!(async {
        let api = fake_api(FakeApi::builder().issuer("ca-issuer", Script::Sign)).await;
        api.set_certificates_versions(&["v1beta1"]);
        let mut h = Harness::with_api(api, &[FLOOR]).await;
        scenario(&mut h, false, None).await;
        assert!(
            h.logs().contains("certificates.k8s.io/v1beta1"),
            "the version is logged"
        );
    });
}
