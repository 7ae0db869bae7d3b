//! The store's error type.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in the store.
///
/// Messages name the path or volume involved and never contain file contents
/// (keys) or volume context values (tokens, passwords).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Another process (another driver instance) holds the data root's lock.
    #[error(
        "data root {root} is locked by another cert-manager CSI driver instance running on this \
         node; only one instance may use a data root at a time (stop the other instance, or give \
         this one a different data root)"
    )]
    AlreadyRunning {
        /// The data root given to [`Store::open`](crate::Store::open).
        root: PathBuf,
    },

    /// A volume id was refused.
    #[error("invalid volume id {id:?}: {reason}")]
    InvalidVolumeId {
        /// The id, shortened when very long.
        id: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A file name (in a file set, or of a private side file) was refused.
    #[error("invalid file name {name:?}: {reason}")]
    InvalidFileName {
        /// The name, shortened when very long.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The group id cannot be used (`u32::MAX` means "no change" to the kernel).
    #[error("invalid group id {gid}: must be below 4294967295")]
    InvalidGroup {
        /// The refused group id.
        gid: u32,
    },

    /// The volume does not exist in the store.
    #[error("volume {id} does not exist in the store")]
    VolumeNotFound {
        /// The volume id.
        id: String,
    },

    /// A volume's `metadata.json` is missing, unparsable, of an unknown format, or
    /// names another volume.
    #[error("metadata of volume {id}: {reason}")]
    Metadata {
        /// The volume id.
        id: String,
        /// What is wrong (never contains values from the file).
        reason: String,
    },

    /// A volume's secrets file is unreadable or of an unknown format.
    #[error("secrets file of volume {id}: {reason}")]
    Secrets {
        /// The volume id.
        id: String,
        /// What is wrong (never contains values from the file).
        reason: String,
    },

    /// Something that should be ours is in the way (for instance a regular file
    /// where a user-visible symlink belongs), or something is where the store
    /// refuses to follow it (a symlink, another mount).
    #[error("{path}: {reason}")]
    Conflict {
        /// The path involved.
        path: PathBuf,
        /// What was found.
        reason: String,
    },

    /// Mounting the tmpfs failed.
    #[error(
        "mounting a tmpfs at {path} failed: {source} (the driver needs CAP_SYS_ADMIN, or an existing mount there)"
    )]
    Mount {
        /// Where the tmpfs was to be mounted.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// A write would take the volume over its byte budget.
    #[error(
        "volume {id}: {what} would take {bytes} bytes of the node's data root, more than the \
         per-volume budget of {budget} bytes (--tmpfs-volume-budget); write fewer or smaller files \
         (keystores, truststores, credential bundles) or shorter annotations"
    )]
    OverBudget {
        /// The volume id.
        id: String,
        /// What was to be written.
        what: String,
        /// The bytes it would take.
        bytes: u64,
        /// The budget.
        budget: u64,
    },

    /// A new volume would leave less free than the renewal reserve.
    #[error(
        "volume {id}: the node's data root is full for new volumes ({used} of {size} bytes used; \
         {reserve} bytes are kept for renewals of existing volumes, --tmpfs-renewal-reserve); \
         remove unused volumes or raise --tmpfs-size"
    )]
    Full {
        /// The volume id.
        id: String,
        /// Bytes in use.
        used: u64,
        /// Size of the file system.
        size: u64,
        /// The reserve.
        reserve: u64,
    },

    /// A file system operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done ("create directory", "write", ...).
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl StoreError {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
        source: impl Into<io::Error>,
    ) -> Self {
        StoreError::Io {
            op,
            path: path.into(),
            source: source.into(),
        }
    }
}

/// Shortens untrusted text for error messages.
pub(crate) fn shorten(s: &str) -> String {
    const MAX: usize = 80;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}
