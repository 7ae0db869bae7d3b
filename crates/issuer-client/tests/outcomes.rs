//! Outcomes of a request as seen through the node-wide watch.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use cmcsi_issuer_client::{
    ANNOTATION_VOLUME_ID, IssueError, LABEL_NODE_ID_HASH, LABEL_VOLUME_ID_HASH, Phase, label_hash,
};
use cmcsi_testkit::{FakeApi, Script, Verb};
use common::{SOON, env_with, new_request};

async fn scripted() -> common::Env {
    let api = FakeApi::builder()
        .issuer("ca", Script::Sign)
        .issuer("deny", Script::deny())
        .issuer("fail", Script::fail())
        .issuer("invalid", Script::parse("invalid:bad key usage").unwrap())
        .issuer("never", Script::Never)
        .issuer("approve-only", Script::ApproveOnly)
        .start()
        .await
        .unwrap();
    env_with(api, "node-a").await
}

#[tokio::test]
async fn issued_request_has_the_shape_cert_manager_expects() {
    let env = scripted().await;
    let mut req = new_request("team-a", "ca", "csi-vol-1");
    req.annotations
        .insert("custom.group.io/team".into(), "payments".into());
    req.is_ca = false;
    let submitted = env.issuer.submit(req, None).await.unwrap();
    assert_eq!(submitted.namespace, "team-a");
    assert!(submitted.name.starts_with("app-0-"), "{}", submitted.name);
    assert!(!submitted.uid.is_empty());

    let issued = env.issuer.await_outcome(&submitted, SOON).await.unwrap();
    let chain = String::from_utf8(issued.certificate_pem).unwrap();
    assert!(chain.starts_with("-----BEGIN CERTIFICATE-----"), "{chain}");
    assert_eq!(String::from_utf8(issued.ca_pem).unwrap(), env.api.ca_pem());
    assert_eq!(issued.key.name, submitted.name);

    // The stored object, as the API server has it.
    let obj = env.api.request("team-a", &submitted.name).unwrap();
    let meta = &obj["metadata"];
    assert_eq!(meta["labels"][LABEL_NODE_ID_HASH], label_hash("node-a"));
    assert_eq!(
        meta["labels"][LABEL_VOLUME_ID_HASH],
        label_hash("csi-vol-1")
    );
    assert_eq!(meta["annotations"][ANNOTATION_VOLUME_ID], "csi-vol-1");
    assert_eq!(meta["annotations"]["custom.group.io/team"], "payments");
    let owner = &meta["ownerReferences"][0];
    assert_eq!(owner["apiVersion"], "v1");
    assert_eq!(owner["kind"], "Pod");
    assert_eq!(owner["name"], "app-0");
    assert_eq!(owner["uid"], "0b7e7a38-0000-4000-8000-000000000001");
    let spec = &obj["spec"];
    assert_eq!(spec["issuerRef"]["name"], "ca");
    assert_eq!(spec["duration"], "1h0m0s");
    assert_eq!(spec["usages"][1], "key encipherment");
    assert!(spec.get("isCA").is_none_or(|v| v == false));

    // The watch cache agrees.
    let state = env.issuer.state("team-a", &submitted.name).unwrap();
    assert_eq!(state.phase, Phase::Issued);
    assert_eq!(state.volume_id.as_deref(), Some("csi-vol-1"));
    assert!(state.issued().is_some());
}

#[tokio::test]
async fn denied_is_terminal_and_says_what_to_check() {
    let env = scripted().await;
    let s = env
        .issuer
        .submit(new_request("ns", "deny", "v"), None)
        .await
        .unwrap();
    let err = env.issuer.await_outcome(&s, SOON).await.unwrap_err();
    match &err {
        IssueError::Denied {
            name,
            reason,
            message,
            ..
        } => {
            assert_eq!(name, &s.name);
            assert_eq!(reason, "PolicyDenied");
            assert_eq!(message, "denied by the test approver");
        }
        other => panic!("expected Denied, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains(&format!("ns/{}", s.name)), "{text}");
    assert!(text.contains("approver-policy"), "{text}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn failed_is_terminal() {
    let env = scripted().await;
    let s = env
        .issuer
        .submit(new_request("ns", "fail", "v"), None)
        .await
        .unwrap();
    let err = env.issuer.await_outcome(&s, SOON).await.unwrap_err();
    assert!(
        matches!(&err, IssueError::Failed { reason, message, .. }
            if reason == "Failed" && message == "the test issuer failed to sign"),
        "{err:?}"
    );
    assert!(err.is_retryable(), "a new request may succeed");
}

#[tokio::test]
async fn invalid_request_is_terminal() {
    let env = scripted().await;
    let s = env
        .issuer
        .submit(new_request("ns", "invalid", "v"), None)
        .await
        .unwrap();
    let err = env.issuer.await_outcome(&s, SOON).await.unwrap_err();
    assert!(
        matches!(&err, IssueError::InvalidRequest { message, .. } if message == "bad key usage"),
        "{err:?}"
    );
    assert!(err.to_string().contains("volume attributes"), "{err}");
}

#[tokio::test]
async fn deleted_while_waiting() {
    let env = scripted().await;
    let s = env
        .issuer
        .submit(new_request("ns", "never", "v"), None)
        .await
        .unwrap();
    let issuer = env.issuer.clone();
    let key = s.clone();
    let waiter = tokio::spawn(async move { issuer.await_outcome(&key, SOON).await });
    // Let the waiter see the pending request first.
    env.api
        .wait_for_request("ns", SOON, |o| o["metadata"]["name"] == s.name.as_str())
        .await
        .unwrap();
    assert!(env.issuer.delete("ns", &s.name).await.unwrap());
    let err = waiter.await.unwrap().unwrap_err();
    assert!(
        matches!(&err, IssueError::Deleted { name, .. } if name == &s.name),
        "{err:?}"
    );
    // Deleting again is not an error.
    assert!(!env.issuer.delete("ns", &s.name).await.unwrap());
    assert_eq!(env.api.counts().verb(Verb::Delete), 2);
}

#[tokio::test]
async fn pending_request_times_out_with_its_last_reason() {
    let env = scripted().await;
    for (issuer, expect) in [
        ("never", "not yet approved"),
        ("approve-only", "waiting for the issuer"),
    ] {
        let s = env
            .issuer
            .submit(new_request("ns", issuer, "v"), None)
            .await
            .unwrap();
        // Let the watch deliver the request (and its approval) first.
        let name = s.name.clone();
        let approved = issuer == "approve-only";
        env.api
            .wait_for_request("ns", SOON, |o| {
                o["metadata"]["name"] == name.as_str()
                    && (!approved || o["status"]["conditions"].is_array())
            })
            .await
            .unwrap();
        let mut err = None;
        // The watch may lag the store slightly; retry until the reason shows.
        for _ in 0..50 {
            let e = env
                .issuer
                .await_outcome(&s, Duration::from_millis(100))
                .await
                .unwrap_err();
            let done = e.to_string().contains(expect);
            err = Some(e);
            if done {
                break;
            }
        }
        let err = err.unwrap();
        assert!(matches!(err, IssueError::TimedOut { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(expect), "{text}");
        assert!(
            text.contains("check that the issuer exists and is Ready"),
            "{text}"
        );
        assert!(err.is_retryable());
    }
}
