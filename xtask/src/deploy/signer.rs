//! `deploy/pod-signer/`: the PodCertificateRequest signer (`cert-manager-pod-signer`, from the
//! driver's image) as a two-replica Deployment with leader election, its ServiceAccount and the
//! smallest RBAC its code uses (docs/pod-certificates.md). `kubectl apply -k deploy/pod-signer`
//! (into the driver's namespace: apply `deploy/` first); `deploy/pod-signer/impersonation/` adds
//! `--impersonate-service-account` and the `impersonate` role it needs.

use std::collections::BTreeMap;

use anyhow::Result;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile,
    SecurityContext, ServiceAccount,
};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;

/// Name of the signer's objects.
pub const SIGNER: &str = "cert-manager-pod-signer";
/// The ClusterRole that `--impersonate-service-account` needs in addition.
pub const IMPERSONATOR: &str = "cert-manager-pod-signer-impersonator";
/// Where the signer serves `/metrics`, `/healthz` and `/readyz`.
pub const SIGNER_METRICS_PORT: i32 = 9403;
/// The signer names it serves (cert-manager's convention for Kubernetes CSRs).
pub const SIGNER_NAMES: &[&str] = &[
    "clusterissuers.cert-manager.io/*",
    "issuers.cert-manager.io/*",
];
/// Replicas (one leads; the other takes over within the Lease duration).
pub const SIGNER_REPLICAS: i32 = 2;

fn labels() -> BTreeMap<String, String> {
    [("app.kubernetes.io/name".to_owned(), SIGNER.to_owned())].into()
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        labels: Some(labels()),
        ..Default::default()
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn rule(group: &str, resources: &[&str], verbs: &[&str], names: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(strings(&[group])),
        resources: Some(strings(resources)),
        resource_names: (!names.is_empty()).then(|| strings(names)),
        verbs: strings(verbs),
        ..Default::default()
    }
}

/// The signer's ServiceAccount.
pub fn service_account(namespace: &str) -> ServiceAccount {
    ServiceAccount {
        metadata: meta(SIGNER, Some(namespace)),
        ..Default::default()
    }
}

/// Least privilege: the verbs the signer's code uses. PodCertificateRequests are watched (list,
/// watch) and read again when a status write conflicts or is refused (get); their status is
/// written with an update carrying the watched resourceVersion; `sign` and `attest` on the signer names let it write statuses and
/// ClusterTrustBundles of those signers; its CertificateRequests are created and watched;
/// bundles are read, created and replaced; Events are created and patched (kube's recorder).
pub fn signer_rules() -> Vec<PolicyRule> {
    vec![
        rule(
            "certificates.k8s.io",
            &["podcertificaterequests"],
            &["get", "list", "watch"],
            &[],
        ),
        rule(
            "certificates.k8s.io",
            &["podcertificaterequests/status"],
            &["update"],
            &[],
        ),
        rule(
            "certificates.k8s.io",
            &["signers"],
            &["sign", "attest"],
            SIGNER_NAMES,
        ),
        rule(
            "certificates.k8s.io",
            &["clustertrustbundles"],
            &["get", "create", "update"],
            &[],
        ),
        rule(
            "cert-manager.io",
            &["certificaterequests"],
            &["create", "list", "watch"],
            &[],
        ),
        rule("events.k8s.io", &["events"], &["create", "patch"], &[]),
    ]
}

/// The signer's ClusterRole.
pub fn cluster_role() -> ClusterRole {
    ClusterRole {
        metadata: meta(SIGNER, None),
        rules: Some(signer_rules()),
        ..Default::default()
    }
}

/// With `--impersonate-service-account`: `impersonate` on ServiceAccounts (and their groups).
/// Whoever holds the signer's token can then act as any ServiceAccount: see
/// docs/pod-certificates.md before binding it.
pub fn impersonator_cluster_role() -> ClusterRole {
    ClusterRole {
        metadata: meta(IMPERSONATOR, None),
        rules: Some(vec![
            rule("", &["serviceaccounts"], &["impersonate"], &[]),
            rule("", &["groups"], &["impersonate"], &[]),
        ]),
        ..Default::default()
    }
}

fn binding_subjects(namespace: &str) -> Option<Vec<Subject>> {
    Some(vec![Subject {
        kind: "ServiceAccount".to_owned(),
        name: SIGNER.to_owned(),
        namespace: Some(namespace.to_owned()),
        ..Default::default()
    }])
}

/// Binds a ClusterRole to the signer's ServiceAccount.
pub fn cluster_role_binding(namespace: &str, role: &str) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: meta(role, None),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: "ClusterRole".to_owned(),
            name: role.to_owned(),
        },
        subjects: binding_subjects(namespace),
    }
}

/// Leader election: its own Lease in its own namespace (create once, then get and update).
pub fn lease_role(namespace: &str) -> Role {
    Role {
        metadata: meta(SIGNER, Some(namespace)),
        rules: Some(vec![rule(
            "coordination.k8s.io",
            &["leases"],
            &["get", "create", "update"],
            &[],
        )]),
    }
}

/// Binds [`lease_role`].
pub fn lease_role_binding(namespace: &str) -> RoleBinding {
    RoleBinding {
        metadata: meta(SIGNER, Some(namespace)),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: "Role".to_owned(),
            name: SIGNER.to_owned(),
        },
        subjects: binding_subjects(namespace),
    }
}

fn env_from(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.to_owned(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The Deployment: two replicas, unprivileged, read-only root, identity from the downward API.
pub fn deployment(namespace: &str, image: &str, pull_policy: &str) -> Deployment {
    let probe = |path: &str| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("http-metrics".to_owned()),
            ..Default::default()
        }),
        period_seconds: Some(10),
        ..Default::default()
    };
    let q = |pairs: &[(&str, &str)]| -> BTreeMap<String, Quantity> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Quantity((*v).to_owned())))
            .collect()
    };
    let container = Container {
        name: SIGNER.to_owned(),
        image: Some(image.to_owned()),
        image_pull_policy: Some(pull_policy.to_owned()),
        command: Some(strings(&["/cert-manager-pod-signer"])),
        args: Some(vec![
            format!("--metrics-bind-address=0.0.0.0:{SIGNER_METRICS_PORT}"),
            "--log-level=info".to_owned(),
        ]),
        env: Some(vec![
            env_from("POD_NAME", "metadata.name"),
            env_from("POD_NAMESPACE", "metadata.namespace"),
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("http-metrics".to_owned()),
            container_port: SIGNER_METRICS_PORT,
            protocol: Some("TCP".to_owned()),
            ..Default::default()
        }]),
        liveness_probe: Some(probe("/healthz")),
        readiness_probe: Some(probe("/readyz")),
        // From `cargo xtask bench` B13: under 32 MiB resident with 1,000 requests at once.
        resources: Some(ResourceRequirements {
            requests: Some(q(&[("cpu", "10m"), ("memory", "32Mi")])),
            limits: Some(q(&[("memory", "64Mi")])),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(k8s_openapi::api::core::v1::Capabilities {
                drop: Some(strings(&["ALL"])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    Deployment {
        metadata: meta(SIGNER, Some(namespace)),
        spec: Some(DeploymentSpec {
            replicas: Some(SIGNER_REPLICAS),
            selector: LabelSelector {
                match_labels: Some(labels()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels()),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(SIGNER.to_owned()),
                    containers: vec![container],
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(65532),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".to_owned(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Files under `deploy/pod-signer/`, with `doc` rendering one object as YAML.
pub fn files(
    namespace: &str,
    image: &str,
    doc: impl Fn(&serde_json::Value) -> Result<String>,
) -> Result<Vec<(String, String)>> {
    fn v<T: serde::Serialize>(o: &T) -> serde_json::Value {
        serde_json::to_value(o).unwrap_or_default()
    }
    let mut out = vec![
        ("serviceaccount.yaml", doc(&v(&service_account(namespace)))?),
        ("clusterrole.yaml", doc(&v(&cluster_role()))?),
        (
            "clusterrolebinding.yaml",
            doc(&v(&cluster_role_binding(namespace, SIGNER)))?,
        ),
        ("role.yaml", doc(&v(&lease_role(namespace)))?),
        ("rolebinding.yaml", doc(&v(&lease_role_binding(namespace)))?),
        (
            "deployment.yaml",
            doc(&v(&deployment(namespace, image, "IfNotPresent")))?,
        ),
        (
            "impersonation/clusterrole.yaml",
            doc(&v(&impersonator_cluster_role()))?,
        ),
        (
            "impersonation/clusterrolebinding.yaml",
            doc(&v(&cluster_role_binding(namespace, IMPERSONATOR)))?,
        ),
    ];
    let args_patch = serde_norway::to_string(&json!([{
        "op": "add", "path": "/spec/template/spec/containers/0/args/-",
        "value": "--impersonate-service-account",
    }]))?;
    out.push((
        "kustomization.yaml",
        doc(&json!({
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": ["serviceaccount.yaml", "clusterrole.yaml", "clusterrolebinding.yaml",
                          "role.yaml", "rolebinding.yaml", "deployment.yaml"],
        }))?,
    ));
    out.push((
        "impersonation/kustomization.yaml",
        doc(&json!({
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": ["..", "clusterrole.yaml", "clusterrolebinding.yaml"],
            "patches": [{"target": {"group": "apps", "version": "v1", "kind": "Deployment", "name": SIGNER},
                         "patch": args_patch}],
        }))?,
    ));
    Ok(out.into_iter().map(|(p, t)| (p.to_owned(), t)).collect())
}
