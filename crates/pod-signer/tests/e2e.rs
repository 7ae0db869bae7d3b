//! End-to-end: the real `cert-manager-pod-signer` binary against testkit's
//! fake API, which plays the kubelet's part (key, stub CSR, request) and
//! cert-manager's (the test issuer). One fake API and one signer serve most
//! cases, each in its own namespace or with its own issuer, to keep the suite fast.

#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use cmcsi_keygen::{ChainSummary, CsrParams, KeySpec, PrivateKey, Subject, build_csr};
use cmcsi_testkit::{DEFAULT_TOKEN, FakeApi, Script, Verb};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_cert-manager-pod-signer");
const WAIT: Duration = Duration::from_secs(30);

/// A signer process, killed when dropped.
struct SignerProcess {
    child: Child,
    metrics: String,
}

impl Drop for SignerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_signer(api: &FakeApi, dir: &std::path::Path, pod: &str, extra: &[&str]) -> SignerProcess {
    let kubeconfig = dir.join("kubeconfig");
    api.write_kubeconfig(&kubeconfig, DEFAULT_TOKEN).unwrap();
    let metrics = format!("127.0.0.1:{}", free_port());
    let child = Command::new(BIN)
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .arg(format!("--metrics-bind-address={metrics}"))
        .args([
            "--lease-duration-seconds=2",
            "--lease-retry-period-ms=200",
            "--log-level=info",
        ])
        .args(extra)
        .env("POD_NAME", pod)
        .env("POD_NAMESPACE", "cert-manager")
        .env_remove("KUBECONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    SignerProcess { child, metrics }
}

fn pcr_resource(version: &str) -> ApiResource {
    ApiResource {
        group: "certificates.k8s.io".into(),
        version: version.into(),
        api_version: format!("certificates.k8s.io/{version}"),
        kind: "PodCertificateRequest".into(),
        plural: "podcertificaterequests".into(),
    }
}

fn csr_der(key: &PrivateKey, dns: &[&str]) -> Vec<u8> {
    let pem = build_csr(
        key,
        &CsrParams {
            subject: Subject::default(),
            dns_names: dns.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        },
    )
    .unwrap();
    der::pem::decode_vec(pem.as_bytes()).unwrap().1
}

/// The kubelet's part: a PodCertificateRequest for `csr` (DER).
async fn request(
    api: &FakeApi,
    version: &str,
    ns: &str,
    name: &str,
    signer: &str,
    csr: &[u8],
    max_seconds: i64,
) -> Value {
    let client = api.client().await.unwrap();
    let pcrs: Api<DynamicObject> = Api::namespaced_with(client, ns, &pcr_resource(version));
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": format!("certificates.k8s.io/{version}"), "kind": "PodCertificateRequest",
        "metadata": {"name": name},
        "spec": {
            "signerName": signer, "podName": format!("{name}-pod"), "podUID": format!("uid-{name}"),
            "serviceAccountName": "app-sa", "serviceAccountUID": "sa-uid", "nodeName": "node-1", "nodeUID": "node-uid",
            "maxExpirationSeconds": max_seconds,
            "stubPKCS10Request": base64::engine::general_purpose::STANDARD.encode(csr),
        },
    }))
    .unwrap();
    serde_json::to_value(pcrs.create(&PostParams::default(), &obj).await.unwrap()).unwrap()
}

fn outcome_of(v: &Value) -> Option<String> {
    v.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find_map(|c| {
            let ty = c["type"].as_str()?;
            (c["status"] == "True" && matches!(ty, "Issued" | "Denied" | "Failed"))
                .then(|| ty.to_owned())
        })
}

async fn await_outcome(api: &FakeApi, ns: &str, name: &str) -> Value {
    api.wait_for_objects(WAIT, |pcrs, _| {
        pcrs.iter().any(|p| {
            p["metadata"]["namespace"] == ns
                && p["metadata"]["name"] == name
                && outcome_of(p).is_some()
        })
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{ns}/{name} got no outcome: {e}; {:?}",
            api.pod_certificate_request(ns, name)
        )
    });
    api.pod_certificate_request(ns, name).unwrap()
}

fn condition<'a>(pcr: &'a Value, ty: &str) -> &'a Value {
    pcr["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == ty)
        .unwrap_or_else(|| panic!("no {ty} in {pcr}"))
}

fn bundle_for(api: &FakeApi, signer: &str) -> Option<String> {
    api.cluster_trust_bundles()
        .into_iter()
        .find(|b| b["spec"]["signerName"] == signer)
        .and_then(|b| b["spec"]["trustBundle"].as_str().map(str::to_owned))
}

fn openssl_verify(dir: &std::path::Path, bundle: &str, chain: &str) -> (bool, String) {
    let ca = dir.join("bundle.pem");
    let leaf = dir.join("leaf.pem");
    std::fs::write(&ca, bundle).unwrap();
    std::fs::write(&leaf, chain).unwrap();
    let out = Command::new("openssl")
        .args(["verify", "-purpose", "sslclient", "-CAfile"])
        .arg(&ca)
        .arg(&leaf)
        .output()
        .expect("openssl must be installed (.ci/run installs it)");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn certificate_request_for(api: &FakeApi, ns: &str, pcr: &Value) -> Option<Value> {
    let uid = pcr["metadata"]["uid"].as_str().unwrap();
    api.request(ns, &format!("pod-cert-{uid}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signs_pod_certificates_through_cert_manager_issuers() {
    let api = FakeApi::builder()
        .issuer("ca", Script::Sign)
        .issuer("team-ca", Script::Sign)
        .issuer("deny", Script::deny())
        .issuer(
            "fail",
            Script::Fail {
                message: "the CA is offline".into(),
            },
        )
        .issuer("long", Script::SignFor(Duration::from_secs(48 * 3600)))
        .issuer("rot", Script::Sign)
        .issuer("slow", Script::Delay(Duration::from_millis(1500)))
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let signer = start_signer(&api, dir.path(), "signer-0", &[]);

    // A ClusterIssuer request.
    let key = PrivateKey::generate(&KeySpec::EcdsaP256).unwrap();
    let cluster = "clusterissuers.cert-manager.io/ca";
    let created = request(
        &api,
        "v1",
        "apps",
        "web",
        cluster,
        &csr_der(&key, &["web.apps.svc"]),
        86_400,
    )
    .await;
    let pcr = await_outcome(&api, "apps", "web").await;
    assert_eq!(outcome_of(&pcr).as_deref(), Some("Issued"), "{pcr}");
    let chain = pcr["status"]["certificateChain"].as_str().unwrap();
    let summary = ChainSummary::from_pem(chain.as_bytes()).unwrap();
    assert!(
        summary.leaf_matches_key(&key),
        "the leaf carries the CSR's key"
    );
    assert_eq!(summary.dns_names, ["web.apps.svc"]);
    let ts = |f: &str| {
        pcr["status"][f]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_second()
    };
    let (nb, na, refresh) = (ts("notBefore"), ts("notAfter"), ts("beginRefreshAt"));
    let leaf_nb = jiff::Timestamp::try_from(summary.not_before)
        .unwrap()
        .as_second();
    let leaf_na = jiff::Timestamp::try_from(summary.not_after)
        .unwrap()
        .as_second();
    assert_eq!(
        (nb, na),
        (leaf_nb, leaf_na),
        "notBefore/notAfter are the leaf's"
    );
    assert!(
        na - nb <= 86_400,
        "lifetime {} within maxExpirationSeconds",
        na - nb
    );
    assert!(
        nb < refresh && refresh < na,
        "beginRefreshAt inside the validity"
    );
    assert!(pcr["status"]["issuedAt"].is_string(), "v1 has issuedAt");
    // Exactly the one CertificateRequest, tied to the request.
    let cr = certificate_request_for(&api, "apps", &created)
        .expect("CertificateRequest named from the uid");
    assert_eq!(
        cr["metadata"]["ownerReferences"][0]["kind"],
        "PodCertificateRequest"
    );
    assert_eq!(
        cr["metadata"]["ownerReferences"][0]["uid"],
        created["metadata"]["uid"]
    );
    assert_eq!(
        cr["metadata"]["annotations"]["pod-signer.cert-manager.io/service-account"],
        "app-sa"
    );
    assert_eq!(cr["spec"]["issuerRef"]["kind"], "ClusterIssuer");
    assert_eq!(cr["spec"]["duration"], "24h0m0s");
    assert_eq!(api.requests("apps").len(), 1);
    // The published trust bundle verifies the chain (OpenSSL).
    let bundle = bundle_for(&api, cluster).expect("a ClusterTrustBundle for the signer");
    let (ok, out) = openssl_verify(dir.path(), &bundle, chain);
    assert!(ok, "openssl verify: {out}");
    let name = api
        .cluster_trust_bundles()
        .into_iter()
        .find(|b| b["spec"]["signerName"] == cluster)
        .unwrap();
    assert!(
        name["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("clusterissuers.cert-manager.io:ca:")
    );

    // A request changed while it is being issued (a label added) is still issued: the status
    // update carries the resourceVersion the signer's watch showed, meets a conflict, reads the
    // request again and writes it with the new one.
    let (updates, gets) = (
        api.counts()
            .of(Verb::Update, "podcertificaterequests/status"),
        api.counts().of(Verb::Get, "podcertificaterequests"),
    );
    let relabelled = request(
        &api,
        "v1",
        "apps",
        "relabelled",
        "clusterissuers.cert-manager.io/slow",
        &csr_der(&key, &["web.apps.svc"]),
        86_400,
    )
    .await;
    let uid = relabelled["metadata"]["uid"].as_str().unwrap().to_owned();
    api.wait_for(WAIT, |crs| {
        crs.iter()
            .any(|c| c["metadata"]["name"] == format!("pod-cert-{uid}"))
    })
    .await
    .unwrap();
    let pcrs: Api<DynamicObject> =
        Api::namespaced_with(api.client().await.unwrap(), "apps", &pcr_resource("v1"));
    pcrs.patch(
        "relabelled",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"team": "web"}}})),
    )
    .await
    .unwrap();
    let pcr = await_outcome(&api, "apps", "relabelled").await;
    assert_eq!(outcome_of(&pcr).as_deref(), Some("Issued"), "{pcr}");
    assert_eq!(pcr["metadata"]["labels"]["team"], "web");
    assert_eq!(
        (
            api.counts()
                .of(Verb::Update, "podcertificaterequests/status")
                - updates,
            api.counts().of(Verb::Get, "podcertificaterequests") - gets,
        ),
        (2, 1),
        "one conflicting update, one read, one update that holds"
    );

    // A namespaced Issuer: served in its namespace, denied outside it.
    let k2 = PrivateKey::generate(&KeySpec::Ed25519).unwrap();
    let team = "issuers.cert-manager.io/team-a.team-ca";
    request(
        &api,
        "v1",
        "team-a",
        "inside",
        team,
        &csr_der(&k2, &["a.team-a.svc"]),
        3600,
    )
    .await;
    request(
        &api,
        "v1",
        "apps",
        "outside",
        team,
        &csr_der(&k2, &["b.apps.svc"]),
        3600,
    )
    .await;
    let inside = await_outcome(&api, "team-a", "inside").await;
    assert_eq!(outcome_of(&inside).as_deref(), Some("Issued"), "{inside}");
    let outside = await_outcome(&api, "apps", "outside").await;
    assert_eq!(condition(&outside, "Denied")["reason"], "NamespaceMismatch");
    assert!(
        condition(&outside, "Denied")["message"]
            .as_str()
            .unwrap()
            .contains("team-a")
    );
    assert!(certificate_request_for(&api, "apps", &outside).is_none());

    // Denied, failed and too-long issuance.
    let k3 = PrivateKey::generate(&KeySpec::EcdsaP384).unwrap();
    request(
        &api,
        "v1",
        "apps",
        "denied",
        "clusterissuers.cert-manager.io/deny",
        &csr_der(&k3, &[]),
        3600,
    )
    .await;
    request(
        &api,
        "v1",
        "apps",
        "failed",
        "clusterissuers.cert-manager.io/fail",
        &csr_der(&k3, &[]),
        3600,
    )
    .await;
    request(
        &api,
        "v1",
        "apps",
        "toolong",
        "clusterissuers.cert-manager.io/long",
        &csr_der(&k3, &[]),
        86_400,
    )
    .await;
    let denied = await_outcome(&api, "apps", "denied").await;
    assert_eq!(
        condition(&denied, "Denied")["reason"],
        "PolicyDenied",
        "cert-manager's reason"
    );
    assert!(
        condition(&denied, "Denied")["message"]
            .as_str()
            .unwrap()
            .contains("denied by the test approver")
    );
    let failed = await_outcome(&api, "apps", "failed").await;
    assert!(
        condition(&failed, "Failed")["message"]
            .as_str()
            .unwrap()
            .contains("the CA is offline"),
        "{failed}"
    );
    let toolong = await_outcome(&api, "apps", "toolong").await;
    assert_eq!(
        condition(&toolong, "Failed")["reason"],
        "CertificateTooLong",
        "{toolong}"
    );
    assert!(toolong["status"].get("certificateChain").is_none());

    // A CSR whose signature does not verify: denied, no CertificateRequest.
    let mut forged = csr_der(&key, &["forged.apps.svc"]);
    let at = forged.windows(6).position(|w| w == b"forged").unwrap();
    forged[at] = b'F';
    let f = request(&api, "v1", "apps", "forged", cluster, &forged, 3600).await;
    let forged_pcr = await_outcome(&api, "apps", "forged").await;
    assert_eq!(
        condition(&forged_pcr, "Denied")["reason"],
        "InvalidSignature",
        "{forged_pcr}"
    );
    assert!(certificate_request_for(&api, "apps", &f).is_none());

    // An unsupported key type (secp256k1, made by OpenSSL).
    let key_path = dir.path().join("k1.pem");
    let csr_path = dir.path().join("k1.csr");
    let ok = Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:secp256k1",
            "-nodes",
            "-subj",
            "/CN=k1",
            "-outform",
            "DER",
            "-keyout",
        ])
        .arg(&key_path)
        .arg("-out")
        .arg(&csr_path)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let k1 = request(
        &api,
        "v1",
        "apps",
        "k1",
        cluster,
        &std::fs::read(&csr_path).unwrap(),
        3600,
    )
    .await;
    let k1_pcr = await_outcome(&api, "apps", "k1").await;
    assert_eq!(
        condition(&k1_pcr, "Denied")["reason"],
        "UnsupportedKeyType",
        "{k1_pcr}"
    );
    assert_eq!(
        condition(&k1_pcr, "SuggestedKeyType")["reason"],
        "ECDSAP256"
    );
    assert!(certificate_request_for(&api, "apps", &k1).is_none());

    // A CA rotation: the bundle holds the old CA and the new one.
    let rot = "clusterissuers.cert-manager.io/rot";
    let old_ca = api.issuer_ca_pem("rot");
    request(&api, "v1", "rot", "before", rot, &csr_der(&key, &[]), 3600).await;
    let before = await_outcome(&api, "rot", "before").await;
    assert_eq!(outcome_of(&before).as_deref(), Some("Issued"));
    let new_ca = api.rotate_issuer_ca("rot").unwrap();
    request(&api, "v1", "rot", "after", rot, &csr_der(&key, &[]), 3600).await;
    let after = await_outcome(&api, "rot", "after").await;
    assert_eq!(outcome_of(&after).as_deref(), Some("Issued"), "{after}");
    api.wait_for_objects(WAIT, |_, bundles| {
        bundles.iter().any(|b| {
            b["spec"]["signerName"] == rot
                && b["spec"]["trustBundle"]
                    .as_str()
                    .is_some_and(|t| t.contains(new_ca.trim()))
        })
    })
    .await
    .unwrap();
    let bundle = bundle_for(&api, rot).unwrap();
    assert!(
        bundle.contains(old_ca.trim()) && bundle.contains(new_ca.trim()),
        "old and new CA during the overlap"
    );
    for pcr in [&before, &after] {
        let (ok, out) = openssl_verify(
            dir.path(),
            &bundle,
            pcr["status"]["certificateChain"].as_str().unwrap(),
        );
        assert!(
            ok,
            "a certificate from either side of the rotation verifies: {out}"
        );
    }

    // Events for what a person must act on, none for an issued request; metrics.
    assert!(
        !api.events_regarding("apps", "denied").is_empty() || {
            tokio::time::sleep(Duration::from_millis(500)).await;
            !api.events_regarding("apps", "denied").is_empty()
        }
    );
    assert_eq!(api.events_regarding("apps", "denied")[0]["type"], "Warning");
    assert!(api.events_regarding("apps", "web").is_empty());
    let metrics = reqwest_get(&signer.metrics, "/metrics").await;
    assert!(
        metrics.contains("certmanager_pod_signer_requests_total{outcome=\"issued\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("certmanager_pod_signer_leader 1"),
        "{metrics}"
    );
    drop(signer);
    api.shutdown().await;
}

/// A plain HTTP GET (the body), over tokio's TCP.
async fn reqwest_get(addr: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1beta1_only_with_impersonation() {
    let api = FakeApi::builder()
        .issuer("ca", Script::Sign)
        .start()
        .await
        .unwrap();
    api.set_certificates_versions(&["v1beta1"]);
    let dir = tempfile::tempdir().unwrap();
    let _signer = start_signer(
        &api,
        dir.path(),
        "signer-0",
        &["--impersonate-service-account"],
    );
    let key = PrivateKey::generate(&KeySpec::EcdsaP256).unwrap();
    let created = request(
        &api,
        "v1beta1",
        "apps",
        "beta",
        "clusterissuers.cert-manager.io/ca",
        &csr_der(&key, &["beta.apps.svc"]),
        3600,
    )
    .await;
    assert_eq!(created["apiVersion"], "certificates.k8s.io/v1beta1");
    let pcr = await_outcome(&api, "apps", "beta").await;
    assert_eq!(outcome_of(&pcr).as_deref(), Some("Issued"), "{pcr}");
    assert!(
        pcr["status"].get("issuedAt").is_none(),
        "v1beta1 has no issuedAt"
    );
    let cr = certificate_request_for(&api, "apps", &created).unwrap();
    assert_eq!(
        cr["spec"]["username"], "system:serviceaccount:apps:app-sa",
        "created as the Pod's ServiceAccount"
    );
    assert_eq!(
        cr["metadata"]["ownerReferences"][0]["apiVersion"],
        "certificates.k8s.io/v1beta1"
    );
    let bundle = bundle_for(&api, "clusterissuers.cert-manager.io/ca")
        .expect("bundle written through v1beta1");
    let (ok, out) = openssl_verify(
        dir.path(),
        &bundle,
        pcr["status"]["certificateChain"].as_str().unwrap(),
    );
    assert!(ok, "{out}");
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_mid_issuance_leaves_one_request_each() {
    // Signing takes 3 s, so the leader dies with requests pending.
    let api = FakeApi::builder()
        .issuer("slow", Script::Delay(Duration::from_secs(3)))
        .start()
        .await
        .unwrap();
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let mut a = Some(start_signer(&api, dir_a.path(), "signer-a", &[]));
    let mut b = Some(start_signer(&api, dir_b.path(), "signer-b", &[]));
    let holder = loop {
        if let Some(h) = api
            .lease("cert-manager", "cert-manager-pod-signer")
            .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned))
        {
            break h;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    const N: usize = 20;
    let key = PrivateKey::generate(&KeySpec::EcdsaP256).unwrap();
    let csr = csr_der(&key, &[]);
    for i in 0..N {
        request(
            &api,
            "v1",
            "apps",
            &format!("r{i}"),
            "clusterissuers.cert-manager.io/slow",
            &csr,
            3600,
        )
        .await;
    }
    api.wait_for(WAIT, |crs| crs.len() == N).await.unwrap();
    // Mid-issuance: every CertificateRequest made, (almost surely all, at least one) not
    // signed yet (signing takes 3 s; "all" would be flaky on a loaded machine).
    assert!(
        api.pod_certificate_requests()
            .iter()
            .any(|p| outcome_of(p).is_none())
    );
    if holder == "signer-a" {
        a.take()
    } else {
        b.take()
    }; // SIGKILL the leader
    api.wait_for_objects(Duration::from_secs(60), |pcrs, _| {
        pcrs.len() == N
            && pcrs
                .iter()
                .all(|p| outcome_of(p).as_deref() == Some("Issued"))
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}: {:?}",
            api.pod_certificate_requests()
                .iter()
                .map(outcome_of)
                .collect::<Vec<_>>()
        )
    });
    let crs = api.requests("apps");
    assert_eq!(
        crs.len(),
        N,
        "one CertificateRequest per PodCertificateRequest"
    );
    let new_holder = api
        .lease("cert-manager", "cert-manager-pod-signer")
        .unwrap()["spec"]["holderIdentity"]
        .clone();
    assert_ne!(new_holder, holder.as_str(), "the other replica took over");
    drop((a, b));
    api.shutdown().await;
}
