//! Kubernetes Events (`events.k8s.io/v1`) about a Pod's volume, through
//! kube's event recorder (which turns a repeat of the same reason into a
//! series PATCH of one Event rather than a new Event).
//!
//! This module only says what it is given; deciding when to say it (rate
//! limits, aggregation, a queue that never blocks issuance) is the caller's.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use crate::client::RequestKey;
use crate::connection::ApiConnection;
use crate::error::IssueError;

/// The Pod an Event is about (`regarding`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PodObject {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `metadata.uid` (empty when the kubelet did not say).
    pub uid: String,
}

/// Normal or Warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Things are as they should be (for instance renewed again).
    Normal,
    /// Something needs a person's attention.
    Warning,
}

/// One Event to publish.
#[derive(Debug, Clone)]
pub struct PodEvent {
    /// Normal or Warning.
    pub severity: Severity,
    /// `PascalCase`, at most 128 characters (kubectl's `Reason` column).
    pub reason: String,
    /// What the driver was doing, `PascalCase` (for instance `Issue`, `Renew`).
    pub action: String,
    /// The message a person reads; at most 1 kB (longer notes are cut).
    pub note: String,
    /// The CertificateRequest involved, if there is one (`related`).
    pub request: Option<RequestKey>,
}

/// The longest note the Events API accepts.
pub const MAX_NOTE_BYTES: usize = 1024;

/// Publishes Events on Pods with the driver's own credentials.
#[derive(Clone)]
pub struct EventRecorder {
    recorder: Recorder,
}

impl std::fmt::Debug for EventRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventRecorder").finish_non_exhaustive()
    }
}

impl EventRecorder {
    /// A recorder reporting as `controller` (`reportingController`) from
    /// `instance` (`reportingInstance`, for instance the node name).
    pub fn new(connection: &ApiConnection, controller: &str, instance: &str) -> Self {
        let reporter = Reporter {
            controller: controller.to_string(),
            instance: Some(instance.to_string()),
        };
        Self {
            recorder: Recorder::new(connection.client().clone(), reporter),
        }
    }

    /// Creates the Event on `pod`, or updates its series when the recorder
    /// sent the same reason for the same Pod in the last few minutes.
    pub async fn publish(&self, pod: &PodObject, event: &PodEvent) -> Result<(), IssueError> {
        let regarding = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            namespace: Some(pod.namespace.clone()),
            name: Some(pod.name.clone()),
            uid: Some(pod.uid.clone()).filter(|u| !u.is_empty()),
            ..Default::default()
        };
        let related = event.request.as_ref().map(|r| ObjectReference {
            api_version: Some(format!("{}/{}", crate::types::GROUP, crate::types::VERSION)),
            kind: Some(crate::types::KIND.into()),
            namespace: Some(r.namespace.clone()),
            name: Some(r.name.clone()),
            uid: r.uid.clone(),
            ..Default::default()
        });
        let ev = Event {
            type_: match event.severity {
                Severity::Normal => EventType::Normal,
                Severity::Warning => EventType::Warning,
            },
            reason: event.reason.clone(),
            note: Some(truncate(&escape_controls(&event.note), MAX_NOTE_BYTES)),
            action: event.action.clone(),
            secondary: related,
        };
        self.recorder
            .publish(&ev, &regarding)
            .await
            .map_err(|source| IssueError::Api {
                action: format!(
                    "recording Event {} on Pod {}/{}",
                    event.reason, pod.namespace, pod.name
                ),
                source,
            })
    }
}

/// `s` with control characters (newlines, escape sequences: an issuer's
/// message is copied into notes, and `kubectl describe` prints them to a
/// terminal) written as escapes (`\n`, `\u{1b}`), so a note is one line of
/// printable text.
fn escape_controls(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `s` cut to at most `max` bytes on a character boundary.
fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub(3);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::{escape_controls, truncate};

    #[test]
    fn notes_have_no_control_characters() {
        let note = escape_controls("denied:\nfake line\u{1b}[31mred\u{7}");
        assert!(!note.chars().any(char::is_control), "{note:?}");
        assert_eq!(note, "denied:\\nfake line\\u{1b}[31mred\\u{7}");
        assert_eq!(escape_controls("plain é"), "plain é");
    }

    #[test]
    fn notes_are_cut_on_a_character_boundary() {
        assert_eq!(truncate("short", 10), "short");
        let long = "é".repeat(600);
        let cut = truncate(&long, 1024);
        assert!(cut.len() <= 1024, "{}", cut.len());
        assert!(cut.ends_with("..."));
    }
}
