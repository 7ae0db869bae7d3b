//! Read-only bind mounts of a volume's `data/` directory at the Pod's
//! target path, read-only before any mount namespace can see them (see
//! [`Mechanism`]).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::CWD;
use rustix::mount::{
    MountFlags, MountPropagationFlags, MoveMountFlags, OpenTreeFlags, UnmountFlags,
};

/// Whether a path is the root of a mount: the store owns the one
/// implementation.
pub use cmcsi_store::is_mount_point;

/// How [`bind_read_only`] makes a read-only bind mount: chosen once per
/// process (by [`init`], or on first use) and logged once.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mechanism {
    /// The new mount API (Linux 5.12+): `open_tree(OPEN_TREE_CLONE)` makes a
    /// detached copy of the volume's directory, `mount_setattr` makes it
    /// read-only, nosuid, nodev and noexec, and `move_mount` attaches it at
    /// the target. The mount is never attached anywhere while writable.
    NewApi,
    /// Older kernels: bind and remount read-only inside a private staging
    /// directory (a mount of its own with private propagation, so nothing
    /// made there reaches another mount namespace), then `MS_MOVE` the
    /// finished read-only mount to the target.
    StagedRemount {
        /// The private staging directory.
        staging: PathBuf,
    },
}

impl std::fmt::Display for Mechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mechanism::NewApi => f.write_str("open_tree + mount_setattr + move_mount"),
            Mechanism::StagedRemount { staging } => write!(
                f,
                "bind + remount read-only in private {} + MS_MOVE",
                staging.display()
            ),
        }
    }
}

/// Set to `staged-remount` to skip the new mount API even where the kernel
/// has it (to test the older kernels' path); any other value, or none,
/// probes.
pub const FORCE_MECHANISM_ENV: &str = "CMCSI_MOUNT_MECHANISM";

static MECHANISM: OnceLock<Mechanism> = OnceLock::new();

/// Chooses the mount mechanism once, from a probe of the kernel, and logs
/// it. `staging` is where the older kernels' path stages its mounts (the
/// driver passes `<data-root>/mount-staging`); it is made a private mount
/// only if that path is chosen. Later calls return the first choice.
///
/// Never fails: if the staging directory cannot be prepared now, that is
/// logged, tried again at each mount, and reported by the mount that needs
/// it (so the driver still starts and serves what it can).
pub fn init(staging: &Path) -> &'static Mechanism {
    if let Some(m) = MECHANISM.get() {
        return m;
    }
    let forced = std::env::var(FORCE_MECHANISM_ENV).is_ok_and(|v| v == "staged-remount");
    let chosen = if forced {
        tracing::warn!(
            "{FORCE_MECHANISM_ENV}=staged-remount: not using the new mount API even if the kernel has it"
        );
        staged(staging)
    } else {
        match probe_new_api(staging) {
            Ok(()) => Mechanism::NewApi,
            Err(e) => {
                tracing::info!(error = %e, "no usable new mount API (open_tree, mount_setattr: Linux 5.12+)");
                staged(staging)
            }
        }
    };
    let m = MECHANISM.get_or_init(|| chosen);
    tracing::info!(mechanism = %m, "read-only bind mounts are made with {m}");
    m
}

fn staged(staging: &Path) -> Mechanism {
    if let Err(e) = prepare_staging(staging) {
        tracing::error!(error = %e, "mounts will fail until this is fixed");
    }
    Mechanism::StagedRemount {
        staging: staging.to_path_buf(),
    }
}

/// The mechanism in use (probing with a staging directory in the system's
/// temporary directory if [`init`] was never called).
pub fn mechanism() -> &'static Mechanism {
    match MECHANISM.get() {
        Some(m) => m,
        None => init(&std::env::temp_dir().join("cmcsi-mount-staging")),
    }
}

/// Whether the new mount API works here: clone a directory's mount
/// detached and make the clone read-only. Closing the clone's descriptor
/// frees it; nothing is attached anywhere.
fn probe_new_api(dir: &Path) -> io::Result<()> {
    let probe = dir
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    let tree = rustix::mount::open_tree(
        CWD,
        probe,
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )?;
    mount_setattr_add(tree.as_fd(), READ_ONLY_ATTRS)
}

/// Makes `staging` a directory that is its own mount with private
/// propagation, so mounts made below it never propagate to the host or to
/// any other namespace, even when the data root sits on a shared mount (the
/// DaemonSet's Bidirectional volumes). `MS_MOVE` also requires a source
/// whose parent mount is not shared.
fn prepare_staging(staging: &Path) -> io::Result<()> {
    let steps = || -> io::Result<()> {
        std::fs::create_dir_all(staging)?;
        std::fs::set_permissions(staging, std::fs::Permissions::from_mode(0o700))?;
        if !is_mount_point(staging)? {
            rustix::mount::mount_bind(staging, staging)?;
        }
        rustix::mount::mount_change(staging, MountPropagationFlags::PRIVATE)?;
        Ok(())
    };
    steps().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot make {} a private mount to stage read-only mounts in: {e}",
                staging.display()
            ),
        )
    })
}

/// `MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC`
/// (`<linux/mount.h>`).
const READ_ONLY_ATTRS: u64 = 0x1 | 0x2 | 0x4 | 0x8;

/// `struct mount_attr`, `MOUNT_ATTR_SIZE_VER0` (32 bytes).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH, {attr_set: set})` on the mount
/// `fd` refers to.
///
/// Written by hand because neither rustix (1.x lists it as not implemented
/// yet) nor nix wraps this system call; it is the one `unsafe` block of the
/// driver.
#[allow(unsafe_code)]
fn mount_setattr_add(fd: BorrowedFd<'_>, set: u64) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: the arguments are what mount_setattr(2) takes: a descriptor
    // that `fd` keeps open for the call, a NUL-terminated empty path that
    // lives for the whole program, AT_EMPTY_PATH, a pointer to an
    // initialised `struct mount_attr` (repr(C), four u64 as in the kernel's
    // VER0 layout) that outlives the call, and its size. The kernel only
    // reads from the pointers; no memory is handed over.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Mounts `source` at `target` read-only, nosuid, nodev and noexec, such
/// that no mount namespace ever sees it writable: with the DaemonSet's
/// Bidirectional propagation a writable bind at the target would reach the
/// host before a remount, and a remount changes only the driver's copy.
/// Uses the [`Mechanism`] chosen at start ([`init`]). On failure nothing is
/// left mounted at the target.
pub fn bind_read_only(source: &Path, target: &Path) -> io::Result<()> {
    match mechanism() {
        Mechanism::NewApi => {
            let tree = rustix::mount::open_tree(
                CWD,
                source,
                OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
            )
            .map_err(step("open_tree (cloning the volume's directory)"))?;
            mount_setattr_add(tree.as_fd(), READ_ONLY_ATTRS)
                .map_err(step("mount_setattr (making the clone read-only)"))?;
            // Dropping `tree` on an error frees the detached copy.
            rustix::mount::move_mount(
                tree.as_fd(),
                "",
                CWD,
                target,
                MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
            )
            .map_err(step("move_mount (attaching the read-only clone)"))?;
            Ok(())
        }
        Mechanism::StagedRemount { staging } => staged_bind(source, staging, target),
    }
}

/// Names the step that failed in the error (the caller names the target).
fn step<E: Into<io::Error>>(what: &'static str) -> impl Fn(E) -> io::Error {
    move |e| {
        let e: io::Error = e.into();
        io::Error::new(e.kind(), format!("{what}: {e}"))
    }
}

fn staged_bind(source: &Path, staging: &Path, target: &Path) -> io::Result<()> {
    if !is_mount_point(staging)? {
        prepare_staging(staging)?;
    }
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = staging.join(format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir(&dir)?;
    let result = (|| {
        rustix::mount::mount_bind(source, &dir).map_err(step("bind into the staging directory"))?;
        // A bind mount ignores the flags on the first call, so it is
        // remounted with them; here, where nothing propagates.
        let flags = MountFlags::BIND
            | MountFlags::RDONLY
            | MountFlags::NOSUID
            | MountFlags::NODEV
            | MountFlags::NOEXEC;
        rustix::mount::mount_remount(&dir, flags, "").map_err(step("remount read-only"))?;
        rustix::mount::mount_move(&dir, target).map_err(step("MS_MOVE to the target"))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = rustix::mount::unmount(&dir, UnmountFlags::NOFOLLOW | UnmountFlags::DETACH);
    }
    let _ = std::fs::remove_dir(&dir);
    result
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
