//! Core v1 Pods for the driver's node-scoped Pod watch: get, list and watch
//! of the Pods tests put in place, counted and authenticated as the other calls.

use std::convert::Infallible;

use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};

use super::{Body, authenticate, error_response, json_response, parse_query};
use crate::shared::{Shared, lock};
use crate::state::ApiError;
use crate::types::Verb;

/// Core v1 Pods: `/api/v1/pods`, `/api/v1/namespaces/NS/pods[/NAME]`.
pub(super) fn pod_target(path: &str) -> Option<(Option<String>, Option<String>)> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["api", "v1", "pods"] => Some((None, None)),
        ["api", "v1", "namespaces", ns, "pods"] => Some((Some((*ns).to_owned()), None)),
        ["api", "v1", "namespaces", ns, "pods", name] => {
            Some((Some((*ns).to_owned()), Some((*name).to_owned())))
        }
        _ => None,
    }
}

pub(super) fn handle_pods(
    shared: &Shared,
    req: &Request<Incoming>,
    ns: Option<String>,
    name: Option<String>,
) -> Response<Body> {
    let query = parse_query(req.uri().query());
    let watching = query.get("watch").is_some_and(|w| w == "true" || w == "1");
    let verb = match (&name, req.method()) {
        (Some(_), &http::Method::GET) => Verb::Get,
        (None, &http::Method::GET) if watching => Verb::Watch,
        (None, &http::Method::GET) => Verb::List,
        _ => {
            return error_response(&ApiError::new(
                405,
                "MethodNotAllowed",
                "the fake API serves pods for get, list and watch only",
            ));
        }
    };
    *lock(&shared.counts)
        .entry((verb, "pods".to_owned()))
        .or_insert(0) += 1;
    if authenticate(shared, req).is_none() {
        return error_response(&ApiError::new(401, "Unauthorized", "Unauthorized"));
    }
    let node = match crate::pods::node_selector(&query) {
        Ok(n) => n,
        Err(e) => return error_response(&e),
    };
    let mut pods = lock(&shared.pods);
    match (verb, ns, name) {
        (Verb::Get, Some(ns), Some(name)) => match pods.get(&ns, &name) {
            Ok(v) => json_response(StatusCode::OK, &v),
            Err(e) => error_response(&e),
        },
        (Verb::List, ns, _) => {
            json_response(StatusCode::OK, &pods.list(ns.as_deref(), node.as_deref()))
        }
        (_, ns, _) => {
            let rx = pods.watch(ns, node);
            drop(pods);
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
            resp
        }
    }
}
