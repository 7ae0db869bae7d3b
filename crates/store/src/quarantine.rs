//! The quarantine: unusable entries of the data root are moved to
//! `inmemfs/.quarantine/` (reversible, named with the time they were set
//! aside) and removed, keys included, once older than a grace period.

use std::ffi::{OsStr, OsString};
use std::io;
use std::path::PathBuf;
use std::time::SystemTime;

use rustix::fd::AsFd;
use rustix::fs::OFlags;
use rustix::io::Errno;

use crate::error::StoreError;
use crate::fsops;
use crate::names::check_volume_id;
use crate::store::{QUARANTINE_DIR, Store};

/// One volume directory that [`Store::list`] could not use and set aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAside {
    /// The entry's name in `inmemfs/` (usually the volume id).
    pub name: String,
    /// Why it was set aside (never contains values from the files).
    pub reason: String,
    /// Where it was moved to, or `None` when moving failed and it was left in place.
    pub moved_to: Option<PathBuf>,
}

impl Store {
    /// Moves entry `name` of `inmemfs/` to the quarantine and describes it;
    /// when the move fails it is left in place (and `moved_to` is `None`).
    pub(crate) fn set_aside(&self, name: &OsString, shown: String, reason: String) -> SetAside {
        let moved_to = match self.move_to_quarantine(name) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(name = %shown, error = %e, "could not move an unusable entry aside; left in place");
                None
            }
        };
        SetAside {
            name: crate::error::shorten(&shown),
            reason,
            moved_to,
        }
    }

    /// Moves the directory of volume `id` to `inmemfs/.quarantine/`, as
    /// [`Store::list`] does with what it cannot use, so
    /// [`Store::purge_quarantine`] removes it (its keys included) once it is
    /// older than the grace period; until then it can be moved back by hand.
    /// For a volume whose metadata cannot be read while the driver runs.
    ///
    /// Moves nothing else: the caller makes sure nothing uses the volume (its
    /// lock is free and [`Store::volume_mounted`] is false). `reason` is
    /// returned in the [`SetAside`], never written anywhere.
    pub fn set_aside_volume(&self, id: &str, reason: &str) -> Result<SetAside, StoreError> {
        check_volume_id(id)?;
        if !self.volume_exists(id)? {
            return Err(StoreError::VolumeNotFound { id: id.to_owned() });
        }
        let moved_to = self
            .move_to_quarantine(&OsString::from(id))
            .map_err(|e| StoreError::io("move to the quarantine", self.volume_path(id), e))?;
        Ok(SetAside {
            name: crate::error::shorten(id),
            reason: reason.to_owned(),
            moved_to: Some(moved_to),
        })
    }

    /// Whether the directory of volume `id`, or anything in it (its `data/`
    /// bind-mounted at a Pod's target path), is mounted anywhere in this
    /// mount namespace, from `/proc/self/mountinfo`. Without its metadata
    /// the target path is unknown; this asks the kernel instead.
    pub fn volume_mounted(&self, id: &str) -> Result<bool, StoreError> {
        check_volume_id(id)?;
        let roots = self.mount_roots()?;
        Ok(mounted_entry(&roots, OsStr::new(id)))
    }

    /// The roots of the mounts of the data root's file system, as
    /// [`crate::mountpoint::mount_roots_on`] gives them.
    fn mount_roots(&self) -> Result<Vec<PathBuf>, StoreError> {
        crate::mountpoint::mount_roots_on(self.dev()?)
            .map_err(|e| StoreError::io("read", crate::mountpoint::MOUNTINFO, e))
    }

    /// Removes the entries of `inmemfs/.quarantine/` set aside more than
    /// `grace` ago (their keys included), returning how many went. The time
    /// an entry was set aside is the stamp in its name; an entry without one
    /// counts from its inode's change time (which the move set). An entry
    /// still mounted somewhere (a set-aside volume a Pod still has bound) is
    /// kept, whatever its age.
    pub fn purge_quarantine(&self, grace: std::time::Duration) -> Result<usize, StoreError> {
        let qpath = self.inmemfs.join(QUARANTINE_DIR);
        let q = match rustix::fs::openat(
            self.root_fd(),
            QUARANTINE_DIR,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(0),
            Err(e) => return Err(StoreError::io("open", &qpath, e)),
        };
        let dev = self.dev()?;
        let mounts = self.mount_roots()?;
        let now = SystemTime::now();
        let mut removed = 0;
        for (name, _) in
            fsops::list_dir(q.as_fd()).map_err(|e| StoreError::io("list", &qpath, e))?
        {
            let set_aside = stamp_of(&name).or_else(|| {
                let st =
                    rustix::fs::statat(&q, name.as_os_str(), rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
                        .ok()?;
                let secs = u64::try_from(st.st_ctime).ok()?;
                Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs))
            });
            let old = set_aside.is_none_or(|t| now.duration_since(t).is_ok_and(|age| age > grace));
            if !old {
                continue;
            }
            if mounted_entry(&mounts, &name) {
                tracing::warn!(name = %name.to_string_lossy(), "a set-aside entry past its grace period is still mounted; kept");
                continue;
            }
            match fsops::remove_tree_at(q.as_fd(), &name, dev) {
                Ok(()) => removed += 1,
                Err(e) => {
                    tracing::warn!(name = %name.to_string_lossy(), error = %e, "could not remove a set-aside entry")
                }
            }
        }
        self.quarantine_removed
            .fetch_add(removed as u64, std::sync::atomic::Ordering::Relaxed);
        if removed > 0 {
            tracing::info!(
                removed,
                grace_s = grace.as_secs(),
                "removed set-aside entries past their grace period"
            );
        }
        Ok(removed)
    }

    /// How many set-aside entries [`Store::purge_quarantine`] removed since
    /// the store was opened (a counter for metrics).
    pub fn quarantine_removed(&self) -> u64 {
        self.quarantine_removed
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn move_to_quarantine(&self, name: &OsString) -> io::Result<PathBuf> {
        let q = fsops::ensure_dir_at(self.root_fd(), QUARANTINE_DIR, 0o700)?;
        let base: String = name
            .to_string_lossy()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .take(150)
            .collect();
        let base = base.trim_start_matches('.');
        let stamp = jiff::Timestamp::try_from(SystemTime::now())
            .map(|t| t.as_nanosecond())
            .unwrap_or(0);
        for attempt in 0..100u32 {
            let target = format!("{base}.{stamp}.{attempt}");
            match rustix::fs::renameat_with(
                self.root_fd(),
                name.as_os_str(),
                &q,
                target.as_str(),
                rustix::fs::RenameFlags::NOREPLACE,
            ) {
                Ok(()) => {
                    rustix::fs::fsync(self.root_fd())?;
                    return Ok(self.inmemfs.join(QUARANTINE_DIR).join(target));
                }
                Err(Errno::EXIST) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(io::Error::other("no free name in the quarantine directory"))
    }
}

/// Whether one of the mount `roots` (of the data root's file system) is the
/// entry `name` of `inmemfs/` or of its quarantine, or lies below it. Only
/// whole path components match, and any component does: a false match only
/// keeps an entry.
fn mounted_entry(roots: &[PathBuf], name: &OsStr) -> bool {
    roots
        .iter()
        .any(|root| root.components().any(|c| c.as_os_str() == name))
}

/// The time in a quarantine entry's name (`<base>.<unix nanoseconds>.<attempt>`).
pub(crate) fn stamp_of(name: &OsString) -> Option<SystemTime> {
    let name = name.to_str()?;
    let mut parts = name.rsplit('.');
    parts.next()?.parse::<u32>().ok()?;
    let nanos = parts.next()?.parse::<u64>().ok()?;
    if nanos == 0 {
        return None;
    }
    Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_nanos(nanos))
}
