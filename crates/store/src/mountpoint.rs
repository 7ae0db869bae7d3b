//! Whether a path is the root of a mount, and which directories of a file
//! system are mounted.

use std::io;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, StatxAttributes, StatxFlags};

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
    let info = std::fs::read_to_string(MOUNTINFO)?;
    Ok(info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|mp| unescape_mountinfo(mp) == want))
}

/// The kernel's list of this mount namespace's mounts.
pub(crate) const MOUNTINFO: &str = "/proc/self/mountinfo";

/// The root (field 4: the directory of the file system that is mounted, `/`
/// for the whole of it) of every mount in this mount namespace of the file
/// system on device `dev` (field 3, `major:minor`). A bind mount of a
/// directory shows that directory, as it is named now (renames included).
/// Parsed by hand: a few lines of a fixed format, and no kept crate reads
/// only this without pulling in all of `/proc`.
pub(crate) fn mount_roots_on(dev: u64) -> io::Result<Vec<PathBuf>> {
    let want = format!("{}:{}", rustix::fs::major(dev), rustix::fs::minor(dev));
    let info = std::fs::read_to_string(MOUNTINFO)?;
    Ok(roots_on(&info, &want))
}

fn roots_on(info: &str, dev: &str) -> Vec<PathBuf> {
    info.lines()
        .filter_map(|l| {
            let mut fields = l.split(' ');
            let on = fields.nth(2)?;
            let root = fields.next()?;
            (on == dev).then(|| PathBuf::from(unescape_mountinfo(root)))
        })
        .collect()
}

/// A path as `/proc/self/mountinfo` writes it, with its `\ooo` octal escapes
/// (of space, tab, newline and backslash) resolved. An escape above `\377`
/// (which the kernel never writes) becomes `?`; an incomplete one is kept as
/// it is. The one reader of mountinfo escapes in the workspace.
pub fn unescape_mountinfo(s: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_mountinfo_paths() {
        assert_eq!(unescape_mountinfo(r"/var/lib/a\040b"), "/var/lib/a b");
        assert_eq!(unescape_mountinfo(r"/x\134y"), r"/x\y");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
        assert_eq!(unescape_mountinfo(r"/end\04"), r"/end\04");
        // Above a byte: no overflow, a `?`.
        assert_eq!(unescape_mountinfo(r"/a\777b"), "/a?b");
        assert_eq!(unescape_mountinfo(r"/a\377"), "/a\u{fffd}");
    }

    #[test]
    fn mount_roots_are_those_of_the_device() {
        let info = "\
22 1 0:21 / /proc rw,nosuid - proc proc rw
40 30 0:45 / /data/inmemfs rw - tmpfs tmpfs rw,size=32768k
41 30 0:45 /csi-a/data /pods/p/mount ro - tmpfs tmpfs rw,size=32768k
42 30 0:45 /.quarantine/csi\\040b.1.0/data /pods/q/mount ro - tmpfs tmpfs rw
";
        assert_eq!(
            roots_on(info, "0:45"),
            [
                PathBuf::from("/"),
                PathBuf::from("/csi-a/data"),
                PathBuf::from("/.quarantine/csi b.1.0/data"),
            ]
        );
        assert!(roots_on(info, "0:99").is_empty());
        // This process's root file system is mounted, at `/` or below.
        let dev = rustix::fs::stat("/").unwrap().st_dev;
        assert!(!mount_roots_on(dev).unwrap().is_empty());
    }

    #[test]
    fn missing_path_is_not_a_mount_point() {
        assert!(!is_mount_point(Path::new("/definitely/not/here")).unwrap());
        assert!(is_mount_point(Path::new("/proc")).unwrap());
        assert!(!in_mountinfo(Path::new("/definitely/not/here")).unwrap());
    }
}
