//! End-to-end harness: the real driver binary, real mounts in a private
//! mount namespace (each test's body runs in `cmcsi_testkit::in_mount_namespace!`),
//! and testkit's fake Kubernetes API with its test CA.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cmcsi_proto::v1::node_client::NodeClient;
use cmcsi_proto::v1::{self as csi};
pub use cmcsi_testkit::kubelet::Pod;
use cmcsi_testkit::kubelet::{DriverProcess, prepare_target, publish_request};
use cmcsi_testkit::{FakeApi, Script};
use tonic::transport::Channel;

pub const BIN: &str = env!("CARGO_BIN_EXE_cert-manager-csi-driver");

/// How the driver's process sees the node's directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// In the test's own mount namespace.
    Plain,
    /// As in the DaemonSet: the kubelet's pods directory and the data root
    /// are shared mounts (the DaemonSet mounts them with Bidirectional
    /// propagation), and the driver runs in a child mount namespace whose
    /// mounts there propagate back to the host's (the test's) side.
    DaemonSet,
}

/// Runs `mount` with `args`, failing the test on an error.
pub fn mount(args: &[&str]) {
    let out = Command::new("mount").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "mount {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes `dir` a mount of its own with shared propagation, as the kubelet's
/// root directory is on a node.
pub fn make_shared(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let d = dir.to_str().unwrap();
    mount(&["--bind", d, d]);
    mount(&["--make-rshared", d]);
}

/// The per-mount options of every mount stacked at `path` in this (the
/// host's) namespace, bottom first.
pub fn host_mount_options(path: &Path) -> Vec<Vec<String>> {
    let Ok(path) = std::fs::canonicalize(path) else {
        return Vec::new();
    };
    let want = path.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.get(4) == Some(&want.as_str()))
                .then(|| f[5].split(',').map(str::to_string).collect())
        })
        .collect()
}

/// From the host's side: `target` is mounted, every mount there is
/// read-only, nosuid, nodev and noexec, and writes fail with EROFS (the
/// test runs as root, so it is the mount, not a file mode, that refuses).
pub fn assert_read_only_on_host(target: &Path, when: &str) {
    let stack = host_mount_options(target);
    assert!(
        !stack.is_empty(),
        "{when}: {} is not mounted on the host's side (no propagation?)",
        target.display()
    );
    for opts in &stack {
        for want in ["ro", "nosuid", "nodev", "noexec"] {
            assert!(
                opts.iter().any(|o| o == want),
                "{when}: the host sees {} mounted with {opts:?}, without {want}",
                target.display()
            );
        }
    }
    let err = std::fs::write(target.join("planted"), b"x").unwrap_err();
    assert_eq!(
        err.raw_os_error(),
        Some(rustix::io::Errno::ROFS.raw_os_error()),
        "{when}: creating a file through the host's side of {}: {err}",
        target.display()
    );
    let err = std::fs::OpenOptions::new()
        .write(true)
        .open(target.join("crt.pem"))
        .unwrap_err();
    assert_eq!(
        err.raw_os_error(),
        Some(rustix::io::Errno::ROFS.raw_os_error()),
        "{when}: opening crt.pem for writing through the host's side: {err}"
    );
}

pub struct Harness {
    pub api: FakeApi,
    pub dir: tempfile::TempDir,
    pub data_root: PathBuf,
    pub driver: DriverProcess,
}

pub const TOKEN: &str = "driver-token";

/// Starts a fake API that knows the driver's token.
pub async fn fake_api(builder: cmcsi_testkit::Builder) -> FakeApi {
    let api = builder.start().await.unwrap();
    api.add_token(
        TOKEN,
        "system:serviceaccount:cert-manager:cert-manager-csi-driver",
    );
    api
}

impl Harness {
    /// A fake API with `ca-issuer` signing, and the driver started with
    /// `args` added to its flags.
    pub async fn start(args: &[&str]) -> Harness {
        Self::start_with(FakeApi::builder().issuer("ca-issuer", Script::Sign), args).await
    }

    pub async fn with_api(api: FakeApi, args: &[&str]) -> Harness {
        let kubeconfig = api.kubeconfig(TOKEN);
        Self::launch(api, Some(&kubeconfig), &[], args).await
    }

    /// The driver with this kubeconfig (`None`: no `--kubeconfig`, so the
    /// in-cluster configuration from `env`) and `args` added to its flags.
    pub async fn launch(
        api: FakeApi,
        kubeconfig: Option<&serde_json::Value>,
        env: &[(String, String)],
        args: &[&str],
    ) -> Harness {
        Self::launch_as(api, kubeconfig, env, args, Layout::Plain).await
    }

    /// The driver mounted as the DaemonSet mounts it (see
    /// [`Layout::DaemonSet`]), with a fake API that knows the driver's
    /// token and `args` added to its flags. Tests look at targets from the
    /// host's side: this test's own mount namespace.
    pub async fn daemonset(api: FakeApi, args: &[&str]) -> Harness {
        Self::daemonset_with_env(api, &[], args).await
    }

    /// [`Harness::daemonset`] with `env` set for the driver.
    pub async fn daemonset_with_env(api: FakeApi, env: &[(&str, &str)], args: &[&str]) -> Harness {
        let kubeconfig = api.kubeconfig(TOKEN);
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self::launch_as(api, Some(&kubeconfig), &env, args, Layout::DaemonSet).await
    }

    async fn launch_as(
        api: FakeApi,
        kubeconfig: Option<&serde_json::Value>,
        env: &[(String, String)],
        args: &[&str],
        layout: Layout,
    ) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let data_root = dir.path().join("data");
        let bin = match layout {
            Layout::Plain => PathBuf::from(BIN),
            Layout::DaemonSet => {
                make_shared(&dir.path().join("pods"));
                make_shared(&data_root);
                // `exec` twice, so the driver keeps the wrapper's pid (for
                // kill and /proc checks).
                let wrapper = dir.path().join("driver-in-its-namespace");
                std::fs::write(
                    &wrapper,
                    format!(
                        "#!/bin/sh\nexec unshare --mount --propagation unchanged -- '{BIN}' \"$@\"\n"
                    ),
                )
                .unwrap();
                std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
                wrapper
            }
        };
        let mut all: Vec<String> = vec![
            "--node-id".into(),
            "node-a".into(),
            "--data-root".into(),
            data_root.display().to_string(),
            "--log-level".into(),
            "debug".into(),
            "--issuance-timeout".into(),
            "20s".into(),
        ];
        if let Some(kc) = kubeconfig {
            let path = dir.path().join("kubeconfig");
            FakeApi::write_kubeconfig_value(&path, kc).unwrap();
            all.extend(["--kubeconfig".into(), path.display().to_string()]);
        }
        all.extend(args.iter().map(|s| s.to_string()));
        let driver = DriverProcess::spawn_with_env(
            &bin,
            &dir.path().join("plugin/csi.sock"),
            &dir.path().join("driver.log"),
            &all,
            env,
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
        prepare_target(target).unwrap();
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
        prepare_target(&target).unwrap();
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
        // The driver's tmpfs and bind mounts outlive it in the test's mount
        // namespace, and `TempDir` cannot remove a mount point: unmount
        // them, deepest first, so the directory goes too.
        let mut mounts = mounts_under(self.dir.path());
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = rustix::mount::unmount(m.as_str(), rustix::mount::UnmountFlags::DETACH);
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

// ---- Helpers for the reliability suite (reliability_*.rs) ----

/// The kubelet's view of the files of a mounted volume, read from one file
/// set: `..data` is resolved once, so a renewal swapping the set in between
/// never mixes a key from one issuance with a certificate from another.
/// `None` when the directory holds no file set (yet).
pub fn read_set(dir: &Path, key: &str, cert: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    for _ in 0..20 {
        let set = match std::fs::read_link(dir.join("..data")) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => panic!("reading {}/..data: {e}", dir.display()),
        };
        let base = dir.join(set);
        match (
            std::fs::read(base.join(key)),
            std::fs::read(base.join(cert)),
        ) {
            (Ok(k), Ok(c)) => return Some((k, c)),
            // The set was replaced between readlink and read: try again.
            (Err(e), _) | (_, Err(e)) if e.kind() == std::io::ErrorKind::NotFound => continue,
            (Err(e), _) | (_, Err(e)) => panic!("reading the set in {}: {e}", dir.display()),
        }
    }
    panic!(
        "{}: the file set kept changing under the reader",
        dir.display()
    );
}

/// Whether a key and certificate read from one set belong together.
pub fn set_matches(key: &[u8], cert: &[u8]) -> Result<(), String> {
    let pem = std::str::from_utf8(key).map_err(|e| format!("key is not UTF-8: {e}"))?;
    let key = cmcsi_keygen::PrivateKey::from_pem_any(pem).map_err(|e| format!("key: {e}"))?;
    let summary =
        cmcsi_keygen::ChainSummary::from_pem(cert).map_err(|e| format!("certificate: {e}"))?;
    if summary.leaf_matches_key(&key) {
        Ok(())
    } else {
        Err("the certificate is not for the key".into())
    }
}

/// Mount points at or below `dir`, from `/proc/self/mountinfo`.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let prefix = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|mp| *mp == prefix || mp.starts_with(&format!("{prefix}/")))
        .map(str::to_string)
        .collect()
}

/// The driver's log as JSON events (run it with `--log-format json`),
/// starting at byte `from` of the log file; lines that are not JSON (a
/// line cut by SIGKILL) are skipped.
pub fn json_events(log: &str, from: usize) -> Vec<serde_json::Value> {
    log.get(from..)
        .unwrap_or("")
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// CertificateRequests for one volume (by the driver's volume-id annotation).
pub fn requests_for(api: &FakeApi, volume: &str) -> Vec<serde_json::Value> {
    api.all_requests()
        .into_iter()
        .filter(|r| r["metadata"]["annotations"]["csi.cert-manager.io/volume-id"] == volume)
        .collect()
}

/// Whether a CertificateRequest has been signed.
pub fn is_signed(r: &serde_json::Value) -> bool {
    r["status"]["certificate"].is_string()
}

/// Whether a CertificateRequest has failed or been denied.
pub fn is_failed(r: &serde_json::Value) -> bool {
    r["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter().any(|c| {
            (c["type"] == "Ready" && c["status"] == "False" && c["reason"] != "Pending")
                || (c["type"] == "Denied" && c["status"] == "True")
                || (c["type"] == "InvalidRequest" && c["status"] == "True")
        })
    })
}

/// A small deterministic random source (xorshift64*), seeded and printed by
/// each test so a failing run can be replayed with `CMCSI_SEED`.
pub struct Rng(u64);

impl Rng {
    pub fn from_env(test: &str) -> Rng {
        let seed = std::env::var("CMCSI_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("{test}: seed {seed} (replay with CMCSI_SEED={seed})");
        Rng(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }

    /// True with probability `p` percent.
    pub fn chance(&mut self, p: u64) -> bool {
        self.next() % 100 < p
    }
}

impl Harness {
    /// A fake API built by `api` (the driver's token is added here), and the
    /// driver started with `args`.
    pub async fn start_with(api: cmcsi_testkit::Builder, args: &[&str]) -> Harness {
        Self::with_api(fake_api(api).await, args).await
    }

    /// The volume directory in the data root.
    pub fn volume_dir(&self, volume: &str) -> PathBuf {
        self.data_root.join("inmemfs").join(volume)
    }

    /// The CSI socket.
    pub fn socket(&self) -> PathBuf {
        self.driver.socket.clone()
    }

    /// Whether the driver still answers (NodeGetInfo).
    pub async fn serving(&self) -> bool {
        match self.driver.node().await {
            Ok(mut n) => n.node_get_info(csi::NodeGetInfoRequest {}).await.is_ok(),
            Err(_) => false,
        }
    }
}

/// Publishes with a fresh connection to `socket` (for tasks that outlive a
/// driver restart).
pub async fn publish_at(
    socket: &Path,
    req: csi::NodePublishVolumeRequest,
) -> Result<(), tonic::Status> {
    let mut node = cmcsi_testkit::csi_client(socket)
        .await
        .map_err(|e| tonic::Status::unavailable(format!("connect: {e}")))?;
    node.node_publish_volume(req).await.map(|_| ())
}

/// Unpublishes with a fresh connection to `socket`.
pub async fn unpublish_at(socket: &Path, volume: &str, target: &Path) -> Result<(), tonic::Status> {
    let mut node = cmcsi_testkit::csi_client(socket)
        .await
        .map_err(|e| tonic::Status::unavailable(format!("connect: {e}")))?;
    node.node_unpublish_volume(csi::NodeUnpublishVolumeRequest {
        volume_id: volume.to_string(),
        target_path: target.display().to_string(),
    })
    .await
    .map(|_| ())
}

/// A free `127.0.0.1:<port>` (for the driver's metrics endpoint).
pub fn free_port_address() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("127.0.0.1:{port}")
}

/// A plain HTTP/1.1 GET of `path` on `addr`; the whole response, headers
/// included, or `None` when nothing answers there (yet).
pub fn try_http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// [`try_http_get`] that panics when nothing answers.
pub fn http_get(addr: &str, path: &str) -> String {
    try_http_get(addr, path).unwrap_or_else(|| panic!("GET {path} on {addr}: no answer"))
}

/// The value of the unlabelled series `name` in a `/metrics` body.
pub fn metric_value(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The value of the unlabelled series `name` scraped from the driver's
/// metrics endpoint at `addr`; `None` when it is not up or lacks the series.
pub fn scrape(addr: &str, name: &str) -> Option<f64> {
    metric_value(&try_http_get(addr, "/metrics")?, name)
}

/// The kubelet's `csi.storage.k8s.io/serviceAccount.tokens` value carrying
/// `token` (token-request mode), for the default audience.
pub fn tokens(token: &str) -> String {
    format!(r#"{{"":{{"token":"{token}","expirationTimestamp":"2999-01-01T00:00:00Z"}}}}"#)
}

/// The serial number (hex) of the certificate in `target`'s `crt.pem`.
pub fn serial(target: &Path) -> String {
    cmcsi_keygen::ChainSummary::from_pem(&read(target, "crt.pem"))
        .unwrap()
        .serial_hex
}
