//! The Helm chart under `deploy/chart/`, rendered from the same typed objects as the static
//! manifests.
//!
//! How: the objects are built with [`Settings`] whose variable parts are *markers* instead of
//! values, serialised to YAML, then each marker is rewritten into Go template text:
//! - `__HELM_<expr>__` inside a string: the whole scalar becomes `"...{{ .<expr> }}..."`;
//! - `__HELMIF_<expr>__` at the start of a list item: the item is wrapped in
//!   `{{- if .<expr> }} ... {{- end }}` and the marker removed;
//! - `__HELMWITH_<expr>__` anywhere under a key named like the expression's last part: the whole
//!   key is replaced by `{{- with .<expr> }} key: {{ toYaml . }} {{- end }}`;
//! - sentinel integers (ports) become `{{ .<expr> }}` unquoted, so they stay numbers.
//!
//! Rendering the chart with its default values gives the static manifests (a test checks this
//! where a Helm renderer is available).

use anyhow::{Result, bail};
use k8s_openapi::api::core::v1::{LocalObjectReference, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::{
    APP, CSI_DATA_DIR, Cond, DAEMONSET_NOTES, DRIVER_NAME, GENERATED_HEADER, HEALTH_PORT, IF,
    IMAGE_REPOSITORY, KUBELET_ROOT_DIR, LIVENESS_REPOSITORY, LIVENESS_TAG, METRICS_PORT,
    REGISTRAR_REPOSITORY, REGISTRAR_TAG, Settings, annotate, cluster_role, cluster_role_binding,
    csi_driver, daemon_set, requester_cluster_role, service_account,
};

const VALUE: &str = "__HELM_";
const WITH: &str = "__HELMWITH_";
const END: &str = "__";

/// Integers that stand for template expressions (ports are `i32` in the typed objects).
const INT_HOLES: &[(i32, &str)] = &[
    (1_909_809, "Values.app.livenessProbe.port"),
    (1_909_402, "Values.metrics.port"),
];

fn v(expr: &str) -> String {
    format!("{VALUE}{expr}{END}")
}

fn w(expr: &str) -> String {
    format!("{WITH}{expr}{END}")
}

fn chart_settings() -> Settings {
    Settings {
        namespace: v("Release.Namespace"),
        driver_name: v("Values.app.driver.name"),
        image: format!("{}:{}", v("Values.image.repository"), v("Values.image.tag")),
        image_pull_policy: v("Values.image.pullPolicy"),
        registrar_image: format!(
            "{}:{}",
            v("Values.nodeDriverRegistrarImage.repository"),
            v("Values.nodeDriverRegistrarImage.tag")
        ),
        registrar_pull_policy: v("Values.nodeDriverRegistrarImage.pullPolicy"),
        liveness_image: format!(
            "{}:{}",
            v("Values.livenessProbeImage.repository"),
            v("Values.livenessProbeImage.tag")
        ),
        liveness_pull_policy: v("Values.livenessProbeImage.pullPolicy"),
        image_pull_secrets: Some(vec![LocalObjectReference {
            name: w("Values.imagePullSecrets"),
        }]),
        log_level: v("Values.app.logLevel"),
        log_format: v("Values.app.logFormat"),
        kubelet_root_dir: v("Values.app.kubeletRootDir"),
        csi_data_dir: v("Values.app.driver.csiDataDir"),
        use_token_request: Cond::Helm("Values.app.driver.useTokenRequest"),
        continue_on_not_ready: Cond::Helm("Values.app.driver.continueOnNotReady"),
        kube_api_qps: (
            Cond::Helm("Values.app.driver.kubernetesAPIQPS"),
            v("Values.app.driver.kubernetesAPIQPS"),
        ),
        kube_api_burst: (
            Cond::Helm("Values.app.driver.kubernetesAPIBurst"),
            v("Values.app.driver.kubernetesAPIBurst"),
        ),
        metrics: Cond::Helm("Values.metrics.enabled"),
        metrics_port: 1_909_402,
        health_port: 1_909_809,
        resources: ResourceRequirements {
            requests: Some([(w("Values.resources"), Quantity(String::new()))].into()),
            ..Default::default()
        },
        node_selector: [(w("Values.nodeSelector"), String::new())].into(),
        tolerations: vec![Toleration {
            key: Some(w("Values.tolerations")),
            ..Default::default()
        }],
        priority_class_name: Some(w("Values.priorityClassName")),
    }
}

/// Files of the chart, by path relative to `deploy/chart/`.
pub fn files() -> Result<Vec<(String, String)>> {
    let s = chart_settings();
    let header = GENERATED_HEADER;
    let token_if = "{{- if .Values.app.driver.useTokenRequest }}\n";
    let plain_driver = helmify(&serde_norway::to_string(&csi_driver(&s, false))?)?;
    let token_driver = helmify(&serde_norway::to_string(&csi_driver(&s, true))?)?;
    Ok(vec![
        ("Chart.yaml".to_owned(), chart_yaml()),
        ("values.yaml".to_owned(), values_yaml()),
        ("README.md".to_owned(), CHART_README.to_owned()),
        (
            "templates/serviceaccount.yaml".to_owned(),
            format!(
                "{header}{}",
                helmify(&serde_norway::to_string(&service_account(&s))?)?
            ),
        ),
        (
            "templates/clusterrole.yaml".to_owned(),
            format!(
                "{header}{}",
                helmify(&serde_norway::to_string(&cluster_role())?)?
            ),
        ),
        (
            "templates/clusterrolebinding.yaml".to_owned(),
            format!(
                "{header}{}",
                helmify(&serde_norway::to_string(&cluster_role_binding(&s))?)?
            ),
        ),
        (
            "templates/csidriver.yaml".to_owned(),
            format!(
                "{header}{token_if}{token_driver}{{{{- else }}}}\n{plain_driver}{{{{- end }}}}\n"
            ),
        ),
        (
            "templates/requester-clusterrole.yaml".to_owned(),
            format!(
                "{header}{token_if}{}{{{{- end }}}}\n",
                helmify(&serde_norway::to_string(&requester_cluster_role())?)?
            ),
        ),
        (
            "templates/daemonset.yaml".to_owned(),
            format!(
                "{header}{}",
                helmify(&annotate(
                    &serde_norway::to_string(&daemon_set(&s))?,
                    DAEMONSET_NOTES
                )?)?
            ),
        ),
    ])
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// Removes YAML quoting from a scalar written by the serialiser.
fn unquote(value: &str) -> String {
    if let Some(inner) = value.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')) {
        inner.replace("''", "'")
    } else if let Some(inner) = value.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
        inner.replace("\\\"", "\"").replace("\\\\", "\\")
    } else {
        value.to_owned()
    }
}

/// Finds `<start>EXPR__` in `text`; returns (byte offset, expr).
fn find_marker<'a>(text: &'a str, start: &str) -> Option<(usize, &'a str)> {
    let at = text.find(start)?;
    let rest = &text[at + start.len()..];
    let end = rest.find(END)?;
    Some((at, &rest[..end]))
}

/// Rewrites markers in serialised YAML into Go template text (see the module docs).
pub fn helmify(yaml: &str) -> Result<String> {
    let mut lines: Vec<String> = yaml.lines().map(str::to_owned).collect();

    // 1. `with` blocks: replace the whole key.
    while let Some(l) = lines.iter().position(|x| x.contains(WITH)) {
        let Some((_, expr)) = find_marker(&lines[l], WITH) else {
            bail!("unterminated marker in `{}`", lines[l]);
        };
        let expr = expr.to_owned();
        let key = expr.rsplit('.').next().unwrap_or(&expr).to_owned();
        let Some(k) = (0..=l)
            .rev()
            .find(|&i| lines[i].trim_start().starts_with(&format!("{key}:")))
        else {
            bail!("marker for `{expr}` is not under a `{key}:` key");
        };
        let ind = indent_of(&lines[k]);
        let mut end = k;
        while end + 1 < lines.len() {
            let next = &lines[end + 1];
            let ni = indent_of(next);
            if ni > ind || (ni == ind && next.trim_start().starts_with("- ")) {
                end += 1;
            } else {
                break;
            }
        }
        let pad = " ".repeat(ind);
        let block = vec![
            format!("{pad}{{{{- with .{expr} }}}}"),
            format!("{pad}{key}:"),
            format!("{pad}  {{{{- toYaml . | nindent {} }}}}", ind + 2),
            format!("{pad}{{{{- end }}}}"),
        ];
        lines.splice(k..=end, block);
    }

    // 2. conditional list items.
    while let Some(l) = lines.iter().position(|x| x.contains(IF)) {
        let Some((_, expr)) = find_marker(&lines[l], IF) else {
            bail!("unterminated marker in `{}`", lines[l]);
        };
        let expr = expr.to_owned();
        // The item starts at the marker line or the nearest `- ` line above it.
        let Some(start) = (0..=l).rev().find(|&i| {
            let t = lines[i].trim_start();
            t.starts_with("- ") && (i == l || indent_of(&lines[i]) < indent_of(&lines[l]))
        }) else {
            bail!("conditional marker for `{expr}` is not in a list item");
        };
        let dash = indent_of(&lines[start]);
        let mut end = start;
        while end + 1 < lines.len() && indent_of(&lines[end + 1]) > dash {
            end += 1;
        }
        // Drop the marker from its scalar.
        let line = &lines[l];
        let Some(colon_or_dash) = scalar_start(line) else {
            bail!("cannot find the scalar holding `{expr}`");
        };
        let (head, value) = line.split_at(colon_or_dash);
        let value = unquote(value).replacen(&format!("{IF}{expr}{END}"), "", 1);
        lines[l] = format!("{head}{}", requote(&value));
        let pad = " ".repeat(dash);
        lines.insert(end + 1, format!("{pad}{{{{- end }}}}"));
        lines.insert(start, format!("{pad}{{{{- if .{expr} }}}}"));
    }

    // 3. values inside scalars: quote the whole scalar.
    for line in &mut lines {
        if !line.contains(VALUE) {
            continue;
        }
        let Some(at) = scalar_start(line) else {
            bail!("cannot find the scalar in `{line}`");
        };
        let (head, value) = line.split_at(at);
        let mut value = unquote(value);
        while let Some((pos, expr)) = find_marker(&value, VALUE) {
            let len = VALUE.len() + expr.len() + END.len();
            let expr = expr.to_owned();
            value.replace_range(pos..pos + len, &format!("{{{{ .{expr} }}}}"));
        }
        *line = format!("{head}\"{value}\"");
    }

    // 4. integers.
    let mut out = String::new();
    for line in lines {
        let mut line = line;
        for (n, expr) in INT_HOLES {
            line = line.replace(&n.to_string(), &format!("{{{{ .{expr} }}}}"));
        }
        out.push_str(&line);
        out.push('\n');
    }
    if out.contains("__HELM") {
        bail!("unprocessed marker left in chart template:\n{out}");
    }
    Ok(out)
}

/// Byte offset where the scalar value of a `key: value` or `- value` line starts.
fn scalar_start(line: &str) -> Option<usize> {
    let ind = indent_of(line);
    let body = &line[ind..];
    let body_off = if let Some(rest) = body.strip_prefix("- ") {
        // `- key: value` or `- value`
        if let Some(i) = key_colon(rest) {
            return Some(ind + 2 + i);
        }
        return Some(ind + 2);
    } else {
        ind
    };
    key_colon(&line[body_off..]).map(|i| body_off + i)
}

/// In `key: value`, the offset of `value` (keys here never contain `: `).
fn key_colon(text: &str) -> Option<usize> {
    if text.starts_with('\'') || text.starts_with('"') {
        return None;
    }
    text.find(": ").map(|i| i + 2)
}

fn requote(value: &str) -> String {
    let plain_ok = !value.is_empty()
        && !value.contains(": ")
        && !value.contains(" #")
        && !value.starts_with([
            '\'', '"', '{', '[', '&', '*', '!', '|', '>', '%', '@', '`', '#',
        ]);
    if plain_ok {
        value.to_owned()
    } else {
        format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

fn chart_yaml() -> String {
    let version = env!("CARGO_PKG_VERSION");
    format!(
        "{GENERATED_HEADER}apiVersion: v2\n\
         name: {APP}\n\
         description: \"cert-manager CSI driver (Rust): a per-Pod private key and certificate in an inline CSI volume, signed by cert-manager.\"\n\
         type: application\n\
         version: {version}\n\
         appVersion: \"{version}\"\n\
         kubeVersion: \">= 1.25.0-0\"\n\
         keywords:\n- cert-manager\n- csi\n- tls\n"
    )
}

fn values_yaml() -> String {
    let version = env!("CARGO_PKG_VERSION");
    format!(
        r#"{GENERATED_HEADER}# Values of the cert-manager CSI driver chart. Defaults give exactly the manifests in deploy/.

image:
  # -- Driver image repository.
  repository: {IMAGE_REPOSITORY}
  # -- Driver image tag.
  tag: "{version}"
  # -- Pull policy of the driver image.
  pullPolicy: IfNotPresent

# -- Upstream node-driver-registrar sidecar.
nodeDriverRegistrarImage:
  repository: {REGISTRAR_REPOSITORY}
  tag: {REGISTRAR_TAG}
  pullPolicy: IfNotPresent

# -- Upstream livenessprobe sidecar (serves /healthz by calling the driver's CSI Probe).
livenessProbeImage:
  repository: {LIVENESS_REPOSITORY}
  tag: {LIVENESS_TAG}
  pullPolicy: IfNotPresent

# -- Secrets for pulling the images, e.g. [{{name: my-registry}}].
imagePullSecrets: []

app:
  # -- Log level: error, warn, info, debug, trace, or a number 0-5.
  logLevel: info
  # -- Log format: text or json.
  logFormat: text
  # -- The kubelet's root directory (--root-dir) on the nodes.
  kubeletRootDir: {KUBELET_ROOT_DIR}
  driver:
    # -- Name of the CSI driver, as Pods reference it in volumes[].csi.driver.
    name: {DRIVER_NAME}
    # -- Create CertificateRequests with the Pod's ServiceAccount token (CSIDriver tokenRequests +
    # requiresRepublish). The Pods' ServiceAccounts then need `create` on certificaterequests:
    # bind the ClusterRole cert-manager-csi-driver-requester in their namespaces.
    useTokenRequest: false
    # -- Let Pods start before their certificate is issued (files appear later).
    continueOnNotReady: false
    # -- Host directory of the driver's data root. Not under /tmp: systemd-tmpfiles cleans /tmp
    # (Go driver issue #78). Set /tmp/cert-manager-csi-driver to take over the Go chart's volumes.
    csiDataDir: {CSI_DATA_DIR}
    # -- Kubernetes API client QPS (0 = the driver's default).
    kubernetesAPIQPS: 0
    # -- Kubernetes API client burst (0 = the driver's default).
    kubernetesAPIBurst: 0
  livenessProbe:
    # -- Port of the livenessprobe sidecar's /healthz.
    port: {HEALTH_PORT}

metrics:
  # -- Serve Prometheus metrics on the port below.
  enabled: true
  port: {METRICS_PORT}

# -- Driver container resources. From `cargo xtask bench` (B4: driver memory with many volumes).
resources:
  requests:
    cpu: 10m
    memory: 32Mi
  limits:
    memory: 64Mi

# -- Node selector of the DaemonSet.
nodeSelector:
  kubernetes.io/os: linux

# -- Tolerations: every taint by default, since a Pod with a cert-manager volume can only start where
# the driver runs. Set [] (the Go chart's default) or narrower tolerations to keep it off some nodes.
tolerations:
- operator: Exists

# -- Priority class of the driver Pods, e.g. system-node-critical.
priorityClassName: ""
"#
    )
}

const CHART_README: &str = include_str!("chart-README.md");
