//! Restarts: what the driver knows about its volumes from the first second
//! after it comes back.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cmcsi_keygen::ChainSummary;
use cmcsi_testkit::Script;
use cmcsi_testkit::in_mount_namespace;
use common::{Harness, Pod, free_port_address, http_get, read};
/// The value of the first series of `body` whose line starts with `prefix`.
fn series_value(body: &str, prefix: &str) -> Option<f64> {
    body.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn a_certificate_that_expired_while_the_driver_was_down_is_reported_at_once() {
    in_mount_namespace!(async {
        let addr = free_port_address();
        // A long recovery spread: the overdue renewal is not attempted
        // during the test, so only recovery can have told the renewer.
        let mut h =
            Harness::start(&["--metrics-bind-address", &addr, "--recovery-spread", "1h"]).await;
        let pod = Pod::new("ns", "short");
        let target = h
            .publish(
                "csi-short",
                &pod,
                &[
                    ("csi.cert-manager.io/issuer-name", "ca-issuer"),
                    ("csi.cert-manager.io/dns-names", "s.example.com"),
                    ("csi.cert-manager.io/duration", "3s"),
                    ("csi.cert-manager.io/key-algorithm", "ECDSA"),
                ],
            )
            .await
            .unwrap();
        // The request that issued it: the gauges' `name` (csi-lib's label),
        // which the driver keeps across the restart.
        let issued_by = h.api.requests("ns")[0]["metadata"]["name"]
            .as_str()
            .unwrap()
            .to_owned();
        // No renewal may succeed from here on.
        h.api.set_issuer("ca-issuer", Script::Never);
        h.kill_driver();
        let not_after = ChainSummary::from_pem(&read(&target, "crt.pem"))
            .unwrap()
            .not_after;
        while SystemTime::now() <= not_after {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        h.restart_driver().await;
        let body = http_get(&addr, "/metrics");
        assert_eq!(
            series_value(&body, "certmanager_csi_expired_certificates "),
            Some(1.0),
            "the expired certificate is counted at once:\n{body}"
        );
        let labels = format!("{{name=\"{issued_by}\",namespace=\"ns\",pod=\"short\"");
        let expiry = series_value(
            &body,
            &format!("certmanager_csi_certificate_request_expiration_timestamp_seconds{labels}"),
        )
        .unwrap_or_else(|| panic!("no expiry series for the restored volume:\n{body}"));
        let want = not_after.duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
        assert!(
            (expiry - want).abs() < 1.0,
            "expiry gauge {expiry} is the certificate's notAfter {want}"
        );
        assert!(
            body.contains(&format!(
                "certmanager_csi_certificate_request_renewal_timestamp_seconds{labels}"
            )),
            "{body}"
        );
    });
}
