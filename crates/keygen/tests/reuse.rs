//! Reading keys back for reuse-private-key: both encodings, keys written by OpenSSL, and
//! refusal of keys whose algorithm or size differs from the requested spec.

#![allow(clippy::unwrap_used)]

mod support;

use cmcsi_keygen::{Error, KeyEncoding, KeySpec, PrivateKey};
use support::Openssl;

fn openssl_key(ssl: &Openssl, args: &[&str]) -> String {
    let mut full = vec!["genpkey"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["-out", "gen.pem"]);
    ssl.run(&full);
    String::from_utf8(ssl.read("gen.pem")).unwrap()
}

#[test]
fn rsa_round_trips_in_both_encodings() {
    let key = PrivateKey::generate(&KeySpec::RSA_2048).unwrap();
    for encoding in [KeyEncoding::Pkcs1, KeyEncoding::Pkcs8] {
        let pem = key.to_pem(encoding).unwrap();
        let back = PrivateKey::from_pem(&pem, &KeySpec::RSA_2048).unwrap();
        assert_eq!(back.spec(), KeySpec::RSA_2048);
        assert_eq!(
            back.public_key_der().unwrap(),
            key.public_key_der().unwrap()
        );
        // Re-encoding gives the same PEM: nothing is lost.
        assert_eq!(*back.to_pem(encoding).unwrap(), *pem);
    }
}

#[test]
fn keys_written_by_openssl_are_read_with_their_spec() {
    let ssl = Openssl::new();
    let cases: [(&[&str], KeySpec); 4] = [
        (
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072"],
            KeySpec::Rsa { bits: 3072 },
        ),
        (
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            KeySpec::EcdsaP256,
        ),
        (
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521"],
            KeySpec::EcdsaP521,
        ),
        (&["-algorithm", "ED25519"], KeySpec::Ed25519),
    ];
    for (args, spec) in cases {
        let pem = openssl_key(&ssl, args);
        let key = PrivateKey::from_pem(&pem, &spec).unwrap();
        assert_eq!(key.spec(), spec);
        let expected = ssl.run_bytes(&["pkey", "-in", "gen.pem", "-pubout", "-outform", "DER"]);
        assert_eq!(key.public_key_der().unwrap(), expected, "{spec}");
    }
    // PKCS#1 ("traditional") RSA from OpenSSL.
    let _ = openssl_key(
        &ssl,
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    );
    ssl.run(&["rsa", "-in", "gen.pem", "-out", "pkcs1.pem", "-traditional"]);
    let pem = String::from_utf8(ssl.read("pkcs1.pem")).unwrap();
    assert!(pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let key = PrivateKey::from_pem(&pem, &KeySpec::RSA_2048).unwrap();
    let expected = ssl.run_bytes(&["pkey", "-in", "gen.pem", "-pubout", "-outform", "DER"]);
    assert_eq!(key.public_key_der().unwrap(), expected);
}

#[test]
fn wrong_algorithm_is_refused_for_reuse() {
    let rsa = PrivateKey::generate(&KeySpec::RSA_2048).unwrap();
    let pem = rsa.to_pem(KeyEncoding::Pkcs1).unwrap();
    let err = PrivateKey::from_pem(&pem, &KeySpec::EcdsaP256).unwrap_err();
    assert!(
        matches!(
            err,
            Error::KeyMismatch {
                expected: KeySpec::EcdsaP256,
                found: KeySpec::Rsa { bits: 2048 }
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "the existing private key is RSA 2048 but the volume asks for ECDSA P-256"
    );

    let ed = PrivateKey::generate(&KeySpec::Ed25519).unwrap();
    let pem = ed.to_pem(KeyEncoding::Pkcs8).unwrap();
    let err = PrivateKey::from_pem(&pem, &KeySpec::RSA_2048).unwrap_err();
    assert!(
        matches!(
            err,
            Error::KeyMismatch {
                found: KeySpec::Ed25519,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn wrong_size_or_curve_is_refused_for_reuse() {
    let p256 = PrivateKey::generate(&KeySpec::EcdsaP256).unwrap();
    let pem = p256.to_pem(KeyEncoding::Pkcs8).unwrap();
    let err = PrivateKey::from_pem(&pem, &KeySpec::EcdsaP384).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the existing private key is ECDSA P-256 but the volume asks for ECDSA P-384"
    );

    let rsa = PrivateKey::generate(&KeySpec::RSA_2048).unwrap();
    let pem = rsa.to_pem(KeyEncoding::Pkcs8).unwrap();
    let err = PrivateKey::from_pem(&pem, &KeySpec::Rsa { bits: 4096 }).unwrap_err();
    assert!(
        matches!(
            err,
            Error::KeyMismatch {
                expected: KeySpec::Rsa { bits: 4096 },
                found: KeySpec::Rsa { bits: 2048 }
            }
        ),
        "{err}"
    );
}

#[test]
fn unsupported_keys_are_typed_errors() {
    let ssl = Openssl::new();
    let pem = openssl_key(&ssl, &["-algorithm", "ED448"]);
    let err = PrivateKey::from_pem_any(&pem).unwrap_err();
    assert!(
        matches!(err, Error::UnsupportedKeyAlgorithm { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("1.3.101.113"), "{err}");

    let pem = openssl_key(
        &ssl,
        &[
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:secp256k1",
        ],
    );
    let err = PrivateKey::from_pem_any(&pem).unwrap_err();
    assert!(err.to_string().contains("EC curve 1.3.132.0.10"), "{err}");

    // SEC1 "EC PRIVATE KEY" is refused with a reason, not misread.
    let _ = openssl_key(
        &ssl,
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    );
    ssl.run(&["ec", "-in", "gen.pem", "-out", "sec1.pem"]);
    let sec1 = String::from_utf8(ssl.read("sec1.pem")).unwrap();
    assert!(sec1.starts_with("-----BEGIN EC PRIVATE KEY-----"));
    let err = PrivateKey::from_pem_any(&sec1).unwrap_err();
    assert!(matches!(err, Error::InvalidKeyPem { .. }), "{err}");
    assert!(err.to_string().contains("SEC1"), "{err}");
}

#[test]
fn corrupted_key_is_refused_without_leaking_it() {
    let key = PrivateKey::generate(&KeySpec::EcdsaP256).unwrap();
    let pem = key.to_pem(KeyEncoding::Pkcs8).unwrap();
    let body_line = pem.lines().nth(1).unwrap().to_owned();
    let corrupted = pem.replacen(&body_line[..8], "AAAAAAAA", 1);
    let err = PrivateKey::from_pem_any(&corrupted).unwrap_err();
    assert!(matches!(err, Error::InvalidKeyPem { .. }), "{err}");
    assert!(!err.to_string().contains(&body_line[8..]), "{err}");
}
