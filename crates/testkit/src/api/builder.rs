//! [`Builder`]: the options of a fake API server, and starting it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::{DEFAULT_TOKEN, DEFAULT_USERNAME, Error, FakeApi, Shared};
use crate::ca::TestCa;
use crate::script::{IssuerState, Script};
use crate::server;
use crate::state::{State, UserInfo};
use crate::tls::tls_acceptor;

/// Options for [`FakeApi::builder`].
#[derive(Debug, Clone)]
pub struct Builder {
    port: u16,
    history_limit: usize,
    default_script: Option<Script>,
    scripts: HashMap<String, Script>,
    bookmark_interval: Option<Duration>,
    honour_watch_timeouts: bool,
    tls: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            port: 0,
            history_limit: 10_000,
            default_script: None,
            scripts: HashMap::new(),
            bookmark_interval: None,
            honour_watch_timeouts: true,
            tls: false,
        }
    }
}

impl Builder {
    /// Listen on this port of 127.0.0.1 (default 0: any free port).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// How many events the server keeps for watches that resume from an older
    /// resourceVersion (default 10 000); older ones get `410 Gone`.
    pub fn watch_history_limit(mut self, n: usize) -> Self {
        self.history_limit = n;
        self
    }

    /// The script for issuer names without their own (default: none, so such
    /// requests stay pending as with real cert-manager).
    pub fn default_script(mut self, script: Script) -> Self {
        self.default_script = Some(script);
        self
    }

    /// The script for one issuer name.
    pub fn issuer(mut self, name: impl Into<String>, script: Script) -> Self {
        self.scripts.insert(name.into(), script);
        self
    }

    /// Send a BOOKMARK to watches that allow them this often (default: never;
    /// see [`FakeApi::send_bookmarks`]).
    pub fn bookmark_interval(mut self, every: Duration) -> Self {
        self.bookmark_interval = Some(every);
        self
    }

    /// Whether watches end after the client's `timeoutSeconds` (default
    /// true, as the API server does; kube's watcher asks for 290 s and then
    /// re-watches). Turn it off in paused-time tests that count watches,
    /// where virtual time can pass 290 s in an instant.
    pub fn honour_watch_timeouts(mut self, yes: bool) -> Self {
        self.honour_watch_timeouts = yes;
        self
    }

    /// Serve HTTPS, as a real API server does: the server certificate (for
    /// 127.0.0.1) is issued by the test CA ([`FakeApi::ca_pem`]), which
    /// [`FakeApi::kubeconfig`] names as `certificate-authority-data`. Client
    /// certificates from the same CA are accepted, their CN as the user name
    /// (see [`FakeApi::client_cert_kubeconfig`]).
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Binds the listener and starts serving. Must be called inside a tokio runtime.
    pub async fn start(self) -> Result<FakeApi, Error> {
        let ca = TestCa::new()?;
        let tls = if self.tls {
            Some(tls_acceptor(&ca)?)
        } else {
            None
        };
        let issuer = IssuerState {
            scripts: self.scripts,
            default: self.default_script,
            ..Default::default()
        };
        let tokens = HashMap::from([(DEFAULT_TOKEN.to_string(), UserInfo::new(DEFAULT_USERNAME))]);
        let shared = Arc::new(Shared::new(
            State::new(self.history_limit),
            issuer,
            ca,
            tokens,
            self.honour_watch_timeouts,
            tls,
        ));
        let listener = server::bind(SocketAddr::from(([127, 0, 0, 1], self.port)))?;
        let addr = listener.local_addr()?;
        let (ctl, ctl_rx) = mpsc::unbounded_channel();
        tokio::spawn(server::supervise(shared.clone(), listener, addr, ctl_rx));
        if let Some(every) = self.bookmark_interval {
            let weak = Arc::downgrade(&shared);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let Some(shared) = weak.upgrade() else { break };
                    shared.state().send_bookmarks();
                }
            });
        }
        Ok(FakeApi { shared, addr, ctl })
    }
}
