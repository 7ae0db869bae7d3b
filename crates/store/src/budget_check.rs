//! The [`Store`]'s side of the data-root budget ([`crate::budget`]): what a
//! volume already takes, and the checks made before anything is written.
//! Kept apart from the budget's values so that `store` (which holds a
//! [`Budget`]) and this module do not import each other.

use rustix::fd::AsFd;
use rustix::fs::{AtFlags, FileType};

use crate::budget::{Budget, Usage, on_disk};
use crate::error::StoreError;
use crate::fsops;
use crate::store::Store;

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
