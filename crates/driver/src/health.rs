//! A volume's health, read from the node alone: its certificate's expiry,
//! its next renewal, a pending request and its last failed issuance. Shared
//! by `NodeGetVolumeStats` (the kubelet's volume health) and the `status`
//! command; the driver records a failed issuance here too (the files'
//! format and writing are `outcome`'s, which the pipeline uses for a success).
//!
//! The last failure lives in a private side file of the volume
//! ([`LAST_ERROR_FILE`], 0600, outside `data/`): the error's message as a
//! person reads it in `kubectl describe pod` (it never holds key material,
//! tokens or passwords), cut to [`MAX_LAST_ERROR_BYTES`], and removed at the
//! next successful issuance.

use std::time::{Duration, SystemTime};

use cmcsi_keygen::ChainSummary;
use cmcsi_store::{Metadata, StoreError, StoreView};

use crate::driver::Driver;
use crate::error::DriverError;
use crate::events::OVERDUE_AFTER;
use crate::locks::VolumeGuard;

pub use crate::outcome::{ISSUED_BY_FILE, LAST_ERROR_FILE, LastError, MAX_LAST_ERROR_BYTES};
use crate::outcome::{MAX_REQUEST_NAME, cut, record_outcome};

impl Driver {
    /// Keeps a failed issuance where `status` and `NodeGetVolumeStats` read
    /// it, under the volume's lock (a success is recorded by the pipeline,
    /// [`record_issued`]). A failure to record is logged, never returned: it
    /// must not change the issuance's outcome.
    pub(crate) async fn record_failure(
        &self,
        volume_id: &str,
        guard: &VolumeGuard,
        error: &DriverError,
    ) {
        let id = volume_id.to_owned();
        let message = error.to_string();
        let result = self
            .on_store_locked(guard, move |s| {
                record_outcome(s, &id, Err(&message), SystemTime::now())
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(volume = volume_id, error = %e, "could not record the issuance's outcome for status and volume health");
        }
    }

    /// `NodeGetVolumeStats`: the usage of the volume's `data/` and its
    /// condition. `NotFound` when the volume is not this node's or is not
    /// published at `volume_path`.
    pub(crate) async fn volume_stats(
        &self,
        volume_id: &str,
        volume_path: &str,
    ) -> Result<(cmcsi_store::VolumeUsage, Condition), DriverError> {
        let (id, path) = (volume_id.to_owned(), volume_path.to_owned());
        self.on_store(move |s| {
            let state = match VolumeState::read(s, &id) {
                Ok(st) => st,
                Err(StoreError::VolumeNotFound { .. }) => {
                    return Err(DriverError::NotFound(format!(
                        "volume {id} is not on this node"
                    )));
                }
                Err(e) => return Err(e.into()),
            };
            if std::path::Path::new(&state.meta.target_path) != std::path::Path::new(&path) {
                return Err(DriverError::NotFound(format!(
                    "volume {id} is not published at {path}"
                )));
            }
            let usage = s.volume_usage(&id)?;
            Ok((usage, state.condition(SystemTime::now())))
        })
        .await
    }
}

/// The name of the request that issued volume `id`'s current certificate,
/// if recorded (blocking).
pub(crate) fn issued_by(r: &StoreView, id: &str) -> Option<String> {
    let raw = r.read_private(id, ISSUED_BY_FILE).ok()??;
    let name = std::str::from_utf8(&raw).ok()?;
    (!name.is_empty() && name.len() <= MAX_REQUEST_NAME).then(|| name.to_owned())
}

/// What the node knows of one volume.
#[derive(Debug, Clone)]
pub(crate) struct VolumeState {
    pub(crate) meta: Metadata,
    /// The current certificate's `notAfter`, when there is one that parses.
    pub(crate) not_after: Option<SystemTime>,
    /// The request in flight (namespace, name), if one is recorded.
    pub(crate) pending: Option<(String, String)>,
    /// The last failed issuance since the last success.
    pub(crate) last_error: Option<LastError>,
}

impl VolumeState {
    /// Reads volume `id`'s state (blocking).
    pub(crate) fn read(r: &StoreView, id: &str) -> Result<VolumeState, StoreError> {
        let meta = r.read_metadata(id)?;
        // The certificate's file name is in the stored attributes.
        let spec: Option<cmcsi_attrs::CertificateSpec> = r.read_secrets(id).ok().and_then(|s| {
            crate::volume::parse_stored(&meta, s.iter(), None)
                .ok()
                .map(|p| p.spec)
        });
        let not_after = match &spec {
            Some(spec) => r
                .read_current_file(id, &spec.files.certificate)?
                .and_then(|pem| ChainSummary::from_pem(&pem).ok())
                .map(|s| s.not_after),
            None => None,
        };
        let pending = r
            .read_private(id, crate::pipeline::PENDING_FILE)?
            .and_then(|raw| crate::pipeline::pending_request(&raw));
        let last_error = r
            .read_private(id, LAST_ERROR_FILE)?
            .and_then(|raw| LastError::decode(&raw));
        Ok(VolumeState {
            meta,
            not_after,
            pending,
            last_error,
        })
    }

    /// The volume's condition at `now`.
    pub(crate) fn condition(&self, now: SystemTime) -> Condition {
        condition(
            now,
            self.not_after,
            self.meta.next_issuance_time,
            self.last_error.as_ref(),
        )
    }
}

/// A volume's condition, as `NodeGetVolumeStats` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// Whether the kubelet should report the volume abnormal.
    pub abnormal: bool,
    /// What is wrong (or that all is well).
    pub message: String,
}

/// The condition of a volume whose certificate expires at `not_after`, is
/// next due at `next_renewal`, and last failed with `last_error`: abnormal
/// when the certificate has expired, when its renewal is more than
/// [`OVERDUE_AFTER`] late, or when its last issuance failed.
pub fn condition(
    now: SystemTime,
    not_after: Option<SystemTime>,
    next_renewal: Option<SystemTime>,
    last_error: Option<&LastError>,
) -> Condition {
    let mut problems = Vec::new();
    if let Some(t) = not_after
        && t <= now
    {
        problems.push(format!(
            "the certificate expired at {}",
            crate::timefmt::rfc3339(t)
        ));
    }
    if let Some(due) = next_renewal
        && now
            .duration_since(due)
            .is_ok_and(|late| late > OVERDUE_AFTER)
    {
        let late = now.duration_since(due).unwrap_or(Duration::ZERO);
        problems.push(format!(
            "its renewal is overdue: it was due at {} ({}m ago)",
            crate::timefmt::rfc3339(due),
            late.as_secs() / 60
        ));
    }
    if let Some(e) = last_error {
        let what = if e.renewal { "renewal" } else { "issuance" };
        problems.push(format!(
            "the last {what} failed at {} ({} in a row): {}",
            e.time, e.failures, e.message
        ));
    }
    if problems.is_empty() {
        let message = match not_after {
            Some(t) => format!(
                "the certificate is valid until {}",
                crate::timefmt::rfc3339(t)
            ),
            None => "no certificate issued yet".to_owned(),
        };
        return Condition {
            abnormal: false,
            message,
        };
    }
    Condition {
        abnormal: true,
        message: cut(&problems.join("; "), 4 * MAX_LAST_ERROR_BYTES),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cmcsi_store::Store;

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    #[test]
    fn a_valid_certificate_on_schedule_is_normal() {
        let c = condition(t(0), Some(t(3600)), Some(t(1800)), None);
        assert!(!c.abnormal, "{c:?}");
        assert!(c.message.contains("valid until"), "{c:?}");
    }

    #[test]
    fn expired_overdue_and_failing_are_each_abnormal() {
        let c = condition(t(4000), Some(t(3600)), None, None);
        assert!(c.abnormal && c.message.contains("expired"), "{c:?}");
        let c = condition(t(1800 + 11 * 60), Some(t(36000)), Some(t(1800)), None);
        assert!(c.abnormal && c.message.contains("overdue"), "{c:?}");
        let c = condition(t(1800 + 9 * 60), Some(t(36000)), Some(t(1800)), None);
        assert!(!c.abnormal, "9 minutes late is not overdue yet: {c:?}");
        let e = LastError {
            time: "2027-01-15T08:00:00Z".into(),
            message: "CertificateRequest ns/r was denied".into(),
            failures: 2,
            renewal: true,
        };
        let c = condition(t(0), Some(t(3600)), Some(t(1800)), Some(&e));
        assert!(c.abnormal, "{c:?}");
        assert!(
            c.message.contains("last renewal failed") && c.message.contains("denied"),
            "{c:?}"
        );
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_LAST_ERROR_BYTES);
        let cut = cut(&long, MAX_LAST_ERROR_BYTES);
        assert!(cut.len() <= MAX_LAST_ERROR_BYTES + '…'.len_utf8());
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn a_failure_is_recorded_counted_and_cleared_by_a_success() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            dir.path(),
            cmcsi_store::StoreOptions {
                mount_tmpfs: false,
                tmpfs_size: None,
            },
        )
        .unwrap();
        let meta = Metadata::new("vol-1", "/target");
        store.create_volume(&meta, None).unwrap();
        let long = "x".repeat(10 * MAX_LAST_ERROR_BYTES);
        record_outcome(&store, "vol-1", Err(&long), t(0)).unwrap();
        record_outcome(&store, "vol-1", Err("denied"), t(1)).unwrap();
        let raw = store
            .read_private("vol-1", LAST_ERROR_FILE)
            .unwrap()
            .unwrap();
        let e = LastError::decode(&raw).unwrap();
        assert_eq!(
            (e.failures, e.message.as_str(), e.renewal),
            (2, "denied", false)
        );
        record_outcome(&store, "vol-1", Err(&long), t(2)).unwrap();
        let raw = store
            .read_private("vol-1", LAST_ERROR_FILE)
            .unwrap()
            .unwrap();
        assert!(
            raw.len() < MAX_LAST_ERROR_BYTES + 200,
            "bounded: {} bytes",
            raw.len()
        );
        record_outcome(&store, "vol-1", Ok("web-abc12"), t(3)).unwrap();
        assert_eq!(issued_by(&store, "vol-1").as_deref(), Some("web-abc12"));
        assert!(
            store
                .read_private("vol-1", LAST_ERROR_FILE)
                .unwrap()
                .is_none()
        );
        // A volume that is gone is not an error.
        record_outcome(&store, "vol-2", Err("x"), t(4)).unwrap();
        record_outcome(&store, "vol-2", Ok("x"), t(4)).unwrap();
    }
}
