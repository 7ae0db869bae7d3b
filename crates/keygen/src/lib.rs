//! # cmcsi-keygen: keys, CSRs and keystores
//!
//! This crate will own private key generation (RSA, ECDSA, Ed25519), PEM
//! encodings (PKCS#1, PKCS#8), PKCS#10 certificate signing requests, PKCS#12
//! keystores and a key pool that generates RSA keys ahead of demand.
//!
//! It knows nothing of Kubernetes or files.
