//! Project automation, run as `cargo xtask <command>` (rust-analyzer's xtask
//! pattern: plain Rust instead of shell scripts, so it runs wherever cargo
//! does).
//!
//! - `ci`: formatting, clippy with warnings denied, every workspace test,
//!   and the docs with warnings denied.
//! - `deploy [--check]`: generate the manifests and Helm chart under `deploy/`
//!   (or fail if the committed ones are stale).

use std::process::Command;

use anyhow::{Context, Result, bail};

mod bench;
mod deploy;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        bail!("usage: cargo xtask <ci|deploy [--check]>");
    };
    match cmd.as_str() {
        "ci" => ci(),
        "deploy" => deploy::run(&args[1..]),
        "bench" => bench::run(&args[1..]),
        other => bail!("unknown xtask command `{other}`; known: ci, deploy"),
    }
}

/// Runs one command from the workspace root and fails if it fails.
fn run(program: &str, args: &[&str], envs: &[(&str, &str)]) -> Result<()> {
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

fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| std::path::PathBuf::from("."))
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
        &["nextest", "run", "--workspace", "--no-fail-fast"],
        &[],
    )?;
    run("cargo", &["test", "--workspace", "--doc"], &[])?;
    run(
        "cargo",
        &["doc", "--workspace", "--no-deps"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )?;
    Ok(())
}
