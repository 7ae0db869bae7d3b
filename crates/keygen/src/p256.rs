//! ECDSA P-256 keys generated and used for signing through `ring`.
//!
//! P-256 is the curve most Pods ask for, and its key and CSR sit on the Pod's
//! start path. RustCrypto's `p256` takes about 75 µs to derive a public key and
//! 80 µs to sign on this project's build machines; `ring` (already linked into
//! the driver by `rustls`) does both in about 40 µs together, its base-point
//! multiplication being table-driven assembly. `p256` stays for parsing keys
//! read back from PEM, for the public key's DER and for the other curves.
//!
//! Secrets: the scalar is held in a zeroizing array, and `ring`'s PKCS#8
//! input is a zeroizing buffer. `ring`'s own key pair and generated document
//! are stack values that live only for one call and are never put on the
//! heap; `ring` does not wipe them, and (this crate forbids `unsafe`) neither
//! can this module, so they stay on the thread's stack until it is reused,
//! like the stack copies every Rust crypto crate's computations leave.

use pkcs8::{EncodePublicKey, PrivateKeyInfoRef, SecretDocument};
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
use spki::SignatureAlgorithmIdentifier;
use zeroize::{ZeroizeOnDrop, Zeroizing};

/// The public point's uncompressed SEC1 length (`04 || X || Y`).
const POINT_LEN: usize = 65;

/// `ring`'s key pair and PKCS#8 document own no heap memory (no `Drop`), so
/// nothing of them is left in freed heap blocks (checked at compile time).
const _: () = assert!(!std::mem::needs_drop::<EcdsaKeyPair>());
const _: () = assert!(!std::mem::needs_drop::<ring::pkcs8::Document>());

/// A P-256 key: the secret scalar (zeroized on drop) and its public point.
#[derive(ZeroizeOnDrop)]
pub(crate) struct P256Key {
    secret: Zeroizing<[u8; 32]>,
    #[zeroize(skip)]
    public: [u8; POINT_LEN],
}

impl P256Key {
    /// A new key from the operating system's RNG, through `ring`.
    pub(crate) fn generate() -> Result<P256Key, String> {
        let rng = ring::rand::SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .map_err(|_| "random number generator failed".to_owned())?;
        Self::from_pkcs8_unchecked(doc.as_ref())
    }

    /// Splits `ring`'s PKCS#8 document into scalar and point. No check that
    /// they belong together: `ring` made both.
    fn from_pkcs8_unchecked(der: &[u8]) -> Result<P256Key, String> {
        let info = PrivateKeyInfoRef::try_from(der).map_err(|e| e.to_string())?;
        let ec =
            sec1::EcPrivateKey::try_from(info.private_key.as_bytes()).map_err(|e| e.to_string())?;
        let mut secret = Zeroizing::new([0u8; 32]);
        if ec.private_key.len() != secret.len() {
            return Err("the scalar is not 32 bytes".into());
        }
        secret.copy_from_slice(ec.private_key);
        let public: [u8; POINT_LEN] = ec
            .public_key
            .and_then(|p| p.try_into().ok())
            .ok_or("no uncompressed public point")?;
        Ok(P256Key { secret, public })
    }

    /// From a parsed (and so checked) `p256` key: read back from PEM.
    pub(crate) fn from_signing_key(k: &::p256::ecdsa::SigningKey) -> P256Key {
        let mut secret = Zeroizing::new([0u8; 32]);
        secret.copy_from_slice(&k.to_bytes());
        let mut public = [0u8; POINT_LEN];
        public.copy_from_slice(k.verifying_key().to_sec1_point(false).as_bytes());
        P256Key { secret, public }
    }

    /// The secret scalar (big-endian).
    pub(crate) fn secret(&self) -> &[u8] {
        self.secret.as_slice()
    }

    /// The public point, uncompressed SEC1.
    pub(crate) fn public_point(&self) -> &[u8] {
        &self.public
    }

    /// The public key as `p256`'s type (a point decoding, no multiplication).
    pub(crate) fn verifying_key(&self) -> ::p256::ecdsa::VerifyingKey {
        ::p256::ecdsa::VerifyingKey::from_sec1_bytes(&self.public)
            .expect("a P-256 public point made by ring or parsed by p256")
    }

    /// The DER `SubjectPublicKeyInfo`.
    pub(crate) fn public_key_der(&self) -> pkcs8::spki::Result<pkcs8::Document> {
        self.verifying_key().to_public_key_der()
    }

    /// An ASN.1 DER ECDSA-SHA256 signature of `msg`, made by `ring` (its
    /// key pair, from `pkcs8`, a stack value of this call only). Like every
    /// signer, it says nothing of why a signature failed (the CSR error
    /// names the step).
    fn sign_der(&self, pkcs8: &SecretDocument, msg: &[u8]) -> signature::Result<Vec<u8>> {
        let rng = ring::rand::SystemRandom::new();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_bytes(), &rng)
                .map_err(|_| signature::Error::new())?;
        let sig = pair.sign(&rng, msg).map_err(|_| signature::Error::new())?;
        Ok(sig.as_ref().to_vec())
    }
}

/// The signer `x509-cert`'s request builder takes: PKCS#8 of the key made
/// once for the signature.
pub(crate) struct RingSigner<'a> {
    key: &'a P256Key,
    pkcs8: SecretDocument,
}

impl<'a> RingSigner<'a> {
    pub(crate) fn new(key: &'a P256Key, pkcs8: SecretDocument) -> Self {
        RingSigner { key, pkcs8 }
    }
}

impl signature::Signer<::p256::ecdsa::DerSignature> for RingSigner<'_> {
    fn try_sign(&self, msg: &[u8]) -> signature::Result<::p256::ecdsa::DerSignature> {
        let der = self.key.sign_der(&self.pkcs8, msg)?;
        ::p256::ecdsa::DerSignature::try_from(der.as_slice())
    }
}

impl signature::Keypair for RingSigner<'_> {
    type VerifyingKey = ::p256::ecdsa::VerifyingKey;

    fn verifying_key(&self) -> Self::VerifyingKey {
        self.key.verifying_key()
    }
}

/// ecdsa-with-SHA256, exactly as `p256`'s own signer names it.
impl SignatureAlgorithmIdentifier for RingSigner<'_> {
    type Params = <::p256::ecdsa::SigningKey as SignatureAlgorithmIdentifier>::Params;

    const SIGNATURE_ALGORITHM_IDENTIFIER: spki::AlgorithmIdentifier<Self::Params> =
        <::p256::ecdsa::SigningKey as SignatureAlgorithmIdentifier>::SIGNATURE_ALGORITHM_IDENTIFIER;
}

#[cfg(test)]
mod tests {
    use ::p256::ecdsa::signature::Verifier;
    use signature::Signer;

    use super::*;

    #[test]
    fn rings_point_is_the_scalars_and_its_signatures_verify() {
        for _ in 0..16 {
            let key = P256Key::generate().unwrap();
            let by_p256 = ::p256::ecdsa::SigningKey::from_slice(key.secret()).unwrap();
            assert_eq!(
                by_p256.verifying_key().to_sec1_point(false).as_bytes(),
                key.public_point(),
                "ring's public point is the one p256 derives from the scalar"
            );
            let pkcs8 = pkcs8::EncodePrivateKey::to_pkcs8_der(&by_p256).unwrap();
            let signer = RingSigner::new(&key, pkcs8);
            let sig: ::p256::ecdsa::DerSignature = signer.try_sign(b"a CSR's info").unwrap();
            by_p256
                .verifying_key()
                .verify(b"a CSR's info", &sig)
                .unwrap();
            assert!(
                by_p256.verifying_key().verify(b"another", &sig).is_err(),
                "the signature covers the message"
            );
        }
    }
}
