//! `metadata.json`: one volume's persisted state, in the Go driver's format.

use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The format marker this version of the store writes.
pub const FORMAT_V1: &str = "cmcsi/v1";

/// Who wrote a volume's metadata, and so which defaults the volume keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MetadataFormat {
    /// Written by the Go driver (no format marker). Such volumes keep the Go
    /// driver's default file names (`tls.crt`, `tls.key`, `ca.crt`), and the
    /// store keeps writing their metadata without a marker, so the node can
    /// still switch back.
    GoDriver,
    /// Written by this store (`"format": "cmcsi/v1"`).
    V1,
}

/// One volume's metadata, as stored in `<volume>/metadata.json`.
///
/// The JSON field names and formats are the Go driver's (`volumeID`,
/// `targetPath`, `nextIssuanceTime` as RFC 3339 with nanoseconds and omitted
/// when unset, `volumeContext`, `volumeMountGroup`), plus a `format` marker the
/// Go decoder ignores.
///
/// `Debug` output shows the volume context's keys but none of its values: the
/// context may carry secrets (a service account token, a keystore password),
/// and which keys are secret is not the store's to know.
#[derive(Clone, PartialEq, Eq)]
pub struct Metadata {
    /// The volume id (the kubelet's `csi-<sha256 hex>`); also the directory name.
    pub volume_id: String,
    /// Where the kubelet wants the volume mounted.
    pub target_path: String,
    /// When the next issuance should start; `None` before the first issuance.
    pub next_issuance_time: Option<SystemTime>,
    /// The full volume context of the publish request (attributes, pod info, tokens).
    pub volume_context: BTreeMap<String, String>,
    /// The volume mount group (the pod's `fsGroup`) from the publish request, if any.
    pub volume_mount_group: Option<String>,
    /// Who wrote it; [`Metadata::new`] gives [`MetadataFormat::V1`].
    pub format: MetadataFormat,
}

impl Metadata {
    /// New metadata in this store's format, with no issuance time, context or group.
    pub fn new(volume_id: impl Into<String>, target_path: impl Into<String>) -> Self {
        Metadata {
            volume_id: volume_id.into(),
            target_path: target_path.into(),
            next_issuance_time: None,
            volume_context: BTreeMap::new(),
            volume_mount_group: None,
            format: MetadataFormat::V1,
        }
    }

    /// True when the Go driver wrote this volume (no format marker): keep its
    /// default file names when renewing.
    pub fn written_by_go(&self) -> bool {
        self.format == MetadataFormat::GoDriver
    }

    /// Encodes as the JSON written to disk.
    ///
    /// The buffer is zeroed when dropped, and so is every buffer outgrown
    /// while encoding ([`crate::to_json_zeroizing`]): the volume context can
    /// carry a service account token and a keystore password.
    pub fn to_json(&self) -> Result<Zeroizing<Vec<u8>>, MetadataError> {
        let next = match self.next_issuance_time {
            None => None,
            Some(t) => Some(format_time(t)?),
        };
        let wire = WireOut {
            volume_id: &self.volume_id,
            target_path: &self.target_path,
            next_issuance_time: next,
            volume_context: &self.volume_context,
            volume_mount_group: self.volume_mount_group.as_deref().unwrap_or(""),
            format: match self.format {
                MetadataFormat::GoDriver => None,
                MetadataFormat::V1 => Some(FORMAT_V1),
            },
        };
        crate::to_json_zeroizing(&wire).map_err(|e| MetadataError::Json(sanitize_json_error(&e)))
    }

    /// Decodes the JSON of a `metadata.json`, from either driver.
    ///
    /// Unknown fields are ignored (as Go's decoder does); an unknown `format`
    /// value is refused, since it means a newer store wrote the file.
    pub fn from_json(bytes: &[u8]) -> Result<Self, MetadataError> {
        let wire: WireIn = serde_json::from_slice(bytes)
            .map_err(|e| MetadataError::Json(sanitize_json_error(&e)))?;
        let format = match wire.format.as_deref() {
            None => MetadataFormat::GoDriver,
            Some(FORMAT_V1) => MetadataFormat::V1,
            Some(other) => {
                return Err(MetadataError::UnknownFormat(crate::error::shorten(other)));
            }
        };
        let next_issuance_time = match wire.next_issuance_time {
            None => None,
            Some(s) => Some(parse_time(&s)?),
        };
        Ok(Metadata {
            volume_id: wire.volume_id.unwrap_or_default(),
            target_path: wire.target_path.unwrap_or_default(),
            next_issuance_time,
            volume_context: wire.volume_context.unwrap_or_default(),
            volume_mount_group: wire.volume_mount_group.filter(|g| !g.is_empty()),
            format,
        })
    }
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Context<'a>(&'a BTreeMap<String, String>);
        impl fmt::Debug for Context<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut m = f.debug_map();
                // Every value: the store does not know which attributes are
                // secrets (that is the attribute parser's business), so a new
                // secret attribute can never leak through here.
                for k in self.0.keys() {
                    m.entry(k, &"<redacted>");
                }
                m.finish()
            }
        }
        f.debug_struct("Metadata")
            .field("volume_id", &self.volume_id)
            .field("target_path", &self.target_path)
            .field(
                "next_issuance_time",
                &self.next_issuance_time.and_then(|t| format_time(t).ok()),
            )
            .field("volume_context", &Context(&self.volume_context))
            .field("volume_mount_group", &self.volume_mount_group)
            .field("format", &self.format)
            .finish()
    }
}

/// Why a `metadata.json` could not be encoded or decoded. Never contains values
/// from the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    /// Not valid JSON, or a field of the wrong type.
    #[error("not valid metadata JSON ({0})")]
    Json(String),
    /// `nextIssuanceTime` is not an RFC 3339 timestamp, or is out of range.
    #[error("nextIssuanceTime is not an RFC 3339 time in years 0000-9999")]
    BadTime,
    /// The `format` marker names a format this store does not know.
    #[error("unknown metadata format {0:?}")]
    UnknownFormat(String),
}

#[derive(Serialize)]
struct WireOut<'a> {
    #[serde(rename = "volumeID")]
    volume_id: &'a str,
    #[serde(rename = "targetPath")]
    target_path: &'a str,
    #[serde(rename = "nextIssuanceTime", skip_serializing_if = "Option::is_none")]
    next_issuance_time: Option<String>,
    #[serde(rename = "volumeContext", skip_serializing_if = "BTreeMap::is_empty")]
    volume_context: &'a BTreeMap<String, String>,
    #[serde(rename = "volumeMountGroup", skip_serializing_if = "str::is_empty")]
    volume_mount_group: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<&'static str>,
}

#[derive(Deserialize)]
struct WireIn {
    #[serde(rename = "volumeID", default)]
    volume_id: Option<String>,
    #[serde(rename = "targetPath", default)]
    target_path: Option<String>,
    #[serde(rename = "nextIssuanceTime", default)]
    next_issuance_time: Option<String>,
    #[serde(rename = "volumeContext", default)]
    volume_context: Option<BTreeMap<String, String>>,
    #[serde(rename = "volumeMountGroup", default)]
    volume_mount_group: Option<String>,
    #[serde(default)]
    format: Option<String>,
}

/// serde_json's messages can quote values from the input (which may be a
/// token); keep only the category and position.
fn sanitize_json_error(e: &serde_json::Error) -> String {
    let kind = match e.classify() {
        serde_json::error::Category::Io => "read error",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "wrong field type",
        serde_json::error::Category::Eof => "unexpected end of input",
    };
    format!("{kind} at line {} column {}", e.line(), e.column())
}

/// Formats like Go's `time.RFC3339Nano` in UTC: fractional seconds only as
/// long as needed, `Z` for the offset.
pub(crate) fn format_time(t: SystemTime) -> Result<String, MetadataError> {
    let ts = jiff::Timestamp::try_from(t).map_err(|_| MetadataError::BadTime)?;
    let year = ts.to_zoned(jiff::tz::TimeZone::UTC).year();
    // Go refuses to marshal years outside 0..=9999; so do we.
    if !(0..=9999).contains(&year) {
        return Err(MetadataError::BadTime);
    }
    Ok(ts.to_string())
}

pub(crate) fn parse_time(s: &str) -> Result<SystemTime, MetadataError> {
    let ts: jiff::Timestamp = s.parse().map_err(|_| MetadataError::BadTime)?;
    Ok(SystemTime::from(ts))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn time_format_matches_go_rfc3339nano() {
        let t = UNIX_EPOCH + Duration::new(1_785_931_200, 123_456_789);
        assert_eq!(format_time(t).unwrap(), "2026-08-05T12:00:00.123456789Z");
        let t = UNIX_EPOCH + Duration::new(1_785_931_200, 120_000_000);
        assert_eq!(format_time(t).unwrap(), "2026-08-05T12:00:00.12Z");
        let t = UNIX_EPOCH + Duration::new(1_785_931_200, 0);
        assert_eq!(format_time(t).unwrap(), "2026-08-05T12:00:00Z");
        // Go's zero time, which csi-lib writes for "not yet issued" with
        // continue-on-not-ready.
        let zero = parse_time("0001-01-01T00:00:00Z").unwrap();
        assert_eq!(format_time(zero).unwrap(), "0001-01-01T00:00:00Z");
    }

    #[test]
    fn time_parse_accepts_offsets() {
        let a = parse_time("2026-08-05T14:00:00.5+02:00").unwrap();
        let b = parse_time("2026-08-05T12:00:00.500Z").unwrap();
        assert_eq!(a, b);
        assert!(parse_time("2026-08-05 12:00:00").is_err());
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn json_field_names_and_omissions() {
        let mut m = Metadata::new("csi-abc", "/var/lib/kubelet/pods/x/volumes/y/mount");
        let json: serde_json::Value = serde_json::from_slice(&m.to_json().unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "volumeID": "csi-abc",
                "targetPath": "/var/lib/kubelet/pods/x/volumes/y/mount",
                "format": "cmcsi/v1",
            })
        );
        m.next_issuance_time = Some(UNIX_EPOCH + Duration::new(1_785_931_200, 1));
        m.volume_context.insert("k".into(), "v".into());
        m.volume_mount_group = Some("2000".into());
        let json: serde_json::Value = serde_json::from_slice(&m.to_json().unwrap()).unwrap();
        assert_eq!(json["nextIssuanceTime"], "2026-08-05T12:00:00.000000001Z");
        assert_eq!(json["volumeContext"]["k"], "v");
        assert_eq!(json["volumeMountGroup"], "2000");
        assert_eq!(Metadata::from_json(&m.to_json().unwrap()).unwrap(), m);
    }

    #[test]
    fn metadata_with_a_large_token_round_trips_through_a_zeroizing_buffer() {
        let mut m = Metadata::new("csi-abc", "/t");
        let tokens = format!(r#"{{"":{{"token":"{}"}}}}"#, "t".repeat(20_000));
        m.volume_context
            .insert("csi.storage.k8s.io/serviceAccount.tokens".into(), tokens);
        // The type at the call site the store uses is the point.
        let json: Zeroizing<Vec<u8>> = m.to_json().unwrap();
        assert!(json.len() > 20_000, "outgrew the first buffer");
        assert_eq!(Metadata::from_json(&json).unwrap(), m);
    }

    #[test]
    fn go_written_json_has_no_marker_and_stays_without() {
        let go = br#"{"volumeID":"csi-1","targetPath":"/t","nextIssuanceTime":"2026-08-05T12:00:00.123456789+02:00","volumeContext":{"csi.cert-manager.io/issuer-name":"ca"},"volumeMountGroup":""}"#;
        let m = Metadata::from_json(go).unwrap();
        assert!(m.written_by_go());
        assert_eq!(m.volume_mount_group, None);
        let again = String::from_utf8(m.to_json().unwrap().to_vec()).unwrap();
        assert!(!again.contains("format"), "{again}");
        assert!(again.contains(r#""nextIssuanceTime":"2026-08-05T10:00:00.123456789Z""#));
    }

    #[test]
    fn unknown_format_and_bad_json_are_errors_without_values() {
        let e = Metadata::from_json(br#"{"volumeID":"v","format":"cmcsi/v9"}"#).unwrap_err();
        assert!(matches!(e, MetadataError::UnknownFormat(_)));
        let e = Metadata::from_json(br#"{"volumeID":"v","volumeContext":{"t":42424242}}"#)
            .unwrap_err()
            .to_string();
        assert!(!e.contains("42424242"), "{e}");
        let e = Metadata::from_json(br#"{"volumeID":"v","nextIssuanceTime":"s3cr3t"}"#)
            .unwrap_err()
            .to_string();
        assert!(!e.contains("s3cr3t"), "{e}");
        assert!(Metadata::from_json(b"{\"volumeID\":").is_err());
    }

    #[test]
    fn debug_hides_every_context_value() {
        let mut m = Metadata::new("v", "/t");
        m.volume_context.insert(
            "csi.storage.k8s.io/serviceAccount.tokens".into(),
            r#"{"":{"token":"eyJhbGciOi-secret"}}"#.into(),
        );
        m.volume_context.insert(
            "csi.cert-manager.io/pkcs12-password".into(),
            "hunter2".into(),
        );
        m.volume_context
            .insert("csi.cert-manager.io/jks-password".into(), "hunter3".into());
        m.volume_context.insert(
            "csi.cert-manager.io/some-future-secret".into(),
            "opensesame".into(),
        );
        let d = format!("{m:?}");
        assert!(
            !d.contains("eyJhbGciOi-secret")
                && !d.contains("hunter2")
                && !d.contains("hunter3")
                && !d.contains("opensesame"),
            "{d}"
        );
        assert!(d.contains("csi.cert-manager.io/some-future-secret"), "{d}");
        assert!(d.contains("<redacted>"));
    }
}
