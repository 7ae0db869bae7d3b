//! `cargo xtask deploy [--check]`: writes the deploy manifests under `deploy/` from typed
//! `k8s-openapi` objects, so the YAML users apply is produced by code and reviewed as code.
//!
//! - `deploy/base/` + `kustomization.yaml`: the driver (Namespace, ServiceAccount, RBAC,
//!   CSIDriver, DaemonSet), `kubectl apply -k deploy/`.
//! - `deploy/token-request/`: overlay that makes the driver create requests with the Pod's
//!   ServiceAccount token (CSIDriver `tokenRequests` + `requiresRepublish`, `--use-token-request`,
//!   the driver's role without `create`).
//! - `deploy/components/pod-readiness/`: kustomize component for readiness gates (Pod RBAC).
//! - `deploy/monitoring/`: PodMonitor, alert rules, scrape configuration, dashboard
//!   ([`monitoring`]).
//! - `deploy/examples/`: a CA issuer chain and the Deployment from the original documentation.
//! - `deploy/pod-signer/`: the PodCertificateRequest signer's Deployment and RBAC ([`signer`]).
//! - `deploy/chart/`: a Helm chart from static templates, checked against the same objects by
//!   the render tests ([`chart`]).
//!
//! `--check` regenerates in memory and fails, naming every stale, missing or extra file, when the
//! committed files differ (rust-analyzer's `codegen --check` pattern).
//!
//! The code is split by job: [`objects`] (the typed objects and their settings), `render` (YAML
//! with comments), `files` (which object goes to which file), and this module (writing and
//! checking the files).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

pub mod chart;
mod files;
pub mod kubelet_dirs;
pub mod monitoring;
pub mod objects;
mod render;
mod selinux;
pub mod signer;
pub mod version;

pub use files::generate;
#[cfg(test)]
use files::{BASE_FILES, DEFAULT_COMPONENT_GATE};
pub use objects::*;
pub(crate) use render::GENERATED_HEADER;

/// Entry point for `cargo xtask deploy [--check]`.
pub fn run(check: bool) -> Result<()> {
    run_release(check, None)
}

/// `cargo xtask deploy [--check [--release-tag vX.Y.Z]]`: with `--check`, the versions must agree
/// too ([`version`]), and with a release tag, the tag must be that version.
pub fn run_release(check: bool, release_tag: Option<&str>) -> Result<()> {
    let root = crate::workspace_root();
    let files = generate()?;
    if check {
        version::check(&root, release_tag)?;
        let problems = compare(&root, &files)?;
        if problems.is_empty() {
            eprintln!("deploy/: {} generated files are up to date", files.len());
            return Ok(());
        }
        bail!(
            "deploy/ is stale: the committed files differ from what the generator produces:\n  {}\n\
             Run `cargo xtask deploy` and commit the result (edit the generator under xtask/src/deploy/, not the YAML).",
            problems.join("\n  ")
        );
    }
    write_all(&root, &files)?;
    eprintln!("deploy/: wrote {} files", files.len());
    Ok(())
}

/// Writes every generated file and removes files under `deploy/` that are no longer generated.
fn write_all(root: &Path, files: &BTreeMap<PathBuf, String>) -> Result<()> {
    for existing in list_files(&root.join("deploy"))? {
        let rel = existing
            .strip_prefix(root)
            .unwrap_or(&existing)
            .to_path_buf();
        if !files.contains_key(&rel) {
            std::fs::remove_file(&existing)
                .with_context(|| format!("removing stale {}", existing.display()))?;
        }
    }
    for (rel, text) in files {
        let path = root.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Lists what differs between the generated set and the files on disk (empty when fresh).
pub fn compare(root: &Path, files: &BTreeMap<PathBuf, String>) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for (rel, text) in files {
        match std::fs::read_to_string(root.join(rel)) {
            Ok(on_disk) if on_disk == *text => {}
            Ok(on_disk) => {
                let line = first_difference(&on_disk, text);
                problems.push(format!("{}: differs (first at line {line})", rel.display()));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                problems.push(format!("{}: missing", rel.display()));
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", rel.display())),
        }
    }
    for existing in list_files(&root.join("deploy"))? {
        let rel = existing
            .strip_prefix(root)
            .unwrap_or(&existing)
            .to_path_buf();
        if !files.contains_key(&rel) {
            problems.push(format!("{}: not generated (remove it)", rel.display()));
        }
    }
    Ok(problems)
}

fn first_difference(a: &str, b: &str) -> usize {
    let mut n = 1;
    let (mut la, mut lb) = (a.lines(), b.lines());
    loop {
        match (la.next(), lb.next()) {
            (Some(x), Some(y)) if x == y => n += 1,
            (None, None) => return n,
            _ => return n,
        }
    }
}

fn list_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            out.extend(list_files(&path)?);
        } else {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests;
