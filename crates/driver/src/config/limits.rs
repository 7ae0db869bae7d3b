//! What one publish may ask of the node ([`RequestLimits`]) and the flags
//! that set it (`--max-volume-context-bytes` and friends).

use clap::Args;

/// What one publish may ask of the node. Each limit exceeded is an
/// `INVALID_ARGUMENT` that names its flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLimits {
    /// Most bytes of the volume context, keys and values together.
    pub max_volume_context_bytes: usize,
    /// Most SANs of all kinds together.
    pub max_sans: usize,
    /// Most `/`-separated components in one file name.
    pub max_file_name_depth: usize,
    /// Most bytes in one file name.
    pub max_file_name_bytes: usize,
    /// Most RSA keys above 4096 bits generated at once.
    pub max_concurrent_large_rsa: usize,
    /// Most bytes in a keystore password (inline or from the volume's Secret).
    pub max_keystore_password_bytes: usize,
    /// Accept pass-through annotation keys of cert-manager's own
    /// (`--allow-cert-manager-annotations`).
    pub allow_cert_manager_annotations: bool,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            max_volume_context_bytes: DEFAULT_MAX_VOLUME_CONTEXT_BYTES,
            max_sans: cmcsi_attrs::limits::MAX_SANS_TOTAL,
            max_file_name_depth: cmcsi_attrs::limits::DEFAULT_MAX_FILE_PATH_DEPTH,
            max_file_name_bytes: cmcsi_attrs::limits::DEFAULT_MAX_FILE_PATH_BYTES,
            max_concurrent_large_rsa: 1,
            max_keystore_password_bytes: cmcsi_attrs::limits::MAX_PASSWORD_BYTES,
            allow_cert_manager_annotations: false,
        }
    }
}

/// Default of `--max-volume-context-bytes` (256 KiB).
pub const DEFAULT_MAX_VOLUME_CONTEXT_BYTES: usize = 256 * 1024;

/// The flags of [`RequestLimits`].
#[derive(Debug, Clone, Args)]
pub struct LimitFlags {
    /// Most bytes of one volume's attributes (keys and values together, the
    /// kubelet's included); a larger publish is refused before anything is stored
    /// (at most 512 KiB, so the stored metadata stays readable).
    #[arg(long, default_value_t = DEFAULT_MAX_VOLUME_CONTEXT_BYTES as u32, value_parser = clap::value_parser!(u32).range(4096..=512 * 1024))]
    pub max_volume_context_bytes: u32,

    /// Most SANs (dns-names, ip-sans and uri-sans together) in one volume (at most 256).
    #[arg(long, default_value_t = cmcsi_attrs::limits::MAX_SANS_TOTAL as u32, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub max_sans: u32,

    /// Most `/`-separated components in one file-name attribute (certs/tls.crt has 2).
    #[arg(long, default_value_t = cmcsi_attrs::limits::DEFAULT_MAX_FILE_PATH_DEPTH as u32, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub max_file_name_depth: u32,

    /// Most bytes in one file-name attribute.
    #[arg(long, default_value_t = cmcsi_attrs::limits::DEFAULT_MAX_FILE_PATH_BYTES as u32, value_parser = clap::value_parser!(u32).range(16..=4096))]
    pub max_file_name_bytes: u32,

    /// Most RSA keys above 4096 bits (key-size 8192) generated at once; more wait.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub max_concurrent_large_rsa: u32,

    /// Most bytes in a JKS or PKCS#12 keystore password, inline or from the volume's
    /// Secret (at most 1024: JKS hashes the password once per 20 bytes of key).
    #[arg(long, default_value_t = cmcsi_attrs::limits::MAX_PASSWORD_BYTES as u32, value_parser = clap::value_parser!(u32).range(1..=cmcsi_attrs::limits::MAX_PASSWORD_BYTES as i64))]
    pub max_keystore_password_bytes: u32,
}

impl LimitFlags {
    /// The limits these flags describe.
    pub fn into_limits(self) -> RequestLimits {
        RequestLimits {
            max_volume_context_bytes: self.max_volume_context_bytes as usize,
            max_sans: self.max_sans as usize,
            max_file_name_depth: self.max_file_name_depth as usize,
            max_file_name_bytes: self.max_file_name_bytes as usize,
            max_concurrent_large_rsa: self.max_concurrent_large_rsa as usize,
            max_keystore_password_bytes: self.max_keystore_password_bytes as usize,
            allow_cert_manager_annotations: false,
        }
    }
}
