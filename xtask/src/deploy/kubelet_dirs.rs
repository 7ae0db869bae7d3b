//! Kustomize components for kubelets with a non-default root directory
//! (`deploy/components/kubelet-root-dir/<distribution>/`).
//!
//! Each component is derived, not written: the DaemonSet generated with that
//! root directory is compared with the default one, and every value that
//! differs (hostPath volumes, the pods directory's mount path, the
//! registrar's `--kubelet-registration-path`) becomes a JSON 6902 `replace`
//! operation, so a new path in the DaemonSet cannot be forgotten.

use anyhow::{Result, bail};
use serde_json::{Value, json};

use super::{APP, Settings, daemon_set};

/// Distributions whose kubelet root directory is not `/var/lib/kubelet`.
pub const KUBELET_ROOT_DIRS: &[(&str, &str)] = &[
    ("k0s", "/var/lib/k0s/kubelet"),
    ("microk8s", "/var/snap/microk8s/common/var/lib/kubelet"),
];

/// `test` + `replace` operations turning `from` into `to` (same shape; leaves differ).
pub fn replace_ops(from: &Value, to: &Value, path: &str, out: &mut Vec<Value>) -> Result<()> {
    match (from, to) {
        (Value::Object(a), Value::Object(b)) => {
            if a.keys().ne(b.keys()) {
                bail!("{path}: the two DaemonSets differ in shape, not only in values");
            }
            for (k, v) in a {
                let key = k.replace('~', "~0").replace('/', "~1");
                replace_ops(v, &b[k], &format!("{path}/{key}"), out)?;
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            if a.len() != b.len() {
                bail!("{path}: the two DaemonSets differ in shape, not only in values");
            }
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                replace_ops(x, y, &format!("{path}/{i}"), out)?;
            }
        }
        // `test` first: kustomize refuses a component whose DaemonSet has
        // moved on, instead of replacing the wrong field.
        (x, y) if x != y => out.extend([
            json!({"op": "test", "path": path, "value": x}),
            json!({"op": "replace", "path": path, "value": y}),
        ]),
        _ => {}
    }
    Ok(())
}

/// The component for a kubelet root directory: its `kustomization.yaml`.
pub fn component(kubelet_root_dir: &str) -> Result<Value> {
    let default = serde_json::to_value(daemon_set(&Settings::default()))?;
    let moved = serde_json::to_value(daemon_set(&Settings {
        kubelet_root_dir: kubelet_root_dir.to_owned(),
        ..Settings::default()
    }))?;
    let mut ops = Vec::new();
    replace_ops(&default, &moved, "", &mut ops)?;
    Ok(json!({
        "apiVersion": "kustomize.config.k8s.io/v1alpha1",
        "kind": "Component",
        "patches": [{
            "target": {"group": "apps", "version": "v1", "kind": "DaemonSet", "name": APP},
            "patch": serde_norway::to_string(&ops)?,
        }],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies `test` and `replace` operations (the kinds [`component`] makes).
    fn apply(doc: &mut Value, ops: &[Value]) {
        for op in ops {
            let path = op["path"].as_str().unwrap();
            let at = doc.pointer_mut(path).unwrap();
            match op["op"].as_str() {
                Some("test") => assert_eq!(*at, op["value"], "{path}"),
                Some("replace") => *at = op["value"].clone(),
                other => panic!("unexpected op {other:?}"),
            }
        }
    }

    /// `kubectl kustomize` of the committed base with each committed
    /// component gives the DaemonSet generated for that directory.
    #[test]
    fn kustomize_renders_each_component_as_the_generator_would() {
        use serde::Deserialize;
        let kustomize_v4_or_later = std::process::Command::new("kubectl")
            .args(["version", "--client"])
            .output()
            .is_ok_and(|o| {
                let text = String::from_utf8_lossy(&o.stdout);
                ["Kustomize Version: v4", "Kustomize Version: v5"]
                    .iter()
                    .any(|v| text.contains(v))
            });
        if !kustomize_v4_or_later {
            eprintln!(
                "SKIPPED: the kubelet-root-dir components were not rendered: \
                 needs kubectl >= 1.24 (kustomize v4+)"
            );
            return;
        }
        let root = crate::workspace_root();
        for (name, dir) in KUBELET_ROOT_DIRS {
            let overlay = root.join(format!("target/kubelet-dir-test/{name}"));
            std::fs::create_dir_all(&overlay).unwrap();
            std::fs::write(
                overlay.join("kustomization.yaml"),
                format!(
                    "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
                     resources:\n- ../../../deploy/base\n\
                     components:\n- ../../../deploy/components/kubelet-root-dir/{name}\n"
                ),
            )
            .unwrap();
            let out = std::process::Command::new("kubectl")
                .arg("kustomize")
                .arg(&overlay)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "kubectl kustomize with the {name} component: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = String::from_utf8(out.stdout).unwrap();
            let ds = serde_norway::Deserializer::from_str(&text)
                .map(|d| Value::deserialize(d).unwrap())
                .find(|d| d["kind"] == "DaemonSet")
                .unwrap();
            let want = serde_json::to_value(daemon_set(&Settings {
                kubelet_root_dir: dir.to_string(),
                ..Settings::default()
            }))
            .unwrap();
            assert_eq!(ds["spec"], want["spec"], "{name}");
        }
    }

    #[test]
    fn each_component_turns_the_default_daemonset_into_its_own() {
        for (_, dir) in KUBELET_ROOT_DIRS {
            let c = component(dir).unwrap();
            let patch = c["patches"][0]["patch"].as_str().unwrap();
            let ops: Vec<Value> = serde_norway::from_str(patch).unwrap();
            let mut ds = serde_json::to_value(daemon_set(&Settings::default())).unwrap();
            apply(&mut ds, &ops);
            let want = serde_json::to_value(daemon_set(&Settings {
                kubelet_root_dir: dir.to_string(),
                ..Settings::default()
            }))
            .unwrap();
            assert_eq!(ds, want, "{dir}");
            // The volumes, the pods mount and the registrar's argument.
            assert!(ops.len() >= 10, "{ops:?}");
            assert!(patch.contains(&format!("{dir}/pods")), "{patch}");
            assert!(
                ops.iter()
                    .filter(|o| o["op"] == "replace")
                    .all(
                        |o| !o["value"].as_str().unwrap().contains("=/var/lib/kubelet/")
                            && !o["value"].as_str().unwrap().starts_with("/var/lib/kubelet")
                    ),
                "{patch}"
            );
        }
    }
}
