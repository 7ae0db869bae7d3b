//! `deploy/examples/metrics-networkpolicy.yaml`: a NetworkPolicy that lets only
//! the monitoring namespace reach the driver's metrics port. Any Pod that
//! reaches the port can hold connections to it (bounded by the driver's
//! `--metrics-*` limits); this keeps the rest of the cluster out.

use serde_json::{Value, json};

use super::objects::{APP, METRICS_PORT, NAMESPACE};

/// The namespace Prometheus runs in, as the example assumes it.
pub const MONITORING_NAMESPACE: &str = "monitoring";

/// The example NetworkPolicy.
pub fn metrics_network_policy() -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "cert-manager-csi-driver-metrics", "namespace": NAMESPACE},
        "spec": {
            // The DaemonSet's selector label.
            "podSelector": {"matchLabels": {"app": APP}},
            "policyTypes": ["Ingress"],
            "ingress": [{
                "from": [{"namespaceSelector": {"matchLabels": {
                    "kubernetes.io/metadata.name": MONITORING_NAMESPACE,
                }}}],
                "ports": [{"protocol": "TCP", "port": METRICS_PORT}],
            }],
        },
    })
}
