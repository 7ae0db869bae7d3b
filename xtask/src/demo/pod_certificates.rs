//! `cargo xtask demo --pod-certificates`: the Pod signer end to end on this machine. testkit's
//! fake API stands in for the cluster and cert-manager (a test CA behind the ClusterIssuer
//! `demo-ca`); the real `cert-manager-pod-signer` binary signs; this program acts as the kubelet:
//! it makes the Pod's key and stub CSR, creates the PodCertificateRequest, shows the issued
//! chain, and verifies it against the ClusterTrustBundle the signer published (OpenSSL). No
//! mounts, so no root needed.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use cmcsi_keygen::{ChainSummary, CsrParams, KeySpec, PrivateKey, build_csr};
use cmcsi_testkit::{DEFAULT_TOKEN, FakeApi, Script};
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use serde_json::{Value, json};

const SIGNER: &str = "clusterissuers.cert-manager.io/demo-ca";
const NAMESPACE: &str = "sandbox";

/// Builds the signer, then runs the demo.
pub fn run() -> Result<()> {
    crate::run(
        "cargo",
        &[
            "build",
            "--quiet",
            "-p",
            "cmcsi-pod-signer",
            "--bin",
            "cert-manager-pod-signer",
        ],
        &[],
    )?;
    let signer = crate::workspace_root().join("target/debug/cert-manager-pod-signer");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(demo(&signer))
}

fn pcr_api(client: kube::Client) -> Api<DynamicObject> {
    let ar = ApiResource {
        group: "certificates.k8s.io".into(),
        version: "v1".into(),
        api_version: "certificates.k8s.io/v1".into(),
        kind: "PodCertificateRequest".into(),
        plural: "podcertificaterequests".into(),
    };
    Api::namespaced_with(client, NAMESPACE, &ar)
}

async fn kubelet_request(
    api: &FakeApi,
    pod: &str,
    signer: &str,
    key: &PrivateKey,
) -> Result<Value> {
    let csr = build_csr(
        key,
        &CsrParams {
            dns_names: vec![format!("{pod}.my-service.{NAMESPACE}.svc.cluster.local")],
            ..Default::default()
        },
    )?;
    let body: String = csr.lines().filter(|l| !l.starts_with("-----")).collect();
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "certificates.k8s.io/v1", "kind": "PodCertificateRequest",
        "metadata": {"name": format!("{pod}-tls")},
        "spec": {
            "signerName": signer, "podName": pod, "podUID": format!("{pod}-uid"),
            "serviceAccountName": "my-app", "serviceAccountUID": "sa-uid",
            "nodeName": "node-1", "nodeUID": "node-1-uid", "maxExpirationSeconds": 86400,
            "stubPKCS10Request": body,
        },
    }))?;
    let created = pcr_api(api.client().await?)
        .create(&PostParams::default(), &obj)
        .await?;
    let name = created.metadata.name.unwrap_or_default();
    api.wait_for_objects(Duration::from_secs(30), |pcrs, _| {
        pcrs.iter().any(|p| {
            p["metadata"]["name"] == name.as_str()
                && p["status"]["conditions"]
                    .as_array()
                    .is_some_and(|c| !c.is_empty())
        })
    })
    .await
    .context("no outcome within 30 s")?;
    api.pod_certificate_request(NAMESPACE, &name)
        .context("the request vanished")
}

async fn demo(signer_bin: &std::path::Path) -> Result<()> {
    let api = FakeApi::builder()
        .issuer("demo-ca", Script::Sign)
        .start()
        .await?;
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig, DEFAULT_TOKEN)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    println!(
        "== fake cluster at {} with ClusterIssuer demo-ca (a test CA)",
        api.url()
    );
    let mut child = std::process::Command::new(signer_bin)
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .arg(format!("--metrics-bind-address=127.0.0.1:{port}"))
        .args(["--log-level=warn"])
        .env("POD_NAME", "cert-manager-pod-signer-0")
        .env("POD_NAMESPACE", "cert-manager")
        .env_remove("KUBECONFIG")
        .spawn()
        .context("starting cert-manager-pod-signer")?;
    let result = async {
        println!("== cert-manager-pod-signer started; acting as the kubelet for Pod {NAMESPACE}/my-app-0");
        let key = PrivateKey::generate(&KeySpec::EcdsaP256)?;
        println!("   key: ECDSA P-256, made here (the kubelet's job); it never leaves this process");
        let pcr = kubelet_request(&api, "my-app-0", SIGNER, &key).await?;
        let status = &pcr["status"];
        let chain = status["certificateChain"].as_str().with_context(|| format!("not issued: {status}"))?;
        let summary = ChainSummary::from_pem(chain.as_bytes())?;
        println!("== PodCertificateRequest {NAMESPACE}/my-app-0-tls: Issued");
        println!("   subject:        {}", summary.subject);
        println!("   issuer:         {}", summary.issuer);
        println!("   DNS names:      {}", summary.dns_names.join(", "));
        println!("   notBefore:      {}", status["notBefore"].as_str().unwrap_or(""));
        println!("   notAfter:       {}", status["notAfter"].as_str().unwrap_or(""));
        println!("   beginRefreshAt: {}", status["beginRefreshAt"].as_str().unwrap_or(""));
        println!("   leaf carries the Pod's key: {}", summary.leaf_matches_key(&key));
        let uid = pcr["metadata"]["uid"].as_str().unwrap_or("");
        println!("   through CertificateRequest {NAMESPACE}/pod-cert-{uid} (one per request, named from its uid)");
        println!("\n{chain}");
        let bundle = api
            .cluster_trust_bundles()
            .into_iter()
            .find(|b| b["spec"]["signerName"] == SIGNER)
            .context("no ClusterTrustBundle for the signer")?;
        let name = bundle["metadata"]["name"].as_str().unwrap_or("");
        let trust = bundle["spec"]["trustBundle"].as_str().unwrap_or("");
        println!("== ClusterTrustBundle {name} (spec.signerName {SIGNER}):\n\n{trust}");
        let ca = dir.path().join("bundle.pem");
        let leaf = dir.path().join("chain.pem");
        std::fs::write(&ca, trust)?;
        std::fs::write(&leaf, chain)?;
        match std::process::Command::new("openssl").arg("verify").arg("-CAfile").arg(&ca).arg(&leaf).output() {
            Ok(out) if out.status.success() => println!("== openssl verify -CAfile <trust bundle> <chain>: OK"),
            Ok(out) => bail!("openssl verify failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
            Err(e) => println!("== openssl not found ({e}): the chain was not verified"),
        }
        println!("\n== and a request for another namespace's Issuer, which the signer refuses:");
        let other = kubelet_request(&api, "my-app-1", "issuers.cert-manager.io/team-b.internal-ca", &key).await?;
        for c in other["status"]["conditions"].as_array().into_iter().flatten() {
            println!("   {}={}: {}: {}", c["type"].as_str().unwrap_or(""), c["status"].as_str().unwrap_or(""),
                c["reason"].as_str().unwrap_or(""), c["message"].as_str().unwrap_or(""));
        }
        Ok(())
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    api.shutdown().await;
    result
}
