use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use crate::*;

const H: u64 = 3600;

/// A minimal valid context plus the kubelet's pod information.
fn base() -> BTreeMap<String, String> {
    [
        (keys::ISSUER_NAME, "ca-issuer"),
        (keys::DNS_NAMES, "a.example.com"),
        (keys::POD_NAME, "web-0"),
        (keys::POD_NAMESPACE, "shop"),
        (keys::POD_UID, "8d0f1c2e-3b4a-4c5d-9e6f-7a8b9c0d1e2f"),
        (keys::SERVICE_ACCOUNT_NAME, "web-sa"),
        (keys::EPHEMERAL, "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn with(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut m = base();
    for (k, v) in pairs {
        m.insert((*k).to_owned(), (*v).to_owned());
    }
    m
}

fn without(keys_to_drop: &[&str], pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut m = with(pairs);
    for k in keys_to_drop {
        m.remove(*k);
    }
    m
}

#[track_caller]
fn ok(pairs: &[(&str, &str)]) -> CertificateSpec {
    let ctx = with(pairs);
    let spec = parse(&ctx).unwrap_or_else(|e| panic!("expected success, got: {e}"));
    // Every accepted spec round-trips.
    assert_eq!(parse(&spec.to_volume_context()).unwrap(), spec);
    spec
}

#[track_caller]
fn err(pairs: &[(&str, &str)]) -> AttributeErrors {
    match parse(&with(pairs)) {
        Ok(spec) => panic!("expected an error, got {spec:?}"),
        Err(e) => e,
    }
}

#[track_caller]
fn err_text(pairs: &[(&str, &str)]) -> String {
    err(pairs).to_string()
}

fn fields(spec: &CertificateSpec) -> &SubjectFields {
    match &spec.subject {
        Subject::Fields(f) => f,
        Subject::Literal(_) => panic!("expected subject fields"),
    }
}

// ---------------------------------------------------------------- defaults

#[test]
fn defaults_follow_the_original_docs() {
    let spec = ok(&[]);
    assert_eq!(spec.issuer.name, "ca-issuer");
    assert_eq!(spec.issuer.kind, "Issuer");
    assert_eq!(spec.issuer.group, "cert-manager.io");
    assert_eq!(spec.duration, Duration::from_secs(720 * H));
    assert_eq!(spec.renew_before, None);
    assert_eq!(
        spec.usages,
        [KeyUsage::DigitalSignature, KeyUsage::KeyEncipherment]
    );
    assert!(!spec.is_ca);
    assert!(!spec.reuse_private_key);
    assert!(!spec.disable_auto_renew);
    assert_eq!(spec.files.certificate, "crt.pem");
    assert_eq!(spec.files.private_key, "key.pem");
    assert_eq!(spec.files.ca, "ca.pem");
    assert_eq!(spec.files.pkcs12, None);
    assert_eq!(spec.key.algorithm, KeyAlgorithm::Rsa { bits: 2048 });
    assert_eq!(spec.key.encoding, KeyEncoding::Pkcs1);
    assert_eq!(spec.fs_group, None);
    assert_eq!(spec.subject, Subject::Fields(SubjectFields::default()));
    assert!(spec.annotations.is_empty());
    assert!(spec.ip_sans.is_empty() && spec.uri_sans.is_empty());
}

#[test]
fn go_driver_defaults_for_taken_over_volumes() {
    let spec = parse_with(&base(), &ParseOptions::go_driver()).unwrap();
    assert_eq!(spec.files.certificate, "tls.crt");
    assert_eq!(spec.files.private_key, "tls.key");
    assert_eq!(spec.files.ca, "ca.crt");
    assert_eq!(spec.duration, Duration::from_secs(2160 * H));
    assert_eq!(format_go_duration(spec.duration), "2160h0m0s");
    // Rendering is explicit, so the strict parser agrees.
    assert_eq!(parse(&spec.to_volume_context()).unwrap(), spec);
}

#[test]
fn go_driver_options_tolerate_what_go_ignored() {
    let ctx = without(
        &[keys::DNS_NAMES],
        &[
            ("csi.cert-manager.io/unknown-thing", "x"),
            (keys::COMMON_NAME, "only-cn"),
            (keys::DURATION, "1h"),
            (keys::RENEW_BEFORE, "2h"),
        ],
    );
    assert!(parse(&ctx).is_err());
    let parsed = parse_detailed(&ctx, &ParseOptions::go_driver()).unwrap();
    assert_eq!(parsed.spec.renew_before, None);
    assert_eq!(parsed.warnings.len(), 2, "{:?}", parsed.warnings);
    assert!(parsed.warnings[0].contains("unknown-thing"));
    assert!(parsed.warnings[1].contains("renew-before"));
}

#[test]
fn empty_values_mean_unset() {
    let spec = ok(&[
        (keys::ISSUER_KIND, ""),
        (keys::ISSUER_GROUP, ""),
        (keys::DURATION, ""),
        (keys::KEY_USAGES, ""),
        (keys::IS_CA, ""),
        (keys::CERTIFICATE_FILE, ""),
        (keys::KEY_ALGORITHM, ""),
        (keys::KEY_SIZE, ""),
        (keys::FS_GROUP, ""),
        (keys::COMMON_NAME, ""),
    ]);
    assert_eq!(spec, ok(&[]));
}

// ---------------------------------------------------------------- issuer

#[test]
fn issuer_accepted_forms() {
    let spec = ok(&[
        (keys::ISSUER_NAME, "my.issuer-1"),
        (keys::ISSUER_KIND, "AWSPCAClusterIssuer"),
        (keys::ISSUER_GROUP, "awspca.cert-manager.io"),
    ]);
    assert_eq!(spec.issuer.name, "my.issuer-1");
    assert_eq!(spec.issuer.kind, "AWSPCAClusterIssuer");
    assert_eq!(spec.issuer.group, "awspca.cert-manager.io");
}

#[test]
fn issuer_name_required() {
    let e = parse(&without(&[keys::ISSUER_NAME], &[])).unwrap_err();
    assert_eq!(e.len(), 1);
    assert_eq!(
        e.to_string(),
        "invalid volume attribute: csi.cert-manager.io/issuer-name is required: set it to the name of the Issuer or ClusterIssuer that signs the certificate"
    );
    assert!(err(&[(keys::ISSUER_NAME, "")]).mentions(keys::ISSUER_NAME));
}

// ---------------------------------------------------------------- SANs

#[test]
fn sans_accepted_forms() {
    let spec = ok(&[
        (
            keys::DNS_NAMES,
            " a.example.com, *.b.example.com ,_svc.c.local,",
        ),
        (keys::IP_SANS, "192.0.2.1, 2001:db8::1,::ffff:192.0.2.9"),
        (
            keys::URI_SANS,
            "spiffe://cluster.local/ns/shop/sa/web,urn:uuid:0f6c7a4e",
        ),
    ]);
    assert_eq!(
        spec.dns_names,
        ["a.example.com", "*.b.example.com", "_svc.c.local"]
    );
    assert_eq!(
        spec.ip_sans,
        [
            "192.0.2.1".parse::<IpAddr>().unwrap(),
            "2001:db8::1".parse().unwrap(),
            "::ffff:192.0.2.9".parse().unwrap()
        ]
    );
    assert_eq!(
        spec.uri_sans,
        ["spiffe://cluster.local/ns/shop/sa/web", "urn:uuid:0f6c7a4e"]
    );
    assert_eq!(spec.san_count(), 8);
}

#[test]
fn any_one_san_kind_is_enough() {
    let only_ip = parse(&without(&[keys::DNS_NAMES], &[(keys::IP_SANS, "10.0.0.1")])).unwrap();
    assert_eq!(only_ip.ip_sans.len(), 1);
    let only_uri = parse(&without(
        &[keys::DNS_NAMES],
        &[(keys::URI_SANS, "spiffe://a/b")],
    ))
    .unwrap();
    assert_eq!(only_uri.uri_sans.len(), 1);
}

#[test]
fn a_san_is_required() {
    let e = parse(&without(&[keys::DNS_NAMES], &[(keys::COMMON_NAME, "x")])).unwrap_err();
    assert!(
        e.to_string()
            .contains("at least one of csi.cert-manager.io/dns-names, csi.cert-manager.io/ip-sans or csi.cert-manager.io/uri-sans"),
        "{e}"
    );
    // Only commas is no SAN either.
    assert!(err(&[(keys::DNS_NAMES, " , ,")]).mentions(keys::DNS_NAMES));
}

#[test]
fn ip_sans_take_the_pods_ip() {
    let text = err_text(&[(keys::IP_SANS, "${POD_IP}")]);
    assert!(text.contains("--continue-on-not-ready"), "{text}");
    let mut ctx = base();
    ctx.insert(keys::IP_SANS.to_owned(), "${POD_IPS}".to_owned());
    let opts = ParseOptions::original().with_pod_ips(vec![
        "fd00::7".parse().unwrap(),
        "10.1.2.3".parse().unwrap(),
    ]);
    let spec = crate::parse_with(&ctx, &opts).unwrap();
    assert_eq!(
        spec.ip_sans,
        vec![
            "10.1.2.3".parse::<IpAddr>().unwrap(),
            "fd00::7".parse().unwrap()
        ]
    );
}

#[test]
fn san_limits() {
    let many: Vec<String> = (0..101).map(|i| format!("h{i}.example.com")).collect();
    let text = err_text(&[(keys::DNS_NAMES, &many.join(","))]);
    assert!(
        text.contains("101 entries; at most 100 are allowed"),
        "{text}"
    );
    // 100 is fine.
    let spec = ok(&[(keys::DNS_NAMES, &many[..100].join(","))]);
    assert_eq!(spec.dns_names.len(), 100);
    // 100 + 100 + 57 > 256 in total.
    let ips: Vec<String> = (0..100).map(|i| format!("10.0.0.{i}")).collect();
    let uris: Vec<String> = (0..57).map(|i| format!("spiffe://x/{i}")).collect();
    let text = err_text(&[
        (keys::DNS_NAMES, &many[..100].join(",")),
        (keys::IP_SANS, &ips.join(",")),
        (keys::URI_SANS, &uris.join(",")),
    ]);
    assert!(text.contains("257 SANs"), "{text}");
}

#[test]
fn value_length_limits() {
    let long = "a".repeat(limits::MAX_VALUE_BYTES + 1);
    let e = err(&[(keys::ISSUER_NAME, &long)]);
    assert_eq!(e.len(), 1, "{e}");
    assert!(e.to_string().contains("4097 bytes; at most 4096"), "{e}");
    let huge = "a,".repeat(limits::MAX_LIST_VALUE_BYTES);
    assert!(err_text(&[(keys::DNS_NAMES, &huge)]).contains("at most 65536"));
    // Templating cannot smuggle a value past the cap.
    let mut ctx = with(&[(keys::COMMON_NAME, &"${POD_NAME}".repeat(300))]);
    ctx.insert(keys::POD_NAME.into(), "x".repeat(200));
    let e = parse(&ctx).unwrap_err();
    assert!(e.to_string().contains("after templating"), "{e}");
}

// ---------------------------------------------------------------- templating

#[test]
fn every_variable_in_every_templated_attribute() {
    let spec = ok(&[
        (keys::COMMON_NAME, "${POD_NAME}"),
        (
            keys::DNS_NAMES,
            "${POD_NAME}.${POD_NAMESPACE}.svc,$SERVICE_ACCOUNT_NAME.local",
        ),
        (
            keys::URI_SANS,
            "spiffe://cluster.local/ns/$POD_NAMESPACE/sa/${SERVICE_ACCOUNT_NAME}/${POD_UID}",
        ),
        (keys::ORGANIZATIONS, "${POD_NAMESPACE}"),
        (keys::ORGANIZATIONAL_UNITS, "$POD_NAME"),
        (keys::PROVINCES, "${SERVICE_ACCOUNT_NAME}"),
        (keys::LOCALITIES, "${POD_UID}"),
        (keys::STREET_ADDRESSES, "${POD_NAME} street"),
        (keys::POSTAL_CODES, "${POD_NAMESPACE}-1"),
        (keys::SERIAL_NUMBER, "${POD_NAME}"),
    ]);
    let f = fields(&spec);
    assert_eq!(f.common_name.as_deref(), Some("web-0"));
    assert_eq!(spec.dns_names, ["web-0.shop.svc", "web-sa.local"]);
    assert_eq!(
        spec.uri_sans,
        ["spiffe://cluster.local/ns/shop/sa/web-sa/8d0f1c2e-3b4a-4c5d-9e6f-7a8b9c0d1e2f"]
    );
    assert_eq!(f.organizations, ["shop"]);
    assert_eq!(f.organizational_units, ["web-0"]);
    assert_eq!(f.provinces, ["web-sa"]);
    assert_eq!(f.localities, ["8d0f1c2e-3b4a-4c5d-9e6f-7a8b9c0d1e2f"]);
    assert_eq!(f.street_addresses, ["web-0 street"]);
    assert_eq!(f.postal_codes, ["shop-1"]);
    // serialnumber is taken verbatim, as in the Go driver.
    assert_eq!(f.serial_number.as_deref(), Some("${POD_NAME}"));
}

#[test]
fn countries_are_templated_too() {
    let mut ctx = with(&[(keys::COUNTRIES, "${POD_NAMESPACE}")]);
    ctx.insert(keys::POD_NAMESPACE.into(), "gb".into());
    let spec = parse(&ctx).unwrap();
    assert_eq!(fields(&spec).countries, ["gb"]);
}

#[test]
fn literal_subject_is_templated() {
    let spec = ok(&[(
        keys::LITERAL_SUBJECT,
        "CN=${POD_NAME},OU=$POD_NAMESPACE,O=Acme\\, Inc",
    )]);
    let Subject::Literal(l) = &spec.subject else {
        panic!("literal expected")
    };
    assert_eq!(l.text, "CN=web-0,OU=shop,O=Acme\\, Inc");
    let flat: Vec<(&str, &str)> = l
        .rdns
        .iter()
        .flatten()
        .map(|a| (a.attr_type.as_str(), a.value.as_str()))
        .collect();
    assert_eq!(flat, [("O", "Acme, Inc"), ("OU", "shop"), ("CN", "web-0")]);
}

#[test]
fn template_errors_name_the_known_variables() {
    let text = err_text(&[(keys::DNS_NAMES, "${HOSTNAME}.svc")]);
    assert_eq!(
        text,
        "invalid volume attribute: csi.cert-manager.io/dns-names=\"${HOSTNAME}.svc\": unknown variable ${HOSTNAME} (did you mean ${POD_NAME}?); known variables: ${POD_NAME}, ${POD_NAMESPACE}, ${POD_UID}, ${SERVICE_ACCOUNT_NAME}, ${POD_IP}, ${POD_IPS} (write $$ for a literal $)"
    );
}

#[test]
fn template_without_pod_info() {
    let ctx = without(&[keys::POD_NAME], &[(keys::COMMON_NAME, "${POD_NAME}")]);
    let text = parse(&ctx).unwrap_err().to_string();
    assert!(
        text.contains("${POD_NAME} needs csi.storage.k8s.io/pod.name"),
        "{text}"
    );
}

#[test]
fn dollar_escapes_round_trip() {
    let spec = ok(&[
        (keys::COMMON_NAME, "cost $$5 $"),
        (keys::URI_SANS, "urn:x:$$y"),
        (keys::ORGANIZATIONS, "\"A$$, B\",C"),
    ]);
    let f = fields(&spec);
    assert_eq!(f.common_name.as_deref(), Some("cost $5 $"));
    assert_eq!(spec.uri_sans, ["urn:x:$y"]);
    assert_eq!(f.organizations, ["A$, B", "C"]);
    let ctx = spec.to_volume_context();
    assert_eq!(ctx[keys::COMMON_NAME], "cost $$5 $$");
}

// ---------------------------------------------------------------- subject

#[test]
fn subject_fields_accepted_forms() {
    let spec = ok(&[
        (keys::COMMON_NAME, "web"),
        (keys::ORGANIZATIONS, "Acme,\"Acme, Inc\""),
        (keys::ORGANIZATIONAL_UNITS, "Shop, Payments"),
        (keys::COUNTRIES, "GB,de"),
        (keys::PROVINCES, "England"),
        (keys::LOCALITIES, "London"),
        (
            keys::STREET_ADDRESSES,
            "\"10 Downing Street, Westminster\",Manchester",
        ),
        (keys::POSTAL_CODES, "SW1A 2AA"),
        (keys::SERIAL_NUMBER, "1234"),
    ]);
    let f = fields(&spec);
    assert_eq!(f.common_name.as_deref(), Some("web"));
    assert_eq!(f.organizations, ["Acme", "Acme, Inc"]);
    assert_eq!(f.organizational_units, ["Shop", "Payments"]);
    assert_eq!(f.countries, ["GB", "de"]);
    assert_eq!(f.provinces, ["England"]);
    assert_eq!(f.localities, ["London"]);
    assert_eq!(
        f.street_addresses,
        ["10 Downing Street, Westminster", "Manchester"]
    );
    assert_eq!(f.postal_codes, ["SW1A 2AA"]);
    assert_eq!(f.serial_number.as_deref(), Some("1234"));
}

#[test]
fn literal_subject_overrides_fields_with_a_warning() {
    let ctx = with(&[
        (keys::LITERAL_SUBJECT, "CN=x"),
        (keys::COMMON_NAME, "ignored"),
        (keys::ORGANIZATIONS, "ignored"),
    ]);
    let parsed = parse_detailed(&ctx, &ParseOptions::original()).unwrap();
    assert!(matches!(parsed.spec.subject, Subject::Literal(_)));
    assert_eq!(parsed.warnings.len(), 2);
    assert!(parsed.warnings[0].contains("common-name"));
    // The rendered context drops the overridden fields.
    let rendered = parsed.spec.to_volume_context();
    assert!(!rendered.contains_key(keys::COMMON_NAME));
    assert_eq!(parse(&rendered).unwrap(), parsed.spec);
}

#[test]
fn subject_limits() {
    let many = vec!["O"; 33].join(",");
    assert!(err_text(&[(keys::ORGANIZATIONS, &many)]).contains("33 entries; at most 32"));
    let dn = vec!["CN=a"; 33].join(",");
    assert!(err_text(&[(keys::LITERAL_SUBJECT, &dn)]).contains("33 attributes; at most 32"));
}

// ---------------------------------------------------------------- usages

#[test]
fn usages_accepted_forms() {
    let all: Vec<&str> = KeyUsage::ALL.iter().map(|u| u.as_str()).collect();
    let spec = ok(&[(keys::KEY_USAGES, &all.join(","))]);
    assert_eq!(spec.usages, KeyUsage::ALL);
    let spec = ok(&[(keys::KEY_USAGES, "Server Auth, client auth,server auth,")]);
    assert_eq!(spec.usages, [KeyUsage::ServerAuth, KeyUsage::ClientAuth]);
    let spec = ok(&[(keys::KEY_USAGES, "signing,timestamping")]);
    assert_eq!(spec.usages, [KeyUsage::Signing, KeyUsage::Timestamping]);
}

#[test]
fn bad_usage_suggests_and_lists() {
    let text = err_text(&[(keys::KEY_USAGES, "server-auth")]);
    assert!(text.contains("did you mean \"server auth\"?"), "{text}");
    assert!(text.contains("netscape sgc"), "{text}");
}

// ---------------------------------------------------------------- booleans

#[test]
fn booleans_accepted_forms() {
    for (value, expected) in [
        ("true", true),
        ("TRUE", true),
        ("false", false),
        ("False", false),
    ] {
        let spec = ok(&[
            (keys::IS_CA, value),
            (keys::REUSE_PRIVATE_KEY, value),
            (keys::DISABLE_AUTO_RENEW, value),
        ]);
        assert_eq!(spec.is_ca, expected);
        assert_eq!(spec.reuse_private_key, expected);
        assert_eq!(spec.disable_auto_renew, expected);
    }
}

#[test]
fn booleans_rejected_forms() {
    let e = err(&[
        (keys::IS_CA, "yes"),
        (keys::REUSE_PRIVATE_KEY, "1"),
        (keys::DISABLE_AUTO_RENEW, "on"),
    ]);
    assert_eq!(e.len(), 3);
    for err in &e {
        assert!(
            err.to_string()
                .ends_with("not a boolean; accepted: \"true\" or \"false\"")
        );
    }
}

// ---------------------------------------------------------------- durations

#[test]
fn durations_accepted_forms() {
    for (value, secs) in [
        ("720h", 720 * H),
        ("1h30m", 5400),
        ("90m", 5400),
        ("1.5h", 5400),
        ("45s", 45),
        ("2160h0m0s", 2160 * H),
    ] {
        assert_eq!(
            ok(&[(keys::DURATION, value)]).duration,
            Duration::from_secs(secs)
        );
    }
    let spec = ok(&[(keys::DURATION, "10s"), (keys::RENEW_BEFORE, "300ms")]);
    assert_eq!(spec.duration, Duration::from_secs(10));
    assert_eq!(spec.renew_before, Some(Duration::from_millis(300)));
    let spec = ok(&[(keys::RENEW_BEFORE, "72h")]);
    assert_eq!(spec.renew_before, Some(Duration::from_secs(72 * H)));
}

#[test]
fn renew_before_must_be_shorter_than_duration() {
    let text = err_text(&[(keys::DURATION, "1h"), (keys::RENEW_BEFORE, "1h")]);
    assert!(
        text.contains("renew-before (1h0m0s) must be shorter than the duration (1h0m0s): the certificate would be due for renewal as soon as it is issued"),
        "{text}"
    );
    // Compared against the default duration too.
    assert!(err(&[(keys::RENEW_BEFORE, "721h")]).mentions(keys::RENEW_BEFORE));
}

// ---------------------------------------------------------------- key

#[test]
fn key_accepted_forms() {
    type Case<'a> = (&'a [(&'a str, &'a str)], KeyAlgorithm, KeyEncoding);
    let cases: &[Case] = &[
        (&[], KeyAlgorithm::Rsa { bits: 2048 }, KeyEncoding::Pkcs1),
        (
            &[(keys::KEY_ALGORITHM, "rsa"), (keys::KEY_SIZE, "4096")],
            KeyAlgorithm::Rsa { bits: 4096 },
            KeyEncoding::Pkcs1,
        ),
        (
            &[(keys::KEY_SIZE, "8192"), (keys::KEY_ENCODING, "pkcs8")],
            KeyAlgorithm::Rsa { bits: 8192 },
            KeyEncoding::Pkcs8,
        ),
        (
            &[(keys::KEY_ALGORITHM, "ECDSA")],
            KeyAlgorithm::Ecdsa(EcdsaCurve::P256),
            KeyEncoding::Pkcs8,
        ),
        (
            &[(keys::KEY_ALGORITHM, "ecdsa"), (keys::KEY_SIZE, "384")],
            KeyAlgorithm::Ecdsa(EcdsaCurve::P384),
            KeyEncoding::Pkcs8,
        ),
        (
            &[
                (keys::KEY_ALGORITHM, "Ecdsa"),
                (keys::KEY_SIZE, "521"),
                (keys::KEY_ENCODING, "PKCS8"),
            ],
            KeyAlgorithm::Ecdsa(EcdsaCurve::P521),
            KeyEncoding::Pkcs8,
        ),
        (
            &[(keys::KEY_ALGORITHM, "ed25519")],
            KeyAlgorithm::Ed25519,
            KeyEncoding::Pkcs8,
        ),
        (
            &[
                (keys::KEY_ALGORITHM, "Ed25519"),
                (keys::KEY_ENCODING, "Pkcs8"),
            ],
            KeyAlgorithm::Ed25519,
            KeyEncoding::Pkcs8,
        ),
    ];
    for (pairs, alg, enc) in cases {
        let spec = ok(pairs);
        assert_eq!(spec.key.algorithm, *alg, "{pairs:?}");
        assert_eq!(spec.key.encoding, *enc, "{pairs:?}");
    }
    assert_eq!(KeyAlgorithm::Ed25519.size(), None);
    assert_eq!(KeyAlgorithm::Ecdsa(EcdsaCurve::P521).size(), Some(521));
}

#[test]
fn key_rejected_forms() {
    assert!(err_text(&[(keys::KEY_SIZE, "1024")]).contains("from 2048 to 8192"));
    assert!(err_text(&[(keys::KEY_SIZE, "8193")]).contains("from 2048 to 8192"));
    assert!(err_text(&[(keys::KEY_SIZE, "+4096")]).contains("not a valid RSA key size"));
    assert!(
        err_text(&[(keys::KEY_ALGORITHM, "ECDSA"), (keys::KEY_SIZE, "2048")])
            .contains("256 (the default), 384 or 521")
    );
    assert!(
        err_text(&[(keys::KEY_ALGORITHM, "Ed25519"), (keys::KEY_SIZE, "256")])
            .contains("fixed size")
    );
    assert!(
        err_text(&[
            (keys::KEY_ALGORITHM, "ECDSA"),
            (keys::KEY_ENCODING, "PKCS1")
        ])
        .contains("PKCS1 can only encode RSA keys, and key-algorithm is ECDSA")
    );
    assert!(
        err_text(&[
            (keys::KEY_ALGORITHM, "Ed25519"),
            (keys::KEY_ENCODING, "pkcs1")
        ])
        .contains("key-algorithm is Ed25519")
    );
    // An unknown algorithm is one error, not a cascade about the size.
    let e = err(&[(keys::KEY_ALGORITHM, "DSA"), (keys::KEY_SIZE, "1024")]);
    assert_eq!(e.len(), 1, "{e}");
}

// ---------------------------------------------------------------- files

#[test]
fn files_accepted_forms() {
    let spec = ok(&[
        (keys::CERTIFICATE_FILE, "bar/foo.crt"),
        (keys::PRIVATE_KEY_FILE, "bar/foo.key"),
        (keys::CA_FILE, ".ca"),
    ]);
    assert_eq!(spec.files.certificate, "bar/foo.crt");
    assert_eq!(spec.files.private_key, "bar/foo.key");
    assert_eq!(spec.files.ca, ".ca");
    assert_eq!(spec.files.all(), ["bar/foo.crt", "bar/foo.key", ".ca"]);
}

#[test]
fn files_must_be_distinct() {
    let text = err_text(&[(keys::PRIVATE_KEY_FILE, "crt.pem")]);
    assert!(
        text.contains("csi.cert-manager.io/privatekey-file: \"crt.pem\" is also the file name of csi.cert-manager.io/certificate-file"),
        "{text}"
    );
    let text = err_text(&[
        (keys::CERTIFICATE_FILE, "a"),
        (keys::PRIVATE_KEY_FILE, "a/key"),
    ]);
    assert!(
        text.contains("same path as both a file and a directory"),
        "{text}"
    );
    let text = err_text(&[
        (keys::PKCS12_ENABLE, "true"),
        (keys::PKCS12_PASSWORD, "pw"),
        (keys::PKCS12_FILENAME, "ca.pem"),
    ]);
    assert!(
        text.contains(
            "pkcs12-filename: \"ca.pem\" is also the file name of csi.cert-manager.io/ca-file"
        ),
        "{text}"
    );
}

#[test]
fn go_driver_file_defaults_apply_to_unset_keys_only() {
    let ctx = with(&[(keys::CA_FILE, "my-ca.pem")]);
    let spec = parse_with(&ctx, &ParseOptions::go_driver()).unwrap();
    assert_eq!(spec.files.certificate, "tls.crt");
    assert_eq!(spec.files.ca, "my-ca.pem");
}

// ---------------------------------------------------------------- pkcs12

#[test]
fn pkcs12_accepted_forms() {
    let spec = ok(&[
        (keys::PKCS12_ENABLE, "true"),
        (keys::PKCS12_PASSWORD, "s3cret"),
    ]);
    let p = spec.files.pkcs12.as_ref().unwrap();
    assert_eq!(p.filename, "keystore.p12");
    assert_eq!(p.password.expose(), "s3cret");
    let spec = ok(&[
        (keys::PKCS12_ENABLE, "TRUE"),
        (keys::PKCS12_PASSWORD, "pw"),
        (keys::PKCS12_FILENAME, "java/foo.p12"),
    ]);
    assert_eq!(spec.files.pkcs12.unwrap().filename, "java/foo.p12");
    // "false" disables, and what comes with it is ignored.
    let spec = ok(&[
        (keys::PKCS12_ENABLE, "false"),
        (keys::PKCS12_PASSWORD, "pw"),
    ]);
    assert_eq!(spec.files.pkcs12, None);
}

#[test]
fn pkcs12_rejected_forms_never_show_the_password() {
    let text = err_text(&[(keys::PKCS12_ENABLE, "true")]);
    assert!(text.contains("pkcs12-password is required"), "{text}");
    let text = err_text(&[(keys::PKCS12_PASSWORD, "hunter2-secret")]);
    assert!(
        text.contains("only used with csi.cert-manager.io/pkcs12-enable: \"true\""),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
    let text = err_text(&[(keys::PKCS12_FILENAME, "a.p12")]);
    assert!(text.contains("pkcs12-filename: only used with"), "{text}");
    let text = err_text(&[
        (keys::PKCS12_ENABLE, "yes"),
        (keys::PKCS12_PASSWORD, "hunter2-secret"),
    ]);
    assert!(
        text.contains("pkcs12-enable=\"yes\": not a boolean"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
    let long = format!("hunter2{}", "x".repeat(5000));
    let text = err_text(&[
        (keys::PKCS12_ENABLE, "true"),
        (keys::PKCS12_PASSWORD, &long),
    ]);
    assert!(
        text.contains("pkcs12-password: the value is 5007 bytes"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn password_is_redacted_in_debug() {
    let spec = ok(&[
        (keys::PKCS12_ENABLE, "true"),
        (keys::PKCS12_PASSWORD, "hunter2-secret"),
    ]);
    let debug = format!("{spec:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("Password(<redacted>)"));
    assert_eq!(Password::new("x").to_string(), "<redacted>");
}

// ---------------------------------------------------------------- keystores

#[track_caller]
fn ok_with_secrets(pairs: &[(&str, &str)], secrets: &[(&str, &str)]) -> CertificateSpec {
    let ctx = with(pairs);
    let parsed = parse_with_secrets(&ctx, secrets.iter().copied(), &ParseOptions::original())
        .unwrap_or_else(|e| panic!("expected success, got: {e}"));
    let spec = parsed.spec;
    // The rendered context names the Secret's keys; with the same Secret it parses back.
    let rendered = spec.to_volume_context();
    for (_, password) in secrets {
        assert!(
            !rendered.values().any(|v| v == password),
            "a Secret's password is rendered: {rendered:?}"
        );
    }
    let again = parse_with_secrets(
        &rendered,
        secrets.iter().copied(),
        &ParseOptions::original(),
    );
    assert_eq!(again.unwrap().spec, spec);
    spec
}

#[track_caller]
fn err_with_secrets(pairs: &[(&str, &str)], secrets: &[(&str, &str)]) -> String {
    match parse_with_secrets(
        &with(pairs),
        secrets.iter().copied(),
        &ParseOptions::original(),
    ) {
        Ok(p) => panic!("expected an error, got {:?}", p.spec),
        Err(e) => {
            let text = format!("{e} {e:?}");
            for (_, value) in secrets.iter().filter(|(_, v)| !v.is_empty()) {
                assert!(!text.contains(value), "a Secret's value is shown: {text}");
            }
            e.to_string()
        }
    }
}

#[test]
fn jks_defaults_and_accepted_forms() {
    let spec = ok(&[(keys::JKS_ENABLE, "true"), (keys::JKS_PASSWORD, "changeit")]);
    let j = spec.files.jks.as_ref().unwrap();
    assert_eq!(j.filename, "keystore.jks");
    assert_eq!(j.truststore_filename, "truststore.jks");
    assert_eq!(j.alias, "certificate");
    assert_eq!(j.password.expose(), "changeit");
    assert_eq!(j.password_source, PasswordSource::Inline);
    let spec = ok(&[
        (keys::JKS_ENABLE, "True"),
        (keys::JKS_PASSWORD, "pw"),
        (keys::JKS_FILENAME, "java/app.jks"),
        (keys::JKS_TRUSTSTORE_FILENAME, "java/trust.jks"),
        (keys::JKS_ALIAS, "My App"),
    ]);
    let j = spec.files.jks.unwrap();
    assert_eq!(
        (
            j.filename.as_str(),
            j.truststore_filename.as_str(),
            j.alias.as_str()
        ),
        ("java/app.jks", "java/trust.jks", "My App")
    );
    let spec = ok(&[(keys::JKS_ENABLE, "false"), (keys::JKS_ALIAS, "x")]);
    assert_eq!(spec.files.jks, None);
    let all = ok(&[(keys::JKS_ENABLE, "true"), (keys::JKS_PASSWORD, "pw")]);
    assert!(all.files.all().contains(&"truststore.jks"));
}

#[test]
fn jks_rejected_forms_all_at_once_never_show_the_password() {
    let text = err_text(&[(keys::JKS_ENABLE, "true")]);
    assert!(text.contains("jks-password is required"), "{text}");
    assert!(text.contains("jks-password-secret-key"), "{text}");
    let e = err(&[
        (keys::JKS_PASSWORD, "hunter2-secret"),
        (keys::JKS_ALIAS, "a"),
        (keys::JKS_FILENAME, "a.jks"),
    ]);
    assert_eq!(e.len(), 3, "{e}");
    let text = e.to_string();
    assert!(
        text.contains("only used with csi.cert-manager.io/jks-enable: \"true\"; set that to write a JKS keystore"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
    let e = err(&[
        (keys::JKS_ENABLE, "true"),
        (keys::JKS_PASSWORD, "hunter2-secret"),
        (keys::JKS_ALIAS, "CA"),
        (keys::JKS_FILENAME, "../x.jks"),
        (keys::JKS_TRUSTSTORE_FILENAME, "crt.pem"),
    ]);
    assert_eq!(e.len(), 3, "{e}");
    let text = e.to_string();
    assert!(
        text.contains("jks-alias=\"CA\": is the alias of the CA's trusted-certificate entry"),
        "{text}"
    );
    assert!(text.contains("jks-filename=\"../x.jks\""), "{text}");
    assert!(
        text.contains("jks-truststore-filename: \"crt.pem\" is also the file name of csi.cert-manager.io/certificate-file"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
    let text = err_text(&[
        (keys::JKS_ENABLE, "true"),
        (keys::JKS_PASSWORD, "pw"),
        (keys::JKS_ALIAS, "ca-12"),
    ]);
    assert!(text.contains("CA's trusted-certificate entry"), "{text}");
    let text = err_text(&[
        (keys::JKS_ENABLE, "true"),
        (keys::JKS_PASSWORD, "pw"),
        (keys::JKS_ALIAS, "a\u{7}b"),
    ]);
    assert!(
        text.contains("jks-alias") && text.contains("control characters"),
        "{text}"
    );
    // ca-x is an ordinary alias.
    ok(&[
        (keys::JKS_ENABLE, "true"),
        (keys::JKS_PASSWORD, "pw"),
        (keys::JKS_ALIAS, "ca-x"),
    ]);
}

#[test]
fn pkcs12_profiles_and_truststore() {
    let spec = ok(&[(keys::PKCS12_ENABLE, "true"), (keys::PKCS12_PASSWORD, "pw")]);
    let p = spec.files.pkcs12.unwrap();
    assert_eq!(p.profile, Pkcs12Profile::Modern2023);
    assert_eq!(p.truststore_filename, None);
    for (value, profile) in [
        ("LegacyRC2", Pkcs12Profile::LegacyRc2),
        ("legacydes", Pkcs12Profile::LegacyDes),
        ("MODERN2023", Pkcs12Profile::Modern2023),
    ] {
        let spec = ok(&[
            (keys::PKCS12_ENABLE, "true"),
            (keys::PKCS12_PASSWORD, "pw"),
            (keys::PKCS12_PROFILE, value),
            (keys::PKCS12_TRUSTSTORE_FILENAME, "trust.p12"),
        ]);
        let p = spec.files.pkcs12.unwrap();
        assert_eq!(p.profile, profile, "{value}");
        assert_eq!(p.truststore_filename.as_deref(), Some("trust.p12"));
    }
    // The Go driver's volumes keep its LegacyRC2 unless the attribute says otherwise.
    let ctx = with(&[(keys::PKCS12_ENABLE, "true"), (keys::PKCS12_PASSWORD, "pw")]);
    let spec = parse_with(&ctx, &ParseOptions::go_driver()).unwrap();
    assert_eq!(spec.files.pkcs12.unwrap().profile, Pkcs12Profile::LegacyRc2);
    let mut opts = ParseOptions::original();
    opts.pkcs12_profile = Pkcs12Profile::LegacyDes;
    let spec = parse_with(&ctx, &opts).unwrap();
    assert_eq!(spec.files.pkcs12.unwrap().profile, Pkcs12Profile::LegacyDes);
    // Explicit rendering: the profile survives parsing with other defaults.
    let rendered = spec_with_profile_rendered();
    assert_eq!(rendered[keys::PKCS12_PROFILE], "Modern2023");
}

fn spec_with_profile_rendered() -> BTreeMap<String, String> {
    ok(&[(keys::PKCS12_ENABLE, "true"), (keys::PKCS12_PASSWORD, "pw")]).to_volume_context()
}

#[test]
fn unknown_pkcs12_profile_lists_the_valid_ones() {
    let text = err_text(&[
        (keys::PKCS12_ENABLE, "true"),
        (keys::PKCS12_PASSWORD, "pw"),
        (keys::PKCS12_PROFILE, "Modern2024"),
    ]);
    assert!(
        text.contains("pkcs12-profile=\"Modern2024\": not a PKCS#12 profile"),
        "{text}"
    );
    assert!(
        text.contains("accepted: LegacyRC2, LegacyDES, Modern2023 (default Modern2023)"),
        "{text}"
    );
    let text = err_text(&[(keys::PKCS12_PROFILE, "LegacyRC2")]);
    assert!(text.contains("pkcs12-profile: only used with"), "{text}");
}

#[test]
fn passwords_from_the_volumes_secret() {
    let secrets = [("p12-pass", "from-secret-1"), ("jks-pass", "from-secret-2")];
    let spec = ok_with_secrets(
        &[
            (keys::PKCS12_ENABLE, "true"),
            (keys::PKCS12_PASSWORD_SECRET_KEY, "p12-pass"),
            (keys::JKS_ENABLE, "true"),
            (keys::JKS_PASSWORD_SECRET_KEY, "jks-pass"),
        ],
        &secrets,
    );
    let p = spec.files.pkcs12.as_ref().unwrap();
    assert_eq!(p.password.expose(), "from-secret-1");
    assert_eq!(
        p.password_source,
        PasswordSource::Secret {
            key: "p12-pass".into()
        }
    );
    let j = spec.files.jks.as_ref().unwrap();
    assert_eq!(j.password.expose(), "from-secret-2");
    let kept: Vec<(&str, &str)> = spec
        .files
        .secret_passwords()
        .into_iter()
        .map(|(k, p)| (k, p.expose()))
        .collect();
    assert_eq!(kept, secrets);
    let debug = format!("{spec:?}");
    assert!(!debug.contains("from-secret"), "{debug}");
    // An inline password is not a Secret's to keep.
    let spec = ok(&[(keys::JKS_ENABLE, "true"), (keys::JKS_PASSWORD, "pw")]);
    assert!(spec.files.secret_passwords().is_empty());
}

#[test]
fn secret_password_problems_name_the_key_never_a_value() {
    let secrets = [("other", "hunter2-value"), ("empty", "")];
    // Inline and from the Secret at once.
    let text = err_with_secrets(
        &[
            (keys::PKCS12_ENABLE, "true"),
            (keys::PKCS12_PASSWORD, "hunter2-inline"),
            (keys::PKCS12_PASSWORD_SECRET_KEY, "other"),
        ],
        &secrets,
    );
    assert!(
        text.contains("pkcs12-password-secret-key: csi.cert-manager.io/pkcs12-password is also set; give the password once"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
    // A key the Secret does not have: named, with the keys it has, no values.
    let text = err_with_secrets(
        &[
            (keys::JKS_ENABLE, "true"),
            (keys::JKS_PASSWORD_SECRET_KEY, "jks-pass"),
        ],
        &secrets,
    );
    assert!(
        text.contains("has no key \"jks-pass\" (its keys are empty, other)"),
        "{text}"
    );
    // No Secret at all.
    let text = err_with_secrets(
        &[
            (keys::JKS_ENABLE, "true"),
            (keys::JKS_PASSWORD_SECRET_KEY, "jks-pass"),
        ],
        &[],
    );
    assert!(
        text.contains("set the volume's nodePublishSecretRef"),
        "{text}"
    );
    // An empty value, and a malformed key name, reported together.
    let text = err_with_secrets(
        &[
            (keys::JKS_ENABLE, "true"),
            (keys::JKS_PASSWORD_SECRET_KEY, "empty"),
            (keys::PKCS12_ENABLE, "true"),
            (keys::PKCS12_PASSWORD_SECRET_KEY, "a/b"),
        ],
        &secrets,
    );
    assert!(text.contains("\"empty\" but its value is empty"), "{text}");
    assert!(
        text.contains("pkcs12-password-secret-key=\"a/b\": contains '/'"),
        "{text}"
    );
    // Without the Secret, parse refuses a volume whose password is in one.
    let text = err_text(&[
        (keys::PKCS12_ENABLE, "true"),
        (keys::PKCS12_PASSWORD_SECRET_KEY, "p"),
    ]);
    assert!(text.contains("has no key \"p\""), "{text}");
}

#[test]
fn credential_bundle_and_every_name_clash() {
    let spec = ok(&[]);
    assert_eq!(spec.files.credential_bundle, None);
    let spec = ok(&[(keys::CREDENTIAL_BUNDLE_FILE, "tls/bundle.pem")]);
    assert_eq!(
        spec.files.credential_bundle.as_deref(),
        Some("tls/bundle.pem")
    );
    let e = err(&[
        (keys::CREDENTIAL_BUNDLE_FILE, "key.pem"),
        (keys::PKCS12_ENABLE, "true"),
        (keys::PKCS12_PASSWORD, "pw"),
        (keys::PKCS12_FILENAME, "store"),
        (keys::PKCS12_TRUSTSTORE_FILENAME, "store/trust.p12"),
        (keys::JKS_ENABLE, "true"),
        (keys::JKS_PASSWORD, "pw"),
        (keys::JKS_FILENAME, "keystore.p12"),
        (keys::JKS_TRUSTSTORE_FILENAME, "/abs"),
    ]);
    let text = e.to_string();
    assert_eq!(e.len(), 3, "{text}");
    assert!(
        text.contains("credential-bundle-file: \"key.pem\" is also the file name of csi.cert-manager.io/privatekey-file"),
        "{text}"
    );
    assert!(
        text.contains("pkcs12-truststore-filename: \"store/trust.p12\" and csi.cert-manager.io/pkcs12-filename's \"store\" would need the same path"),
        "{text}"
    );
    assert!(text.contains("jks-truststore-filename=\"/abs\""), "{text}");
    // The JKS keystore may not reuse the PKCS#12 default either.
    let text = err_text(&[
        (keys::PKCS12_ENABLE, "true"),
        (keys::PKCS12_PASSWORD, "pw"),
        (keys::JKS_ENABLE, "true"),
        (keys::JKS_PASSWORD, "pw"),
        (keys::JKS_FILENAME, "keystore.p12"),
    ]);
    assert!(
        text.contains("jks-filename: \"keystore.p12\" is also the file name of csi.cert-manager.io/pkcs12-filename"),
        "{text}"
    );
}

#[test]
fn hostile_keystore_values() {
    let secrets = [("k", "v")];
    let huge = "x".repeat(100_000);
    for (key, value) in [
        (keys::JKS_ALIAS, huge.as_str()),
        (keys::JKS_ALIAS, "\u{0}"),
        (keys::JKS_ALIAS, "ca"),
        (keys::JKS_FILENAME, "../../etc/passwd"),
        (keys::JKS_FILENAME, "..data/x"),
        (keys::JKS_TRUSTSTORE_FILENAME, "a\0b"),
        (keys::JKS_PASSWORD_SECRET_KEY, huge.as_str()),
        (keys::JKS_PASSWORD_SECRET_KEY, "../k"),
        (keys::JKS_PASSWORD_SECRET_KEY, ".."),
        (keys::PKCS12_PASSWORD_SECRET_KEY, "k\n"),
        (keys::PKCS12_PROFILE, huge.as_str()),
        (keys::PKCS12_PROFILE, "LegacyRC2\0"),
        (keys::PKCS12_TRUSTSTORE_FILENAME, "/etc/shadow"),
        (keys::CREDENTIAL_BUNDLE_FILE, "../bundle.pem"),
        (keys::CREDENTIAL_BUNDLE_FILE, huge.as_str()),
    ] {
        let mut ctx = with(&[
            (keys::PKCS12_ENABLE, "true"),
            (keys::JKS_ENABLE, "true"),
            (keys::PKCS12_PASSWORD_SECRET_KEY, "k"),
            (keys::JKS_PASSWORD_SECRET_KEY, "k"),
        ]);
        ctx.insert(key.to_owned(), value.to_owned());
        let e = parse_with_secrets(&ctx, secrets, &ParseOptions::original()).unwrap_err();
        let text = e.to_string();
        assert!(e.mentions(key), "{key}: {text}");
        assert!(text.len() < 4096, "{key}: a {} byte message", text.len());
    }
}

// ---------------------------------------------------------------- fs-group

#[test]
fn fs_group_forms() {
    assert_eq!(ok(&[(keys::FS_GROUP, "1")]).fs_group, Some(1));
    assert_eq!(ok(&[(keys::FS_GROUP, "2000")]).fs_group, Some(2000));
    assert_eq!(
        ok(&[(keys::FS_GROUP, "4294967295")]).fs_group,
        Some(u32::MAX)
    );
    for bad in ["0", "-1", "4294967296", "+5", "1e3", "abc"] {
        let text = err_text(&[(keys::FS_GROUP, bad)]);
        assert!(
            text.contains("a whole number from 1 to 4294967295"),
            "{bad}: {text}"
        );
    }
}

// ---------------------------------------------------------------- keys

#[test]
fn kubelet_keys_are_accepted_and_tokens_never_kept() {
    let token = r#"{"":{"token":"eyJhbGciOiJSUzI1NiJ9.SECRET-TOKEN","expirationTimestamp":"2030-01-01T00:00:00Z"}}"#;
    let ctx = with(&[
        (keys::SERVICE_ACCOUNT_TOKENS, token),
        ("csi.storage.k8s.io/something.new", "x"),
    ]);
    let spec = parse(&ctx).unwrap();
    assert_eq!(spec.pod.name.as_deref(), Some("web-0"));
    assert_eq!(spec.pod.namespace.as_deref(), Some("shop"));
    assert_eq!(
        spec.pod.uid.as_deref(),
        Some("8d0f1c2e-3b4a-4c5d-9e6f-7a8b9c0d1e2f")
    );
    assert_eq!(spec.pod.service_account_name.as_deref(), Some("web-sa"));
    assert_eq!(spec.pod.ephemeral, Some(true));
    assert!(!format!("{spec:?}").contains("SECRET-TOKEN"));
    assert!(
        !spec
            .to_volume_context()
            .values()
            .any(|v| v.contains("SECRET-TOKEN"))
    );
    // Nor in errors.
    let mut bad = ctx.clone();
    bad.remove(keys::ISSUER_NAME);
    let e = parse(&bad).unwrap_err();
    assert!(!format!("{e} {e:?}").contains("SECRET-TOKEN"));
}

#[test]
fn pass_through_annotations() {
    let spec = ok(&[
        ("custom.group.io/team", "payments"),
        ("example.com/cost-centre", "42"),
    ]);
    assert_eq!(spec.annotations.len(), 2);
    assert_eq!(spec.annotations["custom.group.io/team"], "payments");
    let text = err_text(&[("Bad_Prefix/x", "y")]);
    assert!(text.contains("not a valid annotation key"), "{text}");
    let big = "v".repeat(200 * 1024);
    let text = err_text(&[("a.io/one", &big), ("a.io/two", &big)]);
    assert!(text.contains("Kubernetes allows at most 262144"), "{text}");
}

#[test]
fn unknown_driver_keys_suggest_the_nearest() {
    let text = err_text(&[("csi.cert-manager.io/dns-name", "a.example.com")]);
    assert_eq!(
        text,
        "invalid volume attribute: csi.cert-manager.io/dns-name is not a known attribute; did you mean csi.cert-manager.io/dns-names?"
    );
    let text = err_text(&[("csi.cert-manager.io/keystore-pkcs12-enable", "true")]);
    assert!(
        text.contains("did you mean csi.cert-manager.io/pkcs12-enable?"),
        "{text}"
    );
    let text = err_text(&[("csi.cert-manager.io/completely-different", "x")]);
    assert!(
        text.contains("listed in the driver's documentation"),
        "{text}"
    );
    // A near miss of the prefix, and an unprefixed attribute name.
    let text = err_text(&[("csi.certmanager.io/duration", "1h")]);
    assert!(
        text.contains("did you mean csi.cert-manager.io/duration?"),
        "{text}"
    );
    let text = err_text(&[("is-ca", "true")]);
    assert!(
        text.contains("did you mean csi.cert-manager.io/is-ca?"),
        "{text}"
    );
    // The unknown key's value is not echoed (it may be a mistyped password).
    let text = err_text(&[("csi.cert-manager.io/pkcs12-pasword", "hunter2")]);
    assert!(
        !text.contains("hunter2") && text.contains("pkcs12-password?"),
        "{text}"
    );
}

#[test]
fn unrelated_unprefixed_keys_are_warnings() {
    let ctx = with(&[("foo", "bar")]);
    let parsed = parse_detailed(&ctx, &ParseOptions::original()).unwrap();
    assert_eq!(parsed.warnings.len(), 1);
    assert!(parsed.warnings[0].contains("ignored attribute \"foo\""));
    assert!(parsed.spec.annotations.is_empty());
}

#[test]
fn accepts_other_map_shapes() {
    let pairs = [(keys::ISSUER_NAME, "i"), (keys::URI_SANS, "spiffe://x/y")];
    let from_array = parse(pairs).unwrap();
    let hash: std::collections::HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    assert_eq!(parse(&hash).unwrap(), from_array);
    let dup = [
        (keys::ISSUER_NAME, "i"),
        (keys::ISSUER_NAME, "j"),
        (keys::URI_SANS, "a:b"),
    ];
    assert!(
        parse(dup)
            .unwrap_err()
            .to_string()
            .contains("given more than once")
    );
}

// ---------------------------------------------------------------- messages

#[test]
fn all_problems_in_one_message() {
    let ctx = without(
        &[keys::ISSUER_NAME],
        &[
            (keys::DURATION, "30d"),
            (keys::IS_CA, "yes"),
            (keys::IP_SANS, "300.1.1.1"),
        ],
    );
    let e = parse(&ctx).unwrap_err();
    assert_eq!(e.len(), 4);
    let text = e.to_string();
    assert!(
        text.starts_with("invalid volume attributes (4 problems): (1) "),
        "{text}"
    );
    for attr in [
        keys::ISSUER_NAME,
        keys::DURATION,
        keys::IS_CA,
        keys::IP_SANS,
    ] {
        assert!(e.mentions(attr), "{attr}");
        assert!(text.contains(attr));
    }
    let attrs: Vec<&str> = e.iter().map(AttributeError::attribute).collect();
    assert_eq!(attrs.len(), 4);
}

#[test]
fn message_is_capped_but_iteration_is_not() {
    let mut ctx = base();
    for i in 0..30 {
        ctx.insert(format!("csi.cert-manager.io/bogus-{i:02}"), "x".into());
    }
    let e = parse(&ctx).unwrap_err();
    assert_eq!(e.len(), 30);
    assert_eq!(e.iter().count(), 30);
    assert!(e.to_string().ends_with("; and 10 more"), "{e}");
}

#[test]
fn long_values_are_shortened_in_messages() {
    let long = format!("{}.example.com", "x".repeat(300));
    let text = err_text(&[(keys::DNS_NAMES, &long)]);
    assert!(
        text.contains("\"... (312 bytes): longer than 253 characters"),
        "{text}"
    );
    assert!(!text.contains(&"x".repeat(150)), "{text}");
}

/// The error text of many distinct bad inputs: each names the attribute, the
/// value (when it is not secret) and what is accepted.
#[test]
fn error_text_of_bad_inputs() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[(keys::ISSUER_NAME, "CA_Issuer")],
            "csi.cert-manager.io/issuer-name=\"CA_Issuer\": not a Kubernetes object name: it may only contain lower-case letters, digits, '-' and '.'; accepted: the name of an Issuer or ClusterIssuer, e.g. ca-issuer",
        ),
        (
            &[(keys::ISSUER_NAME, "a..b")],
            "it has an empty dot-separated part",
        ),
        (
            &[(keys::ISSUER_KIND, "cluster-issuer")],
            "csi.cert-manager.io/issuer-kind=\"cluster-issuer\": not a Kubernetes kind: it may only contain letters and digits; accepted: Issuer, ClusterIssuer",
        ),
        (
            &[(keys::ISSUER_KIND, "9Issuer")],
            "it must start with a letter",
        ),
        (
            &[(keys::ISSUER_GROUP, "Cert-Manager.io")],
            "csi.cert-manager.io/issuer-group=\"Cert-Manager.io\": not an API group",
        ),
        (
            &[(keys::DNS_NAMES, "a..example.com")],
            "csi.cert-manager.io/dns-names=\"a..example.com\": has an empty label (a leading, trailing or doubled '.'); accepted: DNS names such as",
        ),
        (
            &[(keys::DNS_NAMES, "a.*.example.com")],
            "label \"*\" may only contain letters, digits, '-' and '_'",
        ),
        (
            &[(keys::DNS_NAMES, "-a.example.com")],
            "label \"-a\" starts or ends with '-'",
        ),
        (
            &[(keys::DNS_NAMES, "münchen.de")],
            "write internationalised names in their xn-- (punycode) form",
        ),
        (
            &[(keys::DNS_NAMES, "a b.example.com")],
            "label \"a b\" may only contain",
        ),
        (
            &[(keys::IP_SANS, "300.1.1.1")],
            "csi.cert-manager.io/ip-sans=\"300.1.1.1\": not an IP address; accepted: IPv4 or IPv6 addresses such as 192.0.2.1 or 2001:db8::1",
        ),
        (
            &[(keys::IP_SANS, "fe80::1%eth0")],
            "ip-sans=\"fe80::1%eth0\": not an IP address",
        ),
        (
            &[(keys::IP_SANS, "010.0.0.1")],
            "ip-sans=\"010.0.0.1\": not an IP address",
        ),
        (
            &[(keys::URI_SANS, "/just/a/path")],
            "csi.cert-manager.io/uri-sans=\"/just/a/path\": has no scheme; write an absolute URI such as spiffe://",
        ),
        (&[(keys::URI_SANS, "http:")], "has nothing after the scheme"),
        (&[(keys::URI_SANS, "1x://a")], "\"1x\" is not a URI scheme"),
        (
            &[(keys::URI_SANS, "spiffe://a/b c")],
            "contains spaces or control characters",
        ),
        (
            &[(keys::DURATION, "30d")],
            "csi.cert-manager.io/duration=\"30d\": not a Go duration: unknown unit \"d\"; accepted: a positive Go duration such as 720h, 1h30m, 90m, 1.5h or 45s (units h, m, s, ms, us, ns; there is no d: write 24h per day)",
        ),
        (
            &[(keys::DURATION, "90")],
            "duration=\"90\": not a Go duration: missing unit after \"90\"",
        ),
        (
            &[(keys::DURATION, "0s")],
            "duration=\"0s\": must be longer than zero",
        ),
        (
            &[(keys::DURATION, "-1h")],
            "duration=\"-1h\": must not be negative",
        ),
        (&[(keys::DURATION, "1h 30m")], "unknown unit \"h \""),
        (
            &[(keys::DURATION, "9999999h")],
            "longer than Go's maximum duration",
        ),
        (
            &[(keys::RENEW_BEFORE, "0")],
            "renew-before=\"0\": must be longer than zero",
        ),
        (
            &[(keys::RENEW_BEFORE, "-5m")],
            "renew-before=\"-5m\": must not be negative",
        ),
        (
            &[(keys::RENEW_BEFORE, "soon")],
            "renew-before=\"soon\": not a Go duration: expected a number at \"soon\"",
        ),
        (
            &[(keys::IS_CA, "yes")],
            "csi.cert-manager.io/is-ca=\"yes\": not a boolean; accepted: \"true\" or \"false\"",
        ),
        (
            &[(keys::KEY_USAGES, "server auth,sign")],
            "csi.cert-manager.io/key-usages=\"sign\": not a cert-manager key usage",
        ),
        (
            &[(keys::KEY_USAGES, ",,")],
            "key-usages=\",,\": lists no usage",
        ),
        (
            &[(keys::KEY_ALGORITHM, "EC")],
            "csi.cert-manager.io/key-algorithm=\"EC\": not a supported key algorithm; accepted: RSA (the default), ECDSA or Ed25519, in any case",
        ),
        (
            &[(keys::KEY_SIZE, "1024")],
            "csi.cert-manager.io/key-size=\"1024\": not a valid RSA key size; accepted for RSA: a number of bits from 2048 to 8192 (default 2048)",
        ),
        (
            &[(keys::KEY_SIZE, "big")],
            "key-size=\"big\": not a valid RSA key size",
        ),
        (
            &[(keys::KEY_ALGORITHM, "ECDSA"), (keys::KEY_SIZE, "P-256")],
            "key-size=\"P-256\": not an ECDSA curve size",
        ),
        (
            &[(keys::KEY_ALGORITHM, "Ed25519"), (keys::KEY_SIZE, "255")],
            "key-size=\"255\": Ed25519 keys have a fixed size; remove key-size when key-algorithm is Ed25519",
        ),
        (
            &[(keys::KEY_ENCODING, "DER")],
            "csi.cert-manager.io/key-encoding=\"DER\": not a key encoding; accepted: PKCS1 (RSA only; the default for RSA) or PKCS8",
        ),
        (
            &[
                (keys::KEY_ALGORITHM, "ECDSA"),
                (keys::KEY_ENCODING, "PKCS1"),
            ],
            "csi.cert-manager.io/key-encoding: PKCS1 can only encode RSA keys",
        ),
        (
            &[(keys::CERTIFICATE_FILE, "/etc/tls.crt")],
            "csi.cert-manager.io/certificate-file=\"/etc/tls.crt\": must be a relative path inside the volume, not an absolute path; accepted: a relative path inside the volume",
        ),
        (
            &[(keys::PRIVATE_KEY_FILE, "../key.pem")],
            "privatekey-file=\"../key.pem\": has a \"..\" path component",
        ),
        (
            &[(keys::CA_FILE, "..data")],
            "component \"..data\" starts with \"..\", which is reserved for the driver's atomic writer",
        ),
        (
            &[(keys::CA_FILE, "certs//ca.pem")],
            "has an empty path component",
        ),
        (&[(keys::CA_FILE, "certs/")], "has an empty path component"),
        (&[(keys::CA_FILE, "./ca.pem")], "has a \".\" path component"),
        (
            &[(keys::CERTIFICATE_FILE, "a\u{0}b")],
            "contains NUL or control characters",
        ),
        (
            &[(keys::CERTIFICATE_FILE, " crt.pem")],
            "has leading or trailing spaces",
        ),
        (
            &[(keys::CERTIFICATE_FILE, &*"c".repeat(256))],
            "has a path component longer than 255 bytes",
        ),
        (
            &[(keys::FS_GROUP, "0")],
            "csi.cert-manager.io/fs-group=\"0\": not a group ID; accepted: a whole number from 1 to 4294967295",
        ),
        (
            &[(keys::COUNTRIES, "GBR")],
            "csi.cert-manager.io/countries=\"GBR\": not a two-letter country code; accepted: ISO 3166 two-letter codes",
        ),
        (
            &[(keys::ORGANIZATIONS, "\"Acme, Inc")],
            "organizations=\"\\\"Acme, Inc\": a quoted entry is missing its closing '\"'",
        ),
        (
            &[(keys::ORGANIZATIONS, "Acme \"Inc\"")],
            "a '\"' inside an unquoted entry",
        ),
        (
            &[(keys::STREET_ADDRESSES, "\"a\" b")],
            "unexpected 'b' after a closing quote",
        ),
        (
            &[(keys::COMMON_NAME, "line\nbreak")],
            "csi.cert-manager.io/common-name=\"line\\nbreak\": contains control characters",
        ),
        (
            &[(keys::SERIAL_NUMBER, "12\t34")],
            "serialnumber=\"12\\t34\": contains control characters",
        ),
        (
            &[(keys::LITERAL_SUBJECT, "CN=a,,O=b")],
            "csi.cert-manager.io/literal-subject=\"CN=a,,O=b\": an empty RDN (two separators in a row, or one at an end); accepted: an RFC 4514 string",
        ),
        (
            &[(keys::LITERAL_SUBJECT, "FOO=bar")],
            "unknown attribute type \"FOO\"; use one of CN, SERIALNUMBER, C, L, ST, STREET, O, OU, POSTALCODE, UID, DC or a dotted OID",
        ),
        (
            &[(keys::LITERAL_SUBJECT, "CN=#04026869")],
            "the '#' hex-encoded value form is not supported",
        ),
        (
            &[(keys::LITERAL_SUBJECT, "CN=a\\q")],
            "'\\' must be followed by",
        ),
        (
            &[(keys::LITERAL_SUBJECT, "CN")],
            "\"CN\" has no '=' between type and value",
        ),
        (
            &[(keys::COMMON_NAME, "${POD_NAME")],
            "\"${\" at \"${POD_NAME\" is not closed with '}'",
        ),
        (&[(keys::COMMON_NAME, "a${}b")], "\"${}\" names no variable"),
        (
            &[(keys::COMMON_NAME, "$POD_NAMESAPCE")],
            "unknown variable ${POD_NAMESAPCE} (did you mean ${POD_NAMESPACE}?)",
        ),
        (
            &[(keys::PKCS12_ENABLE, "enabled")],
            "csi.cert-manager.io/pkcs12-enable=\"enabled\": not a boolean",
        ),
        (
            &[("csi.cert-manager.io/issuer", "x")],
            "csi.cert-manager.io/issuer is not a known attribute; did you mean csi.cert-manager.io/issuer-name?",
        ),
        (
            &[("csi.cert-manager.io/keysize", "4096")],
            "did you mean csi.cert-manager.io/key-size?",
        ),
        (
            &[("csi.cert-manager.io/Duration", "1h")],
            "did you mean csi.cert-manager.io/duration?",
        ),
        (
            &[("CSI.cert-manager.io/duration", "1h")],
            "did you mean csi.cert-manager.io/duration?",
        ),
        (
            &[("example.com/", "x")],
            "the name after '/' must be 1 to 63 characters",
        ),
    ];
    let mut seen = std::collections::BTreeSet::new();
    for (pairs, expected) in cases {
        let text = err_text(pairs);
        assert!(
            text.contains(expected),
            "input {pairs:?}\n  expected to contain: {expected}\n  got: {text}"
        );
        assert!(
            seen.insert(format!("{pairs:?}")),
            "duplicate case {pairs:?}"
        );
    }
    assert!(seen.len() >= 60, "{}", seen.len());
}

#[test]
fn file_name_depth_and_length_limits_are_options() {
    let deep = ["d"; limits::DEFAULT_MAX_FILE_PATH_DEPTH + 1].join("/");
    let long = vec!["x".repeat(200); 6].join("/");
    let e = err(&[(keys::CERTIFICATE_FILE, &deep), (keys::CA_FILE, &long)]);
    let text = e.to_string();
    // Both problems at once, each naming the limit to change.
    assert!(
        e.mentions(keys::CERTIFICATE_FILE) && e.mentions(keys::CA_FILE),
        "{text}"
    );
    assert!(text.contains("9 path components; at most 8"), "{text}");
    assert!(text.contains("--max-file-name-depth"), "{text}");
    assert!(text.contains("at most 1024 are allowed"), "{text}");
    assert!(text.contains("--max-file-name-bytes"), "{text}");
    // Within the default: accepted; a node may lower the limits.
    let ok_depth = ["d"; limits::DEFAULT_MAX_FILE_PATH_DEPTH].join("/");
    ok(&[(keys::CERTIFICATE_FILE, &ok_depth)]);
    let mut opts = ParseOptions::original();
    opts.max_file_path_depth = 2;
    opts.max_sans = 1;
    let ctx = with(&[
        (keys::CERTIFICATE_FILE, "a/b/c.pem"),
        (keys::DNS_NAMES, "a.example.com,b.example.com"),
    ]);
    let text = parse_with(&ctx, &opts).unwrap_err().to_string();
    assert!(text.contains("3 path components; at most 2"), "{text}");
    assert!(
        text.contains("2 SANs") && text.contains("--max-sans"),
        "{text}"
    );
}

#[test]
fn cert_manager_annotations_are_refused_unless_allowed() {
    for key in [
        "cert-manager.io/issuer-name",
        "venafi.cert-manager.io/pickup-id",
        "Venafi.Cert-Manager.io/pickup-id",
    ] {
        let text = err_text(&[(key, "x")]);
        assert!(
            text.contains("cert-manager and its issuers act on cert-manager.io/")
                && text.contains("--allow-cert-manager-annotations"),
            "{key}: {text}"
        );
    }
    // A look-alike domain is not cert-manager's.
    let spec = ok(&[("not-cert-manager.io/x", "y")]);
    assert_eq!(spec.annotations.len(), 1);
    let mut opts = ParseOptions::original();
    opts.allow_cert_manager_annotations = true;
    let map: BTreeMap<String, String> = base()
        .into_iter()
        .chain([(
            "venafi.cert-manager.io/pickup-id".to_owned(),
            "1".to_owned(),
        )])
        .collect();
    let spec = parse_with(&map, &opts).unwrap();
    assert_eq!(spec.annotations["venafi.cert-manager.io/pickup-id"], "1");
}

#[test]
fn keystore_passwords_are_bounded_and_printable_never_quoted() {
    let long = "p".repeat(crate::limits::MAX_PASSWORD_BYTES + 1);
    let huge = "q".repeat(1024 * 1024);
    let secrets = [
        ("long", long.as_str()),
        ("ctl", "pass\u{7}hunter9"),
        ("huge", huge.as_str()),
    ];
    for key in ["long", "ctl", "huge"] {
        let text = err_with_secrets(
            &[
                (keys::JKS_ENABLE, "true"),
                (keys::JKS_PASSWORD_SECRET_KEY, key),
            ],
            &secrets,
        );
        assert!(
            text.contains(&format!(
                "the value of key {key:?} of the volume's Secret is not a usable"
            )),
            "{text}"
        );
        assert!(
            !text.contains("ppp") && !text.contains("qqq") && !text.contains("hunter9"),
            "{text}"
        );
    }
    let text = err_text(&[
        (keys::PKCS12_ENABLE, "true"),
        (keys::PKCS12_PASSWORD, "in\u{1b}line-secret"),
    ]);
    assert!(text.contains("control characters"), "{text}");
    assert!(!text.contains("line-secret"), "{text}");
    let text = err_text(&[
        (keys::PKCS12_ENABLE, "true"),
        (keys::PKCS12_PASSWORD, &long),
    ]);
    assert!(text.contains("at most 1024 are allowed"), "{text}");
    // At the limit, printable: accepted.
    let ok_long = "p".repeat(crate::limits::MAX_PASSWORD_BYTES);
    ok(&[
        (keys::PKCS12_ENABLE, "true"),
        (keys::PKCS12_PASSWORD, &ok_long),
    ]);
}

#[test]
fn the_node_may_lower_the_password_limit_never_raise_it() {
    let map = |p: &str| -> BTreeMap<String, String> {
        [
            (keys::ISSUER_NAME, "ca"),
            (keys::DNS_NAMES, "a.example.com"),
            (keys::PKCS12_ENABLE, "true"),
            (keys::PKCS12_PASSWORD, p),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    };
    let mut opts = ParseOptions::original();
    opts.max_password_bytes = 16;
    let text = parse_with(&map(&"p".repeat(17)), &opts)
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("at most 16 are allowed") && text.contains("--max-keystore-password-bytes"),
        "{text}"
    );
    assert!(!text.contains("ppp"), "{text}");
    parse_with(&map(&"p".repeat(16)), &opts).unwrap();
    // A larger setting does not lift the library's cap.
    opts.max_password_bytes = 1 << 20;
    let text = parse_with(
        &map(&"p".repeat(crate::limits::MAX_PASSWORD_BYTES + 1)),
        &opts,
    )
    .unwrap_err()
    .to_string();
    assert!(text.contains("at most 1024 are allowed"), "{text}");
}
