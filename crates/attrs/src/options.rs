//! [`ParseOptions`]: defaults and leniency.

use std::net::IpAddr;
use std::time::Duration;

use crate::limits;
use crate::spec::Pkcs12Profile;

/// Defaults for what the volume attributes leave out, and how strictly to
/// treat what the Go driver tolerated.
///
/// [`ParseOptions::original`] (the [`Default`]) follows the original
/// documentation; [`ParseOptions::go_driver`] is for volumes the Go driver
/// wrote, which this driver takes over: its file names and duration, and its
/// tolerance of unknown keys, so a running Pod keeps getting renewals.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParseOptions {
    /// File name of the certificate when `certificate-file` is not set.
    pub certificate_file: String,
    /// File name of the key when `privatekey-file` is not set.
    pub private_key_file: String,
    /// File name of the CA when `ca-file` is not set.
    pub ca_file: String,
    /// Lifetime when `duration` is not set.
    pub duration: Duration,
    /// `true`: unknown `csi.cert-manager.io/*` keys and near misses of them
    /// become warnings instead of errors (the Go driver ignored them).
    pub tolerate_unknown_keys: bool,
    /// `true`: at least one of `dns-names`, `ip-sans`, `uri-sans` must be set,
    /// as the original documentation says (the Go driver did not check).
    pub require_san: bool,
    /// `true`: a `renew-before` at or past the duration is dropped with a
    /// warning, and the default (a third of the lifetime) applies, as the Go
    /// driver did; `false`: it is an error.
    pub tolerate_long_renew_before: bool,
    /// The PKCS#12 protection when `pkcs12-profile` is not set: `Modern2023` for the
    /// original defaults, `LegacyRC2` (what the Go driver wrote) for its volumes.
    pub pkcs12_profile: Pkcs12Profile,
    /// Most SANs of all kinds together (default [`limits::MAX_SANS_TOTAL`]; never more
    /// than that, whatever is set here).
    pub max_sans: usize,
    /// Most `/`-separated components in one file name (default
    /// [`limits::DEFAULT_MAX_FILE_PATH_DEPTH`]).
    pub max_file_path_depth: usize,
    /// Most bytes in one file name (default [`limits::DEFAULT_MAX_FILE_PATH_BYTES`]).
    pub max_file_path_bytes: usize,
    /// Most bytes in a keystore password, inline or from the volume's Secret
    /// (default [`limits::MAX_PASSWORD_BYTES`]; never more than that, whatever
    /// is set here).
    pub max_password_bytes: usize,
    /// The Pod's IP addresses (API order, the primary first), for `${POD_IP}`
    /// and `${POD_IPS}`; `None` (the default) while unknown, when those
    /// variables are errors.
    pub pod_ips: Option<Vec<IpAddr>>,
    /// `true`: pass-through annotation keys of cert-manager's own
    /// (`cert-manager.io/...` and `*.cert-manager.io/...`, which cert-manager
    /// and its issuers act on, e.g. `venafi.cert-manager.io/pickup-id`) are
    /// accepted; `false` (the default): they are errors.
    pub allow_cert_manager_annotations: bool,
}

impl ParseOptions {
    /// The original documentation's defaults: `crt.pem`, `key.pem`, `ca.pem`,
    /// `720h`; unknown keys are errors; a SAN is required.
    pub fn original() -> Self {
        ParseOptions {
            certificate_file: "crt.pem".to_owned(),
            private_key_file: "key.pem".to_owned(),
            ca_file: "ca.pem".to_owned(),
            duration: Duration::from_secs(720 * 3600),
            tolerate_unknown_keys: false,
            require_san: true,
            tolerate_long_renew_before: false,
            pkcs12_profile: Pkcs12Profile::Modern2023,
            max_sans: limits::MAX_SANS_TOTAL,
            max_file_path_depth: limits::DEFAULT_MAX_FILE_PATH_DEPTH,
            max_file_path_bytes: limits::DEFAULT_MAX_FILE_PATH_BYTES,
            max_password_bytes: limits::MAX_PASSWORD_BYTES,
            pod_ips: None,
            allow_cert_manager_annotations: false,
        }
    }

    /// The Go driver's defaults, for volumes it wrote: `tls.crt`, `tls.key`,
    /// `ca.crt`, `2160h`; unknown keys are warnings; no SAN required; an
    /// over-long `renew-before` falls back to the default; PKCS#12 keystores are
    /// `LegacyRC2`, as the Go driver wrote them.
    pub fn go_driver() -> Self {
        ParseOptions {
            certificate_file: "tls.crt".to_owned(),
            private_key_file: "tls.key".to_owned(),
            ca_file: "ca.crt".to_owned(),
            duration: Duration::from_secs(2160 * 3600),
            tolerate_unknown_keys: true,
            require_san: false,
            tolerate_long_renew_before: true,
            pkcs12_profile: Pkcs12Profile::LegacyRc2,
            max_sans: limits::MAX_SANS_TOTAL,
            max_file_path_depth: limits::DEFAULT_MAX_FILE_PATH_DEPTH,
            max_file_path_bytes: limits::DEFAULT_MAX_FILE_PATH_BYTES,
            max_password_bytes: limits::MAX_PASSWORD_BYTES,
            pod_ips: None,
            allow_cert_manager_annotations: false,
        }
    }
}

impl ParseOptions {
    /// The same options with the Pod's IP addresses for `${POD_IP}` and `${POD_IPS}`.
    #[must_use]
    pub fn with_pod_ips(mut self, ips: Vec<IpAddr>) -> Self {
        self.pod_ips = (!ips.is_empty()).then_some(ips);
        self
    }
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions::original()
    }
}
