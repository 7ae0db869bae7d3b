//! A read-only look at a data root that another process (the running
//! driver) holds open: for tools such as the driver's `status` command.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rustix::fd::AsFd;
use zeroize::Zeroizing;

use crate::error::StoreError;
use crate::fsops;
use crate::metadata::Metadata;
use crate::quarantine::stamp_of;
use crate::secrets::VolumeSecrets;
use crate::store::{QUARANTINE_DIR, Store, read_metadata_at};
use crate::usage::VolumeUsage;

/// A data root opened only to read: no lock is taken (the driver may hold
/// it), nothing is created, mounted, moved or removed. Reads go through the
/// same symlink-refusing paths as [`Store`]'s.
#[derive(Debug)]
pub struct StoreView {
    store: Store,
}

/// One entry of the quarantine (`inmemfs/.quarantine/`), as
/// [`StoreView::quarantined`] finds it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Quarantined {
    /// The entry's name in the quarantine (`<volume id>.<nanoseconds>.<n>`).
    pub name: String,
    /// When it was set aside, from its name.
    pub set_aside_at: Option<SystemTime>,
    /// Its metadata, when it still has readable metadata for the volume id
    /// its name starts with.
    pub metadata: Option<Metadata>,
    /// Where it is.
    pub path: PathBuf,
}

impl StoreView {
    /// Opens the data root `root` (which must exist, with its `inmemfs/`).
    pub fn open(root: &Path) -> Result<StoreView, StoreError> {
        Ok(StoreView {
            store: Store::open_unlocked(root)?,
        })
    }

    /// `<root>/inmemfs`.
    pub fn volumes_dir(&self) -> &Path {
        self.store.volumes_dir()
    }

    /// True when the volumes are on a tmpfs.
    pub fn is_tmpfs(&self) -> bool {
        self.store.is_tmpfs()
    }

    /// See [`Store::volume_ids`].
    pub fn volume_ids(&self) -> Result<Vec<String>, StoreError> {
        self.store.volume_ids()
    }

    /// See [`Store::read_metadata`].
    pub fn read_metadata(&self, id: &str) -> Result<Metadata, StoreError> {
        self.store.read_metadata(id)
    }

    /// See [`Store::read_private`].
    pub fn read_private(
        &self,
        id: &str,
        name: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        self.store.read_private(id, name)
    }

    /// See [`Store::read_secrets`].
    pub fn read_secrets(&self, id: &str) -> Result<VolumeSecrets, StoreError> {
        self.store.read_secrets(id)
    }

    /// See [`Store::read_current_file`].
    pub fn read_current_file(
        &self,
        id: &str,
        relpath: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        self.store.read_current_file(id, relpath)
    }

    /// See [`Store::current_files`].
    pub fn current_files(&self, id: &str) -> Result<Vec<String>, StoreError> {
        self.store.current_files(id)
    }

    /// See [`Store::volume_usage`].
    pub fn volume_usage(&self, id: &str) -> Result<VolumeUsage, StoreError> {
        self.store.volume_usage(id)
    }

    /// The entries of the quarantine, sorted by name; empty when there is
    /// none.
    pub fn quarantined(&self) -> Result<Vec<Quarantined>, StoreError> {
        let qpath = self.store.volumes_dir().join(QUARANTINE_DIR);
        let q = match fsops::open_dir_at(self.store.root_fd(), QUARANTINE_DIR) {
            Ok(fd) => fd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::io("open", &qpath, e)),
        };
        let mut out = Vec::new();
        for (name, _) in
            fsops::list_dir(q.as_fd()).map_err(|e| StoreError::io("list", &qpath, e))?
        {
            let set_aside_at = stamp_of(&name);
            let Some(name) = name.to_str().map(str::to_owned) else {
                continue;
            };
            // `<base>.<nanoseconds>.<attempt>`: the base is the volume id.
            let id = name.rsplitn(3, '.').nth(2).unwrap_or_default();
            let metadata = fsops::open_dir_at(q.as_fd(), &name)
                .ok()
                .and_then(|vol| read_metadata_at(vol.as_fd(), id).ok());
            out.push(Quarantined {
                path: qpath.join(&name),
                name,
                set_aside_at,
                metadata,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}
