//! `cargo xtask demo`: the driver end to end on this machine.
//!
//! Starts testkit's fake Kubernetes API with a test CA issuer, runs the real
//! driver binary in a private mount namespace (so its tmpfs and bind mounts
//! never touch the host), then acts as the kubelet for the Deployment from
//! the original documentation: five Pods, each with its own key and
//! certificate, printed; one short-lived certificate renewing live; two Pods
//! trusting each other across a CA rotation through a ClusterTrustBundle
//! ([`trust_rotation`]); then every Pod goes away and the node is shown clean.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use cmcsi_keygen::{ChainSummary, PrivateKey};
use cmcsi_proto::v1 as csi;
use cmcsi_testkit::kubelet::{DriverProcess, Pod, prepare_target, publish_request};
use cmcsi_testkit::mount_ns::{self, Privilege};
use cmcsi_testkit::{FakeApi, Script};

/// Marks the re-executed demo, inside its mount namespace.
const NAMESPACE_LABEL: &str = "xtask demo";
const TOKEN: &str = "demo-driver-token";

mod pod_certificates;
mod trust_rotation;

/// Flags of `cargo xtask demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Demonstrate the Pod signer instead (cert-manager-pod-signer: a PodCertificateRequest
    /// issued through a cert-manager issuer, verified against its ClusterTrustBundle).
    #[arg(long)]
    pod_certificates: bool,
    /// The driver binary (set by the demo itself for its run inside the
    /// mount namespace).
    #[arg(hide = true)]
    driver: Option<PathBuf>,
}

/// Entry point: builds the driver, then re-runs itself in a private mount
/// namespace.
pub fn run(args: &Args) -> Result<()> {
    if args.pod_certificates {
        return pod_certificates::run();
    }
    if mount_ns::is_inside(NAMESPACE_LABEL) {
        let driver = args.driver.clone().context("missing driver path")?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        return rt.block_on(inner(&driver));
    }
    crate::run(
        "cargo",
        &[
            "build",
            "--quiet",
            "-p",
            "cmcsi-driver",
            "--bin",
            "cert-manager-csi-driver",
        ],
        &[],
    )?;
    let driver = crate::workspace_root().join("target/debug/cert-manager-csi-driver");
    let me = std::env::current_exe()?;
    // Root: a private mount namespace. Otherwise: an unprivileged user
    // namespace, where we are root enough to mount a tmpfs and bind.
    if !rustix::process::geteuid().is_root() {
        eprintln!("note: not root; using an unprivileged user namespace for the mounts");
    }
    let status = mount_ns::unshare_command(&me, NAMESPACE_LABEL, Privilege::RootOrUserNamespace)
        .arg("demo")
        .arg(&driver)
        .status()
        .context("running unshare (util-linux)")?;
    if !status.success() {
        bail!(
            "the demo failed ({status}); it needs `unshare` and either root or unprivileged \
             user namespaces (sysctl kernel.unprivileged_userns_clone=1)"
        );
    }
    Ok(())
}

fn volume_id(pod: &Pod) -> String {
    let mut h = DefaultHasher::new();
    pod.uid.hash(&mut h);
    let x = h.finish();
    format!("csi-{x:016x}{x:016x}{x:016x}{x:016x}")
}

fn when(t: SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .map(|ts| ts.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

fn describe(target: &Path) -> Result<(String, String)> {
    let chain = std::fs::read(target.join("crt.pem"))?;
    let summary = ChainSummary::from_pem(&chain)?;
    let key_pem = std::fs::read_to_string(target.join("key.pem"))?;
    let key = PrivateKey::from_pem_any(&key_pem)?;
    let matches = if summary.leaf_matches_key(&key) {
        "matches the certificate"
    } else {
        "DOES NOT MATCH"
    };
    let text = format!(
        "    subject   {}\n    SANs      {}\n    issuer    {}\n    validity  {} .. {}\n    serial    {}\n    key       {} ({}), {matches}\n",
        if summary.subject.is_empty() {
            "(empty)"
        } else {
            &summary.subject
        },
        summary.dns_names.join(", "),
        summary.issuer,
        when(summary.not_before),
        when(summary.not_after),
        summary.serial_hex,
        key.spec(),
        key_pem.lines().next().unwrap_or_default().trim_matches('-'),
    );
    Ok((text, summary.serial_hex))
}

fn listing(target: &Path) -> Result<String> {
    let mut out = String::new();
    let mut names: Vec<_> = std::fs::read_dir(target)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with(".."))
        .collect();
    names.sort();
    for n in names {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(target.join(&n))?;
        out.push_str(&format!(
            "    {:o}  {:>5} bytes  {n}\n",
            m.mode() & 0o777,
            m.len()
        ));
    }
    Ok(out)
}

async fn inner(driver_bin: &Path) -> Result<()> {
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    let api = FakeApi::builder()
        .issuer("ca-issuer", Script::Sign)
        .start()
        .await?;
    api.add_token(
        TOKEN,
        "system:serviceaccount:cert-manager:cert-manager-csi-driver",
    );
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig, TOKEN)?;
    let data_root = dir.path().join("csi-data-dir");
    println!(
        "== fake Kubernetes API at {} with a test CA issuer `ca-issuer`",
        api.url()
    );

    let args: Vec<String> = [
        "--node-id",
        "demo-node",
        "--data-root",
        &data_root.display().to_string(),
        "--kubeconfig",
        &kubeconfig.display().to_string(),
        "--log-level",
        "warn",
        // The per-volume floor between rewrites (default 10s), lowered so the
        // trust refresh after the CA rotation shows within a second or two.
        "--min-issuance-interval",
        "1s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let driver = DriverProcess::spawn(
        driver_bin,
        &dir.path().join("plugin/csi.sock"),
        &dir.path().join("driver.log"),
        &args,
    )
    .await?;
    println!(
        "== driver running (pid {}), data root {} on a private tmpfs\n",
        driver.pid().unwrap_or_default(),
        data_root.display()
    );
    let mut node = driver.node().await?;

    println!("== Deployment my-csi-app (namespace sandbox, 5 replicas) from the documentation:");
    println!("     volumeAttributes:");
    println!("       csi.cert-manager.io/issuer-name: ca-issuer");
    println!("       csi.cert-manager.io/dns-names: my-service.sandbox.svc.cluster.local\n");
    let attrs = [
        ("csi.cert-manager.io/issuer-name", "ca-issuer"),
        (
            "csi.cert-manager.io/dns-names",
            "my-service.sandbox.svc.cluster.local",
        ),
    ];
    let pods_dir = dir.path().join("kubelet/pods");
    let mut published = Vec::new();
    for i in 0..5 {
        let pod = Pod::new(
            "sandbox",
            &format!(
                "my-csi-app-7d9f8c6b5-{}",
                ["a1b2c", "d3e4f", "g5h6i", "j7k8l", "m9n0p"][i]
            ),
        );
        let vol = volume_id(&pod);
        let target = pods_dir
            .join(&pod.uid)
            .join("volumes/kubernetes.io~csi/tls/mount");
        prepare_target(&target)?;
        let t0 = Instant::now();
        node.node_publish_volume(publish_request(&vol, &target, pod.context(&attrs)))
            .await
            .with_context(|| format!("publishing the volume of {}", pod.name))?;
        println!(
            "-- Pod {} : published in {} ms, mounted read-only at .../{}/volumes/kubernetes.io~csi/tls/mount",
            pod.name,
            t0.elapsed().as_millis(),
            pod.uid
        );
        print!("{}", listing(&target)?);
        print!("{}", describe(&target)?.0);
        published.push((vol, target));
    }
    let requests = api.requests("sandbox");
    println!(
        "\n== {} CertificateRequests in namespace sandbox (one per Pod), e.g. {}\n",
        requests.len(),
        requests
            .first()
            .and_then(|r| r["metadata"]["name"].as_str())
            .unwrap_or("-")
    );

    println!(
        "== A short-lived certificate renewing live (duration 18s, renewed at 2/3 of its life):"
    );
    let pod = Pod::new("sandbox", "short-lived-0");
    let vol = volume_id(&pod);
    let target = pods_dir
        .join(&pod.uid)
        .join("volumes/kubernetes.io~csi/tls/mount");
    prepare_target(&target)?;
    node.node_publish_volume(publish_request(
        &vol,
        &target,
        pod.context(&[
            ("csi.cert-manager.io/issuer-name", "ca-issuer"),
            ("csi.cert-manager.io/dns-names", "${POD_NAME}.sandbox.svc"),
            ("csi.cert-manager.io/duration", "18s"),
            ("csi.cert-manager.io/key-algorithm", "ECDSA"),
        ]),
    ))
    .await?;
    let (_, mut serial) = describe(&target)?;
    println!("    t=0s   serial {serial}");
    let t0 = Instant::now();
    let mut renewals = 0;
    while renewals < 2 {
        if t0.elapsed() > Duration::from_secs(40) {
            bail!("no renewal within 40 s:\n{}", driver.logs());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let Ok((_, now)) = describe(&target) else {
            continue;
        };
        if now != serial {
            renewals += 1;
            println!(
                "    t={:.1}s serial {now}  (renewed; new key, seen through the same mount)",
                t0.elapsed().as_secs_f64()
            );
            serial = now;
        }
    }
    published.push((vol, target));

    published.extend(trust_rotation::run(&api, &mut node, &pods_dir).await?);

    println!("\n== The Pods go away: NodeUnpublishVolume for each");
    for (vol, target) in &published {
        node.node_unpublish_volume(csi::NodeUnpublishVolumeRequest {
            volume_id: vol.clone(),
            target_path: target.display().to_string(),
        })
        .await?;
    }
    let left: Vec<String> = std::fs::read_dir(data_root.join("inmemfs"))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")?
        .lines()
        .filter(|l| l.contains(&*pods_dir.to_string_lossy()))
        .count();
    println!(
        "    volumes left on the node: {}, mounts left: {mounts}, target directories left: {}",
        left.len(),
        published.iter().filter(|(_, t)| t.exists()).count()
    );
    if !left.is_empty() || mounts != 0 {
        bail!("the node is not clean: {left:?}");
    }
    println!(
        "\n== done in {:.1} s: 5 Pods got their own key and certificate, one renewed live, two trusted each other across a CA rotation, the node is clean",
        started.elapsed().as_secs_f64()
    );
    drop(driver);
    Ok(())
}
