//! The CSI Identity service.

use cmcsi_proto::v1::identity_server::Identity;
use cmcsi_proto::v1::{
    GetPluginCapabilitiesRequest, GetPluginCapabilitiesResponse, GetPluginInfoRequest,
    GetPluginInfoResponse, ProbeRequest, ProbeResponse,
};
use tonic::{Request, Response, Status};

use crate::probe::Readiness;
use crate::rpclog::RpcLog;

/// Identity: the driver's name and version, no plugin capabilities (there is
/// no controller service), and readiness.
#[derive(Debug, Clone)]
pub struct IdentityService {
    driver_name: String,
    readiness: Readiness,
}

impl IdentityService {
    /// An identity service answering with `driver_name`, ready only while
    /// `driver` is (see the `readiness` module):
    /// its watch has listed, its tmpfs is mounted, its watch works.
    pub fn for_driver(driver_name: String, driver: std::sync::Arc<crate::driver::Driver>) -> Self {
        IdentityService {
            driver_name,
            readiness: Readiness::new(driver),
        }
    }
}

#[tonic::async_trait]
impl Identity for IdentityService {
    async fn get_plugin_info(
        &self,
        _request: Request<GetPluginInfoRequest>,
    ) -> Result<Response<GetPluginInfoResponse>, Status> {
        let log = RpcLog::quiet("GetPluginInfo", "");
        log.finish(Ok(Response::new(GetPluginInfoResponse {
            name: self.driver_name.clone(),
            vendor_version: env!("CARGO_PKG_VERSION").to_string(),
            manifest: Default::default(),
        })))
    }

    async fn get_plugin_capabilities(
        &self,
        _request: Request<GetPluginCapabilitiesRequest>,
    ) -> Result<Response<GetPluginCapabilitiesResponse>, Status> {
        // A node-only driver for inline ephemeral volumes: no controller
        // service, no topology, no expansion.
        let log = RpcLog::quiet("GetPluginCapabilities", "");
        log.finish(Ok(Response::new(GetPluginCapabilitiesResponse {
            capabilities: vec![],
        })))
    }

    async fn probe(
        &self,
        _request: Request<ProbeRequest>,
    ) -> Result<Response<ProbeResponse>, Status> {
        let log = RpcLog::quiet("Probe", "");
        let ready = self.readiness.ready().await;
        log.finish(Ok(Response::new(ProbeResponse { ready: Some(ready) })))
    }
}
