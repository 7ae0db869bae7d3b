//! The CSI clients reach a gRPC server on a unix socket.
#![allow(clippy::unwrap_used)]

use cmcsi_proto::v1::identity_server::{Identity, IdentityServer};
use cmcsi_proto::v1::{
    GetPluginCapabilitiesRequest, GetPluginCapabilitiesResponse, GetPluginInfoRequest,
    GetPluginInfoResponse, NodeGetInfoRequest, ProbeRequest, ProbeResponse,
};
use tonic::{Request, Response, Status};

struct Plugin;

#[tonic::async_trait]
impl Identity for Plugin {
    async fn get_plugin_info(
        &self,
        _: Request<GetPluginInfoRequest>,
    ) -> Result<Response<GetPluginInfoResponse>, Status> {
        Ok(Response::new(GetPluginInfoResponse {
            name: "csi.cert-manager.io".into(),
            vendor_version: "test".into(),
            manifest: Default::default(),
        }))
    }
    async fn get_plugin_capabilities(
        &self,
        _: Request<GetPluginCapabilitiesRequest>,
    ) -> Result<Response<GetPluginCapabilitiesResponse>, Status> {
        Ok(Response::new(GetPluginCapabilitiesResponse::default()))
    }
    async fn probe(&self, _: Request<ProbeRequest>) -> Result<Response<ProbeResponse>, Status> {
        Ok(Response::new(ProbeResponse { ready: Some(true) }))
    }
}

#[tokio::test]
async fn identity_and_node_clients_over_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("csi.sock");
    let listener = tokio::net::UnixListener::bind(&sock).unwrap();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(IdentityServer::new(Plugin))
            .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener)),
    );
    let mut id = cmcsi_testkit::identity_client(&sock).await.unwrap();
    let info = id
        .get_plugin_info(GetPluginInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.name, "csi.cert-manager.io");
    assert_eq!(
        id.probe(ProbeRequest {}).await.unwrap().into_inner().ready,
        Some(true)
    );
    // The server has no Node service: the call arrives and is answered UNIMPLEMENTED.
    let mut node = cmcsi_testkit::csi_client(&sock).await.unwrap();
    let err = node.node_get_info(NodeGetInfoRequest {}).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);
    server.abort();
}
