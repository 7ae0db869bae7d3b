//! # cmcsi-store: the node data root
//!
//! This crate will own the driver's data root on the node: the tmpfs, one
//! directory per volume, crash-safe `metadata.json`, file sets written in one
//! atomic swap (the kubelet's AtomicWriter layout), and listing for recovery.
//!
//! It knows nothing of Kubernetes, crypto or CSI.
