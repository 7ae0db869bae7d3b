//! B13: 1,000 PodCertificateRequests created at once, all issued by the release
//! `cert-manager-pod-signer`, against 1,000 bare CertificateRequests created at once and
//! awaited on one watch, through the same fake API in the same run; and the signer's peak
//! RSS meanwhile.
//!
//! Both sides are measured the same way: the bench's one client creates the 1,000 objects
//! at once and awaits them on one watch of its own (opened and synced before the clock
//! starts), counting distinct objects that carry their certificate; the same fake API and
//! test issuer serve both, warmed by a first bare batch that is reported but not compared. The signer runs with no client-side rate limit, as the bench's
//! client has none.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine as _;
use cmcsi_keygen::{CsrParams, KeySpec, PrivateKey, build_csr};
use cmcsi_testkit::{DEFAULT_TOKEN, FakeApi, Script};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::json;

use super::measure::{Figures, Options};
use super::sys;

/// Requests per side.
pub const B13_REQUESTS: usize = 1000;
const ISSUER: &str = "ca";
const BARE_NAMESPACE: &str = "b13-bare";
const SIGNER_NAMESPACE: &str = "b13-pods";
const DEADLINE: Duration = Duration::from_secs(300);

/// Runs B13 into `f`.
pub async fn b13(opts: &Options, f: &mut Figures) -> Result<()> {
    eprintln!(
        "bench: B13: 1,000 PodCertificateRequests through the signer vs 1,000 bare CertificateRequests"
    );
    let signer_bin = opts
        .signer
        .clone()
        .unwrap_or_else(|| opts.driver.with_file_name("cert-manager-pod-signer"));
    if !signer_bin.is_file() {
        bail!(
            "{} is missing; run without --no-build",
            signer_bin.display()
        );
    }
    let api = FakeApi::builder()
        .issuer(ISSUER, Script::Sign)
        .start()
        .await?;
    let client = api.client().await?;
    let key = PrivateKey::generate(&KeySpec::EcdsaP256)?;
    let csr_pem = build_csr(
        &key,
        &CsrParams {
            dns_names: vec!["b13.bench.svc".into()],
            ..Default::default()
        },
    )?;
    let b64 = base64::engine::general_purpose::STANDARD;
    // The PEM's body is the DER, base64: what the kubelet puts in stubPKCS10Request.
    let body: String = csr_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let csr_der = b64.decode(body).context("the CSR's PEM body")?;

    // Bare: create 1,000 CertificateRequests at once, await all on one watch.
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "cert-manager.io",
        "v1",
        "CertificateRequest",
    ));
    let csr_pem_b64 = b64.encode(csr_pem.as_bytes());
    let ticks = sys::clock_ticks();
    let me = std::process::id();
    // A first bare batch on the fresh fake API and client (a reference figure): it also pays
    // their start (the API's first objects and watches, the client's 1,000 connections), which
    // the signer's batch, run later on the same API and client, would not.
    let bare_cold = bare_batch(
        &client,
        &ar,
        &format!("{BARE_NAMESPACE}-cold"),
        &csr_pem_b64,
    )
    .await?;
    // The measured bare batch: the API and the client as warm as the signer's side finds them.
    let harness_cpu0 = sys::cpu_time(me, ticks)?;
    let bare = bare_batch(&client, &ar, BARE_NAMESPACE, &csr_pem_b64).await?;
    let bare_api_cpu = sys::cpu_time(me, ticks)?.saturating_sub(harness_cpu0);

    // The signer: leader first, then 1,000 PodCertificateRequests at once.
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig, DEFAULT_TOKEN)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let log = std::fs::File::create(dir.path().join("signer.log"))?;
    let mut child = std::process::Command::new(&signer_bin)
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .arg(format!("--metrics-bind-address=127.0.0.1:{port}"))
        .args([
            "--kube-api-qps=100000",
            "--kube-api-burst=100000",
            "--log-level=warn",
        ])
        .env("POD_NAME", "bench-signer")
        .env("POD_NAMESPACE", "cert-manager")
        .env_remove("KUBECONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", signer_bin.display()))?;
    let pid = child.id();
    let result = async {
        let started = Instant::now();
        while api
            .lease("cert-manager", "cert-manager-pod-signer")
            .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned))
            .is_none()
        {
            if started.elapsed() > Duration::from_secs(30) {
                bail!("the signer did not take its Lease within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let ar = ApiResource {
            group: "certificates.k8s.io".into(),
            version: "v1".into(),
            api_version: "certificates.k8s.io/v1".into(),
            kind: "PodCertificateRequest".into(),
            plural: "podcertificaterequests".into(),
        };
        // Let the signer sync its own watches.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let stub = b64.encode(&csr_der);
        let peak = std::sync::Arc::new(std::sync::Mutex::new(0.0f64));
        let sampler = tokio::spawn({
            let peak = peak.clone();
            async move {
                loop {
                    if let Ok(r) = sys::rss_mib(pid) {
                        let mut p = peak
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        *p = p.max(r);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        });
        let harness_cpu0 = sys::cpu_time(me, ticks)?;
        let signer_cpu0 = sys::cpu_time(pid, ticks)?;
        let wall = signer_batch(&client, &ar, SIGNER_NAMESPACE, &stub).await?;
        let api_cpu = sys::cpu_time(me, ticks)?.saturating_sub(harness_cpu0);
        let signer_cpu = sys::cpu_time(pid, ticks)?.saturating_sub(signer_cpu0);
        sampler.abort();
        let rss = *peak
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // The same again with the signer warm (a reference figure; 2,000 requests are in the
        // cluster by then, so its RSS is not B13's).
        let signer_cpu0 = sys::cpu_time(pid, ticks)?;
        let warm = signer_batch(&client, &ar, &format!("{SIGNER_NAMESPACE}-warm"), &stub).await?;
        let warm_cpu = sys::cpu_time(pid, ticks)?.saturating_sub(signer_cpu0);
        Ok((wall, rss, api_cpu, signer_cpu, warm, warm_cpu))
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    if let Some(logs) = &opts.logs {
        let _ = std::fs::create_dir_all(logs);
        let _ = std::fs::copy(dir.path().join("signer.log"), logs.join("b13-signer.log"));
    }
    let (signer, rss, signer_api_cpu, signer_cpu, signer_warm, warm_signer_cpu) = result?;
    api.shutdown().await;
    f.insert("b13_cold_bare_wall_s", bare_cold.as_secs_f64());
    f.insert("b13_bare_wall_s", bare.as_secs_f64());
    f.insert("b13_signer_wall_s", signer.as_secs_f64());
    f.insert("b13_wall_ratio", signer.as_secs_f64() / bare.as_secs_f64());
    f.insert("b13_signer_rss_peak_mib", rss);
    // Where the time goes: the harness's CPU (fake API, test issuer, the bench's client and
    // watch) during each measured batch, and the signer's own. Their quotient is the floor of
    // the wall ratio on a machine whose cores the harness and the signer share: the signer's
    // side needs that much more of the harness even if the signer itself took no CPU.
    f.insert("b13_bare_api_cpu_s", bare_api_cpu.as_secs_f64());
    f.insert("b13_signer_api_cpu_s", signer_api_cpu.as_secs_f64());
    f.insert(
        "b13_harness_cpu_ratio",
        signer_api_cpu.as_secs_f64() / bare_api_cpu.as_secs_f64().max(0.001),
    );
    f.insert("b13_signer_cpu_s", signer_cpu.as_secs_f64());
    // A second signer batch right after the first (a reference figure): the signer warm too.
    f.insert("b13_warm_signer_wall_s", signer_warm.as_secs_f64());
    f.insert("b13_warm_signer_cpu_s", warm_signer_cpu.as_secs_f64());
    f.insert(
        "b13_warm_wall_ratio",
        signer_warm.as_secs_f64() / bare.as_secs_f64(),
    );
    Ok(())
}

/// Creates 1,000 bare CertificateRequests in `namespace` at once and awaits them all;
/// returns the wall time.
async fn bare_batch(
    client: &kube::Client,
    ar: &ApiResource,
    namespace: &str,
    csr_pem_b64: &str,
) -> Result<Duration> {
    let api = Api::namespaced_with(client.clone(), namespace, ar);
    batch(api, "/status/certificate", "bare", |i| {
        json!({
            "apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
            "metadata": {"name": format!("bare-{i}")},
            "spec": {"request": csr_pem_b64, "issuerRef": {"name": ISSUER, "kind": "ClusterIssuer", "group": "cert-manager.io"},
                     "duration": "24h0m0s", "usages": ["digital signature", "server auth", "client auth"]},
        })
    })
    .await
}

/// Creates 1,000 PodCertificateRequests in `namespace` at once and awaits them all;
/// returns the wall time.
async fn signer_batch(
    client: &kube::Client,
    ar: &ApiResource,
    namespace: &str,
    stub: &str,
) -> Result<Duration> {
    let api = Api::namespaced_with(client.clone(), namespace, ar);
    batch(api, "/status/certificateChain", "signer", |i| {
        json!({
            "apiVersion": "certificates.k8s.io/v1", "kind": "PodCertificateRequest",
            "metadata": {"name": format!("pod-{i}")},
            "spec": {"signerName": format!("clusterissuers.cert-manager.io/{ISSUER}"),
                     "podName": format!("pod-{i}"), "podUID": format!("uid-{i}"),
                     "serviceAccountName": "default", "serviceAccountUID": "sa",
                     "nodeName": "node", "nodeUID": "node-uid", "maxExpirationSeconds": 86400,
                     "stubPKCS10Request": stub},
        })
    })
    .await
}

/// Creates [`B13_REQUESTS`] objects (`object(i)`) at once through `api` and waits until each
/// carries its certificate at `field`, on a watch opened before the clock starts; returns the
/// wall time. `side` names the side in errors.
async fn batch(
    api: Api<DynamicObject>,
    field: &'static str,
    side: &str,
    object: impl Fn(usize) -> serde_json::Value,
) -> Result<Duration> {
    let issued = IssuedWatch::start(api.clone(), field).await?;
    let t0 = Instant::now();
    let creates = futures::future::join_all((0..B13_REQUESTS).map(|i| {
        let api = api.clone();
        let obj: Result<DynamicObject, _> = serde_json::from_value(object(i));
        async move {
            api.create(&PostParams::default(), &obj?)
                .await
                .map(|_| ())
                .map_err(anyhow::Error::from)
        }
    }))
    .await;
    creates.into_iter().collect::<Result<Vec<()>>>()?;
    issued
        .all(B13_REQUESTS)
        .await
        .map_err(|e| anyhow!("{side}: {e}"))?;
    Ok(t0.elapsed())
}

/// One watch of the bench's own over a side's objects, counting the distinct
/// objects that carry their certificate at `field` (a JSON pointer).
struct IssuedWatch {
    rx: tokio::sync::mpsc::UnboundedReceiver<String>,
    task: tokio::task::JoinHandle<()>,
}

impl IssuedWatch {
    /// Opens the watch and waits for its initial list.
    async fn start(api: Api<DynamicObject>, field: &'static str) -> Result<Self> {
        let w =
            super::watch::accepted(api, move |o| o.pointer(field).is_some_and(|v| !v.is_null()))
                .await?;
        Ok(Self {
            rx: w.names,
            task: w.task,
        })
    }

    /// Waits until `n` distinct objects carry their certificate.
    async fn all(mut self, n: usize) -> Result<()> {
        let mut seen = std::collections::HashSet::new();
        let result = tokio::time::timeout(DEADLINE, async {
            while seen.len() < n {
                match self.rx.recv().await {
                    Some(name) => {
                        seen.insert(name);
                    }
                    None => bail!("the watch ended"),
                }
            }
            Ok(())
        })
        .await
        .map_err(|_| anyhow!("{} of {n} issued within {DEADLINE:?}", seen.len()));
        self.task.abort();
        result?
    }
}
