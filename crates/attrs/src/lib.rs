//! # cmcsi-attrs: volume attributes to a certificate spec
//!
//! A Pod asks the cert-manager CSI driver for a certificate through the
//! `volumeAttributes` of an inline CSI volume (`csi.cert-manager.io/issuer-name`,
//! `csi.cert-manager.io/dns-names`, ...). The kubelet hands them to the driver
//! as the volume context, together with `csi.storage.k8s.io/*` facts about the
//! Pod. This crate turns that map into a typed, validated [`CertificateSpec`]:
//! defaults applied, `${POD_NAME}`-style variables expanded, and every problem
//! reported at once in an [`AttributeErrors`] a person can act on.
//!
//! It is **not** the driver: no IO, no Kubernetes client, no key generation.
//! It depends only on `thiserror`, `strsim` and `zeroize`, so other tools (admission
//! webhooks, linters for Pod specs) can use it too.
//!
//! **Where to start:** [`parse`] (the original documentation's defaults) or
//! [`parse_with`] and [`ParseOptions::go_driver`] for volumes the Go driver
//! wrote; [`parse_with_secrets`] when keystore passwords come from the
//! volume's `nodePublishSecretRef` Secret (`NodePublishVolumeRequest.secrets`).
//! [`CertificateSpec::to_volume_context`] renders a spec back;
//! [`format_go_duration`] gives the CertificateRequest's `spec.duration`.
//! The attribute keys are in [`keys`], the size caps in [`limits`].
//!
//! ## Example
//!
//! ```
//! use std::collections::BTreeMap;
//! use std::time::Duration;
//! use cmcsi_attrs::{keys, parse, format_go_duration, KeyAlgorithm, KeyUsage, Subject};
//!
//! let context: BTreeMap<String, String> = [
//!     ("csi.cert-manager.io/issuer-name", "ca-issuer"),
//!     ("csi.cert-manager.io/issuer-kind", "ClusterIssuer"),
//!     ("csi.cert-manager.io/dns-names", "${POD_NAME}.${POD_NAMESPACE}.svc.cluster.local"),
//!     ("csi.cert-manager.io/common-name", "${POD_NAME}"),
//!     ("csi.cert-manager.io/key-usages", "server auth,client auth"),
//!     ("csi.cert-manager.io/key-algorithm", "ECDSA"),
//!     ("csi.cert-manager.io/duration", "24h"),
//!     ("csi.cert-manager.io/certificate-file", "tls/cert.pem"),
//!     ("example.com/team", "payments"),
//!     ("csi.storage.k8s.io/pod.name", "web-0"),
//!     ("csi.storage.k8s.io/pod.namespace", "shop"),
//!     ("csi.storage.k8s.io/ephemeral", "true"),
//! ]
//! .into_iter()
//! .map(|(k, v)| (k.to_owned(), v.to_owned()))
//! .collect();
//!
//! let spec = parse(&context).expect("valid attributes");
//! assert_eq!(spec.issuer.name, "ca-issuer");
//! assert_eq!(spec.issuer.kind, "ClusterIssuer");
//! assert_eq!(spec.issuer.group, "cert-manager.io"); // default
//! assert_eq!(spec.dns_names, ["web-0.shop.svc.cluster.local"]);
//! let Subject::Fields(subject) = &spec.subject else { unreachable!() };
//! assert_eq!(subject.common_name.as_deref(), Some("web-0"));
//! assert_eq!(spec.usages, [KeyUsage::ServerAuth, KeyUsage::ClientAuth]);
//! assert!(matches!(spec.key.algorithm, KeyAlgorithm::Ecdsa(_)));
//! assert_eq!(spec.duration, Duration::from_secs(24 * 3600));
//! assert_eq!(format_go_duration(spec.duration), "24h0m0s");
//! assert_eq!(spec.files.certificate, "tls/cert.pem");
//! assert_eq!(spec.files.private_key, "key.pem"); // default
//! assert_eq!(spec.annotations["example.com/team"], "payments");
//!
//! // The spec renders back to a context that parses to the same spec.
//! assert_eq!(parse(&spec.to_volume_context()).unwrap(), spec);
//!
//! // Every problem at once, each naming the attribute and what is accepted.
//! let bad = [
//!     ("csi.cert-manager.io/dns-names", "web.example.com"),
//!     ("csi.cert-manager.io/duration", "30d"),
//!     ("csi.cert-manager.io/isuer-name", "ca-issuer"),
//! ];
//! let errors = parse(bad).unwrap_err();
//! assert_eq!(errors.len(), 3);
//! let message = errors.to_string();
//! assert!(message.contains("csi.cert-manager.io/issuer-name is required"));
//! assert!(message.contains(r#"csi.cert-manager.io/duration="30d": not a Go duration: unknown unit "d""#));
//! assert!(message.contains("did you mean csi.cert-manager.io/issuer-name?"));
//! assert!(errors.mentions(keys::DURATION));
//! ```
//!
//! ## Differences from the Go driver
//!
//! Same attribute names and meanings; the original documentation's defaults
//! (`crt.pem`, `key.pem`, `ca.pem`, `720h`) unless [`ParseOptions::go_driver`].
//! Stricter where the Go driver silently did something surprising: unknown
//! `csi.cert-manager.io/*` keys, zero or negative durations, a `renew-before`
//! not shorter than the duration, variables without pod information, malformed
//! DNS names, URIs, country codes and subject strings are errors. More
//! permissive where it costs nothing: booleans and usage names in any case,
//! subdirectories in file names, `$$` for a literal `$`, empty list entries
//! ignored, and the original documentation's `disable-auto-renew`.

// Tests may unwrap; library code may not (the workspace lint stays on for it).
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod duration;
mod error;
pub mod keys;
pub mod limits;
mod list;
mod options;
mod parse;
mod spec;
mod subject;
mod template;
mod usage;
mod validate;

pub use duration::{DurationError, MAX_GO_DURATION, format_go_duration, parse_go_duration};
pub use error::{AttributeError, AttributeErrors};
pub use options::ParseOptions;
pub use parse::{Parsed, parse, parse_detailed, parse_with, parse_with_secrets};
pub use spec::{
    CertificateSpec, EcdsaCurve, Files, IssuerRef, Jks, KeyAlgorithm, KeyEncoding, KeySpec,
    LiteralSubject, Password, PasswordSource, Pkcs12, Pkcs12Profile, PodInfo, Subject,
    SubjectAttribute, SubjectFields, TrustBundle, TrustSource,
};
pub use subject::ATTRIBUTE_TYPES;
pub use template::{VARIABLES, uses_pod_ip};
pub use usage::{KeyUsage, UnknownKeyUsage};
