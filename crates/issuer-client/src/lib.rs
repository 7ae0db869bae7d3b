//! # cmcsi-issuer-client: the cert-manager CertificateRequest client
//!
//! What it is: everything the CSI driver says to the cluster. It creates
//! cert-manager.io/v1 [`CertificateRequest`]s for a node's volumes, awaits
//! their outcome through **one node-wide watch** (kube-runtime's watcher over
//! requests labelled with this node's hash: an initial list, then a watch; no
//! GET or LIST per request, no polling), finds a volume's newest request to
//! resume it, and deletes old ones. Requests carry the same labels as the Go
//! driver's (`csi.cert-manager.io/node-id-hash`, `.../volume-id-hash`, see
//! [`label_hash`]), so nodes running either driver clean up each other's,
//! plus the full volume id in an annotation ([`ANNOTATION_VOLUME_ID`]) so a
//! hash collision never touches another volume's request.
//!
//! What it is not: it knows nothing of files, keys or CSI; it never decides
//! when to issue or how often to retry (errors say whether a retry may help:
//! [`IssueError::is_retryable`]).
//!
//! Where to start: [`client_from_config`] builds a rate-limited
//! [`ApiConnection`] (kubeconfig, `KUBECONFIG` or in-cluster; http or https;
//! token or client-certificate credentials). [`IssuerClient::new`] starts the
//! watch. Then [`IssuerClient::submit`] and [`IssuerClient::await_outcome`];
//! [`IssuerClient::latest_for_volume`] and [`IssuerClient::cleanup`] for
//! resume and clean-up. In token-request mode pass the Pod's
//! [`SecretToken`] (parsed from the volume context) to `submit`: the request
//! is created as the Pod's ServiceAccount, over the same server and TLS
//! settings; deletes and the watch keep the driver's credentials.
//!
//! ## Kubernetes version: your binary picks it
//!
//! This crate talks to the API server through `kube` and `k8s-openapi`, and
//! like every library built on `k8s-openapi` it enables none of that crate's
//! version features: only one may be active in a build, and the choice
//! belongs to the final program. The binary that uses this crate adds, next
//! to it, a dependency on the same `k8s-openapi` with the version feature of
//! the oldest API server it supports:
//!
//! ```toml
//! [dependencies]
//! cmcsi-issuer-client = "0.2"
//! k8s-openapi = { version = "0.29", default-features = false, features = ["v1_33"] }
//! ```
//!
//! Without it the build stops in `k8s-openapi`'s build script ("None of the
//! v1_* features are enabled"). A library that builds on this one does the
//! same in its `[dev-dependencies]` only, or sets
//! `K8S_OPENAPI_ENABLED_VERSION=1.33` for `cargo check` and `cargo doc`.
//! Nothing here depends on a particular version's API: the CertificateRequest
//! type is cert-manager's, and the Pod, Event and token types have been
//! stable for many releases. The CSI driver picks `v1_33`.
//!
//! `examples/request_certificate.rs` is a whole program: a key and a CSR,
//! one request, the chain written to files.
//!
//! ```no_run
//! use std::time::Duration;
//! use cmcsi_issuer_client::{
//!     client_from_config, IssueError, IssuerClient, IssuerRef, NewRequest, PodRef,
//! };
//!
//! # async fn example(csr_pem: Vec<u8>) -> Result<(), Box<dyn std::error::Error>> {
//! // 0 qps / 0 burst: the defaults (50 / 100).
//! let connection = client_from_config(None, 0.0, 0).await?;
//! let issuer = IssuerClient::new(connection, "node-a");
//! issuer.wait_synced(Duration::from_secs(30)).await?;
//!
//! let volume_id = "csi-0123456789abcdef";
//! // Resume a pending request (if we still hold its key), else ask anew.
//! if let Some(previous) = issuer.latest_for_volume(volume_id) {
//!     println!("newest request {} is {:?}", previous.key, previous.phase);
//! }
//! let submitted = issuer
//!     .submit(
//!         NewRequest {
//!             namespace: "default".into(),
//!             csr_pem,
//!             issuer_ref: IssuerRef { name: "ca-issuer".into(), kind: Some("Issuer".into()), group: None },
//!             duration: Some(Duration::from_secs(720 * 3600)),
//!             usages: vec!["digital signature".into(), "key encipherment".into()],
//!             volume_id: volume_id.into(),
//!             pod: PodRef { name: "my-app-0".into(), uid: "4f0c...".into() },
//!             ..Default::default()
//!         },
//!         None,
//!     )
//!     .await?;
//! match issuer.await_outcome(&submitted, Duration::from_secs(50)).await {
//!     Ok(issued) => println!("chain {} bytes, CA {} bytes", issued.certificate_pem.len(), issued.ca_pem.len()),
//!     Err(e @ IssueError::Denied { .. }) => eprintln!("{e}"),
//!     Err(e) => return Err(e.into()),
//! }
//! // Keep only the newest request of the volume.
//! issuer.cleanup(volume_id, 1).await?;
//! # Ok(())
//! # }
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod cache;
mod client;
mod connection;
mod error;
mod events;
mod hash;
mod pods;
mod ratelimit;
mod relist;
mod state;
mod token;
mod trust;
mod types;
mod watch_backoff;

pub use cache::{
    IgnoredRequests, MAX_REFUSAL_NAMESPACES, ManagedVolume, OTHER_NAMESPACES, WatchHealth,
};
pub use client::{
    DEFAULT_MAX_WATCHED_REQUESTS, DEFAULT_MAX_WATCHED_REQUESTS_PER_NAMESPACE,
    DEFAULT_MAX_WATCHED_REQUESTS_PER_VOLUME, Issued, IssuerClient, IssuerOptions, NewRequest,
    PodRef, RequestKey, Submitted, generate_name,
};
pub use connection::{
    ApiCall, ApiConnection, ApiObserver, ConnectionOverrides, InsecureTransport,
    MAX_TOKEN_FILE_BYTES, client_from_config, client_from_config_with, read_token_file,
};
pub use error::{Cause, ConfigError, IssueError};
pub use events::{EventRecorder, MAX_NOTE_BYTES, PodEvent, PodObject, Severity};
pub use hash::label_hash;
pub use pods::{
    DEFAULT_MAX_POD_ANNOTATION_BYTES, DEFAULT_MAX_WATCHED_PODS, PodFacts, PodWatch, PodWatchOptions,
};
pub use ratelimit::{DEFAULT_BURST, DEFAULT_QPS, RateLimit, RateLimited};
pub use relist::{DEFAULT_LIST_PAGE_SIZE, ListStrategy};
/// The token type of [`ConnectionOverrides::token`].
pub use secrecy::SecretString;
pub use state::{Phase, RequestState};
pub use token::{SERVICE_ACCOUNT_TOKENS_KEY, SecretToken, TokenError};
pub use trust::{
    CLUSTER_TRUST_BUNDLE_VERSIONS, DEFAULT_CONFIGMAP_LABEL, DEFAULT_MAX_TRUST_BYTES,
    DEFAULT_MAX_TRUST_OBJECTS, Notify, TrustError, TrustOptions, TrustWatch,
};
pub use types::{
    CertificateRequest, CertificateRequestCondition, CertificateRequestSpec,
    CertificateRequestStatus, IssuerRef, go_duration,
};

/// Label holding [`label_hash`] of the node id (the watch selects on it).
pub const LABEL_NODE_ID_HASH: &str = "csi.cert-manager.io/node-id-hash";
/// Label holding [`label_hash`] of the volume id.
pub const LABEL_VOLUME_ID_HASH: &str = "csi.cert-manager.io/volume-id-hash";
/// Annotation holding the full volume id (the label is only a 32-bit hash).
pub const ANNOTATION_VOLUME_ID: &str = "csi.cert-manager.io/volume-id";
