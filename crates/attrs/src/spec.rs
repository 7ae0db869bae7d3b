//! The typed result of parsing: [`CertificateSpec`] and its parts.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;
use zeroize::Zeroizing;

use crate::duration::format_go_duration;
use crate::keys;
use crate::list::join_escaped;
use crate::template::escape;
use crate::usage::KeyUsage;

/// Everything one volume's issuance needs, validated.
///
/// Produced by [`parse`](crate::parse); [`to_volume_context`](Self::to_volume_context)
/// renders it back to attributes that parse to an equal spec.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CertificateSpec {
    /// The issuer that signs the CertificateRequest.
    pub issuer: IssuerRef,
    /// The CSR's subject.
    pub subject: Subject,
    /// DNS SANs, templated, in attribute order.
    pub dns_names: Vec<String>,
    /// IP SANs, in attribute order.
    pub ip_sans: Vec<IpAddr>,
    /// URI SANs, templated, in attribute order.
    pub uri_sans: Vec<String>,
    /// Key usages for `spec.usages`, without duplicates, in attribute order.
    pub usages: Vec<KeyUsage>,
    /// Request a CA certificate (`spec.isCA`).
    pub is_ca: bool,
    /// Requested lifetime (`spec.duration`, see
    /// [`format_go_duration`](crate::format_go_duration)).
    pub duration: Duration,
    /// Renew this long before expiry; `None` means a third of the issued
    /// certificate's actual lifetime.
    pub renew_before: Option<Duration>,
    /// The private key to make.
    pub key: KeySpec,
    /// Where to write what, inside the volume.
    pub files: Files,
    /// Group that owns the files (overrides the Pod's fsGroup).
    pub fs_group: Option<u32>,
    /// Keep the private key across renewals.
    pub reuse_private_key: bool,
    /// Issue once, never renew.
    pub disable_auto_renew: bool,
    /// Attributes outside the driver's and the kubelet's prefixes, copied to
    /// the CertificateRequest's annotations.
    pub annotations: BTreeMap<String, String>,
    /// The Pod, as the kubelet described it.
    pub pod: PodInfo,
    /// Where the CA file (and the truststores) come from instead of the issuer's
    /// `status.ca`; `None` keeps the issuer's CA.
    pub trust_bundle: Option<TrustBundle>,
}

/// A volume's trust bundle: one source, and whether its absence is tolerated.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrustBundle {
    /// Where the bundle's certificates are read.
    pub source: TrustSource,
    /// `trust-bundle-optional`: while the source is missing, use the issuer's CA
    /// instead of failing.
    pub optional: bool,
}

impl TrustBundle {
    /// A bundle from `source`, not optional.
    pub fn new(source: TrustSource) -> Self {
        TrustBundle {
            source,
            optional: false,
        }
    }
}

/// The one source of a volume's trust bundle.
///
/// Exhaustive on purpose: the driver maps every variant onto its watches
/// without a fallback, so a new variant must be handled there to compile.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TrustSource {
    /// `cluster-trust-bundle-name`: one `ClusterTrustBundle`.
    ClusterTrustBundleName(String),
    /// `cluster-trust-bundle-signer-name` (and `-label-selector`): every
    /// `ClusterTrustBundle` with this signer whose labels match, merged.
    ClusterTrustBundleSigner {
        /// `spec.signerName`.
        signer_name: String,
        /// Labels that must all be present with these values; empty matches all.
        label_selector: BTreeMap<String, String>,
    },
    /// `trust-bundle-configmap` (and `-key`): one key of a ConfigMap in the Pod's
    /// namespace.
    ConfigMap {
        /// The ConfigMap's name.
        name: String,
        /// The data key holding the PEM bundle.
        key: String,
    },
}

impl TrustSource {
    /// Whether a `ClusterTrustBundle` with this name, signer and labels is part of
    /// this source.
    pub fn matches_cluster_trust_bundle(
        &self,
        name: &str,
        signer_name: Option<&str>,
        labels: &BTreeMap<String, String>,
    ) -> bool {
        match self {
            TrustSource::ClusterTrustBundleName(n) => n == name,
            TrustSource::ClusterTrustBundleSigner {
                signer_name: s,
                label_selector,
            } => {
                signer_name == Some(s.as_str())
                    && label_selector
                        .iter()
                        .all(|(k, v)| labels.get(k).is_some_and(|l| l == v))
            }
            TrustSource::ConfigMap { .. } => false,
        }
    }

    /// A label selector rendered as the attribute writes it (`k=v,k2=v2`).
    pub fn format_label_selector(selector: &BTreeMap<String, String>) -> String {
        let parts: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
        parts.join(",")
    }
}

impl fmt::Display for TrustSource {
    /// Names the source for a person: `ClusterTrustBundle "x"`, ...
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrustSource::ClusterTrustBundleName(n) => write!(f, "ClusterTrustBundle {n:?}"),
            TrustSource::ClusterTrustBundleSigner {
                signer_name,
                label_selector,
            } => {
                write!(f, "ClusterTrustBundles of signer {signer_name:?}")?;
                if !label_selector.is_empty() {
                    write!(
                        f,
                        " with labels {:?}",
                        Self::format_label_selector(label_selector)
                    )?;
                }
                Ok(())
            }
            TrustSource::ConfigMap { name, key } => {
                write!(f, "ConfigMap {name:?} key {key:?}")
            }
        }
    }
}

/// `issuerRef` of the CertificateRequest.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IssuerRef {
    /// Issuer name.
    pub name: String,
    /// Issuer kind (`Issuer`, `ClusterIssuer`, or an external issuer's).
    pub kind: String,
    /// Issuer API group (`cert-manager.io` or an external issuer's).
    pub group: String,
}

/// The CSR's subject: separate fields, or a literal RFC 4514 string.
///
/// Exhaustive on purpose: the driver maps every variant onto `keygen`
/// without a fallback, so a new variant must be mapped there to compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// From `common-name`, `organizations`, ... `serialnumber`.
    Fields(SubjectFields),
    /// From `literal-subject`, which overrides every other subject attribute.
    Literal(LiteralSubject),
}

/// Subject fields. Empty vectors and `None` mean "not set".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SubjectFields {
    /// CN, templated.
    pub common_name: Option<String>,
    /// O values.
    pub organizations: Vec<String>,
    /// OU values.
    pub organizational_units: Vec<String>,
    /// C values (two letters each).
    pub countries: Vec<String>,
    /// ST values.
    pub provinces: Vec<String>,
    /// L values.
    pub localities: Vec<String>,
    /// STREET values.
    pub street_addresses: Vec<String>,
    /// postalCode values.
    pub postal_codes: Vec<String>,
    /// serialNumber, taken verbatim (not templated).
    pub serial_number: Option<String>,
}

/// A `literal-subject`: the validated string and its parsed RDNs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LiteralSubject {
    /// The RFC 4514 string after templating.
    pub text: String,
    /// The RDNs in encoding order (the reverse of the string: `CN=a,O=b` gives
    /// `O=b` first). Each inner vector is one RDN; more than one attribute
    /// means a multi-valued RDN (`+`).
    pub rdns: Vec<Vec<SubjectAttribute>>,
}

/// One attribute type and value of an RDN.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubjectAttribute {
    /// Upper-case short name (`CN`, `O`, `SERIALNUMBER`, ... see
    /// [`ATTRIBUTE_TYPES`](crate::ATTRIBUTE_TYPES)) or, for other types, the dotted OID.
    pub attr_type: String,
    /// The dotted OID (`2.5.4.3` for CN).
    pub oid: String,
    /// The value, unescaped.
    pub value: String,
}

/// The private key to make and how to write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeySpec {
    /// Algorithm and size.
    pub algorithm: KeyAlgorithm,
    /// PEM encoding of the key file.
    pub encoding: KeyEncoding,
}

/// Key algorithm and size.
///
/// Exhaustive on purpose: the driver maps every variant onto `keygen`
/// without a fallback, so a new variant must be mapped there to compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// RSA with a modulus of `bits` (2048 to 8192).
    Rsa {
        /// Modulus size in bits.
        bits: u16,
    },
    /// ECDSA on a NIST curve.
    Ecdsa(EcdsaCurve),
    /// Ed25519.
    Ed25519,
}

impl KeyAlgorithm {
    /// The attribute spelling: `RSA`, `ECDSA` or `Ed25519`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::Rsa { .. } => "RSA",
            KeyAlgorithm::Ecdsa(_) => "ECDSA",
            KeyAlgorithm::Ed25519 => "Ed25519",
        }
    }

    /// The `key-size` attribute value, if the algorithm has one.
    pub fn size(self) -> Option<u16> {
        match self {
            KeyAlgorithm::Rsa { bits } => Some(bits),
            KeyAlgorithm::Ecdsa(curve) => Some(curve.bits()),
            KeyAlgorithm::Ed25519 => None,
        }
    }
}

/// NIST curve for ECDSA.
///
/// Exhaustive on purpose: the driver maps every variant onto `keygen`
/// without a fallback, so a new variant must be mapped there to compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcdsaCurve {
    /// P-256 (`key-size: 256`).
    P256,
    /// P-384 (`key-size: 384`).
    P384,
    /// P-521 (`key-size: 521`).
    P521,
}

impl EcdsaCurve {
    /// The `key-size` value: 256, 384 or 521.
    pub fn bits(self) -> u16 {
        match self {
            EcdsaCurve::P256 => 256,
            EcdsaCurve::P384 => 384,
            EcdsaCurve::P521 => 521,
        }
    }
}

/// PEM encoding of the private key file.
///
/// Exhaustive on purpose: the driver maps every variant onto `keygen`
/// without a fallback, so a new variant must be mapped there to compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyEncoding {
    /// `RSA PRIVATE KEY` (RSA only).
    Pkcs1,
    /// `PRIVATE KEY`.
    Pkcs8,
}

impl KeyEncoding {
    /// The attribute spelling: `PKCS1` or `PKCS8`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyEncoding::Pkcs1 => "PKCS1",
            KeyEncoding::Pkcs8 => "PKCS8",
        }
    }
}

/// File names inside the volume: relative paths, pairwise distinct, none a
/// directory of another.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Files {
    /// The certificate chain (leaf first).
    pub certificate: String,
    /// The private key.
    pub private_key: String,
    /// The CA certificate (possibly empty).
    pub ca: String,
    /// The PKCS#12 keystore, when enabled.
    pub pkcs12: Option<Pkcs12>,
    /// The JKS keystore (and truststore), when enabled.
    pub jks: Option<Jks>,
    /// The credential bundle (PKCS#8 key, then leaf and chain, one PEM file), when set.
    pub credential_bundle: Option<String>,
}

impl Files {
    /// Every file name, the keystores' and the bundle's included (the truststores'
    /// too, though they are written only when the issuer returns a CA).
    pub fn all(&self) -> Vec<&str> {
        let mut all = vec![
            self.certificate.as_str(),
            self.private_key.as_str(),
            self.ca.as_str(),
        ];
        if let Some(p) = &self.pkcs12 {
            all.push(p.filename.as_str());
            if let Some(t) = &p.truststore_filename {
                all.push(t.as_str());
            }
        }
        if let Some(j) = &self.jks {
            all.push(j.filename.as_str());
            all.push(j.truststore_filename.as_str());
        }
        if let Some(b) = &self.credential_bundle {
            all.push(b.as_str());
        }
        all
    }

    /// The keystore passwords read from the volume's Secret: `(Secret key, password)`
    /// for each keystore whose password came from `nodePublishSecretRef`. The driver
    /// keeps these (privately) so that renewals after a restart, when the kubelet does
    /// not send the Secret again, still have them.
    pub fn secret_passwords(&self) -> Vec<(&str, &Password)> {
        let mut out = Vec::new();
        if let Some(p) = &self.pkcs12
            && let PasswordSource::Secret { key } = &p.password_source
        {
            out.push((key.as_str(), &p.password));
        }
        if let Some(j) = &self.jks
            && let PasswordSource::Secret { key } = &j.password_source
        {
            out.push((key.as_str(), &j.password));
        }
        out
    }
}

/// PKCS#12 keystore settings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Pkcs12 {
    /// File name inside the volume.
    pub filename: String,
    /// Keystore password.
    pub password: Password,
    /// Where the password came from.
    pub password_source: PasswordSource,
    /// How the keystore is protected.
    pub profile: Pkcs12Profile,
    /// File name of a PKCS#12 truststore holding the CA, when asked for; written when
    /// the issuer returns a CA.
    pub truststore_filename: Option<String>,
}

/// JKS keystore settings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Jks {
    /// File name of the keystore inside the volume.
    pub filename: String,
    /// Password of the keystore and the truststore.
    pub password: Password,
    /// Where the password came from.
    pub password_source: PasswordSource,
    /// Alias of the private-key entry.
    pub alias: String,
    /// File name of the truststore holding the CA; written when the issuer returns a
    /// CA.
    pub truststore_filename: String,
}

/// Where a keystore password came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PasswordSource {
    /// The volume attributes (`pkcs12-password`, `jks-password`).
    Inline,
    /// This key of the volume's `nodePublishSecretRef` Secret
    /// (`pkcs12-password-secret-key`, `jks-password-secret-key`).
    Secret {
        /// The Secret's data key (a name, not a secret).
        key: String,
    },
}

/// PKCS#12 protection, by cert-manager's profile names.
///
/// Exhaustive on purpose: the driver maps every variant onto `keygen`
/// without a fallback, so a new variant must be mapped there to compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Pkcs12Profile {
    /// `LegacyRC2`: RC2-40 certificates, 3DES key, SHA-1 MAC (the Go driver's format;
    /// OpenSSL 3 needs `-legacy`).
    LegacyRc2,
    /// `LegacyDES`: 3DES certificates and key, SHA-1 MAC.
    LegacyDes,
    /// `Modern2023`: AES-256-CBC with PBKDF2-HMAC-SHA256, SHA-256 MAC.
    #[default]
    Modern2023,
}

impl Pkcs12Profile {
    /// Every profile.
    pub const ALL: &[Pkcs12Profile] = &[
        Pkcs12Profile::LegacyRc2,
        Pkcs12Profile::LegacyDes,
        Pkcs12Profile::Modern2023,
    ];

    /// The attribute spelling: `LegacyRC2`, `LegacyDES` or `Modern2023`.
    pub fn as_str(self) -> &'static str {
        match self {
            Pkcs12Profile::LegacyRc2 => "LegacyRC2",
            Pkcs12Profile::LegacyDes => "LegacyDES",
            Pkcs12Profile::Modern2023 => "Modern2023",
        }
    }
}

/// A password; `Debug` and `Display` print `<redacted>`, and it is wiped
/// from memory when dropped. Read it with [`expose`](Self::expose).
#[derive(Clone, PartialEq, Eq)]
pub struct Password(Zeroizing<String>);

impl Password {
    /// Wraps a password (moved, not copied, into its wiped-on-drop buffer).
    pub fn new(password: impl Into<String>) -> Self {
        Password(Zeroizing::new(password.into()))
    }

    /// The password itself, for the keystore encoder.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// What the kubelet said about the Pod (`csi.storage.k8s.io/*`). The service
/// account tokens are deliberately not kept: read
/// [`keys::SERVICE_ACCOUNT_TOKENS`] from the volume context where needed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PodInfo {
    /// `csi.storage.k8s.io/pod.name`.
    pub name: Option<String>,
    /// `csi.storage.k8s.io/pod.namespace`.
    pub namespace: Option<String>,
    /// `csi.storage.k8s.io/pod.uid`.
    pub uid: Option<String>,
    /// `csi.storage.k8s.io/serviceAccount.name`.
    pub service_account_name: Option<String>,
    /// `csi.storage.k8s.io/ephemeral` (`None` when absent or not a boolean).
    pub ephemeral: Option<bool>,
}

fn bool_str(b: bool) -> String {
    if b { "true" } else { "false" }.to_owned()
}

impl CertificateSpec {
    /// Renders the spec as a volume context that [`parse`](crate::parse) (or
    /// [`parse_with`](crate::parse_with), whatever its defaults) turns back into
    /// an equal spec.
    ///
    /// Every setting is written explicitly, defaults included; templated
    /// values are written expanded, with `$` escaped as `$$`. Inline keystore
    /// passwords are included in clear, as they were in the Pod spec; passwords from
    /// the volume's Secret are not (the `*-password-secret-key` names are), so parse
    /// such a context with [`parse_with_secrets`](crate::parse_with_secrets).
    pub fn to_volume_context(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            m.insert(k.to_owned(), v);
        };
        put(keys::ISSUER_NAME, self.issuer.name.clone());
        put(keys::ISSUER_KIND, self.issuer.kind.clone());
        put(keys::ISSUER_GROUP, self.issuer.group.clone());
        match &self.subject {
            Subject::Literal(l) => put(keys::LITERAL_SUBJECT, escape(&l.text)),
            Subject::Fields(f) => {
                if let Some(cn) = &f.common_name {
                    put(keys::COMMON_NAME, escape(cn));
                }
                for (key, values) in [
                    (keys::ORGANIZATIONS, &f.organizations),
                    (keys::ORGANIZATIONAL_UNITS, &f.organizational_units),
                    (keys::COUNTRIES, &f.countries),
                    (keys::PROVINCES, &f.provinces),
                    (keys::LOCALITIES, &f.localities),
                    (keys::STREET_ADDRESSES, &f.street_addresses),
                    (keys::POSTAL_CODES, &f.postal_codes),
                ] {
                    if !values.is_empty() {
                        put(key, escape(&join_escaped(values)));
                    }
                }
                if let Some(sn) = &f.serial_number {
                    put(keys::SERIAL_NUMBER, sn.clone());
                }
            }
        }
        if !self.dns_names.is_empty() {
            put(keys::DNS_NAMES, escape(&self.dns_names.join(",")));
        }
        if !self.ip_sans.is_empty() {
            let ips: Vec<String> = self.ip_sans.iter().map(IpAddr::to_string).collect();
            put(keys::IP_SANS, ips.join(","));
        }
        if !self.uri_sans.is_empty() {
            put(keys::URI_SANS, escape(&self.uri_sans.join(",")));
        }
        let usages: Vec<&str> = self.usages.iter().map(|u| u.as_str()).collect();
        put(keys::KEY_USAGES, usages.join(","));
        put(keys::IS_CA, bool_str(self.is_ca));
        put(keys::DURATION, format_go_duration(self.duration));
        if let Some(rb) = self.renew_before {
            put(keys::RENEW_BEFORE, format_go_duration(rb));
        }
        put(keys::KEY_ALGORITHM, self.key.algorithm.as_str().to_owned());
        if let Some(size) = self.key.algorithm.size() {
            put(keys::KEY_SIZE, size.to_string());
        }
        put(keys::KEY_ENCODING, self.key.encoding.as_str().to_owned());
        put(keys::CERTIFICATE_FILE, self.files.certificate.clone());
        put(keys::PRIVATE_KEY_FILE, self.files.private_key.clone());
        put(keys::CA_FILE, self.files.ca.clone());
        if let Some(p) = &self.files.pkcs12 {
            put(keys::PKCS12_ENABLE, bool_str(true));
            put(keys::PKCS12_FILENAME, p.filename.clone());
            match &p.password_source {
                PasswordSource::Inline => {
                    put(keys::PKCS12_PASSWORD, p.password.expose().to_owned());
                }
                PasswordSource::Secret { key } => {
                    put(keys::PKCS12_PASSWORD_SECRET_KEY, key.clone())
                }
            }
            put(keys::PKCS12_PROFILE, p.profile.as_str().to_owned());
            if let Some(t) = &p.truststore_filename {
                put(keys::PKCS12_TRUSTSTORE_FILENAME, t.clone());
            }
        }
        if let Some(j) = &self.files.jks {
            put(keys::JKS_ENABLE, bool_str(true));
            put(keys::JKS_FILENAME, j.filename.clone());
            match &j.password_source {
                PasswordSource::Inline => put(keys::JKS_PASSWORD, j.password.expose().to_owned()),
                PasswordSource::Secret { key } => put(keys::JKS_PASSWORD_SECRET_KEY, key.clone()),
            }
            put(keys::JKS_ALIAS, j.alias.clone());
            put(keys::JKS_TRUSTSTORE_FILENAME, j.truststore_filename.clone());
        }
        if let Some(b) = &self.files.credential_bundle {
            put(keys::CREDENTIAL_BUNDLE_FILE, b.clone());
        }
        if let Some(g) = self.fs_group {
            put(keys::FS_GROUP, g.to_string());
        }
        put(keys::REUSE_PRIVATE_KEY, bool_str(self.reuse_private_key));
        put(keys::DISABLE_AUTO_RENEW, bool_str(self.disable_auto_renew));
        for (key, value) in [
            (keys::POD_NAME, &self.pod.name),
            (keys::POD_NAMESPACE, &self.pod.namespace),
            (keys::POD_UID, &self.pod.uid),
            (keys::SERVICE_ACCOUNT_NAME, &self.pod.service_account_name),
        ] {
            if let Some(v) = value {
                put(key, v.clone());
            }
        }
        if let Some(e) = self.pod.ephemeral {
            put(keys::EPHEMERAL, bool_str(e));
        }
        if let Some(t) = &self.trust_bundle {
            match &t.source {
                TrustSource::ClusterTrustBundleName(n) => {
                    put(keys::CLUSTER_TRUST_BUNDLE_NAME, n.clone())
                }
                TrustSource::ClusterTrustBundleSigner {
                    signer_name,
                    label_selector,
                } => {
                    put(keys::CLUSTER_TRUST_BUNDLE_SIGNER_NAME, signer_name.clone());
                    if !label_selector.is_empty() {
                        put(
                            keys::CLUSTER_TRUST_BUNDLE_LABEL_SELECTOR,
                            TrustSource::format_label_selector(label_selector),
                        );
                    }
                }
                TrustSource::ConfigMap { name, key } => {
                    put(keys::TRUST_BUNDLE_CONFIGMAP, name.clone());
                    put(keys::TRUST_BUNDLE_CONFIGMAP_KEY, key.clone());
                }
            }
            put(keys::TRUST_BUNDLE_OPTIONAL, bool_str(t.optional));
        }
        for (k, v) in &self.annotations {
            put(k, v.clone());
        }
        m
    }

    /// Every SAN count together.
    pub fn san_count(&self) -> usize {
        self.dns_names.len() + self.ip_sans.len() + self.uri_sans.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keystore_password_is_held_in_a_zeroizing_buffer() {
        let p = Password::new("s3cret");
        // The field's type is the point: its buffer is wiped on drop.
        let inner: &Zeroizing<String> = &p.0;
        assert_eq!(inner.as_str(), "s3cret");
        assert_eq!(p.expose(), "s3cret");
        assert_eq!(p.clone(), p);
    }
}
