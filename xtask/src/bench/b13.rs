//! B13: 1,000 PodCertificateRequests created at once, all issued by the release
//! `cert-manager-pod-signer`, against 1,000 bare CertificateRequests created at once and
//! awaited on one watch, through the same fake API in the same run; and the signer's peak
//! RSS meanwhile.
//!
//! Both sides are measured the same way: the bench's one client creates the 1,000 objects
//! at once and awaits them on one watch of its own (opened and synced before the clock
//! starts), counting distinct objects that carry their certificate; the same fake API and
//! test issuer serve both, warmed by a first bare batch that is reported but not compared.
//! The signer runs with no client-side rate limit, as the bench's client has none.
//!
//! Reference figures explain the ratio: the CPU each side's harness and the signer spend, a
//! pair of batches with the CPUs split between the harness and the signer (`b13_split_*`), and
//! a bridge that makes only the writes the API needs and checks nothing (`b13_bridge_wall_s`).

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
const BRIDGE_NAMESPACE: &str = "b13-bridge";
/// The bridge's signer name: not one of the signer's, so the signer would leave its requests.
const BRIDGE_SIGNER: &str = "bench.cert-manager.io/bridge";
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
    // The DER, as the kubelet puts it (base64) in stubPKCS10Request.
    let (_, csr_der) =
        der::pem::decode_vec(csr_pem.as_bytes()).map_err(|e| anyhow!("the CSR's PEM: {e}"))?;

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

    let pcr_ar = ApiResource {
        group: "certificates.k8s.io".into(),
        version: "v1".into(),
        api_version: "certificates.k8s.io/v1".into(),
        kind: "PodCertificateRequest".into(),
        plural: "podcertificaterequests".into(),
    };
    let stub = b64.encode(&csr_der);

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
        let signer_name = format!("clusterissuers.cert-manager.io/{ISSUER}");
        // Let the signer sync its own watches.
        tokio::time::sleep(Duration::from_millis(300)).await;
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
        let wall = signer_batch(&client, &pcr_ar, SIGNER_NAMESPACE, &stub, &signer_name).await?;
        let api_cpu = sys::cpu_time(me, ticks)?.saturating_sub(harness_cpu0);
        let signer_cpu = sys::cpu_time(pid, ticks)?.saturating_sub(signer_cpu0);
        sampler.abort();
        let rss = *peak
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // The same again with the signer warm (a reference figure; 2,000 requests are in the
        // cluster by then, so its RSS is not B13's).
        let signer_cpu0 = sys::cpu_time(pid, ticks)?;
        let warm = signer_batch(
            &client,
            &pcr_ar,
            &format!("{SIGNER_NAMESPACE}-warm"),
            &stub,
            &signer_name,
        )
        .await?;
        let warm_cpu = sys::cpu_time(pid, ticks)?.saturating_sub(signer_cpu0);
        let split = split_pair(
            &Sides {
                client: &client,
                cr: &ar,
                pcr: &pcr_ar,
                csr_pem_b64: &csr_pem_b64,
                stub: &stub,
                signer_name: &signer_name,
            },
            pid,
            ticks,
        )
        .await?;
        Ok((wall, rss, api_cpu, signer_cpu, warm, warm_cpu, split))
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    if let Some(logs) = &opts.logs {
        let _ = std::fs::create_dir_all(logs);
        let _ = std::fs::copy(dir.path().join("signer.log"), logs.join("b13-signer.log"));
    }
    let (signer, rss, signer_api_cpu, signer_cpu, signer_warm, warm_signer_cpu, split) = result?;

    // The least any signer must do through this API, in the bench's own process once the signer
    // has stopped (a reference figure): the wall time of a bridge that checks nothing.
    let bridge_task = tokio::spawn(bridge(client.clone(), pcr_ar.clone(), ar.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A first batch warms the bridge (its watches' first objects, its client's connections);
    // the second is the one measured.
    let bridged = async {
        let cold = format!("{BRIDGE_NAMESPACE}-cold");
        signer_batch(&client, &pcr_ar, &cold, &stub, BRIDGE_SIGNER).await?;
        signer_batch(&client, &pcr_ar, BRIDGE_NAMESPACE, &stub, BRIDGE_SIGNER).await
    }
    .await;
    bridge_task.abort();
    let bridged = bridged?;
    api.shutdown().await;
    f.insert("b13_cold_bare_wall_s", bare_cold.as_secs_f64());
    f.insert("b13_bare_wall_s", bare.as_secs_f64());
    f.insert("b13_signer_wall_s", signer.as_secs_f64());
    f.insert("b13_wall_ratio", signer.as_secs_f64() / bare.as_secs_f64());
    f.insert("b13_signer_rss_peak_mib", rss);
    // Where the time goes: the harness's CPU (fake API, test issuer, the bench's client and
    // watch) during each measured batch, and the signer's own. On a machine whose cores the
    // harness and the signer share, the wall ratio follows the CPU each side spends in all, so
    // the harness's quotient alone is about where a signer that took no CPU would land.
    f.insert("b13_bare_api_cpu_s", bare_api_cpu.as_secs_f64());
    f.insert("b13_signer_api_cpu_s", signer_api_cpu.as_secs_f64());
    f.insert(
        "b13_harness_cpu_ratio",
        signer_api_cpu.as_secs_f64() / bare_api_cpu.as_secs_f64().max(0.001),
    );
    f.insert("b13_signer_cpu_s", signer_cpu.as_secs_f64());
    f.insert("b13_bridge_wall_s", bridged.as_secs_f64());
    f.insert(
        "b13_signer_bridge_ratio",
        signer.as_secs_f64() / bridged.as_secs_f64(),
    );
    if let Some(split) = split {
        f.insert("b13_split_bare_wall_s", split.bare.as_secs_f64());
        f.insert("b13_split_signer_wall_s", split.signer.as_secs_f64());
        f.insert(
            "b13_split_wall_ratio",
            split.signer.as_secs_f64() / split.bare.as_secs_f64(),
        );
        f.insert("b13_split_harness_cpu_ratio", split.harness_cpu_ratio);
    }
    // A second signer batch right after the first (a reference figure): the signer warm too.
    f.insert("b13_warm_signer_wall_s", signer_warm.as_secs_f64());
    f.insert("b13_warm_signer_cpu_s", warm_signer_cpu.as_secs_f64());
    f.insert(
        "b13_warm_wall_ratio",
        signer_warm.as_secs_f64() / bare.as_secs_f64(),
    );
    Ok(())
}

/// What the batches of both sides need.
struct Sides<'a> {
    client: &'a kube::Client,
    cr: &'a ApiResource,
    pcr: &'a ApiResource,
    csr_pem_b64: &'a str,
    stub: &'a str,
    signer_name: &'a str,
}

/// A bare batch and a signer batch with the CPUs split (see [`split_pair`]).
struct Split {
    bare: Duration,
    signer: Duration,
    /// The harness's CPU during the signer's batch over that during the bare one.
    harness_cpu_ratio: f64,
}

/// One more bare batch and one more signer batch (both warm, a reference figure) with this
/// process (the fake API, the test issuer and the bench's client) on one CPU and the signer
/// `signer_pid` on another, as on a cluster, where the signer has a node of its own and takes
/// no CPU from the API server. What is left of the wall ratio is then the extra work the
/// PodCertificateRequest flow asks of the API (two more writes, two more watches). Both
/// processes get their CPUs back afterwards; `None` where this process may use only one CPU.
async fn split_pair(sides: &Sides<'_>, signer_pid: u32, ticks: f64) -> Result<Option<Split>> {
    let me = std::process::id();
    let mine = sys::affinity(me)?;
    let theirs = sys::affinity(signer_pid)?;
    let &[api_cpu, signer_cpu, ..] = sys::cpu_list(&mine)?.as_slice() else {
        eprintln!("bench: B13: one CPU only; no split-CPU figures");
        return Ok(None);
    };
    let result = async {
        sys::set_affinity(me, &api_cpu.to_string())?;
        sys::set_affinity(signer_pid, &signer_cpu.to_string())?;
        let cpu0 = sys::cpu_time(me, ticks)?;
        let bare = bare_batch(
            sides.client,
            sides.cr,
            &format!("{BARE_NAMESPACE}-split"),
            sides.csr_pem_b64,
        )
        .await?;
        let cpu1 = sys::cpu_time(me, ticks)?;
        let signer = signer_batch(
            sides.client,
            sides.pcr,
            &format!("{SIGNER_NAMESPACE}-split"),
            sides.stub,
            sides.signer_name,
        )
        .await?;
        let cpu2 = sys::cpu_time(me, ticks)?;
        anyhow::Ok(Split {
            bare,
            signer,
            harness_cpu_ratio: cpu2.saturating_sub(cpu1).as_secs_f64()
                / cpu1.saturating_sub(cpu0).as_secs_f64().max(0.001),
        })
    }
    .await;
    let restored = sys::set_affinity(me, &mine).and(sys::set_affinity(signer_pid, &theirs));
    let split = result?;
    restored?;
    Ok(Some(split))
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
    signer_name: &str,
) -> Result<Duration> {
    let api = Api::namespaced_with(client.clone(), namespace, ar);
    batch(api, "/status/certificateChain", "signer", |i| {
        json!({
            "apiVersion": "certificates.k8s.io/v1", "kind": "PodCertificateRequest",
            "metadata": {"name": format!("pod-{i}")},
            "spec": {"signerName": signer_name,
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

/// The least a PodCertificateRequest signer must do through the API, with none of the checks,
/// limits, trust bundles or metrics a real one has: for each request of [`BRIDGE_SIGNER`]
/// without a status, one CertificateRequest carrying its stub CSR; for each CertificateRequest
/// with a certificate, one `/status` write with the chain and the leaf's times. Runs until
/// aborted; B13 measures the signer against it.
async fn bridge(client: kube::Client, pcr_ar: ApiResource, cr_ar: ApiResource) -> Result<()> {
    use futures::StreamExt;
    use kube::runtime::watcher;
    const LABEL: &str = "bench.cert-manager.io/bridge";
    let pcrs: Api<DynamicObject> = Api::all_with(client.clone(), &pcr_ar);
    let crs: Api<DynamicObject> = Api::all_with(client.clone(), &cr_ar);
    let mut pcr_events = std::pin::pin!(watcher::watcher(pcrs, watcher::Config::default()));
    let mut cr_events = std::pin::pin!(watcher::watcher(
        crs,
        watcher::Config::default().labels(LABEL)
    ));
    // The request each CertificateRequest is for, (namespace, name) -> uid, until its status
    // write starts: one in it is not taken again, and one done has conditions.
    let mut uids = std::collections::HashMap::new();
    loop {
        tokio::select! {
            Some(ev) = pcr_events.next() => {
                let Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) = ev else { continue };
                if o.data.pointer("/spec/signerName").and_then(serde_json::Value::as_str) != Some(BRIDGE_SIGNER)
                    || o.data.pointer("/status/conditions").is_some()
                {
                    continue;
                }
                let (Some(ns), Some(name), Some(uid)) =
                    (o.metadata.namespace.clone(), o.metadata.name.clone(), o.metadata.uid.clone())
                else {
                    continue;
                };
                if uids.insert((ns.clone(), name.clone()), uid).is_some() {
                    continue;
                }
                let stub = o.data.pointer("/spec/stubPKCS10Request").and_then(serde_json::Value::as_str).unwrap_or("").to_owned();
                let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &cr_ar);
                tokio::spawn(async move {
                    let Ok(der) = base64::engine::general_purpose::STANDARD.decode(stub) else { return };
                    let Ok(pem) = der::pem::encode_string("CERTIFICATE REQUEST", der::pem::LineEnding::LF, &der) else { return };
                    let cr = json!({
                        "apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
                        "metadata": {"name": name, "labels": {LABEL: "true"}},
                        "spec": {"request": base64::engine::general_purpose::STANDARD.encode(pem),
                                 "issuerRef": {"name": ISSUER, "kind": "ClusterIssuer", "group": "cert-manager.io"},
                                 "duration": "24h0m0s", "usages": ["digital signature", "server auth", "client auth"]},
                    });
                    if let Ok(cr) = serde_json::from_value::<DynamicObject>(cr) {
                        let _ = api.create(&PostParams::default(), &cr).await;
                    }
                });
            }
            Some(ev) = cr_events.next() => {
                let Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) = ev else { continue };
                let Some(cert) = o.data.pointer("/status/certificate").and_then(serde_json::Value::as_str) else { continue };
                let (Some(ns), Some(name)) = (o.metadata.namespace.clone(), o.metadata.name.clone()) else { continue };
                let Some(uid) = uids.remove(&(ns.clone(), name.clone())) else { continue };
                let chain = base64::engine::general_purpose::STANDARD.decode(cert).unwrap_or_default();
                let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &pcr_ar);
                let pcr_ar = pcr_ar.clone();
                tokio::spawn(async move {
                    let Ok(leaf) = cmcsi_keygen::LeafValidity::from_pem(&chain) else { return };
                    let stamp = |t: std::time::SystemTime| {
                        jiff::Timestamp::try_from(t)
                            .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
                            .unwrap_or_default()
                    };
                    let (nb, na) = (leaf.not_before, leaf.not_after);
                    let refresh = nb + na.duration_since(nb).unwrap_or_default() * 2 / 3;
                    let now = stamp(std::time::SystemTime::now());
                    let body = json!({
                        "apiVersion": pcr_ar.api_version, "kind": pcr_ar.kind,
                        "metadata": {"name": name, "namespace": ns, "uid": uid},
                        "status": {
                            "conditions": [{"type": "Issued", "status": "True", "reason": "Issued",
                                            "message": "issued", "lastTransitionTime": now}],
                            "certificateChain": String::from_utf8_lossy(&chain),
                            "notBefore": stamp(nb), "notAfter": stamp(na),
                            "beginRefreshAt": stamp(refresh), "issuedAt": now,
                        },
                    });
                    if let Ok(obj) = serde_json::from_value::<DynamicObject>(body) {
                        let _ = api.replace_status(&name, &PostParams::default(), &obj).await;
                    }
                });
            }
            else => return Ok(()),
        }
    }
}
