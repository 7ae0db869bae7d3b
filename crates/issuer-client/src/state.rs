//! Reading a request's conditions the way cert-manager means them.

use std::sync::Arc;

use jiff::Timestamp;

use crate::types::CertificateRequest;
use crate::{ANNOTATION_VOLUME_ID, RequestKey};

/// Where a request stands, by cert-manager's semantics.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// Not decided yet: no `Ready` condition, `Ready=False` with reason
    /// `Pending`, or not yet approved. Keep waiting.
    Pending {
        /// Why it is still waiting, for a person to read.
        reason: String,
    },
    /// `Ready=True` and `status.certificate` is set.
    Issued,
    /// `Denied=True`: the approver refused; terminal.
    Denied {
        /// The condition's reason.
        reason: String,
        /// The condition's message.
        message: String,
    },
    /// `InvalidRequest=True`: malformed for the issuer; terminal.
    InvalidRequest {
        /// The condition's reason.
        reason: String,
        /// The condition's message.
        message: String,
    },
    /// `Ready=False` with reason `Failed`: terminal for this request.
    Failed {
        /// The condition's reason.
        reason: String,
        /// The condition's message.
        message: String,
    },
}

impl Phase {
    /// Whether the request will never change outcome (issued, denied,
    /// invalid or failed).
    pub fn is_terminal(&self) -> bool {
        !matches!(self, Phase::Pending { .. })
    }

    /// Interprets `cr`'s status conditions.
    pub fn of(cr: &CertificateRequest) -> Phase {
        let text = |c: &crate::types::CertificateRequestCondition| {
            (
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            )
        };
        if let Some(c) = cr.condition("Denied").filter(|c| c.is_true()) {
            let (reason, message) = text(c);
            return Phase::Denied { reason, message };
        }
        if let Some(c) = cr.condition("InvalidRequest").filter(|c| c.is_true()) {
            let (reason, message) = text(c);
            return Phase::InvalidRequest { reason, message };
        }
        let approved = cr.condition("Approved").is_some_and(|c| c.is_true());
        match cr.condition("Ready") {
            Some(c) if c.is_true() => {
                let has_cert = cr
                    .status
                    .as_ref()
                    .and_then(|s| s.certificate.as_ref())
                    .is_some_and(|b| !b.is_empty());
                if has_cert {
                    Phase::Issued
                } else {
                    Phase::Pending {
                        reason: "Ready=True but status.certificate is still empty".into(),
                    }
                }
            }
            Some(c) if c.is_false() && c.reason.as_deref() == Some("Failed") => {
                let (reason, message) = text(c);
                Phase::Failed { reason, message }
            }
            // cert-manager sets Ready=False/Denied together with Denied=True;
            // honour it on its own too.
            Some(c) if c.is_false() && c.reason.as_deref() == Some("Denied") => {
                let (reason, message) = text(c);
                Phase::Denied { reason, message }
            }
            Some(c) => {
                let (reason, message) = text(c);
                let mut why = format!(
                    "Ready={} reason={}",
                    c.status,
                    if reason.is_empty() { "<none>" } else { &reason }
                );
                if !message.is_empty() {
                    why.push_str(&format!(": {message}"));
                }
                if !approved {
                    why.push_str(" (not yet approved)");
                }
                Phase::Pending { reason: why }
            }
            None if !approved => Phase::Pending {
                reason: "not yet approved, no Ready condition".into(),
            },
            None => Phase::Pending {
                reason: "approved, waiting for the issuer (no Ready condition yet)".into(),
            },
        }
    }
}

/// A request as last seen by the node-wide watch.
#[derive(Clone, Debug)]
pub struct RequestState {
    /// Namespace and name (and uid) of the request.
    pub key: RequestKey,
    /// The full volume id from the request's annotation, if it has one
    /// (requests made by the Go driver do not).
    pub volume_id: Option<String>,
    /// `metadata.creationTimestamp`.
    pub created: Option<Timestamp>,
    /// Interpretation of its conditions.
    pub phase: Phase,
    /// The object itself.
    pub object: Arc<CertificateRequest>,
}

impl RequestState {
    /// Builds the state of a watched object; `None` if it lacks a name or namespace.
    pub(crate) fn from_object(object: Arc<CertificateRequest>) -> Option<Self> {
        let meta = &object.metadata;
        let key = RequestKey {
            namespace: meta.namespace.clone()?,
            name: meta.name.clone()?,
            uid: meta.uid.clone(),
        };
        Some(Self {
            key,
            volume_id: meta
                .annotations
                .as_ref()
                .and_then(|a| a.get(ANNOTATION_VOLUME_ID))
                .cloned(),
            created: meta.creation_timestamp.as_ref().map(|t| t.0),
            phase: Phase::of(&object),
            object,
        })
    }

    /// The PEM chain and CA when issued.
    pub fn issued(&self) -> Option<crate::Issued> {
        if self.phase != Phase::Issued {
            return None;
        }
        let status = self.object.status.as_ref()?;
        Some(crate::Issued {
            key: self.key.clone(),
            certificate_pem: status.certificate.clone().unwrap_or_default(),
            ca_pem: status.ca.clone().unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{CertificateRequestCondition, CertificateRequestStatus};

    fn cr(conditions: &[(&str, &str, Option<&str>)], cert: Option<&[u8]>) -> CertificateRequest {
        CertificateRequest {
            status: Some(CertificateRequestStatus {
                conditions: conditions
                    .iter()
                    .map(|(t, s, r)| CertificateRequestCondition {
                        type_: (*t).into(),
                        status: (*s).into(),
                        reason: r.map(Into::into),
                        message: Some(format!("{t} message")),
                        ..Default::default()
                    })
                    .collect(),
                certificate: cert.map(<[u8]>::to_vec),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn no_status_waits() {
        let phase = Phase::of(&CertificateRequest::default());
        assert!(matches!(&phase, Phase::Pending { reason } if reason.contains("not yet approved")));
        assert!(!phase.is_terminal());
    }

    #[test]
    fn not_approved_waits_even_with_ready_pending() {
        let phase = Phase::of(&cr(&[("Ready", "False", Some("Pending"))], None));
        assert!(
            matches!(&phase, Phase::Pending { reason } if reason.contains("Pending") && reason.contains("not yet approved")),
            "{phase:?}"
        );
    }

    #[test]
    fn issued_needs_a_certificate() {
        let ready = [
            ("Approved", "True", None),
            ("Ready", "True", Some("Issued")),
        ];
        assert_eq!(Phase::of(&cr(&ready, Some(b"pem"))), Phase::Issued);
        assert!(matches!(
            Phase::of(&cr(&ready, None)),
            Phase::Pending { .. }
        ));
        // Issuers that do not use approval still issue.
        let unapproved = [("Ready", "True", Some("Issued"))];
        assert_eq!(Phase::of(&cr(&unapproved, Some(b"pem"))), Phase::Issued);
    }

    #[test]
    fn denied_and_invalid_are_terminal() {
        let denied = Phase::of(&cr(
            &[
                ("Denied", "True", Some("policy")),
                ("Ready", "False", Some("Denied")),
            ],
            None,
        ));
        assert_eq!(
            denied,
            Phase::Denied {
                reason: "policy".into(),
                message: "Denied message".into()
            }
        );
        let invalid = Phase::of(&cr(&[("InvalidRequest", "True", Some("BadCSR"))], None));
        assert!(matches!(&invalid, Phase::InvalidRequest { reason, .. } if reason == "BadCSR"));
        assert!(invalid.is_terminal());
        // Denied=False is not a denial.
        assert!(matches!(
            Phase::of(&cr(&[("Denied", "False", None)], None)),
            Phase::Pending { .. }
        ));
    }

    #[test]
    fn ready_false_failed_is_terminal_pending_is_not() {
        let failed = Phase::of(&cr(
            &[
                ("Approved", "True", None),
                ("Ready", "False", Some("Failed")),
            ],
            None,
        ));
        assert!(matches!(&failed, Phase::Failed { message, .. } if message == "Ready message"));
        let pending = Phase::of(&cr(
            &[
                ("Approved", "True", None),
                ("Ready", "False", Some("Pending")),
            ],
            None,
        ));
        assert!(
            matches!(&pending, Phase::Pending { reason } if reason.contains("reason=Pending") && !reason.contains("approved)")),
            "{pending:?}"
        );
    }
}
