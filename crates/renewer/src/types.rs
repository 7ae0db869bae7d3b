//! The small vocabulary shared by the renewer and the code that issues.

use std::borrow::Borrow;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The identifier of one CSI volume (the kubelet's `volume_id`). Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VolumeId(Arc<str>);

impl VolumeId {
    /// Wraps a volume ID.
    pub fn new(id: impl Into<Arc<str>>) -> Self {
        Self(id.into())
    }

    /// The volume ID as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for VolumeId {
    fn from(id: &str) -> Self {
        Self(id.into())
    }
}

impl From<String> for VolumeId {
    fn from(id: String) -> Self {
        Self(id.into())
    }
}

impl Borrow<str> for VolumeId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for VolumeId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for VolumeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for VolumeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// What was just issued: the validity window of the new certificate and the
/// volume's `renew-before`, if it set one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifetime {
    /// The certificate's `notBefore`.
    pub not_before: SystemTime,
    /// The certificate's `notAfter`.
    pub not_after: SystemTime,
    /// The volume's `csi.cert-manager.io/renew-before`, if set.
    pub renew_before: Option<Duration>,
}

impl Lifetime {
    /// A lifetime without `renew-before`.
    pub fn new(not_before: SystemTime, not_after: SystemTime) -> Self {
        Self {
            not_before,
            not_after,
            renew_before: None,
        }
    }

    /// The same lifetime with `renew-before` set.
    #[must_use]
    pub fn with_renew_before(mut self, renew_before: Duration) -> Self {
        self.renew_before = Some(renew_before);
        self
    }

    /// `notAfter − notBefore`, or zero when the window is empty or inverted.
    pub fn duration(&self) -> Duration {
        self.not_after
            .duration_since(self.not_before)
            .unwrap_or(Duration::ZERO)
    }

    /// When this certificate should be renewed, before jitter:
    /// `notAfter − renew-before` when `renew-before` is set and shorter than the
    /// lifetime (the Go driver's rule), else `notAfter − lifetime/3`.
    pub fn renewal_time(&self) -> SystemTime {
        let lifetime = self.duration();
        let before = match self.renew_before {
            Some(rb) if rb < lifetime => rb,
            _ => lifetime / 3,
        };
        self.not_after
            .checked_sub(before)
            .unwrap_or(self.not_before)
    }
}

/// Why the renewer is asking for an issuance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IssueReason {
    /// The certificate reached its renewal time.
    Renewal,
    /// An earlier attempt failed and its backoff has passed.
    Retry,
    /// The volume was restored after a driver restart and is due (or overdue).
    Recovery,
    /// Someone asked for it: [`Renewer::wake`](crate::Renewer::wake)
    /// or [`Renewer::manage_pending`](crate::Renewer::manage_pending).
    Requested,
}

impl fmt::Display for IssueReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Renewal => "renewal",
            Self::Retry => "retry",
            Self::Recovery => "recovery",
            Self::Requested => "requested",
        })
    }
}

/// Why one issuance attempt did not issue. The message must already be safe
/// to log (no keys, tokens or passwords): the renewer logs it and keeps it as
/// the volume's last error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct IssueFailure {
    message: String,
    kind: FailureKind,
}

/// What kind of "no" an attempt answered, which decides how the renewer
/// retries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureKind {
    /// The issuance was tried and failed: retried with the failure backoff
    /// ([`RenewerConfig::backoff`](crate::RenewerConfig::backoff)) and
    /// counted in [`VolumeState::attempts`].
    Failed,
    /// Nothing was tried because something the volume waits for is not
    /// there yet (its Pod does not meet its readiness gates, or has no IP
    /// address yet): checked again with
    /// [`RenewerConfig::not_ready_backoff`](crate::RenewerConfig::not_ready_backoff),
    /// or at once on [`Renewer::wake`](crate::Renewer::wake). Not a failure:
    /// it does not count toward [`VolumeState::attempts`] nor toward the
    /// volume's issuance floor.
    NotReady,
    /// Something every volume shares did not answer (the Kubernetes API
    /// unreachable, throttled or failing): retried with the failure backoff
    /// like [`FailureKind::Failed`], and as soon as any other volume's
    /// attempt succeeds (the shared cause is gone), through the renewal pace
    /// rather than each at the end of its backoff. So renewals that fell due
    /// during an outage are done at the pace's rate once it ends.
    Unavailable,
}

impl IssueFailure {
    /// A failed issuance with this (log-safe) message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            kind: FailureKind::Failed,
        }
    }

    /// "Not ready yet" with this (log-safe) message: see
    /// [`FailureKind::NotReady`].
    pub fn not_ready(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            kind: FailureKind::NotReady,
        }
    }

    /// A failure of something every volume shares, with this (log-safe)
    /// message: see [`FailureKind::Unavailable`].
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            kind: FailureKind::Unavailable,
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// What kind of "no" this is.
    pub fn kind(&self) -> FailureKind {
        self.kind
    }
}

/// How to issue a certificate for a volume: implemented by the driver.
///
/// The renewer calls this when a volume is due and holds a concurrency permit
/// while the returned future runs. Do the work inside the future, not in the
/// synchronous part of the call: after [`Renewer::forget`](crate::Renewer::forget)
/// returns, the renewer never polls a future for that volume again (one poll
/// already running on another thread may finish), so the future must tolerate
/// being dropped at any `.await`.
///
/// `permit` is a clone of the attempt's permit: move a clone of it into each
/// blocking task the issuance starts, so the slot stays taken until that
/// work ends even when the future is dropped (a timed-out attempt's key
/// generation then never runs beside a full set of new attempts).
pub trait Issue: Send + Sync + 'static {
    /// Issue a new certificate for `volume`, write it, and report its lifetime.
    fn issue(
        &self,
        volume: VolumeId,
        reason: IssueReason,
        permit: crate::IssuancePermit,
    ) -> impl Future<Output = Result<Lifetime, IssueFailure>> + Send;
}

/// What the renewer knows about one managed volume (for metrics and logs).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct VolumeState {
    /// When the next attempt is scheduled; `None` while an attempt is running
    /// or when nothing is scheduled (`disable-auto-renew`).
    pub due: Option<SystemTime>,
    /// Whether the last attempt failed and the volume is waiting to retry.
    pub retrying: bool,
    /// Consecutive failed attempts since the last success.
    pub attempts: u32,
    /// The message of the last failed attempt, cleared on success.
    pub last_error: Option<String>,
    /// Whether the current certificate's `notAfter` has passed.
    pub expired: bool,
    /// The current certificate's `notAfter`, when known.
    pub not_after: Option<SystemTime>,
    /// Whether an attempt has its permit and is running.
    pub in_flight: bool,
    /// Whether the volume has `disable-auto-renew` set.
    pub disable_auto_renew: bool,
    /// Consecutive "not ready" answers ([`FailureKind::NotReady`]) since
    /// the last issuance or failure; the volume is waiting while this is
    /// more than zero.
    pub not_ready: u32,
    /// The volume's tenant (see [`Tenant`]).
    pub tenant: Tenant,
}

/// Counts over all managed volumes (for metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Managed volumes.
    pub managed: usize,
    /// Volumes whose last attempt failed.
    pub retrying: usize,
    /// Volumes whose certificate has expired.
    pub expired: usize,
    /// Attempts holding a permit and running.
    pub in_flight: usize,
    /// Attempts that are due and waiting for a permit.
    pub queued: usize,
    /// First issuances waiting in [`Renewer::acquire_first_issuance`](crate::Renewer::acquire_first_issuance).
    pub first_issuances_waiting: usize,
    /// How often the scheduler task has woken up since start.
    pub scheduler_wakeups: u64,
    /// Volumes whose last attempt answered "not ready" and that wait for a
    /// check or a [`Renewer::wake`](crate::Renewer::wake).
    pub not_ready: usize,
}

/// The outcome of one issuance attempt, sent to
/// [`Renewer::subscribe`](crate::Renewer::subscribe) receivers.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct IssuanceEvent {
    /// The volume.
    pub volume: VolumeId,
    /// Why the attempt was made.
    pub reason: IssueReason,
    /// What happened.
    pub outcome: Outcome,
}

/// What happened in one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// A certificate was issued.
    Issued {
        /// Its `notAfter`.
        not_after: SystemTime,
        /// When it will be renewed (`None` with `disable-auto-renew`).
        next_due: Option<SystemTime>,
    },
    /// The attempt failed; the old certificate (if any) stays.
    Failed {
        /// The failure message.
        message: String,
        /// Consecutive failures, this one included.
        attempts: u32,
        /// When the next attempt is scheduled.
        retry_at: SystemTime,
        /// Whether the current certificate has already expired.
        expired: bool,
    },
    /// The attempt answered "not ready" ([`FailureKind::NotReady`]); the
    /// current certificate (if any) stays.
    NotReady {
        /// What the volume waits for.
        message: String,
        /// Consecutive "not ready" answers, this one included.
        checks: u32,
        /// When it is checked again (sooner on a wake).
        retry_at: SystemTime,
    },
}

/// Whose volume this is, for fairness: renewals share the node's pace
/// ([`RenewerConfig::renewal_rate`](crate::RenewerConfig::renewal_rate))
/// round-robin between the tenants that have renewals waiting, so one
/// tenant's many volumes cannot keep another's waiting. The driver uses the
/// Pod's namespace. The default (empty) tenant is one tenant like any other.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tenant(Arc<str>);

impl Tenant {
    /// A tenant named `name`.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self(name.into())
    }

    /// The tenant's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Tenant {
    fn from(name: &str) -> Self {
        Self(name.into())
    }
}

impl From<String> for Tenant {
    fn from(name: String) -> Self {
        Self(name.into())
    }
}

impl fmt::Display for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}
