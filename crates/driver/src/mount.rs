//! Bind mounts of a volume's `data/` directory at the Pod's target path.

use std::io;
use std::path::Path;

use rustix::fs::{AtFlags, CWD, StatxAttributes, StatxFlags};
use rustix::mount::{MountFlags, UnmountFlags};

/// Whether `path` is the root of a mount.
///
/// Uses `statx`'s `STATX_ATTR_MOUNT_ROOT` (Linux 5.8+), which is right for
/// bind mounts from the same filesystem too (comparing device numbers is
/// not); falls back to `/proc/self/mountinfo` on older kernels. A missing
/// path is not a mount point.
pub fn is_mount_point(path: &Path) -> io::Result<bool> {
    match rustix::fs::statx(
        CWD,
        path,
        AtFlags::NO_AUTOMOUNT | AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::empty(),
    ) {
        Ok(st) if st.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT) => {
            Ok(st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT))
        }
        Ok(_) | Err(rustix::io::Errno::NOSYS) => in_mountinfo(path),
        Err(rustix::io::Errno::NOENT) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The `/proc/self/mountinfo` fallback: field 5 is the mount point, with
/// spaces and other bytes escaped as `\ooo`.
fn in_mountinfo(path: &Path) -> io::Result<bool> {
    let canonical = match std::fs::canonicalize(path) {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let want = canonical.to_string_lossy().into_owned();
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|mp| unescape_octal(mp) == want))
}

fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && b.get(i + 1..i + 4)
                .is_some_and(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)))
        {
            let v = u32::from(b[i + 1] - b'0') * 64
                + u32::from(b[i + 2] - b'0') * 8
                + u32::from(b[i + 3] - b'0');
            out.push(u8::try_from(v).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_mountinfo_paths() {
        assert_eq!(unescape_octal(r"/var/lib/a\040b"), "/var/lib/a b");
        assert_eq!(unescape_octal(r"/x\134y"), r"/x\y");
        assert_eq!(unescape_octal("/plain"), "/plain");
    }

    #[test]
    fn missing_path_is_not_a_mount_point() {
        assert!(!is_mount_point(Path::new("/definitely/not/here")).unwrap());
        assert!(is_mount_point(Path::new("/proc")).unwrap());
        assert!(!in_mountinfo(Path::new("/definitely/not/here")).unwrap());
    }
}
