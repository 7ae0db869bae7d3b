//! `cargo xtask e2e --container`: the image from `cargo xtask image`, run by
//! podman with the DaemonSet's driver container, and this process acting as
//! the kubelet from the host.
//!
//! The `podman run` flags are translated from the same typed DaemonSet that
//! generates `deploy/` ([`crate::deploy::daemon_set`]): the security context,
//! the hostPath volumes with their mount propagation, the environment and the
//! arguments. Only the host directories differ (a temporary kubelet root and
//! data directory). The fake API (testkit's, over HTTPS) is reached through
//! the in-cluster configuration, with a token and CA mounted where the
//! kubelet mounts them, on the host network.
//!
//! The scenario: publish through the plugin directory's socket; the files and
//! the read-only mount are visible from the host; the certificate renews;
//! `podman stop` ends the driver with exit code 0; a restarted container
//! recovers the volume (it renews again); unpublish leaves no mount and no
//! volume directory behind.
//!
//! Everything runs in a private mount namespace (`unshare --mount`), so the
//! host keeps none of the test's mounts even when it fails half way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cmcsi_proto::v1 as csi;
use cmcsi_testkit::kubelet::{Pod, prepare_target, publish_request};
use cmcsi_testkit::{FakeApi, Script};
use k8s_openapi::api::core::v1::{Container, PodSpec};

use crate::deploy;

/// Set in the environment of the run inside the mount namespace.
const INNER: &str = "CMCSI_E2E_CONTAINER_INNER";
/// The driver's ServiceAccount token in the fake API.
const TOKEN: &str = "container-e2e-driver-token";
/// The node name the kubelet would put in `spec.nodeName`.
const NODE: &str = "container-e2e-node";
/// Where the kubelet mounts a Pod's ServiceAccount token and CA.
const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Flags of `cargo xtask e2e`.
#[derive(Debug, clap::Args)]
pub struct E2eArgs {
    /// Run the container test instead: the OCI image under podman with the
    /// DaemonSet's driver container (needs root, podman and runc).
    #[arg(long)]
    pub container: bool,
    /// With --container: use the release binary as it is (no cargo build).
    #[arg(long, requires = "container")]
    pub no_build: bool,
    /// The image archive for the run inside the mount namespace.
    #[arg(long, hide = true)]
    pub archive: Option<PathBuf>,
}

/// Prints why the container test cannot run here, or `None` when it can.
fn unavailable() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("not root (podman's runc containers and the host mounts need root)".into());
    }
    for (tool, hint) in [
        ("podman", "apt-get install podman runc"),
        ("runc", "apt-get install runc"),
        ("unshare", "apt-get install util-linux"),
    ] {
        let found = Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Some(format!("`{tool}` is not installed ({hint})"));
        }
    }
    None
}

/// The podman command with the project's containers.conf (unless the caller
/// chose another).
fn podman() -> Command {
    let mut c = Command::new("podman");
    if std::env::var_os("CONTAINERS_CONF").is_none() {
        c.env(
            "CONTAINERS_CONF",
            crate::workspace_root().join(".ci/containers.conf"),
        );
    }
    c
}

/// Runs podman with `args`, returning stdout; fails with its stderr.
fn podman_out(args: &[&str]) -> Result<String> {
    let out = podman()
        .args(args)
        .output()
        .context("could not start podman")?;
    if !out.status.success() {
        bail!(
            "`podman {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Entry point of `cargo xtask e2e --container`.
pub fn run(args: &E2eArgs) -> Result<()> {
    if std::env::var_os(INNER).is_some() {
        let archive = args.archive.clone().context("--archive is missing")?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        return rt.block_on(inner(&archive));
    }
    if let Some(why) = unavailable() {
        println!("SKIPPED: container e2e: {why}");
        return Ok(());
    }
    let started = Instant::now();
    let built = crate::image::build(&crate::image::Args {
        no_build: args.no_build,
        ..Default::default()
    })?;
    // podman itself may be installed but unable to run anything here (no
    // runc support, no cgroups): say so plainly rather than fail.
    let probe = podman()
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "/cert-manager-csi-driver",
        ])
        .arg(format!("oci-archive:{}", built.path.display()))
        .arg("--version")
        .output()
        .context("could not start podman")?;
    if !probe.status.success() {
        println!(
            "SKIPPED: container e2e: podman cannot run a container here: {}",
            String::from_utf8_lossy(&probe.stderr).trim()
        );
        return Ok(());
    }
    let me = std::env::current_exe()?;
    let status = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--"])
        .arg(me)
        .args(["e2e", "--container", "--archive"])
        .arg(&built.path)
        .env(INNER, "1")
        .status()
        .context("could not run `unshare` (util-linux)")?;
    if !status.success() {
        bail!("the container e2e test failed ({status})");
    }
    println!(
        "container e2e: passed in {:.0} s (image {})",
        started.elapsed().as_secs_f64(),
        built.manifest_digest
    );
    Ok(())
}

/// The `podman run` arguments (before the image) for `container` of `pod`,
/// as the kubelet would run it: `field_refs` gives the values of
/// `fieldRef` environment variables (e.g. `spec.nodeName`). Host paths of
/// `DirectoryOrCreate` volumes are created.
pub(crate) fn podman_run_args(
    pod: &PodSpec,
    container: &Container,
    field_refs: &BTreeMap<&str, String>,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    if let Some(sc) = &container.security_context {
        if sc.privileged == Some(true) {
            out.push("--privileged".into());
        }
        if let Some(caps) = &sc.capabilities {
            for c in caps.drop.iter().flatten() {
                out.extend(["--cap-drop".into(), c.clone()]);
            }
            for c in caps.add.iter().flatten() {
                out.extend(["--cap-add".into(), c.clone()]);
            }
        }
        if sc.read_only_root_filesystem == Some(true) {
            // Kubernetes adds no tmpfs on /tmp or /run; podman would.
            out.extend(["--read-only".into(), "--read-only-tmpfs=false".into()]);
        }
        if sc.allow_privilege_escalation == Some(false) {
            out.extend(["--security-opt".into(), "no-new-privileges".into()]);
        }
        match (sc.run_as_user, sc.run_as_group) {
            (Some(u), Some(g)) => out.extend(["--user".into(), format!("{u}:{g}")]),
            (Some(u), None) => out.extend(["--user".into(), u.to_string()]),
            _ => {}
        }
    }
    let volumes = pod.volumes.as_deref().unwrap_or_default();
    for m in container.volume_mounts.iter().flatten() {
        let v = volumes
            .iter()
            .find(|v| v.name == m.name)
            .with_context(|| format!("volumeMount `{}` names no volume of the Pod", m.name))?;
        let hp = v.host_path.as_ref().with_context(|| {
            format!(
                "volume `{}` is not a hostPath volume; only hostPath can be translated",
                v.name
            )
        })?;
        match hp.type_.as_deref() {
            Some("DirectoryOrCreate") => std::fs::create_dir_all(&hp.path)
                .with_context(|| format!("creating hostPath {}", hp.path))?,
            Some("Directory") if !Path::new(&hp.path).is_dir() => {
                bail!("hostPath {} (type Directory) does not exist", hp.path)
            }
            _ => {}
        }
        let mut opts = Vec::new();
        if m.read_only == Some(true) {
            opts.push("ro");
        }
        match m.mount_propagation.as_deref() {
            None | Some("None") => {}
            Some("HostToContainer") => opts.push("rslave"),
            Some("Bidirectional") => opts.push("rshared"),
            Some(other) => bail!("mountPropagation `{other}` of `{}` is unknown", m.name),
        }
        let mut spec = format!("{}:{}", hp.path, m.mount_path);
        if !opts.is_empty() {
            spec = format!("{spec}:{}", opts.join(","));
        }
        out.extend(["--volume".into(), spec]);
    }
    let mut env = BTreeMap::new();
    for e in container.env.iter().flatten() {
        let value = match (&e.value, &e.value_from) {
            (Some(v), None) => v.clone(),
            (None, Some(from)) => {
                let path = from
                    .field_ref
                    .as_ref()
                    .map(|f| f.field_path.as_str())
                    .with_context(|| {
                        format!("env `{}`: only fieldRef sources are translated", e.name)
                    })?;
                field_refs
                    .get(path)
                    .cloned()
                    .with_context(|| format!("env `{}`: no value for fieldRef `{path}`", e.name))?
            }
            (None, None) => String::new(),
            (Some(_), Some(_)) => bail!("env `{}` has both value and valueFrom", e.name),
        };
        out.extend(["--env".into(), format!("{}={value}", e.name)]);
        env.insert(e.name.clone(), value);
    }
    if let Some(cmd) = container.command.as_ref().and_then(|c| c.first()) {
        out.extend(["--entrypoint".into(), cmd.clone()]);
    }
    out.push("\u{0}IMAGE".into());
    for a in container.command.iter().flatten().skip(1) {
        out.push(expand(a, &env));
    }
    for a in container.args.iter().flatten() {
        out.push(expand(a, &env));
    }
    Ok(out)
}

/// Kubernetes' `$(VAR)` expansion in args (`$$` escapes; unknown names stay).
fn expand(arg: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = arg;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(a) = after.strip_prefix('$') {
            out.push('$');
            rest = a;
        } else if let Some(name) = after
            .strip_prefix('(')
            .and_then(|a| a.split_once(')'))
            .map(|(n, _)| n)
            .filter(|n| env.contains_key(*n))
        {
            out.push_str(&env[name]);
            rest = &after[name.len() + 2..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Makes `dir` a shared mount point (a bind onto itself), so a Bidirectional
/// volume under it propagates the container's mounts back.
fn make_shared(dir: &Path) -> Result<()> {
    use rustix::mount::{MountPropagationFlags, mount_bind, mount_change};
    mount_bind(dir, dir).with_context(|| format!("bind-mounting {} onto itself", dir.display()))?;
    mount_change(
        dir,
        MountPropagationFlags::SHARED | MountPropagationFlags::REC,
    )
    .with_context(|| format!("making {} a shared mount", dir.display()))?;
    Ok(())
}

/// Mount points at or under `dir`, with their options, from this mount
/// namespace's mountinfo.
fn mounts_under(dir: &Path) -> Result<Vec<(String, String)>> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    let dir = dir.display().to_string();
    Ok(info
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let (point, opts) = (*f.get(4)?, *f.get(5)?);
            (point == dir || point.starts_with(&format!("{dir}/")))
                .then(|| (point.to_string(), opts.to_string()))
        })
        .collect())
}

/// Removes the test's container when dropped.
struct ContainerGuard(String);

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        let _ = podman().args(["rm", "-f", "-t", "0", &self.0]).output();
    }
}

async fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) -> Result<()> {
    let start = Instant::now();
    while !ok() {
        if start.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

async fn inner(archive: &Path) -> Result<()> {
    let loaded = podman_out(&["load", "--quiet", "-i", &archive.display().to_string()])?;
    // "Loaded image: NAME" (or "Loaded image(s): ...").
    let image = loaded
        .lines()
        .last()
        .and_then(|l| l.split_once(": "))
        .map(|(_, n)| n.trim().to_string())
        .with_context(|| format!("podman load printed no image name: {loaded}"))?;
    println!("== loaded {image}");

    let tmp = tempfile::tempdir()?;
    let root = tmp.path();
    make_shared(root)?;
    let api = FakeApi::builder()
        .tls()
        .issuer("ca-issuer", Script::Sign)
        .start()
        .await?;
    api.add_token(
        TOKEN,
        "system:serviceaccount:cert-manager-csi-driver:cert-manager-csi-driver",
    );
    let sa = root.join("serviceaccount");
    std::fs::create_dir_all(&sa)?;
    std::fs::write(sa.join("token"), TOKEN)?;
    std::fs::write(sa.join("ca.crt"), api.ca_pem())?;
    std::fs::write(sa.join("namespace"), deploy::NAMESPACE)?;

    // The installed DaemonSet, with the node's directories under `root`.
    let settings = deploy::Settings {
        kubelet_root_dir: root.join("kubelet").display().to_string(),
        csi_data_dir: root.join("csi-data-dir").display().to_string(),
        image: image.clone(),
        ..Default::default()
    };
    let kubelet = PathBuf::from(&settings.kubelet_root_dir);
    for d in ["pods", "plugins_registry"] {
        std::fs::create_dir_all(kubelet.join(d))?;
    }
    let ds = deploy::daemon_set(&settings);
    let pod = ds
        .spec
        .and_then(|s| s.template.spec)
        .context("the DaemonSet has no Pod spec")?;
    let driver = pod
        .containers
        .iter()
        .find(|c| c.name == deploy::DRIVER_CONTAINER)
        .context("the DaemonSet has no driver container")?;
    let field_refs = BTreeMap::from([("spec.nodeName", NODE.to_string())]);
    let translated = podman_run_args(&pod, driver, &field_refs)?;
    let name = format!("cmcsi-e2e-{}", std::process::id());
    let mut args: Vec<String> = [
        "run",
        "--detach",
        "--name",
        &name,
        "--network",
        "host",
        "--volume",
        &format!("{}:{SERVICE_ACCOUNT_DIR}:ro", sa.display()),
        "--env",
        "KUBERNETES_SERVICE_HOST=127.0.0.1",
        "--env",
        &format!("KUBERNETES_SERVICE_PORT={}", api.addr().port()),
    ]
    .map(String::from)
    .to_vec();
    args.extend(
        translated
            .into_iter()
            .map(|a| if a == "\u{0}IMAGE" { image.clone() } else { a }),
    );
    println!("== podman {}", args.join(" "));
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    podman_out(&arg_refs)?;
    let _guard = ContainerGuard(name.clone());
    // `podman logs` replays the container's stderr on its own stderr.
    let logs = || {
        podman()
            .args(["logs", &name])
            .output()
            .map(|o| {
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                )
            })
            .unwrap_or_default()
    };

    let socket = kubelet.join(format!("plugins/{}/csi.sock", deploy::APP));
    let result = scenario(&api, &name, &kubelet, &socket, root).await;
    if result.is_err() {
        eprintln!("---- driver container log ----\n{}", logs());
    }
    result
}

async fn node_client(
    socket: &Path,
) -> Result<csi::node_client::NodeClient<tonic::transport::Channel>> {
    wait_for("the driver's CSI socket", Duration::from_secs(30), || {
        socket.exists()
    })
    .await?;
    let start = Instant::now();
    loop {
        match cmcsi_testkit::csi_client(socket).await {
            Ok(c) => return Ok(c),
            Err(e) if start.elapsed() > Duration::from_secs(10) => {
                bail!("connecting to {}: {e}", socket.display())
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn scenario(
    api: &FakeApi,
    name: &str,
    kubelet: &Path,
    socket: &Path,
    root: &Path,
) -> Result<()> {
    let mut node = node_client(socket).await?;
    let p = Pod::new("sandbox", "container-e2e-0");
    let volume = "csi-container-e2e-0";
    let target = kubelet.join(format!(
        "pods/{}/volumes/kubernetes.io~csi/tls/mount",
        p.uid
    ));
    prepare_target(&target)?;
    let attrs = [
        ("csi.cert-manager.io/issuer-name", "ca-issuer"),
        ("csi.cert-manager.io/dns-names", "container-e2e.sandbox.svc"),
        ("csi.cert-manager.io/duration", "6s"),
    ];
    let t0 = Instant::now();
    node.node_publish_volume(publish_request(volume, &target, p.context(&attrs)))
        .await
        .context("NodePublishVolume through the container's socket")?;
    println!("== published in {} ms", t0.elapsed().as_millis());

    // The host sees the files and a read-only mount at the target.
    let cert = |t: &Path| std::fs::read(t.join("crt.pem")).unwrap_or_default();
    let first = cert(&target);
    for f in ["crt.pem", "key.pem", "ca.pem"] {
        if !target.join(f).is_file() {
            bail!("{f} is not visible from the host at {}", target.display());
        }
    }
    let mounts = mounts_under(&target)?;
    let Some((_, opts)) = mounts.iter().find(|(p, _)| Path::new(p) == target) else {
        bail!(
            "the target {} is not a mount point on the host",
            target.display()
        );
    };
    if !opts.split(',').any(|o| o == "ro") {
        bail!("the target's mount is not read-only on the host's side (options {opts})");
    }
    if std::fs::write(target.join("probe"), b"x").is_ok() {
        bail!("the host could write into the Pod's read-only volume");
    }
    println!("== files and a read-only mount visible from the host");

    // Renewal: a 6 s certificate is renewed at about two thirds of its life.
    wait_for("the certificate to renew", Duration::from_secs(20), || {
        let now = cert(&target);
        !now.is_empty() && now != first
    })
    .await?;
    println!("== renewed");

    // SIGTERM from the runtime: a clean exit.
    podman_out(&["stop", "--time", "10", name])?;
    let code = podman_out(&["inspect", "--format", "{{.State.ExitCode}}", name])?;
    if code != "0" {
        bail!("the driver exited with code {code} on `podman stop` (SIGTERM); expected 0");
    }
    println!("== podman stop: exit code 0");

    // A restarted container recovers the volume: it keeps renewing it.
    let before = cert(&target);
    podman_out(&["start", name])?;
    let mut node = node_client(socket).await?;
    wait_for(
        "the restarted driver to renew the recovered volume",
        Duration::from_secs(30),
        || {
            let now = cert(&target);
            !now.is_empty() && now != before
        },
    )
    .await?;
    // The kubelet retries a publish after a restart; it is answered at once.
    node.node_publish_volume(publish_request(volume, &target, p.context(&attrs)))
        .await
        .context("republishing after the restart")?;
    println!("== restarted container recovered the volume");

    node.node_unpublish_volume(csi::NodeUnpublishVolumeRequest {
        volume_id: volume.to_string(),
        target_path: target.display().to_string(),
    })
    .await
    .context("NodeUnpublishVolume")?;
    let left: Vec<_> = mounts_under(&kubelet.join("pods"))?;
    if !left.is_empty() {
        bail!("mounts left under the kubelet's pods directory after unpublish: {left:?}");
    }
    let inmemfs = root.join("csi-data-dir/inmemfs");
    let volumes: Vec<_> = std::fs::read_dir(&inmemfs)
        .with_context(|| format!("reading {}", inmemfs.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    if !volumes.is_empty() {
        bail!(
            "volume directories left in {} after unpublish: {volumes:?}",
            inmemfs.display()
        );
    }
    println!(
        "== unpublished: no mount and no volume directory left ({} CertificateRequests made)",
        api.requests("sandbox").len()
    );
    podman_out(&["stop", "--time", "10", name])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daemonset_driver_container_translates_to_podman_flags() {
        let dir = tempfile::tempdir().unwrap();
        let s = deploy::Settings {
            kubelet_root_dir: dir.path().join("kubelet").display().to_string(),
            csi_data_dir: dir.path().join("data").display().to_string(),
            ..Default::default()
        };
        std::fs::create_dir_all(dir.path().join("kubelet/pods")).unwrap();
        std::fs::create_dir_all(dir.path().join("kubelet/plugins_registry")).unwrap();
        let pod = deploy::daemon_set(&s).spec.unwrap().template.spec.unwrap();
        let c = pod
            .containers
            .iter()
            .find(|c| c.name == deploy::DRIVER_CONTAINER)
            .unwrap();
        let refs = BTreeMap::from([("spec.nodeName", "n1".to_string())]);
        let a = podman_run_args(&pod, c, &refs).unwrap().join(" ");
        assert!(a.contains("--privileged"), "{a}");
        assert!(a.contains("--read-only --read-only-tmpfs=false"), "{a}");
        assert!(a.contains("--user 0"), "{a}");
        let k = dir.path().join("kubelet").display().to_string();
        assert!(
            a.contains(&format!("--volume {k}/pods:{k}/pods:rshared")),
            "{a}"
        );
        assert!(
            a.contains(&format!("--volume {k}/plugins/{}:/plugin ", deploy::APP)),
            "{a}"
        );
        assert!(a.contains(":/csi-data-dir:rshared"), "{a}");
        assert!(a.contains("--env NODE_ID=n1"), "{a}");
        assert!(a.contains("--node-id=n1"), "{a}");
        assert!(!a.contains("$(NODE_ID)"), "{a}");
        // DirectoryOrCreate volumes are created, as the kubelet does.
        assert!(dir.path().join("data").is_dir());
        assert!(podman_run_args(&pod, c, &BTreeMap::new()).is_err());
    }

    #[test]
    fn kubernetes_expansion() {
        let env = BTreeMap::from([("A".to_string(), "x".to_string())]);
        assert_eq!(expand("--a=$(A)", &env), "--a=x");
        assert_eq!(expand("$$(A) $(B) $", &env), "$(A) $(B) $");
    }
}
