//! The in-process test issuer: approves or denies, then signs or fails
//! CertificateRequests by `spec.issuerRef.name`, the way cert-manager's
//! approver and CA issuer would.

use crate::ca::{SignParams, parse_go_duration};
use crate::script::Script;
use crate::shared::Shared;
use crate::state::now_rfc3339;
use base64::Engine as _;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

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
    // Read, sign with no lock held, then write back: cert-manager's CA issuer is
    // another process, so the API server serves everyone else while it signs.
    let key = (ns.to_string(), name.to_string());
    let Some(obj) = shared.state().objects.get(&key).cloned() else {
        return;
    };
    let uid = str_at(&obj, "/metadata/uid").map(str::to_owned);
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
    let mut st = shared.state();
    // The object may have been deleted (or deleted and made anew) meanwhile: a
    // status write to a uid that is gone does not land on its successor.
    let same = st
        .objects
        .get(&key)
        .is_some_and(|o| str_at(o, "/metadata/uid") == uid.as_deref());
    if !same {
        return;
    }
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
