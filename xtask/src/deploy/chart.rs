//! The Helm chart under `deploy/chart/`.
//!
//! The templates are static files (`xtask/src/deploy/chart/templates/`), copied as they are; the
//! values file is written here from the same constants as the typed objects. The chart used to be
//! produced by rewriting the serialised objects line by line; with the Go chart's values (image
//! references from registry/namespace/name/tag/digest, repeated gate flags, OpenShift detection,
//! a PodMonitor) plain templates are shorter and easier to review than the rewriter's markers.
//! What keeps them honest is the render test: the chart rendered with its default values must
//! give exactly the typed objects of `deploy/base/` (besides Helm's bookkeeping labels), and with
//! other values the objects the typed [`Settings`](super::Settings) describe.

use anyhow::Result;

use super::signer::{SIGNER_METRICS_PORT, SIGNER_REPLICAS};
use super::{
    APP, CSI_DATA_DIR, DRIVER_NAME, GENERATED_HEADER, HEALTH_PORT, KUBELET_ROOT_DIR,
    LIVENESS_REPOSITORY, LIVENESS_TAG, LIVENESS_UPSTREAM, METRICS_PORT, REGISTRAR_REPOSITORY,
    REGISTRAR_TAG, REGISTRAR_UPSTREAM, TMPFS_SIZE_MIB,
};

/// The driver image's registry and repository namespace (`imageRegistry`, `imageNamespace`) and
/// name, which together give [`super::IMAGE_REPOSITORY`].
pub const IMAGE_REGISTRY: &str = "ghcr.io";
/// See [`IMAGE_REGISTRY`].
pub const IMAGE_NAMESPACE: &str = "cert-manager-rs";
/// See [`IMAGE_REGISTRY`].
pub const IMAGE_NAME: &str = "cert-manager-csi-driver";

/// Static chart files: (path under `deploy/chart/`, text).
const STATIC: &[(&str, &str)] = &[
    ("README.md", include_str!("chart-README.md")),
    (
        "values.schema.json",
        include_str!("chart/values.schema.json"),
    ),
    (
        "templates/_helpers.tpl",
        include_str!("chart/templates/_helpers.tpl"),
    ),
    (
        "templates/NOTES.txt",
        include_str!("chart/templates/NOTES.txt"),
    ),
    (
        "templates/grafana-dashboard.yaml",
        include_str!("chart/templates/grafana-dashboard.yaml"),
    ),
    (
        "templates/serviceaccount.yaml",
        include_str!("chart/templates/serviceaccount.yaml"),
    ),
    (
        "templates/clusterrole.yaml",
        include_str!("chart/templates/clusterrole.yaml"),
    ),
    (
        "templates/clusterrolebinding.yaml",
        include_str!("chart/templates/clusterrolebinding.yaml"),
    ),
    (
        "templates/csidriver.yaml",
        include_str!("chart/templates/csidriver.yaml"),
    ),
    (
        "templates/requester-clusterrole.yaml",
        include_str!("chart/templates/requester-clusterrole.yaml"),
    ),
    (
        "templates/daemonset.yaml",
        include_str!("chart/templates/daemonset.yaml"),
    ),
    (
        "templates/podmonitor.yaml",
        include_str!("chart/templates/podmonitor.yaml"),
    ),
    (
        "templates/prometheusrule.yaml",
        include_str!("chart/templates/prometheusrule.yaml"),
    ),
    (
        "templates/pod-signer.yaml",
        include_str!("chart/templates/pod-signer.yaml"),
    ),
];

/// Files of the chart, by path relative to `deploy/chart/`.
pub fn files() -> Result<Vec<(String, String)>> {
    let mut out = vec![
        ("Chart.yaml".to_owned(), chart_yaml()),
        ("values.yaml".to_owned(), values_yaml()),
        (
            "files/prometheus-rules.yaml".to_owned(),
            super::monitoring::rules_yaml()?,
        ),
        (
            "files/grafana-dashboard.json".to_owned(),
            format!(
                "{}\n",
                serde_json::to_string_pretty(&super::monitoring::dashboard())?
            ),
        ),
    ];
    for (path, text) in STATIC {
        let text = if path.starts_with("templates/") {
            format!("{}{text}", template_header())
        } else {
            (*text).to_owned()
        };
        out.push(((*path).to_owned(), text));
    }
    Ok(out)
}

fn template_header() -> &'static str {
    "{{- /* Copied by `cargo xtask deploy` from xtask/src/deploy/chart/templates/: edit it there. */ -}}\n"
}

/// Where the project lives (Chart.yaml `home` and `sources`, Artifact Hub links).
pub const PROJECT_URL: &str = "https://github.com/cert-manager-rs/csi-driver";

fn chart_yaml() -> String {
    let version = env!("CARGO_PKG_VERSION");
    // Artifact Hub lists the images a chart deploys (for its security scan) and marks
    // pre-releases; a `-dev` or `-rc.N` version is one.
    let prerelease = version.contains('-');
    let image = |name: &str, reference: &str| {
        format!("    - name: {name}\n      image: {IMAGE_REGISTRY}/{IMAGE_NAMESPACE}/{reference}\n")
    };
    let images = [
        image(IMAGE_NAME, &format!("{IMAGE_NAME}:{version}")),
        image(
            last_segment(REGISTRAR_REPOSITORY),
            &format!("{}:{REGISTRAR_TAG}", last_segment(REGISTRAR_REPOSITORY)),
        ),
        image(
            last_segment(LIVENESS_REPOSITORY),
            &format!("{}:{LIVENESS_TAG}", last_segment(LIVENESS_REPOSITORY)),
        ),
    ]
    .concat();
    format!(
        "{GENERATED_HEADER}apiVersion: v2\n\
         name: {APP}\n\
         description: \"cert-manager CSI driver (Rust): a per-Pod private key and certificate in an inline CSI volume, signed by cert-manager.\"\n\
         type: application\n\
         version: {version}\n\
         appVersion: \"{version}\"\n\
         kubeVersion: \">= 1.25.0-0\"\n\
         home: {PROJECT_URL}\n\
         sources:\n- {PROJECT_URL}\n\
         maintainers:\n- name: cert-manager-rs maintainers\n  url: {PROJECT_URL}\n\
         keywords:\n- cert-manager\n- csi\n- tls\n\
         annotations:\n\
         \x20 artifacthub.io/license: Apache-2.0\n\
         \x20 artifacthub.io/category: security\n\
         \x20 artifacthub.io/alternativeName: csi-driver\n\
         \x20 artifacthub.io/prerelease: \"{prerelease}\"\n\
         \x20 artifacthub.io/images: |\n{images}\
         \x20 artifacthub.io/links: |\n\
         \x20   - name: Documentation\n\
         \x20     url: {PROJECT_URL}/tree/main/docs\n\
         \x20   - name: Migrating from the Go driver\n\
         \x20     url: {PROJECT_URL}/blob/main/docs/migrate.md\n"
    )
}

/// The registrar's and livenessprobe's repositories without their registry, for `name`.
fn last_segment(repository: &str) -> &str {
    repository.rsplit('/').next().unwrap_or(repository)
}

fn values_yaml() -> String {
    let registrar_name = last_segment(REGISTRAR_REPOSITORY);
    let liveness_name = last_segment(LIVENESS_REPOSITORY);
    format!(
        r#"{GENERATED_HEADER}# Values of the cert-manager CSI driver chart: every value of the Go driver's chart (v0.16.0)
# with its meaning, plus this driver's own. Defaults give exactly the manifests in deploy/base/;
# where a default differs from the Go chart's, the comment says why. values.schema.json rejects
# unknown keys and wrong types.

# Registry and repository namespace of the images whose `repository` is empty:
# [imageRegistry/][imageNamespace/]name. (Go chart: quay.io and jetstack, where its images live.)
imageRegistry: {IMAGE_REGISTRY}
imageNamespace: {IMAGE_NAMESPACE}

image:
  # Full repository (overrides imageRegistry/imageNamespace/name when set).
  repository: ""
  # Image name, under imageRegistry/imageNamespace.
  name: {IMAGE_NAME}
  # Tag; empty: the chart's appVersion. `digest: sha256:...` pins it (repository:tag@digest).
  # tag: ""
  # digest: ""
  # Deprecated (as in the Go chart): a registry put in front of the repository.
  # registry: ""
  pullPolicy: IfNotPresent

# The node-driver-registrar sidecar, upstream's
# {REGISTRAR_UPSTREAM}.
# As in the Go chart, an empty repository is imageRegistry/imageNamespace/name: the release
# copies upstream's image there, and a mirror gets it with the driver's. Set `repository` to
# take it from elsewhere.
nodeDriverRegistrarImage:
  repository: ""
  name: {registrar_name}
  # Used when neither tag nor digest is set.
  _defaultReference: ":{REGISTRAR_TAG}"
  pullPolicy: IfNotPresent

# The livenessprobe sidecar, upstream's {LIVENESS_UPSTREAM}: serves
# /healthz by calling the driver's CSI Probe. Found as the registrar is.
livenessProbeImage:
  repository: ""
  name: {liveness_name}
  _defaultReference: ":{LIVENESS_TAG}"
  pullPolicy: IfNotPresent

# Secrets for pulling the images, e.g. [{{name: my-registry}}].
imagePullSecrets: []

# Labels added to every object.
commonLabels: {{}}

app:
  # --log-level: error, warn, info, debug, trace, or a klog -v number (the Go chart's default 1 is
  # info here).
  logLevel: info
  # --log-format: text or json.
  logFormat: text
  # The kubelet's root directory (--root-dir) on the nodes.
  kubeletRootDir: {KUBELET_ROOT_DIR}
  driver:
    # Name of the CSI driver, as Pods reference it in volumes[].csi.driver.
    name: {DRIVER_NAME}
    # Create CertificateRequests with the Pod's ServiceAccount token (CSIDriver tokenRequests +
    # requiresRepublish). The Pods' ServiceAccounts then need `create` on certificaterequests:
    # bind the ClusterRole cert-manager-csi-driver-requester in their namespaces; the driver's
    # own role loses `create`.
    useTokenRequest: false
    # Mount a volume before its certificate is issued (files appear later). Required by
    # podReadinessGates.
    continueOnNotReady: false
    # Kubernetes API client QPS and burst (0: the driver's default).
    kubernetesAPIQPS: 0
    kubernetesAPIBurst: 0
    # Issue only when every gate holds (--pod-readiness-gate, one per entry):
    #   pod-ip:any|ipv4|ipv6, pod-condition:Type[=True|False|Unknown], pod-annotation:key
    # Grants the driver get/list/watch on Pods.
    podReadinessGates: []
    # Let volumes take their trust bundle from a ConfigMap in the Pod's namespace
    # (csi.cert-manager.io/trust-bundle-configmap, e.g. a trust-manager Bundle's target):
    # --trust-bundle-configmaps, and get/list/watch on configmaps in the driver's role.
    trustBundleConfigMaps: false
    # Backoff between gate checks; only the keys set are rendered (unlike the Go chart, 0 too):
    #   duration: 1s, factor: 2.0, jitter: 0.5, cap: 10s (the driver's defaults).
    gateBackoff: {{}}
    # Host directory of the driver's data root. Not under /tmp: systemd-tmpfiles cleans /tmp
    # (Go driver issue #78). Set /tmp/cert-manager-csi-driver to take over the Go chart's volumes.
    csiDataDir: {CSI_DATA_DIR}
    # --go-defaults: volumes that name no files or duration get the Go driver's tls.crt, tls.key,
    # ca.crt and 2160h (docs/migrate.md).
    goDefaults: false
    # --tmpfs-size: the tmpfs holding every volume's keys and certificates, a whole number of Mi
    # or Gi. Its pages are charged to the driver container, so the memory limit is derived from
    # it (twice it) unless resources.limits.memory is set. A volume's files take a few KiB.
    tmpfsSize: {TMPFS_SIZE_MIB}Mi
    # CSIDriver spec.seLinuxMount: the kubelet passes the Pod's SELinux label as a context= mount
    # option and the driver mounts the volume with it (docs/install.md, SELinux nodes). Off, as
    # in the Go chart.
    seLinuxMount: false
  livenessProbe:
    # Port of the livenessprobe sidecar's /healthz (the driver's liveness, readiness and startup
    # probes).
    port: {HEALTH_PORT}

metrics:
  # Serve Prometheus metrics on the port below.
  enabled: true
  port: {METRICS_PORT}
  # A PodMonitor (Prometheus Operator); ignored when metrics are off.
  podmonitor:
    enabled: false
    # Namespace of the PodMonitor (default: the release's).
    # namespace: monitoring
    # The PodMonitor's `prometheus` label.
    prometheusInstance: default
    interval: 60s
    scrapeTimeout: 30s
    labels: {{}}
    annotations: {{}}
    # true (the Go chart: false): the driver's own `namespace` and `pod` labels name the
    # workload's Pod and must win over the scrape target's (docs/metrics.md).
    honorLabels: true
    # Extra fields of the scrape endpoint (relabelings, metricRelabelings, ...).
    endpointAdditionalProperties: {{}}
  # A PrometheusRule with the alerts of deploy/monitoring/ (docs/metrics.md), each with a
  # runbook_url into docs/runbooks.md.
  prometheusRule:
    enabled: false
    # namespace: monitoring
    labels: {{}}
    annotations: {{}}
  # The Grafana dashboard of deploy/monitoring/ as a ConfigMap for Grafana's dashboard sidecar
  # (the grafana and kube-prometheus-stack charts' sidecar.dashboards), which loads ConfigMaps
  # with the label below.
  grafanaDashboard:
    enabled: false
    # Namespace of the ConfigMap (default: the release's); the sidecar must watch it.
    # namespace: monitoring
    label: grafana_dashboard
    labelValue: "1"
    labels: {{}}
    # e.g. grafana_folder: cert-manager (with the sidecar's folderAnnotation)
    annotations: {{}}

# Annotations of the DaemonSet, and labels and annotations of its Pods.
daemonSetAnnotations: {{}}
podAnnotations: {{}}
podLabels: {{}}

# The DaemonSet's updateStrategy. Empty: the API's default, RollingUpdate one node at a time,
# each node waiting until its new driver is ready.
updateStrategy: {{}}

# More driver flags, after the chart's, e.g. [--key-pool-size=8] (README: every flag). A flag
# the chart renders from a value above (--tmpfs-size, --log-level, ...) is refused here.
extraArgs: []

# Driver container resources. From `cargo xtask bench` (B4: driver memory with many volumes);
# the Go chart sets none. limits.memory, when not set, is twice app.driver.tmpfsSize.
resources:
  requests:
    cpu: 10m
    memory: 32Mi

# Resources of the two sidecars (small Go programs that idle).
sidecars:
  nodeDriverRegistrar:
    resources:
      requests:
        cpu: 5m
        memory: 16Mi
      limits:
        memory: 48Mi
  livenessProbe:
    resources:
      requests:
        cpu: 5m
        memory: 16Mi
      limits:
        memory: 48Mi

# Node selector of the DaemonSet.
nodeSelector:
  kubernetes.io/os: linux

# Affinity of the driver Pods.
affinity: {{}}

# Tolerations: every taint by default, since a Pod with a cert-manager volume can only start where
# the driver runs. Set [] (the Go chart's default) or narrower tolerations to keep it off some nodes.
tolerations:
- operator: Exists

# Priority class of the driver Pods, e.g. system-node-critical.
priorityClassName: ""

# Run the driver Pods in the host's network namespace (the ports must be free on every node).
hostNetwork: false

# The PodCertificateRequest signer (docs/pod-certificates.md): a Deployment running
# cert-manager-pod-signer from the driver's image, with leader election; the objects of
# deploy/pod-signer/.
podSigner:
  enabled: false
  replicas: {SIGNER_REPLICAS}
  metricsPort: {SIGNER_METRICS_PORT}
  logLevel: info
  # Signer names that may be used (--allowed-issuers); empty: every ClusterIssuer and Issuer.
  allowedIssuers: []
  # Create CertificateRequests as the Pod's ServiceAccount; grants the signer `impersonate` on
  # ServiceAccounts (read the risk in docs/pod-certificates.md first).
  impersonateServiceAccount: false
  # From `cargo xtask bench` B13.
  resources:
    requests:
      cpu: 10m
      memory: 32Mi
    limits:
      memory: 64Mi

openshift:
  securityContextConstraint:
    # Let the DaemonSet use the SecurityContextConstraints below: true, false, or detect (on
    # when the cluster serves security.openshift.io/v1).
    enabled: detect
    name: privileged
"#
    )
}
