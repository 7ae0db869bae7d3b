//! Low-level file operations relative to directory descriptors.
//!
//! Everything below the data root is reached through `*at` system calls from
//! an open directory descriptor, one component at a time, with `O_NOFOLLOW`:
//! a symlink planted anywhere in the tree is never followed.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStringExt;

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;
use zeroize::Zeroizing;

/// Largest file the store reads back (keys, certificates and metadata are far smaller).
pub(crate) const MAX_READ: u64 = 16 * 1024 * 1024;

pub(crate) fn mode(bits: u32) -> Mode {
    Mode::from_raw_mode(bits)
}

#[cfg(test)]
thread_local! {
    /// Opens made through [`openat`] on this thread, so tests can check that
    /// a walk opens each directory once, not once per name below it.
    pub(crate) static OPENS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// `openat(2)`; every open below the data root goes through here.
pub(crate) fn openat(
    dir: BorrowedFd<'_>,
    name: impl rustix::path::Arg,
    flags: OFlags,
    bits: Mode,
) -> rustix::io::Result<OwnedFd> {
    #[cfg(test)]
    OPENS.with(|n| n.set(n.get() + 1));
    rustix::fs::openat(dir, name, flags, bits)
}

/// Opens the directory `name` inside `dir`, refusing symlinks.
pub(crate) fn open_dir_at(dir: BorrowedFd<'_>, name: &str) -> io::Result<OwnedFd> {
    Ok(openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// `lstat` of `name` inside `dir`; `None` when it does not exist.
pub(crate) fn lstat_at(dir: BorrowedFd<'_>, name: &str) -> io::Result<Option<Stat>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn file_type(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

/// Reads a regular file `name` inside `dir` (not following symlinks);
/// `None` when it does not exist. The buffer is zeroed when dropped.
pub(crate) fn read_file_at(
    dir: BorrowedFd<'_>,
    name: &str,
) -> io::Result<Option<Zeroizing<Vec<u8>>>> {
    let fd = match openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        Err(Errno::LOOP) => {
            return Err(io::Error::other(
                "is a symlink, which the store does not follow",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    read_fd(fd).map(Some)
}

fn read_fd(fd: OwnedFd) -> io::Result<Zeroizing<Vec<u8>>> {
    let st = rustix::fs::fstat(&fd)?;
    if file_type(&st) != FileType::RegularFile {
        return Err(io::Error::other("is not a regular file"));
    }
    let size = u64::try_from(st.st_size).unwrap_or(0);
    if size > MAX_READ {
        return Err(io::Error::other("is larger than 16 MiB"));
    }
    // Allocate once so that no partial copy of the contents is left behind by
    // a reallocation (the buffer is zeroed on drop, earlier ones would not be).
    let cap = usize::try_from(size).unwrap_or(0) + 1;
    let mut buf = Zeroizing::new(Vec::with_capacity(cap));
    File::from(fd).take(MAX_READ + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_READ {
        return Err(io::Error::other("is larger than 16 MiB"));
    }
    Ok(buf)
}

/// Writes `bytes` to `name` inside `dir` atomically: a temporary file
/// `.<name>.tmp` (mode 0600), fsync, rename over `name`, fsync of `dir`.
pub(crate) fn write_file_atomic(
    dir: BorrowedFd<'_>,
    name: &str,
    bytes: &[u8],
    file_mode: u32,
) -> io::Result<()> {
    let tmp = format!(".{name}.tmp");
    let fd = openat(
        dir,
        tmp.as_str(),
        OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        mode(0o600),
    )?;
    // A leftover temporary file may have had another mode.
    rustix::fs::fchmod(&fd, mode(file_mode))?;
    let mut file = File::from(fd);
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    rustix::fs::renameat(dir, tmp.as_str(), dir, name)?;
    rustix::fs::fsync(dir)?;
    Ok(())
}

/// Names in a directory, without `.` and `..`.
pub(crate) fn list_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<(OsString, FileType)>> {
    let mut out = Vec::new();
    for entry in Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        out.push((OsString::from_vec(name.to_vec()), entry.file_type()));
    }
    Ok(out)
}

/// Removes `name` inside `parent` and everything below it, without following
/// symlinks (a symlink is removed, never its target) and without crossing into
/// another mount (`dev` is the device the tree must be on).
pub(crate) fn remove_tree_at(parent: BorrowedFd<'_>, name: &OsString, dev: u64) -> io::Result<()> {
    let st = match rustix::fs::statat(parent, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if file_type(&st) != FileType::Directory {
        return match rustix::fs::unlinkat(parent, name.as_os_str(), AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(e.into()),
        };
    }
    if st.st_dev != dev {
        return Err(io::Error::other(
            "is another mount; the store does not remove anything across mounts",
        ));
    }
    let fd = openat(
        parent,
        name.as_os_str(),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    // File-set directories are read-only (0550); an unprivileged owner needs
    // write permission to empty them. Root does not, so failure is fine.
    let _ = rustix::fs::fchmod(&fd, mode(0o700));
    for (child, _) in list_dir(fd.as_fd())? {
        remove_tree_at(fd.as_fd(), &child, dev)?;
    }
    drop(fd);
    match rustix::fs::unlinkat(parent, name.as_os_str(), AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Creates directory `name` in `dir` with `bits` (ignoring an existing directory),
/// then opens it without following symlinks.
pub(crate) fn ensure_dir_at(dir: BorrowedFd<'_>, name: &str, bits: u32) -> io::Result<OwnedFd> {
    match rustix::fs::mkdirat(dir, name, mode(bits)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(e.into()),
    }
    open_dir_at(dir, name)
}

/// Sets group (when it differs) and mode of an open file or directory.
pub(crate) fn set_group_and_mode(fd: BorrowedFd<'_>, gid: u32, bits: u32) -> io::Result<()> {
    let st = rustix::fs::fstat(fd)?;
    if st.st_gid != gid {
        rustix::fs::fchown(fd, None, Some(rustix::fs::Gid::from_raw(gid)))?;
    }
    if st.st_mode & 0o7777 != bits {
        rustix::fs::fchmod(fd, mode(bits))?;
    }
    Ok(())
}
