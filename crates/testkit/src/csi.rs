//! CSI gRPC clients over a unix socket, for driving a node plugin in tests.

use cmcsi_proto::v1::identity_client::IdentityClient;
use cmcsi_proto::v1::node_client::NodeClient;
use hyper_util::rt::TokioIo;
use std::path::{Path, PathBuf};
use tonic::transport::{Channel, Endpoint, Uri};

/// A tonic channel to a gRPC server listening on a unix socket.
///
/// The URI is a placeholder: every connection goes to `socket_path`.
pub async fn csi_channel(
    socket_path: impl AsRef<Path>,
) -> Result<Channel, tonic::transport::Error> {
    let path: PathBuf = socket_path.as_ref().to_path_buf();
    Endpoint::from_static("http://[::1]:50051")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await
}

/// A CSI Node service client on a unix socket.
pub async fn csi_client(
    socket_path: impl AsRef<Path>,
) -> Result<NodeClient<Channel>, tonic::transport::Error> {
    Ok(NodeClient::new(csi_channel(socket_path).await?))
}

/// A CSI Identity service client on a unix socket.
pub async fn identity_client(
    socket_path: impl AsRef<Path>,
) -> Result<IdentityClient<Channel>, tonic::transport::Error> {
    Ok(IdentityClient::new(csi_channel(socket_path).await?))
}
