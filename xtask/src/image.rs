//! `cargo xtask image`: the driver's container image as an OCI image archive,
//! built from the project's own files with no base image and no container
//! engine.
//!
//! The image holds one layer: the release binaries at `/cert-manager-csi-driver`
//! and `/cert-manager-pod-signer`, statically linked against glibc
//! ([`crate::release`]), so with no shared library and no loader (a
//! dynamically linked binary, from `--no-build`, gets exactly the shared
//! libraries `ldd` reports for it and the loader, at the paths it reports),
//! and a minimal `/etc/passwd` and `/etc/group`. The
//! layer and the archive are deterministic (entries sorted, mtime 0, owner
//! 0:0, fixed modes, gzip without a name or time), so the same source and
//! toolchain give the same digest.
//!
//! What a scanner (Trivy, Grype, Syft) needs to see in it:
//! - the binary is built with `cargo auditable`, which embeds its Rust
//!   dependency list (crate names, versions, sources) in a `.dep-v0` section;
//!   the image gets a copy stripped of its symbol table (`objcopy
//!   --strip-all`, which keeps that section), and the symbols stay beside the
//!   archive (`.debug` file);
//! - the glibc linked into the static binaries: the Debian package that owns
//!   the `libc.a` the linker used (`libc6-dev`, built from the same glibc
//!   source and version as `libc6`) gets its `dpkg` status entry at
//!   `/var/lib/dpkg/status.d/<package>`, the layout distroless images use,
//!   taken from this machine's dpkg database (no `md5sums`: none of its files
//!   are in the image); for a dynamically linked binary, every copied shared
//!   library's package gets its entry and the copied files' lines of its
//!   `md5sums` at `<package>.md5sums`;
//! - a CycloneDX SBOM of the binary's Rust crates (and those Debian
//!   packages) is written beside the archive (`.cdx.json`).
//!
//! Every archive written is read back before `build` returns: the binary's
//! embedded crate list, the glibc package's status entry and the SBOM must
//! be there ([`inspect_archive`]).
//!
//! `--rootfs DIR` writes the same file tree to a directory instead: the
//! Dockerfile copies that directory into a `scratch` image, so both images
//! hold the same files.
//!
//! The labels (`org.opencontainers.image.*`) come from `cargo metadata` (source,
//! licenses) and from the built binary's own `--version` (version, revision),
//! so the image cannot claim a version the binary does not.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::workspace_root;

mod dpkg;
mod scan;

pub(crate) use scan::inspect_archive;
use scan::{Installed, crate_licenses, cyclonedx, debian_packages, sbom_crates};

/// The binary's name, and its path in the image.
pub(crate) const BINARY: &str = "cert-manager-csi-driver";
/// The Pod signer's binary, beside the driver's in the same image (`docs/pod-certificates.md`).
pub(crate) const SIGNER_BINARY: &str = "cert-manager-pod-signer";

/// Flags of `cargo xtask image`.
#[derive(Debug, Default, clap::Args)]
pub struct Args {
    /// Use the release binary as it is instead of running `cargo build
    /// --release`.
    #[arg(long)]
    pub no_build: bool,
    /// The archive to write [default:
    /// target/image/cert-manager-csi-driver-VERSION.oci.tar].
    #[arg(long, value_name = "FILE", conflicts_with = "rootfs")]
    pub out: Option<PathBuf>,
    /// Write the image's file tree into this directory (which must not exist
    /// or be empty) instead of an archive; the Dockerfile uses this.
    #[arg(long, value_name = "DIR")]
    pub rootfs: Option<PathBuf>,
}

/// What `cargo xtask image` wrote.
#[derive(Debug)]
pub(crate) struct Built {
    /// The archive.
    pub path: PathBuf,
    /// The image manifest's digest (`sha256:...`), the image's identity.
    pub manifest_digest: String,
    /// The name the archive gives the image (`cert-manager-csi-driver:VERSION`).
    pub reference: String,
    /// The CycloneDX SBOM beside the archive.
    pub sbom: PathBuf,
    /// How many Rust crates the binary embeds (and the SBOM lists).
    pub crates: usize,
}

/// Entry point of `cargo xtask image`.
pub fn run(args: &Args) -> Result<()> {
    if let Some(dir) = &args.rootfs {
        let binary = binary(args.no_build)?;
        let image_binary = ImageBinary::prepare(&binary)?;
        let tree = file_tree(&binary, image_binary.stripped)?;
        write_rootfs(&tree, dir)?;
        eprintln!(
            "image: wrote {} entries under {}",
            tree.len(),
            dir.display()
        );
        return Ok(());
    }
    let built = build(args)?;
    let size = std::fs::metadata(&built.path).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "image: wrote {} ({:.1} MiB), {}, manifest {}",
        built.path.display(),
        size as f64 / (1024.0 * 1024.0),
        built.reference,
        built.manifest_digest
    );
    eprintln!(
        "image: SBOM {} ({} Rust crates)",
        built.sbom.display(),
        built.crates
    );
    println!("{}", built.manifest_digest);
    Ok(())
}

/// Builds the binary (unless `no_build`) and writes the archive.
pub(crate) fn build(args: &Args) -> Result<Built> {
    let binary = binary(args.no_build)?;
    let meta = Metadata::read(&binary)?;
    let image_binary = ImageBinary::prepare(&binary)?;
    let tree = file_tree(&binary, image_binary.stripped)?;
    let path = match &args.out {
        Some(p) => p.clone(),
        None => target_dir().join(format!("image/{BINARY}-{}.oci.tar", meta.version)),
    };
    let (archive, manifest_digest) = oci_archive(&tree, &meta)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    // Write beside and rename, so a reader never sees half an archive.
    let write = |path: &Path, data: &[u8]| -> Result<()> {
        let tmp = path.with_extension("partial");
        std::fs::write(&tmp, data).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
    };
    let debian = debian_packages(&tree)?;
    let sbom = cyclonedx(&image_binary.crates, &crate_licenses()?, &debian, &meta)?;
    let sbom_path = beside(&path, "cdx.json");
    write(&sbom_path, &sbom)?;
    write(&beside(&path, "debug"), &image_binary.symbols)?;
    write(&path, &archive)?;

    // Read back what a scanner reads.
    let inspected = inspect_archive(&path)?;
    if inspected.crates != image_binary.crates {
        bail!(
            "the binary in {} embeds another crate list than the one built",
            path.display()
        );
    }
    // glibc is the one Debian package every image carries: linked into the
    // static binaries (the entry of the package owning `libc.a`, libc6-dev),
    // or copied for a dynamic one (libc6). Without dpkg on the build machine
    // there is only the warning `file_tree` gave, except in CI, which builds
    // on Debian.
    let strict = dpkg::available() || std::env::var_os("CI").is_some();
    if let Some((package, installed)) = glibc_entry(&tree, &inspected.dpkg, strict)
        .with_context(|| format!("checking {}", path.display()))?
    {
        eprintln!(
            "image: dpkg entry for glibc: {package} {}",
            installed.version
        );
    }
    let listed = sbom_crates(&sbom)?;
    let embedded: std::collections::BTreeSet<String> = inspected
        .crates
        .iter()
        .filter(|c| !c.root && !c.build_only)
        .map(|c| format!("{}@{}", c.name, c.version))
        .collect();
    if listed != embedded {
        bail!(
            "the SBOM {} lists other crates than the binary embeds: {:?}",
            sbom_path.display(),
            listed.symmetric_difference(&embedded).collect::<Vec<_>>()
        );
    }
    Ok(Built {
        path,
        manifest_digest,
        reference: format!("{BINARY}:{}", meta.version),
        sbom: sbom_path,
        crates: embedded.len(),
    })
}

/// `archive` with its `.oci.tar` (or last) extension replaced by `ext`.
fn beside(archive: &Path, ext: &str) -> PathBuf {
    let name = archive
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name
        .strip_suffix(".oci.tar")
        .or_else(|| name.rsplit_once('.').map(|(s, _)| s))
        .unwrap_or(&name);
    archive.with_file_name(format!("{stem}.{ext}"))
}

pub(crate) fn target_dir() -> PathBuf {
    let root = workspace_root();
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { root.join(p) })
        .unwrap_or_else(|| root.join("target"))
}

/// The release binary, built first unless `no_build`: statically linked and with `cargo
/// auditable`, the Pod signer beside it ([`crate::release::build`]).
fn binary(no_build: bool) -> Result<PathBuf> {
    if !no_build {
        let driver = crate::release::build(crate::release::DRIVER, true)?;
        crate::release::build(crate::release::SIGNER, true)?;
        return Ok(driver);
    }
    let path = target_dir().join("release").join(BINARY);
    if !path.is_file() {
        bail!(
            "{} is missing; run `cargo xtask image` without --no-build",
            path.display()
        );
    }
    Ok(path)
}

/// The binary as it goes into the image.
struct ImageBinary {
    /// The binary without its symbol table.
    stripped: Vec<u8>,
    /// The symbols `objcopy --only-keep-debug` kept, for the `.debug` file.
    symbols: Vec<u8>,
    /// The dependency list `cargo auditable` embedded.
    crates: Vec<Crate>,
}

/// One crate of the embedded dependency list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Crate {
    pub name: String,
    pub version: String,
    /// `crates.io`, `local`, `git`, `registry`, ...
    pub source: String,
    /// A build-time dependency (build script, proc macro), not in the binary's code.
    pub build_only: bool,
    /// The binary's own package.
    pub root: bool,
    /// Indices into the same list.
    pub dependencies: Vec<usize>,
}

/// The crate list `cargo auditable` embedded in an executable (its JSON
/// format: `{"packages": [{"name", "version", "source", "kind", "root",
/// "dependencies"}]}`, `kind` `runtime` unless `build`).
pub(crate) fn embedded_crates(executable: &[u8]) -> Result<Vec<Crate>> {
    let json = auditable_info::json_from_slice(executable, 64 * 1024 * 1024)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context(
            "the binary carries no `cargo auditable` dependency list; build it with \
             `cargo xtask image` (without --no-build), which uses `cargo auditable`",
        )?;
    parse_audit_json(&json)
}

fn parse_audit_json(json: &str) -> Result<Vec<Crate>> {
    let v: Value = serde_json::from_str(json).context("parsing the embedded dependency list")?;
    let packages = v["packages"]
        .as_array()
        .context("the embedded dependency list has no packages")?;
    packages
        .iter()
        .map(|p| {
            let text = |k: &str| {
                p[k].as_str()
                    .map(str::to_owned)
                    .with_context(|| format!("an embedded package has no `{k}`: {p}"))
            };
            Ok(Crate {
                name: text("name")?,
                version: text("version")?,
                source: text("source")?,
                build_only: p["kind"] == "build",
                root: p["root"] == true,
                dependencies: p["dependencies"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_u64)
                    .map(|i| i as usize)
                    .collect(),
            })
        })
        .collect()
}

/// `binary` without its symbol table (`objcopy --strip-all`), checking that a dependency list
/// `cargo auditable` embedded survives.
fn strip_all(binary: &Path) -> Result<Vec<u8>> {
    let data = std::fs::read(binary).with_context(|| format!("reading {}", binary.display()))?;
    let dir = tempfile::tempdir()?;
    let out_path = dir.path().join("stripped");
    let out = Command::new("objcopy")
        .arg("--strip-all")
        .arg(binary)
        .arg(&out_path)
        .output()
        .context("running objcopy (package binutils) to strip the binary")?;
    if !out.status.success() {
        bail!("objcopy failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let stripped = std::fs::read(&out_path)?;
    if let Ok(crates) = embedded_crates(&data)
        && embedded_crates(&stripped)? != crates
    {
        bail!(
            "stripping {} lost its embedded dependency list",
            binary.display()
        );
    }
    Ok(stripped)
}

impl ImageBinary {
    fn prepare(binary: &Path) -> Result<Self> {
        let data =
            std::fs::read(binary).with_context(|| format!("reading {}", binary.display()))?;
        let crates = embedded_crates(&data)
            .with_context(|| format!("reading the dependency list of {}", binary.display()))?;
        let dir = tempfile::tempdir()?;
        let stripped_path = dir.path().join("stripped");
        let symbols_path = dir.path().join("symbols");
        let objcopy = |args: &[&std::ffi::OsStr]| -> Result<()> {
            let out = Command::new("objcopy")
                .args(args)
                .output()
                .context("running objcopy (package binutils) to strip the binary")?;
            if !out.status.success() {
                bail!("objcopy failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            Ok(())
        };
        objcopy(&[
            "--only-keep-debug".as_ref(),
            binary.as_os_str(),
            symbols_path.as_os_str(),
        ])?;
        objcopy(&[
            "--strip-all".as_ref(),
            binary.as_os_str(),
            stripped_path.as_os_str(),
        ])?;
        let stripped = std::fs::read(&stripped_path)?;
        if embedded_crates(&stripped)? != crates {
            bail!(
                "stripping {} lost its embedded dependency list",
                binary.display()
            );
        }
        Ok(Self {
            stripped,
            symbols: std::fs::read(&symbols_path)?,
            crates,
        })
    }
}

/// The image's labels and platform.
#[derive(Debug, Clone)]
pub(crate) struct Metadata {
    /// The workspace version, e.g. `0.1.0`.
    version: String,
    /// The full commit the binary was built from, when it knows.
    revision: Option<String>,
    /// The repository URL.
    source: String,
    /// SPDX expression.
    licenses: String,
    /// OCI architecture name (`amd64`, `arm64`).
    architecture: &'static str,
}

impl Metadata {
    fn read(binary: &Path) -> Result<Self> {
        let out = Command::new("cargo")
            .args(["metadata", "--no-deps", "--format-version", "1"])
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
        let pkg = m["packages"]
            .as_array()
            .and_then(|p| p.iter().find(|p| p["name"] == "cmcsi-driver"))
            .context("cargo metadata lists no cmcsi-driver package")?;
        let field = |k: &str| {
            pkg[k]
                .as_str()
                .map(str::to_string)
                .with_context(|| format!("cmcsi-driver's Cargo.toml has no `{k}`"))
        };
        let version = field("version")?;
        let (bin_version, revision) = binary_version(binary)?;
        if bin_version != version {
            bail!(
                "{} says it is version {bin_version} but the workspace is {version}; \
                 rebuild it (run without --no-build)",
                binary.display()
            );
        }
        Ok(Self {
            version,
            revision,
            source: field("repository")?,
            licenses: field("license")?,
            architecture: oci_arch()?,
        })
    }

    fn labels(&self) -> BTreeMap<&'static str, String> {
        BTreeMap::from([
            ("org.opencontainers.image.title", BINARY.to_string()),
            ("org.opencontainers.image.version", self.version.clone()),
            (
                "org.opencontainers.image.revision",
                self.revision.clone().unwrap_or_else(|| "unknown".into()),
            ),
            ("org.opencontainers.image.source", self.source.clone()),
            ("org.opencontainers.image.licenses", self.licenses.clone()),
        ])
    }
}

/// Version and commit from `BINARY --version`, which prints
/// `cert-manager-csi-driver 0.1.0 (git DESCRIBE, commit COMMIT)` or just the
/// name and version (see `cmcsi_driver::build`).
fn binary_version(binary: &Path) -> Result<(String, Option<String>)> {
    let out = Command::new(binary)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} --version", binary.display()))?;
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    parse_version_line(&line).with_context(|| {
        format!(
            "unexpected `{} --version` output: {line:?}",
            binary.display()
        )
    })
}

fn parse_version_line(line: &str) -> Option<(String, Option<String>)> {
    let rest = line.strip_prefix(BINARY)?.trim_start();
    let (version, extra) = rest.split_once(' ').unwrap_or((rest, ""));
    let commit = extra
        .split_once("commit ")
        .map(|(_, c)| c.trim_end_matches(')').to_string());
    (!version.is_empty()).then(|| (version.to_string(), commit))
}

fn oci_arch() -> Result<&'static str> {
    Ok(match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => bail!("no OCI architecture name known for `{other}`"),
    })
}

/// One entry of the image's file tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    Dir,
    File { data: Vec<u8>, mode: u32 },
}

/// Path in the image (relative, no leading `/`) to entry, sorted by path so
/// every parent directory comes before its children.
pub(crate) type Tree = BTreeMap<String, Entry>;

const PASSWD: &str =
    "root:x:0:0:root:/:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n";
const GROUP: &str = "root:x:0:\nnobody:x:65534:\n";

/// The image's files: the binary (`data`, what goes in for the file at
/// `binary`), its shared libraries if it has any, the dpkg entries of the
/// packages they (or, for a static binary, the glibc linked in) come from,
/// passwd and group.
fn file_tree(binary: &Path, data: Vec<u8>) -> Result<Tree> {
    let mut tree = Tree::new();
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    let mut libs = shared_libraries(binary)?;
    // From the bytes that go into the image (stripping keeps the marker,
    // which is data, not a symbol), as the read-back check sees them.
    let mut static_glibc = libs.is_empty() && links_glibc(&data);
    insert(&mut tree, BINARY, Entry::File { data, mode: 0o755 })?;
    // The Pod signer, when built beside the driver: `/cert-manager-pod-signer`, stripped the same
    // way and with its libraries (the same glibc, in practice).
    let signer = binary.with_file_name(SIGNER_BINARY);
    if signer.is_file() {
        let stripped = strip_all(&signer)?;
        let signer_libs = shared_libraries(&signer)?;
        static_glibc |= signer_libs.is_empty() && links_glibc(&stripped);
        insert(
            &mut tree,
            SIGNER_BINARY,
            Entry::File {
                data: stripped,
                mode: 0o755,
            },
        )?;
        for lib in signer_libs {
            if !libs.contains(&lib) {
                libs.push(lib);
            }
        }
    }
    for lib in &libs {
        // The file's contents at the path ldd names (symlinks followed), so
        // the loader finds each where it looked on the build machine.
        let data = read(lib)?;
        let rel = lib.to_string_lossy().trim_start_matches('/').to_string();
        insert(&mut tree, &rel, Entry::File { data, mode: 0o755 })?;
    }
    // A static binary holds the glibc of the `libc.a` it was linked with: the
    // image gets that archive's package's entry, without the archive.
    let linked: Vec<PathBuf> = if static_glibc {
        static_libc_archive().into_iter().collect()
    } else {
        Vec::new()
    };
    for (package, entry) in dpkg::entries(&libs, &linked)? {
        let file = |data: Vec<u8>| Entry::File { data, mode: 0o644 };
        insert(
            &mut tree,
            &format!("{}/{package}", dpkg::STATUS_D),
            file(entry.status),
        )?;
        if !entry.md5sums.is_empty() {
            insert(
                &mut tree,
                &format!("{}/{package}.md5sums", dpkg::STATUS_D),
                file(entry.md5sums),
            )?;
        }
    }
    for (path, text) in [("etc/passwd", PASSWD), ("etc/group", GROUP)] {
        insert(
            &mut tree,
            path,
            Entry::File {
                data: text.as_bytes().to_vec(),
                mode: 0o644,
            },
        )?;
    }
    Ok(tree)
}

/// A name only glibc's own code holds: its start-up code reads the
/// `GLIBC_TUNABLES` environment variable (glibc 2.26 and later), so a binary
/// whose bytes contain it has glibc linked in; a dynamically linked binary
/// leaves that to `ld.so`, and musl has no such variable.
const GLIBC_MARKER: &[u8] = b"GLIBC_TUNABLES";

/// Whether `executable` has glibc linked into it (statically).
fn links_glibc(executable: &[u8]) -> bool {
    executable
        .windows(GLIBC_MARKER.len())
        .any(|w| w == GLIBC_MARKER)
}

/// Whether the image carries glibc: a copied `libc.so.6`, or a binary with
/// glibc linked in.
fn carries_glibc(tree: &Tree) -> bool {
    tree.keys().any(|k| k.ends_with("/libc.so.6"))
        || [BINARY, SIGNER_BINARY]
            .into_iter()
            .any(|b| matches!(tree.get(b), Some(Entry::File { data, .. }) if links_glibc(data)))
}

/// The glibc package's status entry (`Source: glibc`: `libc6` for a copied
/// `libc.so.6`, `libc6-dev` for the static archive), which `strict` requires
/// when the image carries glibc.
fn glibc_entry<'a>(
    tree: &Tree,
    dpkg: &'a BTreeMap<String, Installed>,
    strict: bool,
) -> Result<Option<(&'a String, &'a Installed)>> {
    let found = dpkg.iter().find(|(_, p)| p.source == "glibc");
    if found.is_none() && strict && carries_glibc(tree) {
        bail!(
            "the image carries glibc but has no dpkg status entry of a glibc package \
             (entries: {:?})",
            dpkg.keys().collect::<Vec<_>>()
        );
    }
    Ok(found)
}

/// The static C library the linker uses (`cc -print-file-name=libc.a`, the
/// C compiler rustc links with), symlinks resolved; `None`, with a warning,
/// where there is none.
fn static_libc_archive() -> Option<PathBuf> {
    let out = Command::new("cc")
        .arg("-print-file-name=libc.a")
        .output()
        .ok()
        .filter(|o| o.status.success());
    let printed = out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    // Without the file, cc prints the bare name back.
    match printed
        .filter(|p| p.starts_with('/'))
        .and_then(|p| std::fs::canonicalize(p).ok())
    {
        Some(path) => Some(path),
        None => {
            eprintln!(
                "image: warning: `cc -print-file-name=libc.a` names no static C library, so \
                 the image gets no dpkg entry for the glibc linked into its binaries"
            );
            None
        }
    }
}

/// Adds `rel` and every parent directory of it.
fn insert(tree: &mut Tree, rel: &str, entry: Entry) -> Result<()> {
    if rel.is_empty()
        || rel
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        bail!("image path `{rel}` is not a plain relative path");
    }
    let mut parent = String::new();
    let parts: Vec<&str> = rel.split('/').collect();
    for dir in &parts[..parts.len() - 1] {
        if !parent.is_empty() {
            parent.push('/');
        }
        parent.push_str(dir);
        if let Some(Entry::File { .. }) = tree.get(&parent) {
            bail!("image path `{parent}` is both a file and a directory");
        }
        tree.insert(parent.clone(), Entry::Dir);
    }
    tree.insert(rel.to_string(), entry);
    Ok(())
}

/// The absolute paths of the shared libraries and loader `ldd` reports
/// (none for a static binary).
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .context("running ldd (package libc-bin) to list the binary's shared libraries")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        if text.contains("statically linked") || stderr.contains("not a dynamic executable") {
            return Ok(Vec::new());
        }
        bail!("ldd {} failed: {stderr}", binary.display());
    }
    parse_ldd(&text)
}

fn parse_ldd(text: &str) -> Result<Vec<PathBuf>> {
    let mut libs = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.contains("statically linked") {
            continue;
        }
        let target = match line.split_once("=>") {
            Some((name, rest)) => {
                let rest = rest.trim();
                if rest.starts_with("not found") {
                    bail!("ldd: shared library {} not found", name.trim());
                }
                rest
            }
            None => line,
        };
        // "PATH (0xADDRESS)"; the vDSO has no path.
        let path = target.split(" (").next().unwrap_or("").trim();
        if path.starts_with('/') {
            libs.push(PathBuf::from(path));
        }
    }
    Ok(libs)
}

/// Writes `tree` under `dir` (for the Dockerfile's `COPY`).
fn write_rootfs(tree: &Tree, dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if dir.exists()
        && std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .next()
            .is_some()
    {
        bail!(
            "--rootfs {} is not empty; give a new or empty directory",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (rel, entry) in tree {
        let path = dir.join(rel);
        match entry {
            Entry::Dir => std::fs::create_dir_all(&path),
            Entry::File { data, mode } => std::fs::write(&path, data).and_then(|()| {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode))
            }),
        }
        .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// A deterministic tar of `entries` (already sorted): mtime 0, owner 0:0.
fn tar_of<'a>(entries: impl IntoIterator<Item = (&'a str, &'a Entry)>) -> Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for (rel, entry) in entries {
        let mut h = tar::Header::new_ustar();
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_username("root")?;
        h.set_groupname("root")?;
        match entry {
            Entry::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, format!("{rel}/"), std::io::empty())?;
            }
            Entry::File { data, mode } => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, rel, data.as_slice())?;
            }
        }
    }
    Ok(b.into_inner()?)
}

/// gzip with a fixed header (no name, mtime 0) at a fixed level.
fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), flate2::Compression::best());
    gz.write_all(data)?;
    Ok(gz.finish()?)
}

fn sha256(data: &[u8]) -> String {
    // Hex by hand: two lines, not worth a dependency.
    let d = Sha256::digest(data);
    let mut s = String::with_capacity(71);
    s.push_str("sha256:");
    for b in d.iter() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

const MT_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MT_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MT_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const MT_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// The OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/*`) of
/// a one-layer image holding `tree`, as a tar; and the manifest's digest.
fn oci_archive(tree: &Tree, meta: &Metadata) -> Result<(Vec<u8>, String)> {
    let layer_tar = tar_of(tree.iter().map(|(k, v)| (k.as_str(), v)))?;
    let diff_id = sha256(&layer_tar);
    let layer = gzip(&layer_tar)?;
    let layer_digest = sha256(&layer);
    let labels = meta.labels();
    let config = json!({
        "created": "1970-01-01T00:00:00Z",
        "architecture": meta.architecture,
        "os": "linux",
        "config": {
            // Root, deliberately: see the Dockerfile's USER.
            "User": "0:0",
            "Entrypoint": [format!("/{BINARY}")],
            "Labels": labels,
        },
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
        "history": [{
            "created": "1970-01-01T00:00:00Z",
            "created_by": "cargo xtask image",
        }],
    });
    let config = serde_json::to_vec(&config)?;
    let config_digest = sha256(&config);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": { "mediaType": MT_CONFIG, "digest": config_digest, "size": config.len() },
        "layers": [{ "mediaType": MT_LAYER, "digest": layer_digest, "size": layer.len() }],
        "annotations": labels,
    });
    let manifest = serde_json::to_vec(&manifest)?;
    let manifest_digest = sha256(&manifest);
    let index = json!({
        "schemaVersion": 2,
        "mediaType": MT_INDEX,
        "manifests": [{
            "mediaType": MT_MANIFEST,
            "digest": manifest_digest,
            "size": manifest.len(),
            "platform": { "architecture": meta.architecture, "os": "linux" },
            "annotations": {
                // The tag (OCI's convention), and the full name containerd
                // (`ctr images import`, `kind load image-archive`) uses.
                "org.opencontainers.image.ref.name": meta.version,
                "io.containerd.image.name": format!("docker.io/library/{BINARY}:{}", meta.version),
            },
        }],
    });
    let mut files = Tree::new();
    let blob = |d: &str| format!("blobs/sha256/{}", d.trim_start_matches("sha256:"));
    let file = |data: Vec<u8>| Entry::File { data, mode: 0o644 };
    insert(
        &mut files,
        "oci-layout",
        file(br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
    )?;
    insert(&mut files, "index.json", file(serde_json::to_vec(&index)?))?;
    insert(&mut files, &blob(&layer_digest), file(layer))?;
    insert(&mut files, &blob(&config_digest), file(config))?;
    insert(&mut files, &blob(&manifest_digest), file(manifest))?;
    let archive = tar_of(files.iter().map(|(k, v)| (k.as_str(), v)))?;
    Ok((archive, manifest_digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_the_libraries_and_the_loader() {
        let out = "\tlinux-vdso.so.1 (0x00007ffc6a5f2000)\n\
            \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f0e1c3a0000)\n\
            \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0e1c1bf000)\n\
            \t/lib64/ld-linux-x86-64.so.2 (0x00007f0e1c9d3000)\n";
        assert_eq!(
            parse_ldd(out).unwrap(),
            [
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
            .map(PathBuf::from)
        );
        assert!(parse_ldd("\tlibfoo.so => not found\n").is_err());
        assert!(parse_ldd("\tstatically linked\n").unwrap().is_empty());
    }

    #[test]
    fn version_line_gives_version_and_commit() {
        assert_eq!(
            parse_version_line("cert-manager-csi-driver 0.1.0 (git v0.1.0-2-gabc, commit abcdef)"),
            Some(("0.1.0".into(), Some("abcdef".into())))
        );
        assert_eq!(
            parse_version_line("cert-manager-csi-driver 0.1.0"),
            Some(("0.1.0".into(), None))
        );
        assert_eq!(parse_version_line("something 0.1.0"), None);
    }

    pub(crate) fn meta() -> Metadata {
        Metadata {
            version: "0.1.0".into(),
            revision: Some("abc".into()),
            source: "https://example.invalid/x".into(),
            licenses: "Apache-2.0".into(),
            architecture: "amd64",
        }
    }

    fn tree() -> Tree {
        let mut t = Tree::new();
        let f = |s: &str| Entry::File {
            data: s.as_bytes().to_vec(),
            mode: 0o755,
        };
        insert(&mut t, "lib64/ld.so", f("loader")).unwrap();
        insert(&mut t, BINARY, f("binary")).unwrap();
        insert(&mut t, "etc/passwd", f(PASSWD)).unwrap();
        t
    }

    #[test]
    fn archives_are_deterministic_and_laid_out_as_oci() {
        let (a, da) = oci_archive(&tree(), &meta()).unwrap();
        let (b, db) = oci_archive(&tree(), &meta()).unwrap();
        assert_eq!(da, db);
        assert_eq!(sha256(&a), sha256(&b));
        let mut other = meta();
        other.revision = Some("def".into());
        assert_ne!(oci_archive(&tree(), &other).unwrap().1, da);

        let mut ar = tar::Archive::new(a.as_slice());
        let mut names = Vec::new();
        let mut index = Value::Null;
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            assert_eq!(e.header().mtime().unwrap(), 0);
            assert_eq!(e.header().uid().unwrap(), 0);
            let name = e.path().unwrap().display().to_string();
            if name == "index.json" {
                index = serde_json::from_reader(&mut e).unwrap();
            }
            names.push(name);
        }
        assert!(names.contains(&"oci-layout".to_string()), "{names:?}");
        let manifest = index["manifests"][0]["digest"].as_str().unwrap();
        assert_eq!(manifest, da);
        assert!(
            names.contains(&format!("blobs/sha256/{}", &da["sha256:".len()..])),
            "{names:?}"
        );
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
    }

    /// The Pod signer built beside the driver goes into the same image.
    #[test]
    fn the_signer_beside_the_driver_is_in_the_tree() {
        let exe = std::env::current_exe().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let driver = dir.path().join(BINARY);
        std::fs::copy(&exe, &driver).unwrap();
        let data = std::fs::read(&exe).unwrap();
        assert!(
            !file_tree(&driver, data.clone())
                .unwrap()
                .contains_key(SIGNER_BINARY)
        );
        std::fs::copy(&exe, dir.path().join(SIGNER_BINARY)).unwrap();
        let t = file_tree(&driver, data).unwrap();
        assert!(t.contains_key(SIGNER_BINARY) && t.contains_key(BINARY));
    }

    /// The Dockerfile's tree (`--rootfs`) and the archive's layer list the
    /// same paths and modes, for a real dynamically linked binary.
    #[test]
    fn rootfs_and_layer_hold_the_same_files() {
        use std::os::unix::fs::PermissionsExt;
        let exe = std::env::current_exe().unwrap();
        let t = file_tree(&exe, std::fs::read(&exe).unwrap()).unwrap();
        assert!(t.contains_key(BINARY) && t.contains_key("etc/passwd"));
        assert!(
            t.keys()
                .any(|k| k.contains("ld-linux") || k.contains("ld-musl")),
            "no dynamic loader in {:?}",
            t.keys().collect::<Vec<_>>()
        );
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        write_rootfs(&t, &root).unwrap();
        let mut on_disk = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                let m = std::fs::symlink_metadata(&p).unwrap();
                let rel = p.strip_prefix(&root).unwrap().display().to_string();
                if m.is_dir() {
                    stack.push(p.clone());
                    on_disk.push((rel, 0o755));
                } else {
                    on_disk.push((rel, m.permissions().mode() & 0o7777));
                }
            }
        }
        on_disk.sort();
        let layer = tar_of(t.iter().map(|(k, v)| (k.as_str(), v))).unwrap();
        let mut in_layer: Vec<(String, u32)> = tar::Archive::new(layer.as_slice())
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let p = e.path().unwrap().display().to_string();
                (
                    p.trim_end_matches('/').to_string(),
                    e.header().mode().unwrap(),
                )
            })
            .collect();
        in_layer.sort();
        assert_eq!(on_disk, in_layer);
        // A second --rootfs into a non-empty directory is refused.
        assert!(write_rootfs(&t, &root).is_err());
    }

    /// A binary statically linked against glibc, built here as the release
    /// binaries are (`-C target-feature=+crt-static`): its tree has no shared
    /// library and no loader, and on a Debian-based machine (CI is one) it
    /// carries the status entry of the glibc package owning the `libc.a` it
    /// was linked with, at this machine's glibc version, without md5sums.
    #[test]
    fn a_static_binary_gets_no_libraries_and_the_glibc_entry() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("main.rs");
        std::fs::write(&source, "fn main() {\n    println!(\"static\");\n}\n").unwrap();
        let binary = dir.path().join(BINARY);
        let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
        let out = Command::new(rustc)
            .args(crate::release::STATIC_FLAGS)
            .arg("-o")
            .arg(&binary)
            .arg(&source)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "rustc: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        crate::release::check_static(&binary).unwrap();
        let data = std::fs::read(&binary).unwrap();
        assert!(links_glibc(&data), "not linked against glibc");
        let t = file_tree(&binary, data).unwrap();
        let status_d = format!("{}/", dpkg::STATUS_D);
        let others: Vec<&String> = t
            .keys()
            .filter(|k| {
                ![BINARY, "etc", "etc/passwd", "etc/group"].contains(&k.as_str())
                    && !k.starts_with(&status_d)
                    && !status_d.starts_with(&format!("{k}/"))
            })
            .collect();
        assert!(others.is_empty(), "libraries or a loader: {others:?}");
        assert!(carries_glibc(&t));
        if !dpkg::available() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs on Debian or Ubuntu, where dpkg-query exists"
            );
            println!("SKIPPED: no dpkg-query on this machine");
            return;
        }
        let layer: BTreeMap<String, Vec<u8>> = t
            .iter()
            .filter_map(|(k, e)| match e {
                Entry::File { data, .. } => Some((k.clone(), data.clone())),
                Entry::Dir => None,
            })
            .collect();
        assert!(
            layer
                .keys()
                .all(|k| !k.starts_with(&status_d) || !k.ends_with(".md5sums")),
            "md5sums for files the image does not hold: {:?}",
            layer.keys().collect::<Vec<_>>()
        );
        let entries = scan::status_entries(&layer).unwrap();
        let (package, glibc) = glibc_entry(&t, &entries, true)
            .unwrap()
            .expect("no glibc entry");
        assert_eq!(glibc.source, "glibc", "{package}");
        let libc6 = Command::new("dpkg-query")
            .args(["-W", "-f", "${Version}", "libc6"])
            .output()
            .unwrap();
        assert_eq!(glibc.version, String::from_utf8_lossy(&libc6.stdout));
        // The read-back check `build` runs fails without it.
        assert!(glibc_entry(&t, &BTreeMap::new(), true).is_err());
    }

    #[test]
    fn the_layer_holds_parents_before_children() {
        let t = tree();
        let keys: Vec<&str> = t.keys().map(String::as_str).collect();
        assert_eq!(keys, [BINARY, "etc", "etc/passwd", "lib64", "lib64/ld.so"]);
        let mut bad = Tree::new();
        assert!(insert(&mut bad, "../x", Entry::Dir).is_err());
        assert!(insert(&mut bad, "/x", Entry::Dir).is_err());
    }
}
