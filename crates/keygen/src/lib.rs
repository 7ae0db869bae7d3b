//! # cmcsi-keygen: keys, CSRs and keystores
//!
//! The crypto of the cert-manager CSI driver, with no Kubernetes and no file IO:
//!
//! - [`PrivateKey`]: RSA 2048–8192, ECDSA P-256/P-384/P-521 and Ed25519 keys from the
//!   operating system's RNG (RustCrypto: `rsa` 0.10, `p384`/`p521`, `ed25519-dalek`; P-256
//!   through `ring`, about four times faster than `p256`, which still reads keys back); PEM
//!   out as PKCS#1 or PKCS#8 ([`PrivateKey::to_pem`]) and back in ([`PrivateKey::from_pem`]), refusing a key whose algorithm, curve or size differs from
//!   the requested [`KeySpec`] with [`Error::KeyMismatch`], which says what differs.
//! - [`build_csr`]: a PKCS#10 request (PEM) shaped like the one Go's `crypto/x509` makes,
//!   which is what cert-manager parses: subject from [`SubjectFields`] or a literal list of
//!   [`Rdn`]s, one subjectAltName extension with DNS, IP and URI names.
//! - [`ChainSummary`]: the issued chain's leaf parsed for the renewal schedule and the logs
//!   (serial, validity, SANs, subject, issuer) and [`ChainSummary::leaf_matches_key`];
//!   [`LeafValidity`]: the same checks, keeping only the leaf's validity and public key.
//! - [`pkcs12()`]: a PKCS#12 keystore, cert-manager's Modern2023 protection by default
//!   (AES-256-CBC, PBKDF2-HMAC-SHA256, SHA-256 MAC), readable by OpenSSL 3 without
//!   `-legacy`; cert-manager's [`Pkcs12Profile::LegacyDes`] (3DES) and
//!   [`Pkcs12Profile::LegacyRc2`] (RC2-40 certificates, 3DES key) for old Java; and
//!   [`pkcs12_truststore`] with the CA as trusted certificates.
//! - [`jks()`] and [`jks_truststore`]: Java KeyStores as cert-manager writes them (a
//!   private-key entry, alias `certificate` by default, and the CA as `ca`).
//! - [`credential_bundle`]: one PEM file with the PKCS#8 key, then the leaf and the chain,
//!   as Kubernetes' Pod certificate projection writes, so one `read()` is consistent.
//! - [`KeyPool`] (feature `pool`, on by default): keys generated ahead of demand on
//!   Tokio's blocking threads, so RSA generation is off the Pod's start path; counters in
//!   [`PoolStats`].
//!
//! What it is not: it knows nothing of volume attributes (the driver maps the `attrs`
//! crate's spec onto [`KeySpec`], [`KeyEncoding`] and [`CsrParams`]), files, Kubernetes or
//! certificate validation (it does not verify chains; cert-manager issued them).
//!
//! Where to start: [`PrivateKey::generate`] (or [`KeyPool::take`]), then [`build_csr`];
//! when the certificate comes back, [`ChainSummary::from_pem`] and, if asked for,
//! [`pkcs12()`].
//!
//! ## Example
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use cmcsi_keygen::{
//!     build_csr, ChainSummary, CsrParams, Error, KeyEncoding, KeySpec, Pkcs12Profile,
//!     PrivateKey, Subject, pkcs12,
//! };
//!
//! # fn main() -> Result<(), Error> {
//! let spec = KeySpec::EcdsaP256;
//! let key = PrivateKey::generate(&spec)?;
//! let key_pem = key.to_pem(spec.default_encoding())?; // Zeroizing<String>, PKCS#8 here
//! assert!(key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
//!
//! let csr_pem = build_csr(&key, &CsrParams {
//!     subject: Subject::common_name("app.example.com"),
//!     dns_names: vec!["app.example.com".into(), "app.default.svc".into()],
//!     ip_addresses: vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7))],
//!     uris: vec!["spiffe://cluster.local/ns/default/sa/app".into()],
//! })?;
//! assert!(csr_pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
//!
//! // reuse-private-key: the stored key is reused only if it still matches the spec.
//! let reused = PrivateKey::from_pem(&key_pem, &spec)?;
//! assert_eq!(reused.public_key_der()?, key.public_key_der()?);
//! match PrivateKey::from_pem(&key_pem, &KeySpec::RSA_2048) {
//!     Err(Error::KeyMismatch { expected, found }) => {
//!         assert_eq!((expected, found), (KeySpec::RSA_2048, KeySpec::EcdsaP256));
//!     }
//!     other => panic!("expected a mismatch, got {other:?}"),
//! }
//!
//! // When cert-manager has issued the certificate (status.certificate):
//! fn on_issued(key: &PrivateKey, chain_pem: &[u8]) -> Result<Vec<u8>, Error> {
//!     let summary = ChainSummary::from_pem(chain_pem)?;
//!     if !summary.leaf_matches_key(key) {
//!         return Err(Error::LeafKeyMismatch);
//!     }
//!     println!("issued serial {} valid until {:?}", summary.serial_hex, summary.not_after);
//!     pkcs12(key, chain_pem, "keystore password", Pkcs12Profile::Modern2023)
//! }
//! # let _ = on_issued;
//! # Ok(()) }
//! ```
//!
//! With a pool (feature `pool`, inside a Tokio runtime): see [`KeyPool`].
//!
//! ## Features
//!
//! - `pool` (default): [`KeyPool`], [`PoolConfig`], [`PoolStats`]; brings Tokio and `tracing`.
//!   A tool that only wants keys, CSRs and keystores turns it off and has no async
//!   runtime in its tree:
//!
//!   ```toml
//!   cmcsi-keygen = { version = "0.2", default-features = false }
//!   ```
//!
//! `examples/key_csr_pkcs12.rs` makes a key, a CSR and a PKCS#12 keystore without the
//! pool.
//!
//! ## Cost, measured
//!
//! On the project's 2-core development machine (shared with other builds, so noisy):
//! RSA-2048 generation takes about 75–150 ms in a test build (dependencies at
//! `opt-level = 3` through the workspace's profile overrides; without them it is seconds).
//! The criterion benchmark (`cargo bench -p cmcsi-keygen --bench keygen`, release build,
//! same machine) gave these medians:
//!
//! | key | generate | build and sign a CSR |
//! |---|---|---|
//! | RSA-2048 | 59 ms (53–65 ms) | 2.5 ms |
//! | RSA-4096 | 780 ms (700–920 ms) | 12 ms |
//! | ECDSA P-256 | 88 µs | 110 µs |
//! | ECDSA P-384 | 250 µs | 270 µs |
//! | ECDSA P-521 | 300 µs | 230 µs |
//! | Ed25519 | 17 µs | 25 µs |
//!
//! RSA generation time varies widely from key to key (it is a prime search), which is why
//! the [`KeyPool`] exists. ECDSA and Ed25519 keys take microseconds to a few milliseconds
//! and are not pooled by default. `aws-lc-rs` was not adopted: RustCrypto's speed leaves
//! the pool to absorb RSA's cost, and it keeps the build free of C and CMake.
//!
//! ## Secrets
//!
//! Every key type used here zeroizes its secret on drop, PEM output is
//! [`Zeroizing`], [`PrivateKey`]'s `Debug` is redacted and it is not `Clone`. Error messages
//! never carry key bytes or passwords. One known gap: the PKCS#12 writer (`p12-keystore`)
//! keeps a plain copy of the PKCS#8 key while it builds the keystore.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod bundle;
mod chain;
mod csr;
mod error;
mod jks;
mod key;
mod p256;
mod pkcs12;
#[cfg(feature = "pool")]
mod pool;
mod spec;
mod trust;

pub use bundle::credential_bundle;
pub use chain::{ChainSummary, LeafValidity};
pub use csr::{CsrParams, Rdn, Subject, SubjectFields, build_csr};
pub use error::{Error, Result};
pub use jks::{JKS_ALIAS, JKS_CA_ALIAS, MAX_KEYSTORE_PASSWORD_BYTES, jks, jks_truststore};
pub use key::PrivateKey;
pub use pkcs12::{PKCS12_ALIAS, Pkcs12Profile, pkcs12, pkcs12_truststore};
#[cfg(feature = "pool")]
pub use pool::{KeyPool, LARGE_RSA_BITS, PoolConfig, PoolStats};
pub use spec::{KeyEncoding, KeySpec, MAX_RSA_BITS, MIN_RSA_BITS};
pub use trust::{DEFAULT_MAX_TRUST_BUNDLE_BYTES, TrustBundle};
pub use zeroize::Zeroizing;
