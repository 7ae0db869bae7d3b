//! Fuzzes `Metadata::from_json` with arbitrary bytes (a `metadata.json` a
//! crash, a full disk or another driver left behind): it must never panic,
//! and accepted metadata must survive a write and re-read unchanged.
//!
//! Run with `cargo xtask reliability --fuzz-only` from the repository root.

#![no_main]

use cmcsi_store::Metadata;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Metadata::from_json(data) {
        Ok(meta) => {
            // Debug output must not panic (it redacts secrets).
            let _ = format!("{meta:?}");
            // Times outside what RFC 3339 can express may be refused on
            // write; whatever is written must read back the same.
            if let Ok(json) = meta.to_json() {
                let again = Metadata::from_json(&json).expect("re-reading what we wrote");
                assert_eq!(again, meta, "round trip");
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
