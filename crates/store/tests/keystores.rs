//! Keystore files in the atomic file set, and the volume's private secrets file.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use cmcsi_store::{SECRETS_FILE, StoreError, VolumeSecrets};
use common::*;

/// Every output format is one more file of the set, so a renewal swaps them together
/// with key and certificate: the Pod sees all old or all new, and ..data names one set.
#[test]
fn keystores_and_bundle_swap_with_key_and_certificate() {
    let tmp = tempdir();
    let store = open_plain(tmp.path());
    let id = kubelet_id(40);
    new_volume(&store, &id);
    let data = store.data_dir(&id).unwrap();
    let names = [
        "tls.crt",
        "tls.key",
        "ca.crt",
        "keystore.p12",
        "truststore.p12",
        "keystore.jks",
        "truststore.jks",
        "bundle.pem",
    ];
    for round in ["one", "two"] {
        let pairs: Vec<(&str, String)> =
            names.iter().map(|n| (*n, format!("{n}:{round}"))).collect();
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(n, c)| (*n, c.as_str())).collect();
        assert!(store.write_files(&id, &set(&pairs), None).unwrap().changed);
        let target = std::fs::read_link(data.join("..data")).unwrap();
        for n in names {
            assert_eq!(
                std::fs::read_to_string(data.join(n)).unwrap(),
                format!("{n}:{round}"),
                "{n} after write {round}"
            );
            // Each visible name resolves through ..data into the one current set.
            assert_eq!(
                std::fs::read_link(data.join(n)).unwrap(),
                std::path::Path::new("..data").join(n)
            );
            assert!(data.join(&target).join(n).is_file());
        }
        assert_eq!(set_dirs(&data).len(), 1, "one set after write {round}");
    }
}

#[test]
fn secrets_file_is_private_atomic_and_survives_reopening() {
    let tmp = tempdir();
    let id = kubelet_id(41);
    {
        let store = open_plain(tmp.path());
        new_volume(&store, &id);
        assert!(store.read_secrets(&id).unwrap().is_empty(), "none yet");
        let mut s = VolumeSecrets::new();
        s.insert("jks-pass", "hunter2-jks")
            .insert("p12-pass", "hunter2-p12");
        store.write_secrets(&id, &s).unwrap();
        s.insert("jks-pass", "hunter3-jks");
        store.write_secrets(&id, &s).unwrap();
    }
    // A new store on the same root (a driver restart) reads them back.
    let store = open_plain(tmp.path());
    let s = store.read_secrets(&id).unwrap();
    assert_eq!(s.get("jks-pass"), Some("hunter3-jks"));
    assert_eq!(s.get("p12-pass"), Some("hunter2-p12"));

    let vol = store.volumes_dir().join(&id);
    let file = vol.join(SECRETS_FILE);
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.uid(), rustix::process::geteuid().as_raw());
    // Nowhere the Pod can read: not in data/, not in metadata.json; no temporary left.
    let data = store.data_dir(&id).unwrap();
    assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0);
    let metadata = std::fs::read_to_string(vol.join("metadata.json")).unwrap();
    assert!(!metadata.contains("hunter"), "{metadata}");
    let leftovers: Vec<String> = std::fs::read_dir(&vol)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(!format!("{s:?}").contains("hunter"));

    // An empty set removes the file; removing the volume removes everything.
    store.write_secrets(&id, &VolumeSecrets::new()).unwrap();
    assert!(!file.exists());
    store
        .write_secrets(&id, &[("k", "v")].into_iter().collect())
        .unwrap();
    assert!(store.remove_volume(&id).unwrap());
    assert!(!vol.exists());
}

#[test]
fn a_damaged_secrets_file_is_an_error_without_its_contents() {
    let tmp = tempdir();
    let store = open_plain(tmp.path());
    let id = kubelet_id(42);
    new_volume(&store, &id);
    store
        .write_private(
            &id,
            SECRETS_FILE,
            br#"{"format":"cmcsi/secrets/v1","data":{"k":"hunter2"#,
        )
        .unwrap();
    let err = store.read_secrets(&id).unwrap_err();
    assert!(matches!(err, StoreError::Secrets { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains(&id) && !text.contains("hunter2"), "{text}");
    assert!(matches!(
        store.read_secrets(&kubelet_id(99)),
        Err(StoreError::VolumeNotFound { .. })
    ));
}
