//! [`VolumeSecrets`]: a volume's keystore passwords, kept for renewals after a restart.
//!
//! The kubelet sends a volume's `nodePublishSecretRef` data only with
//! `NodePublishVolume`; renewals after a driver restart need the keystore passwords
//! again. They live in [`SECRETS_FILE`], a private file (0600) in the volume directory,
//! outside `data/` (so the Pod cannot read it) and outside `metadata.json`, written
//! atomically like every private file. Buffers holding them are zeroed when dropped.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The private file holding a volume's [`VolumeSecrets`].
pub const SECRETS_FILE: &str = "secrets.json";

/// The format marker of [`SECRETS_FILE`].
const FORMAT: &str = "cmcsi/secrets/v1";

/// Secret values by name (for keystore passwords, the key of the volume's Secret).
/// `Debug` shows the names only; values are zeroed when dropped.
#[derive(Default, Clone, PartialEq, Eq)]
pub struct VolumeSecrets {
    entries: BTreeMap<String, Zeroizing<String>>,
}

#[derive(Serialize)]
struct FileOut<'a> {
    format: &'a str,
    data: BTreeMap<&'a str, &'a str>,
}

#[derive(Deserialize)]
struct FileIn {
    format: String,
    data: BTreeMap<String, String>,
}

impl VolumeSecrets {
    /// No secrets.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a value.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.entries
            .insert(name.into(), Zeroizing::new(value.into()));
        self
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries.get(name).map(|v| v.as_str())
    }

    /// Every `(name, value)` pair in name order, for instance to parse the volume's
    /// attributes with them.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The file's contents: `{"format":"cmcsi/secrets/v1","data":{...}}`, encoded by
    /// [`crate::to_json_zeroizing`], so no buffer it outgrows keeps a copy.
    pub(crate) fn to_json(&self) -> Result<Zeroizing<Vec<u8>>, serde_json::Error> {
        crate::to_json_zeroizing(&FileOut {
            format: FORMAT,
            data: self.iter().collect(),
        })
    }

    /// Parses the file's contents. The error says what is wrong, never a value.
    pub(crate) fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let file: FileIn = serde_json::from_slice(bytes).map_err(|e| {
            format!(
                "not a secrets file (line {}, column {}: {:?})",
                e.line(),
                e.column(),
                e.classify()
            )
        })?;
        if file.format != FORMAT {
            return Err(format!(
                "unknown format {:?}; this driver reads {FORMAT}",
                crate::error::shorten(&file.format)
            ));
        }
        let mut out = VolumeSecrets::new();
        for (k, v) in file.data {
            out.entries.insert(k, Zeroizing::new(v));
        }
        Ok(out)
    }
}

impl fmt::Debug for VolumeSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for k in self.entries.keys() {
            m.entry(k, &"<redacted>");
        }
        m.finish()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for VolumeSecrets {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut out = VolumeSecrets::new();
        for (k, v) in iter {
            out.insert(k, v);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_and_redacted_debug() {
        let s: VolumeSecrets = [("jks-pass", "hunter2 \"quoted\" \u{1F600}"), ("p12", "x")]
            .into_iter()
            .collect();
        let json = s.to_json().unwrap();
        assert_eq!(VolumeSecrets::from_json(&json).unwrap(), s);
        let d = format!("{s:?}");
        assert!(d.contains("jks-pass") && !d.contains("hunter2"), "{d}");
    }

    #[test]
    fn bad_files_say_why_without_values() {
        let e = VolumeSecrets::from_json(br#"{"format":"cmcsi/secrets/v1","data":{"k":"hunter2""#)
            .unwrap_err();
        assert!(
            e.contains("not a secrets file") && !e.contains("hunter2"),
            "{e}"
        );
        let e = VolumeSecrets::from_json(br#"{"format":"other","data":{}}"#).unwrap_err();
        assert!(e.contains("unknown format \"other\""), "{e}");
    }
}
