//! R-budget: one Pod cannot fill the node's shared tmpfs, and what a Pod may
//! not ask for is refused with a message that says so. Against the real
//! binary and the fake API:
//! - a 1 MiB keystore password in the volume's Secret is refused, naming the
//!   key and never the value;
//! - a cert-manager.io annotation key is refused, naming the flag that allows it;
//! - 10 volumes of one Pod with the most annotations a volume may carry stay
//!   within their budget, and another Pod's publish and renewals still succeed;
//! - the data root's gauges are scraped, and its use stays below its size.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use cmcsi_testkit::in_mount_namespace;
use common::{Harness, Pod, eventually, free_port_address, http_get, metric_value, requests_for};

const ISSUER: (&str, &str) = ("csi.cert-manager.io/issuer-name", "ca-issuer");
const DNS: (&str, &str) = ("csi.cert-manager.io/dns-names", "t.example.com");

#[test]
fn one_pod_cannot_fill_the_tmpfs_and_lows_are_refused() {
    in_mount_namespace!(async {
        let addr = free_port_address();
        let h = Harness::start(&[
            "--metrics-bind-address",
            &addr,
            "--min-issuance-interval",
            "1s",
        ])
        .await;

        // A 1 MiB password from the volume's Secret.
        let pod = Pod::new("greedy", "one");
        let target = h.target("csi-password");
        let mut req = Harness::request(
            "csi-password",
            &target,
            pod.context(&[
                ISSUER,
                DNS,
                ("csi.cert-manager.io/jks-enable", "true"),
                ("csi.cert-manager.io/jks-password-secret-key", "pw"),
            ]),
        );
        req.secrets = HashMap::from([("pw".to_string(), "S".repeat(1024 * 1024))]);
        let err = h.node().await.node_publish_volume(req).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
        assert!(
            err.message()
                .contains("the value of key \"pw\" of the volume's Secret")
                && err.message().contains("at most 1024"),
            "{}",
            err.message()
        );
        assert!(
            !err.message().contains("SSSS"),
            "the password is never shown"
        );

        // cert-manager's own annotation keys.
        let err = h
            .publish(
                "csi-pickup",
                &pod,
                &[ISSUER, DNS, ("venafi.cert-manager.io/pickup-id", "1")],
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
        assert!(
            err.message().contains("--allow-cert-manager-annotations"),
            "{}",
            err.message()
        );

        // Ten volumes of one Pod, each with as many annotation bytes as a
        // volume context may carry (--max-volume-context-bytes, 256 KiB).
        let note = "n".repeat(60 * 1024);
        for i in 0..10 {
            let attrs: Vec<(String, String)> = (0..4)
                .map(|k| (format!("example.com/note-{k}"), note.clone()))
                .collect();
            let mut all: Vec<(&str, &str)> = vec![ISSUER, DNS];
            all.extend(attrs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let volume = format!("csi-greedy-{i}");
            // Within budget, or refused; never more.
            let _ = h.publish(&volume, &pod, &all).await;
        }

        // Another Pod: publishes and renews.
        let other = Pod::new("modest", "two");
        let target = h
            .publish(
                "csi-modest",
                &other,
                &[ISSUER, DNS, ("csi.cert-manager.io/duration", "3s")],
            )
            .await
            .unwrap();
        assert!(target.join("crt.pem").exists());
        let names = || -> Vec<String> {
            requests_for(&h.api, "csi-modest")
                .iter()
                .map(|r| r["metadata"]["name"].as_str().unwrap().to_owned())
                .collect()
        };
        let first = names();
        eventually(
            "a renewal of the other Pod's volume",
            Duration::from_secs(30),
            || names().iter().any(|n| !first.contains(n)),
        )
        .await;

        let body = http_get(&addr, "/metrics");
        let used = metric_value(&body, "certmanager_csi_data_root_used_bytes").unwrap();
        let size = metric_value(&body, "certmanager_csi_data_root_size_bytes").unwrap();
        eprintln!("data root: {used} of {size} bytes used");
        assert_eq!(size, 32.0 * 1024.0 * 1024.0, "{body}");
        assert!(used > 0.0 && used < size * 0.8, "{used} of {size}");
    });
}
