//! List and watch semantics shared by CertificateRequests and Pods, as the
//! API server applies them. Each rule names the Kubernetes behaviour it copies
//! (see "Resource versions" and "Streaming lists" in the API concepts).

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use crate::shared::Shared;
use crate::state::ApiError;

/// Which slice of a collection one list call returns.
pub(crate) struct Page {
    /// Most items to return; `None`: all.
    limit: Option<usize>,
    /// Return the items after this key (the previous page's `continue`).
    after: Option<String>,
}

impl Page {
    /// Reads `limit`, `continue` and `resourceVersion`.
    ///
    /// Copies the API server: a list with `resourceVersion=0` is served from
    /// the watch cache, which ignores `limit` (and so `continue`) and returns
    /// the whole collection at once; any other resourceVersion (unset: a
    /// consistent read from etcd) honours `limit` and `continue`.
    pub(crate) fn of(query: &HashMap<String, String>) -> Page {
        if query.get("resourceVersion").map(String::as_str) == Some("0") {
            return Page {
                limit: None,
                after: None,
            };
        }
        Page {
            limit: query
                .get("limit")
                .and_then(|l| l.parse().ok())
                .filter(|l| *l > 0),
            after: query.get("continue").filter(|c| !c.is_empty()).cloned(),
        }
    }

    /// The page of `all` (sorted by key, as etcd's key order): its items,
    /// and the list metadata at `rv` (with `continue` and
    /// `remainingItemCount` when more remain).
    pub(crate) fn apply<'a>(
        &self,
        all: impl IntoIterator<Item = (String, &'a Value)>,
        rv: u64,
    ) -> (Vec<Value>, Value) {
        let rest: Vec<(String, &Value)> = all
            .into_iter()
            .filter(|(k, _)| self.after.as_ref().is_none_or(|a| k > a))
            .collect();
        let mut meta = json!({"resourceVersion": rv.to_string()});
        let take = self.limit.unwrap_or(usize::MAX).min(rest.len());
        if take < rest.len()
            && let Some((last, _)) = rest.get(take.wrapping_sub(1))
        {
            meta["continue"] = json!(last);
            meta["remainingItemCount"] = json!(rest.len() - take);
        }
        let items = rest
            .into_iter()
            .take(take)
            .map(|(_, v)| v.clone())
            .collect();
        (items, meta)
    }
}

/// Whether a watch asks for a streaming list (`sendInitialEvents=true`), or
/// why it is refused.
///
/// Copies the API server's validation of watch options: without the
/// `WatchList` feature gate (off by default before 1.32 and in 1.33),
/// `sendInitialEvents` is forbidden; with it, `sendInitialEvents=true` needs
/// `resourceVersionMatch=NotOlderThan` and `allowWatchBookmarks=true` (the end
/// of the initial events is a bookmark). Both are `422 Invalid`.
pub(crate) fn streaming(
    shared: &Shared,
    query: &HashMap<String, String>,
) -> Result<bool, ApiError> {
    let Some(send) = query.get("sendInitialEvents") else {
        return Ok(false);
    };
    let invalid = |msg: &str| ApiError::new(422, "Invalid", msg.to_string());
    if !shared.watch_list.load(Ordering::Relaxed) {
        return Err(invalid(
            "ListOptions.meta.k8s.io \"\" is invalid: sendInitialEvents: Forbidden: \
             sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled",
        ));
    }
    if send != "true" {
        return Ok(false);
    }
    if query.get("resourceVersionMatch").map(String::as_str) != Some("NotOlderThan") {
        return Err(invalid(
            "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: \
             sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
        ));
    }
    if query.get("allowWatchBookmarks").map(String::as_str) != Some("true") {
        return Err(invalid(
            "ListOptions.meta.k8s.io \"\" is invalid: allowWatchBookmarks: Forbidden: \
             sendInitialEvents requires setting allowWatchBookmarks to true",
        ));
    }
    Ok(true)
}

/// The `BOOKMARK` that ends a streaming list's initial events: the list's
/// resourceVersion and the `k8s.io/initial-events-end` annotation, as the
/// API server sends it.
pub(crate) fn initial_events_end(api_version: &str, kind: &str, rv: u64) -> bytes::Bytes {
    crate::state::event_line(
        "BOOKMARK",
        &json!({"kind": kind, "apiVersion": api_version, "metadata": {
            "resourceVersion": rv.to_string(),
            "annotations": {"k8s.io/initial-events-end": "true"},
        }}),
    )
}
