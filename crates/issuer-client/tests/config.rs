//! Building connections from kubeconfigs.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use cmcsi_issuer_client::{ConfigError, IssuerClient, client_from_config};
use cmcsi_testkit::{FakeApi, Verb};

#[tokio::test]
async fn kubeconfig_file_with_token_over_http() {
    let api = FakeApi::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    api.write_kubeconfig(&path, cmcsi_testkit::DEFAULT_TOKEN)
        .unwrap();
    let conn = client_from_config(Some(path), 5.0, 7).await.unwrap();
    assert_eq!(
        conn.config().cluster_url.to_string().trim_end_matches('/'),
        api.url()
    );
    assert_eq!(
        (conn.rate_limit().qps(), conn.rate_limit().burst()),
        (5.0, 7)
    );
    assert!(!format!("{conn:?}").contains(cmcsi_testkit::DEFAULT_TOKEN));
    let issuer = IssuerClient::new(conn, "node-x");
    issuer.wait_synced(Duration::from_secs(20)).await.unwrap();
    // The fake serves streaming lists: one watch, no list.
    assert_eq!(api.counts().verb(Verb::Watch), 1);
    assert_eq!(api.counts().verb(Verb::List), 0);
}

#[tokio::test]
async fn missing_kubeconfig_names_the_file() {
    let err = client_from_config(Some("/nonexistent/kubeconfig".into()), 0.0, 0)
        .await
        .unwrap_err();
    assert!(matches!(err, ConfigError::Kubeconfig { .. }), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/kubeconfig"), "{err}");
}

#[tokio::test]
async fn rejected_driver_credentials_stop_the_watch_from_syncing() {
    let api = FakeApi::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    api.write_kubeconfig(&path, "wrong-token").unwrap();
    let conn = client_from_config(Some(path), 0.0, 0).await.unwrap();
    let issuer = IssuerClient::with_options(
        conn,
        "node-x",
        cmcsi_issuer_client::IssuerOptions::default()
            .watch_backoff(Duration::from_millis(10), Duration::from_millis(50)),
    );
    let e = issuer
        .wait_synced(Duration::from_millis(500))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("has not synced"), "{e}");
    let health = issuer.health();
    assert!(!health.synced);
    assert!(health.last_error.is_some(), "{health:?}");
}
