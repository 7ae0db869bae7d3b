//! JKS keystores and truststores read back with OpenJDK's `keytool`.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::SystemTime;

use cmcsi_keygen::{Error, JKS_ALIAS, KeySpec, PrivateKey, jks, jks_truststore};
use support::{Openssl, fingerprint, issue, keytool, keytool_output, skipped_without_keytool};

const PASSWORD: &str = "changeit-Ünï";

/// The `keytool -list -v` block of one alias.
fn entry<'a>(listing: &'a str, alias: &str) -> &'a str {
    let start = listing
        .find(&format!("Alias name: {alias}\n"))
        .unwrap_or_else(|| panic!("no alias {alias} in:\n{listing}"));
    let rest = &listing[start..];
    let end = rest[1..].find("Alias name: ").map_or(rest.len(), |i| i + 1);
    &rest[..end]
}

fn check_keystore(spec: KeySpec, alias: &str, test: &str) {
    let ssl = Openssl::new();
    let key = PrivateKey::generate(&spec).unwrap();
    let (chain, leaf) = issue(&ssl, &key, "77");
    let ca = String::from_utf8(ssl.read("ca.pem")).unwrap();
    let ks = jks(
        &key,
        chain.as_bytes(),
        ca.as_bytes(),
        alias,
        PASSWORD,
        SystemTime::now(),
    )
    .unwrap();
    assert_eq!(
        &ks[..8],
        &[0xFE, 0xED, 0xFE, 0xED, 0, 0, 0, 2],
        "magic and version"
    );
    ssl.write("keystore.jks", &ks);
    let dir = ssl.path("");
    let Some(listing) = keytool(
        &[
            "-list",
            "-v",
            "-keystore",
            "keystore.jks",
            "-storetype",
            "JKS",
            "-storepass",
            PASSWORD,
        ],
        &dir,
    ) else {
        return skipped_without_keytool(test);
    };
    assert!(listing.contains("Keystore type: JKS"), "{listing}");
    assert!(
        listing.contains("Your keystore contains 2 entries"),
        "{listing}"
    );
    let key_entry = entry(&listing, &alias.to_lowercase());
    assert!(
        key_entry.contains("Entry type: PrivateKeyEntry"),
        "{key_entry}"
    );
    assert!(
        key_entry.contains("Certificate chain length: 2"),
        "{key_entry}"
    );
    // The first certificate of the entry's chain is the leaf.
    let first = key_entry.split("Certificate[2]").next().unwrap();
    assert!(first.contains(&fingerprint(&ssl, &leaf)), "{first}");
    let ca_entry = entry(&listing, "ca");
    assert!(
        ca_entry.contains("Entry type: trustedCertEntry"),
        "{ca_entry}"
    );
    assert!(ca_entry.contains(&fingerprint(&ssl, &ca)), "{ca_entry}");

    // The key itself: keytool converts the entry to PKCS#12, OpenSSL reads its public key.
    keytool(
        &[
            "-importkeystore",
            "-srckeystore",
            "keystore.jks",
            "-srcstoretype",
            "JKS",
            "-srcstorepass",
            PASSWORD,
            "-srcalias",
            &alias.to_lowercase(),
            "-destkeystore",
            "out.p12",
            "-deststoretype",
            "PKCS12",
            "-deststorepass",
            "exported",
            "-noprompt",
        ],
        &dir,
    )
    .unwrap();
    ssl.run(&[
        "pkcs12",
        "-in",
        "out.p12",
        "-passin",
        "pass:exported",
        "-nocerts",
        "-nodes",
        "-out",
        "k.pem",
    ]);
    let pubkey = ssl.run_bytes(&["pkey", "-in", "k.pem", "-pubout", "-outform", "DER"]);
    assert_eq!(
        pubkey,
        key.public_key_der().unwrap(),
        "{spec}: key in the keystore"
    );

    // A wrong password fails the integrity check.
    let wrong = keytool_output(
        &[
            "-list",
            "-keystore",
            "keystore.jks",
            "-storetype",
            "JKS",
            "-storepass",
            "wrong",
        ],
        &dir,
    )
    .unwrap();
    assert!(!wrong.status.success(), "opened with a wrong password");
}

#[test]
fn keystore_rsa_lists_the_alias_with_the_leaf() {
    check_keystore(
        KeySpec::RSA_2048,
        JKS_ALIAS,
        "keystore_rsa_lists_the_alias_with_the_leaf",
    );
}

#[test]
fn keystore_ecdsa_with_a_mixed_case_alias() {
    check_keystore(
        KeySpec::EcdsaP256,
        "MyApp",
        "keystore_ecdsa_with_a_mixed_case_alias",
    );
}

#[test]
fn truststore_lists_each_ca_as_trusted() {
    let ssl = Openssl::new();
    let key = PrivateKey::generate(&KeySpec::EcdsaP256).unwrap();
    let _ = issue(&ssl, &key, "5");
    let ca = String::from_utf8(ssl.read("ca.pem")).unwrap();
    let leaf = String::from_utf8(ssl.read("leaf.pem")).unwrap();
    // Two certificates stand in for a CA bundle.
    let bundle = format!("{ca}{leaf}");
    let ts = jks_truststore(bundle.as_bytes(), PASSWORD, SystemTime::now()).unwrap();
    ssl.write("truststore.jks", &ts);
    let Some(listing) = keytool(
        &[
            "-list",
            "-v",
            "-keystore",
            "truststore.jks",
            "-storepass",
            PASSWORD,
        ],
        &ssl.path(""),
    ) else {
        return skipped_without_keytool("truststore_lists_each_ca_as_trusted");
    };
    assert!(
        listing.contains("Your keystore contains 2 entries"),
        "{listing}"
    );
    let first = entry(&listing, "ca");
    assert!(first.contains("Entry type: trustedCertEntry"), "{first}");
    assert!(first.contains(&fingerprint(&ssl, &ca)), "{first}");
    let second = entry(&listing, "ca-2");
    assert!(second.contains("Entry type: trustedCertEntry"), "{second}");
}

#[test]
fn refusals() {
    let ssl = Openssl::new();
    let key = PrivateKey::generate(&KeySpec::EcdsaP256).unwrap();
    let other = PrivateKey::generate(&KeySpec::EcdsaP256).unwrap();
    let (chain, _) = issue(&ssl, &key, "6");
    let ca = ssl.read("ca.pem");
    let now = SystemTime::now();
    let err = jks(&other, chain.as_bytes(), &ca, JKS_ALIAS, PASSWORD, now).unwrap_err();
    assert!(matches!(err, Error::LeafKeyMismatch), "{err}");
    let err = jks(&key, chain.as_bytes(), &ca, "CA", PASSWORD, now).unwrap_err();
    assert!(
        matches!(&err, Error::Jks(m) if m.contains("\"ca\"") && m.contains("choose another")),
        "{err}"
    );
    assert!(!err.to_string().contains(PASSWORD));
    let err = jks(&key, chain.as_bytes(), &ca, "", PASSWORD, now).unwrap_err();
    assert!(
        matches!(&err, Error::Jks(m) if m.contains("empty")),
        "{err}"
    );
    // Without a CA the keystore holds only the key entry; a truststore needs a CA.
    let ks = jks(&key, chain.as_bytes(), b"", JKS_ALIAS, PASSWORD, now).unwrap();
    assert_eq!(&ks[8..12], &[0, 0, 0, 1], "one entry");
    let err = jks_truststore(b"\n", PASSWORD, now).unwrap_err();
    assert!(matches!(err, Error::EmptyChain), "{err}");
    // A password long enough to make key protection cost more than the key: refused
    // before any hashing, without quoting it.
    let long = "z".repeat(cmcsi_keygen::MAX_KEYSTORE_PASSWORD_BYTES + 1);
    for err in [
        jks(&key, chain.as_bytes(), &ca, JKS_ALIAS, &long, now).unwrap_err(),
        jks_truststore(&ca, &long, now).unwrap_err(),
        cmcsi_keygen::pkcs12(
            &key,
            chain.as_bytes(),
            &long,
            cmcsi_keygen::Pkcs12Profile::Modern2023,
        )
        .unwrap_err(),
        cmcsi_keygen::pkcs12_truststore(&ca, &long, cmcsi_keygen::Pkcs12Profile::LegacyRc2)
            .unwrap_err(),
    ] {
        let text = err.to_string();
        assert!(text.contains("at most 1024 are allowed"), "{text}");
        assert!(!text.contains("zzz"), "{text}");
    }
}
