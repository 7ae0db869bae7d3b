//! # cmcsi-renewer: when to issue
//!
//! This crate will own the renewal schedule: one timer structure for every
//! managed volume, jittered due times, per-volume backoff and a concurrency cap
//! shared by first issuances and renewals, over a small `Issue` trait that the
//! driver implements.
//!
//! It knows nothing of what issuing means.
