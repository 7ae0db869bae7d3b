//! # cmcsi-testkit: a fake cluster for tests
//!
//! Test support for the cert-manager CSI driver, where no real cluster runs:
//!
//! - [`FakeApi`]: a fake Kubernetes API server on 127.0.0.1 over real HTTP,
//!   so the real `kube` client and its HTTP stack are exercised. It serves
//!   cert-manager.io/v1 `CertificateRequests` (create with `name` or
//!   `generateName`, get, list and watch with label selectors,
//!   resourceVersions, bookmarks and `410 Gone`, delete, status updates,
//!   404/409 `Status` errors), maps bearer tokens to identities recorded in
//!   `spec.username`, counts every request by verb ([`FakeApi::counts`]),
//!   writes kubeconfigs, and injects faults (5xx, 429, dropped watches, down
//!   for a while). It also records `events.k8s.io/v1` Events (POST, and the
//!   merge PATCH kube's event recorder sends for a repeat) for tests to read
//!   ([`FakeApi::events`], [`FakeApi::events_regarding`],
//!   [`FakeApi::event_writes`]); those writes are not in the counts and
//!   never get injected faults.
//! - A test issuer inside the same process that approves or denies and
//!   signs requests with an in-memory CA ([`TestCa`]), scripted per issuer
//!   name with a [`Script`].
//! - [`csi_client`] and [`identity_client`]: CSI gRPC clients over a unix socket.
//! - [`in_mount_namespace!`]: runs a test's body in a private mount
//!   namespace (re-executing the test binary for exactly that test under
//!   `unshare`), so mounts never reach the machine; [`mount_ns`] has the
//!   same for tools that re-execute themselves.
//! - A standalone server for demos: `cargo run -p cmcsi-testkit -- serve
//!   --kubeconfig-out PATH`.
//!
//! - Core v1 Pods for the driver's node-scoped Pod watch (get, list and watch
//!   with `fieldSelector=spec.nodeName=...`), set up by tests with
//!   [`FakeApi::put_pod`], [`FakeApi::set_pod_ips`],
//!   [`FakeApi::set_pod_condition`] and [`FakeApi::set_pod_annotation`].
//!
//! - `certificates.k8s.io` `PodCertificateRequest`s (v1 and v1beta1, with a
//!   `/status` subresource validated as the API server validates it: immutable
//!   once decided, chain at most 100 KiB, `notBefore`/`notAfter` the leaf's,
//!   lifetime within `maxExpirationSeconds`, leaf for the stub CSR's key) and
//!   `ClusterTrustBundle`s (v1 and v1beta1, name prefixed by the signer name),
//!   and `coordination.k8s.io/v1` `Lease`s: get, list and watch (label and
//!   field selectors), create, update, merge patch, delete
//!   ([`FakeApi::set_certificates_versions`], [`FakeApi::pod_certificate_requests`],
//!   [`FakeApi::cluster_trust_bundles`], [`FakeApi::wait_for_objects`],
//!   [`FakeApi::rotate_issuer_ca`]). `Impersonate-User` and `Impersonate-Group`
//!   headers are honoured (every caller may impersonate).
//!
//! It is not a Kubernetes API server: only the kinds above, recorded Events and
//! read-only Pods exist, there is
//! no RBAC, admission, garbage collection or protobuf. It serves plain HTTP,
//! or HTTPS with [`Builder::tls`] (tokens and client certificates).
//!
//! Start at [`FakeApi::start`] (or [`FakeApi::builder`]), then
//! [`FakeApi::client`] for a `kube::Client` pointing at it.
//!
//! ```no_run
//! use cmcsi_testkit::{FakeApi, Script, Verb};
//! use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
//! use std::time::Duration;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let api = FakeApi::builder().issuer("ca", Script::Sign).start().await?;
//! let client = api.client().await?;
//! let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("cert-manager.io", "v1", "CertificateRequest"));
//! let crs: Api<DynamicObject> = Api::namespaced_with(client, "default", &ar);
//! let csr_pem = "-----BEGIN CERTIFICATE REQUEST-----\n...";
//! let obj: DynamicObject = serde_json::from_value(serde_json::json!({
//!     "apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
//!     "metadata": {"generateName": "csi-"},
//!     "spec": {
//!         "request": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, csr_pem),
//!         "issuerRef": {"name": "ca"},
//!     },
//! }))?;
//! let created = crs.create(&PostParams::default(), &obj).await?;
//! let name = created.metadata.name.clone().unwrap_or_default();
//! let issued = api
//!     .wait_for_request("default", Duration::from_secs(10), |o| {
//!         o["metadata"]["name"] == name.as_str() && o["status"]["certificate"].is_string()
//!     })
//!     .await?;
//! assert_eq!(api.counts().verb(Verb::Create), 1);
//! # let _ = issued;
//! api.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod api;
pub mod ca;
mod csi;
mod history;
mod issuer;
pub mod kubelet;
pub mod mount_ns;
mod objects;
mod page;
mod patch;
mod pods;
mod script;
pub mod selector;
mod server;
mod shared;
mod state;
mod tls;
mod types;

pub use api::{
    Builder, Counts, DEFAULT_TOKEN, DEFAULT_USERNAME, Error, FakeApi, Fault, Verb, kubeconfig_json,
};
pub use ca::{CaError, SignParams, TestCa};
pub use csi::{csi_channel, csi_client, identity_client};
pub use script::Script;
pub use state::UserInfo;
