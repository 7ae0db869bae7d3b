//! Records the source revision for `--version`, the image labels and metrics
//! (and the compiler's `rustc --version`, `CMCSI_RUSTC_VERSION`):
//! `CMCSI_GIT_DESCRIBE` (`git describe --tags --always`) and `CMCSI_GIT_COMMIT`
//! (the full commit id), when the build runs inside a git checkout with git
//! installed. Outside one (a source tarball, a container build without
//! `.git`), neither is set and the version is the crate's alone.
//!
//! `CMCSI_GIT_DESCRIBE` and `CMCSI_GIT_COMMIT` set in the build's own
//! environment win, so a build from an exported tree can still say which
//! commit it is.

use std::path::{Path, PathBuf};
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    for var in ["CMCSI_GIT_DESCRIBE", "CMCSI_GIT_COMMIT"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    // Rebuild when HEAD moves: HEAD itself (a checkout), the branch it
    // names (a commit) and packed-refs (a gc). Not the index, so staging
    // files does not rebuild the driver.
    //
    // Only paths that exist: cargo reruns a build script on every build while
    // a path it watches is missing, and so rebuilt and relinked the driver
    // each time in a repository without packed-refs (never packed). A gc
    // that packs the branch deletes its loose ref, which reruns this; a
    // branch found only in packed-refs gets the directory its loose ref
    // would be written to watched, so the next commit reruns it too.
    if let (Some(git_dir), Some(common)) = (
        git(&["rev-parse", "--absolute-git-dir"]),
        git(&["rev-parse", "--path-format=absolute", "--git-common-dir"]),
    ) {
        let git_dir = PathBuf::from(git_dir);
        let common = PathBuf::from(common);
        let watch = |path: &Path| println!("cargo:rerun-if-changed={}", path.display());
        watch(&git_dir.join("HEAD"));
        let packed = common.join("packed-refs");
        if packed.exists() {
            watch(&packed);
        }
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            let loose = common.join(branch);
            if let Some(existing) = loose.ancestors().find(|p| p.exists()) {
                watch(existing);
            }
        }
    }
    // Empty counts as unset (a container build passes empty build arguments).
    let from_env = |var: &str| std::env::var(var).ok().filter(|v| !v.trim().is_empty());
    let describe =
        from_env("CMCSI_GIT_DESCRIBE").or_else(|| git(&["describe", "--tags", "--always"]));
    let commit = from_env("CMCSI_GIT_COMMIT").or_else(|| git(&["rev-parse", "HEAD"]));
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let line = match (&describe, &commit) {
        (Some(d), Some(c)) => format!("{version} (git {d}, commit {c})"),
        _ => version,
    };
    println!("cargo:rustc-env=CMCSI_VERSION_LINE={line}");
    // The compiler, for the build-info metric.
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc_version = Command::new(&rustc)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=CMCSI_RUSTC_VERSION={rustc_version}");
    if let Some(d) = describe {
        println!("cargo:rustc-env=CMCSI_GIT_DESCRIBE={d}");
    }
    if let Some(c) = commit {
        println!("cargo:rustc-env=CMCSI_GIT_COMMIT={c}");
    }
}
