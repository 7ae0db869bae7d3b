//! The outcome of an issuance as the node keeps it for `status` and volume
//! health: the last failed issuance in a private side file
//! ([`LAST_ERROR_FILE`], 0600, outside `data/`: the error's message as a
//! person reads it in `kubectl describe pod`, never key material, tokens or
//! passwords, cut to [`MAX_LAST_ERROR_BYTES`], removed at the next success)
//! and the request that issued the current certificate ([`ISSUED_BY_FILE`]).
//! A leaf (store IO only): the pipeline records a success in the task that
//! writes the files, `health` records a failure and reads both.

use std::time::SystemTime;

use cmcsi_store::{Store, StoreError};
use serde::{Deserialize, Serialize};

/// The private side file with a volume's last failed issuance.
pub const LAST_ERROR_FILE: &str = "last-error.json";

/// Most bytes of an error message kept in [`LAST_ERROR_FILE`].
pub const MAX_LAST_ERROR_BYTES: usize = 2048;

/// The private side file naming the CertificateRequest that issued the
/// volume's current certificate (its name only), so the metrics' `name`
/// label is right after a restart too.
pub const ISSUED_BY_FILE: &str = "issued-by";

/// Longest request name kept (Kubernetes object names are at most 253).
pub(crate) const MAX_REQUEST_NAME: usize = 253;

/// A volume's last failed issuance, as [`LAST_ERROR_FILE`] holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastError {
    /// When it failed (RFC 3339).
    pub time: String,
    /// What failed, as the Pod's Events say it (no secrets), cut to
    /// [`MAX_LAST_ERROR_BYTES`].
    pub message: String,
    /// Failures in a row since the last success.
    pub failures: u32,
    /// Whether the volume had a certificate already (a renewal failed)
    /// rather than never having had one.
    pub renewal: bool,
}

impl LastError {
    pub(crate) fn decode(raw: &[u8]) -> Option<LastError> {
        serde_json::from_slice(raw).ok()
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub(crate) fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Records the outcome of one issuance of `volume_id`: a failure replaces
/// [`LAST_ERROR_FILE`] (counting failures in a row); a success (the
/// request's name) removes it and writes [`ISSUED_BY_FILE`]. Blocking
/// (store IO); a volume that is gone is not an error.
pub(crate) fn record_outcome(
    store: &Store,
    volume_id: &str,
    outcome: Result<&str, &str>,
    now: SystemTime,
) -> Result<(), StoreError> {
    let error = match outcome {
        Ok(request) => {
            let result = store
                .remove_private(volume_id, LAST_ERROR_FILE)
                .and_then(|_| {
                    store.write_private(
                        volume_id,
                        ISSUED_BY_FILE,
                        cut(request, MAX_REQUEST_NAME).as_bytes(),
                    )
                });
            return match result {
                Ok(()) | Err(StoreError::VolumeNotFound { .. }) => Ok(()),
                Err(e) => Err(e),
            };
        }
        Err(error) => error,
    };
    let meta = match store.read_metadata(volume_id) {
        Ok(m) => m,
        Err(StoreError::VolumeNotFound { .. }) => return Ok(()),
        Err(e) => return Err(e),
    };
    let before = store
        .read_private(volume_id, LAST_ERROR_FILE)?
        .and_then(|raw| LastError::decode(&raw));
    let record = LastError {
        time: crate::timefmt::rfc3339(now),
        message: cut(error, MAX_LAST_ERROR_BYTES),
        failures: before.map_or(1, |b| b.failures.saturating_add(1)),
        renewal: meta.next_issuance_time.is_some(),
    };
    let json = serde_json::to_vec(&record).map_err(|e| StoreError::Metadata {
        id: volume_id.to_owned(),
        reason: format!("cannot encode {LAST_ERROR_FILE}: {e}"),
    })?;
    store.write_private(volume_id, LAST_ERROR_FILE, &json)
}

/// Records a successful issuance of `volume_id` by `request` (see
/// [`record_outcome`]). Called by the pipeline in the blocking task that
/// writes the volume's files, so a success costs no hop of its own.
pub(crate) fn record_issued(
    store: &Store,
    volume_id: &str,
    request: &str,
) -> Result<(), StoreError> {
    record_outcome(store, volume_id, Ok(request), SystemTime::now())
}
