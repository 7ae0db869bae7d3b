//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go's
//! `leaderelection` package does it: read the Lease, and take it over only
//! when its holder has not renewed it for `leaseDurationSeconds` *as this
//! replica observed* (no comparison of clocks across machines), writing with
//! the read `resourceVersion` so that of two candidates only one wins.
//!
//! Written here rather than taken from a crate: `kube-lease-manager` (the
//! maintained one for kube 5) needs Rust 1.89 and locks through server-side
//! apply field ownership, which makes a crashed holder's Lease hard to take
//! over and which the project's fake API does not model; `kube-leader-election`
//! is still on kube 4. The algorithm is small.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};

/// One candidate for the Lease.
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
    retry: Duration,
    /// The last (resourceVersion, holder) seen and when it was first seen.
    observed: Option<(String, Instant)>,
}

/// What one attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// This replica holds the Lease (acquired or renewed).
    Leader,
    /// Another replica holds it (named).
    Follower(String),
}

impl std::fmt::Debug for LeaderElector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderElector")
            .field("name", &self.name)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl LeaderElector {
    /// A candidate `identity` for Lease `namespace/name`.
    pub fn new(
        client: kube::Client,
        namespace: &str,
        name: &str,
        identity: &str,
        duration: Duration,
        retry: Duration,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            duration,
            retry,
            observed: None,
        }
    }

    /// How often to call [`LeaderElector::try_acquire_or_renew`].
    pub fn retry_period(&self) -> Duration {
        self.retry
    }

    fn spec(
        &self,
        now: jiff::Timestamp,
        acquire: Option<MicroTime>,
        transitions: i32,
    ) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.duration.as_secs()).unwrap_or(i32::MAX),
            ),
            acquire_time: Some(acquire.unwrap_or(MicroTime(now))),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    /// One round: create the Lease, renew ours, or take over an expired one.
    pub async fn try_acquire_or_renew(&mut self) -> Result<Attempt, kube::Error> {
        let now = jiff::Timestamp::now();
        let current = match self.api.get_opt(&self.name).await? {
            Some(l) => l,
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..Default::default()
                    },
                    spec: Some(self.spec(now, None, 0)),
                };
                return match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(Attempt::Leader),
                    Err(kube::Error::Api(e)) if e.code == 409 => {
                        Ok(Attempt::Follower(String::new()))
                    }
                    Err(e) => Err(e),
                };
            }
        };
        let spec = current.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let rv = current
            .metadata
            .resource_version
            .clone()
            .unwrap_or_default();
        let ours = holder == self.identity;
        if !ours && !holder.is_empty() {
            // Expired only when the Lease has not changed for its duration
            // since we first saw this version.
            let first_seen = match &self.observed {
                Some((seen_rv, at)) if *seen_rv == rv => *at,
                _ => {
                    self.observed = Some((rv.clone(), Instant::now()));
                    Instant::now()
                }
            };
            let held_for = spec.lease_duration_seconds.map_or(self.duration, |s| {
                Duration::from_secs(u64::try_from(s).unwrap_or(0))
            });
            if first_seen.elapsed() < held_for {
                return Ok(Attempt::Follower(holder));
            }
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!ours);
        let acquire = if ours {
            spec.acquire_time.clone()
        } else {
            None
        };
        let mut lease = current;
        lease.spec = Some(self.spec(now, acquire, transitions));
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                if !ours {
                    tracing::info!(lease = %self.name, previous = %holder, "acquired the leader Lease");
                }
                Ok(Attempt::Leader)
            }
            // Someone else wrote first: they are the leader now.
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(Attempt::Follower(holder)),
            Err(e) => Err(e),
        }
    }

    /// Gives the Lease up (on a clean shutdown), so another replica need not
    /// wait for it to expire.
    pub async fn release(&mut self) {
        if let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await
            && lease
                .spec
                .as_ref()
                .and_then(|s| s.holder_identity.as_deref())
                == Some(self.identity.as_str())
        {
            if let Some(spec) = lease.spec.as_mut() {
                spec.holder_identity = None;
                spec.lease_duration_seconds = Some(1);
            }
            let _ = self
                .api
                .replace(&self.name, &PostParams::default(), &lease)
                .await;
        }
    }
}
