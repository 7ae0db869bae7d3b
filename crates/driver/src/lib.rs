//! # cmcsi-driver: the cert-manager CSI node driver
//!
//! The CSI Identity and Node services over a Unix socket, the issuance
//! pipeline, mounts, metrics and configuration. The binary
//! `cert-manager-csi-driver` only parses flags, sets up logging and calls
//! [`run`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), cmcsi_driver::RunError> {
//! use clap::Parser;
//! let cli = cmcsi_driver::config::Cli::parse_from([
//!     "cert-manager-csi-driver",
//!     "--node-id", "node-a",
//!     "--endpoint", "unix:///tmp/csi.sock",
//! ]);
//! cmcsi_driver::run(cli.into_config()).await
//! # }
//! ```
//!
//! The public API is what an embedder or the binary uses: [`run`] (and
//! [`run_until`], [`shutdown_signal`]), the [`config`] and its flags, and the
//! helpers the binary calls first ([`hardening`], [`logging`]), and the
//! `status` subcommand ([`status`]); [`build`]
//! says which build this is, and [`mount`] is public for the tests that
//! bind-mount as the driver does. Everything else is the driver's own.

mod blocking;
pub mod build;
pub mod config;
mod convert;
mod driver;
mod error;
mod events;
mod gates;
pub mod hardening;
mod health;
mod identity;
mod keystores;
mod locks;
pub mod logging;
mod metrics;
pub mod mount;
mod node;
mod pipeline;
mod probe;
mod publish;
mod readiness;
mod recovery;
mod rpclog;
mod selinux;
mod socket;
mod startup;
pub mod status;
mod timefmt;
mod trust;
mod trust_refresh;
mod volume;

use cmcsi_proto::v1::identity_server::IdentityServer;
use cmcsi_proto::v1::node_server::NodeServer;
use std::sync::Arc;

use tokio_stream::wrappers::UnixListenerStream;

pub use config::Config;
pub use socket::SocketError;

/// Why the driver stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The CSI socket could not be set up.
    #[error("cannot serve CSI: {0}")]
    Socket(#[from] socket::SocketError),
    /// The gRPC server failed.
    #[error("CSI gRPC server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
    /// The node store could not be opened or read.
    #[error("node store: {0}")]
    Store(#[from] cmcsi_store::StoreError),
    /// The configuration is inconsistent.
    #[error("configuration: {0}")]
    Config(String),
    /// The metrics endpoint could not be served.
    #[error("metrics endpoint: {0}")]
    Metrics(std::io::Error),
}

/// Installs SIGTERM and SIGINT handlers at once (so a signal that arrives
/// while the driver is still starting is not lost, nor fatal) and returns a
/// future that resolves when either arrives. Call it inside a Tokio runtime.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send {
    use tokio::signal::unix::{SignalKind, signal};
    let handlers = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        match handlers {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
                    _ = int.recv() => tracing::info!("SIGINT received, shutting down"),
                }
            }
            _ => {
                tracing::error!("cannot install signal handlers; stop with SIGKILL");
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Runs the driver until SIGTERM or SIGINT: in-flight calls finish, then the
/// socket is removed.
pub async fn run(config: Config) -> Result<(), RunError> {
    run_until(config, shutdown_signal()).await
}

/// Runs the driver until `shutdown` resolves.
pub async fn run_until(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), RunError> {
    // Before anything else: a CSI service reachable from the network is refused
    // (the binary checked this with the flags; embedders build a Config).
    let (endpoint, allow) = (
        config.endpoint.clone(),
        config.transport.allow_non_loopback_endpoint,
    );
    blocking::run((), "resolving the CSI endpoint", move || {
        config::check_endpoint(&endpoint, allow)
    })
    .await
    .map_err(|e| RunError::Config(e.to_string()))?
    .map_err(RunError::Config)?;
    // Chosen (and logged) once, before recovery re-mounts anything.
    mount::init(&config.data_root.join("mount-staging"));
    let driver = driver::Driver::start(config.clone()).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    if let Some(addr) = config.metrics_bind_address {
        let metrics = driver.metrics();
        let mut rx = stop_rx.clone();
        let listener = bind_metrics(addr).await.map_err(RunError::Metrics)?;
        let limits = config.metrics_limits;
        tokio::spawn(async move {
            let stop = async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            if let Err(e) = metrics::serve(listener, metrics, limits, stop).await {
                tracing::error!(error = %e, "metrics endpoint failed");
            }
        });
    }
    tracing::info!(
        endpoint = %config.endpoint,
        driver = %config.driver_name,
        node = %config.node_id,
        version = env!("CARGO_PKG_VERSION"),
        "serving CSI"
    );
    let identity =
        identity::IdentityService::for_driver(config.driver_name.clone(), Arc::clone(&driver));
    let node = node::NodeService::new(config.node_id.clone(), Arc::clone(&driver));
    let router = tonic::transport::Server::builder()
        .add_service(IdentityServer::new(identity))
        .add_service(NodeServer::new(node));
    let result = match &config.endpoint {
        config::Endpoint::Unix(path) => {
            let listener = socket::bind(path)?;
            let r = router
                .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
                .await;
            socket::remove(path);
            r
        }
        config::Endpoint::Tcp(addr) => {
            let listener = tokio::net::TcpListener::bind(addr.as_str())
                .await
                .map_err(|e| RunError::Config(format!("cannot listen on tcp://{addr}: {e}")))?;
            router
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    shutdown,
                )
                .await
        }
    };
    let _ = stop_tx.send(true);
    driver.shutdown();
    tracing::info!("stopped");
    Ok(result?)
}

/// Binds the metrics listener. `[::]` listens on IPv6 and IPv4 (the kernel's
/// default dual-stack socket); on a node without IPv6 it falls back to
/// `0.0.0.0`.
async fn bind_metrics(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    match tokio::net::TcpListener::bind(addr).await {
        Err(e) if addr.ip() == std::net::Ipv6Addr::UNSPECIFIED => {
            let v4 = std::net::SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, addr.port()));
            tracing::warn!(error = %e, "cannot listen on [::]; metrics on 0.0.0.0 only");
            tokio::net::TcpListener::bind(v4).await
        }
        other => other,
    }
}
