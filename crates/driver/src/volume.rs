//! One volume as an operation sees it: its stored metadata and its parsed
//! spec, loaded once per operation (publish, renewal) and handed down by
//! reference to issuance, keystores, Events and metrics. Everything about
//! how a volume's context is parsed lives here: the parse options of new
//! and stored volumes ([`options_of`], `publish_options`), the Pod's
//! addresses for `${POD_IP}` ([`with_ips`]) and the stand-in addresses used
//! while such a volume is only validated ([`VALIDATION_IPS`]).

use std::collections::BTreeMap;
use std::net::IpAddr;

use cmcsi_attrs::{CertificateSpec, ParseOptions, Parsed};
use cmcsi_store::{Metadata, Store, StoreError, VolumeSecrets};

use crate::config::RequestLimits;
use crate::error::DriverError;

/// Addresses that stand in for the Pod's while a `${POD_IP}` volume is only
/// validated (at publish, before the Pod has an address): documentation
/// addresses (RFC 5737, RFC 3849), never issued.
pub(crate) const VALIDATION_IPS: [IpAddr; 2] = [
    IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1)),
    IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
];

/// A volume: its metadata (as stored) and its spec (parsed from the stored
/// context, with its Secret-backed keystore passwords).
#[derive(Debug, Clone)]
pub(crate) struct Volume {
    /// The volume's `metadata.json`.
    pub(crate) meta: Metadata,
    /// The spec of its context.
    pub(crate) spec: CertificateSpec,
    /// Created by this operation (a first publish): it has no side files
    /// (pending request, current files) yet, so nobody reads them.
    pub(crate) created: bool,
}

impl Volume {
    /// The volume's id.
    pub(crate) fn id(&self) -> &str {
        &self.meta.volume_id
    }

    /// Whether the volume has been issued (its metadata has a next
    /// issuance time).
    pub(crate) fn issued(&self) -> bool {
        self.meta.next_issuance_time.is_some()
    }

    /// The metadata of `volume_id`, `None` when the volume does not exist.
    /// Blocking (store IO).
    pub(crate) fn read_metadata(
        store: &Store,
        volume_id: &str,
    ) -> Result<Option<Metadata>, StoreError> {
        match store.read_metadata(volume_id) {
            Ok(m) => Ok(Some(m)),
            Err(StoreError::VolumeNotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A stored volume's context parsed with its options and `secrets`;
/// `pod_ips` for `${POD_IP}` (`None`: the stand-in addresses, for a spec that
/// is only looked at, never issued).
pub(crate) fn parse_stored<'a>(
    meta: &Metadata,
    secrets: impl IntoIterator<Item = (&'a str, &'a str)>,
    pod_ips: Option<Vec<IpAddr>>,
) -> Result<Parsed, DriverError> {
    let options = with_ips(options_of(meta), &meta.volume_context, pod_ips);
    Ok(cmcsi_attrs::parse_with_secrets(
        &meta.volume_context,
        secrets,
        &options,
    )?)
}

/// A new volume's context parsed with the request's Secret data: the
/// original defaults (the Go driver's with `go_defaults`) held to the node's
/// request limits.
pub(crate) fn parse_new<'a>(
    context: &BTreeMap<String, String>,
    secrets: impl IntoIterator<Item = (&'a str, &'a str)>,
    go_defaults: bool,
    limits: &RequestLimits,
) -> Result<Parsed, DriverError> {
    let defaults = if go_defaults {
        ParseOptions::go_driver()
    } else {
        ParseOptions::original()
    };
    let options = with_ips(publish_options(defaults, limits), context, None);
    Ok(cmcsi_attrs::parse_with_secrets(context, secrets, &options)?)
}

/// The parse options of a stored volume: the Go driver's defaults for
/// volumes it wrote (`tls.crt`, `tls.key`, `ca.crt`, 2160h, `LegacyRC2`),
/// the original documentation's for ours.
pub(crate) fn options_of(meta: &Metadata) -> ParseOptions {
    let mut options = if meta.written_by_go() {
        ParseOptions::go_driver()
    } else {
        ParseOptions::original()
    };
    // Checked against --allow-cert-manager-annotations when published.
    options.allow_cert_manager_annotations = true;
    options
}

/// The parse options of a new volume: the original defaults with the node's
/// request limits. (Stored volumes were checked against them when published
/// and are read back with the library's defaults.)
fn publish_options(mut opts: ParseOptions, limits: &RequestLimits) -> ParseOptions {
    opts.max_sans = limits.max_sans;
    opts.max_file_path_depth = limits.max_file_name_depth;
    opts.max_file_path_bytes = limits.max_file_name_bytes;
    opts.max_password_bytes = limits.max_keystore_password_bytes;
    opts.allow_cert_manager_annotations = limits.allow_cert_manager_annotations;
    opts
}

/// `options` with the Pod's IPs, or for a volume that uses `${POD_IP}`, the
/// stand-in addresses (validation only).
pub(crate) fn with_ips(
    options: ParseOptions,
    context: &BTreeMap<String, String>,
    pod_ips: Option<Vec<IpAddr>>,
) -> ParseOptions {
    match pod_ips {
        Some(ips) => options.with_pod_ips(ips),
        None if cmcsi_attrs::uses_pod_ip(context) => options.with_pod_ips(VALIDATION_IPS.to_vec()),
        None => options,
    }
}

/// The passwords `spec` took from the volume's Secret (only those; none when
/// it took none), for the store's private secrets file.
pub(crate) fn secrets_of(spec: &CertificateSpec) -> VolumeSecrets {
    spec.files
        .secret_passwords()
        .into_iter()
        .map(|(key, password)| (key, password.expose()))
        .collect()
}
