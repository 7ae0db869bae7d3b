//! Write a volume's files as one atomic set, replace them, and read them
//! back, in a data root of your choosing:
//!
//! ```text
//! cargo run -p cmcsi-store --example atomic_file_set -- DATA_ROOT
//! ```
//!
//! `DATA_ROOT` must be a directory this program may own (it takes a lock
//! file there). No tmpfs is mounted (`mount_tmpfs: false`), so it runs
//! without privileges; the CSI driver mounts one so keys never touch a disk.
//! What a reader (the Pod) sees under `DATA_ROOT/inmemfs/<volume>/data/` is
//! always one whole set: the old one or the new one, never a mix.

use std::error::Error;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use cmcsi_store::{FileSet, Metadata, Store, StoreOptions};

fn main() -> Result<(), Box<dyn Error>> {
    let root = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: atomic_file_set DATA_ROOT")?,
    );
    std::fs::create_dir_all(&root)?;
    let store = Store::open(
        &root,
        StoreOptions {
            mount_tmpfs: false,
            tmpfs_size: None,
        },
    )?;

    // One volume: its metadata records where the kubelet wants it mounted.
    let volume = "csi-example-0123456789abcdef";
    let mut meta = Metadata::new(volume, "/var/lib/kubelet/pods/p/volumes/v/mount");
    store.create_volume(&meta, None)?;

    // The first issuance: key, certificate and CA go in together.
    let mut files = FileSet::new();
    files.insert("tls.key", "-----BEGIN PRIVATE KEY-----\n(first key)\n");
    files.insert("tls.crt", "-----BEGIN CERTIFICATE-----\n(first leaf)\n");
    files.insert("ca.crt", "-----BEGIN CERTIFICATE-----\n(CA)\n");
    // Some(gid): files readable by that group (the Pod's fsGroup); None: owner only.
    let first = store.write_files(volume, &files, None)?;
    println!("first set written: changed={}", first.changed);

    // A renewal: the whole set is built beside the old one and swapped in by
    // one rename(2), so a reader never pairs the new key with the old leaf.
    files.insert("tls.key", "-----BEGIN PRIVATE KEY-----\n(second key)\n");
    files.insert("tls.crt", "-----BEGIN CERTIFICATE-----\n(second leaf)\n");
    let second = store.write_files(volume, &files, None)?;
    meta.next_issuance_time = Some(SystemTime::now() + Duration::from_secs(3600));
    store.write_metadata(&meta)?;
    println!("renewal swapped in: changed={}", second.changed);

    // The same set again is a no-op.
    let again = store.write_files(volume, &files, None)?;
    println!("same set again: changed={}", again.changed);

    let key = store
        .read_current_file(volume, "tls.key")?
        .ok_or("tls.key is missing")?;
    println!(
        "current tls.key: {:?}",
        String::from_utf8_lossy(&key).lines().nth(1).unwrap_or("")
    );
    println!("the Pod would mount {}", store.data_dir(volume)?.display());

    // After a restart, list() finds the volume again from its metadata.
    let recovered = store.list()?;
    println!("volumes on disk: {}", recovered.volumes.len());

    store.remove_volume(volume)?;
    println!("volume removed");
    Ok(())
}
