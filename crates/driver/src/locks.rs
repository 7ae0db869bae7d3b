//! One lock per volume, so two calls for the same volume never interleave
//! (the Go driver's missing lock let a retried publish mount an empty volume,
//! Go driver issue #636).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::OwnedMutexGuard;

/// Per-volume async locks. Entries are dropped with their last user, so the
/// map holds only volumes with an operation in flight.
#[derive(Debug, Default)]
pub struct VolumeLocks {
    map: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

/// Held while operating on one volume. Clones share the hold: the lock is
/// released when the last clone drops, so blocking work started under the
/// lock keeps it until that work ends, even when the call that started it
/// is cancelled.
#[derive(Debug, Clone)]
pub struct VolumeGuard {
    _guard: Arc<OwnedMutexGuard<()>>,
}

impl VolumeLocks {
    fn entry(&self, volume: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = map.get(volume).and_then(Weak::upgrade) {
            return m;
        }
        // Drop entries nobody holds any more before adding one.
        if map.len() > 64 {
            map.retain(|_, w| w.strong_count() > 0);
        }
        let m = Arc::new(tokio::sync::Mutex::new(()));
        map.insert(volume.to_string(), Arc::downgrade(&m));
        m
    }

    /// Waits up to `wait` for the volume's lock; `None` when another
    /// operation still holds it then.
    pub async fn lock(&self, volume: &str, wait: Duration) -> Option<VolumeGuard> {
        let m = self.entry(volume);
        tokio::time::timeout(wait, m.lock_owned())
            .await
            .ok()
            .map(|g| VolumeGuard {
                _guard: Arc::new(g),
            })
    }

    /// Takes the volume's lock only if it is free now.
    pub fn try_lock(&self, volume: &str) -> Option<VolumeGuard> {
        self.entry(volume)
            .try_lock_owned()
            .ok()
            .map(|g| VolumeGuard {
                _guard: Arc::new(g),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn second_locker_waits_then_times_out() {
        let locks = VolumeLocks::default();
        let g = locks.lock("a", Duration::from_secs(1)).await.unwrap();
        assert!(locks.try_lock("a").is_none());
        assert!(
            locks.try_lock("b").is_some(),
            "other volumes are independent"
        );
        assert!(locks.lock("a", Duration::from_secs(5)).await.is_none());
        let shared = g.clone();
        drop(g);
        assert!(locks.try_lock("a").is_none(), "a clone still holds it");
        drop(shared);
        assert!(locks.lock("a", Duration::from_secs(1)).await.is_some());
    }
}
