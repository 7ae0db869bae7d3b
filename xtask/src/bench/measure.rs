//! The measurements themselves: the real driver binary as a child process,
//! testkit's fake API with its instant test CA, this process as the
//! kubelet. Runs inside a private mount namespace (the driver bind-mounts
//! every published volume).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use cmcsi_keygen::{CsrParams, KeySpec, PrivateKey, build_csr};
use cmcsi_proto::v1::ProbeRequest;
use cmcsi_proto::v1::node_client::NodeClient;
use cmcsi_testkit::kubelet::{DriverProcess, Pod, publish_request};
use cmcsi_testkit::{DEFAULT_TOKEN, FakeApi, Script, Verb};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::{Value, json};
use tonic::transport::Channel;

use super::sys;

/// Issuer name the fake API signs for at once.
pub(super) const ISSUER: &str = "ca-issuer";
/// Namespace of the benchmark's Pods.
const NAMESPACE: &str = "bench";
/// Namespace of the bare API round trips (B3), away from the driver's requests.
const RT_NAMESPACE: &str = "bench-rt";

/// B1: sequential publishes, and the pool size that keeps them all warm.
const B1_PUBLISHES: usize = 200;
const B1_POOL_SIZE: usize = 256;
/// B2: concurrent publishes.
const B2_BURST: usize = 100;
/// The driver's default `--key-pool-size`.
const DEFAULT_POOL_SIZE: usize = 4;
/// B3: ECDSA publishes and bare round trips (interleaved), after a warm-up.
const B3_SAMPLES: usize = 100;
const B3_WARMUP: usize = 5;
/// B4-B6: managed volumes, published this many at a time.
const MANY_VOLUMES: usize = 1000;
const MANY_CONCURRENCY: usize = 8;
/// Bare keygen samples, half before B1 and half after B2.
const KEYGEN_SAMPLES: usize = 40;

/// What to measure with.
#[derive(Debug, Clone)]
pub struct Options {
    /// The release-built driver binary.
    pub driver: PathBuf,
    /// The B5 idle window (60 s unless shortened for a quick look).
    pub idle_window: Duration,
    /// Run only these groups (`keygen`, `b1`, `b2`, `b3`, `b4`, `b9`; B7 comes
    /// with B1, B5 and B6 with B4); empty means all.
    pub only: Vec<String>,
    /// Copy each driver's log here (named by group) when it stops.
    pub logs: Option<PathBuf>,
    /// The Pod signer B13 measures; `None`: the release build beside the driver.
    pub signer: Option<PathBuf>,
    /// B11's volume count (1,000 unless reduced for a quick look).
    pub b11_volumes: usize,
}

impl Options {
    pub(super) fn wants(&self, group: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|g| g == group)
    }
}

/// Every figure, by report key.
pub type Figures = BTreeMap<&'static str, f64>;

/// Runs B1-B7 and the keygen baselines.
pub async fn all(opts: &Options) -> Result<Figures> {
    let mut f = Figures::new();
    f.insert(
        "cores",
        std::thread::available_parallelism().map_or(1, |n| n.get()) as f64,
    );

    // Bare keygen is sampled in two halves, before B1 and after B2, so a
    // change in the machine's load during the run weighs on both sides of
    // the B1 and B2 ratios.
    let (mut keygen, mut keygen_csr) = (Vec::new(), Vec::new());
    if opts.wants("keygen") || opts.wants("b1") || opts.wants("b2") {
        step("bare RSA-2048 keygen (first half)");
        (keygen, keygen_csr) = keygen_samples(KEYGEN_SAMPLES / 2).await?;
    }
    if opts.wants("b1") {
        b1_and_b7(opts, &mut f).await?;
    }
    if opts.wants("b2") {
        b2(opts, &mut f).await?;
    }
    if !keygen.is_empty() {
        step("bare RSA-2048 keygen (second half)");
        let (k2, kc2) = keygen_samples(KEYGEN_SAMPLES - KEYGEN_SAMPLES / 2).await?;
        keygen.extend(k2);
        keygen_csr.extend(kc2);
        f.insert(
            "b1_keygen_rsa2048_p50_ms",
            sys::percentile_ms(&keygen, 50.0),
        );
        f.insert("keygen_rsa2048_mean_ms", sys::mean_ms(&keygen));
        f.insert("keygen_rsa2048_p90_ms", sys::percentile_ms(&keygen, 90.0));
        f.insert(
            "keygen_csr_rsa2048_p50_ms",
            sys::percentile_ms(&keygen_csr, 50.0),
        );
        f.insert("keygen_samples", keygen.len() as f64);
    }
    if opts.wants("b3") {
        b3(opts, &mut f).await?;
    }
    if opts.wants("b4") {
        b4_b5_b6(opts, &mut f).await?;
    }
    if opts.wants("b9") {
        b9(opts, &mut f).await?;
    }
    if opts.wants("tenants") {
        b8(opts, &mut f).await?;
        b10(opts, &mut f).await?;
        b12(opts, &mut f).await?;
    }
    if opts.wants("b13") {
        super::b13::b13(opts, &mut f).await?;
    }
    if opts.wants("b11") {
        super::b11::b11(opts, &mut f).await?;
    }
    Ok(f)
}

fn step(what: &str) {
    eprintln!("bench: {what}");
}

/// Bare RSA-2048 generation, and generation plus the CSR the driver makes,
/// one after another on one thread.
async fn keygen_samples(n: usize) -> Result<(Vec<Duration>, Vec<Duration>)> {
    tokio::task::spawn_blocking(move || {
        let params = CsrParams {
            dns_names: vec!["pod-0.bench.svc.cluster.local".into()],
            ..Default::default()
        };
        let mut keygen = Vec::with_capacity(n);
        let mut with_csr = Vec::with_capacity(n);
        for _ in 0..n {
            let t0 = Instant::now();
            let key = PrivateKey::generate(&KeySpec::RSA_2048)?;
            let t1 = Instant::now();
            let csr = build_csr(&key, &params)?;
            let t2 = Instant::now();
            std::hint::black_box(csr);
            keygen.push(t1 - t0);
            with_csr.push(t2 - t0);
        }
        Ok::<_, anyhow::Error>((keygen, with_csr))
    })
    .await
    .context("keygen thread")?
}

/// Volume attributes of a Pod written from the documentation's example.
fn rsa_attrs() -> Vec<(&'static str, &'static str)> {
    vec![
        ("csi.cert-manager.io/issuer-name", ISSUER),
        (
            "csi.cert-manager.io/dns-names",
            "${POD_NAME}.${POD_NAMESPACE}.svc.cluster.local",
        ),
    ]
}

/// The same with an ECDSA P-256 key and an explicit long lifetime (so
/// nothing renews during a run).
fn ecdsa_attrs() -> Vec<(&'static str, &'static str)> {
    let mut a = rsa_attrs();
    a.push(("csi.cert-manager.io/key-algorithm", "ECDSA"));
    a.push(("csi.cert-manager.io/duration", "720h"));
    a
}

/// A kubelet-style volume id (`csi-` and 64 hex digits), unique per
/// scenario and index.
pub(super) fn volume_id(scenario: u64, i: usize) -> String {
    format!("csi-{:064x}", (scenario << 32) | i as u64)
}

/// One driver under test with its own fake API and directories.
pub(super) struct Node {
    pub(super) api: FakeApi,
    dir: tempfile::TempDir,
    driver: DriverProcess,
    channel: Channel,
    metrics: Option<SocketAddr>,
    /// Where to copy the driver's log at the end, if anywhere.
    keep_log: Option<PathBuf>,
}

impl Node {
    /// Starts a fake API and the driver with `args` added to the common
    /// flags; with `metrics`, on a free local port.
    pub(super) async fn start(
        opts: &Options,
        group: &str,
        args: &[&str],
        metrics: bool,
    ) -> Result<Node> {
        Self::start_prepared(opts, group, args, metrics, |_| Ok(())).await
    }

    /// [`Node::start`] with `prepare` run on the fake API before the driver
    /// starts (objects that are there when it lists).
    async fn start_prepared(
        opts: &Options,
        group: &str,
        args: &[&str],
        metrics: bool,
        prepare: impl FnOnce(&FakeApi) -> Result<()>,
    ) -> Result<Node> {
        let api = FakeApi::builder()
            .issuer(ISSUER, Script::Sign)
            .start()
            .await
            .context("starting the fake API")?;
        prepare(&api)?;
        let dir = tempfile::Builder::new()
            .prefix("cmcsi-bench-")
            .tempdir()
            .context("creating a temporary directory")?;
        mount_kubelet_dir(dir.path())?;
        let kubeconfig = dir.path().join("kubeconfig");
        api.write_kubeconfig(&kubeconfig, DEFAULT_TOKEN)?;
        let metrics = if metrics { Some(free_port()?) } else { None };
        let mut all: Vec<String> = vec![
            "--node-id".into(),
            "bench-node".into(),
            "--data-root".into(),
            dir.path().join("data").display().to_string(),
            "--kubeconfig".into(),
            kubeconfig.display().to_string(),
            "--log-format".into(),
            "json".into(),
        ];
        if let Some(addr) = metrics {
            all.push("--metrics-bind-address".into());
            all.push(addr.to_string());
        }
        all.extend(args.iter().map(|s| s.to_string()));
        let driver = DriverProcess::spawn(
            &opts.driver,
            &dir.path().join("plugin/csi.sock"),
            &dir.path().join("driver.log"),
            &all,
        )
        .await
        .context("starting the driver")?;
        let channel = cmcsi_testkit::csi_channel(&driver.socket).await?;
        let node = Node {
            api,
            dir,
            driver,
            channel,
            metrics,
            keep_log: opts.logs.as_ref().map(|d| d.join(format!("{group}.log"))),
        };
        // The driver's one CertificateRequest watch is open: it is ready.
        node.api
            .wait_for_watches(1, Duration::from_secs(30))
            .await
            .map_err(|e| anyhow!("the driver did not open its watch: {e}"))?;
        Ok(node)
    }

    fn pid(&self) -> Result<u32> {
        self.driver
            .pid()
            .ok_or_else(|| anyhow!("driver not running"))
    }

    pub(super) fn target(&self, volume: &str) -> PathBuf {
        self.dir
            .path()
            .join("pods")
            .join(volume)
            .join("volumes/kubernetes.io~csi/tls/mount")
    }

    /// Creates the target's parent directory, as the kubelet does before it
    /// calls NodePublishVolume (the driver makes the target itself).
    fn prepare(&self, volume: &str) -> Result<PathBuf> {
        let target = self.target(volume);
        cmcsi_testkit::kubelet::prepare_target(&target)
            .with_context(|| format!("creating the parent of {}", target.display()))?;
        Ok(target)
    }

    /// One NodePublishVolume, as the kubelet sends it; its latency.
    pub(super) async fn publish(
        &self,
        volume: &str,
        pod: &Pod,
        attrs: &[(&str, &str)],
    ) -> Result<Duration> {
        let req = publish_request(volume, &self.prepare(volume)?, pod.context(attrs));
        let mut client = NodeClient::new(self.channel.clone());
        let t0 = Instant::now();
        client
            .node_publish_volume(req)
            .await
            .map_err(|s| anyhow!("publishing {volume}: {:?}: {}", s.code(), s.message()))?;
        Ok(t0.elapsed())
    }

    /// A metric's value from `/metrics` (the first sample with this exact name).
    async fn metric(&self, name: &str) -> Result<f64> {
        let addr = self
            .metrics
            .ok_or_else(|| anyhow!("metrics are off for this driver"))?;
        let text = http_get(addr, "/metrics").await?;
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| {
                let (n, v) = l.split_once(' ')?;
                (n == name).then(|| v.trim().parse::<f64>().ok()).flatten()
            })
            .ok_or_else(|| anyhow!("metric {name} not found"))
    }

    /// Waits until the key pool holds `n` keys.
    async fn wait_pool(&self, n: usize) -> Result<()> {
        let started = Instant::now();
        let mut said = Instant::now();
        loop {
            let have = self.metric("certmanager_csi_key_pool_available").await?;
            if have >= n as f64 {
                eprintln!(
                    "bench:   key pool full ({n} keys) after {:.1} s",
                    started.elapsed().as_secs_f64()
                );
                return Ok(());
            }
            if said.elapsed() > Duration::from_secs(15) {
                eprintln!("bench:   key pool {have}/{n}");
                said = Instant::now();
            }
            ensure!(
                started.elapsed() < Duration::from_secs(600),
                "the key pool did not fill ({have}/{n} after 10 minutes)"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits until the driver has used less than 10 ms of CPU over half a
    /// second (start-up work such as filling the pool is done).
    async fn wait_quiet(&self) -> Result<()> {
        let pid = self.pid()?;
        let ticks = sys::clock_ticks();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut before = sys::cpu_time(pid, ticks)?;
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = sys::cpu_time(pid, ticks)?;
            if now.saturating_sub(before) < Duration::from_millis(10) {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "the driver did not go quiet within a minute"
            );
            before = now;
        }
    }

    /// Stops the driver and the API, unmounts what the run mounted and
    /// removes its directory.
    pub(super) async fn stop(mut self) -> Result<()> {
        self.driver.kill();
        if let Some(to) = &self.keep_log {
            if let Some(dir) = to.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::copy(&self.driver.log, to)
                .with_context(|| format!("copying the driver log to {}", to.display()))?;
        }
        sys::unmount_below(self.dir.path())?;
        self.api.shutdown().await;
        Ok(())
    }
}

/// A free TCP port on 127.0.0.1 (bound and released; the driver binds it
/// right after).
fn free_port() -> Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?)
}

/// A plain HTTP/1.1 GET; the body. Enough for a local `/metrics`.
async fn http_get(addr: SocketAddr, path: &str) -> Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("malformed HTTP answer from {addr}"))?;
    ensure!(
        head.starts_with("HTTP/1.1 200"),
        "GET {path}: {}",
        head.lines().next().unwrap_or("")
    );
    Ok(body.to_string())
}

/// B1 (RSA-2048 publishes with a warm pool) and B7 (API requests over the
/// whole B1 run, from the driver's start).
async fn b1_and_b7(opts: &Options, f: &mut Figures) -> Result<()> {
    step(&format!(
        "B1: driver with --key-pool-size {B1_POOL_SIZE}, waiting for the pool to fill"
    ));
    let pool = B1_POOL_SIZE.to_string();
    let node = Node::start(opts, "b1", &["--key-pool-size", &pool], true).await?;
    node.wait_pool(B1_POOL_SIZE).await?;
    step(&format!("B1: {B1_PUBLISHES} sequential RSA-2048 publishes"));
    let attrs = rsa_attrs();
    let mut lat = Vec::with_capacity(B1_PUBLISHES);
    for i in 0..B1_PUBLISHES {
        let pod = Pod::new(NAMESPACE, &format!("b1-{i}"));
        lat.push(node.publish(&volume_id(1, i), &pod, &attrs).await?);
    }
    f.insert("b1_publish_p50_ms", sys::percentile_ms(&lat, 50.0));
    f.insert("b1_publish_p99_ms", sys::percentile_ms(&lat, 99.0));
    f.insert("b1_publish_max_ms", sys::percentile_ms(&lat, 100.0));
    f.insert("b1_publishes", B1_PUBLISHES as f64);
    f.insert("b1_pool_size", B1_POOL_SIZE as f64);
    f.insert(
        "b1_pool_misses",
        node.metric("certmanager_csi_key_pool_misses_total").await?,
    );

    let c = node.api.counts();
    let issued = node.api.requests(NAMESPACE).len();
    ensure!(
        issued == B1_PUBLISHES,
        "expected {B1_PUBLISHES} CertificateRequests, found {issued}"
    );
    f.insert(
        "b7_creates_per_issuance",
        c.verb(Verb::Create) as f64 / B1_PUBLISHES as f64,
    );
    f.insert(
        "b7_polling_reads",
        (c.verb(Verb::Get) + c.verb(Verb::List).saturating_sub(1)) as f64,
    );
    f.insert("b7_watches", c.verb(Verb::Watch) as f64);
    f.insert("b7_lists", c.verb(Verb::List) as f64);
    f.insert("b7_gets", c.verb(Verb::Get) as f64);
    f.insert("b7_total_requests", c.total() as f64);
    node.stop().await
}

/// B2: 100 concurrent RSA-2048 publishes against the default pool.
async fn b2(opts: &Options, f: &mut Figures) -> Result<()> {
    step("B2: driver with the default key pool, waiting for it to fill");
    let node = Node::start(opts, "b2", &[], true).await?;
    node.wait_pool(DEFAULT_POOL_SIZE).await?;
    step(&format!("B2: {B2_BURST} concurrent RSA-2048 publishes"));
    let attrs = rsa_attrs();
    let mut reqs = Vec::with_capacity(B2_BURST);
    for i in 0..B2_BURST {
        let vol = volume_id(2, i);
        let pod = Pod::new(NAMESPACE, &format!("b2-{i}"));
        reqs.push(publish_request(
            &vol,
            &node.prepare(&vol)?,
            pod.context(&attrs),
        ));
    }
    // CPU accounting around the burst, to tell how much of the machine the
    // driver actually got (the machine is shared).
    let ticks = sys::clock_ticks();
    let pid = node.pid()?;
    let driver_cpu0 = sys::cpu_time(pid, ticks)?;
    let own_cpu0 = sys::cpu_time(std::process::id(), ticks)?;
    let (busy0, steal0) = sys::machine_cpu(ticks)?;
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(B2_BURST);
    for req in reqs {
        let mut client = NodeClient::new(node.channel.clone());
        tasks.push(tokio::spawn(async move {
            let vol = req.volume_id.clone();
            client
                .node_publish_volume(req)
                .await
                .map_err(|s| anyhow!("publishing {vol}: {:?}: {}", s.code(), s.message()))
        }));
    }
    for t in tasks {
        t.await.context("publish task")??;
    }
    let wall = t0.elapsed().as_secs_f64();
    let driver_cpu = sys::cpu_time(pid, ticks)?.saturating_sub(driver_cpu0);
    let own_cpu = sys::cpu_time(std::process::id(), ticks)?.saturating_sub(own_cpu0);
    let (busy1, steal1) = sys::machine_cpu(ticks)?;
    let busy = busy1.saturating_sub(busy0);
    f.insert("b2_burst100_wall_s", wall);
    f.insert("b2_driver_cpu_s", driver_cpu.as_secs_f64());
    f.insert("b2_driver_cores_used", driver_cpu.as_secs_f64() / wall);
    f.insert("b2_bench_cores_used", own_cpu.as_secs_f64() / wall);
    f.insert(
        "b2_other_processes_cores_used",
        busy.saturating_sub(driver_cpu + own_cpu).as_secs_f64() / wall,
    );
    f.insert(
        "b2_steal_cores",
        steal1.saturating_sub(steal0).as_secs_f64() / wall,
    );
    f.insert(
        "b2_pool_hits",
        node.metric("certmanager_csi_key_pool_hits_total").await?,
    );
    f.insert(
        "b2_pool_misses",
        node.metric("certmanager_csi_key_pool_misses_total").await?,
    );
    node.stop().await
}

/// Mounts a tmpfs at `<dir>/pods`, the kubelet's directory the targets
/// are made in (the bench runs in its own mount namespace; [`Node::stop`]
/// unmounts it). On a journal-less ext4 (this project's build machines) a
/// `mkdir` scans the inode table for recently deleted inodes, and under the
/// bench's own churn that took half a millisecond of CPU per target
/// (`perf record`: `find_inode_bit`, `recently_deleted`): a cost of that
/// file system, not of the driver, which the bare API round trip B3 divides
/// by never pays. The driver's data root is a tmpfs of its own either way.
fn mount_kubelet_dir(dir: &Path) -> Result<()> {
    let pods = dir.join("pods");
    std::fs::create_dir(&pods).with_context(|| format!("creating {}", pods.display()))?;
    rustix::mount::mount(
        "tmpfs",
        &pods,
        "tmpfs",
        rustix::mount::MountFlags::NOSUID | rustix::mount::MountFlags::NODEV,
        c"size=256m,mode=0755",
    )
    .with_context(|| format!("mounting a tmpfs at {}", pods.display()))
}

/// B3: ECDSA P-256 publishes against the bare create-and-see-it-issued
/// round trip through the same fake API, interleaved.
async fn b3(opts: &Options, f: &mut Figures) -> Result<()> {
    step("B3: ECDSA publishes against bare API round trips");
    let node = Node::start(opts, "b3", &[], true).await?;
    // The default pool's RSA keys are generated at start; measure after,
    // not against them for the CPU.
    node.wait_pool(DEFAULT_POOL_SIZE).await?;
    let rt = RoundTrip::start(&node.api).await?;
    let attrs = ecdsa_attrs();
    let mut publish = Vec::with_capacity(B3_SAMPLES);
    let mut bare = Vec::with_capacity(B3_SAMPLES);
    for i in 0..B3_WARMUP + B3_SAMPLES {
        let pod = Pod::new(NAMESPACE, &format!("b3-{i}"));
        let p = node.publish(&volume_id(3, i), &pod, &attrs).await?;
        let r = rt.once(i).await?;
        if i >= B3_WARMUP {
            publish.push(p);
            bare.push(r);
        }
    }
    f.insert(
        "b3_ecdsa_publish_p50_ms",
        sys::percentile_ms(&publish, 50.0),
    );
    f.insert("b3_api_roundtrip_p50_ms", sys::percentile_ms(&bare, 50.0));
    f.insert("b3_samples", B3_SAMPLES as f64);
    rt.stop();
    node.stop().await
}

/// The bare round trip: create a CertificateRequest (CSR made beforehand)
/// through a kube client and see it `Ready` on an already open watch.
struct RoundTrip {
    api: Api<DynamicObject>,
    ready: tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<String>>,
    watch: tokio::task::JoinHandle<()>,
    csr_b64: String,
}

impl RoundTrip {
    async fn start(fake: &FakeApi) -> Result<RoundTrip> {
        let client = fake.client().await?;
        let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(
            "cert-manager.io",
            "v1",
            "CertificateRequest",
        ));
        let api: Api<DynamicObject> = Api::namespaced_with(client, RT_NAMESPACE, &ar);
        let watch = super::watch::accepted(api.clone(), is_ready).await?;
        // One key and CSR for every round trip: the bare API path, without
        // the driver's key and CSR work.
        let key = PrivateKey::generate(&KeySpec::EcdsaP256)?;
        let csr = build_csr(
            &key,
            &CsrParams {
                dns_names: vec!["rt.bench.svc.cluster.local".into()],
                ..Default::default()
            },
        )?;
        use base64::Engine as _;
        let csr_b64 = base64::engine::general_purpose::STANDARD.encode(csr.as_bytes());
        Ok(RoundTrip {
            api,
            ready: tokio::sync::Mutex::new(watch.names),
            watch: watch.task,
            csr_b64,
        })
    }

    async fn once(&self, i: usize) -> Result<Duration> {
        let name = format!("rt-{i}");
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "cert-manager.io/v1",
            "kind": "CertificateRequest",
            "metadata": {"name": name},
            "spec": {
                "request": self.csr_b64,
                "issuerRef": {"name": ISSUER, "kind": "Issuer", "group": "cert-manager.io"},
                "duration": "720h0m0s",
                "usages": ["digital signature", "key encipherment"],
            },
        }))?;
        let mut ready = self.ready.lock().await;
        let t0 = Instant::now();
        self.api
            .create(&PostParams::default(), &obj)
            .await
            .with_context(|| format!("creating {name}"))?;
        let wait = async {
            while let Some(n) = ready.recv().await {
                if n == name {
                    return Ok(());
                }
            }
            bail!("the round-trip watch ended")
        };
        tokio::time::timeout(Duration::from_secs(30), wait)
            .await
            .map_err(|_| anyhow!("{name} was not issued within 30 s"))??;
        Ok(t0.elapsed())
    }

    fn stop(self) {
        self.watch.abort();
    }
}

/// Whether a CertificateRequest has `Ready=True`.
fn is_ready(obj: &Value) -> bool {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// B4 (memory idle and with 1,000 volumes), B5 (idle CPU with 1,000
/// volumes) and B6 (restart with 1,000 stored volumes).
async fn b4_b5_b6(opts: &Options, f: &mut Figures) -> Result<()> {
    step("B4: driver idle");
    sys::evict_page_cache(&opts.driver)?;
    let mut node = Node::start(opts, "b4", &[], false).await?;
    node.wait_quiet().await?;
    f.insert("b4_rss_idle_mib", sys::rss_mib(node.pid()?)?);
    let (anon, file) = sys::rss_parts_mib(node.pid()?)?;
    f.insert("b4_rss_idle_anon_mib", anon);
    f.insert("b4_rss_idle_file_mib", file);

    step(&format!("B4: publishing {MANY_VOLUMES} ECDSA volumes"));
    let attrs = ecdsa_attrs();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let worker = || async {
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if i >= MANY_VOLUMES {
                return Ok::<_, anyhow::Error>(());
            }
            let pod = Pod::new(NAMESPACE, &format!("many-{i}"));
            node.publish(&volume_id(4, i), &pod, &attrs).await?;
        }
    };
    let t0 = Instant::now();
    let results = futures::future::join_all((0..MANY_CONCURRENCY).map(|_| worker())).await;
    for r in results {
        r?;
    }
    f.insert("b4_publish_1000_s", t0.elapsed().as_secs_f64());
    node.wait_quiet().await?;
    f.insert("b4_rss_1000_mib", sys::rss_mib(node.pid()?)?);
    let (anon, file) = sys::rss_parts_mib(node.pid()?)?;
    f.insert("b4_rss_1000_anon_mib", anon);
    f.insert("b4_rss_1000_file_mib", file);

    step(&format!(
        "B5: driver CPU over {} s idle with {MANY_VOLUMES} volumes",
        opts.idle_window.as_secs_f64()
    ));
    let pid = node.pid()?;
    let ticks = sys::clock_ticks();
    let before = sys::cpu_time(pid, ticks)?;
    tokio::time::sleep(opts.idle_window).await;
    let after = sys::cpu_time(pid, ticks)?;
    f.insert("b5_idle_cpu_s", after.saturating_sub(before).as_secs_f64());
    f.insert("b5_window_s", opts.idle_window.as_secs_f64());
    f.insert("b4_rss_1000_after_idle_mib", sys::rss_mib(pid)?);

    step(&format!(
        "B6: SIGKILL and restart with {MANY_VOLUMES} stored volumes"
    ));
    node.driver.kill();
    let log_len = node.driver.logs().len();
    let t0 = Instant::now();
    node.driver
        .restart()
        .await
        .context("restarting the driver")?;
    probe_until_ready(&node.driver.socket).await?;
    f.insert("b6_restart_1000_s", t0.elapsed().as_secs_f64());
    // The socket may serve a moment before recovery logs its summary: wait
    // for the line (B6 is already taken).
    let wait_until = Instant::now() + Duration::from_secs(30);
    let (volumes, ms) = loop {
        let logs = node.driver.logs();
        if let Some(found) = recovered(logs.get(log_len..).unwrap_or("")) {
            break found;
        }
        if Instant::now() >= wait_until {
            let tail: String = logs
                .get(log_len..)
                .unwrap_or("")
                .chars()
                .rev()
                .take(2000)
                .collect();
            let tail: String = tail.chars().rev().collect();
            bail!(
                "the restarted driver did not log `recovered stored volumes` within 30 s; its log ends:\n{tail}"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    ensure!(
        volumes == MANY_VOLUMES as f64,
        "the restarted driver recovered {volumes} volumes, expected {MANY_VOLUMES}"
    );
    f.insert("b6_recovered_volumes", volumes);
    f.insert("b6_recovery_logged_ms", ms);
    node.channel = cmcsi_testkit::csi_channel(&node.driver.socket).await?;
    node.stop().await
}

/// Calls Probe until it answers `ready`.
/// B9: hostile publishes (RSA-8192 keys, the deepest and longest file names
/// the limits allow, each cancelled by its client after a while, then
/// retried) while `Probe` is timed; a `Probe` slower than the livenessprobe
/// sidecar's 3 s timeout restarts the driver.
async fn b9(opts: &Options, f: &mut Figures) -> Result<()> {
    const HOSTILE: usize = 8;
    const WINDOW: Duration = Duration::from_secs(20);
    step(&format!(
        "B9: Probe latency during {HOSTILE} hostile publishes for {} s",
        WINDOW.as_secs()
    ));
    let node = Node::start(opts, "b9", &[], false).await?;
    let component = "n".repeat(120);
    let deepest = |leaf: &str| {
        let mut parts = vec![component.as_str(); 7];
        parts.push(leaf);
        parts.join("/")
    };
    let (crt, key, ca) = (deepest("c.pem"), deepest("k.pem"), deepest("a.pem"));
    let until = Instant::now() + WINDOW;
    let mut hostile = Vec::new();
    for i in 0..HOSTILE {
        let attrs: Vec<(String, String)> = [
            ("csi.cert-manager.io/issuer-name", ISSUER),
            ("csi.cert-manager.io/dns-names", "hostile.example.com"),
            ("csi.cert-manager.io/key-size", "8192"),
            ("csi.cert-manager.io/certificate-file", crt.as_str()),
            ("csi.cert-manager.io/privatekey-file", key.as_str()),
            ("csi.cert-manager.io/ca-file", ca.as_str()),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let volume = volume_id(9, i);
        let req = publish_request(
            &volume,
            &node.prepare(&volume)?,
            Pod::new(NAMESPACE, &format!("b9-{i}")).context(
                &attrs
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect::<Vec<_>>(),
            ),
        );
        let channel = node.channel.clone();
        hostile.push(tokio::spawn(async move {
            while Instant::now() < until {
                let mut client = NodeClient::new(channel.clone());
                // The client gives up after 2 s and tries again, as the kubelet does.
                let _ = tokio::time::timeout(
                    Duration::from_secs(2),
                    client.node_publish_volume(req.clone()),
                )
                .await;
            }
        }));
    }
    let mut identity = cmcsi_testkit::identity_client(&node.driver.socket).await?;
    let mut lat = Vec::new();
    while Instant::now() < until {
        let t0 = Instant::now();
        identity.probe(ProbeRequest {}).await?;
        lat.push(t0.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for h in hostile {
        h.await?;
    }
    f.insert("b9_probe_p99_hostile_ms", sys::percentile_ms(&lat, 99.0));
    f.insert("b9_probe_max_hostile_ms", sys::percentile_ms(&lat, 100.0));
    node.stop().await
}

async fn probe_until_ready(socket: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut c) = cmcsi_testkit::identity_client(socket).await
            && let Ok(r) = c.probe(ProbeRequest {}).await
            && r.into_inner().ready != Some(false)
        {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "the restarted driver did not answer Probe"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// `volumes` and `duration_ms` of the last `recovered stored volumes` line
/// of a JSON log.
fn recovered(log: &str) -> Option<(f64, f64)> {
    log.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| {
            v["msg"] == "recovered stored volumes" || v["message"] == "recovered stored volumes"
        })
        .map(|v| {
            (
                v["volumes"].as_f64().unwrap_or(f64::NAN),
                v["duration_ms"].as_f64().unwrap_or(f64::NAN),
            )
        })
}

// ---- Hostile tenants: B8 (foreign-request flood) and B10 (tight renewals) ----

/// B8: foreign requests labelled for the node, and the size of each CSR field.
const B8_FLOOD: usize = 150;
const B8_REQUEST_BYTES: usize = 700 * 1024;
/// B10: `duration: 1s` volumes on the node, and publishes sampled with and
/// without them, spaced so the samples span a whole issuance floor.
const B10_TIGHT_VOLUMES: usize = 20;
const B10_SAMPLES: usize = 40;
const B10_GAP: Duration = Duration::from_millis(250);

/// B8: the driver's RSS growth while 150 foreign 0.7 MB requests labelled
/// for its node arrive on its watch (created by another identity in another
/// namespace), after one warm-up publish.
async fn b8(opts: &Options, f: &mut Figures) -> Result<()> {
    step(&format!(
        "B8: {B8_FLOOD} foreign {} KiB requests labelled for the node",
        B8_REQUEST_BYTES / 1024
    ));
    let node = Node::start(opts, "b8", &[], true).await?;
    node.wait_pool(DEFAULT_POOL_SIZE).await?;
    let pod = Pod::new(NAMESPACE, "b8-warm");
    node.publish(&volume_id(8, 0), &pod, &ecdsa_attrs()).await?;
    node.wait_quiet().await?;
    let before = sys::rss_mib(node.pid()?)?;
    use base64::Engine as _;
    let csr =
        base64::engine::general_purpose::STANDARD.encode(vec![b'A'; B8_REQUEST_BYTES * 3 / 4]);
    for i in 0..B8_FLOOD {
        let volume = format!("csi-foreign-{i:04}");
        let obj = json!({
            "apiVersion": "cert-manager.io/v1",
            "kind": "CertificateRequest",
            "metadata": {
                "name": format!("flood-{i:04}"),
                "namespace": "intruder",
                "labels": {
                    "csi.cert-manager.io/node-id-hash": cmcsi_issuer_client::label_hash("bench-node"),
                    "csi.cert-manager.io/volume-id-hash": cmcsi_issuer_client::label_hash(&volume),
                },
                "annotations": {"csi.cert-manager.io/volume-id": volume},
            },
            "spec": {"request": csr, "issuerRef": {"name": "no-such-issuer"}},
        });
        node.api
            .insert_request("intruder", obj, "system:serviceaccount:intruder:default")
            .map_err(|e| anyhow!("creating a foreign request: {e}"))?;
    }
    let started = Instant::now();
    loop {
        let ignored = node
            .metric("certmanager_csi_watch_ignored_requests_total")
            .await
            .unwrap_or(0.0);
        if ignored >= B8_FLOOD as f64 {
            break;
        }
        ensure!(
            started.elapsed() < Duration::from_secs(120),
            "the driver saw {ignored} of the {B8_FLOOD} foreign requests within 2 minutes"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    node.wait_quiet().await?;
    let after = sys::rss_mib(node.pid()?)?;
    f.insert("b8_rss_growth_mib", (after - before).max(0.0));
    f.insert("b8_rss_before_mib", before);
    f.insert(
        "b8_watched_requests",
        node.metric("certmanager_csi_watched_requests").await?,
    );
    // A normal publish still works.
    let pod = Pod::new(NAMESPACE, "b8-after");
    node.publish(&volume_id(8, 1), &pod, &ecdsa_attrs()).await?;
    node.stop().await
}

/// B10: p50 of a normal first publish with 20 `duration: 1s` volumes on
/// the node, as a ratio to the same figure on the same node before they
/// were published.
async fn b10(opts: &Options, f: &mut Figures) -> Result<()> {
    step("B10: first publishes without, then with 20 duration: 1s volumes");
    let node = Node::start(opts, "b10", &[], true).await?;
    node.wait_pool(DEFAULT_POOL_SIZE).await?;
    let attrs = ecdsa_attrs();
    let mut n = 0;
    let mut quiet = Vec::with_capacity(B10_SAMPLES);
    for _ in 0..B10_SAMPLES {
        n += 1;
        quiet.push(b10_publish(&node, n, &attrs).await?);
        tokio::time::sleep(B10_GAP).await;
    }
    let mut tight = rsa_attrs();
    tight.push(("csi.cert-manager.io/key-algorithm", "ECDSA"));
    tight.push(("csi.cert-manager.io/duration", "1s"));
    for i in 0..B10_TIGHT_VOLUMES {
        let pod = Pod::new(NAMESPACE, &format!("b10-tight-{i}"));
        node.publish(&volume_id(11, i), &pod, &tight).await?;
    }
    let creates0 = node.api.counts().verb(Verb::Create);
    let t0 = Instant::now();
    let mut loaded = Vec::with_capacity(B10_SAMPLES);
    for _ in 0..B10_SAMPLES {
        n += 1;
        loaded.push(b10_publish(&node, n, &attrs).await?);
        tokio::time::sleep(B10_GAP).await;
    }
    let renewals = node.api.counts().verb(Verb::Create) - creates0 - B10_SAMPLES as u64;
    let quiet_p50 = sys::percentile_ms(&quiet, 50.0);
    let loaded_p50 = sys::percentile_ms(&loaded, 50.0);
    f.insert("b10_publish_quiet_p50_ms", quiet_p50);
    f.insert("b10_publish_loaded_p50_ms", loaded_p50);
    f.insert("b10_publish_p50_ratio", loaded_p50 / quiet_p50);
    f.insert(
        "b10_tight_renewals_per_s",
        renewals as f64 / t0.elapsed().as_secs_f64(),
    );
    node.stop().await
}

/// B12: foreign requests in the API before the driver starts, and the size
/// of each one's CSR field.
const B12_FOREIGN: usize = 80;
const B12_REQUEST_BYTES: usize = 1024 * 1024;

/// B12: the driver's peak RSS (`VmHWM`) over a start (initial lists) and
/// one publish with 80 foreign 1 MB requests labelled for its node already
/// in the API, as a ratio to the same without them.
async fn b12(opts: &Options, f: &mut Figures) -> Result<()> {
    step(&format!(
        "B12: peak RSS of a start with {B12_FOREIGN} foreign {} KiB requests in the API",
        B12_REQUEST_BYTES / 1024
    ));
    let quiet = b12_start(opts, 0).await?;
    let flooded = b12_start(opts, B12_FOREIGN).await?;
    f.insert("b12_peak_rss_quiet_mib", quiet);
    f.insert("b12_peak_rss_flooded_mib", flooded);
    f.insert("b12_peak_rss_ratio", flooded / quiet);
    Ok(())
}

/// One B12 start with `foreign` large foreign requests: peak RSS in MiB.
async fn b12_start(opts: &Options, foreign: usize) -> Result<f64> {
    use base64::Engine as _;
    let csr =
        base64::engine::general_purpose::STANDARD.encode(vec![b'A'; B12_REQUEST_BYTES * 3 / 4]);
    let node = Node::start_prepared(opts, "b12", &[], false, |api| {
        for i in 0..foreign {
            let volume = format!("csi-foreign-{i:04}");
            let obj = json!({
                "apiVersion": "cert-manager.io/v1",
                "kind": "CertificateRequest",
                "metadata": {
                    "name": format!("big-{i:04}"),
                    "labels": {
                        "csi.cert-manager.io/node-id-hash": cmcsi_issuer_client::label_hash("bench-node"),
                        "csi.cert-manager.io/volume-id-hash": cmcsi_issuer_client::label_hash(&volume),
                    },
                    "annotations": {"csi.cert-manager.io/volume-id": volume},
                },
                "spec": {"request": csr, "issuerRef": {"name": "no-such-issuer"}},
            });
            api.insert_request("intruder", obj, "system:serviceaccount:intruder:default")
                .map_err(|e| anyhow!("creating a foreign request: {e}"))?;
        }
        Ok(())
    })
    .await?;
    let pod = Pod::new(NAMESPACE, "b12");
    node.publish(&volume_id(12, foreign), &pod, &ecdsa_attrs())
        .await?;
    node.wait_quiet().await?;
    let peak = sys::peak_rss_mib(node.pid()?)?;
    node.stop().await?;
    Ok(peak)
}

/// One B10 sample: a first publish of a fresh ECDSA volume.
async fn b10_publish(node: &Node, n: usize, attrs: &[(&str, &str)]) -> Result<Duration> {
    let pod = Pod::new(NAMESPACE, &format!("b10-{n}"));
    node.publish(&volume_id(10, n), &pod, attrs).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_line_is_found() {
        let log = concat!(
            "{\"level\":\"INFO\",\"message\":\"recovered stored volumes\",\"volumes\":3,\"duration_ms\":1}\n",
            "not json\n",
            "{\"level\":\"INFO\",\"message\":\"recovered stored volumes\",\"volumes\":1000,\"duration_ms\":42}\n",
            "{\"level\":\"INFO\",\"message\":\"serving CSI\"}\n",
        );
        assert_eq!(recovered(log), Some((1000.0, 42.0)));
        assert_eq!(recovered("{\"message\":\"serving CSI\"}"), None);
        // The driver's klog JSON format names the message `msg`.
        let klog = "{\"level\":\"info\",\"msg\":\"recovered stored volumes\",\"volumes\":7,\"duration_ms\":5,\"v\":0}\n";
        assert_eq!(recovered(klog), Some((7.0, 5.0)));
    }

    #[test]
    fn volume_ids_are_kubelet_shaped_and_distinct() {
        let a = volume_id(1, 0);
        assert_eq!(a.len(), 4 + 64);
        assert!(a.starts_with("csi-"));
        assert_ne!(a, volume_id(2, 0));
        assert_ne!(a, volume_id(1, 1));
    }

    #[test]
    fn readiness() {
        assert!(is_ready(
            &json!({"status": {"conditions": [{"type": "Approved", "status": "True"}, {"type": "Ready", "status": "True"}]}})
        ));
        assert!(!is_ready(
            &json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}})
        ));
        assert!(!is_ready(&json!({})));
    }
}
