//! # cmcsi-driver: the cert-manager CSI node driver
//!
//! The CSI Identity and Node services, the issuance pipeline, mounts,
//! metrics, configuration and [`run`]-style entry point live here.
