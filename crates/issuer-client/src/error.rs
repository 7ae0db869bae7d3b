//! Errors, each phrased for a person reading `kubectl describe pod`.

use std::path::PathBuf;
use std::time::Duration;

use crate::token::TokenError;

/// Why a request could not be created, awaited or cleaned up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// The approver denied the request (`Denied=True`); terminal.
    #[error(
        "CertificateRequest {namespace}/{name} was denied ({reason}: {message}); check that the approver \
         (cert-manager's default approver or approver-policy) allows requests for this issuer from this identity"
    )]
    Denied {
        /// Namespace of the request.
        namespace: String,
        /// Name of the request.
        name: String,
        /// The `Denied` condition's reason.
        reason: String,
        /// The `Denied` condition's message.
        message: String,
    },
    /// The issuer found the request invalid (`InvalidRequest=True`); terminal.
    #[error(
        "CertificateRequest {namespace}/{name} is invalid for its issuer ({reason}: {message}); change the \
         volume attributes (key usages, duration, is-ca, names) to what the issuer accepts"
    )]
    InvalidRequest {
        /// Namespace of the request.
        namespace: String,
        /// Name of the request.
        name: String,
        /// The condition's reason.
        reason: String,
        /// The condition's message.
        message: String,
    },
    /// The issuer failed to sign it (`Ready=False`, reason `Failed`); terminal for this request.
    #[error(
        "CertificateRequest {namespace}/{name} failed ({reason}: {message}); check the issuer's status and \
         cert-manager's logs; a new request will be made"
    )]
    Failed {
        /// Namespace of the request.
        namespace: String,
        /// Name of the request.
        name: String,
        /// The `Ready` condition's reason.
        reason: String,
        /// The `Ready` condition's message.
        message: String,
    },
    /// The request was deleted before it reached an outcome.
    #[error(
        "CertificateRequest {namespace}/{name} was deleted before it was issued (by a person, by garbage \
         collection of its Pod, or by a cleanup); a new request will be made"
    )]
    Deleted {
        /// Namespace of the request.
        namespace: String,
        /// Name of the request.
        name: String,
    },
    /// No outcome before the deadline.
    #[error(
        "timed out after {waited:?} waiting for CertificateRequest {namespace}/{name} (last seen: \
         {last_reason}); check that the issuer exists and is Ready and that the request is approved \
         (kubectl describe certificaterequest -n {namespace} {name})"
    )]
    TimedOut {
        /// Namespace of the request.
        namespace: String,
        /// Name of the request.
        name: String,
        /// How long we waited.
        waited: Duration,
        /// What the request was waiting on when we gave up.
        last_reason: String,
    },
    /// The API server could not be reached, or answered 429 or 5xx. Retryable.
    #[error("the Kubernetes API is unavailable while {action}: {detail}; it will be retried")]
    ApiUnavailable {
        /// What we were doing.
        action: String,
        /// What went wrong.
        detail: String,
    },
    /// The API server answered 403.
    #[error("{}", forbidden_message(action, detail, *token_mode))]
    Forbidden {
        /// What we were doing.
        action: String,
        /// The server's message.
        detail: String,
        /// Whether the request used the Pod's own token.
        token_mode: bool,
    },
    /// The API server answered 401: the credentials were rejected.
    #[error(
        "the Kubernetes API rejected the {} credentials while {action}: {detail}",
        if *token_mode { "Pod's ServiceAccount token" } else { "driver's" }
    )]
    Unauthorized {
        /// What we were doing.
        action: String,
        /// The server's message.
        detail: String,
        /// Whether the request used the Pod's own token.
        token_mode: bool,
    },
    /// The Pod's token is missing, malformed or expired.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// A token was given, but this client was built without the
    /// configuration needed to make per-Pod clients.
    #[error(
        "token-request mode needs the API server configuration; build the IssuerClient from an ApiConnection"
    )]
    TokenModeUnavailable,
    /// The caller passed something that cannot become a request.
    #[error("invalid CertificateRequest input: {0}")]
    InvalidInput(String),
    /// Any other API error.
    #[error("Kubernetes API error while {action}: {source}")]
    Api {
        /// What we were doing.
        action: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
}

fn forbidden_message(action: &str, detail: &str, token_mode: bool) -> String {
    if token_mode {
        format!(
            "forbidden while {action}: {detail}; in token-request mode the Pod's ServiceAccount needs RBAC \
             permission to create certificaterequests.cert-manager.io in its namespace"
        )
    } else {
        format!(
            "forbidden while {action}: {detail}; the driver's ServiceAccount needs RBAC permission to \
             create, delete, list and watch certificaterequests.cert-manager.io"
        )
    }
}

/// What an [`IssueError`] means for the caller: who has to act. Every
/// variant of `IssueError` has exactly one cause, decided here, so a caller
/// (the driver's gRPC mapping) can match causes exhaustively instead of
/// guessing for variants added later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cause {
    /// The request was refused for good (denied, invalid, failed, forbidden,
    /// a bad Pod token): the Pod's owner or the issuer's must change something.
    Rejected,
    /// The API could not be reached or the driver's own credentials were
    /// refused (they may be rotating): trying again later may work.
    Unavailable,
    /// cert-manager did not answer within the deadline.
    TimedOut,
    /// The request was deleted while it was awaited.
    Deleted,
    /// A fault in the driver or its configuration (bad input it built, an
    /// unexpected API answer): nobody outside the node can fix it.
    Internal,
}

impl IssueError {
    /// The CertificateRequest this error is about, `(namespace, name)`, when
    /// there is one.
    pub fn request(&self) -> Option<(&str, &str)> {
        match self {
            IssueError::Denied {
                namespace, name, ..
            }
            | IssueError::InvalidRequest {
                namespace, name, ..
            }
            | IssueError::Failed {
                namespace, name, ..
            }
            | IssueError::Deleted { namespace, name }
            | IssueError::TimedOut {
                namespace, name, ..
            } => Some((namespace, name)),
            IssueError::ApiUnavailable { .. }
            | IssueError::Forbidden { .. }
            | IssueError::Unauthorized { .. }
            | IssueError::Token(_)
            | IssueError::TokenModeUnavailable
            | IssueError::InvalidInput(_)
            | IssueError::Api { .. } => None,
        }
    }

    /// Who has to act on this error; see [`Cause`].
    pub fn cause(&self) -> Cause {
        match self {
            IssueError::Denied { .. }
            | IssueError::InvalidRequest { .. }
            | IssueError::Failed { .. }
            | IssueError::Forbidden { .. }
            | IssueError::Token(_)
            | IssueError::Unauthorized {
                token_mode: true, ..
            } => Cause::Rejected,
            IssueError::Unauthorized {
                token_mode: false, ..
            }
            | IssueError::ApiUnavailable { .. } => Cause::Unavailable,
            IssueError::TimedOut { .. } => Cause::TimedOut,
            IssueError::Deleted { .. } => Cause::Deleted,
            IssueError::TokenModeUnavailable
            | IssueError::InvalidInput(_)
            | IssueError::Api { .. } => Cause::Internal,
        }
    }

    /// Whether trying again later (with the same or a new request) may succeed
    /// without anyone changing anything: API unavailability, timeouts,
    /// deletions and issuer failures.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            IssueError::ApiUnavailable { .. }
                | IssueError::TimedOut { .. }
                | IssueError::Deleted { .. }
                | IssueError::Failed { .. }
        )
    }

    /// Maps a client error to the typed error; `action` says what we were doing.
    pub(crate) fn from_kube(action: impl Into<String>, err: kube::Error, token_mode: bool) -> Self {
        let action = action.into();
        match err {
            kube::Error::Api(status) => {
                let detail = if status.message.is_empty() {
                    format!("HTTP {} {}", status.code, status.reason)
                } else {
                    status.message.clone()
                };
                match status.code {
                    429 | 500..=599 => IssueError::ApiUnavailable {
                        action,
                        detail: format!("HTTP {}: {detail}", status.code),
                    },
                    403 => IssueError::Forbidden {
                        action,
                        detail,
                        token_mode,
                    },
                    401 => IssueError::Unauthorized {
                        action,
                        detail,
                        token_mode,
                    },
                    _ => IssueError::Api {
                        action,
                        source: kube::Error::Api(status),
                    },
                }
            }
            kube::Error::HyperError(e) => IssueError::ApiUnavailable {
                action,
                detail: e.to_string(),
            },
            kube::Error::Service(e) => IssueError::ApiUnavailable {
                action,
                detail: error_chain(e.as_ref()),
            },
            other => IssueError::Api {
                action,
                source: other,
            },
        }
    }
}

/// `err: cause: cause` for errors whose top level says little ("client error (Connect)").
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

/// Why no API client could be configured.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The kubeconfig file could not be read or used.
    #[error("cannot use kubeconfig {path}: {source}")]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// Neither a kubeconfig nor the in-cluster environment is available.
    #[error(
        "no Kubernetes API configuration: not running in a cluster ({in_cluster}) and no kubeconfig \
         ({kubeconfig}); pass --kubeconfig or set KUBECONFIG"
    )]
    NotFound {
        /// Why in-cluster configuration failed.
        in_cluster: String,
        /// Why the default kubeconfig failed.
        kubeconfig: String,
    },
    /// A connection flag could not be applied.
    #[error("{flag}: {problem}")]
    Override {
        /// The flag.
        flag: &'static str,
        /// What was wrong and what to pass instead.
        problem: String,
    },
    /// The configuration was found but no client could be built from it.
    #[error("cannot build a Kubernetes client: {0}")]
    Client(#[source] kube::Error),
}
