//! The HTTP side of `crate::objects`: PodCertificateRequests,
//! ClusterTrustBundles and Leases served over the same connections as the
//! CertificateRequests (discovery, get, list, watch, create, update, merge
//! patch, delete), counted and authenticated as the other calls.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{Body, authenticate, error_response, json_response, parse_query, read_json};
use crate::objects::{KINDS, Kind, PCR, Store, Watcher, api_version, as_version, parse_fields};
use crate::selector::LabelSelector;
use crate::shared::{Shared, lock};
use crate::state::{ApiError, event_line};
use crate::types::Verb;

/// What a path under one of these kinds names.
pub(super) enum Target {
    Group(&'static str),
    Resources(&'static str, String),
    Collection {
        kind: &'static Kind,
        version: String,
        ns: Option<String>,
    },
    Object {
        kind: &'static Kind,
        version: String,
        ns: String,
        name: String,
        status: bool,
    },
}

/// The target of `path` if it is one of this module's groups.
pub(super) fn target(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let group_of = |g: &str| KINDS.iter().find(|k| k.group == g).map(|k| k.group);
    let kind_of = |g: &str, p: &str| {
        KINDS
            .iter()
            .copied()
            .find(|k| k.group == g && k.plural == p)
    };
    // The core group lives under `/api/v1` (ConfigMaps only here; Pods have
    // their own module).
    let core = |p: &str| kind_of("", p);
    Some(match parts.as_slice() {
        ["api", "v1", p] => Target::Collection {
            kind: core(p)?,
            version: "v1".to_owned(),
            ns: None,
        },
        ["api", "v1", "namespaces", ns, p] => Target::Collection {
            kind: core(p)?,
            version: "v1".to_owned(),
            ns: Some((*ns).to_owned()),
        },
        ["api", "v1", "namespaces", ns, p, name] => Target::Object {
            kind: core(p)?,
            version: "v1".to_owned(),
            ns: (*ns).to_owned(),
            name: (*name).to_owned(),
            status: false,
        },
        ["apis", g] => Target::Group(group_of(g)?),
        ["apis", g, v] => Target::Resources(group_of(g)?, (*v).to_owned()),
        ["apis", g, v, p] => Target::Collection {
            kind: kind_of(g, p)?,
            version: (*v).to_owned(),
            ns: None,
        },
        ["apis", g, v, "namespaces", ns, p] => Target::Collection {
            kind: kind_of(g, p).filter(|k| k.namespaced)?,
            version: (*v).to_owned(),
            ns: Some((*ns).to_owned()),
        },
        ["apis", g, v, p, name] => Target::Object {
            kind: kind_of(g, p).filter(|k| !k.namespaced)?,
            version: (*v).to_owned(),
            ns: String::new(),
            name: (*name).to_owned(),
            status: false,
        },
        ["apis", g, v, "namespaces", ns, p, name] => Target::Object {
            kind: kind_of(g, p).filter(|k| k.namespaced)?,
            version: (*v).to_owned(),
            ns: (*ns).to_owned(),
            name: (*name).to_owned(),
            status: false,
        },
        ["apis", g, v, "namespaces", ns, p, name, "status"] => Target::Object {
            kind: kind_of(g, p).filter(|k| k.namespaced && k.status)?,
            version: (*v).to_owned(),
            ns: (*ns).to_owned(),
            name: (*name).to_owned(),
            status: true,
        },
        _ => return None,
    })
}

/// The versions of `group` this server serves now.
fn served(store: &Store, group: &str) -> Vec<String> {
    if group == PCR.group {
        store.certificates_versions.clone()
    } else {
        vec!["v1".into()]
    }
}

fn discovery(store: &Store, t: &Target) -> Result<Value, ApiError> {
    let nf = || {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    };
    match t {
        Target::Group(g) => {
            let versions: Vec<Value> = served(store, g)
                .iter()
                .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                .collect();
            let preferred = versions.first().cloned().ok_or_else(nf)?;
            Ok(json!({"kind": "APIGroup", "apiVersion": "v1", "name": g,
                      "versions": versions, "preferredVersion": preferred}))
        }
        Target::Resources(g, v) => {
            if !served(store, g).contains(v) {
                return Err(nf());
            }
            let mut resources = Vec::new();
            for k in KINDS
                .iter()
                .filter(|k| k.group == *g && k.versions.contains(&v.as_str()))
            {
                resources.push(
                    json!({"name": k.plural, "singularName": k.kind.to_lowercase(),
                    "namespaced": k.namespaced, "kind": k.kind,
                    "verbs": ["create","delete","get","list","patch","update","watch"]}),
                );
                if k.status {
                    resources.push(json!({"name": format!("{}/status", k.plural), "singularName": "",
                        "namespaced": k.namespaced, "kind": k.kind, "verbs": ["get","patch","update"]}));
                }
            }
            Ok(json!({"kind": "APIResourceList", "apiVersion": "v1",
                      "groupVersion": format!("{g}/{v}"), "resources": resources}))
        }
        _ => Err(nf()),
    }
}

fn version_served(store: &Store, kind: &Kind, version: &str) -> Result<(), ApiError> {
    if kind.versions.contains(&version) && served(store, kind.group).iter().any(|v| v == version) {
        Ok(())
    } else {
        Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ))
    }
}

/// Serves one request for these kinds.
pub(super) async fn handle(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    t: Target,
) -> Response<Body> {
    match serve(shared, req, t).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

async fn serve(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    t: Target,
) -> Result<Response<Body>, ApiError> {
    let query = parse_query(req.uri().query());
    let watching = query.get("watch").is_some_and(|w| w == "true" || w == "1");
    let verb = match (&t, req.method()) {
        (Target::Group(_) | Target::Resources(..), &Method::GET) => Verb::Discovery,
        (Target::Collection { .. }, &Method::GET) if watching => Verb::Watch,
        (Target::Collection { .. }, &Method::GET) => Verb::List,
        (Target::Collection { .. }, &Method::POST) => Verb::Create,
        (Target::Object { .. }, &Method::GET) => Verb::Get,
        (Target::Object { .. }, &Method::PUT) => Verb::Update,
        (Target::Object { .. }, &Method::PATCH) => Verb::Patch,
        (Target::Object { status: false, .. }, &Method::DELETE) => Verb::Delete,
        _ => {
            return Err(ApiError::new(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            ));
        }
    };
    let resource = match &t {
        Target::Object {
            kind, status: true, ..
        } => format!("{}/status", kind.plural),
        Target::Object { kind, .. } | Target::Collection { kind, .. } => kind.plural.to_owned(),
        _ => req.uri().path().to_owned(),
    };
    *lock(&shared.counts).entry((verb, resource)).or_insert(0) += 1;
    if verb == Verb::Discovery {
        return discovery(&lock(&shared.objects), &t).map(|v| json_response(StatusCode::OK, &v));
    }
    let Some(user) = authenticate(shared, &req) else {
        return Err(ApiError::new(401, "Unauthorized", "Unauthorized"));
    };
    let _ = user;
    match t {
        Target::Collection { kind, version, ns } => {
            version_served(&lock(&shared.objects), kind, &version)?;
            match verb {
                Verb::Watch => watch(shared, kind, version, ns, &query),
                Verb::List => list(shared, kind, &version, ns.as_deref(), &query),
                _ => {
                    if kind.namespaced && ns.is_none() {
                        return Err(ApiError::new(
                            405,
                            "MethodNotAllowed",
                            "create a namespaced object in its namespace",
                        ));
                    }
                    let (_, body) = read_json(req).await?;
                    let created = lock(&shared.objects).create(
                        kind,
                        &version,
                        ns.as_deref().unwrap_or(""),
                        body,
                    )?;
                    Ok(json_response(
                        StatusCode::CREATED,
                        &as_version(&created, &version),
                    ))
                }
            }
        }
        Target::Object {
            kind,
            version,
            ns,
            name,
            status,
        } => {
            version_served(&lock(&shared.objects), kind, &version)?;
            let out = match verb {
                Verb::Get => lock(&shared.objects).get(kind, &ns, &name)?,
                Verb::Update => {
                    let (_, body) = read_json(req).await?;
                    lock(&shared.objects).replace(kind, &version, &ns, &name, body, status)?
                }
                Verb::Patch => {
                    let ctype = req
                        .headers()
                        .get(header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .map(|s| s.split(';').next().unwrap_or(s).trim().to_owned());
                    if ctype.as_deref() != Some("application/merge-patch+json") {
                        return Err(ApiError::new(
                            415,
                            "UnsupportedMediaType",
                            format!(
                                "the fake API takes merge patches only for {}, not {ctype:?}",
                                kind.plural
                            ),
                        ));
                    }
                    let (_, patch) = read_json(req).await?;
                    let mut store = lock(&shared.objects);
                    let mut obj = store.get(kind, &ns, &name)?;
                    crate::patch::merge_patch(&mut obj, &patch);
                    store.replace(kind, &version, &ns, &name, obj, status)?
                }
                _ => {
                    let (_, opts) = super::read_json_or_empty(req).await?;
                    let pre = opts.get("preconditions").cloned().unwrap_or(Value::Null);
                    lock(&shared.objects).delete(kind, &ns, &name, &pre)?
                }
            };
            Ok(json_response(StatusCode::OK, &as_version(&out, &version)))
        }
        _ => Err(ApiError::new(404, "NotFound", "not found")),
    }
}

fn list(
    shared: &Shared,
    kind: &Kind,
    version: &str,
    ns: Option<&str>,
    query: &HashMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    let labels = LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))
        .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
    let fields = parse_fields(kind, query.get("fieldSelector").map_or("", String::as_str))?;
    let store = lock(&shared.objects);
    let probe = Watcher {
        plural: kind.plural,
        version: version.to_owned(),
        ns: ns.map(str::to_owned),
        labels,
        fields,
        tx: mpsc::unbounded_channel().0,
    };
    // The whole list in one page: a server may ignore `limit` (it does when
    // serving from its watch cache).
    let items: Vec<Value> = store
        .list(kind, ns)
        .iter()
        .filter(|o| probe.selects(kind.plural, o))
        .map(|o| as_version(o, version).into_owned())
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"kind": format!("{}List", kind.kind), "apiVersion": api_version(kind.group, version),
                "metadata": {"resourceVersion": store.rv.to_string()}, "items": items}),
    ))
}

fn watch(
    shared: &Shared,
    kind: &'static Kind,
    version: String,
    ns: Option<String>,
    query: &HashMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    let labels = LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))
        .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
    let fields = parse_fields(kind, query.get("fieldSelector").map_or("", String::as_str))?;
    let rv = match query.get("resourceVersion").map(String::as_str) {
        None | Some("") => None,
        Some(rv) => Some(
            rv.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version {rv:?}")))?,
        ),
    };
    let w = Watcher {
        plural: kind.plural,
        version,
        ns,
        labels,
        fields,
        tx: mpsc::unbounded_channel().0,
    };
    let initial = query.get("sendInitialEvents").is_some_and(|v| v == "true");
    let rx = match lock(&shared.objects).watch(w, rv, initial) {
        Ok(rx) => rx,
        Err(e) if e.code == 410 => {
            let (tx, rx) = mpsc::unbounded_channel();
            let _ = tx.send(event_line("ERROR", &e.status_json()));
            rx
        }
        Err(e) => return Err(e),
    };
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|line| (Ok::<_, Infallible>(Frame::data(line)), rx))
    });
    let mut resp = Response::new(StreamBody::new(stream).boxed_unsync());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}
