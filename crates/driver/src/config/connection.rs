//! kubectl's connection flags (`--context`, `--server`, `--token`, `--as`,
//! ...), which the Go driver accepts through client-go, as
//! [`ConnectionOverrides`].

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args};
use cmcsi_issuer_client::{ConnectionOverrides, SecretString};

use super::parse::parse_request_timeout;

/// kubectl's connection flags.
#[derive(Debug, Clone, Args)]
pub struct ConnectionFlags {
    /// kubectl: the kubeconfig context to use.
    #[arg(long)]
    pub context: Option<String>,

    /// kubectl: the kubeconfig cluster to use.
    #[arg(long)]
    pub cluster: Option<String>,

    /// kubectl: the kubeconfig user to use.
    #[arg(long)]
    pub user: Option<String>,

    /// kubectl: the API server's address (overrides the kubeconfig's or in-cluster one).
    #[arg(long, short = 's')]
    pub server: Option<String>,

    /// kubectl: a bearer token for the API server (never logged; prefer a kubeconfig
    /// or --token-file, since a flag's value shows in the process list).
    #[arg(long, value_parser = parse_secret)]
    pub token: Option<SecretString>,

    /// A file holding the bearer token for the API server (surrounding whitespace
    /// is trimmed; at most 64 KiB). Read once at start (restart the driver after
    /// rotating it); never logged. Not with --token.
    #[arg(long, conflicts_with = "token")]
    pub token_file: Option<PathBuf>,

    /// kubectl: a PEM file of CA certificates for the API server.
    #[arg(long)]
    pub certificate_authority: Option<PathBuf>,

    /// kubectl: a PEM client certificate file.
    #[arg(long)]
    pub client_certificate: Option<PathBuf>,

    /// kubectl: the client certificate's PEM key file.
    #[arg(long)]
    pub client_key: Option<PathBuf>,

    /// kubectl: do not check the API server's certificate (insecure).
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value_t = false, default_missing_value = "true")]
    pub insecure_skip_tls_verify: bool,

    /// kubectl: the name to check the API server's certificate for.
    #[arg(long)]
    pub tls_server_name: Option<String>,

    /// kubectl: the user to impersonate.
    #[arg(long = "as")]
    pub as_user: Option<String>,

    /// kubectl: a group to impersonate (repeatable).
    #[arg(long = "as-group")]
    pub as_group: Vec<String>,

    /// kubectl: the uid to impersonate.
    #[arg(long = "as-uid")]
    pub as_uid: Option<String>,

    /// kubectl: the timeout of each API request (Go duration, or a number of
    /// seconds; 0 = none, the default). Watches are renewed by the driver itself.
    #[arg(long, default_value = "0", value_parser = parse_request_timeout)]
    pub request_timeout: Duration,
}

impl ConnectionFlags {
    /// The connection overrides these flags describe.
    pub fn into_overrides(self) -> ConnectionOverrides {
        let mut c = ConnectionOverrides::default();
        c.context = self.context;
        c.cluster = self.cluster;
        c.user = self.user;
        c.server = self.server;
        c.token = self.token;
        c.token_file = self.token_file;
        c.certificate_authority = self.certificate_authority;
        c.client_certificate = self.client_certificate;
        c.client_key = self.client_key;
        c.insecure_skip_tls_verify = self.insecure_skip_tls_verify;
        c.tls_server_name = self.tls_server_name;
        c.impersonate = self.as_user;
        c.impersonate_groups = self.as_group;
        c.impersonate_uid = self.as_uid;
        c.request_timeout = (!self.request_timeout.is_zero()).then_some(self.request_timeout);
        c
    }
}

/// `--token`: kept as a secret from the start, so no `Debug` shows it.
fn parse_secret(s: &str) -> Result<SecretString, String> {
    Ok(SecretString::from(s.to_owned()))
}
