//! The credential bundle: PKCS#8 key, then the leaf and the chain, checked with OpenSSL.

#![allow(clippy::unwrap_used)]

mod support;

use cmcsi_keygen::{Error, KeySpec, PrivateKey, credential_bundle};
use support::{Openssl, issue};

#[test]
fn key_then_leaf_then_chain_and_the_key_matches_the_leaf() {
    for spec in [KeySpec::RSA_2048, KeySpec::EcdsaP256, KeySpec::Ed25519] {
        let ssl = Openssl::new();
        let key = PrivateKey::generate(&spec).unwrap();
        let (chain, leaf) = issue(&ssl, &key, "12");
        // Text around the blocks (as some issuers add) is not carried over.
        let noisy = format!("subject=CN=app\n{chain}\n");
        let bundle = credential_bundle(&key, noisy.as_bytes()).unwrap();
        let blocks: Vec<&str> = bundle
            .lines()
            .filter(|l| l.starts_with("-----BEGIN "))
            .collect();
        assert_eq!(
            blocks,
            [
                "-----BEGIN PRIVATE KEY-----",
                "-----BEGIN CERTIFICATE-----",
                "-----BEGIN CERTIFICATE-----"
            ],
            "{spec}"
        );
        assert!(!bundle.contains("subject="), "{spec}");
        ssl.write("bundle.pem", bundle.as_bytes());
        // OpenSSL reads the key and the first certificate from the one file.
        let from_key = ssl.run_bytes(&["pkey", "-in", "bundle.pem", "-pubout", "-outform", "DER"]);
        let from_cert = ssl.run_bytes(&["x509", "-in", "bundle.pem", "-noout", "-pubkey"]);
        ssl.write("cert-pub.pem", &from_cert);
        let from_cert =
            ssl.run_bytes(&["pkey", "-pubin", "-in", "cert-pub.pem", "-outform", "DER"]);
        assert_eq!(
            from_key, from_cert,
            "{spec}: the bundle's key matches its leaf"
        );
        assert_eq!(from_key, key.public_key_der().unwrap(), "{spec}");
        let first = ssl.run_bytes(&["x509", "-in", "bundle.pem", "-outform", "DER"]);
        ssl.write("leaf.pem", &leaf);
        let want = ssl.run_bytes(&["x509", "-in", "leaf.pem", "-outform", "DER"]);
        assert_eq!(first, want, "{spec}: the leaf comes first");
    }
}

#[test]
fn a_foreign_leaf_is_refused() {
    let ssl = Openssl::new();
    let key = PrivateKey::generate(&KeySpec::EcdsaP256).unwrap();
    let other = PrivateKey::generate(&KeySpec::EcdsaP256).unwrap();
    let (chain, _) = issue(&ssl, &key, "13");
    let err = credential_bundle(&other, chain.as_bytes()).unwrap_err();
    assert!(matches!(err, Error::LeafKeyMismatch), "{err}");
}
