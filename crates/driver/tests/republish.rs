//! Republish (the kubelet's periodic NodePublishVolume of a mounted volume,
//! with a refreshed ServiceAccount token in token-request mode) never works
//! without the volume's lock: it waits for a renewal holding the lock, the
//! token it brings is what the next renewal uses, it never fails a mounted
//! volume, and an unpublish racing it leaves nothing behind. The driver is
//! mounted as the DaemonSet mounts it, so targets are checked from the
//! host's side.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use cmcsi_testkit::in_mount_namespace;
use cmcsi_testkit::{FakeApi, Script};
use common::{
    Harness, Pod, assert_read_only_on_host, eventually, fake_api, host_mount_options, is_signed,
    mounts_under, publish_at, requests_for, tokens, unpublish_at,
};

/// How long the issuer takes to sign while a test holds the volume's lock
/// with a renewal: well past the 2 s the driver used to wait before
/// mounting without the lock.
const SLOW: Duration = Duration::from_secs(5);

/// The Pod's ServiceAccount before and after the kubelet refreshes its token
/// (as two identities, so the fake API tells which token a request used).
const TOKEN_ONE: &str = "pod-token-one";
const ID_ONE: &str = "system:serviceaccount:ns:app-one";
const TOKEN_TWO: &str = "pod-token-two";
const ID_TWO: &str = "system:serviceaccount:ns:app-two";

/// A fake API signing for `issuer` and knowing both tokens, and the driver
/// in token-request mode keeping every request of a volume (so a test sees
/// each issuance's request).
async fn start(issuer: &str) -> Harness {
    let api = fake_api(FakeApi::builder().issuer(issuer, Script::Sign)).await;
    api.add_token(TOKEN_ONE, ID_ONE);
    api.add_token(TOKEN_TWO, ID_TWO);
    Harness::daemonset(
        api,
        // The fake API is plain http here.
        &[
            "--use-token-request",
            "--allow-insecure-token-request",
            "--max-requests-per-volume",
            "10",
        ],
    )
    .await
}

/// The publish request of `volume` with the Pod's `token`.
fn request(
    h: &Harness,
    volume: &str,
    issuer: &str,
    token: &str,
) -> cmcsi_proto::v1::NodePublishVolumeRequest {
    let tokens = tokens(token);
    let ctx = Pod::new("ns", "app").context(&[
        ("csi.cert-manager.io/issuer-name", issuer),
        ("csi.cert-manager.io/dns-names", "app.example.com"),
        ("csi.cert-manager.io/duration", "6s"),
        ("csi.cert-manager.io/key-algorithm", "ECDSA"),
        ("csi.storage.k8s.io/serviceAccount.tokens", tokens.as_str()),
    ]);
    Harness::request(volume, &h.target(volume), ctx)
}

/// The requests of `volume` in the order they were first seen: `seen`
/// holds the names already known; the new ones are appended and returned.
fn new_requests(h: &Harness, volume: &str, seen: &mut Vec<String>) -> Vec<serde_json::Value> {
    let mut new = Vec::new();
    for r in requests_for(&h.api, volume) {
        let name = r["metadata"]["name"].as_str().unwrap().to_string();
        if !seen.contains(&name) {
            seen.push(name);
            new.push(r);
        }
    }
    new
}

/// The current state of the request named `name`.
fn request_named(h: &Harness, name: &str) -> serde_json::Value {
    h.api.request("ns", name).unwrap()
}

/// The identity that created a request (the fake API records it).
fn username(r: &serde_json::Value) -> &str {
    r["spec"]["username"].as_str().unwrap()
}

/// Waits until the renewal after the first issuance has created its request
/// (which the slow issuer leaves unsigned for [`SLOW`]): the renewal now
/// holds the volume's lock. Returns the request's name.
async fn renewal_holding_the_lock(h: &Harness, volume: &str, seen: &mut Vec<String>) -> String {
    let mut renewal = Vec::new();
    eventually("a renewal's request", Duration::from_secs(30), || {
        renewal.extend(new_requests(h, volume, seen));
        !renewal.is_empty()
    })
    .await;
    assert_eq!(renewal.len(), 1, "one renewal at a time");
    assert!(!is_signed(&renewal[0]), "the slow issuer signed at once");
    assert_eq!(
        username(&renewal[0]),
        ID_ONE,
        "the renewal started before the republish uses the token it had"
    );
    renewal[0]["metadata"]["name"].as_str().unwrap().to_string()
}

/// The token recorded in the volume's metadata, where renewals read it.
fn recorded_token(h: &Harness, volume: &str) -> String {
    let raw = std::fs::read(h.volume_dir(volume).join("metadata.json")).unwrap();
    let meta: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    let tokens = meta["volumeContext"]["csi.storage.k8s.io/serviceAccount.tokens"]
        .as_str()
        .unwrap();
    let tokens: serde_json::Value = serde_json::from_str(tokens).unwrap();
    tokens[""]["token"].as_str().unwrap().to_string()
}

/// Waits for the next signed request of `volume` after those in `seen` and
/// checks that it was created with the refreshed token.
async fn next_renewal_uses_the_new_token(h: &Harness, volume: &str, seen: &mut Vec<String>) {
    let mut next = Vec::new();
    eventually("the next renewal, signed", Duration::from_secs(30), || {
        next.extend(new_requests(h, volume, seen));
        next.first()
            .is_some_and(|r| is_signed(&request_named(h, r["metadata"]["name"].as_str().unwrap())))
    })
    .await;
    assert_eq!(
        username(&next[0]),
        ID_TWO,
        "the renewal after the republish creates its request with the refreshed token"
    );
}

#[test]
fn republish_waits_for_a_renewal_holding_the_lock_and_the_next_renewal_uses_its_token() {
    in_mount_namespace!(async {
        let (volume, issuer) = ("csi-republish-wait", "issuer-wait");
        let h = start(issuer).await;
        let target = h.target(volume);
        let mut node = h.node().await;
        node.node_publish_volume(request(&h, volume, issuer, TOKEN_ONE))
            .await
            .unwrap();
        let mut seen = Vec::new();
        let first = new_requests(&h, volume, &mut seen);
        assert_eq!(first.len(), 1);
        assert_eq!(username(&first[0]), ID_ONE);
        assert_read_only_on_host(&target, "first issuance");

        h.api.set_issuer(issuer, Script::Delay(SLOW));
        let renewal = renewal_holding_the_lock(&h, volume, &mut seen).await;
        let asked = Instant::now();
        node.node_publish_volume(request(&h, volume, issuer, TOKEN_TWO))
            .await
            .unwrap_or_else(|e| panic!("the republish of a mounted volume failed: {e}"));
        assert!(
            is_signed(&request_named(&h, &renewal)),
            "the republish answered after {:?}, while the renewal still held the lock",
            asked.elapsed()
        );
        assert_eq!(
            recorded_token(&h, volume),
            TOKEN_TWO,
            "the republish recorded the refreshed token before answering"
        );
        assert_read_only_on_host(&target, "after a republish that waited for the lock");
        assert_eq!(host_mount_options(&target).len(), 1, "one mount");

        // A republish without a token does not fail the mounted volume,
        // nor replace the token renewals use.
        let mut tokenless = request(&h, volume, issuer, TOKEN_TWO);
        tokenless
            .volume_context
            .remove("csi.storage.k8s.io/serviceAccount.tokens");
        node.node_publish_volume(tokenless).await.unwrap();
        assert_eq!(recorded_token(&h, volume), TOKEN_TWO);

        h.api.set_issuer(issuer, Script::Sign);
        next_renewal_uses_the_new_token(&h, volume, &mut seen).await;
        assert_read_only_on_host(&target, "after the renewal with the refreshed token");
    });
}

#[test]
fn republish_still_waiting_at_the_kubelets_deadline_answers_ok_and_records_the_token_later() {
    in_mount_namespace!(async {
        let (volume, issuer) = ("csi-republish-deadline", "issuer-deadline");
        let h = start(issuer).await;
        let target = h.target(volume);
        let mut node = h.node().await;
        node.node_publish_volume(request(&h, volume, issuer, TOKEN_ONE))
            .await
            .unwrap();
        let mut seen = Vec::new();
        new_requests(&h, volume, &mut seen);

        h.api.set_issuer(issuer, Script::Delay(SLOW));
        let renewal = renewal_holding_the_lock(&h, volume, &mut seen).await;
        let mut republish = tonic::Request::new(request(&h, volume, issuer, TOKEN_TWO));
        republish.set_timeout(Duration::from_secs(2));
        let asked = Instant::now();
        node.node_publish_volume(republish)
            .await
            .unwrap_or_else(|e| panic!("a republish of a mounted volume must not fail: {e}"));
        assert!(
            asked.elapsed() < Duration::from_secs(2),
            "answered within the kubelet's deadline"
        );
        assert!(
            !is_signed(&request_named(&h, &renewal)),
            "the renewal still holds the lock (the issuer was not slow enough)"
        );
        assert_read_only_on_host(
            &target,
            "after a republish answered while the lock was held",
        );

        eventually(
            "the refreshed token recorded once the renewal let go of the lock",
            Duration::from_secs(30),
            || recorded_token(&h, volume) == TOKEN_TWO,
        )
        .await;
        h.api.set_issuer(issuer, Script::Sign);
        next_renewal_uses_the_new_token(&h, volume, &mut seen).await;
        assert_read_only_on_host(&target, "after the renewal with the refreshed token");
        assert_eq!(host_mount_options(&target).len(), 1, "one mount");
    });
}

/// Nothing of `volume` is left: no mount at (or under) its target on the
/// host's side, no target directory, no volume directory.
fn assert_nothing_left(h: &Harness, volume: &str, when: &str) {
    let target = h.target(volume);
    let pod_dir = target.ancestors().nth(4).unwrap();
    assert_eq!(
        mounts_under(pod_dir),
        Vec::<String>::new(),
        "{when}: mounts left under {}",
        pod_dir.display()
    );
    assert!(
        !target.exists(),
        "{when}: the target directory {} was left",
        target.display()
    );
    assert!(
        !h.volume_dir(volume).exists(),
        "{when}: the volume directory was left"
    );
}

#[test]
fn unpublish_racing_a_republish_and_a_renewal_leaves_no_mount_and_no_directory() {
    in_mount_namespace!(async {
        let (volume, issuer) = ("csi-republish-race", "issuer-race");
        let h = start(issuer).await;
        let target = h.target(volume);
        let socket = h.socket();
        h.node()
            .await
            .node_publish_volume(request(&h, volume, issuer, TOKEN_ONE))
            .await
            .unwrap();
        let mut seen = Vec::new();
        new_requests(&h, volume, &mut seen);
        assert_read_only_on_host(&target, "first issuance");

        h.api.set_issuer(issuer, Script::Delay(SLOW));
        renewal_holding_the_lock(&h, volume, &mut seen).await;
        let republish = tokio::spawn({
            let (socket, req) = (socket.clone(), request(&h, volume, issuer, TOKEN_TWO));
            async move { publish_at(&socket, req).await }
        });
        // The republish is waiting for the lock when the unpublish comes.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let unpublish = tokio::spawn({
            let (socket, target) = (socket.clone(), target.clone());
            async move { unpublish_at(&socket, volume, Path::new(&target)).await }
        });
        unpublish.await.unwrap().unwrap();
        match republish.await.unwrap() {
            Ok(()) => {}
            Err(e) if e.code() == tonic::Code::Aborted => {
                assert!(e.message().contains("unpublished"), "{}", e.message());
            }
            Err(e) => panic!("the republish failed otherwise: {e}"),
        }
        assert_nothing_left(&h, volume, "after the unpublish");

        // The cancelled renewal's request is signed later; nothing of
        // the volume comes back then either.
        tokio::time::sleep(SLOW + Duration::from_secs(1)).await;
        assert_nothing_left(&h, volume, "after the slow issuer answered");
        assert!(h.serving().await);
    });
}
