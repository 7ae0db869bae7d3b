//! # cmcsi-store: the node data root
//!
//! The cert-manager CSI driver keeps every volume's key, certificate chain and
//! CA on the node, in a data root laid out exactly as the Go driver lays it out,
//! so a node can switch drivers without restarting its Pods:
//!
//! ```text
//! <data-root>/.cmcsi-store.lock      held (flock) while a Store is open
//! <data-root>/inmemfs/               a tmpfs, mounted at open unless already a mount point
//!   <volume-id>/metadata.json        volumeID, targetPath, nextIssuanceTime, ... (0600)
//!   <volume-id>/<private file>       driver state the Pod never sees (0600)
//!   <volume-id>/secrets.json         keystore passwords from the volume's Secret (0600)
//!   <volume-id>/data/                bind-mounted read-only into the Pod (0750)
//!     ..2026_11_28_10_00_00.123456789/  the current file set (files 0440, dirs 0550)
//!     ..data -> ..2026_...           swapped by rename(2): the one atomic step
//!     crt.pem -> ..data/crt.pem      user-visible names
//! <data-root>/inmemfs/.quarantine/   unusable entries (Store::list, Store::set_aside_volume)
//! ```
//!
//! What it guarantees:
//! - A Pod never sees a key from one issuance with a certificate from another:
//!   [`Store::write_files`] builds a complete new set and swaps it in with one
//!   `rename(2)` (the kubelet AtomicWriter way). A crash at any point leaves the
//!   old set or the new one.
//! - `metadata.json` is replaced atomically (temporary file, fsync, rename,
//!   directory fsync) and a corrupt one never stops the driver:
//!   [`Store::list`] reports it and moves it aside.
//! - Whatever names it is given, the store never creates, follows or removes
//!   anything outside its root: every path below the root is reached one
//!   component at a time with `O_NOFOLLOW`, and removal never crosses mounts.
//! - Keystore passwords that came from the volume's Secret survive a driver
//!   restart in a private file ([`Store::write_secrets`], [`VolumeSecrets`]),
//!   never in `metadata.json` or `data/`; their buffers are zeroed on drop.
//! - One driver per data root: a second [`Store::open`] fails with
//!   [`StoreError::AlreadyRunning`].
//!
//! What it is not: it knows nothing of Kubernetes, certificates or CSI; it does
//! not bind-mount into Pods (the driver does, using [`StoreView::data_dir`]); it
//! does not serialise operations on one volume (the driver's per-volume lock
//! does). The API is synchronous; call it from `spawn_blocking` in async code.
//!
//! Tools that only look (the driver's `status` command) open the root with
//! [`StoreView::open`], which takes no lock, so they work beside the driver.
//!
//! Where to start: [`Store::open`], then [`Store::create_volume`],
//! [`Store::write_files`] and [`Store::write_metadata`] per issuance;
//! [`Store::list`] at start; [`Store::remove_volume`] at unpublish.
//!
//! ```
//! use cmcsi_store::{FileSet, Metadata, Store, StoreOptions};
//! use std::time::{Duration, SystemTime};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let tmp = tempfile::tempdir()?;
//! # let data_root = tmp.path();
//! // In the driver: mount_tmpfs: true (the default), which needs CAP_SYS_ADMIN.
//! let store = Store::open(data_root, StoreOptions { mount_tmpfs: false, tmpfs_size: None })?;
//!
//! let id = "csi-0123456789abcdef";
//! let mut meta = Metadata::new(id, "/var/lib/kubelet/pods/p/volumes/v/mount");
//! meta.volume_context.insert("csi.cert-manager.io/issuer-name".into(), "ca".into());
//! store.create_volume(&meta, None)?;
//!
//! let mut files = FileSet::new();
//! files.insert("crt.pem", "-----BEGIN CERTIFICATE-----\n...");
//! files.insert("key.pem", "-----BEGIN PRIVATE KEY-----\n...");
//! assert!(store.write_files(id, &files, Some(2000))?.changed);
//! meta.next_issuance_time = Some(SystemTime::now() + Duration::from_secs(3600));
//! store.write_metadata(&meta)?;
//!
//! // The same set again: nothing to swap.
//! assert!(!store.write_files(id, &files, Some(2000))?.changed);
//! let key = store.read_current_file(id, "key.pem")?.expect("written above");
//! assert!(key.starts_with(b"-----BEGIN PRIVATE KEY-----"));
//!
//! // After a restart:
//! let recovery = store.list()?;
//! assert_eq!(recovery.volumes, vec![meta]);
//! assert!(recovery.set_aside.is_empty());
//!
//! store.remove_volume(id)?;
//! # Ok(())
//! # }
//! ```

mod budget;
mod budget_check;
mod error;
mod fileset;
mod fsops;
mod listing;
mod metadata;
mod mountpoint;
mod names;
mod private;
mod quarantine;
pub mod secret_json;
mod secrets;
mod store;
mod usage;
mod view;
mod volume_fs;

pub use budget::{Budget, Usage};
pub use error::StoreError;
pub use fileset::{DATA_DIR_MODE, FILE_MODE, FileSet, SET_DIR_MODE, WriteOutcome};
pub use listing::Recovery;
pub use metadata::{FORMAT_V1, Metadata, MetadataError, MetadataFormat};
pub use mountpoint::{is_mount_point, unescape_mountinfo};
pub use names::{
    MAX_NAME_LEN, MAX_PATH_LEN, MAX_VOLUME_ID_LEN, check_private_name, check_relative_path,
    check_volume_id,
};
pub use quarantine::SetAside;
pub use secret_json::to_json_zeroizing;
pub use secrets::{SECRETS_FILE, VolumeSecrets};
pub use store::{
    DATA_DIR, DEFAULT_TMPFS_SIZE, INMEMFS_DIR, LOCK_FILE, METADATA_FILE, QUARANTINE_DIR, Store,
    StoreOptions, StoreView,
};
pub use usage::{MAX_WALK_ENTRIES, VolumeUsage};
pub use view::Quarantined;
pub use volume_fs::MAX_VOLUME_FS_OPTIONS;
