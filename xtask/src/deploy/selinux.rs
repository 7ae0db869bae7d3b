//! `deploy/components/selinux-mount/`: the kustomize counterpart of the chart's
//! `app.driver.seLinuxMount` (CSIDriver `spec.seLinuxMount: true`; docs/install.md, SELinux
//! nodes). The field is mutable, so the component can be added to a running install.

use anyhow::Result;
use serde_json::json;

use super::render::doc;

/// (path under `deploy/`, text) of the component.
pub fn files(driver_name: &str) -> Result<Vec<(String, String)>> {
    let patch = serde_norway::to_string(&json!([
        {"op": "add", "path": "/spec/seLinuxMount", "value": true},
    ]))?;
    Ok(vec![(
        "components/selinux-mount/kustomization.yaml".to_owned(),
        doc(
            &json!({
                "apiVersion": "kustomize.config.k8s.io/v1alpha1",
                "kind": "Component",
                "patches": [
                    {"target": {"group": "storage.k8s.io", "version": "v1", "kind": "CSIDriver", "name": driver_name},
                     "patch": patch},
                ],
            }),
            &[],
        )?,
    )])
}
