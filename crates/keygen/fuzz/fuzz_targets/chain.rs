//! Fuzzes the issued-chain parser, `ChainSummary::from_pem`, with arbitrary
//! bytes (what an issuer writes into `status.certificate`): it must never
//! panic, and an accepted chain must be self-consistent.
//!
//! Run with `cargo xtask reliability --fuzz-only` from the repository root.

#![no_main]

use cmcsi_keygen::ChainSummary;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match ChainSummary::from_pem(data) {
        Ok(summary) => {
            assert!(
                !summary.certificates_der.is_empty(),
                "an accepted chain has a leaf"
            );
            assert!(!summary.serial_hex.is_empty());
            assert!(summary.serial_hex.bytes().all(|b| b.is_ascii_hexdigit()));
            assert_eq!(summary.intermediates() + 1, summary.certificates_der.len());
        }
        Err(e) => {
            // Rendering the message must not panic either.
            let _ = e.to_string();
        }
    }
});
