//! The per-volume byte budget and the renewal reserve: one volume cannot
//! take more than its share of the data root, and new volumes cannot take the
//! room renewals of existing volumes need.
#![allow(clippy::unwrap_used)]

mod common;

use cmcsi_store::{Budget, FileSet, Metadata, StoreError, VolumeSecrets};
use common::{open_plain, tempdir};

const ID: &str = "csi-budget";

fn files(bytes: usize) -> FileSet {
    let mut f = FileSet::new();
    f.insert("tls.crt", vec![b'c'; bytes]);
    f.insert("tls.key", vec![b'k'; 100]);
    f
}

#[test]
fn a_volume_stays_within_its_budget() {
    let root = tempdir();
    let store = open_plain(root.path()).with_budget(Budget {
        volume_bytes: 64 * 1024,
        reserve_bytes: 0,
    });
    assert!(store.create_volume(&Metadata::new(ID, "/t"), None).unwrap());
    // Within: files, metadata and secrets together.
    store.write_files(ID, &files(40 * 1024), None).unwrap();
    // Over: refused before anything is written, naming the flag.
    let err = store.write_files(ID, &files(80 * 1024), None).unwrap_err();
    assert!(matches!(err, StoreError::OverBudget { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("--tmpfs-volume-budget") && text.contains(ID),
        "{text}"
    );
    let current = store.read_current_file(ID, "tls.crt").unwrap().unwrap();
    assert_eq!(current.len(), 40 * 1024, "the previous set stays");
    // Secrets count too, and never show in the error.
    let mut secrets = VolumeSecrets::new();
    secrets.insert("p", "s3cret-".repeat(10_000));
    let err = store.write_secrets(ID, &secrets).unwrap_err();
    assert!(matches!(err, StoreError::OverBudget { .. }), "{err}");
    assert!(!err.to_string().contains("s3cret"), "{err}");
}

#[test]
fn new_volumes_leave_the_renewal_reserve() {
    let root = tempdir();
    let plain = open_plain(root.path());
    let usage = plain.usage().unwrap();
    assert!(usage.size_bytes > 0 && usage.used_bytes <= usage.size_bytes);
    // A reserve of all but 1 MiB of what is free now.
    let reserve = usage.free_bytes().saturating_sub(1024 * 1024);
    let store = plain.with_budget(Budget {
        volume_bytes: 8 * 1024 * 1024,
        reserve_bytes: reserve,
    });
    assert!(store.create_volume(&Metadata::new(ID, "/t"), None).unwrap());
    // A first set that would eat into the reserve is refused ...
    let err = store
        .write_files(ID, &files(4 * 1024 * 1024), None)
        .unwrap_err();
    assert!(matches!(err, StoreError::Full { .. }), "{err}");
    assert!(err.to_string().contains("--tmpfs-renewal-reserve"), "{err}");
    // ... a small one fits, and its renewal may use the reserve.
    store.write_files(ID, &files(1024), None).unwrap();
    store
        .write_files(ID, &files(4 * 1024 * 1024), None)
        .unwrap();
    // With the reserve taken, new volumes are refused.
    let store = store.with_budget(Budget {
        volume_bytes: 8 * 1024 * 1024,
        reserve_bytes: u64::MAX,
    });
    let err = store
        .create_volume(&Metadata::new("csi-other", "/t"), None)
        .unwrap_err();
    assert!(matches!(err, StoreError::Full { .. }), "{err}");
}
