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
use clap::{Parser, Subcommand};

mod bench;
mod demo;
mod deploy;
mod reliability;

/// Project automation for the cert-manager CSI driver.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// What CI runs: formatting, deploy/ up to date, clippy with warnings
    /// denied, docs, fuzzing, doc tests and every workspace test.
    Ci,
    /// The driver end to end on this machine: fake cluster, test CA, real
    /// driver, real mounts in a private mount namespace.
    Demo(demo::Args),
    /// The end-to-end tests alone (real driver binary, real mounts, fake API).
    E2e,
    /// Crash, fault, hostile-input, concurrency, secrets and permission
    /// tests, then bounded fuzzing of every fuzz target.
    Reliability(reliability::Args),
    /// The benchmarks against the release driver (needs root); writes
    /// target/bench/report.json.
    Bench(bench::Args),
    /// Generate the manifests and Helm chart under deploy/ from the typed
    /// objects in xtask/src/deploy.rs.
    Deploy {
        /// Write nothing; fail if the committed files differ from what
        /// would be generated.
        #[arg(long)]
        check: bool,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Ci => ci(),
        Cmd::Deploy { check } => deploy::run(check),
        Cmd::Reliability(args) => reliability::run(&args),
        Cmd::Demo(args) => demo::run(&args),
        Cmd::E2e => e2e(),
        Cmd::Bench(args) => bench::run(&args),
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
    deploy::run(true)?;
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
    reliability::run(&reliability::Args {
        tests_only: false,
        fuzz_only: true,
        fuzz_seconds: 30,
    })?;
    run("cargo", &["test", "--workspace", "--doc"], &[])?;
    // Last, so its summary closes the output.
    run(
        "cargo",
        &["nextest", "run", "--workspace", "--no-fail-fast"],
        &[],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subcommand_has_help() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        for sub in Cli::command().get_subcommands() {
            assert!(
                sub.get_about().is_some(),
                "`cargo xtask {}` has no help text",
                sub.get_name()
            );
        }
    }

    #[test]
    fn subcommands_keep_their_flags() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("xtask").chain(args.iter().copied()))
        };
        assert!(matches!(
            parse(&["deploy", "--check"]).unwrap().command,
            Cmd::Deploy { check: true }
        ));
        let Cmd::Reliability(r) = parse(&["reliability", "--fuzz-only", "--fuzz-seconds", "5"])
            .unwrap()
            .command
        else {
            panic!("not reliability");
        };
        assert!(r.fuzz_only && !r.tests_only && r.fuzz_seconds == 5);
        assert!(parse(&["reliability", "--tests-only", "--fuzz-only"]).is_err());
        assert!(parse(&["deploy", "--bogus"]).is_err());
        assert!(parse(&["nonsense"]).is_err());
    }
}
