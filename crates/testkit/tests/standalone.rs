//! The `testkit serve` process, as the demo runs it.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use kube::api::PostParams;
use serde_json::json;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test]
async fn serve_writes_kubeconfig_signs_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let kc_path = dir.path().join("kubeconfig");
    let ca_path = dir.path().join("ca.pem");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_testkit"))
        .args([
            "serve",
            "--issuer",
            "ca=sign",
            "--issuer",
            "no=deny",
            "--token",
            "pod=system:serviceaccount:a:b",
        ])
        .arg("--kubeconfig-out")
        .arg(&kc_path)
        .arg("--ca-out")
        .arg(&ca_path)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let kc = kube::config::Kubeconfig::read_from(&kc_path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let crs = crs(kube::Client::try_from(config).unwrap(), "demo");
    let (_, pem) = csr("demo", &["demo.example"], &[]);
    let name = crs
        .create(&PostParams::default(), &dynobj(cr("ca", &pem, json!({}))))
        .await
        .unwrap()
        .metadata
        .name
        .unwrap();
    let mut issued = None;
    for _ in 0..200 {
        let o = crs.get(&name).await.unwrap();
        if o.data["status"]["certificate"].is_string() {
            issued = Some(o);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let issued = issued.expect("the standalone issuer signed the request");
    assert_eq!(
        unb64(issued.data["status"]["ca"].as_str().unwrap()),
        std::fs::read_to_string(&ca_path).unwrap()
    );

    let pid = child.id().unwrap();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}
