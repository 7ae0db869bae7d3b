//! Volume context to [`CertificateSpec`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use crate::duration::{DurationError, parse_go_duration};
use crate::error::{AttributeError, AttributeErrors, REDACTED, quote};
use crate::keys;
use crate::limits;
use crate::list::{split_escaped, split_plain};
use crate::options::ParseOptions;
use crate::spec::{
    CertificateSpec, EcdsaCurve, Files, IssuerRef, Jks, KeyAlgorithm, KeyEncoding, KeySpec,
    LiteralSubject, Password, PasswordSource, Pkcs12, Pkcs12Profile, PodInfo, Subject,
    SubjectFields,
};
use crate::subject::parse_dn;
use crate::template;
use crate::usage::KeyUsage;
use crate::validate;

/// A parsed spec with the warnings about what was accepted but ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Parsed {
    /// The spec.
    pub spec: CertificateSpec,
    /// Things accepted but without effect (an attribute without a prefix,
    /// subject fields overridden by `literal-subject`, an unknown key when
    /// [`ParseOptions::tolerate_unknown_keys`] is set, ...), one sentence each,
    /// for the driver to log. Never contains secret values.
    pub warnings: Vec<String>,
}

/// Parses a volume context with the original documentation's defaults
/// ([`ParseOptions::original`]).
///
/// Accepts any iterable of key/value pairs of strings: `&BTreeMap<String,
/// String>`, `&HashMap<String, String>`, `[(&str, &str); N]`, ...
pub fn parse<I, K, V>(context: I) -> Result<CertificateSpec, AttributeErrors>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    parse_with(context, &ParseOptions::original())
}

/// Parses a volume context with the given defaults, e.g.
/// [`ParseOptions::go_driver`] for a volume the Go driver wrote.
pub fn parse_with<I, K, V>(
    context: I,
    options: &ParseOptions,
) -> Result<CertificateSpec, AttributeErrors>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    parse_detailed(context, options).map(|p| p.spec)
}

/// Like [`parse_with`], also returning the warnings.
pub fn parse_detailed<I, K, V>(
    context: I,
    options: &ParseOptions,
) -> Result<Parsed, AttributeErrors>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    parse_with_secrets(context, std::iter::empty::<(&str, &str)>(), options)
}

/// Like [`parse_detailed`], with the data of the volume's `nodePublishSecretRef`
/// Secret (`NodePublishVolumeRequest.secrets`), where `pkcs12-password-secret-key` and
/// `jks-password-secret-key` look their passwords up. Only the keys they name are read;
/// errors name a missing key, never a value.
pub fn parse_with_secrets<I, K, V, S, SK, SV>(
    context: I,
    secrets: S,
    options: &ParseOptions,
) -> Result<Parsed, AttributeErrors>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
    S: IntoIterator<Item = (SK, SV)>,
    SK: AsRef<str>,
    SV: AsRef<str>,
{
    let secret_pairs: Vec<(SK, SV)> = secrets.into_iter().collect();
    let secrets: BTreeMap<&str, &str> = secret_pairs
        .iter()
        .map(|(k, v)| (k.as_ref(), v.as_ref()))
        .collect();
    let pairs: Vec<(K, V)> = context.into_iter().collect();
    let mut map: BTreeMap<&str, &str> = BTreeMap::new();
    let mut errors = Vec::new();
    for (k, v) in &pairs {
        if map.insert(k.as_ref(), v.as_ref()).is_some() {
            errors.push(AttributeError::Conflict {
                attribute: k.as_ref().to_owned(),
                problem: "given more than once; give each attribute once".to_owned(),
            });
        }
    }
    let mut parser = Parser {
        opts: options,
        attrs: BTreeMap::new(),
        too_large: BTreeSet::new(),
        errors,
        warnings: Vec::new(),
        pod: PodInfo::default(),
        annotations: BTreeMap::new(),
        secrets,
    };
    parser.classify(&map);
    let spec = parser.build();
    if parser.errors.is_empty() {
        Ok(Parsed {
            spec,
            warnings: parser.warnings,
        })
    } else {
        Err(AttributeErrors::new(parser.errors))
    }
}

struct Parser<'a> {
    opts: &'a ParseOptions,
    /// Known `csi.cert-manager.io/*` attributes, empty values included.
    attrs: BTreeMap<&'a str, &'a str>,
    /// Known attributes refused for their size (reported once, then skipped).
    too_large: BTreeSet<&'a str>,
    errors: Vec<AttributeError>,
    warnings: Vec<String>,
    pod: PodInfo,
    annotations: BTreeMap<String, String>,
    /// The volume's Secret data (`NodePublishVolumeRequest.secrets`).
    secrets: BTreeMap<&'a str, &'a str>,
}

const LIST_KEYS: &[&str] = &[keys::DNS_NAMES, keys::IP_SANS, keys::URI_SANS];

const SUBJECT_LIST_KEYS: &[&str] = &[
    keys::ORGANIZATIONS,
    keys::ORGANIZATIONAL_UNITS,
    keys::COUNTRIES,
    keys::PROVINCES,
    keys::LOCALITIES,
    keys::STREET_ADDRESSES,
    keys::POSTAL_CODES,
];

const DEFAULT_ISSUER_KIND: &str = "Issuer";
const DEFAULT_ISSUER_GROUP: &str = "cert-manager.io";
const DEFAULT_PKCS12_FILENAME: &str = "keystore.p12";
const DEFAULT_JKS_FILENAME: &str = "keystore.jks";
const DEFAULT_JKS_TRUSTSTORE_FILENAME: &str = "truststore.jks";
const DEFAULT_JKS_ALIAS: &str = "certificate";
/// The JKS aliases of the CA's trusted-certificate entries are `ca`, `ca-2`, ...
const JKS_CA_ALIAS: &str = "ca";

/// The attributes of one keystore kind, for the checks PKCS#12 and JKS share.
struct KeystoreKeys {
    what: &'static str,
    enable: &'static str,
    password: &'static str,
    secret_key: &'static str,
    /// Every attribute only used when enabled.
    dependent: &'static [&'static str],
}

const PKCS12_KEYS: KeystoreKeys = KeystoreKeys {
    what: "PKCS#12 keystore",
    enable: keys::PKCS12_ENABLE,
    password: keys::PKCS12_PASSWORD,
    secret_key: keys::PKCS12_PASSWORD_SECRET_KEY,
    dependent: &[
        keys::PKCS12_FILENAME,
        keys::PKCS12_PASSWORD,
        keys::PKCS12_PASSWORD_SECRET_KEY,
        keys::PKCS12_PROFILE,
        keys::PKCS12_TRUSTSTORE_FILENAME,
    ],
};

const JKS_KEYS: KeystoreKeys = KeystoreKeys {
    what: "JKS keystore",
    enable: keys::JKS_ENABLE,
    password: keys::JKS_PASSWORD,
    secret_key: keys::JKS_PASSWORD_SECRET_KEY,
    dependent: &[
        keys::JKS_FILENAME,
        keys::JKS_PASSWORD,
        keys::JKS_PASSWORD_SECRET_KEY,
        keys::JKS_ALIAS,
        keys::JKS_TRUSTSTORE_FILENAME,
    ],
};

fn shown(key: &str, value: &str) -> String {
    if keys::SECRET_VALUED.contains(&key) {
        REDACTED.to_owned()
    } else {
        quote(value)
    }
}

/// The known key nearest to `short` (the part after a prefix, or a whole
/// unprefixed key), if it is close enough to be a typo.
fn nearest_key(short: &str) -> Option<&'static str> {
    let lower = short.to_ascii_lowercase();
    if let Some((_, new)) = keys::RENAMED.iter().find(|(old, _)| *old == lower) {
        return Some(new);
    }
    // A truncated name ("issuer" for "issuer-name").
    if lower.len() >= 4
        && let Some(k) = keys::ALL
            .iter()
            .filter(|k| keys::short(k).starts_with(&lower))
            .min_by_key(|k| k.len())
    {
        return Some(k);
    }
    keys::ALL
        .iter()
        .map(|k| (strsim::levenshtein(&lower, keys::short(k)), *k))
        .min()
        .filter(|(d, k)| *d <= 2 || *d * 3 <= keys::short(k).len())
        .map(|(_, k)| k)
}

fn nearest_usage(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    KeyUsage::ALL
        .iter()
        .map(|u| (strsim::levenshtein(&lower, u.as_str()), u.as_str()))
        .min()
        .filter(|(d, _)| *d <= 3)
        .map(|(_, n)| n)
}

impl<'a> Parser<'a> {
    // ---- reporting ----

    fn invalid(
        &mut self,
        key: &str,
        value: &str,
        problem: impl Into<String>,
        accepted: impl Into<String>,
    ) {
        self.errors.push(AttributeError::Invalid {
            attribute: key.to_owned(),
            value: shown(key, value),
            problem: problem.into(),
            accepted: accepted.into(),
        });
    }

    fn conflict(&mut self, key: &str, problem: impl Into<String>) {
        self.errors.push(AttributeError::Conflict {
            attribute: key.to_owned(),
            problem: problem.into(),
        });
    }

    fn too_large(&mut self, key: &str, problem: impl Into<String>) {
        self.errors.push(AttributeError::TooLarge {
            attribute: key.to_owned(),
            problem: problem.into(),
        });
    }

    fn unknown(&mut self, key: &str, suggestion: Option<String>) {
        if self.opts.tolerate_unknown_keys {
            let hint = suggestion
                .map(|s| format!(" (did you mean {s}?)"))
                .unwrap_or_default();
            self.warnings
                .push(format!("ignored unknown attribute {key:?}{hint}"));
        } else {
            self.errors.push(AttributeError::Unknown {
                attribute: key.to_owned(),
                suggestion,
            });
        }
    }

    // ---- access ----

    /// The value of a known attribute, `None` when absent, empty (the Go
    /// driver's "unset") or already refused for its size.
    fn get(&self, key: &str) -> Option<&'a str> {
        if self.too_large.contains(key) {
            return None;
        }
        self.attrs.get(key).copied().filter(|v| !v.is_empty())
    }

    /// A templated attribute's value, expanded, length-checked again.
    fn templated(&mut self, key: &str) -> Option<String> {
        let raw = self.get(key)?;
        match template::expand(raw, &self.pod) {
            Ok(expanded) => {
                let max = if LIST_KEYS.contains(&key) {
                    limits::MAX_LIST_VALUE_BYTES
                } else {
                    limits::MAX_VALUE_BYTES
                };
                if expanded.len() > max {
                    self.too_large(
                        key,
                        format!(
                            "the value is {} bytes after templating; at most {max} are allowed",
                            expanded.len()
                        ),
                    );
                    return None;
                }
                Some(expanded)
            }
            Err(problem) => {
                self.invalid(key, raw, problem, template::accepted());
                None
            }
        }
    }

    fn bool_attr(&mut self, key: &str) -> bool {
        match self.get(key) {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(v) => {
                self.invalid(key, v, "not a boolean", "accepted: \"true\" or \"false\"");
                false
            }
        }
    }

    // ---- phase 1: sort the keys ----

    fn classify(&mut self, map: &BTreeMap<&'a str, &'a str>) {
        let mut annotation_bytes = 0usize;
        for (&key, &value) in map {
            if let Some(short) = key.strip_prefix(keys::PREFIX) {
                if keys::ALL.contains(&key) {
                    self.attrs.insert(key, value);
                    let max = if LIST_KEYS.contains(&key) {
                        limits::MAX_LIST_VALUE_BYTES
                    } else {
                        limits::MAX_VALUE_BYTES
                    };
                    if value.len() > max {
                        self.too_large.insert(key);
                        self.too_large(
                            key,
                            format!(
                                "the value is {} bytes; at most {max} are allowed",
                                value.len()
                            ),
                        );
                    }
                } else {
                    let suggestion = nearest_key(short).map(str::to_owned);
                    self.unknown(key, suggestion);
                }
            } else if key.starts_with(keys::KUBELET_PREFIX) {
                let non_empty = (!value.is_empty()).then(|| value.to_owned());
                match key {
                    keys::POD_NAME => self.pod.name = non_empty,
                    keys::POD_NAMESPACE => self.pod.namespace = non_empty,
                    keys::POD_UID => self.pod.uid = non_empty,
                    keys::SERVICE_ACCOUNT_NAME => self.pod.service_account_name = non_empty,
                    keys::EPHEMERAL => {
                        self.pod.ephemeral = if value.eq_ignore_ascii_case("true") {
                            Some(true)
                        } else if value.eq_ignore_ascii_case("false") {
                            Some(false)
                        } else {
                            None
                        }
                    }
                    // serviceAccount.tokens and anything newer: the kubelet's
                    // business, accepted and not kept.
                    _ => {}
                }
            } else if let Some((prefix, rest)) = key.split_once('/') {
                let ours = prefix.eq_ignore_ascii_case("csi.cert-manager.io")
                    || strsim::levenshtein(&prefix.to_ascii_lowercase(), "csi.cert-manager.io")
                        <= 2;
                if ours {
                    let suggestion = nearest_key(rest).map(str::to_owned);
                    self.unknown(key, suggestion);
                    continue;
                }
                if let Err(problem) = validate::annotation_key(key) {
                    self.invalid(
                        key,
                        value,
                        format!(
                            "keys with a '/' outside {} and {} become CertificateRequest annotations, and this is not a valid annotation key: {problem}",
                            keys::PREFIX,
                            keys::KUBELET_PREFIX
                        ),
                        "accepted: an annotation key such as example.com/team",
                    );
                    continue;
                }
                annotation_bytes += key.len() + value.len();
                self.annotations.insert(key.to_owned(), value.to_owned());
            } else if let Some(k) = nearest_key(key) {
                self.unknown(key, Some(k.to_owned()));
            } else {
                self.warnings.push(format!(
                    "ignored attribute {key:?}: without a prefix it is neither a {} attribute nor a CertificateRequest annotation",
                    keys::PREFIX
                ));
            }
        }
        if annotation_bytes > limits::MAX_ANNOTATION_BYTES {
            self.too_large(
                "annotations",
                format!(
                    "the pass-through annotations total {annotation_bytes} bytes; Kubernetes allows at most {}",
                    limits::MAX_ANNOTATION_BYTES
                ),
            );
        }
    }

    // ---- phase 2: each attribute ----

    fn build(&mut self) -> CertificateSpec {
        let issuer = self.issuer();
        let subject = self.subject();
        let (dns_names, ip_sans, uri_sans) = self.sans();
        let usages = self.usages();
        let is_ca = self.bool_attr(keys::IS_CA);
        let duration = self.duration();
        let renew_before = self.renew_before(duration);
        let key = self.key();
        let files = self.files();
        let fs_group = self.fs_group();
        let reuse_private_key = self.bool_attr(keys::REUSE_PRIVATE_KEY);
        let disable_auto_renew = self.bool_attr(keys::DISABLE_AUTO_RENEW);
        CertificateSpec {
            issuer,
            subject,
            dns_names,
            ip_sans,
            uri_sans,
            usages,
            is_ca,
            duration: duration.unwrap_or(self.opts.duration),
            renew_before,
            key,
            files,
            fs_group,
            reuse_private_key,
            disable_auto_renew,
            annotations: std::mem::take(&mut self.annotations),
            pod: self.pod.clone(),
        }
    }

    fn issuer(&mut self) -> IssuerRef {
        let name = match self.get(keys::ISSUER_NAME) {
            Some(n) => {
                if let Err(p) = validate::dns1123_subdomain(n) {
                    self.invalid(
                        keys::ISSUER_NAME,
                        n,
                        format!("not a Kubernetes object name: it {p}"),
                        "accepted: the name of an Issuer or ClusterIssuer, e.g. ca-issuer",
                    );
                }
                n.to_owned()
            }
            None => {
                if !self.too_large.contains(keys::ISSUER_NAME) {
                    self.errors.push(AttributeError::Required {
                        attribute: keys::ISSUER_NAME.to_owned(),
                        hint: "set it to the name of the Issuer or ClusterIssuer that signs the certificate".to_owned(),
                    });
                }
                String::new()
            }
        };
        let kind = self.get(keys::ISSUER_KIND).unwrap_or(DEFAULT_ISSUER_KIND);
        if let Err(p) = validate::kind(kind) {
            self.invalid(
                keys::ISSUER_KIND,
                kind,
                format!("not a Kubernetes kind: it {p}"),
                "accepted: Issuer, ClusterIssuer or an external issuer's kind (default Issuer)",
            );
        }
        let group = self.get(keys::ISSUER_GROUP).unwrap_or(DEFAULT_ISSUER_GROUP);
        if let Err(p) = validate::dns1123_subdomain(group) {
            self.invalid(
                keys::ISSUER_GROUP,
                group,
                format!("not an API group: it {p}"),
                "accepted: cert-manager.io (the default) or an external issuer's group, e.g. awspca.cert-manager.io",
            );
        }
        IssuerRef {
            name,
            kind: kind.to_owned(),
            group: group.to_owned(),
        }
    }

    fn subject(&mut self) -> Subject {
        if self.get(keys::LITERAL_SUBJECT).is_some() {
            let overridden: Vec<&str> = std::iter::once(keys::COMMON_NAME)
                .chain(SUBJECT_LIST_KEYS.iter().copied())
                .chain(std::iter::once(keys::SERIAL_NUMBER))
                .filter(|k| self.get(k).is_some())
                .collect();
            for k in overridden {
                self.warnings.push(format!(
                    "ignored {k}: {} is set and overrides every other subject attribute",
                    keys::LITERAL_SUBJECT
                ));
            }
            let Some(text) = self.templated(keys::LITERAL_SUBJECT) else {
                return Subject::Literal(LiteralSubject {
                    text: String::new(),
                    rdns: Vec::new(),
                });
            };
            let rdns = match parse_dn(&text) {
                Ok(rdns) => rdns,
                Err(problem) => {
                    self.invalid(
                        keys::LITERAL_SUBJECT,
                        &text,
                        problem,
                        "accepted: an RFC 4514 string such as \"CN=web,OU=Shop,O=Acme\\, Inc,C=GB\"",
                    );
                    Vec::new()
                }
            };
            let count: usize = rdns.iter().map(Vec::len).sum();
            if count > limits::MAX_SUBJECT_ENTRIES {
                self.too_large(
                    keys::LITERAL_SUBJECT,
                    format!(
                        "{count} attributes; at most {} are allowed",
                        limits::MAX_SUBJECT_ENTRIES
                    ),
                );
            }
            return Subject::Literal(LiteralSubject { text, rdns });
        }
        let mut fields = SubjectFields::default();
        if let Some(cn) = self.templated(keys::COMMON_NAME) {
            if cn.chars().any(char::is_control) {
                self.invalid(
                    keys::COMMON_NAME,
                    &cn,
                    "contains control characters",
                    "accepted: printable text, e.g. ${POD_NAME}.${POD_NAMESPACE}",
                );
            }
            fields.common_name = Some(cn);
        }
        for &key in SUBJECT_LIST_KEYS {
            let values = self.subject_list(key);
            match key {
                keys::ORGANIZATIONS => fields.organizations = values,
                keys::ORGANIZATIONAL_UNITS => fields.organizational_units = values,
                keys::COUNTRIES => fields.countries = values,
                keys::PROVINCES => fields.provinces = values,
                keys::LOCALITIES => fields.localities = values,
                keys::STREET_ADDRESSES => fields.street_addresses = values,
                _ => fields.postal_codes = values,
            }
        }
        if let Some(sn) = self.get(keys::SERIAL_NUMBER) {
            if sn.chars().any(char::is_control) {
                self.invalid(
                    keys::SERIAL_NUMBER,
                    sn,
                    "contains control characters",
                    "accepted: printable text (not templated)",
                );
            }
            fields.serial_number = Some(sn.to_owned());
        }
        Subject::Fields(fields)
    }

    fn subject_list(&mut self, key: &str) -> Vec<String> {
        let Some(value) = self.templated(key) else {
            return Vec::new();
        };
        const ACCEPTED: &str = "accepted: a comma-separated list; quote an entry that contains a comma (\"Acme, Inc\",Other) or escape the comma (Acme\\, Inc)";
        let entries = match split_escaped(&value) {
            Ok(e) => e,
            Err(problem) => {
                self.invalid(key, &value, problem, ACCEPTED);
                return Vec::new();
            }
        };
        if entries.len() > limits::MAX_SUBJECT_ENTRIES {
            self.too_large(
                key,
                format!(
                    "{} entries; at most {} are allowed",
                    entries.len(),
                    limits::MAX_SUBJECT_ENTRIES
                ),
            );
            return Vec::new();
        }
        for e in &entries {
            if e.chars().any(char::is_control) {
                self.invalid(key, e, "an entry contains control characters", ACCEPTED);
            } else if key == keys::COUNTRIES
                && !(e.len() == 2 && e.bytes().all(|b| b.is_ascii_alphabetic()))
            {
                self.invalid(
                    key,
                    e,
                    "not a two-letter country code",
                    "accepted: ISO 3166 two-letter codes, comma-separated, e.g. GB,DE",
                );
            }
        }
        entries
    }

    fn sans(&mut self) -> (Vec<String>, Vec<IpAddr>, Vec<String>) {
        let dns = self.san_list(keys::DNS_NAMES, true, |s| {
            validate::dns_san(s).map(|()| s.to_owned())
        }, "accepted: DNS names such as web.shop.svc.cluster.local or *.example.com, comma-separated");
        let ips = self.san_list(keys::IP_SANS, false, |s| {
            s.parse::<IpAddr>()
                .map_err(|_| "not an IP address".to_owned())
        }, "accepted: IPv4 or IPv6 addresses such as 192.0.2.1 or 2001:db8::1, comma-separated (ip-sans is not templated)");
        let uris = self.san_list(keys::URI_SANS, true, |s| {
            validate::uri_san(s).map(|()| s.to_owned())
        }, "accepted: absolute URIs such as spiffe://cluster.local/ns/shop/sa/web, comma-separated");
        let total = dns.len() + ips.len() + uris.len();
        if total > limits::MAX_SANS_TOTAL {
            self.too_large(
                keys::DNS_NAMES,
                format!(
                    "{total} SANs in dns-names, ip-sans and uri-sans together; at most {} are allowed",
                    limits::MAX_SANS_TOTAL
                ),
            );
        }
        let any_given = [keys::DNS_NAMES, keys::IP_SANS, keys::URI_SANS]
            .iter()
            .any(|k| self.get(k).is_some() && !split_plain(self.get(k).unwrap_or("")).is_empty())
            || LIST_KEYS.iter().any(|k| self.too_large.contains(k));
        if self.opts.require_san && !any_given {
            self.errors.push(AttributeError::Required {
                attribute: keys::DNS_NAMES.to_owned(),
                hint: format!(
                    "at least one of {}, {} or {} must name the certificate's identity",
                    keys::DNS_NAMES,
                    keys::IP_SANS,
                    keys::URI_SANS
                ),
            });
        }
        (dns, ips, uris)
    }

    fn san_list<T>(
        &mut self,
        key: &str,
        templated: bool,
        check: impl Fn(&str) -> Result<T, String>,
        accepted: &str,
    ) -> Vec<T> {
        let value = if templated {
            self.templated(key)
        } else {
            self.get(key).map(str::to_owned)
        };
        let Some(value) = value else {
            return Vec::new();
        };
        let entries = split_plain(&value);
        if entries.len() > limits::MAX_SANS_PER_KIND {
            self.too_large(
                key,
                format!(
                    "{} entries; at most {} are allowed",
                    entries.len(),
                    limits::MAX_SANS_PER_KIND
                ),
            );
            return Vec::new();
        }
        let mut out = Vec::with_capacity(entries.len());
        for e in &entries {
            match check(e) {
                Ok(v) => out.push(v),
                Err(mut problem) => {
                    if !templated && e.contains('$') {
                        problem.push_str(" (variables are not expanded in this attribute)");
                    }
                    self.invalid(key, e, problem, accepted);
                }
            }
        }
        out
    }

    fn usages(&mut self) -> Vec<KeyUsage> {
        let Some(value) = self.get(keys::KEY_USAGES) else {
            return KeyUsage::DEFAULT.to_vec();
        };
        let accepted = || {
            let names: Vec<&str> = KeyUsage::ALL.iter().map(|u| u.as_str()).collect();
            format!(
                "accepted: comma-separated cert-manager usages: {}",
                names.join(", ")
            )
        };
        let entries = split_plain(value);
        if entries.is_empty() {
            self.invalid(keys::KEY_USAGES, value, "lists no usage", accepted());
            return Vec::new();
        }
        let mut out: Vec<KeyUsage> = Vec::new();
        for e in &entries {
            match e.parse::<KeyUsage>() {
                Ok(u) => {
                    if !out.contains(&u) {
                        out.push(u);
                    }
                }
                Err(_) => {
                    let problem = match nearest_usage(e) {
                        Some(n) => format!("not a cert-manager key usage (did you mean {n:?}?)"),
                        None => "not a cert-manager key usage".to_owned(),
                    };
                    self.invalid(keys::KEY_USAGES, e, problem, accepted());
                }
            }
        }
        out
    }

    fn go_duration(&mut self, key: &str) -> Option<Duration> {
        let value = self.get(key)?;
        const ACCEPTED: &str = "accepted: a positive Go duration such as 720h, 1h30m, 90m, 1.5h or 45s (units h, m, s, ms, us, ns; there is no d: write 24h per day)";
        match parse_go_duration(value) {
            Ok(d) if d.is_zero() => {
                self.invalid(key, value, "must be longer than zero", ACCEPTED);
                None
            }
            Ok(d) => Some(d),
            Err(DurationError::Negative) => {
                self.invalid(key, value, "must not be negative", ACCEPTED);
                None
            }
            Err(e) => {
                self.invalid(key, value, format!("not a Go duration: {e}"), ACCEPTED);
                None
            }
        }
    }

    /// `None` when given but invalid (already reported).
    fn duration(&mut self) -> Option<Duration> {
        if self.get(keys::DURATION).is_none() {
            return Some(self.opts.duration);
        }
        self.go_duration(keys::DURATION)
    }

    fn renew_before(&mut self, duration: Option<Duration>) -> Option<Duration> {
        let rb = self.go_duration(keys::RENEW_BEFORE)?;
        let duration = duration?;
        if rb >= duration {
            let why = format!(
                "renew-before ({}) must be shorter than the duration ({}): the certificate would be due for renewal as soon as it is issued",
                crate::format_go_duration(rb),
                crate::format_go_duration(duration)
            );
            if self.opts.tolerate_long_renew_before {
                self.warnings.push(format!(
                    "ignored {}: {why}; renewing at two thirds of the lifetime instead",
                    keys::RENEW_BEFORE
                ));
            } else {
                self.conflict(
                    keys::RENEW_BEFORE,
                    format!("{why}; shorten it, lengthen {}, or remove it to renew at two thirds of the lifetime", keys::DURATION),
                );
            }
            return None;
        }
        Some(rb)
    }

    fn key(&mut self) -> KeySpec {
        #[derive(Clone, Copy, PartialEq)]
        enum Alg {
            Rsa,
            Ecdsa,
            Ed25519,
        }
        let alg = match self.get(keys::KEY_ALGORITHM) {
            None => Some(Alg::Rsa),
            Some(v) if v.eq_ignore_ascii_case("rsa") => Some(Alg::Rsa),
            Some(v) if v.eq_ignore_ascii_case("ecdsa") => Some(Alg::Ecdsa),
            Some(v) if v.eq_ignore_ascii_case("ed25519") => Some(Alg::Ed25519),
            Some(v) => {
                self.invalid(
                    keys::KEY_ALGORITHM,
                    v,
                    "not a supported key algorithm",
                    "accepted: RSA (the default), ECDSA or Ed25519, in any case",
                );
                None
            }
        };
        let size = self.get(keys::KEY_SIZE);
        let algorithm = match alg {
            None | Some(Alg::Rsa) => {
                let bits = match size {
                    None => 2048,
                    Some(s) => match s.parse::<u16>() {
                        Ok(b)
                            if s.bytes().all(|c| c.is_ascii_digit())
                                && (2048..=8192).contains(&b) =>
                        {
                            b
                        }
                        _ if alg.is_none() => 2048,
                        _ => {
                            self.invalid(
                                keys::KEY_SIZE,
                                s,
                                "not a valid RSA key size",
                                "accepted for RSA: a number of bits from 2048 to 8192 (default 2048)",
                            );
                            2048
                        }
                    },
                };
                KeyAlgorithm::Rsa { bits }
            }
            Some(Alg::Ecdsa) => KeyAlgorithm::Ecdsa(match size {
                None | Some("256") => EcdsaCurve::P256,
                Some("384") => EcdsaCurve::P384,
                Some("521") => EcdsaCurve::P521,
                Some(s) => {
                    self.invalid(
                        keys::KEY_SIZE,
                        s,
                        "not an ECDSA curve size",
                        "accepted for ECDSA: 256 (the default), 384 or 521",
                    );
                    EcdsaCurve::P256
                }
            }),
            Some(Alg::Ed25519) => {
                if let Some(s) = size {
                    self.invalid(
                        keys::KEY_SIZE,
                        s,
                        "Ed25519 keys have a fixed size",
                        "remove key-size when key-algorithm is Ed25519",
                    );
                }
                KeyAlgorithm::Ed25519
            }
        };
        let default_encoding = if matches!(algorithm, KeyAlgorithm::Rsa { .. }) {
            KeyEncoding::Pkcs1
        } else {
            KeyEncoding::Pkcs8
        };
        let encoding = match self.get(keys::KEY_ENCODING) {
            None => default_encoding,
            Some(v) if v.eq_ignore_ascii_case("pkcs8") => KeyEncoding::Pkcs8,
            Some(v) if v.eq_ignore_ascii_case("pkcs1") => {
                if alg.is_some() && !matches!(algorithm, KeyAlgorithm::Rsa { .. }) {
                    self.conflict(
                        keys::KEY_ENCODING,
                        format!(
                            "PKCS1 can only encode RSA keys, and key-algorithm is {}; use PKCS8 or remove key-encoding",
                            algorithm.as_str()
                        ),
                    );
                    KeyEncoding::Pkcs8
                } else {
                    KeyEncoding::Pkcs1
                }
            }
            Some(v) => {
                self.invalid(
                    keys::KEY_ENCODING,
                    v,
                    "not a key encoding",
                    "accepted: PKCS1 (RSA only; the default for RSA) or PKCS8 (the default otherwise)",
                );
                default_encoding
            }
        };
        KeySpec {
            algorithm,
            encoding,
        }
    }

    fn file(&mut self, key: &'static str, default: &str) -> (String, bool) {
        let name = self.get(key).unwrap_or(default);
        let ok = match validate::file_path(name) {
            Ok(()) => true,
            Err(problem) => {
                self.invalid(
                    key,
                    name,
                    problem,
                    "accepted: a relative path inside the volume, such as tls.crt or certs/tls.crt",
                );
                false
            }
        };
        (name.to_owned(), ok && !self.too_large.contains(key))
    }

    fn files(&mut self) -> Files {
        let (certificate, cert_ok) =
            self.file(keys::CERTIFICATE_FILE, &self.opts.certificate_file.clone());
        let (private_key, key_ok) =
            self.file(keys::PRIVATE_KEY_FILE, &self.opts.private_key_file.clone());
        let (ca, ca_ok) = self.file(keys::CA_FILE, &self.opts.ca_file.clone());
        let mut checked: Vec<(&'static str, String)> = Vec::new();
        for (key, name, ok) in [
            (keys::CERTIFICATE_FILE, &certificate, cert_ok),
            (keys::PRIVATE_KEY_FILE, &private_key, key_ok),
            (keys::CA_FILE, &ca, ca_ok),
        ] {
            if ok {
                checked.push((key, name.clone()));
            }
        }
        let pkcs12 = self.pkcs12(&mut checked);
        let jks = self.jks(&mut checked);
        let credential_bundle = match self.get(keys::CREDENTIAL_BUNDLE_FILE) {
            Some(_) => {
                let (name, ok) = self.file(keys::CREDENTIAL_BUNDLE_FILE, "");
                if ok {
                    checked.push((keys::CREDENTIAL_BUNDLE_FILE, name.clone()));
                }
                Some(name)
            }
            None => None,
        };
        // Pairwise distinct, and none the directory of another.
        for i in 0..checked.len() {
            for j in 0..i {
                let (ka, a) = &checked[j];
                let (kb, b) = &checked[i];
                if a == b {
                    self.conflict(
                        kb,
                        format!("{b:?} is also the file name of {ka}; give each file its own name"),
                    );
                } else if b.starts_with(&format!("{a}/")) || a.starts_with(&format!("{b}/")) {
                    self.conflict(
                        kb,
                        format!(
                            "{b:?} and {ka}'s {a:?} would need the same path as both a file and a directory"
                        ),
                    );
                }
            }
        }
        Files {
            certificate,
            private_key,
            ca,
            pkcs12,
            jks,
            credential_bundle,
        }
    }

    /// `Some(true)` when the keystore is enabled, `Some(false)` when disabled or the
    /// switch is invalid (reported), `None` when absent; reports or warns about
    /// dependent attributes given without it.
    fn keystore_enabled(&mut self, k: &KeystoreKeys) -> bool {
        let enable = self.get(k.enable);
        let enabled = match enable {
            None => None,
            Some(v) if v.eq_ignore_ascii_case("true") => Some(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Some(false),
            Some(v) => {
                self.invalid(
                    k.enable,
                    v,
                    "not a boolean",
                    "accepted: \"true\" or \"false\"",
                );
                Some(false)
            }
        };
        match enabled {
            None => {
                for &key in k.dependent {
                    if self.attrs.contains_key(key) {
                        self.conflict(
                            key,
                            format!(
                                "only used with {}: \"true\"; set that to write a {}, or remove this attribute",
                                k.enable, k.what
                            ),
                        );
                    }
                }
                false
            }
            Some(false) => {
                for &key in k.dependent {
                    if self.attrs.contains_key(key)
                        && enable.is_some_and(|v| v.eq_ignore_ascii_case("false"))
                    {
                        self.warnings
                            .push(format!("ignored {key}: {} is \"false\"", k.enable));
                    }
                }
                false
            }
            Some(true) => true,
        }
    }

    /// The keystore's password, inline or from the volume's Secret.
    fn keystore_password(&mut self, k: &KeystoreKeys) -> (Password, PasswordSource) {
        let inline = self.get(k.password);
        let secret_key = self.get(k.secret_key);
        let empty = || (Password::new(String::new()), PasswordSource::Inline);
        match (inline, secret_key) {
            (Some(_), Some(_)) => {
                self.conflict(
                    k.secret_key,
                    format!(
                        "{} is also set; give the password once, either inline in {} or from the volume's Secret with {}, and remove the other",
                        k.password, k.password, k.secret_key
                    ),
                );
                empty()
            }
            (Some(p), None) => (Password::new(p), PasswordSource::Inline),
            (None, Some(name)) => {
                if let Err(problem) = validate::secret_data_key(name) {
                    self.invalid(
                        k.secret_key,
                        name,
                        problem,
                        "accepted: a key of the Secret's data: letters, digits, '-', '_' and '.', at most 253 bytes",
                    );
                    return empty();
                }
                match self.secrets.get(name) {
                    Some(p) if !p.is_empty() => (
                        Password::new(*p),
                        PasswordSource::Secret {
                            key: name.to_owned(),
                        },
                    ),
                    Some(_) => {
                        self.conflict(
                            k.secret_key,
                            format!(
                                "the volume's Secret has the key {name:?} but its value is empty; put the {} password there",
                                k.what
                            ),
                        );
                        empty()
                    }
                    None => {
                        let hint = if self.secrets.is_empty() {
                            "no Secret data reached the driver: set the volume's nodePublishSecretRef to a Secret in the Pod's namespace".to_owned()
                        } else {
                            let mut names: Vec<&str> =
                                self.secrets.keys().copied().take(10).collect();
                            names.sort_unstable();
                            format!("its keys are {}", names.join(", "))
                        };
                        self.conflict(
                            k.secret_key,
                            format!(
                                "the volume's nodePublishSecretRef Secret has no key {name:?} ({hint}); add the key or name one it has"
                            ),
                        );
                        empty()
                    }
                }
            }
            (None, None) => {
                if !self.too_large.contains(k.password) && !self.too_large.contains(k.secret_key) {
                    self.errors.push(AttributeError::Required {
                        attribute: k.password.to_owned(),
                        hint: format!(
                            "{} is \"true\", and the keystore needs a non-empty password; give it here or name a key of the volume's nodePublishSecretRef Secret in {}",
                            k.enable, k.secret_key
                        ),
                    });
                }
                empty()
            }
        }
    }

    fn pkcs12(&mut self, checked: &mut Vec<(&'static str, String)>) -> Option<Pkcs12> {
        if !self.keystore_enabled(&PKCS12_KEYS) {
            return None;
        }
        let (filename, ok) = self.file(keys::PKCS12_FILENAME, DEFAULT_PKCS12_FILENAME);
        if ok {
            checked.push((keys::PKCS12_FILENAME, filename.clone()));
        }
        let (password, password_source) = self.keystore_password(&PKCS12_KEYS);
        let profile = match self.get(keys::PKCS12_PROFILE) {
            None => self.opts.pkcs12_profile,
            Some(v) => match Pkcs12Profile::ALL
                .iter()
                .find(|p| p.as_str().eq_ignore_ascii_case(v))
            {
                Some(p) => *p,
                None => {
                    let names: Vec<&str> = Pkcs12Profile::ALL.iter().map(|p| p.as_str()).collect();
                    self.invalid(
                        keys::PKCS12_PROFILE,
                        v,
                        "not a PKCS#12 profile",
                        format!(
                            "accepted: {} (default {}); LegacyRC2 and LegacyDES are for old Java (before 8u301/11.0.12)",
                            names.join(", "),
                            self.opts.pkcs12_profile.as_str()
                        ),
                    );
                    self.opts.pkcs12_profile
                }
            },
        };
        let truststore_filename = match self.get(keys::PKCS12_TRUSTSTORE_FILENAME) {
            Some(_) => {
                let (name, ok) = self.file(keys::PKCS12_TRUSTSTORE_FILENAME, "");
                if ok {
                    checked.push((keys::PKCS12_TRUSTSTORE_FILENAME, name.clone()));
                }
                Some(name)
            }
            None => None,
        };
        Some(Pkcs12 {
            filename,
            password,
            password_source,
            profile,
            truststore_filename,
        })
    }

    fn jks(&mut self, checked: &mut Vec<(&'static str, String)>) -> Option<Jks> {
        if !self.keystore_enabled(&JKS_KEYS) {
            return None;
        }
        let (filename, ok) = self.file(keys::JKS_FILENAME, DEFAULT_JKS_FILENAME);
        if ok {
            checked.push((keys::JKS_FILENAME, filename.clone()));
        }
        let (truststore_filename, ok) = self.file(
            keys::JKS_TRUSTSTORE_FILENAME,
            DEFAULT_JKS_TRUSTSTORE_FILENAME,
        );
        if ok {
            checked.push((keys::JKS_TRUSTSTORE_FILENAME, truststore_filename.clone()));
        }
        let (password, password_source) = self.keystore_password(&JKS_KEYS);
        let alias = self.get(keys::JKS_ALIAS).unwrap_or(DEFAULT_JKS_ALIAS);
        const ACCEPTED: &str = "accepted: printable text other than ca and ca-<n>, which name the CA's entries (default certificate); Java reads aliases in lower case";
        let lower = alias.to_lowercase();
        if alias.chars().any(char::is_control) {
            self.invalid(
                keys::JKS_ALIAS,
                alias,
                "contains control characters",
                ACCEPTED,
            );
        } else if lower == JKS_CA_ALIAS
            || lower
                .strip_prefix("ca-")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        {
            self.invalid(
                keys::JKS_ALIAS,
                alias,
                "is the alias of the CA's trusted-certificate entry",
                ACCEPTED,
            );
        }
        Some(Jks {
            filename,
            password,
            password_source,
            alias: alias.to_owned(),
            truststore_filename,
        })
    }

    fn fs_group(&mut self) -> Option<u32> {
        let v = self.get(keys::FS_GROUP)?;
        match v.parse::<u32>() {
            Ok(g) if g > 0 && v.bytes().all(|b| b.is_ascii_digit()) => Some(g),
            _ => {
                self.invalid(
                    keys::FS_GROUP,
                    v,
                    "not a group ID",
                    "accepted: a whole number from 1 to 4294967295",
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests;
