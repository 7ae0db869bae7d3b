//! A Go user's `helm upgrade`: the chart takes the Go chart's own values file, renders a
//! CSIDriver whose immutable fields are the Go chart's (so the upgrade patches it in place and
//! the DaemonSet rolls node by node), and an air-gapped mirror gets every image.

use super::*;

/// The Go chart's values.yaml (Apache-2.0, attribution in the file).
const GO_VALUES: &str = include_str!("../testdata/go-chart-values.yaml");

/// The CSIDriver spec the Go chart renders (its templates/csidriver.yaml, for any values without
/// token requests): `podInfoOnMount: true`, `volumeLifecycleModes: [Ephemeral]`, and neither
/// `attachRequired` nor `fsGroupPolicy` (so the API server stores their defaults: true and
/// ReadWriteOnceWithFSType). Written out here from what the template says, not copied from it.
fn go_csidriver_spec() -> Value {
    serde_json::json!({"podInfoOnMount": true, "volumeLifecycleModes": ["Ephemeral"]})
}

/// The CSIDriver fields the API server refuses to change on update: `attachRequired` and
/// `volumeLifecycleModes`, and before Kubernetes 1.29 (the chart supports 1.25+) also
/// `podInfoOnMount` and `fsGroupPolicy`. A field left out must be left out on both sides: the
/// API server fills in its default, and a value we set that differs from it would be a change.
const IMMUTABLE: &[&str] = &[
    "attachRequired",
    "volumeLifecycleModes",
    "podInfoOnMount",
    "fsGroupPolicy",
];

fn assert_go_immutable_fields(objects: &BTreeMap<(String, String), Value>, name: &str) {
    let ours = &objects[&("CSIDriver".to_owned(), name.to_owned())]["spec"];
    let go = go_csidriver_spec();
    for field in IMMUTABLE {
        assert_eq!(
            ours.get(field),
            go.get(field),
            "CSIDriver spec.{field} differs from the Go chart's: `helm upgrade` of a Go release \
             would fail (the field is immutable)"
        );
    }
}

fn images(ds: &DaemonSet) -> Vec<String> {
    containers(ds)
        .into_iter()
        .map(|c| c.image.unwrap_or_default())
        .collect()
}

#[test]
fn chart_takes_the_go_charts_values_file() {
    let Some(python) = helm_python() else {
        return;
    };
    let values: Value = serde_norway::from_str(GO_VALUES).unwrap();
    let objects = render_chart(&python, values, "cert-manager");
    assert_go_immutable_fields(&objects, DRIVER_NAME);

    let ds: DaemonSet = typed(&objects[&("DaemonSet".to_owned(), APP.to_owned())]);
    // The DaemonSet's selector is immutable too: the Go chart's `app: cert-manager-csi-driver`.
    assert_eq!(
        ds.spec.clone().unwrap().selector.match_labels.unwrap(),
        selector_labels()
    );
    // The Go values put every image under quay.io/jetstack, the sidecars included (its sidecar
    // `repository: ""` follows imageRegistry/imageNamespace), and so does this chart.
    for image in images(&ds) {
        assert!(image.starts_with("quay.io/jetstack/"), "{image}");
    }
    let driver = container(&ds, DRIVER_CONTAINER);
    let a = args(&driver);
    assert!(a.contains(&"--log-level=1".to_owned()), "{a:?}");
    assert!(a.contains(&"--tmpfs-size=32Mi".to_owned()), "{a:?}");
    // The Go values' `resources: {}`: the memory limit is still derived from the tmpfs.
    assert_eq!(
        driver.resources.unwrap().limits.unwrap()["memory"].0,
        "64Mi"
    );
    let pod = ds.spec.unwrap().template.spec.unwrap();
    let data_dir = pod
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == "csi-data-dir")
        .unwrap();
    assert_eq!(
        data_dir.host_path.unwrap().path,
        "/tmp/cert-manager-csi-driver"
    );
}

/// A values file for an air-gapped cluster: one mirror registry, extra flags, a bigger tmpfs,
/// sidecar resources.
const MIRROR_VALUES: &str = r#"
imageRegistry: mirror.example.com:5000
imageNamespace: platform/csi
extraArgs:
- --key-pool-size=8
- --renewal-backoff-max=10m
app:
  driver:
    tmpfsSize: 256Mi
sidecars:
  nodeDriverRegistrar:
    resources:
      requests: {cpu: 1m, memory: 8Mi}
      limits: {memory: 20Mi}
  livenessProbe:
    resources:
      requests: {cpu: 2m, memory: 9Mi}
      limits: {memory: 21Mi}
updateStrategy:
  type: RollingUpdate
  rollingUpdate:
    maxUnavailable: 10%
"#;

#[test]
fn chart_with_a_mirror_extra_args_tmpfs_and_sidecar_resources() {
    let Some(python) = helm_python() else {
        return;
    };
    let values: Value = serde_norway::from_str(MIRROR_VALUES).unwrap();
    let objects = render_chart(&python, values.clone(), "csi");
    assert_go_immutable_fields(&objects, DRIVER_NAME);
    let ds: DaemonSet = typed(&objects[&("DaemonSet".to_owned(), APP.to_owned())]);

    // Every image, the driver's and both sidecars', from the mirror.
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        images(&ds),
        [
            format!("mirror.example.com:5000/platform/csi/{APP}:{version}"),
            format!(
                "mirror.example.com:5000/platform/csi/csi-node-driver-registrar:{REGISTRAR_TAG}"
            ),
            format!("mirror.example.com:5000/platform/csi/livenessprobe:{LIVENESS_TAG}"),
        ]
    );

    // The extra args reach the driver, after the chart's own; the tmpfs size too, and the
    // memory limit follows it (twice the tmpfs).
    let driver = container(&ds, DRIVER_CONTAINER);
    let a = args(&driver);
    assert_eq!(
        a[a.len() - 2..],
        ["--key-pool-size=8", "--renewal-backoff-max=10m"]
    );
    assert!(a.contains(&"--tmpfs-size=256Mi".to_owned()), "{a:?}");
    assert!(!a.contains(&"--tmpfs-size=32Mi".to_owned()), "{a:?}");
    let resources = driver.resources.unwrap();
    assert_eq!(resources.limits.unwrap()["memory"].0, "512Mi");
    assert_eq!(resources.requests.unwrap()["cpu"].0, "10m");

    let limit = |name: &str| {
        container(&ds, name).resources.unwrap().limits.unwrap()["memory"]
            .0
            .clone()
    };
    assert_eq!(limit("node-driver-registrar"), "20Mi");
    assert_eq!(limit("liveness-probe"), "21Mi");
    let strategy = ds.spec.clone().unwrap().update_strategy.unwrap();
    assert_eq!(
        strategy.rolling_update.unwrap().max_unavailable,
        Some(IntOrString::String("10%".to_owned()))
    );

    // The notes after `helm install` name the images that were rendered.
    let files = render_files(&python, &values, "csi").unwrap();
    let (_, notes) = files
        .iter()
        .find(|(n, _)| n.ends_with("/NOTES.txt"))
        .unwrap();
    for image in images(&ds) {
        assert!(notes.contains(&image), "NOTES.txt lacks {image}:\n{notes}");
    }
    assert!(notes.contains("kubectl -n csi rollout status daemonset/cert-manager-csi-driver"));

    // Gi sizes, and a memory limit set by hand wins over the derived one.
    let mut values = values;
    values["app"]["driver"]["tmpfsSize"] = "1Gi".into();
    let ds: DaemonSet = typed(
        &render_chart(&python, values.clone(), "csi")[&("DaemonSet".to_owned(), APP.to_owned())],
    );
    let driver = container(&ds, DRIVER_CONTAINER);
    assert!(args(&driver).contains(&"--tmpfs-size=1Gi".to_owned()));
    assert_eq!(
        driver.resources.unwrap().limits.unwrap()["memory"].0,
        "2048Mi"
    );
    values["resources"] = serde_json::json!({"limits": {"memory": "3Gi", "cpu": "1"}});
    let ds: DaemonSet = typed(
        &render_chart(&python, values.clone(), "csi")[&("DaemonSet".to_owned(), APP.to_owned())],
    );
    let limits = container(&ds, DRIVER_CONTAINER)
        .resources
        .unwrap()
        .limits
        .unwrap();
    assert_eq!(limits["memory"].0, "3Gi");
    assert_eq!(limits["cpu"].0, "1");

    // A flag the chart renders from a value is refused in extraArgs, naming the value.
    let mut twice = values.clone();
    twice["extraArgs"] = serde_json::json!(["--tmpfs-size=1Gi"]);
    let err = try_render_chart(&python, twice, "csi").unwrap_err();
    assert!(err.contains("app.driver.tmpfsSize instead"), "{err}");

    // A size the limit cannot be derived from is refused with the value's name.
    values["app"]["driver"]["tmpfsSize"] = "100M".into();
    let err = try_render_chart(&python, values, "csi").unwrap_err();
    assert!(err.contains("tmpfsSize"), "{err}");
}

#[test]
fn chart_selinux_mount_and_readiness() {
    let Some(python) = helm_python() else {
        return;
    };
    let objects = render_chart(
        &python,
        serde_json::json!({"app": {"driver": {"seLinuxMount": true}}}),
        "csi",
    );
    let driver = &objects[&("CSIDriver".to_owned(), DRIVER_NAME.to_owned())];
    assert_eq!(driver["spec"]["seLinuxMount"], true);
    // seLinuxMount may change on update; the immutable fields stay the Go chart's.
    assert_go_immutable_fields(&objects, DRIVER_NAME);
    let objects = render_chart(&python, serde_json::json!({}), "csi");
    let driver = &objects[&("CSIDriver".to_owned(), DRIVER_NAME.to_owned())];
    assert!(driver["spec"].get("seLinuxMount").is_none());

    // Readiness through the livenessprobe sidecar's /healthz (the driver's CSI Probe).
    let ds: DaemonSet = typed(&objects[&("DaemonSet".to_owned(), APP.to_owned())]);
    let d = container(&ds, DRIVER_CONTAINER);
    for probe in [d.readiness_probe.unwrap(), d.startup_probe.unwrap()] {
        let get = probe.http_get.unwrap();
        assert_eq!(get.path.as_deref(), Some("/healthz"));
        assert_eq!(get.port, IntOrString::String("healthz".to_owned()));
    }
}

#[test]
fn chart_notes_and_metadata() {
    let chart = read("deploy/chart/Chart.yaml");
    let meta: Value = serde_norway::from_str(&chart).unwrap();
    assert!(meta["home"].as_str().unwrap().starts_with("https://"));
    assert!(meta["sources"][0].as_str().unwrap().starts_with("https://"));
    assert!(meta["maintainers"][0]["name"].is_string());
    let annotations = &meta["annotations"];
    assert_eq!(annotations["artifacthub.io/license"], "Apache-2.0");
    // Artifact Hub's image list names every image the default values render.
    let listed: Value =
        serde_norway::from_str(annotations["artifacthub.io/images"].as_str().unwrap()).unwrap();
    let listed: BTreeSet<String> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["image"].as_str().unwrap().to_owned())
        .collect();
    let rendered: BTreeSet<String> = images(&base_daemon_set()).into_iter().collect();
    assert_eq!(listed, rendered);
    assert!(read("deploy/chart/templates/NOTES.txt").contains("rollout status"));
}

#[test]
fn chart_renders_the_dashboard_for_grafanas_sidecar() {
    let Some(python) = helm_python() else {
        return;
    };
    let objects = render_chart(&python, serde_json::json!({}), NAMESPACE);
    assert!(!objects.keys().any(|(kind, _)| kind == "ConfigMap"));
    let values = serde_json::json!({"metrics": {"grafanaDashboard": {
        "enabled": true, "namespace": "monitoring", "annotations": {"grafana_folder": "cert-manager"},
    }}});
    let objects = render_chart(&python, values, NAMESPACE);
    let cm = &objects[&(
        "ConfigMap".to_owned(),
        "cert-manager-csi-driver-dashboard".to_owned(),
    )];
    assert_eq!(cm["metadata"]["namespace"], "monitoring");
    // The label Grafana's sidecar looks for by default.
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(
        cm["metadata"]["annotations"]["grafana_folder"],
        "cert-manager"
    );
    let json: Value =
        serde_json::from_str(cm["data"]["cert-manager-csi-driver.json"].as_str().unwrap()).unwrap();
    assert_eq!(json, monitoring::dashboard());
}

/// The install guide's copy commands and the release workflow use the pinned sidecars, and the
/// workflow checks the tag before it publishes anything.
#[test]
fn install_guide_and_release_workflow_follow_the_pins() {
    let install = read("docs/install.md");
    for (upstream, tag) in [
        (REGISTRAR_UPSTREAM, REGISTRAR_TAG),
        (LIVENESS_UPSTREAM, LIVENESS_TAG),
    ] {
        let reference = format!("docker://{upstream}:{tag}");
        assert!(
            install.contains(&reference),
            "docs/install.md lacks {reference}"
        );
    }
    let workflow = read(".github/workflows/release.yml");
    assert!(workflow.contains("cargo xtask deploy --check --release-tag \"$GITHUB_REF_NAME\""));
    for upstream in [REGISTRAR_UPSTREAM, LIVENESS_UPSTREAM] {
        let (registry, name) = upstream.rsplit_once('/').unwrap();
        assert!(workflow.contains(name), "release.yml does not copy {name}");
        assert!(workflow.contains(&format!("docker://{registry}/$name:$tag")));
    }
    // Every job that publishes waits for the version check.
    let mut jobs: Vec<String> = Vec::new();
    for line in workflow.lines() {
        // A job starts at two spaces of indentation (under `jobs:`).
        if line.starts_with("  ") && !line.starts_with("   ") {
            jobs.push(String::new());
        }
        if let Some(job) = jobs.last_mut() {
            job.push_str(line);
            job.push('\n');
        }
    }
    let publishing: Vec<&String> = jobs
        .iter()
        .filter(|job| job.contains("packages: write"))
        .collect();
    assert!(publishing.len() >= 3);
    for job in publishing {
        assert!(
            job.contains("needs: versions") || job.contains("needs: [image, sidecars]"),
            "a publishing job does not wait for the version check:\n{job}"
        );
    }
}

#[test]
fn selinux_mount_component_and_chart_agree() {
    let Some(mut kustomized) = super::kustomize_base_with_component("selinux-mount") else {
        return;
    };
    let key = ("CSIDriver".to_owned(), DRIVER_NAME.to_owned());
    assert_eq!(kustomized[&key]["spec"]["seLinuxMount"], true);
    // Only the CSIDriver changes, and its immutable fields stay the Go chart's.
    assert_go_immutable_fields(&kustomized, DRIVER_NAME);
    let mut base = base_objects();
    base.remove(&key);
    let driver = kustomized.remove(&key).unwrap();
    assert_eq!(kustomized, base);
    let Some(python) = helm_python() else {
        return;
    };
    let chart = without_helm_labels(render_chart(
        &python,
        serde_json::json!({"app": {"driver": {"seLinuxMount": true}}}),
        NAMESPACE,
    ));
    assert_eq!(chart[&key], driver);
}
