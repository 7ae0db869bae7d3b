//! Pod readiness gates (`--pod-readiness-gate`, the Go driver's v0.14-v0.16
//! flag) and the wait for them: what each gate means, whether the Pod's
//! current state passes every gate, and the backoff between checks.
//!
//! A volume whose gates do not hold is mounted empty (gates need
//! `--continue-on-not-ready`) and handed to the renewer, whose attempts
//! answer "not ready" until they hold (see `readiness`); the Pod's state comes from the node-scoped Pod watch of
//! `issuer-client` ([`cmcsi_issuer_client::PodWatch`]), which keeps only what
//! the gates (and `${POD_IP}`) read. A leaf: it knows nothing of the driver.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use cmcsi_issuer_client::PodFacts;

/// Which address family a `pod-ip` gate asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpFamily {
    /// Any address.
    Any,
    /// An IPv4 address (an IPv4-mapped IPv6 address counts as IPv4, as in Go).
    Ipv4,
    /// An IPv6 address that is not IPv4-mapped.
    Ipv6,
}

/// The status a `pod-condition` gate asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionStatus {
    /// `True` (the default).
    True,
    /// `False`.
    False,
    /// `Unknown`.
    Unknown,
}

impl ConditionStatus {
    fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }
}

/// One `--pod-readiness-gate`: all gates must hold (AND) before a volume is issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// `pod-ip:any|ipv4|ipv6`: the Pod has an IP address of that family.
    PodIp(IpFamily),
    /// `pod-condition:Type[=True|False|Unknown]`: the Pod's condition `Type`
    /// has that status (default `True`; the status is case-insensitive).
    PodCondition {
        /// The condition type, e.g. `Ready` or a custom readiness gate's type.
        condition_type: String,
        /// The status it must have.
        status: ConditionStatus,
    },
    /// `pod-annotation:key`: the Pod has annotation `key` with a non-empty value.
    PodAnnotation(String),
}

impl fmt::Display for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Gate::PodIp(IpFamily::Any) => f.write_str("pod-ip:any"),
            Gate::PodIp(IpFamily::Ipv4) => f.write_str("pod-ip:ipv4"),
            Gate::PodIp(IpFamily::Ipv6) => f.write_str("pod-ip:ipv6"),
            Gate::PodCondition {
                condition_type,
                status,
            } => write!(f, "pod-condition:{condition_type}={}", status.as_str()),
            Gate::PodAnnotation(key) => write!(f, "pod-annotation:{key}"),
        }
    }
}

const GATE_FORMS: &str =
    "use pod-ip:any|ipv4|ipv6, pod-condition:Type[=True|False|Unknown] or pod-annotation:key";

/// Parses one `--pod-readiness-gate` value.
pub fn parse_gate(s: &str) -> Result<Gate, String> {
    let s = s.trim();
    let Some((kind, arg)) = s.split_once(':') else {
        return Err(format!(
            "readiness gate `{s}` has no `kind:` prefix; {GATE_FORMS}"
        ));
    };
    match kind {
        "pod-ip" => match arg.to_ascii_lowercase().as_str() {
            "any" => Ok(Gate::PodIp(IpFamily::Any)),
            "ipv4" => Ok(Gate::PodIp(IpFamily::Ipv4)),
            "ipv6" => Ok(Gate::PodIp(IpFamily::Ipv6)),
            _ => Err(format!(
                "readiness gate `{s}`: the IP family must be any, ipv4 or ipv6"
            )),
        },
        "pod-condition" => {
            let (condition_type, status) = match arg.split_once('=') {
                None => (arg, ConditionStatus::True),
                Some((t, v)) => {
                    let status = match v.to_ascii_lowercase().as_str() {
                        "true" => ConditionStatus::True,
                        "false" => ConditionStatus::False,
                        "unknown" => ConditionStatus::Unknown,
                        _ => {
                            return Err(format!(
                                "readiness gate `{s}`: the status must be True, False or Unknown"
                            ));
                        }
                    };
                    (t, status)
                }
            };
            if condition_type.is_empty() {
                return Err(format!(
                    "readiness gate `{s}` names no condition type, e.g. pod-condition:Ready"
                ));
            }
            Ok(Gate::PodCondition {
                condition_type: condition_type.to_owned(),
                status,
            })
        }
        "pod-annotation" => {
            if arg.is_empty() {
                return Err(format!(
                    "readiness gate `{s}` names no annotation key, e.g. pod-annotation:example.com/ready"
                ));
            }
            Ok(Gate::PodAnnotation(arg.to_owned()))
        }
        _ => Err(format!(
            "unknown readiness gate kind `{kind}` in `{s}`; {GATE_FORMS}"
        )),
    }
}

/// The annotation keys the gates read (all the Pod watch keeps of annotations).
pub fn annotation_keys(gates: &[Gate]) -> Vec<String> {
    gates
        .iter()
        .filter_map(|g| match g {
            Gate::PodAnnotation(k) => Some(k.clone()),
            _ => None,
        })
        .collect()
}

fn is_v4(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(_) => true,
        IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some(),
    }
}

impl Gate {
    /// Whether `pod` passes this gate.
    pub fn holds(&self, pod: &PodFacts) -> bool {
        match self {
            Gate::PodIp(family) => pod.pod_ips.iter().any(|ip| match family {
                IpFamily::Any => true,
                IpFamily::Ipv4 => is_v4(ip),
                IpFamily::Ipv6 => !is_v4(ip),
            }),
            Gate::PodCondition {
                condition_type,
                status,
            } => pod
                .conditions
                .iter()
                .any(|(t, s)| t == condition_type && s.eq_ignore_ascii_case(status.as_str())),
            Gate::PodAnnotation(key) => pod.annotations.get(key).is_some_and(|v| !v.is_empty()),
        }
    }
}

/// The first gate `pod` does not pass, or `None` when all hold.
pub fn first_failing<'a>(gates: &'a [Gate], pod: &PodFacts) -> Option<&'a Gate> {
    gates.iter().find(|g| !g.holds(pod))
}

/// `--gate-backoff-*`: the flags' values for the delay between checks of a
/// volume's gates, as the Go driver's `wait.Backoff` (`duration`, `factor`,
/// `jitter`, `cap`); the arithmetic is the renewer's [`cmcsi_renewer::Backoff`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GateBackoff {
    /// The first delay (> 0).
    pub duration: Duration,
    /// Each delay is the previous one times this (>= 1).
    pub factor: f64,
    /// Up to this fraction of a delay is added at random (0 to 1).
    pub jitter: f64,
    /// Delays stop growing here, before jitter (`ZERO` = no cap; else >=
    /// `duration`).
    pub cap: Duration,
}

impl Default for GateBackoff {
    /// The Go driver's defaults: 1 s, ×2, 0.5, 10 s.
    fn default() -> Self {
        GateBackoff {
            duration: Duration::from_secs(1),
            factor: 2.0,
            jitter: 0.5,
            cap: Duration::from_secs(10),
        }
    }
}

impl GateBackoff {
    /// The Go driver's checks: duration > 0, factor >= 1, jitter in [0, 1],
    /// cap 0 or >= duration.
    pub fn validate(&self) -> Result<(), String> {
        if self.duration.is_zero() {
            return Err("--gate-backoff-duration must be greater than 0".into());
        }
        if self.factor.is_nan() || self.factor < 1.0 || !self.factor.is_finite() {
            return Err(format!(
                "--gate-backoff-factor must be at least 1, not {}",
                self.factor
            ));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(format!(
                "--gate-backoff-jitter must be between 0 and 1, not {}",
                self.jitter
            ));
        }
        if !self.cap.is_zero() && self.cap < self.duration {
            return Err(format!(
                "--gate-backoff-cap ({:?}) must be 0 (no cap) or at least --gate-backoff-duration ({:?})",
                self.cap, self.duration
            ));
        }
        Ok(())
    }

    /// The delays as the workspace's one [`cmcsi_renewer::Backoff`] (Go's
    /// `wait.Backoff` rule: the cap bounds a delay before jitter), which the
    /// renewer uses between checks of a volume whose Pod is not ready.
    pub fn backoff(&self) -> cmcsi_renewer::Backoff {
        cmcsi_renewer::Backoff {
            duration: self.duration,
            factor: self.factor,
            jitter: self.jitter,
            cap: self.cap,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn pod() -> PodFacts {
        PodFacts::default()
    }

    #[test]
    fn parses_every_form() {
        assert_eq!(
            parse_gate("pod-ip:any").unwrap(),
            Gate::PodIp(IpFamily::Any)
        );
        assert_eq!(
            parse_gate("pod-ip:IPv6").unwrap(),
            Gate::PodIp(IpFamily::Ipv6)
        );
        assert_eq!(
            parse_gate("pod-condition:Ready").unwrap(),
            Gate::PodCondition {
                condition_type: "Ready".into(),
                status: ConditionStatus::True
            }
        );
        assert_eq!(
            parse_gate("pod-condition:example.com/warm=false").unwrap(),
            Gate::PodCondition {
                condition_type: "example.com/warm".into(),
                status: ConditionStatus::False
            }
        );
        assert_eq!(
            parse_gate("pod-annotation:example.com/ready").unwrap(),
            Gate::PodAnnotation("example.com/ready".into())
        );
        for bad in [
            "pod-ip",
            "pod-ip:ipv5",
            "pod-condition:",
            "pod-condition:Ready=yes",
            "pod-annotation:",
            "node-ready:x",
        ] {
            assert!(parse_gate(bad).is_err(), "{bad}");
        }
        assert!(
            parse_gate("pod-ip:ipv5")
                .unwrap_err()
                .contains("any, ipv4 or ipv6")
        );
    }

    #[test]
    fn gates_hold_on_the_pods_state() {
        let mut p = pod();
        let any = parse_gate("pod-ip:any").unwrap();
        let v4 = parse_gate("pod-ip:ipv4").unwrap();
        let v6 = parse_gate("pod-ip:ipv6").unwrap();
        assert!(!any.holds(&p));
        p.pod_ips = vec!["::ffff:10.0.0.1".parse().unwrap()];
        assert!(any.holds(&p) && v4.holds(&p) && !v6.holds(&p));
        p.pod_ips.push("fd00::1".parse().unwrap());
        assert!(v6.holds(&p));

        let ready = parse_gate("pod-condition:Ready").unwrap();
        let not_ready = parse_gate("pod-condition:Ready=False").unwrap();
        assert!(!ready.holds(&p) && !not_ready.holds(&p));
        p.conditions = vec![("Ready".into(), "false".into())];
        assert!(!ready.holds(&p) && not_ready.holds(&p));
        p.conditions = vec![("Ready".into(), "True".into())];
        assert!(ready.holds(&p));

        let ann = parse_gate("pod-annotation:a/b").unwrap();
        p.annotations.insert("a/b".into(), String::new());
        assert!(!ann.holds(&p));
        p.annotations.insert("a/b".into(), "yes".into());
        assert!(ann.holds(&p));

        let gates = [any, ready, parse_gate("pod-annotation:c").unwrap()];
        assert_eq!(
            first_failing(&gates, &p).unwrap().to_string(),
            "pod-annotation:c"
        );
        assert!(first_failing(&gates[..2], &p).is_none());
    }

    #[test]
    fn backoff_validation_and_growth() {
        let b = GateBackoff::default();
        b.validate().unwrap();
        let b2 = b.backoff();
        assert_eq!(b2.base(1), Duration::from_secs(1));
        assert_eq!(b2.base(4), Duration::from_secs(8));
        assert_eq!(b2.base(5), Duration::from_secs(10));
        assert_eq!(b2.delay(1, 0.999), Duration::from_secs_f64(1.4995));
        // One cap rule with the renewer (Go's wait.Backoff): the cap bounds
        // the delay before jitter, and jitter comes on top.
        assert_eq!(b2.delay(11, 0.9), Duration::from_secs_f64(14.5));
        let bad = |f: fn(&mut GateBackoff)| {
            let mut b = GateBackoff::default();
            f(&mut b);
            b.validate().unwrap_err()
        };
        assert!(bad(|b| b.duration = Duration::ZERO).contains("duration"));
        assert!(bad(|b| b.factor = 0.5).contains("factor"));
        assert!(bad(|b| b.jitter = 1.5).contains("jitter"));
        assert!(bad(|b| b.cap = Duration::from_millis(500)).contains("cap"));
        let open = GateBackoff {
            cap: Duration::ZERO,
            ..GateBackoff::default()
        };
        open.validate().unwrap();
        assert_eq!(open.backoff().base(6), Duration::from_secs(32));
    }
}
