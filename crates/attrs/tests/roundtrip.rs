//! Property tests: `parse` never panics, and every accepted spec renders back
//! to a context that parses to the same spec.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use cmcsi_attrs::{
    MAX_GO_DURATION, ParseOptions, format_go_duration, keys, parse, parse_go_duration, parse_with,
};
use proptest::prelude::*;

/// Values that exercise the interesting paths of each attribute.
const SAMPLES: &[&str] = &[
    "",
    " ",
    ",",
    "true",
    "FALSE",
    "yes",
    "0",
    "1",
    "-1",
    "2000",
    "4294967295",
    "4294967296",
    "256",
    "384",
    "521",
    "2048",
    "4096",
    "8193",
    "RSA",
    "ecdsa",
    "Ed25519",
    "PKCS1",
    "pkcs8",
    "720h",
    "1h30m",
    "1.5h",
    "45s",
    "300ms",
    "0s",
    "30d",
    "Issuer",
    "ClusterIssuer",
    "cert-manager.io",
    "ca-issuer",
    "a.example.com",
    "*.example.com,b.example.com",
    "${POD_NAME}.${POD_NAMESPACE}.svc",
    "$SERVICE_ACCOUNT_NAME",
    "${POD_UID}",
    "${POD_IP}",
    "${POD_NAME",
    "$$",
    "a$b",
    "192.0.2.1",
    "2001:db8::1,10.0.0.1",
    "spiffe://cluster.local/ns/a/sa/b",
    "urn:x:$$y",
    "digital signature,key encipherment",
    "server auth, client auth",
    "signing",
    "crt.pem",
    "bar/foo.crt",
    "../x",
    "/abs",
    "keystore.p12",
    "keystore.jks",
    "LegacyRC2",
    "legacydes",
    "Modern2023",
    "certificate",
    "ca",
    "CA-2",
    "GB,de",
    "\"Acme, Inc\",Other",
    "Acme\\, Inc",
    "\"open",
    "a\"b",
    "CN=web,O=Acme\\, Inc,C=GB",
    "CN=${POD_NAME}+UID=1,2.5.4.12=x",
    "CN=a,,O=b",
    "CN=#00",
    "CN=caf\\C3\\A9",
    "  CN = a ; o = b  ",
];

const KEYS: &[&str] = &[
    keys::ISSUER_NAME,
    keys::ISSUER_KIND,
    keys::ISSUER_GROUP,
    keys::COMMON_NAME,
    keys::DNS_NAMES,
    keys::IP_SANS,
    keys::URI_SANS,
    keys::DURATION,
    keys::IS_CA,
    keys::KEY_USAGES,
    keys::KEY_ALGORITHM,
    keys::KEY_SIZE,
    keys::KEY_ENCODING,
    keys::CERTIFICATE_FILE,
    keys::PRIVATE_KEY_FILE,
    keys::CA_FILE,
    keys::RENEW_BEFORE,
    keys::DISABLE_AUTO_RENEW,
    keys::REUSE_PRIVATE_KEY,
    keys::FS_GROUP,
    keys::PKCS12_ENABLE,
    keys::PKCS12_FILENAME,
    keys::PKCS12_PASSWORD,
    keys::PKCS12_PASSWORD_SECRET_KEY,
    keys::PKCS12_PROFILE,
    keys::PKCS12_TRUSTSTORE_FILENAME,
    keys::JKS_ENABLE,
    keys::JKS_FILENAME,
    keys::JKS_PASSWORD,
    keys::JKS_PASSWORD_SECRET_KEY,
    keys::JKS_ALIAS,
    keys::JKS_TRUSTSTORE_FILENAME,
    keys::CREDENTIAL_BUNDLE_FILE,
    keys::ORGANIZATIONS,
    keys::ORGANIZATIONAL_UNITS,
    keys::COUNTRIES,
    keys::PROVINCES,
    keys::LOCALITIES,
    keys::STREET_ADDRESSES,
    keys::POSTAL_CODES,
    keys::SERIAL_NUMBER,
    keys::LITERAL_SUBJECT,
    keys::POD_NAME,
    keys::POD_NAMESPACE,
    keys::POD_UID,
    keys::SERVICE_ACCOUNT_NAME,
    keys::SERVICE_ACCOUNT_TOKENS,
    keys::EPHEMERAL,
    "example.com/team",
    "csi.cert-manager.io/dns-name",
    "issuer-name",
    "foo",
];

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(SAMPLES).prop_map(str::to_owned),
        2 => "[a-z0-9.,$ {}\"\\\\=+*/:-]{0,24}",
        1 => any::<String>(),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => proptest::sample::select(KEYS).prop_map(str::to_owned),
        1 => "[a-zA-Z./_-]{0,30}",
        1 => any::<String>(),
    ]
}

/// Arbitrary maps, biased towards known keys.
fn context() -> impl Strategy<Value = BTreeMap<String, String>> {
    proptest::collection::btree_map(key(), value(), 0..20)
}

/// Maps that usually parse: a valid issuer, SAN and pod info, plus a few
/// attributes with sample or random values.
fn mostly_valid_context() -> impl Strategy<Value = BTreeMap<String, String>> {
    let base = [
        (keys::ISSUER_NAME, "ca-issuer"),
        (keys::DNS_NAMES, "a.example.com"),
        (keys::POD_NAME, "web-0"),
        (keys::POD_NAMESPACE, "shop"),
        (keys::POD_UID, "8d0f1c2e"),
        (keys::SERVICE_ACCOUNT_NAME, "web"),
    ];
    proptest::collection::btree_map(
        proptest::sample::select(KEYS).prop_map(str::to_owned),
        value(),
        0..8,
    )
    .prop_map(move |extra| {
        let mut m: BTreeMap<String, String> = base
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        m.extend(extra);
        m
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parse_never_panics(ctx in context()) {
        let _ = parse(&ctx);
        let _ = parse_with(&ctx, &ParseOptions::go_driver());
    }

    #[test]
    fn errors_never_echo_secrets(ctx in context(), secret in "[A-Z]{12}") {
        let mut ctx = ctx;
        let password = format!("pw-{secret}");
        let token = format!("tok-{secret}");
        ctx.insert(keys::PKCS12_PASSWORD.to_owned(), password.clone());
        ctx.insert(keys::JKS_PASSWORD.to_owned(), password.clone());
        ctx.insert(keys::SERVICE_ACCOUNT_TOKENS.to_owned(), token.clone());
        match parse(&ctx) {
            Ok(spec) => {
                let debug = format!("{spec:?}");
                prop_assert!(!debug.contains(&password) && !debug.contains(&token));
            }
            Err(e) => {
                let shown = format!("{e} {e:?}");
                prop_assert!(!shown.contains(&password) && !shown.contains(&token), "{}", shown);
            }
        }
    }

    #[test]
    fn accepted_specs_round_trip(ctx in mostly_valid_context()) {
        for options in [ParseOptions::original(), ParseOptions::go_driver()] {
            if let Ok(spec) = parse_with(&ctx, &options) {
                let rendered = spec.to_volume_context();
                let again = parse_with(&rendered, &options);
                prop_assert_eq!(again.as_ref(), Ok(&spec), "rendered: {:?}", rendered);
                // Rendering is explicit, so the other defaults agree.
                let with_go_defaults = parse_with(&rendered, &ParseOptions::go_driver());
                prop_assert_eq!(with_go_defaults.as_ref(), Ok(&spec));
            }
        }
    }

    #[test]
    fn go_durations_round_trip(nanos in 0..=MAX_GO_DURATION.as_nanos()) {
        let secs = u64::try_from(nanos / 1_000_000_000).unwrap();
        let sub = u32::try_from(nanos % 1_000_000_000).unwrap();
        let d = Duration::new(secs, sub);
        prop_assert_eq!(parse_go_duration(&format_go_duration(d)), Ok(d));
    }

    #[test]
    fn go_duration_parse_never_panics(s in "[-+0-9.hmsuµn ]{0,20}") {
        let _ = parse_go_duration(&s);
    }
}

#[test]
fn the_generator_reaches_accepted_specs() {
    // Guard against a round-trip property that holds vacuously.
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = mostly_valid_context();
    let accepted = (0..500)
        .filter(|_| {
            let ctx = strategy.new_tree(&mut runner).unwrap().current();
            parse(&ctx).is_ok()
        })
        .count();
    assert!(
        accepted > 100,
        "only {accepted} of 500 generated contexts parsed"
    );
}
