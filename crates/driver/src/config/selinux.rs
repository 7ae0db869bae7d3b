//! `--selinux-volume-size`: the file system of a volume mounted with an
//! SELinux `context=`.

use clap::Args;

use super::parse_size_flag;

/// Default of `--selinux-volume-size`: 1 MiB.
pub const DEFAULT_SELINUX_VOLUME_SIZE: u64 = 1024 * 1024;

/// The SELinux flags.
#[derive(Debug, Clone, Args)]
pub struct SelinuxFlags {
    /// When the kubelet asks for an SELinux context (a context= mount flag, with
    /// CSIDriver seLinuxMount: true), the volume's files live on a tmpfs of their
    /// own, mounted with that context, of this size (bytes, or with Ki, Mi, Gi; at
    /// least 1Mi);
    /// its pages count against the container's memory limit like the data
    /// root's tmpfs.
    #[arg(long, default_value = "1Mi", value_parser = parse_size_flag)]
    pub selinux_volume_size: u64,
}
