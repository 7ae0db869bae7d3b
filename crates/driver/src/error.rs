//! The driver's errors, and the one place they become gRPC statuses.

use tonic::Status;

/// Why a publish or an issuance failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// The request itself is wrong (missing field, not ephemeral, not read-only).
    #[error("{0}")]
    InvalidRequest(String),
    /// The volume attributes are wrong (every problem in one message).
    #[error("invalid volume attributes: {0}")]
    Attributes(#[from] cmcsi_attrs::AttributeErrors),
    /// Another operation on the same volume is in progress.
    #[error("{0}")]
    Busy(String),
    /// The volume (named) was removed (unpublished) meanwhile.
    #[error("volume {0} no longer exists")]
    Gone(String),
    /// The node store failed.
    #[error("node storage: {0}")]
    Store(#[from] cmcsi_store::StoreError),
    /// Key, CSR or keystore handling failed.
    #[error("key or certificate handling: {0}")]
    Key(#[from] cmcsi_keygen::Error),
    /// cert-manager or the Kubernetes API.
    #[error("{0}")]
    Issuer(#[from] cmcsi_issuer_client::IssueError),
    /// The Pod's ServiceAccount token (token-request mode).
    #[error("{0}")]
    Token(#[from] cmcsi_issuer_client::TokenError),
    /// The driver has no usable Kubernetes configuration.
    #[error(
        "the driver has no Kubernetes API configuration ({0}); it keeps serving mounted \
         volumes but cannot issue certificates until it is restarted with a valid \
         --kubeconfig or in-cluster ServiceAccount"
    )]
    NoKubernetes(std::sync::Arc<cmcsi_issuer_client::ConfigError>),
    /// Mounting or unmounting the volume failed: `action` on `path`.
    #[error("{action} {}: {source}", path.display())]
    Mount {
        /// What was being done (`"bind-mounting the volume at"`, ...).
        action: &'static str,
        /// The target path.
        path: std::path::PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// The record of an in-flight request could not be encoded.
    #[error("encoding the pending-request record: {0}")]
    PendingRecord(#[source] serde_json::Error),
    /// The Pod does not yet meet its readiness gates, or has no IP address
    /// for `${POD_IP}`; retried with the gate backoff.
    #[error("{0}")]
    PodNotReady(String),
    /// The volume is not on this node, or not at the path asked about.
    #[error("{0}")]
    NotFound(String),
    /// The volume's trust bundle source is missing, refused or not readable.
    #[error("{0}")]
    Trust(#[from] cmcsi_issuer_client::TrustError),
    /// A trust bundle source holds something other than CA certificates, or the
    /// bundle is too large.
    #[error("{0}")]
    TrustBundle(String),
    /// A blocking task the driver started (store IO) was cancelled, which
    /// happens only while the runtime shuts down.
    #[error("{0} was cancelled because the driver is shutting down; the kubelet will retry")]
    Worker(String),
}

impl DriverError {
    /// What the renewer is told when an issuance it asked for ends in this
    /// error: a Pod not ready is "not ready" (checked again with the gate
    /// backoff), an API that did not answer is "unavailable" (retried as soon
    /// as another volume's issuance succeeds), anything else a failure.
    pub(crate) fn to_issue_failure(&self) -> cmcsi_renewer::IssueFailure {
        use cmcsi_renewer::IssueFailure;
        let msg = self.to_string();
        match self {
            DriverError::PodNotReady(_) => IssueFailure::not_ready(msg),
            DriverError::NoKubernetes(_) => IssueFailure::unavailable(msg),
            DriverError::Issuer(e) if e.cause() == cmcsi_issuer_client::Cause::Unavailable => {
                IssueFailure::unavailable(msg)
            }
            _ => IssueFailure::new(msg),
        }
    }

    /// The gRPC status a kubelet gets for this error (the design's table).
    pub fn to_status(&self) -> Status {
        use cmcsi_issuer_client::Cause;
        let msg = self.to_string();
        match self {
            DriverError::InvalidRequest(_) | DriverError::Attributes(_) => {
                Status::invalid_argument(msg)
            }
            DriverError::Busy(_) | DriverError::Gone(_) => Status::aborted(msg),
            DriverError::NotFound(_) => Status::not_found(msg),
            DriverError::NoKubernetes(_) => Status::unavailable(msg),
            DriverError::Token(_) => Status::failed_precondition(msg),
            // The Pod's own token rejected is `Rejected` (the Pod must get a
            // new one); the driver's rejected credentials are `Unavailable`
            // (they may be rotating).
            DriverError::Issuer(e) => match e.cause() {
                Cause::Rejected => Status::failed_precondition(msg),
                Cause::Unavailable => Status::unavailable(msg),
                Cause::TimedOut => Status::deadline_exceeded(msg),
                Cause::Deleted => Status::aborted(msg),
                Cause::Internal => Status::internal(msg),
            },
            DriverError::Worker(_) | DriverError::PodNotReady(_) => Status::unavailable(msg),
            DriverError::TrustBundle(_) => Status::failed_precondition(msg),
            DriverError::Trust(e) => match e {
                cmcsi_issuer_client::TrustError::Api(_)
                | cmcsi_issuer_client::TrustError::NotSynced(_) => Status::unavailable(msg),
                _ => Status::failed_precondition(msg),
            },
            DriverError::Store(_)
            | DriverError::Key(_)
            | DriverError::Mount { .. }
            | DriverError::PendingRecord(_) => Status::internal(msg),
        }
    }
}
