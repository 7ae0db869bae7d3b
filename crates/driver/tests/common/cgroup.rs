//! A memory cgroup for the driver's process, as the DaemonSet's memory limit
//! puts it in one: cgroup v2 (`memory.max`) or v1 (`memory.limit_in_bytes`),
//! whichever the machine has, made under the test's own cgroup. Needs root.

use std::path::{Path, PathBuf};

/// The environment variable that names the `cgroup.procs` file the driver's
/// wrapper joins (see `Layout::Cgroup`).
pub const PROCS_ENV: &str = "CMCSI_TEST_CGROUP_PROCS";

/// Which cgroup hierarchy the memory controller is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// A memory cgroup with a limit; removed on drop (after its processes are gone).
#[derive(Debug)]
pub struct MemoryCgroup {
    dir: PathBuf,
    version: Version,
}

/// Where this process's memory cgroup is, and in which hierarchy.
fn own_cgroup() -> Option<(PathBuf, Version)> {
    let table = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    for line in table.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        if controllers.split(',').any(|c| c == "memory") {
            let root = Path::new("/sys/fs/cgroup/memory");
            return Some((root.join(path.trim_start_matches('/')), Version::V1));
        }
    }
    for line in table.lines() {
        if let Some(path) = line.strip_prefix("0::") {
            let root = Path::new("/sys/fs/cgroup");
            if root.join("cgroup.controllers").exists() {
                return Some((root.join(path.trim_start_matches('/')), Version::V2));
            }
        }
    }
    None
}

impl MemoryCgroup {
    /// A new cgroup named `name` (plus the test's pid) limited to `bytes`.
    /// `None` (with the reason printed) when the machine offers no memory
    /// cgroup to this process.
    pub fn new(name: &str, bytes: u64) -> Option<MemoryCgroup> {
        let Some((parent, version)) = own_cgroup() else {
            eprintln!("no memory cgroup controller is mounted");
            return None;
        };
        let dir = parent.join(format!("{name}-{}", std::process::id()));
        if let Err(e) = std::fs::create_dir_all(&dir) {
            eprintln!("cannot create the cgroup {}: {e}", dir.display());
            return None;
        }
        let cg = MemoryCgroup { dir, version };
        let (file, value) = match version {
            Version::V1 => ("memory.limit_in_bytes", bytes.to_string()),
            Version::V2 => ("memory.max", bytes.to_string()),
        };
        if let Err(e) = std::fs::write(cg.dir.join(file), &value) {
            eprintln!("cannot set {file} of {}: {e}", cg.dir.display());
            return None;
        }
        if version == Version::V2 {
            // No swap either, so the limit is the limit.
            let _ = std::fs::write(cg.dir.join("memory.swap.max"), "0");
        } else {
            let _ = std::fs::write(cg.dir.join("memory.memsw.limit_in_bytes"), &value);
        }
        Some(cg)
    }

    /// The file a process writes its pid to, to join.
    pub fn procs_file(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    /// The hierarchy.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Processes the kernel's OOM killer killed in this cgroup.
    pub fn oom_kills(&self) -> u64 {
        let (file, key) = match self.version {
            Version::V1 => ("memory.oom_control", "oom_kill "),
            Version::V2 => ("memory.events", "oom_kill "),
        };
        std::fs::read_to_string(self.dir.join(file))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// The cgroup's peak memory use in bytes (page cache included), if the
    /// kernel reports it.
    pub fn peak_bytes(&self) -> Option<u64> {
        let file = match self.version {
            Version::V1 => "memory.max_usage_in_bytes",
            Version::V2 => "memory.peak",
        };
        std::fs::read_to_string(self.dir.join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        // Only an empty cgroup can be removed; the harness has killed the
        // driver by now, but the kernel may take a moment to reap it.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// `VmHWM` (peak resident set) of `pid`, in KiB.
pub fn vm_hwm_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
