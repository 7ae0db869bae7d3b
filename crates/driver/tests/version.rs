//! `--version` names the workspace version and, in a git checkout, the commit.
#![allow(clippy::unwrap_used)]

use std::process::Command;

#[test]
fn version_names_the_release_and_the_commit() {
    let out = Command::new(env!("CARGO_BIN_EXE_cert-manager-csi-driver"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let line = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        line.trim_end(),
        format!(
            "cert-manager-csi-driver {}",
            cmcsi_driver::build::VERSION_LINE
        )
    );
    assert!(line.contains(env!("CARGO_PKG_VERSION")), "{line}");
    let head = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    if let Some(head) = head.ok().filter(|h| h.status.success()) {
        let head = String::from_utf8(head.stdout).unwrap();
        assert_eq!(cmcsi_driver::build::GIT_COMMIT, Some(head.trim()));
        assert!(line.contains(head.trim()), "{line} lacks commit {head}");
    }
}
