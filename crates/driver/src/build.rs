//! What this binary was built from: the crate version and, when it was built
//! inside a git checkout, the commit (set by the crate's build script).
//!
//! `cert-manager-csi-driver --version` prints [`VERSION_LINE`]; the image
//! built by `cargo xtask image` takes its labels from that output, so the two
//! cannot disagree.

/// The workspace version, e.g. `0.1.0`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `git describe --tags --always` of the source, e.g. `v0.1.0-3-g1a2b3c4`
/// (or just the short commit id when no tag is reachable); `None` when built
/// outside a git checkout.
pub const GIT_DESCRIBE: Option<&str> = option_env!("CMCSI_GIT_DESCRIBE");

/// The full commit id of the source; `None` when built outside a git checkout.
pub const GIT_COMMIT: Option<&str> = option_env!("CMCSI_GIT_COMMIT");

/// What `--version` prints after the program name: the version, then the git
/// description and commit when known, e.g.
/// `0.1.0 (git v0.1.0-3-g1a2b3c4, commit 1a2b3c4...)` (composed by the build
/// script, since `concat!` cannot take an optional variable).
pub const VERSION_LINE: &str = env!("CMCSI_VERSION_LINE");

/// `rustc --version` of the compiler that built the driver (`unknown` when
/// the build script could not ask it).
pub const RUSTC: &str = env!("CMCSI_RUSTC_VERSION");
