//! Resume and clean-up by volume, including a real 32-bit label-hash collision.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use cmcsi_issuer_client::{
    IssuerClient, LABEL_NODE_ID_HASH, LABEL_VOLUME_ID_HASH, Phase, RequestKey, label_hash,
};
use cmcsi_testkit::{DEFAULT_USERNAME, FakeApi, Script};
use common::{SOON, env_with, new_request};
use serde_json::json;

async fn env() -> common::Env {
    let api = FakeApi::builder()
        .issuer("ca", Script::Sign)
        .issuer("held", Script::Never)
        .start()
        .await
        .unwrap();
    env_with(api, "node-a").await
}

/// Two distinct volume ids whose Go label hashes are equal (a birthday
/// search over 32 bits: ~80k tries).
fn colliding_volume_ids() -> (String, String) {
    let mut seen: HashMap<String, String> = HashMap::new();
    for i in 0u64.. {
        let id = format!("csi-{i:016x}");
        let hash = label_hash(&id);
        if let Some(other) = seen.insert(hash, id.clone()) {
            return (other, id);
        }
    }
    unreachable!()
}

/// Waits until the watch holds `n` requests.
async fn until_cached(issuer: &IssuerClient, n: usize) {
    for _ in 0..1000 {
        if issuer.cached_requests() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "watch holds {} requests, wanted {n}",
        issuer.cached_requests()
    );
}

#[tokio::test]
async fn newest_request_is_resumed_and_older_ones_cleaned_up() {
    let env = env().await;
    let vol = "csi-resume";
    let first = env
        .issuer
        .submit(new_request("ns", "ca", vol), None)
        .await
        .unwrap();
    env.issuer.await_outcome(&first, SOON).await.unwrap();
    let second = env
        .issuer
        .submit(new_request("ns", "held", vol), None)
        .await
        .unwrap();
    let other = env
        .issuer
        .submit(new_request("ns", "held", "csi-other"), None)
        .await
        .unwrap();
    until_cached(&env.issuer, 3).await;

    let latest = env.issuer.latest_for_volume(vol).unwrap();
    assert_eq!(latest.key.name, second.name);
    assert!(matches!(latest.phase, Phase::Pending { .. }));
    assert_eq!(env.issuer.requests_for_volume(vol).len(), 2);

    // Resume: the pending newest request can be awaited by key.
    let resumed = env.issuer.clone();
    let key = RequestKey::from(&latest);
    let waiter = tokio::spawn(async move { resumed.await_outcome(key, SOON).await });
    env.api.act_on("ns", &second.name, Script::Sign).await;
    waiter.await.unwrap().unwrap();

    let deleted = env.issuer.cleanup(vol, 1).await.unwrap();
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0].name, first.name);
    assert!(env.api.request("ns", &first.name).is_none());
    assert!(env.api.request("ns", &second.name).is_some());
    assert!(
        env.api.request("ns", &other.name).is_some(),
        "other volume untouched"
    );
    // keep = 0 removes the rest of this volume only.
    until_cached(&env.issuer, 2).await;
    let deleted = env.issuer.cleanup(vol, 0).await.unwrap();
    assert_eq!(deleted.len(), 1);
    assert!(env.api.request("ns", &other.name).is_some());
}

#[tokio::test]
async fn hash_collision_never_touches_the_other_volumes_request() {
    let (vol_a, vol_b) = colliding_volume_ids();
    assert_ne!(vol_a, vol_b);
    assert_eq!(label_hash(&vol_a), label_hash(&vol_b));

    let env = env().await;
    let a = env
        .issuer
        .submit(new_request("ns", "held", &vol_a), None)
        .await
        .unwrap();
    let b = env
        .issuer
        .submit(new_request("ns", "held", &vol_b), None)
        .await
        .unwrap();
    until_cached(&env.issuer, 2).await;
    // Same label, so a label-only selection would mix them up.
    let labels = |name: &str| env.api.request("ns", name).unwrap()["metadata"]["labels"].clone();
    assert_eq!(labels(&a.name), labels(&b.name));

    assert_eq!(
        env.issuer.latest_for_volume(&vol_a).unwrap().key.name,
        a.name
    );
    assert_eq!(
        env.issuer.latest_for_volume(&vol_b).unwrap().key.name,
        b.name
    );
    assert_eq!(env.issuer.requests_for_volume(&vol_a).len(), 1);

    let deleted = env.issuer.cleanup(&vol_a, 0).await.unwrap();
    assert_eq!(
        deleted.iter().map(|k| &k.name).collect::<Vec<_>>(),
        [&a.name]
    );
    assert!(env.api.request("ns", &a.name).is_none());
    assert!(
        env.api.request("ns", &b.name).is_some(),
        "B's request survives A's cleanup"
    );
}

#[tokio::test]
async fn requests_made_by_the_go_driver_are_cleaned_up_but_not_resumed() {
    let env = env().await;
    let vol = "csi-from-go";
    // What csi-lib creates: the same labels, no volume-id annotation.
    let go_made = json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "CertificateRequest",
        "metadata": {
            "name": "6d2a3c1e-8f3b-4c1d-9a1e-000000000000",
            "labels": {
                LABEL_NODE_ID_HASH: label_hash("node-a"),
                LABEL_VOLUME_ID_HASH: label_hash(vol),
            },
        },
        "spec": {"request": "Y3Ny", "issuerRef": {"name": "held"}},
    });
    env.api
        .insert_request("ns", go_made, DEFAULT_USERNAME)
        .unwrap();
    // A request of another node is not even watched.
    let other_node = json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "CertificateRequest",
        "metadata": {
            "name": "other-node",
            "labels": {
                LABEL_NODE_ID_HASH: label_hash("node-b"),
                LABEL_VOLUME_ID_HASH: label_hash(vol),
            },
        },
        "spec": {"request": "Y3Ny", "issuerRef": {"name": "held"}},
    });
    env.api
        .insert_request("ns", other_node, DEFAULT_USERNAME)
        .unwrap();
    let ours = env
        .issuer
        .submit(new_request("ns", "held", vol), None)
        .await
        .unwrap();
    until_cached(&env.issuer, 2).await;

    assert_eq!(
        env.issuer.latest_for_volume(vol).unwrap().key.name,
        ours.name
    );
    let deleted = env.issuer.cleanup(vol, 1).await.unwrap();
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0].name, "6d2a3c1e-8f3b-4c1d-9a1e-000000000000");
    assert!(env.api.request("ns", "other-node").is_some());
    assert!(env.api.request("ns", &ours.name).is_some());
}
