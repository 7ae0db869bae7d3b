//! What a volume uses of the data root's file system, for the kubelet's
//! volume stats (`NodeGetVolumeStats`), and the names of the files it serves.

use rustix::fd::{AsFd, BorrowedFd};
use rustix::fs::FileType;

use crate::error::StoreError;
use crate::fileset::{self};
use crate::fsops;
use crate::store::DATA_DIR;
#[cfg(doc)]
use crate::store::StoreView;

/// Most entries [`StoreView::volume_usage`] and [`StoreView::current_files`] look
/// at below one volume's `data/`: far above what any volume the driver
/// writes holds (its file names are bounded when parsed), so a directory
/// planted there cannot make a stats call walk without end.
pub const MAX_WALK_ENTRIES: usize = 10_000;

/// What one volume's `data/` uses, and what its file system has left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct VolumeUsage {
    /// Bytes allocated to `data/` and everything below it (`st_blocks`,
    /// as `du` counts): what the volume costs the tmpfs.
    pub used_bytes: u64,
    /// Inodes of `data/` and everything below it (itself included).
    pub used_inodes: u64,
    /// Bytes still free on the data root's file system (shared by every
    /// volume of the node).
    pub available_bytes: u64,
    /// Inodes still free on it.
    pub available_inodes: u64,
    /// True when the walk stopped at [`MAX_WALK_ENTRIES`]: the used
    /// figures are a lower bound.
    pub truncated: bool,
}

impl crate::store::StoreView {
    /// The space and inodes volume `id`'s `data/` uses, with what the data
    /// root's file system has left. Walks without following symbolic links
    /// and without crossing into another mount.
    pub fn volume_usage(&self, id: &str) -> Result<VolumeUsage, StoreError> {
        let vol = self.open_volume(id)?;
        let path = self.volume_path(id).join(DATA_DIR);
        let data = fsops::open_dir_at(vol.as_fd(), DATA_DIR)
            .map_err(|e| StoreError::io("open", &path, e))?;
        let st = rustix::fs::fstat(&data).map_err(|e| StoreError::io("stat", &path, e))?;
        let mut usage = VolumeUsage {
            used_bytes: block_bytes(&st),
            used_inodes: 1,
            ..VolumeUsage::default()
        };
        let mut budget = MAX_WALK_ENTRIES;
        walk(data.as_fd(), st.st_dev, &mut usage, &mut budget)
            .map_err(|e| StoreError::io("walk", &path, e))?;
        let vfs = rustix::fs::fstatvfs(&data).map_err(|e| StoreError::io("statvfs", &path, e))?;
        usage.available_bytes = vfs.f_bavail.saturating_mul(vfs.f_frsize);
        usage.available_inodes = vfs.f_favail;
        Ok(usage)
    }

    /// The paths of the files volume `id` serves now (its current file set,
    /// as the Pod sees them: `tls.crt`, `bar/foo.crt`), sorted; empty before
    /// the first issuance. At most [`MAX_WALK_ENTRIES`].
    pub fn current_files(&self, id: &str) -> Result<Vec<String>, StoreError> {
        let vol = self.open_volume(id)?;
        let path = self.volume_path(id).join(DATA_DIR);
        let data = match fsops::open_dir_at(vol.as_fd(), DATA_DIR) {
            Ok(fd) => fd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::io("open", &path, e)),
        };
        let set = match fileset::current_set(data.as_fd()) {
            Ok(Some(set)) => set,
            Ok(None) => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::io("read", &path, e)),
        };
        let set_fd =
            fsops::open_dir_at(data.as_fd(), &set).map_err(|e| StoreError::io("open", &path, e))?;
        let mut out = Vec::new();
        let mut budget = MAX_WALK_ENTRIES;
        list_files(set_fd.as_fd(), "", &mut out, &mut budget)
            .map_err(|e| StoreError::io("list", &path, e))?;
        out.sort();
        Ok(out)
    }
}

fn block_bytes(st: &rustix::fs::Stat) -> u64 {
    u64::try_from(st.st_blocks).unwrap_or(0).saturating_mul(512)
}

fn walk(
    dir: BorrowedFd<'_>,
    dev: u64,
    usage: &mut VolumeUsage,
    budget: &mut usize,
) -> std::io::Result<()> {
    for (name, _) in fsops::list_dir(dir)? {
        if *budget == 0 {
            usage.truncated = true;
            return Ok(());
        }
        *budget -= 1;
        let Some(name) = name.to_str() else { continue };
        let Some(st) = fsops::lstat_at(dir, name)? else {
            continue;
        };
        usage.used_inodes += 1;
        usage.used_bytes = usage.used_bytes.saturating_add(block_bytes(&st));
        if fsops::file_type(&st) == FileType::Directory && st.st_dev == dev {
            let child = fsops::open_dir_at(dir, name)?;
            walk(child.as_fd(), dev, usage, budget)?;
        }
    }
    Ok(())
}

fn list_files(
    dir: BorrowedFd<'_>,
    prefix: &str,
    out: &mut Vec<String>,
    budget: &mut usize,
) -> std::io::Result<()> {
    for (name, ty) in fsops::list_dir(dir)? {
        if *budget == 0 {
            return Ok(());
        }
        *budget -= 1;
        let Some(name) = name.to_str() else { continue };
        let ty = if ty == FileType::Unknown {
            fsops::lstat_at(dir, name)?.map_or(FileType::Unknown, |s| fsops::file_type(&s))
        } else {
            ty
        };
        let path = format!("{prefix}{name}");
        match ty {
            FileType::Directory => {
                let child = fsops::open_dir_at(dir, name)?;
                list_files(child.as_fd(), &format!("{path}/"), out, budget)?;
            }
            FileType::RegularFile => out.push(path),
            _ => {}
        }
    }
    Ok(())
}
