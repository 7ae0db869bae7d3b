//! `${POD_NAME}`-style variables in attribute values.
//!
//! Same forms as Go's `os.Expand` in the Go driver (`${VAR}` and `$VAR`), with
//! three differences that turn silent surprises into errors or make values
//! expressible: `$$` is a literal `$` (Go rejects it as the undefined variable
//! `$`); `${}` and an unterminated `${` are errors (Go drops them silently);
//! a variable whose pod information the kubelet did not send is an error (Go
//! substitutes an empty string). A `$` followed by anything else is kept.
//!
//! `${POD_IP}` (the Pod's primary IP) and `${POD_IPS}` (all of them,
//! comma-joined, IPv4 first) come from the Kubernetes API, not the volume
//! context: the caller passes them in [`ParseOptions::pod_ips`](crate::ParseOptions::pod_ips)
//! once the Pod has an address.

use std::net::IpAddr;

use crate::keys;
use crate::spec::PodInfo;

/// The variables, in the order error messages list them.
pub const VARIABLES: [&str; 6] = [
    "POD_NAME",
    "POD_NAMESPACE",
    "POD_UID",
    "SERVICE_ACCOUNT_NAME",
    "POD_IP",
    "POD_IPS",
];

/// The templated attributes that may name `${POD_IP}` or `${POD_IPS}`.
const POD_IP_KEYS: [&str; 4] = [
    keys::IP_SANS,
    keys::DNS_NAMES,
    keys::URI_SANS,
    keys::COMMON_NAME,
];

/// Whether a volume context uses `${POD_IP}` or `${POD_IPS}` (in `ip-sans`,
/// `dns-names`, `uri-sans` or `common-name`), so its issuance must wait for
/// the Pod's IP address.
pub fn uses_pod_ip<'a>(context: impl IntoIterator<Item = (&'a String, &'a String)>) -> bool {
    context.into_iter().any(|(k, v)| {
        POD_IP_KEYS.contains(&k.as_str())
            && (v.contains("${POD_IP}") || v.contains("${POD_IPS}") || v.contains("$POD_IP"))
    })
}

/// The Pod's addresses as the two variables show them: the primary, and all
/// of them comma-joined with IPv4 first.
pub(crate) struct PodIpVars {
    primary: String,
    all: String,
}

impl PodIpVars {
    pub(crate) fn new(ips: &[IpAddr]) -> Option<Self> {
        let primary = ips.first()?.to_string();
        let mut sorted: Vec<&IpAddr> = ips.iter().collect();
        sorted.sort_by_key(|ip| !ip.is_ipv4());
        let all = sorted
            .iter()
            .map(|ip| ip.to_string())
            .collect::<Vec<_>>()
            .join(",");
        Some(PodIpVars { primary, all })
    }
}

const POD_IP_UNKNOWN: &str = "the Pod's IP address is not known yet (it is assigned after the \
    volumes are mounted; the driver fills it in only when started with --continue-on-not-ready, \
    which mounts the volume first and issues once the Pod has an address)";

fn lookup<'a>(
    name: &str,
    pod: &'a PodInfo,
    ips: Option<&'a PodIpVars>,
) -> Option<(Option<&'a str>, &'static str)> {
    Some(match name {
        "POD_IP" => (ips.map(|i| i.primary.as_str()), POD_IP_UNKNOWN),
        "POD_IPS" => (ips.map(|i| i.all.as_str()), POD_IP_UNKNOWN),
        "POD_NAME" => (pod.name.as_deref(), keys::POD_NAME),
        "POD_NAMESPACE" => (pod.namespace.as_deref(), keys::POD_NAMESPACE),
        "POD_UID" => (pod.uid.as_deref(), keys::POD_UID),
        "SERVICE_ACCOUNT_NAME" => (
            pod.service_account_name.as_deref(),
            keys::SERVICE_ACCOUNT_NAME,
        ),
        _ => return None,
    })
}

/// What a templated value accepts, for error messages.
pub(crate) fn accepted() -> String {
    format!(
        "known variables: {} (write $$ for a literal $)",
        VARIABLES.map(|v| format!("${{{v}}}")).join(", ")
    )
}

fn unknown(name: &str) -> String {
    let nearest = VARIABLES
        .iter()
        .map(|v| (strsim::levenshtein(&name.to_ascii_uppercase(), v), *v))
        .min()
        .filter(|(d, _)| *d <= 3)
        .map(|(_, v)| format!(" (did you mean ${{{v}}}?)"))
        .unwrap_or_default();
    format!("unknown variable ${{{name}}}{nearest}")
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Expands the variables in `value`. On error, returns every problem found,
/// joined into one sentence that ends with the known variables.
pub(crate) fn expand(
    value: &str,
    pod: &PodInfo,
    ips: Option<&PodIpVars>,
) -> Result<String, String> {
    if !value.contains('$') {
        return Ok(value.to_owned());
    }
    let mut out = String::with_capacity(value.len());
    let mut problems: Vec<String> = Vec::new();
    let mut rest = value;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let (name, consumed) = if let Some(inner) = after.strip_prefix('{') {
            match inner.find('}') {
                None => {
                    problems.push(format!(
                        "\"${{\" at {:?} is not closed with '}}'",
                        truncate(&rest[pos..], 20)
                    ));
                    rest = "";
                    break;
                }
                Some(0) => {
                    problems.push("\"${}\" names no variable".to_owned());
                    rest = &inner[1..];
                    continue;
                }
                Some(end) => (&inner[..end], end + 2),
            }
        } else if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
            continue;
        } else {
            let len = after.find(|c| !is_name_char(c)).unwrap_or(after.len());
            if len == 0 {
                out.push('$');
                rest = after;
                continue;
            }
            (&after[..len], len)
        };
        rest = &after[consumed..];
        match lookup(name, pod, ips) {
            None => problems.push(unknown(name)),
            Some((Some(v), _)) if !v.is_empty() => out.push_str(v),
            Some((_, POD_IP_UNKNOWN)) => {
                problems.push(format!("${{{name}}}: {POD_IP_UNKNOWN}"));
            }
            Some((_, key)) => problems.push(format!(
                "${{{name}}} needs {key} in the volume context, which the kubelet sends only \
                 when the CSIDriver object sets podInfoOnMount: true"
            )),
        }
    }
    out.push_str(rest);
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems.join(", "))
    }
}

/// Escapes `$` so that [`expand`] gives `value` back unchanged.
pub(crate) fn escape(value: &str) -> String {
    value.replace('$', "$$")
}

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_t(value: &str, pod: &PodInfo) -> Result<String, String> {
        expand(value, pod, None)
    }

    #[test]
    fn pod_ip_variables_come_from_the_options() {
        let ips: Vec<IpAddr> = vec!["fd00::5".parse().unwrap(), "10.0.0.5".parse().unwrap()];
        let vars = PodIpVars::new(&ips).unwrap();
        let p = pod();
        assert_eq!(expand("${POD_IP}", &p, Some(&vars)).unwrap(), "fd00::5");
        assert_eq!(
            expand("${POD_IPS}", &p, Some(&vars)).unwrap(),
            "10.0.0.5,fd00::5"
        );
        let err = expand("${POD_IP}", &p, None).unwrap_err();
        assert!(err.contains("--continue-on-not-ready"), "{err}");
        assert!(PodIpVars::new(&[]).is_none());
        let ctx: std::collections::BTreeMap<String, String> =
            [(keys::IP_SANS.to_owned(), "${POD_IP}".to_owned())].into();
        assert!(uses_pod_ip(&ctx));
        let ctx: std::collections::BTreeMap<String, String> =
            [(keys::DNS_NAMES.to_owned(), "${POD_NAME}".to_owned())].into();
        assert!(!uses_pod_ip(&ctx));
    }

    fn pod() -> PodInfo {
        PodInfo {
            name: Some("web-0".into()),
            namespace: Some("shop".into()),
            uid: Some("0f6c7a4e-1d2b-4c3a-9e8f-7a6b5c4d3e2f".into()),
            service_account_name: Some("web".into()),
            ephemeral: Some(true),
        }
    }

    #[test]
    fn every_variable_in_both_forms() {
        let p = pod();
        assert_eq!(expand_t("${POD_NAME}", &p).unwrap(), "web-0");
        assert_eq!(expand_t("$POD_NAME", &p).unwrap(), "web-0");
        assert_eq!(expand_t("${POD_NAMESPACE}", &p).unwrap(), "shop");
        assert_eq!(expand_t("$POD_NAMESPACE.svc", &p).unwrap(), "shop.svc");
        assert_eq!(
            expand_t("${POD_UID}", &p).unwrap(),
            "0f6c7a4e-1d2b-4c3a-9e8f-7a6b5c4d3e2f"
        );
        assert_eq!(expand_t("$POD_UID", &p).unwrap(), p.uid.clone().unwrap());
        assert_eq!(expand_t("${SERVICE_ACCOUNT_NAME}", &p).unwrap(), "web");
        assert_eq!(expand_t("sa-$SERVICE_ACCOUNT_NAME", &p).unwrap(), "sa-web");
        assert_eq!(
            expand_t("${POD_NAME}.${POD_NAMESPACE}.svc.cluster.local", &p).unwrap(),
            "web-0.shop.svc.cluster.local"
        );
    }

    #[test]
    fn literal_dollars() {
        let p = pod();
        assert_eq!(expand_t("a$$b", &p).unwrap(), "a$b");
        assert_eq!(expand_t("cost $", &p).unwrap(), "cost $");
        assert_eq!(expand_t("a$-b", &p).unwrap(), "a$-b");
        assert_eq!(expand_t("$$POD_NAME", &p).unwrap(), "$POD_NAME");
        assert_eq!(expand_t(&escape("$x$$y${z}"), &p).unwrap(), "$x$$y${z}");
    }

    #[test]
    fn unknown_variable_names_the_known_ones() {
        let err = expand_t("${POD_HOST}", &pod()).unwrap_err();
        assert!(err.contains("unknown variable ${POD_HOST}"), "{err}");
        assert!(
            accepted().contains(
                "${POD_NAME}, ${POD_NAMESPACE}, ${POD_UID}, ${SERVICE_ACCOUNT_NAME}, ${POD_IP}, ${POD_IPS}"
            ),
            "{err}"
        );
        let err = expand_t("$POD_NAMESAPCE", &pod()).unwrap_err();
        assert!(err.contains("did you mean ${POD_NAMESPACE}?"), "{err}");
        let err = expand_t("$pod_name", &pod()).unwrap_err();
        assert!(err.contains("did you mean ${POD_NAME}?"), "{err}");
    }

    #[test]
    fn malformed_references() {
        let err = expand_t("a${POD_NAME", &pod()).unwrap_err();
        assert!(err.contains("is not closed"), "{err}");
        let err = expand_t("a${}b", &pod()).unwrap_err();
        assert!(err.contains("names no variable"), "{err}");
        let err = expand_t("$X ${Y}", &pod()).unwrap_err();
        assert!(err.contains("${X}") && err.contains("${Y}"), "{err}");
    }

    #[test]
    fn missing_pod_info_is_explained() {
        let err = expand_t("${POD_NAME}", &PodInfo::default()).unwrap_err();
        assert!(err.contains("csi.storage.k8s.io/pod.name"), "{err}");
        assert!(err.contains("podInfoOnMount"), "{err}");
    }
}
