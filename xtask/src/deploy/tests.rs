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
use serde::Deserialize;
use serde_json::Value;

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
    let rules = role.rules.unwrap();
    assert_eq!(rules.len(), 1, "one rule only");
    let rule = &rules[0];
    assert_eq!(
        rule.api_groups.as_deref(),
        Some(&["cert-manager.io".to_owned()][..])
    );
    assert_eq!(
        rule.resources.as_deref(),
        Some(&["certificaterequests".to_owned()][..])
    );
    let verbs: BTreeSet<&str> = rule.verbs.iter().map(String::as_str).collect();
    assert_eq!(
        verbs,
        BTreeSet::from(["create", "get", "list", "watch", "delete"])
    );
    assert!(rule.resource_names.is_none() && rule.non_resource_urls.is_none());
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
fn csidriver_is_ephemeral_only_without_attach() {
    let d: CSIDriver = one("deploy/base/csidriver.yaml", "CSIDriver");
    assert_eq!(d.metadata.name.as_deref(), Some(DRIVER_NAME));
    assert_eq!(d.spec.attach_required, Some(false));
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
        assert!(
            c.image
                .as_deref()
                .unwrap()
                .starts_with("registry.k8s.io/sig-storage/"),
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

    // The driver's own role is unchanged by the overlay.
    assert_eq!(
        objects[&("ClusterRole".to_owned(), APP.to_owned())],
        base_objects()[&("ClusterRole".to_owned(), APP.to_owned())]
    );
}

#[test]
fn kustomize_examples() {
    let Some(docs) = kustomize("deploy/examples") else {
        return;
    };
    assert_eq!(docs.len(), 5);
}

// -------------------------------------------------------------------------------------- chart

#[test]
fn helmify_rewrites_markers() {
    let yaml = "\
a:
- __HELMIF_Values.x__--flag
- __HELMIF_Values.y__--v=__HELM_Values.v__
ports:
- containerPort: 1909402
  name: __HELMIF_Values.metrics.enabled__http
path: __HELM_Values.root__/pods
nodeSelector:
  __HELMWITH_Values.nodeSelector__: ''
";
    let out = chart::helmify(yaml).unwrap();
    let expected = "\
a:
{{- if .Values.x }}
- --flag
{{- end }}
{{- if .Values.y }}
- \"--v={{ .Values.v }}\"
{{- end }}
ports:
{{- if .Values.metrics.enabled }}
- containerPort: {{ .Values.metrics.port }}
  name: http
{{- end }}
path: \"{{ .Values.root }}/pods\"
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
";
    assert_eq!(out, expected);
}

#[test]
fn helmify_rejects_a_misplaced_marker() {
    let err = chart::helmify("other:\n  __HELMWITH_Values.tolerations__: ''\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("tolerations"), "{err}");
    let err = chart::helmify("a: __HELMIF_Values.x__y\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("list item"), "{err}");
}

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
    assert!(
        out.status.success(),
        "chart render failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files: BTreeMap<String, String> = serde_json::from_slice(&out.stdout).unwrap();
    by_kind_name(files.values().flat_map(|t| yaml_docs(t)).collect())
}

#[test]
fn chart_defaults_render_the_static_manifests() {
    let Some(python) = helm_python() else {
        return;
    };
    let rendered = render_chart(&python, serde_json::json!({}), NAMESPACE);
    let mut expected = base_objects();
    expected.remove(&("Namespace".to_owned(), NAMESPACE.to_owned()));
    assert_eq!(rendered, expected);
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
