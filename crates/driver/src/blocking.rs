//! The one way the driver's async code runs blocking work (store IO, CSR
//! signing, key parsing, keystore encoding): on Tokio's blocking pool, so a
//! slow file system or a large RSA key never stalls the async workers that
//! serve other volumes and the health RPCs. Nothing else in the driver calls
//! `spawn_blocking` (a test in `tests/architecture.rs` checks it).

use std::sync::Arc;

use cmcsi_store::Store;

use crate::error::DriverError;

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

/// [`run`] for store IO: `f` gets the store, and its error becomes a
/// [`DriverError`].
pub(crate) async fn with_store<T, E, H>(
    store: &Arc<Store>,
    held: H,
    what: &str,
    f: impl FnOnce(&Store) -> Result<T, E> + Send + 'static,
) -> Result<T, DriverError>
where
    T: Send + 'static,
    E: Into<DriverError> + Send + 'static,
    H: Send + 'static,
{
    let store = Arc::clone(store);
    run(held, what, move || f(&store))
        .await?
        .map_err(Into::into)
}
