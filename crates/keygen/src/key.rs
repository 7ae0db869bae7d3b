//! [`PrivateKey`]: generation, PEM encoding and decoding, public key.

use std::fmt;

use der::oid::ObjectIdentifier;
use pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding, PrivateKeyInfoRef, SecretDocument};
use rsa::traits::PublicKeyParts;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::{Error, KeyEncoding, KeySpec, Result};

const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// The key material. Every variant's type zeroizes its secret on drop
/// (`ZeroizeOnDrop`; checked by a unit test below).
pub(crate) enum Inner {
    Rsa(rsa::pkcs1v15::SigningKey<Sha256>),
    /// Generated and signed through `ring` (see [`crate::p256`]).
    P256(crate::p256::P256Key),
    P384(p384::ecdsa::SigningKey),
    P521(p521::ecdsa::SigningKey),
    Ed25519(ed25519_dalek::SigningKey),
}

/// A private key of one of the supported algorithms.
///
/// The secret is zeroized when the value is dropped, `Debug` prints only the spec, and the
/// type is deliberately not `Clone` so a key exists in one place.
pub struct PrivateKey {
    spec: KeySpec,
    pub(crate) inner: Inner,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("spec", &self.spec)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl PrivateKey {
    /// Generates a new key with the operating system's random number generator.
    ///
    /// This is CPU-bound: RSA takes tens to hundreds of milliseconds (seconds for 8192 bits),
    /// so call it from a blocking thread (or use [`crate::KeyPool`]) in async code.
    pub fn generate(spec: &KeySpec) -> Result<PrivateKey> {
        spec.validate()?;
        let mut rng = getrandom::SysRng;
        let rng_err = |e: getrandom::Error| Error::Generate {
            spec: *spec,
            reason: format!("random number generator: {e}"),
        };
        let inner = match *spec {
            KeySpec::Rsa { bits } => {
                let key =
                    rsa::PrivateKey::new(&mut rng, bits as usize).map_err(|e| Error::Generate {
                        spec: *spec,
                        reason: e.to_string(),
                    })?;
                Inner::Rsa(rsa::pkcs1v15::SigningKey::new(key))
            }
            KeySpec::EcdsaP256 => Inner::P256(crate::p256::P256Key::generate().map_err(
                |reason| Error::Generate {
                    spec: *spec,
                    reason,
                },
            )?),
            KeySpec::EcdsaP384 => Inner::P384(generate_with(&mut rng).map_err(rng_err)?),
            KeySpec::EcdsaP521 => Inner::P521(generate_with(&mut rng).map_err(rng_err)?),
            KeySpec::Ed25519 => {
                let mut seed = Zeroizing::new([0u8; ed25519_dalek::SECRET_KEY_LENGTH]);
                getrandom::fill(seed.as_mut_slice()).map_err(rng_err)?;
                Inner::Ed25519(ed25519_dalek::SigningKey::from_bytes(&seed))
            }
        };
        Ok(PrivateKey { spec: *spec, inner })
    }

    /// The algorithm and size of this key.
    pub fn spec(&self) -> KeySpec {
        self.spec
    }

    /// Encodes the key as PEM: PKCS#1 (`RSA PRIVATE KEY`, RSA only) or PKCS#8
    /// (`PRIVATE KEY`), with `\n` line endings, as the Go driver writes it.
    ///
    /// Ed25519 keys are written as PKCS#8 v1 (seed only), as Go's
    /// `x509.MarshalPKCS8PrivateKey` does, so every reader accepts them.
    pub fn to_pem(&self, encoding: KeyEncoding) -> Result<Zeroizing<String>> {
        let enc_err = |e: &dyn fmt::Display| Error::Encode {
            spec: self.spec,
            reason: e.to_string(),
        };
        match (encoding, &self.inner) {
            (KeyEncoding::Pkcs1, Inner::Rsa(k)) => k
                .as_ref()
                .to_pkcs1_pem(LineEnding::LF)
                .map_err(|e| enc_err(&e)),
            (KeyEncoding::Pkcs1, _) => Err(Error::EncodingNotSupported {
                encoding,
                spec: self.spec,
            }),
            (KeyEncoding::Pkcs8, _) => {
                let doc = self.to_pkcs8_der()?;
                doc.to_pem("PRIVATE KEY", LineEnding::LF)
                    .map_err(|e| enc_err(&e))
            }
        }
    }

    /// The PKCS#8 DER encoding of the key (zeroized on drop).
    pub(crate) fn to_pkcs8_der(&self) -> Result<SecretDocument> {
        let res = match &self.inner {
            Inner::Rsa(k) => k.as_ref().to_pkcs8_der(),
            Inner::P256(k) => ec_pkcs8_der(OID_P256, k.secret(), k.public_point()),
            Inner::P384(k) => ec_pkcs8_der(
                OID_P384,
                &k.to_bytes(),
                k.verifying_key().to_sec1_point(false).as_bytes(),
            ),
            Inner::P521(k) => ec_pkcs8_der(
                OID_P521,
                &k.to_bytes(),
                k.verifying_key().to_sec1_point(false).as_bytes(),
            ),
            Inner::Ed25519(k) => ed25519_dalek::pkcs8::KeypairBytes {
                secret_key: k.to_bytes(),
                public_key: None,
            }
            .to_pkcs8_der(),
        };
        res.map_err(|e| Error::Encode {
            spec: self.spec,
            reason: e.to_string(),
        })
    }

    /// The DER-encoded `SubjectPublicKeyInfo` of the key's public half.
    pub fn public_key_der(&self) -> Result<Vec<u8>> {
        let res = match &self.inner {
            Inner::Rsa(k) => rsa::PublicKey::from(k.as_ref()).to_public_key_der(),
            Inner::P256(k) => k.public_key_der(),
            Inner::P384(k) => k.verifying_key().to_public_key_der(),
            Inner::P521(k) => k.verifying_key().to_public_key_der(),
            Inner::Ed25519(k) => k.verifying_key().to_public_key_der(),
        };
        res.map(|doc| doc.into_vec()).map_err(|e| Error::Encode {
            spec: self.spec,
            reason: e.to_string(),
        })
    }

    /// Reads a PEM private key (PKCS#1 `RSA PRIVATE KEY` or PKCS#8 `PRIVATE KEY`) whatever
    /// its algorithm. Use [`PrivateKey::from_pem`] to also check it against a spec.
    pub fn from_pem_any(pem: &str) -> Result<PrivateKey> {
        let invalid = |reason: String| Error::InvalidKeyPem { reason };
        let (label, doc) =
            SecretDocument::from_pem(pem.trim()).map_err(|e| invalid(e.to_string()))?;
        match label {
            "RSA PRIVATE KEY" => {
                let key = rsa::PrivateKey::from_pkcs1_der(doc.as_bytes())
                    .map_err(|e| invalid(format!("PKCS#1: {e}")))?;
                Self::from_rsa(key)
            }
            "PRIVATE KEY" => Self::from_pkcs8_der(doc.as_bytes()),
            "EC PRIVATE KEY" => Err(invalid(
                "SEC1 `EC PRIVATE KEY` is not supported; neither this driver nor the Go driver \
                 writes it (use PKCS8)"
                    .to_owned(),
            )),
            other => Err(invalid(format!(
                "PEM label `{other}` is not `RSA PRIVATE KEY` or `PRIVATE KEY`"
            ))),
        }
    }

    /// Reads a PEM private key for reuse and checks it is of the requested spec.
    ///
    /// A key whose algorithm, curve or RSA size differs is refused with
    /// [`Error::KeyMismatch`], which names both, so the caller generates a new key and can
    /// log why.
    pub fn from_pem(pem: &str, expected: &KeySpec) -> Result<PrivateKey> {
        let key = Self::from_pem_any(pem)?;
        if key.spec != *expected {
            return Err(Error::KeyMismatch {
                expected: *expected,
                found: key.spec,
            });
        }
        Ok(key)
    }

    fn from_rsa(key: rsa::PrivateKey) -> Result<PrivateKey> {
        let bits = key.n().bit_width();
        Ok(PrivateKey {
            spec: KeySpec::Rsa { bits },
            inner: Inner::Rsa(rsa::pkcs1v15::SigningKey::new(key)),
        })
    }

    fn from_pkcs8_der(der: &[u8]) -> Result<PrivateKey> {
        let invalid = |e: pkcs8::Error| Error::InvalidKeyPem {
            reason: format!("PKCS#8: {e}"),
        };
        let info = PrivateKeyInfoRef::try_from(der).map_err(invalid)?;
        let alg = info.algorithm.oid;
        if alg == OID_RSA {
            let key = rsa::PrivateKey::try_from(info).map_err(invalid)?;
            return Self::from_rsa(key);
        }
        if alg == OID_ED25519 {
            let key = ed25519_dalek::SigningKey::try_from(info).map_err(invalid)?;
            return Ok(PrivateKey {
                spec: KeySpec::Ed25519,
                inner: Inner::Ed25519(key),
            });
        }
        if alg == OID_EC {
            let curve = info
                .algorithm
                .parameters_oid()
                .map_err(|e| Error::InvalidKeyPem {
                    reason: format!("EC key without a named curve: {e}"),
                })?;
            let (spec, inner) = if curve == OID_P256 {
                (
                    KeySpec::EcdsaP256,
                    Inner::P256(crate::p256::P256Key::from_signing_key(
                        &p256::ecdsa::SigningKey::try_from(info).map_err(invalid)?,
                    )),
                )
            } else if curve == OID_P384 {
                (
                    KeySpec::EcdsaP384,
                    Inner::P384(p384::ecdsa::SigningKey::try_from(info).map_err(invalid)?),
                )
            } else if curve == OID_P521 {
                (
                    KeySpec::EcdsaP521,
                    Inner::P521(p521::ecdsa::SigningKey::try_from(info).map_err(invalid)?),
                )
            } else {
                return Err(Error::UnsupportedKeyAlgorithm {
                    algorithm: format!("EC curve {curve}"),
                });
            };
            return Ok(PrivateKey { spec, inner });
        }
        Err(Error::UnsupportedKeyAlgorithm {
            algorithm: alg.to_string(),
        })
    }
}

/// PKCS#8 `PrivateKeyInfo` wrapping a SEC1 `ECPrivateKey` with its public
/// point, exactly as `elliptic-curve`'s `EncodePrivateKey` lays it out (a
/// test checks the bytes are identical). Written here because that encoder
/// derives the public key from the secret again (a scalar multiplication,
/// about 80 µs for P-256, on every encode), while `SigningKey` already holds
/// it; the driver encodes each key twice on a Pod's start path.
fn ec_pkcs8_der(
    curve: ObjectIdentifier,
    secret: &[u8],
    public_uncompressed: &[u8],
) -> pkcs8::Result<SecretDocument> {
    use der::Encode;
    let secret = Zeroizing::new(secret.to_vec());
    let ec_private_key = Zeroizing::new(
        sec1::EcPrivateKey {
            private_key: &secret,
            parameters: None,
            public_key: Some(public_uncompressed),
        }
        .to_der()?,
    );
    let info = PrivateKeyInfoRef::new(
        pkcs8::AlgorithmIdentifierRef {
            oid: OID_EC,
            parameters: Some((&curve).into()),
        },
        der::asn1::OctetStringRef::new(&ec_private_key)?,
    );
    Ok(SecretDocument::encode_msg(&info)?)
}

fn generate_with<K: rsa::Generate>(
    rng: &mut getrandom::SysRng,
) -> std::result::Result<K, getrandom::Error> {
    K::try_generate_from_rng(rng)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zeroize_on_drop<T: zeroize::ZeroizeOnDrop>() {}

    #[test]
    fn every_key_type_zeroizes_on_drop() {
        // Compile-time check: the inner key types all implement ZeroizeOnDrop.
        zeroize_on_drop::<rsa::pkcs1v15::SigningKey<Sha256>>();
        zeroize_on_drop::<crate::p256::P256Key>();
        zeroize_on_drop::<p384::ecdsa::SigningKey>();
        zeroize_on_drop::<p521::ecdsa::SigningKey>();
        zeroize_on_drop::<ed25519_dalek::SigningKey>();
    }

    #[test]
    fn ec_pkcs8_is_byte_identical_to_the_crates_encoder() {
        for _ in 0..8 {
            for spec in [KeySpec::EcdsaP256, KeySpec::EcdsaP384, KeySpec::EcdsaP521] {
                let key = PrivateKey::generate(&spec).unwrap();
                let ours = key.to_pkcs8_der().unwrap();
                let theirs = match &key.inner {
                    Inner::P256(k) => p256::ecdsa::SigningKey::from_slice(k.secret())
                        .unwrap()
                        .to_pkcs8_der()
                        .unwrap(),
                    Inner::P384(k) => k.to_pkcs8_der().unwrap(),
                    Inner::P521(k) => k.to_pkcs8_der().unwrap(),
                    _ => unreachable!(),
                };
                assert_eq!(ours.as_bytes(), theirs.as_bytes(), "{spec:?}");
            }
        }
    }

    #[test]
    fn debug_is_redacted() {
        let key = PrivateKey::generate(&KeySpec::EcdsaP256).unwrap();
        let pem = key.to_pem(KeyEncoding::Pkcs8).unwrap();
        let debug = format!("{key:?}");
        assert!(debug.contains("redacted"), "{debug}");
        assert!(debug.contains("EcdsaP256"), "{debug}");
        let body: String = pem.lines().nth(1).unwrap().chars().take(16).collect();
        assert!(!debug.contains(&body));
    }

    #[test]
    fn pkcs1_is_refused_for_non_rsa() {
        for spec in [KeySpec::EcdsaP256, KeySpec::Ed25519] {
            let key = PrivateKey::generate(&spec).unwrap();
            let err = key.to_pem(KeyEncoding::Pkcs1).unwrap_err();
            assert!(
                matches!(err, Error::EncodingNotSupported { encoding: KeyEncoding::Pkcs1, spec: s } if s == spec),
                "{err}"
            );
        }
    }

    #[test]
    fn small_rsa_is_refused() {
        let err = PrivateKey::generate(&KeySpec::Rsa { bits: 1024 }).unwrap_err();
        assert!(matches!(err, Error::UnsupportedSpec { .. }), "{err}");
    }

    #[test]
    fn pem_round_trips_for_fast_algorithms() {
        for spec in [
            KeySpec::EcdsaP256,
            KeySpec::EcdsaP384,
            KeySpec::EcdsaP521,
            KeySpec::Ed25519,
        ] {
            let key = PrivateKey::generate(&spec).unwrap();
            let pem = key.to_pem(KeyEncoding::Pkcs8).unwrap();
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
            let back = PrivateKey::from_pem(&pem, &spec).unwrap();
            assert_eq!(back.spec(), spec);
            assert_eq!(
                back.public_key_der().unwrap(),
                key.public_key_der().unwrap()
            );
        }
    }

    #[test]
    fn garbage_pem_is_a_typed_error_without_content() {
        let err = PrivateKey::from_pem_any("not a key SECRETSTUFF").unwrap_err();
        assert!(matches!(err, Error::InvalidKeyPem { .. }), "{err}");
        assert!(!err.to_string().contains("SECRETSTUFF"));
        let err = PrivateKey::from_pem_any(
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap_err();
        assert!(matches!(err, Error::InvalidKeyPem { .. }), "{err}");
    }
}
