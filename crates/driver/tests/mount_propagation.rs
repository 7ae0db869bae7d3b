//! The DaemonSet's mounts, modelled: the kubelet's pods directory and the
//! driver's data root are shared mounts (the DaemonSet mounts them with
//! Bidirectional propagation), the driver runs in a child mount namespace
//! whose mounts propagate back, and every check looks at the targets from
//! the host's side. Each published target must be read-only there too
//! (mountinfo options and a write that fails with EROFS), after the first
//! issuance, a renewal and republishes, with either mount mechanism.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cmcsi_keygen::ChainSummary;
use cmcsi_testkit::kubelet::{DriverProcess, prepare_target, publish_request};
use cmcsi_testkit::{FakeApi, Script};
use common::{
    BIN, Pod, TOKEN, assert_read_only_on_host, eventually, fake_api, host_mount_options,
    in_namespace, make_shared, read,
};

/// The driver in its own mount namespace, as in the DaemonSet's container,
/// with the host's (this test's namespace's) pods directory shared into it.
struct Node {
    /// Kept for as long as the driver talks to it.
    _api: FakeApi,
    dir: tempfile::TempDir,
    driver: DriverProcess,
}

impl Node {
    /// Starts the driver in a child mount namespace (`unshare --mount
    /// --propagation unchanged`, so the shared directories stay peers of
    /// the host's and its mounts there come back), with `env` set.
    async fn start(env: &[(&str, &str)]) -> Node {
        let api = fake_api(FakeApi::builder().issuer("ca-issuer", Script::Sign)).await;
        let dir = tempfile::tempdir().unwrap();
        make_shared(&dir.path().join("pods"));
        make_shared(&dir.path().join("data"));
        // `exec` twice, so the driver keeps the wrapper's pid (for kill and
        // /proc checks).
        let wrapper = dir.path().join("driver-in-its-namespace");
        std::fs::write(
            &wrapper,
            format!("#!/bin/sh\nexec unshare --mount --propagation unchanged -- '{BIN}' \"$@\"\n"),
        )
        .unwrap();
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        FakeApi::write_kubeconfig_value(&kubeconfig, &api.kubeconfig(TOKEN)).unwrap();
        let args: Vec<String> = [
            "--node-id",
            "node-a",
            "--data-root",
            dir.path().join("data").to_str().unwrap(),
            "--log-level",
            "debug",
            "--issuance-timeout",
            "20s",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let driver = DriverProcess::spawn_with_env(
            &wrapper,
            &dir.path().join("plugin/csi.sock"),
            &dir.path().join("driver.log"),
            &args,
            &env,
        )
        .await
        .unwrap();
        Node {
            _api: api,
            dir,
            driver,
        }
    }

    fn target(&self, volume: &str) -> PathBuf {
        self.dir
            .path()
            .join("pods")
            .join(volume)
            .join("volumes/kubernetes.io~csi/tls/mount")
    }

    async fn publish(&self, volume: &str, attrs: &[(&str, &str)]) -> PathBuf {
        let target = self.target(volume);
        prepare_target(&target).unwrap();
        let pod = Pod::new("ns", volume);
        let ctx: HashMap<String, String> = pod.context(attrs);
        self.driver
            .node()
            .await
            .unwrap()
            .node_publish_volume(publish_request(volume, &target, ctx))
            .await
            .unwrap_or_else(|e| panic!("publishing {volume}: {e}\n{}", self.driver.logs()));
        target
    }

    async fn unpublish(&self, volume: &str) {
        self.driver
            .node()
            .await
            .unwrap()
            .node_unpublish_volume(cmcsi_proto::v1::NodeUnpublishVolumeRequest {
                volume_id: volume.to_string(),
                target_path: self.target(volume).display().to_string(),
            })
            .await
            .unwrap();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.driver.kill();
        if std::thread::panicking() {
            eprintln!("---- driver log ----\n{}", self.driver.logs());
        }
    }
}

fn serial(target: &Path) -> String {
    ChainSummary::from_pem(&read(target, "crt.pem"))
        .unwrap()
        .serial_hex
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
    let node = Node::start(env).await;
    let a = node.publish("csi-prop-a", ATTRS).await;
    let b = node.publish("csi-prop-b", ATTRS).await;
    assert_read_only_on_host(&a, "first issuance");
    assert_read_only_on_host(&b, "first issuance");
    let logs = node.driver.logs();
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
    assert_eq!(node.publish("csi-prop-a", ATTRS).await, a);
    assert_read_only_on_host(&a, "after a republish");
    assert_eq!(
        host_mount_options(&a).len(),
        1,
        "a republish stacks no mount"
    );

    // Unpublished: gone from the host too; published again: read-only.
    node.unpublish("csi-prop-b").await;
    assert_eq!(
        host_mount_options(&b),
        Vec::<Vec<String>>::new(),
        "unpublish leaves no mount on the host's side"
    );
    let b = node.publish("csi-prop-b", ATTRS).await;
    assert_read_only_on_host(&b, "published again after an unpublish");

    // A restarted driver (a new namespace) republishes what it recovered.
    let mut node = node;
    node.driver.restart().await.unwrap();
    assert_eq!(node.publish("csi-prop-a", ATTRS).await, a);
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
    in_namespace(
        "read_only_on_the_hosts_side_with_the_new_mount_api",
        || async {
            if probe_new_mount_api().is_err() {
                eprintln!(
                    "SKIPPED read_only_on_the_hosts_side_with_the_new_mount_api: this kernel has \
                     no new mount API (the staged test covers it)"
                );
                return;
            }
            read_only_everywhere(&[], "open_tree + mount_setattr + move_mount").await;
        },
    );
}

#[test]
fn read_only_on_the_hosts_side_with_the_staged_remount() {
    in_namespace(
        "read_only_on_the_hosts_side_with_the_staged_remount",
        || async {
            read_only_everywhere(
                &[(cmcsi_driver::mount::FORCE_MECHANISM_ENV, "staged-remount")],
                "bind + remount read-only in private",
            )
            .await;
        },
    );
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
