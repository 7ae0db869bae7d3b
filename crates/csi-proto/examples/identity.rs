//! A CSI Identity service and a client calling it: the smallest plugin
//! the kubelet's registration would accept, served on an ephemeral
//! 127.0.0.1 port and asked for its name and readiness.
//!
//! ```text
//! cargo run -p cmcsi-proto --example identity
//! ```
//!
//! A real node plugin serves on a Unix socket the kubelet dials (tonic's
//! `serve_with_incoming` with `tokio_stream::wrappers::UnixListenerStream`);
//! TCP keeps this example short. Add `node_server::NodeServer` beside it for
//! the Node service.

use cmcsi_proto::v1::identity_client::IdentityClient;
use cmcsi_proto::v1::identity_server::{Identity, IdentityServer};
use cmcsi_proto::v1::{
    GetPluginCapabilitiesRequest, GetPluginCapabilitiesResponse, GetPluginInfoRequest,
    GetPluginInfoResponse, ProbeRequest, ProbeResponse,
};
use tonic::{Request, Response, Status};

/// Name, version, no capabilities (node-only), always ready.
struct ExampleIdentity;

#[tonic::async_trait]
impl Identity for ExampleIdentity {
    async fn get_plugin_info(
        &self,
        _request: Request<GetPluginInfoRequest>,
    ) -> Result<Response<GetPluginInfoResponse>, Status> {
        Ok(Response::new(GetPluginInfoResponse {
            name: "example.csi.k8s.io".into(),
            vendor_version: env!("CARGO_PKG_VERSION").into(),
            manifest: Default::default(),
        }))
    }

    async fn get_plugin_capabilities(
        &self,
        _request: Request<GetPluginCapabilitiesRequest>,
    ) -> Result<Response<GetPluginCapabilitiesResponse>, Status> {
        Ok(Response::new(GetPluginCapabilitiesResponse {
            capabilities: vec![],
        }))
    }

    async fn probe(
        &self,
        _request: Request<ProbeRequest>,
    ) -> Result<Response<ProbeResponse>, Status> {
        Ok(Response::new(ProbeResponse { ready: Some(true) }))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(IdentityServer::new(ExampleIdentity))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async {
                    let _ = stopped.await;
                },
            ),
    );

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let mut client = IdentityClient::new(channel);
    let info = client
        .get_plugin_info(GetPluginInfoRequest {})
        .await?
        .into_inner();
    let probe = client.probe(ProbeRequest {}).await?.into_inner();
    println!(
        "plugin {} {} on {addr}: ready={}",
        info.name,
        info.vendor_version,
        probe.ready.unwrap_or(false)
    );
    if probe.ready != Some(true) {
        return Err("the plugin is not ready".into());
    }

    let _ = stop.send(());
    server.await??;
    Ok(())
}
