//! Built-in Kubernetes kinds the Pod certificate signer talks to:
//! `PodCertificateRequest` (`certificates.k8s.io/v1` and `v1beta1`, with a
//! validated `/status` subresource), `ClusterTrustBundle`
//! (`certificates.k8s.io/v1` and `v1beta1`) and `Lease`
//! (`coordination.k8s.io/v1`): their store. `server/objects.rs` serves it over HTTP.
//!
//! One store for the three (its own resourceVersion counter: clients never
//! compare versions across resources), with get, list, watch (label and
//! field selectors, resume from a resourceVersion, `410 Gone` past the kept
//! history, `sendInitialEvents`), create, update (optimistic concurrency on
//! `metadata.resourceVersion`) and delete. Each version of a kind reads and
//! writes the same objects, as the API server converts between versions of
//! one stored resource.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, watch};

use crate::history::{History, Start};
use crate::selector::LabelSelector;
use crate::state::{ApiError, event_line, now_rfc3339, random_uid};

mod validate;

/// A kind this module serves.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Kind {
    pub group: &'static str,
    /// Every version the fake can serve, newest first.
    pub versions: &'static [&'static str],
    pub plural: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    /// Field selectors the API server supports for this kind (besides
    /// `metadata.name` and `metadata.namespace`).
    pub fields: &'static [&'static str],
    pub status: bool,
}

/// `certificates.k8s.io` PodCertificateRequests (GA in 1.37, beta in 1.35–1.36).
pub(crate) const PCR: Kind = Kind {
    group: "certificates.k8s.io",
    versions: &["v1", "v1beta1"],
    plural: "podcertificaterequests",
    kind: "PodCertificateRequest",
    namespaced: true,
    fields: &["spec.signerName", "spec.podName", "spec.nodeName"],
    status: true,
};

/// `certificates.k8s.io` ClusterTrustBundles (GA in 1.37, beta in 1.33–1.36).
pub(crate) const CTB: Kind = Kind {
    group: "certificates.k8s.io",
    versions: &["v1", "v1beta1"],
    plural: "clustertrustbundles",
    kind: "ClusterTrustBundle",
    namespaced: false,
    fields: &["spec.signerName"],
    status: false,
};

/// `coordination.k8s.io/v1` Leases (leader election).
pub(crate) const LEASE: Kind = Kind {
    group: "coordination.k8s.io",
    versions: &["v1"],
    plural: "leases",
    kind: "Lease",
    namespaced: true,
    fields: &[],
    status: false,
};

/// Core `v1` ConfigMaps (trust-manager's bundle targets). The core group is
/// served under `/api/v1`, not `/apis/<group>/<version>`.
pub(crate) const CONFIGMAP: Kind = Kind {
    group: "",
    versions: &["v1"],
    plural: "configmaps",
    kind: "ConfigMap",
    namespaced: true,
    fields: &[],
    status: false,
};

pub(crate) const KINDS: [&Kind; 4] = [&PCR, &CTB, &LEASE, &CONFIGMAP];

/// How many changes the store keeps for watches resuming from an older
/// resourceVersion (the API server's watch cache keeps a window too).
const HISTORY: usize = 20_000;

/// A field selector: `(field, equals, value)` terms, all of which must hold.
pub(crate) type Fields = Vec<(String, bool, String)>;

pub(crate) struct Watcher {
    pub plural: &'static str,
    pub version: String,
    pub ns: Option<String>,
    pub labels: LabelSelector,
    pub fields: Fields,
    pub tx: mpsc::UnboundedSender<Bytes>,
}

struct Change {
    plural: &'static str,
    ty: &'static str,
    obj: Arc<Value>,
    old: Option<Arc<Value>>,
}

/// The objects of the kinds above, their watchers and recent changes.
pub(crate) struct Store {
    pub(crate) rv: u64,
    objects: BTreeMap<(&'static str, String, String), Arc<Value>>,
    watchers: Vec<Watcher>,
    /// Kept for watches that resume from a resourceVersion.
    history: History<Change>,
    /// The versions of `certificates.k8s.io` served (a cluster on 1.35–1.36
    /// serves only `v1beta1`, with the beta APIs turned on).
    pub certificates_versions: Vec<String>,
    changed: watch::Sender<u64>,
}

impl Default for Store {
    fn default() -> Self {
        Self {
            rv: 1,
            objects: BTreeMap::new(),
            watchers: Vec::new(),
            history: History::new(HISTORY),
            certificates_versions: vec!["v1".into(), "v1beta1".into()],
            changed: watch::channel(0).0,
        }
    }
}

pub(crate) fn str_at<'a>(v: &'a Value, ptr: &str) -> Option<&'a str> {
    v.pointer(ptr).and_then(Value::as_str)
}

fn field_value<'a>(obj: &'a Value, field: &str) -> &'a str {
    let ptr = format!("/{}", field.replace('.', "/"));
    str_at(obj, &ptr).unwrap_or("")
}

pub(crate) fn parse_fields(kind: &Kind, s: &str) -> Result<Fields, ApiError> {
    let mut out = Vec::new();
    for term in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (f, eq, v) = if let Some((f, v)) = term.split_once("!=") {
            (f, false, v)
        } else if let Some((f, v)) = term.split_once("==") {
            (f, true, v)
        } else if let Some((f, v)) = term.split_once('=') {
            (f, true, v)
        } else {
            return Err(ApiError::bad_request(format!(
                "invalid field selector term {term:?}"
            )));
        };
        let f = f.trim();
        if f != "metadata.name" && f != "metadata.namespace" && !kind.fields.contains(&f) {
            return Err(ApiError::bad_request(format!(
                "field label not supported: {f}"
            )));
        }
        out.push((f.to_owned(), eq, v.trim().to_owned()));
    }
    Ok(out)
}

impl Watcher {
    pub(crate) fn selects(&self, plural: &str, obj: &Value) -> bool {
        plural == self.plural
            && self
                .ns
                .as_deref()
                .is_none_or(|ns| str_at(obj, "/metadata/namespace") == Some(ns))
            && self.labels.matches(obj)
            && self
                .fields
                .iter()
                .all(|(f, eq, v)| (field_value(obj, f) == v) == *eq)
    }

    fn render(&self, c: &Change) -> Option<Bytes> {
        let now = self.selects(c.plural, &c.obj);
        let before = c.old.as_deref().is_some_and(|o| self.selects(c.plural, o));
        let ty = match (c.ty, before, now) {
            ("ADDED", _, true) | ("MODIFIED", false, true) => "ADDED",
            ("MODIFIED", true, true) => "MODIFIED",
            ("DELETED", _, true) | ("MODIFIED", true, false) => "DELETED",
            _ => return None,
        };
        Some(event_line(ty, &as_version(&c.obj, &self.version)))
    }
}

/// The object as the client's version shows it: borrowed when it is stored
/// in that version already (no copy per watcher and response).
pub(crate) fn as_version<'a>(obj: &'a Value, version: &str) -> std::borrow::Cow<'a, Value> {
    use std::borrow::Cow;
    let Some(api) = str_at(obj, "/apiVersion") else {
        return Cow::Borrowed(obj);
    };
    // The core group's apiVersion is the bare version (`v1`).
    match api.rsplit_once('/') {
        Some((_, v)) if v == version => Cow::Borrowed(obj),
        Some((group, _)) => {
            let mut o = obj.clone();
            o["apiVersion"] = json!(format!("{group}/{version}"));
            Cow::Owned(o)
        }
        None => Cow::Borrowed(obj),
    }
}

/// `group/version`, or the bare version for the core group (`v1`), as the API
/// server writes `apiVersion`.
pub(crate) fn api_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    }
}

impl Store {
    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn emit(
        &mut self,
        plural: &'static str,
        ty: &'static str,
        obj: Arc<Value>,
        old: Option<Arc<Value>>,
    ) {
        let c = Change {
            plural,
            ty,
            obj,
            old,
        };
        self.watchers.retain(|w| match w.render(&c) {
            Some(line) => w.tx.send(line).is_ok(),
            None => !w.tx.is_closed(),
        });
        self.history.record(self.rv, c);
        let rv = self.rv;
        self.changed.send_replace(rv);
    }

    /// Every object of `kind` (in `ns` when given), sorted by namespace and name.
    pub(crate) fn list(&self, kind: &Kind, ns: Option<&str>) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|((p, o_ns, _), _)| *p == kind.plural && ns.is_none_or(|n| n == o_ns))
            .map(|(_, v)| (**v).clone())
            .collect()
    }

    /// One object.
    pub(crate) fn get(&self, kind: &Kind, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.objects
            .get(&(kind.plural, ns.to_owned(), name.to_owned()))
            .map(|v| (**v).clone())
            .ok_or_else(|| not_found(kind, name))
    }

    /// A receiver that changes on every write.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Creates an object as the API server does: name or generateName,
    /// server-owned metadata, status dropped, the kind's validation.
    pub(crate) fn create(
        &mut self,
        kind: &'static Kind,
        version: &str,
        ns: &str,
        mut body: Value,
    ) -> Result<Value, ApiError> {
        let Some(obj) = body.as_object_mut() else {
            return Err(ApiError::bad_request(
                "the request body is not a JSON object",
            ));
        };
        if obj
            .get("kind")
            .and_then(Value::as_str)
            .is_some_and(|k| k != kind.kind)
        {
            return Err(ApiError::bad_request(format!("kind must be {}", kind.kind)));
        }
        let meta = obj
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
        if kind.namespaced
            && let Some(body_ns) = meta.get("namespace").and_then(Value::as_str)
            && body_ns != ns
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let name = match meta
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            Some(n) => n.to_owned(),
            None => match meta.get("generateName").and_then(Value::as_str) {
                Some(p) if !p.is_empty() => format!("{p}{}", &random_uid()[..5]),
                _ => {
                    return Err(invalid(
                        kind,
                        "",
                        "metadata.name: Required value: name or generateName is required",
                    ));
                }
            },
        };
        let key = (kind.plural, ns.to_owned(), name.clone());
        if self.objects.contains_key(&key) {
            return Err(ApiError {
                name: Some(name.clone()),
                ..ApiError::new(
                    409,
                    "AlreadyExists",
                    format!("{}.{} \"{name}\" already exists", kind.plural, kind.group),
                )
            });
        }
        meta.insert("name".into(), json!(name));
        if kind.namespaced {
            meta.insert("namespace".into(), json!(ns));
        } else {
            meta.remove("namespace");
        }
        meta.insert("uid".into(), json!(random_uid()));
        meta.insert("generation".into(), json!(1));
        meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
        obj.insert(
            "apiVersion".into(),
            json!(api_version(kind.group, kind.versions[0])),
        );
        obj.insert("kind".into(), json!(kind.kind));
        if kind.status {
            obj.remove("status");
        }
        validate::on_create(kind, version, &name, &mut body)?;
        let rv = self.next_rv();
        body["metadata"]["resourceVersion"] = json!(rv.to_string());
        let arc = Arc::new(body);
        self.objects.insert(key, arc.clone());
        self.emit(kind.plural, "ADDED", arc.clone(), None);
        Ok((*arc).clone())
    }

    /// PUT of an object or of its `/status`.
    pub(crate) fn replace(
        &mut self,
        kind: &'static Kind,
        version: &str,
        ns: &str,
        name: &str,
        mut new: Value,
        status_only: bool,
    ) -> Result<Value, ApiError> {
        let key = (kind.plural, ns.to_owned(), name.to_owned());
        let old = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| not_found(kind, name))?;
        if !new.is_object() {
            return Err(ApiError::bad_request(
                "the request body is not a JSON object",
            ));
        }
        if str_at(&new, "/metadata/name").is_some_and(|n| n != name) {
            return Err(ApiError::bad_request(
                "the name of the object does not match the name on the URL",
            ));
        }
        // Optimistic concurrency, as every update of the API server.
        if let Some(rv) = str_at(&new, "/metadata/resourceVersion").filter(|r| !r.is_empty())
            && Some(rv) != str_at(&old, "/metadata/resourceVersion")
        {
            return Err(conflict(kind, name));
        }
        let merged = if status_only {
            let mut m = (*old).clone();
            match new.get("status") {
                Some(s) => m["status"] = s.clone(),
                None => {
                    if let Some(o) = m.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
            validate::on_status_update(kind, version, name, &old, &mut m)?;
            m
        } else {
            if kind.status {
                match old.get("status") {
                    Some(s) => new["status"] = s.clone(),
                    None => {
                        if let Some(o) = new.as_object_mut() {
                            o.remove("status");
                        }
                    }
                }
            }
            for f in [
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "generation",
            ] {
                match old.pointer(&format!("/metadata/{f}")) {
                    Some(v) => new["metadata"][f] = v.clone(),
                    None => {
                        if let Some(m) = new["metadata"].as_object_mut() {
                            m.remove(f);
                        }
                    }
                }
            }
            new["apiVersion"] = old["apiVersion"].clone();
            new["kind"] = json!(kind.kind);
            validate::on_update(kind, version, name, &old, &mut new)?;
            new
        };
        Ok(self.store_modified(kind, key, merged, old))
    }

    fn store_modified(
        &mut self,
        kind: &'static Kind,
        key: (&'static str, String, String),
        mut obj: Value,
        old: Arc<Value>,
    ) -> Value {
        let rv = self.next_rv();
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let arc = Arc::new(obj);
        self.objects.insert(key, arc.clone());
        self.emit(kind.plural, "MODIFIED", arc.clone(), Some(old));
        (*arc).clone()
    }

    /// Deletes an object (with optional uid / resourceVersion preconditions).
    pub(crate) fn delete(
        &mut self,
        kind: &'static Kind,
        ns: &str,
        name: &str,
        preconditions: &Value,
    ) -> Result<Value, ApiError> {
        let key = (kind.plural, ns.to_owned(), name.to_owned());
        let old = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| not_found(kind, name))?;
        for f in ["uid", "resourceVersion"] {
            if let Some(want) = str_at(preconditions, &format!("/{f}"))
                && Some(want) != str_at(&old, &format!("/metadata/{f}"))
            {
                return Err(conflict(kind, name));
            }
        }
        self.objects.remove(&key);
        let rv = self.next_rv();
        let mut obj = (*old).clone();
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let arc = Arc::new(obj);
        self.emit(kind.plural, "DELETED", arc.clone(), Some(old));
        Ok((*arc).clone())
    }

    pub(crate) fn watch(
        &mut self,
        w: Watcher,
        rv: Option<u64>,
        initial_events: bool,
    ) -> Result<mpsc::UnboundedReceiver<Bytes>, ApiError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let w = Watcher { tx, ..w };
        match Start::of(rv, initial_events) {
            Start::After(rv) => {
                for c in self.history.after(rv)? {
                    if let Some(line) = w.render(c) {
                        let _ = w.tx.send(line);
                    }
                }
            }
            Start::Current => {
                for ((p, _, _), obj) in &self.objects {
                    if w.selects(p, obj) {
                        let _ = w.tx.send(event_line("ADDED", &as_version(obj, &w.version)));
                    }
                }
                if initial_events {
                    let _ = w.tx.send(event_line(
                        "BOOKMARK",
                        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {
                            "resourceVersion": self.rv.to_string(),
                            "annotations": {"k8s.io/initial-events-end": "true"},
                        }}),
                    ));
                }
            }
        }
        self.watchers.push(w);
        Ok(rx)
    }

    /// Forgets the watch history: a watch resuming from any older
    /// resourceVersion gets `410 Expired`.
    pub(crate) fn expire_history(&mut self) {
        self.history.expire(self.rv);
    }

    /// Ends every open watch (the API going down).
    pub(crate) fn drop_watches(&mut self) {
        self.watchers.clear();
    }
}

fn not_found(kind: &Kind, name: &str) -> ApiError {
    ApiError {
        name: Some(name.to_owned()),
        ..ApiError::new(
            404,
            "NotFound",
            format!("{}.{} \"{name}\" not found", kind.plural, kind.group),
        )
    }
}

fn conflict(kind: &Kind, name: &str) -> ApiError {
    ApiError {
        name: Some(name.to_owned()),
        ..ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {}.{} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                kind.plural, kind.group
            ),
        )
    }
}

pub(crate) fn invalid(kind: &Kind, name: &str, message: impl Into<String>) -> ApiError {
    ApiError {
        name: Some(name.to_owned()),
        ..ApiError::new(
            422,
            "Invalid",
            format!(
                "{}.{} \"{name}\" is invalid: {}",
                kind.kind,
                kind.group,
                message.into()
            ),
        )
    }
}
