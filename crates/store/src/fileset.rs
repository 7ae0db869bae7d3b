//! File sets and the kubelet-AtomicWriter-style swap.
//!
//! The layout inside a volume's `data/` directory:
//!
//! ```text
//! ..2026_11_28_10_00_00.123456789/   the current set: files 0440, directories 0550
//! ..data -> ..2026_11_28_10_00_00.123456789
//! crt.pem -> ..data/crt.pem          one symlink per top-level name
//! bar -> ..data/bar                  (nested names: bar/foo.crt)
//! ```
//!
//! A write builds a complete new timestamped directory, fsyncs it, creates any
//! new user-visible symlinks (dangling until the swap), then points a
//! `..data_tmp` symlink at it and renames that over `..data`: the one atomic
//! step. Then it removes user-visible symlinks that are no longer in the set and
//! the old directory. A crash at any point leaves `..data` pointing at a
//! complete set, the old one or the new one; leftovers are removed by the next
//! write.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::time::SystemTime;

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;
use zeroize::Zeroizing;

use crate::error::StoreError;
use crate::fsops::{self, mode};
use crate::names::check_relative_path;

/// Mode of files in a set.
pub const FILE_MODE: u32 = 0o440;
/// Mode of the timestamped directory and directories inside it.
pub const SET_DIR_MODE: u32 = 0o550;
/// Mode of a volume's `data/` directory (owner-writable so an unprivileged
/// store can swap; the group can list and traverse, others nothing).
pub const DATA_DIR_MODE: u32 = 0o750;

pub(crate) const DATA_LINK: &str = "..data";
const DATA_TMP_LINK: &str = "..data_tmp";
const LINK_TMP: &str = "..link_tmp";

/// The files of one issuance: relative path (`tls.crt`, `bar/foo.crt`) to
/// contents, in path order. Contents are zeroed when the set is dropped, since
/// they include private keys. `Debug` shows names and sizes only.
#[derive(Default, Clone)]
pub struct FileSet {
    files: BTreeMap<String, Zeroizing<Vec<u8>>>,
}

impl FileSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// What the set takes on the data root: its files in whole pages (the
    /// symlinks and directories are not counted).
    pub fn bytes_on_disk(&self) -> u64 {
        self.files
            .values()
            .map(|c| crate::budget::on_disk(c.len() as u64))
            .sum()
    }

    /// Adds (or replaces) a file. Names are checked when the set is written.
    pub fn insert(&mut self, path: impl Into<String>, contents: impl Into<Vec<u8>>) -> &mut Self {
        self.files
            .insert(path.into(), Zeroizing::new(contents.into()));
        self
    }

    /// The contents of `path`, if present.
    pub fn get(&self, path: &str) -> Option<&[u8]> {
        self.files.get(path).map(|v| v.as_slice())
    }

    /// The paths in order.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    /// Number of files.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// True when the set has no files.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Checks every path (see [`check_relative_path`]) and that no path is
    /// both a file and a directory of another (`bar` and `bar/foo.crt`).
    pub fn validate(&self) -> Result<(), StoreError> {
        for path in self.files.keys() {
            let parts = check_relative_path(path)?;
            for i in 1..parts.len() {
                let prefix = parts[..i].join("/");
                if self.files.contains_key(&prefix) {
                    return Err(StoreError::InvalidFileName {
                        name: crate::error::shorten(path),
                        reason: "is inside another file of the set",
                    });
                }
            }
        }
        Ok(())
    }

    fn top_level_names(&self) -> BTreeSet<&str> {
        self.files
            .keys()
            .map(|p| p.split('/').next().unwrap_or(p.as_str()))
            .collect()
    }
}

impl fmt::Debug for FileSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (k, v) in &self.files {
            m.entry(k, &format_args!("<{} bytes>", v.len()));
        }
        m.finish()
    }
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteOutcome {
    /// False when the set on disk already had the same files, contents, modes
    /// and group, so nothing was swapped.
    pub changed: bool,
}

/// Current target of `..data`, if it is a well-formed set name.
pub(crate) fn current_set(data: BorrowedFd<'_>) -> io::Result<Option<String>> {
    let target = match rustix::fs::readlinkat(data, DATA_LINK, Vec::new()) {
        Ok(t) => t,
        Err(Errno::NOENT) => return Ok(None),
        // Not a symlink: not a set the store recognises.
        Err(Errno::INVAL) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    match target.into_string() {
        Ok(t) if is_set_dir_name(&t) => Ok(Some(t)),
        _ => Ok(None),
    }
}

fn is_set_dir_name(name: &str) -> bool {
    name.starts_with("..")
        && name.len() > 2
        && !name.contains('/')
        && name != DATA_LINK
        && name != DATA_TMP_LINK
        && name != LINK_TMP
}

/// Opens `rel` (already checked) below the directory `base`, component by
/// component, never following symlinks.
fn open_below(base: BorrowedFd<'_>, parts: &[&str]) -> io::Result<Option<OwnedFd>> {
    let mut dir: Option<OwnedFd> = None;
    for (i, part) in parts.iter().enumerate() {
        let here = dir.as_ref().map_or(base, |d| d.as_fd());
        let last = i + 1 == parts.len();
        let flags = if last {
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK
        } else {
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
        };
        match fsops::openat(here, *part, flags, Mode::empty()) {
            Ok(fd) => dir = Some(fd),
            Err(Errno::NOENT) | Err(Errno::NOTDIR) | Err(Errno::LOOP) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(dir)
}

/// Reads `rel` from the current set of the data directory.
pub(crate) fn read_current(
    data: BorrowedFd<'_>,
    rel: &str,
) -> Result<Option<Zeroizing<Vec<u8>>>, io::Error> {
    let Some(set) = current_set(data)? else {
        return Ok(None);
    };
    let Some(set_fd) = fsops::open_dir_at(data, &set).map(Some).or_else(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            Ok(None)
        } else {
            Err(e)
        }
    })?
    else {
        return Ok(None);
    };
    let parts: Vec<&str> = rel.split('/').collect();
    let Some(fd) = open_below(set_fd.as_fd(), &parts)? else {
        return Ok(None);
    };
    let st = rustix::fs::fstat(&fd)?;
    if fsops::file_type(&st) != FileType::RegularFile {
        return Ok(None);
    }
    let size = u64::try_from(st.st_size).unwrap_or(0);
    if size > fsops::MAX_READ {
        return Err(io::Error::other("is larger than 16 MiB"));
    }
    let mut buf = Zeroizing::new(Vec::with_capacity(usize::try_from(size).unwrap_or(0) + 1));
    File::from(fd)
        .take(fsops::MAX_READ + 1)
        .read_to_end(&mut buf)?;
    Ok(Some(buf))
}

/// True when the set directory `set` holds exactly `files`, with the file mode
/// and group the write would give them. One open per directory and file,
/// each directory held while its entries are compared.
fn same_payload(set: BorrowedFd<'_>, files: &FileSet, gid: u32) -> io::Result<bool> {
    let mut path = String::new();
    let mut seen = 0;
    Ok(same_dir(set, &mut path, files, gid, &mut seen)? && seen == files.len())
}

/// Compares the entries of the open directory `dir` (at `path` in the set)
/// with `files`, counting the regular files met in `seen`.
fn same_dir(
    dir: BorrowedFd<'_>,
    path: &mut String,
    files: &FileSet,
    gid: u32,
    seen: &mut usize,
) -> io::Result<bool> {
    for (name, ty) in fsops::list_dir(dir)? {
        let Ok(name) = name.into_string() else {
            return Ok(false);
        };
        let ty = if ty == FileType::Unknown {
            fsops::lstat_at(dir, &name)?
                .map(|s| fsops::file_type(&s))
                .unwrap_or(FileType::Unknown)
        } else {
            ty
        };
        let len = path.len();
        if len > 0 {
            path.push('/');
        }
        path.push_str(&name);
        let same = match ty {
            FileType::Directory => {
                let sub = fsops::open_dir_at(dir, &name)?;
                same_dir(sub.as_fd(), path, files, gid, seen)?
            }
            FileType::RegularFile => {
                *seen += 1;
                match files.files.get(path.as_str()) {
                    Some(want) => same_file(dir, &name, want, gid)?,
                    None => false,
                }
            }
            _ => false,
        };
        path.truncate(len);
        if !same {
            return Ok(false);
        }
    }
    Ok(true)
}

/// True when the regular file `name` in `dir` has contents `want`, the
/// file mode and the group `gid`.
fn same_file(dir: BorrowedFd<'_>, name: &str, want: &[u8], gid: u32) -> io::Result<bool> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    let fd = match fsops::openat(dir, name, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) | Err(Errno::LOOP) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let st = rustix::fs::fstat(&fd)?;
    if fsops::file_type(&st) != FileType::RegularFile
        || st.st_mode & 0o7777 != FILE_MODE
        || st.st_gid != gid
        || u64::try_from(st.st_size).ok() != Some(want.len() as u64)
    {
        return Ok(false);
    }
    let mut have = Zeroizing::new(Vec::with_capacity(want.len() + 1));
    File::from(fd)
        .take(want.len() as u64 + 1)
        .read_to_end(&mut have)?;
    Ok(have.as_slice() == want)
}

/// The set as a tree of directories, so it is written with one open per
/// directory, each held while its entries are made: linear in the number of
/// path components however deep names nest (reopening every level from the
/// top for each name was quadratic). Writing holds one descriptor per level
/// of the deepest name; the driver bounds depth (`--max-file-name-depth`).
#[derive(Default)]
struct Tree<'a> {
    files: Vec<(&'a str, &'a [u8])>,
    dirs: BTreeMap<&'a str, Tree<'a>>,
}

impl<'a> Tree<'a> {
    /// The tree of a validated set (no name is both a file and a directory).
    fn of(files: &'a FileSet) -> Self {
        let mut root = Tree::default();
        for (rel, contents) in &files.files {
            let mut parts = rel.split('/');
            let name = parts.next_back().unwrap_or_default();
            let mut here = &mut root;
            for dir in parts {
                here = here.dirs.entry(dir).or_default();
            }
            here.files.push((name, contents.as_slice()));
        }
        root
    }
}

/// Writes `tree` into the open directory `dir`, whose path relative to the
/// volume's `data/` is `path` (for errors; extended and truncated back, so
/// naming costs no copy per level). Each file is written, given its mode
/// and group, and fsynced; each directory is sealed and fsynced once
/// everything below it is written (deepest first), so an unprivileged owner
/// can still write into it until then.
fn write_tree(
    dir: BorrowedFd<'_>,
    tree: &Tree<'_>,
    path: &mut String,
    gid: u32,
    err: &dyn Fn(&'static str, &str, io::Error) -> StoreError,
) -> Result<(), StoreError> {
    for (name, contents) in &tree.files {
        let len = path.len();
        path.push('/');
        path.push_str(name);
        let fd = fsops::openat(
            dir,
            *name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            mode(0o600),
        )
        .map_err(|e| err("create", path, e.into()))?;
        let mut file = File::from(fd);
        file.write_all(contents)
            .map_err(|e| err("write", path, e))?;
        fsops::set_group_and_mode(file.as_fd(), gid, FILE_MODE)
            .map_err(|e| err("set group and mode of", path, e))?;
        file.sync_all().map_err(|e| err("fsync", path, e))?;
        path.truncate(len);
    }
    for (name, sub) in &tree.dirs {
        let len = path.len();
        path.push('/');
        path.push_str(name);
        let fd =
            fsops::ensure_dir_at(dir, name, 0o700).map_err(|e| err("create directory", path, e))?;
        write_tree(fd.as_fd(), sub, path, gid, err)?;
        fsops::set_group_and_mode(fd.as_fd(), gid, SET_DIR_MODE)
            .map_err(|e| err("set group and mode of", path, e))?;
        rustix::fs::fsync(&fd).map_err(|e| err("fsync", path, e.into()))?;
        path.truncate(len);
    }
    Ok(())
}

fn set_dir_name(now: SystemTime, attempt: u32) -> String {
    let ts = jiff::Timestamp::try_from(now).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let dt = jiff::tz::TimeZone::UTC.to_datetime(ts);
    let mut name = format!(
        "..{:04}_{:02}_{:02}_{:02}_{:02}_{:02}.{:09}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.subsec_nanosecond()
    );
    if attempt > 0 {
        name.push_str(&format!("_{attempt}"));
    }
    name
}

/// Writes `files` into the data directory `data` (see the module docs).
/// `gid` is the group every file and directory gets.
pub(crate) fn write_set(
    data: BorrowedFd<'_>,
    data_path: &std::path::Path,
    files: &FileSet,
    gid: u32,
) -> Result<WriteOutcome, StoreError> {
    let io_err =
        |op: &'static str, what: &str, e: io::Error| StoreError::io(op, data_path.join(what), e);
    let data_st = rustix::fs::fstat(data).map_err(|e| io_err("stat", "", e.into()))?;
    let dev = data_st.st_dev;
    fsops::set_group_and_mode(data, gid, DATA_DIR_MODE)
        .map_err(|e| io_err("set group and mode of", "", e))?;

    let top = files.top_level_names();
    let current = current_set(data).map_err(|e| io_err("read link", DATA_LINK, e))?;

    // Look at what is there: leftovers of an interrupted write go, anything
    // that is not a symlink where a user-visible name belongs is a conflict.
    let entries = fsops::list_dir(data).map_err(|e| io_err("list", "", e))?;
    let mut stale_links = Vec::new();
    let mut good_links = BTreeSet::new();
    for (name, ty) in &entries {
        let Some(name_str) = name.to_str() else {
            continue;
        };
        if name_str.starts_with("..") {
            let keep = name_str == DATA_LINK || current.as_deref() == Some(name_str);
            if !keep {
                fsops::remove_tree_at(data, name, dev)
                    .map_err(|e| io_err("remove leftover", name_str, e))?;
            }
            continue;
        }
        let ty = if *ty == FileType::Unknown {
            fsops::lstat_at(data, name_str)
                .map_err(|e| io_err("stat", name_str, e))?
                .map(|s| fsops::file_type(&s))
                .unwrap_or(FileType::Unknown)
        } else {
            *ty
        };
        if ty != FileType::Symlink {
            if top.contains(name_str) {
                return Err(StoreError::Conflict {
                    path: data_path.join(name_str),
                    reason: "is not a symlink; the store will not replace it with one".into(),
                });
            }
            tracing::warn!(path = %data_path.join(name_str).display(), "unexpected entry in a volume's data directory left alone");
            continue;
        }
        if top.contains(name_str) {
            let target = rustix::fs::readlinkat(data, name_str, Vec::new())
                .map_err(|e| io_err("read link", name_str, e.into()))?;
            if target.as_bytes() == format!("{DATA_LINK}/{name_str}").as_bytes() {
                good_links.insert(name_str.to_owned());
            }
        } else {
            stale_links.push(name.clone());
        }
    }

    let current_fd = match &current {
        None => None,
        Some(cur) => match fsops::open_dir_at(data, cur) {
            Ok(fd) => Some(fd),
            // `..data` dangles: there is no current set to compare with.
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err("open", cur, e)),
        },
    };
    if let (Some(cur), Some(cur_fd)) = (&current, &current_fd) {
        let same =
            same_payload(cur_fd.as_fd(), files, gid).map_err(|e| io_err("compare", cur, e))?;
        if same {
            // Nothing to swap; only make sure the user-visible names are right.
            ensure_links(data, data_path, &top, &good_links)?;
            remove_links(data, data_path, &stale_links)?;
            return Ok(WriteOutcome { changed: false });
        }
    }

    // 1. The new set, complete and fsynced, in a fresh timestamped directory.
    let now = SystemTime::now();
    let mut attempt = 0;
    let set_name = loop {
        let name = set_dir_name(now, attempt);
        match rustix::fs::mkdirat(data, name.as_str(), mode(0o700)) {
            Ok(()) => break name,
            Err(Errno::EXIST) if attempt < 1000 => attempt += 1,
            Err(e) => return Err(io_err("create directory", &name, e.into())),
        }
    };
    let set_fd = fsops::open_dir_at(data, &set_name).map_err(|e| io_err("open", &set_name, e))?;
    let mut path = set_name.clone();
    write_tree(set_fd.as_fd(), &Tree::of(files), &mut path, gid, &io_err)?;
    fsops::set_group_and_mode(set_fd.as_fd(), gid, SET_DIR_MODE)
        .map_err(|e| io_err("set group and mode of", &set_name, e))?;
    rustix::fs::fsync(&set_fd).map_err(|e| io_err("fsync", &set_name, e.into()))?;

    // 2. User-visible names new in this set (they dangle until the swap).
    ensure_links(data, data_path, &top, &good_links)?;

    // 3. The swap.
    rustix::fs::symlinkat(set_name.as_str(), data, DATA_TMP_LINK)
        .map_err(|e| io_err("create symlink", DATA_TMP_LINK, e.into()))?;
    rustix::fs::renameat(data, DATA_TMP_LINK, data, DATA_LINK)
        .map_err(|e| io_err("rename over", DATA_LINK, e.into()))?;
    rustix::fs::fsync(data).map_err(|e| io_err("fsync", "", e.into()))?;

    // 4. Clean up: names no longer in the set, then the old set (a first
    // set has neither, and nothing more to make durable).
    let cleaned = !stale_links.is_empty() || current.is_some();
    remove_links(data, data_path, &stale_links)?;
    if let Some(old) = current {
        fsops::remove_tree_at(data, &OsString::from(&old), dev)
            .map_err(|e| io_err("remove old set", &old, e))?;
    }
    if cleaned {
        rustix::fs::fsync(data).map_err(|e| io_err("fsync", "", e.into()))?;
    }
    Ok(WriteOutcome { changed: true })
}

fn ensure_links(
    data: BorrowedFd<'_>,
    data_path: &std::path::Path,
    top: &BTreeSet<&str>,
    good: &BTreeSet<String>,
) -> Result<(), StoreError> {
    for name in top {
        if good.contains(*name) {
            continue;
        }
        let target = format!("{DATA_LINK}/{name}");
        // Via a temporary link and rename, so a wrong link is replaced atomically.
        let _ = rustix::fs::unlinkat(data, LINK_TMP, rustix::fs::AtFlags::empty());
        rustix::fs::symlinkat(target.as_str(), data, LINK_TMP)
            .map_err(|e| StoreError::io("create symlink", data_path.join(name), e))?;
        rustix::fs::renameat(data, LINK_TMP, data, *name)
            .map_err(|e| StoreError::io("rename symlink to", data_path.join(name), e))?;
    }
    Ok(())
}

fn remove_links(
    data: BorrowedFd<'_>,
    data_path: &std::path::Path,
    stale: &[OsString],
) -> Result<(), StoreError> {
    for name in stale {
        match rustix::fs::unlinkat(data, name.as_os_str(), rustix::fs::AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => return Err(StoreError::io("remove symlink", data_path.join(name), e)),
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn set_names_sort_and_look_like_the_kubelets() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::new(1_785_931_200, 5);
        assert_eq!(set_dir_name(t, 0), "..2026_08_05_12_00_00.000000005");
        assert_eq!(set_dir_name(t, 2), "..2026_08_05_12_00_00.000000005_2");
        assert!(is_set_dir_name(&set_dir_name(t, 0)));
        assert!(!is_set_dir_name("..data"));
        assert!(!is_set_dir_name("../etc"));
        assert!(!is_set_dir_name("/etc"));
    }

    #[test]
    fn nested_file_inside_file_is_refused() {
        let mut s = FileSet::new();
        s.insert("bar", "x").insert("bar/foo.crt", "y");
        assert!(s.validate().is_err());
        let mut s = FileSet::new();
        s.insert("bar/a", "x")
            .insert("bar/b/c", "y")
            .insert("baz", "z");
        assert!(s.validate().is_ok());
        assert_eq!(
            s.top_level_names().into_iter().collect::<Vec<_>>(),
            ["bar", "baz"]
        );
    }

    /// Opens on this thread while `f` runs.
    fn opens_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
        let before = fsops::OPENS.with(|n| n.get());
        let out = f();
        (out, fsops::OPENS.with(|n| n.get()) - before)
    }

    #[test]
    fn deeply_nested_names_take_one_open_per_directory_and_file() {
        // 100 levels with a file at every level and five more at the bottom:
        // reopening each name's directories from the top takes over ten
        // thousand opens; holding each directory open takes about two hundred.
        const DEPTH: usize = 100;
        let mut files = FileSet::new();
        let mut dir = String::from("d");
        for level in 0..DEPTH {
            files.insert(format!("{dir}/f{level}"), format!("file {level}"));
            if level + 1 < DEPTH {
                dir.push_str("/d");
            }
        }
        for i in 0..5 {
            files.insert(format!("{dir}/leaf{i}"), format!("leaf {i}"));
        }
        files.validate().unwrap();
        let entries = DEPTH + files.len();

        // On a tmpfs when there is one, as in production (fsyncs are free).
        let shm = std::path::Path::new("/dev/shm");
        let tmp = if shm.is_dir() {
            tempfile::tempdir_in(shm).unwrap()
        } else {
            tempfile::tempdir().unwrap()
        };
        let data = fsops::open_dir_at(
            fsops::open_dir_at(rustix::fs::CWD, tmp.path().to_str().unwrap())
                .unwrap()
                .as_fd(),
            ".",
        )
        .unwrap();
        let gid = rustix::process::getgid().as_raw();
        let (written, opens) = opens_during(|| write_set(data.as_fd(), tmp.path(), &files, gid));
        assert!(written.unwrap().changed);
        assert!(
            opens <= entries + 10,
            "writing {entries} directories and files took {opens} opens"
        );

        // The same set again is compared, not rewritten, also linearly.
        let (again, opens) = opens_during(|| write_set(data.as_fd(), tmp.path(), &files, gid));
        assert!(!again.unwrap().changed);
        assert!(
            opens <= entries + 10,
            "comparing {entries} directories and files took {opens} opens"
        );

        let deepest = read_current(data.as_fd(), &format!("{dir}/leaf4"))
            .unwrap()
            .unwrap();
        assert_eq!(deepest.as_slice(), b"leaf 4");
        let middle = format!("{}/f49", vec!["d"; 50].join("/"));
        let middle = read_current(data.as_fd(), &middle).unwrap().unwrap();
        assert_eq!(middle.as_slice(), b"file 49");

        // One changed file at the bottom makes a new complete set.
        files.insert(format!("{dir}/leaf0"), "changed");
        assert!(
            write_set(data.as_fd(), tmp.path(), &files, gid)
                .unwrap()
                .changed
        );
        let changed = read_current(data.as_fd(), &format!("{dir}/leaf0"))
            .unwrap()
            .unwrap();
        assert_eq!(changed.as_slice(), b"changed");
    }

    #[test]
    fn debug_shows_sizes_not_contents() {
        let mut s = FileSet::new();
        s.insert("tls.key", "-----BEGIN PRIVATE KEY----- secret");
        let d = format!("{s:?}");
        assert!(d.contains("tls.key") && d.contains("bytes") && !d.contains("secret"));
    }
}
