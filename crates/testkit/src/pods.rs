//! Core v1 Pods for the fake API: get, list and watch (all namespaces or one,
//! with `fieldSelector=spec.nodeName=...`), enough for the driver's
//! node-scoped Pod watch. Tests set a Pod's node, IPs, conditions and
//! annotations through [`FakeApi`](crate::FakeApi)'s `*_pod*` methods; each
//! change is a `MODIFIED` event. There is no create over HTTP: the kubelet,
//! not the driver, owns Pods.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::history::{Expired, Start};
use crate::page::Page;
use crate::state::{ApiError, event_line, random_uid};

/// The Pods and their watchers (their own resourceVersion counter: the
/// driver never compares versions across resources).
#[derive(Default)]
pub(crate) struct Pods {
    rv: u64,
    /// A watch resuming from below this resourceVersion gets `410 Gone`.
    compacted_rv: u64,
    pods: BTreeMap<(String, String), Value>,
    watchers: Vec<(Option<String>, Option<String>, mpsc::UnboundedSender<Bytes>)>,
}

/// The node a `fieldSelector` asks for, if any; other fields are refused.
pub(crate) fn node_selector(query: &HashMap<String, String>) -> Result<Option<String>, ApiError> {
    let Some(sel) = query.get("fieldSelector").filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let mut node = None;
    for term in sel.split(',') {
        match term.split_once('=') {
            Some(("spec.nodeName", v)) => node = Some(v.trim_start_matches('=').to_owned()),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "field label not supported for pods: {term} (only spec.nodeName)"
                )));
            }
        }
    }
    Ok(node)
}

fn on_node(pod: &Value, node: Option<&str>) -> bool {
    node.is_none_or(|n| pod.pointer("/spec/nodeName").and_then(Value::as_str) == Some(n))
}

impl Pods {
    /// Changes (or creates, on `node`) Pod `ns/name` and tells the watchers.
    pub(crate) fn update(&mut self, ns: &str, name: &str, node: &str, f: impl FnOnce(&mut Value)) {
        self.rv += 1;
        let key = (ns.to_owned(), name.to_owned());
        let (ty, pod) = match self.pods.get(&key) {
            Some(p) => ("MODIFIED", p.clone()),
            None => (
                "ADDED",
                json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "namespace": ns, "uid": random_uid(), "annotations": {}},
                    "spec": {"nodeName": node, "containers": [{"name": "app", "image": "app"}]},
                    "status": {"phase": "Pending", "conditions": [], "podIPs": []},
                }),
            ),
        };
        let mut pod = pod;
        f(&mut pod);
        pod["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.pods.insert(key, pod.clone());
        self.notify(ty, &pod);
    }

    fn notify(&mut self, ty: &str, pod: &Value) {
        let ns = pod.pointer("/metadata/namespace").and_then(Value::as_str);
        self.watchers.retain(|(wns, node, tx)| {
            if wns.as_deref().is_some_and(|w| Some(w) != ns) || !on_node(pod, node.as_deref()) {
                return !tx.is_closed();
            }
            tx.send(event_line(ty, pod)).is_ok()
        });
    }

    /// Removes a Pod.
    pub(crate) fn delete(&mut self, ns: &str, name: &str) {
        if let Some(mut pod) = self.pods.remove(&(ns.to_owned(), name.to_owned())) {
            self.rv += 1;
            pod["metadata"]["resourceVersion"] = json!(self.rv.to_string());
            self.notify("DELETED", &pod);
        }
    }

    pub(crate) fn get(&self, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.pods
            .get(&(ns.to_owned(), name.to_owned()))
            .cloned()
            .ok_or_else(|| ApiError::not_found(name))
    }

    /// A list, paged as the API server pages (see [`Page::of`]).
    pub(crate) fn list(&self, ns: Option<&str>, node: Option<&str>, page: &Page) -> Value {
        let all = self
            .pods
            .iter()
            .filter(|((pns, _), p)| ns.is_none_or(|n| n == pns) && on_node(p, node))
            .map(|((pns, name), p)| (format!("{pns}/{name}"), p));
        let (items, meta) = page.apply(all, self.rv);
        json!({"kind": "PodList", "apiVersion": "v1", "metadata": meta, "items": items})
    }

    /// A watch from `rv`. As the API server: a streaming list
    /// (`streaming`) or a watch from resourceVersion 0 or unset starts with
    /// the current Pods as ADDED events (a streaming list then ends them
    /// with the `k8s.io/initial-events-end` bookmark); a watch resuming from
    /// a compacted resourceVersion gets one `410 Gone` ERROR event. The fake
    /// keeps no Pod history, so a resumed watch sees only later changes.
    pub(crate) fn watch(
        &mut self,
        ns: Option<String>,
        node: Option<String>,
        rv: Option<u64>,
        streaming: bool,
    ) -> mpsc::UnboundedReceiver<Bytes> {
        let (tx, rx) = mpsc::unbounded_channel();
        match Start::of(rv, streaming) {
            Start::After(rv) => {
                if rv < self.compacted_rv {
                    let gone = ApiError::from(Expired {
                        rv,
                        compacted_rv: self.compacted_rv,
                    });
                    let _ = tx.send(event_line("ERROR", &gone.status_json()));
                    return rx;
                }
            }
            Start::Current => {
                for ((pns, _), pod) in &self.pods {
                    if ns.as_ref().is_none_or(|n| n == pns) && on_node(pod, node.as_deref()) {
                        let _ = tx.send(event_line("ADDED", pod));
                    }
                }
                if streaming {
                    let _ = tx.send(crate::state::initial_events_end("v1", "Pod", self.rv));
                }
            }
        }
        self.watchers.push((ns, node, tx));
        rx
    }

    /// Forgets the history: watches resuming from an older resourceVersion get 410.
    pub(crate) fn expire_history(&mut self) {
        // Past every resourceVersion a client has seen, so any resumed
        // watch is refused; a fresh list returns this one and may resume.
        self.rv += 1;
        self.compacted_rv = self.rv;
    }

    /// Ends every open Pod watch.
    pub(crate) fn drop_watches(&mut self) {
        self.watchers.clear();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_watches_only_the_nodes_pods() {
        let mut pods = Pods::default();
        let q = |s: &str| HashMap::from([("fieldSelector".to_owned(), s.to_owned())]);
        assert_eq!(
            node_selector(&q("spec.nodeName=node-a"))
                .unwrap()
                .as_deref(),
            Some("node-a")
        );
        assert!(node_selector(&q("status.phase=Running")).is_err());
        let mut rx = pods.watch(None, Some("node-a".into()), None, false);
        pods.update("ns", "a", "node-a", |_| {});
        pods.update("ns", "b", "node-b", |_| {});
        pods.update("ns", "a", "", |p| {
            p["status"]["podIPs"] = json!([{"ip": "10.0.0.1"}])
        });
        let list = pods.list(None, Some("node-a"), &Page::of(&HashMap::new()));
        assert_eq!(list["items"].as_array().unwrap().len(), 1);
        let first = String::from_utf8(rx.try_recv().unwrap().to_vec()).unwrap();
        assert!(
            first.contains("ADDED") && first.contains("\"a\""),
            "{first}"
        );
        let second = String::from_utf8(rx.try_recv().unwrap().to_vec()).unwrap();
        assert!(
            second.contains("MODIFIED") && second.contains("10.0.0.1"),
            "{second}"
        );
        assert!(rx.try_recv().is_err(), "node-b's Pod is not sent");
    }
}
