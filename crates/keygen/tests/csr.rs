//! Keys and CSRs for every algorithm and size class, checked with the `openssl` CLI.

#![allow(clippy::unwrap_used)]

mod support;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use cmcsi_keygen::{
    CsrParams, KeyEncoding, KeySpec, PrivateKey, Rdn, Subject, SubjectFields, build_csr,
};
use support::Openssl;

fn params() -> CsrParams {
    CsrParams {
        subject: Subject::Fields(SubjectFields {
            common_name: Some("app.example.com".into()),
            organizations: vec!["Acme".into()],
            organizational_units: vec!["Payments".into()],
            countries: vec!["GB".into()],
            provinces: vec!["England".into()],
            localities: vec!["London".into()],
            street_addresses: vec!["1 Main St".into()],
            postal_codes: vec!["EC1A 1BB".into()],
            serial_number: Some("1234".into()),
        }),
        dns_names: vec!["app.example.com".into(), "app.ns.svc".into()],
        ip_addresses: vec![
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)),
            IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)),
        ],
        uris: vec!["spiffe://cluster.local/ns/default/sa/app".into()],
    }
}

/// The subject `params()` asks for, as `openssl -nameopt RFC2253` prints it
/// (last RDN first).
const SUBJECT_2253: &str = "serialNumber=1234,CN=app.example.com,OU=Payments,O=Acme,\
                            postalCode=EC1A 1BB,street=1 Main St,L=London,ST=England,C=GB";

/// Generates a key of `spec`, writes it as `encoding`, and checks with openssl that the key
/// parses (and passes `pkey -check` where OpenSSL implements it), that the public key
/// matches ours, that the CSR verifies, and that its subject, SANs and signature
/// algorithm are the requested ones.
fn check(spec: KeySpec, encoding: KeyEncoding, signature_algorithm: &str) {
    let ssl = Openssl::new();
    let key = PrivateKey::generate(&spec).unwrap();
    assert_eq!(key.spec(), spec);
    let pem = key.to_pem(encoding).unwrap();
    let label = match encoding {
        KeyEncoding::Pkcs1 => "-----BEGIN RSA PRIVATE KEY-----\n",
        KeyEncoding::Pkcs8 => "-----BEGIN PRIVATE KEY-----\n",
    };
    assert!(pem.starts_with(label), "{spec} {encoding}: wrong PEM label");
    ssl.write("key.pem", pem.as_bytes());

    // Ed25519 has no key check in OpenSSL 3.0 (`pkey -check` reports it unsupported).
    if spec != KeySpec::Ed25519 {
        let out = ssl.run(&["pkey", "-in", "key.pem", "-check", "-noout"]);
        assert!(out.contains("Key is valid"), "{spec}: {out}");
    }
    let text = ssl.run(&["pkey", "-in", "key.pem", "-noout", "-text"]);
    let expected_text = match spec {
        KeySpec::Rsa { bits } => format!("Private-Key: ({bits} bit, 2 primes)"),
        KeySpec::EcdsaP256 => "NIST CURVE: P-256".into(),
        KeySpec::EcdsaP384 => "NIST CURVE: P-384".into(),
        KeySpec::EcdsaP521 => "NIST CURVE: P-521".into(),
        KeySpec::Ed25519 => "ED25519 Private-Key".into(),
    };
    assert!(text.contains(&expected_text), "{spec}: {text}");
    let openssl_pub = ssl.run_bytes(&["pkey", "-in", "key.pem", "-pubout", "-outform", "DER"]);
    assert_eq!(
        openssl_pub,
        key.public_key_der().unwrap(),
        "{spec}: public key"
    );

    let csr = build_csr(&key, &params()).unwrap();
    assert!(csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----\n"));
    ssl.write("req.csr", &csr);
    let out = ssl.run(&["req", "-in", "req.csr", "-verify", "-noout"]);
    assert!(out.contains("verify OK"), "{spec}: {out}");
    let subject = ssl.run(&[
        "req", "-in", "req.csr", "-noout", "-subject", "-nameopt", "RFC2253",
    ]);
    assert_eq!(subject.trim(), format!("subject={SUBJECT_2253}"), "{spec}");
    let text = ssl.run(&["req", "-in", "req.csr", "-noout", "-text"]);
    assert!(
        text.contains(
            "DNS:app.example.com, DNS:app.ns.svc, IP Address:10.0.0.7, \
             IP Address:FD00:0:0:0:0:0:0:1, URI:spiffe://cluster.local/ns/default/sa/app"
        ),
        "{spec}: {text}"
    );
    assert!(
        text.contains(&format!("Signature Algorithm: {signature_algorithm}")),
        "{spec}: {text}"
    );
    // The SAN extension is not critical, as Go writes it.
    assert!(!text.contains("critical"), "{spec}: {text}");

    // The request's public key is the key's.
    let req_pub = ssl.run_bytes(&["req", "-in", "req.csr", "-noout", "-pubkey"]);
    ssl.write("req-pub.pem", req_pub);
    let req_pub_der = ssl.run_bytes(&["pkey", "-pubin", "-in", "req-pub.pem", "-outform", "DER"]);
    assert_eq!(req_pub_der, key.public_key_der().unwrap());
}

#[test]
fn rsa_2048_pkcs1() {
    check(
        KeySpec::RSA_2048,
        KeyEncoding::Pkcs1,
        "sha256WithRSAEncryption",
    );
}

#[test]
fn rsa_2048_pkcs8() {
    check(
        KeySpec::RSA_2048,
        KeyEncoding::Pkcs8,
        "sha256WithRSAEncryption",
    );
}

#[test]
fn rsa_3072_odd_size_class() {
    check(
        KeySpec::Rsa { bits: 3072 },
        KeyEncoding::Pkcs1,
        "sha256WithRSAEncryption",
    );
}

#[test]
fn rsa_4096() {
    check(
        KeySpec::Rsa { bits: 4096 },
        KeyEncoding::Pkcs1,
        "sha256WithRSAEncryption",
    );
}

/// RSA-8192 generation takes tens of seconds in a test build, so this is the only test
/// that makes such a key.
#[test]
fn rsa_8192() {
    check(
        KeySpec::Rsa { bits: 8192 },
        KeyEncoding::Pkcs8,
        "sha256WithRSAEncryption",
    );
}

#[test]
fn ecdsa_p256() {
    check(KeySpec::EcdsaP256, KeyEncoding::Pkcs8, "ecdsa-with-SHA256");
}

#[test]
fn ecdsa_p384() {
    check(KeySpec::EcdsaP384, KeyEncoding::Pkcs8, "ecdsa-with-SHA384");
}

#[test]
fn ecdsa_p521() {
    check(KeySpec::EcdsaP521, KeyEncoding::Pkcs8, "ecdsa-with-SHA512");
}

#[test]
fn ed25519() {
    check(KeySpec::Ed25519, KeyEncoding::Pkcs8, "ED25519");
}

#[test]
fn literal_subject_keeps_the_given_rdns() {
    let ssl = Openssl::new();
    let key = PrivateKey::generate(&KeySpec::EcdsaP256).unwrap();
    let params = CsrParams {
        // DER order: the reverse of the RFC 4514 string checked below.
        subject: Subject::Literal(vec![
            Rdn::single("2.5.4.6", "US"),
            Rdn::single("DC", "example"),
            Rdn::single("O", "Acme, Inc."),
            Rdn::single("OU", "team"),
            Rdn(vec![
                ("CN".into(), "app".into()),
                ("UID".into(), "u1".into()),
            ]),
        ]),
        dns_names: vec!["app.example".into()],
        ..Default::default()
    };
    ssl.write("req.csr", build_csr(&key, &params).unwrap());
    ssl.run(&["req", "-in", "req.csr", "-verify", "-noout"]);
    let subject = ssl.run(&[
        "req", "-in", "req.csr", "-noout", "-subject", "-nameopt", "RFC2253",
    ]);
    // A multi-valued RDN is a DER SET, sorted by encoding: UID's OID sorts before CN's.
    assert_eq!(
        subject.trim(),
        r"subject=UID=u1+CN=app,OU=team,O=Acme\, Inc.,DC=example,C=US"
    );
}

#[test]
fn common_name_only_request_has_no_extension_request() {
    let ssl = Openssl::new();
    let key = PrivateKey::generate(&KeySpec::EcdsaP384).unwrap();
    let params = CsrParams {
        subject: Subject::common_name("only-cn"),
        ..Default::default()
    };
    ssl.write("req.csr", build_csr(&key, &params).unwrap());
    let out = ssl.run(&["req", "-in", "req.csr", "-verify", "-noout"]);
    assert!(out.contains("verify OK"), "{out}");
    let text = ssl.run(&["req", "-in", "req.csr", "-noout", "-text"]);
    assert!(text.contains("Subject: CN = only-cn"), "{text}");
    // OpenSSL 3.0 prints the "Requested Extensions:" heading even when there are none.
    assert!(text.contains("Attributes:\n            (none)"), "{text}");
    assert!(!text.contains("X509v3"), "{text}");
    // The attributes are an empty SET: the DER ends the request info with `a0 00`.
    let der = ssl.run_bytes(&["req", "-in", "req.csr", "-outform", "DER"]);
    assert!(der.windows(2).any(|w| w == [0xa0, 0x00]));
}

#[test]
fn empty_subject_with_sans_verifies() {
    let ssl = Openssl::new();
    let key = PrivateKey::generate(&KeySpec::Ed25519).unwrap();
    let params = CsrParams {
        dns_names: vec!["only-san.example".into()],
        ..Default::default()
    };
    ssl.write("req.csr", build_csr(&key, &params).unwrap());
    ssl.run(&["req", "-in", "req.csr", "-verify", "-noout"]);
    let text = ssl.run(&["req", "-in", "req.csr", "-noout", "-text"]);
    assert!(text.contains("DNS:only-san.example"), "{text}");
}
