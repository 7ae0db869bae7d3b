//! # cmcsi-keygen: keys, CSRs and keystores
//!
//! TODO docs

mod chain;
mod csr;
mod error;
mod key;
mod pkcs12;
mod pool;
mod spec;

pub use chain::ChainSummary;
pub use csr::{CsrParams, Rdn, Subject, SubjectFields, build_csr};
pub use error::{Error, Result};
pub use key::PrivateKey;
pub use pkcs12::{PKCS12_ALIAS, Pkcs12Profile, pkcs12};
pub use pool::{KeyPool, PoolConfig, PoolStats};
pub use spec::{KeyEncoding, KeySpec, MAX_RSA_BITS, MIN_RSA_BITS};
pub use zeroize::Zeroizing;
