//! Listing the data root: the volume ids now there, and the recovery at
//! start that reads every volume and sets aside what it cannot use.

use rustix::fd::AsFd;
use rustix::fs::FileType;

use crate::error::StoreError;
use crate::fsops;
use crate::metadata::Metadata;
use crate::names::check_volume_id;
use crate::quarantine::SetAside;
use crate::store::{CREATING_PREFIX, MetaReadError, QUARANTINE_DIR, Store, read_metadata_at};

/// What [`Store::list`] found.
#[derive(Debug, Clone, Default)]
pub struct Recovery {
    /// Every usable volume, in volume id order.
    pub volumes: Vec<Metadata>,
    /// Everything else in the data root, moved to `inmemfs/.quarantine/`.
    pub set_aside: Vec<SetAside>,
}

impl Store {
    /// Every volume with its metadata, for recovery at start. Entries that are
    /// not usable volumes (missing, unparsable, unknown-format or mismatched
    /// metadata, invalid names, non-directories) are moved to
    /// `inmemfs/.quarantine/` and reported; nothing is deleted except the
    /// store's own leftovers of an interrupted [`Store::create_volume`].
    pub fn list(&self) -> Result<Recovery, StoreError> {
        let entries = fsops::list_dir(self.root_fd())
            .map_err(|e| StoreError::io("list", &self.inmemfs, e))?;
        let mut out = Recovery::default();
        for (name, ty) in entries {
            let Some(name_str) = name.to_str().map(str::to_owned) else {
                let shown = name.to_string_lossy().into_owned();
                out.set_aside
                    .push(self.set_aside(&name, shown, "name is not valid UTF-8".into()));
                continue;
            };
            if name_str == QUARANTINE_DIR {
                continue;
            }
            if name_str.starts_with(CREATING_PREFIX) {
                tracing::info!(name = %name_str, "removing a volume directory whose creation was interrupted");
                let dev = self.dev()?;
                if let Err(e) = fsops::remove_tree_at(self.root_fd(), &name, dev) {
                    tracing::warn!(name = %name_str, error = %e, "could not remove an interrupted volume creation");
                }
                continue;
            }
            if let Err(e) = check_volume_id(&name_str) {
                let reason = match e {
                    StoreError::InvalidVolumeId { reason, .. } => {
                        format!("not a volume id: {reason}")
                    }
                    other => other.to_string(),
                };
                out.set_aside.push(self.set_aside(&name, name_str, reason));
                continue;
            }
            let ty = if ty == FileType::Unknown {
                fsops::lstat_at(self.root_fd(), &name_str)
                    .ok()
                    .flatten()
                    .map(|s| fsops::file_type(&s))
                    .unwrap_or(FileType::Unknown)
            } else {
                ty
            };
            if ty != FileType::Directory {
                out.set_aside
                    .push(self.set_aside(&name, name_str, "not a directory".into()));
                continue;
            }
            let result = fsops::open_dir_at(self.root_fd(), &name_str)
                .map_err(MetaReadError::Io)
                .and_then(|vol| read_metadata_at(vol.as_fd(), &name_str));
            match result {
                Ok(meta) => out.volumes.push(meta),
                Err(MetaReadError::Bad(reason)) => {
                    out.set_aside.push(self.set_aside(&name, name_str, reason))
                }
                Err(MetaReadError::Io(e)) => {
                    let reason = format!("metadata.json could not be read: {e}");
                    out.set_aside.push(self.set_aside(&name, name_str, reason));
                }
            }
        }
        out.volumes.sort_by(|a, b| a.volume_id.cmp(&b.volume_id));
        for s in &out.set_aside {
            tracing::warn!(name = %s.name, reason = %s.reason, moved_to = ?s.moved_to, "set aside an unusable entry in the data root");
        }
        Ok(out)
    }
}

impl crate::store::StoreView {
    /// The ids of the volume directories now in the store, sorted. Unlike
    /// [`Store::list`] this changes nothing, so it is safe while other
    /// operations run: entries that are not volume directories (the
    /// quarantine, creations in progress, bad names) are skipped.
    pub fn volume_ids(&self) -> Result<Vec<String>, StoreError> {
        let entries = fsops::list_dir(self.root_fd())
            .map_err(|e| StoreError::io("list", &self.inmemfs, e))?;
        let mut ids: Vec<String> = entries
            .into_iter()
            .filter(|(_, ty)| matches!(ty, FileType::Directory | FileType::Unknown))
            .filter_map(|(name, _)| name.into_string().ok())
            .filter(|name| check_volume_id(name).is_ok())
            .collect();
        ids.sort();
        Ok(ids)
    }
}
