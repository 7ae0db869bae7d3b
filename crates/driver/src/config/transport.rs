//! `--allow-non-loopback-endpoint` and `--allow-insecure-token-request`: the
//! two ways of exposing what the driver guards (the CSI service, the Pods'
//! tokens) over a connection without authentication or encryption, refused
//! unless the node's administrator asks for them; and the checks behind them.

use clap::{ArgAction, Args};

use super::Endpoint;

/// The opt-ins to insecure transports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TransportLimits {
    /// Listen for CSI on a `tcp://` address that is not loopback.
    pub allow_non_loopback_endpoint: bool,
    /// Send Pods' ServiceAccount tokens (`--use-token-request`) over plain
    /// `http://` or without checking the API server's certificate.
    pub allow_insecure_token_request: bool,
}

/// The flags of [`TransportLimits`].
#[derive(Debug, Clone, Args)]
pub struct TransportFlags {
    /// Accept a tcp:// --endpoint on an address that is not loopback (such as
    /// 0.0.0.0 or a node IP). The CSI service has no TLS and no authentication:
    /// whoever reaches it can mount any Pod's volume as the kubelet does. By
    /// default only loopback addresses (127.0.0.0/8, ::1) and Unix sockets.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value_t = false, default_missing_value = "true")]
    #[arg(help_heading = super::heading::NODE)]
    pub allow_non_loopback_endpoint: bool,

    /// Accept --use-token-request over a connection to the API server that is
    /// plain http:// or skips the server's certificate check
    /// (--insecure-skip-tls-verify, or insecure-skip-tls-verify in the
    /// kubeconfig): each Pod's ServiceAccount token would then be readable or
    /// replayable by whoever sits on the path. By default such a start is refused.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value_t = false, default_missing_value = "true")]
    #[arg(help_heading = super::heading::KUBERNETES)]
    pub allow_insecure_token_request: bool,
}

impl TransportFlags {
    /// The limits these flags set.
    pub fn into_limits(self) -> TransportLimits {
        TransportLimits {
            allow_non_loopback_endpoint: self.allow_non_loopback_endpoint,
            allow_insecure_token_request: self.allow_insecure_token_request,
        }
    }
}

/// Refuses a `tcp://` endpoint any of whose addresses is not loopback,
/// unless `allow`. A host name is resolved (as the listener will resolve it)
/// and every address it has must be loopback. Blocking (name resolution).
pub fn check_endpoint(endpoint: &Endpoint, allow: bool) -> Result<(), String> {
    use std::net::ToSocketAddrs;
    let Endpoint::Tcp(addr) = endpoint else {
        return Ok(());
    };
    if allow {
        return Ok(());
    }
    let resolved: Vec<std::net::SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| format!("--endpoint {endpoint}: cannot resolve `{addr}`: {e}"))?
        .collect();
    let exposed: Vec<String> = resolved
        .iter()
        .filter(|a| !a.ip().is_loopback())
        .map(|a| a.ip().to_string())
        .collect();
    if resolved.is_empty() || !exposed.is_empty() {
        return Err(format!(
            "--endpoint {endpoint} listens on {}, which is not a loopback address: the CSI \
             service has no TLS and no authentication, so anyone who reaches it could mount \
             any Pod's certificate and key; use a Unix socket (unix:///csi/csi.sock) or a \
             loopback address (tcp://127.0.0.1:PORT), or, if a private network guards the \
             port, pass --allow-non-loopback-endpoint",
            if exposed.is_empty() {
                "no address".to_string()
            } else {
                exposed.join(", ")
            }
        ));
    }
    Ok(())
}

/// Refuses token-request mode over `transport` (the API connection's
/// weakness, if any) unless `allow`.
pub(crate) fn check_token_transport(
    use_token_request: bool,
    transport: Option<cmcsi_issuer_client::InsecureTransport>,
    allow: bool,
) -> Result<(), String> {
    match transport {
        Some(why) if use_token_request && !allow => Err(format!(
            "--use-token-request sends each Pod's ServiceAccount token to the API server, \
             but the connection {why}: anyone on the path could read the tokens and act as \
             those Pods; use an https:// server whose certificate is checked (a CA in the \
             kubeconfig or --certificate-authority), or pass --allow-insecure-token-request \
             (for a test cluster only)"
        )),
        _ => Ok(()),
    }
}
