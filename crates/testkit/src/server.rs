//! HTTP side of the fake API: accept loop, routing, auth, faults, counters.

use crate::issuer;
use crate::selector::{FieldSelector, LabelSelector};
use crate::shared::{Ctl, Shared, lock};
use crate::state::{
    API_VERSION, ApiError, GROUP, KIND, PLURAL, UserInfo, WatchParams, json_patch, merge_patch,
};
use crate::types::{Fault, Verb};
use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

mod events;
mod lists;
mod objects;
mod pods;
mod route;
use events::{create_event, patch_event};
use pods::{handle_pods, pod_target};
use route::{Target, parse_query, route, verb_of};

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// The API server's default request body limit (3 MiB).
const MAX_BODY: usize = 3 * 1024 * 1024;

pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    // Rebinding the same port after going down must not wait for TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Accepts connections; goes down and up on command, on the same port.
pub(crate) async fn supervise(
    shared: Arc<Shared>,
    listener: TcpListener,
    addr: SocketAddr,
    mut ctl: mpsc::UnboundedReceiver<Ctl>,
) {
    let mut listener = Some(listener);
    loop {
        let mut conns = JoinSet::new();
        if let Some(l) = listener.take() {
            loop {
                tokio::select! {
                    accepted = l.accept() => {
                        if let Ok((stream, _)) = accepted {
                            let _ = stream.set_nodelay(true);
                            let shared = shared.clone();
                            conns.spawn(async move {
                                match shared.tls.clone() {
                                    None => serve(shared, stream, None).await,
                                    Some(acceptor) => {
                                        let Ok(tls) = acceptor.accept(stream).await else {
                                            return;
                                        };
                                        let user = tls.get_ref().1.peer_certificates()
                                            .and_then(|certs| certs.first())
                                            .and_then(|c| common_name(c.as_ref()));
                                        serve(shared, tls, user.map(ClientCert)).await
                                    }
                                }
                            });
                        }
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                    cmd = ctl.recv() => match cmd {
                        Some(Ctl::Up(ack)) => { let _ = ack.send(Ok(())); }
                        Some(Ctl::Down(ack)) => {
                            drop(l);
                            conns.shutdown().await;
                            shared.state().drop_watches();
                            lock(&shared.objects).drop_watches();
                            let _ = ack.send(());
                            break;
                        }
                        Some(Ctl::Shutdown(ack)) => {
                            drop(l);
                            conns.shutdown().await;
                            shared.state().drop_watches();
                            let _ = ack.send(());
                            return;
                        }
                        None => {
                            // The handle is gone: keep serving (the standalone
                            // process keeps no handle after start-up).
                            std::future::pending::<()>().await;
                        }
                    }
                }
            }
        }
        // Down: wait for a command.
        match ctl.recv().await {
            Some(Ctl::Up(ack)) => match bind(addr) {
                Ok(l) => {
                    listener = Some(l);
                    let _ = ack.send(Ok(()));
                }
                Err(e) => {
                    let _ = ack.send(Err(e));
                }
            },
            Some(Ctl::Down(ack)) => {
                let _ = ack.send(());
            }
            Some(Ctl::Shutdown(ack)) => {
                let _ = ack.send(());
                return;
            }
            None => return,
        }
    }
}

/// The user a verified client certificate names (its subject's CN), put in
/// each request's extensions.
#[derive(Clone)]
struct ClientCert(String);

/// Serves one connection (plain or TLS).
async fn serve<IO>(shared: Arc<Shared>, io: IO, client: Option<ClientCert>)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        let shared = shared.clone();
        if let Some(c) = &client {
            req.extensions_mut().insert(c.clone());
        }
        async move { Ok::<_, Infallible>(handle(shared, req).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), svc)
        .await;
}

/// The CN of a DER certificate's subject.
fn common_name(der: &[u8]) -> Option<String> {
    use der::Decode;
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    let subject = cert.tbs_certificate().subject().to_string();
    subject
        .split(',')
        .find_map(|rdn| rdn.trim().strip_prefix("CN="))
        .map(str::to_string)
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|e| match e {})
        .boxed_unsync()
}

fn json_response(code: StatusCode, v: &Value) -> Response<Body> {
    let mut resp = Response::new(full(serde_json::to_vec(v).unwrap_or_default()));
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp
}

fn error_response(e: &ApiError) -> Response<Body> {
    json_response(
        StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &e.status_json(),
    )
}

fn authenticate(shared: &Shared, req: &Request<Incoming>) -> Option<UserInfo> {
    let user = authenticate_caller(shared, req)?;
    // Impersonation (`Impersonate-User`, `Impersonate-Group`), as the API
    // server does after checking the caller's `impersonate` permission (the
    // fake has no RBAC: every caller may). A ServiceAccount name gets its
    // usual groups when no group is named.
    let Some(as_user) = req
        .headers()
        .get("impersonate-user")
        .and_then(|v| v.to_str().ok())
    else {
        return Some(user);
    };
    let mut info = UserInfo::new(as_user);
    let groups: Vec<String> = req
        .headers()
        .get_all("impersonate-group")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    if !groups.is_empty() {
        info.groups = groups;
    }
    Some(info)
}

fn authenticate_caller(shared: &Shared, req: &Request<Incoming>) -> Option<UserInfo> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        // As the API server: without a token, a verified client certificate
        // authenticates its CN.
        return req
            .extensions()
            .get::<ClientCert>()
            .map(|c| UserInfo::new(c.0.clone()));
    };
    let value = value.to_str().ok()?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?;
    lock(&shared.tokens).get(token.trim()).cloned()
}

fn take_fault(shared: &Shared, verb: Option<Verb>) -> Option<Fault> {
    let mut faults = lock(&shared.faults);
    let idx = faults
        .iter()
        .position(|f| f.remaining > 0 && (f.verb.is_none() || f.verb == verb))?;
    let rule = &mut faults[idx];
    rule.remaining -= 1;
    let fault = rule.fault.clone();
    if rule.remaining == 0 {
        faults.remove(idx);
    }
    Some(fault)
}

fn fault_response(fault: &Fault) -> Response<Body> {
    match fault {
        Fault::Status(code) => {
            let reason = match code {
                503 => "ServiceUnavailable",
                504 => "Timeout",
                _ => "InternalError",
            };
            error_response(&ApiError::new(
                *code,
                reason,
                format!("injected fault: HTTP {code}"),
            ))
        }
        Fault::TooManyRequests { retry_after_secs } => {
            let mut resp = error_response(&ApiError::new(
                429,
                "TooManyRequests",
                "injected fault: too many requests, please try again later",
            ));
            if let Ok(v) = header::HeaderValue::from_str(&retry_after_secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            resp
        }
    }
}

/// DELETE with optional `DeleteOptions` preconditions (uid, resourceVersion).
async fn delete(
    shared: &Shared,
    ns: &str,
    name: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let (_, opts) = read_json_or_empty(req).await?;
    let uid = opts.pointer("/preconditions/uid").and_then(Value::as_str);
    let rv = opts
        .pointer("/preconditions/resourceVersion")
        .and_then(Value::as_str);
    let mut st = shared.state();
    let current = st.get(ns, name)?;
    for (field, want) in [("uid", uid), ("resourceVersion", rv)] {
        let have = current
            .pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_str);
        if let Some(want) = want
            && Some(want) != have
        {
            return Err(ApiError {
                name: Some(name.to_string()),
                ..ApiError::new(
                    409,
                    "Conflict",
                    format!(
                        "Operation cannot be fulfilled on {PLURAL}.{GROUP} \"{name}\": Precondition failed: {field}: {want}, {field} in object meta: {}",
                        have.unwrap_or("")
                    ),
                )
            });
        }
    }
    st.delete(ns, name)
        .map(|v| json_response(StatusCode::OK, &v))
}

async fn read_json_or_empty(req: Request<Incoming>) -> Result<(Option<String>, Value), ApiError> {
    let bytes = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| ApiError::new(413, "RequestEntityTooLarge", e.to_string()))?
        .to_bytes();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok((None, json!({})));
    }
    let v = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))?;
    Ok((None, v))
}

async fn read_json(req: Request<Incoming>) -> Result<(Option<String>, Value), ApiError> {
    let ctype = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.split(';').next().unwrap_or(s).trim().to_string());
    let bytes = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| ApiError::new(413, "RequestEntityTooLarge", e.to_string()))?
        .to_bytes();
    let v = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))?;
    Ok((ctype, v))
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    if let Some((ns, name)) = pod_target(req.uri().path()) {
        return handle_pods(&shared, &req, ns, name);
    }
    if let Some(t) = objects::target(req.uri().path()) {
        return objects::handle(&shared, req, t).await;
    }
    let target = route(req.uri().path());
    let query = parse_query(req.uri().query());
    let verb = verb_of(req.method(), &target, &query);
    let resource = match &target {
        Target::Object { status: true, .. } => format!("{PLURAL}/status"),
        Target::Collection { .. } | Target::Object { .. } => PLURAL.to_string(),
        _ => req.uri().path().to_string(),
    };
    // Event writes are kept apart: neither counted with the
    // CertificateRequest calls nor failed by injected faults, so a test's
    // counts and scripted faults mean what they meant before Events existed.
    let is_event = matches!(target, Target::Events { .. } | Target::Event { .. });
    if is_event {
        shared.event_writes.fetch_add(1, Ordering::Relaxed);
    } else {
        if let Some(v) = verb {
            *lock(&shared.counts).entry((v, resource)).or_insert(0) += 1;
        }
        if let Some(fault) = take_fault(&shared, verb) {
            return fault_response(&fault);
        }
    }
    if let Target::Version = target {
        return json_response(
            StatusCode::OK,
            &json!({
                "major": "1", "minor": "33", "gitVersion": "v1.33.0",
                "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
                "buildDate": "2025-04-23T00:00:00Z", "goVersion": "go1.24.2", "compiler": "gc",
                "platform": "linux/amd64",
            }),
        );
    }
    let Some(user) = authenticate(&shared, &req) else {
        return error_response(&ApiError::new(401, "Unauthorized", "Unauthorized"));
    };
    let result = match (target, verb) {
        (Target::Discovery(v), _) => Ok(json_response(StatusCode::OK, &v)),
        (_, None) => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )),
        (Target::Events { ns }, Some(Verb::Create)) => create_event(&shared, &ns, req).await,
        (Target::Event { ns, name }, Some(Verb::Patch)) => {
            patch_event(&shared, &ns, &name, req).await
        }
        (Target::Collection { ns }, Some(Verb::Watch)) => watch(&shared, ns, &query),
        (Target::Collection { ns }, Some(Verb::List)) => list(&shared, ns.as_deref(), &query),
        (Target::Collection { ns: Some(ns) }, Some(Verb::Create)) => {
            create(&shared, &ns, req, &user).await
        }
        (Target::Collection { ns: Some(ns) }, Some(Verb::DeleteCollection)) => {
            delete_collection(&shared, &ns, &query)
        }
        (Target::Object { ns, name, .. }, Some(Verb::Get)) => shared
            .state()
            .get(&ns, &name)
            .map(|v| json_response(StatusCode::OK, &v)),
        (Target::Object { ns, name, status }, Some(Verb::Update)) => match read_json(req).await {
            Ok((_, body)) => shared
                .state()
                .replace(&ns, &name, body, status)
                .map(|v| json_response(StatusCode::OK, &v)),
            Err(e) => Err(e),
        },
        (Target::Object { ns, name, status }, Some(Verb::Patch)) => {
            patch(&shared, &ns, &name, status, req).await
        }
        (Target::Object { ns, name, .. }, Some(Verb::Delete)) => {
            delete(&shared, &ns, &name, req).await
        }
        _ => Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )),
    };
    result.unwrap_or_else(|e| error_response(&e))
}

fn selectors(query: &HashMap<String, String>) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))
        .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
    let fields = FieldSelector::parse(query.get("fieldSelector").map_or("", String::as_str))
        .map_err(ApiError::bad_request)?;
    Ok((labels, fields))
}

fn list(
    shared: &Shared,
    ns: Option<&str>,
    query: &HashMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    let (labels, fields) = selectors(query)?;
    let page = lists::Page::of(query);
    let st = shared.state();
    let all = st.select(ns, &labels, &fields);
    let key = |o: &Value| {
        format!(
            "{}/{}",
            o.pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or(""),
            o.pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
        )
    };
    let (items, meta) = page.apply(all.iter().map(|o| (key(o), &**o)), st.rv);
    Ok(json_response(
        StatusCode::OK,
        &json!({"kind": format!("{KIND}List"), "apiVersion": API_VERSION, "metadata": meta, "items": items}),
    ))
}

fn watch(
    shared: &Shared,
    ns: Option<String>,
    query: &HashMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    let (labels, fields) = selectors(query)?;
    let resource_version = match query.get("resourceVersion").map(String::as_str) {
        None | Some("") => None,
        Some(rv) => Some(
            rv.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version {rv:?}")))?,
        ),
    };
    let params = WatchParams {
        ns,
        labels,
        fields,
        bookmarks: query
            .get("allowWatchBookmarks")
            .is_some_and(|v| v == "true"),
        resource_version,
        send_initial_events: lists::streaming(shared, query)?,
    };
    let timeout = query
        .get("timeoutSeconds")
        .filter(|_| shared.honour_watch_timeouts.load(Ordering::Relaxed))
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs);
    let rx = match shared.state().watch(params) {
        Ok(rx) => rx,
        Err(e) if e.code == 410 => {
            // As the real API server: 200 with one ERROR event, then the end.
            let (tx, rx) = mpsc::unbounded_channel();
            let _ = tx.send(crate::state::event_line("ERROR", &e.status_json()));
            rx
        }
        Err(e) => return Err(e),
    };
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let stream = futures::stream::unfold(rx, move |mut rx| async move {
        let next = match deadline {
            Some(d) => tokio::time::timeout_at(d, rx.recv()).await.ok().flatten(),
            None => rx.recv().await,
        };
        next.map(|line| (Ok::<_, Infallible>(Frame::data(line)), rx))
    });
    let mut resp = Response::new(StreamBody::new(stream).boxed_unsync());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

async fn create(
    shared: &Arc<Shared>,
    ns: &str,
    req: Request<Incoming>,
    user: &UserInfo,
) -> Result<Response<Body>, ApiError> {
    let (_, body) = read_json(req).await?;
    let created = shared.state().create(ns, body, user)?;
    issuer::consider(shared, &created);
    Ok(json_response(StatusCode::CREATED, &created))
}

fn delete_collection(
    shared: &Shared,
    ns: &str,
    query: &HashMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    let (labels, fields) = selectors(query)?;
    let mut st = shared.state();
    let names: Vec<String> = st
        .select(Some(ns), &labels, &fields)
        .iter()
        .filter_map(|o| {
            o.pointer("/metadata/name")
                .and_then(Value::as_str)
                .map(String::from)
        })
        .collect();
    let items: Vec<Value> = names.iter().filter_map(|n| st.delete(ns, n).ok()).collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"kind": format!("{KIND}List"), "apiVersion": API_VERSION,
                "metadata": {"resourceVersion": st.rv.to_string()}, "items": items}),
    ))
}

async fn patch(
    shared: &Shared,
    ns: &str,
    name: &str,
    status: bool,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let (ctype, body) = read_json(req).await?;
    let mut st = shared.state();
    let mut obj = st.get(ns, name)?;
    match ctype.as_deref() {
        Some("application/merge-patch+json") | Some("application/apply-patch+yaml") => {
            merge_patch(&mut obj, &body)
        }
        Some("application/json-patch+json") => {
            json_patch(&mut obj, &body).map_err(|e| ApiError::new(422, "Invalid", e))?
        }
        Some("application/strategic-merge-patch+json") => {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                "strategic merge patch is not supported for custom resources",
            ));
        }
        other => {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                format!("the body of the request was in an unknown format: {other:?}"),
            ));
        }
    }
    // A patch carries no precondition unless it sets resourceVersion itself.
    st.replace(ns, name, obj, status)
        .map(|v| json_response(StatusCode::OK, &v))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
