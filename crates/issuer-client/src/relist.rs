//! How the node-wide watches (requests and Pods) get their initial state,
//! so that a relist's peak memory does not grow with what others put in the
//! API.
//!
//! A list's peak is one response, which the client reads whole before
//! decoding it: with `resourceVersion=0` the API server answers from its
//! watch cache and ignores `limit` (the whole collection at once), and
//! otherwise a page of `limit` objects (500 by default in kube and client-go),
//! each up to etcd's 1.5 MiB. Anyone who may create a CertificateRequest can
//! label it for a node, so that response is as large as a tenant wants.
//! Instead:
//!
//! - **Streaming lists** (`sendInitialEvents=true` watches, KEP-3157, kube's
//!   `watcher::Config::streaming_lists`): the initial state arrives as one
//!   watch event per object, each decoded (and trimmed) on its own. Served
//!   when the API server's `WatchList` feature gate is on: on by default in
//!   Kubernetes 1.32 and from 1.34; off by default in 1.27 to 1.31 and in 1.33,
//!   where the server answers `422 Invalid`.
//! - **Paged lists** otherwise: `limit` = the page size (default 10), and no
//!   `resourceVersion` (a consistent read, which honours `limit`; from 1.31
//!   the API server may serve it from its watch cache, still paged), so one
//!   response holds at most a page of objects.
//!
//! [`ListStrategy::Auto`] asks the server's version: before 1.27 the
//! `sendInitialEvents` parameter is unknown and silently ignored (the watch
//! would never mark the end of its initial events), so those get paged
//! lists; from 1.27 a streaming list is tried first and a `422` or `400`
//! answer falls back to paged lists for the life of the watch.

use std::fmt::Debug;

use futures::StreamExt;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;

use crate::watch_backoff::WatchBackoff;

/// How the node-wide watches make their initial lists (see the module docs
/// for which Kubernetes versions get which).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ListStrategy {
    /// Streaming lists where the API server serves them, else paged lists.
    #[default]
    Auto,
    /// Always streaming lists (`sendInitialEvents=true`).
    Streaming,
    /// Always paged lists that are not served from the watch cache.
    Paged,
}

/// Default page size of paged lists: with objects of at most 1.5 MiB (etcd's
/// limit), one page stays under 15 MiB.
pub const DEFAULT_LIST_PAGE_SIZE: u32 = 10;

/// The strategy and page size one watch uses.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Lists {
    pub strategy: ListStrategy,
    pub page_size: u32,
}

/// Whether an API server of this version may serve streaming lists
/// (`sendInitialEvents` is known from 1.27; older servers ignore it).
fn may_stream(info: &k8s_openapi::apimachinery::pkg::version::Info) -> bool {
    let number = |s: &str| -> Option<u32> {
        s.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .ok()
    };
    match (number(&info.major), number(&info.minor)) {
        (Some(major), Some(minor)) => major > 1 || (major == 1 && minor >= 27),
        _ => false,
    }
}

/// Whether a watch error says the server refuses `sendInitialEvents`.
fn refuses_streaming(err: &watcher::Error) -> bool {
    matches!(
        err,
        watcher::Error::WatchStartFailed(kube::Error::Api(status))
            if status.code == 422 || status.code == 400
    )
}

/// How one watch runs: its client, selectors, lists and backoff.
pub(crate) struct Setup {
    pub client: kube::Client,
    /// Selectors and timeout.
    pub base: watcher::Config,
    pub lists: Lists,
    pub backoff: WatchBackoff,
    /// Names the watch in logs.
    pub what: &'static str,
}

/// Runs a watch of `api` as `setup` says forever, feeding events to
/// `on_event` and errors to `on_error`; `on_mode` learns whether lists
/// stream.
pub(crate) async fn run<K>(
    setup: Setup,
    api: kube::Api<K>,
    mut on_event: impl FnMut(Event<K>),
    mut on_error: impl FnMut(&watcher::Error),
    mut on_mode: impl FnMut(bool),
) where
    K: kube::Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let Setup {
        client,
        base,
        lists,
        backoff,
        what,
    } = setup;
    let mut streaming = match lists.strategy {
        ListStrategy::Streaming => true,
        ListStrategy::Paged => false,
        ListStrategy::Auto => match client.apiserver_version().await {
            Ok(info) => may_stream(&info),
            Err(e) => {
                tracing::warn!(error = %e, "{what} watch: the API server's version is unknown; using paged lists");
                false
            }
        },
    };
    loop {
        on_mode(streaming);
        let config = if streaming {
            base.clone().streaming_lists()
        } else {
            // No resourceVersion: not served from the watch cache's
            // unpaged snapshot, so `limit` holds.
            base.clone()
                .list_semantic(watcher::ListSemantic::MostRecent)
                .page_size(lists.page_size)
        };
        tracing::info!(
            streaming,
            page_size = lists.page_size,
            "{what} watch: starting ({})",
            if streaming {
                "streaming lists"
            } else {
                "paged lists"
            }
        );
        let stream = watcher::watcher(api.clone(), config).backoff(backoff.clone());
        let mut stream = std::pin::pin!(stream);
        let mut fall_back = false;
        while let Some(event) = stream.next().await {
            match event {
                Ok(event) => on_event(event),
                Err(err)
                    if streaming
                        && lists.strategy == ListStrategy::Auto
                        && refuses_streaming(&err) =>
                {
                    tracing::info!(
                        error = %crate::error::error_chain(&err),
                        "{what} watch: the API server does not serve streaming lists \
                         (WatchList feature gate off); using paged lists"
                    );
                    fall_back = true;
                    break;
                }
                Err(err) => on_error(&err),
            }
        }
        if !fall_back {
            tracing::error!("{what} watch ended");
            return;
        }
        streaming = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::version::Info;

    fn info(major: &str, minor: &str) -> Info {
        Info {
            major: major.into(),
            minor: minor.into(),
            ..Default::default()
        }
    }

    #[test]
    fn streams_from_1_27_including_vendor_suffixes() {
        assert!(!may_stream(&info("1", "26")));
        assert!(may_stream(&info("1", "27")));
        assert!(may_stream(&info("1", "33+")));
        assert!(!may_stream(&info("", "")));
    }
}
