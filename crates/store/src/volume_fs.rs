//! A volume whose `data/` is a file system of its own: a small tmpfs
//! mounted there with options the driver passes (an SELinux `context=`),
//! which a bind mount of a directory on the shared tmpfs cannot carry
//! (`context=` belongs to a file system, and a bind mount or its remount
//! cannot change it). [`Store::remove_volume`] unmounts it first.

use std::io;
use std::path::{Path, PathBuf};

use rustix::fd::{AsFd, AsRawFd};
use rustix::mount::{MountFlags, UnmountFlags};

use crate::error::StoreError;
use crate::fileset::DATA_DIR_MODE;
use crate::fsops;
use crate::store::{DATA_DIR, Store};

/// Most bytes of the extra options [`Store::mount_volume_fs`] takes.
pub const MAX_VOLUME_FS_OPTIONS: usize = 512;

impl Store {
    /// Mounts a tmpfs of `size` bytes on volume `id`'s `data/` (mode 0750,
    /// group `gid` or the store's), with `options` added to its mount data
    /// (for instance `context="system_u:object_r:container_file_t:s0:c1,c2"`).
    /// Returns `false`, changing nothing, when `data/` already is a mount
    /// point. Fails with [`StoreError::Conflict`] when `data/` already holds
    /// files (a file system cannot be put under them) or `options` is not
    /// plain printable ASCII without `\0` of at most
    /// [`MAX_VOLUME_FS_OPTIONS`] bytes.
    pub fn mount_volume_fs(
        &self,
        id: &str,
        size: u64,
        gid: Option<u32>,
        options: &str,
    ) -> Result<bool, StoreError> {
        let path = self.data_dir(id)?;
        if options.len() > MAX_VOLUME_FS_OPTIONS
            || !options.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
        {
            return Err(StoreError::Conflict {
                path,
                reason: format!(
                    "mount options must be printable ASCII of at most {MAX_VOLUME_FS_OPTIONS} bytes"
                ),
            });
        }
        let vol = self.open_volume(id)?;
        if crate::mountpoint::is_mount_point(&path)
            .map_err(|e| StoreError::io("check mount point", &path, e))?
        {
            return Ok(false);
        }
        let data = fsops::open_dir_at(vol.as_fd(), DATA_DIR)
            .map_err(|e| StoreError::io("open", &path, e))?;
        let entries =
            fsops::list_dir(data.as_fd()).map_err(|e| StoreError::io("list", &path, e))?;
        if !entries.is_empty() {
            return Err(StoreError::Conflict {
                path,
                reason: "already holds files; its own file system can only be mounted before the first issuance".into(),
            });
        }
        let gid = match gid {
            Some(g) => g,
            None => rustix::process::getegid().as_raw(),
        };
        let mut opts = format!("mode={DATA_DIR_MODE:o},gid={gid},size={size}");
        if !options.is_empty() {
            opts.push(',');
            opts.push_str(options);
        }
        let opts = std::ffi::CString::new(opts).map_err(|e| StoreError::Mount {
            path: path.clone(),
            source: io::Error::other(e),
        })?;
        // Through the open descriptor, so the mount lands on the directory
        // checked above whatever happens to the path meanwhile.
        let at = format!("/proc/self/fd/{}", data.as_fd().as_raw_fd());
        rustix::mount::mount(
            "tmpfs",
            at.as_str(),
            "tmpfs",
            MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
            opts.as_c_str(),
        )
        .map_err(|e| StoreError::Mount {
            path: path.clone(),
            source: e.into(),
        })?;
        Ok(true)
    }

    /// Unmounts the file system of volume `id`'s `data/`, if it has one
    /// (detached, so a reader still inside cannot keep the volume from
    /// being removed).
    pub(crate) fn unmount_volume_fs(&self, id: &str) -> Result<(), StoreError> {
        let path: PathBuf = self.volume_path(id).join(DATA_DIR);
        unmount_if_mount(&path).map_err(|e| StoreError::io("unmount", &path, e))
    }
}

fn unmount_if_mount(path: &Path) -> io::Result<()> {
    for _ in 0..16 {
        match crate::mountpoint::is_mount_point(path) {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
        rustix::mount::unmount(path, UnmountFlags::NOFOLLOW | UnmountFlags::DETACH)?;
    }
    Err(io::Error::other("still a mount point after 16 unmounts"))
}
