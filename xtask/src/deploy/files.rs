//! The list of generated files: which object goes to which path under `deploy/`, with the
//! kustomize overlays and components built from the same objects.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::json;

use super::render::{DAEMONSET_NOTES, GENERATED_HEADER, doc, docs};
use super::*;

/// The gate `deploy/components/pod-readiness` configures: the Pod has an IP (any family).
pub const DEFAULT_COMPONENT_GATE: &str = "pod-ip:any";

/// Base resources (under `deploy/base/`), in apply order.
pub const BASE_FILES: &[&str] = &[
    "namespace.yaml",
    "serviceaccount.yaml",
    "clusterrole.yaml",
    "clusterrolebinding.yaml",
    "csidriver.yaml",
    "daemonset.yaml",
];

/// Every generated file, by path relative to the workspace root.
pub fn generate() -> Result<BTreeMap<PathBuf, String>> {
    let s = Settings::default();
    let mut files = BTreeMap::new();
    let mut put = |rel: &str, text: String| {
        files.insert(PathBuf::from("deploy").join(rel), text);
    };

    put("base/namespace.yaml", doc(&namespace(&s), &[])?);
    put("base/serviceaccount.yaml", doc(&service_account(&s), &[])?);
    put(
        "base/clusterrole.yaml",
        doc(&cluster_role(RoleFeatures::default()), &[])?,
    );
    put(
        "base/clusterrolebinding.yaml",
        doc(&cluster_role_binding(&s), &[])?,
    );
    put("base/csidriver.yaml", doc(&csi_driver(&s, false), &[])?);
    put(
        "base/daemonset.yaml",
        doc(&daemon_set(&s), DAEMONSET_NOTES)?,
    );
    put(
        "base/kustomization.yaml",
        doc(
            &json!({
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": BASE_FILES,
            }),
            &[],
        )?,
    );
    // `kubectl apply -k deploy/` installs the base. (The base has its own directory because an
    // overlay may not live inside the directory it builds on.)
    put(
        "kustomization.yaml",
        doc(
            &json!({
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": ["base"],
            }),
            &[],
        )?,
    );

    // Token-request overlay: CSIDriver gets tokenRequests + requiresRepublish, the driver gets
    // --use-token-request, and the Pods' ServiceAccounts need a role that lets them create requests.
    let token_driver = csi_driver(&s, true);
    let csidriver_patch = json!({
        "apiVersion": "storage.k8s.io/v1",
        "kind": "CSIDriver",
        "metadata": {"name": s.driver_name},
        "spec": {
            "tokenRequests": token_driver.spec.token_requests,
            "requiresRepublish": token_driver.spec.requires_republish,
        }
    });
    // The Pod's token creates the requests: the driver's own identity loses `create`.
    let token_role_patch = serde_norway::to_string(&json!([{
        "op": "replace",
        "path": "/rules/0/verbs",
        "value": certificate_request_verbs(true),
    }]))?;
    let args_patch = serde_norway::to_string(&json!([{
        "op": "add",
        "path": "/spec/template/spec/containers/0/args/-",
        "value": "--use-token-request",
    }]))?;
    put(
        "token-request/csidriver-patch.yaml",
        doc(&csidriver_patch, &[])?,
    );
    put(
        "token-request/requester-clusterrole.yaml",
        doc(&requester_cluster_role(), &[])?,
    );
    put(
        "token-request/kustomization.yaml",
        doc(
            &json!({
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": ["../base", "requester-clusterrole.yaml"],
                "patches": [
                    {"path": "csidriver-patch.yaml"},
                    {"target": {"group": "apps", "version": "v1", "kind": "DaemonSet", "name": APP},
                     "patch": args_patch},
                    {"target": {"group": "rbac.authorization.k8s.io", "version": "v1", "kind": "ClusterRole", "name": APP},
                     "patch": token_role_patch},
                ],
            }),
            &[],
        )?,
    );

    // Component for readiness gates: the Pod watch's RBAC, continue-on-not-ready (required with
    // a gate) and one gate. `components: [../components/pod-readiness]` in an overlay.
    let gated = RoleFeatures {
        pod_readiness: true,
        ..RoleFeatures::default()
    };
    let pod_rule = driver_rules(gated)
        .pop()
        .context("the gated role has a Pod rule")?;
    let gate_patch = serde_norway::to_string(&json!([
        {"op": "add", "path": "/spec/template/spec/containers/0/args/-", "value": "--continue-on-not-ready"},
        {"op": "add", "path": "/spec/template/spec/containers/0/args/-",
         "value": format!("--pod-readiness-gate={DEFAULT_COMPONENT_GATE}")},
    ]))?;
    let pod_rule_patch = serde_norway::to_string(&json!([
        {"op": "add", "path": "/rules/-", "value": pod_rule},
    ]))?;
    put(
        "components/pod-readiness/kustomization.yaml",
        doc(
            &json!({
                "apiVersion": "kustomize.config.k8s.io/v1alpha1",
                "kind": "Component",
                "patches": [
                    {"target": {"group": "apps", "version": "v1", "kind": "DaemonSet", "name": APP},
                     "patch": gate_patch},
                    {"target": {"group": "rbac.authorization.k8s.io", "version": "v1", "kind": "ClusterRole", "name": APP},
                     "patch": pod_rule_patch},
                ],
            }),
            &[],
        )?,
    );

    for (rel, text) in super::selinux::files(&s.driver_name)? {
        put(&rel, text);
    }

    put("examples/ca-issuer.yaml", docs(&example_ca_issuer())?);
    put("examples/deployment.yaml", doc(&example_deployment(), &[])?);
    put(
        "examples/kustomization.yaml",
        doc(
            &json!({
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": ["ca-issuer.yaml", "deployment.yaml"],
            }),
            &[],
        )?,
    );
    put("README.md", DEPLOY_README.to_owned());
    for (name, dir) in kubelet_dirs::KUBELET_ROOT_DIRS {
        put(
            &format!("components/kubelet-root-dir/{name}/kustomization.yaml"),
            doc(&kubelet_dirs::component(dir)?, &[])?,
        );
    }

    put(
        "monitoring/prometheus-rules.yaml",
        monitoring::rules_yaml()?,
    );
    put(
        "monitoring/prometheusrule.yaml",
        doc(&monitoring::prometheus_rule(), &[])?,
    );
    put(
        "monitoring/podmonitor.yaml",
        doc(&monitoring::pod_monitor(), &[])?,
    );
    put(
        "monitoring/prometheus-scrape-config.yaml",
        format!(
            "{GENERATED_HEADER}# Without the Prometheus Operator: add this job to prometheus.yml. It finds the driver Pods\n\
             # directly (no Service) and keeps the driver's namespace/pod labels (docs/metrics.md).\n{}",
            serde_norway::to_string(&monitoring::scrape_config())?
        ),
    );
    put(
        "monitoring/kustomization.yaml",
        doc(
            &json!({
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": ["podmonitor.yaml", "prometheusrule.yaml"],
            }),
            &[],
        )?,
    );
    put(
        "monitoring/grafana-dashboard.json",
        format!(
            "{}\n",
            serde_json::to_string_pretty(&monitoring::dashboard())?
        ),
    );
    put(
        "monitoring/tests/rules.test.yaml",
        monitoring::RULES_TEST.to_owned(),
    );

    for (rel, text) in signer::files(NAMESPACE, &s.image, |v| doc(v, &[]))? {
        put(&format!("pod-signer/{rel}"), text);
    }
    for (rel, text) in chart::files()? {
        put(&format!("chart/{rel}"), text);
    }
    Ok(files)
}

const DEPLOY_README: &str = include_str!("README.md");
