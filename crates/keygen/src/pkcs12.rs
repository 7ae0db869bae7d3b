//! PKCS#12 keystores: [`pkcs12`] and [`Pkcs12Profile`].
//!
//! Written with the `p12-keystore` crate (RustCrypto `pkcs12`/`pkcs5`/`cms` underneath),
//! the maintained crate that writes PBES2 keystores; RustCrypto's own `pkcs12` crate only
//! has the ASN.1 types and the key derivation, not a writer.
//!
//! Key hygiene: `p12-keystore` keeps its own copy of the PKCS#8 key in a plain `Vec` that
//! is not zeroized when the keystore is dropped. This crate's copy is zeroized; the
//! written keystore holds the key only encrypted.

use der::asn1::{Any, ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use hmac::{Hmac, KeyInit, Mac};
use p12_keystore::{
    Certificate as P12Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm,
    PrivateKeyChain,
};
use pkcs12::DigestInfo;
use pkcs12::MacData;
use pkcs12::cms::content_info::ContentInfo;
use pkcs12::kdf::{self, Pkcs12KeyType};
use pkcs12::pfx::{Pfx, Version};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use spki::AlgorithmIdentifierOwned;
use zeroize::Zeroizing;

use crate::{ChainSummary, Error, PrivateKey, Result};

/// Iteration count for PBKDF2 and the MAC key derivation: what cert-manager's Modern2023
/// (go-pkcs12) and OpenSSL 3 use by default.
const ITERATIONS: u32 = 2048;

/// The friendly name (alias) of the key entry, as Java's `keytool -list` shows it.
pub const PKCS12_ALIAS: &str = "certificate";

/// How a PKCS#12 keystore is protected, by cert-manager's profile names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Pkcs12Profile {
    /// cert-manager's `Modern2023`: PBES2 with PBKDF2-HMAC-SHA256 and AES-256-CBC for the
    /// key and certificates, HMAC-SHA256 MAC, 2048 iterations. Opens with OpenSSL 3 and
    /// Java 8u301+ / 11.0.12+ / 17+.
    #[default]
    Modern2023,
    /// cert-manager's `LegacyDES`: pbeWithSHAAnd3-KeyTripleDES-CBC for key and
    /// certificates, HMAC-SHA1 MAC, 2048 iterations. For old Java; OpenSSL 3 reads it
    /// without `-legacy`.
    LegacyDes,
    /// cert-manager's `LegacyRC2` (the Go driver's only format):
    /// pbeWithSHAAnd40BitRC2-CBC for the certificates, pbeWithSHAAnd3-KeyTripleDES-CBC for
    /// the key, HMAC-SHA1 MAC, 2048 iterations. For the oldest readers; OpenSSL 3 needs
    /// `-legacy` to read it.
    LegacyRc2,
}

impl Pkcs12Profile {
    /// Every profile, in the order the documentation lists them.
    pub const ALL: &[Pkcs12Profile] = &[
        Pkcs12Profile::LegacyRc2,
        Pkcs12Profile::LegacyDes,
        Pkcs12Profile::Modern2023,
    ];

    /// cert-manager's name: `LegacyRC2`, `LegacyDES` or `Modern2023`.
    pub fn as_str(self) -> &'static str {
        match self {
            Pkcs12Profile::Modern2023 => "Modern2023",
            Pkcs12Profile::LegacyDes => "LegacyDES",
            Pkcs12Profile::LegacyRc2 => "LegacyRC2",
        }
    }
}

impl std::fmt::Display for Pkcs12Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Writes a PKCS#12 keystore holding `key` and the certificates of `chain_pem` (leaf first,
/// then intermediates, as the Go driver does; the CA is not added), protected by
/// `password` with `profile`.
///
/// Fails with [`Error::LeafKeyMismatch`] when the chain's leaf is not for `key`, and with
/// [`Error::Pkcs12`] when the password is longer than
/// [`MAX_KEYSTORE_PASSWORD_BYTES`](crate::MAX_KEYSTORE_PASSWORD_BYTES).
pub fn pkcs12(
    key: &PrivateKey,
    chain_pem: &[u8],
    password: &str,
    profile: Pkcs12Profile,
) -> Result<Vec<u8>> {
    crate::jks::check_password(password, Error::Pkcs12)?;
    let summary = ChainSummary::from_pem(chain_pem)?;
    if !summary.leaf_matches_key(key) {
        return Err(Error::LeafKeyMismatch);
    }
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
    match profile {
        Pkcs12Profile::Modern2023 => write(&store, password, Algorithms::MODERN),
        Pkcs12Profile::LegacyDes => write(&store, password, Algorithms::DES),
        Pkcs12Profile::LegacyRc2 => legacy_rc2(&store, password),
    }
}

/// Writes a PKCS#12 truststore: each certificate of `ca_pem` as a trusted certificate
/// (friendly name `ca`, `ca-2`, ...; Java's `keytool` lists them as `trustedCertEntry`),
/// protected by `password` with `profile` (`LegacyRC2` encrypts them with RC2-40).
///
/// Fails with [`Error::EmptyChain`] when `ca_pem` holds no certificate.
pub fn pkcs12_truststore(ca_pem: &[u8], password: &str, profile: Pkcs12Profile) -> Result<Vec<u8>> {
    crate::jks::check_password(password, Error::Pkcs12)?;
    let cas = crate::jks::ca_certificates(ca_pem)?;
    if cas.is_empty() {
        return Err(Error::EmptyChain);
    }
    let mut store = KeyStore::new();
    for (i, der) in cas.iter().enumerate() {
        let alias = match i {
            0 => crate::JKS_CA_ALIAS.to_owned(),
            _ => format!("{}-{}", crate::JKS_CA_ALIAS, i + 1),
        };
        let cert = P12Certificate::from_der(der).map_err(p12_err)?;
        store.add_entry(&alias, KeyStoreEntry::Certificate(cert));
    }
    let algorithms = match profile {
        Pkcs12Profile::Modern2023 => Algorithms::MODERN,
        Pkcs12Profile::LegacyDes => Algorithms::DES,
        Pkcs12Profile::LegacyRc2 => Algorithms::RC2,
    };
    write(&store, password, algorithms)
}

fn p12_err(e: p12_keystore::error::Error) -> Error {
    Error::Pkcs12(e.to_string())
}

fn der_err(e: der::Error) -> Error {
    Error::Pkcs12(format!("assembling the LegacyRC2 keystore failed: {e}"))
}

/// One encryption algorithm for every bag, and the MAC.
#[derive(Clone, Copy)]
struct Algorithms(EncryptionAlgorithm, MacAlgorithm);

impl Algorithms {
    const MODERN: Algorithms = Algorithms(
        EncryptionAlgorithm::PbeWithHmacSha256AndAes256,
        MacAlgorithm::HmacSha256,
    );
    const DES: Algorithms = Algorithms(
        EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc,
        MacAlgorithm::HmacSha1,
    );
    // The variant is misnamed in p12-keystore: it is pbeWithSHAAnd40BitRC2-CBC
    // (1.2.840.113549.1.12.1.6), the OID it writes.
    const RC2: Algorithms = Algorithms(
        EncryptionAlgorithm::PbeWithShaAnd40BitRc4Cbc,
        MacAlgorithm::HmacSha1,
    );
}

fn write(store: &KeyStore, password: &str, Algorithms(enc, mac): Algorithms) -> Result<Vec<u8>> {
    store
        .writer(password)
        .encryption_algorithm(enc)
        .encryption_iterations(ITERATIONS)
        .mac_algorithm(mac)
        .mac_iterations(ITERATIONS)
        .write()
        .map_err(p12_err)
}

const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ID_ENCRYPTED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.6");
const ID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const MAC_SALT_LEN: usize = 20;

/// `LegacyRC2` mixes algorithms, which `p12-keystore`'s writer does not: its one
/// algorithm applies to every bag. So the keystore is written twice, with RC2-40 and with
/// 3DES, and assembled from the RC2 one's encrypted certificate safe and the 3DES one's key
/// safe (each writer emits exactly one of each), under a new HMAC-SHA1 MAC (RFC 7292
/// appendix B key derivation, from the `pkcs12` crate). No cipher is written by hand.
fn legacy_rc2(store: &KeyStore, password: &str) -> Result<Vec<u8>> {
    let rc2 = write(store, password, Algorithms::RC2)?;
    let des = write(store, password, Algorithms::DES)?;
    let certs = safes(&rc2)?
        .into_iter()
        .find(|c| c.content_type == ID_ENCRYPTED_DATA)
        .ok_or_else(|| {
            Error::Pkcs12("the RC2 keystore has no encrypted certificate safe".into())
        })?;
    let keys = safes(&des)?
        .into_iter()
        .find(|c| c.content_type == ID_DATA)
        .ok_or_else(|| Error::Pkcs12("the 3DES keystore has no key safe".into()))?;
    let auth_safe_der = vec![certs, keys].to_der().map_err(der_err)?;

    let mut salt = [0u8; MAC_SALT_LEN];
    getrandom::fill(&mut salt)
        .map_err(|e| Error::Pkcs12(format!("the random generator failed: {e}")))?;
    let iterations = i32::try_from(ITERATIONS).unwrap_or(i32::MAX);
    let mac_key = Zeroizing::new(
        kdf::derive_key_utf8::<Sha1>(password, &salt, Pkcs12KeyType::Mac, iterations, 20)
            .map_err(der_err)?,
    );
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(&mac_key)
        .map_err(|e| Error::Pkcs12(format!("the MAC key was refused: {e}")))?;
    mac.update(&auth_safe_der);
    let digest = mac.finalize().into_bytes();

    let pfx = Pfx {
        version: Version::V3,
        auth_safe: ContentInfo {
            content_type: ID_DATA,
            content: Any::encode_from(&OctetString::new(auth_safe_der).map_err(der_err)?)
                .map_err(der_err)?,
        },
        mac_data: Some(MacData {
            mac: DigestInfo {
                algorithm: AlgorithmIdentifierOwned {
                    oid: ID_SHA1,
                    parameters: Some(Any::null()),
                },
                digest: OctetString::new(digest.as_slice()).map_err(der_err)?,
            },
            mac_salt: OctetString::new(salt.as_slice()).map_err(der_err)?,
            iterations,
        }),
    };
    pfx.to_der().map_err(der_err)
}

/// The `ContentInfo`s of a PFX's authenticated safe.
fn safes(pfx_der: &[u8]) -> Result<Vec<ContentInfo>> {
    let pfx = Pfx::from_der(pfx_der).map_err(der_err)?;
    let content = pfx
        .auth_safe
        .content
        .decode_as::<OctetString>()
        .map_err(der_err)?;
    Vec::<ContentInfo>::from_der(content.as_bytes()).map_err(der_err)
}
