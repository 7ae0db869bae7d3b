//! Store behaviour that needs mounts. Each test re-executes itself in a private
//! mount namespace (see `cmcsi_testkit::in_mount_namespace!`), so nothing it mounts is
//! seen outside; without the privilege it says SKIPPED and passes.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use cmcsi_store::{Store, StoreOptions};
use cmcsi_testkit::in_mount_namespace;
use common::*;
use rustix::mount::{MountFlags, MountPropagationFlags};

fn mount_count(path: &Path) -> usize {
    // Field 5 of /proc/self/mountinfo is the mount point.
    let want = path.to_str().unwrap();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.split(' ').nth(4) == Some(want))
        .count()
}

fn open_mounting(root: &Path) -> Store {
    Store::open(root, StoreOptions::default()).unwrap()
}

#[test]
fn fresh_root_gets_a_private_tmpfs() {
    in_mount_namespace!({
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("csi-data-dir");
        let store = open_mounting(&root);
        let inmemfs = root.join("inmemfs");
        assert!(store.is_tmpfs());
        assert_eq!(mount_count(&inmemfs), 1);
        assert_eq!(mode_of(&inmemfs), 0o700);
        let line = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .find(|l| l.split(' ').nth(4) == Some(inmemfs.to_str().unwrap()))
            .unwrap()
            .to_owned();
        for opt in ["nosuid", "nodev", "noexec"] {
            assert!(line.contains(opt), "{opt} missing: {line}");
        }
        // Bounded: the default size, not half of the node's memory.
        let fs = rustix::fs::statfs(&inmemfs).unwrap();
        #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
        let bytes = u64::try_from(fs.f_blocks as i128 * fs.f_bsize as i128).unwrap();
        assert_eq!(bytes, cmcsi_store::DEFAULT_TMPFS_SIZE, "{line}");
        // Reopening (a driver restart) does not stack a second tmpfs.
        drop(store);
        let store = open_mounting(&root);
        assert!(store.is_tmpfs());
        assert_eq!(mount_count(&inmemfs), 1);
        rustix::mount::unmount(&inmemfs, rustix::mount::UnmountFlags::DETACH).unwrap();
    });
}

#[test]
fn existing_tmpfs_is_reused_with_its_volumes() {
    in_mount_namespace!({
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let inmemfs = root.join("inmemfs");
        std::fs::create_dir(&inmemfs).unwrap();
        // Mounted by an earlier driver (tmpfs default mode 1777, as the Go
        // driver leaves it), with a volume in it.
        rustix::mount::mount("tmpfs", &inmemfs, "tmpfs", MountFlags::empty(), None).unwrap();
        let id = kubelet_id(1);
        {
            let earlier = Store::open(
                root,
                StoreOptions {
                    mount_tmpfs: false,
                    tmpfs_size: None,
                },
            )
            .unwrap();
            new_volume(&earlier, &id);
            earlier
                .write_files(&id, &set(&[("tls.crt", "before restart")]), None)
                .unwrap();
        }
        let store = open_mounting(root);
        assert!(store.is_tmpfs());
        assert_eq!(mount_count(&inmemfs), 1, "no second tmpfs on top");
        assert_eq!(mode_of(&inmemfs), 0o700, "tightened to 0700");
        let rec = store.list().unwrap();
        assert_eq!(rec.volumes.len(), 1);
        assert_eq!(
            &**store.read_current_file(&id, "tls.crt").unwrap().unwrap(),
            b"before restart"
        );
        drop(store);
        rustix::mount::unmount(&inmemfs, rustix::mount::UnmountFlags::DETACH).unwrap();
    });
}

#[test]
fn swap_is_seen_through_a_read_only_bind_mount() {
    in_mount_namespace!({
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let store = open_mounting(&root);
        let id = kubelet_id(2);
        new_volume(&store, &id);
        store
            .write_files(
                &id,
                &set(&[("crt.pem", "c1"), ("key.pem", "k1"), ("bar/foo.crt", "f1")]),
                Some(2000),
            )
            .unwrap();

        // What the driver does at NodePublishVolume.
        let target = tmp.path().join("pod-target");
        std::fs::create_dir(&target).unwrap();
        let data = store.data_dir(&id).unwrap();
        rustix::mount::mount_bind(&data, &target).unwrap();
        rustix::mount::mount_remount(&target, MountFlags::BIND | MountFlags::RDONLY, "").unwrap();
        rustix::mount::mount_change(&target, MountPropagationFlags::PRIVATE).unwrap();

        let read = |name: &str| std::fs::read_to_string(target.join(name)).unwrap();
        assert_eq!(read("crt.pem"), "c1");
        assert_eq!(read("bar/foo.crt"), "f1");

        store
            .write_files(
                &id,
                &set(&[("crt.pem", "c2"), ("key.pem", "k2"), ("bar/foo.crt", "f2")]),
                Some(2000),
            )
            .unwrap();
        assert_eq!(read("crt.pem"), "c2");
        assert_eq!(read("key.pem"), "k2");
        assert_eq!(read("bar/foo.crt"), "f2");
        assert_eq!(gid_of(&target), 2000);

        // The Pod cannot write.
        let err = std::fs::write(target.join("crt.pem"), "evil").unwrap_err();
        assert_eq!(
            err.raw_os_error(),
            Some(rustix::io::Errno::ROFS.raw_os_error())
        );
        let err = std::fs::create_dir(target.join("new")).unwrap_err();
        assert_eq!(
            err.raw_os_error(),
            Some(rustix::io::Errno::ROFS.raw_os_error())
        );

        // A name removed from the set disappears for the Pod too.
        store
            .write_files(&id, &set(&[("crt.pem", "c3")]), Some(2000))
            .unwrap();
        assert_eq!(read("crt.pem"), "c3");
        assert!(!target.join("key.pem").exists());
        assert!(!target.join("bar").exists());

        rustix::mount::unmount(&target, rustix::mount::UnmountFlags::empty()).unwrap();
        // A mount inside a volume is never crossed when removing it.
        let inner = data.join("..mnt");
        std::fs::create_dir(&inner).unwrap();
        rustix::mount::mount("tmpfs", &inner, "tmpfs", MountFlags::empty(), None).unwrap();
        std::fs::write(inner.join("other-fs"), "x").unwrap();
        assert!(store.remove_volume(&id).is_err());
        assert!(inner.join("other-fs").exists());
        rustix::mount::unmount(&inner, rustix::mount::UnmountFlags::empty()).unwrap();
        assert!(store.remove_volume(&id).unwrap());
        let inmemfs = store.volumes_dir().to_path_buf();
        drop(store);
        rustix::mount::unmount(&inmemfs, rustix::mount::UnmountFlags::DETACH).unwrap();
    });
}

#[test]
fn a_mounted_volume_is_seen_mounted_and_its_set_aside_copy_is_never_purged() {
    in_mount_namespace!({
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let store = open_mounting(&root);
        let (bound, free) = (kubelet_id(3), kubelet_id(4));
        new_volume(&store, &bound);
        new_volume(&store, &free);
        let target = tmp.path().join("pod-target");
        std::fs::create_dir(&target).unwrap();
        rustix::mount::mount_bind(store.data_dir(&bound).unwrap(), &target).unwrap();
        rustix::mount::mount_change(&target, MountPropagationFlags::PRIVATE).unwrap();
        assert!(store.volume_mounted(&bound).unwrap());
        assert!(!store.volume_mounted(&free).unwrap());

        // Set aside anyway (as `list` does at start, whatever is mounted):
        // past the grace period it stays while the Pod still has it bound.
        let moved = store
            .set_aside_volume(&bound, "test")
            .unwrap()
            .moved_to
            .unwrap();
        store.set_aside_volume(&free, "test").unwrap();
        assert_eq!(
            store.purge_quarantine(std::time::Duration::ZERO).unwrap(),
            1
        );
        assert!(moved.join("data").exists(), "still mounted: kept");
        rustix::mount::unmount(&target, rustix::mount::UnmountFlags::empty()).unwrap();
        assert_eq!(
            store.purge_quarantine(std::time::Duration::ZERO).unwrap(),
            1
        );
        assert!(!moved.exists());

        let inmemfs = store.volumes_dir().to_path_buf();
        drop(store);
        rustix::mount::unmount(&inmemfs, rustix::mount::UnmountFlags::DETACH).unwrap();
    });
}
