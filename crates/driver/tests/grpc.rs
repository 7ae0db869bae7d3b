//! The real driver binary on a temporary socket, called over CSI gRPC.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cmcsi_proto::v1::identity_client::IdentityClient;
use cmcsi_proto::v1::node_client::NodeClient;
use cmcsi_proto::v1::node_service_capability::Type as CapType;
use cmcsi_proto::v1::{self as csi, volume_capability};
use cmcsi_testkit::csi_channel;
use cmcsi_testkit::kubelet::DriverProcess;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

const BIN: &str = env!("CARGO_BIN_EXE_cert-manager-csi-driver");

/// The driver and the temporary directory of its socket and data root.
struct Driver {
    process: DriverProcess,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

/// Starts the driver without its data-root tmpfs: these tests publish no
/// volume, and they run in the machine's own mount namespace, where a tmpfs
/// mounted under the temporary directory would outlive the test (`TempDir`
/// cannot remove a mount point). Tests that mount use `in_mount_namespace!`.
async fn start() -> Driver {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("plugin/csi.sock");
    let args: Vec<String> = ["--node-id", "node-a", "--mount-tmpfs=false", "--data-root"]
        .iter()
        .map(|s| (*s).to_owned())
        .chain([dir.path().join("data").display().to_string()])
        .collect();
    let kubeconfig = dir.path().join("missing-kubeconfig").display().to_string();
    let process = DriverProcess::spawn_with_env(
        Path::new(BIN),
        &socket,
        &dir.path().join("driver.log"),
        &args,
        &[("KUBECONFIG".to_owned(), kubeconfig)],
    )
    .await
    .unwrap();
    Driver {
        process,
        socket,
        _dir: dir,
    }
}

async fn channel(path: &Path) -> Channel {
    csi_channel(path).await.unwrap()
}

fn mount_capability() -> csi::VolumeCapability {
    csi::VolumeCapability {
        access_type: Some(volume_capability::AccessType::Mount(
            volume_capability::MountVolume::default(),
        )),
        access_mode: Some(volume_capability::AccessMode {
            mode: volume_capability::access_mode::Mode::SingleNodeReaderOnly as i32,
        }),
    }
}

#[tokio::test]
async fn every_rpc_answers_as_a_node_only_driver() {
    let d = start().await;
    let ch = channel(&d.socket).await;
    let mut id = IdentityClient::new(ch.clone());
    let mut node = NodeClient::new(ch);

    let info = id
        .get_plugin_info(csi::GetPluginInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.name, "csi.cert-manager.io");
    assert_eq!(info.vendor_version, env!("CARGO_PKG_VERSION"));

    let caps = id
        .get_plugin_capabilities(csi::GetPluginCapabilitiesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(caps.capabilities.is_empty(), "no controller service");

    // Started without any Kubernetes configuration it can issue nothing, so
    // Probe says not ready (tests/health.rs has ready after the watch lists).
    let probe = id.probe(csi::ProbeRequest {}).await.unwrap().into_inner();
    assert_eq!(probe.ready, Some(false));

    let ncaps = node
        .node_get_capabilities(csi::NodeGetCapabilitiesRequest {})
        .await
        .unwrap()
        .into_inner();
    let types: Vec<i32> = ncaps
        .capabilities
        .iter()
        .map(|c| match &c.r#type {
            Some(CapType::Rpc(r)) => r.r#type,
            None => -1,
        })
        .collect();
    use csi::node_service_capability::rpc::Type as Rpc;
    assert_eq!(
        types,
        vec![
            Rpc::VolumeMountGroup as i32,
            Rpc::GetVolumeStats as i32,
            Rpc::VolumeCondition as i32
        ]
    );

    let ninfo = node
        .node_get_info(csi::NodeGetInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ninfo.node_id, "node-a");

    let code = node
        .node_stage_volume(csi::NodeStageVolumeRequest::default())
        .await
        .unwrap_err()
        .code();
    assert_eq!(code, Code::Unimplemented);
    let code = node
        .node_unstage_volume(csi::NodeUnstageVolumeRequest::default())
        .await
        .unwrap_err()
        .code();
    assert_eq!(code, Code::Unimplemented);
    // What csi-sanity's NodeGetVolumeStats cases ask: missing volume id or
    // path is INVALID_ARGUMENT, an unknown volume NOT_FOUND.
    let stats = |volume_id: &str, volume_path: &str| csi::NodeGetVolumeStatsRequest {
        volume_id: volume_id.into(),
        volume_path: volume_path.into(),
        staging_target_path: String::new(),
    };
    for (id, path) in [("", "/var/lib/kubelet/x"), ("csi-x", "")] {
        let code = node
            .node_get_volume_stats(stats(id, path))
            .await
            .unwrap_err()
            .code();
        assert_eq!(code, Code::InvalidArgument, "{id:?} {path:?}");
    }
    let code = node
        .node_get_volume_stats(stats("csi-unknown", "/var/lib/kubelet/x"))
        .await
        .unwrap_err()
        .code();
    assert_eq!(code, Code::NotFound);
    let code = node
        .node_expand_volume(csi::NodeExpandVolumeRequest::default())
        .await
        .unwrap_err()
        .code();
    assert_eq!(code, Code::Unimplemented);
}

#[tokio::test]
async fn publish_and_unpublish_name_the_missing_field() {
    let d = start().await;
    let mut node = NodeClient::new(channel(&d.socket).await);

    let full = csi::NodePublishVolumeRequest {
        volume_id: "csi-abc".into(),
        target_path: "/var/lib/kubelet/pods/x/volumes/tls".into(),
        volume_capability: Some(mount_capability()),
        readonly: true,
        ..Default::default()
    };
    for (req, field) in [
        (
            csi::NodePublishVolumeRequest {
                volume_id: String::new(),
                ..full.clone()
            },
            "volume_id",
        ),
        (
            csi::NodePublishVolumeRequest {
                target_path: String::new(),
                ..full.clone()
            },
            "target_path",
        ),
        (
            csi::NodePublishVolumeRequest {
                volume_capability: None,
                ..full.clone()
            },
            "volume_capability",
        ),
    ] {
        let st = node.node_publish_volume(req).await.unwrap_err();
        assert_eq!(st.code(), Code::InvalidArgument, "{st:?}");
        assert!(st.message().contains(field), "{}", st.message());
    }

    for (req, field) in [
        (
            csi::NodeUnpublishVolumeRequest {
                volume_id: String::new(),
                target_path: "/t".into(),
            },
            "volume_id",
        ),
        (
            csi::NodeUnpublishVolumeRequest {
                volume_id: "csi-abc".into(),
                target_path: String::new(),
            },
            "target_path",
        ),
    ] {
        let st = node.node_unpublish_volume(req).await.unwrap_err();
        assert_eq!(st.code(), Code::InvalidArgument, "{st:?}");
        assert!(st.message().contains(field), "{}", st.message());
    }
}

#[tokio::test]
async fn socket_is_private() {
    let d = start().await;
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn regular_file_at_socket_path_is_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("csi.sock");
    std::fs::write(&path, b"not a socket").unwrap();
    let out = Command::new(BIN)
        .args(["--node-id", "n", "--mount-tmpfs=false", "--endpoint"])
        .arg(&path)
        .arg("--data-root")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a Unix socket"), "{stderr}");
    assert_eq!(std::fs::read(&path).unwrap(), b"not a socket");
}

#[tokio::test]
async fn sigterm_stops_gracefully_and_removes_the_socket() {
    let mut d = start().await;
    let pid = rustix::process::Pid::from_raw(d.process.pid().unwrap() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = d.process.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "driver did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status:?}");
    assert!(!d.socket.exists(), "socket must be removed on shutdown");
}

#[test]
fn bad_flags_exit_with_code_2_and_say_why() {
    let out = Command::new(BIN)
        .args(["--node-id", "n", "--endpoint", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("tcp://host:port"), "{stderr}");

    // Gates without --continue-on-not-ready: refused at start, as in Go.
    let out = Command::new(BIN)
        .args(["--node-id", "n", "--endpoint", "/tmp/x.sock"])
        .arg("--pod-readiness-gate=pod-ip:any")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--continue-on-not-ready=true"), "{stderr}");

    let out = Command::new(BIN)
        .args(["--endpoint", "/tmp/x.sock"])
        .env_remove("NODE_ID")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--node-id"));
}

/// `tcp://host:port` endpoints (as csi-lib accepts): CSI served over TCP.
#[tokio::test]
async fn tcp_endpoint_serves_csi() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(BIN)
        .args(["--node-id", "node-a", "--mount-tmpfs=false"])
        .arg(format!("--endpoint=tcp://127.0.0.1:{port}"))
        .arg("--data-root")
        .arg(dir.path().join("data"))
        .env("KUBECONFIG", dir.path().join("missing-kubeconfig"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let channel = loop {
        match Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect()
            .await
        {
            Ok(c) => break c,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("driver does not serve tcp://127.0.0.1:{port}: {e}"),
        }
    };
    let info = IdentityClient::new(channel)
        .get_plugin_info(csi::GetPluginInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.name, "csi.cert-manager.io");
    let _ = child.kill();
    let _ = child.wait();
}
