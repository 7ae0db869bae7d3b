//! PKCS#10 certificate signing requests: [`CsrParams`], [`Subject`], [`build_csr`].
//!
//! The request is shaped like the one Go's `x509.CreateCertificateRequest` makes in the Go
//! driver, because cert-manager parses it with Go's `crypto/x509`:
//! - subject attributes in Go's `pkix.Name` order (C, ST, L, STREET, POSTALCODE, O, OU, CN,
//!   SERIALNUMBER), all values of one attribute type in one RDN; values are
//!   `PrintableString` when they fit, else `UTF8String`;
//! - a literal subject keeps the caller's RDNs in the order given, which is DER order (the
//!   reverse of an RFC 4514 string, as cert-manager's `UnmarshalSubjectStringToRDNSequence`
//!   produces it);
//! - at most one extension, a non-critical subjectAltName with DNS names, then IP
//!   addresses, then URIs, inside the single `extensionRequest` attribute; with no SANs there
//!   is no attribute at all (never an empty `Extensions`, which RFC 5280 forbids).

use std::net::IpAddr;

use der::asn1::{Any, Ia5String, PrintableStringRef, Utf8StringRef};
use der::oid::ObjectIdentifier;
use der::{Decode, Encode, EncodePem, Tag, Tagged};
use pkcs8::LineEnding;
use signature::{Keypair, Signer};
use spki::{
    DynSignatureAlgorithmIdentifier, EncodePublicKey, SignatureBitStringEncoding,
    SubjectPublicKeyInfoOwned,
};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::builder::{Builder, RequestBuilder};
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::{Extension, ToExtension};
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::request::{CertReq, CertReqInfo, Version};

use crate::key::Inner;
use crate::{Error, PrivateKey, Result};

/// Subject attributes given field by field (the `common-name`, `organizations`, ...
/// volume attributes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubjectFields {
    /// Common name (CN); omitted when `None` or empty.
    pub common_name: Option<String>,
    /// Organizations (O).
    pub organizations: Vec<String>,
    /// Organizational units (OU).
    pub organizational_units: Vec<String>,
    /// Countries (C).
    pub countries: Vec<String>,
    /// Provinces or states (ST).
    pub provinces: Vec<String>,
    /// Localities (L).
    pub localities: Vec<String>,
    /// Street addresses (STREET).
    pub street_addresses: Vec<String>,
    /// Postal codes (POSTALCODE).
    pub postal_codes: Vec<String>,
    /// Subject serial number (SERIALNUMBER); omitted when `None` or empty.
    pub serial_number: Option<String>,
}

/// One relative distinguished name of a literal subject: one or more
/// `(attribute type, value)` pairs (more than one for a multi-valued RDN like `CN=a+UID=b`).
///
/// The attribute type is a name (`CN`, `O`, `OU`, `C`, `ST`, `L`, `STREET`, `POSTALCODE`,
/// `SERIALNUMBER`, `UID`, `DC`; case-insensitive) or a dotted OID such as `2.5.4.3`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rdn(pub Vec<(String, String)>);

impl Rdn {
    /// A single-valued RDN.
    pub fn single(attribute_type: impl Into<String>, value: impl Into<String>) -> Rdn {
        Rdn(vec![(attribute_type.into(), value.into())])
    }
}

/// The subject of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// Attributes field by field, encoded in Go's `pkix.Name` order.
    Fields(SubjectFields),
    /// A literal subject (`literal-subject`): RDNs in DER (encoding) order, the reverse
    /// of an RFC 4514 string: `CN=app,O=corp` is `[O=corp, CN=app]`, so `O` comes first
    /// in the encoded name. This is the order `cmcsi-attrs` parses into; nothing between
    /// the two reverses it.
    Literal(Vec<Rdn>),
}

impl Default for Subject {
    fn default() -> Self {
        Subject::Fields(SubjectFields::default())
    }
}

impl Subject {
    /// A subject with only a common name.
    pub fn common_name(cn: impl Into<String>) -> Subject {
        Subject::Fields(SubjectFields {
            common_name: Some(cn.into()),
            ..SubjectFields::default()
        })
    }

    /// A literal subject of single-valued RDNs, in DER order (see [`Subject::Literal`]).
    pub fn literal<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Subject
    where
        K: Into<String>,
        V: Into<String>,
    {
        Subject::Literal(pairs.into_iter().map(|(k, v)| Rdn::single(k, v)).collect())
    }

    /// Encodes the subject as an X.509 `Name`.
    pub fn to_name(&self) -> Result<Name> {
        let mut seq = RdnSequence::default();
        match self {
            Subject::Fields(f) => {
                let multi: [(&[String], ObjectIdentifier); 7] = [
                    (&f.countries, OID_C),
                    (&f.provinces, OID_ST),
                    (&f.localities, OID_L),
                    (&f.street_addresses, OID_STREET),
                    (&f.postal_codes, OID_POSTALCODE),
                    (&f.organizations, OID_O),
                    (&f.organizational_units, OID_OU),
                ];
                for (values, oid) in multi {
                    push_rdn(&mut seq, values.iter().map(|v| (oid, v.as_str())))?;
                }
                for (value, oid) in [(&f.common_name, OID_CN), (&f.serial_number, OID_SERIAL)] {
                    if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
                        push_rdn(&mut seq, [(oid, v)])?;
                    }
                }
            }
            Subject::Literal(rdns) => {
                for rdn in rdns {
                    if rdn.0.is_empty() {
                        return Err(Error::InvalidSubject("an RDN has no attribute".into()));
                    }
                    let avas = rdn
                        .0
                        .iter()
                        .map(|(ty, v)| Ok((attribute_oid(ty)?, v.as_str())))
                        .collect::<Result<Vec<_>>>()?;
                    push_rdn(&mut seq, avas)?;
                }
            }
        }
        let der = seq
            .to_der()
            .map_err(|e| Error::InvalidSubject(e.to_string()))?;
        Name::from_der(&der).map_err(|e| Error::InvalidSubject(e.to_string()))
    }
}

/// What goes into a certificate signing request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CsrParams {
    /// The subject name.
    pub subject: Subject,
    /// DNS subject alternative names (ASCII; IDNs must already be in punycode).
    pub dns_names: Vec<String>,
    /// IP address subject alternative names (IPv4-mapped IPv6 addresses are written as IPv4,
    /// as Go does).
    pub ip_addresses: Vec<IpAddr>,
    /// URI subject alternative names (ASCII).
    pub uris: Vec<String>,
}

/// Builds and signs a PKCS#10 request for `key`, returned as PEM (`CERTIFICATE REQUEST`).
///
/// Signature algorithm by key: RSA sha256WithRSAEncryption, P-256 ecdsa-with-SHA256,
/// P-384 ecdsa-with-SHA384, P-521 ecdsa-with-SHA512, Ed25519 Ed25519.
pub fn build_csr(key: &PrivateKey, params: &CsrParams) -> Result<String> {
    let subject = params.subject.to_name()?;
    let san = san_extension(params)?;
    let req = match &key.inner {
        Inner::Rsa(k) => sign::<_, rsa::pkcs1v15::Signature>(k, subject, san)?,
        Inner::P256(k) => {
            let pkcs8 = key.to_pkcs8_der()?;
            let signer = crate::p256::RingSigner::new(k, pkcs8);
            sign::<_, p256::ecdsa::DerSignature>(&signer, subject, san)?
        }
        Inner::P384(k) => sign::<_, p384::ecdsa::DerSignature>(k, subject, san)?,
        Inner::P521(k) => sign::<_, p521::ecdsa::DerSignature>(k, subject, san)?,
        Inner::Ed25519(k) => sign::<_, ed25519_dalek::Signature>(k, subject, san)?,
    };
    req.to_pem(LineEnding::LF)
        .map_err(|e| Error::Csr(e.to_string()))
}

fn sign<S, Sig>(signer: &S, subject: Name, san: Option<Extension>) -> Result<CertReq>
where
    S: Signer<Sig> + Keypair + DynSignatureAlgorithmIdentifier,
    S::VerifyingKey: EncodePublicKey,
    Sig: SignatureBitStringEncoding,
{
    let csr_err = |e: &dyn std::fmt::Display| Error::Csr(e.to_string());
    match san {
        Some(ext) => {
            let mut builder = RequestBuilder::new(subject).map_err(|e| csr_err(&e))?;
            builder.add_extension(ext).map_err(|e| csr_err(&e))?;
            builder.build::<S, Sig>(signer).map_err(|e| csr_err(&e))
        }
        None => {
            // Written out here because `RequestBuilder` always adds an `extensionRequest`
            // attribute, empty when there are no extensions; Go adds none in that case and
            // an empty `Extensions` breaks its SIZE (1..MAX) constraint.
            let public_key = SubjectPublicKeyInfoOwned::from_key(&signer.verifying_key())
                .map_err(|e| csr_err(&e))?;
            let info = CertReqInfo {
                version: Version::V1,
                subject,
                public_key,
                attributes: Default::default(),
            };
            let tbs = info.to_der().map_err(|e| csr_err(&e))?;
            let signature = signer
                .try_sign(&tbs)
                .map_err(|e| csr_err(&e))?
                .to_bitstring()
                .map_err(|e| csr_err(&e))?;
            let algorithm = signer
                .signature_algorithm_identifier()
                .map_err(|e| csr_err(&e))?;
            Ok(CertReq {
                info,
                algorithm,
                signature,
            })
        }
    }
}

fn san_extension(params: &CsrParams) -> Result<Option<Extension>> {
    let mut names = Vec::new();
    for dns in &params.dns_names {
        names.push(GeneralName::DnsName(ia5(dns)?));
    }
    for ip in &params.ip_addresses {
        names.push(GeneralName::from(ip.to_canonical()));
    }
    for uri in &params.uris {
        names.push(GeneralName::UniformResourceIdentifier(ia5(uri)?));
    }
    if names.is_empty() {
        return Ok(None);
    }
    let san = SubjectAltName(names);
    let mut ext = (&san)
        .to_extension(&Name::default(), &[])
        .map_err(|e| Error::Csr(e.to_string()))?;
    // Go never marks the SAN extension critical in a request.
    ext.critical = false;
    Ok(Some(ext))
}

fn ia5(name: &str) -> Result<Ia5String> {
    Ia5String::new(name).map_err(|_| Error::InvalidSan {
        name: name.to_owned(),
        reason: "only ASCII (IA5String) is allowed",
    })
}

const OID_CN: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
const OID_SERIAL: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.5");
const OID_C: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.6");
const OID_L: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.7");
const OID_ST: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.8");
const OID_STREET: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.9");
const OID_O: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.10");
const OID_OU: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.11");
const OID_POSTALCODE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.17");
const OID_UID: ObjectIdentifier = ObjectIdentifier::new_unwrap("0.9.2342.19200300.100.1.1");
const OID_DC: ObjectIdentifier = ObjectIdentifier::new_unwrap("0.9.2342.19200300.100.1.25");

/// Maps an attribute type name (cert-manager's literal-subject names) or dotted OID.
fn attribute_oid(name: &str) -> Result<ObjectIdentifier> {
    let oid = match name.to_ascii_uppercase().as_str() {
        "CN" => OID_CN,
        "SERIALNUMBER" => OID_SERIAL,
        "C" => OID_C,
        "L" => OID_L,
        "ST" => OID_ST,
        "STREET" => OID_STREET,
        "O" => OID_O,
        "OU" => OID_OU,
        "POSTALCODE" => OID_POSTALCODE,
        "UID" => OID_UID,
        "DC" => OID_DC,
        _ if name.starts_with(|c: char| c.is_ascii_digit()) => ObjectIdentifier::new(name)
            .map_err(|e| Error::InvalidSubject(format!("attribute type {name:?}: {e}")))?,
        _ => {
            return Err(Error::InvalidSubject(format!(
                "unknown attribute type {name:?} (use CN, O, OU, C, ST, L, STREET, POSTALCODE, \
                 SERIALNUMBER, UID, DC or a dotted OID)"
            )));
        }
    };
    Ok(oid)
}

/// Appends one RDN holding all the given attribute values; nothing when there are none.
fn push_rdn<'a>(
    seq: &mut RdnSequence,
    avas: impl IntoIterator<Item = (ObjectIdentifier, &'a str)>,
) -> Result<()> {
    let mut rdn = RelativeDistinguishedName::default();
    for (oid, value) in avas {
        let ava = AttributeTypeAndValue {
            oid,
            value: directory_string(value)?,
        };
        rdn.insert(ava)
            .map_err(|e| Error::InvalidSubject(format!("{oid}={value:?}: {e}")))?;
    }
    if !rdn.is_empty() {
        seq.as_mut().push(rdn);
    }
    Ok(())
}

/// `PrintableString` when every character allows it, else `UTF8String`, as Go's
/// `encoding/asn1` marshals a string.
fn directory_string(value: &str) -> Result<Any> {
    let res = match PrintableStringRef::new(value) {
        Ok(p) => Any::encode_from(&p),
        Err(_) => Utf8StringRef::new(value).and_then(|u| Any::encode_from(&u)),
    };
    let any = res.map_err(|e| Error::InvalidSubject(format!("value {value:?}: {e}")))?;
    debug_assert!(matches!(any.tag(), Tag::PrintableString | Tag::Utf8String));
    Ok(any)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_follow_go_order_and_group_values() {
        let subject = Subject::Fields(SubjectFields {
            common_name: Some("app".into()),
            organizations: vec!["Acme".into(), "Beta".into()],
            countries: vec!["GB".into()],
            serial_number: Some("42".into()),
            ..Default::default()
        });
        let name = subject.to_name().unwrap();
        let rdns: Vec<usize> = name.iter_rdn().map(|r| r.len()).collect();
        assert_eq!(rdns, vec![1, 2, 1, 1]);
        let oids: Vec<ObjectIdentifier> = name.iter().map(|a| a.oid).collect();
        assert_eq!(oids, vec![OID_C, OID_O, OID_O, OID_CN, OID_SERIAL]);
    }

    #[test]
    fn literal_subject_keeps_der_order() {
        let subject = Subject::literal([("2.5.4.10", "Acme"), ("OU", "team"), ("CN", "app")]);
        let name = subject.to_name().unwrap();
        let oids: Vec<ObjectIdentifier> = name.iter().map(|a| a.oid).collect();
        assert_eq!(oids, vec![OID_O, OID_OU, OID_CN]);
        assert_eq!(name.to_string(), "CN=app,OU=team,O=Acme");
    }

    #[test]
    fn unknown_attribute_type_is_refused() {
        let err = Subject::literal([("FOO", "x")]).to_name().unwrap_err();
        assert!(matches!(err, Error::InvalidSubject(_)), "{err}");
        assert!(err.to_string().contains("FOO"));
        let err = Subject::Literal(vec![Rdn(vec![])]).to_name().unwrap_err();
        assert!(matches!(err, Error::InvalidSubject(_)), "{err}");
    }

    #[test]
    fn values_are_printable_or_utf8() {
        assert_eq!(
            directory_string("Acme Ltd.").unwrap().tag(),
            Tag::PrintableString
        );
        assert_eq!(directory_string("a*b").unwrap().tag(), Tag::Utf8String);
        assert_eq!(directory_string("Zürich").unwrap().tag(), Tag::Utf8String);
    }

    #[test]
    fn non_ascii_dns_name_is_refused() {
        let params = CsrParams {
            dns_names: vec!["bücher.example".into()],
            ..Default::default()
        };
        let err = san_extension(&params).unwrap_err();
        assert!(matches!(err, Error::InvalidSan { .. }), "{err}");
    }

    #[test]
    fn no_sans_means_no_extension() {
        assert!(san_extension(&CsrParams::default()).unwrap().is_none());
        let ext = san_extension(&CsrParams {
            dns_names: vec!["a.example".into()],
            ..Default::default()
        })
        .unwrap()
        .unwrap();
        assert!(!ext.critical);
    }
}
