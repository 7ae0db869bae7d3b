//! The client needs no system CA bundle: the cluster's CA comes from the
//! kubeconfig or the ServiceAccount, and a plain-HTTP server needs none.
//!
//! rustls' platform verifier reads the system roots from `SSL_CERT_FILE` and
//! `SSL_CERT_DIR`, which a test cannot change in its own process (setting the
//! environment is `unsafe` and races other threads), so the test runs itself
//! again as a child with both pointing at empty locations, as a minimal
//! container image has them.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use cmcsi_issuer_client::{CertificateRequest, client_from_config};
use cmcsi_testkit::{DEFAULT_TOKEN, FakeApi};
use kube::Api;

/// Set in the child run.
const CHILD: &str = "CMCSI_TEST_NO_SYSTEM_ROOTS";

/// Lists CertificateRequests through a connection built from `kubeconfig`.
async fn list_through(kubeconfig: serde_json::Value) -> Result<usize, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    FakeApi::write_kubeconfig_value(&path, &kubeconfig).unwrap();
    let conn = client_from_config(Some(path), 0.0, 0)
        .await
        .map_err(|e| e.to_string())?;
    let api: Api<CertificateRequest> = Api::namespaced(conn.client().clone(), "default");
    api.list(&Default::default())
        .await
        .map(|l| l.items.len())
        .map_err(|e| e.to_string())
}

async fn checks_without_system_roots() {
    // A kubeconfig naming its own CA, over HTTPS.
    let https = FakeApi::builder().tls().start().await.unwrap();
    let n = list_through(https.kubeconfig(DEFAULT_TOKEN)).await;
    assert_eq!(n, Ok(0), "HTTPS with the kubeconfig's CA");
    // A client certificate instead of a token.
    let kc = https
        .client_cert_kubeconfig("system:serviceaccount:cert-manager:csi-driver")
        .unwrap();
    assert!(
        list_through(kc).await.is_ok_and(|n| n == 0),
        "HTTPS with a client certificate"
    );

    // A plain-HTTP server: no TLS at all.
    let http = FakeApi::start().await.unwrap();
    let n = list_through(http.kubeconfig(DEFAULT_TOKEN)).await;
    assert_eq!(n, Ok(0), "plain HTTP");

    // An HTTPS server whose CA the kubeconfig does not name is refused (no
    // trust from anywhere else), with a TLS error rather than a build error.
    let mut kc = https.kubeconfig(DEFAULT_TOKEN);
    kc["clusters"][0]["cluster"]
        .as_object_mut()
        .unwrap()
        .remove("certificate-authority-data");
    let err = list_through(kc).await.unwrap_err();
    assert!(
        !err.contains("cannot build a Kubernetes client"),
        "the client must build without system roots: {err}"
    );
}

#[test]
fn kubeconfig_ca_and_plain_http_work_without_a_system_ca_bundle() {
    if std::env::var_os(CHILD).is_some() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(checks_without_system_roots());
        return;
    }
    let empty = tempfile::tempdir().unwrap();
    let bundle = empty.path().join("ca-certificates.crt");
    std::fs::write(&bundle, "").unwrap();
    let certs = empty.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "kubeconfig_ca_and_plain_http_work_without_a_system_ca_bundle",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .env("SSL_CERT_FILE", &bundle)
        .env("SSL_CERT_DIR", &certs)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child run failed ({})\n{stdout}\n{stderr}",
        out.status
    );
    // The child ran exactly this test (a renamed test would otherwise run
    // nothing and pass).
    assert!(
        stdout.contains("1 passed"),
        "the child ran no test:\n{stdout}"
    );
}
