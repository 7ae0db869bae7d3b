//! An in-memory test certificate authority (ECDSA P-256 root).

use der::asn1::ObjectIdentifier;
use der::{Decode, DecodePem, EncodePem, pem::LineEnding};
use p256::ecdsa::{DerSignature, SigningKey};
use spki::{EncodePublicKey, SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef};
use std::str::FromStr;
use std::time::Duration;
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder, CertificateBuilder};
use x509_cert::certificate::{Certificate, TbsCertificate};
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::ext::{Extension, ToExtension};
use x509_cert::name::Name;
use x509_cert::request::{CertReq, ExtensionReq};
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Validity;

/// cert-manager's default certificate duration (90 days) when `spec.duration` is absent.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(2160 * 3600);

/// What the test CA could not do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// The CSR is not a PEM or DER PKCS#10 request.
    #[error("the CSR could not be parsed: {0}")]
    Csr(String),
    /// A key usage name cert-manager does not know.
    #[error("unknown key usage {0:?}")]
    Usage(String),
    /// The `spec.duration` is not a Go duration.
    #[error("invalid duration {0:?}")]
    Duration(String),
    /// Building or signing the certificate failed.
    #[error("signing failed: {0}")]
    Sign(String),
}

/// What to put in a signed certificate, taken from a CertificateRequest.
#[derive(Debug, Clone, Default)]
pub struct SignParams {
    /// Requested lifetime; [`DEFAULT_DURATION`] when `None`.
    pub duration: Option<Duration>,
    /// Issue a CA certificate.
    pub is_ca: bool,
    /// cert-manager key usage names; `digital signature, key encipherment` when empty.
    pub usages: Vec<String>,
}

/// An in-memory root CA that signs CSRs.
///
/// The private key never leaves the value and is not shown by `Debug`.
pub struct TestCa {
    key: SigningKey,
    cert: Certificate,
    cert_pem: String,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa")
            .field(
                "subject",
                &self.cert.tbs_certificate().subject().to_string(),
            )
            .finish_non_exhaustive()
    }
}

fn random_key() -> Result<SigningKey, CaError> {
    // Rejection sampling: a uniformly random 32-byte string is a valid scalar
    // with overwhelming probability; loop for the rare exception.
    for _ in 0..64 {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| CaError::Sign(e.to_string()))?;
        if let Ok(k) = SigningKey::from_slice(&bytes) {
            return Ok(k);
        }
    }
    Err(CaError::Sign("could not generate a key".into()))
}

fn random_serial() -> Result<SerialNumber, CaError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| CaError::Sign(e.to_string()))?;
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    SerialNumber::new(&bytes).map_err(|e| CaError::Sign(e.to_string()))
}

fn ski(
    spk: SubjectPublicKeyInfoRef<'_>,
) -> Result<SubjectKeyIdentifier, x509_cert::builder::Error> {
    Ok(SubjectKeyIdentifier::try_from(spk)?)
}

/// The builder profile for both the root and the leaves: issuer, subject and
/// extensions set explicitly (the crate's CABF profiles are stricter than a
/// test CA needs, for instance they forbid an empty subject).
struct Profile {
    issuer: Option<Name>,
    subject: Name,
    is_ca: bool,
    key_usage: KeyUsage,
    eku: Vec<ObjectIdentifier>,
    san: Option<Extension>,
}

impl BuilderProfile for Profile {
    fn get_issuer(&self, subject: &Name) -> Name {
        self.issuer.clone().unwrap_or_else(|| subject.clone())
    }

    fn get_subject(&self) -> Name {
        self.subject.clone()
    }

    fn build_extensions(
        &self,
        spk: SubjectPublicKeyInfoRef<'_>,
        issuer_spk: SubjectPublicKeyInfoRef<'_>,
        tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        let mut exts: Vec<Extension> = Vec::new();
        let subject = tbs.subject();
        let own = ski(spk)?;
        let issuer = ski(issuer_spk)?;
        exts.push(
            BasicConstraints {
                ca: self.is_ca,
                path_len_constraint: None,
            }
            .to_extension(subject, &exts)?,
        );
        exts.push(self.key_usage.to_extension(subject, &exts)?);
        if !self.eku.is_empty() {
            exts.push(ExtendedKeyUsage(self.eku.clone()).to_extension(subject, &exts)?);
        }
        if let Some(san) = &self.san {
            exts.push(san.clone());
        }
        exts.push(
            AuthorityKeyIdentifier {
                key_identifier: Some(issuer.0.clone()),
                ..Default::default()
            }
            .to_extension(subject, &exts)?,
        );
        exts.push(own.to_extension(subject, &exts)?);
        Ok(exts)
    }
}

/// Maps cert-manager usage names to key usage bits and extended key usages.
fn map_usages(
    usages: &[String],
    is_ca: bool,
) -> Result<(KeyUsage, Vec<ObjectIdentifier>), CaError> {
    use const_oids::*;
    let mut ku = KeyUsage(Default::default()).0;
    let mut eku = Vec::new();
    let defaults = [
        "digital signature".to_string(),
        "key encipherment".to_string(),
    ];
    let list: &[String] = if usages.is_empty() { &defaults } else { usages };
    for u in list {
        match u.as_str() {
            "signing" | "digital signature" => ku |= KeyUsages::DigitalSignature,
            "content commitment" => ku |= KeyUsages::NonRepudiation,
            "key encipherment" => ku |= KeyUsages::KeyEncipherment,
            "key agreement" => ku |= KeyUsages::KeyAgreement,
            "data encipherment" => ku |= KeyUsages::DataEncipherment,
            "cert sign" => ku |= KeyUsages::KeyCertSign,
            "crl sign" => ku |= KeyUsages::CRLSign,
            "encipher only" => ku |= KeyUsages::EncipherOnly,
            "decipher only" => ku |= KeyUsages::DecipherOnly,
            "any" => eku.push(ANY),
            "server auth" => eku.push(SERVER_AUTH),
            "client auth" => eku.push(CLIENT_AUTH),
            "code signing" => eku.push(CODE_SIGNING),
            "email protection" | "s/mime" => eku.push(EMAIL_PROTECTION),
            "ipsec end system" => eku.push(IPSEC_END_SYSTEM),
            "ipsec tunnel" => eku.push(IPSEC_TUNNEL),
            "ipsec user" => eku.push(IPSEC_USER),
            "timestamping" => eku.push(TIMESTAMPING),
            "ocsp signing" => eku.push(OCSP_SIGNING),
            "microsoft sgc" => eku.push(MICROSOFT_SGC),
            "netscape sgc" => eku.push(NETSCAPE_SGC),
            other => return Err(CaError::Usage(other.to_string())),
        }
    }
    if is_ca {
        // cert-manager adds `cert sign` to CA certificates.
        ku |= KeyUsages::KeyCertSign;
    }
    eku.dedup();
    Ok((KeyUsage(ku), eku))
}

/// Extended key usage object identifiers.
mod const_oids {
    use der::asn1::ObjectIdentifier as O;
    pub const ANY: O = O::new_unwrap("2.5.29.37.0");
    pub const SERVER_AUTH: O = O::new_unwrap("1.3.6.1.5.5.7.3.1");
    pub const CLIENT_AUTH: O = O::new_unwrap("1.3.6.1.5.5.7.3.2");
    pub const CODE_SIGNING: O = O::new_unwrap("1.3.6.1.5.5.7.3.3");
    pub const EMAIL_PROTECTION: O = O::new_unwrap("1.3.6.1.5.5.7.3.4");
    pub const IPSEC_END_SYSTEM: O = O::new_unwrap("1.3.6.1.5.5.7.3.5");
    pub const IPSEC_TUNNEL: O = O::new_unwrap("1.3.6.1.5.5.7.3.6");
    pub const IPSEC_USER: O = O::new_unwrap("1.3.6.1.5.5.7.3.7");
    pub const TIMESTAMPING: O = O::new_unwrap("1.3.6.1.5.5.7.3.8");
    pub const OCSP_SIGNING: O = O::new_unwrap("1.3.6.1.5.5.7.3.9");
    pub const MICROSOFT_SGC: O = O::new_unwrap("1.3.6.1.4.1.311.10.3.3");
    pub const NETSCAPE_SGC: O = O::new_unwrap("2.16.840.1.113730.4.1");
}

/// Parses a CSR given as PEM (`CERTIFICATE REQUEST`) or DER.
pub fn parse_csr(bytes: &[u8]) -> Result<CertReq, CaError> {
    if bytes.starts_with(b"-----") {
        CertReq::from_pem(bytes).map_err(|e| CaError::Csr(e.to_string()))
    } else {
        CertReq::from_der(bytes).map_err(|e| CaError::Csr(e.to_string()))
    }
}

/// The subjectAltName extension requested in a CSR, if any.
fn requested_san(csr: &CertReq) -> Result<Option<Extension>, CaError> {
    for attr in csr.info.attributes.iter() {
        if attr.oid != <ExtensionReq as der::oid::AssociatedOid>::OID {
            continue;
        }
        for value in attr.values.iter() {
            let req: ExtensionReq = value
                .decode_as()
                .map_err(|e| CaError::Csr(format!("extension request: {e}")))?;
            for ext in req.0 {
                if ext.extn_id == <SubjectAltName as der::oid::AssociatedOid>::OID {
                    // Validate that it parses before copying it verbatim.
                    SubjectAltName::from_der(ext.extn_value.as_bytes())
                        .map_err(|e| CaError::Csr(format!("subjectAltName: {e}")))?;
                    return Ok(Some(ext));
                }
            }
        }
    }
    Ok(None)
}

impl TestCa {
    /// Creates a new root CA with subject `CN=cmcsi-testkit CA,O=cmcsi-testkit`,
    /// valid for ten years.
    pub fn new() -> Result<Self, CaError> {
        let key = random_key()?;
        let subject = Name::from_str("CN=cmcsi-testkit CA,O=cmcsi-testkit")
            .map_err(|e| CaError::Sign(e.to_string()))?;
        let spki = SubjectPublicKeyInfoOwned::from_key(key.verifying_key())
            .map_err(|e| CaError::Sign(e.to_string()))?;
        let profile = Profile {
            issuer: None,
            subject,
            is_ca: true,
            key_usage: KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign),
            eku: vec![],
            san: None,
        };
        let validity = Validity::from_now(Duration::from_secs(10 * 365 * 24 * 3600))
            .map_err(|e| CaError::Sign(e.to_string()))?;
        let builder = CertificateBuilder::new(profile, random_serial()?, validity, spki)
            .map_err(|e| CaError::Sign(e.to_string()))?;
        let cert = builder
            .build::<_, DerSignature>(&key)
            .map_err(|e| CaError::Sign(e.to_string()))?;
        let cert_pem = cert
            .to_pem(LineEnding::LF)
            .map_err(|e| CaError::Sign(e.to_string()))?;
        Ok(Self {
            key,
            cert,
            cert_pem,
        })
    }

    /// The CA certificate as PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate.
    pub fn cert(&self) -> &Certificate {
        &self.cert
    }

    /// Signs a CSR (PEM or DER): the leaf gets the CSR's subject, public key and
    /// subjectAltName, and the duration, CA flag and usages from `params`.
    /// Returns the leaf as PEM.
    pub fn sign(&self, csr: &[u8], params: &SignParams) -> Result<String, CaError> {
        let csr = parse_csr(csr)?;
        let san = requested_san(&csr)?;
        let (key_usage, eku) = map_usages(&params.usages, params.is_ca)?;
        let duration = params.duration.unwrap_or(DEFAULT_DURATION);
        let profile = Profile {
            issuer: Some(self.cert.tbs_certificate().subject().clone()),
            subject: csr.info.subject.clone(),
            is_ca: params.is_ca,
            key_usage,
            eku,
            san,
        };
        let validity = Validity::from_now(duration).map_err(|e| CaError::Sign(e.to_string()))?;
        let builder =
            CertificateBuilder::new(profile, random_serial()?, validity, csr.info.public_key)
                .map_err(|e| CaError::Sign(e.to_string()))?;
        let cert = builder
            .build::<_, DerSignature>(&self.key)
            .map_err(|e| CaError::Sign(e.to_string()))?;
        cert.to_pem(LineEnding::LF)
            .map_err(|e| CaError::Sign(e.to_string()))
    }

    /// Issues a TLS leaf with a fresh P-256 key: subject `CN=<common_name>`,
    /// the IP addresses as subjectAltNames, and `usage` (`server auth` or
    /// `client auth`), valid for a day. Returns the certificate PEM and the
    /// key as PKCS#8 DER (for the fake API's HTTPS and client-certificate
    /// kubeconfigs).
    pub fn issue_tls(
        &self,
        common_name: &str,
        ips: &[std::net::IpAddr],
        usage: &str,
    ) -> Result<(String, Vec<u8>), CaError> {
        use p256::pkcs8::EncodePrivateKey;
        use x509_cert::ext::pkix::name::GeneralName;
        let err = |e: &dyn std::fmt::Display| CaError::Sign(e.to_string());
        let key = random_key()?;
        let subject = Name::from_str(&format!("CN={common_name}")).map_err(|e| err(&e))?;
        let san = if ips.is_empty() {
            None
        } else {
            let names = ips
                .iter()
                .map(|ip| {
                    let octets = match ip {
                        std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
                        std::net::IpAddr::V6(v6) => v6.octets().to_vec(),
                    };
                    der::asn1::OctetString::new(octets).map(GeneralName::IpAddress)
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| err(&e))?;
            Some(
                SubjectAltName(names)
                    .to_extension(&subject, &[])
                    .map_err(|e| err(&e))?,
            )
        };
        let (key_usage, eku) =
            map_usages(&["digital signature".to_string(), usage.to_string()], false)?;
        let profile = Profile {
            issuer: Some(self.cert.tbs_certificate().subject().clone()),
            subject,
            is_ca: false,
            key_usage,
            eku,
            san,
        };
        let spki = SubjectPublicKeyInfoOwned::from_key(key.verifying_key()).map_err(|e| err(&e))?;
        let validity = Validity::from_now(Duration::from_secs(24 * 3600)).map_err(|e| err(&e))?;
        let cert = CertificateBuilder::new(profile, random_serial()?, validity, spki)
            .map_err(|e| err(&e))?
            .build::<_, DerSignature>(&self.key)
            .map_err(|e| err(&e))?;
        let pem = cert.to_pem(LineEnding::LF).map_err(|e| err(&e))?;
        let key_der = key.to_pkcs8_der().map_err(|e| err(&e))?;
        Ok((pem, key_der.as_bytes().to_vec()))
    }

    /// The DER of the CA's public key (SubjectPublicKeyInfo).
    pub fn public_key_der(&self) -> Result<Vec<u8>, CaError> {
        self.key
            .verifying_key()
            .to_public_key_der()
            .map(|d| d.as_bytes().to_vec())
            .map_err(|e| CaError::Sign(e.to_string()))
    }
}

/// Parses a Go `time.Duration` string such as `2160h0m0s`, `10s`, `1.5h` or
/// `300ms`, with the one parser of the format (`cmcsi-attrs`'s).
pub fn parse_go_duration(s: &str) -> Result<Duration, CaError> {
    cmcsi_attrs::parse_go_duration(s.trim()).map_err(|_| CaError::Duration(s.to_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("2160h0m0s").unwrap(), DEFAULT_DURATION);
        assert_eq!(parse_go_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(
            parse_go_duration("1h30m").unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(
            parse_go_duration("1.5h").unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(
            parse_go_duration("300ms").unwrap(),
            Duration::from_millis(300)
        );
        assert!(parse_go_duration("10").is_err());
        assert!(parse_go_duration("10d").is_err());
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration("-1h").is_err());
    }

    #[test]
    fn usages_map() {
        let (ku, eku) =
            map_usages(&["server auth".into(), "digital signature".into()], false).unwrap();
        assert!(ku.digital_signature());
        assert!(!ku.key_encipherment());
        assert_eq!(eku, vec![const_oids::SERVER_AUTH]);
        let (ku, eku) = map_usages(&[], true).unwrap();
        assert!(ku.digital_signature() && ku.key_encipherment() && ku.key_cert_sign());
        assert!(eku.is_empty());
        assert!(map_usages(&["nope".into()], false).is_err());
    }

    #[test]
    fn root_is_self_signed_ca() {
        let ca = TestCa::new().unwrap();
        assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        let tbs = ca.cert().tbs_certificate();
        assert_eq!(tbs.subject(), tbs.issuer());
    }
}
