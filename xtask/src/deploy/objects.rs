//! The typed objects `deploy/` is made of: the driver's Namespace, ServiceAccount, RBAC,
//! CSIDriver and DaemonSet (all from one [`Settings`]), and the examples. The chart's render
//! tests and the container test build from the same functions.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, HostPathVolumeSource,
    LocalObjectReference, Namespace, ObjectFieldSelector, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecurityContext, ServiceAccount,
    Toleration, Volume, VolumeMount,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use k8s_openapi::api::storage::v1::{CSIDriver, CSIDriverSpec, TokenRequest};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;

/// Name of the driver's objects (ServiceAccount, ClusterRole, DaemonSet, ...).
pub const APP: &str = "cert-manager-csi-driver";
/// Namespace of the static manifests: the driver's own, so that deleting it never touches
/// cert-manager's namespace.
pub const NAMESPACE: &str = "cert-manager-csi-driver";
/// Default CSI driver name (CSIDriver object and `--driver-name`).
pub const DRIVER_NAME: &str = "csi.cert-manager.io";
/// Driver image repository. The tag is the workspace version.
pub const IMAGE_REPOSITORY: &str = "ghcr.io/cert-manager-rs/cert-manager-csi-driver";
/// node-driver-registrar sidecar: upstream's [`REGISTRAR_UPSTREAM`], copied next to the driver
/// image by the release workflow, so that (as with the Go chart) every image follows the chart's
/// `imageRegistry`/`imageNamespace`, and one value moves all three to a mirror.
pub const REGISTRAR_REPOSITORY: &str = "ghcr.io/cert-manager-rs/csi-node-driver-registrar";
/// Where the node-driver-registrar image comes from (the release copies it).
pub const REGISTRAR_UPSTREAM: &str = "registry.k8s.io/sig-storage/csi-node-driver-registrar";
/// Pinned node-driver-registrar tag.
pub const REGISTRAR_TAG: &str = "v2.15.0";
/// livenessprobe sidecar: upstream's [`LIVENESS_UPSTREAM`], copied as the registrar is.
pub const LIVENESS_REPOSITORY: &str = "ghcr.io/cert-manager-rs/livenessprobe";
/// Where the livenessprobe image comes from (the release copies it).
pub const LIVENESS_UPSTREAM: &str = "registry.k8s.io/sig-storage/livenessprobe";
/// Pinned livenessprobe tag.
pub const LIVENESS_TAG: &str = "v2.16.0";
/// The kubelet's root directory on the node.
pub const KUBELET_ROOT_DIR: &str = "/var/lib/kubelet";
/// Host directory holding the driver's data root (NOT under /tmp: Go driver issue #78).
pub const CSI_DATA_DIR: &str = "/var/lib/cert-manager-csi-driver";
/// Where the data root is mounted inside the driver container (`--data-root`).
pub const DATA_ROOT_IN_CONTAINER: &str = "/csi-data-dir";
/// Port of the livenessprobe sidecar's `/healthz`.
pub const HEALTH_PORT: i32 = 9809;
/// Port of the driver's Prometheus metrics.
pub const METRICS_PORT: i32 = 9402;
/// Name of the driver container.
pub const DRIVER_CONTAINER: &str = "cert-manager-csi-driver";

// ---------------------------------------------------------------------------------------------
// Settings: one set of knobs for the static manifests and (as template holes) for the chart.
// ---------------------------------------------------------------------------------------------

/// A toggle of the static manifests.
#[derive(Clone, Debug)]
pub enum Cond {
    /// Always present.
    On,
    /// Never present.
    Off,
}

/// Everything that differs between deployments.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Namespace of namespaced objects.
    pub namespace: String,
    /// CSI driver name.
    pub driver_name: String,
    /// Driver image (repository:tag).
    pub image: String,
    /// Driver image pull policy.
    pub image_pull_policy: String,
    /// node-driver-registrar image.
    pub registrar_image: String,
    /// node-driver-registrar pull policy.
    pub registrar_pull_policy: String,
    /// livenessprobe image.
    pub liveness_image: String,
    /// livenessprobe pull policy.
    pub liveness_pull_policy: String,
    /// Image pull secrets (`None` = not set; chart: a `with` block).
    pub image_pull_secrets: Option<Vec<LocalObjectReference>>,
    /// `--log-level`.
    pub log_level: String,
    /// `--log-format`.
    pub log_format: String,
    /// The kubelet's root directory.
    pub kubelet_root_dir: String,
    /// Host directory for the data root.
    pub csi_data_dir: String,
    /// `--use-token-request`.
    pub use_token_request: Cond,
    /// `--continue-on-not-ready`.
    pub continue_on_not_ready: Cond,
    /// `--kube-api-qps=<value>` when present.
    pub kube_api_qps: (Cond, String),
    /// `--kube-api-burst=<value>` when present.
    pub kube_api_burst: (Cond, String),
    /// `--pod-readiness-gate=<gate>`, one per entry (the Go driver's gate syntax).
    pub pod_readiness_gates: Vec<String>,
    /// `--gate-backoff-<name>=<value>` for each `(name, value)`: duration, factor, jitter, cap.
    pub gate_backoff: Vec<(String, String)>,
    /// `--go-defaults`: the Go driver's file names and duration for volumes that name none.
    pub go_defaults: bool,
    /// Metrics endpoint (argument + container port).
    pub metrics: Cond,
    /// Metrics port.
    pub metrics_port: i32,
    /// livenessprobe sidecar port.
    pub health_port: i32,
    /// Driver container resources.
    pub resources: ResourceRequirements,
    /// Pod node selector.
    pub node_selector: BTreeMap<String, String>,
    /// Pod tolerations.
    pub tolerations: Vec<Toleration>,
    /// Pod priority class.
    pub priority_class_name: Option<String>,
}

fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Quantity((*v).to_owned())))
        .collect()
}

/// The driver container's memory limit, MiB. The tmpfs holding the volumes' keys and
/// certificates counts against it (tmpfs pages are charged to the container that writes
/// them), so its size is derived from this figure: see [`TMPFS_SIZE_MIB`].
pub const DRIVER_MEMORY_LIMIT_MIB: u32 = 64;

/// `--tmpfs-size` of the driver, MiB: half the memory limit, leaving the other half for the
/// process (B4: 20.9 MiB resident with 1,000 volumes), so a full tmpfs cannot push the
/// driver past its limit. A volume's files take a few KiB: 32 MiB holds thousands.
pub const TMPFS_SIZE_MIB: u32 = DRIVER_MEMORY_LIMIT_MIB / 2;

/// Driver container requests and limits. From `cargo xtask bench` (B4: 11.5 MiB resident idle,
/// 20.9 MiB with 1,000 managed volumes; B5: no measurable idle CPU). The request covers 1,000
/// volumes with headroom; the limit leaves room for a burst of RSA generations and TLS buffers.
/// Revisit when the benchmark figures change.
pub fn driver_resources() -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(quantities(&[("cpu", "10m"), ("memory", "32Mi")])),
        limits: Some(quantities(&[(
            "memory",
            &format!("{DRIVER_MEMORY_LIMIT_MIB}Mi"),
        )])),
        ..Default::default()
    }
}

/// Requests and limits of each upstream sidecar (small Go programs that idle).
fn sidecar_resources() -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(quantities(&[("cpu", "5m"), ("memory", "16Mi")])),
        limits: Some(quantities(&[("memory", "48Mi")])),
        ..Default::default()
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            namespace: NAMESPACE.to_owned(),
            driver_name: DRIVER_NAME.to_owned(),
            image: format!("{IMAGE_REPOSITORY}:{}", env!("CARGO_PKG_VERSION")),
            image_pull_policy: "IfNotPresent".to_owned(),
            registrar_image: format!("{REGISTRAR_REPOSITORY}:{REGISTRAR_TAG}"),
            registrar_pull_policy: "IfNotPresent".to_owned(),
            liveness_image: format!("{LIVENESS_REPOSITORY}:{LIVENESS_TAG}"),
            liveness_pull_policy: "IfNotPresent".to_owned(),
            image_pull_secrets: None,
            log_level: "info".to_owned(),
            log_format: "text".to_owned(),
            kubelet_root_dir: KUBELET_ROOT_DIR.to_owned(),
            csi_data_dir: CSI_DATA_DIR.to_owned(),
            use_token_request: Cond::Off,
            continue_on_not_ready: Cond::Off,
            kube_api_qps: (Cond::Off, String::new()),
            kube_api_burst: (Cond::Off, String::new()),
            pod_readiness_gates: vec![],
            gate_backoff: vec![],
            go_defaults: false,
            metrics: Cond::On,
            metrics_port: METRICS_PORT,
            health_port: HEALTH_PORT,
            resources: driver_resources(),
            node_selector: [("kubernetes.io/os".to_owned(), "linux".to_owned())].into(),
            // A Pod with a cert-manager volume can only start on a node that runs the driver. Pods
            // that tolerate a taint land on tainted nodes, so the driver tolerates every taint.
            tolerations: vec![Toleration {
                operator: Some("Exists".to_owned()),
                ..Default::default()
            }],
            priority_class_name: None,
        }
    }
}

fn labels() -> BTreeMap<String, String> {
    [("app.kubernetes.io/name".to_owned(), APP.to_owned())].into()
}

/// The DaemonSet's selector: the Go chart's (`app: cert-manager-csi-driver`), so label selectors
/// written for the Go driver's Pods keep matching, and a DaemonSet whose selector (immutable)
/// came from the Go chart can be updated rather than replaced.
pub fn selector_labels() -> BTreeMap<String, String> {
    [("app".to_owned(), APP.to_owned())].into()
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

/// The driver's own namespace, labelled for Pod Security Admission: the DaemonSet is privileged.
pub fn namespace(s: &Settings) -> Namespace {
    let mut m = meta(&s.namespace, None);
    if let Some(l) = m.labels.as_mut() {
        l.insert(
            "pod-security.kubernetes.io/enforce".to_owned(),
            "privileged".to_owned(),
        );
    }
    Namespace {
        metadata: m,
        ..Default::default()
    }
}

/// The driver's ServiceAccount.
pub fn service_account(s: &Settings) -> ServiceAccount {
    ServiceAccount {
        metadata: meta(APP, Some(&s.namespace)),
        ..Default::default()
    }
}

/// Which optional features the driver's ClusterRole must allow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoleFeatures {
    /// `--use-token-request`: requests are created with the Pod's own token, so the driver's
    /// identity needs no `create` on certificaterequests.
    pub token_request: bool,
    /// Readiness gates (`--pod-readiness-gate`) or `${POD_IP}`: a node-scoped Pod watch.
    pub pod_readiness: bool,
    /// `--trust-bundle-configmaps`: trust bundles from ConfigMaps (trust-manager's targets).
    pub trust_bundle_configmaps: bool,
}

/// Verbs of the driver's identity on `cert-manager.io` certificaterequests: `create` (unless
/// the Pod's token creates them), `list` + `watch` (the node-scoped watch), `delete` (stale
/// requests). No `get`: every read comes from the watch.
pub fn certificate_request_verbs(token_request: bool) -> Vec<String> {
    let mut verbs = vec![];
    if !token_request {
        verbs.push("create");
    }
    verbs.extend(["list", "watch", "delete"]);
    strings(&verbs)
}

/// Verbs on `events.k8s.io` events: kube's event recorder creates an Event and patches it
/// when it repeats (aggregation).
pub const EVENT_VERBS: &[&str] = &["create", "patch"];
/// Verbs on core Pods for the readiness-gate Pod watch (node-scoped list + watch, and get).
pub const POD_VERBS: &[&str] = &["get", "list", "watch"];

/// Verbs on `certificates.k8s.io` clustertrustbundles: the one cluster-wide watch of the
/// trust bundle sources (every authenticated user may read them; listed for clusters whose
/// RBAC does not say so).
pub const CLUSTER_TRUST_BUNDLE_VERBS: &[&str] = &["list", "watch"];
/// Verbs on core ConfigMaps with `--trust-bundle-configmaps`: the labelled watch per
/// namespace, and a get of one that is not labelled (to say why it is refused).
pub const CONFIGMAP_VERBS: &[&str] = &["get", "list", "watch"];

/// The rules of the driver's ClusterRole; see [`RoleFeatures`].
pub fn driver_rules(f: RoleFeatures) -> Vec<PolicyRule> {
    let rule = |group: &str, resource: &str, verbs: Vec<String>| PolicyRule {
        api_groups: Some(strings(&[group])),
        resources: Some(strings(&[resource])),
        verbs,
        ..Default::default()
    };
    let mut rules = vec![
        rule(
            "cert-manager.io",
            "certificaterequests",
            certificate_request_verbs(f.token_request),
        ),
        rule("events.k8s.io", "events", strings(EVENT_VERBS)),
        rule(
            "certificates.k8s.io",
            "clustertrustbundles",
            strings(CLUSTER_TRUST_BUNDLE_VERBS),
        ),
    ];
    if f.trust_bundle_configmaps {
        rules.push(rule("", "configmaps", strings(CONFIGMAP_VERBS)));
    }
    // Last: the readiness-gate component takes the Pod rule from the end.
    if f.pod_readiness {
        rules.push(rule("", "pods", strings(POD_VERBS)));
    }
    rules
}

/// Least privilege: only the verbs the driver's code uses (a test greps the client calls).
pub fn cluster_role(f: RoleFeatures) -> ClusterRole {
    ClusterRole {
        metadata: meta(APP, None),
        rules: Some(driver_rules(f)),
        ..Default::default()
    }
}

/// Binds [`cluster_role`] to the driver's ServiceAccount.
pub fn cluster_role_binding(s: &Settings) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: meta(APP, None),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: "ClusterRole".to_owned(),
            name: APP.to_owned(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_owned(),
            name: APP.to_owned(),
            namespace: Some(s.namespace.clone()),
            ..Default::default()
        }]),
    }
}

/// Name of the ClusterRole that token-request mode needs bound to the Pods' ServiceAccounts.
pub const REQUESTER_ROLE: &str = "cert-manager-csi-driver-requester";

/// With `--use-token-request` the request is created with the Pod's ServiceAccount token, so
/// that ServiceAccount needs `create` (bind this with a RoleBinding per namespace).
pub fn requester_cluster_role() -> ClusterRole {
    ClusterRole {
        metadata: meta(REQUESTER_ROLE, None),
        rules: Some(vec![PolicyRule {
            api_groups: Some(strings(&["cert-manager.io"])),
            resources: Some(strings(&["certificaterequests"])),
            verbs: strings(&["create"]),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

/// The CSIDriver object: inline ephemeral volumes only, Pod info on mount, and `attachRequired`
/// left unset as the Go chart leaves it (immutable: so that an upgrade over a Go install patches
/// the object; the kubelet never attaches Ephemeral volumes); with
/// `token_request`, the kubelet hands the Pod's ServiceAccount token on every (re)publish.
pub fn csi_driver(s: &Settings, token_request: bool) -> CSIDriver {
    let mut spec = CSIDriverSpec {
        pod_info_on_mount: Some(true),
        volume_lifecycle_modes: Some(strings(&["Ephemeral"])),
        ..Default::default()
    };
    if token_request {
        spec.token_requests = Some(vec![token_request_entry()]);
        spec.requires_republish = Some(true);
    }
    CSIDriver {
        metadata: meta(&s.driver_name, None),
        spec,
    }
}

fn token_request_entry() -> TokenRequest {
    TokenRequest {
        audience: String::new(),
        expiration_seconds: Some(3600),
    }
}

fn cond_push(out: &mut Vec<String>, cond: &Cond, arg: String) {
    match cond {
        Cond::On => out.push(arg),
        Cond::Off => {}
    }
}

fn host_path(name: &str, path: String, type_: &str) -> Volume {
    Volume {
        name: name.to_owned(),
        host_path: Some(HostPathVolumeSource {
            path,
            type_: Some(type_.to_owned()),
        }),
        ..Default::default()
    }
}

fn mount(name: &str, path: &str, propagation: Option<&str>) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        mount_propagation: propagation.map(str::to_owned),
        ..Default::default()
    }
}

fn port(name: &str, number: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_owned()),
        container_port: number,
        protocol: Some("TCP".to_owned()),
        ..Default::default()
    }
}

/// A probe of the livenessprobe sidecar's `/healthz` (which calls the driver's CSI `Probe`).
fn healthz_probe(period_seconds: i32, failure_threshold: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/healthz".to_owned()),
            port: IntOrString::String("healthz".to_owned()),
            ..Default::default()
        }),
        timeout_seconds: Some(5),
        period_seconds: Some(period_seconds),
        failure_threshold: Some(failure_threshold),
        ..Default::default()
    }
}

/// Sidecars: root (they write to root-owned kubelet directories and the root-owned socket) but no
/// capabilities, no privilege escalation, read-only root filesystem.
fn sidecar_security() -> SecurityContext {
    SecurityContext {
        run_as_user: Some(0),
        allow_privilege_escalation: Some(false),
        capabilities: Some(k8s_openapi::api::core::v1::Capabilities {
            drop: Some(strings(&["ALL"])),
            ..Default::default()
        }),
        read_only_root_filesystem: Some(true),
        ..Default::default()
    }
}

/// The node plugin DaemonSet: driver + node-driver-registrar + livenessprobe.
pub fn daemon_set(s: &Settings) -> DaemonSet {
    let plugin_dir = format!("{}/plugins/{APP}", s.kubelet_root_dir);
    let pods_dir = format!("{}/pods", s.kubelet_root_dir);

    let mut args = vec![
        format!("--log-level={}", s.log_level),
        format!("--log-format={}", s.log_format),
        format!("--driver-name={}", s.driver_name),
        "--node-id=$(NODE_ID)".to_owned(),
        "--endpoint=unix:///plugin/csi.sock".to_owned(),
        format!("--data-root={DATA_ROOT_IN_CONTAINER}"),
        format!("--tmpfs-size={TMPFS_SIZE_MIB}Mi"),
    ];
    cond_push(
        &mut args,
        &s.use_token_request,
        "--use-token-request".to_owned(),
    );
    cond_push(
        &mut args,
        &s.continue_on_not_ready,
        "--continue-on-not-ready".to_owned(),
    );
    cond_push(
        &mut args,
        &s.kube_api_qps.0,
        format!("--kube-api-qps={}", s.kube_api_qps.1),
    );
    cond_push(
        &mut args,
        &s.kube_api_burst.0,
        format!("--kube-api-burst={}", s.kube_api_burst.1),
    );
    for gate in &s.pod_readiness_gates {
        args.push(format!("--pod-readiness-gate={gate}"));
    }
    for (name, value) in &s.gate_backoff {
        args.push(format!("--gate-backoff-{name}={value}"));
    }
    if s.go_defaults {
        args.push("--go-defaults".to_owned());
    }
    cond_push(
        &mut args,
        &s.metrics,
        format!("--metrics-bind-address=:{}", s.metrics_port),
    );

    let mut ports = vec![port("healthz", s.health_port)];
    match &s.metrics {
        Cond::On => ports.push(port("http-metrics", s.metrics_port)),
        Cond::Off => {}
    }

    let driver = Container {
        name: DRIVER_CONTAINER.to_owned(),
        image: Some(s.image.clone()),
        image_pull_policy: Some(s.image_pull_policy.clone()),
        args: Some(args),
        env: Some(vec![EnvVar {
            name: "NODE_ID".to_owned(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "spec.nodeName".to_owned(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }]),
        ports: Some(ports),
        liveness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/healthz".to_owned()),
                port: IntOrString::String("healthz".to_owned()),
                ..Default::default()
            }),
            initial_delay_seconds: Some(10),
            timeout_seconds: Some(5),
            period_seconds: Some(10),
            failure_threshold: Some(5),
            ..Default::default()
        }),
        // The same /healthz: the sidecar answers 500 while the driver's CSI Probe says not ready
        // (its CertificateRequest watch not synced yet, its data root not mounted, or the watch
        // broken for too long), so a rollout waits for a working driver on each node.
        readiness_probe: Some(healthz_probe(5, 1)),
        // Up to 5 minutes for the first sync before the liveness probe may restart the container.
        startup_probe: Some(healthz_probe(10, 30)),
        resources: Some(s.resources.clone()),
        security_context: Some(SecurityContext {
            privileged: Some(true),
            run_as_user: Some(0),
            read_only_root_filesystem: Some(true),
            ..Default::default()
        }),
        volume_mounts: Some(vec![
            mount("plugin-dir", "/plugin", None),
            mount("pods-mount-dir", &pods_dir, Some("Bidirectional")),
            mount(
                "csi-data-dir",
                DATA_ROOT_IN_CONTAINER,
                Some("Bidirectional"),
            ),
        ]),
        ..Default::default()
    };

    let registrar = Container {
        name: "node-driver-registrar".to_owned(),
        image: Some(s.registrar_image.clone()),
        image_pull_policy: Some(s.registrar_pull_policy.clone()),
        args: Some(vec![
            "--v=1".to_owned(),
            "--csi-address=/plugin/csi.sock".to_owned(),
            format!("--kubelet-registration-path={plugin_dir}/csi.sock"),
        ]),
        resources: Some(sidecar_resources()),
        security_context: Some(sidecar_security()),
        volume_mounts: Some(vec![
            mount("plugin-dir", "/plugin", None),
            mount("registration-dir", "/registration", None),
        ]),
        ..Default::default()
    };

    let liveness = Container {
        name: "liveness-probe".to_owned(),
        image: Some(s.liveness_image.clone()),
        image_pull_policy: Some(s.liveness_pull_policy.clone()),
        args: Some(vec![
            "--v=1".to_owned(),
            "--csi-address=/plugin/csi.sock".to_owned(),
            "--probe-timeout=3s".to_owned(),
            format!("--health-port={}", s.health_port),
        ]),
        resources: Some(sidecar_resources()),
        security_context: Some(sidecar_security()),
        volume_mounts: Some(vec![mount("plugin-dir", "/plugin", None)]),
        ..Default::default()
    };

    let mut pod_labels = labels();
    pod_labels.extend(selector_labels());
    let mut pod_meta = ObjectMeta {
        labels: Some(pod_labels),
        ..Default::default()
    };
    pod_meta.annotations = Some(
        [(
            "kubectl.kubernetes.io/default-container".to_owned(),
            DRIVER_CONTAINER.to_owned(),
        )]
        .into(),
    );

    DaemonSet {
        metadata: meta(APP, Some(&s.namespace)),
        spec: Some(DaemonSetSpec {
            selector: LabelSelector {
                match_labels: Some(selector_labels()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(pod_meta),
                spec: Some(PodSpec {
                    service_account_name: Some(APP.to_owned()),
                    containers: vec![driver, registrar, liveness],
                    image_pull_secrets: s.image_pull_secrets.clone(),
                    node_selector: Some(s.node_selector.clone()),
                    tolerations: Some(s.tolerations.clone()),
                    priority_class_name: s.priority_class_name.clone(),
                    security_context: Some(PodSecurityContext {
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".to_owned(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    volumes: Some(vec![
                        host_path("plugin-dir", plugin_dir, "DirectoryOrCreate"),
                        host_path("pods-mount-dir", pods_dir, "Directory"),
                        host_path(
                            "registration-dir",
                            format!("{}/plugins_registry", s.kubelet_root_dir),
                            "Directory",
                        ),
                        host_path("csi-data-dir", s.csi_data_dir.clone(), "DirectoryOrCreate"),
                    ]),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Examples (cert-manager CRDs are not in k8s-openapi: plain JSON values).
// ---------------------------------------------------------------------------------------------

/// Namespace of the examples.
pub const EXAMPLE_NAMESPACE: &str = "sandbox";

/// Self-signed ClusterIssuer -> CA Certificate -> CA Issuer `ca-issuer` in `sandbox`.
pub fn example_ca_issuer() -> Vec<serde_json::Value> {
    vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": EXAMPLE_NAMESPACE}}),
        json!({
            "apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
            "metadata": {"name": "selfsigned-issuer"},
            "spec": {"selfSigned": {}}
        }),
        json!({
            "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "metadata": {"name": "sandbox-ca", "namespace": EXAMPLE_NAMESPACE},
            "spec": {
                "isCA": true,
                "commonName": "sandbox-ca",
                "secretName": "sandbox-ca",
                "privateKey": {"algorithm": "ECDSA", "size": 256},
                "issuerRef": {"name": "selfsigned-issuer", "kind": "ClusterIssuer", "group": "cert-manager.io"}
            }
        }),
        json!({
            "apiVersion": "cert-manager.io/v1", "kind": "Issuer",
            "metadata": {"name": "ca-issuer", "namespace": EXAMPLE_NAMESPACE},
            "spec": {"ca": {"secretName": "sandbox-ca"}}
        }),
    ]
}

/// The Deployment from the original documentation (plus `readOnly: true`, which the driver
/// requires, as the Go driver does).
pub fn example_deployment() -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "my-csi-app", "namespace": EXAMPLE_NAMESPACE, "labels": {"app": "my-csi-app"}},
        "spec": {
            "replicas": 5,
            "selector": {"matchLabels": {"app": "my-csi-app"}},
            "template": {
                "metadata": {"labels": {"app": "my-csi-app"}},
                "spec": {
                    "containers": [{
                        "name": "my-frontend",
                        "image": "busybox",
                        "command": ["sleep", "1000000"],
                        "volumeMounts": [{"mountPath": "/tls", "name": "tls"}]
                    }],
                    "volumes": [{
                        "name": "tls",
                        "csi": {
                            "driver": DRIVER_NAME,
                            "readOnly": true,
                            "volumeAttributes": {
                                "csi.cert-manager.io/issuer-name": "ca-issuer",
                                "csi.cert-manager.io/dns-names": "my-service.sandbox.svc.cluster.local"
                            }
                        }
                    }]
                }
            }
        }
    })
}
