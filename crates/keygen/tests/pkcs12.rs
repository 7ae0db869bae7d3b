//! PKCS#12 keystores opened with `openssl pkcs12` (OpenSSL 3, without `-legacy`).

#![allow(clippy::unwrap_used)]

mod support;

use cmcsi_keygen::{Error, KeySpec, Pkcs12Profile, PrivateKey, pkcs12};
use support::{Openssl, issue};

const PASSWORD: &str = "s3cret pass";

/// Writes a keystore and checks OpenSSL opens it with the password, finds our key and the
/// whole chain, and reports the expected protection.
fn check(spec: KeySpec, profile: Pkcs12Profile, info_markers: &[&str]) {
    let ssl = Openssl::new();
    let key = PrivateKey::generate(&spec).unwrap();
    let (chain, leaf) = issue(&ssl, &key, "42");
    let p12 = pkcs12(&key, chain.as_bytes(), PASSWORD, profile).unwrap();
    ssl.write("ks.p12", &p12);
    let pass = format!("pass:{PASSWORD}");

    let all = ssl.run(&["pkcs12", "-in", "ks.p12", "-passin", &pass, "-nodes"]);
    assert!(all.contains("-----BEGIN PRIVATE KEY-----"), "{spec}: {all}");
    assert_eq!(
        all.matches("-----BEGIN CERTIFICATE-----").count(),
        2,
        "{spec}"
    );

    let info = ssl.run(&[
        "pkcs12", "-in", "ks.p12", "-passin", &pass, "-info", "-noout",
    ]);
    for marker in info_markers {
        assert!(
            info.contains(marker),
            "{spec}: missing {marker:?} in {info}"
        );
    }

    ssl.run(&[
        "pkcs12", "-in", "ks.p12", "-passin", &pass, "-nocerts", "-nodes", "-out", "k.pem",
    ]);
    let pubkey = ssl.run_bytes(&["pkey", "-in", "k.pem", "-pubout", "-outform", "DER"]);
    assert_eq!(
        pubkey,
        key.public_key_der().unwrap(),
        "{spec}: key in keystore"
    );

    ssl.run(&[
        "pkcs12", "-in", "ks.p12", "-passin", &pass, "-nokeys", "-clcerts", "-out", "c.pem",
    ]);
    ssl.write("leaf-expected.pem", &leaf);
    let got = ssl.run_bytes(&["x509", "-in", "c.pem", "-outform", "DER"]);
    let want = ssl.run_bytes(&["x509", "-in", "leaf-expected.pem", "-outform", "DER"]);
    assert_eq!(got, want, "{spec}: the key's certificate is the leaf");

    let wrong = ssl.output(&["pkcs12", "-in", "ks.p12", "-passin", "pass:wrong", "-nodes"]);
    assert!(
        !wrong.status.success(),
        "{spec}: opened with a wrong password"
    );
}

const MODERN: &[&str] = &[
    "MAC: sha256",
    "PBES2, PBKDF2, AES-256-CBC",
    "Iteration 2048",
];

#[test]
fn modern_rsa() {
    check(KeySpec::RSA_2048, Pkcs12Profile::Modern2023, MODERN);
}

#[test]
fn modern_ecdsa() {
    check(KeySpec::EcdsaP384, Pkcs12Profile::Modern2023, MODERN);
}

#[test]
fn modern_ed25519() {
    check(KeySpec::Ed25519, Pkcs12Profile::Modern2023, MODERN);
}

#[test]
fn legacy_3des_opens_without_legacy_provider() {
    check(
        KeySpec::EcdsaP256,
        Pkcs12Profile::Legacy,
        &["MAC: sha1", "pbeWithSHA1And3-KeyTripleDES-CBC"],
    );
}

#[test]
fn default_profile_is_modern() {
    assert_eq!(Pkcs12Profile::default(), Pkcs12Profile::Modern2023);
}

#[test]
fn keystore_for_a_foreign_leaf_is_refused() {
    let ssl = Openssl::new();
    let key = PrivateKey::generate(&KeySpec::EcdsaP256).unwrap();
    let other = PrivateKey::generate(&KeySpec::EcdsaP256).unwrap();
    let (chain, _) = issue(&ssl, &key, "9");
    let err = pkcs12(
        &other,
        chain.as_bytes(),
        PASSWORD,
        Pkcs12Profile::Modern2023,
    )
    .unwrap_err();
    assert!(matches!(err, Error::LeafKeyMismatch), "{err}");
    let err = pkcs12(&key, b"", PASSWORD, Pkcs12Profile::Modern2023).unwrap_err();
    assert!(matches!(err, Error::EmptyChain), "{err}");
}
