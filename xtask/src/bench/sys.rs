//! Small readers of `/proc` and helpers the measurements share: resident
//! memory and CPU time of a process, the CPU model, percentiles, and
//! unmounting what a run left behind.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};

/// Resident set size of `pid` in MiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_mib(pid: u32) -> Result<f64> {
    status_mib(pid, "VmRSS:")
}

/// Peak resident set size of `pid` in MiB (`VmHWM` of `/proc/<pid>/status`).
pub fn peak_rss_mib(pid: u32) -> Result<f64> {
    status_mib(pid, "VmHWM:")
}

/// Drops `file`'s pages from the page cache, so that a process started
/// from it next reads it as a node's driver does when its container starts
/// (from disk, through readahead). The resident size of the mapped binary
/// depends on how its pages came into the cache: a binary just written by
/// the linker or copied is cached in other folio sizes than one read back,
/// and the kernel maps whole folios around each fault, so the same binary
/// measured up to 1 MiB apart without this.
pub fn evict_page_cache(file: &Path) -> Result<()> {
    let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    // Written pages must be clean to be dropped.
    f.sync_all()
        .with_context(|| format!("syncing {}", file.display()))?;
    rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed)
        .with_context(|| format!("dropping {} from the page cache", file.display()))
}

/// The anonymous (heap, stacks) and file-backed (the mapped binary and
/// libraries) parts of the resident set, in MiB.
pub fn rss_parts_mib(pid: u32) -> Result<(f64, f64)> {
    Ok((status_mib(pid, "RssAnon:")?, status_mib(pid, "RssFile:")?))
}

/// A `kB` line of `/proc/<pid>/status`, in MiB.
fn status_mib(pid: u32, field: &str) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .ok_or_else(|| anyhow!("no {field} line in /proc/{pid}/status"))?;
    let kib: f64 = line
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| anyhow!("malformed line `{line}`"))?
        .parse()
        .with_context(|| format!("malformed line `{line}`"))?;
    Ok(kib / 1024.0)
}

/// CPU time (user + system, all threads) `pid` has used so far.
pub fn cpu_time(pid: u32, ticks_per_second: f64) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may contain spaces;
    // the fields after it start with field 3 (state).
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("malformed /proc/{pid}/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime is field 14 and stime field 15 of proc(5): indexes 11 and 12 here.
    let tick = |i: usize| -> Result<f64> {
        fields
            .get(i)
            .ok_or_else(|| anyhow!("short /proc/{pid}/stat"))?
            .parse::<f64>()
            .with_context(|| format!("malformed /proc/{pid}/stat"))
    };
    Ok(Duration::from_secs_f64(
        (tick(11)? + tick(12)?) / ticks_per_second,
    ))
}

/// The CPUs `pid` may run on, as the kernel lists them (`Cpus_allowed_list`
/// of `/proc/<pid>/status`, such as `0-3,6`).
pub fn affinity(pid: u32) -> Result<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|l| l.trim().to_owned())
        .ok_or_else(|| anyhow!("no Cpus_allowed_list line in /proc/{pid}/status"))
}

/// Puts every thread of `pid` on the CPUs of `list` (as [`affinity`] gives
/// them); threads started later inherit it from the thread that starts them.
/// By util-linux's `taskset -a`, which the bench needs anyway for `unshare`.
pub fn set_affinity(pid: u32, list: &str) -> Result<()> {
    let out = std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", list, &pid.to_string()])
        .output()
        .context("running taskset (util-linux)")?;
    if !out.status.success() {
        return Err(anyhow!(
            "taskset -a -p -c {list} {pid} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// The CPU numbers of a list such as `0-3,6`.
pub fn cpu_list(list: &str) -> Result<Vec<u32>> {
    let mut cpus = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let num = |s: &str| {
            s.parse::<u32>()
                .with_context(|| format!("malformed CPU list `{list}`"))
        };
        match part.split_once('-') {
            Some((a, b)) => cpus.extend(num(a)?..=num(b)?),
            None => cpus.push(num(part)?),
        }
    }
    Ok(cpus)
}

/// Machine-wide CPU time so far, from the first line of `/proc/stat`:
/// `(busy, steal)` where busy is everything but idle, iowait and steal.
pub fn machine_cpu(ticks_per_second: f64) -> Result<(Duration, Duration)> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let line = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .ok_or_else(|| anyhow!("no cpu line in /proc/stat"))?;
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|x| x.parse::<f64>().unwrap_or(0.0))
        .collect();
    let at = |i: usize| v.get(i).copied().unwrap_or(0.0);
    // user nice system idle iowait irq softirq steal
    let busy = at(0) + at(1) + at(2) + at(5) + at(6);
    let secs = |t: f64| Duration::from_secs_f64(t / ticks_per_second);
    Ok((secs(busy), secs(at(7))))
}

/// Clock ticks per second for `/proc/<pid>/stat` (`getconf CLK_TCK`; 100 on
/// every mainstream Linux when that is unavailable).
pub fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// The CPU model from `/proc/cpuinfo`.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

/// The `p`-th percentile (0..=100) of `samples` by the nearest-rank method,
/// in milliseconds.
pub fn percentile_ms(samples: &[Duration], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut v: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// Arithmetic mean of `samples` in milliseconds.
pub fn mean_ms(samples: &[Duration]) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples
        .iter()
        .map(|d| d.as_secs_f64() * 1000.0)
        .sum::<f64>()
        / samples.len() as f64
}

/// Detaches every mount at or below `dir` (deepest first), so the
/// directory can be removed. Only called inside the bench's private mount
/// namespace.
pub fn unmount_below(dir: &Path) -> Result<()> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").context("reading mountinfo")?;
    let mut points: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(cmcsi_store::unescape_mountinfo)
        .filter(|p| Path::new(p).starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    points.dedup();
    for p in points {
        // Stacked mounts on one point need one detach each; stop at the
        // first error (nothing more mounted there).
        while rustix::mount::unmount(p.as_str(), rustix::mount::UnmountFlags::DETACH).is_ok() {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_as_the_kernel_writes_them() {
        assert_eq!(cpu_list("0-1").unwrap(), vec![0, 1]);
        assert_eq!(cpu_list("0-2,5,7-8").unwrap(), vec![0, 1, 2, 5, 7, 8]);
        assert_eq!(cpu_list("3").unwrap(), vec![3]);
        assert!(cpu_list("0-x").is_err());
        // This process's own list parses and holds at least one CPU.
        let mine = affinity(std::process::id()).unwrap();
        assert!(!cpu_list(&mine).unwrap().is_empty(), "{mine}");
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let s: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&s, 50.0), 50.0);
        assert_eq!(percentile_ms(&s, 99.0), 99.0);
        assert_eq!(percentile_ms(&s, 100.0), 100.0);
        let three = [30, 10, 20].map(Duration::from_millis);
        assert_eq!(percentile_ms(&three, 50.0), 20.0);
        assert_eq!(percentile_ms(&three, 99.0), 30.0);
        assert!(percentile_ms(&[], 50.0).is_nan());
        assert_eq!(mean_ms(&three), 20.0);
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(cmcsi_store::unescape_mountinfo(r"/a\040b/c"), "/a b/c");
        assert_eq!(cmcsi_store::unescape_mountinfo(r"/plain"), "/plain");
        assert_eq!(cmcsi_store::unescape_mountinfo(r"/end\04"), r"/end\04");
    }

    #[test]
    fn own_process_figures() {
        let pid = std::process::id();
        assert!(rss_mib(pid).unwrap() > 0.0);
        let (anon, file) = rss_parts_mib(pid).unwrap();
        assert!(anon > 0.0 && file > 0.0);
        // Burn a little CPU so the counter is visibly non-negative and readable.
        let mut x = 0u64;
        for i in 0..1_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(cpu_time(pid, clock_ticks()).is_ok());
        let (busy, _) = machine_cpu(clock_ticks()).unwrap();
        assert!(busy > Duration::ZERO);
        assert!(!cpu_model().is_empty());
    }
}
