//! The trust bundle source: `cluster-trust-bundle-*` and `trust-bundle-*`.

#[allow(clippy::wildcard_imports)]
use super::*;
use crate::spec::{TrustBundle, TrustSource};

/// trust-manager's default target key.
pub(crate) const DEFAULT_CONFIGMAP_KEY: &str = "trust-bundle.pem";

/// At most this many `k=v` terms in a label selector.
const MAX_SELECTOR_TERMS: usize = 16;

/// The source attributes, for the "at most one" check.
const SOURCES: &[&str] = &[
    keys::CLUSTER_TRUST_BUNDLE_NAME,
    keys::CLUSTER_TRUST_BUNDLE_SIGNER_NAME,
    keys::TRUST_BUNDLE_CONFIGMAP,
];

/// A label's name part (after an optional `prefix/`): at most 63 bytes,
/// alphanumerics, `-`, `_`, `.`, starting and ending with an alphanumeric.
/// The same rule is Kubernetes' for label values, which may also be empty.
fn label_name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("is empty".to_owned());
    }
    if s.len() > 63 {
        return Err(format!("is {} bytes; at most 63 are allowed", s.len()));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!("contains {c:?}"));
    }
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !alnum(s.chars().next()) || !alnum(s.chars().last()) {
        return Err("must start and end with a letter or digit".to_owned());
    }
    Ok(())
}

/// A label key: `[prefix/]name`, the prefix a DNS subdomain.
fn label_key(s: &str) -> Result<(), String> {
    match s.split_once('/') {
        Some((prefix, name)) => {
            validate::dns1123_subdomain(prefix).map_err(|p| format!("its prefix {p}"))?;
            label_name(name).map_err(|p| format!("its name {p}"))
        }
        None => label_name(s),
    }
}

/// Parses `k=v,k2=v2` (as `kubectl -l` takes equality terms). `==` is accepted as
/// `=`; set-based terms (`in`, `!=`, `!k`) are not.
pub(crate) fn parse_label_selector(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    if s.trim().is_empty() {
        return Ok(out);
    }
    let terms: Vec<&str> = s.split(',').collect();
    if terms.len() > MAX_SELECTOR_TERMS {
        return Err(format!(
            "has {} terms; at most {MAX_SELECTOR_TERMS} are allowed",
            terms.len()
        ));
    }
    for term in terms {
        let term = term.trim();
        if term.contains("!=") {
            return Err(format!(
                "term {term:?} uses !=; only k=v terms are supported"
            ));
        }
        let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) else {
            return Err(format!("term {term:?} is not k=v"));
        };
        let (k, v) = (k.trim(), v.trim());
        label_key(k).map_err(|p| format!("label key {k:?}: {p}"))?;
        if !v.is_empty() {
            label_name(v).map_err(|p| format!("label value {v:?}: {p}"))?;
        }
        if out.insert(k.to_owned(), v.to_owned()).is_some() {
            return Err(format!("label key {k:?} is given twice"));
        }
    }
    Ok(out)
}

/// A `ClusterTrustBundle` name, as Kubernetes checks it: a path segment (no `/`,
/// no `%`, not `.` or `..`), at most 253 bytes. Names of bundles with a signer
/// hold `:`, so this is not a DNS subdomain.
fn cluster_trust_bundle_name(s: &str) -> Result<(), String> {
    if s.len() > 253 {
        return Err(format!("is {} bytes; at most 253 are allowed", s.len()));
    }
    if s == "." || s == ".." {
        return Err("is not an object name".to_owned());
    }
    if let Some(c) = s
        .chars()
        .find(|c| matches!(c, '/' | '%') || c.is_whitespace())
    {
        return Err(format!("contains {c:?}, which an object name cannot"));
    }
    Ok(())
}

/// A signer name: `<DNS subdomain>/<path>`, as Kubernetes' signer names are.
fn signer_name(s: &str) -> Result<(), String> {
    let Some((domain, path)) = s.split_once('/') else {
        return Err("has no '/'; a signer name is <domain>/<name>".to_owned());
    };
    validate::dns1123_subdomain(domain).map_err(|p| format!("its domain part {p}"))?;
    if path.is_empty() || path.len() > 253 {
        return Err("its name part must be 1 to 253 bytes".to_owned());
    }
    if let Some(c) = path.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("contains {c:?}"));
    }
    Ok(())
}

impl Parser<'_> {
    pub(super) fn trust_bundle(&mut self) -> Option<TrustBundle> {
        let optional = self.bool_attr(keys::TRUST_BUNDLE_OPTIONAL);
        let given: Vec<&str> = SOURCES
            .iter()
            .copied()
            .filter(|k| self.get(k).is_some())
            .collect();
        if given.len() > 1 {
            self.conflict(
                given[1],
                format!(
                    "a volume takes at most one trust bundle source, and {} is also set; keep one of {}",
                    given[0],
                    given.join(", ")
                ),
            );
        }
        if self.get(keys::CLUSTER_TRUST_BUNDLE_SIGNER_NAME).is_none()
            && self
                .get(keys::CLUSTER_TRUST_BUNDLE_LABEL_SELECTOR)
                .is_some()
        {
            self.conflict(
                keys::CLUSTER_TRUST_BUNDLE_LABEL_SELECTOR,
                format!(
                    "selects among the bundles of a signer; set {} too, or remove it",
                    keys::CLUSTER_TRUST_BUNDLE_SIGNER_NAME
                ),
            );
        }
        if self.get(keys::TRUST_BUNDLE_CONFIGMAP).is_none()
            && self.get(keys::TRUST_BUNDLE_CONFIGMAP_KEY).is_some()
        {
            self.conflict(
                keys::TRUST_BUNDLE_CONFIGMAP_KEY,
                format!(
                    "names a key of the trust bundle ConfigMap; set {} too, or remove it",
                    keys::TRUST_BUNDLE_CONFIGMAP
                ),
            );
        }
        if given.is_empty() && self.get(keys::TRUST_BUNDLE_OPTIONAL).is_some() {
            self.conflict(
                keys::TRUST_BUNDLE_OPTIONAL,
                format!(
                    "applies to a trust bundle source; set one of {} too, or remove it",
                    SOURCES.join(", ")
                ),
            );
        }
        let mut sources = Vec::new();
        if let Some(name) = self.get(keys::CLUSTER_TRUST_BUNDLE_NAME) {
            if let Err(p) = cluster_trust_bundle_name(name) {
                self.invalid(
                    keys::CLUSTER_TRUST_BUNDLE_NAME,
                    name,
                    format!("not a ClusterTrustBundle name: it {p}"),
                    "accepted: a ClusterTrustBundle's name, e.g. example.com:my-signer:v1",
                );
            }
            sources.push(TrustSource::ClusterTrustBundleName(name.to_owned()));
        }
        if let Some(signer) = self.get(keys::CLUSTER_TRUST_BUNDLE_SIGNER_NAME) {
            if let Err(p) = signer_name(signer) {
                self.invalid(
                    keys::CLUSTER_TRUST_BUNDLE_SIGNER_NAME,
                    signer,
                    format!("not a signer name: it {p}"),
                    "accepted: a signer name such as example.com/my-signer",
                );
            }
            let selector = self
                .get(keys::CLUSTER_TRUST_BUNDLE_LABEL_SELECTOR)
                .unwrap_or("");
            let label_selector = match parse_label_selector(selector) {
                Ok(s) => s,
                Err(p) => {
                    self.invalid(
                        keys::CLUSTER_TRUST_BUNDLE_LABEL_SELECTOR,
                        selector,
                        format!("not a label selector: it {p}"),
                        "accepted: k=v terms separated by commas, as kubectl -l takes, e.g. app=web,tier=prod (empty selects all)",
                    );
                    BTreeMap::new()
                }
            };
            sources.push(TrustSource::ClusterTrustBundleSigner {
                signer_name: signer.to_owned(),
                label_selector,
            });
        }
        if let Some(name) = self.get(keys::TRUST_BUNDLE_CONFIGMAP) {
            if let Err(p) = validate::dns1123_subdomain(name) {
                self.invalid(
                    keys::TRUST_BUNDLE_CONFIGMAP,
                    name,
                    format!("not a ConfigMap name: it {p}"),
                    "accepted: the name of a ConfigMap in the Pod's namespace, e.g. a trust-manager Bundle's name",
                );
            }
            let key = self
                .get(keys::TRUST_BUNDLE_CONFIGMAP_KEY)
                .unwrap_or(DEFAULT_CONFIGMAP_KEY);
            if let Err(p) = validate::secret_data_key(key) {
                self.invalid(
                    keys::TRUST_BUNDLE_CONFIGMAP_KEY,
                    key,
                    format!("not a ConfigMap key: it {p}"),
                    "accepted: a ConfigMap data key such as trust-bundle.pem (the default)",
                );
            }
            sources.push(TrustSource::ConfigMap {
                name: name.to_owned(),
                key: key.to_owned(),
            });
        }
        let source = sources.into_iter().next()?;
        Some(TrustBundle { source, optional })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AttributeErrors, parse};

    fn with(extra: &[(&str, &str)]) -> Result<CertificateSpec, AttributeErrors> {
        let mut ctx = vec![
            (keys::ISSUER_NAME, "ca"),
            (keys::DNS_NAMES, "a.example.com"),
        ];
        ctx.extend_from_slice(extra);
        parse(ctx)
    }

    #[test]
    fn no_source_is_todays_behaviour() {
        assert_eq!(with(&[]).unwrap().trust_bundle, None);
    }

    #[test]
    fn each_source_parses_and_renders_back() {
        let by_name = with(&[(keys::CLUSTER_TRUST_BUNDLE_NAME, "example.com:s:v1")]).unwrap();
        assert_eq!(
            by_name.trust_bundle,
            Some(TrustBundle::new(TrustSource::ClusterTrustBundleName(
                "example.com:s:v1".into()
            )))
        );
        let by_signer = with(&[
            (keys::CLUSTER_TRUST_BUNDLE_SIGNER_NAME, "example.com/s"),
            (
                keys::CLUSTER_TRUST_BUNDLE_LABEL_SELECTOR,
                "a=b, example.com/c==d",
            ),
            (keys::TRUST_BUNDLE_OPTIONAL, "true"),
        ])
        .unwrap();
        let t = by_signer.trust_bundle.clone().unwrap();
        assert!(t.optional);
        assert_eq!(
            t.source,
            TrustSource::ClusterTrustBundleSigner {
                signer_name: "example.com/s".into(),
                label_selector: [("a", "b"), ("example.com/c", "d")]
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            }
        );
        let by_cm = with(&[(keys::TRUST_BUNDLE_CONFIGMAP, "my-bundle")]).unwrap();
        assert_eq!(
            by_cm.trust_bundle.clone().unwrap().source,
            TrustSource::ConfigMap {
                name: "my-bundle".into(),
                key: DEFAULT_CONFIGMAP_KEY.into()
            }
        );
        for spec in [by_name, by_signer, by_cm] {
            assert_eq!(parse(&spec.to_volume_context()).unwrap(), spec);
        }
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = with(&[
            (keys::CLUSTER_TRUST_BUNDLE_NAME, "a/b"),
            (keys::TRUST_BUNDLE_CONFIGMAP, "Not_A_Name"),
            (keys::TRUST_BUNDLE_CONFIGMAP_KEY, "bad key"),
            (keys::CLUSTER_TRUST_BUNDLE_LABEL_SELECTOR, "x in (y)"),
            (keys::TRUST_BUNDLE_OPTIONAL, "maybe"),
        ])
        .unwrap_err();
        let text = err.to_string();
        for key in [
            keys::CLUSTER_TRUST_BUNDLE_NAME,
            keys::TRUST_BUNDLE_CONFIGMAP,
            keys::TRUST_BUNDLE_CONFIGMAP_KEY,
            keys::CLUSTER_TRUST_BUNDLE_LABEL_SELECTOR,
            keys::TRUST_BUNDLE_OPTIONAL,
        ] {
            assert!(err.mentions(key), "{key} not in {text}");
        }
        assert!(text.contains("at most one trust bundle source"), "{text}");
        assert!(
            text.contains("set csi.cert-manager.io/cluster-trust-bundle-signer-name too"),
            "{text}"
        );
    }

    #[test]
    fn label_selectors() {
        assert!(parse_label_selector("").unwrap().is_empty());
        assert_eq!(parse_label_selector("a=").unwrap()["a"], "");
        for bad in ["a", "a!=b", "a=b,a=c", "-a=b", "a=b c", "x in (y)"] {
            assert!(parse_label_selector(bad).is_err(), "{bad}");
        }
        let many = vec!["a=b"; MAX_SELECTOR_TERMS + 1].join(",");
        assert!(parse_label_selector(&many).unwrap_err().contains("at most"));
    }

    #[test]
    fn matching_a_cluster_trust_bundle() {
        let labels: BTreeMap<String, String> =
            [("a".to_owned(), "b".to_owned())].into_iter().collect();
        let src = TrustSource::ClusterTrustBundleSigner {
            signer_name: "example.com/s".into(),
            label_selector: labels.clone(),
        };
        assert!(src.matches_cluster_trust_bundle("x", Some("example.com/s"), &labels));
        assert!(!src.matches_cluster_trust_bundle("x", Some("example.com/s"), &BTreeMap::new()));
        assert!(!src.matches_cluster_trust_bundle("x", Some("example.com/t"), &labels));
        let by_name = TrustSource::ClusterTrustBundleName("x".into());
        assert!(by_name.matches_cluster_trust_bundle("x", None, &BTreeMap::new()));
        assert!(!by_name.matches_cluster_trust_bundle("y", None, &BTreeMap::new()));
    }
}
