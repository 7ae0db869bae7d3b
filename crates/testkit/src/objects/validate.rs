//! The API server's validation of PodCertificateRequests and
//! ClusterTrustBundles, as far as a signer depends on it (from the
//! `certificates.k8s.io` types' documented rules and KEP-4317/KEP-3257).

use base64::Engine as _;
use der::{Decode, Encode};
use serde_json::{Value, json};
use x509_cert::Certificate;

use super::{CONFIGMAP, CTB, Kind, PCR, invalid, str_at};
use crate::state::ApiError;

/// `spec.stubPKCS10Request` (DER) at most 10 KiB.
pub(crate) const MAX_STUB_CSR: usize = 10 * 1024;
/// `status.certificateChain` at most 100 KiB.
pub(crate) const MAX_CHAIN: usize = 100 * 1024;
/// `maxExpirationSeconds`: default 24 h, at least 1 h, at most 91 days.
pub(crate) const DEFAULT_MAX_EXPIRATION: i64 = 86_400;
const MIN_EXPIRATION: i64 = 3_600;
const MAX_EXPIRATION: i64 = 7_862_400;
/// A ClusterTrustBundle's `spec.trustBundle` at most 1 MiB (an object's limit).
const MAX_TRUST_BUNDLE: usize = 1024 * 1024;

pub(super) fn on_create(
    kind: &Kind,
    version: &str,
    name: &str,
    obj: &mut Value,
) -> Result<(), ApiError> {
    if *kind == PCR {
        pcr_spec(version, name, obj)
    } else if *kind == CTB {
        ctb(name, obj, None)
    } else if *kind == CONFIGMAP {
        configmap(name, obj)
    } else {
        Ok(())
    }
}

pub(super) fn on_update(
    kind: &Kind,
    _version: &str,
    name: &str,
    old: &Value,
    new: &mut Value,
) -> Result<(), ApiError> {
    if *kind == PCR {
        if new.get("spec") != old.get("spec") {
            // Every field of the spec is immutable after creation.
            return Err(invalid(kind, name, "spec: Forbidden: field is immutable"));
        }
        Ok(())
    } else if *kind == CTB {
        ctb(name, new, Some(old))
    } else if *kind == CONFIGMAP {
        configmap(name, new)
    } else {
        Ok(())
    }
}

fn pcr_spec(version: &str, name: &str, obj: &mut Value) -> Result<(), ApiError> {
    let bad = |m: String| invalid(&PCR, name, m);
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return Err(bad("spec: Required value".into()));
    };
    let mut problems = Vec::new();
    for f in [
        "signerName",
        "podName",
        "podUID",
        "serviceAccountName",
        "serviceAccountUID",
        "nodeName",
        "nodeUID",
    ] {
        if spec
            .get(f)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            problems.push(format!("spec.{f}: Required value"));
        }
    }
    if let Some(s) = spec.get("signerName").and_then(Value::as_str)
        && !s.is_empty()
        && !s
            .split_once('/')
            .is_some_and(|(d, p)| d.contains('.') && !p.is_empty())
    {
        problems.push(format!("spec.signerName: Invalid value: {s:?}: must be a fully qualified domain and path of the form 'example.com/signer-name'"));
    }
    let max = spec
        .get("maxExpirationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(DEFAULT_MAX_EXPIRATION);
    let cap = if spec
        .get("signerName")
        .and_then(Value::as_str)
        .is_some_and(|s| s.starts_with("kubernetes.io/"))
    {
        DEFAULT_MAX_EXPIRATION
    } else {
        MAX_EXPIRATION
    };
    if !(MIN_EXPIRATION..=cap).contains(&max) {
        problems.push(format!("spec.maxExpirationSeconds: Invalid value: {max}: must be in the range [{MIN_EXPIRATION}, {cap}]"));
    }
    spec.insert("maxExpirationSeconds".into(), json!(max));
    if version == "v1" {
        // Dropped from v1: unknown fields are pruned.
        spec.remove("pkixPublicKey");
        spec.remove("proofOfPossession");
    }
    match spec.get("stubPKCS10Request").and_then(Value::as_str) {
        Some(b64) => match base64::engine::general_purpose::STANDARD.decode(b64) {
            Ok(der) if der.len() > MAX_STUB_CSR => problems.push(format!(
                "spec.stubPKCS10Request: Too long: may not be more than {MAX_STUB_CSR} bytes"
            )),
            Ok(_) => {}
            Err(e) => problems.push(format!(
                "spec.stubPKCS10Request: Invalid value: not base64: {e}"
            )),
        },
        None if version == "v1" => problems.push("spec.stubPKCS10Request: Required value".into()),
        None => {
            if spec.get("pkixPublicKey").is_none() {
                problems
                    .push("spec.pkixPublicKey: Required value (or spec.stubPKCS10Request)".into());
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(bad(problems.join(", ")))
    }
}

fn conditions(status: &Value) -> Vec<&Value> {
    status
        .get("conditions")
        .and_then(Value::as_array)
        .map(|c| c.iter().collect())
        .unwrap_or_default()
}

fn has_true(status: &Value, ty: &str) -> bool {
    conditions(status)
        .iter()
        .any(|c| str_at(c, "/type") == Some(ty) && str_at(c, "/status") == Some("True"))
}

/// Whether a status records an outcome (after which it is immutable).
fn terminal(status: &Value) -> bool {
    status.get("certificateChain").is_some()
        || ["Issued", "Denied", "Failed"]
            .iter()
            .any(|t| has_true(status, t))
}

fn unix(ts: &str) -> Option<i64> {
    ts.parse::<jiff::Timestamp>().ok().map(|t| t.as_second())
}

/// The `/status` update of a PodCertificateRequest.
pub(super) fn on_status_update(
    kind: &Kind,
    version: &str,
    name: &str,
    old: &Value,
    new: &mut Value,
) -> Result<(), ApiError> {
    if *kind != PCR {
        return Ok(());
    }
    let bad = |m: String| invalid(&PCR, name, m);
    let old_status = old.get("status").cloned().unwrap_or(Value::Null);
    if version != "v1"
        && let Some(s) = new.get_mut("status").and_then(Value::as_object_mut)
    {
        // `issuedAt` is not a v1beta1 field: pruned.
        s.remove("issuedAt");
    }
    let status = new.get("status").cloned().unwrap_or(Value::Null);
    if terminal(&old_status) {
        if status != old_status {
            return Err(bad("status: Forbidden: the status of a PodCertificateRequest with an outcome is immutable".into()));
        }
        return Ok(());
    }
    let mut problems = Vec::new();
    for c in conditions(&status) {
        let ty = str_at(c, "/type").unwrap_or("");
        if !["Issued", "Denied", "Failed", "SuggestedKeyType"].contains(&ty) {
            problems.push(format!("status.conditions: Unsupported value: {ty:?}"));
        }
        if str_at(c, "/reason").is_none_or(str::is_empty)
            || str_at(c, "/lastTransitionTime").is_none()
        {
            problems.push(format!(
                "status.conditions[{ty}]: reason and lastTransitionTime are required"
            ));
        }
    }
    let outcomes = ["Issued", "Denied", "Failed"]
        .iter()
        .filter(|t| has_true(&status, t))
        .count();
    if outcomes > 1 {
        problems
            .push("status.conditions: at most one of Issued, Denied and Failed may be set".into());
    }
    if has_true(&status, "SuggestedKeyType")
        && !conditions(&status).iter().any(|c| {
            str_at(c, "/type") == Some("Denied")
                && str_at(c, "/reason") == Some("UnsupportedKeyType")
        })
    {
        problems.push("status.conditions: SuggestedKeyType needs a Denied condition with reason UnsupportedKeyType".into());
    }
    match status.get("certificateChain").and_then(Value::as_str) {
        Some(chain) => {
            if !has_true(&status, "Issued") {
                problems.push(
                    "status.certificateChain: Forbidden: only with an Issued condition".into(),
                );
            }
            if let Err(e) = issued(old, &status, chain) {
                problems.push(e);
            }
        }
        None => {
            if has_true(&status, "Issued") {
                problems.push(
                    "status.certificateChain: Required value: with an Issued condition".into(),
                );
            }
            for f in ["notBefore", "notAfter", "beginRefreshAt", "issuedAt"] {
                if status.get(f).is_some() {
                    problems.push(format!(
                        "status.{f}: Forbidden: only with a certificateChain"
                    ));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(bad(problems.join(", ")))
    }
}

/// The checks on an issued chain: size, PEM, leaf times equal to the
/// status', lifetime within `maxExpirationSeconds` and at least an hour,
/// `beginRefreshAt` inside, and the leaf for the request's key.
fn issued(obj: &Value, status: &Value, chain: &str) -> Result<(), String> {
    if chain.len() > MAX_CHAIN {
        return Err(format!(
            "status.certificateChain: Too long: may not be more than {MAX_CHAIN} bytes"
        ));
    }
    let certs = pem_certificates(chain)
        .map_err(|e| format!("status.certificateChain: Invalid value: {e}"))?;
    let leaf = certs
        .first()
        .ok_or("status.certificateChain: Invalid value: no certificate")?;
    let validity = leaf.tbs_certificate().validity();
    let leaf_nb = validity.not_before.to_unix_duration().as_secs() as i64;
    let leaf_na = validity.not_after.to_unix_duration().as_secs() as i64;
    let time = |f: &str| -> Result<i64, String> {
        status
            .get(f)
            .and_then(Value::as_str)
            .and_then(unix)
            .ok_or(format!(
                "status.{f}: Required value: an RFC 3339 time, with a certificateChain"
            ))
    };
    let (nb, na, refresh) = (
        time("notBefore")?,
        time("notAfter")?,
        time("beginRefreshAt")?,
    );
    if nb != leaf_nb || na != leaf_na {
        return Err(
            "status.notBefore, status.notAfter: Invalid value: must equal the leaf certificate's"
                .into(),
        );
    }
    let max = obj
        .pointer("/spec/maxExpirationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(DEFAULT_MAX_EXPIRATION);
    if na - nb > max {
        return Err(format!(
            "status.notAfter: Invalid value: the lifetime {}s is longer than spec.maxExpirationSeconds ({max}s)",
            na - nb
        ));
    }
    if na - nb < MIN_EXPIRATION {
        return Err(format!(
            "status.notAfter: Invalid value: the lifetime {}s is shorter than {MIN_EXPIRATION}s",
            na - nb
        ));
    }
    if refresh <= nb || refresh >= na {
        return Err(
            "status.beginRefreshAt: Invalid value: must be after notBefore and before notAfter"
                .into(),
        );
    }
    if let Some(csr) = str_at(obj, "/spec/stubPKCS10Request")
        && let Ok(der) = base64::engine::general_purpose::STANDARD.decode(csr)
        && let Ok(req) = crate::ca::parse_csr(&der)
    {
        let want = req.info.public_key.to_der().ok();
        let have = leaf
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .ok();
        if want != have {
            return Err("status.certificateChain: Invalid value: the leaf certificate is not for the request's public key".into());
        }
    }
    Ok(())
}

/// Parses PEM text made only of `CERTIFICATE` blocks without headers.
pub(crate) fn pem_certificates(text: &str) -> Result<Vec<Certificate>, String> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let end_marker = "-----END CERTIFICATE-----";
        let Some(end) = rest.find(end_marker) else {
            return Err("not a sequence of PEM CERTIFICATE blocks".into());
        };
        let block = &rest[..end + end_marker.len()];
        if !block.starts_with("-----BEGIN CERTIFICATE-----") || block.contains(':') {
            return Err("only CERTIFICATE blocks without headers are allowed".into());
        }
        let (label, der) = der::pem::decode_vec(block.as_bytes()).map_err(|e| e.to_string())?;
        if label != "CERTIFICATE" {
            return Err(format!("unexpected PEM block {label}"));
        }
        out.push(Certificate::from_der(&der).map_err(|e| e.to_string())?);
        rest = rest[end + end_marker.len()..].trim_start();
    }
    Ok(out)
}

fn ctb(name: &str, obj: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    let bad = |m: String| invalid(&CTB, name, m);
    let signer = str_at(obj, "/spec/signerName").unwrap_or("");
    if let Some(old) = old
        && str_at(old, "/spec/signerName").unwrap_or("") != signer
    {
        return Err(bad(
            "spec.signerName: Invalid value: field is immutable".into()
        ));
    }
    if signer.is_empty() {
        if name.contains(':') {
            return Err(bad(
                "metadata.name: Invalid value: a bundle without a signer name may not contain ':'"
                    .into(),
            ));
        }
    } else {
        let prefix = format!("{}:", signer.replace('/', ":"));
        if !name.starts_with(&prefix) {
            return Err(bad(format!(
                "metadata.name: Invalid value: must start with {prefix:?} for signer {signer:?}"
            )));
        }
    }
    let bundle = str_at(obj, "/spec/trustBundle")
        .ok_or_else(|| bad("spec.trustBundle: Required value".into()))?;
    if bundle.len() > MAX_TRUST_BUNDLE {
        return Err(bad(format!(
            "spec.trustBundle: Too long: may not be more than {MAX_TRUST_BUNDLE} bytes"
        )));
    }
    let certs = pem_certificates(bundle)
        .map_err(|e| bad(format!("spec.trustBundle: Invalid value: {e}")))?;
    if certs.is_empty() {
        return Err(bad(
            "spec.trustBundle: Invalid value: at least one trust anchor must be provided".into(),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for c in &certs {
        if !seen.insert(c.to_der().unwrap_or_default()) {
            return Err(bad(
                "spec.trustBundle: Invalid value: duplicate trust anchor".into(),
            ));
        }
    }
    Ok(())
}

/// A ConfigMap's `data` and `binaryData` together at most 1 MiB, as the API
/// server's validation (`ConfigMap data too long`) refuses larger ones.
fn configmap(name: &str, obj: &Value) -> Result<(), ApiError> {
    let mut total = 0usize;
    for field in ["data", "binaryData"] {
        if let Some(map) = obj.get(field).and_then(Value::as_object) {
            for (k, v) in map {
                let Some(v) = v.as_str() else {
                    return Err(invalid(
                        &CONFIGMAP,
                        name,
                        format!("{field}[{k}]: must be a string"),
                    ));
                };
                total += k.len() + v.len();
            }
        }
    }
    if total > MAX_TRUST_BUNDLE {
        return Err(invalid(
            &CONFIGMAP,
            name,
            format!("[]: Too long: must have at most {MAX_TRUST_BUNDLE} bytes"),
        ));
    }
    Ok(())
}
