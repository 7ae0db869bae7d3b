//! List and watch semantics shared by CertificateRequests and Pods, as the
//! API server applies them. Each rule names the Kubernetes behaviour it copies
//! (see "Resource versions" and "Streaming lists" in the API concepts).

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use crate::shared::Shared;
use crate::state::ApiError;

pub(crate) use crate::page::Page;

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
