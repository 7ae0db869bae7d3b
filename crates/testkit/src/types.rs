//! The public values of the fake API's handle: its error, the verbs it
//! counts, a snapshot of the counts, and the faults it can inject.

use std::collections::BTreeMap;
use std::time::Duration;

/// Errors of the test kit itself (not of the API it serves).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Binding, accepting or writing a file failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The test CA could not be created.
    #[error("test CA: {0}")]
    Ca(#[from] crate::ca::CaError),
    /// Building a kube client failed.
    #[error("kube client: {0}")]
    Kube(String),
    /// A wait helper timed out.
    #[error("timed out after {0:?} waiting for a condition")]
    Timeout(Duration),
    /// The server task is gone.
    #[error("the fake API server has stopped")]
    Stopped,
    /// The HTTPS set-up failed.
    #[error("TLS: {0}")]
    Tls(String),
}

/// The kind of an API request, as the API server's audit log names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Verb {
    /// POST of a new object.
    Create,
    /// GET of one object.
    Get,
    /// GET of a collection.
    List,
    /// GET of a collection with `watch=true`.
    Watch,
    /// PUT.
    Update,
    /// PATCH.
    Patch,
    /// DELETE of one object.
    Delete,
    /// DELETE of a collection.
    DeleteCollection,
    /// Discovery and `/version`.
    Discovery,
}

/// A snapshot of request counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    by: BTreeMap<(Verb, String), u64>,
}

impl Counts {
    /// A snapshot of the server's counters.
    pub(crate) fn new(by: BTreeMap<(Verb, String), u64>) -> Self {
        Self { by }
    }

    /// Requests of this verb, any resource.
    pub fn verb(&self, verb: Verb) -> u64 {
        self.by
            .iter()
            .filter(|((v, _), _)| *v == verb)
            .map(|(_, n)| n)
            .sum()
    }

    /// Requests of this verb on this resource (`certificaterequests`,
    /// `certificaterequests/status`, or a discovery path such as `/version`).
    pub fn of(&self, verb: Verb, resource: &str) -> u64 {
        self.by
            .get(&(verb, resource.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// All requests.
    pub fn total(&self) -> u64 {
        self.by.values().sum()
    }

    /// Every (verb, resource) pair with its count.
    pub fn iter(&self) -> impl Iterator<Item = (Verb, &str, u64)> {
        self.by.iter().map(|((v, r), n)| (*v, r.as_str(), *n))
    }
}

/// An injected API failure.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Answer with this HTTP status (e.g. 500, 503) and a `Status` body.
    Status(u16),
    /// Answer `429 Too Many Requests` with `Retry-After: <secs>`.
    TooManyRequests {
        /// The `Retry-After` header, in seconds.
        retry_after_secs: u64,
    },
}
