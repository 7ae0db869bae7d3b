//! Records the build's identity for `cmcsi_driver::build` (and the
//! `certmanager_csi_build_info` metric): the git commit and the compiler.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=CMCSI_GIT_COMMIT");
    let commit = std::env::var("CMCSI_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| run("git", &["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    // Rebuild the constants when HEAD moves: a checkout changes HEAD, a
    // commit changes the branch's ref.
    if let Some(head) = run("git", &["rev-parse", "--git-path", "HEAD"]) {
        println!("cargo:rerun-if-changed={head}");
    }
    if let Some(branch) = run("git", &["symbolic-ref", "-q", "HEAD"])
        && let Some(path) = run("git", &["rev-parse", "--git-path", &branch])
    {
        println!("cargo:rerun-if-changed={path}");
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = run(&rustc, &["--version"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=CMCSI_BUILD_COMMIT={commit}");
    println!("cargo:rustc-env=CMCSI_BUILD_RUSTC={version}");
}

fn run(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}
