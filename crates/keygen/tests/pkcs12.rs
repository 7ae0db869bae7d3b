//! PKCS#12 keystores opened with `openssl pkcs12` (OpenSSL 3; `-legacy` only for
//! `LegacyRC2`) and with OpenJDK's `keytool`.

#![allow(clippy::unwrap_used)]

mod support;

use cmcsi_keygen::{
    Error, KeySpec, PKCS12_ALIAS, Pkcs12Profile, PrivateKey, pkcs12, pkcs12_truststore,
};
use support::{Openssl, fingerprint, issue, keytool, skipped_without_keytool};

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
    // OpenSSL 3 reads RC2 only with the legacy provider.
    let legacy: &[&str] = if profile == Pkcs12Profile::LegacyRc2 {
        &["-legacy"]
    } else {
        &[]
    };
    let ssl_run = |args: &[&str]| ssl.run(&[&args[..1], legacy, &args[1..]].concat());
    let ssl_run_bytes = |args: &[&str]| ssl.run_bytes(args);

    let all = ssl_run(&["pkcs12", "-in", "ks.p12", "-passin", &pass, "-nodes"]);
    assert!(all.contains("-----BEGIN PRIVATE KEY-----"), "{spec}: {all}");
    assert_eq!(
        all.matches("-----BEGIN CERTIFICATE-----").count(),
        2,
        "{spec}"
    );

    let info = ssl_run(&[
        "pkcs12", "-in", "ks.p12", "-passin", &pass, "-info", "-noout",
    ]);
    for marker in info_markers {
        assert!(
            info.contains(marker),
            "{spec}: missing {marker:?} in {info}"
        );
    }

    ssl_run(&[
        "pkcs12", "-in", "ks.p12", "-passin", &pass, "-nocerts", "-nodes", "-out", "k.pem",
    ]);
    let pubkey = ssl_run_bytes(&["pkey", "-in", "k.pem", "-pubout", "-outform", "DER"]);
    assert_eq!(
        pubkey,
        key.public_key_der().unwrap(),
        "{spec}: key in keystore"
    );

    ssl_run(&[
        "pkcs12", "-in", "ks.p12", "-passin", &pass, "-nokeys", "-clcerts", "-out", "c.pem",
    ]);
    ssl.write("leaf-expected.pem", &leaf);
    let got = ssl_run_bytes(&["x509", "-in", "c.pem", "-outform", "DER"]);
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
fn legacy_des_opens_without_legacy_provider() {
    check(
        KeySpec::EcdsaP256,
        Pkcs12Profile::LegacyDes,
        &["MAC: sha1", "pbeWithSHA1And3-KeyTripleDES-CBC"],
    );
}

#[test]
fn legacy_rc2_has_rc2_certificates_and_a_3des_key() {
    check(
        KeySpec::RSA_2048,
        Pkcs12Profile::LegacyRc2,
        &[
            "MAC: sha1, Iteration 2048",
            "PKCS7 Encrypted data: pbeWithSHA1And40BitRC2-CBC, Iteration 2048",
            "Shrouded Keybag: pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2048",
        ],
    );
}

#[test]
fn legacy_rc2_needs_the_legacy_provider_and_a_correct_mac() {
    let ssl = Openssl::new();
    let key = PrivateKey::generate(&KeySpec::EcdsaP256).unwrap();
    let (chain, _) = issue(&ssl, &key, "43");
    let p12 = pkcs12(&key, chain.as_bytes(), PASSWORD, Pkcs12Profile::LegacyRc2).unwrap();
    ssl.write("ks.p12", &p12);
    let pass = format!("pass:{PASSWORD}");
    // Decrypting RC2 needs the legacy provider.
    let plain = ssl.output(&["pkcs12", "-in", "ks.p12", "-passin", &pass, "-nodes"]);
    assert!(!plain.status.success(), "RC2 read without -legacy");
    ssl.run(&[
        "pkcs12", "-legacy", "-info", "-nokeys", "-in", "ks.p12", "-passin", &pass,
    ]);
    let wrong = ssl.output(&[
        "pkcs12",
        "-legacy",
        "-in",
        "ks.p12",
        "-passin",
        "pass:wrong",
        "-noout",
    ]);
    assert!(!wrong.status.success(), "opened with a wrong password");
}

/// `keytool -list -storetype PKCS12` reads each profile: the alias is a private-key entry
/// whose certificate is the leaf.
#[test]
fn keytool_reads_every_profile() {
    let ssl = Openssl::new();
    let key = PrivateKey::generate(&KeySpec::EcdsaP256).unwrap();
    let (chain, leaf) = issue(&ssl, &key, "44");
    for &profile in Pkcs12Profile::ALL {
        let p12 = pkcs12(&key, chain.as_bytes(), PASSWORD, profile).unwrap();
        ssl.write("ks.p12", &p12);
        let Some(listing) = keytool(
            &[
                "-list",
                "-v",
                "-keystore",
                "ks.p12",
                "-storetype",
                "PKCS12",
                "-storepass",
                PASSWORD,
            ],
            &ssl.path(""),
        ) else {
            return skipped_without_keytool("keytool_reads_every_profile");
        };
        assert!(
            listing.contains(&format!("Alias name: {PKCS12_ALIAS}\n")),
            "{profile}: {listing}"
        );
        assert!(
            listing.contains("Entry type: PrivateKeyEntry"),
            "{profile}: {listing}"
        );
        let first = listing.split("Certificate[2]").next().unwrap();
        assert!(
            first.contains(&fingerprint(&ssl, &leaf)),
            "{profile}: {first}"
        );
    }
}

#[test]
fn truststore_in_every_profile() {
    let ssl = Openssl::new();
    let key = PrivateKey::generate(&KeySpec::EcdsaP256).unwrap();
    let _ = issue(&ssl, &key, "45");
    let ca = String::from_utf8(ssl.read("ca.pem")).unwrap();
    for &profile in Pkcs12Profile::ALL {
        let p12 = pkcs12_truststore(ca.as_bytes(), PASSWORD, profile).unwrap();
        ssl.write("ts.p12", &p12);
        let pass = format!("pass:{PASSWORD}");
        let mut args = vec!["pkcs12", "-in", "ts.p12", "-passin", &pass, "-nokeys"];
        if profile == Pkcs12Profile::LegacyRc2 {
            args.push("-legacy");
        }
        let out = ssl.run(&args);
        assert_eq!(
            out.matches("BEGIN CERTIFICATE").count(),
            1,
            "{profile}: {out}"
        );
        let Some(listing) = keytool(
            &[
                "-list",
                "-v",
                "-keystore",
                "ts.p12",
                "-storetype",
                "PKCS12",
                "-storepass",
                PASSWORD,
            ],
            &ssl.path(""),
        ) else {
            return skipped_without_keytool("truststore_in_every_profile");
        };
        assert!(listing.contains("Alias name: ca\n"), "{profile}: {listing}");
        assert!(
            listing.contains("Entry type: trustedCertEntry"),
            "{profile}: {listing}"
        );
        assert!(
            listing.contains(&fingerprint(&ssl, &ca)),
            "{profile}: {listing}"
        );
    }
    let err = pkcs12_truststore(b"", PASSWORD, Pkcs12Profile::Modern2023).unwrap_err();
    assert!(matches!(err, Error::EmptyChain), "{err}");
}

#[test]
fn profile_names_are_cert_managers() {
    let names: Vec<String> = Pkcs12Profile::ALL.iter().map(|p| p.to_string()).collect();
    assert_eq!(names, ["LegacyRC2", "LegacyDES", "Modern2023"]);
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
