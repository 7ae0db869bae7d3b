//! # cmcsi-issuer-client: the cert-manager CertificateRequest client
//!
//! This crate will own the typed `CertificateRequest` (cert-manager.io/v1),
//! creating requests, awaiting their outcome through one node-wide watch,
//! resuming pending requests and cleaning up old ones, and per-Pod token
//! clients for token-request mode.
//!
//! It knows nothing of files or CSI.
