//! cert-manager's key usage names.

use std::fmt;
use std::str::FromStr;

macro_rules! usages {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// A key usage or extended key usage, as cert-manager names it in a
        /// CertificateRequest's `spec.usages`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[non_exhaustive]
        pub enum KeyUsage {
            $($(#[$doc])* $variant,)*
        }

        impl KeyUsage {
            /// Every usage, in cert-manager's order.
            pub const ALL: &'static [KeyUsage] = &[$(KeyUsage::$variant,)*];

            /// cert-manager's name for this usage (`"digital signature"`,
            /// `"server auth"`, ...), as written in `spec.usages`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(KeyUsage::$variant => $name,)*
                }
            }
        }
    };
}

usages! {
    /// `signing`
    Signing => "signing",
    /// `digital signature`
    DigitalSignature => "digital signature",
    /// `content commitment`
    ContentCommitment => "content commitment",
    /// `key encipherment`
    KeyEncipherment => "key encipherment",
    /// `key agreement`
    KeyAgreement => "key agreement",
    /// `data encipherment`
    DataEncipherment => "data encipherment",
    /// `cert sign`
    CertSign => "cert sign",
    /// `crl sign`
    CrlSign => "crl sign",
    /// `encipher only`
    EncipherOnly => "encipher only",
    /// `decipher only`
    DecipherOnly => "decipher only",
    /// `any` (extended key usage anyExtendedKeyUsage)
    Any => "any",
    /// `server auth`
    ServerAuth => "server auth",
    /// `client auth`
    ClientAuth => "client auth",
    /// `code signing`
    CodeSigning => "code signing",
    /// `email protection`
    EmailProtection => "email protection",
    /// `s/mime`
    Smime => "s/mime",
    /// `ipsec end system`
    IpsecEndSystem => "ipsec end system",
    /// `ipsec tunnel`
    IpsecTunnel => "ipsec tunnel",
    /// `ipsec user`
    IpsecUser => "ipsec user",
    /// `timestamping`
    Timestamping => "timestamping",
    /// `ocsp signing`
    OcspSigning => "ocsp signing",
    /// `microsoft sgc`
    MicrosoftSgc => "microsoft sgc",
    /// `netscape sgc`
    NetscapeSgc => "netscape sgc",
}

impl KeyUsage {
    /// The default usages of the original documentation and the Go driver:
    /// `digital signature` and `key encipherment`.
    pub const DEFAULT: &'static [KeyUsage] =
        &[KeyUsage::DigitalSignature, KeyUsage::KeyEncipherment];

    /// Whether this is an extended key usage (the X.509 EKU extension) rather
    /// than a bit of the key usage extension.
    pub fn is_extended(self) -> bool {
        matches!(
            self,
            KeyUsage::Any
                | KeyUsage::ServerAuth
                | KeyUsage::ClientAuth
                | KeyUsage::CodeSigning
                | KeyUsage::EmailProtection
                | KeyUsage::Smime
                | KeyUsage::IpsecEndSystem
                | KeyUsage::IpsecTunnel
                | KeyUsage::IpsecUser
                | KeyUsage::Timestamping
                | KeyUsage::OcspSigning
                | KeyUsage::MicrosoftSgc
                | KeyUsage::NetscapeSgc
        )
    }
}

impl fmt::Display for KeyUsage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name is not one of cert-manager's key usages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a cert-manager key usage")]
pub struct UnknownKeyUsage(pub String);

impl FromStr for KeyUsage {
    type Err = UnknownKeyUsage;

    /// Reads a cert-manager usage name; case and surrounding whitespace are
    /// ignored, inner spaces must match (`"Server Auth"` is `server auth`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim();
        KeyUsage::ALL
            .iter()
            .copied()
            .find(|u| u.as_str().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| UnknownKeyUsage(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_round_trips() {
        assert_eq!(KeyUsage::ALL.len(), 23);
        for u in KeyUsage::ALL {
            assert_eq!(u.as_str().parse::<KeyUsage>().unwrap(), *u);
            assert_eq!(u.to_string(), u.as_str());
        }
    }

    #[test]
    fn parse_ignores_case_and_outer_space() {
        assert_eq!(
            " Server Auth ".parse::<KeyUsage>().unwrap(),
            KeyUsage::ServerAuth
        );
        assert_eq!("S/MIME".parse::<KeyUsage>().unwrap(), KeyUsage::Smime);
        assert!("serverauth".parse::<KeyUsage>().is_err());
        assert!("server-auth".parse::<KeyUsage>().is_err());
    }

    #[test]
    fn extended_split() {
        assert!(KeyUsage::ServerAuth.is_extended());
        assert!(!KeyUsage::DigitalSignature.is_extended());
        assert_eq!(KeyUsage::ALL.iter().filter(|u| u.is_extended()).count(), 13);
    }
}
