//! Every mapping between the crates' types, in one place: the validated
//! attributes (`attrs`) onto what `keygen` needs, and a spec onto the
//! `CertificateRequest` that `issuer-client` creates. The crates are
//! independent on purpose, so each can be used alone; this module is the
//! seam, and it is exhaustive: a new variant on the `attrs` side fails to
//! compile here instead of quietly mapping to something else.
//!
//! Literal subjects are in DER (encoding) order on both sides, so nothing
//! here reverses them.

#![deny(clippy::wildcard_enum_match_arm)]

use cmcsi_attrs::{CertificateSpec, EcdsaCurve, KeyAlgorithm, KeyEncoding, Pkcs12Profile, Subject};
use cmcsi_issuer_client as ic;
use cmcsi_keygen as keygen;

/// The key spec `keygen` generates for a volume.
pub fn key_spec(spec: &CertificateSpec) -> keygen::KeySpec {
    match spec.key.algorithm {
        KeyAlgorithm::Rsa { bits } => keygen::KeySpec::Rsa {
            bits: u32::from(bits),
        },
        KeyAlgorithm::Ecdsa(EcdsaCurve::P256) => keygen::KeySpec::EcdsaP256,
        KeyAlgorithm::Ecdsa(EcdsaCurve::P384) => keygen::KeySpec::EcdsaP384,
        KeyAlgorithm::Ecdsa(EcdsaCurve::P521) => keygen::KeySpec::EcdsaP521,
        KeyAlgorithm::Ed25519 => keygen::KeySpec::Ed25519,
    }
}

/// The PEM encoding of the key file.
pub fn key_encoding(spec: &CertificateSpec) -> keygen::KeyEncoding {
    match spec.key.encoding {
        KeyEncoding::Pkcs1 => keygen::KeyEncoding::Pkcs1,
        KeyEncoding::Pkcs8 => keygen::KeyEncoding::Pkcs8,
    }
}

/// A PKCS#12 profile, by cert-manager's name on both sides.
pub fn pkcs12_profile(profile: Pkcs12Profile) -> keygen::Pkcs12Profile {
    match profile {
        Pkcs12Profile::LegacyRc2 => keygen::Pkcs12Profile::LegacyRc2,
        Pkcs12Profile::LegacyDes => keygen::Pkcs12Profile::LegacyDes,
        Pkcs12Profile::Modern2023 => keygen::Pkcs12Profile::Modern2023,
    }
}

/// The CSR contents for a volume.
pub fn csr_params(spec: &CertificateSpec) -> keygen::CsrParams {
    let subject = match &spec.subject {
        Subject::Literal(lit) => keygen::Subject::Literal(
            lit.rdns
                .iter()
                .map(|rdn| {
                    keygen::Rdn(
                        rdn.iter()
                            .map(|a| (a.oid.clone(), a.value.clone()))
                            .collect(),
                    )
                })
                .collect(),
        ),
        Subject::Fields(f) => keygen::Subject::Fields(keygen::SubjectFields {
            common_name: f.common_name.clone(),
            organizations: f.organizations.clone(),
            organizational_units: f.organizational_units.clone(),
            countries: f.countries.clone(),
            provinces: f.provinces.clone(),
            localities: f.localities.clone(),
            street_addresses: f.street_addresses.clone(),
            postal_codes: f.postal_codes.clone(),
            serial_number: f.serial_number.clone(),
        }),
    };
    keygen::CsrParams {
        subject,
        dns_names: spec.dns_names.clone(),
        ip_addresses: spec.ip_sans.clone(),
        uris: spec.uri_sans.clone(),
    }
}

/// The `CertificateRequest` for a volume's CSR: issuer, lifetime, usages,
/// annotations and the Pod it is for.
pub fn new_request(
    volume_id: &str,
    spec: &CertificateSpec,
    namespace: &str,
    name: &str,
    csr_pem: String,
) -> ic::NewRequest {
    ic::NewRequest {
        name: Some(name.to_string()),
        namespace: namespace.to_string(),
        csr_pem: csr_pem.into_bytes(),
        issuer_ref: ic::IssuerRef {
            name: spec.issuer.name.clone(),
            kind: Some(spec.issuer.kind.clone()),
            group: Some(spec.issuer.group.clone()),
        },
        duration: Some(spec.duration),
        is_ca: spec.is_ca,
        usages: spec.usages.iter().map(|u| u.as_str().to_string()).collect(),
        annotations: spec.annotations.clone(),
        volume_id: volume_id.to_string(),
        pod: ic::PodRef {
            name: spec.pod.name.clone().unwrap_or_default(),
            uid: spec.pod.uid.clone().unwrap_or_default(),
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use cmcsi_attrs::keys;

    #[test]
    fn pkcs12_profiles_map_by_name() {
        for &p in Pkcs12Profile::ALL {
            assert_eq!(pkcs12_profile(p).as_str(), p.as_str());
        }
    }

    fn spec(extra: &[(&str, &str)]) -> CertificateSpec {
        let mut ctx = vec![
            (keys::ISSUER_NAME, "ca"),
            (keys::DNS_NAMES, "a.example.com"),
            (keys::POD_NAME, "p"),
            (keys::POD_NAMESPACE, "ns"),
            (keys::POD_UID, "uid-1"),
        ];
        ctx.extend_from_slice(extra);
        cmcsi_attrs::parse(ctx).unwrap()
    }

    /// Every key algorithm, size and encoding that docs/usage.md lists.
    #[test]
    fn every_documented_key_maps_to_its_keygen_spec() {
        let rsa = |bits| keygen::KeySpec::Rsa { bits };
        type Case = (
            &'static [(&'static str, &'static str)],
            keygen::KeySpec,
            keygen::KeyEncoding,
        );
        let cases: &[Case] = &[
            (&[], rsa(2048), keygen::KeyEncoding::Pkcs1),
            (
                &[(keys::KEY_ALGORITHM, "RSA")],
                rsa(2048),
                keygen::KeyEncoding::Pkcs1,
            ),
            (
                &[(keys::KEY_ALGORITHM, "rsa"), (keys::KEY_SIZE, "3072")],
                rsa(3072),
                keygen::KeyEncoding::Pkcs1,
            ),
            (
                &[(keys::KEY_SIZE, "4096"), (keys::KEY_ENCODING, "PKCS8")],
                rsa(4096),
                keygen::KeyEncoding::Pkcs8,
            ),
            (
                &[(keys::KEY_SIZE, "8192"), (keys::KEY_ENCODING, "PKCS1")],
                rsa(8192),
                keygen::KeyEncoding::Pkcs1,
            ),
            (
                &[(keys::KEY_ALGORITHM, "ECDSA")],
                keygen::KeySpec::EcdsaP256,
                keygen::KeyEncoding::Pkcs8,
            ),
            (
                &[(keys::KEY_ALGORITHM, "ECDSA"), (keys::KEY_SIZE, "256")],
                keygen::KeySpec::EcdsaP256,
                keygen::KeyEncoding::Pkcs8,
            ),
            (
                &[(keys::KEY_ALGORITHM, "ecdsa"), (keys::KEY_SIZE, "384")],
                keygen::KeySpec::EcdsaP384,
                keygen::KeyEncoding::Pkcs8,
            ),
            (
                &[(keys::KEY_ALGORITHM, "ECDSA"), (keys::KEY_SIZE, "521")],
                keygen::KeySpec::EcdsaP521,
                keygen::KeyEncoding::Pkcs8,
            ),
            (
                &[(keys::KEY_ALGORITHM, "Ed25519")],
                keygen::KeySpec::Ed25519,
                keygen::KeyEncoding::Pkcs8,
            ),
            (
                &[
                    (keys::KEY_ALGORITHM, "ed25519"),
                    (keys::KEY_ENCODING, "PKCS8"),
                ],
                keygen::KeySpec::Ed25519,
                keygen::KeyEncoding::Pkcs8,
            ),
        ];
        for (attrs, want_spec, want_encoding) in cases {
            let s = spec(attrs);
            assert_eq!(key_spec(&s), *want_spec, "{attrs:?}");
            assert_eq!(key_encoding(&s), *want_encoding, "{attrs:?}");
        }
    }

    /// Every usage cert-manager names reaches the request under that name.
    #[test]
    fn every_usage_reaches_the_request_by_its_cert_manager_name() {
        for usage in cmcsi_attrs::KeyUsage::ALL {
            let s = spec(&[(keys::KEY_USAGES, usage.as_str())]);
            let req = new_request("csi-1", &s, "ns", "p-abc", String::new());
            assert_eq!(req.usages, vec![usage.as_str().to_string()]);
        }
        let s = spec(&[]);
        let req = new_request("csi-1", &s, "ns", "p-abc", "CSR".into());
        assert_eq!(req.usages, vec!["digital signature", "key encipherment"]);
        assert_eq!(req.issuer_ref.name, "ca");
        assert_eq!(req.issuer_ref.kind.as_deref(), Some("Issuer"));
        assert_eq!(req.issuer_ref.group.as_deref(), Some("cert-manager.io"));
        assert_eq!(req.pod.name, "p");
        assert_eq!(req.pod.uid, "uid-1");
        assert_eq!(req.csr_pem, b"CSR");
        assert_eq!(
            req.duration,
            Some(std::time::Duration::from_secs(720 * 3600))
        );
    }

    /// Both subject forms, and a literal subject's order from the string to
    /// the encoded name.
    #[test]
    fn subject_forms_reach_the_csr_in_der_order() {
        let s = spec(&[
            (keys::COMMON_NAME, "${POD_NAME}.svc"),
            (keys::ORGANIZATIONS, "Acme"),
            (keys::ORGANIZATIONAL_UNITS, "team"),
            (keys::COUNTRIES, "US"),
            (keys::PROVINCES, "CA"),
            (keys::LOCALITIES, "SF"),
            (keys::STREET_ADDRESSES, "1 Main St"),
            (keys::POSTAL_CODES, "94000"),
            (keys::SERIAL_NUMBER, "42"),
        ]);
        let keygen::Subject::Fields(f) = csr_params(&s).subject else {
            panic!("expected fields");
        };
        assert_eq!(f.common_name.as_deref(), Some("p.svc"));
        assert_eq!(f.organizations, ["Acme"]);
        assert_eq!(f.organizational_units, ["team"]);
        assert_eq!(f.countries, ["US"]);
        assert_eq!(f.provinces, ["CA"]);
        assert_eq!(f.localities, ["SF"]);
        assert_eq!(f.street_addresses, ["1 Main St"]);
        assert_eq!(f.postal_codes, ["94000"]);
        assert_eq!(f.serial_number.as_deref(), Some("42"));

        let s = spec(&[(keys::LITERAL_SUBJECT, "CN=${POD_NAME},OU=team,O=Example")]);
        let subject = csr_params(&s).subject;
        let keygen::Subject::Literal(rdns) = &subject else {
            panic!("expected a literal subject");
        };
        assert_eq!(rdns.len(), 3);
        assert_eq!(rdns[0].0, [("2.5.4.10".to_string(), "Example".to_string())]);
        assert_eq!(rdns[2].0, [("2.5.4.3".to_string(), "p".to_string())]);
        // The encoded name reads back as the string the Pod wrote.
        assert_eq!(
            subject.to_name().unwrap().to_string(),
            "CN=p,OU=team,O=Example"
        );
    }
}
