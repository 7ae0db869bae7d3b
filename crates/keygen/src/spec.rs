//! What key to make and how to write it: [`KeySpec`] and [`KeyEncoding`].

use std::fmt;

/// Smallest RSA modulus accepted, in bits (cert-manager's `MinRSAKeySize`).
pub const MIN_RSA_BITS: u32 = 2048;
/// Largest RSA modulus accepted, in bits (cert-manager's `MaxRSAKeySize`).
pub const MAX_RSA_BITS: u32 = 8192;

/// The algorithm and size of a private key.
///
/// This mirrors the `key-algorithm` and `key-size` volume attributes; the `attrs` crate
/// validates those and the driver maps them onto this type. [`KeySpec::validate`] checks
/// the RSA size range again so this crate never generates a key cert-manager would refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeySpec {
    /// RSA with the given modulus size in bits (2048 to 8192), public exponent 65537.
    Rsa {
        /// Modulus size in bits.
        bits: u32,
    },
    /// ECDSA on NIST P-256 (secp256r1); CSRs are signed with ecdsa-with-SHA256.
    EcdsaP256,
    /// ECDSA on NIST P-384 (secp384r1); CSRs are signed with ecdsa-with-SHA384.
    EcdsaP384,
    /// ECDSA on NIST P-521 (secp521r1); CSRs are signed with ecdsa-with-SHA512.
    EcdsaP521,
    /// Ed25519 (RFC 8032); CSRs are signed with Ed25519.
    Ed25519,
}

impl KeySpec {
    /// RSA-2048: the Go driver's and cert-manager's default key.
    pub const RSA_2048: KeySpec = KeySpec::Rsa { bits: 2048 };

    /// Checks the spec is one this crate can generate (RSA size within 2048..=8192).
    pub fn validate(&self) -> Result<(), crate::Error> {
        match *self {
            KeySpec::Rsa { bits } if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) => {
                Err(crate::Error::UnsupportedSpec {
                    spec: *self,
                    reason: "RSA key size must be between 2048 and 8192 bits",
                })
            }
            _ => Ok(()),
        }
    }

    /// The encoding the Go driver uses when `key-encoding` is not set: PKCS#1 for RSA,
    /// PKCS#8 for everything else.
    pub fn default_encoding(&self) -> KeyEncoding {
        match self {
            KeySpec::Rsa { .. } => KeyEncoding::Pkcs1,
            _ => KeyEncoding::Pkcs8,
        }
    }

    /// Whether this is an RSA spec.
    pub fn is_rsa(&self) -> bool {
        matches!(self, KeySpec::Rsa { .. })
    }
}

impl Default for KeySpec {
    fn default() -> Self {
        KeySpec::RSA_2048
    }
}

impl fmt::Display for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySpec::Rsa { bits } => write!(f, "RSA {bits}"),
            KeySpec::EcdsaP256 => f.write_str("ECDSA P-256"),
            KeySpec::EcdsaP384 => f.write_str("ECDSA P-384"),
            KeySpec::EcdsaP521 => f.write_str("ECDSA P-521"),
            KeySpec::Ed25519 => f.write_str("Ed25519"),
        }
    }
}

/// PEM encoding of a private key, as the `key-encoding` volume attribute names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyEncoding {
    /// PKCS#1 `RSA PRIVATE KEY` (RSA keys only).
    Pkcs1,
    /// PKCS#8 `PRIVATE KEY` (every algorithm).
    Pkcs8,
}

impl fmt::Display for KeyEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyEncoding::Pkcs1 => f.write_str("PKCS1"),
            KeyEncoding::Pkcs8 => f.write_str("PKCS8"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_size_range_is_enforced() {
        assert!(KeySpec::Rsa { bits: 2048 }.validate().is_ok());
        assert!(KeySpec::Rsa { bits: 8192 }.validate().is_ok());
        assert!(KeySpec::Rsa { bits: 3072 }.validate().is_ok());
        let err = KeySpec::Rsa { bits: 1024 }.validate().unwrap_err();
        assert!(err.to_string().contains("RSA 1024"), "{err}");
        assert!(KeySpec::Rsa { bits: 8193 }.validate().is_err());
        assert!(KeySpec::Ed25519.validate().is_ok());
    }

    #[test]
    fn default_encodings_follow_the_go_driver() {
        assert_eq!(KeySpec::RSA_2048.default_encoding(), KeyEncoding::Pkcs1);
        assert_eq!(KeySpec::EcdsaP384.default_encoding(), KeyEncoding::Pkcs8);
        assert_eq!(KeySpec::Ed25519.default_encoding(), KeyEncoding::Pkcs8);
        assert_eq!(KeySpec::default(), KeySpec::Rsa { bits: 2048 });
    }

    #[test]
    fn display_names_the_algorithm_and_size() {
        assert_eq!(KeySpec::Rsa { bits: 4096 }.to_string(), "RSA 4096");
        assert_eq!(KeySpec::EcdsaP521.to_string(), "ECDSA P-521");
        assert_eq!(KeyEncoding::Pkcs1.to_string(), "PKCS1");
    }
}
