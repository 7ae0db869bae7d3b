//! [`ChainSummary`]: what the renewal schedule and the logs need from an issued chain.

use std::net::IpAddr;
use std::time::SystemTime;

use der::{Decode, Encode};
use spki::SubjectPublicKeyInfoRef;
use x509_cert::Certificate;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

use crate::{Error, PrivateKey, Result};

/// A parsed certificate chain (leaf first, then intermediates) and a summary of its leaf.
#[derive(Debug, Clone)]
pub struct ChainSummary {
    /// The leaf's serial number, lowercase hex, big-endian, without leading zero bytes.
    pub serial_hex: String,
    /// Start of the leaf's validity.
    pub not_before: SystemTime,
    /// End of the leaf's validity.
    pub not_after: SystemTime,
    /// DNS names from the leaf's subjectAltName extension.
    pub dns_names: Vec<String>,
    /// IP addresses from the leaf's subjectAltName extension.
    pub ip_addresses: Vec<IpAddr>,
    /// URIs from the leaf's subjectAltName extension.
    pub uris: Vec<String>,
    /// The leaf's subject, RFC 4514 string.
    pub subject: String,
    /// The leaf's issuer, RFC 4514 string.
    pub issuer: String,
    /// The DER encoding of every certificate, leaf first.
    pub certificates_der: Vec<Vec<u8>>,
    leaf_spki_der: Vec<u8>,
}

impl ChainSummary {
    /// Parses a PEM chain (as in a CertificateRequest's `status.certificate`): one or more
    /// `CERTIFICATE` blocks, the first being the leaf.
    pub fn from_pem(chain_pem: &[u8]) -> Result<ChainSummary> {
        let Parsed {
            certs,
            san,
            leaf_spki_der,
        } = parse(chain_pem)?;
        let tbs = certs.first().ok_or(Error::EmptyChain)?.tbs_certificate();

        let mut dns_names = Vec::new();
        let mut ip_addresses = Vec::new();
        let mut uris = Vec::new();
        if let Some(san) = san {
            for name in san.0 {
                match name {
                    GeneralName::DnsName(n) => dns_names.push(n.to_string()),
                    GeneralName::UniformResourceIdentifier(n) => uris.push(n.to_string()),
                    GeneralName::IpAddress(bytes) => {
                        let b = bytes.as_bytes();
                        if let Ok(v4) = <[u8; 4]>::try_from(b) {
                            ip_addresses.push(IpAddr::from(v4));
                        } else if let Ok(v6) = <[u8; 16]>::try_from(b) {
                            ip_addresses.push(IpAddr::from(v6));
                        }
                    }
                    _ => {}
                }
            }
        }
        let serial = tbs.serial_number().as_bytes();
        let serial_hex = match serial.iter().position(|b| *b != 0) {
            Some(first) => hex(&serial[first..]),
            None => "00".to_owned(),
        };
        let validity = tbs.validity();
        let certificates_der = certs
            .iter()
            .map(|c| c.to_der())
            .collect::<der::Result<Vec<_>>>()
            .map_err(|e| Error::InvalidChain(e.to_string()))?;
        Ok(ChainSummary {
            serial_hex,
            not_before: validity.not_before.to_system_time(),
            not_after: validity.not_after.to_system_time(),
            dns_names,
            ip_addresses,
            uris,
            subject: tbs.subject().to_string(),
            issuer: tbs.issuer().to_string(),
            leaf_spki_der,
            certificates_der,
        })
    }

    /// The leaf's public key (SubjectPublicKeyInfo, DER), to compare with a
    /// request's key when the private key is not at hand.
    pub fn leaf_public_key_der(&self) -> &[u8] {
        &self.leaf_spki_der
    }

    /// Number of certificates after the leaf.
    pub fn intermediates(&self) -> usize {
        self.certificates_der.len().saturating_sub(1)
    }

    /// Whether the leaf certificate carries `key`'s public key.
    ///
    /// Compares the algorithm, its curve for EC keys, and the public key bits, so an issuer
    /// that writes RSA's NULL parameters differently still matches.
    pub fn leaf_matches_key(&self, key: &PrivateKey) -> bool {
        let Ok(ours) = key.public_key_der() else {
            return false;
        };
        spki_matches(&self.leaf_spki_der, &ours)
    }
}

/// An issued chain checked as [`ChainSummary::from_pem`] checks it (every certificate parsed,
/// the leaf's subjectAltName decoded), keeping of the leaf only its validity and public key.
///
/// For a caller that compares those with its request and reads nothing else: it builds none
/// of the strings a [`ChainSummary`] holds (subject and issuer, whose attribute names are
/// looked up one OID at a time, SANs, serial) and does not encode the certificates again.
#[derive(Debug, Clone)]
pub struct LeafValidity {
    /// Start of the leaf's validity.
    pub not_before: SystemTime,
    /// End of the leaf's validity.
    pub not_after: SystemTime,
    leaf_spki_der: Vec<u8>,
}

impl LeafValidity {
    /// Parses a PEM chain as [`ChainSummary::from_pem`] does, failing where it fails.
    pub fn from_pem(chain_pem: &[u8]) -> Result<LeafValidity> {
        let Parsed {
            certs,
            leaf_spki_der,
            ..
        } = parse(chain_pem)?;
        let validity = certs
            .first()
            .ok_or(Error::EmptyChain)?
            .tbs_certificate()
            .validity();
        Ok(LeafValidity {
            not_before: validity.not_before.to_system_time(),
            not_after: validity.not_after.to_system_time(),
            leaf_spki_der,
        })
    }

    /// The leaf's public key (SubjectPublicKeyInfo, DER).
    pub fn leaf_public_key_der(&self) -> &[u8] {
        &self.leaf_spki_der
    }
}

/// A parsed chain (never empty) and what every reader of its leaf checks.
struct Parsed {
    certs: Vec<Certificate>,
    san: Option<SubjectAltName>,
    leaf_spki_der: Vec<u8>,
}

fn parse(chain_pem: &[u8]) -> Result<Parsed> {
    let certs = parse_chain(chain_pem)?;
    let leaf = certs.first().ok_or(Error::EmptyChain)?;
    let tbs = leaf.tbs_certificate();
    let invalid = |e: der::Error| Error::InvalidChain(format!("leaf certificate: {e}"));
    let san = tbs
        .get_extension::<SubjectAltName>()
        .map_err(invalid)?
        .map(|(_critical, san)| san);
    let leaf_spki_der = tbs
        .subject_public_key_info()
        .to_der()
        .map_err(|e| Error::InvalidChain(e.to_string()))?;
    Ok(Parsed {
        certs,
        san,
        leaf_spki_der,
    })
}

fn spki_matches(a: &[u8], b: &[u8]) -> bool {
    let (Ok(a), Ok(b)) = (
        SubjectPublicKeyInfoRef::from_der(a),
        SubjectPublicKeyInfoRef::from_der(b),
    ) else {
        return false;
    };
    a.algorithm.oid == b.algorithm.oid
        && a.algorithm.parameters_oid().ok() == b.algorithm.parameters_oid().ok()
        && a.subject_public_key == b.subject_public_key
}

/// Parses every `CERTIFICATE` block of a PEM chain.
fn parse_chain(chain_pem: &[u8]) -> Result<Vec<Certificate>> {
    let text = std::str::from_utf8(chain_pem).map_err(|e| Error::ChainNotUtf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err(Error::EmptyChain);
    }
    let certs = Certificate::load_pem_chain(text.trim().as_bytes())
        .map_err(|e| Error::InvalidChain(e.to_string()))?;
    if certs.is_empty() {
        return Err(Error::EmptyChain);
    }
    Ok(certs)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_non_pem_inputs_are_typed_errors() {
        assert!(matches!(
            ChainSummary::from_pem(b""),
            Err(Error::EmptyChain)
        ));
        assert!(matches!(
            ChainSummary::from_pem(b"hello"),
            Err(Error::EmptyChain)
        ));
        assert!(matches!(
            ChainSummary::from_pem(b"\xff\xfe-----BEGIN CERTIFICATE-----"),
            Err(Error::ChainNotUtf8 { valid_up_to: 0 })
        ));
        assert!(matches!(
            ChainSummary::from_pem(
                b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
            ),
            Err(Error::InvalidChain(_))
        ));
    }

    #[test]
    fn hex_is_lowercase_and_padded() {
        assert_eq!(hex(&[0x0a, 0xff, 0x00]), "0aff00");
    }
}
