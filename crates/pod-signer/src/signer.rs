//! The signing loop: the PodCertificateRequest watch, the fair queue, and
//! one request's way from stub CSR to written status.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::ApiResource;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{Notify, Semaphore};

use cmcsi_issuer_client::{
    ApiConnection, CertificateRequest, IssueError, IssuerClient, IssuerOptions, IssuerRef,
    LABEL_NODE_ID_HASH, RequestKey, go_duration,
};

use crate::config::Config;
use crate::csr::{self, SUGGESTED_KEY_TYPE, StubCsr};
use crate::error::CsrError;
use crate::metrics::Metrics;
use crate::queue::{FairQueue, Job, Limits, Refused};
use crate::signer_name::{Signer, is_ours};
use crate::trust::TrustPublisher;
use crate::types::{PodCertificateRequest, pod_certificate_request_resource};

/// The node id the signer's CertificateRequests are labelled and watched
/// with (`csi.cert-manager.io/node-id-hash`), shared by every replica.
pub const WATCH_IDENTITY: &str = "cert-manager-pod-signer";

/// Annotations on each CertificateRequest: who the certificate is for.
pub const ANNOTATION_POD_NAMESPACE: &str = "pod-signer.cert-manager.io/pod-namespace";
/// The Pod's name.
pub const ANNOTATION_POD_NAME: &str = "pod-signer.cert-manager.io/pod-name";
/// The Pod's uid.
pub const ANNOTATION_POD_UID: &str = "pod-signer.cert-manager.io/pod-uid";
/// The Pod's ServiceAccount.
pub const ANNOTATION_SERVICE_ACCOUNT: &str = "pod-signer.cert-manager.io/service-account";
/// The Pod's node.
pub const ANNOTATION_NODE: &str = "pod-signer.cert-manager.io/node";
/// Label with the PodCertificateRequest's uid.
pub const LABEL_REQUEST_UID: &str = "pod-signer.cert-manager.io/request-uid";

/// The API's limit on `status.certificateChain`.
pub const MAX_CHAIN_BYTES: usize = 100 * 1024;

/// Usages asked for: a Pod certificate is for mTLS.
const USAGES: [&str; 3] = ["digital signature", "server auth", "client auth"];

/// Events waiting to be sent at most (beyond it an Event is dropped: Events
/// never hold up issuance).
const MAX_PENDING_EVENTS: usize = 64;

/// Impersonating clients kept at most.
const MAX_IMPERSONATION_CLIENTS: usize = 256;

/// The CertificateRequest name for a PodCertificateRequest: derived from its
/// uid, so every replica and every restart names the same one.
pub fn certificate_request_name(uid: &str) -> String {
    format!("pod-cert-{uid}")
}

/// How one request ended (or that it must be looked at again).
#[derive(Debug)]
enum Outcome {
    Done(&'static str),
    Retry(Duration),
    Gone,
}

/// A status to write.
struct Status {
    conditions: Vec<Condition>,
    issued: Option<IssuedChain>,
}

/// A condition the signer writes (`metav1.Condition`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Condition {
    #[serde(rename = "type")]
    type_: &'static str,
    status: &'static str,
    reason: String,
    message: String,
    last_transition_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    observed_generation: Option<i64>,
}

struct IssuedChain {
    chain: String,
    not_before: jiff::Timestamp,
    not_after: jiff::Timestamp,
    refresh: jiff::Timestamp,
}

fn stamp(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn condition(ty: &'static str, reason: &str, message: &str, generation: Option<i64>) -> Condition {
    Condition {
        type_: ty,
        status: "True",
        reason: reason.to_owned(),
        message: message.to_owned(),
        last_transition_time: stamp(jiff::Timestamp::now()),
        observed_generation: generation,
    }
}

/// The body of a `/status` update: the object's identity and the new status,
/// serialized straight from borrowed fields.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusUpdate<'a> {
    api_version: &'a str,
    kind: &'a str,
    metadata: UpdateMetadata<'a>,
    status: StatusFields<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UpdateMetadata<'a> {
    name: &'a str,
    namespace: &'a str,
    uid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_version: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusFields<'a> {
    conditions: &'a [Condition],
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate_chain: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_before: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_after: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    begin_refresh_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    issued_at: Option<String>,
}

/// The shared state of a running signer.
pub(crate) struct Inner {
    pub config: Config,
    pub connection: ApiConnection,
    pub version: String,
    pub ar: ApiResource,
    pub metrics: Arc<Metrics>,
    pub trust: Option<TrustPublisher>,
    issuer: IssuerClient,
    queue: Mutex<FairQueue>,
    wake: Notify,
    relist: Notify,
    overflowed: std::sync::atomic::AtomicBool,
    recorder: Recorder,
    events: Arc<Semaphore>,
    impersonating: Mutex<HashMap<String, kube::Client>>,
}

impl Inner {
    pub(crate) fn new(
        config: Config,
        connection: ApiConnection,
        version: String,
        trust: Option<TrustPublisher>,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        let issuer = IssuerClient::with_options(
            connection.clone(),
            WATCH_IDENTITY,
            // The signer's requests carry no volume label, so the watch bounds them by the
            // per-namespace and node-wide caps alone.
            IssuerOptions::default().max_watched_requests(config.max_watched_requests),
        );
        let limits = Limits {
            in_flight: config.max_in_flight,
            in_flight_per_namespace: config.max_in_flight_per_namespace,
            queued: config.max_queued,
            queued_per_namespace: config.max_queued_per_namespace,
        };
        let recorder = Recorder::new(
            connection.client().clone(),
            Reporter {
                controller: "cert-manager-pod-signer".into(),
                instance: Some(config.identity.clone()),
            },
        );
        Arc::new(Self {
            ar: pod_certificate_request_resource(&version),
            version,
            connection,
            metrics,
            trust,
            issuer,
            queue: Mutex::new(FairQueue::new(limits)),
            wake: Notify::new(),
            relist: Notify::new(),
            overflowed: std::sync::atomic::AtomicBool::new(false),
            recorder,
            events: Arc::new(Semaphore::new(MAX_PENDING_EVENTS)),
            impersonating: Mutex::new(HashMap::new()),
            config,
        })
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, FairQueue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn gauges(&self) {
        let q = self.queue();
        self.metrics
            .queued
            .set(i64::try_from(q.queued()).unwrap_or(i64::MAX));
        self.metrics
            .in_flight
            .set(i64::try_from(q.in_flight()).unwrap_or(i64::MAX));
    }
}

/// Runs the watch and the workers until the watch task fails.
pub(crate) async fn sign(inner: Arc<Inner>) -> Result<(), crate::error::SignerError> {
    inner
        .issuer
        .wait_synced(Duration::from_secs(60))
        .await
        .map_err(|e| crate::error::SignerError::Api {
            action: "listing the signer's CertificateRequests".into(),
            detail: e.to_string(),
        })?;
    let dispatcher = tokio::spawn(dispatch(Arc::clone(&inner)));
    let result = watch(Arc::clone(&inner)).await;
    dispatcher.abort();
    result
}

/// The PodCertificateRequest watch: every request of this signer's names
/// without an outcome is queued; nothing else is kept.
async fn watch(inner: Arc<Inner>) -> Result<(), crate::error::SignerError> {
    let api: Api<PodCertificateRequest> =
        Api::all_with(inner.connection.client().clone(), &inner.ar);
    loop {
        inner
            .overflowed
            .store(false, std::sync::atomic::Ordering::Relaxed);
        // A streaming list (sendInitialEvents, Kubernetes 1.34+ and so every version with Pod
        // certificates): the initial state arrives as watch events, one object at a time, so a
        // relist's peak memory does not grow with how many requests tenants have made.
        let stream = watcher::watcher(api.clone(), watcher::Config::default().streaming_lists());
        let mut stream = std::pin::pin!(kube::runtime::WatchStreamExt::default_backoff(stream));
        loop {
            tokio::select! {
                next = stream.next() => match next {
                    Some(Ok(watcher::Event::Apply(pcr) | watcher::Event::InitApply(pcr))) => consider(&inner, pcr),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => tracing::warn!(error = %e, "PodCertificateRequest watch error; retrying"),
                    None => break,
                },
                () = inner.relist.notified() => {
                    tracing::info!("the queue has room again: relisting PodCertificateRequests left out");
                    break;
                }
            }
        }
    }
}

/// Keeps of a request only what signing needs (its metadata was slimmed
/// while decoding; see [`PodCertificateRequest`]).
fn slim(mut pcr: PodCertificateRequest) -> PodCertificateRequest {
    pcr.status = None;
    pcr
}

fn consider(inner: &Arc<Inner>, pcr: PodCertificateRequest) {
    if !is_ours(&pcr.spec.signer_name) || pcr.has_outcome() {
        return;
    }
    let (Some(namespace), Some(name), Some(uid)) = (
        pcr.metadata.namespace.clone(),
        pcr.metadata.name.clone(),
        pcr.metadata.uid.clone(),
    ) else {
        return;
    };
    let job = Job {
        namespace,
        name,
        uid,
        request: Arc::new(slim(pcr)),
    };
    push(inner, job);
}

fn push(inner: &Arc<Inner>, job: Job) {
    let refused = inner.queue().push(job);
    match refused {
        Ok(()) => inner.wake.notify_one(),
        Err(Refused::Known) => {}
        Err(Refused::Full) => {
            inner.metrics.overflowed.inc();
            if !inner
                .overflowed
                .swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                tracing::warn!(
                    max_queued = inner.config.max_queued,
                    max_queued_per_namespace = inner.config.max_queued_per_namespace,
                    "the queue is full (--max-queued / --max-queued-per-namespace); requests left out \
                     are listed again once it has drained"
                );
            }
        }
    }
    inner.gauges();
}

/// Starts jobs as the queue's limits allow.
async fn dispatch(inner: Arc<Inner>) {
    loop {
        loop {
            let job = inner.queue().pop();
            let Some(job) = job else { break };
            let inner = Arc::clone(&inner);
            tokio::spawn(async move {
                let started = Instant::now();
                let outcome = issue(&inner, &job).await;
                {
                    let mut q = inner.queue();
                    q.done(&job);
                    if inner.overflowed.load(std::sync::atomic::Ordering::Relaxed)
                        && q.queued() < inner.config.max_queued / 2
                    {
                        inner.relist.notify_one();
                    }
                }
                inner.wake.notify_one();
                match outcome {
                    Outcome::Done(o) => inner.metrics.finished(o, started.elapsed().as_secs_f64()),
                    Outcome::Gone => {}
                    Outcome::Retry(after) => {
                        let inner = Arc::clone(&inner);
                        tokio::spawn(async move {
                            tokio::time::sleep(after).await;
                            push(&inner, job);
                        });
                    }
                }
                inner.gauges();
            });
        }
        inner.gauges();
        inner.wake.notified().await;
    }
}

/// One request, from its stub CSR to its written status.
async fn issue(inner: &Arc<Inner>, job: &Job) -> Outcome {
    let pcr = &job.request;
    let generation = pcr.metadata.generation;
    let signer_name = pcr.spec.signer_name.as_str();
    let deny = |reason: &str, message: String| Status {
        conditions: vec![condition("Denied", reason, &message, generation)],
        issued: None,
    };
    let signer = match Signer::parse(signer_name) {
        Ok(s) => s,
        Err(e) => return finish(inner, job, deny("InvalidSignerName", e), "denied").await,
    };
    if !inner.config.allowed.allows(signer_name) {
        let msg = format!(
            "signer {signer_name} is not among the cert-manager Pod signer's --allowed-issuers; ask the cluster \
             administrator to allow it, or use an allowed issuer"
        );
        return finish(inner, job, deny("IssuerNotAllowed", msg), "denied").await;
    }
    if let Signer::Issuer { namespace, name } = &signer
        && *namespace != job.namespace
    {
        let msg = format!(
            "Issuer {namespace}/{name} serves only requests in namespace {namespace}, and this request is in \
             namespace {}; use a ClusterIssuer (clusterissuers.cert-manager.io/<name>) or an Issuer of this \
             namespace (issuers.cert-manager.io/{}.<name>)",
            job.namespace, job.namespace
        );
        return finish(inner, job, deny("NamespaceMismatch", msg), "denied").await;
    }
    let der = pcr
        .spec
        .stub_pkcs10_request
        .as_ref()
        .map(|b| b.0.as_slice())
        .unwrap_or_default();
    let stub = match csr::check(der) {
        Ok(s) => s,
        Err(e @ CsrError::UnsupportedKeyType(_)) => {
            let status = Status {
                conditions: vec![
                    condition("Denied", "UnsupportedKeyType", &e.to_string(), generation),
                    condition(
                        "SuggestedKeyType",
                        SUGGESTED_KEY_TYPE,
                        &format!("use key type {SUGGESTED_KEY_TYPE}"),
                        generation,
                    ),
                ],
                issued: None,
            };
            return finish(inner, job, status, "unsupported_key_type").await;
        }
        Err(e @ CsrError::BadSignature(_)) => {
            return finish(
                inner,
                job,
                deny("InvalidSignature", e.to_string()),
                "denied",
            )
            .await;
        }
        Err(e) => return finish(inner, job, deny("InvalidCSR", e.to_string()), "denied").await,
    };
    let max_seconds = pcr.spec.max_expiration_seconds.unwrap_or(86_400).max(0);
    let max_lifetime = Duration::from_secs(u64::try_from(max_seconds).unwrap_or(0));
    let duration = max_lifetime.min(inner.config.max_lifetime);
    let key = match create_request(inner, job, &signer, &stub, duration).await {
        Ok(k) => k,
        Err(CreateError::Retry(e)) => {
            tracing::warn!(namespace = %job.namespace, name = %job.name, error = %e, "creating the CertificateRequest failed; retrying");
            return Outcome::Retry(Duration::from_secs(5));
        }
        Err(CreateError::Refused(msg)) => {
            let status = Status {
                conditions: vec![condition(
                    "Failed",
                    "CertificateRequestRefused",
                    &msg,
                    generation,
                )],
                issued: None,
            };
            return finish(inner, job, status, "failed").await;
        }
    };
    let issued = match inner
        .issuer
        .await_outcome(key.clone(), inner.config.issuance_timeout)
        .await
    {
        Ok(i) => i,
        Err(IssueError::Denied {
            reason, message, ..
        }) => {
            let msg = format!("CertificateRequest {key} was denied: {message}");
            return finish(inner, job, deny(&reason, msg), "denied").await;
        }
        Err(e @ (IssueError::Failed { .. } | IssueError::InvalidRequest { .. })) => {
            let status = Status {
                conditions: vec![condition(
                    "Failed",
                    "IssuanceFailed",
                    &e.to_string(),
                    generation,
                )],
                issued: None,
            };
            return finish(inner, job, status, "failed").await;
        }
        Err(e @ IssueError::Deleted { .. }) => {
            tracing::info!(%key, error = %e, "the CertificateRequest was deleted before its outcome; asking again");
            return Outcome::Retry(Duration::from_secs(1));
        }
        Err(e) => {
            tracing::info!(%key, error = %e, "no outcome yet; looking again later");
            return Outcome::Retry(Duration::from_secs(10));
        }
    };
    let status = match check_chain(
        &issued.certificate_pem,
        &stub,
        max_seconds,
        &key,
        generation,
    ) {
        Ok(s) => s,
        Err(status) => return finish(inner, job, status, "failed").await,
    };
    // The CA goes into the trust bundle before the Pod gets its certificate.
    if let Some(trust) = &inner.trust
        && !issued.ca_pem.is_empty()
    {
        match trust
            .publish(signer_name, &String::from_utf8_lossy(&issued.ca_pem))
            .await
        {
            Ok(true) => {
                inner.metrics.trust_bundle_writes.inc();
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(signer = signer_name, error = %e, "could not update the trust bundle")
            }
        }
    }
    finish(inner, job, status, "issued").await
}

/// Checks an issued chain and builds the `Issued` status; a `Failed` status
/// when the chain is unusable.
fn check_chain(
    pem: &[u8],
    stub: &StubCsr,
    max_seconds: i64,
    key: &RequestKey,
    generation: Option<i64>,
) -> Result<Status, Status> {
    let failed = |reason: &str, msg: String| Status {
        conditions: vec![condition("Failed", reason, &msg, generation)],
        issued: None,
    };
    if pem.len() > MAX_CHAIN_BYTES {
        return Err(failed(
            "ChainTooLarge",
            format!(
                "CertificateRequest {key} returned a chain of {} bytes, more than the API's {MAX_CHAIN_BYTES}; configure the issuer with fewer intermediates",
                pem.len()
            ),
        ));
    }
    let summary = cmcsi_keygen::LeafValidity::from_pem(pem).map_err(|e| {
        failed(
            "InvalidChain",
            format!("CertificateRequest {key} returned an unreadable chain: {e}"),
        )
    })?;
    if !spki_equal(summary.leaf_public_key_der(), &stub.public_key_der) {
        return Err(failed(
            "KeyMismatch",
            format!(
                "CertificateRequest {key} returned a certificate for another public key than the request's; check the issuer"
            ),
        ));
    }
    let nb = jiff::Timestamp::try_from(summary.not_before).unwrap_or(jiff::Timestamp::MIN);
    let na = jiff::Timestamp::try_from(summary.not_after).unwrap_or(jiff::Timestamp::MIN);
    let lifetime = na.as_second() - nb.as_second();
    if lifetime > max_seconds {
        return Err(failed(
            "CertificateTooLong",
            format!(
                "the issuer returned a certificate valid for {lifetime}s, longer than the {max_seconds}s spec.maxExpirationSeconds \
             allows (CertificateRequest {key}); configure the issuer to honour the requested duration"
            ),
        ));
    }
    if lifetime < 3600 {
        return Err(failed(
            "CertificateTooShort",
            format!(
                "the issuer returned a certificate valid for {lifetime}s, shorter than the hour the API requires (CertificateRequest {key})"
            ),
        ));
    }
    let chain = String::from_utf8_lossy(pem).into_owned();
    let refresh = refresh_at(nb.as_second(), na.as_second());
    let message = format!("issued through CertificateRequest {key}");
    Ok(Status {
        conditions: vec![condition("Issued", "Issued", &message, generation)],
        issued: Some(IssuedChain {
            chain,
            not_before: jiff::Timestamp::from_second(nb.as_second()).unwrap_or(nb),
            not_after: jiff::Timestamp::from_second(na.as_second()).unwrap_or(na),
            refresh: jiff::Timestamp::from_second(refresh).unwrap_or(na),
        }),
    })
}

/// Two thirds into the lifetime, jittered by up to a twentieth of it either
/// way, always strictly inside the validity.
pub fn refresh_at(not_before: i64, not_after: i64) -> i64 {
    let lifetime = (not_after - not_before).max(3);
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    let spread = (lifetime / 10).max(1);
    let jitter = i64::try_from(u64::from_le_bytes(b) % u64::try_from(spread).unwrap_or(1))
        .unwrap_or(0)
        - spread / 2;
    (not_before + lifetime * 2 / 3 + jitter).clamp(not_before + 1, not_after - 1)
}

fn spki_equal(a: &[u8], b: &[u8]) -> bool {
    use der::Decode;
    match (
        spki::SubjectPublicKeyInfoRef::from_der(a),
        spki::SubjectPublicKeyInfoRef::from_der(b),
    ) {
        (Ok(a), Ok(b)) => {
            a.algorithm.oid == b.algorithm.oid
                && a.algorithm.parameters_oid().ok() == b.algorithm.parameters_oid().ok()
                && a.subject_public_key == b.subject_public_key
        }
        _ => false,
    }
}

enum CreateError {
    Retry(String),
    Refused(String),
}

fn impersonated_client(
    inner: &Inner,
    namespace: &str,
    sa: &str,
) -> Result<kube::Client, kube::Error> {
    let user = format!("system:serviceaccount:{namespace}:{sa}");
    let mut cache = inner
        .impersonating
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(c) = cache.get(&user) {
        return Ok(c.clone());
    }
    let mut config = inner.connection.config().clone();
    config.auth_info.impersonate = Some(user.clone());
    config.auth_info.impersonate_groups = Some(vec![
        "system:serviceaccounts".into(),
        format!("system:serviceaccounts:{namespace}"),
        "system:authenticated".into(),
    ]);
    let client = kube::Client::try_from(config)?;
    if cache.len() >= MAX_IMPERSONATION_CLIENTS {
        cache.clear();
    }
    cache.insert(user, client.clone());
    Ok(client)
}

/// `apiVersion` of cert-manager's CertificateRequests.
const CERTIFICATE_REQUEST_API_VERSION: &str = "cert-manager.io/v1";

/// The CertificateRequest the signer creates, serialized straight from
/// borrowed fields (as [`CertificateRequest`] would serialize it).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NewRequest<'a> {
    api_version: &'a str,
    kind: &'a str,
    metadata: NewRequestMetadata<'a>,
    spec: NewRequestSpec<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NewRequestMetadata<'a> {
    name: &'a str,
    namespace: &'a str,
    labels: BTreeMap<&'a str, &'a str>,
    annotations: BTreeMap<&'a str, &'a str>,
    owner_references: [NewOwnerReference<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NewOwnerReference<'a> {
    api_version: &'a str,
    kind: &'a str,
    name: &'a str,
    uid: &'a str,
    controller: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NewRequestSpec<'a> {
    /// The PEM CSR, base64 (Go's `[]byte` in JSON).
    request: String,
    issuer_ref: &'a IssuerRef,
    duration: String,
    usages: &'a [&'a str],
}

/// The CertificateRequest for `job`, named `name`.
fn new_request<'a>(
    job: &'a Job,
    name: &'a str,
    node_hash: &'a str,
    owner_api_version: &'a str,
    issuer_ref: &'a IssuerRef,
    csr_pem: &str,
    duration: Duration,
) -> NewRequest<'a> {
    let pcr = &job.request;
    NewRequest {
        api_version: CERTIFICATE_REQUEST_API_VERSION,
        kind: "CertificateRequest",
        metadata: NewRequestMetadata {
            name,
            namespace: &job.namespace,
            labels: BTreeMap::from([
                (LABEL_NODE_ID_HASH, node_hash),
                (LABEL_REQUEST_UID, job.uid.as_str()),
            ]),
            annotations: BTreeMap::from([
                (ANNOTATION_POD_NAMESPACE, job.namespace.as_str()),
                (ANNOTATION_POD_NAME, pcr.spec.pod_name.as_str()),
                (ANNOTATION_POD_UID, pcr.spec.pod_uid.as_str()),
                (
                    ANNOTATION_SERVICE_ACCOUNT,
                    pcr.spec.service_account_name.as_str(),
                ),
                (ANNOTATION_NODE, pcr.spec.node_name.as_str()),
            ]),
            owner_references: [NewOwnerReference {
                api_version: owner_api_version,
                kind: "PodCertificateRequest",
                name: &job.name,
                uid: &job.uid,
                controller: true,
            }],
        },
        spec: NewRequestSpec {
            request: base64::engine::general_purpose::STANDARD.encode(csr_pem.as_bytes()),
            issuer_ref,
            duration: go_duration(duration),
            usages: &USAGES,
        },
    }
}

/// What is read of a created CertificateRequest.
#[derive(Deserialize)]
struct Created {
    #[serde(default)]
    metadata: CreatedMetadata,
}

#[derive(Default, Deserialize)]
struct CreatedMetadata {
    #[serde(default)]
    uid: Option<String>,
}

/// Creates the request's one CertificateRequest, or finds it already there.
async fn create_request(
    inner: &Arc<Inner>,
    job: &Job,
    signer: &Signer,
    stub: &StubCsr,
    duration: Duration,
) -> Result<RequestKey, CreateError> {
    let pcr = &job.request;
    let name = certificate_request_name(&job.uid);
    let issuer_ref = signer.issuer_ref();
    let cr = new_request(
        job,
        &name,
        inner.issuer.node_hash(),
        &inner.ar.api_version,
        &issuer_ref,
        &stub.pem,
        duration,
    );
    let client = if inner.config.impersonate {
        impersonated_client(inner, &job.namespace, &pcr.spec.service_account_name)
            .map_err(|e| CreateError::Retry(e.to_string()))?
    } else {
        inner.connection.client().clone()
    };
    let url = <CertificateRequest as kube::Resource>::url_path(&(), Some(&job.namespace));
    let created = async {
        let body = serde_json::to_vec(&cr).map_err(kube::Error::SerdeError)?;
        let mut req = kube::core::Request::new(url)
            .create(&PostParams::default(), body)
            .map_err(kube::Error::BuildRequest)?;
        req.extensions_mut().insert("create");
        // Of the created object only its uid is read: the rest is skipped while decoding.
        client.request::<Created>(req).await
    };
    match created.await {
        Ok(created) => Ok(RequestKey {
            namespace: job.namespace.clone(),
            name,
            uid: created.metadata.uid,
        }),
        // Made earlier (by this replica before a restart, or by the previous leader): await it.
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(RequestKey {
            namespace: job.namespace.clone(),
            name,
            uid: None,
        }),
        Err(kube::Error::Api(e)) if e.code == 403 => {
            Err(CreateError::Refused(if inner.config.impersonate {
                format!(
                    "ServiceAccount {}/{} may not create CertificateRequests in namespace {} ({}); grant it create on \
                 certificaterequests.cert-manager.io, or run the signer without --impersonate-service-account",
                    job.namespace, pcr.spec.service_account_name, job.namespace, e.message
                )
            } else {
                format!(
                    "the signer may not create CertificateRequests in namespace {}: {}",
                    job.namespace, e.message
                )
            }))
        }
        Err(kube::Error::Api(e)) if e.code == 422 || e.code == 400 => {
            Err(CreateError::Refused(format!(
                "the CertificateRequest was refused by the API (admission or validation): {}",
                e.message
            )))
        }
        Err(e) => Err(CreateError::Retry(e.to_string())),
    }
}

/// Writes `update` to `/status` (`replace_status`, without decoding the
/// object the API answers with: nothing of it is read).
async fn write_status(
    client: &kube::Client,
    url: &str,
    name: &str,
    update: &StatusUpdate<'_>,
) -> Result<(), kube::Error> {
    let body = serde_json::to_vec(update).map_err(kube::Error::SerdeError)?;
    let mut req = kube::core::Request::new(url)
        .replace_subresource("status", name, &PostParams::default(), body)
        .map_err(kube::Error::BuildRequest)?;
    req.extensions_mut().insert("replace_status");
    client.request_text(req).await.map(drop)
}

/// Status writes that meet a conflict (the request changed since the watch
/// showed it) before the signer looks again later.
const MAX_STATUS_CONFLICTS: usize = 3;

/// Whether a PodCertificateRequest read from the API has an outcome.
fn decided(obj: &DynamicObject) -> bool {
    obj.data
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| {
            c.iter().any(|c| {
                c["status"] == "True"
                    && matches!(c["type"].as_str(), Some("Issued" | "Denied" | "Failed"))
            })
        })
}

/// Writes the status (once: the API refuses a second outcome); an Event when
/// the request was not issued.
///
/// The status is written as Kubernetes' own signers write it: an update of
/// `/status` carrying the resourceVersion the watch showed (so the signer's
/// role needs `update`, not `patch`). A conflict means the request changed
/// since: it is read again, left alone when it has an outcome (another
/// replica wrote it), else written with the new resourceVersion.
async fn finish(inner: &Arc<Inner>, job: &Job, status: Status, outcome: &'static str) -> Outcome {
    let issued = status.issued.as_ref();
    let fields = StatusFields {
        conditions: &status.conditions,
        certificate_chain: issued.map(|i| i.chain.as_str()),
        not_before: issued.map(|i| stamp(i.not_before)),
        not_after: issued.map(|i| stamp(i.not_after)),
        begin_refresh_at: issued.map(|i| stamp(i.refresh)),
        issued_at: issued
            .filter(|_| inner.version == "v1")
            .map(|_| stamp(jiff::Timestamp::now())),
    };
    let url = <PodCertificateRequest as kube::Resource>::url_path(&inner.ar, Some(&job.namespace));
    // For reading the request back after a conflict or a refusal (rare).
    let api = || -> Api<DynamicObject> {
        Api::namespaced_with(inner.connection.client().clone(), &job.namespace, &inner.ar)
    };
    let mut update = StatusUpdate {
        api_version: &inner.ar.api_version,
        kind: &inner.ar.kind,
        metadata: UpdateMetadata {
            name: &job.name,
            namespace: &job.namespace,
            uid: &job.uid,
            resource_version: job.request.metadata.resource_version.clone(),
        },
        status: fields,
    };
    let mut conflicts = 0;
    loop {
        match write_status(inner.connection.client(), &url, &job.name, &update).await {
            Ok(()) => break,
            Err(kube::Error::Api(e)) if e.code == 404 => return Outcome::Gone,
            Err(kube::Error::Api(e)) if e.code == 409 => {
                conflicts += 1;
                match api().get_opt(&job.name).await {
                    Ok(None) => return Outcome::Gone,
                    // Another request of the same name (deleted and made again): the watch queues it.
                    Ok(Some(obj)) if obj.metadata.uid.as_deref() != Some(job.uid.as_str()) => {
                        return Outcome::Gone;
                    }
                    Ok(Some(obj)) if decided(&obj) => return Outcome::Gone,
                    Ok(Some(obj)) if conflicts < MAX_STATUS_CONFLICTS => {
                        update.metadata.resource_version = obj.metadata.resource_version;
                    }
                    Ok(Some(_)) => {
                        tracing::warn!(namespace = %job.namespace, name = %job.name, "the request keeps changing under the status write; retrying");
                        return Outcome::Retry(Duration::from_secs(1));
                    }
                    Err(e) => {
                        tracing::warn!(namespace = %job.namespace, name = %job.name, error = %e, "reading the request after a conflict failed; retrying");
                        return Outcome::Retry(Duration::from_secs(5));
                    }
                }
            }
            Err(kube::Error::Api(e)) if e.code == 422 => {
                // Already decided (by another replica), or our status was refused.
                match api().get_opt(&job.name).await {
                    Ok(Some(obj)) if decided(&obj) => return Outcome::Gone,
                    _ => {
                        tracing::error!(namespace = %job.namespace, name = %job.name, error = %e.message, "the API refused the status");
                        if outcome == "failed" {
                            return Outcome::Retry(Duration::from_secs(30));
                        }
                        let fail = Status {
                            conditions: vec![condition(
                                "Failed",
                                "StatusRefused",
                                &format!("the API refused the signer's status: {}", e.message),
                                job.request.metadata.generation,
                            )],
                            issued: None,
                        };
                        return Box::pin(finish(inner, job, fail, "failed")).await;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(namespace = %job.namespace, name = %job.name, error = %e, "writing the status failed; retrying");
                return Outcome::Retry(Duration::from_secs(5));
            }
        }
    }
    if outcome == "issued" {
        // As Kubernetes' own signers (kube-controller-manager's CSR signer, the PodCertificateRequest
        // test signer): an issued request's status says all; Events are for what a person must act on.
        tracing::info!(namespace = %job.namespace, name = %job.name, outcome, "wrote the PodCertificateRequest's status");
        return Outcome::Done(outcome);
    }
    let (severity, reason, note) = match status.conditions.into_iter().next() {
        Some(c) => (EventType::Warning, c.reason, c.message),
        None => (EventType::Warning, "Unknown".into(), String::new()),
    };
    tracing::info!(namespace = %job.namespace, name = %job.name, outcome, %reason, "wrote the PodCertificateRequest's status");
    if let Ok(permit) = Arc::clone(&inner.events).try_acquire_owned() {
        let recorder = inner.recorder.clone();
        let regarding = ObjectReference {
            api_version: Some(inner.ar.api_version.clone()),
            kind: Some("PodCertificateRequest".into()),
            namespace: Some(job.namespace.clone()),
            name: Some(job.name.clone()),
            uid: Some(job.uid.clone()),
            ..Default::default()
        };
        tokio::spawn(async move {
            let mut note = note;
            if note.len() > 1000 {
                let mut end = 1000;
                while !note.is_char_boundary(end) {
                    end -= 1;
                }
                note.truncate(end);
            }
            let ev = KubeEvent {
                type_: severity,
                reason,
                note: Some(note),
                action: "Sign".into(),
                secondary: None,
            };
            if let Err(e) = recorder.publish(&ev, &regarding).await {
                tracing::debug!(error = %e, "could not record an Event");
            }
            drop(permit);
        });
    }
    Outcome::Done(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_is_inside_and_near_two_thirds() {
        for _ in 0..1000 {
            let r = refresh_at(0, 3600);
            assert!((2220..=2580).contains(&r), "{r}");
        }
        assert_eq!(refresh_at(0, 2), 1);
    }

    /// The CertificateRequest written from borrowed fields is the one the typed
    /// `CertificateRequest` describes, field for field.
    #[test]
    fn the_created_request_is_a_certificate_request() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
        let mut pcr = PodCertificateRequest::default();
        pcr.spec.pod_name = "web-0".into();
        pcr.spec.pod_uid = "pod-uid".into();
        pcr.spec.service_account_name = "default".into();
        pcr.spec.node_name = "node-a".into();
        let job = Job {
            namespace: "team".into(),
            name: "req".into(),
            uid: "1234".into(),
            request: Arc::new(pcr),
        };
        let issuer_ref = Signer::parse("clusterissuers.cert-manager.io/ca")
            .unwrap()
            .issuer_ref();
        let pem = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n";
        let duration = Duration::from_secs(86_400);
        let name = certificate_request_name(&job.uid);
        let ours = new_request(
            &job,
            &name,
            "node-hash",
            "certificates.k8s.io/v1",
            &issuer_ref,
            pem,
            duration,
        );
        let owned = |kv: &[(&str, &str)]| {
            kv.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>()
        };
        let typed = CertificateRequest::new(
            ObjectMeta {
                name: Some("pod-cert-1234".into()),
                namespace: Some("team".into()),
                labels: Some(owned(&[
                    (LABEL_NODE_ID_HASH, "node-hash"),
                    (LABEL_REQUEST_UID, "1234"),
                ])),
                annotations: Some(owned(&[
                    (ANNOTATION_POD_NAMESPACE, "team"),
                    (ANNOTATION_POD_NAME, "web-0"),
                    (ANNOTATION_POD_UID, "pod-uid"),
                    (ANNOTATION_SERVICE_ACCOUNT, "default"),
                    (ANNOTATION_NODE, "node-a"),
                ])),
                owner_references: Some(vec![OwnerReference {
                    api_version: "certificates.k8s.io/v1".into(),
                    kind: "PodCertificateRequest".into(),
                    name: "req".into(),
                    uid: "1234".into(),
                    controller: Some(true),
                    ..Default::default()
                }]),
                ..Default::default()
            },
            cmcsi_issuer_client::CertificateRequestSpec {
                request: pem.as_bytes().to_vec(),
                issuer_ref: issuer_ref.clone(),
                duration: Some(go_duration(duration)),
                usages: USAGES.iter().map(|u| (*u).to_owned()).collect(),
                ..Default::default()
            },
        );
        assert_eq!(
            serde_json::to_value(&ours).unwrap(),
            serde_json::to_value(&typed).unwrap()
        );
    }

    #[test]
    fn names_come_from_the_uid() {
        assert_eq!(certificate_request_name("1234"), "pod-cert-1234");
    }
}
