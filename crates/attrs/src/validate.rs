//! Syntax checks for names, SANs and file paths. Each returns a reason a
//! person can act on.

use crate::limits;

/// A Kubernetes DNS-1123 subdomain (object names, API groups).
pub(crate) fn dns1123_subdomain(s: &str) -> Result<(), String> {
    if s.len() > 253 {
        return Err("longer than 253 characters".into());
    }
    for label in s.split('.') {
        if label.is_empty() {
            return Err("has an empty dot-separated part".into());
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err("may only contain lower-case letters, digits, '-' and '.'".into());
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("parts may not start or end with '-'".into());
        }
    }
    Ok(())
}

/// A Kubernetes kind name: a letter, then letters and digits.
pub(crate) fn kind(s: &str) -> Result<(), String> {
    if s.len() > 63 {
        return Err("longer than 63 characters".into());
    }
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() => {}
        _ => return Err("must start with a letter".into()),
    }
    if !chars.all(|c| c.is_ascii_alphanumeric()) {
        return Err("may only contain letters and digits".into());
    }
    Ok(())
}

/// A DNS name for a SAN: ASCII labels of letters, digits, `-` and `_`, at
/// most 63 bytes each, 253 in all; the first label may be `*`.
pub(crate) fn dns_san(s: &str) -> Result<(), String> {
    if !s.is_ascii() {
        return Err("contains non-ASCII characters; write internationalised names in their xn-- (punycode) form".into());
    }
    if s.len() > limits::MAX_DNS_NAME_BYTES {
        return Err(format!(
            "longer than {} characters",
            limits::MAX_DNS_NAME_BYTES
        ));
    }
    for (i, label) in s.split('.').enumerate() {
        if label.is_empty() {
            return Err("has an empty label (a leading, trailing or doubled '.')".into());
        }
        if label == "*" && i == 0 {
            continue;
        }
        if label.len() > 63 {
            return Err(format!("label {label:?} is longer than 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "label {label:?} may only contain letters, digits, '-' and '_' ('*' only as the whole first label)"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label {label:?} starts or ends with '-'"));
        }
    }
    Ok(())
}

/// A URI SAN: an absolute URI (`scheme:rest`) without spaces or control
/// characters. Deliberately light (the value is kept verbatim, not
/// normalised); cert-manager and the issuer check the rest.
pub(crate) fn uri_san(s: &str) -> Result<(), String> {
    if s.len() > limits::MAX_URI_BYTES {
        return Err(format!("longer than {} characters", limits::MAX_URI_BYTES));
    }
    let Some((scheme, rest)) = s.split_once(':') else {
        return Err(
            "has no scheme; write an absolute URI such as spiffe://cluster.local/ns/default/sa/web"
                .into(),
        );
    };
    let mut sc = scheme.chars();
    let scheme_ok = sc.next().is_some_and(|c| c.is_ascii_alphabetic())
        && sc.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return Err(format!("{scheme:?} is not a URI scheme"));
    }
    if rest.is_empty() {
        return Err("has nothing after the scheme".into());
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains spaces or control characters".into());
    }
    Ok(())
}

/// A keystore password: at most `max` bytes (never more than
/// [`limits::MAX_PASSWORD_BYTES`](crate::limits::MAX_PASSWORD_BYTES)) of
/// printable text (no control characters, which keystores and the JSON that
/// keeps them handle badly).
pub(crate) fn password(p: &str, max: usize) -> Result<(), String> {
    let max = max.min(crate::limits::MAX_PASSWORD_BYTES);
    if p.len() > max {
        return Err(format!(
            "the password is {} bytes; at most {max} are allowed (the node's \
             --max-keystore-password-bytes limit)",
            p.len()
        ));
    }
    if p.chars().any(char::is_control) {
        return Err("the password contains control characters".into());
    }
    Ok(())
}

/// Whether an annotation key is cert-manager's own: `cert-manager.io/...`
/// or `<anything>.cert-manager.io/...` (any case).
pub(crate) fn is_cert_manager_annotation(key: &str) -> bool {
    key.split_once('/').is_some_and(|(prefix, _)| {
        let prefix = prefix.to_ascii_lowercase();
        prefix == "cert-manager.io" || prefix.ends_with(".cert-manager.io")
    })
}

/// A Kubernetes annotation key: `[prefix/]name`, prefix a DNS subdomain, name
/// at most 63 characters of alphanumerics, `-`, `_`, `.`, starting and ending
/// alphanumeric.
pub(crate) fn annotation_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        dns1123_subdomain(prefix).map_err(|e| format!("the prefix {prefix:?} {e}"))?;
    }
    if name.is_empty() || name.len() > 63 {
        return Err("the name after '/' must be 1 to 63 characters".into());
    }
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    let ok_ends = name
        .as_bytes()
        .first()
        .is_some_and(u8::is_ascii_alphanumeric)
        && name
            .as_bytes()
            .last()
            .is_some_and(u8::is_ascii_alphanumeric);
    if !ok_chars || !ok_ends {
        return Err(
            "the name after '/' may only contain letters, digits, '-', '_' and '.', and must start and end with a letter or digit"
                .into(),
        );
    }
    Ok(())
}

/// A file name inside the volume: relative, components separated by `/`,
/// none empty, `.`, `..` or starting with `..` (the atomic writer's
/// reserved names), no NUL or control characters, components at most 255
/// bytes, no surrounding whitespace.
pub(crate) fn file_path(s: &str) -> Result<(), String> {
    if s.starts_with('/') {
        return Err("must be a relative path inside the volume, not an absolute path".into());
    }
    if s.chars().any(char::is_control) {
        return Err("contains NUL or control characters".into());
    }
    if s.trim() != s {
        return Err("has leading or trailing spaces".into());
    }
    for component in s.split('/') {
        if component.is_empty() {
            return Err("has an empty path component (a doubled or trailing '/')".into());
        }
        if component == "." || component == ".." {
            return Err(format!("has a {component:?} path component"));
        }
        if component.starts_with("..") {
            return Err(format!(
                "component {component:?} starts with \"..\", which is reserved for the driver's atomic writer"
            ));
        }
        if component.len() > 255 {
            return Err("has a path component longer than 255 bytes".into());
        }
    }
    Ok(())
}

/// A Kubernetes Secret data key: `[-._a-zA-Z0-9]+`, at most 253 bytes, not `.` or `..`.
pub(crate) fn secret_data_key(key: &str) -> Result<(), String> {
    if key.len() > 253 {
        return Err(format!(
            "is {} bytes; a Secret key has at most 253",
            key.len()
        ));
    }
    if key == "." || key == ".." {
        return Err("is not a Secret key".to_owned());
    }
    match key
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        Some(c) => Err(format!("contains {c:?}, which a Secret key cannot")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdomains() {
        assert!(dns1123_subdomain("ca-issuer").is_ok());
        assert!(dns1123_subdomain("cert-manager.io").is_ok());
        assert!(dns1123_subdomain("CA").is_err());
        assert!(dns1123_subdomain("a..b").is_err());
        assert!(dns1123_subdomain("-a").is_err());
        assert!(dns1123_subdomain(&"a".repeat(254)).is_err());
    }

    #[test]
    fn kinds() {
        assert!(kind("ClusterIssuer").is_ok());
        assert!(kind("AWSPCAIssuer2").is_ok());
        assert!(kind("1Issuer").is_err());
        assert!(kind("Cluster-Issuer").is_err());
    }

    #[test]
    fn dns_sans() {
        assert!(dns_san("a.example.com").is_ok());
        assert!(dns_san("*.example.com").is_ok());
        assert!(dns_san("localhost").is_ok());
        assert!(dns_san("_srv.example.com").is_ok());
        assert!(dns_san("a.*.com").is_err());
        assert!(dns_san("a..com").is_err());
        assert!(dns_san("a.com.").is_err());
        assert!(dns_san("bücher.de").unwrap_err().contains("punycode"));
        assert!(dns_san("a b.com").is_err());
        assert!(dns_san(&format!("{}.com", "a".repeat(64))).is_err());
    }

    #[test]
    fn uri_sans() {
        assert!(uri_san("spiffe://cluster.local/ns/a/sa/b").is_ok());
        assert!(uri_san("urn:uuid:1234").is_ok());
        assert!(uri_san("/just/a/path").is_err());
        assert!(uri_san("1http://x").is_err());
        assert!(uri_san("http:").is_err());
        assert!(uri_san("http://a b").is_err());
    }

    #[test]
    fn annotation_keys() {
        assert!(annotation_key("custom.group.io/team").is_ok());
        assert!(annotation_key("example.com/a_b.c-d").is_ok());
        assert!(annotation_key("Example.com/x").is_err());
        assert!(annotation_key("example.com/").is_err());
        assert!(annotation_key("example.com/-x").is_err());
        assert!(annotation_key("a/b/c").is_err());
    }

    #[test]
    fn file_paths() {
        assert!(file_path("crt.pem").is_ok());
        assert!(file_path("bar/foo.crt").is_ok());
        assert!(file_path(".hidden").is_ok());
        assert!(file_path("/etc/passwd").is_err());
        assert!(file_path("../x").is_err());
        assert!(file_path("a/../x").is_err());
        assert!(file_path("..data").is_err());
        assert!(file_path("a/..x").is_err());
        assert!(file_path("./x").is_err());
        assert!(file_path("a//b").is_err());
        assert!(file_path("a/").is_err());
        assert!(file_path("a\0b").is_err());
        assert!(file_path(" a").is_err());
        assert!(file_path(&"a".repeat(256)).is_err());
        assert!(file_path(&format!("{}/{}", "a".repeat(255), "b".repeat(255))).is_ok());
    }
}
