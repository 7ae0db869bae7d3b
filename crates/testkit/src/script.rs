//! What the test issuer is told to do: a [`Script`] per issuer name (and a
//! default), and the requests it has taken on. The behaviour is in `issuer`.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::ca::parse_go_duration;

/// What the test issuer does with a CertificateRequest for a given issuer name.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Script {
    /// Approve (`Approved=True`), then sign: `Ready=True` reason `Issued` with
    /// `status.certificate` (the leaf) and `status.ca`.
    Sign,
    /// Deny: `Denied=True` with this reason and message, then `Ready=False`
    /// reason `Denied` and `failureTime`. No `Approved` condition.
    Deny {
        /// The `Denied` condition's reason.
        reason: String,
        /// The `Denied` condition's message.
        message: String,
    },
    /// Approve, then fail: `Ready=False` reason `Failed` with this message and `failureTime`.
    Fail {
        /// The `Ready` condition's message.
        message: String,
    },
    /// Mark the request invalid: `InvalidRequest=True`, `Ready=False` reason `Failed`.
    InvalidRequest {
        /// The `InvalidRequest` condition's message.
        message: String,
    },
    /// Never answer: leave the request pending.
    Never,
    /// Approve at once, wait this long (tokio time, so paused-time tests skip it), then sign.
    Delay(Duration),
    /// Approve only; never sign (an issuer that is down).
    ApproveOnly,
    /// Approve, then sign for this lifetime whatever `spec.duration` asks
    /// (an issuer that ignores the requested duration).
    SignFor(Duration),
}

impl Script {
    /// A denial with cert-manager-like reason and message.
    pub fn deny() -> Self {
        Script::Deny {
            reason: "PolicyDenied".into(),
            message: "denied by the test approver".into(),
        }
    }

    /// A failure with a default message.
    pub fn fail() -> Self {
        Script::Fail {
            message: "the test issuer failed to sign".into(),
        }
    }

    /// Parses the command-line form: `sign`, `deny`, `deny:REASON:MESSAGE`,
    /// `fail`, `fail:MESSAGE`, `invalid`, `never`, `approve-only`, `delay:DURATION`
    /// (Go duration, e.g. `delay:5s`).
    pub fn parse(s: &str) -> Result<Self, String> {
        let (head, rest) = s.split_once(':').unwrap_or((s, ""));
        Ok(match head {
            "sign" => Script::Sign,
            "deny" if rest.is_empty() => Script::deny(),
            "deny" => {
                let (reason, message) = rest.split_once(':').unwrap_or((rest, "denied"));
                Script::Deny {
                    reason: reason.into(),
                    message: message.into(),
                }
            }
            "fail" if rest.is_empty() => Script::fail(),
            "fail" => Script::Fail {
                message: rest.into(),
            },
            "invalid" => Script::InvalidRequest {
                message: if rest.is_empty() {
                    "the request is invalid for the test issuer".into()
                } else {
                    rest.into()
                },
            },
            "never" => Script::Never,
            "approve-only" => Script::ApproveOnly,
            "delay" => Script::Delay(parse_go_duration(rest).map_err(|e| e.to_string())?),
            "sign-for" => Script::SignFor(parse_go_duration(rest).map_err(|e| e.to_string())?),
            other => return Err(format!("unknown issuer script {other:?}")),
        })
    }
}

#[derive(Default)]
pub(crate) struct IssuerState {
    pub scripts: HashMap<String, Script>,
    pub default: Option<Script>,
    /// UIDs of requests the issuer has taken on.
    pub handled: HashSet<String>,
    /// Issuers with a CA of their own (after [`crate::FakeApi::rotate_issuer_ca`]).
    pub cas: HashMap<String, std::sync::Arc<crate::ca::TestCa>>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parse_scripts() {
        assert_eq!(Script::parse("sign").unwrap(), Script::Sign);
        assert_eq!(Script::parse("never").unwrap(), Script::Never);
        assert_eq!(
            Script::parse("delay:5s").unwrap(),
            Script::Delay(Duration::from_secs(5))
        );
        assert_eq!(
            Script::parse("deny:R:M").unwrap(),
            Script::Deny {
                reason: "R".into(),
                message: "M".into()
            }
        );
        assert!(
            matches!(Script::parse("fail:boom").unwrap(), Script::Fail { message } if message == "boom")
        );
        assert!(Script::parse("explode").is_err());
    }
}
