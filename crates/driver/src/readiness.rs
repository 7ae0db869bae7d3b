//! Whether a volume's Pod is ready for an issuance (every readiness gate
//! holds and, for `${POD_IP}`, the Pod has an address), read from the node's
//! Pod watch (started at the first need). A Pod not ready is the renewer's
//! "not ready" outcome: the renewer checks again with the gate backoff, and
//! each change of the Pod wakes the volume in the renewer
//! ([`Driver::pod_changed`]); nothing here waits or schedules. What each gate
//! means is in `gates`.

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

    /// The node's Pod watch, started at the first need. Each change of a
    /// Pod wakes the volumes waiting for it ([`Driver::pod_changed`]).
    pub(crate) fn pods(&self) -> Result<cmcsi_issuer_client::PodWatch, DriverError> {
        let kube = self
            .kube
            .as_ref()
            .map_err(|e| DriverError::NoKubernetes(std::sync::Arc::clone(e)))?;
        Ok(kube
            .pods
            .get_or_init(|| {
                tracing::info!(node = %self.config.node_id, "starting the node's Pod watch");
                let watch = cmcsi_issuer_client::PodWatch::start_with(
                    kube.issuer.client().clone(),
                    &self.config.node_id,
                    annotation_keys(&self.config.pod_readiness_gates),
                    crate::startup::pod_watch_options(&self.config.watch_limits),
                );
                self.listen_to(&watch);
                watch
            })
            .clone())
    }

    /// Wakes the volumes waiting for a Pod at each change of it (the Pod
    /// watch started at start-up, when gates are configured, or later by
    /// [`Driver::pods`]).
    pub(crate) fn listen_to_pods(&self) {
        if let Ok(kube) = &self.kube
            && let Some(watch) = kube.pods.get()
        {
            self.listen_to(watch);
        }
    }

    fn listen_to(&self, watch: &cmcsi_issuer_client::PodWatch) {
        let weak = self.weak();
        watch.on_change(move |namespace, name| {
            if let Some(driver) = weak.upgrade() {
                driver.pod_changed(namespace, name);
            }
        });
    }

    /// Notes that `volume_id` waits for its Pod (it answered "not ready"),
    /// so the next change of that Pod wakes it in the renewer. The renewer
    /// itself checks again with the gate backoff meanwhile.
    pub(crate) fn wait_for_pod(
        &self,
        volume_id: &str,
        context: &std::collections::BTreeMap<String, String>,
    ) {
        let (Some(ns), Some(name)) = (
            context.get(cmcsi_attrs::keys::POD_NAMESPACE),
            context.get(cmcsi_attrs::keys::POD_NAME),
        ) else {
            return;
        };
        self.pod_waiters_lock()
            .entry((ns.clone(), name.clone()))
            .or_default()
            .insert(volume_id.to_owned());
    }

    /// Pod `namespace/name` changed: wakes the volumes waiting for it (each
    /// registers again if it is still not ready; a volume no longer managed
    /// is dropped, so the map never outgrows the volumes waiting).
    pub(crate) fn pod_changed(&self, namespace: &str, name: &str) {
        let waiting = self
            .pod_waiters_lock()
            .remove(&(namespace.to_owned(), name.to_owned()));
        for volume in waiting.into_iter().flatten() {
            tracing::debug!(volume = %volume, pod = name, namespace, "Pod changed; checking its gates again");
            self.renewer().wake(&volume);
        }
    }

    fn pod_waiters_lock(&self) -> std::sync::MutexGuard<'_, crate::driver::PodWaiters> {
        self.pod_waiters.lock().unwrap_or_else(|p| p.into_inner())
    }
}
