//! What a request names: the query string, the path's target and the verb
//! counted for it.

use std::collections::HashMap;

use http::Method;
use serde_json::{Value, json};

use crate::state::{API_VERSION, GROUP, KIND, PLURAL, VERSION};
use crate::types::Verb;

/// Decodes `application/x-www-form-urlencoded` query strings. Written by hand
/// to avoid a dependency for a few lines.
pub(super) fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                    match u8::from_str_radix(hex, 16) {
                        Ok(b) => {
                            out.push(b);
                            i += 2;
                        }
                        Err(_) => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// What a request path names.
pub(super) enum Target {
    Version,
    Discovery(Value),
    Collection {
        ns: Option<String>,
    },
    Object {
        ns: String,
        name: String,
        status: bool,
    },
    /// `events.k8s.io/v1` Events of a namespace (POST creates one).
    Events {
        ns: String,
    },
    /// One `events.k8s.io/v1` Event (PATCH updates its series).
    Event {
        ns: String,
        name: String,
    },
    NotFound,
}

/// The Events API group the driver reports to.
pub(super) const EVENTS_GROUP: &str = "events.k8s.io";

pub(super) fn route(path: &str) -> Target {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let prefix = ["apis", GROUP, VERSION];
    match parts.as_slice() {
        ["apis", g, "v1", "namespaces", ns, "events"] if *g == EVENTS_GROUP => {
            Target::Events { ns: ns.to_string() }
        }
        ["apis", g, "v1", "namespaces", ns, "events", name] if *g == EVENTS_GROUP => {
            Target::Event {
                ns: ns.to_string(),
                name: name.to_string(),
            }
        }
        ["version"] => Target::Version,
        ["api"] => Target::Discovery(json!({
            "kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
        })),
        ["apis"] => Target::Discovery(json!({
            "kind": "APIGroupList", "apiVersion": "v1",
            "groups": [group_json()],
        })),
        ["apis", g] if *g == GROUP => Target::Discovery({
            let mut g = group_json();
            g["kind"] = json!("APIGroup");
            g["apiVersion"] = json!("v1");
            g
        }),
        [a, g, v] if [*a, *g, *v] == prefix => Target::Discovery(json!({
            "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": API_VERSION,
            "resources": [
                {"name": PLURAL, "singularName": "certificaterequest", "namespaced": true, "kind": KIND,
                 "verbs": ["delete","deletecollection","get","list","patch","create","update","watch"],
                 "shortNames": ["cr","crs"], "categories": ["cert-manager"]},
                {"name": format!("{PLURAL}/status"), "singularName": "", "namespaced": true, "kind": KIND,
                 "verbs": ["get","patch","update"]},
            ],
        })),
        [a, g, v, p] if [*a, *g, *v] == prefix && *p == PLURAL => Target::Collection { ns: None },
        [a, g, v, "namespaces", ns, p] if [*a, *g, *v] == prefix && *p == PLURAL => {
            Target::Collection {
                ns: Some(ns.to_string()),
            }
        }
        [a, g, v, "namespaces", ns, p, name] if [*a, *g, *v] == prefix && *p == PLURAL => {
            Target::Object {
                ns: ns.to_string(),
                name: name.to_string(),
                status: false,
            }
        }
        [a, g, v, "namespaces", ns, p, name, "status"]
            if [*a, *g, *v] == prefix && *p == PLURAL =>
        {
            Target::Object {
                ns: ns.to_string(),
                name: name.to_string(),
                status: true,
            }
        }
        _ => Target::NotFound,
    }
}

pub(super) fn group_json() -> Value {
    json!({
        "name": GROUP,
        "versions": [{"groupVersion": API_VERSION, "version": VERSION}],
        "preferredVersion": {"groupVersion": API_VERSION, "version": VERSION},
    })
}

pub(super) fn verb_of(
    method: &Method,
    target: &Target,
    query: &HashMap<String, String>,
) -> Option<Verb> {
    let watch = query.get("watch").is_some_and(|w| w == "true" || w == "1");
    Some(match (target, method) {
        (Target::Version | Target::Discovery(_), _) => Verb::Discovery,
        (Target::Events { .. }, &Method::POST) => Verb::Create,
        (Target::Event { .. }, &Method::PATCH) => Verb::Patch,
        (Target::Collection { .. }, &Method::GET) if watch => Verb::Watch,
        (Target::Collection { .. }, &Method::GET) => Verb::List,
        (Target::Collection { ns: Some(_) }, &Method::POST) => Verb::Create,
        (Target::Collection { ns: Some(_) }, &Method::DELETE) => Verb::DeleteCollection,
        (Target::Object { .. }, &Method::GET) => Verb::Get,
        (Target::Object { .. }, &Method::PUT) => Verb::Update,
        (Target::Object { .. }, &Method::PATCH) => Verb::Patch,
        (Target::Object { status: false, .. }, &Method::DELETE) => Verb::Delete,
        _ => return None,
    })
}
