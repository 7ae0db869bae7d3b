//! `ChainSummary` on chains issued by an OpenSSL test CA for our CSRs.

#![allow(clippy::unwrap_used)]

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use cmcsi_keygen::{ChainSummary, Error, KeySpec, LeafValidity, PrivateKey};
use support::{Openssl, issue};

#[test]
fn summary_of_an_issued_chain() {
    let ssl = Openssl::new();
    let key = PrivateKey::generate(&KeySpec::EcdsaP256).unwrap();
    let (chain, _leaf) = issue(&ssl, &key, "0x00c0ffee01");
    let summary = ChainSummary::from_pem(chain.as_bytes()).unwrap();

    assert_eq!(summary.serial_hex, "c0ffee01");
    assert_eq!(summary.dns_names, vec!["app.example.com".to_owned()]);
    assert_eq!(
        summary.ip_addresses,
        vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))]
    );
    assert_eq!(
        summary.uris,
        vec!["spiffe://cluster.local/ns/default/sa/app".to_owned()]
    );
    assert_eq!(summary.subject, "CN=app.example.com");
    assert_eq!(summary.issuer, "CN=Test CA");
    assert_eq!(summary.intermediates(), 1);
    assert_eq!(summary.certificates_der.len(), 2);
    assert_eq!(
        summary
            .not_after
            .duration_since(summary.not_before)
            .unwrap(),
        Duration::from_secs(24 * 3600)
    );
    assert!(summary.leaf_matches_key(&key));
}

#[test]
fn leaf_of_another_key_does_not_match() {
    let ssl = Openssl::new();
    for spec in [KeySpec::RSA_2048, KeySpec::EcdsaP384, KeySpec::Ed25519] {
        let key = PrivateKey::generate(&spec).unwrap();
        let other = PrivateKey::generate(&spec).unwrap();
        let (chain, leaf) = issue(&ssl, &key, "7");
        let summary = ChainSummary::from_pem(leaf.as_bytes()).unwrap();
        assert!(summary.leaf_matches_key(&key), "{spec}");
        assert!(!summary.leaf_matches_key(&other), "{spec}");
        assert_eq!(summary.intermediates(), 0);
        assert_eq!(summary.serial_hex, "07");
        assert!(
            ChainSummary::from_pem(chain.as_bytes())
                .unwrap()
                .leaf_matches_key(&key)
        );
    }
}

#[test]
fn bad_chains_are_typed_errors() {
    assert!(matches!(
        ChainSummary::from_pem(b"   \n"),
        Err(Error::EmptyChain)
    ));
    assert!(matches!(
        ChainSummary::from_pem(&[0x2d, 0xc3, 0x28]),
        Err(Error::ChainNotUtf8 { valid_up_to: 1 })
    ));
    let ssl = Openssl::new();
    let key = PrivateKey::generate(&KeySpec::EcdsaP256).unwrap();
    let (_chain, leaf) = issue(&ssl, &key, "1");
    // Truncate the base64 body: PEM still framed, DER broken.
    let mut lines: Vec<&str> = leaf.lines().collect();
    lines.remove(3);
    let broken = lines.join("\n");
    assert!(matches!(
        ChainSummary::from_pem(broken.as_bytes()),
        Err(Error::InvalidChain(_))
    ));
}

/// `LeafValidity` reads the leaf as `ChainSummary` does, and refuses what it refuses.
#[test]
fn leaf_validity_agrees_with_the_summary() {
    let ssl = Openssl::new();
    let key = PrivateKey::generate(&KeySpec::EcdsaP256).unwrap();
    let (chain, leaf) = issue(&ssl, &key, "0x00c0ffee01");
    for pem in [&chain, &leaf] {
        let summary = ChainSummary::from_pem(pem.as_bytes()).unwrap();
        let validity = LeafValidity::from_pem(pem.as_bytes()).unwrap();
        assert_eq!(validity.not_before, summary.not_before);
        assert_eq!(validity.not_after, summary.not_after);
        assert_eq!(
            validity.leaf_public_key_der(),
            summary.leaf_public_key_der()
        );
        assert_eq!(
            validity.leaf_public_key_der(),
            key.public_key_der().unwrap()
        );
    }
    let mut lines: Vec<&str> = chain.lines().collect();
    lines.remove(3);
    let broken = lines.join("\n");
    for bad in [&b"   \n"[..], &[0x2d, 0xc3, 0x28], broken.as_bytes()] {
        assert_eq!(
            LeafValidity::from_pem(bad).unwrap_err().to_string(),
            ChainSummary::from_pem(bad).unwrap_err().to_string()
        );
    }
}
