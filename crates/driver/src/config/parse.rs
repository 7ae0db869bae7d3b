//! The parsers of flag values: endpoints, listen addresses, Go durations,
//! sizes, and the checks of single flags; each error says what to pass instead.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::Endpoint;

/// Parses `--endpoint`: `unix:///abs/path`, `unix://relative/path` (as the Go
/// chart passes it, resolved against the working directory, like csi-lib
/// does), a plain path, or `tcp://host:port`.
pub fn parse_endpoint(s: &str) -> Result<Endpoint, String> {
    if let Some(addr) = s.strip_prefix("tcp://") {
        let addr = addr.trim_end_matches('/');
        let ok = addr
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
        if !ok {
            return Err(format!(
                "endpoint `{s}` is not tcp://host:port: use e.g. tcp://127.0.0.1:10000"
            ));
        }
        return Ok(Endpoint::Tcp(addr.to_string()));
    }
    let path = if let Some(rest) = s.strip_prefix("unix://") {
        rest
    } else if s.contains("://") {
        return Err(format!(
            "unsupported endpoint `{s}`: use unix:///csi/csi.sock, a plain path, \
             or tcp://host:port"
        ));
    } else {
        s
    };
    if path.is_empty() {
        return Err(format!(
            "endpoint `{s}` names no socket path: use e.g. unix:///csi/csi.sock"
        ));
    }
    if path.contains('\0') {
        return Err("endpoint contains a NUL byte".to_string());
    }
    Ok(Endpoint::Unix(PathBuf::from(path)))
}

/// An optional listen address (`--metrics-bind-address`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindAddress(pub Option<SocketAddr>);

/// Parses `--metrics-bind-address`: `0` (off), `:9402` (all interfaces,
/// IPv6 and IPv4: `[::]:9402`, falling back to `0.0.0.0` where the node has
/// no IPv6), `host:port` with an IPv4 address, `[ipv6]:port`, or a host name
/// (resolved once, at start).
pub fn parse_bind_address(s: &str) -> Result<BindAddress, String> {
    parse_socket_address(s).map(BindAddress)
}

pub(super) fn parse_socket_address(s: &str) -> Result<Option<SocketAddr>, String> {
    use std::net::ToSocketAddrs;
    let s = s.trim();
    if s.is_empty() || s == "0" {
        return Ok(None);
    }
    let hint = "use 0 to disable, :9402, [::]:9402, or host:port such as 127.0.0.1:9402";
    if let Some(port) = s.strip_prefix(':') {
        let port: u16 = port
            .parse()
            .map_err(|_| format!("invalid address `{s}`: `{port}` is not a port; {hint}"))?;
        return Ok(Some(SocketAddr::from((
            std::net::Ipv6Addr::UNSPECIFIED,
            port,
        ))));
    }
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(Some(addr));
    }
    match s.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => s
            .to_socket_addrs()
            .map_err(|e| format!("invalid address `{s}`: cannot resolve `{host}`: {e}; {hint}"))?
            .next()
            .map(Some)
            .ok_or_else(|| format!("invalid address `{s}`: `{host}` has no address; {hint}")),
        _ => Err(format!("invalid address `{s}`: {hint}")),
    }
}

/// Parses a duration in Go's syntax (`60s`, `1m30s`, `2h`), as the Go
/// driver's flags do.
pub fn parse_duration_flag(s: &str) -> Result<Duration, String> {
    let d = cmcsi_attrs::parse_go_duration(s).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err(format!("`{s}` must be longer than zero"));
    }
    Ok(d)
}

/// A Go duration flag where `0` means "off".
pub fn parse_interval_flag(s: &str) -> Result<Duration, String> {
    if s.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    cmcsi_attrs::parse_go_duration(s).map_err(|e| e.to_string())
}

/// A Go duration flag that may be `0` (`--gate-backoff-cap`).
pub(super) fn parse_any_duration(s: &str) -> Result<Duration, String> {
    parse_interval_flag(s)
}

pub(super) fn parse_node_id(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("the node id must not be empty: pass the node's name \
                    (in a DaemonSet: the spec.nodeName field reference)"
            .to_string());
    }
    Ok(s.to_string())
}

pub(super) fn parse_min_issuance_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration_flag(s)?;
    if d < Duration::from_secs(1) {
        return Err(format!(
            "--min-issuance-interval must be at least 1s (got {s}): a shorter floor lets one \
             volume create requests in a tight loop"
        ));
    }
    Ok(d)
}

pub(super) fn parse_renewal_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && (0.01..=10_000.0).contains(&r) => Ok(r),
        _ => Err(format!(
            "--max-renewals-per-second must be a number from 0.01 to 10000 (got {s})"
        )),
    }
}

/// Parses a size: bytes, or a number with `Ki`, `Mi` or `Gi` (Kubernetes'
/// binary suffixes), at least 1 MiB.
pub fn parse_size_flag(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, ""),
    };
    let mult: u64 = match unit {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        _ => {
            return Err(format!(
                "`{s}`: use bytes or a number with Ki, Mi or Gi, e.g. 32Mi"
            ));
        }
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}`: use bytes or a number with Ki, Mi or Gi, e.g. 32Mi"))?;
    let bytes = n
        .checked_mul(mult)
        .ok_or_else(|| format!("`{s}` is too large"))?;
    if bytes < 1 << 20 {
        return Err(format!("`{s}` is below the smallest tmpfs size of 1Mi"));
    }
    Ok(bytes)
}

/// `--request-timeout`: kubectl takes `30s`, `1m` or a bare number of seconds.
pub(super) fn parse_request_timeout(s: &str) -> Result<Duration, String> {
    if let Ok(n) = s.trim().parse::<u64>() {
        return Ok(Duration::from_secs(n));
    }
    parse_interval_flag(s)
}
