//! Helpers shared by the store's integration tests.
#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use cmcsi_store::{FileSet, Metadata, Store, StoreOptions};

/// A temporary directory, on a tmpfs when one is at hand (as in production).
/// Removed on drop even where the store left read-only directories, which an
/// unprivileged test process could not otherwise remove.
pub struct TestDir(Option<tempfile::TempDir>);

impl TestDir {
    pub fn path(&self) -> &Path {
        self.0.as_ref().unwrap().path()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        fn open_up(p: &Path) {
            use std::os::unix::fs::PermissionsExt;
            if std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()) {
                let _ = std::fs::set_permissions(p, PermissionsExt::from_mode(0o700));
                if let Ok(entries) = std::fs::read_dir(p) {
                    for e in entries.flatten() {
                        open_up(&e.path());
                    }
                }
            }
        }
        if let Some(dir) = self.0.take() {
            open_up(dir.path());
            let _ = dir.close();
        }
    }
}

pub fn tempdir() -> TestDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(d) = tempfile::Builder::new()
            .prefix("cmcsi-store-")
            .tempdir_in(shm)
    {
        return TestDir(Some(d));
    }
    TestDir(Some(
        tempfile::Builder::new()
            .prefix("cmcsi-store-")
            .tempdir()
            .unwrap(),
    ))
}

/// Opens a store without mounting anything.
pub fn open_plain(root: &Path) -> Store {
    Store::open(
        root,
        StoreOptions {
            mount_tmpfs: false,
            tmpfs_size: None,
        },
    )
    .unwrap()
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

pub fn mode_of(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

pub fn gid_of(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().gid()
}

pub fn kubelet_id(n: u32) -> String {
    format!("csi-{n:064x}")
}

pub fn set(pairs: &[(&str, &str)]) -> FileSet {
    let mut s = FileSet::new();
    for (k, v) in pairs {
        s.insert(*k, *v);
    }
    s
}

/// Creates a volume with metadata in our format.
pub fn new_volume(store: &Store, id: &str) -> Metadata {
    let mut m = Metadata::new(id, format!("/var/lib/kubelet/pods/p/volumes/{id}/mount"));
    m.volume_context
        .insert("csi.cert-manager.io/issuer-name".into(), "ca".into());
    assert!(store.create_volume(&m, None).unwrap());
    m
}

/// Names of the timestamped set directories in a data dir.
pub fn set_dirs(data: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with("..") && n != "..data"
        })
        .collect();
    v.sort();
    v
}
