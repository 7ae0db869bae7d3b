//! [`TrustBundle`]: CA certificates from one or more sources, checked, deduplicated and
//! in a stable order, as one PEM file.

use std::collections::BTreeSet;

use der::{Decode, Encode};
use x509_cert::Certificate;
use x509_cert::ext::pkix::BasicConstraints;

use crate::{Error, Result};

/// The default bound on a bundle's PEM size: 1 MiB, about what one Kubernetes object
/// (a `ClusterTrustBundle` or a ConfigMap) may hold.
pub const DEFAULT_MAX_TRUST_BUNDLE_BYTES: usize = 1024 * 1024;

/// PEM's line length for base64 bodies.
const PEM_LINE: der::pem::LineEnding = der::pem::LineEnding::LF;

/// A set of CA certificates gathered from trust bundle sources.
///
/// Each [`add_source`](Self::add_source) checks that the source holds only PEM
/// `CERTIFICATE` blocks, each a CA certificate (`basicConstraints` with `cA`), as
/// Kubernetes requires of a `ClusterTrustBundle`. [`to_pem`](Self::to_pem) writes them
/// deduplicated and sorted by their DER encoding, so the same sources always give the same
/// bytes, whatever their order (the kubelet's `clusterTrustBundle` projection also merges,
/// deduplicates and sorts).
#[derive(Debug, Clone)]
pub struct TrustBundle {
    certs: BTreeSet<Vec<u8>>,
    pem_bytes: usize,
    max_bytes: usize,
}

impl TrustBundle {
    /// An empty bundle whose PEM may grow to `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        TrustBundle {
            certs: BTreeSet::new(),
            pem_bytes: 0,
            max_bytes,
        }
    }

    /// Adds every certificate of `pem`, the data of the source named `source` (the name
    /// goes into errors; the data never does). Nothing is added when the source is
    /// refused.
    pub fn add_source(&mut self, source: &str, pem: &[u8]) -> Result<()> {
        let refuse = |reason: String| Error::InvalidTrustBundle {
            source_name: source.to_owned(),
            reason,
        };
        let text = std::str::from_utf8(pem)
            .map_err(|e| refuse(format!("not UTF-8 text (byte {})", e.valid_up_to())))?;
        let mut found = Vec::new();
        let mut rest = text;
        loop {
            let Some(begin) = rest.find("-----BEGIN ") else {
                if !rest.trim().is_empty() {
                    return Err(refuse(
                        "holds text outside PEM blocks; it must hold only PEM CERTIFICATE blocks"
                            .to_owned(),
                    ));
                }
                break;
            };
            if !rest[..begin].trim().is_empty() {
                return Err(refuse(
                    "holds text outside PEM blocks; it must hold only PEM CERTIFICATE blocks"
                        .to_owned(),
                ));
            }
            let block = &rest[begin..];
            let label_end = block["-----BEGIN ".len()..]
                .find("-----")
                .map(|i| i + "-----BEGIN ".len())
                .ok_or_else(|| refuse("holds a malformed PEM header".to_owned()))?;
            let label = &block["-----BEGIN ".len()..label_end];
            if label != "CERTIFICATE" {
                let what = if label.contains("PRIVATE KEY") {
                    "a private key"
                } else {
                    "a PEM block that is not a certificate"
                };
                return Err(refuse(format!(
                    "holds {what} ({label:?}); a trust bundle holds only CA certificates"
                )));
            }
            let end_marker = "-----END CERTIFICATE-----";
            let end = block
                .find(end_marker)
                .ok_or_else(|| refuse("holds a PEM block without its END line".to_owned()))?
                + end_marker.len();
            let (_, der) = der::pem::decode_vec(&block.as_bytes()[..end])
                .map_err(|e| refuse(format!("holds a PEM block that does not decode: {e}")))?;
            found.push(der);
            rest = &block[end..];
        }
        if found.is_empty() {
            return Err(refuse("holds no certificate".to_owned()));
        }
        for (i, der) in found.iter().enumerate() {
            let n = i + 1;
            let cert = Certificate::from_der(der)
                .map_err(|e| refuse(format!("certificate {n} does not parse: {e}")))?;
            let is_ca = cert
                .tbs_certificate()
                .get_extension::<BasicConstraints>()
                .map_err(|e| refuse(format!("certificate {n} has bad extensions: {e}")))?
                .is_some_and(|(_, bc)| bc.ca);
            if !is_ca {
                return Err(refuse(format!(
                    "certificate {n} ({}) is not a CA certificate (no basicConstraints cA=true); a trust bundle holds only CA certificates",
                    cert.tbs_certificate().subject()
                )));
            }
            // Re-encode, so equal certificates written differently compare equal.
            let canonical = cert
                .to_der()
                .map_err(|e| refuse(format!("certificate {n} does not encode: {e}")))?;
            let size = pem_size(canonical.len());
            if !self.certs.contains(&canonical) {
                if self.pem_bytes + size > self.max_bytes {
                    return Err(Error::TrustBundleTooLarge {
                        bytes: self.pem_bytes + size,
                        max: self.max_bytes,
                    });
                }
                self.pem_bytes += size;
                self.certs.insert(canonical);
            }
        }
        Ok(())
    }

    /// Number of distinct certificates.
    pub fn len(&self) -> usize {
        self.certs.len()
    }

    /// Whether no certificate was added.
    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }

    /// The DER of each certificate, in the bundle's order.
    pub fn certificates_der(&self) -> impl Iterator<Item = &[u8]> {
        self.certs.iter().map(Vec::as_slice)
    }

    /// The bundle as PEM `CERTIFICATE` blocks, sorted by DER, one after another.
    pub fn to_pem(&self) -> String {
        let mut out = String::with_capacity(self.pem_bytes);
        for der in &self.certs {
            // Encoding into a String cannot fail for a DER we hold; skip defensively.
            if let Ok(block) = der::pem::encode_string("CERTIFICATE", PEM_LINE, der) {
                out.push_str(&block);
            }
        }
        out
    }
}

/// Bytes of one PEM CERTIFICATE block of `der_len` DER bytes (64-column base64, LF).
fn pem_size(der_len: usize) -> usize {
    let b64 = der_len.div_ceil(3) * 4;
    let lines = b64.div_ceil(64);
    "-----BEGIN CERTIFICATE-----\n".len() + b64 + lines + "-----END CERTIFICATE-----\n".len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_size_matches_the_encoder() {
        for len in [1usize, 47, 48, 49, 300, 1000] {
            let der = vec![7u8; len];
            let pem = der::pem::encode_string("CERTIFICATE", PEM_LINE, &der).unwrap();
            assert_eq!(pem.len(), pem_size(len), "{len}");
        }
    }
}
