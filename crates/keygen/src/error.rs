//! The crate's error type.

use crate::{KeyEncoding, KeySpec};

/// Everything that can go wrong in this crate.
///
/// Messages never contain key material or passwords: parse errors say where and what kind
/// of problem, not the bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The key spec is outside what this crate generates (e.g. RSA below 2048 bits).
    #[error("unsupported key spec {spec}: {reason}")]
    UnsupportedSpec {
        /// The refused spec.
        spec: KeySpec,
        /// Why it was refused.
        reason: &'static str,
    },

    /// The operating system's random number generator or the key generator failed.
    #[error("generating a {spec} key failed: {reason}")]
    Generate {
        /// The spec being generated.
        spec: KeySpec,
        /// What failed.
        reason: String,
    },

    /// The requested PEM encoding does not exist for this algorithm (PKCS#1 is RSA only).
    #[error("{encoding} encoding is only defined for RSA keys, not {spec}; use PKCS8")]
    EncodingNotSupported {
        /// The requested encoding.
        encoding: KeyEncoding,
        /// The key's spec.
        spec: KeySpec,
    },

    /// Encoding the private or public key failed.
    #[error("encoding the {spec} key failed: {reason}")]
    Encode {
        /// The key's spec.
        spec: KeySpec,
        /// What failed (no key material).
        reason: String,
    },

    /// The PEM text given for reuse is not a private key this crate can read.
    #[error("the private key PEM cannot be read: {reason}")]
    InvalidKeyPem {
        /// What is wrong (no key material).
        reason: String,
    },

    /// The private key uses an algorithm or curve this crate does not support.
    #[error("unsupported private key algorithm {algorithm}")]
    UnsupportedKeyAlgorithm {
        /// The algorithm OID (and curve OID for EC keys).
        algorithm: String,
    },

    /// The existing key differs from the requested spec, so it must not be reused.
    #[error("the existing private key is {found} but the volume asks for {expected}")]
    KeyMismatch {
        /// The spec the volume asks for.
        expected: KeySpec,
        /// The spec of the key that was read.
        found: KeySpec,
    },

    /// A subject attribute could not be encoded (unknown attribute type, bad OID, empty RDN).
    #[error("invalid subject: {0}")]
    InvalidSubject(String),

    /// A subject alternative name could not be encoded (DNS names and URIs must be ASCII).
    #[error("invalid subject alternative name {name:?}: {reason}")]
    InvalidSan {
        /// The offending name.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// Building or signing the certificate signing request failed.
    #[error("building the certificate signing request failed: {0}")]
    Csr(String),

    /// The certificate chain is not UTF-8 text.
    #[error("the certificate chain is not UTF-8 text (byte {valid_up_to} is invalid)")]
    ChainNotUtf8 {
        /// Length of the valid UTF-8 prefix.
        valid_up_to: usize,
    },

    /// The certificate chain contains no `CERTIFICATE` PEM block.
    #[error("the certificate chain contains no PEM certificate")]
    EmptyChain,

    /// The certificate chain is not valid PEM or a certificate in it does not parse.
    #[error("invalid certificate chain: {0}")]
    InvalidChain(String),

    /// The chain's leaf certificate does not carry the private key's public key.
    #[error("the leaf certificate's public key does not match the private key")]
    LeafKeyMismatch,

    /// Writing the PKCS#12 keystore failed.
    #[error("writing the PKCS#12 keystore failed: {0}")]
    Pkcs12(String),

    /// A trust bundle source holds something other than CA certificates. Names the
    /// source; never contains the bytes (a private key pasted by mistake stays out of
    /// logs).
    #[error("trust bundle source {source_name} is refused: {reason}")]
    InvalidTrustBundle {
        /// The source, as the caller named it (e.g. `ClusterTrustBundle "x"`).
        source_name: String,
        /// What is wrong and what to change.
        reason: String,
    },

    /// A trust bundle is larger than allowed.
    #[error(
        "the trust bundle is {bytes} bytes, more than the {max} allowed (--max-trust-bundle-bytes); select fewer sources or raise the limit"
    )]
    TrustBundleTooLarge {
        /// The bundle's size so far.
        bytes: usize,
        /// The limit.
        max: usize,
    },

    /// Writing the JKS keystore or truststore failed (for instance the alias is taken by
    /// the CA's entry).
    #[error("writing the JKS keystore failed: {0}")]
    Jks(String),
}

/// Shorthand for `Result<T, keygen::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
