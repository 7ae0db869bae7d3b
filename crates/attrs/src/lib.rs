//! # cmcsi-attrs: volume attributes to a certificate spec
//!
//! This crate will own the translation of a CSI volume context (the
//! `csi.cert-manager.io/*` attributes of a Pod's inline volume plus the
//! kubelet's `csi.storage.k8s.io/*` pod information) into a typed, validated
//! `CertificateSpec`: defaults, validation with every problem reported at
//! once, and `${POD_NAME}`-style templating.
//!
//! It is pure: no IO, no Kubernetes, no crypto.
