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
