//! R-relists: what others put in the API cannot crash-loop or starve the
//! node's driver. Against the real binary and testkit's API behaving as a
//! real API server here (a list with `resourceVersion=0` ignores `limit`;
//! `sendInitialEvents` watches are served):
//! - 80 foreign CertificateRequests of 1 MB each, labelled for the node, and
//!   300 Pods on the node with 200 KB annotations (readiness gates on), all
//!   there before the driver starts: the driver, in a 64 MiB memory cgroup
//!   as the DaemonSet limits it, starts, publishes, survives a forced `410`
//!   relist of both watches and publishes again, never OOM-killed; its peak
//!   RSS (`VmHWM`) is reported;
//! - one namespace's 4096 requests shaped like its own volume's: another
//!   namespace's publish still succeeds and leaves exactly one request.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use base64::Engine as _;
use cmcsi_testkit::{FakeApi, Script, Verb, in_mount_namespace};
use common::cgroup::{MemoryCgroup, vm_hwm_kib};
use common::{Harness, Pod, eventually, fake_api, requests_for};

const ISSUER: (&str, &str) = ("csi.cert-manager.io/issuer-name", "ca-issuer");
const DNS: (&str, &str) = ("csi.cert-manager.io/dns-names", "t.example.com");
const GATE: &str = "example.com/ready";

/// The DaemonSet's memory limit.
const MEMORY_LIMIT: u64 = 64 * 1024 * 1024;
const FOREIGN: usize = 80;
const FOREIGN_BYTES: usize = 1024 * 1024;
const PODS: usize = 300;
const POD_ANNOTATION_BYTES: usize = 200 * 1024;

/// A request another identity made in another namespace, labelled for
/// `node-a`, with a `request` field of about `bytes`.
fn foreign_request(i: usize, csr: &str) -> serde_json::Value {
    let volume = format!("csi-foreign-{i:04}");
    serde_json::json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "CertificateRequest",
        "metadata": {
            "name": format!("big-{i:04}"),
            "labels": {
                "csi.cert-manager.io/node-id-hash": cmcsi_issuer_client::label_hash("node-a"),
                "csi.cert-manager.io/volume-id-hash": cmcsi_issuer_client::label_hash(&volume),
            },
            "annotations": {"csi.cert-manager.io/volume-id": volume},
        },
        "spec": {"request": csr, "issuerRef": {"name": "no-such-issuer", "kind": "Issuer"}},
    })
}

fn watches(api: &FakeApi, resource: &str) -> u64 {
    api.counts().of(Verb::Watch, resource)
}

async fn wait_watches(api: &FakeApi, resource: &str, at_least: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while watches(api, resource) < at_least {
        assert!(
            Instant::now() < deadline,
            "the driver's {resource} watch was not re-established ({} watches)",
            watches(api, resource)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn hostile_api_contents_relist_within_the_daemonset_memory_limit() {
    in_mount_namespace!(async {
        let cgroup = MemoryCgroup::new("cmcsi-relists", MEMORY_LIMIT)
            .expect("this test needs a memory cgroup it may create (root, cgroup v1 memory or v2)");
        let api = fake_api(FakeApi::builder().issuer("ca-issuer", Script::Sign)).await;
        let csr =
            base64::engine::general_purpose::STANDARD.encode(vec![b'A'; FOREIGN_BYTES * 3 / 4]);
        for i in 0..FOREIGN {
            api.insert_request(
                "intruder",
                foreign_request(i, &csr),
                "system:serviceaccount:intruder:default",
            )
            .unwrap();
        }
        let padding = "x".repeat(POD_ANNOTATION_BYTES);
        for i in 0..PODS {
            let name = format!("crowd-{i:03}");
            api.put_pod("crowd", &name, &format!("uid-crowd-{i}"), "node-a");
            // The annotation the gate reads, at the API's annotation size limit's scale.
            api.set_pod_annotation("crowd", &name, GATE, &padding);
        }
        let pod = Pod::new("app", "web");
        api.put_pod("app", "web", &pod.uid, "node-a");
        api.set_pod_annotation("app", "web", GATE, "yes");

        let gate = format!("--pod-readiness-gate=pod-annotation:{GATE}");
        let mut h =
            Harness::in_cgroup(api, &cgroup, &[&gate, "--continue-on-not-ready=true"]).await;
        let pid = h.driver.pid().unwrap();
        let target = h.publish("csi-first", &pod, &[ISSUER, DNS]).await.unwrap();
        // Gated volumes are mounted, then issued once the Pod watch shows the gate holds.
        eventually(
            "the first volume's certificate",
            Duration::from_secs(60),
            || target.join("crt.pem").exists(),
        )
        .await;
        let started = vm_hwm_kib(pid).unwrap();

        // A forced relist of both watches: the server forgets its history
        // (after a change the watches do not select) and drops them; each
        // resumed watch gets 410 Gone and lists again.
        let (crs, pods) = (
            watches(&h.api, "certificaterequests"),
            watches(&h.api, "pods"),
        );
        let mut unselected = foreign_request(9999, "");
        unselected["metadata"]["labels"] = serde_json::json!({});
        h.api
            .insert_request(
                "intruder",
                unselected,
                "system:serviceaccount:intruder:default",
            )
            .unwrap();
        h.api.expire_watch_history();
        h.api.drop_watches();
        wait_watches(&h.api, "certificaterequests", crs + 2).await;
        wait_watches(&h.api, "pods", pods + 2).await;
        let target = h.publish("csi-second", &pod, &[ISSUER, DNS]).await.unwrap();
        eventually(
            "the second volume's certificate",
            Duration::from_secs(60),
            || target.join("crt.pem").exists(),
        )
        .await;

        let peak = vm_hwm_kib(pid).unwrap();
        eprintln!(
            "driver VmHWM: {started} KiB after start and publish, {peak} KiB after the forced \
             relist ({FOREIGN} foreign requests of {FOREIGN_BYTES} bytes, {PODS} Pods with \
             {POD_ANNOTATION_BYTES}-byte annotations; cgroup {:?} peak {:?} bytes, limit {MEMORY_LIMIT})",
            cgroup.version(),
            cgroup.peak_bytes(),
        );
        assert_eq!(cgroup.oom_kills(), 0, "the driver was OOM-killed");
        assert_eq!(h.driver.pid(), Some(pid), "the driver is the one started");
        assert!(
            std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "the driver is still running"
        );
        h.kill_driver();
    });
}

#[test]
fn one_namespaces_look_alike_requests_do_not_starve_another() {
    in_mount_namespace!(async {
        const LOOK_ALIKES: usize = 4096;
        let h = Harness::start(&[]).await;
        let evil = Pod::new("evil", "one");
        h.publish("csi-evil", &evil, &[ISSUER, DNS]).await.unwrap();
        // Shaped like the evil volume's own: its labels, its volume id, its
        // Pod as owner. The driver cannot tell them from its own by shape.
        for i in 0..LOOK_ALIKES {
            let body = serde_json::json!({
                "apiVersion": "cert-manager.io/v1",
                "kind": "CertificateRequest",
                "metadata": {
                    "name": format!("look-alike-{i:04}"),
                    "labels": {
                        "csi.cert-manager.io/node-id-hash": cmcsi_issuer_client::label_hash("node-a"),
                        "csi.cert-manager.io/volume-id-hash": cmcsi_issuer_client::label_hash("csi-evil"),
                    },
                    "annotations": {"csi.cert-manager.io/volume-id": "csi-evil"},
                    "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "one", "uid": evil.uid}],
                },
                "spec": {"request": "", "issuerRef": {"name": "no-such-issuer", "kind": "Issuer"}},
            });
            h.api
                .insert_request("evil", body, "system:serviceaccount:evil:default")
                .unwrap();
        }
        let victim = Pod::new("good", "victim");
        let target = h
            .publish("csi-victim", &victim, &[ISSUER, DNS])
            .await
            .unwrap();
        assert!(target.join("crt.pem").exists());
        assert_eq!(
            h.api.requests("good").len(),
            1,
            "the victim's publish made exactly one request"
        );
        assert_eq!(requests_for(&h.api, "csi-victim").len(), 1);
    });
}
