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

pub mod config;
pub mod identity;
pub mod logging;
pub mod mount;
pub mod node;
mod rpclog;
pub mod socket;

use cmcsi_proto::v1::identity_server::IdentityServer;
use cmcsi_proto::v1::node_server::NodeServer;
use tokio_stream::wrappers::UnixListenerStream;

pub use config::Config;

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
}

/// Resolves when the process receives SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
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
    let listener = socket::bind(&config.endpoint)?;
    tracing::info!(
        endpoint = %config.endpoint.display(),
        driver = %config.driver_name,
        node = %config.node_id,
        version = env!("CARGO_PKG_VERSION"),
        "serving CSI"
    );
    let identity = identity::IdentityService::new(config.driver_name.clone());
    let node = node::NodeService::new(config.node_id.clone());
    let result = tonic::transport::Server::builder()
        .add_service(IdentityServer::new(identity))
        .add_service(NodeServer::new(node))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await;
    socket::remove(&config.endpoint);
    tracing::info!("stopped");
    Ok(result?)
}
