//! Volume context to [`CertificateSpec`]: the entry points, the parser's
//! reporting and classification, and the issuer here; the other parts of a
//! spec in the submodules (`names`: subject and SANs; `key`: usages,
//! lifetime and key; `files`: file names, keystore and group).

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

fn shown(key: &str, value: &str) -> String {
    if keys::SECRET_KEYS.contains(&key) {
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
        let ips = self
            .opts
            .pod_ips
            .as_deref()
            .and_then(template::PodIpVars::new);
        match template::expand(raw, &self.pod, ips.as_ref()) {
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
                if validate::is_cert_manager_annotation(key)
                    && !self.opts.allow_cert_manager_annotations
                {
                    self.invalid(
                        key,
                        value,
                        "cert-manager and its issuers act on cert-manager.io/ and *.cert-manager.io/ \
                         annotations of a CertificateRequest, so a Pod may not set them",
                        "accepted: annotation keys outside cert-manager.io (the node's \
                         administrator may allow these with --allow-cert-manager-annotations)",
                    );
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
        let trust_bundle = self.trust_bundle();
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
            trust_bundle,
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
}

mod files;
mod key;
mod names;
#[cfg(test)]
mod tests;
mod trust;
