//! [`StoreView`]'s look at the quarantine, for tools such as the driver's
//! `status` command.

use std::path::PathBuf;
use std::time::SystemTime;

use rustix::fd::AsFd;

use crate::error::StoreError;
use crate::fsops;
use crate::metadata::Metadata;
use crate::quarantine::stamp_of;
use crate::store::{QUARANTINE_DIR, StoreView, read_metadata_at};

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
    /// The entries of the quarantine, sorted by name; empty when there is
    /// none.
    pub fn quarantined(&self) -> Result<Vec<Quarantined>, StoreError> {
        let qpath = self.volumes_dir().join(QUARANTINE_DIR);
        let q = match fsops::open_dir_at(self.root_fd(), QUARANTINE_DIR) {
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
