//! Java KeyStores (JKS): [`jks()`] and [`jks_truststore`].
//!
//! Written by hand, because no maintained Rust crate writes JKS: the crates that know the
//! format read it, or have not been updated for years, and the format is small and frozen
//! (Java has written PKCS#12 by default since 9 but still reads JKS). The reference is
//! OpenJDK's `sun.security.provider.JavaKeyStore` (`engineStore`) and `KeyProtector`:
//!
//! ```text
//! u32 magic 0xFEEDFEED, u32 version 2, u32 entry count
//! entry, private key:  u32 1, UTF alias, u64 creation time (ms since the epoch),
//!                      u32 length + EncryptedPrivateKeyInfo (below),
//!                      u32 chain length, per certificate: UTF "X.509", u32 length + DER
//! entry, trusted cert: u32 2, UTF alias, u64 creation time, UTF "X.509", u32 length + DER
//! trailer:             SHA-1(password as UTF-16BE ‖ "Mighty Aphrodite" ‖ everything before)
//! ```
//!
//! Integers are big-endian; "UTF" is Java's `DataOutput.writeUTF`: a u16 byte length and
//! modified UTF-8. The private key is the PKCS#8 DER protected by Sun's proprietary key
//! protector (algorithm OID 1.3.6.1.4.1.42.2.17.1.1): a random 20-byte salt, the key XORed
//! with the SHA-1 chain `d1 = SHA-1(pw ‖ salt)`, `dn = SHA-1(pw ‖ dn-1)`, then
//! `SHA-1(pw ‖ key)` as a check, where `pw` is the password as UTF-16BE.
//!
//! That protection is weak by today's standards (it is what JKS is); the volume's
//! directory permissions, not the keystore password, are what keep the key private. Prefer
//! PKCS#12 with `Modern2023` where the reader allows it.
//!
//! Java looks JKS aliases up in lower case, so aliases are written in lower case.

use std::time::{SystemTime, UNIX_EPOCH};

use der::asn1::{Any, ObjectIdentifier, OctetString};
use der::{Encode, Sequence};
use sha1::{Digest, Sha1};
use spki::AlgorithmIdentifierOwned;
use zeroize::Zeroizing;

use crate::{ChainSummary, Error, PrivateKey, Result};

/// The default alias of the key entry, as cert-manager's Certificate uses.
pub const JKS_ALIAS: &str = "certificate";

/// The alias of the first CA certificate's trusted-certificate entry; further CA
/// certificates get `ca-2`, `ca-3`, ...
pub const JKS_CA_ALIAS: &str = "ca";

const MAGIC: u32 = 0xFEED_FEED;
const VERSION: u32 = 2;
const TAG_PRIVATE_KEY: u32 = 1;
const TAG_TRUSTED_CERT: u32 = 2;
const CERT_TYPE: &str = "X.509";
const INTEGRITY_SALT: &[u8] = b"Mighty Aphrodite";
/// Sun's JKS key protector, `1.3.6.1.4.1.42.2.17.1.1`.
const KEY_PROTECTOR_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.42.2.17.1.1");
const SALT_LEN: usize = 20;

/// PKCS#8 `EncryptedPrivateKeyInfo`.
#[derive(Sequence)]
struct EncryptedPrivateKeyInfo {
    algorithm: AlgorithmIdentifierOwned,
    encrypted_data: OctetString,
}

/// Writes a JKS keystore holding `key` under `alias` (written in lower case) with the
/// certificates of `chain_pem` as its chain (leaf first, then intermediates), and each
/// certificate of `ca_pem` (may be empty) as a trusted-certificate entry (`ca`, `ca-2`,
/// ...), as cert-manager does. `created` is the entries' creation date.
///
/// Fails with [`Error::LeafKeyMismatch`] when the chain's leaf is not for `key`, and with
/// [`Error::Jks`] when the alias is empty, too long, or the alias of a CA entry, or the
/// password is longer than [`MAX_KEYSTORE_PASSWORD_BYTES`].
pub fn jks(
    key: &PrivateKey,
    chain_pem: &[u8],
    ca_pem: &[u8],
    alias: &str,
    password: &str,
    created: SystemTime,
) -> Result<Vec<u8>> {
    check_password(password, Error::Jks)?;
    let summary = ChainSummary::from_pem(chain_pem)?;
    if !summary.leaf_matches_key(key) {
        return Err(Error::LeafKeyMismatch);
    }
    let alias = alias.to_lowercase();
    let cas = ca_certificates(ca_pem)?;
    let ca_aliases = ca_aliases(cas.len());
    if ca_aliases.contains(&alias) {
        return Err(Error::Jks(format!(
            "the alias {alias:?} is taken by the CA's trusted-certificate entry; choose another alias"
        )));
    }
    let pw = password_bytes(password);
    let pkcs8 = key.to_pkcs8_der()?;
    let protected = protect(pkcs8.as_bytes(), &pw)?;

    let mut w = Writer::new(1 + cas.len())?;
    w.u32(TAG_PRIVATE_KEY);
    w.utf(&alias)?;
    w.u64(millis(created));
    w.bytes(&protected)?;
    w.u32(len_u32(summary.certificates_der.len())?);
    for der in &summary.certificates_der {
        w.utf(CERT_TYPE)?;
        w.bytes(der)?;
    }
    for (der, ca_alias) in cas.iter().zip(&ca_aliases) {
        w.trusted(ca_alias, created, der)?;
    }
    Ok(w.finish(&pw))
}

/// Writes a JKS truststore with each certificate of `ca_pem` as a trusted-certificate
/// entry (`ca`, `ca-2`, ...), as cert-manager's `truststore.jks`.
///
/// Fails with [`Error::EmptyChain`] when `ca_pem` holds no certificate.
pub fn jks_truststore(ca_pem: &[u8], password: &str, created: SystemTime) -> Result<Vec<u8>> {
    check_password(password, Error::Jks)?;
    let cas = ca_certificates(ca_pem)?;
    if cas.is_empty() {
        return Err(Error::EmptyChain);
    }
    let pw = password_bytes(password);
    let mut w = Writer::new(cas.len())?;
    for (der, alias) in cas.iter().zip(ca_aliases(cas.len())) {
        w.trusted(&alias, created, der)?;
    }
    Ok(w.finish(&pw))
}

/// The DER of each certificate in `ca_pem`; none for empty (or whitespace-only) input.
pub(crate) fn ca_certificates(ca_pem: &[u8]) -> Result<Vec<Vec<u8>>> {
    if ca_pem.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    Ok(ChainSummary::from_pem(ca_pem)?.certificates_der)
}

fn ca_aliases(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| match i {
            0 => JKS_CA_ALIAS.to_owned(),
            _ => format!("{JKS_CA_ALIAS}-{}", i + 1),
        })
        .collect()
}

/// Most bytes (UTF-8) of a keystore password. JKS hashes the password once per 20 bytes
/// of key, and PKCS#12's key derivation once per iteration block, so the password's
/// length multiplies the cost of every keystore: a 1 MiB password would cost hundreds of
/// megabytes of SHA-1 for one RSA-8192 key.
pub const MAX_KEYSTORE_PASSWORD_BYTES: usize = 1024;

/// Refuses a password over [`MAX_KEYSTORE_PASSWORD_BYTES`] (never quoting it).
pub(crate) fn check_password(password: &str, err: fn(String) -> Error) -> Result<()> {
    if password.len() > MAX_KEYSTORE_PASSWORD_BYTES {
        return Err(err(format!(
            "the keystore password is {} bytes; at most {MAX_KEYSTORE_PASSWORD_BYTES} are allowed",
            password.len()
        )));
    }
    Ok(())
}

/// Java's `char[]` password as the key protector and the integrity hash see it: UTF-16BE,
/// no terminator.
fn password_bytes(password: &str) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(password.encode_utf16().flat_map(u16::to_be_bytes).collect())
}

/// Sun's `KeyProtector.protect`: `salt ‖ (key XOR keystream) ‖ SHA-1(pw ‖ key)`, wrapped
/// in an `EncryptedPrivateKeyInfo` with the key protector's OID and NULL parameters.
fn protect(plain: &[u8], pw: &[u8]) -> Result<Vec<u8>> {
    let mut salt = [0u8; SALT_LEN];
    getrandom::fill(&mut salt)
        .map_err(|e| Error::Jks(format!("the random generator failed: {e}")))?;
    let mut out = Zeroizing::new(Vec::with_capacity(SALT_LEN * 2 + plain.len()));
    out.extend_from_slice(&salt);
    let mut digest: [u8; 20] = salt;
    for block in plain.chunks(20) {
        let mut h = Sha1::new();
        h.update(pw);
        h.update(digest);
        digest = h.finalize().into();
        out.extend(block.iter().zip(digest.iter()).map(|(p, k)| p ^ k));
    }
    digest.fill(0);
    let mut h = Sha1::new();
    h.update(pw);
    h.update(plain);
    out.extend_from_slice(&h.finalize());
    let info = EncryptedPrivateKeyInfo {
        algorithm: AlgorithmIdentifierOwned {
            oid: KEY_PROTECTOR_OID,
            parameters: Some(Any::null()),
        },
        encrypted_data: OctetString::new(out.as_slice()).map_err(jks_der)?,
    };
    info.to_der().map_err(jks_der)
}

fn jks_der(e: der::Error) -> Error {
    Error::Jks(format!("encoding the protected key failed: {e}"))
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn len_u32(n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| Error::Jks(format!("{n} bytes or entries do not fit in JKS")))
}

/// Java's modified UTF-8 (`DataOutput.writeUTF`): UTF-16 code units, U+0000 as two bytes,
/// each surrogate on its own as three bytes.
fn modified_utf8(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for unit in s.encode_utf16() {
        match unit {
            0x0001..=0x007F => out.push(unit as u8),
            0x0000 | 0x0080..=0x07FF => {
                out.push(0xC0 | (unit >> 6) as u8);
                out.push(0x80 | (unit & 0x3F) as u8);
            }
            _ => {
                out.push(0xE0 | (unit >> 12) as u8);
                out.push(0x80 | ((unit >> 6) & 0x3F) as u8);
                out.push(0x80 | (unit & 0x3F) as u8);
            }
        }
    }
    out
}

/// The keystore being written.
struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn new(entries: usize) -> Result<Writer> {
        let mut w = Writer { buf: Vec::new() };
        w.u32(MAGIC);
        w.u32(VERSION);
        w.u32(len_u32(entries)?);
        Ok(w)
    }

    fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    fn utf(&mut self, s: &str) -> Result<()> {
        let bytes = modified_utf8(s);
        if s.is_empty() {
            return Err(Error::Jks("an alias must not be empty".into()));
        }
        let len = u16::try_from(bytes.len()).map_err(|_| {
            Error::Jks(format!(
                "an alias of {} bytes is too long: JKS allows at most 65535",
                bytes.len()
            ))
        })?;
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(&bytes);
        Ok(())
    }

    fn bytes(&mut self, b: &[u8]) -> Result<()> {
        self.u32(len_u32(b.len())?);
        self.buf.extend_from_slice(b);
        Ok(())
    }

    fn trusted(&mut self, alias: &str, created: SystemTime, der: &[u8]) -> Result<()> {
        self.u32(TAG_TRUSTED_CERT);
        self.utf(alias)?;
        self.u64(millis(created));
        self.utf(CERT_TYPE)?;
        self.bytes(der)
    }

    /// Appends the integrity hash.
    fn finish(mut self, pw: &[u8]) -> Vec<u8> {
        let mut h = Sha1::new();
        h.update(pw);
        h.update(INTEGRITY_SALT);
        h.update(&self.buf);
        self.buf.extend_from_slice(&h.finalize());
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modified_utf8_matches_java() {
        assert_eq!(modified_utf8("ab"), b"ab");
        assert_eq!(modified_utf8("\0"), [0xC0, 0x80]);
        assert_eq!(modified_utf8("é"), [0xC3, 0xA9]);
        // U+1F600 is the surrogate pair D83D DE00, each as three bytes.
        assert_eq!(
            modified_utf8("\u{1F600}"),
            [0xED, 0xA0, 0xBD, 0xED, 0xB8, 0x80]
        );
    }

    #[test]
    fn key_protector_round_trips_and_checks() {
        let pw = password_bytes("changeit");
        let plain: Vec<u8> = (0..=100u8).collect();
        let der = protect(&plain, &pw).unwrap();
        // The protected bytes are the last OCTET STRING's content: salt, data, check.
        let prot = &der[der.len() - (SALT_LEN * 2 + plain.len())..];
        let (salt, rest) = prot.split_at(SALT_LEN);
        let (enc, check) = rest.split_at(plain.len());
        let mut digest: Vec<u8> = salt.to_vec();
        let mut got = Vec::new();
        for block in enc.chunks(20) {
            let mut h = Sha1::new();
            h.update(&*pw);
            h.update(&digest);
            digest = h.finalize().to_vec();
            got.extend(block.iter().zip(&digest).map(|(c, k)| c ^ k));
        }
        assert_eq!(got, plain);
        let mut h = Sha1::new();
        h.update(&*pw);
        h.update(&plain);
        assert_eq!(check, h.finalize().as_slice());
        assert_ne!(enc, &plain[..], "the key is not written in clear");
    }
}
