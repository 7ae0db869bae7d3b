//! Mapping the validated attributes (`attrs`) onto what `keygen` needs. The
//! two crates are independent on purpose, so each can be used alone.

use cmcsi_attrs::{CertificateSpec, EcdsaCurve, KeyAlgorithm, KeyEncoding, Subject};
use cmcsi_keygen as keygen;

/// The key spec `keygen` generates for a volume.
pub fn key_spec(spec: &CertificateSpec) -> keygen::KeySpec {
    match spec.key.algorithm {
        KeyAlgorithm::Rsa { bits } => keygen::KeySpec::Rsa {
            bits: u32::from(bits),
        },
        KeyAlgorithm::Ecdsa(EcdsaCurve::P384) => keygen::KeySpec::EcdsaP384,
        KeyAlgorithm::Ecdsa(EcdsaCurve::P521) => keygen::KeySpec::EcdsaP521,
        KeyAlgorithm::Ecdsa(_) => keygen::KeySpec::EcdsaP256,
        KeyAlgorithm::Ed25519 => keygen::KeySpec::Ed25519,
        // `KeyAlgorithm` is non-exhaustive; attrs accepts nothing else today.
        _ => keygen::KeySpec::RSA_2048,
    }
}

/// The PEM encoding of the key file.
pub fn key_encoding(spec: &CertificateSpec) -> keygen::KeyEncoding {
    match spec.key.encoding {
        KeyEncoding::Pkcs1 => keygen::KeyEncoding::Pkcs1,
        _ => keygen::KeyEncoding::Pkcs8,
    }
}

/// The CSR contents for a volume.
pub fn csr_params(spec: &CertificateSpec) -> keygen::CsrParams {
    let subject = match &spec.subject {
        // attrs keeps the RDNs in DER order; keygen takes them in string
        // order (and reverses them itself).
        Subject::Literal(lit) => keygen::Subject::Literal(
            lit.rdns
                .iter()
                .rev()
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
        _ => keygen::Subject::default(),
    };
    keygen::CsrParams {
        subject,
        dns_names: spec.dns_names.clone(),
        ip_addresses: spec.ip_sans.clone(),
        uris: spec.uri_sans.clone(),
    }
}
