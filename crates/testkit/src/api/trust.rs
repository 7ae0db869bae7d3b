//! [`FakeApi`]'s helpers for trust bundle sources: ClusterTrustBundles and
//! ConfigMaps written, replaced and deleted as a cluster admin or
//! trust-manager would (validated, watched, counted as no client call).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{FakeApi, lock};
use crate::objects::{CONFIGMAP, CTB, Kind};

impl FakeApi {
    /// Creates or replaces ClusterTrustBundle `name` with this signer (none for
    /// a bundle without one), labels and PEM bundle; the API's validation
    /// applies (signer-name prefix, PEM certificates only). Returns the error
    /// `Status` object when refused.
    pub fn put_cluster_trust_bundle(
        &self,
        name: &str,
        signer_name: Option<&str>,
        labels: &BTreeMap<String, String>,
        pem: &str,
    ) -> Result<Value, Value> {
        let mut spec = json!({ "trustBundle": pem });
        if let Some(s) = signer_name {
            spec["signerName"] = json!(s);
        }
        let obj = json!({
            "apiVersion": "certificates.k8s.io/v1",
            "kind": "ClusterTrustBundle",
            "metadata": { "name": name, "labels": labels },
            "spec": spec,
        });
        self.put(&CTB, "", name, obj)
    }

    /// Creates or replaces ConfigMap `ns/name` with these labels and data.
    pub fn put_config_map(
        &self,
        ns: &str,
        name: &str,
        labels: &BTreeMap<String, String>,
        data: &BTreeMap<String, String>,
    ) -> Result<Value, Value> {
        let obj = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": { "name": name, "namespace": ns, "labels": labels },
            "data": data,
        });
        self.put(&CONFIGMAP, ns, name, obj)
    }

    /// Deletes ClusterTrustBundle `name`; whether it existed.
    pub fn delete_cluster_trust_bundle(&self, name: &str) -> bool {
        lock(&self.shared.objects)
            .delete(&CTB, "", name, &Value::Null)
            .is_ok()
    }

    /// Deletes ConfigMap `ns/name`; whether it existed.
    pub fn delete_config_map(&self, ns: &str, name: &str) -> bool {
        lock(&self.shared.objects)
            .delete(&CONFIGMAP, ns, name, &Value::Null)
            .is_ok()
    }

    fn put(
        &self,
        kind: &'static Kind,
        ns: &str,
        name: &str,
        mut obj: Value,
    ) -> Result<Value, Value> {
        let mut store = lock(&self.shared.objects);
        match store.get(kind, ns, name) {
            Ok(old) => {
                obj["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
                store.replace(kind, "v1", ns, name, obj, false)
            }
            Err(_) => store.create(kind, "v1", ns, obj),
        }
        .map_err(|e| e.status_json())
    }
}
