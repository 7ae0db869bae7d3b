//! Trust bundles: CA certificates checked, merged, deduplicated and sorted, and the
//! truststores built from them, read back with OpenSSL and `keytool`.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::SystemTime;

use cmcsi_keygen::{Error, Pkcs12Profile, TrustBundle, jks_truststore, pkcs12_truststore};
use support::{Openssl, keytool, skipped_without_keytool};

/// A self-signed P-256 CA named `cn`, as PEM.
fn ca(ssl: &Openssl, cn: &str) -> String {
    ssl.self_signed(cn, cn, true).0
}

/// A self-signed certificate that is not a CA, and its key.
fn leaf(ssl: &Openssl) -> (String, String) {
    ssl.self_signed("leaf", "leaf", false)
}

#[test]
fn sources_merge_deduplicated_in_a_stable_order() {
    let ssl = Openssl::new();
    let (a, b, c) = (ca(&ssl, "ca-a"), ca(&ssl, "ca-b"), ca(&ssl, "ca-c"));
    let mut one = TrustBundle::new(1 << 20);
    one.add_source("first", format!("{a}\n{b}").as_bytes())
        .unwrap();
    one.add_source("second", format!("{b}{c}{a}").as_bytes())
        .unwrap();
    assert_eq!(one.len(), 3);
    let mut other = TrustBundle::new(1 << 20);
    other.add_source("x", format!("{c}{b}").as_bytes()).unwrap();
    other.add_source("y", a.as_bytes()).unwrap();
    assert_eq!(
        one.to_pem(),
        other.to_pem(),
        "order of sources and certificates must not matter"
    );
    // OpenSSL reads every certificate back, each once.
    let path = ssl.write("bundle.pem", one.to_pem());
    let text = ssl.run(&["storeutl", "-noout", "-text", "-certs", &path]);
    for cn in ["CN=ca-a", "CN=ca-b", "CN=ca-c"] {
        assert_eq!(
            text.matches(&format!("Subject: {cn}")).count(),
            1,
            "{cn} in {text}"
        );
    }
}

#[test]
fn anything_but_ca_certificates_is_refused_naming_the_source() {
    let ssl = Openssl::new();
    let a = ca(&ssl, "ca-a");
    let (leaf, key) = leaf(&ssl);
    for (data, expect) in [
        ("hello world".to_owned(), "text outside PEM blocks"),
        (format!("{a}# comment\n"), "text outside PEM blocks"),
        (format!("{a}{key}"), "a private key"),
        (leaf.clone(), "is not a CA certificate"),
        (String::new(), "holds no certificate"),
        (
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_owned(),
            "does not parse",
        ),
    ] {
        let mut b = TrustBundle::new(1 << 20);
        let err = b
            .add_source("ConfigMap \"trust\"", data.as_bytes())
            .unwrap_err();
        assert!(matches!(err, Error::InvalidTrustBundle { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("ConfigMap \"trust\""), "{msg}");
        assert!(msg.contains(expect), "{msg} should say {expect}");
        assert!(
            !msg.contains("PRIVATE KEY-----"),
            "no key bytes in errors: {msg}"
        );
        assert!(b.is_empty(), "a refused source adds nothing");
    }
}

#[test]
fn the_size_bound_is_enforced() {
    let ssl = Openssl::new();
    let (a, b) = (ca(&ssl, "ca-a"), ca(&ssl, "ca-b"));
    let mut one = TrustBundle::new(1 << 20);
    one.add_source("a", a.as_bytes()).unwrap();
    let single = one.to_pem().len();
    let mut bounded = TrustBundle::new(single + 10);
    bounded.add_source("a", a.as_bytes()).unwrap();
    bounded.add_source("a again", a.as_bytes()).unwrap();
    let err = bounded.add_source("b", b.as_bytes()).unwrap_err();
    assert!(
        err.to_string().contains("--max-trust-bundle-bytes"),
        "{err}"
    );
}

#[test]
fn truststores_hold_every_bundle_certificate() {
    let ssl = Openssl::new();
    let (a, b) = (ca(&ssl, "ca-a"), ca(&ssl, "ca-b"));
    let mut bundle = TrustBundle::new(1 << 20);
    bundle
        .add_source("s", format!("{a}{b}").as_bytes())
        .unwrap();
    let pem = bundle.to_pem();
    let p12 = pkcs12_truststore(pem.as_bytes(), "changeit", Pkcs12Profile::Modern2023).unwrap();
    let jks = jks_truststore(pem.as_bytes(), "changeit", SystemTime::now()).unwrap();
    ssl.write("trust.p12", &p12);
    ssl.write("trust.jks", &jks);
    let out = ssl.run(&[
        "pkcs12",
        "-in",
        "trust.p12",
        "-passin",
        "pass:changeit",
        "-nokeys",
    ]);
    for cn in ["CN = ca-a", "CN = ca-b"] {
        assert!(out.contains(cn), "{cn} in {out}");
    }
    let dir = ssl.path("");
    for (file, store_type) in [("trust.jks", "JKS"), ("trust.p12", "PKCS12")] {
        let Some(listing) = keytool(
            &[
                "-list",
                "-v",
                "-keystore",
                file,
                "-storetype",
                store_type,
                "-storepass",
                "changeit",
            ],
            &dir,
        ) else {
            skipped_without_keytool("truststores_hold_every_bundle_certificate");
            return;
        };
        assert!(listing.contains("contains 2 entries"), "{listing}");
        for cn in ["CN=ca-a", "CN=ca-b"] {
            assert!(
                listing.contains(&format!("Owner: {cn}")),
                "{cn} in {listing}"
            );
        }
    }
}
