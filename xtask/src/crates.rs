//! `cargo xtask crates`: the library crates as a Rust developer takes them
//! from crates.io.
//!
//! - every library crate packages (`cargo package`, which also builds each
//!   packaged crate alone against the other packaged ones);
//! - their manifests carry what crates.io shows (readme, keywords,
//!   categories, documentation) and none enables a `k8s-openapi` version
//!   feature;
//! - `cmcsi-keygen` without default features builds with no Tokio in its tree;
//! - the examples run (the issuer client's runs in its tests, against the
//!   fake API);
//! - `cargo deny check licenses bans sources` passes (`deny.toml`).

use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::{run, workspace_root};

/// The crates published to crates.io, in dependency order.
pub(crate) const LIBRARIES: [&str; 6] = [
    "cmcsi-proto",
    "cmcsi-attrs",
    "cmcsi-keygen",
    "cmcsi-store",
    "cmcsi-renewer",
    "cmcsi-issuer-client",
];

/// The pinned `cargo-deny` that `.ci/run` installs.
const CARGO_DENY: &str = "cargo-deny@0.20.2";

/// Entry point of `cargo xtask crates`.
pub fn run_all() -> Result<()> {
    manifests()?;
    package()?;
    keygen_without_tokio()?;
    examples()?;
    deny()?;
    Ok(())
}

fn metadata() -> Result<Value> {
    let out = Command::new("cargo")
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(workspace_root())
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// What crates.io shows, and the k8s-openapi rule, for every library crate.
fn manifests() -> Result<()> {
    let m = metadata()?;
    let problems = manifest_problems(&m);
    if !problems.is_empty() {
        bail!("library crate manifests:\n  {}", problems.join("\n  "));
    }
    println!("crates: {} library manifests complete", LIBRARIES.len());
    Ok(())
}

fn manifest_problems(m: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let packages = m["packages"].as_array().cloned().unwrap_or_default();
    for name in LIBRARIES {
        let Some(p) = packages.iter().find(|p| p["name"] == name) else {
            problems.push(format!("{name}: not in the workspace"));
            continue;
        };
        for key in [
            "description",
            "license",
            "repository",
            "readme",
            "documentation",
        ] {
            if p[key].as_str().is_none_or(str::is_empty) {
                problems.push(format!("{name}: `{key}` is missing from its Cargo.toml"));
            }
        }
        for key in ["keywords", "categories"] {
            if p[key].as_array().is_none_or(Vec::is_empty) {
                problems.push(format!("{name}: `{key}` is missing from its Cargo.toml"));
            }
        }
        if p["publish"].as_array().is_some_and(Vec::is_empty) {
            problems.push(format!(
                "{name}: `publish = false`, but it is a library crate"
            ));
        }
        for d in p["dependencies"].as_array().into_iter().flatten() {
            let normal = d["kind"].is_null() || d["kind"] == "build";
            let versioned_feature = d["features"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .find(|f| f.starts_with("v1_") || *f == "latest" || *f == "earliest");
            if normal
                && d["name"] == "k8s-openapi"
                && let Some(f) = versioned_feature
            {
                problems.push(format!(
                    "{name}: enables k8s-openapi's `{f}`; a library must leave the \
                     Kubernetes version to the binary (put it in [dev-dependencies])"
                ));
            }
            let sibling = d["path"].is_string();
            if sibling && !d["kind"].is_string() && d["req"] == "*" {
                problems.push(format!(
                    "{name}: path dependency `{}` has no version; crates.io needs one",
                    d["name"].as_str().unwrap_or("?")
                ));
            }
        }
    }
    problems
}

/// The target directory of the packaged crates' verification builds, shared
/// with `cmcsi-issuer-client`'s embedder test (an outside crate, built with
/// the same default profile, so most of its dependencies are already built
/// when the tests run).
pub(crate) const PACKAGE_TARGET: &str = "target/crates";

/// `cargo package` of every library crate together: cargo packages them in
/// dependency order and resolves each one's siblings to the just-packaged
/// ones (a local registry overlay), then builds each packaged crate alone,
/// as a user's build from crates.io would.
fn package() -> Result<()> {
    let mut args = vec!["package", "--locked", "--allow-dirty"];
    for lib in LIBRARIES {
        args.extend(["-p", lib]);
    }
    let target = workspace_root().join(PACKAGE_TARGET);
    let target = target.display().to_string();
    run(
        "cargo",
        &args,
        &[
            // The issuer client's library leaves k8s-openapi's version to the
            // binary; building it alone needs one (k8s-openapi's advice for
            // libraries: this variable, for builds without dev-dependencies).
            ("K8S_OPENAPI_ENABLED_VERSION", "1.33"),
            // Not target/debug: the packaged crates build without the
            // workspace's profile and features, so nothing there is reused.
            ("CARGO_TARGET_DIR", &target),
        ],
    )
}

/// `cmcsi-keygen` with `default-features = false`: keys, CSRs and keystores,
/// and no Tokio anywhere in its dependency tree.
fn keygen_without_tokio() -> Result<()> {
    let args = ["-p", "cmcsi-keygen", "--no-default-features"];
    run("cargo", &[&["build"][..], &args].concat(), &[])?;
    let out = Command::new("cargo")
        .args(["tree", "--prefix", "none", "-e", "normal"])
        .args(args)
        .current_dir(workspace_root())
        .output()
        .context("running cargo tree")?;
    if !out.status.success() {
        bail!(
            "cargo tree failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let tree = String::from_utf8_lossy(&out.stdout);
    let runtimes = async_runtimes(&tree);
    if !runtimes.is_empty() {
        bail!(
            "cmcsi-keygen without default features still depends on {runtimes:?}; \
             keep them behind the `pool` feature"
        );
    }
    let crates: std::collections::BTreeSet<&str> = tree
        .lines()
        .map(|l| l.trim_end_matches(" (*)"))
        .filter(|l| !l.trim().is_empty())
        .collect();
    println!(
        "crates: cmcsi-keygen --no-default-features: {} crates, no async runtime",
        crates.len()
    );
    Ok(())
}

/// Async runtimes named in `cargo tree --prefix none` output.
fn async_runtimes(tree: &str) -> Vec<String> {
    let mut found: Vec<String> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| {
            ["tokio", "async-std", "smol", "async-executor"].contains(name)
                || name.starts_with("tokio-")
        })
        .map(str::to_owned)
        .collect();
    found.sort();
    found.dedup();
    found
}

/// Builds every example with one `cargo build --workspace --examples` (the
/// workspace's feature set, so the test build reuses it) and runs each as a
/// user would. The issuer client's runs in its tests, against the fake API.
fn examples() -> Result<()> {
    let out = workspace_root().join("target/examples-run");
    if out.exists() {
        std::fs::remove_dir_all(&out).with_context(|| format!("removing {}", out.display()))?;
    }
    run("cargo", &["build", "--workspace", "--examples"], &[])?;
    let keygen_out = out.join("keygen").display().to_string();
    let store_root = out.join("store").display().to_string();
    let runs: [(&str, Vec<String>); 5] = [
        (
            "parse_volume_context",
            [
                "csi.cert-manager.io/issuer-name=ca-issuer",
                "csi.cert-manager.io/dns-names=${POD_NAME}.${POD_NAMESPACE}.svc",
                "csi.cert-manager.io/key-algorithm=ECDSA",
                "csi.storage.k8s.io/pod.name=web-0",
                "csi.storage.k8s.io/pod.namespace=shop",
            ]
            .map(String::from)
            .to_vec(),
        ),
        (
            "key_csr_pkcs12",
            vec![keygen_out.clone(), "app.example.com".into()],
        ),
        ("atomic_file_set", vec![store_root]),
        ("schedule", vec![]),
        ("identity", vec![]),
    ];
    let dir = crate::image::target_dir().join("debug/examples");
    for (example, args) in runs {
        let bin = dir.join(example).display().to_string();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&bin, &args, &[])?;
    }
    // The keygen example's files are what it says.
    for f in ["key.pem", "csr.pem", "crt.pem", "keystore.p12"] {
        let p = out.join("keygen").join(f);
        let len = std::fs::metadata(&p)
            .with_context(|| format!("the keygen example wrote no {}", p.display()))?
            .len();
        if len == 0 {
            bail!("the keygen example wrote an empty {}", p.display());
        }
    }
    Ok(())
}

/// `cargo deny check licenses bans sources` (advisories need the network:
/// the GitHub workflow runs them).
fn deny() -> Result<()> {
    let installed = Command::new("cargo")
        .args(["deny", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        if std::env::var_os("CI").is_some() {
            bail!("cargo-deny is not installed; .ci/run installs {CARGO_DENY}");
        }
        println!("SKIPPED: cargo deny (cargo install --locked {CARGO_DENY}, as .ci/run does)");
        return Ok(());
    }
    run(
        "cargo",
        &[
            "deny",
            "--locked",
            "check",
            "--hide-inclusion-graph",
            "licenses",
            "bans",
            "sources",
        ],
        &[],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn package(name: &str) -> Value {
        json!({
            "name": name, "description": "d", "license": "Apache-2.0",
            "repository": "https://example.invalid", "readme": "README.md",
            "documentation": "https://docs.rs/x", "keywords": ["k"], "categories": ["c"],
            "publish": null,
            "dependencies": [
                { "name": "k8s-openapi", "kind": null, "features": [], "req": "^0.29" },
                { "name": "k8s-openapi", "kind": "dev", "features": ["v1_33"], "req": "^0.29" },
                { "name": "cmcsi-attrs", "kind": null, "features": [], "req": "^0.1.0", "path": "/x" },
            ],
        })
    }

    fn workspace(edit: impl FnOnce(&mut Value)) -> Value {
        let mut packages: Vec<Value> = LIBRARIES.iter().map(|n| package(n)).collect();
        let client = LIBRARIES
            .iter()
            .position(|n| *n == "cmcsi-issuer-client")
            .unwrap_or_default();
        edit(&mut packages[client]);
        json!({ "packages": packages })
    }

    #[test]
    fn complete_manifests_pass() {
        assert_eq!(manifest_problems(&workspace(|_| {})), Vec::<String>::new());
    }

    #[test]
    fn each_manifest_rule_names_the_crate_and_the_fix() {
        let p = manifest_problems(&workspace(|p| {
            p["dependencies"][0]["features"] = json!(["v1_33"])
        }));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].contains("cmcsi-issuer-client: enables k8s-openapi's `v1_33`"),
            "{p:?}"
        );

        let p = manifest_problems(&workspace(|p| p["keywords"] = json!([])));
        assert_eq!(
            p,
            ["cmcsi-issuer-client: `keywords` is missing from its Cargo.toml"]
        );

        let p = manifest_problems(&workspace(|p| p["readme"] = Value::Null));
        assert_eq!(
            p,
            ["cmcsi-issuer-client: `readme` is missing from its Cargo.toml"]
        );

        let p = manifest_problems(&workspace(|p| p["dependencies"][2]["req"] = json!("*")));
        assert_eq!(
            p,
            [
                "cmcsi-issuer-client: path dependency `cmcsi-attrs` has no version; crates.io needs one"
            ]
        );

        let p = manifest_problems(&workspace(|p| p["publish"] = json!([])));
        assert_eq!(p.len(), 1, "{p:?}");
    }

    #[test]
    fn tokio_in_a_tree_is_found() {
        let tree = "cmcsi-keygen v0.1.0 (/w/crates/keygen)\nrsa v0.10.0\ntokio v1.48.0\ntokio-macros v2.6.0\nzeroize v1.8.2\n";
        assert_eq!(async_runtimes(tree), ["tokio", "tokio-macros"]);
        assert!(async_runtimes("cmcsi-keygen v0.1.0\nrsa v0.10.0\n").is_empty());
    }

    /// The workspace as it is: every library manifest is complete.
    #[test]
    fn the_workspace_manifests_are_complete() {
        let m = metadata().unwrap();
        assert_eq!(manifest_problems(&m), Vec::<String>::new());
    }
}
