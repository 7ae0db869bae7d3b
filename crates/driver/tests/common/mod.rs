//! End-to-end harness: the real driver binary, real mounts in a private
//! mount namespace, and testkit's fake Kubernetes API with its test CA.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cmcsi_proto::v1::node_client::NodeClient;
use cmcsi_proto::v1::{self as csi};
pub use cmcsi_testkit::kubelet::Pod;
use cmcsi_testkit::kubelet::{DriverProcess, publish_request};
use cmcsi_testkit::{FakeApi, Script};
use tonic::transport::Channel;

pub const BIN: &str = env!("CARGO_BIN_EXE_cert-manager-csi-driver");
const IN_NS: &str = "CMCSI_E2E_IN_NAMESPACE";

/// Runs `body` inside a private mount namespace: the test re-executes its
/// own binary for just this test under `unshare --mount`, so mounts made
/// by the driver never reach the host. Without the privilege to do so the
/// test says plainly that it was skipped.
pub fn in_namespace<F, Fut>(test: &str, body: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    if std::env::var_os(IN_NS).is_some() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(body());
        return;
    }
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIPPED {test}: needs root to create a private mount namespace");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let status = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--"])
        .arg(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(IN_NS, "1")
        .status()
        .expect("unshare (util-linux) must be installed");
    assert!(status.success(), "{test} failed inside its mount namespace");
}

pub struct Harness {
    pub api: FakeApi,
    pub dir: tempfile::TempDir,
    pub data_root: PathBuf,
    pub driver: DriverProcess,
}

pub const TOKEN: &str = "driver-token";

impl Harness {
    /// A fake API with `ca-issuer` signing, and the driver started with
    /// `args` added to its flags.
    pub async fn start(args: &[&str]) -> Harness {
        let api = FakeApi::builder()
            .issuer("ca-issuer", Script::Sign)
            .start()
            .await
            .unwrap();
        api.add_token(
            TOKEN,
            "system:serviceaccount:cert-manager:cert-manager-csi-driver",
        );
        Self::with_api(api, args).await
    }

    pub async fn with_api(api: FakeApi, args: &[&str]) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        api.write_kubeconfig(&kubeconfig, TOKEN).unwrap();
        let data_root = dir.path().join("data");
        let mut all: Vec<String> = vec![
            "--node-id".into(),
            "node-a".into(),
            "--data-root".into(),
            data_root.display().to_string(),
            "--log-level".into(),
            "debug".into(),
            "--issuance-timeout".into(),
            "20s".into(),
            "--kubeconfig".into(),
            kubeconfig.display().to_string(),
        ];
        all.extend(args.iter().map(|s| s.to_string()));
        let driver = DriverProcess::spawn(
            Path::new(BIN),
            &dir.path().join("plugin/csi.sock"),
            &dir.path().join("driver.log"),
            &all,
        )
        .await
        .unwrap();
        Harness {
            api,
            dir,
            data_root,
            driver,
        }
    }

    pub async fn restart_driver(&mut self) {
        self.driver.restart().await.unwrap();
    }

    pub fn kill_driver(&mut self) {
        self.driver.kill();
    }

    pub fn logs(&self) -> String {
        self.driver.logs()
    }

    pub async fn node(&self) -> NodeClient<Channel> {
        self.driver.node().await.unwrap()
    }

    pub fn target(&self, volume: &str) -> PathBuf {
        self.dir
            .path()
            .join("pods")
            .join(volume)
            .join("volumes/kubernetes.io~csi/tls/mount")
    }

    pub fn request(
        volume: &str,
        target: &Path,
        ctx: HashMap<String, String>,
    ) -> csi::NodePublishVolumeRequest {
        publish_request(volume, target, ctx)
    }

    /// Publishes `volume` for `pod` with `attrs`; returns the target path.
    pub async fn publish(
        &self,
        volume: &str,
        pod: &Pod,
        attrs: &[(&str, &str)],
    ) -> Result<PathBuf, tonic::Status> {
        let target = self.target(volume);
        self.node()
            .await
            .node_publish_volume(publish_request(volume, &target, pod.context(attrs)))
            .await
            .map(|_| target)
    }

    pub async fn unpublish(&self, volume: &str) -> Result<(), tonic::Status> {
        self.node()
            .await
            .node_unpublish_volume(csi::NodeUnpublishVolumeRequest {
                volume_id: volume.to_string(),
                target_path: self.target(volume).display().to_string(),
            })
            .await
            .map(|_| ())
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.driver.kill();
        if std::thread::panicking() {
            eprintln!("---- driver log ----\n{}", self.logs());
        }
    }
}

/// Reads a file of a mounted volume.
pub fn read(target: &Path, name: &str) -> Vec<u8> {
    std::fs::read(target.join(name))
        .unwrap_or_else(|e| panic!("reading {name} from {}: {e}", target.display()))
}

/// Whether `path` is a mount point.
pub fn is_mounted(path: &Path) -> bool {
    cmcsi_driver::mount::is_mount_point(path).unwrap()
}

/// Waits until `f` holds, polling.
pub async fn eventually(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
