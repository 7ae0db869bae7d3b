//! Tests of the generated deploy manifests: freshness, and the security-relevant fields read back
//! from the committed YAML into typed objects.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Container, Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::api::storage::v1::CSIDriver;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Deserialize;
use serde_json::Value;

use super::render::{Note, annotate};
use super::*;

fn root() -> PathBuf {
    crate::workspace_root()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

/// Every YAML document in `text`, as JSON values (empty documents dropped).
fn yaml_docs(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn typed<T: serde::de::DeserializeOwned>(v: &Value) -> T {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v:#}"))
}

fn one<T: serde::de::DeserializeOwned>(rel: &str, kind: &str) -> T {
    let docs = yaml_docs(&read(rel));
    assert_eq!(docs.len(), 1, "{rel} holds one object");
    assert_eq!(docs[0]["kind"], kind, "{rel}");
    typed(&docs[0])
}

fn base_daemon_set() -> DaemonSet {
    one("deploy/base/daemonset.yaml", "DaemonSet")
}

fn containers(ds: &DaemonSet) -> Vec<Container> {
    ds.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers
        .clone()
}

fn container(ds: &DaemonSet, name: &str) -> Container {
    containers(ds)
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

fn args(c: &Container) -> Vec<String> {
    c.args.clone().unwrap_or_default()
}

// ------------------------------------------------------------------------------- freshness

#[test]
fn committed_files_match_the_generator() {
    let files = generate().unwrap();
    let problems = compare(&root(), &files).unwrap();
    assert!(
        problems.is_empty(),
        "run `cargo xtask deploy`: {problems:#?}"
    );
}

#[test]
fn generation_is_deterministic() {
    assert_eq!(generate().unwrap(), generate().unwrap());
}

#[test]
fn check_names_stale_missing_and_extra_files() {
    let dir = tempfile::tempdir().unwrap();
    let files = generate().unwrap();
    write_all(dir.path(), &files).unwrap();
    assert!(compare(dir.path(), &files).unwrap().is_empty());

    let ds = dir.path().join("deploy/base/daemonset.yaml");
    let text = std::fs::read_to_string(&ds).unwrap();
    std::fs::write(&ds, text.replace("privileged: true", "privileged: false")).unwrap();
    std::fs::remove_file(dir.path().join("deploy/base/csidriver.yaml")).unwrap();
    std::fs::write(dir.path().join("deploy/base/extra.yaml"), "x: 1\n").unwrap();

    let problems = compare(dir.path(), &files).unwrap().join("\n");
    assert!(
        problems.contains("deploy/base/daemonset.yaml: differs"),
        "{problems}"
    );
    assert!(
        problems.contains("deploy/base/csidriver.yaml: missing"),
        "{problems}"
    );
    assert!(
        problems.contains("deploy/base/extra.yaml: not generated"),
        "{problems}"
    );

    // Writing again repairs everything, including removing the extra file.
    write_all(dir.path(), &files).unwrap();
    assert!(compare(dir.path(), &files).unwrap().is_empty());
    assert!(!dir.path().join("deploy/base/extra.yaml").exists());
}

#[test]
fn every_note_must_match_a_line() {
    let notes = [Note {
        anchors: &["nowhere:"],
        text: "x",
    }];
    let err = annotate("a: 1\n", &notes).unwrap_err().to_string();
    assert!(err.contains("nowhere:"), "{err}");
    let ok = annotate(
        "a:\n  b: 1\n",
        &[Note {
            anchors: &["b:"],
            text: "why\nbecause",
        }],
    )
    .unwrap();
    assert_eq!(ok, "a:\n  # why\n  # because\n  b: 1\n");
}

// ------------------------------------------------------------------------- security fields

#[test]
fn rbac_is_least_privilege() {
    let role: ClusterRole = one("deploy/base/clusterrole.yaml", "ClusterRole");
    assert_eq!(role_verbs(&role), expected_verbs(false, false));
    assert!(role.aggregation_rule.is_none());

    let binding: ClusterRoleBinding =
        one("deploy/base/clusterrolebinding.yaml", "ClusterRoleBinding");
    assert_eq!(binding.role_ref.kind, "ClusterRole");
    assert_eq!(binding.role_ref.name, APP);
    let subjects = binding.subjects.unwrap();
    assert_eq!(subjects.len(), 1);
    assert_eq!(subjects[0].kind, "ServiceAccount");
    assert_eq!(subjects[0].name, APP);
    assert_eq!(subjects[0].namespace.as_deref(), Some(NAMESPACE));

    let sa: ServiceAccount = one("deploy/base/serviceaccount.yaml", "ServiceAccount");
    assert_eq!(sa.metadata.namespace.as_deref(), Some(NAMESPACE));
    let ds = base_daemon_set();
    let pod = ds.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some(APP));
}

#[test]
fn namespace_allows_the_privileged_daemonset() {
    let ns: Namespace = one("deploy/base/namespace.yaml", "Namespace");
    assert_eq!(ns.metadata.name.as_deref(), Some(NAMESPACE));
    assert_eq!(
        ns.metadata.labels.unwrap()["pod-security.kubernetes.io/enforce"],
        "privileged"
    );
}

#[test]
fn csidriver_is_ephemeral_only_and_leaves_attach_as_the_go_chart_does() {
    let d: CSIDriver = one("deploy/base/csidriver.yaml", "CSIDriver");
    assert_eq!(d.metadata.name.as_deref(), Some(DRIVER_NAME));
    // Unset, as in the Go chart (immutable: a value differing from the stored default `true`
    // would make `kubectl apply`/`helm upgrade` over a Go install fail). The kubelet never
    // attaches an Ephemeral volume, whatever the field says.
    assert_eq!(d.spec.attach_required, None);
    assert_eq!(d.spec.fs_group_policy, None);
    assert_eq!(d.spec.se_linux_mount, None);
    assert_eq!(d.spec.pod_info_on_mount, Some(true));
    assert_eq!(
        d.spec.volume_lifecycle_modes,
        Some(vec!["Ephemeral".to_owned()])
    );
    assert!(d.spec.token_requests.is_none());
    assert_ne!(d.spec.requires_republish, Some(true));
}

#[test]
fn only_the_driver_container_is_privileged() {
    let ds = base_daemon_set();
    let pod = ds.spec.clone().unwrap().template.spec.unwrap();
    assert_ne!(pod.host_network, Some(true));
    assert_ne!(pod.host_pid, Some(true));
    assert_ne!(pod.host_ipc, Some(true));
    let seccomp = pod.security_context.unwrap().seccomp_profile.unwrap();
    assert_eq!(seccomp.type_, "RuntimeDefault");

    let names: Vec<String> = containers(&ds).into_iter().map(|c| c.name).collect();
    assert_eq!(
        names,
        [DRIVER_CONTAINER, "node-driver-registrar", "liveness-probe"]
    );

    let driver = container(&ds, DRIVER_CONTAINER);
    let sc = driver.security_context.unwrap();
    assert_eq!(sc.privileged, Some(true));
    assert_eq!(sc.run_as_user, Some(0));
    assert_eq!(sc.read_only_root_filesystem, Some(true));

    for name in ["node-driver-registrar", "liveness-probe"] {
        let c = container(&ds, name);
        let sc = c.security_context.unwrap();
        assert_ne!(sc.privileged, Some(true), "{name}");
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{name}");
        assert_eq!(sc.read_only_root_filesystem, Some(true), "{name}");
        let caps = sc.capabilities.unwrap();
        assert_eq!(caps.drop, Some(vec!["ALL".to_owned()]), "{name}");
        assert!(caps.add.is_none(), "{name}");
        // Upstream's image, as the release copies it next to the driver's.
        assert!(
            c.image.as_deref().unwrap().starts_with(&format!(
                "{}/{}/",
                chart::IMAGE_REGISTRY,
                chart::IMAGE_NAMESPACE
            )),
            "{name}"
        );
    }
}

#[test]
fn host_paths_and_mount_propagation() {
    let ds = base_daemon_set();
    let pod = ds.spec.clone().unwrap().template.spec.unwrap();
    let host: BTreeMap<String, (String, String)> = pod
        .volumes
        .unwrap()
        .into_iter()
        .map(|v| {
            let hp = v.host_path.expect("every volume is a hostPath");
            (v.name, (hp.path, hp.type_.unwrap()))
        })
        .collect();
    let expect = |p: &str, t: &str| (p.to_owned(), t.to_owned());
    assert_eq!(
        host,
        BTreeMap::from([
            (
                "plugin-dir".to_owned(),
                expect(
                    "/var/lib/kubelet/plugins/cert-manager-csi-driver",
                    "DirectoryOrCreate"
                )
            ),
            (
                "pods-mount-dir".to_owned(),
                expect("/var/lib/kubelet/pods", "Directory")
            ),
            (
                "registration-dir".to_owned(),
                expect("/var/lib/kubelet/plugins_registry", "Directory")
            ),
            (
                "csi-data-dir".to_owned(),
                expect("/var/lib/cert-manager-csi-driver", "DirectoryOrCreate")
            ),
        ])
    );
    for (path, _) in host.values() {
        assert!(
            !path.starts_with("/tmp"),
            "{path} is under /tmp (Go issue #78)"
        );
    }

    // Bidirectional only where the driver mounts: the pods dir (at the host path) and its data root.
    let mut bidirectional = BTreeMap::new();
    for c in containers(&ds) {
        for m in c.volume_mounts.clone().unwrap_or_default() {
            match m.mount_propagation.as_deref() {
                Some("Bidirectional") => {
                    bidirectional.insert(m.name.clone(), (c.name.clone(), m.mount_path.clone()));
                }
                None | Some("None") => {}
                Some(other) => panic!("unexpected propagation {other} on {}", m.name),
            }
        }
    }
    assert_eq!(
        bidirectional,
        BTreeMap::from([
            (
                "pods-mount-dir".to_owned(),
                (
                    DRIVER_CONTAINER.to_owned(),
                    host["pods-mount-dir"].0.clone()
                )
            ),
            (
                "csi-data-dir".to_owned(),
                (
                    DRIVER_CONTAINER.to_owned(),
                    DATA_ROOT_IN_CONTAINER.to_owned()
                )
            ),
        ])
    );

    // The registrar tells the kubelet the socket's host path: the plugin dir + csi.sock.
    let registrar = container(&ds, "node-driver-registrar");
    assert!(args(&registrar).contains(&format!(
        "--kubelet-registration-path={}/csi.sock",
        host["plugin-dir"].0
    )));
    let driver = container(&ds, DRIVER_CONTAINER);
    assert!(args(&driver).contains(&"--endpoint=unix:///plugin/csi.sock".to_owned()));
    assert!(args(&driver).contains(&format!("--data-root={DATA_ROOT_IN_CONTAINER}")));
}

#[test]
fn driver_identity_probe_resources_and_placement() {
    let ds = base_daemon_set();
    let driver = container(&ds, DRIVER_CONTAINER);
    let a = args(&driver);
    assert!(a.contains(&"--node-id=$(NODE_ID)".to_owned()));
    assert!(a.contains(&format!("--driver-name={DRIVER_NAME}")));
    assert!(!a.iter().any(|x| x == "--use-token-request"));
    let env = driver.env.clone().unwrap();
    let node_id = env.iter().find(|e| e.name == "NODE_ID").unwrap();
    assert_eq!(
        node_id
            .value_from
            .as_ref()
            .unwrap()
            .field_ref
            .as_ref()
            .unwrap()
            .field_path,
        "spec.nodeName"
    );

    // The liveness probe reaches the livenessprobe sidecar through the shared network namespace.
    let probe = driver.liveness_probe.clone().unwrap().http_get.unwrap();
    assert_eq!(probe.path.as_deref(), Some("/healthz"));
    let port_name = match probe.port {
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => s,
        other => panic!("expected a named port, got {other:?}"),
    };
    let ports = driver.ports.clone().unwrap();
    let health = ports
        .iter()
        .find(|p| p.name.as_deref() == Some(&port_name))
        .unwrap();
    assert_eq!(health.container_port, HEALTH_PORT);
    let liveness = container(&ds, "liveness-probe");
    assert!(args(&liveness).contains(&format!("--health-port={HEALTH_PORT}")));
    // Readiness (and start-up) through the same /healthz: the sidecar answers 500 while the
    // driver's CSI Probe says not ready (watch not synced yet, or broken too long).
    for probe in [driver.readiness_probe.clone(), driver.startup_probe.clone()] {
        let get = probe.unwrap().http_get.unwrap();
        assert_eq!(get.path.as_deref(), Some("/healthz"));
        assert_eq!(get.port, IntOrString::String(port_name.clone()));
    }

    let res = driver.resources.clone().unwrap();
    assert!(res.requests.unwrap().contains_key("memory"));
    assert!(res.limits.unwrap().contains_key("memory"));

    for c in containers(&ds) {
        let image = c.image.unwrap();
        let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
        assert!(
            !tag.is_empty() && tag != "latest" && !tag.contains('/'),
            "{image}"
        );
    }

    let pod = ds.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.node_selector.unwrap()["kubernetes.io/os"], "linux");
    let tolerations = pod.tolerations.unwrap();
    assert_eq!(tolerations.len(), 1);
    assert_eq!(tolerations[0].operator.as_deref(), Some("Exists"));
    assert!(tolerations[0].key.is_none() && tolerations[0].effect.is_none());
}

#[test]
fn examples_chain_a_ca_issuer_and_use_it() {
    let docs = yaml_docs(&read("deploy/examples/ca-issuer.yaml"));
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["Namespace", "ClusterIssuer", "Certificate", "Issuer"]
    );
    let cert = &docs[2];
    assert_eq!(cert["spec"]["isCA"], true);
    assert_eq!(cert["spec"]["issuerRef"]["kind"], "ClusterIssuer");
    assert_eq!(
        cert["spec"]["issuerRef"]["name"],
        docs[1]["metadata"]["name"]
    );
    assert!(docs[1]["spec"]["selfSigned"].is_object());
    let issuer = &docs[3];
    assert_eq!(issuer["metadata"]["name"], "ca-issuer");
    assert_eq!(issuer["metadata"]["namespace"], EXAMPLE_NAMESPACE);
    assert_eq!(
        issuer["spec"]["ca"]["secretName"],
        cert["spec"]["secretName"]
    );
    assert_eq!(cert["metadata"]["namespace"], EXAMPLE_NAMESPACE);

    let d: Deployment = one("deploy/examples/deployment.yaml", "Deployment");
    assert_eq!(d.metadata.namespace.as_deref(), Some(EXAMPLE_NAMESPACE));
    let pod = d.spec.unwrap().template.spec.unwrap();
    let csi = pod.volumes.unwrap()[0].csi.clone().unwrap();
    assert_eq!(csi.driver, DRIVER_NAME);
    assert_eq!(csi.read_only, Some(true));
    let attrs = csi.volume_attributes.unwrap();
    assert_eq!(attrs["csi.cert-manager.io/issuer-name"], "ca-issuer");
}

// ---------------------------------------------------------------------------------- kustomize

/// Major version of the kustomize built into kubectl, if kubectl is installed.
fn kustomize_major() -> Option<u32> {
    let out = Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // kubectl >= 1.24 prints `Kustomize Version: v5.5.0`; older ones bundle kustomize v2-v4.
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("Kustomize Version: v"))?;
    line.split('.').next()?.parse().ok()
}

fn kustomize(dir: &str) -> Option<Vec<Value>> {
    match kustomize_major() {
        Some(major) if major >= 4 => {}
        found => {
            eprintln!(
                "SKIPPED: `kubectl kustomize {dir}` not checked: needs kubectl >= 1.24 \
                 (kustomize v4+), found {found:?}"
            );
            return None;
        }
    }
    let out = Command::new("kubectl")
        .args(["kustomize", dir])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl kustomize {dir} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(yaml_docs(&String::from_utf8(out.stdout).unwrap()))
}

fn by_kind_name(docs: Vec<Value>) -> BTreeMap<(String, String), Value> {
    docs.into_iter()
        .map(|d| {
            let kind = d["kind"].as_str().unwrap().to_owned();
            let name = d["metadata"]["name"].as_str().unwrap().to_owned();
            ((kind, name), d)
        })
        .collect()
}

fn base_objects() -> BTreeMap<(String, String), Value> {
    let mut docs = Vec::new();
    for f in BASE_FILES {
        docs.extend(yaml_docs(&read(&format!("deploy/base/{f}"))));
    }
    by_kind_name(docs)
}

#[test]
fn kustomize_renders_the_base_unchanged() {
    let Some(docs) = kustomize("deploy") else {
        return;
    };
    assert_eq!(by_kind_name(docs), base_objects());
}

#[test]
fn kustomize_token_request_overlay() {
    let Some(docs) = kustomize("deploy/token-request") else {
        return;
    };
    let objects = by_kind_name(docs);
    let driver: CSIDriver = typed(&objects[&("CSIDriver".to_owned(), DRIVER_NAME.to_owned())]);
    assert_eq!(driver.spec.requires_republish, Some(true));
    let tr = driver.spec.token_requests.unwrap();
    assert_eq!(tr.len(), 1);
    assert_eq!(tr[0].audience, "");
    assert_eq!(tr[0].expiration_seconds, Some(3600));
    assert_eq!(driver.spec.pod_info_on_mount, Some(true));

    let ds: DaemonSet = typed(&objects[&("DaemonSet".to_owned(), APP.to_owned())]);
    let a = args(&container(&ds, DRIVER_CONTAINER));
    assert_eq!(a.iter().filter(|x| *x == "--use-token-request").count(), 1);
    for name in ["node-driver-registrar", "liveness-probe"] {
        assert!(!args(&container(&ds, name)).contains(&"--use-token-request".to_owned()));
    }

    let requester: ClusterRole =
        typed(&objects[&("ClusterRole".to_owned(), REQUESTER_ROLE.to_owned())]);
    let rules = requester.rules.unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].verbs, ["create"]);
    assert_eq!(
        rules[0].resources.as_deref(),
        Some(&["certificaterequests".to_owned()][..])
    );

    // The driver's own role loses `create`: the Pod's token creates the requests.
    let role: ClusterRole = typed(&objects[&("ClusterRole".to_owned(), APP.to_owned())]);
    assert_eq!(role_verbs(&role), expected_verbs(true, false));
}

#[test]
fn kustomize_examples() {
    let Some(docs) = kustomize("deploy/examples") else {
        return;
    };
    assert_eq!(docs.len(), 5);
}

// -------------------------------------------------------------------------------------- chart

/// Python with the `helm_python` module (Helm's Go SDK, offline rendering), if installed.
fn helm_python() -> Option<String> {
    let python = std::env::var("XTASK_HELM_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let ok = Command::new(&python)
        .args(["-c", "import helm_python"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if ok {
        Some(python)
    } else {
        eprintln!(
            "SKIPPED: chart rendering not checked: `{python} -c 'import helm_python'` failed \
             (pip install helm-python-sdk, or set XTASK_HELM_PYTHON)"
        );
        None
    }
}

const RENDER: &str = r#"
import json, sys
import helm_python as helm
values = json.loads(sys.argv[2])
lint = helm.lint(sys.argv[1], values, strict=True, namespace="ns")
errors = [m for m in lint["messages"] if m["severity"] >= 2] + lint["errors"]
if errors:
    sys.exit("helm lint: %r" % errors)
out = helm.Chart.load(sys.argv[1]).render(values, name="rel", namespace=sys.argv[3])
print(json.dumps(out))
"#;

fn render_chart(python: &str, values: Value, namespace: &str) -> BTreeMap<(String, String), Value> {
    try_render_chart(python, values, namespace).unwrap_or_else(|e| panic!("{e}"))
}

/// The chart's rendered files (templates/NOTES.txt among them), by name.
fn render_files(
    python: &str,
    values: &Value,
    namespace: &str,
) -> Result<BTreeMap<String, String>, String> {
    let out = Command::new(python)
        .args([
            "-c",
            RENDER,
            root().join("deploy/chart").to_str().unwrap(),
            &values.to_string(),
            namespace,
        ])
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(format!(
            "chart render failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(serde_json::from_slice(&out.stdout).unwrap())
}

fn try_render_chart(
    python: &str,
    values: Value,
    namespace: &str,
) -> Result<BTreeMap<(String, String), Value>, String> {
    let files = render_files(python, &values, namespace)?;
    Ok(by_kind_name(
        files
            .iter()
            // NOTES.txt is text for the user, not an object.
            .filter(|(name, _)| !name.ends_with("/NOTES.txt"))
            .flat_map(|(_, t)| yaml_docs(t))
            .collect(),
    ))
}

/// Labels only the chart sets (Helm's bookkeeping), removed before comparing with the manifests.
const HELM_LABELS: &[&str] = &[
    "app.kubernetes.io/instance",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/version",
    "helm.sh/chart",
];

fn without_helm_labels(
    mut objects: BTreeMap<(String, String), Value>,
) -> BTreeMap<(String, String), Value> {
    for object in objects.values_mut() {
        for path in ["/metadata/labels", "/spec/template/metadata/labels"] {
            if let Some(map) = object.pointer_mut(path).and_then(Value::as_object_mut) {
                for l in HELM_LABELS {
                    map.remove(*l);
                }
            }
        }
    }
    objects
}

#[test]
fn chart_defaults_render_the_static_manifests() {
    let Some(python) = helm_python() else {
        return;
    };
    let rendered = render_chart(&python, serde_json::json!({}), NAMESPACE);
    let mut expected = base_objects();
    // The chart has no Namespace: Helm stores the release in it before creating anything.
    expected.remove(&("Namespace".to_owned(), NAMESPACE.to_owned()));
    assert_eq!(without_helm_labels(rendered), expected);
    // `namespace.create` is gone, and the schema says so.
    let err = try_render_chart(
        &python,
        serde_json::json!({"namespace": {"create": true}}),
        NAMESPACE,
    )
    .unwrap_err();
    assert!(err.contains("namespace"), "{err}");
}

/// The chart and `kubectl kustomize` agree on every object both render: the base, the
/// token-request overlay, and the pod-readiness component.
#[test]
fn chart_and_kustomize_agree() {
    let Some(python) = helm_python() else {
        return;
    };
    let Some(base) = kustomize("deploy") else {
        return;
    };
    let mut base = by_kind_name(base);
    base.remove(&("Namespace".to_owned(), NAMESPACE.to_owned()));
    let chart = without_helm_labels(render_chart(&python, serde_json::json!({}), NAMESPACE));
    assert_eq!(chart, base);

    // The overlay appends its flag; the chart puts it beside the others: compare args as sets.
    let sorted_args = |mut objects: BTreeMap<(String, String), Value>| {
        for object in objects.values_mut() {
            let containers = object.pointer_mut("/spec/template/spec/containers");
            for c in containers
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                if let Some(args) = c["args"].as_array_mut() {
                    args.sort_by_key(Value::to_string);
                }
            }
        }
        objects
    };
    let mut overlay = by_kind_name(kustomize("deploy/token-request").unwrap());
    overlay.remove(&("Namespace".to_owned(), NAMESPACE.to_owned()));
    let chart = without_helm_labels(render_chart(
        &python,
        serde_json::json!({"app": {"driver": {"useTokenRequest": true}}}),
        NAMESPACE,
    ));
    assert_eq!(sorted_args(chart), sorted_args(overlay));

    let mut gated = kustomize_base_with_component("pod-readiness").unwrap();
    gated.remove(&("Namespace".to_owned(), NAMESPACE.to_owned()));
    let chart = without_helm_labels(render_chart(
        &python,
        serde_json::json!({"app": {"driver": {
            "continueOnNotReady": true,
            "podReadinessGates": [DEFAULT_COMPONENT_GATE],
        }}}),
        NAMESPACE,
    ));
    assert_eq!(sorted_args(chart), sorted_args(gated));
}

#[test]
fn chart_values_reach_the_objects() {
    let Some(python) = helm_python() else {
        return;
    };
    let values = serde_json::json!({
        "app": {
            "kubeletRootDir": "/data/kubelet",
            "driver": {"useTokenRequest": true, "kubernetesAPIQPS": 20, "csiDataDir": "/srv/csi"},
            "livenessProbe": {"port": 9810},
        },
        "metrics": {"enabled": false},
        "priorityClassName": "system-node-critical",
        "tolerations": [],
        "image": {"repository": "example.org/driver", "tag": "v9"},
    });
    let objects = render_chart(&python, values, "other");
    let driver: CSIDriver = typed(&objects[&("CSIDriver".to_owned(), DRIVER_NAME.to_owned())]);
    assert_eq!(driver.spec.requires_republish, Some(true));
    assert!(objects.contains_key(&("ClusterRole".to_owned(), REQUESTER_ROLE.to_owned())));

    let ds: DaemonSet = typed(&objects[&("DaemonSet".to_owned(), APP.to_owned())]);
    assert_eq!(ds.metadata.namespace.as_deref(), Some("other"));
    let d = container(&ds, DRIVER_CONTAINER);
    let a = args(&d);
    assert!(a.contains(&"--use-token-request".to_owned()));
    assert!(a.contains(&"--kube-api-qps=20".to_owned()));
    assert!(!a.iter().any(|x| x.starts_with("--metrics-bind-address")));
    assert!(!a.iter().any(|x| x.starts_with("--kube-api-burst")));
    assert_eq!(d.image.as_deref(), Some("example.org/driver:v9"));
    let ports: Vec<i32> = d.ports.unwrap().iter().map(|p| p.container_port).collect();
    assert_eq!(ports, [9810]);
    assert!(args(&container(&ds, "liveness-probe")).contains(&"--health-port=9810".to_owned()));
    assert!(
        args(&container(&ds, "node-driver-registrar")).contains(
            &"--kubelet-registration-path=/data/kubelet/plugins/cert-manager-csi-driver/csi.sock"
                .to_owned()
        )
    );
    let pod = ds.spec.unwrap().template.spec.unwrap();
    assert_eq!(
        pod.priority_class_name.as_deref(),
        Some("system-node-critical")
    );
    assert!(pod.tolerations.is_none());
    let paths: BTreeSet<String> = pod
        .volumes
        .unwrap()
        .into_iter()
        .map(|v| v.host_path.unwrap().path)
        .collect();
    assert!(paths.contains("/data/kubelet/pods") && paths.contains("/srv/csi"));
    let mounts = d.volume_mounts.unwrap();
    assert!(mounts.iter().any(|m| m.mount_path == "/data/kubelet/pods"
        && m.mount_propagation.as_deref() == Some("Bidirectional")));
}

// ------------------------------------------------------------------------ RBAC vs the code

/// (api group, resource) -> verbs.
type Verbs = BTreeMap<(String, String), BTreeSet<String>>;

fn role_verbs(role: &ClusterRole) -> Verbs {
    let mut out = Verbs::new();
    for rule in role.rules.clone().unwrap_or_default() {
        assert!(
            rule.non_resource_urls.is_none(),
            "no non-resource URLs: {rule:?}"
        );
        for group in rule.api_groups.clone().unwrap_or_default() {
            for resource in rule.resources.clone().unwrap_or_default() {
                assert_ne!(resource, "*", "no wildcard resources");
                let verbs = out.entry((group.clone(), resource)).or_default();
                for v in &rule.verbs {
                    assert_ne!(v, "*", "no wildcard verbs");
                    verbs.insert(v.clone());
                }
            }
        }
    }
    out
}

/// Kubernetes resource (group, plural) of a kube `Api::<T>` type the code uses.
fn resource_of(type_name: &str) -> (String, String) {
    let (g, r) = match type_name {
        // `WatchedRequest` is the watch's slimmed view of a CertificateRequest.
        "CertificateRequest" | "WatchedRequest" => ("cert-manager.io", "certificaterequests"),
        // `WatchedPod` is the Pod watch's view of a Pod without its spec.
        "Pod" | "WatchedPod" => ("", "pods"),
        "Event" => ("events.k8s.io", "events"),
        // The trust watch reads ClusterTrustBundles as dynamic objects (the version is
        // discovered at start).
        "DynamicObject" => ("certificates.k8s.io", "clustertrustbundles"),
        "ConfigMap" => ("", "configmaps"),
        other => panic!(
            "the code uses kube::Api::<{other}>: add its API group and resource to resource_of()"
        ),
    };
    (g.to_owned(), r.to_owned())
}

/// The verbs the driver's client calls need, found by reading the sources of the crates that
/// call the API: for each file, the `Api::<T>` types it builds and the calls it makes on them
/// (`api.create(..)` -> create, `watcher(..)` -> list + watch, ...).
fn verbs_in_code() -> Verbs {
    let mut out = Verbs::new();
    let call_verbs: &[(&str, &[&str])] = &[
        (".create(", &["create"]),
        (".delete(", &["delete"]),
        (".delete_collection(", &["deletecollection"]),
        (".get(", &["get"]),
        (".get_opt(", &["get"]),
        (".get_metadata(", &["get"]),
        (".get_metadata_opt(", &["get"]),
        (".list(", &["list"]),
        (".list_metadata(", &["list"]),
        (".watch(", &["watch"]),
        (".patch(", &["patch"]),
        (".patch_status(", &["patch"]),
        (".replace(", &["update"]),
        (".replace_status(", &["update"]),
        ("watcher(", &["list", "watch"]),
        ("metadata_watcher(", &["list", "watch"]),
        // issuer-client's watches (streaming or paged lists, then a watch).
        ("relist::run(", &["list", "watch"]),
    ];
    for dir in ["crates/issuer-client/src", "crates/driver/src"] {
        for file in list_files(&root().join(dir)).unwrap() {
            if file.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap();
            // kube's event recorder creates an Event, then patches it to aggregate repeats.
            if text.contains("Recorder::new(") {
                out.entry(("events.k8s.io".to_owned(), "events".to_owned()))
                    .or_default()
                    .extend(["create".to_owned(), "patch".to_owned()]);
            }
            // `Api::<T>::..` and `Api<T>` (a parameter's type).
            let types: BTreeSet<&str> = ["Api::<", "Api<"]
                .iter()
                .flat_map(|pat| text.match_indices(pat))
                .filter_map(|(at, m)| {
                    let rest = &text[at + m.len()..];
                    rest.find('>').map(|end| rest[..end].trim())
                })
                // A type parameter (`relist::run`'s `Api<K>`): its callers name the resource.
                .filter(|t| !(t.len() == 1 && t.chars().all(|c| c.is_ascii_uppercase())))
                .collect();
            if types.is_empty() {
                continue;
            }
            // Several Rust types may stand for one resource (a slimmed view of it).
            let resources: BTreeSet<(String, String)> =
                types.iter().map(|t| resource_of(t)).collect();
            assert_eq!(
                resources.len(),
                1,
                "{} builds Api::<..> of several resources {types:?}: teach verbs_in_code() which \
                 call belongs to which",
                file.display()
            );
            let resource = resources.into_iter().next().unwrap();
            for line in text.lines() {
                let code = line.split("//").next().unwrap_or("");
                // Calls on an `Api` value: `api.create(`, or the watcher helpers.
                for (call, verbs) in call_verbs {
                    let on_api = if call.starts_with('.') {
                        code.contains(&format!("api{call}"))
                    } else if call.starts_with("relist::") {
                        code.contains(&format!("crate::{call}"))
                    } else {
                        code.contains(&format!("watcher::{call}"))
                    };
                    if on_api {
                        out.entry(resource.clone())
                            .or_default()
                            .extend(verbs.iter().map(|v| (*v).to_owned()));
                    }
                }
            }
        }
    }
    out
}

/// What the driver's ClusterRole must grant: the verbs the code uses, plus those of features the
/// driver gains next (listed here so the role can be rendered before the code lands).
fn expected_verbs(token_request: bool, pod_readiness: bool) -> Verbs {
    let mut verbs = verbs_in_code();
    let pods = ("".to_owned(), "pods".to_owned());
    if pod_readiness {
        // Expected extra: the node-scoped Pod watch of readiness gates (list + watch, and get).
        verbs
            .entry(pods)
            .or_default()
            .extend(["get", "list", "watch"].map(str::to_owned));
    } else {
        // Without gates the Pod watch does not start, so the role must not allow it.
        verbs.remove(&pods);
    }
    // ConfigMaps are read only with --trust-bundle-configmaps (see
    // `trust_bundle_configmaps_role_matches_the_code`).
    verbs.remove(&("".to_owned(), "configmaps".to_owned()));
    if token_request {
        // With --use-token-request the request is created with the Pod's own token
        // (issuer-client's `client_for_token`), never with the driver's identity.
        let cr = (
            "cert-manager.io".to_owned(),
            "certificaterequests".to_owned(),
        );
        if let Some(v) = verbs.get_mut(&cr) {
            v.remove("create");
        }
    }
    verbs
}

#[test]
fn the_code_uses_the_verbs_the_grep_expects() {
    // Guards the grep itself: if the client calls move or change shape, this names it.
    let code = verbs_in_code();
    let cr = &code[&(
        "cert-manager.io".to_owned(),
        "certificaterequests".to_owned(),
    )];
    assert_eq!(
        cr,
        &BTreeSet::from(["create", "delete", "list", "watch"].map(str::to_owned)),
        "{code:?}"
    );
    assert_eq!(
        code[&("events.k8s.io".to_owned(), "events".to_owned())],
        BTreeSet::from(["create", "patch"].map(str::to_owned)),
        "the Event recorder needs create and patch: {code:?}"
    );
    let client = read("crates/issuer-client/src/client.rs");
    assert!(
        client.contains("client_for_token"),
        "token-request creates must use the Pod's token"
    );
}

#[test]
fn token_request_and_pod_readiness_roles_match_the_code() {
    let with_token: ClusterRole = typed(
        &serde_json::to_value(cluster_role(RoleFeatures {
            token_request: true,
            pod_readiness: false,
            trust_bundle_configmaps: false,
        }))
        .unwrap(),
    );
    assert_eq!(role_verbs(&with_token), expected_verbs(true, false));
    let gated: ClusterRole = typed(
        &serde_json::to_value(cluster_role(RoleFeatures {
            token_request: false,
            pod_readiness: true,
            trust_bundle_configmaps: false,
        }))
        .unwrap(),
    );
    assert_eq!(role_verbs(&gated), expected_verbs(false, true));
}

#[test]
fn kustomize_token_request_role_has_no_create() {
    let Some(docs) = kustomize("deploy/token-request") else {
        return;
    };
    let objects = by_kind_name(docs);
    let role: ClusterRole = typed(&objects[&("ClusterRole".to_owned(), APP.to_owned())]);
    assert_eq!(role_verbs(&role), expected_verbs(true, false));
}

/// `kubectl kustomize` of the base with `deploy/components/<component>`, if kubectl can.
pub(super) fn kustomize_base_with_component(
    component: &str,
) -> Option<BTreeMap<(String, String), Value>> {
    if kustomize_major().is_none_or(|m| m < 4) {
        eprintln!("SKIPPED: the {component} component needs kubectl >= 1.24 to render");
        return None;
    }
    // kustomize takes relative paths only: an overlay two levels below the workspace root.
    std::fs::create_dir_all(root().join("target")).unwrap();
    let dir = tempfile::tempdir_in(root().join("target")).unwrap();
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n\
             - ../../deploy/base\ncomponents:\n- ../../deploy/components/{component}\n"
        ),
    )
    .unwrap();
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(by_kind_name(yaml_docs(
        &String::from_utf8(out.stdout).unwrap(),
    )))
}

#[test]
fn kustomize_pod_readiness_component() {
    let Some(objects) = kustomize_base_with_component("pod-readiness") else {
        return;
    };
    let role: ClusterRole = typed(&objects[&("ClusterRole".to_owned(), APP.to_owned())]);
    assert_eq!(role_verbs(&role), expected_verbs(false, true));
    let ds: DaemonSet = typed(&objects[&("DaemonSet".to_owned(), APP.to_owned())]);
    let a = args(&container(&ds, DRIVER_CONTAINER));
    assert!(a.contains(&"--continue-on-not-ready".to_owned()), "{a:?}");
    assert!(a.contains(&format!("--pod-readiness-gate={DEFAULT_COMPONENT_GATE}")));
}

#[test]
fn trust_bundle_configmaps_role_matches_the_code() {
    let role: ClusterRole = typed(
        &serde_json::to_value(cluster_role(RoleFeatures {
            trust_bundle_configmaps: true,
            ..RoleFeatures::default()
        }))
        .unwrap(),
    );
    let mut expected = expected_verbs(false, false);
    let cm = ("".to_owned(), "configmaps".to_owned());
    expected.insert(cm.clone(), verbs_in_code()[&cm].clone());
    assert_eq!(role_verbs(&role), expected);
    assert_eq!(
        expected[&cm],
        BTreeSet::from(["get", "list", "watch"].map(str::to_owned))
    );
    let Some(python) = helm_python() else {
        return;
    };
    let values = serde_json::json!({"app": {"driver": {"trustBundleConfigMaps": true}}});
    let objects = render_chart(&python, values, "ns");
    let chart_role: ClusterRole = typed(&objects[&("ClusterRole".to_owned(), APP.to_owned())]);
    assert_eq!(role_verbs(&chart_role), expected);
}

#[test]
fn chart_roles_match_the_code() {
    let Some(python) = helm_python() else {
        return;
    };
    for (token_request, gates) in [(false, false), (true, false), (false, true), (true, true)] {
        let mut values = serde_json::json!({"app": {"driver": {"useTokenRequest": token_request}}});
        if gates {
            values["app"]["driver"]["podReadinessGates"] = serde_json::json!(["pod-ip:any"]);
            values["app"]["driver"]["continueOnNotReady"] = serde_json::json!(true);
        }
        let objects = render_chart(&python, values, "ns");
        let role: ClusterRole = typed(&objects[&("ClusterRole".to_owned(), APP.to_owned())]);
        assert_eq!(
            role_verbs(&role),
            expected_verbs(token_request, gates),
            "token request {token_request}, gates {gates}"
        );
    }
}

// ------------------------------------------------------------------- the Go chart's values

/// A values file as a user of the Go chart (csi-driver v0.16.0) writes one: every value that chart
/// defines, set to something other than its default. Written for this test.
const GO_USER_VALUES: &str = r#"
imageRegistry: registry.example.com/mirror
imageNamespace: jetstack
image:
  repository: ""
  name: cert-manager-csi-driver
  tag: v0.16.0
  digest: sha256:1111111111111111111111111111111111111111111111111111111111111111
  pullPolicy: Always
nodeDriverRegistrarImage:
  registry: legacy.example.com
  repository: sig-storage/csi-node-driver-registrar
  tag: v2.13.0
  pullPolicy: Never
livenessProbeImage:
  repository: ""
  name: livenessprobe
  digest: sha256:2222222222222222222222222222222222222222222222222222222222222222
  pullPolicy: IfNotPresent
imagePullSecrets:
- name: pull-secret
commonLabels:
  team: platform
app:
  logLevel: 5
  kubeletRootDir: /data/kubelet
  driver:
    name: csi.example.com
    useTokenRequest: true
    continueOnNotReady: true
    kubernetesAPIQPS: 50
    kubernetesAPIBurst: 100
    podReadinessGates:
    - pod-ip:ipv4
    - pod-condition:NetworkAttached=True
    gateBackoff:
      duration: 2s
      factor: 1.5
      jitter: 0.25
      cap: 30s
    csiDataDir: /tmp/cert-manager-csi-driver
  livenessProbe:
    port: 9810
metrics:
  enabled: true
  port: 9403
  podmonitor:
    enabled: true
    namespace: monitoring
    prometheusInstance: main
    interval: 30s
    scrapeTimeout: 10s
    labels:
      release: kube-prometheus
    annotations:
      owner: sre
    honorLabels: true
    endpointAdditionalProperties:
      metricRelabelings:
      - action: drop
        regex: go_.*
        sourceLabels: [__name__]
daemonSetAnnotations:
  ds: annotated
podAnnotations:
  pod: annotated
podLabels:
  extra: label
resources:
  requests:
    cpu: 100m
    memory: 128Mi
  limits:
    cpu: 200m
    memory: 256Mi
nodeSelector:
  node-role.example.com/tls: "true"
affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms:
      - matchExpressions:
        - key: example.com/pool
          operator: In
          values: [tls]
tolerations:
- key: dedicated
  operator: Equal
  value: tls
  effect: NoSchedule
priorityClassName: system-node-critical
hostNetwork: true
openshift:
  securityContextConstraint:
    enabled: true
    name: privileged-csi
"#;

#[test]
fn chart_takes_a_go_users_values() {
    let Some(python) = helm_python() else {
        return;
    };
    let values: Value = serde_norway::from_str(GO_USER_VALUES).unwrap();
    let objects = render_chart(&python, values, "csi");
    let ds: DaemonSet = typed(&objects[&("DaemonSet".to_owned(), APP.to_owned())]);

    // Image references: [registry/][namespace/]name or repository, then :tag@digest.
    let driver = container(&ds, DRIVER_CONTAINER);
    assert_eq!(
        driver.image.as_deref(),
        Some(
            "registry.example.com/mirror/jetstack/cert-manager-csi-driver:v0.16.0@sha256:\
             1111111111111111111111111111111111111111111111111111111111111111"
        )
    );
    assert_eq!(driver.image_pull_policy.as_deref(), Some("Always"));
    let registrar = container(&ds, "node-driver-registrar");
    assert_eq!(
        registrar.image.as_deref(),
        Some("legacy.example.com/sig-storage/csi-node-driver-registrar:v2.13.0")
    );
    assert_eq!(registrar.image_pull_policy.as_deref(), Some("Never"));
    assert_eq!(
        container(&ds, "liveness-probe").image.as_deref(),
        Some(
            "registry.example.com/mirror/jetstack/livenessprobe@sha256:\
             2222222222222222222222222222222222222222222222222222222222222222"
        )
    );

    // The args the Go chart renders for these values, in our flag forms.
    let a = args(&driver);
    for expected in [
        "--log-level=5",
        "--driver-name=csi.example.com",
        "--node-id=$(NODE_ID)",
        "--use-token-request",
        "--continue-on-not-ready",
        "--kube-api-qps=50",
        "--kube-api-burst=100",
        "--pod-readiness-gate=pod-ip:ipv4",
        "--pod-readiness-gate=pod-condition:NetworkAttached=True",
        "--gate-backoff-duration=2s",
        "--gate-backoff-factor=1.5",
        "--gate-backoff-jitter=0.25",
        "--gate-backoff-cap=30s",
        "--metrics-bind-address=:9403",
    ] {
        assert_eq!(
            a.iter().filter(|x| *x == expected).count(),
            1,
            "{expected} in {a:?}"
        );
    }
    assert!(!a.iter().any(|x| x == "--go-defaults"));
    let ports: Vec<i32> = driver
        .ports
        .clone()
        .unwrap()
        .iter()
        .map(|p| p.container_port)
        .collect();
    assert_eq!(ports, [9810, 9403]);
    assert!(args(&container(&ds, "liveness-probe")).contains(&"--health-port=9810".to_owned()));
    assert_eq!(
        driver.resources.clone().unwrap().limits.unwrap()["cpu"].0,
        "200m"
    );

    // Placement, labels and annotations.
    assert_eq!(ds.metadata.labels.clone().unwrap()["team"], "platform");
    assert_eq!(ds.metadata.annotations.clone().unwrap()["ds"], "annotated");
    let template = ds.spec.clone().unwrap().template;
    let tmeta = template.metadata.unwrap();
    assert_eq!(tmeta.labels.clone().unwrap()["extra"], "label");
    assert_eq!(tmeta.labels.unwrap()["app"], APP);
    assert_eq!(tmeta.annotations.unwrap()["pod"], "annotated");
    let pod = template.spec.unwrap();
    assert_eq!(pod.host_network, Some(true));
    assert_eq!(
        pod.priority_class_name.as_deref(),
        Some("system-node-critical")
    );
    assert_eq!(pod.image_pull_secrets.unwrap()[0].name, "pull-secret");
    assert!(pod.affinity.unwrap().node_affinity.is_some());
    assert_eq!(
        pod.tolerations.unwrap()[0].key.as_deref(),
        Some("dedicated")
    );
    assert_eq!(
        pod.node_selector.unwrap()["node-role.example.com/tls"],
        "true"
    );
    let paths: BTreeSet<String> = pod
        .volumes
        .unwrap()
        .into_iter()
        .map(|v| v.host_path.unwrap().path)
        .collect();
    assert!(paths.contains("/data/kubelet/pods") && paths.contains("/tmp/cert-manager-csi-driver"));

    // RBAC: token requests (no create), gates (pods), the SCC.
    let role: ClusterRole = typed(&objects[&("ClusterRole".to_owned(), APP.to_owned())]);
    let mut verbs = expected_verbs(true, true);
    verbs.insert(
        (
            "security.openshift.io".to_owned(),
            "securitycontextconstraints".to_owned(),
        ),
        BTreeSet::from(["use".to_owned()]),
    );
    assert_eq!(role_verbs(&role), verbs);
    let scc = role
        .rules
        .unwrap()
        .into_iter()
        .find(|r| r.verbs == ["use"])
        .unwrap();
    assert_eq!(scc.resource_names, Some(vec!["privileged-csi".to_owned()]));
    let csidriver: CSIDriver =
        typed(&objects[&("CSIDriver".to_owned(), "csi.example.com".to_owned())]);
    assert_eq!(csidriver.spec.requires_republish, Some(true));

    // The PodMonitor, with the Go chart's fields.
    let pm = &objects[&("PodMonitor".to_owned(), APP.to_owned())];
    assert_eq!(pm["metadata"]["namespace"], "monitoring");
    assert_eq!(pm["metadata"]["labels"]["prometheus"], "main");
    assert_eq!(pm["metadata"]["labels"]["release"], "kube-prometheus");
    assert_eq!(pm["metadata"]["annotations"]["owner"], "sre");
    assert_eq!(pm["spec"]["namespaceSelector"]["matchNames"][0], "csi");
    let ep = &pm["spec"]["podMetricsEndpoints"][0];
    assert_eq!(ep["port"], "http-metrics");
    assert_eq!(ep["interval"], "30s");
    assert_eq!(ep["scrapeTimeout"], "10s");
    assert_eq!(ep["honorLabels"], true);
    assert_eq!(ep["metricRelabelings"][0]["action"], "drop");
}

#[test]
fn chart_schema_rejects_unknown_and_mistyped_values() {
    let Some(python) = helm_python() else {
        return;
    };
    let err = try_render_chart(&python, serde_json::json!({"imageTag": "v1"}), "ns").unwrap_err();
    assert!(err.contains("imageTag"), "{err}");
    let err = try_render_chart(
        &python,
        serde_json::json!({"app": {"driver": {"useTokenRequest": "yes"}}}),
        "ns",
    )
    .unwrap_err();
    assert!(err.contains("useTokenRequest"), "{err}");
    let err = try_render_chart(
        &python,
        serde_json::json!({"app": {"driver": {"gateBackoff": {"durations": "1s"}}}}),
        "ns",
    )
    .unwrap_err();
    assert!(err.contains("durations"), "{err}");
    // Gates need continue-on-not-ready, as the Go driver requires at start.
    let err = try_render_chart(
        &python,
        serde_json::json!({"app": {"driver": {"podReadinessGates": ["pod-ip:any"]}}}),
        "ns",
    )
    .unwrap_err();
    assert!(err.contains("continueOnNotReady"), "{err}");
}

#[test]
fn chart_renders_the_monitoring_objects_of_deploy_monitoring() {
    let Some(python) = helm_python() else {
        return;
    };
    let values = serde_json::json!({"metrics": {"podmonitor": {"enabled": true}, "prometheusRule": {"enabled": true}}});
    let objects = without_helm_labels(render_chart(&python, values, NAMESPACE));
    let mut pm = objects[&("PodMonitor".to_owned(), APP.to_owned())].clone();
    // The chart also selects the release (several releases could share a namespace).
    assert_eq!(
        pm["spec"]["selector"]["matchLabels"]
            .as_object_mut()
            .unwrap()
            .remove("app.kubernetes.io/instance"),
        Some(Value::from("rel"))
    );
    assert_eq!(
        pm,
        one::<Value>("deploy/monitoring/podmonitor.yaml", "PodMonitor")
    );
    let rule = &objects[&("PrometheusRule".to_owned(), APP.to_owned())];
    assert_eq!(
        rule,
        &one::<Value>("deploy/monitoring/prometheusrule.yaml", "PrometheusRule")
    );
    // Metrics off: no PodMonitor even when asked for.
    let values =
        serde_json::json!({"metrics": {"enabled": false, "podmonitor": {"enabled": true}}});
    let objects = render_chart(&python, values, NAMESPACE);
    assert!(!objects.keys().any(|(kind, _)| kind == "PodMonitor"));
}

#[test]
fn image_constants_compose_the_image_repository() {
    assert_eq!(
        format!(
            "{}/{}/{}",
            chart::IMAGE_REGISTRY,
            chart::IMAGE_NAMESPACE,
            chart::IMAGE_NAME
        ),
        IMAGE_REPOSITORY
    );
}

// -------------------------------------------------------------------------------- monitoring

/// Metric rows of docs/metrics.md: (exposed name, type, since).
fn documented_metrics() -> Vec<(String, String, String)> {
    let text = read("docs/metrics.md");
    let mut out = Vec::new();
    for line in text.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | `name` | type | labels | since | meaning | query |
        if cells.len() < 8 || !cells[1].starts_with('`') {
            continue;
        }
        let name = cells[1].trim_matches('`');
        if matches!(cells[2], "counter" | "gauge" | "histogram") {
            out.push((name.to_owned(), cells[2].to_owned(), cells[4].to_owned()));
        }
    }
    assert!(out.len() > 5, "docs/metrics.md: no metric table found");
    out
}

/// Metric names registered in the driver's code: string literals that look like metric names,
/// in every source file of the driver crate (metrics.rs and the live gauges beside it).
fn metric_names_in_code() -> BTreeSet<String> {
    let prefixes = ["certmanager_csi_", "process_", "rest_client_", "build_info"];
    let mut out = BTreeSet::new();
    for file in list_files(&root().join("crates/driver/src")).unwrap() {
        if file.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for literal in text.split('"').skip(1).step_by(2) {
            let is_name = !literal.is_empty()
                && literal
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if is_name && prefixes.iter().any(|p| literal.starts_with(p)) {
                out.insert(literal.to_owned());
            }
        }
    }
    out
}

#[test]
fn docs_metrics_match_the_code() {
    let code = metric_names_in_code();
    assert!(
        code.contains("certmanager_csi_issue_requests"),
        "the grep found no registered names: {code:?}"
    );
    let mut documented = BTreeSet::new();
    for (name, kind, since) in documented_metrics() {
        // prometheus-client registers counters without `_total` and adds it when encoding.
        let registered = match kind.as_str() {
            "counter" => name
                .strip_suffix("_total")
                .unwrap_or_else(|| panic!("docs/metrics.md: counter {name} must end in _total"))
                .to_owned(),
            _ => name.clone(),
        };
        if since == "planned" {
            assert!(
                !code.contains(&registered),
                "docs/metrics.md lists {name} as planned, but the driver registers it: \
                 write the release in its `since` column"
            );
        } else {
            documented.insert(registered);
        }
    }
    let undocumented: Vec<_> = code.difference(&documented).collect();
    let gone: Vec<_> = documented.difference(&code).collect();
    assert!(
        undocumented.is_empty() && gone.is_empty(),
        "docs/metrics.md and the driver disagree: registered but not documented: {undocumented:?}; \
         documented but not registered: {gone:?}"
    );
}

/// Names a PromQL expression uses as metrics (identifiers not followed by `(`, not keywords,
/// not label names inside `{}` or `by (...)`).
fn metrics_in_query(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let keywords = [
        "by",
        "on",
        "and",
        "or",
        "unless",
        "without",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "offset", // aggregations, which may be followed by `by (...)` before `(`:
        "sum",
        "min",
        "max",
        "avg",
        "count",
        "group",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
    ];
    let bytes: Vec<char> = expr.chars().collect();
    let (mut i, mut braces, mut parens_after_by) = (0, 0, 0usize);
    while i < bytes.len() {
        let c = bytes[i];
        if c == '"' {
            i += 1;
            while i < bytes.len() && bytes[i] != '"' {
                i += 1;
            }
        } else if c == '{' {
            braces += 1;
        } else if c == '}' {
            braces -= 1;
        } else if c == ')' && parens_after_by > 0 {
            parens_after_by -= 1;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i + 1 < bytes.len()
                && (bytes[i + 1].is_ascii_alphanumeric() || bytes[i + 1] == '_')
            {
                i += 1;
            }
            let word: String = bytes[start..=i].iter().collect();
            let next = bytes[i + 1..].iter().find(|c| !c.is_whitespace());
            let prev_is_range = start > 0 && bytes[start - 1].is_ascii_digit();
            if matches!(word.as_str(), "by" | "on" | "without" | "ignoring") {
                parens_after_by += 1;
                // skip to its '('
                while i + 1 < bytes.len() && bytes[i + 1] != '(' {
                    i += 1;
                }
                i += 1;
            } else if braces == 0
                && parens_after_by == 0
                && next != Some(&'(')
                && !prev_is_range
                && !keywords.contains(&word.as_str())
            {
                out.insert(word);
            }
        }
        i += 1;
    }
    out
}

/// Series names docs/metrics.md allows in queries (with a histogram's and Prometheus' own).
fn queryable_names() -> BTreeSet<String> {
    let mut names = BTreeSet::from(["up".to_owned()]);
    for (name, kind, _) in documented_metrics() {
        if kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{name}{suffix}"));
            }
        } else {
            names.insert(name);
        }
    }
    names
}

#[test]
fn query_parser_finds_metric_names() {
    assert_eq!(
        metrics_in_query(
            "sum by (namespace, pod) (rate(a_total{job=\"x\", node=~\"$node\"}[5m])) / on(instance) b > 0.5"
        ),
        BTreeSet::from(["a_total".to_owned(), "b".to_owned()])
    );
}

#[test]
fn dashboard_is_json_and_queries_known_metrics() {
    let text = read("deploy/monitoring/grafana-dashboard.json");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is valid JSON");
    assert_eq!(dashboard, monitoring::dashboard());
    // The chart's copy (for the Grafana sidecar ConfigMap) is the same file.
    assert_eq!(read("deploy/chart/files/grafana-dashboard.json"), text);
    let mut known = queryable_names();
    // cAdvisor's container series (the memory panel), which docs/metrics.md names in prose.
    let docs = read("docs/metrics.md");
    for external in [
        "container_memory_working_set_bytes",
        "container_spec_memory_limit_bytes",
    ] {
        assert!(
            docs.contains(&format!("`{external}`")),
            "docs/metrics.md lacks {external}"
        );
        known.insert(external.to_owned());
    }
    let queries = monitoring::dashboard_queries(&dashboard);
    assert!(queries.len() >= 10, "{queries:?}");
    let mut used = BTreeSet::new();
    for q in &queries {
        for m in metrics_in_query(q) {
            assert!(
                known.contains(&m),
                "dashboard query `{q}` uses {m}, which docs/metrics.md does not list"
            );
            used.insert(m);
        }
    }
    // Panel ids are unique, and every panel has a query.
    let panels = dashboard["panels"].as_array().unwrap();
    let ids: BTreeSet<u64> = panels.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), panels.len());
    assert!(
        panels
            .iter()
            .all(|p| !p["targets"].as_array().unwrap().is_empty())
    );
    assert!(used.contains("certmanager_csi_certificate_request_expiration_timestamp_seconds"));
    // The panels the runbooks point at: API errors, memory against the limit, the data root.
    for m in [
        "rest_client_requests_total",
        "container_spec_memory_limit_bytes",
        "certmanager_csi_data_root_used_bytes",
        "certmanager_csi_data_root_size_bytes",
    ] {
        assert!(used.contains(m), "no dashboard panel queries {m}");
    }
}

#[test]
fn alert_rules_query_known_metrics() {
    let known = queryable_names();
    let rules = monitoring::rules();
    let mut alerts = BTreeSet::new();
    for rule in rules["groups"][0]["rules"].as_array().unwrap() {
        let expr = rule["expr"].as_str().unwrap();
        for m in metrics_in_query(expr) {
            assert!(known.contains(&m), "alert expr `{expr}` uses unknown {m}");
        }
        alerts.insert(rule["alert"].as_str().unwrap().to_owned());
        assert!(rule["annotations"]["summary"].is_string());
        assert!(rule["annotations"]["description"].is_string());
        assert!(rule["annotations"]["runbook_url"].is_string());
    }
    // Every alert is listed in docs/metrics.md and exercised by the promtool tests.
    let docs = read("docs/metrics.md");
    let tests = read("deploy/monitoring/tests/rules.test.yaml");
    for a in &alerts {
        assert!(
            docs.contains(&format!("`{a}`")),
            "docs/metrics.md lacks {a}"
        );
        assert!(
            tests.contains(&format!("alertname: {a}\n    exp_alerts: []")),
            "no silent case for {a}"
        );
        assert!(
            tests.contains(&format!(
                "alertname: {a}\n    exp_alerts:\n    - exp_labels"
            )),
            "no firing case for {a}"
        );
    }
    assert_eq!(alerts.len(), 8);
}

/// GitHub's anchor of a Markdown heading: lowercased, punctuation other than `-` and `_` dropped,
/// spaces to `-`.
fn github_anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[test]
fn every_alert_has_a_runbook() {
    let runbooks = read("docs/runbooks.md");
    let anchors: BTreeSet<String> = runbooks
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(github_anchor)
        .collect();
    let rules = monitoring::rules();
    let mut linked = BTreeSet::new();
    for rule in rules["groups"][0]["rules"].as_array().unwrap() {
        let alert = rule["alert"].as_str().unwrap();
        let url = rule["annotations"]["runbook_url"]
            .as_str()
            .unwrap_or_else(|| panic!("{alert} has no runbook_url"));
        let (page, anchor) = url
            .split_once('#')
            .unwrap_or_else(|| panic!("{alert}: runbook_url {url} names no section"));
        assert_eq!(
            page,
            monitoring::RUNBOOKS_URL,
            "{alert}: runbook_url is not docs/runbooks.md"
        );
        assert!(
            anchors.contains(anchor),
            "{alert}: runbook_url {url}: docs/runbooks.md has no heading with anchor #{anchor} \
             (headings: {anchors:?})"
        );
        // Each section tells what it means, how to look and what to do.
        let section = runbooks
            .split("\n## ")
            .find(|s| github_anchor(s.lines().next().unwrap_or("")) == anchor)
            .unwrap();
        for part in ["**What it means.**", "**How to look.**", "**What to do.**"] {
            assert!(section.contains(part), "{alert}: runbook lacks {part}");
        }
        linked.insert(anchor.to_owned());
    }
    // One section per alert, none left over.
    assert_eq!(linked, anchors);
    assert_eq!(
        github_anchor("The upgrade path: `helm upgrade` of the Go release, node by node"),
        "the-upgrade-path-helm-upgrade-of-the-go-release-node-by-node"
    );
    // The release points at the project's repository.
    assert!(monitoring::RUNBOOKS_URL.starts_with(chart::PROJECT_URL));
}

/// `promtool test rules` over deploy/monitoring/tests/. Skipped (saying so) where promtool is not
/// installed, except in CI (`CI` set), where `.ci/run` installs it.
#[test]
fn promtool_tests_pass() {
    let found = Command::new("promtool").arg("--version").output().is_ok();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool is not installed (apt-get install prometheus); CI must run the rule tests"
        );
        eprintln!(
            "SKIPPED: promtool_tests_pass: promtool not installed (apt-get install prometheus)"
        );
        return;
    }
    let dir = root().join("deploy/monitoring/tests");
    let check = Command::new("promtool")
        .args(["check", "rules", "../prometheus-rules.yaml"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let out = Command::new("promtool")
        .args(["test", "rules", "rules.test.yaml"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool test rules failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The chart's driver args for non-default values are those of the typed DaemonSet with the
/// same settings (flag forms and order), so container tests built from [`Settings`] run what the
/// chart installs.
#[test]
fn chart_args_match_the_typed_daemonset() {
    let Some(python) = helm_python() else {
        return;
    };
    let values = serde_json::json!({
        "app": {"logLevel": "debug", "logFormat": "json", "driver": {
            "useTokenRequest": true, "continueOnNotReady": true,
            "kubernetesAPIQPS": 20, "kubernetesAPIBurst": 40,
            "podReadinessGates": ["pod-ip:any", "pod-annotation:example.com/ready"],
            // Unlike the Go chart, zero values are rendered when set.
            "gateBackoff": {"duration": "1s", "factor": 2, "jitter": 0, "cap": "0s"},
            "goDefaults": true,
        }},
        "metrics": {"port": 9500},
    });
    let objects = render_chart(&python, values, NAMESPACE);
    let ds: DaemonSet = typed(&objects[&("DaemonSet".to_owned(), APP.to_owned())]);
    let s = Settings {
        log_level: "debug".to_owned(),
        log_format: "json".to_owned(),
        use_token_request: Cond::On,
        continue_on_not_ready: Cond::On,
        kube_api_qps: (Cond::On, "20".to_owned()),
        kube_api_burst: (Cond::On, "40".to_owned()),
        pod_readiness_gates: vec![
            "pod-ip:any".to_owned(),
            "pod-annotation:example.com/ready".to_owned(),
        ],
        gate_backoff: [
            ("duration", "1s"),
            ("factor", "2"),
            ("jitter", "0"),
            ("cap", "0s"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .to_vec(),
        go_defaults: true,
        metrics_port: 9500,
        ..Settings::default()
    };
    assert_eq!(
        args(&container(&ds, DRIVER_CONTAINER)),
        args(&container(&daemon_set(&s), DRIVER_CONTAINER))
    );
}

// --------------------------------------------------------------------------------- pod signer

/// The objects of `deploy/pod-signer/` (and, with `impersonation`, its overlay's objects, the
/// Deployment with the overlay's flag appended), as the files hold them.
fn signer_objects(impersonation: bool) -> BTreeMap<(String, String), Value> {
    let read = |rel: &str| {
        yaml_docs(&std::fs::read_to_string(root().join("deploy/pod-signer").join(rel)).unwrap())
    };
    let mut files = vec![
        "serviceaccount.yaml",
        "clusterrole.yaml",
        "clusterrolebinding.yaml",
        "role.yaml",
        "rolebinding.yaml",
        "deployment.yaml",
    ];
    if impersonation {
        files.extend([
            "impersonation/clusterrole.yaml",
            "impersonation/clusterrolebinding.yaml",
        ]);
    }
    let mut objects = by_kind_name(files.iter().flat_map(|f| read(f)).collect());
    if impersonation {
        let d = objects
            .get_mut(&("Deployment".to_owned(), signer::SIGNER.to_owned()))
            .unwrap();
        d.pointer_mut("/spec/template/spec/containers/0/args")
            .and_then(Value::as_array_mut)
            .unwrap()
            .push(Value::from("--impersonate-service-account"));
    }
    objects
}

/// The chart renders the signer when enabled, as `deploy/pod-signer/` has it (with and without
/// impersonation), and nothing of it by default.
#[test]
fn chart_renders_the_pod_signer_when_enabled() {
    let Some(python) = helm_python() else {
        return;
    };
    let is_signer = |k: &(String, String)| k.1.starts_with(signer::SIGNER);
    let defaults = render_chart(&python, serde_json::json!({}), NAMESPACE);
    assert!(!defaults.keys().any(is_signer), "off by default");
    for impersonation in [false, true] {
        let rendered = without_helm_labels(render_chart(
            &python,
            serde_json::json!({"podSigner": {"enabled": true, "impersonateServiceAccount": impersonation}}),
            NAMESPACE,
        ));
        let signer: BTreeMap<_, _> = rendered.into_iter().filter(|(k, _)| is_signer(k)).collect();
        assert_eq!(
            signer,
            signer_objects(impersonation),
            "impersonation: {impersonation}"
        );
    }
}

/// The signer's ClusterRole names only the verbs its code uses: each resource's verbs appear
/// as client calls in crates/pod-signer (a removed call must remove its verb).
#[test]
fn signer_rbac_matches_its_code() {
    let src: String = ["signer.rs", "trust.rs", "leader.rs", "lib.rs"]
        .iter()
        .map(|f| std::fs::read_to_string(root().join("crates/pod-signer/src").join(f)).unwrap())
        .collect();
    for (needle, why) in [
        (
            ".replace_subresource(\"status\"",
            "podcertificaterequests/status update",
        ),
        ("watcher::watcher(", "podcertificaterequests list/watch"),
        ("api().get_opt(&job.name)", "podcertificaterequests get"),
        (
            "<CertificateRequest as kube::Resource>::url_path",
            "certificaterequests create",
        ),
        (
            ".create(&PostParams::default(), body)",
            "certificaterequests create",
        ),
        (".replace(&name", "clustertrustbundles update"),
        (
            "self.api.create(&PostParams::default(), &obj)",
            "clustertrustbundles create",
        ),
        (".replace(&self.name", "leases update"),
        ("recorder.publish(", "events create/patch"),
    ] {
        assert!(
            src.contains(needle),
            "{why}: `{needle}` not found in the signer's code"
        );
    }
    let verbs = |group: &str, resource: &str| -> Vec<String> {
        signer::signer_rules()
            .into_iter()
            .find(|r| {
                r.api_groups.as_deref() == Some(&[group.to_owned()][..])
                    && r.resources.as_deref() == Some(&[resource.to_owned()][..])
            })
            .map(|r| r.verbs)
            .unwrap_or_default()
    };
    assert_eq!(
        verbs("certificates.k8s.io", "podcertificaterequests/status"),
        ["update"]
    );
    assert_eq!(
        verbs("cert-manager.io", "certificaterequests"),
        ["create", "list", "watch"]
    );
    assert!(
        verbs("certificates.k8s.io", "podcertificaterequests")
            .iter()
            .all(|v| ["get", "list", "watch"].contains(&v.as_str()))
    );
}

mod upgrade;
