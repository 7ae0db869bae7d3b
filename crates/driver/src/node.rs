//! The CSI Node service, and the one place a request is checked: every
//! proto request becomes a typed `PublishRequest` or `UnpublishRequest`
//! before the driver sees it.

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
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cmcsi_attrs::keys;
use cmcsi_proto::v1::volume_capability;
use cmcsi_store::VolumeSecrets;
use tonic::{Request, Response, Status};

use crate::driver::Driver;
use crate::error::DriverError;
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

fn require(value: &str, field: &str) -> Result<(), DriverError> {
    if value.is_empty() {
        return Err(DriverError::InvalidRequest(format!(
            "{field} is required but was empty"
        )));
    }
    Ok(())
}

fn volume_id_of(id: String) -> Result<String, DriverError> {
    require(&id, "volume_id")?;
    cmcsi_store::check_volume_id(&id)
        .map_err(|e| DriverError::InvalidRequest(format!("volume_id: {e}")))?;
    Ok(id)
}

/// A NodePublishVolume that passed every check that needs no volume state:
/// what publish works from, instead of the proto request.
#[derive(Debug)]
pub(crate) struct PublishRequest {
    /// A volume id the store accepts as a directory name.
    pub(crate) volume_id: String,
    /// An absolute path without `..` that is not a symbolic link.
    pub(crate) target_path: PathBuf,
    /// The volume context, with the kubelet's keys. May hold secrets (the
    /// Pod's tokens, a keystore password), so this type's `Debug` is only
    /// ever used in tests.
    pub(crate) context: BTreeMap<String, String>,
    /// The Pod's fsGroup from `volume_capability.mount.volume_mount_group`.
    pub(crate) mount_group: Option<u32>,
    /// The data of the volume's `nodePublishSecretRef` Secret, where keystore
    /// passwords are looked up. Its `Debug` shows the keys only, and its
    /// values are wiped when dropped.
    pub(crate) secrets: VolumeSecrets,
    /// When the kubelet stops waiting for the answer (its `grpc-timeout`),
    /// if it said.
    pub(crate) deadline: Option<Instant>,
    /// The SELinux context the kubelet asks the volume's files to carry
    /// (`context=` in `volume_capability.mount.mount_flags`), checked.
    pub(crate) selinux_context: Option<String>,
}

/// Refuses a volume context larger than `limit` bytes (keys and values
/// together) before anything of it is parsed or stored.
fn check_context_size(req: &NodePublishVolumeRequest, limit: usize) -> Result<(), DriverError> {
    let size: usize = req
        .volume_context
        .iter()
        .map(|(k, v)| k.len() + v.len())
        .sum();
    if size > limit {
        return Err(DriverError::InvalidRequest(format!(
            "the volume attributes total {size} bytes (keys and values); this node allows at most \
             {limit} (--max-volume-context-bytes): shorten the attributes of \
             pod.spec.volumes[].csi.volumeAttributes"
        )));
    }
    Ok(())
}

impl TryFrom<NodePublishVolumeRequest> for PublishRequest {
    type Error = DriverError;

    /// Checks in the order a person fixes them: missing fields first, then
    /// their form, then what this driver supports.
    fn try_from(req: NodePublishVolumeRequest) -> Result<Self, DriverError> {
        require(&req.volume_id, "volume_id")?;
        require(&req.target_path, "target_path")?;
        let Some(capability) = req.volume_capability else {
            return Err(DriverError::InvalidRequest(
                "volume_capability is required but was missing".into(),
            ));
        };
        let volume_id = volume_id_of(req.volume_id)?;
        let target_path = check_target_path(&req.target_path)?.to_path_buf();
        if req.volume_context.get(keys::EPHEMERAL).map(String::as_str) != Some("true") {
            return Err(DriverError::InvalidRequest(format!(
                "only inline ephemeral volumes are supported: declare the volume under \
                 pod.spec.volumes[].csi ({} must be \"true\"; the \
                 CSIDriver object must list volumeLifecycleModes: [Ephemeral])",
                keys::EPHEMERAL
            )));
        }
        if !req.readonly {
            return Err(DriverError::InvalidRequest(
                "pod.spec.volumes[].csi.readOnly must be set to true".into(),
            ));
        }
        let (mount_group, selinux_context) = match capability.access_type {
            Some(volume_capability::AccessType::Mount(m)) => (
                m.volume_mount_group,
                crate::selinux::context_of(&m.mount_flags)?,
            ),
            Some(volume_capability::AccessType::Block(_)) => {
                return Err(DriverError::InvalidRequest(
                    "block volumes are not supported: use a filesystem (mount) volume".into(),
                ));
            }
            None => (String::new(), None),
        };
        let mount_group = if mount_group.is_empty() {
            None
        } else {
            Some(mount_group.parse::<u32>().map_err(|_| {
                DriverError::InvalidRequest(format!(
                    "volume_capability.mount.volume_mount_group `{mount_group}` is not a numeric group id"
                ))
            })?)
        };
        Ok(PublishRequest {
            volume_id,
            target_path,
            context: req.volume_context.into_iter().collect(),
            mount_group,
            secrets: req.secrets.into_iter().collect(),
            deadline: None,
            selinux_context,
        })
    }
}

/// A NodeUnpublishVolume that passed its checks.
#[derive(Debug)]
pub(crate) struct UnpublishRequest {
    /// A volume id the store accepts as a directory name.
    pub(crate) volume_id: String,
    /// An absolute path without `..` that is not a symbolic link.
    pub(crate) target_path: PathBuf,
}

impl TryFrom<NodeUnpublishVolumeRequest> for UnpublishRequest {
    type Error = DriverError;

    fn try_from(req: NodeUnpublishVolumeRequest) -> Result<Self, DriverError> {
        require(&req.volume_id, "volume_id")?;
        require(&req.target_path, "target_path")?;
        let volume_id = volume_id_of(req.volume_id)?;
        let target_path = check_target_path(&req.target_path)?.to_path_buf();
        Ok(UnpublishRequest {
            volume_id,
            target_path,
        })
    }
}

/// The kubelet's target path, if it is safe to mount at: absolute, without
/// `..`, and not a symbolic link.
fn check_target_path(path: &str) -> Result<&Path, DriverError> {
    let p = Path::new(path);
    if !p.is_absolute() || path.contains('\0') {
        return Err(DriverError::InvalidRequest(format!(
            "target_path `{}` must be an absolute path",
            path.escape_debug()
        )));
    }
    if p.components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(DriverError::InvalidRequest(format!(
            "target_path `{}` must not contain `..`",
            path.escape_debug()
        )));
    }
    if let Ok(m) = std::fs::symlink_metadata(p)
        && m.file_type().is_symlink()
    {
        return Err(DriverError::InvalidRequest(format!(
            "target_path `{path}` is a symbolic link; refusing to mount through it"
        )));
    }
    Ok(p)
}

/// The caller's deadline from the `grpc-timeout` header (gRPC over HTTP/2:
/// at most 8 digits and a unit, `H` `M` `S` `m` `u` `n`); `None` when it is
/// absent or malformed (tonic then enforces no deadline either).
///
/// Parsed here because tonic, which enforces the same header by dropping
/// the call when it expires, keeps its parser private.
fn grpc_timeout(metadata: &tonic::metadata::MetadataMap) -> Option<Duration> {
    let value = metadata.get("grpc-timeout")?.to_str().ok()?;
    let split = value.len().checked_sub(1)?;
    let (digits, unit) = value.split_at(split);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
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
        let deadline = grpc_timeout(request.metadata()).map(|t| Instant::now() + t);
        let req = request.into_inner();
        let log = RpcLog::start("NodePublishVolume", &req.volume_id).pod(
            req.volume_context.get(keys::POD_NAMESPACE),
            req.volume_context.get(keys::POD_NAME),
        );
        let limit = self.driver.config.request_limits.max_volume_context_bytes;
        let result =
            match check_context_size(&req, limit).and_then(|()| PublishRequest::try_from(req)) {
                Ok(req) => {
                    self.driver
                        .publish(PublishRequest { deadline, ..req })
                        .await
                }
                Err(e) => Err(e),
            };
        let result = result
            .map(|()| Response::new(NodePublishVolumeResponse {}))
            .map_err(|e| e.to_status());
        log.finish(result)
    }

    async fn node_unpublish_volume(
        &self,
        request: Request<NodeUnpublishVolumeRequest>,
    ) -> Result<Response<NodeUnpublishVolumeResponse>, Status> {
        let req = request.into_inner();
        let log = RpcLog::start("NodeUnpublishVolume", &req.volume_id);
        let result = match UnpublishRequest::try_from(req) {
            Ok(req) => self.driver.unpublish(req).await,
            Err(e) => Err(e),
        };
        let result = result
            .map(|()| Response::new(NodeUnpublishVolumeResponse {}))
            .map_err(|e| e.to_status());
        log.finish(result)
    }

    async fn node_get_volume_stats(
        &self,
        request: Request<NodeGetVolumeStatsRequest>,
    ) -> Result<Response<NodeGetVolumeStatsResponse>, Status> {
        let req = request.into_inner();
        let log = RpcLog::quiet("NodeGetVolumeStats", &req.volume_id);
        let result = async {
            require(&req.volume_id, "volume_id")?;
            require(&req.volume_path, "volume_path")?;
            let volume_id = volume_id_of(req.volume_id)?;
            self.driver.volume_stats(&volume_id, &req.volume_path).await
        }
        .await;
        log.finish(
            result
                .map(|(usage, condition)| Response::new(volume_stats_response(&usage, condition)))
                .map_err(|e| e.to_status()),
        )
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
        // GET_VOLUME_STATS and VOLUME_CONDITION: the kubelet asks for each
        // volume's usage and condition (expired, overdue, failing).
        let capabilities = [
            RpcType::VolumeMountGroup,
            RpcType::GetVolumeStats,
            RpcType::VolumeCondition,
        ]
        .into_iter()
        .map(|t| NodeServiceCapability {
            r#type: Some(CapType::Rpc(Rpc { r#type: t as i32 })),
        })
        .collect();
        RpcLog::quiet("NodeGetCapabilities", "").finish(Ok(Response::new(
            NodeGetCapabilitiesResponse { capabilities },
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

/// The answer to `NodeGetVolumeStats`: bytes and inodes of the volume's
/// `data/` (total = used + what its tmpfs has left), and its condition.
fn volume_stats_response(
    usage: &cmcsi_store::VolumeUsage,
    condition: crate::health::Condition,
) -> NodeGetVolumeStatsResponse {
    use cmcsi_proto::v1::volume_usage::Unit;
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let of = |used: u64, available: u64, unit: Unit| cmcsi_proto::v1::VolumeUsage {
        available: n(available),
        total: n(used.saturating_add(available)),
        used: n(used),
        unit: unit as i32,
    };
    NodeGetVolumeStatsResponse {
        usage: vec![
            of(usage.used_bytes, usage.available_bytes, Unit::Bytes),
            of(usage.used_inodes, usage.available_inodes, Unit::Inodes),
        ],
        volume_condition: Some(cmcsi_proto::v1::VolumeCondition {
            abnormal: condition.abnormal,
            message: condition.message,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeout_of(value: &str) -> Option<Duration> {
        let mut m = tonic::metadata::MetadataMap::new();
        m.insert("grpc-timeout", value.parse().unwrap());
        grpc_timeout(&m)
    }

    #[test]
    fn grpc_timeout_units_and_malformed_values() {
        assert_eq!(timeout_of("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(timeout_of("120S"), Some(Duration::from_secs(120)));
        assert_eq!(timeout_of("3M"), Some(Duration::from_secs(180)));
        assert_eq!(timeout_of("1500m"), Some(Duration::from_millis(1500)));
        assert_eq!(timeout_of("7u"), Some(Duration::from_micros(7)));
        assert_eq!(
            timeout_of("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        for bad in ["", "S", "123456789S", "12x", "-1S", "1.5S", "12"] {
            assert_eq!(timeout_of(bad), None, "{bad:?}");
        }
        assert_eq!(grpc_timeout(&tonic::metadata::MetadataMap::new()), None);
    }
}
