//! The shipped release binaries (the driver and the Pod signer), built one way for every command
//! that builds them (`cargo xtask image`, `cargo xtask bench`): statically linked against glibc.
//!
//! `-C target-feature=+crt-static` on `x86_64-unknown-linux-gnu` gives a static-pie: no dynamic
//! loader, `libc.so.6`, `libm.so.6` or `libgcc_s` to map at start (the driver's idle RSS drops by
//! about 1.3 MiB) and none to copy into the image. The flag goes through `cargo rustc`, which
//! passes it to the binary's own crate only, not through `RUSTFLAGS` or `.cargo/config.toml`:
//! without `--target` those flags also reach the proc-macro crates, which cannot be built with
//! `crt-static`, and every test and debug build. And because `cargo build` and `cargo rustc ... --
//! FLAGS` link the same output differently, alternating them relinks the binary (minutes with fat
//! LTO): every builder of the shipped binaries goes through [`build`].
//!
//! The link also packs the relative relocations (`-z pack-relative-relocs`, `DT_RELR`; GNU ld 2.38
//! and glibc 2.36 or later, as in Debian 12). A position-independent executable carries one
//! relocation per pointer in its read-only data, which the start-up code reads once and applies:
//! as `.rela.dyn` entries that was 578 KiB of the driver, all of it read at start and resident
//! from then on; packed, it is 7 KiB. The driver's idle RSS drops by a further 0.6 MiB (12.1 to
//! 11.5 MiB from a cold page cache), and nothing else changes: the same relocations are applied,
//! so the binary is still loaded at a random address.
//!
//! By hand, the same build is
//! `cargo auditable rustc --release --locked -p cmcsi-driver --bin cert-manager-csi-driver -- -C
//! target-feature=+crt-static -C link-arg=-Wl,-z,pack-relative-relocs` (and `-p cmcsi-pod-signer
//! --bin cert-manager-pod-signer`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The pinned `cargo-auditable` that `.ci/run` and the Dockerfile install.
pub(crate) const CARGO_AUDITABLE: &str = "cargo-auditable@0.7.7";

/// What makes the binary static, and its relocations packed: passed to the binary crate only (see
/// the module's comment).
pub(crate) const STATIC_FLAGS: [&str; 4] = [
    "-C",
    "target-feature=+crt-static",
    "-C",
    "link-arg=-Wl,-z,pack-relative-relocs",
];

/// A shipped binary: its package and its name.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shipped {
    pub package: &'static str,
    pub bin: &'static str,
}

/// The driver, `/cert-manager-csi-driver` in the image.
pub(crate) const DRIVER: Shipped = Shipped {
    package: "cmcsi-driver",
    bin: crate::image::BINARY,
};

/// The Pod signer, `/cert-manager-pod-signer` in the image.
pub(crate) const SIGNER: Shipped = Shipped {
    package: "cmcsi-pod-signer",
    bin: crate::image::SIGNER_BINARY,
};

/// Builds `shipped` in release mode, statically linked, with `cargo auditable` (its dependency
/// list embedded for scanners) when `auditable`; checks that the result is static and returns its
/// path (`target/release/NAME`).
pub(crate) fn build(shipped: Shipped, auditable: bool) -> Result<PathBuf> {
    if auditable {
        let installed = Command::new("cargo")
            .args(["auditable", "--version"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !installed {
            bail!(
                "`cargo auditable` is not installed; the image's binary must carry its \
                 dependency list for scanners. Install it with \
                 `cargo install --locked {CARGO_AUDITABLE}` (as .ci/run does)"
            );
        }
    }
    crate::run("cargo", &args(shipped, auditable), &[])?;
    let path = crate::image::target_dir().join("release").join(shipped.bin);
    check_static(&path)?;
    check_packed_relocations(&path)?;
    Ok(path)
}

/// Fails when `binary` is position-independent but its relative relocations are not packed: a
/// GNU ld older than 2.38 only warns about `-z pack-relative-relocs` and links the full table.
pub(crate) fn check_packed_relocations(binary: &Path) -> Result<()> {
    let out = Command::new("readelf")
        .args(["--file-header", "--section-headers", "--wide"])
        .arg(binary)
        .output()
        .with_context(|| format!("running readelf (package binutils) on {}", binary.display()))?;
    if !out.status.success() {
        bail!(
            "readelf {} failed: {}",
            binary.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    if packed_or_not_pie(&String::from_utf8_lossy(&out.stdout)) {
        return Ok(());
    }
    bail!(
        "{} is position-independent but has no .relr.dyn section: the linker ignored \
         `-z pack-relative-relocs` (it needs GNU ld 2.38 or later, as in Debian 12)",
        binary.display()
    )
}

/// Whether `readelf -h -S` output shows packed relative relocations, or an executable that is not
/// position-independent (type `EXEC`, which has no relative relocations to pack).
fn packed_or_not_pie(readelf: &str) -> bool {
    let pie = readelf
        .lines()
        .any(|l| l.trim_start().starts_with("Type:") && l.contains("DYN"));
    !pie || readelf.contains(".relr.dyn")
}

/// `cargo`'s arguments for [`build`].
fn args(shipped: Shipped, auditable: bool) -> Vec<&'static str> {
    let mut args = Vec::new();
    if auditable {
        args.push("auditable");
    }
    args.extend([
        "rustc",
        "--release",
        "--locked",
        "-p",
        shipped.package,
        "--bin",
        shipped.bin,
        "--",
    ]);
    args.extend(STATIC_FLAGS);
    args
}

/// Fails unless `ldd` says `binary` is statically linked.
pub(crate) fn check_static(binary: &Path) -> Result<()> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .with_context(|| format!("running ldd (package libc-bin) on {}", binary.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if is_static(&stdout, &stderr) {
        return Ok(());
    }
    bail!(
        "{} is not statically linked (built with `{}`?); ldd says:\n{}{}",
        binary.display(),
        STATIC_FLAGS.join(" "),
        stdout.trim_end(),
        stderr.trim_end()
    )
}

/// Whether `ldd`'s output is that of a static executable: glibc's ldd prints `statically linked`
/// for a static-pie and `not a dynamic executable` for a static non-PIE binary.
fn is_static(stdout: &str, stderr: &str) -> bool {
    let said = |s: &str| s.contains("statically linked") || s.contains("not a dynamic executable");
    said(stdout) || said(stderr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_goes_to_the_binary_crate_only() {
        assert_eq!(
            args(DRIVER, true).join(" "),
            "auditable rustc --release --locked -p cmcsi-driver --bin cert-manager-csi-driver \
             -- -C target-feature=+crt-static -C link-arg=-Wl,-z,pack-relative-relocs"
        );
        assert_eq!(
            args(SIGNER, false).join(" "),
            "rustc --release --locked -p cmcsi-pod-signer --bin cert-manager-pod-signer \
             -- -C target-feature=+crt-static -C link-arg=-Wl,-z,pack-relative-relocs"
        );
    }

    #[test]
    fn readelf_output_tells_packed_relocations() {
        let pie =
            "  Type:                              DYN (Position-Independent Executable file)\n";
        let relr = "  [ 7] .relr.dyn         RELR            0000000000000628 000628 001ac0 08   A  0   0  8\n";
        let rela = "  [ 6] .rela.dyn         RELA            0000000000000328 000328 090f30 18   A  3   0  8\n";
        assert!(packed_or_not_pie(&format!("{pie}{rela}{relr}")));
        assert!(!packed_or_not_pie(&format!("{pie}{rela}")));
        let exec = "  Type:                              EXEC (Executable file)\n";
        assert!(packed_or_not_pie(&format!("{exec}{rela}")));
        // This test executable is a PIE linked without packed relocations.
        let exe = std::env::current_exe().unwrap();
        let err = check_packed_relocations(&exe).unwrap_err().to_string();
        assert!(err.contains("no .relr.dyn"), "{err}");
    }

    #[test]
    fn ldd_output_tells_static_from_dynamic() {
        assert!(is_static("\tstatically linked\n", ""));
        assert!(is_static("", "\tnot a dynamic executable\n"));
        assert!(!is_static(
            "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0e1c1bf000)\n",
            ""
        ));
        // This test executable is linked dynamically.
        let exe = std::env::current_exe().unwrap();
        let err = check_static(&exe).unwrap_err().to_string();
        assert!(err.contains("is not statically linked"), "{err}");
    }
}
