//! The build's identity: version, git commit and compiler, recorded at
//! compile time (`CMCSI_GIT_COMMIT` overrides the commit, for builds outside
//! a git checkout such as container images).

/// The crate version (`Cargo.toml`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit the driver was built from (12 hex digits), or `unknown`.
pub const COMMIT: &str = env!("CMCSI_BUILD_COMMIT");
/// `rustc --version` of the compiler that built it.
pub const RUSTC: &str = env!("CMCSI_BUILD_RUSTC");
