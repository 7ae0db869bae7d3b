//! Acting as the kubelet: Pods' volume contexts, publish requests, and the
//! real driver binary as a child process. Shared by the driver's end-to-end
//! tests, `cargo xtask demo`, `bench` and `reliability`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cmcsi_attrs::keys;
use cmcsi_proto::v1::node_client::NodeClient;
use cmcsi_proto::v1::{self as csi, volume_capability};
use tonic::transport::Channel;

/// A Pod as the kubelet describes it in a volume context.
#[derive(Clone, Debug)]
pub struct Pod {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.uid`.
    pub uid: String,
    /// `spec.serviceAccountName`.
    pub service_account: String,
}

impl Pod {
    /// A Pod with a uid derived from its name and the `default` ServiceAccount.
    pub fn new(namespace: &str, name: &str) -> Pod {
        Pod {
            name: name.to_string(),
            namespace: namespace.to_string(),
            uid: format!("uid-{namespace}-{name}"),
            service_account: "default".to_string(),
        }
    }

    /// The volume context the kubelet sends with `podInfoOnMount: true`:
    /// `attrs` plus the `csi.storage.k8s.io/*` keys of this Pod.
    pub fn context(&self, attrs: &[(&str, &str)]) -> HashMap<String, String> {
        let mut c: HashMap<String, String> = attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        c.insert(keys::POD_NAME.into(), self.name.clone());
        c.insert(keys::POD_NAMESPACE.into(), self.namespace.clone());
        c.insert(keys::POD_UID.into(), self.uid.clone());
        c.insert(
            keys::SERVICE_ACCOUNT_NAME.into(),
            self.service_account.clone(),
        );
        c.insert(keys::EPHEMERAL.into(), "true".into());
        c
    }
}

/// What the kubelet does to a target path before NodePublishVolume: it
/// creates the target's parent (`.../volumes/kubernetes.io~csi/<volume>`)
/// and leaves `mount` itself to the driver. The parent exists for as long as
/// the Pod does, so the driver takes its absence to mean the Pod is gone.
pub fn prepare_target(target: &Path) -> std::io::Result<()> {
    match target.parent() {
        Some(parent) => std::fs::create_dir_all(parent),
        None => Ok(()),
    }
}

/// A NodePublishVolume request as the kubelet sends it for an inline
/// ephemeral volume (read-only, mount access).
pub fn publish_request(
    volume_id: &str,
    target: &Path,
    context: HashMap<String, String>,
) -> csi::NodePublishVolumeRequest {
    csi::NodePublishVolumeRequest {
        volume_id: volume_id.to_string(),
        target_path: target.display().to_string(),
        volume_capability: Some(csi::VolumeCapability {
            access_type: Some(volume_capability::AccessType::Mount(
                volume_capability::MountVolume::default(),
            )),
            access_mode: Some(volume_capability::AccessMode {
                mode: volume_capability::access_mode::Mode::SingleNodeReaderOnly as i32,
            }),
        }),
        readonly: true,
        volume_context: context,
        ..Default::default()
    }
}

/// The real driver binary running as a child process, with its stderr in
/// a log file.
#[derive(Debug)]
pub struct DriverProcess {
    bin: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// The CSI socket.
    pub socket: PathBuf,
    /// The driver's log file.
    pub log: PathBuf,
    child: Option<Child>,
}

impl DriverProcess {
    /// Starts `bin` with `--endpoint socket` and `args`, waiting until the
    /// socket exists.
    pub async fn spawn(
        bin: &Path,
        socket: &Path,
        log: &Path,
        args: &[String],
    ) -> std::io::Result<DriverProcess> {
        Self::spawn_with_env(bin, socket, log, args, &[]).await
    }

    /// [`DriverProcess::spawn`] with extra environment variables (kept for
    /// restarts), e.g. `KUBERNETES_SERVICE_HOST` for the in-cluster config.
    pub async fn spawn_with_env(
        bin: &Path,
        socket: &Path,
        log: &Path,
        args: &[String],
        env: &[(String, String)],
    ) -> std::io::Result<DriverProcess> {
        let mut d = DriverProcess {
            bin: bin.to_path_buf(),
            args: args.to_vec(),
            env: env.to_vec(),
            socket: socket.to_path_buf(),
            log: log.to_path_buf(),
            child: None,
        };
        d.restart().await?;
        Ok(d)
    }

    /// Starts the driver again (after [`DriverProcess::kill`]).
    pub async fn restart(&mut self) -> std::io::Result<()> {
        self.kill();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let _ = std::fs::remove_file(&self.socket);
        let child = Command::new(&self.bin)
            .arg("--endpoint")
            .arg(&self.socket)
            .args(&self.args)
            .env_remove("KUBECONFIG")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.socket.exists() {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                return Err(std::io::Error::other(format!(
                    "driver exited with {status}:\n{}",
                    self.logs()
                )));
            }
            if Instant::now() > deadline {
                return Err(std::io::Error::other("driver did not create its socket"));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// The child's exit status if it has exited, without waiting (`None`
    /// while it runs, or once killed).
    pub fn try_wait(&mut self) -> std::io::Result<Option<std::process::ExitStatus>> {
        match self.child.as_mut() {
            Some(child) => child.try_wait(),
            None => Ok(None),
        }
    }

    /// The child's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL, as a node-level crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Everything the driver has logged.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A Node service client.
    pub async fn node(&self) -> Result<NodeClient<Channel>, tonic::transport::Error> {
        crate::csi_client(&self.socket).await
    }
}

impl Drop for DriverProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
