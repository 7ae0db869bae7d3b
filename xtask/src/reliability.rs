//! `cargo xtask reliability [--tests-only | --fuzz-only] [--fuzz-seconds N]`:
//! the reliability and security suite.
//!
//! - The driver's `reliability_*` integration tests (crashes, faults,
//!   hostile input, concurrency, secrets, permissions), run with
//!   `cargo nextest` when it is installed and `cargo test` otherwise.
//! - Every fuzz target for a bounded time each (30 s by default): attribute
//!   parsing, the issued-chain parser and metadata parsing.
//!
//! The fuzz targets are libFuzzer targets (`libfuzzer-sys`, as `cargo fuzz`
//! builds them) built on stable Rust: the coverage instrumentation libFuzzer
//! needs comes from the stable `-C passes=sancov-module` and `-C llvm-args`
//! flags. Only the address sanitizer (`-Zsanitizer`, nightly) is left out;
//! safe Rust makes it worth little here, and panics, overflows and debug
//! assertions are still caught. The flags apply to the target triple only
//! (`--target` is passed explicitly), so build scripts and proc macros are
//! built without instrumentation, as `cargo fuzz` does.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::workspace_root;

/// One fuzz target: its cargo project, binary name and seed corpus (if any).
struct Target {
    project: &'static str,
    bin: &'static str,
    seeds: Option<&'static str>,
}

const TARGETS: &[Target] = &[
    Target {
        project: "crates/attrs/fuzz",
        bin: "parse",
        seeds: None,
    },
    Target {
        project: "crates/keygen/fuzz",
        bin: "chain",
        seeds: Some("corpus/chain"),
    },
    Target {
        project: "crates/store/fuzz",
        bin: "metadata",
        seeds: Some("corpus/metadata"),
    },
];

/// The libFuzzer coverage flags `cargo fuzz` uses, minus the nightly-only
/// sanitizer.
const FUZZ_RUSTFLAGS: &str = "-Cpasses=sancov-module \
    -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
    -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares \
    --cfg fuzzing -Cdebug-assertions -Coverflow-checks";

/// Flags of `cargo xtask reliability`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run the reliability tests only, no fuzzing.
    #[arg(long, conflicts_with = "fuzz_only")]
    pub tests_only: bool,
    /// Run the fuzz targets only, no tests.
    #[arg(long)]
    pub fuzz_only: bool,
    /// How long to fuzz each target, in seconds.
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub fuzz_seconds: u64,
}

/// Entry point for `cargo xtask reliability`.
pub fn run(args: &Args) -> Result<()> {
    if !args.fuzz_only {
        run_tests()?;
    }
    if !args.tests_only {
        for t in TARGETS {
            fuzz_target(t, args.fuzz_seconds)?;
        }
    }
    Ok(())
}

/// The driver's `reliability_*` test files.
fn reliability_tests() -> Result<Vec<String>> {
    let dir = workspace_root().join("crates/driver/tests");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".rs")
            && stem.starts_with("reliability_")
        {
            names.push(stem.to_string());
        }
    }
    names.sort();
    if names.is_empty() {
        bail!("no reliability_*.rs tests in {}", dir.display());
    }
    Ok(names)
}

fn run_tests() -> Result<()> {
    let names = reliability_tests()?;
    let nextest = Command::new("cargo")
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    let mut args: Vec<&str> = if nextest {
        vec!["nextest", "run", "-p", "cmcsi-driver", "--no-fail-fast"]
    } else {
        vec!["test", "-p", "cmcsi-driver", "--no-fail-fast"]
    };
    for n in &names {
        args.extend(["--test", n.as_str()]);
    }
    crate::run("cargo", &args, &[])
}

fn host_triple() -> Result<String> {
    let out = Command::new("rustc")
        .arg("-vV")
        .output()
        .context("running rustc -vV")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .context("rustc -vV printed no host triple")
}

fn fuzz_target(t: &Target, seconds: u64) -> Result<()> {
    let root = workspace_root();
    let project = root.join(t.project);
    let target_dir = root.join("target/fuzz");
    let triple = host_triple()?;
    eprintln!(
        "$ (cd {}) cargo build --release --locked --bin {}",
        t.project, t.bin
    );
    let status = Command::new("cargo")
        // --locked: a stale Cargo.lock fails here instead of being rewritten
        // in the source tree.
        .args([
            "build",
            "--release",
            "--locked",
            "--target",
            &triple,
            "--bin",
            t.bin,
        ])
        .env("RUSTFLAGS", FUZZ_RUSTFLAGS)
        .env("CARGO_TARGET_DIR", &target_dir)
        .current_dir(&project)
        .status()
        .context("could not start cargo")?;
    if !status.success() {
        bail!(
            "building fuzz target {} failed: {status}; if cargo says the lock file needs to be \
             updated, run `cargo update --workspace` in {} and commit its Cargo.lock",
            t.bin,
            t.project
        );
    }
    let bin = target_dir.join(&triple).join("release").join(t.bin);
    // New inputs go to a scratch corpus under target/, never into the repo;
    // the committed seeds are read only.
    let work = target_dir.join("corpus").join(t.bin);
    let artifacts = target_dir.join("artifacts").join(t.bin);
    for d in [&work, &artifacts] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let mut cmd = Command::new(&bin);
    cmd.arg(format!("-max_total_time={seconds}"))
        .arg("-rss_limit_mb=2048")
        .arg("-timeout=10")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg(&work);
    if let Some(seeds) = t.seeds {
        cmd.arg(project.join(seeds));
    }
    eprintln!("$ {} ({seconds} s)", display(&bin));
    let status = cmd
        .status()
        .with_context(|| format!("could not start {}", bin.display()))?;
    if !status.success() {
        bail!(
            "fuzz target {} found a failure ({status}); the input is in {}",
            t.bin,
            artifacts.display()
        );
    }
    Ok(())
}

fn display(p: &Path) -> String {
    let root = workspace_root();
    p.strip_prefix(&root)
        .map(PathBuf::from)
        .unwrap_or_else(|_| p.to_path_buf())
        .display()
        .to_string()
}
