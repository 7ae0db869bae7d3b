//! Private side files of a volume: state kept beside `data/`, never seen by
//! the Pod (a pending request's key, the keystore passwords of its Secret).

use rustix::fd::AsFd;
use rustix::fs::FileType;
use rustix::io::Errno;
use zeroize::Zeroizing;

use crate::error::StoreError;
use crate::fsops;
use crate::names::check_private_name;
use crate::secrets::{SECRETS_FILE, VolumeSecrets};
use crate::store::{Store, StoreView};

const PRIVATE_MODE: u32 = 0o600;

impl Store {
    /// Writes a private side file (0600) in the volume directory, outside
    /// `data/`, atomically. For state that must survive a restart but never be
    /// seen by the Pod, such as a pending request's key.
    pub fn write_private(&self, id: &str, name: &str, contents: &[u8]) -> Result<(), StoreError> {
        check_private_name(name)?;
        let vol = self.open_volume(id)?;
        fsops::write_file_atomic(vol.as_fd(), name, contents, PRIVATE_MODE)
            .map_err(|e| StoreError::io("write", self.volume_path(id).join(name), e))
    }

    /// Writes the volume's secrets (keystore passwords from its Secret) to
    /// [`SECRETS_FILE`](crate::SECRETS_FILE): 0600, outside `data/`, atomically,
    /// from a zeroed-on-drop buffer. An empty set removes the file.
    pub fn write_secrets(&self, id: &str, secrets: &VolumeSecrets) -> Result<(), StoreError> {
        if secrets.is_empty() {
            self.remove_private(id, SECRETS_FILE)?;
            return Ok(());
        }
        let json = secrets.to_json().map_err(|e| StoreError::Secrets {
            id: id.to_owned(),
            reason: format!("encoding failed: {:?}", e.classify()),
        })?;
        self.check_budget(
            id,
            "its secrets",
            crate::budget::on_disk(json.len() as u64).saturating_add(self.private_bytes(id)?),
        )?;
        self.write_private(id, SECRETS_FILE, &json)
    }

    /// Removes a private side file; `false` when it did not exist.
    pub fn remove_private(&self, id: &str, name: &str) -> Result<bool, StoreError> {
        check_private_name(name)?;
        let vol = self.open_volume(id)?;
        let path = self.volume_path(id).join(name);
        match fsops::lstat_at(vol.as_fd(), name).map_err(|e| StoreError::io("stat", &path, e))? {
            None => return Ok(false),
            Some(st) if fsops::file_type(&st) == FileType::Directory => {
                return Err(StoreError::Conflict {
                    path,
                    reason: "is a directory".into(),
                });
            }
            Some(_) => {}
        }
        match rustix::fs::unlinkat(&vol, name, rustix::fs::AtFlags::empty()) {
            Ok(()) => {}
            Err(Errno::NOENT) => return Ok(false),
            Err(e) => return Err(StoreError::io("remove", &path, e)),
        }
        rustix::fs::fsync(&vol).map_err(|e| StoreError::io("fsync", self.volume_path(id), e))?;
        Ok(true)
    }
}

impl StoreView {
    /// Reads a private side file; `None` when it does not exist.
    pub fn read_private(
        &self,
        id: &str,
        name: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        check_private_name(name)?;
        let vol = self.open_volume(id)?;
        fsops::read_file_at(vol.as_fd(), name)
            .map_err(|e| StoreError::io("read", self.volume_path(id).join(name), e))
    }

    /// Reads the volume's secrets; empty when it has none.
    pub fn read_secrets(&self, id: &str) -> Result<VolumeSecrets, StoreError> {
        match self.read_private(id, SECRETS_FILE)? {
            None => Ok(VolumeSecrets::new()),
            Some(bytes) => VolumeSecrets::from_json(&bytes).map_err(|reason| StoreError::Secrets {
                id: id.to_owned(),
                reason,
            }),
        }
    }
}
