//! The DaemonSet's mounts, modelled: the kubelet's pods directory and the
//! driver's data root are shared mounts (the DaemonSet mounts them with
//! Bidirectional propagation), the driver runs in a child mount namespace
//! whose mounts propagate back, and every check looks at the targets from
//! the host's side. Each published target must be read-only there too
//! (mountinfo options and a write that fails with EROFS), after the first
//! issuance, a renewal and republishes, with either mount mechanism.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use cmcsi_testkit::in_mount_namespace;
use cmcsi_testkit::{FakeApi, Script};
use common::{
    Harness, Pod, assert_read_only_on_host, eventually, fake_api, host_mount_options, serial,
};

/// The driver in its own mount namespace, as in the DaemonSet's container,
/// with the host's (this test's namespace's) pods directory and data root
/// shared into it, and `env` set.
async fn start(env: &[(&str, &str)]) -> Harness {
    let api = fake_api(FakeApi::builder().issuer("ca-issuer", Script::Sign)).await;
    Harness::daemonset_with_env(api, env, &[]).await
}

/// Publishes `volume` (for a Pod of the same name) and returns its target.
async fn publish(node: &Harness, volume: &str, attrs: &[(&str, &str)]) -> PathBuf {
    let pod = Pod::new("ns", volume);
    node.publish(volume, &pod, attrs)
        .await
        .unwrap_or_else(|e| panic!("publishing {volume}: {e}"))
}

const ATTRS: &[(&str, &str)] = &[
    ("csi.cert-manager.io/issuer-name", "ca-issuer"),
    ("csi.cert-manager.io/dns-names", "p.example.com"),
    ("csi.cert-manager.io/duration", "6s"),
    ("csi.cert-manager.io/key-algorithm", "ECDSA"),
];

/// First issuance, renewal, republish, unpublish and a fresh publish of the
/// same volume, and a restart followed by a republish: read-only on the
/// host's side at every step, and nothing left mounted after unpublish.
async fn read_only_everywhere(env: &[(&str, &str)], mechanism_logged: &str) {
    let node = start(env).await;
    let a = publish(&node, "csi-prop-a", ATTRS).await;
    let b = publish(&node, "csi-prop-b", ATTRS).await;
    assert_read_only_on_host(&a, "first issuance");
    assert_read_only_on_host(&b, "first issuance");
    let logs = node.logs();
    assert!(
        logs.contains(mechanism_logged),
        "the driver logs its mount mechanism ({mechanism_logged}):\n{logs}"
    );
    assert_eq!(
        logs.matches("read-only bind mounts are made with").count(),
        1,
        "the mechanism is logged once"
    );

    let first = serial(&a);
    eventually("a renewal", Duration::from_secs(30), || serial(&a) != first).await;
    assert_read_only_on_host(&a, "after a renewal");

    // The kubelet's republish of a mounted volume.
    assert_eq!(publish(&node, "csi-prop-a", ATTRS).await, a);
    assert_read_only_on_host(&a, "after a republish");
    assert_eq!(
        host_mount_options(&a).len(),
        1,
        "a republish stacks no mount"
    );

    // Unpublished: gone from the host too; published again: read-only.
    node.unpublish("csi-prop-b").await.unwrap();
    assert_eq!(
        host_mount_options(&b),
        Vec::<Vec<String>>::new(),
        "unpublish leaves no mount on the host's side"
    );
    let b = publish(&node, "csi-prop-b", ATTRS).await;
    assert_read_only_on_host(&b, "published again after an unpublish");

    // A restarted driver (a new namespace) republishes what it recovered.
    let mut node = node;
    node.restart_driver().await;
    assert_eq!(publish(&node, "csi-prop-a", ATTRS).await, a);
    assert_read_only_on_host(&a, "a republish after a driver restart");
    let before = serial(&b);
    eventually("a renewal after restart", Duration::from_secs(30), || {
        serial(&b) != before
    })
    .await;
    assert_read_only_on_host(&b, "a renewal after a driver restart");
}

#[test]
fn read_only_on_the_hosts_side_with_the_new_mount_api() {
    in_mount_namespace!(async {
        if probe_new_mount_api().is_err() {
            eprintln!(
                "SKIPPED read_only_on_the_hosts_side_with_the_new_mount_api: this kernel has \
                     no new mount API (the staged test covers it)"
            );
            return;
        }
        read_only_everywhere(&[], "open_tree + mount_setattr + move_mount").await;
    });
}

#[test]
fn read_only_on_the_hosts_side_with_the_staged_remount() {
    in_mount_namespace!(async {
        read_only_everywhere(
            &[(cmcsi_driver::mount::FORCE_MECHANISM_ENV, "staged-remount")],
            "bind + remount read-only in private",
        )
        .await;
    });
}

/// Whether this kernel lets us clone a mount detached (`open_tree`).
fn probe_new_mount_api() -> std::io::Result<()> {
    rustix::mount::open_tree(
        rustix::fs::CWD,
        "/",
        rustix::mount::OpenTreeFlags::OPEN_TREE_CLONE
            | rustix::mount::OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )?;
    Ok(())
}
