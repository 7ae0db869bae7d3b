//! The volume attribute keys.

macro_rules! attribute_keys {
    ($($(#[$doc:meta])* $name:ident = $short:literal,)*) => {
        $($(#[$doc])* pub const $name: &str = concat!("csi.cert-manager.io/", $short);)*

        /// Every `csi.cert-manager.io/*` key this crate understands.
        pub const ALL: &[&str] = &[$($name,)*];
    };
}

/// The prefix of this driver's attributes, with its trailing `/`.
pub const PREFIX: &str = "csi.cert-manager.io/";

/// The prefix of the keys the kubelet adds, with its trailing `/`.
pub const KUBELET_PREFIX: &str = "csi.storage.k8s.io/";

attribute_keys! {
    /// Name of the Issuer or ClusterIssuer (required).
    ISSUER_NAME = "issuer-name",
    /// Kind of the issuer; default `Issuer`.
    ISSUER_KIND = "issuer-kind",
    /// API group of the issuer; default `cert-manager.io`.
    ISSUER_GROUP = "issuer-group",
    /// Subject common name (templated).
    COMMON_NAME = "common-name",
    /// DNS SANs, comma-separated (templated).
    DNS_NAMES = "dns-names",
    /// IP SANs, comma-separated.
    IP_SANS = "ip-sans",
    /// URI SANs, comma-separated (templated).
    URI_SANS = "uri-sans",
    /// Requested lifetime, a Go duration.
    DURATION = "duration",
    /// `true` to request a CA certificate.
    IS_CA = "is-ca",
    /// Key usages, comma-separated cert-manager names.
    KEY_USAGES = "key-usages",
    /// `RSA`, `ECDSA` or `Ed25519`.
    KEY_ALGORITHM = "key-algorithm",
    /// RSA bits or ECDSA curve size.
    KEY_SIZE = "key-size",
    /// `PKCS1` (RSA only) or `PKCS8`.
    KEY_ENCODING = "key-encoding",
    /// File name of the certificate chain.
    CERTIFICATE_FILE = "certificate-file",
    /// File name of the private key.
    PRIVATE_KEY_FILE = "privatekey-file",
    /// File name of the CA certificate.
    CA_FILE = "ca-file",
    /// Renew this long before expiry, a Go duration.
    RENEW_BEFORE = "renew-before",
    /// `true` to issue once and never renew.
    DISABLE_AUTO_RENEW = "disable-auto-renew",
    /// `true` to keep the private key across renewals.
    REUSE_PRIVATE_KEY = "reuse-private-key",
    /// Group ID that owns the files.
    FS_GROUP = "fs-group",
    /// `true` to also write a PKCS#12 keystore.
    PKCS12_ENABLE = "pkcs12-enable",
    /// File name of the PKCS#12 keystore; default `keystore.p12`.
    PKCS12_FILENAME = "pkcs12-filename",
    /// Password of the PKCS#12 keystore (this or `pkcs12-password-secret-key` is
    /// required when enabled).
    PKCS12_PASSWORD = "pkcs12-password",
    /// Key of the volume's `nodePublishSecretRef` Secret holding the PKCS#12 password.
    PKCS12_PASSWORD_SECRET_KEY = "pkcs12-password-secret-key",
    /// `LegacyRC2`, `LegacyDES` or `Modern2023` (cert-manager's names); default
    /// [`ParseOptions::pkcs12_profile`](crate::ParseOptions::pkcs12_profile).
    PKCS12_PROFILE = "pkcs12-profile",
    /// File name of a PKCS#12 truststore with the CA; none when absent.
    PKCS12_TRUSTSTORE_FILENAME = "pkcs12-truststore-filename",
    /// `true` to also write a JKS keystore.
    JKS_ENABLE = "jks-enable",
    /// File name of the JKS keystore; default `keystore.jks`.
    JKS_FILENAME = "jks-filename",
    /// Password of the JKS keystore and truststore (this or `jks-password-secret-key` is
    /// required when enabled).
    JKS_PASSWORD = "jks-password",
    /// Key of the volume's `nodePublishSecretRef` Secret holding the JKS password.
    JKS_PASSWORD_SECRET_KEY = "jks-password-secret-key",
    /// Alias of the key entry in the JKS keystore; default `certificate`.
    JKS_ALIAS = "jks-alias",
    /// File name of the JKS truststore with the CA; default `truststore.jks`, written
    /// when the issuer returns a CA.
    JKS_TRUSTSTORE_FILENAME = "jks-truststore-filename",
    /// File name of a PEM file with the PKCS#8 private key followed by the leaf and the
    /// chain; none when absent.
    CREDENTIAL_BUNDLE_FILE = "credential-bundle-file",
    /// Subject organizations, a CSV list (templated).
    ORGANIZATIONS = "organizations",
    /// Subject organizational units, a CSV list (templated).
    ORGANIZATIONAL_UNITS = "organizationalunits",
    /// Subject countries, a CSV list (templated).
    COUNTRIES = "countries",
    /// Subject provinces, a CSV list (templated).
    PROVINCES = "provinces",
    /// Subject localities, a CSV list (templated).
    LOCALITIES = "localities",
    /// Subject street addresses, a CSV list (templated).
    STREET_ADDRESSES = "streetaddresses",
    /// Subject postal codes, a CSV list (templated).
    POSTAL_CODES = "postalcodes",
    /// Subject serial number (not templated).
    SERIAL_NUMBER = "serialnumber",
    /// Whole subject as an RFC 4514 string (templated); overrides the other
    /// subject attributes.
    LITERAL_SUBJECT = "literal-subject",
    /// One `ClusterTrustBundle`, by name, as the volume's CA file.
    CLUSTER_TRUST_BUNDLE_NAME = "cluster-trust-bundle-name",
    /// Every `ClusterTrustBundle` with this `spec.signerName` (and the label selector),
    /// merged, as the volume's CA file.
    CLUSTER_TRUST_BUNDLE_SIGNER_NAME = "cluster-trust-bundle-signer-name",
    /// Label selector (`k=v,k2=v2`) on the bundles of `cluster-trust-bundle-signer-name`;
    /// empty selects all.
    CLUSTER_TRUST_BUNDLE_LABEL_SELECTOR = "cluster-trust-bundle-label-selector",
    /// A ConfigMap in the Pod's namespace (a trust-manager `Bundle` target) as the
    /// volume's CA file.
    TRUST_BUNDLE_CONFIGMAP = "trust-bundle-configmap",
    /// The key of `trust-bundle-configmap`; default `trust-bundle.pem`.
    TRUST_BUNDLE_CONFIGMAP_KEY = "trust-bundle-configmap-key",
    /// `true`: a missing trust bundle source is not an error; the issuer's CA is
    /// used until it appears.
    TRUST_BUNDLE_OPTIONAL = "trust-bundle-optional",
}

/// Pod name, sent by the kubelet when the CSIDriver sets `podInfoOnMount`.
pub const POD_NAME: &str = "csi.storage.k8s.io/pod.name";
/// Pod namespace, from the kubelet.
pub const POD_NAMESPACE: &str = "csi.storage.k8s.io/pod.namespace";
/// Pod UID, from the kubelet.
pub const POD_UID: &str = "csi.storage.k8s.io/pod.uid";
/// Pod service account name, from the kubelet.
pub const SERVICE_ACCOUNT_NAME: &str = "csi.storage.k8s.io/serviceAccount.name";
/// Service account tokens (a secret), from the kubelet when the CSIDriver
/// lists `tokenRequests`. Never kept in a [`CertificateSpec`](crate::CertificateSpec).
pub const SERVICE_ACCOUNT_TOKENS: &str = "csi.storage.k8s.io/serviceAccount.tokens";
/// `"true"` for inline ephemeral volumes, from the kubelet.
pub const EPHEMERAL: &str = "csi.storage.k8s.io/ephemeral";

/// Keys whose values are secrets: never logged, never in an error or a
/// metric, never printed by `Debug`.
pub const SECRET_KEYS: &[&str] = &[SERVICE_ACCOUNT_TOKENS, PKCS12_PASSWORD, JKS_PASSWORD];

/// Attributes whose values may use `${POD_NAME}`-style variables.
pub const TEMPLATED: &[&str] = &[
    COMMON_NAME,
    DNS_NAMES,
    URI_SANS,
    LITERAL_SUBJECT,
    ORGANIZATIONS,
    ORGANIZATIONAL_UNITS,
    COUNTRIES,
    PROVINCES,
    LOCALITIES,
    STREET_ADDRESSES,
    POSTAL_CODES,
];

/// Old names that the Go driver renamed, with their current key.
pub(crate) const RENAMED: &[(&str, &str)] = &[
    ("keystore-pkcs12-enable", PKCS12_ENABLE),
    ("keystore-pkcs12-file", PKCS12_FILENAME),
    ("keystore-pkcs12-filename", PKCS12_FILENAME),
    ("keystore-pkcs12-password", PKCS12_PASSWORD),
];

/// The part after [`PREFIX`] of a known key.
pub(crate) fn short(key: &str) -> &str {
    key.strip_prefix(PREFIX).unwrap_or(key)
}
