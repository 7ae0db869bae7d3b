//! The CSI Node service.

use cmcsi_proto::v1::node_server::Node;
use cmcsi_proto::v1::node_service_capability::{Rpc, Type as CapType, rpc::Type as RpcType};
use cmcsi_proto::v1::{
    NodeExpandVolumeRequest, NodeExpandVolumeResponse, NodeGetCapabilitiesRequest,
    NodeGetCapabilitiesResponse, NodeGetInfoRequest, NodeGetInfoResponse,
    NodeGetVolumeStatsRequest, NodeGetVolumeStatsResponse, NodePublishVolumeRequest,
    NodePublishVolumeResponse, NodeServiceCapability, NodeStageVolumeRequest,
    NodeStageVolumeResponse, NodeUnpublishVolumeRequest, NodeUnpublishVolumeResponse,
    NodeUnstageVolumeRequest, NodeUnstageVolumeResponse,
};
use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::driver::Driver;
use crate::rpclog::RpcLog;

/// The Node service of this driver.
#[derive(Debug, Clone)]
pub struct NodeService {
    node_id: String,
    driver: Arc<Driver>,
}

impl NodeService {
    /// A node service for the node named `node_id`.
    pub fn new(node_id: String, driver: Arc<Driver>) -> Self {
        NodeService { node_id, driver }
    }
}

fn unimplemented(what: &str) -> Status {
    Status::unimplemented(format!(
        "{what} is not supported: this driver serves only inline ephemeral volumes \
         (NodePublishVolume / NodeUnpublishVolume)"
    ))
}

fn require(value: &str, field: &str) -> Result<(), Status> {
    if value.is_empty() {
        return Err(Status::invalid_argument(format!(
            "{field} is required but was empty"
        )));
    }
    Ok(())
}

/// Checks the fields every NodePublishVolume must carry.
pub(crate) fn validate_publish(req: &NodePublishVolumeRequest) -> Result<(), Status> {
    require(&req.volume_id, "volume_id")?;
    require(&req.target_path, "target_path")?;
    if req.volume_capability.is_none() {
        return Err(Status::invalid_argument(
            "volume_capability is required but was missing",
        ));
    }
    Ok(())
}

/// Checks the fields every NodeUnpublishVolume must carry.
pub(crate) fn validate_unpublish(req: &NodeUnpublishVolumeRequest) -> Result<(), Status> {
    require(&req.volume_id, "volume_id")?;
    require(&req.target_path, "target_path")
}

#[tonic::async_trait]
impl Node for NodeService {
    async fn node_stage_volume(
        &self,
        request: Request<NodeStageVolumeRequest>,
    ) -> Result<Response<NodeStageVolumeResponse>, Status> {
        RpcLog::start("NodeStageVolume", &request.get_ref().volume_id)
            .finish(Err(unimplemented("NodeStageVolume")))
    }

    async fn node_unstage_volume(
        &self,
        request: Request<NodeUnstageVolumeRequest>,
    ) -> Result<Response<NodeUnstageVolumeResponse>, Status> {
        RpcLog::start("NodeUnstageVolume", &request.get_ref().volume_id)
            .finish(Err(unimplemented("NodeUnstageVolume")))
    }

    async fn node_publish_volume(
        &self,
        request: Request<NodePublishVolumeRequest>,
    ) -> Result<Response<NodePublishVolumeResponse>, Status> {
        let req = request.into_inner();
        let log = RpcLog::start("NodePublishVolume", &req.volume_id).pod(
            req.volume_context.get("csi.storage.k8s.io/pod.namespace"),
            req.volume_context.get("csi.storage.k8s.io/pod.name"),
        );
        let result = match validate_publish(&req) {
            Ok(()) => self
                .driver
                .publish(req)
                .await
                .map(|()| Response::new(NodePublishVolumeResponse {}))
                .map_err(|e| e.to_status()),
            Err(e) => Err(e),
        };
        log.finish(result)
    }

    async fn node_unpublish_volume(
        &self,
        request: Request<NodeUnpublishVolumeRequest>,
    ) -> Result<Response<NodeUnpublishVolumeResponse>, Status> {
        let req = request.into_inner();
        let log = RpcLog::start("NodeUnpublishVolume", &req.volume_id);
        let result = match validate_unpublish(&req) {
            Ok(()) => self
                .driver
                .unpublish(req)
                .await
                .map(|()| Response::new(NodeUnpublishVolumeResponse {}))
                .map_err(|e| e.to_status()),
            Err(e) => Err(e),
        };
        log.finish(result)
    }

    async fn node_get_volume_stats(
        &self,
        request: Request<NodeGetVolumeStatsRequest>,
    ) -> Result<Response<NodeGetVolumeStatsResponse>, Status> {
        RpcLog::start("NodeGetVolumeStats", &request.get_ref().volume_id)
            .finish(Err(unimplemented("NodeGetVolumeStats")))
    }

    async fn node_expand_volume(
        &self,
        request: Request<NodeExpandVolumeRequest>,
    ) -> Result<Response<NodeExpandVolumeResponse>, Status> {
        RpcLog::start("NodeExpandVolume", &request.get_ref().volume_id)
            .finish(Err(unimplemented("NodeExpandVolume")))
    }

    async fn node_get_capabilities(
        &self,
        _request: Request<NodeGetCapabilitiesRequest>,
    ) -> Result<Response<NodeGetCapabilitiesResponse>, Status> {
        // VOLUME_MOUNT_GROUP: the kubelet passes the Pod's fsGroup in
        // volume_capability.mount.volume_mount_group and we apply it.
        let cap = NodeServiceCapability {
            r#type: Some(CapType::Rpc(Rpc {
                r#type: RpcType::VolumeMountGroup as i32,
            })),
        };
        RpcLog::quiet("NodeGetCapabilities", "").finish(Ok(Response::new(
            NodeGetCapabilitiesResponse {
                capabilities: vec![cap],
            },
        )))
    }

    async fn node_get_info(
        &self,
        _request: Request<NodeGetInfoRequest>,
    ) -> Result<Response<NodeGetInfoResponse>, Status> {
        RpcLog::quiet("NodeGetInfo", "").finish(Ok(Response::new(NodeGetInfoResponse {
            node_id: self.node_id.clone(),
            max_volumes_per_node: 0,
            accessible_topology: None,
        })))
    }
}
