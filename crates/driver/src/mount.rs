//! Bind mounts of a volume's `data/` directory at the Pod's target path.

use std::io;
use std::path::Path;

use rustix::mount::{MountFlags, UnmountFlags};

/// Whether a path is the root of a mount: the store owns the one
/// implementation.
pub use cmcsi_store::is_mount_point;

/// Bind-mounts `source` at `target` read-only, nosuid, nodev, noexec.
///
/// A bind mount ignores those flags on the first call, so this binds and
/// then remounts the bind with them (the two-step the kernel requires). If
/// the remount fails the bind is undone, so a writable bind is never left.
pub fn bind_read_only(source: &Path, target: &Path) -> io::Result<()> {
    rustix::mount::mount_bind(source, target)?;
    let flags = MountFlags::BIND
        | MountFlags::RDONLY
        | MountFlags::NOSUID
        | MountFlags::NODEV
        | MountFlags::NOEXEC;
    if let Err(e) = rustix::mount::mount_remount(target, flags, "") {
        let _ = rustix::mount::unmount(target, UnmountFlags::NOFOLLOW);
        return Err(e.into());
    }
    Ok(())
}

/// Unmounts `target` if it is a mount point; a missing or unmounted path is
/// fine (unpublish is idempotent).
pub fn unmount_if_mounted(target: &Path) -> io::Result<()> {
    // Stacked mounts (a retried publish that raced) are all removed.
    for _ in 0..16 {
        if !is_mount_point(target)? {
            return Ok(());
        }
        match rustix::mount::unmount(target, UnmountFlags::NOFOLLOW) {
            Ok(()) => {}
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOENT) => return Ok(()),
            // Something still holds the mount (a racing call's lookup, a
            // process that has not let go): the Pod is gone, so detach it
            // now and let the kernel free it when the last user leaves.
            Err(rustix::io::Errno::BUSY) => {
                rustix::mount::unmount(target, UnmountFlags::NOFOLLOW | UnmountFlags::DETACH)?
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(io::Error::other(format!(
        "{} is still a mount point after 16 unmounts",
        target.display()
    )))
}
