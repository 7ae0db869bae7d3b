//! Kubernetes Events on the Pod that mounts a volume: issuance failed,
//! renewal failing, certificate overdue for renewal, certificate expired,
//! and (once after a failure) renewed again.
//!
//! What a person sees is decided here; the API call is `issuer-client`'s
//! [`EventRecorder`]. Emission never blocks or fails an issuance: Events go
//! through a bounded queue to one background task, and a full queue drops
//! the Event (logged at debug, counted). Each namespace holds at most its
//! share of the queue (`--max-queued-events-per-namespace`), so one tenant's
//! failing volumes cannot fill it and silence the others' Events; its
//! further Events are dropped (counted, never labelled by namespace, so
//! tenants cannot grow the metrics). Each volume says each reason at most once per
//! `--event-interval`, however fast it retries; repeats inside the interval
//! are counted and the count is told with the next Event of that reason.
//! Events carry the error's message (which names the CertificateRequest and
//! what to check), never a volume attribute's value: no token, no key.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use cmcsi_issuer_client::{EventRecorder, PodEvent, PodObject, RequestKey, Severity};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::error::DriverError;

/// Past its renewal time by more than this, a failing renewal is also
/// reported as `CertificateOverdueForRefresh` (the alert's threshold too).
pub const OVERDUE_AFTER: Duration = Duration::from_secs(10 * 60);

/// The `reason`s the driver reports (kubectl's `Reason` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// A first issuance failed: the Pod has no certificate yet.
    IssuanceFailed,
    /// A renewal failed: the Pod keeps its current certificate for now.
    RenewalFailing,
    /// The certificate is past its renewal time and renewals keep failing
    /// (the kubelet's own Pod-certificate projection uses this name).
    CertificateOverdueForRefresh,
    /// The mounted certificate has expired.
    CertificateExpired,
    /// Issued again after one or more failures.
    CertificateRenewed,
    /// The volume's trust bundle source is missing or refused; its last good
    /// bundle stays.
    TrustBundleMissing,
}

impl Reason {
    /// The Event's `reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::IssuanceFailed => "IssuanceFailed",
            Reason::RenewalFailing => "RenewalFailing",
            Reason::CertificateOverdueForRefresh => "CertificateOverdueForRefresh",
            Reason::CertificateExpired => "CertificateExpired",
            Reason::CertificateRenewed => "CertificateRenewed",
            Reason::TrustBundleMissing => "TrustBundleMissing",
        }
    }
}

/// Settings of the Event reporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventsConfig {
    /// Whether to publish Events at all.
    pub enabled: bool,
    /// At most one Event per volume and reason per this interval.
    pub interval: Duration,
    /// Events waiting to be sent; more are dropped.
    pub queue_size: usize,
    /// Events of one namespace waiting to be sent (or being sent); more of
    /// that namespace are dropped.
    pub namespace_share: usize,
}

/// Default of `--event-queue-size`.
pub const DEFAULT_EVENT_QUEUE_SIZE: usize = 256;

/// Default of `--max-queued-events-per-namespace`: an eighth of the default
/// queue, so at least eight namespaces' Events fit at once.
pub const DEFAULT_NAMESPACE_SHARE: usize = 32;

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: Duration::from_secs(5 * 60),
            queue_size: DEFAULT_EVENT_QUEUE_SIZE,
            namespace_share: DEFAULT_NAMESPACE_SHARE,
        }
    }
}

/// Events in the queue per namespace (the one being sent included), and
/// the Events dropped. Namespaces with none queued are not kept, so the map
/// holds at most the queue's size plus one.
#[derive(Debug, Default)]
struct Shares {
    queued: Mutex<HashMap<String, usize>>,
    dropped: AtomicU64,
}

impl Shares {
    fn queued(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.queued.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a place of `namespace`'s share; false when it is used up.
    fn take(&self, namespace: &str, share: usize) -> bool {
        let mut queued = self.queued();
        match queued.get_mut(namespace) {
            Some(n) if *n >= share => false,
            Some(n) => {
                *n += 1;
                true
            }
            None => {
                queued.insert(namespace.to_owned(), 1);
                true
            }
        }
    }

    /// Gives back a place taken by [`Shares::take`].
    fn give_back(&self, namespace: &str) {
        let mut queued = self.queued();
        if let Some(n) = queued.get_mut(namespace) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                queued.remove(namespace);
            }
        }
    }
}

/// What the reporter remembers of one volume.
#[derive(Debug, Default)]
struct VolumeState {
    /// Per reason: when it was last sent and how many were held back since.
    last: HashMap<Reason, (Instant, u64)>,
    /// Failed attempts since the last success.
    failures: u64,
    /// The mounted certificate's notAfter, when known.
    not_after: Option<SystemTime>,
}

struct Queued {
    pod: PodObject,
    event: PodEvent,
}

/// The driver's Event reporter; cheap to call from any path.
pub(crate) struct Events {
    tx: Option<mpsc::Sender<Queued>>,
    interval: Duration,
    volumes: Mutex<HashMap<String, VolumeState>>,
    /// Most Events of one namespace in the queue.
    share: usize,
    shares: Arc<Shares>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("enabled", &self.tx.is_some())
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

/// One failed attempt, as the reporter needs it.
pub(crate) struct Failure<'a> {
    pub(crate) volume_id: &'a str,
    pub(crate) pod: Option<PodObject>,
    /// A first issuance (no certificate yet) rather than a renewal.
    pub(crate) first: bool,
    pub(crate) error: &'a DriverError,
    /// When the volume was due for renewal.
    pub(crate) renewal_due: Option<SystemTime>,
}

impl Events {
    /// Starts the background sender (when enabled and there is a recorder).
    pub(crate) fn start(config: EventsConfig, recorder: Option<EventRecorder>) -> Self {
        let shares = Arc::<Shares>::default();
        let tx = match recorder {
            Some(recorder) if config.enabled => {
                let (tx, rx) = mpsc::channel(config.queue_size.max(1));
                tokio::spawn(send_all(recorder, rx, Arc::clone(&shares)));
                Some(tx)
            }
            _ => None,
        };
        Self::with_sender(tx, config, shares)
    }

    fn with_sender(
        tx: Option<mpsc::Sender<Queued>>,
        config: EventsConfig,
        shares: Arc<Shares>,
    ) -> Self {
        Self {
            tx,
            interval: config.interval,
            volumes: Mutex::new(HashMap::new()),
            share: config.namespace_share.max(1),
            shares,
        }
    }

    /// Events dropped since start: their namespace's share of the queue, or
    /// the whole queue, was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.shares.dropped.load(Ordering::Relaxed)
    }

    fn volumes(&self) -> std::sync::MutexGuard<'_, HashMap<String, VolumeState>> {
        self.volumes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a certificate's expiry (after issuance or at recovery).
    pub(crate) fn remember_expiry(&self, volume_id: &str, not_after: SystemTime) {
        self.volumes()
            .entry(volume_id.to_string())
            .or_default()
            .not_after = Some(not_after);
    }

    /// Forgets an unpublished volume.
    pub(crate) fn forget(&self, volume_id: &str) {
        self.volumes().remove(volume_id);
    }

    /// Reports a failed attempt: `IssuanceFailed` or `RenewalFailing`, and
    /// `CertificateOverdueForRefresh` / `CertificateExpired` when they apply.
    pub(crate) fn failed(&self, f: Failure<'_>) {
        let Some(pod) = f.pod else { return };
        let request = request_of(f.error);
        let now = SystemTime::now();
        let mut out = Vec::new();
        {
            let mut volumes = self.volumes();
            let state = volumes.entry(f.volume_id.to_string()).or_default();
            state.failures += 1;
            let attempts = state.failures;
            let (reason, action, what) = if f.first {
                (Reason::IssuanceFailed, "Issue", "Issuing the certificate")
            } else {
                (Reason::RenewalFailing, "Renew", "Renewing the certificate")
            };
            if let Some(held) = self.admit(state, reason) {
                out.push(PodEvent {
                    severity: Severity::Warning,
                    reason: reason.as_str().into(),
                    action: action.into(),
                    note: format!(
                        "{what} failed ({}, attempt {attempts}{}): {}",
                        kind_of(f.error),
                        held_note(held),
                        f.error
                    ),
                    request: request.clone(),
                });
            }
            if let Some(due) = f.renewal_due
                && now
                    .duration_since(due)
                    .is_ok_and(|late| late > OVERDUE_AFTER)
                && state.not_after.is_none_or(|na| now < na)
                && let Some(held) = self.admit(state, Reason::CertificateOverdueForRefresh)
            {
                out.push(PodEvent {
                    severity: Severity::Warning,
                    reason: Reason::CertificateOverdueForRefresh.as_str().into(),
                    action: "Renew".into(),
                    note: format!(
                        "The certificate was due for renewal at {} and renewals keep failing{}; \
                         it is still valid{}. Last error: {}",
                        crate::timefmt::rfc3339(due),
                        held_note(held),
                        state
                            .not_after
                            .map(|na| format!(" until {}", crate::timefmt::rfc3339(na)))
                            .unwrap_or_default(),
                        f.error
                    ),
                    request: request.clone(),
                });
            }
            if let Some(na) = state.not_after
                && now >= na
                && let Some(held) = self.admit(state, Reason::CertificateExpired)
            {
                out.push(PodEvent {
                    severity: Severity::Warning,
                    reason: Reason::CertificateExpired.as_str().into(),
                    action: "Renew".into(),
                    note: format!(
                        "The mounted certificate expired at {} and could not be renewed{}; \
                         the Pod's TLS peers will reject it. Last error: {}",
                        crate::timefmt::rfc3339(na),
                        held_note(held),
                        f.error
                    ),
                    request: request.clone(),
                });
            }
        }
        for event in out {
            self.enqueue(pod.clone(), event);
        }
    }

    /// Reports `TrustBundleMissing`: the volume's trust bundle source is gone or
    /// refused (`why`), and its last good bundle stays. Rate-limited per volume.
    pub(crate) fn trust_bundle_missing(&self, volume_id: &str, pod: Option<PodObject>, why: &str) {
        let Some(pod) = pod else { return };
        let held = {
            let mut volumes = self.volumes();
            let state = volumes.entry(volume_id.to_string()).or_default();
            self.admit(state, Reason::TrustBundleMissing)
        };
        if let Some(held) = held {
            self.enqueue(
                pod,
                PodEvent {
                    severity: Severity::Warning,
                    reason: Reason::TrustBundleMissing.as_str().into(),
                    action: "RefreshTrustBundle".into(),
                    note: format!(
                        "The volume's trust bundle could not be refreshed{}: {why}; its last good bundle stays",
                        held_note(held)
                    ),
                    request: None,
                },
            );
        }
    }

    /// Reports a success: `CertificateRenewed` once when failures came
    /// before it; resets the volume's failure count and rate limits.
    pub(crate) fn succeeded(
        &self,
        volume_id: &str,
        pod: Option<PodObject>,
        request: Option<RequestKey>,
        not_after: SystemTime,
    ) {
        let failures = {
            let mut volumes = self.volumes();
            let state = volumes.entry(volume_id.to_string()).or_default();
            state.not_after = Some(not_after);
            state.last.clear();
            std::mem::take(&mut state.failures)
        };
        let Some(pod) = pod else { return };
        if failures == 0 {
            return;
        }
        self.enqueue(
            pod,
            PodEvent {
                severity: Severity::Normal,
                reason: Reason::CertificateRenewed.as_str().into(),
                action: "Renew".into(),
                note: format!(
                    "Issued{} after {failures} failed attempt{}; the new certificate is valid until {}",
                    request
                        .as_ref()
                        .map(|r| format!(" by CertificateRequest {r}"))
                        .unwrap_or_default(),
                    if failures == 1 { "" } else { "s" },
                    crate::timefmt::rfc3339(not_after)
                ),
                request,
            },
        );
    }

    /// `Some(held back since the last one)` when `reason` may be sent now.
    fn admit(&self, state: &mut VolumeState, reason: Reason) -> Option<u64> {
        let now = Instant::now();
        match state.last.get_mut(&reason) {
            Some((at, held)) if now.duration_since(*at) < self.interval => {
                *held += 1;
                None
            }
            Some((at, held)) => {
                *at = now;
                Some(std::mem::take(held))
            }
            None => {
                state.last.insert(reason, (now, 0));
                Some(0)
            }
        }
    }

    fn enqueue(&self, pod: PodObject, event: PodEvent) {
        let Some(tx) = &self.tx else { return };
        if !self.shares.take(&pod.namespace, self.share) {
            self.shares.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                pod = %pod.name,
                namespace = %pod.namespace,
                reason = %event.reason,
                "Event dropped: the namespace's share of the queue \
                 (--max-queued-events-per-namespace) is full"
            );
            return;
        }
        if let Err(e) = tx.try_send(Queued { pod, event }) {
            let q = e.into_inner();
            self.shares.give_back(&q.pod.namespace);
            self.shares.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                pod = %q.pod.name,
                namespace = %q.pod.namespace,
                reason = %q.event.reason,
                "Event dropped: the queue (--event-queue-size) is full"
            );
        }
    }
}

/// The Pod a volume belongs to, from the kubelet's `csi.storage.k8s.io/pod.*`
/// keys; `None` without a name and namespace (nothing to attach Events to).
pub(crate) fn pod_of(spec: &cmcsi_attrs::CertificateSpec) -> Option<PodObject> {
    Some(PodObject {
        namespace: spec.pod.namespace.clone().filter(|s| !s.is_empty())?,
        name: spec.pod.name.clone().filter(|s| !s.is_empty())?,
        uid: spec.pod.uid.clone().unwrap_or_default(),
    })
}

/// `(pod, namespace)` of a volume from its stored context, for log lines
/// (empty when the kubelet did not pass them).
pub(crate) fn pod_fields(context: &std::collections::BTreeMap<String, String>) -> (&str, &str) {
    let get = |k: &str| context.get(k).map_or("", String::as_str);
    (
        get(cmcsi_attrs::keys::POD_NAME),
        get(cmcsi_attrs::keys::POD_NAMESPACE),
    )
}

/// The CertificateRequest an error is about.
pub(crate) fn request_of(e: &DriverError) -> Option<RequestKey> {
    match e {
        DriverError::Issuer(e) => e.request().map(|(namespace, name)| RequestKey {
            namespace: namespace.to_string(),
            name: name.to_string(),
            uid: None,
        }),
        _ => None,
    }
}

/// The CertificateRequest `name` of a volume: requests live in the Pod's
/// namespace ([`crate::pipeline::Issued::request`] holds only the name).
pub(crate) fn request_named(spec: &cmcsi_attrs::CertificateSpec, name: &str) -> Option<RequestKey> {
    Some(RequestKey {
        namespace: spec.pod.namespace.clone().filter(|s| !s.is_empty())?,
        name: name.to_string(),
        uid: None,
    })
    .filter(|r| !r.name.is_empty())
}

/// A short word for the kind of failure, first in the Event's note.
fn kind_of(e: &DriverError) -> &'static str {
    use cmcsi_issuer_client::IssueError as I;
    match e {
        DriverError::Issuer(I::Denied { .. }) => "request denied",
        DriverError::Issuer(I::InvalidRequest { .. }) => "request invalid for the issuer",
        DriverError::Issuer(I::Failed { .. }) => "request failed",
        DriverError::Issuer(I::TimedOut { .. }) => "timed out",
        DriverError::Issuer(I::Deleted { .. }) => "request deleted",
        DriverError::Issuer(I::Forbidden { .. } | I::Unauthorized { .. }) => {
            "Kubernetes API refused"
        }
        DriverError::Issuer(_) | DriverError::NoKubernetes(_) => "Kubernetes API error",
        DriverError::Token(_) => "ServiceAccount token",
        DriverError::Attributes(_) | DriverError::InvalidRequest(_) => "invalid volume",
        DriverError::Key(_) => "key or certificate",
        DriverError::Store(_)
        | DriverError::Mount { .. }
        | DriverError::PendingRecord(_)
        | DriverError::Worker(_) => "node error",
        DriverError::Busy(_) | DriverError::Gone(_) => "volume busy",
        DriverError::NotFound(_) => "volume not found",
        DriverError::PodNotReady(_) => "Pod not ready",
        DriverError::Trust(_) | DriverError::TrustBundle(_) => "trust bundle",
    }
}

fn held_note(held: u64) -> String {
    if held == 0 {
        String::new()
    } else {
        format!("; {held} more since the last Event")
    }
}

async fn send_all(recorder: EventRecorder, mut rx: mpsc::Receiver<Queued>, shares: Arc<Shares>) {
    while let Some(Queued { pod, event }) = rx.recv().await {
        let sent = recorder.publish(&pod, &event).await;
        // Its place in the namespace's share is free once it is sent.
        shares.give_back(&pod.namespace);
        if let Err(e) = sent {
            tracing::warn!(
                pod = %pod.name,
                namespace = %pod.namespace,
                reason = %event.reason,
                error = %e,
                "could not record an Event on the Pod"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denied() -> DriverError {
        DriverError::Issuer(cmcsi_issuer_client::IssueError::Denied {
            namespace: "ns".into(),
            name: "cr-1".into(),
            reason: "Policy".into(),
            message: "no".into(),
        })
    }

    fn pod() -> PodObject {
        pod_in("ns")
    }

    fn pod_in(namespace: &str) -> PodObject {
        PodObject {
            namespace: namespace.into(),
            name: "p".into(),
            uid: "u".into(),
        }
    }

    fn test_events(tx: mpsc::Sender<Queued>, interval: Duration, share: usize) -> Events {
        Events::with_sender(
            Some(tx),
            EventsConfig {
                interval,
                namespace_share: share,
                ..EventsConfig::default()
            },
            Arc::default(),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn one_event_per_reason_and_interval_whatever_the_retry_rate() {
        let (tx, mut rx) = mpsc::channel(100);
        let events = test_events(tx, Duration::from_secs(300), 100);
        let err = denied();
        for _ in 0..20 {
            events.failed(Failure {
                volume_id: "v",
                pod: Some(pod()),
                first: true,
                error: &err,
                renewal_due: None,
            });
            tokio::time::advance(Duration::from_secs(5)).await;
        }
        let first = rx.try_recv().unwrap();
        assert_eq!(first.event.reason, "IssuanceFailed");
        assert!(first.event.note.contains("ns/cr-1"), "{}", first.event.note);
        assert_eq!(first.event.request.unwrap().name, "cr-1");
        assert!(rx.try_recv().is_err(), "20 retries in 100 s: one Event");
        tokio::time::advance(Duration::from_secs(300)).await;
        events.failed(Failure {
            volume_id: "v",
            pod: Some(pod()),
            first: true,
            error: &err,
            renewal_due: None,
        });
        let second = rx.try_recv().unwrap();
        assert!(
            second.event.note.contains("19 more"),
            "{}",
            second.event.note
        );
        events.succeeded("v", Some(pod()), None, SystemTime::now());
        assert_eq!(rx.try_recv().unwrap().event.reason, "CertificateRenewed");
        events.succeeded("v", Some(pod()), None, SystemTime::now());
        assert!(rx.try_recv().is_err(), "renewed only once after failures");
    }

    #[tokio::test(start_paused = true)]
    async fn overdue_and_expired_are_reported_once() {
        let (tx, mut rx) = mpsc::channel(100);
        let events = test_events(tx, Duration::from_secs(300), 100);
        let err = denied();
        let hour_ago = SystemTime::now() - Duration::from_secs(3600);
        events.remember_expiry("v", SystemTime::now() + Duration::from_secs(3600));
        for _ in 0..2 {
            events.failed(Failure {
                volume_id: "v",
                pod: Some(pod()),
                first: false,
                error: &err,
                renewal_due: Some(hour_ago),
            });
        }
        let reasons: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|q| q.event.reason)
            .collect();
        assert_eq!(reasons, ["RenewalFailing", "CertificateOverdueForRefresh"]);
        events.remember_expiry("v", hour_ago);
        events.failed(Failure {
            volume_id: "v",
            pod: Some(pod()),
            first: false,
            error: &err,
            renewal_due: Some(hour_ago),
        });
        let reasons: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|q| q.event.reason)
            .collect();
        assert_eq!(reasons, ["CertificateExpired"]);
    }

    #[test]
    fn a_full_queue_drops_rather_than_blocks() {
        let (tx, _rx) = mpsc::channel(1);
        let events = test_events(tx, Duration::ZERO, 1);
        let err = denied();
        for i in 0..10 {
            events.failed(Failure {
                volume_id: &format!("v{i}"),
                pod: Some(pod()),
                first: true,
                error: &err,
                renewal_due: None,
            });
        }
    }

    #[test]
    fn one_namespace_cannot_fill_the_queue_for_the_others() {
        // A queue of 8 with a share of 2: one namespace's 100 failing volumes
        // (distinct volumes, so the per-volume interval lets each through)
        // hold two places; another namespace's Event still goes in.
        let (tx, mut rx) = mpsc::channel(8);
        let events = test_events(tx, Duration::from_secs(300), 2);
        let err = denied();
        let fail = |volume: &str, namespace: &str| {
            events.failed(Failure {
                volume_id: volume,
                pod: Some(pod_in(namespace)),
                first: true,
                error: &err,
                renewal_due: None,
            });
        };
        for i in 0..100 {
            fail(&format!("greedy-{i}"), "greedy");
        }
        fail("victim", "victim");
        assert_eq!(
            events.dropped(),
            98,
            "the flood beyond its share is counted"
        );
        let queued: Vec<String> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|q| {
                // What the sender does once an Event is sent.
                events.shares.give_back(&q.pod.namespace);
                q.pod.namespace
            })
            .collect();
        assert_eq!(queued, ["greedy", "greedy", "victim"]);
        assert!(
            events.shares.queued().is_empty(),
            "no namespace is kept once its Events are sent"
        );
        // Sent, the share is free again.
        fail("greedy-100", "greedy");
        assert_eq!(rx.try_recv().unwrap().pod.namespace, "greedy");
    }

    #[tokio::test]
    async fn a_flooding_namespace_leaves_room_for_another_namespaces_event_in_the_api() {
        // The real sender and recorder against the fake API, started once the
        // flood is queued (as when the API is slow): the other namespace's
        // Event is written.
        let api = cmcsi_testkit::FakeApi::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        api.write_kubeconfig(&kubeconfig, cmcsi_testkit::DEFAULT_TOKEN)
            .unwrap();
        let connection = cmcsi_issuer_client::client_from_config(Some(kubeconfig), 0.0, 0)
            .await
            .unwrap();
        let recorder = EventRecorder::new(&connection, "csi.cert-manager.io", "node-a");
        let (tx, rx) = mpsc::channel(8);
        let events = test_events(tx, Duration::from_secs(300), 2);
        let err = denied();
        for i in 0..50 {
            events.failed(Failure {
                volume_id: &format!("greedy-{i}"),
                pod: Some(pod_in("greedy")),
                first: true,
                error: &err,
                renewal_due: None,
            });
        }
        events.failed(Failure {
            volume_id: "victim",
            pod: Some(pod_in("victim")),
            first: true,
            error: &err,
            renewal_due: None,
        });
        assert_eq!(events.dropped(), 48);
        tokio::spawn(send_all(recorder, rx, Arc::clone(&events.shares)));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while api.events_regarding("victim", "p").is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the other namespace's Event never reached the API"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // (Its two are one Event with a series: the recorder aggregates
        // repeats on one Pod, as client-go's does.)
        assert!(!api.events_regarding("greedy", "p").is_empty());
        while !events.shares.queued().is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "shares not given back"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
