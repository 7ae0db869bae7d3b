//! Shared helpers: a fake API with an IssuerClient on it, and CSRs.
#![allow(dead_code, clippy::unwrap_used)]

use std::str::FromStr;
use std::time::Duration;

use cmcsi_issuer_client::{
    ApiConnection, IssuerClient, IssuerOptions, IssuerRef, NewRequest, PodRef, client_from_config,
};
use cmcsi_testkit::{DEFAULT_TOKEN, FakeApi};
use p256::ecdsa::{DerSignature, SigningKey};
use x509_cert::builder::{Builder, RequestBuilder};
use x509_cert::der::EncodePem;
use x509_cert::name::Name;

/// Generous bound for things that should happen promptly.
pub const SOON: Duration = Duration::from_secs(20);

pub struct Env {
    pub api: FakeApi,
    pub issuer: IssuerClient,
    pub connection: ApiConnection,
    _dir: tempfile::TempDir,
}

/// Options for tests: a quick watch backoff so recovery does not take seconds.
pub fn test_options() -> IssuerOptions {
    IssuerOptions::default()
        .watch_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .api_timeout(Duration::from_secs(10))
}

/// Starts `api`, writes a kubeconfig for it, connects through
/// `client_from_config` and waits for the watch's first list.
pub async fn env_with(api: FakeApi, node: &str) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    api.write_kubeconfig(&path, DEFAULT_TOKEN).unwrap();
    let connection = client_from_config(Some(path), 0.0, 0).await.unwrap();
    let issuer = IssuerClient::with_options(connection.clone(), node, test_options());
    issuer.wait_synced(SOON).await.expect("watch never synced");
    Env {
        api,
        issuer,
        connection,
        _dir: dir,
    }
}

pub async fn env() -> Env {
    env_with(FakeApi::start().await.unwrap(), "node-a").await
}

/// A PEM CSR for a fresh P-256 key.
pub fn csr(cn: &str) -> Vec<u8> {
    let key = loop {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).unwrap();
        if let Ok(k) = SigningKey::from_slice(&b) {
            break k;
        }
    };
    let subject = Name::from_str(&format!("CN={cn}")).unwrap();
    let req = RequestBuilder::new(subject)
        .unwrap()
        .build::<_, DerSignature>(&key)
        .unwrap();
    req.to_pem(Default::default()).unwrap().into_bytes()
}

/// A request for `volume` in namespace `ns` to issuer `issuer`.
pub fn new_request(ns: &str, issuer: &str, volume: &str) -> NewRequest {
    NewRequest {
        name: None,
        namespace: ns.into(),
        csr_pem: csr("test"),
        issuer_ref: IssuerRef {
            name: issuer.into(),
            kind: Some("Issuer".into()),
            group: Some("cert-manager.io".into()),
        },
        duration: Some(Duration::from_secs(3600)),
        is_ca: false,
        usages: vec!["digital signature".into(), "key encipherment".into()],
        annotations: Default::default(),
        volume_id: volume.into(),
        pod: PodRef {
            name: "app-0".into(),
            uid: "0b7e7a38-0000-4000-8000-000000000001".into(),
        },
    }
}
