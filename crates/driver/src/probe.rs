//! Readiness, as CSI `Probe` reports it: not ready until the
//! CertificateRequest watch has listed once and the data root's tmpfs is
//! mounted, and again while the watch has been failing for longer than
//! `--max-watch-outage`. The node's health checks (the livenessprobe
//! sidecar's `/healthz`, which calls `Probe`) and so `kubectl rollout status`
//! see it.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::driver::Driver;

impl Driver {
    /// Why the driver is not ready now, or `None` when it is.
    pub(crate) async fn not_ready(&self) -> Option<String> {
        let kube = match &self.kube {
            Ok(k) => k,
            Err(e) => {
                return Some(format!(
                    "no Kubernetes API configuration ({e}): no certificate can be issued"
                ));
            }
        };
        let health = kube.issuer.health();
        if !health.synced {
            let why = health
                .last_error
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            return Some(format!(
                "the CertificateRequest watch has not listed this node's requests yet{why}"
            ));
        }
        if self.config.mount_tmpfs {
            let inmemfs = self.store.volumes_dir().to_path_buf();
            let mounted = crate::blocking::run((), "checking the data root's tmpfs", move || {
                cmcsi_store::is_mount_point(&inmemfs)
                    .map_err(|e| format!("cannot check {}: {e}", inmemfs.display()))
                    .and_then(|m| {
                        m.then_some(()).ok_or_else(|| {
                            format!(
                                "the data root's tmpfs is not mounted at {}",
                                inmemfs.display()
                            )
                        })
                    })
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
            if let Err(why) = mounted {
                return Some(why);
            }
        }
        let limit = self.config.max_watch_outage;
        if limit > Duration::ZERO
            && let Some(failing) = kube.issuer.watch_failing_for()
            && failing > limit
        {
            let error = kube.issuer.health().last_error.unwrap_or_default();
            return Some(format!(
                "the CertificateRequest watch has been failing for {}s, longer than \
                 --max-watch-outage ({}s): {error}",
                failing.as_secs(),
                limit.as_secs()
            ));
        }
        None
    }
}

/// Answers `Probe` for a driver and logs each change of its readiness once.
#[derive(Debug, Clone)]
pub(crate) struct Readiness {
    driver: Arc<Driver>,
    /// The reason last reported (`None`: ready), to log changes only.
    last: Arc<Mutex<Option<Option<String>>>>,
}

impl Readiness {
    pub(crate) fn new(driver: Arc<Driver>) -> Self {
        Readiness {
            driver,
            last: Arc::new(Mutex::new(None)),
        }
    }

    /// Whether the driver is ready; a change since the last call is logged.
    pub(crate) async fn ready(&self) -> bool {
        let now = self.driver.not_ready().await;
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if last.as_ref() != Some(&now) {
            match &now {
                None => tracing::info!("ready: Probe answers ready"),
                Some(why) => tracing::warn!(reason = %why, "not ready: Probe answers not ready"),
            }
            *last = Some(now.clone());
        }
        now.is_none()
    }
}
