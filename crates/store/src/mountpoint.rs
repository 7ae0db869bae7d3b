//! Whether a path is the root of a mount.

use std::io;
use std::path::Path;

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
