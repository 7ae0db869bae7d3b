//! Project automation, run as `cargo xtask <command>` (rust-analyzer's xtask
//! pattern: plain Rust instead of shell scripts, so it runs wherever cargo
//! does).
//!
//! - `ci`: formatting, clippy with warnings denied, every workspace test,
//!   and the docs with warnings denied.
//! - `deploy [--check]`: generate the manifests and Helm chart under `deploy/`
//!   (or fail if the committed ones are stale).
//! - `demo`: the driver end to end on this machine (fake cluster, test CA,
//!   real driver, real mounts in a private mount namespace).
//! - `e2e`: the end-to-end tests alone.
//! - `reliability`: crash, fault, hostile-input, concurrency, secrets and
//!   permission tests, and bounded fuzzing.

use std::process::Command;

use anyhow::{Context, Result, bail};

mod bench;
mod demo;
mod deploy;
mod reliability;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        bail!("usage: cargo xtask <ci|demo|e2e|reliability|bench|deploy [--check]>");
    };
    match cmd.as_str() {
        "ci" => ci(),
        "deploy" => deploy::run(&args[1..]),
        "reliability" => reliability::run(&args[1..]),
        "demo" => demo::run(&args[1..]),
        "e2e" => e2e(),
        "bench" => bench::run(&args[1..]),
        other => bail!(
            "unknown xtask command `{other}`; known: ci, demo, e2e, reliability, bench, deploy"
        ),
    }
}

/// Runs one command from the workspace root and fails if it fails.
pub(crate) fn run(program: &str, args: &[&str], envs: &[(&str, &str)]) -> Result<()> {
    eprintln!("$ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(workspace_root())
        .status()
        .with_context(|| format!("could not start `{program}`"))?;
    if !status.success() {
        bail!("`{program} {}` failed: {status}", args.join(" "));
    }
    Ok(())
}

pub(crate) fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| std::path::PathBuf::from("."))
}

/// The end-to-end tests: the real driver binary, real mounts in private
/// mount namespaces, testkit's fake API.
fn e2e() -> Result<()> {
    run(
        "cargo",
        &[
            "nextest",
            "run",
            "-p",
            "cmcsi-driver",
            "--test",
            "e2e",
            "--test",
            "grpc",
        ],
        &[],
    )
}

fn ci() -> Result<()> {
    run("cargo", &["fmt", "--all", "--check"], &[])?;
    deploy::run(&["--check".to_string()])?;
    run(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
        &[],
    )?;
    run(
        "cargo",
        &["doc", "--workspace", "--no-deps"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )?;
    // Fuzz each target (attributes, issued chain, metadata.json) for a
    // bounded time; the reliability tests themselves run with the workspace.
    reliability::run(&["--fuzz-only".into(), "--fuzz-seconds".into(), "30".into()])?;
    run("cargo", &["test", "--workspace", "--doc"], &[])?;
    // Last, so its summary closes the output.
    run(
        "cargo",
        &["nextest", "run", "--workspace", "--no-fail-fast"],
        &[],
    )?;
    Ok(())
}
