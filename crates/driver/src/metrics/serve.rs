//! The `/metrics` endpoint: HTTP/1 only, with a header-read timeout, an idle
//! timeout and a cap on open connections that closes the longest-idle
//! connection to make room, so that no client that reaches the port can hold
//! the driver's memory or descriptors. Written on hyper's connection API
//! because axum's `serve` has no connection cap or idle timeout.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::Metrics;

/// Bounds of the `/metrics` server (HTTP/1 only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsLimits {
    /// Longest wait for a request's headers.
    pub header_timeout: Duration,
    /// A connection with no request for this long is closed.
    pub idle_timeout: Duration,
    /// Most open connections; at the cap the longest-idle one is closed
    /// for a new one, and a new one is refused only when none is idle.
    pub max_connections: usize,
}

impl Default for MetricsLimits {
    fn default() -> Self {
        MetricsLimits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_connections: 64,
        }
    }
}

/// One open connection, as the accept loop sees it.
struct Conn {
    /// A request is being answered.
    busy: AtomicBool,
    /// The end of the last request (or the accept).
    last: Mutex<Instant>,
    /// Closed to make room for a new connection.
    evict: Notify,
    /// The connection is gone.
    done: AtomicBool,
}

impl Conn {
    fn last(&self) -> Instant {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Serves `/metrics` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    limits: MetricsLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(address = %addr, "serving metrics at /metrics");
    }
    let mut shutdown = pin!(shutdown);
    let mut tasks = JoinSet::new();
    let mut open: Vec<Arc<Conn>> = Vec::new();
    let mut refused_logged = false;
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors, for instance: wait, do not spin.
                    tracing::warn!(error = %e, "metrics endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        open.retain(|c| !c.done.load(Ordering::Relaxed));
        if open.len() >= limits.max_connections {
            let idle = open
                .iter()
                .enumerate()
                .filter(|(_, c)| !c.busy.load(Ordering::Relaxed))
                .min_by_key(|(_, c)| c.last())
                .map(|(i, _)| i);
            match idle {
                Some(i) => {
                    open.swap_remove(i).evict.notify_one();
                }
                None => {
                    if !refused_logged {
                        tracing::warn!(
                            "metrics endpoint: --metrics-max-connections={} connections are all \
                             busy; refusing new ones",
                            limits.max_connections
                        );
                        refused_logged = true;
                    }
                    drop(stream);
                    continue;
                }
            }
        }
        refused_logged = false;
        let conn = Arc::new(Conn {
            busy: AtomicBool::new(false),
            last: Mutex::new(Instant::now()),
            evict: Notify::new(),
            done: AtomicBool::new(false),
        });
        open.push(Arc::clone(&conn));
        tasks.spawn(connection(stream, conn, Arc::clone(&metrics), limits));
    }
    tasks.shutdown().await;
    Ok(())
}

async fn connection(
    stream: tokio::net::TcpStream,
    conn: Arc<Conn>,
    metrics: Arc<Metrics>,
    limits: MetricsLimits,
) {
    let state = Arc::clone(&conn);
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        state.busy.store(true, Ordering::Relaxed);
        let resp = answer(&req, &metrics);
        *state.last.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
        state.busy.store(false, Ordering::Relaxed);
        std::future::ready(Ok::<_, std::convert::Infallible>(resp))
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let served = builder.serve_connection(TokioIo::new(stream), svc);
    let mut served = pin!(served);
    loop {
        let idle_until = conn.last() + limits.idle_timeout;
        tokio::select! {
            _ = served.as_mut() => break,
            () = conn.evict.notified() => break,
            () = tokio::time::sleep_until(idle_until) => {
                if !conn.busy.load(Ordering::Relaxed) && conn.last() + limits.idle_timeout <= Instant::now() {
                    break;
                }
            }
        }
    }
    conn.done.store(true, Ordering::Relaxed);
}

fn answer(req: &Request<Incoming>, metrics: &Metrics) -> Response<Full<Bytes>> {
    if req.uri().path() == "/metrics" && req.method() == http::Method::GET {
        let mut r = Response::new(Full::new(Bytes::from(metrics.encode())));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static(
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            ),
        );
        r
    } else {
        let mut r = Response::new(Full::new(Bytes::from_static(b"not found\n")));
        *r.status_mut() = StatusCode::NOT_FOUND;
        r
    }
}
