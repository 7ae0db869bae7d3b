//! `deploy/monitoring/`: a PodMonitor, a Service-less Prometheus scrape configuration, the alert
//! rules (as a rules file for Prometheus and `promtool`, and as a PrometheusRule) and a Grafana
//! dashboard, all built from the metric names the driver exports (listed in `docs/metrics.md`,
//! which a test compares with the code).
//!
//! Label convention (docs/metrics.md): the driver's `namespace` and `pod` labels name the
//! workload's Pod, so scrapes keep them (`honorLabels: true`) and add the driver's node as `node`.

use anyhow::Result;
use serde_json::{Value, json};

use super::{APP, DRIVER_CONTAINER, GENERATED_HEADER, NAMESPACE};

/// `job` of the driver's scrape target (the PodMonitor's jobLabel value, the scrape config's
/// job name).
pub const JOB: &str = APP;

/// How long past its renewal time a certificate may be before its renewal counts as failing.
const RENEWAL_GRACE_SECONDS: u32 = 600;

/// Where the runbooks live: each alert's `runbook_url` is this plus `#` and the alert's heading
/// in `docs/runbooks.md` (GitHub's anchor: the heading lowercased).
pub const RUNBOOKS_URL: &str =
    "https://github.com/cert-manager-rs/csi-driver/blob/main/docs/runbooks.md";

/// Share of the data root (the tmpfs every volume on a node shares) in use above which
/// `CertManagerCSIDataRootFilling` fires.
const DATA_ROOT_RATIO: f64 = 0.8;

/// Share of a driver's Kubernetes API requests answered 429 or 5xx, or not answered at all,
/// above which `CertManagerCSIKubernetesAPIErrors` fires.
const API_ERROR_RATIO: f64 = 0.1;

fn alert(
    name: &str,
    expr: &str,
    for_: &str,
    severity: &str,
    summary: &str,
    description: &str,
) -> Value {
    json!({
        "alert": name,
        "expr": expr,
        "for": for_,
        "labels": {"severity": severity},
        "annotations": {
            "summary": summary,
            "description": description,
            "runbook_url": format!("{RUNBOOKS_URL}#{}", name.to_lowercase()),
        },
    })
}

/// The alert rules (a Prometheus rules file's `groups`).
pub fn rules() -> Value {
    let expiry = "certmanager_csi_certificate_request_expiration_timestamp_seconds";
    let renewal = "certmanager_csi_certificate_request_renewal_timestamp_seconds";
    let by_issuer = "namespace, issuer_name, issuer_kind, issuer_group";
    json!({"groups": [{
        "name": "cert-manager-csi-driver",
        "rules": [
            alert(
                "CertManagerCSICertificateRenewalFailing",
                &format!(
                    "({renewal} < time() - {RENEWAL_GRACE_SECONDS})\nand ({expiry} > time())"
                ),
                "5m", "warning",
                "Certificate of Pod {{ $labels.namespace }}/{{ $labels.pod }} is in its last third and is not being renewed",
                "The certificate mounted in Pod {{ $labels.namespace }}/{{ $labels.pod }} (issuer {{ $labels.issuer_kind }} {{ $labels.issuer_name }}) passed its renewal time (two thirds of its lifetime, or renew-before) more than 10 minutes ago and still has not been renewed. Check the Pod's Events, the CertificateRequests in its namespace and the issuer.",
            ),
            alert(
                "CertManagerCSICertificateExpired",
                &format!("{expiry} <= time()"),
                "1m", "critical",
                "Certificate of Pod {{ $labels.namespace }}/{{ $labels.pod }} has expired",
                "The certificate mounted in Pod {{ $labels.namespace }}/{{ $labels.pod }} (issuer {{ $labels.issuer_kind }} {{ $labels.issuer_name }}) has expired and renewal keeps failing; TLS peers will reject it.",
            ),
            alert(
                "CertManagerCSIIssuanceErrors",
                &format!(
                    "sum by ({by_issuer}) (rate(certmanager_csi_issue_errors_total[15m]))\n\
                     / sum by ({by_issuer}) (rate(certmanager_csi_issue_requests_total[15m]))\n\
                     > 0.5"
                ),
                "15m", "warning",
                "More than half of the issuances for {{ $labels.issuer_kind }} {{ $labels.issuer_name }} in {{ $labels.namespace }} fail",
                "{{ $value | humanizePercentage }} of the issuance attempts in namespace {{ $labels.namespace }} with issuer {{ $labels.issuer_kind }} {{ $labels.issuer_name }} failed over the last 15 minutes. Check the CertificateRequests in that namespace (denied, failed) and the issuer's status.",
            ),
            alert(
                "CertManagerCSIDriverNotScraped",
                &format!("up{{job=\"{JOB}\"}} == 0 or absent(up{{job=\"{JOB}\"}})"),
                "15m", "warning",
                "A cert-manager CSI driver has not been scraped for 15 minutes",
                "Prometheus could not scrape the cert-manager CSI driver {{ with $labels.instance }}at {{ . }}{{ else }}(no driver target exists){{ end }}. Without its metrics, failing renewals go unnoticed. Check the DaemonSet's Pods and the PodMonitor or scrape configuration.",
            ),
            alert(
                "CertManagerCSIKeyPoolEmpty",
                "max_over_time(certmanager_csi_key_pool_available[30m]) == 0\n\
                 and on(job, instance) increase(certmanager_csi_key_pool_misses_total[30m]) > 0\n\
                 and on(job, instance) certmanager_csi_key_pool_refills_total > 0",
                "5m", "info",
                "The key pool of the driver at {{ $labels.instance }} has been empty for 30 minutes",
                "Every key taken from the pool in the last 30 minutes was generated inline, slowing NodePublishVolume: the pool refills slower than Pods start. Raise --key-pool-size or the driver's CPU limit.",
            ),
            // A refresh found a volume's trust bundle source gone or refused: the volume keeps
            // its last good bundle, which stops following the source (a CA rotation).
            alert(
                "CertManagerCSITrustBundleMissing",
                "sum by (job, instance, kind, source) (increase(certmanager_csi_trust_bundle_missing_total[15m])) > 0",
                "0m", "warning",
                "The trust bundle source {{ $labels.kind }} {{ $labels.source }} of volumes on the driver at {{ $labels.instance }} is missing or refused",
                "Volumes on the driver at {{ $labels.instance }} use the trust bundle source {{ $labels.kind }} {{ $labels.source }}, which is gone or holds something other than CA certificates. They keep their last good bundle, which no longer follows the source: after a CA rotation their Pods may reject new peers. Restore the source, or check the TrustBundleMissing Events on the Pods.",
            ),
            // `rest_client_requests_total` counts every API call by status code; `<error>` is a
            // call that got no response (refused, reset, timed out).
            alert(
                "CertManagerCSIKubernetesAPIErrors",
                &format!(
                    "sum by (job, instance, node) (rate(rest_client_requests_total{{job=\"{JOB}\",code=~\"429|5..|<error>\"}}[10m]))\n\
                     / sum by (job, instance, node) (rate(rest_client_requests_total{{job=\"{JOB}\"}}[10m]))\n\
                     > {API_ERROR_RATIO}"
                ),
                "10m", "warning",
                "The Kubernetes API fails {{ $value | humanizePercentage }} of the requests of the driver at {{ $labels.instance }}",
                "{{ $value | humanizePercentage }} of the Kubernetes API requests of the cert-manager CSI driver at {{ $labels.instance }} over the last 10 minutes were throttled (429), failed (5xx) or got no answer. It cannot create or watch CertificateRequests reliably: publishes fail with UNAVAILABLE and renewals are delayed. Check rest_client_requests_total by code, the API server and its priority and fairness settings.",
            ),
            alert(
                "CertManagerCSIDataRootFilling",
                &format!(
                    "certmanager_csi_data_root_used_bytes\n\
                     / certmanager_csi_data_root_size_bytes\n\
                     > {DATA_ROOT_RATIO}"
                ),
                "10m", "warning",
                "The data root of the driver at {{ $labels.instance }} is {{ $value | humanizePercentage }} full",
                "The tmpfs that holds every volume's keys and certificates on the node of the driver at {{ $labels.instance }} is {{ $value | humanizePercentage }} full. New volumes are refused once only the renewal reserve (--tmpfs-renewal-reserve) is left, and renewals fail when it is gone. Find the volumes that take the most (large keystores, many annotations), or raise --tmpfs-size with the memory limit.",
            ),
        ],
    }]})
}

/// The rules file (`deploy/monitoring/prometheus-rules.yaml`, and the chart's copy).
pub fn rules_yaml() -> Result<String> {
    Ok(format!(
        "{GENERATED_HEADER}{}",
        serde_norway::to_string(&rules())?
    ))
}

/// The PrometheusRule object of the static manifests.
pub fn prometheus_rule() -> Value {
    json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": APP, "namespace": NAMESPACE, "labels": {"app.kubernetes.io/name": APP}},
        "spec": rules(),
    })
}

/// The relabeling that adds the driver's node as `node`.
fn node_relabeling() -> Value {
    json!({"action": "replace", "sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"})
}

/// The PodMonitor of the static manifests (the chart's with default values).
pub fn pod_monitor() -> Value {
    json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": {
            "name": APP,
            "namespace": NAMESPACE,
            "labels": {"app.kubernetes.io/name": APP, "prometheus": "default"},
        },
        "spec": {
            "jobLabel": "app.kubernetes.io/name",
            "selector": {"matchLabels": {"app.kubernetes.io/name": APP}},
            "podMetricsEndpoints": [{
                "port": "http-metrics",
                "path": "/metrics",
                "interval": "60s",
                "scrapeTimeout": "30s",
                "honorLabels": true,
                "relabelings": [node_relabeling()],
            }],
        },
    })
}

/// A Prometheus `scrape_configs` entry that finds the driver Pods without a Service.
pub fn scrape_config() -> Value {
    json!({"scrape_configs": [{
        "job_name": JOB,
        "honor_labels": true,
        "scrape_interval": "60s",
        "scrape_timeout": "30s",
        "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": [NAMESPACE]}}],
        "relabel_configs": [
            {"action": "keep", "source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"], "regex": APP},
            {"action": "keep", "source_labels": ["__meta_kubernetes_pod_container_port_name"], "regex": "http-metrics"},
            {"action": "replace", "source_labels": ["__meta_kubernetes_pod_node_name"], "target_label": "node"},
        ],
    }]})
}

fn panel(
    id: u32,
    title: &str,
    kind: &str,
    grid: (u32, u32, u32, u32),
    targets: &[(&str, &str)],
    unit: &str,
) -> Value {
    let targets: Vec<Value> = targets
        .iter()
        .enumerate()
        .map(|(i, (expr, legend))| {
            json!({
                "refId": char::from(b'A' + u8::try_from(i).unwrap_or(0)).to_string(),
                "expr": expr,
                "legendFormat": legend,
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
            })
        })
        .collect();
    json!({
        "id": id,
        "title": title,
        "type": kind,
        "gridPos": {"x": grid.0, "y": grid.1, "w": grid.2, "h": grid.3},
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": targets,
    })
}

/// The Grafana dashboard (`deploy/monitoring/grafana-dashboard.json`).
pub fn dashboard() -> Value {
    let node = "node=~\"$node\"";
    let panels = vec![
        panel(
            1,
            "Managed volumes",
            "timeseries",
            (0, 0, 8, 8),
            &[(
                &format!("sum by (node) (certmanager_csi_managed_volume_count{{{node}}})"),
                "{{node}}",
            )],
            "short",
        ),
        panel(
            2,
            "Volumes retrying renewal / expired",
            "timeseries",
            (8, 0, 8, 8),
            &[
                (
                    &format!("sum by (node) (certmanager_csi_renewal_retrying_volumes{{{node}}})"),
                    "retrying {{node}}",
                ),
                (
                    &format!("sum by (node) (certmanager_csi_expired_certificates{{{node}}})"),
                    "expired {{node}}",
                ),
            ],
            "short",
        ),
        panel(
            3,
            "Issuances in flight",
            "timeseries",
            (16, 0, 8, 8),
            &[(
                &format!("sum by (node) (certmanager_csi_issuances_in_flight{{{node}}})"),
                "{{node}}",
            )],
            "short",
        ),
        panel(
            4,
            "Issuance attempts and errors by issuer",
            "timeseries",
            (0, 8, 12, 8),
            &[
                (
                    &format!(
                        "sum by (namespace, issuer_kind, issuer_name) (rate(certmanager_csi_issue_requests_total{{{node}}}[5m]))"
                    ),
                    "attempts {{namespace}} {{issuer_kind}}/{{issuer_name}}",
                ),
                (
                    &format!(
                        "sum by (namespace, issuer_kind, issuer_name) (rate(certmanager_csi_issue_errors_total{{{node}}}[5m]))"
                    ),
                    "errors {{namespace}} {{issuer_kind}}/{{issuer_name}}",
                ),
            ],
            "ops",
        ),
        panel(
            5,
            "NodePublishVolume latency",
            "timeseries",
            (12, 8, 12, 8),
            &[
                (
                    &format!(
                        "histogram_quantile(0.5, sum by (le) (rate(certmanager_csi_publish_duration_seconds_bucket{{{node}}}[5m])))"
                    ),
                    "p50",
                ),
                (
                    &format!(
                        "histogram_quantile(0.99, sum by (le) (rate(certmanager_csi_publish_duration_seconds_bucket{{{node}}}[5m])))"
                    ),
                    "p99",
                ),
                (
                    &format!(
                        "sum(rate(certmanager_csi_publish_duration_seconds_sum{{{node}}}[5m])) / sum(rate(certmanager_csi_publish_duration_seconds_count{{{node}}}[5m]))"
                    ),
                    "mean",
                ),
            ],
            "s",
        ),
        panel(
            6,
            "Certificates closest to expiry",
            "table",
            (0, 16, 12, 8),
            &[(
                &format!(
                    "bottomk(20, min by (namespace, pod, issuer_name) (certmanager_csi_certificate_request_expiration_timestamp_seconds{{{node}}}) - time())"
                ),
                "{{namespace}}/{{pod}}",
            )],
            "s",
        ),
        panel(
            7,
            "Overdue renewals (seconds past renewal time)",
            "table",
            (12, 16, 12, 8),
            &[(
                &format!(
                    "(time() - certmanager_csi_certificate_request_renewal_timestamp_seconds{{{node}}}) > 0"
                ),
                "{{namespace}}/{{pod}}",
            )],
            "s",
        ),
        panel(
            8,
            "Key pool",
            "timeseries",
            (0, 24, 24, 8),
            &[
                (
                    &format!("sum by (node) (certmanager_csi_key_pool_available{{{node}}})"),
                    "available {{node}}",
                ),
                (
                    &format!(
                        "sum by (node) (rate(certmanager_csi_key_pool_hits_total{{{node}}}[5m]))"
                    ),
                    "hits/s {{node}}",
                ),
                (
                    &format!(
                        "sum by (node) (rate(certmanager_csi_key_pool_misses_total{{{node}}}[5m]))"
                    ),
                    "misses/s {{node}}",
                ),
                (
                    &format!(
                        "sum by (node) (rate(certmanager_csi_key_pool_refills_total{{{node}}}[5m]))"
                    ),
                    "refills/s {{node}}",
                ),
            ],
            "short",
        ),
        panel(
            9,
            "Kubernetes API errors (429, 5xx, no answer)",
            "timeseries",
            (0, 32, 8, 8),
            &[
                (
                    &format!(
                        "sum by (node, code) (rate(rest_client_requests_total{{{node},code=~\"429|5..|<error>\"}}[5m]))"
                    ),
                    "{{code}} {{node}}",
                ),
                (
                    &format!("sum by (node) (rate(rest_client_requests_total{{{node}}}[5m]))"),
                    "all requests {{node}}",
                ),
            ],
            "reqps",
        ),
        // cAdvisor's series (the kubelet's /metrics/cadvisor): the container's working set
        // includes the tmpfs's pages, which the process's resident memory does not.
        panel(
            10,
            "Driver memory against its limit",
            "timeseries",
            (8, 32, 8, 8),
            &[
                (
                    &format!(
                        "max by (node) (container_memory_working_set_bytes{{container=\"{DRIVER_CONTAINER}\",{node}}})"
                    ),
                    "working set (process + tmpfs) {{node}}",
                ),
                (
                    &format!(
                        "max by (node) (container_spec_memory_limit_bytes{{container=\"{DRIVER_CONTAINER}\",{node}}})"
                    ),
                    "limit {{node}}",
                ),
                (
                    &format!("max by (node) (process_resident_memory_bytes{{{node}}})"),
                    "process resident {{node}}",
                ),
            ],
            "bytes",
        ),
        panel(
            11,
            "Data root (tmpfs) use",
            "timeseries",
            (16, 32, 8, 8),
            &[
                (
                    &format!("max by (node) (certmanager_csi_data_root_used_bytes{{{node}}})"),
                    "used {{node}}",
                ),
                (
                    &format!("max by (node) (certmanager_csi_data_root_size_bytes{{{node}}})"),
                    "size (--tmpfs-size) {{node}}",
                ),
            ],
            "bytes",
        ),
    ];
    json!({
        "title": "cert-manager CSI driver",
        "uid": "cert-manager-csi-driver",
        "tags": ["cert-manager", "csi"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "1m",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source"},
            {"name": "node", "type": "query", "label": "Node", "includeAll": true, "multi": true, "allValue": ".*",
             "datasource": {"type": "prometheus", "uid": "${datasource}"},
             "query": {"query": format!("label_values(up{{job=\"{JOB}\"}}, node)"), "refId": "node"},
             "refresh": 2},
        ]},
        "panels": panels,
    })
}

/// Every PromQL expression of the dashboard (for the metric-name check).
#[cfg(test)]
pub fn dashboard_queries(dashboard: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().into_iter().flatten() {
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(e) = t["expr"].as_str() {
                out.push(e.to_owned());
            }
        }
    }
    for v in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(q) = v["query"]["query"].as_str() {
            // Grafana's `label_values(<series selector>, <label>)`: the selector is PromQL.
            let selector = q
                .strip_prefix("label_values(")
                .and_then(|rest| rest.rsplit_once(','))
                .map_or(q, |(selector, _)| selector);
            out.push(selector.to_owned());
        }
    }
    out
}

/// The promtool unit tests of the rules (`deploy/monitoring/tests/rules.test.yaml`).
pub const RULES_TEST: &str = include_str!("monitoring/rules.test.yaml");
