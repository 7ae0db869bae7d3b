//! `cargo xtask bench`: the release driver against testkit's fake API, a
//! table on stdout and `target/bench/report.json`.
//!
//! Every figure that can be is a ratio of two things measured in the same
//! run (these machines are shared and noisy): publish latency against bare
//! RSA-2048 generation, the ECDSA publish against the bare API round trip.
//!
//! The command builds the driver and this tool in release mode (so bare key
//! generation is measured with the same optimisation as the driver's; the
//! driver and the Pod signer statically linked, as the image ships them), then
//! re-runs itself with `--inner` inside a private mount namespace
//! (`unshare --mount`), because publishing bind-mounts every volume. That
//! needs root.
//!
//! Flags: `--idle-seconds N` shortens the B5 idle window (default 60 s, the
//! figure's definition), `--no-build` uses the release binaries as they are,
//! `--only GROUP[,GROUP]` runs some groups (`keygen`, `b1` with B7, `b2`,
//! `b3`, `b4` with B5 and B6, `b9`, `tenants` with B8, B10 and B12, `b11`: the
//! renewal storm, `b13`: the Pod signer) into
//! `target/bench/report-partial.json`,
//! `--logs DIR` keeps each driver's log, `--b11-volumes N` reduces B11's
//! 1,000 volumes for a quick look (its bound scales with N), `--pod-signer PATH`
//! measures another signer binary in B13.

mod b11;
mod b13;
mod measure;
mod sys;
mod watch;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cmcsi_testkit::mount_ns::{self, Privilege};
use serde_json::{Map, Value, json};

use crate::workspace_root;

/// Marks the namespaced inner run.
const NAMESPACE_LABEL: &str = "xtask bench";

/// Flags of `cargo xtask bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run the measurements (set by the bench itself for its run inside the
    /// mount namespace).
    #[arg(long, hide = true, requires_all = ["driver", "out"])]
    inner: bool,
    /// Use the release binaries as they are instead of building them.
    #[arg(long)]
    no_build: bool,
    /// Length of the B5 idle window in seconds (the figure's definition is 60).
    #[arg(long, value_name = "N", default_value_t = 60.0, value_parser = positive_seconds)]
    idle_seconds: f64,
    /// The driver binary to measure (inner run).
    #[arg(long, hide = true)]
    driver: Option<PathBuf>,
    /// Where the inner run writes its report.
    #[arg(long, hide = true)]
    out: Option<PathBuf>,
    /// Run only these groups (into target/bench/report-partial.json):
    /// keygen, b1 (with B7), b2, b3, b4 (with B5 and B6), b9, tenants (B8, B10 and B12), b11, b13.
    #[arg(long, value_name = "GROUP,...", value_delimiter = ',',
          value_parser = ["keygen", "b1", "b2", "b3", "b4", "b9", "tenants", "b11", "b13"])]
    only: Vec<String>,
    /// B11's volume count (the figure's definition is 1,000).
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    b11_volumes: u64,
    /// Keep each driver's log in this directory.
    #[arg(long, value_name = "DIR")]
    logs: Option<PathBuf>,
    /// The Pod signer binary B13 measures (default: the release build), to compare two
    /// builds side by side.
    #[arg(long, value_name = "PATH")]
    pod_signer: Option<PathBuf>,
}

fn positive_seconds(v: &str) -> Result<f64, String> {
    v.parse()
        .ok()
        .filter(|s: &f64| s.is_finite() && *s > 0.0)
        .ok_or_else(|| format!("`{v}`: expected seconds > 0"))
}

/// Entry point of `cargo xtask bench`.
pub fn run(a: &Args) -> Result<()> {
    if a.inner {
        return inner(a);
    }
    let started = Instant::now();
    if !rustix::process::geteuid().is_root() {
        bail!(
            "cargo xtask bench needs root: the driver bind-mounts every published volume, \
             which the bench does inside its own mount namespace (unshare --mount). \
             Run it as root (e.g. sudo -E cargo xtask bench)."
        );
    }
    let root = workspace_root();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { root.join(p) })
        .unwrap_or_else(|| root.join("target"));
    let only_signer = a.only.iter().all(|g| g == "b13") && !a.only.is_empty();
    let wants_signer = a.only.is_empty() || a.only.iter().any(|g| g == "b13");
    if !a.no_build {
        // Separate builds, so the driver is the shipped binary, built as the image builds it
        // (statically linked, `crate::release`; feature unification with the bench's own
        // dependencies would change it). B13 alone needs no driver. The harness is not
        // shipped: a plain release build.
        if !only_signer {
            crate::release::build(crate::release::DRIVER, false)?;
        }
        if wants_signer && a.pod_signer.is_none() {
            crate::release::build(crate::release::SIGNER, false)?;
        }
        crate::run("cargo", &["build", "--release", "-p", "xtask"], &[])?;
    }
    let driver = target.join("release/cert-manager-csi-driver");
    let mut tool = target.join("release/xtask");
    if a.no_build && !tool.is_file() {
        // The measuring harness (fake API, kubelet, clients) from this build; the measured
        // binaries are still the release ones.
        tool = std::env::current_exe().context("locating this xtask")?;
        eprintln!(
            "bench: note: no release xtask; measuring with {} as the harness",
            tool.display()
        );
    }
    let signer = match &a.pod_signer {
        Some(p) => std::path::absolute(p).unwrap_or_else(|_| p.clone()),
        None => target.join("release/cert-manager-pod-signer"),
    };
    let mut needed = vec![&tool];
    if !only_signer {
        needed.push(&driver);
    }
    if wants_signer {
        needed.push(&signer);
    }
    for bin in needed {
        if !bin.is_file() {
            bail!("{} is missing; run without --no-build", bin.display());
        }
    }
    let out = target.join(if a.only.is_empty() {
        "bench/report.json"
    } else {
        "bench/report-partial.json"
    });
    let mut extra: Vec<String> = Vec::new();
    if !a.only.is_empty() {
        extra.extend(["--only".to_string(), a.only.join(",")]);
    }
    if let Some(logs) = &a.logs {
        let logs = std::path::absolute(logs).unwrap_or_else(|_| logs.clone());
        extra.extend(["--logs".to_string(), logs.display().to_string()]);
    }
    if wants_signer {
        extra.extend(["--pod-signer".to_string(), signer.display().to_string()]);
    }
    let status = mount_ns::unshare_command(&tool, NAMESPACE_LABEL, Privilege::Root)
        .args(["bench", "--inner", "--driver"])
        .arg(&driver)
        .arg("--out")
        .arg(&out)
        .arg("--idle-seconds")
        .arg(a.idle_seconds.to_string())
        .arg("--b11-volumes")
        .arg(a.b11_volumes.to_string())
        .args(&extra)
        .current_dir(&root)
        .status()
        .context("could not run `unshare` (util-linux)")?;
    if !status.success() {
        bail!("the benchmark failed: {status}");
    }
    eprintln!(
        "bench: done in {:.0} s (builds included)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The measuring run, inside the private mount namespace.
fn inner(a: &Args) -> Result<()> {
    if !mount_ns::is_inside(NAMESPACE_LABEL) {
        bail!("--inner runs only inside the mount namespace `cargo xtask bench` sets up");
    }
    let driver = a.driver.clone().context("--inner needs --driver")?;
    let out = a.out.clone().context("--inner needs --out")?;
    let opts = measure::Options {
        driver,
        idle_window: Duration::from_secs_f64(a.idle_seconds),
        only: a.only.clone(),
        logs: a.logs.clone(),
        signer: a.pod_signer.clone(),
        b11_volumes: usize::try_from(a.b11_volumes).unwrap_or(1000),
    };
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let figures = rt.block_on(measure::all(&opts))?;
    let checks = checks(&figures);
    let report = report(&figures, &checks, started.elapsed());
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&out, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing {}", out.display()))?;
    print!("{}", table(&figures, &checks));
    println!("report: {}", display_relative(&out));
    Ok(())
}

fn display_relative(p: &Path) -> String {
    p.strip_prefix(workspace_root())
        .unwrap_or(p)
        .display()
        .to_string()
}

/// The report keys the issue fixes, in table order, with their units.
const KEYS: &[(&str, &str)] = &[
    ("cores", ""),
    ("b1_publish_p50_ms", "ms"),
    ("b1_publish_p99_ms", "ms"),
    ("b1_keygen_rsa2048_p50_ms", "ms"),
    ("keygen_csr_rsa2048_p50_ms", "ms"),
    ("b2_burst100_wall_s", "s"),
    ("b3_ecdsa_publish_p50_ms", "ms"),
    ("b3_api_roundtrip_p50_ms", "ms"),
    ("b4_rss_idle_mib", "MiB"),
    ("b4_rss_1000_mib", "MiB"),
    ("b5_idle_cpu_s", "s"),
    ("b6_restart_1000_s", "s"),
    ("b7_creates_per_issuance", ""),
    ("b7_polling_reads", ""),
    ("b7_watches", ""),
    ("b9_probe_p99_hostile_ms", "ms"),
    ("b8_rss_growth_mib", "MiB"),
    ("b10_publish_p50_ratio", ""),
    ("b12_peak_rss_ratio", ""),
    ("b11_all_renewed_s", "s"),
    ("b11_renewed_limit_s", "s"),
    ("b11_api_rate_ratio", ""),
    ("b11_expired", ""),
    ("b13_cold_bare_wall_s", "s"),
    ("b13_bare_wall_s", "s"),
    ("b13_signer_wall_s", "s"),
    ("b13_wall_ratio", ""),
    ("b13_signer_rss_peak_mib", "MiB"),
    ("b13_bare_api_cpu_s", "s"),
    ("b13_signer_api_cpu_s", "s"),
    ("b13_harness_cpu_ratio", ""),
    ("b13_bridge_wall_s", "s"),
    ("b13_signer_bridge_ratio", ""),
    ("b13_signer_cpu_s", "s"),
    ("b13_warm_signer_wall_s", "s"),
    ("b13_warm_signer_cpu_s", "s"),
    ("b13_warm_wall_ratio", ""),
    ("b13_split_bare_wall_s", "s"),
    ("b13_split_signer_wall_s", "s"),
    ("b13_split_wall_ratio", ""),
    ("b13_split_harness_cpu_ratio", ""),
];

/// How one figure is judged.
#[derive(Debug, Clone, PartialEq)]
enum Limit {
    /// At most this much.
    AtMost(f64),
    /// Exactly this.
    Exactly(f64),
}

/// One target, evaluated.
#[derive(Debug, Clone, PartialEq)]
struct Check {
    key: &'static str,
    /// The target as written in the issue.
    rule: String,
    limit: Limit,
    value: f64,
}

impl Check {
    fn pass(&self) -> bool {
        match self.limit {
            Limit::AtMost(l) => self.value <= l,
            // Counters over a fixed number of issuances: exact, up to float noise.
            Limit::Exactly(l) => (self.value - l).abs() < 1e-9,
        }
    }

    /// value / limit (`None` for an exact zero target).
    fn ratio(&self) -> Option<f64> {
        let l = match self.limit {
            Limit::AtMost(l) | Limit::Exactly(l) => l,
        };
        (l != 0.0).then(|| self.value / l)
    }

    fn limit_value(&self) -> f64 {
        match self.limit {
            Limit::AtMost(l) | Limit::Exactly(l) => l,
        }
    }
}

/// The issue's targets against the measured figures.
fn checks(f: &measure::Figures) -> Vec<Check> {
    let get = |k: &str| f.get(k).copied().unwrap_or(f64::NAN);
    let keygen = get("b1_keygen_rsa2048_p50_ms");
    let cores = get("cores");
    let at_most = |key: &'static str, rule: String, limit: f64| Check {
        key,
        rule,
        limit: Limit::AtMost(limit),
        value: get(key),
    };
    let exactly = |key: &'static str, n: f64| Check {
        key,
        rule: format!("= {n}"),
        limit: Limit::Exactly(n),
        value: get(key),
    };
    vec![
        at_most(
            "b1_publish_p50_ms",
            "<= 0.2 x keygen p50".into(),
            0.2 * keygen,
        ),
        at_most("b1_publish_p99_ms", "<= 1.0 x keygen p50".into(), keygen),
        at_most(
            "b2_burst100_wall_s",
            "<= 1.25 x 100 x keygen p50 / cores".into(),
            1.25 * 100.0 * keygen / 1000.0 / cores,
        ),
        at_most(
            "b3_ecdsa_publish_p50_ms",
            "<= 3 x API round trip p50".into(),
            3.0 * get("b3_api_roundtrip_p50_ms"),
        ),
        at_most("b4_rss_idle_mib", "<= 12 MiB".into(), 12.0),
        at_most("b4_rss_1000_mib", "<= 32 MiB".into(), 32.0),
        at_most("b5_idle_cpu_s", "<= 0.1 s".into(), 0.1),
        at_most("b6_restart_1000_s", "<= 1 s".into(), 1.0),
        exactly("b7_creates_per_issuance", 1.0),
        exactly("b7_polling_reads", 0.0),
        exactly("b7_watches", 1.0),
        at_most("b9_probe_p99_hostile_ms", "<= 200 ms".into(), 200.0),
        at_most("b8_rss_growth_mib", "< 8 MiB".into(), 8.0),
        at_most("b10_publish_p50_ratio", "<= 1.5".into(), 1.5),
        at_most("b12_peak_rss_ratio", "<= 1.5".into(), 1.5),
        at_most(
            "b11_all_renewed_s",
            "<= 1.2 x volumes / renewal rate".into(),
            1.2 * get("b11_volumes") / get("b11_renewal_rate"),
        ),
        at_most("b11_api_rate_ratio", "<= 1 (within QPS/burst)".into(), 1.0),
        exactly("b11_expired", 0.0),
        at_most(
            "b13_wall_ratio",
            "<= 1.25 x bare requests' wall".into(),
            1.25,
        ),
        at_most("b13_signer_rss_peak_mib", "< 32 MiB".into(), 32.0),
    ]
}

/// `report.json`: every figure at the top level (numbers), plus the targets
/// and the machine.
fn report(f: &measure::Figures, checks: &[Check], took: Duration) -> Value {
    let mut m = Map::new();
    for (k, v) in f {
        m.insert((*k).to_string(), json!(round(*v)));
    }
    let targets: Map<String, Value> = checks
        .iter()
        .map(|c| {
            (
                c.key.to_string(),
                json!({
                    "target": c.rule,
                    "limit": round(c.limit_value()),
                    "ratio": c.ratio().map(round),
                    "pass": c.pass(),
                }),
            )
        })
        .collect();
    m.insert("targets".into(), Value::Object(targets));
    m.insert("cpu_model".into(), json!(sys::cpu_model()));
    m.insert("run_s".into(), json!(round(took.as_secs_f64())));
    m.insert("command".into(), json!("cargo xtask bench"));
    Value::Object(m)
}

/// Four significant decimals are plenty for these figures.
fn round(v: f64) -> f64 {
    if v.is_finite() {
        (v * 10_000.0).round() / 10_000.0
    } else {
        v
    }
}

/// The stdout table: each figure, its target, the ratio and PASS/MISS.
fn table(f: &measure::Figures, checks: &[Check]) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nmachine: {} cores, {}",
        f.get("cores").copied().unwrap_or(f64::NAN),
        sys::cpu_model()
    );
    let _ = writeln!(
        s,
        "{:<28} {:>10} {:<4} {:<36} {:>10} {:>7}  result",
        "figure", "value", "", "target", "limit", "ratio"
    );
    for (key, unit) in KEYS {
        // A partial run (`--only`) shows only what it measured.
        let Some(value) = f.get(key).copied() else {
            continue;
        };
        match checks.iter().find(|c| c.key == *key) {
            Some(c) => {
                let ratio = c.ratio().map_or("-".to_string(), |r| format!("{r:.2}"));
                let _ = writeln!(
                    s,
                    "{:<28} {:>10.3} {:<4} {:<36} {:>10.3} {:>7}  {}",
                    key,
                    value,
                    unit,
                    c.rule,
                    c.limit_value(),
                    ratio,
                    if c.pass() { "PASS" } else { "MISS" }
                );
            }
            None => {
                let _ = writeln!(s, "{key:<28} {value:>10.3} {unit:<4} (reference)");
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures() -> measure::Figures {
        [
            ("cores", 2.0),
            ("b1_publish_p50_ms", 10.0),
            ("b1_publish_p99_ms", 120.0),
            ("b1_keygen_rsa2048_p50_ms", 100.0),
            ("keygen_csr_rsa2048_p50_ms", 101.0),
            ("b2_burst100_wall_s", 6.0),
            ("b3_ecdsa_publish_p50_ms", 4.0),
            ("b3_api_roundtrip_p50_ms", 2.0),
            ("b4_rss_idle_mib", 9.0),
            ("b4_rss_1000_mib", 33.0),
            ("b5_idle_cpu_s", 0.01),
            ("b6_restart_1000_s", 0.2),
            ("b7_creates_per_issuance", 1.0),
            ("b7_polling_reads", 0.0),
            ("b7_watches", 2.0),
            ("b9_probe_p99_hostile_ms", 12.0),
            ("b8_rss_growth_mib", 1.0),
            ("b10_publish_p50_ratio", 1.1),
            ("b12_peak_rss_ratio", 1.2),
            ("b11_volumes", 1000.0),
            ("b11_renewal_rate", 5.0),
            ("b11_all_renewed_s", 230.0),
            ("b11_renewed_limit_s", 240.0),
            ("b11_api_rate_ratio", 0.4),
            ("b11_expired", 0.0),
            ("b13_cold_bare_wall_s", 2.2),
            ("b13_bare_wall_s", 2.0),
            ("b13_signer_wall_s", 2.4),
            ("b13_wall_ratio", 1.2),
            ("b13_signer_rss_peak_mib", 20.0),
            ("b13_bare_api_cpu_s", 0.9),
            ("b13_signer_api_cpu_s", 1.5),
            ("b13_harness_cpu_ratio", 1.7),
            ("b13_bridge_wall_s", 2.1),
            ("b13_signer_bridge_ratio", 1.1),
            ("b13_signer_cpu_s", 0.4),
            ("b13_warm_signer_wall_s", 2.4),
            ("b13_warm_signer_cpu_s", 0.3),
            ("b13_warm_wall_ratio", 1.2),
            ("b13_split_bare_wall_s", 2.4),
            ("b13_split_signer_wall_s", 3.0),
            ("b13_split_wall_ratio", 1.25),
            ("b13_split_harness_cpu_ratio", 1.3),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn targets_follow_the_issue() {
        let c = checks(&figures());
        let by = |k: &str| c.iter().find(|c| c.key == k).unwrap().clone();
        assert!(by("b1_publish_p50_ms").pass());
        assert_eq!(by("b1_publish_p50_ms").limit_value(), 20.0);
        assert!(!by("b1_publish_p99_ms").pass(), "120 ms > 1.0 x 100 ms");
        // 1.25 x 100 x 0.1 s / 2 cores = 6.25 s.
        assert!((by("b2_burst100_wall_s").limit_value() - 6.25).abs() < 1e-9);
        assert!(by("b2_burst100_wall_s").pass());
        assert!(by("b3_ecdsa_publish_p50_ms").pass());
        assert!(!by("b4_rss_1000_mib").pass());
        assert!(by("b7_polling_reads").pass());
        assert_eq!(by("b7_polling_reads").ratio(), None);
        assert!(!by("b7_watches").pass());
        assert_eq!(by("b7_watches").ratio(), Some(2.0));
        assert!(by("b9_probe_p99_hostile_ms").pass());
        assert_eq!(by("b9_probe_p99_hostile_ms").limit_value(), 200.0);
        // 1.2 x 1,000 / 5 per second.
        assert_eq!(by("b11_all_renewed_s").limit_value(), 240.0);
        assert!(by("b11_all_renewed_s").pass() && by("b11_expired").pass());
    }

    #[test]
    fn report_has_every_key_as_a_number() {
        let f = figures();
        let r = report(&f, &checks(&f), Duration::from_secs(3));
        for (k, _) in KEYS {
            assert!(r[*k].is_number(), "{k}: {}", r[*k]);
        }
        assert_eq!(r["targets"]["b7_watches"]["pass"], false);
        let t = table(&f, &checks(&f));
        assert!(t.contains("MISS") && t.contains("PASS"), "{t}");
        assert!(t.contains("keygen_csr_rsa2048_p50_ms"));
    }

    #[test]
    fn flags() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: Args,
        }
        let parse = |args: &[&str]| {
            use clap::Parser;
            Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied()))
                .map(|c| c.args)
        };
        let a = parse(&["--idle-seconds", "5", "--no-build"]).unwrap();
        assert_eq!(a.idle_seconds, 5.0);
        assert!(a.no_build && !a.inner);
        assert_eq!(parse(&[]).unwrap().idle_seconds, 60.0);
        assert_eq!(parse(&["--only", "b1,b3"]).unwrap().only, ["b1", "b3"]);
        assert_eq!(parse(&["--only", "b9"]).unwrap().only, ["b9"]);
        assert_eq!(parse(&["--only", "b11"]).unwrap().b11_volumes, 1000);
        assert_eq!(parse(&["--b11-volumes", "200"]).unwrap().b11_volumes, 200);
        assert!(parse(&["--b11-volumes", "0"]).is_err());
        assert!(parse(&["--only", "b99"]).is_err());
        assert!(parse(&["--idle-seconds", "0"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
        assert!(parse(&["--inner"]).is_err());
    }
}
