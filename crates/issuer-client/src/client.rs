//! [`IssuerClient`]: create requests, await their outcome, resume, clean up.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::runtime::watcher;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::cache::{
    self, Admission, Cache, Caps, IgnoredRequests, ManagedVolume, Slot, WatchHealth,
};
use crate::connection::ApiConnection;
use crate::error::IssueError;
use crate::relist::{DEFAULT_LIST_PAGE_SIZE, ListStrategy, Lists};
use crate::state::{Phase, RequestState};
use crate::token::SecretToken;
use crate::types::{CertificateRequest, IssuerRef, WatchedRequest};
use crate::{ANNOTATION_VOLUME_ID, LABEL_NODE_ID_HASH, label_hash};

mod request;

pub use request::generate_name;

/// Tuning for an [`IssuerClient`]. `Default` suits production.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct IssuerOptions {
    /// Longest wait for one create or delete call (default 30 s).
    pub api_timeout: Duration,
    /// First delay before re-establishing a failed watch (default 800 ms, as client-go).
    pub watch_backoff_min: Duration,
    /// Longest delay between watch attempts (default 30 s, as client-go).
    pub watch_backoff_max: Duration,
    /// Server-side timeout of one watch call, after which it is resumed
    /// from the last resource version (default 290 s, kube-runtime's).
    pub watch_timeout: Option<u32>,
    /// Most requests the watch holds at once (default
    /// [`DEFAULT_MAX_WATCHED_REQUESTS`]); further ones are ignored, counted
    /// in [`IgnoredRequests::over_limit`], and logged once per episode.
    pub max_watched_requests: usize,
    /// Most requests the watch holds of one namespace (default
    /// [`DEFAULT_MAX_WATCHED_REQUESTS_PER_NAMESPACE`]), so that one
    /// namespace cannot fill the node's cap; requests this client creates
    /// are admitted regardless.
    pub max_watched_requests_per_namespace: usize,
    /// Most requests the watch holds of one volume (default
    /// [`DEFAULT_MAX_WATCHED_REQUESTS_PER_VOLUME`]); requests this client
    /// creates are admitted regardless. Only requests with the volume hash
    /// label count: one without it belongs to no volume and is bounded by
    /// the namespace's and the node's caps alone.
    pub max_watched_requests_per_volume: usize,
    /// How the node-wide watches get their initial state (default
    /// [`ListStrategy::Auto`]).
    pub list_strategy: ListStrategy,
    /// Page size of paged lists (default [`DEFAULT_LIST_PAGE_SIZE`]).
    pub list_page_size: u32,
    /// `Some`: keep only requests of these volumes and those added later
    /// with [`IssuerClient::manage_volume`] (a node's driver); `None`
    /// (default): keep every request labelled for the node.
    pub managed_volumes: Option<Vec<ManagedVolume>>,
}

/// Default of [`IssuerOptions::max_watched_requests`]: room for 1000
/// volumes with two requests each, and then some.
pub const DEFAULT_MAX_WATCHED_REQUESTS: usize = 4096;
/// Default of [`IssuerOptions::max_watched_requests_per_namespace`]: a
/// quarter of the node's cap.
pub const DEFAULT_MAX_WATCHED_REQUESTS_PER_NAMESPACE: usize = 1024;
/// Default of [`IssuerOptions::max_watched_requests_per_volume`]: a volume
/// keeps at most two requests; the rest is room for requests being deleted.
pub const DEFAULT_MAX_WATCHED_REQUESTS_PER_VOLUME: usize = 16;

impl Default for IssuerOptions {
    fn default() -> Self {
        Self {
            api_timeout: Duration::from_secs(30),
            watch_backoff_min: Duration::from_millis(800),
            watch_backoff_max: Duration::from_secs(30),
            watch_timeout: None,
            max_watched_requests: DEFAULT_MAX_WATCHED_REQUESTS,
            max_watched_requests_per_namespace: DEFAULT_MAX_WATCHED_REQUESTS_PER_NAMESPACE,
            max_watched_requests_per_volume: DEFAULT_MAX_WATCHED_REQUESTS_PER_VOLUME,
            list_strategy: ListStrategy::Auto,
            list_page_size: DEFAULT_LIST_PAGE_SIZE,
            managed_volumes: None,
        }
    }
}

impl IssuerOptions {
    /// Sets [`IssuerOptions::api_timeout`].
    pub fn api_timeout(mut self, timeout: Duration) -> Self {
        self.api_timeout = timeout;
        self
    }

    /// Sets the watch's retry backoff bounds.
    pub fn watch_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.watch_backoff_min = min;
        self.watch_backoff_max = max;
        self
    }

    /// Sets the server-side timeout of one watch call, in seconds.
    pub fn watch_timeout(mut self, seconds: u32) -> Self {
        self.watch_timeout = Some(seconds);
        self
    }

    /// Sets [`IssuerOptions::max_watched_requests`].
    pub fn max_watched_requests(mut self, max: usize) -> Self {
        self.max_watched_requests = max;
        self
    }

    /// Sets the per-namespace and per-volume caps (see
    /// [`IssuerOptions::max_watched_requests_per_namespace`]).
    pub fn max_watched_requests_per(mut self, namespace: usize, volume: usize) -> Self {
        self.max_watched_requests_per_namespace = namespace;
        self.max_watched_requests_per_volume = volume;
        self
    }

    /// Sets how lists are made (see [`ListStrategy`]) and their page size.
    pub fn lists(mut self, strategy: ListStrategy, page_size: u32) -> Self {
        self.list_strategy = strategy;
        self.list_page_size = page_size.max(1);
        self
    }

    /// Keeps only the requests of managed volumes: these, and those added
    /// with [`IssuerClient::manage_volume`]. Anyone who may create a
    /// CertificateRequest can put a node's label on it, so a node's driver
    /// passes the volumes it holds at start and registers each new volume
    /// before creating its first request; the rest are counted in
    /// [`IgnoredRequests::foreign`] and never held.
    pub fn managed_volumes(mut self, volumes: impl IntoIterator<Item = ManagedVolume>) -> Self {
        self.managed_volumes = Some(volumes.into_iter().collect());
        self
    }
}

/// The Pod a request is for; becomes the request's owner reference so
/// Kubernetes garbage-collects requests with their Pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodRef {
    /// `metadata.name` of the Pod.
    pub name: String,
    /// `metadata.uid` of the Pod.
    pub uid: String,
}

/// Everything needed to create one request.
#[derive(Clone, Debug, Default)]
pub struct NewRequest {
    /// The request's name; `None` generates one with [`generate_name`].
    /// Callers that must record the name before creating the request (to
    /// resume it after a crash instead of asking again) pass their own.
    pub name: Option<String>,
    /// The Pod's namespace, where the request is created.
    pub namespace: String,
    /// PEM-encoded PKCS#10 CSR.
    pub csr_pem: Vec<u8>,
    /// Which issuer signs it.
    pub issuer_ref: IssuerRef,
    /// Requested lifetime; `None` leaves it to the issuer.
    pub duration: Option<Duration>,
    /// Request a CA certificate.
    pub is_ca: bool,
    /// cert-manager key usage names.
    pub usages: Vec<String>,
    /// Pass-through annotations (`volumeAttributes` with a foreign `/` prefix).
    pub annotations: BTreeMap<String, String>,
    /// The CSI volume id (kubelet's `csi-<sha256>`).
    pub volume_id: String,
    /// The Pod that owns the volume.
    pub pod: PodRef,
}

/// Identifies one request; `uid`, when known, guards against a different
/// request later created under the same name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequestKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `metadata.uid`, if known.
    pub uid: Option<String>,
}

impl std::fmt::Display for RequestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl From<(&str, &str)> for RequestKey {
    fn from((namespace, name): (&str, &str)) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            uid: None,
        }
    }
}

/// A request that was created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submitted {
    /// Namespace.
    pub namespace: String,
    /// Generated name.
    pub name: String,
    /// `metadata.uid` assigned by the API server.
    pub uid: String,
}

impl From<&Submitted> for RequestKey {
    fn from(s: &Submitted) -> Self {
        Self {
            namespace: s.namespace.clone(),
            name: s.name.clone(),
            uid: Some(s.uid.clone()).filter(|u| !u.is_empty()),
        }
    }
}

impl From<Submitted> for RequestKey {
    fn from(s: Submitted) -> Self {
        RequestKey::from(&s)
    }
}

impl From<&RequestState> for RequestKey {
    fn from(s: &RequestState) -> Self {
        s.key.clone()
    }
}

impl From<&RequestKey> for RequestKey {
    fn from(k: &RequestKey) -> Self {
        k.clone()
    }
}

/// A signed certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    /// Which request it came from.
    pub key: RequestKey,
    /// `status.certificate`: PEM chain, leaf first.
    pub certificate_pem: Vec<u8>,
    /// `status.ca`: PEM CA, possibly empty.
    pub ca_pem: Vec<u8>,
}

/// cert-manager CertificateRequest client for one node.
///
/// Cheap to clone; all clones share one node-wide watch (started by the
/// constructor, stopped when the last clone is dropped). Must be created
/// inside a tokio runtime.
#[derive(Clone)]
pub struct IssuerClient {
    inner: Arc<Inner>,
}

struct Inner {
    client: kube::Client,
    connection: Option<ApiConnection>,
    node_id: String,
    node_hash: String,
    options: IssuerOptions,
    cache: Arc<Cache>,
    task: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for IssuerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerClient")
            .field("node_id", &self.inner.node_id)
            .field("node_hash", &self.inner.node_hash)
            .field("token_mode", &self.inner.connection.is_some())
            .finish_non_exhaustive()
    }
}

impl IssuerClient {
    /// Starts the node-wide watch and returns a client for `node_id`, able to
    /// create requests with the driver's credentials or a Pod's token.
    pub fn new(connection: ApiConnection, node_id: impl Into<String>) -> Self {
        Self::with_options(connection, node_id, IssuerOptions::default())
    }

    /// [`IssuerClient::new`] with explicit options.
    pub fn with_options(
        connection: ApiConnection,
        node_id: impl Into<String>,
        options: IssuerOptions,
    ) -> Self {
        let client = connection.client().clone();
        Self::start(client, Some(connection), node_id.into(), options)
    }

    /// A client over a plain `kube::Client`; token-request mode is not
    /// available (submits with a token fail with [`IssueError::TokenModeUnavailable`]).
    pub fn from_client(
        client: kube::Client,
        node_id: impl Into<String>,
        options: IssuerOptions,
    ) -> Self {
        Self::start(client, None, node_id.into(), options)
    }

    fn start(
        client: kube::Client,
        connection: Option<ApiConnection>,
        node_id: String,
        options: IssuerOptions,
    ) -> Self {
        let node_hash = label_hash(&node_id);
        let caps = Caps {
            node: options.max_watched_requests,
            namespace: options.max_watched_requests_per_namespace,
            volume: options.max_watched_requests_per_volume,
        };
        let admission = Admission::new(
            options.managed_volumes.is_some(),
            caps,
            options.managed_volumes.clone().unwrap_or_default(),
        );
        let cache = Arc::new(Cache::with_admission(admission));
        let mut config =
            watcher::Config::default().labels(&format!("{LABEL_NODE_ID_HASH}={node_hash}"));
        config.timeout = options.watch_timeout;
        let api = kube::Api::<WatchedRequest>::all(client.clone());
        let backoff = crate::watch_backoff::WatchBackoff::new(
            options.watch_backoff_min,
            options.watch_backoff_max,
        );
        let lists = Lists {
            strategy: options.list_strategy,
            page_size: options.list_page_size,
        };
        let task = tokio::spawn(cache::run(
            client.clone(),
            api,
            config,
            lists,
            backoff,
            cache.clone(),
        ));
        Self {
            inner: Arc::new(Inner {
                client,
                connection,
                node_id,
                node_hash,
                options,
                cache,
                task,
            }),
        }
    }

    /// The driver's own API client (rate limited), for other watches of the
    /// same connection (the node's Pods).
    pub fn client(&self) -> &kube::Client {
        &self.inner.client
    }

    /// The node id this client labels and watches requests for.
    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    /// The `csi.cert-manager.io/node-id-hash` label value of this node.
    pub fn node_hash(&self) -> &str {
        &self.inner.node_hash
    }

    /// How many of the node's requests the watch currently holds.
    pub fn cached_requests(&self) -> usize {
        self.inner.cache.len()
    }

    /// Requests the watch saw but did not keep, by reason.
    pub fn ignored_requests(&self) -> IgnoredRequests {
        self.inner.cache.admission.ignored()
    }

    /// Requests refused over a cap, by namespace (at most
    /// [`MAX_REFUSAL_NAMESPACES`](crate::MAX_REFUSAL_NAMESPACES) names; the
    /// rest under [`OTHER_NAMESPACES`](crate::OTHER_NAMESPACES)), sorted by name.
    pub fn refused_by_namespace(&self) -> Vec<(String, u64)> {
        self.inner.cache.admission.refused_by_namespace()
    }

    /// Keeps the requests of `volume` from now on (with
    /// [`IssuerOptions::managed_volumes`]; without it every request is kept
    /// anyway). Call before creating the volume's first request: one the
    /// watch already ignored is seen again only when it changes or at the
    /// next relist.
    pub fn manage_volume(&self, volume: ManagedVolume) {
        self.inner.cache.admission.manage(volume);
    }

    /// Stops keeping the requests of `volume_id` and drops those held.
    pub fn forget_volume(&self, volume_id: &str) {
        self.inner.cache.admission.forget(volume_id);
        self.inner.cache.drop_unowned(volume_id);
    }

    /// The watch's health.
    pub fn health(&self) -> WatchHealth {
        self.inner.cache.health()
    }

    /// How long the node-wide watch has been failing (`None` while it
    /// works), judged with its backoff cap as in
    /// [`WatchHealth::failing_for`].
    pub fn watch_failing_for(&self) -> Option<Duration> {
        self.health().failing_for(
            std::time::Instant::now(),
            self.inner.options.watch_backoff_max,
        )
    }

    /// Waits until the initial list has completed (so resume and cleanup see
    /// every request of the node). Fails with [`IssueError::ApiUnavailable`]
    /// when `timeout` passes first or the watch has stopped.
    pub async fn wait_synced(&self, timeout: Duration) -> Result<(), IssueError> {
        let mut rx = self.inner.cache.health_rx();
        let detail = match tokio::time::timeout(timeout, rx.wait_for(|h| h.synced)).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(_)) => "the watch has stopped; restart the driver".to_owned(),
            Err(_) => format!(
                "the watch has not synced within {timeout:?}; is the Kubernetes API reachable?"
            ),
        };
        Err(IssueError::ApiUnavailable {
            action: "listing this node's CertificateRequests".into(),
            detail,
        })
    }

    /// Creates a request. With `token`, it is created as the Pod's
    /// ServiceAccount (token-request mode); otherwise with the driver's
    /// credentials.
    pub async fn submit(
        &self,
        request: NewRequest,
        token: Option<&SecretToken>,
    ) -> Result<Submitted, IssueError> {
        request::validate(&request)?;
        let token_mode = token.is_some();
        let client = match token {
            None => self.inner.client.clone(),
            Some(token) => {
                token.check_fresh(jiff::Timestamp::now())?;
                let connection = self
                    .inner
                    .connection
                    .as_ref()
                    .ok_or(IssueError::TokenModeUnavailable)?;
                connection.client_for_token(token).map_err(|e| {
                    IssueError::from_kube("building the Pod's token client", e, true)
                })?
            }
        };
        let cr = request::certificate_request(request, &self.inner.node_hash)?;
        let namespace = cr.metadata.namespace.clone().unwrap_or_default();
        let name = cr.metadata.name.clone().unwrap_or_default();
        let action = format!("creating CertificateRequest {namespace}/{name}");
        let api = kube::Api::<CertificateRequest>::namespaced(client, &namespace);
        // Named before it exists: the watch admits it whatever others have
        // filled its caps with.
        let volume_id = cr
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_VOLUME_ID))
            .cloned()
            .unwrap_or_default();
        let admission = &self.inner.cache.admission;
        admission.expect(&namespace, &name, &volume_id);
        let not_created = |key: (String, String)| admission.unexpect(&key);
        let created = match tokio::time::timeout(
            self.inner.options.api_timeout,
            api.create(&PostParams::default(), &cr),
        )
        .await
        {
            Ok(Ok(created)) => created,
            Ok(Err(e)) => {
                // The server answered no: it was not created. (After a
                // transport error it may have been: keep expecting it.)
                if matches!(e, kube::Error::Api(_)) {
                    not_created((namespace, name));
                }
                return Err(IssueError::from_kube(action, e, token_mode));
            }
            Err(_) => {
                // It may still have been created: keep expecting it.
                return Err(IssueError::ApiUnavailable {
                    detail: format!("no answer within {:?}", self.inner.options.api_timeout),
                    action,
                });
            }
        };
        tracing::debug!(%namespace, %name, token_mode, "created CertificateRequest");
        Ok(Submitted {
            namespace,
            name,
            uid: created.metadata.uid.unwrap_or_default(),
        })
    }

    /// Waits (through the node-wide watch, no polling) until the request is
    /// issued, reaches a terminal failure, is deleted, or `deadline` passes.
    /// A request with no `Ready` condition, `Ready=False/Pending`, or not yet
    /// approved is waited on.
    pub async fn await_outcome(
        &self,
        request: impl Into<RequestKey>,
        deadline: Duration,
    ) -> Result<Issued, IssueError> {
        let key = request.into();
        let cache = &self.inner.cache;
        let mut rx = cache.subscribe(&key.namespace, &key.name);
        let result = wait(&key, &mut rx, deadline, cache).await;
        drop(rx);
        cache.release(&key.namespace, &key.name);
        result
    }

    /// The latest state of one request, from the watch.
    pub fn state(&self, namespace: &str, name: &str) -> Option<RequestState> {
        self.inner.cache.get(namespace, name)
    }

    /// This volume's requests (volume-id-hash label AND full volume-id
    /// annotation), newest first.
    pub fn requests_for_volume(&self, volume_id: &str) -> Vec<RequestState> {
        let hash = label_hash(volume_id);
        self.inner.cache.select_labelled(&hash, |cr| {
            annotation(cr, ANNOTATION_VOLUME_ID) == Some(volume_id)
        })
    }

    /// Every request the watch holds now, newest first (for metrics: at
    /// most `max_watched_requests`).
    pub fn watched_requests(&self) -> Vec<RequestState> {
        self.inner.cache.select(|_| true)
    }

    /// The newest request of a volume, to resume it instead of asking again.
    /// Only requests whose annotation names this exact volume are considered,
    /// so a 32-bit label-hash collision never resumes another volume's request.
    pub fn latest_for_volume(&self, volume_id: &str) -> Option<RequestState> {
        self.requests_for_volume(volume_id).into_iter().next()
    }

    /// Deletes all but the newest `keep` requests of a volume, returning those
    /// deleted. Candidates carry the volume's hash label and either this
    /// volume's annotation or none at all (requests made by the Go driver,
    /// which does not write it); a request annotated with another volume is
    /// never touched. Deletes are preconditioned on uid; already-gone requests
    /// are ignored. Every candidate is tried; the first error is returned.
    pub async fn cleanup(
        &self,
        volume_id: &str,
        keep: usize,
    ) -> Result<Vec<RequestKey>, IssueError> {
        let hash = label_hash(volume_id);
        let candidates = self.inner.cache.select_labelled(&hash, |cr| {
            annotation(cr, ANNOTATION_VOLUME_ID).is_none_or(|v| v == volume_id)
        });
        let mut deleted = Vec::new();
        let mut first_error = None;
        for state in candidates.into_iter().skip(keep) {
            match self.delete_key(&state.key).await {
                Ok(_) => deleted.push(state.key),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(deleted),
        }
    }

    /// Deletes one request with the driver's credentials. `Ok(false)` if it
    /// was already gone.
    pub async fn delete(&self, namespace: &str, name: &str) -> Result<bool, IssueError> {
        self.delete_key(&RequestKey::from((namespace, name))).await
    }

    async fn delete_key(&self, key: &RequestKey) -> Result<bool, IssueError> {
        let api =
            kube::Api::<CertificateRequest>::namespaced(self.inner.client.clone(), &key.namespace);
        let params = DeleteParams {
            preconditions: key.uid.clone().map(|uid| Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let action = format!("deleting CertificateRequest {key}");
        match tokio::time::timeout(
            self.inner.options.api_timeout,
            api.delete(&key.name, &params),
        )
        .await
        {
            Ok(Ok(_)) => {
                tracing::debug!(request = %key, "deleted CertificateRequest");
                Ok(true)
            }
            // Gone already, or replaced by another object of the same name.
            Ok(Err(kube::Error::Api(s))) if s.code == 404 || s.code == 409 => Ok(false),
            Ok(Err(e)) => Err(IssueError::from_kube(action, e, false)),
            Err(_) => Err(IssueError::ApiUnavailable {
                detail: format!("no answer within {:?}", self.inner.options.api_timeout),
                action,
            }),
        }
    }
}

async fn wait(
    key: &RequestKey,
    rx: &mut tokio::sync::watch::Receiver<Slot>,
    deadline: Duration,
    cache: &Cache,
) -> Result<Issued, IssueError> {
    let until = Instant::now() + deadline;
    let deleted = || IssueError::Deleted {
        namespace: key.namespace.clone(),
        name: key.name.clone(),
    };
    let mut last_reason = String::from("not yet seen by the node's watch");
    loop {
        let slot = rx.borrow_and_update().clone();
        match slot {
            Slot::Unseen => {}
            Slot::Deleted => return Err(deleted()),
            Slot::Present(cr) => {
                if key.uid.is_some() && cr.metadata.uid != key.uid {
                    // Another request now has this name; ours is gone.
                    return Err(deleted());
                }
                let (namespace, name) = (key.namespace.clone(), key.name.clone());
                match Phase::of(&cr) {
                    Phase::Issued => {
                        // Only the certificate and CA are copied out of the shared object.
                        let status = cr.status.as_ref();
                        return Ok(Issued {
                            key: RequestKey {
                                namespace,
                                name,
                                uid: cr.metadata.uid.clone(),
                            },
                            certificate_pem: status
                                .and_then(|s| s.certificate.clone())
                                .unwrap_or_default(),
                            ca_pem: status.and_then(|s| s.ca.clone()).unwrap_or_default(),
                        });
                    }
                    Phase::Denied { reason, message } => {
                        return Err(IssueError::Denied {
                            namespace,
                            name,
                            reason,
                            message,
                        });
                    }
                    Phase::InvalidRequest { reason, message } => {
                        return Err(IssueError::InvalidRequest {
                            namespace,
                            name,
                            reason,
                            message,
                        });
                    }
                    Phase::Failed { reason, message } => {
                        return Err(IssueError::Failed {
                            namespace,
                            name,
                            reason,
                            message,
                        });
                    }
                    Phase::Pending { reason } => last_reason = reason,
                }
            }
        }
        match tokio::time::timeout_at(until, rx.changed()).await {
            Ok(Ok(())) => {}
            // The sender is dropped only after a delete was published.
            Ok(Err(_)) => return Err(deleted()),
            Err(_) => {
                if let Some(err) = cache.health().last_error {
                    last_reason.push_str(&format!("; the watch is failing: {err}"));
                }
                return Err(IssueError::TimedOut {
                    namespace: key.namespace.clone(),
                    name: key.name.clone(),
                    waited: deadline,
                    last_reason,
                });
            }
        }
    }
}

fn annotation<'a>(cr: &'a CertificateRequest, key: &str) -> Option<&'a str> {
    cr.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

#[cfg(test)]
mod tests;
