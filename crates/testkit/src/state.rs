//! The fake API server's object store: CertificateRequests, the global
//! resourceVersion counter, the retained event history and open watches.

use crate::history::{Expired, History, Start};
use crate::selector::{FieldSelector, LabelSelector};
use bytes::Bytes;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::mpsc;

pub(crate) use crate::patch::{json_patch, merge_patch};

pub(crate) const GROUP: &str = "cert-manager.io";
pub(crate) const VERSION: &str = "v1";
pub(crate) const API_VERSION: &str = "cert-manager.io/v1";
pub(crate) const KIND: &str = "CertificateRequest";
pub(crate) const PLURAL: &str = "certificaterequests";

/// A Kubernetes API error, rendered as a `Status` object.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub name: Option<String>,
}

/// The API server's answer to a watch resuming from a compacted
/// resourceVersion (see [`crate::history`]).
impl From<Expired> for ApiError {
    fn from(e: Expired) -> Self {
        Self::new(410, "Expired", e.message())
    }
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            name: None,
        }
    }

    pub fn not_found(name: &str) -> Self {
        Self {
            name: Some(name.to_string()),
            ..Self::new(
                404,
                "NotFound",
                format!("{PLURAL}.{GROUP} \"{name}\" not found"),
            )
        }
    }

    pub fn invalid(name: &str, message: impl Into<String>) -> Self {
        Self {
            name: Some(name.to_string()),
            ..Self::new(
                422,
                "Invalid",
                format!("{KIND}.{GROUP} \"{name}\" is invalid: {}", message.into()),
            )
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn status_json(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(name) = &self.name {
            v["details"] = json!({"name": name, "group": GROUP, "kind": PLURAL});
        }
        v
    }
}

/// What kind of change an event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventKind {
    Added,
    Modified,
    Deleted,
}

#[derive(Debug, Clone)]
pub(crate) struct StoredEvent {
    pub kind: EventKind,
    pub obj: Arc<Value>,
    pub old: Option<Arc<Value>>,
}

pub(crate) struct Watcher {
    pub ns: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub bookmarks: bool,
    pub tx: mpsc::UnboundedSender<Bytes>,
}

impl Watcher {
    fn selects(&self, obj: &Value) -> bool {
        let ns_ok = self.ns.as_deref().is_none_or(|ns| {
            obj.pointer("/metadata/namespace").and_then(Value::as_str) == Some(ns)
        });
        ns_ok && self.labels.matches(obj) && self.fields.matches(obj)
    }

    /// The watch event this watcher sees for a stored event, if any. A
    /// modification that moves an object into or out of the selection is
    /// seen as ADDED or DELETED, as the real API server does.
    fn render(&self, ev: &StoredEvent) -> Option<Bytes> {
        let now = self.selects(&ev.obj);
        let ty = match ev.kind {
            EventKind::Added => now.then_some("ADDED"),
            EventKind::Deleted => now.then_some("DELETED"),
            EventKind::Modified => {
                let before = ev.old.as_deref().is_some_and(|o| self.selects(o));
                match (before, now) {
                    (true, true) => Some("MODIFIED"),
                    (false, true) => Some("ADDED"),
                    (true, false) => Some("DELETED"),
                    (false, false) => None,
                }
            }
        }?;
        Some(event_line(ty, &ev.obj))
    }
}

pub(crate) fn event_line(ty: &str, obj: &Value) -> Bytes {
    /// One watch event, serialized from the stored object without copying it
    /// into a new `Value` first (every watcher gets one per change).
    #[derive(serde::Serialize)]
    struct Line<'a> {
        #[serde(rename = "type")]
        ty: &'a str,
        object: &'a Value,
    }
    let mut line = serde_json::to_vec(&Line { ty, object: obj }).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// The `BOOKMARK` that ends a streaming list's initial events: the list's
/// resourceVersion and the `k8s.io/initial-events-end` annotation, as the
/// API server sends it.
pub(crate) fn initial_events_end(api_version: &str, kind: &str, rv: u64) -> bytes::Bytes {
    event_line(
        "BOOKMARK",
        &json!({"kind": kind, "apiVersion": api_version, "metadata": {
            "resourceVersion": rv.to_string(),
            "annotations": {"k8s.io/initial-events-end": "true"},
        }}),
    )
}

pub(crate) fn bookmark_line(rv: u64, extra_annotations: Option<Value>) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some(a) = extra_annotations {
        meta["annotations"] = a;
    }
    event_line(
        "BOOKMARK",
        &json!({"kind": KIND, "apiVersion": API_VERSION, "metadata": meta}),
    )
}

/// Parameters of a watch request.
pub(crate) struct WatchParams {
    pub ns: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub bookmarks: bool,
    pub resource_version: Option<u64>,
    pub send_initial_events: bool,
}

pub(crate) struct State {
    pub objects: BTreeMap<(String, String), Arc<Value>>,
    pub rv: u64,
    /// Kept for watches that resume from a resourceVersion.
    pub history: History<StoredEvent>,
    pub watchers: Vec<Watcher>,
}

pub(crate) fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // A failing OS RNG leaves zeros; names stay unique through the retry in create().
    let _ = getrandom::fill(&mut b);
    b
}

pub(crate) fn random_uid() -> String {
    let mut b = random_bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The API server's `generateName` suffix alphabet (no vowels, no confusables).
const SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn random_suffix() -> String {
    random_bytes::<5>()
        .iter()
        .map(|b| SUFFIX_ALPHABET[*b as usize % SUFFIX_ALPHABET.len()] as char)
        .collect()
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric()
}

/// The identity a bearer token stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserInfo {
    /// `spec.username`, e.g. `system:serviceaccount:ns:sa`.
    pub username: String,
    /// `spec.uid`.
    pub uid: Option<String>,
    /// `spec.groups`.
    pub groups: Vec<String>,
}

impl UserInfo {
    /// A user with only a name; a ServiceAccount name
    /// (`system:serviceaccount:NS:NAME`) gets the groups the API server gives it.
    pub fn new(username: impl Into<String>) -> Self {
        let username = username.into();
        let mut groups = Vec::new();
        if let Some(rest) = username.strip_prefix("system:serviceaccount:") {
            groups.push("system:serviceaccounts".to_string());
            if let Some((ns, _)) = rest.split_once(':') {
                groups.push(format!("system:serviceaccounts:{ns}"));
            }
        }
        groups.push("system:authenticated".to_string());
        Self {
            username,
            uid: None,
            groups,
        }
    }
}

impl State {
    pub fn new(history_limit: usize) -> Self {
        Self {
            objects: BTreeMap::new(),
            rv: 1,
            history: History::new(history_limit),
            watchers: Vec::new(),
        }
    }

    fn emit(&mut self, kind: EventKind, obj: Arc<Value>, old: Option<Arc<Value>>) {
        let ev = StoredEvent { kind, obj, old };
        self.watchers.retain(|w| match w.render(&ev) {
            Some(line) => w.tx.send(line).is_ok(),
            None => !w.tx.is_closed(),
        });
        self.history.record(self.rv, ev);
    }

    /// Forgets all history: a watch from any resourceVersion older than now gets 410.
    pub fn expire_history(&mut self) {
        self.history.expire(self.rv);
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    pub fn create(
        &mut self,
        ns: &str,
        mut body: Value,
        user: &UserInfo,
    ) -> Result<Value, ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the request body is not a JSON object",
            ));
        }
        if body
            .get("kind")
            .and_then(Value::as_str)
            .is_some_and(|k| k != KIND)
        {
            return Err(ApiError::bad_request(format!("kind must be {KIND}")));
        }
        if body
            .get("apiVersion")
            .and_then(Value::as_str)
            .is_some_and(|k| k != API_VERSION)
        {
            return Err(ApiError::bad_request(format!(
                "apiVersion must be {API_VERSION}"
            )));
        }
        let meta = body
            .as_object_mut()
            .and_then(|o| {
                o.entry("metadata")
                    .or_insert_with(|| Value::Object(Map::new()))
                    .as_object_mut()
            })
            .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
        if let Some(body_ns) = meta.get("namespace").and_then(Value::as_str)
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
            Some(n) => n.to_string(),
            None => {
                let prefix = meta
                    .get("generateName")
                    .and_then(Value::as_str)
                    .filter(|p| !p.is_empty())
                    .ok_or_else(|| {
                        ApiError::invalid(
                            "",
                            "metadata.name: Required value: name or generateName is required",
                        )
                    })?
                    .to_string();
                let mut name = format!("{prefix}{}", random_suffix());
                for _ in 0..8 {
                    if !self.objects.contains_key(&(ns.to_string(), name.clone())) {
                        break;
                    }
                    name = format!("{prefix}{}", random_suffix());
                }
                name
            }
        };
        if !valid_name(&name) {
            return Err(ApiError::invalid(
                &name,
                "metadata.name: Invalid value: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'",
            ));
        }
        if self.objects.contains_key(&(ns.to_string(), name.clone())) {
            return Err(ApiError {
                name: Some(name.clone()),
                ..ApiError::new(
                    409,
                    "AlreadyExists",
                    format!("{PLURAL}.{GROUP} \"{name}\" already exists"),
                )
            });
        }
        validate_spec(&name, &body)?;
        let rv = self.next_rv();
        let meta = body
            .pointer_mut("/metadata")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
        meta.insert("name".into(), json!(name));
        meta.insert("namespace".into(), json!(ns));
        meta.insert("uid".into(), json!(random_uid()));
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
        meta.insert("generation".into(), json!(1));
        meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
        meta.remove("deletionTimestamp");
        let obj = body
            .as_object_mut()
            .ok_or_else(|| ApiError::bad_request("the request body is not a JSON object"))?;
        obj.insert("apiVersion".into(), json!(API_VERSION));
        obj.insert("kind".into(), json!(KIND));
        obj.remove("status");
        if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
            // What cert-manager's webhook records: who created the request.
            spec.insert("username".into(), json!(user.username));
            match &user.uid {
                Some(uid) => spec.insert("uid".into(), json!(uid)),
                None => spec.remove("uid"),
            };
            spec.insert("groups".into(), json!(user.groups));
            spec.remove("extra");
        }
        let arc = Arc::new(body);
        self.objects.insert((ns.to_string(), name), arc.clone());
        self.emit(EventKind::Added, arc.clone(), None);
        Ok((*arc).clone())
    }

    pub fn get(&self, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.objects
            .get(&(ns.to_string(), name.to_string()))
            .map(|v| (**v).clone())
            .ok_or_else(|| ApiError::not_found(name))
    }

    pub fn select(
        &self,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> Vec<Arc<Value>> {
        self.objects
            .iter()
            .filter(|((o_ns, _), _)| ns.is_none_or(|n| n == o_ns))
            .filter(|(_, v)| labels.matches(v) && fields.matches(v))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Replaces an object (PUT) or its status (PUT on `/status`), keeping
    /// what the client may not change.
    pub fn replace(
        &mut self,
        ns: &str,
        name: &str,
        mut new: Value,
        status_only: bool,
    ) -> Result<Value, ApiError> {
        let key = (ns.to_string(), name.to_string());
        let old = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(name))?;
        if !new.is_object() {
            return Err(ApiError::bad_request(
                "the request body is not a JSON object",
            ));
        }
        if let Some(body_name) = new.pointer("/metadata/name").and_then(Value::as_str)
            && body_name != name
        {
            return Err(ApiError::bad_request(
                "the name of the object does not match the name on the URL",
            ));
        }
        if let Some(rv) = new
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            && !rv.is_empty()
            && Some(rv)
                != old
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
        {
            return Err(ApiError {
                name: Some(name.to_string()),
                ..ApiError::new(
                    409,
                    "Conflict",
                    format!(
                        "Operation cannot be fulfilled on {PLURAL}.{GROUP} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
                    ),
                )
            });
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
            m
        } else {
            if new.get("spec") != old.get("spec") {
                return Err(ApiError::invalid(
                    name,
                    "spec: Forbidden: field is immutable",
                ));
            }
            // Keep status and the server-owned metadata.
            match old.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(o) = new.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
            for field in [
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "generation",
            ] {
                if let Some(v) = old.pointer(&format!("/metadata/{field}")) {
                    new["metadata"][field] = v.clone();
                }
            }
            new["apiVersion"] = json!(API_VERSION);
            new["kind"] = json!(KIND);
            new
        };
        Ok(self.store_modified(key, merged, old))
    }

    fn store_modified(&mut self, key: (String, String), mut obj: Value, old: Arc<Value>) -> Value {
        let rv = self.next_rv();
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let arc = Arc::new(obj);
        self.objects.insert(key, arc.clone());
        self.emit(EventKind::Modified, arc.clone(), Some(old));
        (*arc).clone()
    }

    /// Applies `f` to a copy of the object and stores it as a modification
    /// (the in-process issuer's status writes). `None` when it is gone.
    pub fn update_with(
        &mut self,
        ns: &str,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) -> Option<Value> {
        let key = (ns.to_string(), name.to_string());
        let old = self.objects.get(&key).cloned()?;
        let mut new = (*old).clone();
        f(&mut new);
        Some(self.store_modified(key, new, old))
    }

    pub fn delete(&mut self, ns: &str, name: &str) -> Result<Value, ApiError> {
        let key = (ns.to_string(), name.to_string());
        let old = self
            .objects
            .remove(&key)
            .ok_or_else(|| ApiError::not_found(name))?;
        let rv = self.next_rv();
        let mut obj = (*old).clone();
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let arc = Arc::new(obj);
        self.emit(EventKind::Deleted, arc.clone(), Some(old));
        Ok((*arc).clone())
    }

    /// Opens a watch: queues the initial events and registers the watcher, or
    /// returns the 410 the client must answer with a relist.
    pub fn watch(&mut self, p: WatchParams) -> Result<mpsc::UnboundedReceiver<Bytes>, ApiError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let w = Watcher {
            ns: p.ns,
            labels: p.labels,
            fields: p.fields,
            bookmarks: p.bookmarks,
            tx,
        };
        match Start::of(p.resource_version, p.send_initial_events) {
            Start::After(rv) => {
                for ev in self.history.after(rv)? {
                    if let Some(line) = w.render(ev) {
                        let _ = w.tx.send(line);
                    }
                }
            }
            Start::Current => {
                for obj in self.objects.values().filter(|o| w.selects(o)) {
                    let _ = w.tx.send(event_line("ADDED", obj));
                }
                // A streaming list (`sendInitialEvents=true`): the current
                // state as ADDED events, then the bookmark that ends them.
                // (A watch from resourceVersion 0 without it gets the same
                // ADDED events and no bookmark, as the API server sends.)
                if p.send_initial_events {
                    let _ = w.tx.send(initial_events_end(API_VERSION, KIND, self.rv));
                }
            }
        }
        self.watchers.push(w);
        Ok(rx)
    }

    pub fn send_bookmarks(&mut self) {
        let line = bookmark_line(self.rv, None);
        self.watchers
            .retain(|w| !w.bookmarks || w.tx.send(line.clone()).is_ok());
    }

    pub fn drop_watches(&mut self) -> usize {
        let n = self.watchers.iter().filter(|w| !w.tx.is_closed()).count();
        self.watchers.clear();
        n
    }

    pub fn open_watches(&mut self) -> usize {
        self.watchers.retain(|w| !w.tx.is_closed());
        self.watchers.len()
    }
}

fn validate_spec(name: &str, body: &Value) -> Result<(), ApiError> {
    use base64::Engine as _;
    let spec = body
        .get("spec")
        .and_then(Value::as_object)
        .ok_or_else(|| ApiError::invalid(name, "spec: Required value"))?;
    let request = spec
        .get("request")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::invalid(name, "spec.request: Required value"))?;
    base64::engine::general_purpose::STANDARD
        .decode(request)
        .map_err(|e| {
            ApiError::invalid(
                name,
                format!("spec.request: Invalid value: not base64: {e}"),
            )
        })?;
    spec.get("issuerRef")
        .and_then(|r| r.get("name"))
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::invalid(name, "spec.issuerRef.name: Required value"))?;
    if let Some(d) = spec.get("duration") {
        let ok = d
            .as_str()
            .is_some_and(|s| crate::ca::parse_go_duration(s).is_ok());
        if !ok {
            return Err(ApiError::invalid(
                name,
                format!("spec.duration: Invalid value: {d}: not a duration"),
            ));
        }
    }
    if let Some(usages) = spec.get("usages")
        && !usages.is_array()
    {
        return Err(ApiError::invalid(name, "spec.usages: must be a list"));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn uid_and_suffix_shapes() {
        let u = random_uid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        let s = random_suffix();
        assert_eq!(s.len(), 5);
        assert!(s.bytes().all(|c| SUFFIX_ALPHABET.contains(&c)));
    }
}
