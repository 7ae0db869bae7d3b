//! Which slice of a collection one list call returns (`limit` and
//! `continue`), as the API server pages a list it does not serve from its
//! watch cache. A leaf: the Pod store and the HTTP side both use it.

use std::collections::HashMap;

use serde_json::{Value, json};

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
