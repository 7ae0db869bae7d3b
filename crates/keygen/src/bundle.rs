//! [`credential_bundle`]: the key and its chain in one PEM file.

use der::pem::LineEnding;
use zeroize::Zeroizing;

use crate::{ChainSummary, Error, KeyEncoding, PrivateKey, Result};

/// One PEM text holding the PKCS#8 private key (`PRIVATE KEY`), then the leaf and the
/// rest of `chain_pem` (`CERTIFICATE` blocks, re-encoded, so text around the blocks is
/// dropped), the layout of Kubernetes' Pod certificate projection. A reader gets the key
/// and its certificate from one file, so one `read()` never sees a mix of two issuances.
///
/// Fails with [`Error::LeafKeyMismatch`] when the chain's leaf is not for `key`.
pub fn credential_bundle(key: &PrivateKey, chain_pem: &[u8]) -> Result<Zeroizing<String>> {
    let summary = ChainSummary::from_pem(chain_pem)?;
    if !summary.leaf_matches_key(key) {
        return Err(Error::LeafKeyMismatch);
    }
    let key_pem = key.to_pem(KeyEncoding::Pkcs8)?;
    let mut out = Zeroizing::new(String::with_capacity(key_pem.len() + chain_pem.len() + 64));
    out.push_str(&key_pem);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    for der in &summary.certificates_der {
        let pem = der::pem::encode_string("CERTIFICATE", LineEnding::LF, der)
            .map_err(|e| Error::InvalidChain(format!("re-encoding a certificate: {e}")))?;
        out.push_str(&pem);
    }
    Ok(out)
}
