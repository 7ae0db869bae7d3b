//! Caps that keep a hostile Pod spec from costing the node much: each one
//! exceeded is a clear error, never a truncation.

/// Most bytes in a single-valued attribute (names, durations, file names,
/// subject fields, `literal-subject`).
pub const MAX_VALUE_BYTES: usize = 4096;

/// Most bytes in `dns-names`, `ip-sans` or `uri-sans`, before and after
/// templating.
pub const MAX_LIST_VALUE_BYTES: usize = 64 * 1024;

/// Most SANs of one kind (DNS, IP or URI).
pub const MAX_SANS_PER_KIND: usize = 100;

/// Most SANs of all kinds together: the default of
/// [`ParseOptions::max_sans`](crate::ParseOptions::max_sans).
pub const MAX_SANS_TOTAL: usize = 256;

/// Default of [`ParseOptions::max_file_path_depth`](crate::ParseOptions::max_file_path_depth):
/// most `/`-separated components in one file name (`certs/tls.crt` has 2).
pub const DEFAULT_MAX_FILE_PATH_DEPTH: usize = 8;

/// Default of [`ParseOptions::max_file_path_bytes`](crate::ParseOptions::max_file_path_bytes):
/// most bytes in one file name, all components together.
pub const DEFAULT_MAX_FILE_PATH_BYTES: usize = 1024;

/// Most bytes in one DNS name.
pub const MAX_DNS_NAME_BYTES: usize = 253;

/// Most bytes in one URI SAN.
pub const MAX_URI_BYTES: usize = 2048;

/// Most entries in one subject list attribute (`organizations`, ...), and
/// most attributes in a `literal-subject`.
pub const MAX_SUBJECT_ENTRIES: usize = 32;

/// Most bytes of pass-through annotations, keys and values together
/// (Kubernetes refuses objects whose annotations exceed 256 KiB).
pub const MAX_ANNOTATION_BYTES: usize = 256 * 1024;

/// Most bytes in a keystore password, inline or from the volume's Secret,
/// and the default of [`ParseOptions::max_password_bytes`](crate::ParseOptions::max_password_bytes)
/// (which may only lower it): JKS hashes the password once per 20 bytes of
/// key, so a long password makes each issuance cost far more than the key.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Most errors spelled out in [`AttributeErrors`](crate::AttributeErrors)'s
/// message; the rest are counted. All of them are still iterable.
pub const MAX_ERRORS_SHOWN: usize = 20;

/// Most characters of a bad value quoted in an error message.
pub const MAX_QUOTED_CHARS: usize = 100;
