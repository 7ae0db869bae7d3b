//! Token-request mode: requests created as the Pod's ServiceAccount.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;

use cmcsi_issuer_client::{
    IssueError, IssuerClient, SERVICE_ACCOUNT_TOKENS_KEY, SecretToken, TokenError,
};
use cmcsi_testkit::{DEFAULT_USERNAME, FakeApi, Fault, Script, Verb};
use common::{SOON, env_with, new_request, test_options};

const POD_TOKEN: &str = "pod-token-9f8e7d6c5b4a";
const POD_USER: &str = "system:serviceaccount:team-a:app";

async fn env() -> common::Env {
    let api = FakeApi::builder()
        .issuer("ca", Script::Sign)
        .start()
        .await
        .unwrap();
    api.add_token(POD_TOKEN, POD_USER);
    env_with(api, "node-a").await
}

fn volume_context(token: &str, expires: &str) -> HashMap<String, String> {
    HashMap::from([(
        SERVICE_ACCOUNT_TOKENS_KEY.to_owned(),
        format!(r#"{{"": {{"token": "{token}", "expirationTimestamp": "{expires}"}}}}"#),
    )])
}

#[tokio::test]
async fn pod_identity_reaches_spec_username_and_driver_keeps_its_own() {
    let env = env().await;
    let token = SecretToken::from_volume_context_at(
        &volume_context(POD_TOKEN, "2999-01-01T00:00:00Z"),
        jiff::Timestamp::now(),
    )
    .unwrap();
    let as_pod = env
        .issuer
        .submit(new_request("team-a", "ca", "v1"), Some(&token))
        .await
        .unwrap();
    let as_driver = env
        .issuer
        .submit(new_request("team-a", "ca", "v2"), None)
        .await
        .unwrap();
    let username = |name: &str| {
        env.api.request("team-a", name).unwrap()["spec"]["username"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(username(&as_pod.name), POD_USER);
    assert_eq!(username(&as_driver.name), DEFAULT_USERNAME);
    // The watch (driver's credentials) sees both, with their identities.
    env.issuer.await_outcome(&as_pod, SOON).await.unwrap();
    let state = env.issuer.state("team-a", &as_pod.name).unwrap();
    assert_eq!(state.object.spec.username.as_deref(), Some(POD_USER));
    // Deletes use the driver's credentials too.
    assert!(env.issuer.delete("team-a", &as_pod.name).await.unwrap());
}

#[tokio::test]
async fn expired_missing_or_rejected_tokens_are_clear_errors_without_the_token() {
    let env = env().await;
    env.api.reset_counts();
    // Expired: refused before any API call.
    let expired = SecretToken::parse(
        &volume_context(POD_TOKEN, "2001-01-01T00:00:00Z")[SERVICE_ACCOUNT_TOKENS_KEY],
    )
    .unwrap();
    let err = env
        .issuer
        .submit(new_request("team-a", "ca", "v"), Some(&expired))
        .await
        .unwrap_err();
    assert!(
        matches!(err, IssueError::Token(TokenError::Expired { .. })),
        "{err:?}"
    );
    assert!(!format!("{err} {err:?}").contains(POD_TOKEN));
    assert_eq!(env.api.counts().verb(Verb::Create), 0);

    // Missing.
    let err = SecretToken::from_volume_context(&HashMap::new()).unwrap_err();
    assert!(err.to_string().contains("tokenRequests"), "{err}");

    // Unknown to the API server: 401, named as the Pod's token.
    let unknown = SecretToken::new("not-a-known-token", None);
    let err = env
        .issuer
        .submit(new_request("team-a", "ca", "v"), Some(&unknown))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            IssueError::Unauthorized {
                token_mode: true,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("Pod's ServiceAccount token"),
        "{err}"
    );
    assert!(!format!("{err} {err:?}").contains("not-a-known-token"));

    // Forbidden in token mode points at the Pod's ServiceAccount RBAC.
    let token = SecretToken::new(POD_TOKEN, None);
    env.api.fail_next_verb(1, Verb::Create, Fault::Status(403));
    let err = env
        .issuer
        .submit(new_request("team-a", "ca", "v"), Some(&token))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            IssueError::Forbidden {
                token_mode: true,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("Pod's ServiceAccount needs RBAC"),
        "{err}"
    );
}

#[tokio::test]
async fn token_mode_needs_a_connection() {
    let env = env().await;
    let plain =
        IssuerClient::from_client(env.api.client().await.unwrap(), "node-a", test_options());
    let token = SecretToken::new(POD_TOKEN, None);
    let err = plain
        .submit(new_request("team-a", "ca", "v"), Some(&token))
        .await
        .unwrap_err();
    assert!(matches!(err, IssueError::TokenModeUnavailable), "{err:?}");
    // Without a token the plain client works.
    let s = plain
        .submit(new_request("team-a", "ca", "v"), None)
        .await
        .unwrap();
    plain.await_outcome(&s, SOON).await.unwrap();
}
