//! # cmcsi-testkit: test support
//!
//! This crate will own a fake Kubernetes API for cert-manager
//! CertificateRequests over real HTTP on 127.0.0.1, a scriptable test CA
//! issuer, and CSI client helpers for tests, the demo and benchmarks.
