//! The one way the driver's async code runs blocking work (store IO, CSR
//! signing, key parsing, keystore encoding). Work that can take long (an RSA
//! key, a keystore's PBKDF2, a trust bundle, a file system that is not the
//! driver's tmpfs, a walk of every volume) runs on Tokio's blocking pool, so it
//! never stalls the async workers that serve other volumes and the health
//! RPCs. Work that is small and bounded ([`Cost::Small`]) runs where it is
//! asked for: handing it to a pool thread and back costs two thread wake-ups,
//! more than the work itself. Nothing else in the driver calls
//! `spawn_blocking` (a test in `tests/architecture.rs` checks it).

use std::sync::Arc;

use cmcsi_store::Store;

use crate::error::DriverError;

/// How long a piece of blocking work can take, which decides where it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cost {
    /// Bounded and short, tens of microseconds: a few small files of one
    /// volume on the driver's tmpfs (in memory; written only with a context
    /// of at most 16 KiB, read back whatever its size, which
    /// `--max-volume-context-bytes` bounds and the worker parses anyway), a
    /// P-256 or Ed25519 key's CSR, a chain of at most 16 KiB without
    /// keystores. Run on the calling async worker: the pool's
    /// hand-off and wake-up back cost about as much (measured with B3 of
    /// `cargo xtask bench`: a first publish spent about 0.1 ms of its 1.3 ms
    /// in the hand-offs).
    Small,
    /// Anything else: Tokio's blocking pool.
    Large,
}

impl Cost {
    /// [`Cost::Small`] when `small` holds, else [`Cost::Large`].
    pub(crate) fn small_if(small: bool) -> Cost {
        if small { Cost::Small } else { Cost::Large }
    }
}

/// Runs `f` on Tokio's blocking pool and keeps `held` (a volume's lock, an
/// issuance's permit) until `f` returns, also when the caller stops waiting.
/// A panic in `f` is resumed in the caller; a task the runtime cancels (at
/// shutdown) is a `Worker` error naming `what`.
pub(crate) async fn run<T, H>(
    held: H,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, DriverError>
where
    T: Send + 'static,
    H: Send + 'static,
{
    let task = tokio::task::spawn_blocking(move || {
        let result = f();
        drop(held);
        result
    });
    match task.await {
        Ok(result) => Ok(result),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(DriverError::Worker(format!("{what}: {e}"))),
    }
}

/// [`run`] for store IO, or here for [`Cost::Small`] work: `f` gets the
/// store, and its error becomes a [`DriverError`]. Work on a store that is
/// not a tmpfs is never [`Cost::Small`] (a disk's `fsync` can take
/// milliseconds).
pub(crate) async fn with_store<T, E, H>(
    store: &Arc<Store>,
    cost: Cost,
    held: H,
    what: &str,
    f: impl FnOnce(&Store) -> Result<T, E> + Send + 'static,
) -> Result<T, DriverError>
where
    T: Send + 'static,
    E: Into<DriverError> + Send + 'static,
    H: Send + 'static,
{
    let cost = if store.is_tmpfs() { cost } else { Cost::Large };
    if cost == Cost::Small {
        let result = f(store);
        drop(held);
        return result.map_err(Into::into);
    }
    let store = Arc::clone(store);
    run(held, what, move || f(&store))
        .await?
        .map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use std::thread::{self, ThreadId};

    use cmcsi_store::StoreOptions;
    use cmcsi_testkit::in_mount_namespace;

    use super::*;

    /// A store on its own tmpfs under `dir` (inside the test's mount
    /// namespace).
    fn tmpfs_store(dir: &std::path::Path) -> Arc<Store> {
        let store = Store::open(&dir.join("mem"), StoreOptions::default()).unwrap();
        assert!(store.is_tmpfs());
        Arc::new(store)
    }

    /// The thread `cost` work on `store` runs on.
    async fn runs_on(store: &Arc<Store>, cost: Cost) -> ThreadId {
        with_store(store, cost, (), "test", |_| {
            Ok::<_, DriverError>(thread::current().id())
        })
        .await
        .unwrap()
    }

    #[test]
    fn small_work_runs_here_only_on_the_tmpfs() {
        in_mount_namespace!(async {
            let tmp = tempfile::tempdir().unwrap();
            let mem = tmpfs_store(tmp.path());
            let disk = Arc::new(
                Store::open(
                    &tmp.path().join("disk"),
                    StoreOptions {
                        mount_tmpfs: false,
                        ..StoreOptions::default()
                    },
                )
                .unwrap(),
            );
            assert!(!disk.is_tmpfs());
            let here = thread::current().id();
            assert_eq!(
                runs_on(&mem, Cost::Small).await,
                here,
                "small work on the tmpfs runs here"
            );
            assert_ne!(
                runs_on(&mem, Cost::Large).await,
                here,
                "large work goes to the pool"
            );
            assert_ne!(
                runs_on(&disk, Cost::Small).await,
                here,
                "store work on a disk goes to the pool, however small"
            );
        });
    }

    #[test]
    fn small_work_drops_what_it_holds_when_it_returns() {
        in_mount_namespace!(async {
            let tmp = tempfile::tempdir().unwrap();
            let mem = tmpfs_store(tmp.path());
            let held = Arc::new(());
            let seen = with_store(&mem, Cost::Small, Arc::clone(&held), "test", {
                let held = Arc::clone(&held);
                move |_| Ok::<_, DriverError>(Arc::strong_count(&held))
            })
            .await
            .unwrap();
            assert_eq!(seen, 3, "held while the work runs");
            assert_eq!(Arc::strong_count(&held), 1, "released when it returns");
        });
    }
}
