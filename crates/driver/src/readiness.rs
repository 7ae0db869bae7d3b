//! Whether a volume's Pod is ready for an issuance (every readiness gate
//! holds and, for `${POD_IP}`, the Pod has an address), read from the node's
//! Pod watch (started at the first need), and the wait for a Pod that is not
//! ready yet. What each gate means is in `gates`.

use std::net::IpAddr;

use crate::driver::Driver;
use crate::error::DriverError;
use crate::gates::{annotation_keys, first_failing};

impl Driver {
    /// Whether issuing for this volume needs the Pod's state from the API.
    pub(crate) fn needs_pod(&self, context: &std::collections::BTreeMap<String, String>) -> bool {
        !self.config.pod_readiness_gates.is_empty() || cmcsi_attrs::uses_pod_ip(context)
    }

    /// Checks the volume's gates (and, for `${POD_IP}`, that the Pod has an
    /// address) and returns the Pod's IPs. `Ok(None)` when the volume needs
    /// no Pod state.
    pub(crate) fn pod_ready(
        &self,
        context: &std::collections::BTreeMap<String, String>,
    ) -> Result<Option<Vec<IpAddr>>, DriverError> {
        if !self.needs_pod(context) {
            return Ok(None);
        }
        let pods = self.pods()?;
        let (Some(ns), Some(name)) = (
            context.get(cmcsi_attrs::keys::POD_NAMESPACE),
            context.get(cmcsi_attrs::keys::POD_NAME),
        ) else {
            return Err(DriverError::InvalidRequest(
                "readiness gates and ${POD_IP} need the Pod's name and namespace in the volume \
                 context: the CSIDriver object must set podInfoOnMount: true"
                    .into(),
            ));
        };
        let uid = context.get(cmcsi_attrs::keys::POD_UID);
        // A Pod of the same name but another uid is not this volume's Pod.
        let pod = pods
            .get(ns, name)
            .filter(|p| uid.is_none_or(|u| p.uid.is_empty() || *u == p.uid));
        let Some(pod) = pod else {
            return Err(DriverError::PodNotReady(format!(
                "Pod {ns}/{name} is not yet known to the driver's Pod watch"
            )));
        };
        if let Some(gate) = first_failing(&self.config.pod_readiness_gates, &pod) {
            return Err(DriverError::PodNotReady(format!(
                "Pod {ns}/{name} does not yet meet readiness gate {gate}"
            )));
        }
        if cmcsi_attrs::uses_pod_ip(context)
            && pod.host_network
            && !self.config.tenants.allow_pod_ip_for_host_network
        {
            return Err(DriverError::InvalidRequest(format!(
                "Pod {ns}/{name} uses hostNetwork, so ${{POD_IP}} would be the node's address \
                 and its certificate would name the node; use a name or an address of the Pod's \
                 own (the node's administrator may allow this with \
                 --allow-pod-ip-for-host-network)"
            )));
        }
        if cmcsi_attrs::uses_pod_ip(context) && pod.pod_ips.is_empty() {
            return Err(DriverError::PodNotReady(format!(
                "Pod {ns}/{name} has no IP address yet for ${{POD_IP}}"
            )));
        }
        Ok(Some(pod.pod_ips))
    }

    /// The node's Pod watch, started at the first need.
    pub(crate) fn pods(&self) -> Result<cmcsi_issuer_client::PodWatch, DriverError> {
        let kube = self
            .kube
            .as_ref()
            .map_err(|e| DriverError::NoKubernetes(std::sync::Arc::clone(e)))?;
        Ok(kube
            .pods
            .get_or_init(|| {
                tracing::info!(node = %self.config.node_id, "starting the node's Pod watch");
                cmcsi_issuer_client::PodWatch::start_with(
                    kube.issuer.client().clone(),
                    &self.config.node_id,
                    annotation_keys(&self.config.pod_readiness_gates),
                    crate::startup::pod_watch_options(&self.config.watch_limits),
                )
            })
            .clone())
    }

    /// Hands a gated volume to the renewer once its Pod is ready: checks at
    /// every change of the node's Pods, and at least after each gate-backoff
    /// delay. Replaces an earlier wait for the same volume; ended by
    /// [`Driver::cancel_gate_wait`] (unpublish).
    pub(crate) fn spawn_gate_wait(
        self: &std::sync::Arc<Self>,
        volume_id: &str,
        context: std::collections::BTreeMap<String, String>,
        disable_auto_renew: bool,
    ) {
        let weak = std::sync::Arc::downgrade(self);
        let id = volume_id.to_owned();
        let mut changes = self.pods().ok().map(|p| p.changes());
        let backoff = self.config.gate_backoff;
        let task = tokio::spawn(async move {
            let mut attempt = 0u32;
            loop {
                let Some(driver) = weak.upgrade() else { return };
                match driver.pod_ready(&context) {
                    // A refusal (`${POD_IP}` of a hostNetwork Pod) is no wait:
                    // the renewer's attempt reports it (Event, log, backoff).
                    Ok(_) | Err(DriverError::InvalidRequest(_)) => {
                        tracing::info!(volume = %id, "Pod ready (or its volume refused); issuing");
                        driver
                            .renewer()
                            .manage_pending(id.as_str(), disable_auto_renew);
                        driver.gate_waits_lock().remove(&id);
                        return;
                    }
                    Err(e) => tracing::debug!(volume = %id, reason = %e, "waiting for the Pod"),
                }
                drop(driver);
                let unit = f64::from(getrandom_u32() % 10_000) / 10_000.0;
                let delay = backoff.delay(attempt, unit);
                attempt = attempt.saturating_add(1);
                match &mut changes {
                    Some(rx) => {
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            r = rx.changed() => if r.is_err() { tokio::time::sleep(delay).await },
                        }
                    }
                    None => tokio::time::sleep(delay).await,
                }
            }
        });
        if let Some(old) = self
            .gate_waits_lock()
            .insert(volume_id.to_owned(), task.abort_handle())
        {
            old.abort();
        }
    }

    /// Ends the gate wait of a volume, if any.
    pub(crate) fn cancel_gate_wait(&self, volume_id: &str) {
        if let Some(h) = self.gate_waits_lock().remove(volume_id) {
            h.abort();
        }
    }

    fn gate_waits_lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, tokio::task::AbortHandle>>
    {
        self.gate_waits.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A random draw for the gate backoff's jitter (0 when the OS has none).
fn getrandom_u32() -> u32 {
    getrandom::u32().unwrap_or(0)
}
