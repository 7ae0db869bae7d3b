//! The "one way" claims of ARCHITECTURE.md, checked against the source (in
//! the style of rust-analyzer's `tidy.rs`): each test reads the driver's
//! files, comments left out, and fails naming the file that breaks a claim.
//! When one fails, either keep the claim (move the code to its owner) or
//! change the claim in ARCHITECTURE.md and here together.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every `.rs` file under `dir`, as (path relative to `dir`, text).
fn sources(dir: &Path) -> Vec<(String, String)> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(base, &path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(base).unwrap().display().to_string();
                out.push((rel, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out
}

/// `text` without `//` comments (doc comments included).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| l.find("//").map_or(l, |i| &l[..i]))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The driver's source files whose code (comments left out) contains any of
/// `needles`.
fn driver_files_with(needles: &[&str]) -> BTreeSet<String> {
    sources(&root().join("crates/driver/src"))
        .into_iter()
        .filter(|(_, text)| {
            let code = code(text);
            needles.iter().any(|n| code.contains(n))
        })
        .map(|(name, _)| name)
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn blocking_is_the_one_way_to_the_blocking_pool() {
    assert_eq!(
        driver_files_with(&["spawn_blocking", "block_in_place"]),
        set(&["blocking.rs"]),
        "run blocking work through crate::blocking (ARCHITECTURE.md, \"Nothing blocks the async workers\")"
    );
}

#[test]
fn the_renewer_owns_every_wait() {
    // A volume whose Pod is not ready is the renewer's "not ready" outcome,
    // retried with the gate backoff and woken by the Pod watch: no task,
    // timer or backoff arithmetic of the driver's own (tests left out, which
    // check the renewer's `Backoff` with the gate flags' values).
    let waits = [
        "spawn(",
        "sleep(",
        "sleep_until",
        "select!",
        "interval(",
        "AbortHandle",
        ".delay(",
        ".base(",
        ".powi(",
        ".powf(",
    ];
    let offenders: BTreeSet<String> = sources(&root().join("crates/driver/src"))
        .into_iter()
        .filter(|(name, text)| {
            let code = code(text);
            let code = code.split("#[cfg(test)]").next().unwrap_or_default();
            let gate_module = name == "gates.rs" || name == "readiness.rs";
            let backoff_math = [".delay(", ".base(", ".powi(", ".powf("]
                .iter()
                .any(|n| code.contains(n));
            (gate_module && waits.iter().any(|n| code.contains(n))) || backoff_math
        })
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        offenders,
        BTreeSet::new(),
        "waits and retries go through the renewer (Renewer::wake, IssueFailure::not_ready, \
         cmcsi_renewer::Backoff): ARCHITECTURE.md, \"The renewer owns every wait\""
    );
}

#[test]
fn only_the_orchestrating_modules_extend_driver() {
    assert_eq!(
        driver_files_with(&["impl Driver {"]),
        set(&[
            "driver.rs",
            "health.rs",
            "probe.rs",
            "publish.rs",
            "readiness.rs",
            "recovery.rs",
            "selinux.rs",
            "trust_refresh.rs",
        ]),
        "leaf modules take what they need as arguments instead of `impl Driver` \
         (ARCHITECTURE.md, \"Who talks to whom inside the driver\")"
    );
}

#[test]
fn only_the_pipeline_makes_keys_and_csrs() {
    assert_eq!(
        driver_files_with(&["build_csr", "pool.take", "PrivateKey::generate"]),
        set(&["pipeline.rs"]),
    );
}

#[test]
fn the_kubernetes_clients_have_known_users() {
    // `Kube` (built by startup) and the clients in it.
    // `.kube` as a whole field name (not `.kubeconfig`, `.kube_api_qps`).
    let kube_field: BTreeSet<String> = sources(&root().join("crates/driver/src"))
        .into_iter()
        .filter(|(_, text)| {
            let code = code(text);
            code.match_indices(".kube").any(|(i, m)| {
                code[i + m.len()..]
                    .chars()
                    .next()
                    .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
            })
        })
        .map(|(name, _)| name)
        .collect();
    let users: BTreeSet<String> = kube_field
        .union(&driver_files_with(&[
            "Kube {",
            "IssuerClient",
            "EventRecorder",
            "PodWatch",
        ]))
        .cloned()
        .collect();
    assert_eq!(
        users,
        set(&[
            "driver.rs",
            "events.rs",
            "pipeline.rs",
            "probe.rs",
            "publish.rs",
            "readiness.rs",
            "recovery.rs",
            "startup.rs",
        ]),
        "ARCHITECTURE.md lists who calls issuer-client; keep it and this list true together"
    );
}

#[test]
fn grpc_statuses_are_made_in_error_and_node_only() {
    // `error.rs` maps every DriverError; `node.rs` answers the RPCs a
    // node-only driver does not serve.
    assert_eq!(
        driver_files_with(&["Status::"])
            .into_iter()
            .filter(|f| {
                // `ConditionStatus::` is a gate's, not gRPC's.
                let text =
                    std::fs::read_to_string(root().join("crates/driver/src").join(f)).unwrap();
                code(&text)
                    .match_indices("Status::")
                    .any(|(i, _)| !code(&text)[..i].ends_with("Condition"))
            })
            .collect::<BTreeSet<_>>(),
        set(&["error.rs", "node.rs"]),
    );
}

#[test]
fn metric_names_are_written_only_in_the_metrics_module() {
    let prefixes = ["certmanager_csi_", "process_", "rest_client_"];
    let owners: BTreeSet<String> = sources(&root().join("crates/driver/src"))
        .into_iter()
        .filter(|(_, text)| {
            code(text).split('"').skip(1).step_by(2).any(|literal| {
                prefixes.iter().any(|p| literal.starts_with(p))
                    && literal
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            })
        })
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        owners,
        set(&["metrics.rs", "metrics/csilib.rs", "metrics/process.rs"])
    );
}

#[test]
fn metric_families_are_recorded_only_through_methods() {
    // Recording calls on a family (`get_or_create`, `observe`, `inc`) happen
    // in the metrics module alone; the rest of the driver calls its methods
    // (`issued`, `failed`, `restored`, `forget`, `published`).
    let outside: BTreeSet<String> = driver_files_with(&["get_or_create(", ".observe("])
        .into_iter()
        .filter(|f| !f.starts_with("metrics"))
        .collect();
    assert!(
        outside.is_empty(),
        "metrics recorded outside metrics.rs: {outside:?}"
    );
}

#[test]
fn event_reasons_are_written_only_in_events() {
    let reasons = [
        "\"IssuanceFailed\"",
        "\"RenewalFailing\"",
        "\"CertificateOverdueForRefresh\"",
        "\"CertificateExpired\"",
        "\"CertificateRenewed\"",
    ];
    assert_eq!(driver_files_with(&reasons), set(&["events.rs"]));
}

#[test]
fn parse_options_live_with_the_volume() {
    // How a volume's context is parsed (options, Pod IPs, stand-ins) has
    // one owner: `volume.rs`.
    assert_eq!(
        driver_files_with(&[
            "ParseOptions::original",
            "ParseOptions::go_driver",
            "with_pod_ips",
            "parse_with_secrets",
        ]),
        set(&["volume.rs"]),
    );
}

/// The `### ` section of ARCHITECTURE.md that describes `crate_dir`.
fn section<'a>(doc: &'a str, crate_dir: &str) -> &'a str {
    let heading = format!("### `{crate_dir}`");
    let start = doc
        .find(&heading)
        .unwrap_or_else(|| panic!("ARCHITECTURE.md has no section {heading}"));
    let rest = &doc[start + heading.len()..];
    let end = rest
        .find("\n### ")
        .or_else(|| rest.find("\n## "))
        .unwrap_or(rest.len());
    &rest[..end]
}

#[test]
fn architecture_names_every_module() {
    let doc = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let mut missing = Vec::new();
    for crate_dir in [
        "crates/csi-proto",
        "crates/attrs",
        "crates/keygen",
        "crates/issuer-client",
        "crates/store",
        "crates/renewer",
        "crates/driver",
        "crates/testkit",
        "xtask",
    ] {
        let text = section(&doc, crate_dir);
        for (file, _) in sources(&root().join(crate_dir).join("src")) {
            // Unit tests beside their module, binaries' entry points and
            // crate roots are described with their module or crate.
            if file.ends_with("tests.rs")
                || file.starts_with("bin/")
                || file == "lib.rs"
                || file == "main.rs"
            {
                continue;
            }
            let name = Path::new(&file)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if !text.contains(&format!("`{file}`")) && !text.contains(&format!("`{name}`")) {
                missing.push(format!("{crate_dir}/src/{file}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md does not name these modules in their crate's section: {missing:#?}"
    );
}
