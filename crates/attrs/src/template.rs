//! `${POD_NAME}`-style variables in attribute values.
//!
//! Same forms as Go's `os.Expand` in the Go driver (`${VAR}` and `$VAR`), with
//! three differences that turn silent surprises into errors or make values
//! expressible: `$$` is a literal `$` (Go rejects it as the undefined variable
//! `$`); `${}` and an unterminated `${` are errors (Go drops them silently);
//! a variable whose pod information the kubelet did not send is an error (Go
//! substitutes an empty string). A `$` followed by anything else is kept.

use crate::keys;
use crate::spec::PodInfo;

/// The variables, in the order error messages list them.
pub const VARIABLES: [&str; 4] = [
    "POD_NAME",
    "POD_NAMESPACE",
    "POD_UID",
    "SERVICE_ACCOUNT_NAME",
];

fn lookup<'a>(name: &str, pod: &'a PodInfo) -> Option<(Option<&'a str>, &'static str)> {
    Some(match name {
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
    if name == "POD_IP" {
        return "unknown variable ${POD_IP} (the Pod's IP address is not known when its volumes are mounted)".to_owned();
    }
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
pub(crate) fn expand(value: &str, pod: &PodInfo) -> Result<String, String> {
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
        match lookup(name, pod) {
            None => problems.push(unknown(name)),
            Some((Some(v), _)) if !v.is_empty() => out.push_str(v),
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
        assert_eq!(expand("${POD_NAME}", &p).unwrap(), "web-0");
        assert_eq!(expand("$POD_NAME", &p).unwrap(), "web-0");
        assert_eq!(expand("${POD_NAMESPACE}", &p).unwrap(), "shop");
        assert_eq!(expand("$POD_NAMESPACE.svc", &p).unwrap(), "shop.svc");
        assert_eq!(
            expand("${POD_UID}", &p).unwrap(),
            "0f6c7a4e-1d2b-4c3a-9e8f-7a6b5c4d3e2f"
        );
        assert_eq!(expand("$POD_UID", &p).unwrap(), p.uid.clone().unwrap());
        assert_eq!(expand("${SERVICE_ACCOUNT_NAME}", &p).unwrap(), "web");
        assert_eq!(expand("sa-$SERVICE_ACCOUNT_NAME", &p).unwrap(), "sa-web");
        assert_eq!(
            expand("${POD_NAME}.${POD_NAMESPACE}.svc.cluster.local", &p).unwrap(),
            "web-0.shop.svc.cluster.local"
        );
    }

    #[test]
    fn literal_dollars() {
        let p = pod();
        assert_eq!(expand("a$$b", &p).unwrap(), "a$b");
        assert_eq!(expand("cost $", &p).unwrap(), "cost $");
        assert_eq!(expand("a$-b", &p).unwrap(), "a$-b");
        assert_eq!(expand("$$POD_NAME", &p).unwrap(), "$POD_NAME");
        assert_eq!(expand(&escape("$x$$y${z}"), &p).unwrap(), "$x$$y${z}");
    }

    #[test]
    fn unknown_variable_names_the_known_ones() {
        let err = expand("${POD_IP}", &pod()).unwrap_err();
        assert!(err.contains("unknown variable ${POD_IP}"), "{err}");
        assert!(
            accepted()
                .contains("${POD_NAME}, ${POD_NAMESPACE}, ${POD_UID}, ${SERVICE_ACCOUNT_NAME}"),
            "{err}"
        );
        let err = expand("$POD_NAMESAPCE", &pod()).unwrap_err();
        assert!(err.contains("did you mean ${POD_NAMESPACE}?"), "{err}");
        let err = expand("$pod_name", &pod()).unwrap_err();
        assert!(err.contains("did you mean ${POD_NAME}?"), "{err}");
    }

    #[test]
    fn malformed_references() {
        let err = expand("a${POD_NAME", &pod()).unwrap_err();
        assert!(err.contains("is not closed"), "{err}");
        let err = expand("a${}b", &pod()).unwrap_err();
        assert!(err.contains("names no variable"), "{err}");
        let err = expand("$X ${Y}", &pod()).unwrap_err();
        assert!(err.contains("${X}") && err.contains("${Y}"), "{err}");
    }

    #[test]
    fn missing_pod_info_is_explained() {
        let err = expand("${POD_NAME}", &PodInfo::default()).unwrap_err();
        assert!(err.contains("csi.storage.k8s.io/pod.name"), "{err}");
        assert!(err.contains("podInfoOnMount"), "{err}");
    }
}
