//! Fuzzes `parse` with arbitrary volume contexts: it must never panic, and an
//! accepted spec must render back to a context that parses to the same spec.
//!
//! Run with `cargo +nightly fuzz run parse` from `crates/attrs`.

#![no_main]

use std::collections::BTreeMap;

use cmcsi_attrs::{ParseOptions, parse_with};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (bool, bool, BTreeMap<String, String>)| {
    let (go_defaults, seed, mut context) = input;
    if seed {
        // Reach the accepted path more often: a valid issuer and SAN unless
        // the input overrides them.
        for (key, value) in [
            ("csi.cert-manager.io/issuer-name", "ca-issuer"),
            ("csi.cert-manager.io/dns-names", "a.example.com"),
            ("csi.storage.k8s.io/pod.name", "web-0"),
            ("csi.storage.k8s.io/pod.namespace", "shop"),
        ] {
            context
                .entry(key.to_owned())
                .or_insert_with(|| value.to_owned());
        }
    }
    let options = if go_defaults {
        ParseOptions::go_driver()
    } else {
        ParseOptions::original()
    };
    match parse_with(&context, &options) {
        Ok(spec) => {
            let rendered = spec.to_volume_context();
            let again = parse_with(&rendered, &options);
            assert_eq!(again.as_ref(), Ok(&spec), "round trip of {rendered:?}");
        }
        Err(errors) => {
            // Rendering the message must not panic either.
            let _ = errors.to_string();
        }
    }
});
