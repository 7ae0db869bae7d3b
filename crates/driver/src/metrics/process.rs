//! Prometheus' standard `process_*` series, read from `/proc/self` at every
//! scrape.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Prometheus' standard `process_*` series, read from `/proc/self` at every
/// scrape. Written here because prometheus-client ships no process collector
/// and the separate crates that do are unmaintained or pull in a second
/// metrics stack; the names and meanings are those of Prometheus' Go
/// process collector.
#[derive(Debug, Default)]
pub(super) struct ProcessCollector;

/// What `/proc/self/stat` and friends say.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ProcessStats {
    pub(crate) cpu_seconds: f64,
    pub(crate) resident_bytes: f64,
    pub(crate) virtual_bytes: f64,
    pub(crate) start_time_seconds: f64,
    pub(crate) open_fds: f64,
    pub(crate) max_fds: f64,
}

/// Parses `/proc/self/stat` (`stat`), given clock ticks per second, the page
/// size and the boot time (`btime` of `/proc/stat`, Unix seconds). The
/// command name (field 2) may hold spaces and parentheses, so fields are
/// counted from the last `)`.
pub(crate) fn parse_proc_stat(
    stat: &str,
    ticks: f64,
    page_size: f64,
    boot_time: f64,
) -> Option<ProcessStats> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After the name: state is field 3; utime 14, stime 15, starttime 22,
    // vsize 23, rss 24 (proc(5)), so index = field - 3.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |field: usize| f.get(field - 3)?.parse::<f64>().ok();
    Some(ProcessStats {
        cpu_seconds: (num(14)? + num(15)?) / ticks,
        start_time_seconds: boot_time + num(22)? / ticks,
        virtual_bytes: num(23)?,
        resident_bytes: num(24)? * page_size,
        ..Default::default()
    })
}

fn boot_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

fn read_process_stats() -> Option<ProcessStats> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    let page = rustix::param::page_size() as f64;
    let mut s = parse_proc_stat(&stat, ticks, page, boot_time()?)?;
    s.open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as f64;
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    s.max_fds = limit.current.map_or(f64::INFINITY, |v| v as f64);
    Some(s)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // Not Linux, or /proc not mounted: no process series rather than zeros.
        let Some(s) = read_process_stats() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(s.cpu_seconds);
        let me = encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            cpu.metric_type(),
        )?;
        cpu.encode(me)?;
        for (name, help, value) in [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                s.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                s.virtual_bytes,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds",
                s.start_time_seconds,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                s.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors",
                s.max_fds,
            ),
        ] {
            let g = ConstGauge::new(value);
            let me = encoder.encode_descriptor(name, help, None, g.metric_type())?;
            g.encode(me)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_fields_are_counted_after_the_command_name() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1000 \
                    104857600 2560 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
        let s = parse_proc_stat(stat, 100.0, 4096.0, 1_700_000_000.0).unwrap();
        assert_eq!(s.cpu_seconds, 3.0);
        assert_eq!(s.start_time_seconds, 1_700_000_010.0);
        assert_eq!(s.virtual_bytes, 104_857_600.0);
        assert_eq!(s.resident_bytes, 2560.0 * 4096.0);
        assert!(parse_proc_stat("garbage", 100.0, 4096.0, 0.0).is_none());
    }
}
