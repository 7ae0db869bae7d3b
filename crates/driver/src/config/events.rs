//! `--events`, `--event-interval`, `--event-queue-size`,
//! `--max-queued-events-per-namespace`: the Kubernetes Events the driver
//! records on Pods.

use std::time::Duration;

use clap::{ArgAction, Args};

use super::parse_duration_flag;
use crate::events::EventsConfig;

/// The flags of [`EventsConfig`].
#[derive(Debug, Clone, Args)]
pub struct EventFlags {
    /// Record Kubernetes Events (events.k8s.io/v1) on the Pod when its
    /// certificate cannot be issued or renewed, is overdue or expired, and
    /// when it is renewed again after failures.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value_t = true, default_missing_value = "true")]
    pub events: bool,

    /// At most one Event per volume and reason in this interval, however often
    /// issuance is retried; repeats are counted in the next one (Go duration).
    #[arg(long, default_value = "5m", value_parser = parse_duration_flag)]
    pub event_interval: Duration,

    /// Events waiting to be sent to the API; when full, new ones are dropped
    /// (issuance never waits for an Event; counted in
    /// certmanager_csi_events_dropped_total).
    #[arg(long, default_value_t = crate::events::DEFAULT_EVENT_QUEUE_SIZE as u32,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub event_queue_size: u32,

    /// Events of one namespace waiting in the queue at once; further ones of that
    /// namespace are dropped (and counted), so one tenant's failing volumes cannot
    /// fill the queue and silence other namespaces' Events (at most
    /// --event-queue-size).
    #[arg(long, default_value_t = crate::events::DEFAULT_NAMESPACE_SHARE as u32,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_queued_events_per_namespace: u32,
}

impl EventFlags {
    /// The events configuration these flags describe.
    pub fn into_config(self) -> EventsConfig {
        EventsConfig {
            enabled: self.events,
            interval: self.event_interval,
            queue_size: self.event_queue_size as usize,
            namespace_share: self
                .max_queued_events_per_namespace
                .min(self.event_queue_size) as usize,
        }
    }
}
