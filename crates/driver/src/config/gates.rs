//! The Go driver's readiness-gate flags: `--pod-readiness-gate` and the
//! `--gate-backoff-*` delays between checks of a volume's gates.

use std::time::Duration;

use clap::Args;

use super::parse::parse_any_duration;
use crate::gates::{Gate, GateBackoff};

/// The flags of the Pod readiness gates and their backoff.
#[derive(Debug, Clone, Args)]
pub struct GateFlags {
    /// A condition the Pod must meet before its volume is issued (repeatable; all
    /// must hold): pod-ip:any|ipv4|ipv6, pod-condition:Type[=True|False|Unknown]
    /// (default True), pod-annotation:key (non-empty value). Needs
    /// --continue-on-not-ready=true: the volume is mounted empty and filled once
    /// the gates hold. Starts a watch of this node's Pods.
    #[arg(long = "pod-readiness-gate", value_parser = crate::gates::parse_gate)]
    pub pod_readiness_gates: Vec<Gate>,

    /// First delay between checks of a volume's gates (Go duration, > 0; default 1s).
    /// Setting any --gate-backoff-* flag sets all four (the others keep their defaults).
    #[arg(long, value_parser = parse_any_duration)]
    pub gate_backoff_duration: Option<Duration>,

    /// Each delay between gate checks is the previous times this (>= 1; default 2).
    #[arg(long)]
    pub gate_backoff_factor: Option<f64>,

    /// Up to this fraction of a gate delay is added at random (0 to 1; default 0.5).
    #[arg(long)]
    pub gate_backoff_jitter: Option<f64>,

    /// Gate delays stop growing here (Go duration; 0 = no cap, else >= the duration; default 10s).
    #[arg(long, value_parser = parse_any_duration)]
    pub gate_backoff_cap: Option<Duration>,
}

impl GateFlags {
    /// The gate backoff: the flags given, the defaults for the others.
    pub fn backoff(&self) -> GateBackoff {
        let defaults = GateBackoff::default();
        GateBackoff {
            duration: self.gate_backoff_duration.unwrap_or(defaults.duration),
            factor: self.gate_backoff_factor.unwrap_or(defaults.factor),
            jitter: self.gate_backoff_jitter.unwrap_or(defaults.jitter),
            cap: self.gate_backoff_cap.unwrap_or(defaults.cap),
        }
    }
}
