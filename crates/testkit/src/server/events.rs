//! `events.k8s.io/v1` Events: recorded as written (created by POST, updated
//! by merge PATCH), kept apart from the CertificateRequest store.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::{Body, json_response, read_json};
use crate::shared::{Shared, lock};
use crate::state::{ApiError, merge_patch};

/// Records an `events.k8s.io/v1` Event as sent (the fake keeps Events
/// apart from the CertificateRequest store: no watch, no resource version).
pub(super) async fn create_event(
    shared: &Shared,
    ns: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let (_, mut body) = read_json(req).await?;
    let Some(name) = body
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return Err(ApiError::new(
            422,
            "Invalid",
            "Event.events.k8s.io is invalid: metadata.name: Required value",
        ));
    };
    body["metadata"]["namespace"] = json!(ns);
    let mut events = lock(&shared.events);
    if events.contains_key(&(ns.to_string(), name.clone())) {
        return Err(ApiError::new(
            409,
            "AlreadyExists",
            format!("events.events.k8s.io \"{name}\" already exists"),
        ));
    }
    events.insert((ns.to_string(), name), body.clone());
    Ok(json_response(StatusCode::CREATED, &body))
}

/// Merges a patch into a recorded Event (the event recorder's series update).
pub(super) async fn patch_event(
    shared: &Shared,
    ns: &str,
    name: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let (ctype, body) = read_json(req).await?;
    if ctype.as_deref() != Some("application/merge-patch+json") {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!("the fake API takes only merge patches for Events, not {ctype:?}"),
        ));
    }
    let mut events = lock(&shared.events);
    let Some(obj) = events.get_mut(&(ns.to_string(), name.to_string())) else {
        return Err(ApiError::not_found(name));
    };
    merge_patch(obj, &body);
    Ok(json_response(StatusCode::OK, obj))
}
