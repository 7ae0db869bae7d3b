//! Store behaviour that needs no mount privileges.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;
use std::time::{Duration, Instant, UNIX_EPOCH};

use cmcsi_store::{Metadata, MetadataFormat, Store, StoreError, StoreOptions, StoreView};
use common::*;

#[test]
fn fresh_root_is_created_with_private_modes() {
    let tmp = tempdir();
    let root = tmp.path().join("a/b/csi-data-dir");
    let store = open_plain(&root);
    assert_eq!(store.root(), root);
    assert_eq!(store.volumes_dir(), root.join("inmemfs"));
    assert_eq!(mode_of(&root.join("inmemfs")), 0o700);
    assert!(root.join(".cmcsi-store.lock").is_file());
    let rec = store.list().unwrap();
    assert!(rec.volumes.is_empty() && rec.set_aside.is_empty());
    let id = kubelet_id(1);
    assert_eq!(
        store.data_dir(&id).unwrap(),
        root.join("inmemfs").join(&id).join("data")
    );
}

#[test]
fn second_instance_is_refused_until_the_first_is_dropped() {
    let tmp = tempdir();
    let first = open_plain(tmp.path());
    let err = Store::open(
        tmp.path(),
        StoreOptions {
            mount_tmpfs: false,
            tmpfs_size: None,
        },
    )
    .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyRunning { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&tmp.path().display().to_string()), "{msg}");
    assert!(msg.contains("another"), "{msg}");
    drop(first);
    let _again = open_plain(tmp.path());
}

#[test]
fn store_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Store>();
    assert_send_sync::<StoreError>();
}

/// The read side is one type: what a `Store` writes reads back the same
/// through its own `view()` and through a `StoreView` opened beside it
/// (without the lock the store holds), and a view has no write method.
#[test]
fn a_store_and_a_view_opened_beside_it_read_through_one_type() {
    fn reads(v: &StoreView, id: &str) -> (Metadata, Option<Vec<u8>>, Vec<String>) {
        (
            v.read_metadata(id).unwrap(),
            v.read_private(id, "side").unwrap().map(|b| b.to_vec()),
            v.volume_ids().unwrap(),
        )
    }
    let tmp = tempdir();
    let store = open_plain(tmp.path());
    let id = kubelet_id(3);
    let m = new_volume(&store, &id);
    store.write_private(&id, "side", b"kept").unwrap();
    let beside = StoreView::open(tmp.path()).unwrap();
    let want = (m, Some(b"kept".to_vec()), vec![id.clone()]);
    assert_eq!(reads(store.view(), &id), want);
    assert_eq!(reads(&store, &id), want, "a &Store is a &StoreView");
    assert_eq!(reads(&beside, &id), want);
    assert!(matches!(
        beside.read_metadata("csi-missing"),
        Err(StoreError::VolumeNotFound { .. })
    ));
}

#[test]
fn metadata_round_trip_through_the_store() {
    let tmp = tempdir();
    let store = open_plain(tmp.path());
    let id = kubelet_id(7);
    let mut m = new_volume(&store, &id);
    assert!(
        !store.create_volume(&m, None).unwrap(),
        "second create is a no-op"
    );
    assert_eq!(store.read_metadata(&id).unwrap(), m);

    m.next_issuance_time = Some(UNIX_EPOCH + Duration::new(1_785_931_200, 123_456_789));
    m.volume_mount_group = Some("2000".into());
    m.volume_context.insert(
        "csi.storage.k8s.io/serviceAccount.tokens".into(),
        r#"{"":{"token":"tok"}}"#.into(),
    );
    store.write_metadata(&m).unwrap();
    let back = store.read_metadata(&id).unwrap();
    assert_eq!(back, m);
    assert_eq!(back.format, MetadataFormat::V1);
    assert!(!back.written_by_go());

    let path = tmp.path().join("inmemfs").join(&id).join("metadata.json");
    assert_eq!(mode_of(&path), 0o600);
    let raw: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(raw["nextIssuanceTime"], "2026-08-05T12:00:00.123456789Z");
    assert_eq!(raw["format"], "cmcsi/v1");
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        names.iter().collect::<BTreeSet<_>>(),
        ["data", "metadata.json"]
            .iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<_>>()
            .iter()
            .collect()
    );
}

#[test]
fn file_set_swap_nested_names_stale_links_and_unchanged_payload() {
    let tmp = tempdir();
    let store = open_plain(tmp.path());
    let id = kubelet_id(2);
    new_volume(&store, &id);
    let data = store.data_dir(&id).unwrap();

    let one = set(&[("crt.pem", "c1"), ("key.pem", "k1"), ("bar/foo.crt", "f1")]);
    assert!(store.write_files(&id, &one, None).unwrap().changed);
    assert_eq!(std::fs::read_to_string(data.join("crt.pem")).unwrap(), "c1");
    assert_eq!(
        std::fs::read_to_string(data.join("bar/foo.crt")).unwrap(),
        "f1"
    );
    assert_eq!(
        std::fs::read_link(data.join("bar")).unwrap(),
        Path::new("..data/bar")
    );
    assert_eq!(
        std::fs::read_link(data.join("crt.pem")).unwrap(),
        Path::new("..data/crt.pem")
    );
    let first_sets = set_dirs(&data);
    assert_eq!(first_sets.len(), 1);

    // Same payload: no swap.
    assert!(!store.write_files(&id, &one, None).unwrap().changed);
    assert_eq!(set_dirs(&data), first_sets);

    // New payload: bar/ and key.pem go away, baz.pem appears.
    let two = set(&[("crt.pem", "c2"), ("baz.pem", "z2")]);
    assert!(store.write_files(&id, &two, None).unwrap().changed);
    let second_sets = set_dirs(&data);
    assert_eq!(second_sets.len(), 1, "old set removed");
    assert_ne!(second_sets, first_sets);
    assert_eq!(std::fs::read_to_string(data.join("crt.pem")).unwrap(), "c2");
    assert_eq!(std::fs::read_to_string(data.join("baz.pem")).unwrap(), "z2");
    assert!(
        std::fs::symlink_metadata(data.join("bar")).is_err(),
        "stale link removed"
    );
    assert!(
        std::fs::symlink_metadata(data.join("key.pem")).is_err(),
        "stale link removed"
    );
    let visible: BTreeSet<String> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with(".."))
        .collect();
    assert_eq!(visible, ["baz.pem", "crt.pem"].map(String::from).into());

    assert_eq!(
        &**store.read_current_file(&id, "crt.pem").unwrap().unwrap(),
        b"c2"
    );
    assert!(store.read_current_file(&id, "key.pem").unwrap().is_none());
    let other = kubelet_id(3);
    new_volume(&store, &other);
    assert!(
        store
            .read_current_file(&other, "crt.pem")
            .unwrap()
            .is_none(),
        "no set yet"
    );
}

#[test]
fn names_reserved_or_escaping_are_refused_and_nothing_is_written() {
    let tmp = tempdir();
    let store = open_plain(tmp.path());
    let id = kubelet_id(4);
    new_volume(&store, &id);
    for bad in [
        "..data",
        "..2026_01_01_00_00_00.1",
        "../../outside",
        "/etc/passwd",
        "a/../../b",
        "a//b",
        "",
        "a\0b",
        "./a",
    ] {
        let err = store
            .write_files(&id, &set(&[("ok.pem", "x"), (bad, "evil")]), None)
            .unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidFileName { .. }),
            "{bad:?}: {err:?}"
        );
        assert!(store.read_current_file(&id, bad).is_err(), "{bad:?} read");
    }
    let err = store
        .write_files(&id, &set(&[("bar", "x"), ("bar/foo", "y")]), None)
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidFileName { .. }));
    let data = store.data_dir(&id).unwrap();
    assert_eq!(
        std::fs::read_dir(&data).unwrap().count(),
        0,
        "nothing written"
    );
    assert!(!tmp.path().join("outside").exists());
}

#[test]
fn bad_volume_ids_are_refused_everywhere() {
    let tmp = tempdir();
    let store = open_plain(tmp.path());
    for bad in [
        "",
        "..",
        "../x",
        "a/b",
        ".quarantine",
        "inmemfs/../x",
        "a b",
    ] {
        let check = |r: Result<(), StoreError>| {
            let e = r.unwrap_err();
            assert!(
                matches!(e, StoreError::InvalidVolumeId { .. }),
                "{bad:?}: {e:?}"
            );
        };
        check(store.data_dir(bad).map(drop));
        check(
            store
                .create_volume(&Metadata::new(bad, "/t"), None)
                .map(drop),
        );
        check(store.write_metadata(&Metadata::new(bad, "/t")));
        check(store.read_metadata(bad).map(drop));
        check(store.remove_volume(bad).map(drop));
        check(store.volume_exists(bad).map(drop));
        check(store.write_files(bad, &set(&[("a", "b")]), None).map(drop));
        check(store.read_current_file(bad, "a").map(drop));
        check(store.write_private(bad, "p", b"x"));
        check(store.read_private(bad, "p").map(drop));
    }
    assert_eq!(
        std::fs::read_dir(tmp.path().join("inmemfs"))
            .unwrap()
            .count(),
        0
    );
}

/// A directory outside the store with a file that must survive every attack.
fn outside(tmp: &Path) -> std::path::PathBuf {
    let out = tmp.join("outside");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("precious"), "keep me").unwrap();
    out
}

fn assert_outside_intact(out: &Path) {
    let names: Vec<_> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        ["precious"],
        "something was created or removed outside"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("precious")).unwrap(),
        "keep me"
    );
}

#[test]
fn symlinked_volume_dir_is_never_followed() {
    let tmp = tempdir();
    let root = tmp.path().join("root");
    let store = open_plain(&root);
    let out = outside(tmp.path());
    let id = kubelet_id(5);
    symlink(&out, root.join("inmemfs").join(&id)).unwrap();

    assert!(!store.volume_exists(&id).unwrap());
    let e = store
        .write_files(&id, &set(&[("precious", "x")]), None)
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict { .. }), "{e:?}");
    assert!(store.read_metadata(&id).is_err());
    assert!(store.write_metadata(&Metadata::new(&id, "/t")).is_err());
    assert!(store.write_private(&id, "precious", b"x").is_err());
    assert!(store.read_private(&id, "precious").is_err());
    assert!(store.remove_private(&id, "precious").is_err());
    assert_outside_intact(&out);

    // Listing sets the link aside (moves the link, not its target).
    let rec = store.list().unwrap();
    assert_eq!(rec.set_aside.len(), 1);
    assert_eq!(rec.set_aside[0].reason, "not a directory");
    assert_outside_intact(&out);

    // Removal removes only the link.
    symlink(&out, root.join("inmemfs").join(&id)).unwrap();
    assert!(store.remove_volume(&id).unwrap());
    assert!(std::fs::symlink_metadata(root.join("inmemfs").join(&id)).is_err());
    assert_outside_intact(&out);
}

#[test]
fn symlinks_inside_a_volume_are_never_followed() {
    let tmp = tempdir();
    let root = tmp.path().join("root");
    let store = open_plain(&root);
    let out = outside(tmp.path());
    let id = kubelet_id(6);
    new_volume(&store, &id);
    let vol = root.join("inmemfs").join(&id);
    let data = vol.join("data");

    // ..data pointing outside: not read through, replaced on write.
    symlink(&out, data.join("..data")).unwrap();
    assert!(store.read_current_file(&id, "precious").unwrap().is_none());
    // A user-visible name that is a symlink elsewhere, and a stray set dir link.
    symlink(&out, data.join("sub")).unwrap();
    symlink(&out, data.join("..2020_01_01_00_00_00.1")).unwrap();
    store
        .write_files(
            &id,
            &set(&[("precious", "new"), ("sub/precious", "new")]),
            None,
        )
        .unwrap();
    assert_outside_intact(&out);
    assert_eq!(
        std::fs::read_link(data.join("sub")).unwrap(),
        Path::new("..data/sub")
    );
    assert_eq!(
        std::fs::read_to_string(data.join("sub/precious")).unwrap(),
        "new"
    );
    assert!(std::fs::symlink_metadata(data.join("..2020_01_01_00_00_00.1")).is_err());

    // metadata.json and a private file as symlinks to outside files.
    std::fs::remove_file(vol.join("metadata.json")).unwrap();
    symlink(out.join("precious"), vol.join("metadata.json")).unwrap();
    symlink(out.join("precious"), vol.join("pending")).unwrap();
    assert!(store.read_metadata(&id).is_err());
    assert!(store.read_private(&id, "pending").is_err());
    store.write_metadata(&Metadata::new(&id, "/t")).unwrap();
    store.write_private(&id, "pending", b"state").unwrap();
    assert_outside_intact(&out);
    assert!(
        !std::fs::symlink_metadata(vol.join("metadata.json"))
            .unwrap()
            .is_symlink()
    );
    assert_eq!(
        &**store.read_private(&id, "pending").unwrap().unwrap(),
        b"state"
    );

    // A link to the outside anywhere in the tree: removal removes the link only.
    symlink(&out, vol.join("escape")).unwrap();
    symlink(&out, data.join("..data_tmp")).unwrap();
    assert!(store.remove_volume(&id).unwrap());
    assert!(!vol.exists());
    assert!(!store.remove_volume(&id).unwrap());
    assert_outside_intact(&out);
}

#[test]
fn a_regular_file_where_a_visible_link_belongs_is_a_conflict() {
    let tmp = tempdir();
    let store = open_plain(tmp.path());
    let id = kubelet_id(8);
    new_volume(&store, &id);
    let data = store.data_dir(&id).unwrap();
    std::fs::write(data.join("tls.crt"), "not ours").unwrap();
    let e = store
        .write_files(&id, &set(&[("tls.crt", "x")]), None)
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict { .. }), "{e:?}");
    assert_eq!(
        std::fs::read_to_string(data.join("tls.crt")).unwrap(),
        "not ours"
    );
}

#[test]
fn modes_and_groups() {
    let tmp = tempdir();
    let store = open_plain(tmp.path());
    let id = kubelet_id(9);
    new_volume(&store, &id);
    let vol = tmp.path().join("inmemfs").join(&id);
    let data = vol.join("data");
    assert_eq!(mode_of(&vol), 0o700);
    assert_eq!(mode_of(&data), 0o750);

    let own = rustix::process::getegid().as_raw();
    let files = set(&[
        ("tls.crt", "c"),
        ("tls.key", "k"),
        ("nested/dir/ca.crt", "a"),
    ]);
    store.write_files(&id, &files, None).unwrap();
    let check = |gid: u32| {
        let set_dir = &set_dirs(&data)[0];
        assert_eq!(gid_of(&data), gid);
        assert_eq!(mode_of(set_dir), 0o550);
        assert_eq!(gid_of(set_dir), gid);
        for d in ["nested", "nested/dir"] {
            assert_eq!(mode_of(&set_dir.join(d)), 0o550, "{d}");
            assert_eq!(gid_of(&set_dir.join(d)), gid, "{d}");
        }
        for f in ["tls.crt", "tls.key", "nested/dir/ca.crt"] {
            assert_eq!(mode_of(&set_dir.join(f)), 0o440, "{f}");
            assert_eq!(gid_of(&set_dir.join(f)), gid, "{f}");
            let via_link = std::fs::metadata(data.join(f)).unwrap();
            assert_eq!(via_link.mode() & 0o7777, 0o440);
        }
    };
    check(own);

    store.write_private(&id, "pending-key", b"k").unwrap();
    assert_eq!(mode_of(&vol.join("pending-key")), 0o600);
    assert_eq!(mode_of(&vol.join("metadata.json")), 0o600);

    assert!(matches!(
        store.write_files(&id, &files, Some(u32::MAX)),
        Err(StoreError::InvalidGroup { .. })
    ));

    if !is_root() {
        println!("SKIPPED the fsGroup part of modes_and_groups: chgrp to another group needs root");
        return;
    }
    // A new group is a change even with the same contents.
    assert!(store.write_files(&id, &files, Some(2000)).unwrap().changed);
    check(2000);
    assert!(!store.write_files(&id, &files, Some(2000)).unwrap().changed);
    // And back.
    assert!(store.write_files(&id, &files, None).unwrap().changed);
    check(own);

    // create_volume with a group gives data/ that group at once.
    let other = kubelet_id(10);
    assert!(
        store
            .create_volume(&Metadata::new(&other, "/t"), Some(3000))
            .unwrap()
    );
    assert_eq!(gid_of(&store.data_dir(&other).unwrap()), 3000);
}

#[test]
fn private_files_live_outside_data_and_can_be_removed() {
    let tmp = tempdir();
    let store = open_plain(tmp.path());
    let id = kubelet_id(11);
    new_volume(&store, &id);
    assert!(store.read_private(&id, "pending").unwrap().is_none());
    store.write_private(&id, "pending", b"one").unwrap();
    store.write_private(&id, "pending", b"two").unwrap();
    assert_eq!(
        &**store.read_private(&id, "pending").unwrap().unwrap(),
        b"two"
    );
    let data = store.data_dir(&id).unwrap();
    assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0);
    for bad in ["metadata.json", "data", "../pending", ".pending.tmp", "a/b"] {
        assert!(
            matches!(
                store.write_private(&id, bad, b"x"),
                Err(StoreError::InvalidFileName { .. })
            ),
            "{bad}"
        );
    }
    assert!(store.remove_private(&id, "pending").unwrap());
    assert!(!store.remove_private(&id, "pending").unwrap());
    assert!(store.read_private(&id, "pending").unwrap().is_none());
    assert!(matches!(
        store.write_private(&kubelet_id(99), "pending", b"x"),
        Err(StoreError::VolumeNotFound { .. })
    ));
}

/// Builds a volume exactly as the Go driver (csi-lib) leaves it on disk.
fn go_fixture(inmemfs: &Path, id: &str) {
    let vol = inmemfs.join(id);
    let data = vol.join("data");
    let ts = "..2026_08_05_12_00_00.123456789";
    std::fs::create_dir_all(data.join(ts)).unwrap();
    let meta = format!(
        concat!(
            r#"{{"volumeID":"{id}","targetPath":"/var/lib/kubelet/pods/0b5c/volumes/kubernetes.io~csi/tls/mount","#,
            r#""nextIssuanceTime":"2026-08-05T14:00:00.123456789+02:00","#,
            r#""volumeContext":{{"csi.cert-manager.io/dns-names":"${{POD_NAME}}.${{POD_NAMESPACE}}.svc","#,
            r#""csi.cert-manager.io/issuer-name":"ca-issuer","csi.storage.k8s.io/ephemeral":"true","#,
            r#""csi.storage.k8s.io/pod.name":"my-pod","csi.storage.k8s.io/pod.namespace":"sandbox"}}}}"#
        ),
        id = id
    );
    std::fs::write(vol.join("metadata.json"), meta).unwrap();
    std::fs::set_permissions(vol.join("metadata.json"), PermissionsExt::from_mode(0o600)).unwrap();
    for (name, body) in [
        ("tls.crt", "go-crt"),
        ("tls.key", "go-key"),
        ("ca.crt", "go-ca"),
    ] {
        let p = data.join(ts).join(name);
        std::fs::write(&p, body).unwrap();
        std::fs::set_permissions(&p, PermissionsExt::from_mode(0o440)).unwrap();
        symlink(format!("..data/{name}"), data.join(name)).unwrap();
    }
    symlink(ts, data.join("..data")).unwrap();
    std::fs::set_permissions(data.join(ts), PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&data, PermissionsExt::from_mode(0o550)).unwrap();
    // The Go driver makes volume directories 0644; only root can use them.
    let vol_mode = if is_root() { 0o644 } else { 0o755 };
    std::fs::set_permissions(&vol, PermissionsExt::from_mode(vol_mode)).unwrap();
}

#[test]
fn volume_written_by_the_go_driver_is_taken_over() {
    let tmp = tempdir();
    let root = tmp.path();
    std::fs::create_dir_all(root.join("inmemfs")).unwrap();
    let id = kubelet_id(0xc0);
    go_fixture(&root.join("inmemfs"), &id);
    let store = open_plain(root);

    let rec = store.list().unwrap();
    assert!(rec.set_aside.is_empty(), "{:?}", rec.set_aside);
    assert_eq!(rec.volumes.len(), 1);
    let mut m = rec.volumes.into_iter().next().unwrap();
    assert!(m.written_by_go());
    assert_eq!(m.volume_id, id);
    assert_eq!(
        m.next_issuance_time,
        Some(UNIX_EPOCH + Duration::new(1_785_931_200, 123_456_789))
    );
    assert_eq!(m.volume_context["csi.storage.k8s.io/pod.name"], "my-pod");
    assert_eq!(m.volume_mount_group, None);
    assert_eq!(
        &**store.read_current_file(&id, "tls.key").unwrap().unwrap(),
        b"go-key"
    );

    let same = set(&[
        ("tls.crt", "go-crt"),
        ("tls.key", "go-key"),
        ("ca.crt", "go-ca"),
    ]);
    if is_root() {
        // Same files, modes and (root) group as the Go driver wrote: no swap.
        assert!(!store.write_files(&id, &same, None).unwrap().changed);
    }
    let renewed = set(&[
        ("tls.crt", "rs-crt"),
        ("tls.key", "rs-key"),
        ("ca.crt", "rs-ca"),
    ]);
    assert!(store.write_files(&id, &renewed, None).unwrap().changed);
    let data = store.data_dir(&id).unwrap();
    assert_eq!(
        std::fs::read_to_string(data.join("tls.key")).unwrap(),
        "rs-key"
    );
    let sets = set_dirs(&data);
    assert_eq!(sets.len(), 1);
    assert!(!sets[0].ends_with("..2026_08_05_12_00_00.123456789"));

    // Its metadata stays in the Go format (no marker), so the Go driver could
    // read it again, and it is still recognised as Go-written.
    m.next_issuance_time = Some(UNIX_EPOCH + Duration::from_secs(1_790_000_000));
    store.write_metadata(&m).unwrap();
    let raw: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root.join("inmemfs").join(&id).join("metadata.json")).unwrap(),
    )
    .unwrap();
    let keys: BTreeSet<&str> = raw
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "nextIssuanceTime",
            "targetPath",
            "volumeContext",
            "volumeID"
        ]
        .into()
    );
    assert!(store.read_metadata(&id).unwrap().written_by_go());
}

#[test]
fn corrupt_missing_and_foreign_entries_are_set_aside_not_fatal() {
    let tmp = tempdir();
    let root = tmp.path();
    let store = open_plain(root);
    let inmemfs = root.join("inmemfs");
    let good = kubelet_id(1);
    new_volume(&store, &good);

    let missing = kubelet_id(2);
    std::fs::create_dir_all(inmemfs.join(&missing).join("data")).unwrap();
    let corrupt = kubelet_id(3);
    std::fs::create_dir(inmemfs.join(&corrupt)).unwrap();
    std::fs::write(
        inmemfs.join(&corrupt).join("metadata.json"),
        r#"{"volumeID":"csi-3","volumeContext":{"csi.storage.k8s.io/serviceAccount.tokens":"#,
    )
    .unwrap();
    let future = kubelet_id(4);
    std::fs::create_dir(inmemfs.join(&future)).unwrap();
    std::fs::write(
        inmemfs.join(&future).join("metadata.json"),
        format!(r#"{{"volumeID":"{future}","targetPath":"/t","format":"cmcsi/v9"}}"#),
    )
    .unwrap();
    let mismatch = kubelet_id(5);
    std::fs::create_dir(inmemfs.join(&mismatch)).unwrap();
    std::fs::write(
        inmemfs.join(&mismatch).join("metadata.json"),
        format!(r#"{{"volumeID":"{good}","targetPath":"/t"}}"#),
    )
    .unwrap();
    let bad_time = kubelet_id(6);
    std::fs::create_dir(inmemfs.join(&bad_time)).unwrap();
    std::fs::write(
        inmemfs.join(&bad_time).join("metadata.json"),
        format!(r#"{{"volumeID":"{bad_time}","nextIssuanceTime":"tomorrow"}}"#),
    )
    .unwrap();
    std::fs::write(inmemfs.join("stray-file"), "x").unwrap();
    std::fs::create_dir(inmemfs.join("bad name")).unwrap();
    // Leftover of an interrupted create_volume: ours, removed quietly.
    std::fs::create_dir_all(
        inmemfs
            .join(format!(".creating-{}", kubelet_id(7)))
            .join("data"),
    )
    .unwrap();

    assert!(matches!(
        store.read_metadata(&corrupt),
        Err(StoreError::Metadata { .. })
    ));
    assert!(matches!(
        store.read_metadata(&missing),
        Err(StoreError::Metadata { .. })
    ));

    let rec = store.list().unwrap();
    assert_eq!(rec.volumes.len(), 1);
    assert_eq!(rec.volumes[0].volume_id, good);
    let by_name: std::collections::BTreeMap<&str, &cmcsi_store::SetAside> =
        rec.set_aside.iter().map(|s| (s.name.as_str(), s)).collect();
    assert_eq!(by_name.len(), 7, "{:?}", rec.set_aside);
    assert!(by_name[missing.as_str()].reason.contains("missing"));
    assert!(
        by_name[corrupt.as_str()]
            .reason
            .contains("not valid metadata JSON")
    );
    assert!(
        by_name[future.as_str()]
            .reason
            .contains("unknown metadata format")
    );
    assert!(
        by_name[mismatch.as_str()]
            .reason
            .contains("another volume id")
    );
    assert!(
        by_name[bad_time.as_str()]
            .reason
            .contains("nextIssuanceTime")
    );
    assert_eq!(by_name["stray-file"].reason, "not a directory");
    assert!(by_name["bad name"].reason.contains("not a volume id"));
    for s in &rec.set_aside {
        assert!(!s.reason.contains("serviceAccount"), "{}", s.reason);
        let to = s.moved_to.as_ref().expect("moved");
        assert!(to.starts_with(inmemfs.join(".quarantine")), "{to:?}");
        assert!(std::fs::symlink_metadata(to).is_ok(), "{to:?} exists");
    }
    // Moved, not deleted: the corrupt file is still there to look at.
    let q = by_name[corrupt.as_str()].moved_to.as_ref().unwrap();
    assert!(q.join("metadata.json").is_file());

    let again = store.list().unwrap();
    assert_eq!(again.volumes.len(), 1);
    assert!(again.set_aside.is_empty());
    let left: BTreeSet<String> = std::fs::read_dir(&inmemfs)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left, [good.clone(), ".quarantine".into()].into());
}

#[test]
fn listing_a_thousand_volumes() {
    let tmp = tempdir();
    let store = open_plain(tmp.path());
    for i in 0..1000 {
        let id = kubelet_id(i);
        let mut m = Metadata::new(&id, "/var/lib/kubelet/pods/p/volumes/v/mount");
        m.next_issuance_time = Some(UNIX_EPOCH + Duration::from_secs(1_790_000_000 + u64::from(i)));
        for k in ["issuer-name", "dns-names", "common-name", "duration"] {
            m.volume_context
                .insert(format!("csi.cert-manager.io/{k}"), format!("value-{i}"));
        }
        store.create_volume(&m, None).unwrap();
    }
    drop(store);
    let store = open_plain(tmp.path());
    let started = Instant::now();
    let rec = store.list().unwrap();
    let took = started.elapsed();
    assert_eq!(rec.volumes.len(), 1000);
    assert!(rec.set_aside.is_empty());
    assert_eq!(rec.volumes[0].volume_id, kubelet_id(0));
    // Informational only: the machine running tests may be busy.
    println!("listed 1000 volumes in {took:?}");
}

#[test]
fn remove_volume_removes_everything_of_it() {
    let tmp = tempdir();
    let store = open_plain(tmp.path());
    let id = kubelet_id(12);
    new_volume(&store, &id);
    store
        .write_files(
            &id,
            &set(&[("a/b/c.pem", "x"), ("d.pem", "y")]),
            Some(rustix::process::getegid().as_raw()),
        )
        .unwrap();
    store.write_private(&id, "pending", b"k").unwrap();
    let keep = kubelet_id(13);
    new_volume(&store, &keep);
    assert!(store.remove_volume(&id).unwrap());
    assert!(!store.volume_exists(&id).unwrap());
    assert!(store.volume_exists(&keep).unwrap());
    assert!(matches!(
        store.read_metadata(&id),
        Err(StoreError::VolumeNotFound { .. })
    ));
    assert!(matches!(
        store.write_files(&id, &set(&[("a", "b")]), None),
        Err(StoreError::VolumeNotFound { .. })
    ));
}

#[test]
fn damaged_data_dir_heals_on_the_next_write() {
    let tmp = tempdir();
    let store = open_plain(tmp.path());
    let id = kubelet_id(14);
    new_volume(&store, &id);
    let data = store.data_dir(&id).unwrap();

    // ..data dangling (its set removed by hand).
    store
        .write_files(&id, &set(&[("a.pem", "1")]), None)
        .unwrap();
    force_remove(&set_dirs(&data)[0]);
    assert!(store.read_current_file(&id, "a.pem").unwrap().is_none());
    assert!(
        store
            .write_files(&id, &set(&[("a.pem", "2")]), None)
            .unwrap()
            .changed
    );
    assert_eq!(std::fs::read_to_string(data.join("a.pem")).unwrap(), "2");

    // data/ gone altogether.
    force_remove(&data);
    assert!(store.read_current_file(&id, "a.pem").is_err());
    assert!(
        store
            .write_files(&id, &set(&[("a.pem", "3")]), None)
            .unwrap()
            .changed
    );
    assert_eq!(std::fs::read_to_string(data.join("a.pem")).unwrap(), "3");
    assert_eq!(mode_of(&data), 0o750);
}

/// `rm -rf` that also works unprivileged on the store's read-only directories.
fn force_remove(p: &Path) {
    fn open_up(p: &Path) {
        if std::fs::symlink_metadata(p).unwrap().is_dir() {
            std::fs::set_permissions(p, PermissionsExt::from_mode(0o700)).unwrap();
            for e in std::fs::read_dir(p).unwrap() {
                open_up(&e.unwrap().path());
            }
        }
    }
    open_up(p);
    std::fs::remove_dir_all(p).unwrap();
}

#[test]
fn volume_ids_lists_volumes_and_changes_nothing() {
    let tmp = tempdir();
    let store = open_plain(tmp.path());
    let (a, b) = (kubelet_id(0xa1), kubelet_id(0xa2));
    new_volume(&store, &b);
    new_volume(&store, &a);
    let inmem = tmp.path().join("inmemfs");
    // A creation in progress, a stray file and a bad name: none are volumes,
    // and none is touched (unlike `list`, which cleans up at start).
    std::fs::create_dir(inmem.join(".creating-x")).unwrap();
    std::fs::write(inmem.join("stray-file"), b"x").unwrap();
    std::fs::create_dir(inmem.join("bad name")).unwrap();
    let mut expected = vec![a.clone(), b.clone()];
    expected.sort();
    assert_eq!(store.volume_ids().unwrap(), expected);
    assert!(inmem.join(".creating-x").is_dir());
    assert!(inmem.join("stray-file").is_file());
    assert!(inmem.join("bad name").is_dir());
    store.remove_volume(&a).unwrap();
    assert_eq!(store.volume_ids().unwrap(), vec![b]);
}

#[test]
fn metadata_too_large_to_read_back_is_never_written() {
    let tmp = tempdir();
    let store = open_plain(tmp.path());
    // A new volume with an oversized context: refused, and no directory is left.
    let id = kubelet_id(41);
    let mut big = Metadata::new(&id, "/t");
    big.volume_context
        .insert("example.com/blob".into(), "x".repeat(1_100_000));
    let err = store.create_volume(&big, None).unwrap_err();
    assert!(
        matches!(&err, StoreError::Metadata { reason, .. } if reason.contains("at most 1048576")),
        "{err}"
    );
    assert!(!store.volume_exists(&id).unwrap());
    // An existing volume keeps its readable metadata when a rewrite is too large.
    let id = kubelet_id(42);
    let small = new_volume(&store, &id);
    let mut grown = small.clone();
    grown
        .volume_context
        .insert("example.com/blob".into(), "x".repeat(1_100_000));
    assert!(store.write_metadata(&grown).is_err());
    assert_eq!(store.read_metadata(&id).unwrap(), small);
}

#[test]
fn set_aside_entries_are_purged_after_the_grace_period() {
    let tmp = tempdir();
    let store = open_plain(tmp.path());
    let q = tmp.path().join("inmemfs/.quarantine");
    std::fs::create_dir_all(q.join("old-vol.1000000000.0/data")).unwrap();
    std::fs::write(q.join("old-vol.1000000000.0/key.pem"), b"k").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let fresh = format!("new-vol.{now}.0");
    std::fs::create_dir_all(q.join(&fresh)).unwrap();
    assert_eq!(
        store.purge_quarantine(Duration::from_secs(3600)).unwrap(),
        1
    );
    assert!(!q.join("old-vol.1000000000.0").exists());
    assert!(q.join(&fresh).exists(), "younger than the grace period");
    assert_eq!(store.quarantine_removed(), 1);
}

#[test]
fn a_volume_set_aside_while_running_is_purged_like_the_others() {
    let tmp = tempdir();
    let store = open_plain(tmp.path());
    let id = kubelet_id(43);
    new_volume(&store, &id);
    store.write_private(&id, "pending.key", b"k").unwrap();
    assert!(!store.volume_mounted(&id).unwrap());

    let aside = store
        .set_aside_volume(&id, "metadata.json is missing")
        .unwrap();
    assert_eq!(aside.name, id);
    assert_eq!(aside.reason, "metadata.json is missing");
    let moved = aside.moved_to.unwrap();
    assert!(moved.starts_with(tmp.path().join("inmemfs/.quarantine")));
    assert!(moved.join("pending.key").exists(), "set aside, not removed");
    assert!(!store.volume_exists(&id).unwrap());
    assert!(store.volume_ids().unwrap().is_empty());
    // Gone now: a second try names the volume.
    let err = store.set_aside_volume(&id, "again").unwrap_err();
    assert!(matches!(err, StoreError::VolumeNotFound { .. }), "{err}");

    // Kept within the grace period, removed past it.
    assert_eq!(
        store.purge_quarantine(Duration::from_secs(3600)).unwrap(),
        0
    );
    assert!(moved.exists());
    assert_eq!(store.purge_quarantine(Duration::ZERO).unwrap(), 1);
    assert!(!moved.exists());
    assert_eq!(store.quarantine_removed(), 1);
}
