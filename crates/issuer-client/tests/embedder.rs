//! A program outside this workspace that depends on `cmcsi-issuer-client`
//! and picks its own Kubernetes version (`k8s-openapi`'s `v1_35`, not the
//! driver's `v1_33`) builds. It fails to build if this crate, or anything it
//! depends on, enables a `k8s-openapi` version feature itself ("Both v1_33
//! and v1_35 features are enabled"), which is what an embedder on another
//! Kubernetes version would hit.
//!
//! The build is real (`cargo build`, offline, the workspace's lock file so
//! the versions are the tested ones) in `target/crates/`, where `cargo xtask
//! crates` (run by `cargo xtask ci` before the tests) verifies the packaged
//! crates with the same default profile, so only the crates whose features
//! differ (k8s-openapi and kube) are built here. It cannot share the test's
//! own target directory: `cargo test` holds that directory's lock while the
//! tests run.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

/// `target/` of the workspace: the test binary runs from `target/<profile>/deps/`.
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        let dir = PathBuf::from(dir);
        return if dir.is_absolute() {
            dir
        } else {
            workspace_root().join(dir)
        };
    }
    let exe = std::env::current_exe().unwrap();
    exe.ancestors()
        .find(|p| p.join("CACHEDIR.TAG").is_file())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| workspace_root().join("target"))
}

const MAIN_RS: &str = r#"
// Fails to compile unless exactly the version this program picked is active.
k8s_openapi::k8s_if_le_1_34! { compile_error!("k8s-openapi is not at v1_35"); }
k8s_openapi::k8s_if_ge_1_36! { compile_error!("k8s-openapi is not at v1_35"); }

fn main() {
    // Types from both crates in one program.
    let pod: k8s_openapi::api::core::v1::Pod = Default::default();
    let request = cmcsi_issuer_client::NewRequest {
        namespace: "default".into(),
        ..Default::default()
    };
    println!(
        "{} {} {}",
        cmcsi_issuer_client::label_hash("node-a"),
        request.namespace,
        pod.metadata.name.is_none()
    );
}
"#;

#[test]
fn an_outside_crate_picking_its_own_kubernetes_version_builds() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let manifest = format!(
        r#"[package]
name = "embedder"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
cmcsi-issuer-client = {{ path = {path:?} }}
k8s-openapi = {{ version = "0.29", default-features = false, features = ["v1_35"] }}

# Not part of any workspace above the temporary folder.
[workspace]
"#,
        path = crate_dir.display().to_string()
    );
    std::fs::write(dir.path().join("Cargo.toml"), manifest).unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/main.rs"), MAIN_RS).unwrap();
    // The versions the workspace tests, not whatever is newest.
    std::fs::copy(
        workspace_root().join("Cargo.lock"),
        dir.path().join("Cargo.lock"),
    )
    .unwrap();

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "--offline", "--quiet", "--manifest-path"])
        .arg(dir.path().join("Cargo.toml"))
        // Shared with `cargo xtask crates`' verification builds.
        .env("CARGO_TARGET_DIR", target_dir().join("crates"))
        // Only the program's own feature may pick the version.
        .env_remove("K8S_OPENAPI_ENABLED_VERSION")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the outside crate did not build:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
