//! The in-process test issuer: approves or denies, then signs or fails
//! CertificateRequests by `spec.issuerRef.name`, the way cert-manager's
//! approver and CA issuer would.

use crate::api::Shared;
use crate::ca::{SignParams, parse_go_duration};
use crate::state::now_rfc3339;
use base64::Engine as _;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// What the test issuer does with a CertificateRequest for a given issuer name.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Script {
    /// Approve (`Approved=True`), then sign: `Ready=True` reason `Issued` with
    /// `status.certificate` (the leaf) and `status.ca`.
    Sign,
    /// Deny: `Denied=True` with this reason and message, then `Ready=False`
    /// reason `Denied` and `failureTime`. No `Approved` condition.
    Deny {
        /// The `Denied` condition's reason.
        reason: String,
        /// The `Denied` condition's message.
        message: String,
    },
    /// Approve, then fail: `Ready=False` reason `Failed` with this message and `failureTime`.
    Fail {
        /// The `Ready` condition's message.
        message: String,
    },
    /// Mark the request invalid: `InvalidRequest=True`, `Ready=False` reason `Failed`.
    InvalidRequest {
        /// The `InvalidRequest` condition's message.
        message: String,
    },
    /// Never answer: leave the request pending.
    Never,
    /// Approve at once, wait this long (tokio time, so paused-time tests skip it), then sign.
    Delay(Duration),
    /// Approve only; never sign (an issuer that is down).
    ApproveOnly,
    /// Approve, then sign for this lifetime whatever `spec.duration` asks
    /// (an issuer that ignores the requested duration).
    SignFor(Duration),
}

impl Script {
    /// A denial with cert-manager-like reason and message.
    pub fn deny() -> Self {
        Script::Deny {
            reason: "PolicyDenied".into(),
            message: "denied by the test approver".into(),
        }
    }

    /// A failure with a default message.
    pub fn fail() -> Self {
        Script::Fail {
            message: "the test issuer failed to sign".into(),
        }
    }

    /// Parses the command-line form: `sign`, `deny`, `deny:REASON:MESSAGE`,
    /// `fail`, `fail:MESSAGE`, `invalid`, `never`, `approve-only`, `delay:DURATION`
    /// (Go duration, e.g. `delay:5s`).
    pub fn parse(s: &str) -> Result<Self, String> {
        let (head, rest) = s.split_once(':').unwrap_or((s, ""));
        Ok(match head {
            "sign" => Script::Sign,
            "deny" if rest.is_empty() => Script::deny(),
            "deny" => {
                let (reason, message) = rest.split_once(':').unwrap_or((rest, "denied"));
                Script::Deny {
                    reason: reason.into(),
                    message: message.into(),
                }
            }
            "fail" if rest.is_empty() => Script::fail(),
            "fail" => Script::Fail {
                message: rest.into(),
            },
            "invalid" => Script::InvalidRequest {
                message: if rest.is_empty() {
                    "the request is invalid for the test issuer".into()
                } else {
                    rest.into()
                },
            },
            "never" => Script::Never,
            "approve-only" => Script::ApproveOnly,
            "delay" => Script::Delay(parse_go_duration(rest).map_err(|e| e.to_string())?),
            "sign-for" => Script::SignFor(parse_go_duration(rest).map_err(|e| e.to_string())?),
            other => return Err(format!("unknown issuer script {other:?}")),
        })
    }
}

#[derive(Default)]
pub(crate) struct IssuerState {
    pub scripts: HashMap<String, Script>,
    pub default: Option<Script>,
    /// UIDs of requests the issuer has taken on.
    pub handled: HashSet<String>,
    /// Issuers with a CA of their own (after [`crate::FakeApi::rotate_issuer_ca`]).
    pub cas: HashMap<String, Arc<crate::ca::TestCa>>,
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> Option<&'a str> {
    v.pointer(ptr).and_then(Value::as_str)
}

fn has_condition(obj: &Value, ty: &str) -> bool {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| c.iter().any(|c| str_at(c, "/type") == Some(ty)))
}

/// Takes on a request if a script applies and it is not finished or taken yet.
pub(crate) fn consider(shared: &Arc<Shared>, obj: &Value) {
    let Some(uid) = str_at(obj, "/metadata/uid") else {
        return;
    };
    if has_condition(obj, "Ready") || has_condition(obj, "Denied") {
        return;
    }
    let issuer = str_at(obj, "/spec/issuerRef/name").unwrap_or("");
    let script = {
        let mut st = shared.issuer.lock().unwrap_or_else(|e| e.into_inner());
        let Some(script) = st.scripts.get(issuer).or(st.default.as_ref()).cloned() else {
            return; // unknown issuer: stays pending, as with real cert-manager
        };
        if script == Script::Never || !st.handled.insert(uid.to_string()) {
            return;
        }
        script
    };
    let (Some(ns), Some(name)) = (
        str_at(obj, "/metadata/namespace"),
        str_at(obj, "/metadata/name"),
    ) else {
        return;
    };
    let (ns, name, shared) = (ns.to_string(), name.to_string(), shared.clone());
    tokio::spawn(async move { run(&shared, &ns, &name, script).await });
}

/// Re-examines every pending request (after a script changed).
pub(crate) fn rescan(shared: &Arc<Shared>) {
    let objs: Vec<Value> = shared
        .state()
        .objects
        .values()
        .map(|v| (**v).clone())
        .collect();
    for o in objs {
        consider(shared, &o);
    }
}

fn condition(ty: &str, status: &str, reason: &str, message: &str) -> Value {
    json!({
        "type": ty,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": now_rfc3339(),
        "observedGeneration": 1,
    })
}

fn set_condition(obj: &mut Value, cond: Value) {
    if !obj.get("status").is_some_and(Value::is_object) {
        obj["status"] = json!({});
    }
    if !obj["status"].get("conditions").is_some_and(Value::is_array) {
        obj["status"]["conditions"] = json!([]);
    }
    if let Some(list) = obj["status"]["conditions"].as_array_mut() {
        list.retain(|c| c.get("type") != cond.get("type"));
        list.push(cond);
    }
}

fn approve(obj: &mut Value) {
    set_condition(
        obj,
        condition(
            "Approved",
            "True",
            "cert-manager.io",
            "Certificate request has been approved by cert-manager.io",
        ),
    );
}

fn fail(obj: &mut Value, reason: &str, message: &str) {
    set_condition(obj, condition("Ready", "False", reason, message));
    obj["status"]["failureTime"] = json!(now_rfc3339());
}

/// Applies a script to one request now (also used by [`crate::FakeApi::act_on`]).
pub(crate) async fn run(shared: &Arc<Shared>, ns: &str, name: &str, script: Script) {
    let update =
        |f: &mut dyn FnMut(&mut Value)| shared.state().update_with(ns, name, |o| f(o)).is_some();
    match script {
        Script::Never => {}
        Script::ApproveOnly => {
            update(&mut approve);
        }
        Script::Sign => {
            if update(&mut approve) {
                sign(shared, ns, name, None);
            }
        }
        Script::SignFor(d) => {
            if update(&mut approve) {
                sign(shared, ns, name, Some(d));
            }
        }
        Script::Delay(d) => {
            if update(&mut approve) {
                tokio::time::sleep(d).await;
                sign(shared, ns, name, None);
            }
        }
        Script::Deny { reason, message } => {
            if update(&mut |o| set_condition(o, condition("Denied", "True", &reason, &message))) {
                update(&mut |o| {
                    fail(
                        o,
                        "Denied",
                        "The CertificateRequest was denied by an approval controller",
                    )
                });
            }
        }
        Script::Fail { message } => {
            if update(&mut approve) {
                update(&mut |o| fail(o, "Failed", &message));
            }
        }
        Script::InvalidRequest { message } => {
            update(&mut |o| {
                set_condition(
                    o,
                    condition("InvalidRequest", "True", "RequestInvalid", &message),
                );
                fail(o, "Failed", &message);
            });
        }
    }
}

fn sign(shared: &Arc<Shared>, ns: &str, name: &str, lifetime: Option<Duration>) {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut st = shared.state();
    let Ok(obj) = st.get(ns, name) else {
        return;
    };
    let csr = str_at(&obj, "/spec/request")
        .and_then(|r| b64.decode(r).ok())
        .unwrap_or_default();
    let duration = match str_at(&obj, "/spec/duration").map(parse_go_duration) {
        None => Ok(None),
        Some(Ok(d)) => Ok(Some(d)),
        Some(Err(e)) => Err(e),
    };
    let params = duration.map(|duration| SignParams {
        duration: lifetime.or(duration),
        is_ca: obj
            .pointer("/spec/isCA")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        usages: obj
            .pointer("/spec/usages")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default(),
    });
    let own_ca = str_at(&obj, "/spec/issuerRef/name").and_then(|issuer| {
        let st = shared.issuer.lock().unwrap_or_else(|e| e.into_inner());
        st.cas.get(issuer).cloned()
    });
    let ca = own_ca.as_deref().unwrap_or(&shared.ca);
    let result = params.and_then(|p| ca.sign(&csr, &p));
    let ca_pem = b64.encode(ca.cert_pem());
    st.update_with(ns, name, |o| match result {
        Ok(leaf) => {
            o["status"]["certificate"] = json!(b64.encode(leaf));
            o["status"]["ca"] = json!(ca_pem);
            set_condition(
                o,
                condition(
                    "Ready",
                    "True",
                    "Issued",
                    "Certificate fetched from issuer successfully",
                ),
            );
        }
        Err(crate::ca::CaError::Csr(m)) => {
            let msg = format!("Failed to decode CSR in spec.request: {m}");
            set_condition(
                o,
                condition("InvalidRequest", "True", "RequestParsingError", &msg),
            );
            fail(o, "Failed", &msg);
        }
        Err(e) => fail(o, "Failed", &format!("Failed to sign certificate: {e}")),
    });
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parse_scripts() {
        assert_eq!(Script::parse("sign").unwrap(), Script::Sign);
        assert_eq!(Script::parse("never").unwrap(), Script::Never);
        assert_eq!(
            Script::parse("delay:5s").unwrap(),
            Script::Delay(Duration::from_secs(5))
        );
        assert_eq!(
            Script::parse("deny:R:M").unwrap(),
            Script::Deny {
                reason: "R".into(),
                message: "M".into()
            }
        );
        assert!(
            matches!(Script::parse("fail:boom").unwrap(), Script::Fail { message } if message == "boom")
        );
        assert!(Script::parse("explode").is_err());
    }
}
