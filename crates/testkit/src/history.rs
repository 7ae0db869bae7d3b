//! A store's watch history: the recent changes a watch resuming from a
//! resourceVersion is replayed, and the point below which they are gone. A
//! leaf: the CertificateRequest store (`state.rs`) and the generic object
//! store (`objects.rs`) each keep one, and ask it where a watch starts.
//!
//! Copies the API server's watch cache (and etcd's compaction behind it):
//!
//! - a watch with `resourceVersion` unset or `"0"`, or with
//!   `sendInitialEvents=true`, starts from the current state (ADDED events
//!   for what exists; the caller sends those), never from history;
//! - any other `resourceVersion=N` resumes: every change after `N` that is
//!   still kept is replayed, in order, before the live ones;
//! - `N` older than the oldest change kept (the cache's window slid past it,
//!   or etcd compacted it) is refused with `410 Gone`, reason `Expired`,
//!   message `too old resource version: N (M)`; the API server answers that
//!   with `200` and one `ERROR` event, and the client must relist.

use std::collections::VecDeque;

/// Where a watch starts (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Start {
    /// From the current state: the caller sends an ADDED event per object.
    Current,
    /// After this resourceVersion, from the history.
    After(u64),
}

impl Start {
    /// Where a watch with these parameters starts.
    pub(crate) fn of(resource_version: Option<u64>, send_initial_events: bool) -> Self {
        match resource_version {
            Some(rv) if rv != 0 && !send_initial_events => Self::After(rv),
            _ => Self::Current,
        }
    }
}

/// A resumed watch asked for changes no longer kept: the API server's
/// `410 Gone` with reason `Expired`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Expired {
    /// The resourceVersion the watch asked to resume after.
    pub rv: u64,
    /// The newest resourceVersion no longer kept.
    pub compacted_rv: u64,
}

impl Expired {
    /// The API server's message for it.
    pub(crate) fn message(&self) -> String {
        format!(
            "too old resource version: {} ({})",
            self.rv, self.compacted_rv
        )
    }
}

/// The last `limit` changes of a store, each with its resourceVersion.
#[derive(Debug)]
pub(crate) struct History<E> {
    changes: VecDeque<(u64, E)>,
    limit: usize,
    /// Changes at or below this resourceVersion are no longer kept.
    compacted_rv: u64,
}

impl<E> History<E> {
    /// An empty history keeping at most `limit` changes.
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            changes: VecDeque::new(),
            limit,
            compacted_rv: 0,
        }
    }

    /// Keeps a change made at `rv` (rising with every call), dropping the
    /// oldest beyond the limit.
    pub(crate) fn record(&mut self, rv: u64, change: E) {
        self.changes.push_back((rv, change));
        self.trim();
    }

    /// Keeps at most `limit` changes from now on (and drops the oldest now).
    pub(crate) fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
        self.trim();
    }

    fn trim(&mut self) {
        while self.changes.len() > self.limit {
            if let Some((rv, _)) = self.changes.pop_front() {
                self.compacted_rv = self.compacted_rv.max(rv);
            }
        }
    }

    /// Forgets every change up to `rv` (the store's current resourceVersion):
    /// a watch resuming from any older one gets [`Expired`].
    pub(crate) fn expire(&mut self, rv: u64) {
        self.changes.clear();
        self.compacted_rv = self.compacted_rv.max(rv);
    }

    /// The changes a watch resuming after `rv` is replayed, oldest first, or
    /// [`Expired`] when some of them are no longer kept.
    pub(crate) fn after(&self, rv: u64) -> Result<impl Iterator<Item = &E>, Expired> {
        if rv < self.compacted_rv {
            return Err(Expired {
                rv,
                compacted_rv: self.compacted_rv,
            });
        }
        Ok(self
            .changes
            .iter()
            .filter(move |(at, _)| *at > rv)
            .map(|(_, c)| c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn where_a_watch_starts() {
        assert_eq!(Start::of(None, false), Start::Current);
        assert_eq!(Start::of(Some(0), false), Start::Current);
        assert_eq!(Start::of(Some(7), true), Start::Current);
        assert_eq!(Start::of(Some(7), false), Start::After(7));
    }

    #[test]
    fn resumes_after_a_version_until_it_is_compacted() {
        let mut h = History::new(3);
        for rv in 2..=6 {
            h.record(rv, rv * 10);
        }
        // Kept: 4, 5, 6; 2 and 3 are gone.
        let after = |h: &History<u64>, rv| h.after(rv).map(|i| i.copied().collect::<Vec<_>>());
        assert_eq!(
            after(&h, 3),
            Ok(vec![40, 50, 60]),
            "nothing after 3 is lost"
        );
        assert_eq!(after(&h, 5), Ok(vec![60]));
        assert_eq!(after(&h, 6), Ok(vec![]));
        let gone = after(&h, 2).unwrap_err();
        assert_eq!(
            gone,
            Expired {
                rv: 2,
                compacted_rv: 3
            }
        );
        assert_eq!(gone.message(), "too old resource version: 2 (3)");

        h.set_limit(1);
        assert_eq!(after(&h, 5), Ok(vec![60]));
        assert!(after(&h, 4).is_err());

        h.expire(9);
        assert!(after(&h, 8).is_err());
        assert_eq!(after(&h, 9), Ok(vec![]));
    }
}
