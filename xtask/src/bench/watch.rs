//! The bench's own watch over the objects it creates: one task per watch that
//! reports the names of the objects a predicate accepts, opened and synced
//! (its initial list done) before any clock starts. B3's bare round trip and
//! both sides of B13 await their objects through it.

use std::time::Duration;

use anyhow::{Result, anyhow};
use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::runtime::watcher;
use serde_json::Value;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinHandle;

/// How long the watch may take to list what is there.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);

/// A synced watch: `names` yields the name of every object `accept`s, each
/// time it is seen (an object may come more than once); abort `task` when done.
pub struct Accepted {
    pub names: UnboundedReceiver<String>,
    pub task: JoinHandle<()>,
}

/// Opens a watch on `api` and returns once its initial list is done.
pub async fn accepted(
    api: Api<DynamicObject>,
    accept: impl Fn(&Value) -> bool + Send + 'static,
) -> Result<Accepted> {
    let (tx, names) = tokio::sync::mpsc::unbounded_channel();
    let (synced_tx, synced_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(watcher::watcher(api, watcher::Config::default()));
        let mut synced = Some(synced_tx);
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(watcher::Event::InitDone) => {
                    if let Some(s) = synced.take() {
                        let _ = s.send(());
                    }
                }
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) if accept(&o.data) => {
                    let _ = tx.send(o.metadata.name.unwrap_or_default());
                }
                _ => {}
            }
        }
    });
    let synced = tokio::time::timeout(SYNC_TIMEOUT, synced_rx).await;
    match synced {
        Ok(Ok(())) => Ok(Accepted { names, task }),
        Ok(Err(_)) => {
            task.abort();
            Err(anyhow!("the bench's watch ended before its initial list"))
        }
        Err(_) => {
            task.abort();
            Err(anyhow!(
                "the bench's watch did not list within {SYNC_TIMEOUT:?}"
            ))
        }
    }
}
