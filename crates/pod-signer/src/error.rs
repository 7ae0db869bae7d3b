//! Errors of the signer, each phrased for a person reading logs or
//! `kubectl describe`.

/// Why the signer could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignerError {
    /// A flag's value is wrong.
    #[error("{flag}: {problem}")]
    Config {
        /// The flag.
        flag: &'static str,
        /// What is wrong and what to change.
        problem: String,
    },
    /// The Kubernetes API configuration could not be loaded.
    #[error(transparent)]
    Connection(#[from] cmcsi_issuer_client::ConfigError),
    /// The API server serves neither `certificates.k8s.io/v1` nor `v1beta1`
    /// PodCertificateRequests.
    #[error(
        "the API server serves no PodCertificateRequests (certificates.k8s.io/v1, or v1beta1 with the \
         PodCertificateRequest feature gate and --runtime-config=certificates.k8s.io/v1beta1=true): {0}"
    )]
    NoPodCertificateApi(String),
    /// A call to the API failed in a way that ends the signer.
    #[error("Kubernetes API error while {action}: {detail}")]
    Api {
        /// What the signer was doing.
        action: String,
        /// What went wrong.
        detail: String,
    },
    /// This replica lost the leader Lease; it exits so that it restarts as a
    /// candidate (as client-go's leader election does).
    #[error("lost the leader Lease {namespace}/{name}: {detail}")]
    LostLease {
        /// The Lease's namespace.
        namespace: String,
        /// The Lease's name.
        name: String,
        /// Why.
        detail: String,
    },
    /// The metrics and health listener could not be bound.
    #[error("--metrics-bind-address {address}: {source}")]
    Listen {
        /// The address.
        address: String,
        /// The error.
        source: std::io::Error,
    },
}

/// Why one stub CSR is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CsrError {
    /// Larger than the API's limit.
    #[error("the stub CSR is {0} bytes, more than the API's limit of 10240")]
    TooLarge(usize),
    /// Not a PKCS#10 request.
    #[error("the stub CSR is not a PKCS#10 certificate request: {0}")]
    Malformed(String),
    /// The signature does not verify with the request's own key, so it proves
    /// no possession of the key.
    #[error(
        "the stub CSR's signature does not verify with its public key ({0}); the request proves no possession of the key"
    )]
    BadSignature(String),
    /// A key the signer does not issue for.
    #[error(
        "the key type {0} is not supported; use ECDSAP256 (or ECDSAP384, ECDSAP521, ED25519, RSA3072, RSA4096)"
    )]
    UnsupportedKeyType(String),
}
