//! The data root is one pool shared by every volume on the node: a per-volume
//! byte budget and a reserve for renewals keep one Pod from filling it and
//! failing every other volume's renewal with `ENOSPC`.
//!
//! - Each volume may take at most [`Budget::volume_bytes`] (metadata, private
//!   files such as `secrets.json`, and its file set), checked before writing.
//! - A new volume (its creation and its first file set) is refused when the
//!   file system would keep less than [`Budget::reserve_bytes`] free, so that
//!   renewals of existing volumes (which write a whole new set before the old
//!   one goes) still fit when new volumes are refused.

use rustix::fd::AsFd;
use rustix::fs::{AtFlags, FileType};

use crate::error::StoreError;
use crate::fsops;
use crate::store::Store;

/// Per-volume budget and renewal reserve of a data root, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Most bytes one volume may take.
    pub volume_bytes: u64,
    /// Bytes new volumes must leave free, for renewals of existing ones.
    pub reserve_bytes: u64,
}

impl Budget {
    /// The defaults for a data root of `size` bytes: a sixteenth of it per
    /// volume (2 MiB of the default 32 MiB tmpfs), an eighth kept for renewals.
    pub fn for_size(size: u64) -> Budget {
        Budget {
            volume_bytes: (size / 16).max(64 * 1024),
            reserve_bytes: size / 8,
        }
    }
}

/// How full the data root's file system is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Bytes in use.
    pub used_bytes: u64,
    /// Size of the file system.
    pub size_bytes: u64,
}

impl Usage {
    /// Bytes still free.
    pub fn free_bytes(&self) -> u64 {
        self.size_bytes.saturating_sub(self.used_bytes)
    }
}

/// What a file of `len` bytes takes on the file system: whole pages.
pub(crate) fn on_disk(len: u64) -> u64 {
    len.div_ceil(4096).max(1) * 4096
}

impl Store {
    /// The per-volume budget and renewal reserve in force.
    pub fn budget(&self) -> Budget {
        self.budget
    }

    /// Sets the per-volume budget and renewal reserve (the default is
    /// [`Budget::for_size`] of the data root's size).
    #[must_use]
    pub fn with_budget(mut self, budget: Budget) -> Store {
        self.budget = budget;
        self
    }

    /// How full the data root's file system is (`statvfs`).
    pub fn usage(&self) -> Result<Usage, StoreError> {
        let st = rustix::fs::fstatvfs(self.root_fd())
            .map_err(|e| StoreError::io("statvfs", &self.inmemfs, e))?;
        let size_bytes = st.f_blocks.saturating_mul(st.f_frsize);
        let free = st.f_bfree.saturating_mul(st.f_frsize);
        Ok(Usage {
            used_bytes: size_bytes.saturating_sub(free),
            size_bytes,
        })
    }

    /// Bytes the volume's own files outside `data/` take (metadata, private
    /// files), in whole pages.
    pub(crate) fn private_bytes(&self, id: &str) -> Result<u64, StoreError> {
        let vol = self.open_volume(id)?;
        let names = fsops::list_dir(vol.as_fd())
            .map_err(|e| StoreError::io("list", self.volume_path(id), e))?;
        let mut total = 0u64;
        for (name, kind) in names {
            if kind != FileType::RegularFile {
                continue;
            }
            if let Ok(st) =
                rustix::fs::statat(vol.as_fd(), name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)
            {
                total = total.saturating_add(on_disk(u64::try_from(st.st_size).unwrap_or(0)));
            }
        }
        Ok(total)
    }

    /// Refuses `bytes` for volume `id` over its budget.
    pub(crate) fn check_budget(&self, id: &str, what: &str, bytes: u64) -> Result<(), StoreError> {
        if bytes > self.budget.volume_bytes {
            return Err(StoreError::OverBudget {
                id: id.to_owned(),
                what: what.to_owned(),
                bytes,
                budget: self.budget.volume_bytes,
            });
        }
        Ok(())
    }

    /// Refuses a new volume's `bytes` when they would eat into the reserve.
    pub(crate) fn check_reserve(&self, id: &str, bytes: u64) -> Result<(), StoreError> {
        let usage = self.usage()?;
        let left = usage.free_bytes().saturating_sub(bytes);
        if left < self.budget.reserve_bytes {
            return Err(StoreError::Full {
                id: id.to_owned(),
                used: usage.used_bytes,
                size: usage.size_bytes,
                reserve: self.budget.reserve_bytes,
            });
        }
        Ok(())
    }
}
