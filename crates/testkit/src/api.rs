//! [`FakeApi`]: the handle tests hold on the fake API server.

mod builder;
mod objects;
mod trust;

pub use builder::Builder;

pub use crate::types::{Counts, Error, Fault, Verb};

use crate::issuer;
use crate::script::Script;
use crate::shared::{Ctl, FaultRule, Shared, lock};
use crate::state::UserInfo;
pub use crate::tls::kubeconfig_json;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// The token [`FakeApi::client`] and the standalone server's kubeconfig use.
pub const DEFAULT_TOKEN: &str = "testkit-driver-token";
/// The identity [`DEFAULT_TOKEN`] stands for.
pub const DEFAULT_USERNAME: &str = "system:serviceaccount:cert-manager:cert-manager-csi-driver";

/// A fake Kubernetes API server for cert-manager.io/v1 CertificateRequests,
/// serving plain HTTP (or HTTPS, [`Builder::tls`]) on 127.0.0.1, with an
/// in-process test issuer.
///
/// Dropping the handle does not stop the server; call [`FakeApi::shutdown`].
pub struct FakeApi {
    shared: Arc<Shared>,
    addr: SocketAddr,
    ctl: mpsc::UnboundedSender<Ctl>,
}

impl std::fmt::Debug for FakeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeApi")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl FakeApi {
    /// Starts a server with default options on a free port of 127.0.0.1.
    pub async fn start() -> Result<FakeApi, Error> {
        Builder::default().start().await
    }

    /// Options for a server.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        let scheme = if self.shared.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Lets `token` in as `username` (ServiceAccount names get the usual groups).
    pub fn add_token(&self, token: impl Into<String>, username: impl Into<String>) {
        self.add_token_user(token, UserInfo::new(username));
    }

    /// Lets `token` in as this identity.
    pub fn add_token_user(&self, token: impl Into<String>, user: UserInfo) {
        lock(&self.shared.tokens).insert(token.into(), user);
    }

    /// Stops accepting `token` (later requests with it get 401).
    pub fn remove_token(&self, token: &str) {
        lock(&self.shared.tokens).remove(token);
    }

    /// Writes a kubeconfig (JSON, which is valid YAML) for this server and token.
    pub fn write_kubeconfig(&self, path: impl AsRef<Path>, token: &str) -> Result<(), Error> {
        let bytes =
            serde_json::to_vec_pretty(&self.kubeconfig(token)).map_err(std::io::Error::other)?;
        std::fs::write(path, bytes)?;
        Ok(())
    }

    /// The kubeconfig [`FakeApi::write_kubeconfig`] writes.
    pub fn kubeconfig(&self, token: &str) -> Value {
        let mut kc = kubeconfig_json(&self.url(), token);
        self.add_ca(&mut kc);
        kc
    }

    /// A kubeconfig that authenticates with a client certificate for
    /// `user` issued by the test CA (no token). Needs [`Builder::tls`].
    pub fn client_cert_kubeconfig(&self, user: &str) -> Result<Value, Error> {
        use base64::Engine;
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let (cert_pem, key_der) = self.shared.ca.issue_tls(user, &[], "client auth")?;
        let key_pem = der::pem::encode_string("PRIVATE KEY", der::pem::LineEnding::LF, &key_der)
            .map_err(|e| Error::Tls(e.to_string()))?;
        let mut kc = kubeconfig_json(&self.url(), "");
        kc["users"][0]["user"] = serde_json::json!({
            "client-certificate-data": b64(cert_pem.as_bytes()),
            "client-key-data": b64(key_pem.as_bytes()),
        });
        self.add_ca(&mut kc);
        Ok(kc)
    }

    /// Writes a kubeconfig value (from [`FakeApi::kubeconfig`] or
    /// [`FakeApi::client_cert_kubeconfig`]) to `path`.
    pub fn write_kubeconfig_value(path: impl AsRef<Path>, kc: &Value) -> Result<(), Error> {
        std::fs::write(
            path,
            serde_json::to_vec_pretty(kc).map_err(std::io::Error::other)?,
        )?;
        Ok(())
    }

    fn add_ca(&self, kc: &mut Value) {
        use base64::Engine;
        if self.shared.tls.is_some() {
            kc["clusters"][0]["cluster"]["certificate-authority-data"] = Value::String(
                base64::engine::general_purpose::STANDARD.encode(self.shared.ca.cert_pem()),
            );
        }
    }

    /// A kube client authenticated with [`DEFAULT_TOKEN`].
    pub async fn client(&self) -> Result<kube::Client, Error> {
        self.client_with_token(DEFAULT_TOKEN).await
    }

    /// A kube client authenticated with `token`, built through the kubeconfig path.
    ///
    /// Note that kube's default retry layer retries 429, 503 and 504 answers
    /// (honouring `Retry-After`); turn it off with [`FakeApi::config`] and
    /// `default_retry = false` to see them.
    pub async fn client_with_token(&self, token: &str) -> Result<kube::Client, Error> {
        let config = self.config(token).await?;
        kube::Client::try_from(config).map_err(|e| Error::Kube(e.to_string()))
    }

    /// A kube `Config` for this server and `token`, from the kubeconfig
    /// [`FakeApi::write_kubeconfig`] writes.
    pub async fn config(&self, token: &str) -> Result<kube::Config, Error> {
        let kc: kube::config::Kubeconfig = serde_json::from_value(self.kubeconfig(token))
            .map_err(|e| Error::Kube(e.to_string()))?;
        kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .map_err(|e| Error::Kube(e.to_string()))
    }

    /// The test CA certificate, PEM.
    pub fn ca_pem(&self) -> String {
        self.shared.ca.cert_pem().to_string()
    }

    /// Sets the script for one issuer name; pending requests for it are re-examined.
    pub fn set_issuer(&self, name: impl Into<String>, script: Script) {
        lock(&self.shared.issuer)
            .scripts
            .insert(name.into(), script);
        issuer::rescan(&self.shared);
    }

    /// Sets (or clears) the script for issuer names without their own.
    pub fn set_default_script(&self, script: Option<Script>) {
        lock(&self.shared.issuer).default = script;
        issuer::rescan(&self.shared);
    }

    /// Applies a script to one request now, whatever its issuer.
    pub async fn act_on(&self, ns: &str, name: &str, script: Script) {
        issuer::run(&self.shared, ns, name, script).await;
    }

    /// All CertificateRequests of a namespace, sorted by name.
    pub fn requests(&self, ns: &str) -> Vec<Value> {
        self.shared
            .state()
            .objects
            .iter()
            .filter(|((o_ns, _), _)| o_ns == ns)
            .map(|(_, v)| (**v).clone())
            .collect()
    }

    /// All CertificateRequests, sorted by namespace and name.
    pub fn all_requests(&self) -> Vec<Value> {
        self.shared
            .state()
            .objects
            .values()
            .map(|v| (**v).clone())
            .collect()
    }

    /// Every `events.k8s.io/v1` Event written to the fake (created by POST,
    /// updated by PATCH), sorted by namespace and name.
    pub fn events(&self) -> Vec<Value> {
        lock(&self.shared.events).values().cloned().collect()
    }

    /// How many Event writes (POST and PATCH, accepted or not) the fake
    /// received. They are not part of [`FakeApi::counts`], and injected
    /// faults never apply to them.
    pub fn event_writes(&self) -> u64 {
        self.shared.event_writes.load(Ordering::Relaxed)
    }

    /// The Events whose `regarding` is the named object of namespace `ns`.
    pub fn events_regarding(&self, ns: &str, name: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| {
                e.pointer("/regarding/namespace").and_then(Value::as_str) == Some(ns)
                    && e.pointer("/regarding/name").and_then(Value::as_str) == Some(name)
            })
            .collect()
    }

    /// One CertificateRequest.
    pub fn request(&self, ns: &str, name: &str) -> Option<Value> {
        self.shared.state().get(ns, name).ok()
    }

    /// Creates a CertificateRequest directly in the store (no HTTP, not
    /// counted) as `username`; returns the stored object or the API's error
    /// `Status` object.
    pub fn insert_request(&self, ns: &str, obj: Value, username: &str) -> Result<Value, Value> {
        let created = self
            .shared
            .state()
            .create(ns, obj, &UserInfo::new(username))
            .map_err(|e| e.status_json())?;
        issuer::consider(&self.shared, &created);
        Ok(created)
    }

    /// Deletes a CertificateRequest directly in the store (no HTTP, not counted).
    pub fn remove_request(&self, ns: &str, name: &str) -> Option<Value> {
        self.shared.state().delete(ns, name).ok()
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.state().rv
    }

    /// Waits until `pred` holds for all CertificateRequests (woken by every
    /// change, no polling); `Err(Timeout)` after `timeout` (tokio time).
    pub async fn wait_for(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&[Value]) -> bool,
    ) -> Result<(), Error> {
        let mut rx = self.shared.changed.subscribe();
        let fut = async {
            loop {
                rx.borrow_and_update();
                if pred(&self.all_requests()) {
                    return Ok(());
                }
                if rx.changed().await.is_err() {
                    return Err(Error::Stopped);
                }
            }
        };
        tokio::time::timeout(timeout, fut)
            .await
            .unwrap_or(Err(Error::Timeout(timeout)))
    }

    /// Waits until a request in `ns` satisfies `pred`, and returns it.
    pub async fn wait_for_request(
        &self,
        ns: &str,
        timeout: Duration,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> Result<Value, Error> {
        let mut found = None;
        self.wait_for(timeout, |all| {
            found = all
                .iter()
                .find(|o| {
                    o.pointer("/metadata/namespace").and_then(Value::as_str) == Some(ns) && pred(o)
                })
                .cloned();
            found.is_some()
        })
        .await?;
        found.ok_or(Error::Stopped)
    }

    /// Waits until `n` watches are open (e.g. the client re-established its watch).
    pub async fn wait_for_watches(&self, n: usize, timeout: Duration) -> Result<(), Error> {
        let fut = async {
            loop {
                if self.open_watches() >= n {
                    return;
                }
                // Watches register without a store change; a short tokio sleep
                // keeps this simple and works with paused time too.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| Error::Timeout(timeout))
    }

    /// Request counts so far: every request that reached the server over
    /// HTTP, including those answered with an injected fault or 401 (but not
    /// the in-process issuer's writes, nor `insert_request`/`remove_request`).
    pub fn counts(&self) -> Counts {
        Counts::new(lock(&self.shared.counts).clone())
    }

    /// Creates Pod `ns/name` with `uid` on node `node` (Pending, no IP, no
    /// conditions), or moves it there. The driver's Pod watch sees it; the
    /// driver matches it to a volume by name, namespace and uid.
    pub fn put_pod(&self, ns: &str, name: &str, uid: &str, node: &str) {
        lock(&self.shared.pods).update(ns, name, node, |p| {
            p["spec"]["nodeName"] = serde_json::json!(node);
            p["metadata"]["uid"] = serde_json::json!(uid);
        });
    }

    /// Sets a Pod's `status.podIPs` (and `status.podIP`, the first). Call
    /// [`FakeApi::put_pod`] first: a Pod made here has no node.
    pub fn set_pod_ips(&self, ns: &str, name: &str, ips: &[&str]) {
        lock(&self.shared.pods).update(ns, name, "", |p| {
            p["status"]["podIPs"] = ips.iter().map(|ip| serde_json::json!({"ip": ip})).collect();
            p["status"]["podIP"] = ips.first().map_or(Value::Null, |ip| serde_json::json!(ip));
        });
    }

    /// Sets (or adds) a Pod's condition `type_` to `status` (`True`, `False`, `Unknown`).
    pub fn set_pod_condition(&self, ns: &str, name: &str, type_: &str, status: &str) {
        lock(&self.shared.pods).update(ns, name, "", |p| {
            let conditions = p["status"]["conditions"].as_array_mut();
            let entry = serde_json::json!({"type": type_, "status": status});
            match conditions {
                Some(cs) => match cs.iter_mut().find(|c| c["type"] == type_) {
                    Some(c) => *c = entry,
                    None => cs.push(entry),
                },
                None => p["status"]["conditions"] = serde_json::json!([entry]),
            }
        });
    }

    /// Sets a Pod's annotation `key` to `value`.
    pub fn set_pod_annotation(&self, ns: &str, name: &str, key: &str, value: &str) {
        lock(&self.shared.pods).update(ns, name, "", |p| {
            p["metadata"]["annotations"][key] = serde_json::json!(value);
        });
    }

    /// Sets a Pod's `spec.hostNetwork`.
    pub fn set_pod_host_network(&self, ns: &str, name: &str, host_network: bool) {
        lock(&self.shared.pods).update(ns, name, "", |p| {
            p["spec"]["hostNetwork"] = serde_json::json!(host_network);
        });
    }

    /// Deletes a Pod.
    pub fn delete_pod(&self, ns: &str, name: &str) {
        lock(&self.shared.pods).delete(ns, name);
    }

    /// Forgets the request counts.
    pub fn reset_counts(&self) {
        lock(&self.shared.counts).clear();
    }

    /// The next `n` requests answer with `fault`.
    pub fn fail_next(&self, n: u64, fault: Fault) {
        self.inject(n, None, fault);
    }

    /// The next `n` requests of `verb` answer with `fault`.
    pub fn fail_next_verb(&self, n: u64, verb: Verb, fault: Fault) {
        self.inject(n, Some(verb), fault);
    }

    fn inject(&self, n: u64, verb: Option<Verb>, fault: Fault) {
        lock(&self.shared.faults).push_back(FaultRule {
            remaining: n,
            verb,
            fault,
        });
    }

    /// Removes every pending injected fault.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Ends every open watch now (clean end of the response stream, as when
    /// the API server's watch timeout fires), Pod watches too; returns how
    /// many CertificateRequest watches were open.
    pub fn drop_watches(&self) -> usize {
        lock(&self.shared.pods).drop_watches();
        self.shared.state().drop_watches()
    }

    /// See [`Builder::honour_watch_timeouts`]; applies to watches opened later.
    pub fn set_honour_watch_timeouts(&self, yes: bool) {
        self.shared
            .honour_watch_timeouts
            .store(yes, Ordering::Relaxed);
    }

    /// Serve streaming lists (`sendInitialEvents=true` watches) or refuse
    /// them with `422 Invalid`, as an API server with its `WatchList` feature
    /// gate on (the default in 1.32 and from 1.34) or off (1.27 to 1.31,
    /// 1.33). Default: served. Applies to watches opened later.
    pub fn set_watch_list(&self, enabled: bool) {
        self.shared.watch_list.store(enabled, Ordering::Relaxed);
    }

    /// Open watches.
    pub fn open_watches(&self) -> usize {
        self.shared.state().open_watches()
    }

    /// Sends a BOOKMARK with the current resourceVersion to watches that allow them.
    pub fn send_bookmarks(&self) {
        self.shared.state().send_bookmarks();
    }

    /// Keeps only the last `n` events for resuming watches; older
    /// resourceVersions get `410 Gone`.
    pub fn set_watch_history_limit(&self, n: usize) {
        self.shared.state().history.set_limit(n);
    }

    /// Forgets all watch history: a watch resuming from any older
    /// resourceVersion gets `410 Gone` and must relist.
    pub fn expire_watch_history(&self) {
        self.shared.state().expire_history();
        // etcd compacts every resource at once: the Pod watches' and the other
        // objects' (PodCertificateRequests, ClusterTrustBundles, Leases) history goes too.
        lock(&self.shared.pods).expire_history();
        lock(&self.shared.objects).expire_history();
    }

    /// Takes the API down: closes every connection and refuses new ones until
    /// [`FakeApi::come_up`].
    pub async fn go_down(&self) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.ctl.send(Ctl::Down(tx)).map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// Listens again on the same port.
    pub async fn come_up(&self) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.ctl.send(Ctl::Up(tx)).map_err(|_| Error::Stopped)?;
        Ok(rx.await.map_err(|_| Error::Stopped)??)
    }

    /// Takes the API down now and brings it back after `d` (tokio time), in the background.
    pub async fn down_for(&self, d: Duration) -> Result<(), Error> {
        self.go_down().await?;
        let ctl = self.ctl.clone();
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            let (tx, _rx) = oneshot::channel();
            let _ = ctl.send(Ctl::Up(tx));
        });
        Ok(())
    }

    /// Stops the server and closes every connection.
    pub async fn shutdown(self) {
        let (tx, rx) = oneshot::channel();
        if self.ctl.send(Ctl::Shutdown(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}
