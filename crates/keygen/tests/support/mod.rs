//! Shared helpers: run the `openssl` CLI on files in a temporary directory.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

use tempfile::TempDir;

/// A scratch directory and the `openssl` CLI (installed by `.ci/run` when missing).
pub struct Openssl {
    dir: TempDir,
}

impl Openssl {
    pub fn new() -> Self {
        let probe = Command::new("openssl").arg("version").output();
        assert!(
            probe.is_ok_and(|o| o.status.success()),
            "the openssl CLI is required for these tests (.ci/run installs it)"
        );
        Openssl {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn p(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_owned()
    }

    pub fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> String {
        std::fs::write(self.path(name), bytes).unwrap();
        self.p(name)
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap()
    }

    pub fn output(&self, args: &[&str]) -> Output {
        Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap()
    }

    /// Runs openssl, asserts success, returns stdout followed by stderr.
    pub fn run(&self, args: &[&str]) -> String {
        let out = self.output(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "openssl {args:?} failed:\n{text}");
        text
    }

    /// Runs openssl and returns raw stdout (asserting success).
    pub fn run_bytes(&self, args: &[&str]) -> Vec<u8> {
        let out = self.output(args);
        assert!(
            out.status.success(),
            "openssl {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// A self-signed P-256 certificate for `cn`, written as `<name>.pem` with its key in
    /// `<name>.key`, marked a CA or not (critical basicConstraints). Returns (certificate
    /// PEM, key PEM).
    pub fn self_signed(&self, name: &str, cn: &str, ca: bool) -> (String, String) {
        let (key, crt) = (format!("{name}.key"), format!("{name}.pem"));
        let constraints = if ca {
            "basicConstraints=critical,CA:TRUE"
        } else {
            "basicConstraints=critical,CA:FALSE"
        };
        self.run(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &crt,
            "-days",
            "2",
            "-subj",
            &format!("/CN={cn}"),
            "-addext",
            constraints,
        ]);
        (
            String::from_utf8(self.read(&crt)).unwrap(),
            String::from_utf8(self.read(&key)).unwrap(),
        )
    }

    /// Makes a P-256 test CA (once per directory) and has it sign `csr_pem`, copying the
    /// request's extensions, with the given serial. Returns (leaf PEM, CA PEM).
    pub fn sign_csr(&self, csr_pem: &str, serial: &str) -> (String, String) {
        if !self.path("ca.pem").exists() {
            self.self_signed("ca", "Test CA", true);
        }
        self.write("to-sign.csr", csr_pem);
        self.run(&[
            "x509",
            "-req",
            "-in",
            "to-sign.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-set_serial",
            serial,
            "-days",
            "1",
            "-copy_extensions",
            "copyall",
            "-out",
            "leaf.pem",
        ]);
        (
            String::from_utf8(self.read("leaf.pem")).unwrap(),
            String::from_utf8(self.read("ca.pem")).unwrap(),
        )
    }
}

use cmcsi_keygen::{CsrParams, PrivateKey, Subject, build_csr};
use std::net::{IpAddr, Ipv4Addr};

/// The request `issue` sends.
pub fn issue_params() -> CsrParams {
    CsrParams {
        subject: Subject::common_name("app.example.com"),
        dns_names: vec!["app.example.com".into()],
        ip_addresses: vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))],
        uris: vec!["spiffe://cluster.local/ns/default/sa/app".into()],
    }
}

/// Has the test CA issue a certificate for `key`; returns the chain (leaf, then the CA
/// standing in for an intermediate) and the leaf alone.
pub fn issue(ssl: &Openssl, key: &PrivateKey, serial: &str) -> (String, String) {
    let csr = build_csr(key, &issue_params()).unwrap();
    let (leaf, ca) = ssl.sign_csr(&csr, serial);
    (format!("{leaf}{ca}"), leaf)
}

/// Runs Debian's OpenJDK `keytool` (installed by `.ci/run` when missing); `None` when it is
/// absent, and the caller's test prints that it was SKIPPED.
pub fn keytool(args: &[&str], dir: &std::path::Path) -> Option<String> {
    let out = match Command::new("keytool").args(args).current_dir(dir).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("running keytool: {e}"),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "keytool {args:?} failed:\n{text}");
    Some(text)
}

/// Like [`keytool`], but returns the failure instead of asserting success.
pub fn keytool_output(args: &[&str], dir: &std::path::Path) -> Option<Output> {
    match Command::new("keytool").args(args).current_dir(dir).output() {
        Ok(out) => Some(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("running keytool: {e}"),
    }
}

/// Prints that a test was skipped because keytool is not installed.
pub fn skipped_without_keytool(test: &str) {
    eprintln!("SKIPPED {test}: keytool (OpenJDK) is not installed; .ci/run installs it");
}

/// The SHA-256 fingerprint of a PEM certificate as keytool prints it (`AB:CD:...`).
pub fn fingerprint(ssl: &Openssl, cert_pem: &str) -> String {
    ssl.write("fp.pem", cert_pem);
    let out = ssl.run(&["x509", "-in", "fp.pem", "-noout", "-fingerprint", "-sha256"]);
    out.trim()
        .rsplit('=')
        .next()
        .unwrap()
        .trim()
        .to_ascii_uppercase()
}
