//! The dpkg status entries of the Debian packages whose files the image
//! copies or its binaries link in statically, so a scanner sees the glibc it
//! carries.
//!
//! An image without a package database shows a scanner nothing to match
//! against advisories. Distroless images solve that with one status stanza
//! per package in `/var/lib/dpkg/status.d/<package>` (and the package's
//! `md5sums` lines beside it as `<package>.md5sums`), which Trivy, Grype and
//! Syft read; this writes the same, from the build machine's own dpkg
//! database (`dpkg-query`), for exactly the packages that own a copied file
//! or a linked-in archive. A statically linked glibc binary carries the code
//! of the archive its linker used (`libc.a`, Debian's `libc6-dev`, built from
//! the same glibc source and version as `libc6`), so that package's stanza
//! names the glibc in the image; none of its files are in the image, so its
//! entry has no `md5sums` lines.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Where the entries go in the image.
pub(crate) const STATUS_D: &str = "var/lib/dpkg/status.d";

/// One package's files for [`STATUS_D`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DpkgEntry {
    /// The package's stanza, as `dpkg-query -s` prints it.
    pub status: Vec<u8>,
    /// The `md5sums` lines of the copied files only (none for a package
    /// whose files are only linked in).
    pub md5sums: Vec<u8>,
}

/// Entries, by package name, for the packages owning `copied` (files the
/// image holds) or `linked` (archives linked into a binary, which the image
/// does not hold, such as glibc's `libc.a`). Without `dpkg-query` (not a
/// Debian-based machine) or for a file no package owns, a warning says what
/// scanners will not see.
pub(crate) fn entries(
    copied: &[PathBuf],
    linked: &[PathBuf],
) -> Result<BTreeMap<String, DpkgEntry>> {
    if !available() {
        eprintln!(
            "image: warning: no dpkg-query on this machine, so the image gets no dpkg \
             entries and scanners will not see the glibc it carries; build it \
             on Debian or Ubuntu (as CI and the Dockerfile do)"
        );
        return Ok(BTreeMap::new());
    }
    // Package (with architecture, as dpkg names it) to the paths dpkg records
    // of the copied files.
    let mut owned: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let files = copied
        .iter()
        .map(|f| (f, true))
        .chain(linked.iter().map(|f| (f, false)));
    for (file, is_copied) in files {
        match owner(file)? {
            Some((package, path)) => {
                let paths = owned.entry(package).or_default();
                if is_copied {
                    paths.push(path);
                }
            }
            None => eprintln!(
                "image: warning: {} belongs to no Debian package; scanners will not see it",
                file.display()
            ),
        }
    }
    let mut out = BTreeMap::new();
    for (package, paths) in owned {
        let status = query(&["-s", &package])?;
        let name = field(&status, "Package")
            .with_context(|| format!("`dpkg-query -s {package}` printed no Package field"))?;
        let md5sums = md5sums(&package, &name, &paths)?;
        out.insert(
            name,
            DpkgEntry {
                status: status.into_bytes(),
                md5sums,
            },
        );
    }
    Ok(out)
}

/// Whether this machine has `dpkg-query` (is Debian-based).
pub(crate) fn available() -> bool {
    Command::new("dpkg-query").arg("--version").output().is_ok()
}

/// The package owning `file` and the path dpkg records for it: as given, or
/// with `/usr` added or removed (merged-/usr systems record either).
fn owner(file: &Path) -> Result<Option<(String, String)>> {
    let given = file.to_string_lossy().into_owned();
    let other = match given.strip_prefix("/usr") {
        Some(rest) => rest.to_owned(),
        None => format!("/usr{given}"),
    };
    for path in [given, other] {
        let out = Command::new("dpkg-query")
            .args(["-S", &path])
            .output()
            .context("running dpkg-query -S")?;
        if !out.status.success() {
            continue;
        }
        if let Some(package) = parse_search(&String::from_utf8_lossy(&out.stdout)) {
            return Ok(Some((package, path)));
        }
    }
    Ok(None)
}

/// The first owner in `dpkg-query -S` output (`libc6:amd64: /lib/...`),
/// skipping diversion lines.
fn parse_search(out: &str) -> Option<String> {
    out.lines()
        .filter(|l| !l.starts_with("diversion "))
        .find_map(|l| l.split_once(": "))
        .and_then(|(packages, _)| packages.split(", ").next())
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
}

fn query(args: &[&str]) -> Result<String> {
    let out = Command::new("dpkg-query")
        .args(args)
        .output()
        .context("running dpkg-query")?;
    if !out.status.success() {
        bail!(
            "`dpkg-query {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The value of `name` in a deb822 stanza (first line only).
pub(crate) fn field(stanza: &str, name: &str) -> Option<String> {
    stanza.lines().find_map(|l| {
        l.split_once(':')
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v.trim().to_owned())
    })
}

/// The source package a stanza names (`Source: glibc` or `Source: glibc
/// (VERSION)`), which is the package's own name when there is no `Source`
/// field (dpkg's rule).
pub(crate) fn source(stanza: &str) -> Option<String> {
    match field(stanza, "Source") {
        Some(s) => s.split_whitespace().next().map(str::to_owned),
        None => field(stanza, "Package"),
    }
}

/// The lines of the package's `md5sums` (dpkg's info directory) for `paths`.
fn md5sums(package: &str, name: &str, paths: &[String]) -> Result<Vec<u8>> {
    let info = Path::new("/var/lib/dpkg/info");
    let text = [format!("{package}.md5sums"), format!("{name}.md5sums")]
        .iter()
        .find_map(|f| std::fs::read_to_string(info.join(f)).ok())
        .unwrap_or_default();
    Ok(filter_md5sums(&text, paths).into_bytes())
}

fn filter_md5sums(text: &str, paths: &[String]) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let Some((_, path)) = line.split_once("  ") else {
            continue;
        };
        if paths.iter().any(|p| p.trim_start_matches('/') == path) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_search_output_gives_the_owner() {
        assert_eq!(
            parse_search("libc6:amd64: /lib/x86_64-linux-gnu/libc.so.6\n").as_deref(),
            Some("libc6:amd64")
        );
        assert_eq!(
            parse_search(
                "diversion by foo from: /lib/x\ndiversion by foo to: /lib/x.real\nlibfoo1, libfoo2: /lib/x\n"
            )
            .as_deref(),
            Some("libfoo1")
        );
        assert_eq!(parse_search(""), None);
    }

    #[test]
    fn stanza_fields_and_md5sums_lines() {
        let stanza = "Package: libc6\nStatus: install ok installed\nVersion: 2.36-9+deb12u10\nDescription: GNU C Library\n Shared libraries: Version: not this\n";
        assert_eq!(field(stanza, "Package").as_deref(), Some("libc6"));
        assert_eq!(field(stanza, "Version").as_deref(), Some("2.36-9+deb12u10"));
        assert_eq!(field(stanza, "Source"), None);
        assert_eq!(source(stanza).as_deref(), Some("libc6"));
        assert_eq!(
            source("Package: libc6-dev\nSource: glibc\n").as_deref(),
            Some("glibc")
        );
        assert_eq!(
            source("Package: libfoo1\nSource: foo (1.2-3)\n").as_deref(),
            Some("foo")
        );
        let sums = "aa  lib/x86_64-linux-gnu/libc.so.6\nbb  lib/x86_64-linux-gnu/libm.so.6\ncc  usr/share/doc/libc6/copyright\n";
        assert_eq!(
            filter_md5sums(sums, &["/lib/x86_64-linux-gnu/libc.so.6".into()]),
            "aa  lib/x86_64-linux-gnu/libc.so.6\n"
        );
    }

    /// On a Debian-based machine (CI is one), glibc's loader belongs to
    /// libc6 and gets its real status entry.
    #[test]
    fn the_loader_of_this_test_gets_its_package_entry() {
        if !available() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs on Debian or Ubuntu, where dpkg-query exists"
            );
            println!("SKIPPED: no dpkg-query on this machine");
            return;
        }
        let exe = std::env::current_exe().unwrap();
        let libs = super::super::shared_libraries(&exe).unwrap();
        let got = entries(&libs, &[]).unwrap();
        let libc = got.get("libc6").expect("no libc6 entry");
        let status = String::from_utf8(libc.status.clone()).unwrap();
        assert_eq!(field(&status, "Package").as_deref(), Some("libc6"));
        assert!(field(&status, "Version").is_some(), "{status}");
        assert_eq!(
            field(&status, "Status").as_deref(),
            Some("install ok installed")
        );
        let sums = String::from_utf8(libc.md5sums.clone()).unwrap();
        assert!(sums.contains("libc.so.6"), "{sums}");
    }
}
