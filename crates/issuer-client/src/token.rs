//! The Pod's ServiceAccount token for token-request mode.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::BuildHasher;

use jiff::Timestamp;
use serde::Deserialize;
use zeroize::Zeroizing;

/// Volume-context key under which the kubelet passes the Pod's tokens (when
/// the CSIDriver object lists `tokenRequests`).
pub const SERVICE_ACCOUNT_TOKENS_KEY: &str = cmcsi_attrs::keys::SERVICE_ACCOUNT_TOKENS;

/// A bearer token of the Pod's ServiceAccount. Its value never appears in
/// `Debug`, `Display`, errors or logs; it is wiped from memory on drop.
#[derive(Clone)]
pub struct SecretToken {
    token: Zeroizing<String>,
    expires: Option<Timestamp>,
}

impl fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretToken")
            .field("token", &"<redacted>")
            .field("expires", &self.expires)
            .finish()
    }
}

impl fmt::Display for SecretToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted token>")
    }
}

/// Why no usable token could be had.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// The volume context has no tokens at all.
    #[error(
        "token-request mode is on but the volume context has no {SERVICE_ACCOUNT_TOKENS_KEY}; \
         the CSIDriver object must list tokenRequests [{{audience: \"\"}}] and requiresRepublish: true"
    )]
    Missing,
    /// The tokens value is not the JSON the kubelet writes.
    #[error(
        "{SERVICE_ACCOUNT_TOKENS_KEY} is not valid JSON of the form \
         {{\"<audience>\": {{\"token\": ..., \"expirationTimestamp\": ...}}}}: {detail}"
    )]
    Malformed {
        /// What was wrong (never any part of the value).
        detail: String,
    },
    /// Tokens are present, but none for the empty audience.
    #[error(
        "{SERVICE_ACCOUNT_TOKENS_KEY} has no token for the empty audience (found audiences: {audiences:?}); \
         the CSIDriver object's tokenRequests must include {{audience: \"\"}}"
    )]
    NoEmptyAudience {
        /// The audiences that were present.
        audiences: Vec<String>,
    },
    /// The token expired.
    #[error(
        "the Pod's ServiceAccount token expired at {expired}; the kubelet refreshes it on the next \
         NodePublishVolume (CSIDriver requiresRepublish: true)"
    )]
    Expired {
        /// When it expired.
        expired: Timestamp,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenEntry {
    /// Wiped on drop for every audience, not only the one taken.
    #[serde(deserialize_with = "zeroizing_string")]
    token: Zeroizing<String>,
    #[serde(default)]
    expiration_timestamp: Option<String>,
}

/// Deserialises a string straight into a [`Zeroizing`] wrapper (the
/// `String` serde allocates is moved, not copied).
fn zeroizing_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Zeroizing<String>, D::Error> {
    String::deserialize(d).map(Zeroizing::new)
}

impl SecretToken {
    /// A token from its raw value and optional expiry.
    pub fn new(token: impl Into<String>, expires: Option<Timestamp>) -> Self {
        Self {
            token: Zeroizing::new(token.into()),
            expires,
        }
    }

    /// Parses the value of [`SERVICE_ACCOUNT_TOKENS_KEY`] (a JSON object
    /// audience → `{token, expirationTimestamp}`) and takes the empty
    /// audience's token. Does not check expiry; see [`SecretToken::check_fresh`].
    pub fn parse(value: &str) -> Result<Self, TokenError> {
        // serde_json's messages can quote the input, so only its position and
        // category are reported.
        let mut map: BTreeMap<String, TokenEntry> =
            serde_json::from_str(value).map_err(|e| TokenError::Malformed {
                detail: format!(
                    "{:?} error at line {} column {}",
                    e.classify(),
                    e.line(),
                    e.column()
                ),
            })?;
        let Some(entry) = map.remove("") else {
            return Err(TokenError::NoEmptyAudience {
                audiences: map.into_keys().collect(),
            });
        };
        let token = entry.token;
        if token.is_empty() {
            return Err(TokenError::Malformed {
                detail: "the empty audience's token is empty".into(),
            });
        }
        let expires = match entry.expiration_timestamp.as_deref() {
            None | Some("") => None,
            Some(ts) => Some(ts.parse::<Timestamp>().map_err(|_| TokenError::Malformed {
                detail: "expirationTimestamp is not an RFC 3339 time".into(),
            })?),
        };
        Ok(Self { token, expires })
    }

    /// Finds and parses the token in a CSI volume context.
    pub fn from_volume_context<S: BuildHasher>(
        context: &HashMap<String, String, S>,
    ) -> Result<Self, TokenError> {
        Self::from_context_value(context.get(SERVICE_ACCOUNT_TOKENS_KEY).map(String::as_str))
    }

    /// Parses the value of the [`SERVICE_ACCOUNT_TOKENS_KEY`] attribute, as
    /// found in any map of the volume context; `None` or blank is
    /// [`TokenError::Missing`].
    pub fn from_context_value(value: Option<&str>) -> Result<Self, TokenError> {
        match value {
            Some(v) if !v.trim().is_empty() => Self::parse(v),
            _ => Err(TokenError::Missing),
        }
    }

    /// Like [`SecretToken::from_volume_context`], and also rejects a token that
    /// has expired by `now`.
    pub fn from_volume_context_at<S: BuildHasher>(
        context: &HashMap<String, String, S>,
        now: Timestamp,
    ) -> Result<Self, TokenError> {
        let token = Self::from_volume_context(context)?;
        token.check_fresh(now)?;
        Ok(token)
    }

    /// When the token expires, if the kubelet said.
    pub fn expires(&self) -> Option<Timestamp> {
        self.expires
    }

    /// `Err(Expired)` if the token has expired by `now`.
    pub fn check_fresh(&self, now: Timestamp) -> Result<(), TokenError> {
        match self.expires {
            Some(expired) if expired <= now => Err(TokenError::Expired { expired }),
            _ => Ok(()),
        }
    }

    /// The raw token, for building a client. Never log it.
    pub(crate) fn expose(&self) -> &str {
        &self.token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXBheWxvYWQ.sig";

    fn ctx(value: &str) -> HashMap<String, String> {
        HashMap::from([(SERVICE_ACCOUNT_TOKENS_KEY.to_owned(), value.to_owned())])
    }

    #[test]
    fn every_audience_token_is_parsed_into_a_zeroizing_buffer() {
        let json = format!(r#"{{"": {{"token": "{SECRET}"}}, "vault": {{"token": "other"}}}}"#);
        let map: BTreeMap<String, TokenEntry> = serde_json::from_str(&json).unwrap();
        // The field's type is the point: each token is wiped on drop.
        let other: &Zeroizing<String> = &map["vault"].token;
        assert_eq!(other.as_str(), "other");
        let token: &Zeroizing<String> = &SecretToken::parse(&json).unwrap().token;
        assert_eq!(token.as_str(), SECRET);
    }

    #[test]
    fn parses_empty_audience_token() {
        let json = format!(
            r#"{{"": {{"token": "{SECRET}", "expirationTimestamp": "2030-01-01T00:00:00Z"}},
                "vault": {{"token": "other", "expirationTimestamp": "2030-01-01T00:00:00Z"}}}}"#
        );
        let token = SecretToken::from_volume_context(&ctx(&json)).unwrap();
        assert_eq!(token.expose(), SECRET);
        assert_eq!(
            token.expires(),
            Some("2030-01-01T00:00:00Z".parse().unwrap())
        );
        let now: Timestamp = "2029-12-31T23:59:59Z".parse().unwrap();
        assert!(token.check_fresh(now).is_ok());
        // Debug and Display never show the token.
        assert!(!format!("{token:?}").contains(SECRET));
        assert!(!format!("{token}").contains(SECRET));
        assert!(format!("{token:?}").contains("redacted"));
    }

    #[test]
    fn missing_wrong_audience_and_expired_are_clear_errors() {
        assert_eq!(
            SecretToken::from_volume_context(&HashMap::new()).unwrap_err(),
            TokenError::Missing
        );
        let err =
            SecretToken::parse(&format!(r#"{{"vault": {{"token": "{SECRET}"}}}}"#)).unwrap_err();
        assert_eq!(
            err,
            TokenError::NoEmptyAudience {
                audiences: vec!["vault".into()]
            }
        );
        let json = format!(
            r#"{{"": {{"token": "{SECRET}", "expirationTimestamp": "2020-01-01T00:00:00Z"}}}}"#
        );
        let now: Timestamp = "2024-01-01T00:00:00Z".parse().unwrap();
        let err = SecretToken::from_volume_context_at(&ctx(&json), now).unwrap_err();
        assert!(matches!(err, TokenError::Expired { .. }));
        let msg = err.to_string();
        assert!(msg.contains("expired at 2020-01-01T00:00:00Z"), "{msg}");
        assert!(!msg.contains(SECRET));
    }

    #[test]
    fn malformed_json_never_echoes_the_value() {
        for bad in [
            format!(r#"{{"": {{"token": {SECRET}}}}}"#),
            format!(r#"["{SECRET}"]"#),
            format!(r#"{{"": {{"token": "{SECRET}", "expirationTimestamp": "{SECRET}"}}}}"#),
            format!(r#"{{"": "{SECRET}"}}"#),
        ] {
            let err = SecretToken::parse(&bad).unwrap_err();
            assert!(matches!(err, TokenError::Malformed { .. }), "{err:?}");
            let msg = format!("{err} {err:?}");
            assert!(!msg.contains("c2VjcmV0"), "{msg}");
        }
    }
}
