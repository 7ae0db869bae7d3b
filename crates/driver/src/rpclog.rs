//! One log line per RPC: method, volume id, outcome and duration.
//!
//! Request bodies are never logged: `secrets` and the
//! `csi.storage.k8s.io/serviceAccount.tokens` attribute must not reach a log.

use std::time::Instant;

use tonic::Status;

/// Times one RPC and logs its outcome when finished.
pub(crate) struct RpcLog {
    method: &'static str,
    volume_id: String,
    pod: String,
    namespace: String,
    started: Instant,
    quiet: bool,
}

impl RpcLog {
    /// Starts timing an RPC that is logged at `info` level.
    pub(crate) fn start(method: &'static str, volume_id: &str) -> Self {
        RpcLog {
            method,
            volume_id: volume_id.to_string(),
            pod: String::new(),
            namespace: String::new(),
            started: Instant::now(),
            quiet: false,
        }
    }

    /// Adds the Pod (from the kubelet's pod info) to the log line.
    pub(crate) fn pod(mut self, namespace: Option<&String>, name: Option<&String>) -> Self {
        self.namespace = namespace.cloned().unwrap_or_default();
        self.pod = name.cloned().unwrap_or_default();
        self
    }

    /// Starts timing an RPC that succeeds at `debug` level (the liveness
    /// probe calls these every few seconds).
    pub(crate) fn quiet(method: &'static str, volume_id: &str) -> Self {
        RpcLog {
            quiet: true,
            ..Self::start(method, volume_id)
        }
    }

    /// Logs the outcome and passes it through.
    pub(crate) fn finish<T>(self, result: Result<T, Status>) -> Result<T, Status> {
        let ms = self.started.elapsed().as_secs_f64() * 1000.0;
        let (method, volume) = (self.method, self.volume_id.as_str());
        let (pod, namespace) = (self.pod.as_str(), self.namespace.as_str());
        match &result {
            Ok(_) if self.quiet => {
                tracing::debug!(method, volume, outcome = "OK", duration_ms = ms, "rpc")
            }
            Ok(_) => tracing::info!(
                method,
                volume,
                pod,
                namespace,
                outcome = "OK",
                duration_ms = ms,
                "rpc"
            ),
            Err(s) if s.code() == tonic::Code::Unimplemented => tracing::debug!(
                method,
                volume,
                outcome = ?s.code(),
                duration_ms = ms,
                "rpc"
            ),
            Err(s) => tracing::warn!(
                method,
                volume,
                pod,
                namespace,
                outcome = ?s.code(),
                error = s.message(),
                duration_ms = ms,
                "rpc"
            ),
        }
        result
    }
}
