//! The kubelet's stub CSR: parsed, its signature verified with its own key
//! (proof of possession), and its key type checked.
//!
//! Written here rather than in `cmcsi-keygen`, which makes keys and CSRs but
//! never verifies anything; the verification itself is RustCrypto's, except
//! ECDSA on P-256 and P-384 with SHA-256/384, which is ring's (see
//! `verify_ecdsa`).

use der::oid::ObjectIdentifier;
use der::{Decode, Encode, EncodePem};
use sha2::Digest;
use signature::Verifier;
use signature::hazmat::PrehashVerifier;
use spki::DecodePublicKey;
use x509_cert::request::CertReq;

use crate::error::CsrError;

/// The API's limit on `spec.stubPKCS10Request`.
pub const MAX_STUB_CSR_BYTES: usize = 10 * 1024;

/// The smallest RSA key issued for.
pub const MIN_RSA_BITS: usize = 2048;
/// The largest RSA key issued for (verifying a larger one costs a tenant
/// nothing and the signer a lot).
pub const MAX_RSA_BITS: usize = 8192;

/// The key type the signer suggests when it refuses one.
pub const SUGGESTED_KEY_TYPE: &str = "ECDSAP256";

/// A stub CSR that passed every check.
#[derive(Clone, Debug)]
pub struct StubCsr {
    /// The request as PEM (for the CertificateRequest's `spec.request`).
    pub pem: String,
    /// The request's public key (SubjectPublicKeyInfo, DER).
    pub public_key_der: Vec<u8>,
    /// The key type, in the kubelet's names (`ECDSAP256`, `RSA3072`, ...).
    pub key_type: String,
}

mod oid {
    use der::oid::ObjectIdentifier as O;
    pub const RSA: O = O::new_unwrap("1.2.840.113549.1.1.1");
    pub const EC: O = O::new_unwrap("1.2.840.10045.2.1");
    pub const ED25519: O = O::new_unwrap("1.3.101.112");
    pub const P256: O = O::new_unwrap("1.2.840.10045.3.1.7");
    pub const P384: O = O::new_unwrap("1.3.132.0.34");
    pub const P521: O = O::new_unwrap("1.3.132.0.35");
    pub const RSA_SHA256: O = O::new_unwrap("1.2.840.113549.1.1.11");
    pub const RSA_SHA384: O = O::new_unwrap("1.2.840.113549.1.1.12");
    pub const RSA_SHA512: O = O::new_unwrap("1.2.840.113549.1.1.13");
    pub const ECDSA_SHA256: O = O::new_unwrap("1.2.840.10045.4.3.2");
    pub const ECDSA_SHA384: O = O::new_unwrap("1.2.840.10045.4.3.3");
    pub const ECDSA_SHA512: O = O::new_unwrap("1.2.840.10045.4.3.4");
}

#[derive(Clone, Copy)]
enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

fn digest(h: Hash, msg: &[u8]) -> Vec<u8> {
    match h {
        Hash::Sha256 => sha2::Sha256::digest(msg).to_vec(),
        Hash::Sha384 => sha2::Sha384::digest(msg).to_vec(),
        Hash::Sha512 => sha2::Sha512::digest(msg).to_vec(),
    }
}

/// Verifies an ECDSA signature (DER) over `message` with ring where it has the
/// curve and hash (`by_ring`) and the key is an uncompressed point, else with
/// RustCrypto's `fallback`.
///
/// ring's P-256/P-384 arithmetic is assembly, several times faster than
/// RustCrypto's generic field code: with RustCrypto, verifying the stub CSR
/// was about half of the signer's CPU time per request under a flood (B13).
fn verify_ecdsa(
    by_ring: Option<&'static ring::signature::EcdsaVerificationAlgorithm>,
    point: &[u8],
    message: &[u8],
    sig_der: &[u8],
    fallback: impl FnOnce() -> Result<(), signature::Error>,
) -> Result<(), CsrError> {
    match by_ring {
        Some(alg) if point.first() == Some(&0x04) => {
            ring::signature::UnparsedPublicKey::new(alg, point)
                .verify(message, sig_der)
                .map_err(|_| {
                    CsrError::BadSignature(
                        "the signature does not verify with the request's key".into(),
                    )
                })
        }
        _ => fallback().map_err(|e| CsrError::BadSignature(e.to_string())),
    }
}

/// Checks a stub CSR (DER): size, structure, key type, then the signature.
pub fn check(der_bytes: &[u8]) -> Result<StubCsr, CsrError> {
    if der_bytes.len() > MAX_STUB_CSR_BYTES {
        return Err(CsrError::TooLarge(der_bytes.len()));
    }
    let req = CertReq::from_der(der_bytes).map_err(|e| CsrError::Malformed(e.to_string()))?;
    let spki = &req.info.public_key;
    let public_key_der = spki
        .to_der()
        .map_err(|e| CsrError::Malformed(e.to_string()))?;
    let message = req
        .info
        .to_der()
        .map_err(|e| CsrError::Malformed(e.to_string()))?;
    let sig = req
        .signature
        .as_bytes()
        .ok_or_else(|| CsrError::Malformed("the signature has unused bits".into()))?;
    let sig_alg = req.algorithm.oid;
    let bad = |e: String| CsrError::BadSignature(e);
    let key_type = match spki.algorithm.oid {
        oid::RSA => {
            use rsa::traits::PublicKeyParts;
            let key = rsa::PublicKey::from_public_key_der(&public_key_der)
                .map_err(|e| CsrError::Malformed(format!("RSA public key: {e}")))?;
            let bits = key.n().bit_width() as usize;
            if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
                return Err(CsrError::UnsupportedKeyType(format!("RSA{bits}")));
            }
            let sig = rsa::pkcs1v15::Signature::try_from(sig).map_err(|e| bad(e.to_string()))?;
            let ok = match sig_alg {
                oid::RSA_SHA256 => {
                    rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(key).verify(&message, &sig)
                }
                oid::RSA_SHA384 => {
                    rsa::pkcs1v15::VerifyingKey::<sha2::Sha384>::new(key).verify(&message, &sig)
                }
                oid::RSA_SHA512 => {
                    rsa::pkcs1v15::VerifyingKey::<sha2::Sha512>::new(key).verify(&message, &sig)
                }
                other => return Err(bad(format!("unsupported RSA signature algorithm {other}"))),
            };
            ok.map_err(|e| bad(e.to_string()))?;
            format!("RSA{bits}")
        }
        oid::EC => {
            let curve: ObjectIdentifier = spki
                .algorithm
                .parameters
                .as_ref()
                .ok_or_else(|| CsrError::Malformed("EC key without a curve".into()))?
                .decode_as()
                .map_err(|e| CsrError::Malformed(format!("EC parameters: {e}")))?;
            let hash = match sig_alg {
                oid::ECDSA_SHA256 => Hash::Sha256,
                oid::ECDSA_SHA384 => Hash::Sha384,
                oid::ECDSA_SHA512 => Hash::Sha512,
                other => {
                    return Err(bad(format!(
                        "unsupported ECDSA signature algorithm {other}"
                    )));
                }
            };
            let point = spki.subject_public_key.raw_bytes();
            match curve {
                oid::P256 => {
                    // Parsed by RustCrypto even when ring verifies: a key off the curve is a
                    // malformed request, not a bad signature.
                    let k = p256::ecdsa::VerifyingKey::from_public_key_der(&public_key_der)
                        .map_err(|e| CsrError::Malformed(e.to_string()))?;
                    let s =
                        p256::ecdsa::Signature::from_der(sig).map_err(|e| bad(e.to_string()))?;
                    let by_ring = match hash {
                        Hash::Sha256 => Some(&ring::signature::ECDSA_P256_SHA256_ASN1),
                        Hash::Sha384 => Some(&ring::signature::ECDSA_P256_SHA384_ASN1),
                        Hash::Sha512 => None,
                    };
                    verify_ecdsa(by_ring, point, &message, sig, || {
                        k.verify_prehash(&digest(hash, &message), &s)
                    })?;
                    "ECDSAP256".to_owned()
                }
                oid::P384 => {
                    let k = p384::ecdsa::VerifyingKey::from_public_key_der(&public_key_der)
                        .map_err(|e| CsrError::Malformed(e.to_string()))?;
                    let s =
                        p384::ecdsa::Signature::from_der(sig).map_err(|e| bad(e.to_string()))?;
                    let by_ring = match hash {
                        Hash::Sha256 => Some(&ring::signature::ECDSA_P384_SHA256_ASN1),
                        Hash::Sha384 => Some(&ring::signature::ECDSA_P384_SHA384_ASN1),
                        Hash::Sha512 => None,
                    };
                    verify_ecdsa(by_ring, point, &message, sig, || {
                        k.verify_prehash(&digest(hash, &message), &s)
                    })?;
                    "ECDSAP384".to_owned()
                }
                oid::P521 => {
                    let prehash = digest(hash, &message);
                    let k = p521::ecdsa::VerifyingKey::from_public_key_der(&public_key_der)
                        .map_err(|e| CsrError::Malformed(e.to_string()))?;
                    let s =
                        p521::ecdsa::Signature::from_der(sig).map_err(|e| bad(e.to_string()))?;
                    k.verify_prehash(&prehash, &s)
                        .map_err(|e| bad(e.to_string()))?;
                    "ECDSAP521".to_owned()
                }
                other => {
                    return Err(CsrError::UnsupportedKeyType(format!(
                        "ECDSA on curve {other}"
                    )));
                }
            }
        }
        oid::ED25519 => {
            let k = ed25519_dalek::VerifyingKey::from_public_key_der(&public_key_der)
                .map_err(|e| CsrError::Malformed(e.to_string()))?;
            let s = ed25519_dalek::Signature::from_slice(sig).map_err(|e| bad(e.to_string()))?;
            k.verify_strict(&message, &s)
                .map_err(|e| bad(e.to_string()))?;
            "ED25519".to_owned()
        }
        other => return Err(CsrError::UnsupportedKeyType(format!("algorithm {other}"))),
    };
    let pem = req
        .to_pem(der::pem::LineEnding::LF)
        .map_err(|e| CsrError::Malformed(e.to_string()))?;
    Ok(StubCsr {
        pem,
        public_key_der,
        key_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cmcsi_keygen::{CsrParams, KeySpec, PrivateKey, Subject, build_csr};

    fn csr_der(spec: &KeySpec) -> Vec<u8> {
        let key = PrivateKey::generate(spec).unwrap();
        let pem = build_csr(
            &key,
            &CsrParams {
                subject: Subject::common_name("pod"),
                ..Default::default()
            },
        )
        .unwrap();
        der::pem::decode_vec(pem.as_bytes()).unwrap().1
    }

    #[test]
    fn accepts_the_kubelets_key_types() {
        for (spec, name) in [
            (KeySpec::EcdsaP256, "ECDSAP256"),
            (KeySpec::EcdsaP384, "ECDSAP384"),
            (KeySpec::EcdsaP521, "ECDSAP521"),
            (KeySpec::Ed25519, "ED25519"),
            (KeySpec::RSA_2048, "RSA2048"),
        ] {
            let ok = check(&csr_der(&spec)).unwrap();
            assert_eq!(ok.key_type, name);
            assert!(ok.pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
        }
    }

    #[test]
    fn refuses_a_forged_signature() {
        let mut der = csr_der(&KeySpec::EcdsaP256);
        // Flip a bit inside the subject: the signature no longer covers it.
        let i = der.windows(3).position(|w| w == b"pod").unwrap();
        der[i] = b'q';
        assert!(
            matches!(check(&der), Err(CsrError::BadSignature(_))),
            "{:?}",
            check(&der)
        );
    }

    /// P-256 and P-384 requests are verified by ring (the RustCrypto fallback is
    /// not called), and ring refuses what does not verify.
    #[test]
    fn ring_verifies_p256_and_p384() {
        for (spec, alg) in [
            (KeySpec::EcdsaP256, &ring::signature::ECDSA_P256_SHA256_ASN1),
            (KeySpec::EcdsaP384, &ring::signature::ECDSA_P384_SHA384_ASN1),
        ] {
            let der = csr_der(&spec);
            let req = CertReq::from_der(&der).unwrap();
            let point = req.info.public_key.subject_public_key.raw_bytes();
            let message = req.info.to_der().unwrap();
            let sig = req.signature.raw_bytes();
            let never = || -> Result<(), signature::Error> { panic!("ring has this curve") };
            verify_ecdsa(Some(alg), point, &message, sig, never).unwrap();
            let mut other = message.clone();
            let last = other.len() - 1;
            other[last] ^= 1;
            assert!(matches!(
                verify_ecdsa(Some(alg), point, &other, sig, never),
                Err(CsrError::BadSignature(_))
            ));
        }
    }

    #[test]
    fn refuses_garbage_and_size() {
        assert!(matches!(check(b"nope"), Err(CsrError::Malformed(_))));
        assert!(matches!(
            check(&vec![0u8; 20_000]),
            Err(CsrError::TooLarge(20_000))
        ));
    }
}
