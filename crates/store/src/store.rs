//! The data root and per-volume operations.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{FileType, FlockOperation, OFlags};
use rustix::io::Errno;
use zeroize::Zeroizing;

use crate::error::StoreError;
use crate::fileset::{self, DATA_DIR_MODE, FileSet, WriteOutcome};
use crate::fsops::{self, mode};
use crate::metadata::Metadata;
use crate::names::{check_relative_path, check_volume_id};

/// Directory below the data root that holds the volumes (the tmpfs).
pub const INMEMFS_DIR: &str = "inmemfs";
/// Lock file in the data root, held for the lifetime of a [`Store`].
pub const LOCK_FILE: &str = ".cmcsi-store.lock";
/// Directory below `inmemfs/` where unusable volume directories are moved.
pub const QUARANTINE_DIR: &str = ".quarantine";
/// Name of a volume's metadata file.
pub const METADATA_FILE: &str = "metadata.json";
/// Name of a volume's data directory (the one bind-mounted into the Pod).
pub const DATA_DIR: &str = "data";

pub(crate) const CREATING_PREFIX: &str = ".creating-";
const VOLUME_DIR_MODE: u32 = 0o700;
const METADATA_MODE: u32 = 0o600;
const MAX_METADATA: usize = 1024 * 1024;
/// `TMPFS_MAGIC` from `linux/magic.h`.
const TMPFS_MAGIC: i64 = 0x0102_1994;

/// How to open a data root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Mount a tmpfs at `<root>/inmemfs` unless something is already mounted
    /// there. Needs `CAP_SYS_ADMIN`; turn off for unprivileged use (keys then
    /// live on whatever file system the root is on).
    pub mount_tmpfs: bool,
    /// `size=` of that tmpfs in bytes (rounded up to pages by the kernel): the
    /// most memory keys and certificates may take. Its pages count against the
    /// container's memory limit, so keep it below that. `None`: the kernel's
    /// default (half of the node's memory).
    pub tmpfs_size: Option<u64>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            mount_tmpfs: true,
            tmpfs_size: Some(DEFAULT_TMPFS_SIZE),
        }
    }
}

/// Default [`StoreOptions::tmpfs_size`]: 32 MiB.
pub const DEFAULT_TMPFS_SIZE: u64 = 32 * 1024 * 1024;

/// An open data root. Holds the root's lock until dropped; share it with `Arc`.
///
/// Operations on one volume must not run concurrently (the driver serialises
/// them with its per-volume lock); different volumes are independent.
#[derive(Debug)]
pub struct Store {
    /// The read side: every read method is [`StoreView`]'s, reached
    /// through [`Store::view`] or `Deref`.
    view: StoreView,
    /// Set-aside entries removed by [`Store::purge_quarantine`] since open.
    pub(crate) quarantine_removed: std::sync::atomic::AtomicU64,
    /// Per-volume budget and renewal reserve.
    pub(crate) budget: crate::budget::Budget,
    /// The root's lock, held while the store is open.
    _lock: File,
}

/// A [`Store`] reads as a [`StoreView`] (the one type with the read
/// methods), as a `String` reads as a `str`.
impl std::ops::Deref for Store {
    type Target = StoreView;

    fn deref(&self) -> &StoreView {
        &self.view
    }
}

impl Store {
    /// Opens (creating as needed) the data root `root`: takes its lock, creates
    /// `<root>/inmemfs` (0700) and, with [`StoreOptions::mount_tmpfs`], mounts a
    /// tmpfs there unless it already is a mount point.
    ///
    /// Fails with [`StoreError::AlreadyRunning`] when another `Store` (in this
    /// or another process) has the root open.
    pub fn open(root: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .map_err(|e| StoreError::io("create directory", root, e))?;
        let lock_path = root.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc_nofollow())
            .open(&lock_path)
            .map_err(|e| StoreError::io("open lock file", &lock_path, e))?;
        match rustix::fs::flock(&lock, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(Errno::WOULDBLOCK) => {
                return Err(StoreError::AlreadyRunning {
                    root: root.to_path_buf(),
                });
            }
            Err(e) => return Err(StoreError::io("lock", &lock_path, e)),
        }

        let inmemfs = root.join(INMEMFS_DIR);
        match std::fs::DirBuilder::new().mode(0o700).create(&inmemfs) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(StoreError::io("create directory", &inmemfs, e)),
        }
        let root_fd = rustix::fs::open(
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            mode(0),
        )
        .map_err(|e| StoreError::io("open", root, e))?;
        let st = fsops::lstat_at(root_fd.as_fd(), INMEMFS_DIR)
            .map_err(|e| StoreError::io("stat", &inmemfs, e))?;
        if st.map(|s| fsops::file_type(&s)) != Some(FileType::Directory) {
            return Err(StoreError::Conflict {
                path: inmemfs,
                reason: "is not a directory (a symlink is not accepted)".into(),
            });
        }

        if options.mount_tmpfs {
            let mounted = crate::mountpoint::is_mount_point(&inmemfs)
                .map_err(|e| StoreError::io("check mount point", &inmemfs, e))?;
            if mounted {
                tracing::info!(path = %inmemfs.display(), "reusing the file system already mounted at the data root");
            } else {
                let data = match options.tmpfs_size {
                    Some(size) => format!("mode=0700,size={size}"),
                    None => "mode=0700".to_owned(),
                };
                // Digits and ASCII only: never has an interior NUL.
                let data = std::ffi::CString::new(data).map_err(|e| StoreError::Mount {
                    path: inmemfs.clone(),
                    source: io::Error::other(e),
                })?;
                rustix::mount::mount(
                    "tmpfs",
                    &inmemfs,
                    "tmpfs",
                    rustix::mount::MountFlags::NOSUID
                        | rustix::mount::MountFlags::NODEV
                        | rustix::mount::MountFlags::NOEXEC,
                    data.as_c_str(),
                )
                .map_err(|e| StoreError::Mount {
                    path: inmemfs.clone(),
                    source: e.into(),
                })?;
                tracing::info!(path = %inmemfs.display(), "mounted a tmpfs at the data root");
            }
        }

        let inmemfs_fd = fsops::open_dir_at(root_fd.as_fd(), INMEMFS_DIR)
            .map_err(|e| StoreError::io("open", &inmemfs, e))?;
        fsops::set_group_and_mode(
            inmemfs_fd.as_fd(),
            rustix::fs::fstat(&inmemfs_fd)
                .map_err(|e| StoreError::io("stat", &inmemfs, e))?
                .st_gid,
            0o700,
        )
        .map_err(|e| StoreError::io("set mode of", &inmemfs, e))?;
        let statfs =
            rustix::fs::fstatfs(&inmemfs_fd).map_err(|e| StoreError::io("statfs", &inmemfs, e))?;
        #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
        let is_tmpfs = i64::from(statfs.f_type as i64) == TMPFS_MAGIC;
        if !is_tmpfs {
            tracing::warn!(path = %inmemfs.display(), "the data root is not on a tmpfs: private keys are stored on disk");
        }
        let size = rustix::fs::fstatvfs(&inmemfs_fd)
            .map(|v| v.f_blocks.saturating_mul(v.f_frsize))
            .map_err(|e| StoreError::io("statvfs", &inmemfs, e))?;
        Ok(Store {
            view: StoreView {
                root: root.to_path_buf(),
                inmemfs,
                inmemfs_fd,
                is_tmpfs,
            },
            quarantine_removed: std::sync::atomic::AtomicU64::new(0),
            // The reserve is for the node's shared tmpfs; a data root on a
            // disk (unprivileged use) is not the node's memory.
            budget: if is_tmpfs {
                crate::budget::Budget::for_size(size)
            } else {
                crate::budget::Budget {
                    reserve_bytes: 0,
                    ..crate::budget::Budget::for_size(size)
                }
            },
            _lock: lock,
        })
    }

    /// The store's read side, the type through which everything that only
    /// reads (health, the `status` command) takes it. The same methods are
    /// callable on the `Store` itself (`Deref`).
    pub fn view(&self) -> &StoreView {
        &self.view
    }

    /// Creates the volume directory (0700) with `metadata.json` and an empty
    /// `data/` (0750, group `gid` when given) in one step: the directory is
    /// built under a temporary name and renamed into place, so a crash never
    /// leaves a volume without metadata.
    ///
    /// Returns `false`, changing nothing, when the volume already exists.
    pub fn create_volume(&self, meta: &Metadata, gid: Option<u32>) -> Result<bool, StoreError> {
        let id = meta.volume_id.as_str();
        check_volume_id(id)?;
        let gid = self.group(gid)?;
        if self.volume_exists(id)? {
            return Ok(false);
        }
        let json = encode_metadata(meta)?;
        let bytes = crate::budget::on_disk(json.len() as u64);
        self.check_budget(id, "its metadata", bytes)?;
        self.check_reserve(id, bytes)?;
        let tmp = format!("{CREATING_PREFIX}{id}");
        let tmp_path = self.inmemfs.join(&tmp);
        let dev = self.dev()?;
        fsops::remove_tree_at(self.root_fd(), &OsString::from(&tmp), dev)
            .map_err(|e| StoreError::io("remove leftover", &tmp_path, e))?;
        let vol = fsops::ensure_dir_at(self.root_fd(), &tmp, VOLUME_DIR_MODE)
            .map_err(|e| StoreError::io("create directory", &tmp_path, e))?;
        rustix::fs::fchmod(&vol, mode(VOLUME_DIR_MODE))
            .map_err(|e| StoreError::io("set mode of", &tmp_path, e))?;
        let data = fsops::ensure_dir_at(vol.as_fd(), DATA_DIR, DATA_DIR_MODE)
            .map_err(|e| StoreError::io("create directory", tmp_path.join(DATA_DIR), e))?;
        fsops::set_group_and_mode(data.as_fd(), gid, DATA_DIR_MODE)
            .map_err(|e| StoreError::io("set group and mode of", tmp_path.join(DATA_DIR), e))?;
        rustix::fs::fsync(&data)
            .map_err(|e| StoreError::io("fsync", tmp_path.join(DATA_DIR), e))?;
        fsops::write_file_atomic(vol.as_fd(), METADATA_FILE, &json, METADATA_MODE)
            .map_err(|e| StoreError::io("write", tmp_path.join(METADATA_FILE), e))?;
        match rustix::fs::renameat_with(
            self.root_fd(),
            tmp.as_str(),
            self.root_fd(),
            id,
            rustix::fs::RenameFlags::NOREPLACE,
        ) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                let _ = fsops::remove_tree_at(self.root_fd(), &OsString::from(&tmp), dev);
                return Ok(false);
            }
            Err(e) => return Err(StoreError::io("rename into place", self.volume_path(id), e)),
        }
        rustix::fs::fsync(self.root_fd()).map_err(|e| StoreError::io("fsync", &self.inmemfs, e))?;
        Ok(true)
    }

    /// Replaces the volume's `metadata.json` (0600) atomically: temporary file,
    /// fsync, rename, directory fsync. Metadata of a Go-written volume stays
    /// without a format marker.
    pub fn write_metadata(&self, meta: &Metadata) -> Result<(), StoreError> {
        let id = meta.volume_id.as_str();
        let json = encode_metadata(meta)?;
        self.check_budget(
            id,
            "its metadata",
            crate::budget::on_disk(json.len() as u64),
        )?;
        let vol = self.open_volume(id)?;
        fsops::write_file_atomic(vol.as_fd(), METADATA_FILE, &json, METADATA_MODE)
            .map_err(|e| StoreError::io("write", self.volume_path(id).join(METADATA_FILE), e))
    }

    /// Removes the volume directory and everything in it. Symlinks are removed,
    /// never followed; nothing on another mount is touched, except the
    /// volume's own file system on `data/` ([`Store::mount_volume_fs`]),
    /// which is unmounted first. Returns `false` when there was nothing to
    /// remove.
    pub fn remove_volume(&self, id: &str) -> Result<bool, StoreError> {
        check_volume_id(id)?;
        let path = self.volume_path(id);
        if fsops::lstat_at(self.root_fd(), id)
            .map_err(|e| StoreError::io("stat", &path, e))?
            .is_none()
        {
            return Ok(false);
        }
        // A volume with a file system of its own on data/ (mount_volume_fs):
        // unmounted first, as removal never crosses mounts.
        self.unmount_volume_fs(id)?;
        let dev = self.dev()?;
        fsops::remove_tree_at(self.root_fd(), &OsString::from(id), dev)
            .map_err(|e| StoreError::io("remove", &path, e))?;
        rustix::fs::fsync(self.root_fd()).map_err(|e| StoreError::io("fsync", &self.inmemfs, e))?;
        Ok(true)
    }

    /// Writes a file set into the volume's `data/` in one atomic swap
    /// (kubelet AtomicWriter semantics, see [`FileSet`]). Files get mode 0440
    /// and directories 0550, all with group `gid` when given (otherwise the
    /// store's own group). An unchanged set is not rewritten.
    pub fn write_files(
        &self,
        id: &str,
        files: &FileSet,
        gid: Option<u32>,
    ) -> Result<WriteOutcome, StoreError> {
        files.validate()?;
        let gid = self.group(gid)?;
        let set_bytes = files.bytes_on_disk();
        let total = set_bytes.saturating_add(self.private_bytes(id)?);
        self.check_budget(id, "its files", total)?;
        let vol = self.open_volume(id)?;
        // A volume directory without data/ (damaged by hand, or left so by
        // another tool) heals here instead of failing every publish.
        if fsops::lstat_at(vol.as_fd(), DATA_DIR)
            .map_err(|e| StoreError::io("stat", self.volume_path(id).join(DATA_DIR), e))?
            .is_none()
        {
            fsops::ensure_dir_at(vol.as_fd(), DATA_DIR, DATA_DIR_MODE).map_err(|e| {
                StoreError::io("create directory", self.volume_path(id).join(DATA_DIR), e)
            })?;
        }
        let data = self.open_data(id, vol.as_fd())?;
        let first = fsops::lstat_at(data.as_fd(), crate::fileset::DATA_LINK)
            .ok()
            .flatten()
            .is_none();
        if first {
            // A new volume's first set may not eat into the renewal reserve.
            self.check_reserve(id, set_bytes)?;
        }
        fileset::write_set(
            data.as_fd(),
            &self.volume_path(id).join(DATA_DIR),
            files,
            gid,
        )
    }

    fn group(&self, gid: Option<u32>) -> Result<u32, StoreError> {
        match gid {
            Some(u32::MAX) => Err(StoreError::InvalidGroup { gid: u32::MAX }),
            Some(g) => Ok(g),
            None => Ok(rustix::process::getegid().as_raw()),
        }
    }
}

/// A data root's read side: every method that only reads a volume is here.
/// A [`Store`] holds one ([`Store::view`], and `Deref`), so code that only
/// reads takes a `&StoreView` whichever it has; tools such as the driver's
/// `status` command open one alone ([`StoreView::open`]) while another
/// process (the running driver) holds the root: no lock is taken, nothing
/// is created, mounted, moved or removed. Reads go through the same
/// symlink-refusing paths as [`Store`]'s writes.
#[derive(Debug)]
pub struct StoreView {
    pub(crate) root: PathBuf,
    pub(crate) inmemfs: PathBuf,
    pub(crate) inmemfs_fd: OwnedFd,
    pub(crate) is_tmpfs: bool,
}

impl StoreView {
    /// Opens the data root `root` (which must exist, with its `inmemfs/`)
    /// only to read: no lock is taken (the driver may hold it), nothing is
    /// created or mounted.
    pub fn open(root: &Path) -> Result<StoreView, StoreError> {
        let inmemfs = root.join(INMEMFS_DIR);
        let root_fd = rustix::fs::open(
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            mode(0),
        )
        .map_err(|e| StoreError::io("open", root, e))?;
        let inmemfs_fd = fsops::open_dir_at(root_fd.as_fd(), INMEMFS_DIR)
            .map_err(|e| StoreError::io("open", &inmemfs, e))?;
        let statfs =
            rustix::fs::fstatfs(&inmemfs_fd).map_err(|e| StoreError::io("statfs", &inmemfs, e))?;
        #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
        let is_tmpfs = i64::from(statfs.f_type as i64) == TMPFS_MAGIC;
        Ok(StoreView {
            root: root.to_path_buf(),
            inmemfs,
            inmemfs_fd,
            is_tmpfs,
        })
    }

    /// The data root given to [`Store::open`] or [`StoreView::open`].
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/inmemfs`, where the volume directories are.
    pub fn volumes_dir(&self) -> &Path {
        &self.inmemfs
    }

    /// True when volumes are on a tmpfs (keys never touch a disk).
    pub fn is_tmpfs(&self) -> bool {
        self.is_tmpfs
    }

    /// The volume's `data/` directory: what the driver bind-mounts at the
    /// target path.
    pub fn data_dir(&self, id: &str) -> Result<PathBuf, StoreError> {
        check_volume_id(id)?;
        Ok(self.inmemfs.join(id).join(DATA_DIR))
    }

    pub(crate) fn volume_path(&self, id: &str) -> PathBuf {
        self.inmemfs.join(id)
    }

    pub(crate) fn root_fd(&self) -> BorrowedFd<'_> {
        self.inmemfs_fd.as_fd()
    }

    /// Opens the volume directory; `VolumeNotFound` when missing, `Conflict` when
    /// it is a symlink or not a directory.
    pub(crate) fn open_volume(&self, id: &str) -> Result<OwnedFd, StoreError> {
        check_volume_id(id)?;
        match rustix::fs::openat(
            self.root_fd(),
            id,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            mode(0),
        ) {
            Ok(fd) => Ok(fd),
            Err(Errno::NOENT) => Err(StoreError::VolumeNotFound { id: id.to_owned() }),
            Err(Errno::LOOP) | Err(Errno::NOTDIR) => Err(StoreError::Conflict {
                path: self.volume_path(id),
                reason: "is not a directory (symlinks are not followed)".into(),
            }),
            Err(e) => Err(StoreError::io("open", self.volume_path(id), e)),
        }
    }

    fn open_data(&self, id: &str, vol: BorrowedFd<'_>) -> Result<OwnedFd, StoreError> {
        let path = self.volume_path(id).join(DATA_DIR);
        match rustix::fs::openat(
            vol,
            DATA_DIR,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            mode(0),
        ) {
            Ok(fd) => Ok(fd),
            Err(Errno::NOENT) => Err(StoreError::VolumeNotFound { id: id.to_owned() }),
            Err(Errno::LOOP) | Err(Errno::NOTDIR) => Err(StoreError::Conflict {
                path,
                reason: "is not a directory (symlinks are not followed)".into(),
            }),
            Err(e) => Err(StoreError::io("open", path, e)),
        }
    }

    /// True when the volume directory exists.
    pub fn volume_exists(&self, id: &str) -> Result<bool, StoreError> {
        check_volume_id(id)?;
        let st = fsops::lstat_at(self.root_fd(), id)
            .map_err(|e| StoreError::io("stat", self.volume_path(id), e))?;
        Ok(st.is_some_and(|s| fsops::file_type(&s) == FileType::Directory))
    }

    /// Reads and checks the volume's `metadata.json` (either driver's format).
    pub fn read_metadata(&self, id: &str) -> Result<Metadata, StoreError> {
        let vol = self.open_volume(id)?;
        read_metadata_at(vol.as_fd(), id).map_err(|e| match e {
            MetaReadError::Io(source) => {
                StoreError::io("read", self.volume_path(id).join(METADATA_FILE), source)
            }
            MetaReadError::Bad(reason) => StoreError::Metadata {
                id: id.to_owned(),
                reason,
            },
        })
    }

    /// Reads `relpath` (for instance `tls.key`) from the volume's current file
    /// set; `None` when the volume has no set yet or the set has no such file.
    pub fn read_current_file(
        &self,
        id: &str,
        relpath: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        check_relative_path(relpath)?;
        let vol = self.open_volume(id)?;
        let data = self.open_data(id, vol.as_fd())?;
        fileset::read_current(data.as_fd(), relpath).map_err(|e| {
            StoreError::io("read", self.volume_path(id).join(DATA_DIR).join(relpath), e)
        })
    }

    pub(crate) fn dev(&self) -> Result<u64, StoreError> {
        Ok(rustix::fs::fstat(self.root_fd())
            .map_err(|e| StoreError::io("stat", &self.inmemfs, e))?
            .st_dev)
    }
}

pub(crate) enum MetaReadError {
    Io(io::Error),
    Bad(String),
}

/// Encodes `meta`, refusing metadata larger than what
/// [`StoreView::read_metadata`] accepts, so nothing is written that cannot be
/// read back.
fn encode_metadata(meta: &Metadata) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    let json = meta.to_json().map_err(|e| StoreError::Metadata {
        id: meta.volume_id.clone(),
        reason: e.to_string(),
    })?;
    if json.len() > MAX_METADATA {
        return Err(StoreError::Metadata {
            id: meta.volume_id.clone(),
            reason: format!(
                "is {} bytes; at most {MAX_METADATA} are kept per volume (shorten the volume context)",
                json.len()
            ),
        });
    }
    Ok(json)
}

pub(crate) fn read_metadata_at(vol: BorrowedFd<'_>, id: &str) -> Result<Metadata, MetaReadError> {
    let bytes = match fsops::read_file_at(vol, METADATA_FILE) {
        Ok(Some(b)) => b,
        Ok(None) => return Err(MetaReadError::Bad("metadata.json is missing".into())),
        Err(e) => return Err(MetaReadError::Io(e)),
    };
    if bytes.len() > MAX_METADATA {
        return Err(MetaReadError::Bad(
            "metadata.json is larger than 1 MiB".into(),
        ));
    }
    let meta = Metadata::from_json(&bytes)
        .map_err(|e| MetaReadError::Bad(format!("metadata.json: {e}")))?;
    if meta.volume_id != id {
        return Err(MetaReadError::Bad(
            "metadata.json names another volume id than its directory".into(),
        ));
    }
    Ok(meta)
}

fn libc_nofollow() -> i32 {
    OFlags::NOFOLLOW.bits() as i32
}
