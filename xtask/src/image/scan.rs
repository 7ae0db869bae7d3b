//! What scanners read from the image: the SBOM written beside the archive,
//! and a reader of the archive itself (the binary's embedded crate list and
//! the dpkg entries in its layer), which `build` runs on every archive it
//! writes.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::dpkg::{STATUS_D, field, source};
use super::{BINARY, Crate, Entry, Metadata, Tree, embedded_crates};
use crate::workspace_root;

/// A Debian package in the image: version and architecture.
pub(crate) type Debian = BTreeMap<String, (String, String)>;

/// The Debian packages whose status entries `tree` holds.
pub(crate) fn debian_packages(tree: &Tree) -> Result<Debian> {
    let mut out = Debian::new();
    for (path, entry) in tree {
        let Some(name) = path.strip_prefix(&format!("{STATUS_D}/")) else {
            continue;
        };
        let Entry::File { data, .. } = entry else {
            continue;
        };
        if name.ends_with(".md5sums") {
            continue;
        }
        let stanza = String::from_utf8_lossy(data);
        let version =
            field(&stanza, "Version").with_context(|| format!("{path} has no Version field"))?;
        let arch = field(&stanza, "Architecture").unwrap_or_default();
        out.insert(name.to_owned(), (version, arch));
    }
    Ok(out)
}

/// Each crate's license expression (`cargo metadata`), by name and version.
pub(crate) fn crate_licenses() -> Result<BTreeMap<(String, String), String>> {
    let out = Command::new("cargo")
        .args(["metadata", "--format-version", "1"])
        .current_dir(workspace_root())
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let m: Value = serde_json::from_slice(&out.stdout).context("parsing cargo metadata")?;
    let mut licenses = BTreeMap::new();
    for p in m["packages"].as_array().into_iter().flatten() {
        if let (Some(name), Some(version), Some(license)) = (
            p["name"].as_str(),
            p["version"].as_str(),
            p["license"].as_str(),
        ) {
            licenses.insert((name.to_owned(), version.to_owned()), license.to_owned());
        }
    }
    Ok(licenses)
}

fn cargo_purl(c: &Crate) -> String {
    format!("pkg:cargo/{}@{}", c.name, c.version)
}

/// `+`, `:` and `~` in Debian versions, percent-encoded for a purl.
fn purl_encode(s: &str) -> String {
    s.replace('%', "%25")
        .replace('+', "%2B")
        .replace(':', "%3A")
        .replace('~', "%7E")
}

/// The distribution id (`debian`, `ubuntu`) for Debian purls.
fn distro() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("ID=")
                    .map(|v| v.trim_matches('"').to_owned())
            })
        })
        .unwrap_or_else(|| "debian".to_owned())
}

/// A CycloneDX 1.5 SBOM (JSON) of the binary's Rust crates (the ones
/// compiled into it; build scripts and proc macros are left out) and the
/// image's Debian packages. No timestamp or serial number, so it is as
/// reproducible as the image.
pub(crate) fn cyclonedx(
    crates: &[Crate],
    licenses: &BTreeMap<(String, String), String>,
    debian: &Debian,
    meta: &Metadata,
) -> Result<Vec<u8>> {
    let root = crates
        .iter()
        .find(|c| c.root)
        .context("the embedded crate list has no root package")?;
    let in_binary = |c: &&Crate| !c.build_only;
    let mut components: Vec<Value> = crates
        .iter()
        .filter(in_binary)
        .filter(|c| !c.root)
        .map(|c| {
            let mut component = json!({
                "type": "library",
                "bom-ref": cargo_purl(c),
                "name": c.name,
                "version": c.version,
                "purl": cargo_purl(c),
                "scope": "required",
                "properties": [{ "name": "cargo:source", "value": c.source }],
            });
            if let Some(l) = licenses.get(&(c.name.clone(), c.version.clone())) {
                component["licenses"] = json!([{ "expression": l }]);
            }
            component
        })
        .collect();
    let distro = distro();
    for (name, (version, arch)) in debian {
        let purl = format!(
            "pkg:deb/{distro}/{name}@{}?arch={arch}",
            purl_encode(version)
        );
        components.push(json!({
            "type": "library",
            "bom-ref": purl,
            "name": name,
            "version": version,
            "purl": purl,
            "scope": "required",
        }));
    }
    let dependencies: Vec<Value> = crates
        .iter()
        .filter(in_binary)
        .map(|c| {
            let on: Vec<String> = c
                .dependencies
                .iter()
                .filter_map(|&i| crates.get(i))
                .filter(in_binary)
                .map(cargo_purl)
                .collect();
            json!({ "ref": cargo_purl(c), "dependsOn": on })
        })
        .collect();
    let sbom = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {
            "tools": { "components": [{
                "type": "application",
                "name": "cargo xtask image",
                "description": "from the dependency list cargo auditable embedded in the binary",
            }]},
            "component": {
                "type": "container",
                "bom-ref": cargo_purl(root),
                "name": BINARY,
                "version": meta.version,
                "purl": cargo_purl(root),
                "licenses": [{ "expression": meta.licenses }],
                "externalReferences": [{ "type": "vcs", "url": meta.source }],
            },
        },
        "components": components,
        "dependencies": dependencies,
    });
    let mut out = serde_json::to_vec_pretty(&sbom)?;
    out.push(b'\n');
    Ok(out)
}

/// `name@version` of every Cargo component an SBOM lists.
pub(crate) fn sbom_crates(sbom: &[u8]) -> Result<BTreeSet<String>> {
    let v: Value = serde_json::from_slice(sbom).context("parsing the SBOM")?;
    Ok(v["components"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| {
            c["purl"]
                .as_str()
                .is_some_and(|p| p.starts_with("pkg:cargo/"))
        })
        .filter_map(|c| {
            Some(format!(
                "{}@{}",
                c["name"].as_str()?,
                c["version"].as_str()?
            ))
        })
        .collect())
}

/// What [`inspect_archive`] found in the image.
#[derive(Debug)]
pub(crate) struct Inspection {
    /// The crate list embedded in `/cert-manager-csi-driver`.
    pub crates: Vec<Crate>,
    /// Package name to version and source package of every entry in
    /// `/var/lib/dpkg/status.d/`.
    pub dpkg: BTreeMap<String, Installed>,
}

/// A package's status entry in the image, as [`inspect_archive`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Installed {
    /// `Version`.
    pub version: String,
    /// The source package (`glibc` for both `libc6` and `libc6-dev`).
    pub source: String,
}

/// Reads an archive as a scanner does: index, manifest, the layer, then the
/// binary's embedded crate list and the dpkg status entries.
pub(crate) fn inspect_archive(path: &Path) -> Result<Inspection> {
    let archive = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let files = untar(&archive)?;
    let blob = |digest: &str| -> Result<&Vec<u8>> {
        let name = format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"));
        files
            .get(&name)
            .with_context(|| format!("{} has no {name}", path.display()))
    };
    let index: Value = serde_json::from_slice(
        files
            .get("index.json")
            .with_context(|| format!("{} has no index.json", path.display()))?,
    )?;
    let manifest_digest = index["manifests"][0]["digest"]
        .as_str()
        .context("index.json names no manifest")?;
    let manifest: Value = serde_json::from_slice(blob(manifest_digest)?)?;
    let layer_digest = manifest["layers"][0]["digest"]
        .as_str()
        .context("the manifest names no layer")?;
    let mut layer = Vec::new();
    flate2::read::GzDecoder::new(blob(layer_digest)?.as_slice())
        .read_to_end(&mut layer)
        .context("decompressing the layer")?;
    let layer = untar(&layer)?;
    let binary = layer
        .get(BINARY)
        .with_context(|| format!("the layer has no /{BINARY}"))?;
    let crates = embedded_crates(binary)?;
    let dpkg = status_entries(&layer)?;
    Ok(Inspection { crates, dpkg })
}

/// The dpkg status entries among a layer's regular files (path to contents).
pub(crate) fn status_entries(
    layer: &BTreeMap<String, Vec<u8>>,
) -> Result<BTreeMap<String, Installed>> {
    let mut dpkg = BTreeMap::new();
    for (name, data) in layer {
        let Some(package) = name.strip_prefix(&format!("{STATUS_D}/")) else {
            continue;
        };
        if package.ends_with(".md5sums") || package.is_empty() {
            continue;
        }
        let stanza = String::from_utf8_lossy(data);
        if field(&stanza, "Package").as_deref() != Some(package) {
            bail!("{name} in the layer is not the entry of package {package}");
        }
        let version =
            field(&stanza, "Version").with_context(|| format!("{name} has no Version"))?;
        let source = source(&stanza).unwrap_or_else(|| package.to_owned());
        dpkg.insert(package.to_owned(), Installed { version, source });
    }
    Ok(dpkg)
}

/// Regular files of a tar, by path.
fn untar(data: &[u8]) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    for entry in tar::Archive::new(data).entries()? {
        let mut entry = entry?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let name = entry.path()?.to_string_lossy().into_owned();
        let mut buf = Vec::new();
        entry.read_to_end(&mut buf)?;
        out.insert(name, buf);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn krate(name: &str, build_only: bool, root: bool, deps: Vec<usize>) -> Crate {
        Crate {
            name: name.into(),
            version: "1.2.3".into(),
            source: if root { "local" } else { "crates.io" }.into(),
            build_only,
            root,
            dependencies: deps,
        }
    }

    #[test]
    fn the_sbom_lists_the_crates_in_the_binary_and_the_debian_packages() {
        let crates = vec![
            krate("cmcsi-driver", false, true, vec![1, 2]),
            krate("tokio", false, false, vec![]),
            krate("prost-build", true, false, vec![]),
        ];
        let licenses = BTreeMap::from([(("tokio".into(), "1.2.3".into()), "MIT".into())]);
        let debian = Debian::from([(
            "libc6".to_owned(),
            ("2.36-9+deb12u10".to_owned(), "amd64".to_owned()),
        )]);
        let meta = super::super::tests::meta();
        let sbom = cyclonedx(&crates, &licenses, &debian, &meta).unwrap();
        assert_eq!(cyclonedx(&crates, &licenses, &debian, &meta).unwrap(), sbom);
        assert_eq!(
            sbom_crates(&sbom).unwrap(),
            BTreeSet::from(["tokio@1.2.3".to_owned()])
        );
        let v: Value = serde_json::from_slice(&sbom).unwrap();
        assert_eq!(v["bomFormat"], "CycloneDX");
        let tokio = &v["components"][0];
        assert_eq!(tokio["purl"], "pkg:cargo/tokio@1.2.3");
        assert_eq!(tokio["licenses"][0]["expression"], "MIT");
        let libc = &v["components"][1];
        assert!(
            libc["purl"]
                .as_str()
                .unwrap()
                .ends_with("/libc6@2.36-9%2Bdeb12u10?arch=amd64"),
            "{libc}"
        );
        // The root depends on tokio only (prost-build runs at build time).
        assert_eq!(
            v["dependencies"][0]["dependsOn"],
            json!(["pkg:cargo/tokio@1.2.3"])
        );
    }

    #[test]
    fn archive_paths_beside() {
        use std::path::PathBuf;
        assert_eq!(
            super::super::beside(Path::new("/t/image/x-0.1.0.oci.tar"), "cdx.json"),
            PathBuf::from("/t/image/x-0.1.0.cdx.json")
        );
        assert_eq!(
            super::super::beside(Path::new("out.tar"), "debug"),
            PathBuf::from("out.debug")
        );
    }
}
