//! Shared helpers for the testkit integration tests.
#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

use base64::Engine as _;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use p256::ecdsa::{DerSignature, SigningKey};
use serde_json::{Value, json};
use std::str::FromStr;
use x509_cert::builder::{Builder, RequestBuilder};
use x509_cert::der::EncodePem;
use x509_cert::der::asn1::Ia5String;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::name::Name;

pub fn key() -> SigningKey {
    loop {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).unwrap();
        if let Ok(k) = SigningKey::from_slice(&b) {
            return k;
        }
    }
}

/// A PEM CSR for a fresh P-256 key with these DNS and URI SANs.
pub fn csr(cn: &str, dns: &[&str], uris: &[&str]) -> (SigningKey, String) {
    let key = key();
    let subject = if cn.is_empty() {
        Name::default()
    } else {
        Name::from_str(&format!("CN={cn}")).unwrap()
    };
    let mut b = RequestBuilder::new(subject).unwrap();
    let mut names: Vec<GeneralName> = dns
        .iter()
        .map(|d| GeneralName::DnsName(Ia5String::new(d).unwrap()))
        .collect();
    names.extend(
        uris.iter()
            .map(|u| GeneralName::UniformResourceIdentifier(Ia5String::new(u).unwrap())),
    );
    if !names.is_empty() {
        b.add_extension(&SubjectAltName(names)).unwrap();
    }
    let req = b.build::<_, DerSignature>(&key).unwrap();
    (key, req.to_pem(Default::default()).unwrap())
}

pub fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

pub fn unb64(s: &str) -> String {
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(s).unwrap()).unwrap()
}

/// A CertificateRequest body with generateName `csi-`.
pub fn cr(issuer: &str, csr_pem: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "CertificateRequest",
        "metadata": {"generateName": "csi-", "labels": labels},
        "spec": {
            "request": b64(csr_pem),
            "issuerRef": {"name": issuer, "kind": "Issuer", "group": "cert-manager.io"},
            "usages": ["digital signature", "key encipherment"],
        },
    })
}

pub fn dynobj(v: Value) -> DynamicObject {
    serde_json::from_value(v).unwrap()
}

pub fn ar() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "cert-manager.io",
        "v1",
        "CertificateRequest",
    ))
}

pub fn crs(client: kube::Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client, ns, &ar())
}

pub fn crs_all(client: kube::Client) -> Api<DynamicObject> {
    Api::all_with(client, &ar())
}

pub fn condition<'a>(o: &'a Value, ty: &str) -> Option<&'a Value> {
    o.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == ty)
}

pub fn ready_reason(o: &Value) -> Option<String> {
    condition(o, "Ready").and_then(|c| c["reason"].as_str().map(String::from))
}
