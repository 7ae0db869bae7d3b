//! The test issuer and CA: scripts per issuer name, and what the signed
//! certificates carry.
#![allow(clippy::unwrap_used)]

mod common;

use cmcsi_testkit::{FakeApi, Script, Verb};
use common::*;
use kube::api::PostParams;
use p256::ecdsa::{DerSignature, VerifyingKey, signature::Verifier};
use serde_json::{Value, json};
use std::time::Duration;
use x509_cert::Certificate;
use x509_cert::der::{Decode, DecodePem, Encode};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAltName};

const T: Duration = Duration::from_secs(20);

async fn submit(api: &FakeApi, ns: &str, body: Value) -> String {
    let crs = crs(api.client().await.unwrap(), ns);
    crs.create(&PostParams::default(), &dynobj(body))
        .await
        .unwrap()
        .metadata
        .name
        .unwrap()
}

async fn finished(api: &FakeApi, ns: &str, name: &str) -> Value {
    api.wait_for_request(ns, T, |o| {
        o["metadata"]["name"] == name && condition(o, "Ready").is_some()
    })
    .await
    .unwrap()
}

fn ext<T: for<'a> Decode<'a>>(cert: &Certificate, oid: &str) -> Option<T> {
    let oid = x509_cert::der::asn1::ObjectIdentifier::new(oid).unwrap();
    cert.tbs_certificate()
        .extensions()?
        .iter()
        .find(|e| e.extn_id == oid)
        .map(|e| T::from_der(e.extn_value.as_bytes()).unwrap())
}

fn verify_signed_by(leaf: &Certificate, ca: &Certificate) {
    let ca_key = VerifyingKey::from_sec1_bytes(
        ca.tbs_certificate()
            .subject_public_key_info()
            .subject_public_key
            .raw_bytes(),
    )
    .unwrap();
    let tbs = leaf.tbs_certificate().to_der().unwrap();
    let sig = DerSignature::from_bytes(leaf.signature().raw_bytes()).unwrap();
    ca_key.verify(&tbs, &sig).unwrap();
    assert_eq!(
        leaf.tbs_certificate().issuer(),
        ca.tbs_certificate().subject()
    );
}

#[tokio::test]
async fn sign_honours_sans_duration_usages_and_chain() {
    let api = FakeApi::builder()
        .issuer("ca", Script::Sign)
        .start()
        .await
        .unwrap();
    let (key, pem) = csr(
        "web",
        &["web.example", "web.local"],
        &["spiffe://td/ns/a/sa/b"],
    );
    let mut body = cr("ca", &pem, json!({}));
    body["spec"]["duration"] = json!("1h30m0s");
    body["spec"]["usages"] = json!([
        "digital signature",
        "key encipherment",
        "server auth",
        "client auth"
    ]);
    let name = submit(&api, "s", body).await;
    let o = finished(&api, "s", &name).await;
    assert_eq!(ready_reason(&o).as_deref(), Some("Issued"));
    assert_eq!(condition(&o, "Approved").unwrap()["status"], "True");
    let leaf_pem = unb64(o["status"]["certificate"].as_str().unwrap());
    let ca_pem = unb64(o["status"]["ca"].as_str().unwrap());
    assert_eq!(ca_pem, api.ca_pem());
    let leaf = Certificate::from_pem(&leaf_pem).unwrap();
    let ca = Certificate::from_pem(&ca_pem).unwrap();
    verify_signed_by(&leaf, &ca);
    // The leaf carries the CSR's public key.
    assert_eq!(
        leaf.tbs_certificate()
            .subject_public_key_info()
            .subject_public_key
            .raw_bytes(),
        key.verifying_key().to_sec1_point(false).as_bytes()
    );
    // SANs from the CSR.
    let san: SubjectAltName = ext(&leaf, "2.5.29.17").unwrap();
    let names: Vec<String> = san
        .0
        .iter()
        .map(|n| match n {
            GeneralName::DnsName(d) => d.to_string(),
            GeneralName::UniformResourceIdentifier(u) => u.to_string(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(names, ["web.example", "web.local", "spiffe://td/ns/a/sa/b"]);
    // Duration.
    let v = leaf.tbs_certificate().validity();
    let life = v.not_after.to_unix_duration() - v.not_before.to_unix_duration();
    assert_eq!(life, Duration::from_secs(5400));
    // Usages.
    let ku: KeyUsage = ext(&leaf, "2.5.29.15").unwrap();
    assert!(ku.digital_signature() && ku.key_encipherment() && !ku.key_cert_sign());
    let eku: ExtendedKeyUsage = ext(&leaf, "2.5.29.37").unwrap();
    assert_eq!(eku.0.len(), 2);
    let bc: BasicConstraints = ext(&leaf, "2.5.29.19").unwrap();
    assert!(!bc.ca);
    api.shutdown().await;
}

#[tokio::test]
async fn openssl_verifies_the_chain() {
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: openssl CLI not found");
        return;
    }
    let api = FakeApi::builder()
        .default_script(Script::Sign)
        .start()
        .await
        .unwrap();
    let (_, pem) = csr("", &["svc.example"], &[]);
    let name = submit(&api, "o", cr("anything", &pem, json!({}))).await;
    let o = finished(&api, "o", &name).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("leaf.pem"),
        unb64(o["status"]["certificate"].as_str().unwrap()),
    )
    .unwrap();
    std::fs::write(dir.path().join("ca.pem"), api.ca_pem()).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["verify", "-CAfile", "ca.pem", "leaf.pem"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::process::Command::new("openssl")
        .args(["x509", "-in", "leaf.pem", "-noout", "-text"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("DNS:svc.example"), "{text}");
    api.shutdown().await;
}

#[tokio::test]
async fn is_ca_and_default_duration() {
    let api = FakeApi::builder()
        .issuer("ca", Script::Sign)
        .start()
        .await
        .unwrap();
    let (_, pem) = csr("sub-ca", &[], &[]);
    let mut body = cr("ca", &pem, json!({}));
    body["spec"]["isCA"] = json!(true);
    body["spec"].as_object_mut().unwrap().remove("usages");
    let name = submit(&api, "c", body).await;
    let o = finished(&api, "c", &name).await;
    let leaf = Certificate::from_pem(unb64(o["status"]["certificate"].as_str().unwrap())).unwrap();
    let bc: BasicConstraints = ext(&leaf, "2.5.29.19").unwrap();
    assert!(bc.ca);
    let ku: KeyUsage = ext(&leaf, "2.5.29.15").unwrap();
    assert!(ku.key_cert_sign());
    let v = leaf.tbs_certificate().validity();
    let life = v.not_after.to_unix_duration() - v.not_before.to_unix_duration();
    assert_eq!(life, Duration::from_secs(2160 * 3600));
    api.shutdown().await;
}

#[tokio::test]
async fn deny_fail_invalid_scripts() {
    let api = FakeApi::builder()
        .issuer(
            "deny",
            Script::Deny {
                reason: "NoWay".into(),
                message: "not today".into(),
            },
        )
        .issuer(
            "fail",
            Script::Fail {
                message: "backend down".into(),
            },
        )
        .issuer(
            "invalid",
            Script::InvalidRequest {
                message: "bad CN".into(),
            },
        )
        .start()
        .await
        .unwrap();
    let (_, pem) = csr("a", &[], &[]);

    let n = submit(&api, "x", cr("deny", &pem, json!({}))).await;
    let o = finished(&api, "x", &n).await;
    let denied = condition(&o, "Denied").unwrap();
    assert_eq!(
        (denied["status"].as_str(), denied["reason"].as_str()),
        (Some("True"), Some("NoWay"))
    );
    assert_eq!(denied["message"], "not today");
    assert!(condition(&o, "Approved").is_none());
    assert_eq!(ready_reason(&o).as_deref(), Some("Denied"));
    assert_eq!(condition(&o, "Ready").unwrap()["status"], "False");
    assert!(o["status"]["failureTime"].is_string());
    assert!(o["status"].get("certificate").is_none());

    let n = submit(&api, "x", cr("fail", &pem, json!({}))).await;
    let o = finished(&api, "x", &n).await;
    assert_eq!(ready_reason(&o).as_deref(), Some("Failed"));
    assert_eq!(condition(&o, "Ready").unwrap()["message"], "backend down");
    assert!(o["status"]["failureTime"].is_string());

    let n = submit(&api, "x", cr("invalid", &pem, json!({}))).await;
    let o = finished(&api, "x", &n).await;
    assert_eq!(condition(&o, "InvalidRequest").unwrap()["status"], "True");
    assert_eq!(ready_reason(&o).as_deref(), Some("Failed"));
    api.shutdown().await;
}

#[tokio::test]
async fn garbage_csr_becomes_invalid_request() {
    let api = FakeApi::builder()
        .issuer("ca", Script::Sign)
        .start()
        .await
        .unwrap();
    let n = submit(&api, "g", cr("ca", "not a csr", json!({}))).await;
    let o = finished(&api, "g", &n).await;
    assert_eq!(condition(&o, "InvalidRequest").unwrap()["status"], "True");
    assert_eq!(ready_reason(&o).as_deref(), Some("Failed"));
    api.shutdown().await;
}

#[tokio::test]
async fn unknown_issuer_and_never_stay_pending_until_scripted() {
    let api = FakeApi::builder()
        .issuer("silent", Script::Never)
        .start()
        .await
        .unwrap();
    let (_, pem) = csr("a", &[], &[]);
    let unknown = submit(&api, "p", cr("nobody", &pem, json!({}))).await;
    let silent = submit(&api, "p", cr("silent", &pem, json!({}))).await;
    // Let the issuer run: nothing may happen.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for n in [&unknown, &silent] {
        let o = api.request("p", n).unwrap();
        assert!(o.get("status").is_none(), "{o}");
    }
    // Scripting the issuer later picks up its pending requests.
    api.set_issuer("nobody", Script::Sign);
    let o = finished(&api, "p", &unknown).await;
    assert_eq!(ready_reason(&o).as_deref(), Some("Issued"));
    assert!(api.request("p", &silent).unwrap().get("status").is_none());
    // Acting on one request directly.
    api.act_on("p", &silent, Script::fail()).await;
    assert_eq!(
        ready_reason(&api.request("p", &silent).unwrap()).as_deref(),
        Some("Failed")
    );
    api.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn delay_approves_then_signs_later() {
    let api = FakeApi::builder()
        .issuer("slow", Script::Delay(Duration::from_secs(3600)))
        .start()
        .await
        .unwrap();
    let (_, pem) = csr("a", &[], &[]);
    let o = api
        .insert_request("d", cr("slow", &pem, json!({})), "someone")
        .unwrap();
    let name = o["metadata"]["name"].as_str().unwrap().to_string();
    let approved = api
        .wait_for_request("d", T, |o| {
            o["metadata"]["name"] == name.as_str() && condition(o, "Approved").is_some()
        })
        .await
        .unwrap();
    assert!(condition(&approved, "Ready").is_none());
    // Paused time: the hour passes as soon as everything is idle.
    let o = api
        .wait_for_request("d", Duration::from_secs(7200), |o| {
            o["metadata"]["name"] == name.as_str() && condition(o, "Ready").is_some()
        })
        .await
        .unwrap();
    assert_eq!(ready_reason(&o).as_deref(), Some("Issued"));
    assert_eq!(o["spec"]["username"], "someone");
    assert_eq!(
        api.counts().total(),
        0,
        "insert_request does not go through HTTP"
    );
    api.shutdown().await;
}

#[tokio::test]
async fn fifty_issuances_counted() {
    let api = FakeApi::builder()
        .default_script(Script::Sign)
        .start()
        .await
        .unwrap();
    let crs = crs(api.client().await.unwrap(), "many");
    let (_, pem) = csr("a", &["a.example"], &[]);
    for _ in 0..50 {
        crs.create(
            &PostParams::default(),
            &dynobj(cr("ca", &pem, json!({"node": "n1"}))),
        )
        .await
        .unwrap();
    }
    api.wait_for(T, |all| {
        all.len() == 50
            && all
                .iter()
                .all(|o| ready_reason(o).as_deref() == Some("Issued"))
    })
    .await
    .unwrap();
    let c = api.counts();
    assert_eq!(c.verb(Verb::Create), 50);
    assert_eq!(c.of(Verb::Create, "certificaterequests"), 50);
    assert_eq!(
        c.verb(Verb::Get) + c.verb(Verb::List) + c.verb(Verb::Watch),
        0
    );
    assert_eq!(
        c.total(),
        50,
        "the in-process issuer's writes are not API requests"
    );
    api.reset_counts();
    assert_eq!(api.counts().total(), 0);
    api.shutdown().await;
}
