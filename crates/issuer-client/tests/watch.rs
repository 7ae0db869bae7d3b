//! The node-wide watch: request counts, dropped watches, 410 relists, outages.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use cmcsi_issuer_client::IssueError;
use cmcsi_testkit::{FakeApi, Script, Verb};
use common::{SOON, env_with, new_request};

async fn env(script: Script) -> common::Env {
    let api = FakeApi::builder()
        .issuer("ca", Script::Sign)
        .issuer("held", script)
        .start()
        .await
        .unwrap();
    env_with(api, "node-a").await
}

#[tokio::test]
async fn fifty_issuances_cost_one_streaming_watch_and_fifty_creates() {
    let env = env(Script::Never).await;
    env.api.wait_for_watches(1, SOON).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let issuer = env.issuer.clone();
        tasks.push(tokio::spawn(async move {
            let s = issuer
                .submit(new_request("ns", "ca", &format!("csi-vol-{i}")), None)
                .await?;
            issuer.await_outcome(&s, SOON).await
        }));
    }
    for t in tasks {
        let issued = t.await.unwrap().unwrap();
        assert!(!issued.certificate_pem.is_empty());
    }
    let counts = env.api.counts();
    let all: Vec<_> = counts.iter().collect();
    // A streaming list: the initial state came on the watch itself.
    assert_eq!(counts.verb(Verb::List), 0, "{all:?}");
    assert_eq!(counts.verb(Verb::Watch), 1, "{all:?}");
    assert_eq!(counts.verb(Verb::Create), 50, "{all:?}");
    assert_eq!(counts.verb(Verb::Get), 0, "{all:?}");
    // And one `/version`, to choose streaming or paged lists.
    assert_eq!(counts.total(), 52, "no other requests: {all:?}");
    assert_eq!(env.issuer.cached_requests(), 50);
    assert_eq!(env.issuer.health().lists, 1);
    assert!(env.issuer.health().streaming_lists);
}

/// An API server with the WatchList feature gate off (1.27 to 1.31, 1.33 by
/// default) refuses the streaming list with 422: the watch falls back to
/// paged lists that are not served from the watch cache, and still wakes
/// waiters.
#[tokio::test]
async fn without_watch_list_the_watch_falls_back_to_small_pages() {
    let api = FakeApi::builder()
        .issuer("ca", Script::Sign)
        .start()
        .await
        .unwrap();
    api.set_watch_list(false);
    for i in 0..25 {
        let mut body = serde_json::json!({
            "apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
            "metadata": {"name": format!("other-{i:02}"), "labels": {
                cmcsi_issuer_client::LABEL_NODE_ID_HASH: cmcsi_issuer_client::label_hash("node-a"),
            }},
            "spec": {"request": "", "issuerRef": {"name": "nobody"}},
        });
        body["spec"]["request"] = serde_json::json!(base64_csr());
        api.insert_request("other", body, "someone").unwrap();
    }
    let env = env_with(api, "node-a").await;
    let health = env.issuer.health();
    assert!(!health.streaming_lists, "{health:?}");
    let counts = env.api.counts();
    // 25 objects in pages of 10: three list calls, none from the cache.
    assert_eq!(
        counts.verb(Verb::List),
        3,
        "{:?}",
        counts.iter().collect::<Vec<_>>()
    );
    let s = env
        .issuer
        .submit(new_request("ns", "ca", "v"), None)
        .await
        .unwrap();
    env.issuer.await_outcome(&s, SOON).await.unwrap();
}

fn base64_csr() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(common::csr("other"))
}

#[tokio::test]
async fn watch_dropped_mid_wait_resumes_without_relisting() {
    let env = env(Script::Never).await;
    env.api.wait_for_watches(1, SOON).await.unwrap();
    let s = env
        .issuer
        .submit(new_request("ns", "held", "v"), None)
        .await
        .unwrap();
    let issuer = env.issuer.clone();
    let key = s.clone();
    let waiter = tokio::spawn(async move { issuer.await_outcome(&key, SOON).await });

    assert_eq!(env.api.drop_watches(), 1);
    // Sign while the watch may be down; the resumed watch delivers it.
    env.api.act_on("ns", &s.name, Script::Sign).await;
    let issued = waiter.await.unwrap().unwrap();
    assert_eq!(issued.key.name, s.name);
    env.api.wait_for_watches(1, SOON).await.unwrap();

    let counts = env.api.counts();
    assert_eq!(
        env.issuer.health().lists,
        1,
        "resumed from its resourceVersion"
    );
    assert_eq!(counts.verb(Verb::List), 0);
    assert_eq!(counts.verb(Verb::Watch), 2, "re-established once");
    assert_eq!(counts.verb(Verb::Get), 0);
}

#[tokio::test]
async fn gone_410_relists_and_still_wakes_the_waiter() {
    let env = env(Script::Never).await;
    env.api.wait_for_watches(1, SOON).await.unwrap();
    let s = env
        .issuer
        .submit(new_request("ns", "held", "v"), None)
        .await
        .unwrap();
    let issuer = env.issuer.clone();
    let key = s.clone();
    let waiter = tokio::spawn(async move { issuer.await_outcome(&key, SOON).await });

    // Outage: the request is signed meanwhile, and the server forgets the
    // history the watch would resume from, so it must relist.
    env.api.go_down().await.unwrap();
    env.api.act_on("ns", &s.name, Script::Sign).await;
    env.api.expire_watch_history();
    env.api.come_up().await.unwrap();

    let issued = waiter.await.unwrap().unwrap();
    assert_eq!(issued.key.name, s.name);
    assert!(
        env.api.counts().verb(Verb::Watch) >= 3,
        "relisted after 410"
    );
    assert!(env.issuer.health().lists >= 2);
}

#[tokio::test]
async fn deleted_while_the_watch_was_away_is_noticed_by_the_relist() {
    let env = env(Script::Never).await;
    env.api.wait_for_watches(1, SOON).await.unwrap();
    let s = env
        .issuer
        .submit(new_request("ns", "held", "v"), None)
        .await
        .unwrap();
    // Wait until the watch has it, then wait on it.
    let name = s.name.clone();
    for _ in 0..200 {
        if env.issuer.state("ns", &name).is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(env.issuer.state("ns", &name).is_some());
    let issuer = env.issuer.clone();
    let key = s.clone();
    let waiter = tokio::spawn(async move { issuer.await_outcome(&key, SOON).await });

    env.api.go_down().await.unwrap();
    env.api.remove_request("ns", &s.name).unwrap();
    env.api.expire_watch_history();
    env.api.come_up().await.unwrap();

    let err = waiter.await.unwrap().unwrap_err();
    assert!(matches!(err, IssueError::Deleted { .. }), "{err:?}");
    assert!(env.issuer.state("ns", &name).is_none());
}

#[tokio::test]
async fn api_down_then_back() {
    let env = env(Script::Never).await;
    env.api.wait_for_watches(1, SOON).await.unwrap();
    env.api.go_down().await.unwrap();

    // Creating while down is a retryable "unavailable", promptly.
    let err = env
        .issuer
        .submit(new_request("ns", "ca", "v"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, IssueError::ApiUnavailable { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(
        err.to_string().contains("creating CertificateRequest"),
        "{err}"
    );

    // The watch notices the outage.
    for _ in 0..500 {
        if env.issuer.health().last_error.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(env.issuer.health().last_error.is_some());

    env.api.come_up().await.unwrap();
    // The same call succeeds once the API is back, and the watch recovered.
    let mut submitted = None;
    for _ in 0..100 {
        match env.issuer.submit(new_request("ns", "ca", "v"), None).await {
            Ok(s) => {
                submitted = Some(s);
                break;
            }
            Err(e) if e.is_retryable() => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(e) => panic!("{e}"),
        }
    }
    let s = submitted.unwrap();
    let issued = env.issuer.await_outcome(&s, SOON).await.unwrap();
    assert!(!issued.certificate_pem.is_empty());
    assert!(env.issuer.health().last_error.is_none());
}

#[tokio::test]
async fn server_errors_and_throttling_on_create_are_retryable_and_not_retried_internally() {
    use cmcsi_testkit::Fault;
    let env = env(Script::Never).await;
    env.api.reset_counts();
    env.api.fail_next_verb(1, Verb::Create, Fault::Status(503));
    env.api.fail_next_verb(
        1,
        Verb::Create,
        Fault::TooManyRequests {
            retry_after_secs: 1,
        },
    );
    env.api.fail_next_verb(1, Verb::Create, Fault::Status(500));
    for code in ["503", "429", "500"] {
        let err = env
            .issuer
            .submit(new_request("ns", "ca", "v"), None)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, IssueError::ApiUnavailable { detail, .. } if detail.contains(code)),
            "{err:?}"
        );
    }
    assert_eq!(env.api.counts().verb(Verb::Create), 3, "one attempt each");
    env.api.fail_next_verb(1, Verb::Create, Fault::Status(403));
    let err = env
        .issuer
        .submit(new_request("ns", "ca", "v"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            IssueError::Forbidden {
                token_mode: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("RBAC"), "{err}");
    assert!(!err.is_retryable());
}
