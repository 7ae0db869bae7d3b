//! PKCS#12 keystores: [`pkcs12`] and [`Pkcs12Profile`].
//!
//! Written with the `p12-keystore` crate (RustCrypto `pkcs12`/`pkcs5`/`cms` underneath),
//! the maintained crate that writes PBES2 keystores; RustCrypto's own `pkcs12` crate only
//! has the ASN.1 types and the key derivation, not a writer.
//!
//! Key hygiene: `p12-keystore` keeps its own copy of the PKCS#8 key in a plain `Vec` that
//! is not zeroized when the keystore is dropped. This crate's copy is zeroized; the
//! written keystore holds the key only encrypted.

use p12_keystore::{
    Certificate as P12Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm,
    PrivateKeyChain,
};
use sha2::{Digest, Sha256};

use crate::{ChainSummary, Error, PrivateKey, Result};

/// Iteration count for PBKDF2 and the MAC key derivation: what cert-manager's Modern2023
/// (go-pkcs12) and OpenSSL 3 use by default.
const ITERATIONS: u32 = 2048;

/// The friendly name (alias) of the key entry, as Java's `keytool -list` shows it.
pub const PKCS12_ALIAS: &str = "certificate";

/// How a PKCS#12 keystore is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Pkcs12Profile {
    /// cert-manager's `Modern2023`: PBES2 with PBKDF2-HMAC-SHA256 and AES-256-CBC for the
    /// key and certificates, HMAC-SHA256 MAC, 2048 iterations. Opens with OpenSSL 3 and
    /// Java 11.0.12+ / 17+.
    #[default]
    Modern2023,
    /// For old readers (Java 8, OpenSSL 1.0): pbeWithSHAAnd3-KeyTripleDES-CBC for key and
    /// certificates, HMAC-SHA1 MAC, 2048 iterations. This is go-pkcs12's `LegacyDES`;
    /// the Go driver's `LegacyRC2` (RC2-40 certificates) is not offered because OpenSSL 3
    /// needs `-legacy` to read it.
    Legacy,
}

/// Writes a PKCS#12 keystore holding `key` and the certificates of `chain_pem` (leaf first,
/// then intermediates, as the Go driver does; the CA is not added), protected by
/// `password`.
///
/// Fails with [`Error::LeafKeyMismatch`] when the chain's leaf is not for `key`.
pub fn pkcs12(
    key: &PrivateKey,
    chain_pem: &[u8],
    password: &str,
    profile: Pkcs12Profile,
) -> Result<Vec<u8>> {
    let summary = ChainSummary::from_pem(chain_pem)?;
    if !summary.leaf_matches_key(key) {
        return Err(Error::LeafKeyMismatch);
    }
    let p12_err = |e: p12_keystore::error::Error| Error::Pkcs12(e.to_string());
    let p12_certs = summary
        .certificates_der
        .iter()
        .map(|der| P12Certificate::from_der(der).map_err(p12_err))
        .collect::<Result<Vec<_>>>()?;
    let key_der = key.to_pkcs8_der()?;
    let p12_key = p12_keystore::PrivateKey::from_der(key_der.as_bytes()).map_err(p12_err)?;
    // localKeyId ties the key bag to the leaf's bag; a digest of the leaf, as go-pkcs12
    // does (it uses SHA-1).
    let local_key_id = Sha256::digest(&summary.certificates_der[0]).to_vec();
    let mut store = KeyStore::new();
    store.add_entry(
        PKCS12_ALIAS,
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(local_key_id, p12_key, p12_certs)),
    );
    let (encryption, mac) = match profile {
        Pkcs12Profile::Modern2023 => (
            EncryptionAlgorithm::PbeWithHmacSha256AndAes256,
            MacAlgorithm::HmacSha256,
        ),
        Pkcs12Profile::Legacy => (
            EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc,
            MacAlgorithm::HmacSha1,
        ),
    };
    store
        .writer(password)
        .encryption_algorithm(encryption)
        .encryption_iterations(ITERATIONS)
        .mac_algorithm(mac)
        .mac_iterations(ITERATIONS)
        .write()
        .map_err(p12_err)
}
