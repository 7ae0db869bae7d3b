//! The keystore formats of an issuance (PKCS#12 and its truststore, JKS and its
//! truststore, the credential bundle) and the keystore passwords that come from
//! the volume's `nodePublishSecretRef` Secret.
//!
//! The kubelet sends the Secret's data (`NodePublishVolumeRequest.secrets`)
//! only with a publish. The passwords a volume's attributes name are kept in
//! the store's private secrets file (0600, outside `data/` and outside
//! `metadata.json`), so renewals, after a driver restart too, open the same
//! Secret-backed passwords. Nothing here logs a password or puts one in an
//! error.

use cmcsi_attrs::{CertificateSpec, ParseOptions, Parsed};
use cmcsi_keygen::{self as keygen, ChainSummary, PrivateKey};
use cmcsi_store::{FileSet, Metadata, Store, VolumeSecrets};

use crate::convert;
use crate::driver::Driver;
use crate::error::DriverError;
use crate::node::PublishRequest;
use crate::pipeline::options_of;

/// The spec of a stored volume, its Secret-backed passwords read from the
/// store's secrets file. Blocking: call it on the blocking pool.
pub fn stored_spec(store: &Store, meta: &Metadata) -> Result<CertificateSpec, DriverError> {
    stored_spec_ips(store, meta, None)
}

/// [`stored_spec`] with the Pod's IP addresses for `${POD_IP}` (`None`:
/// stand-in addresses, for a spec that is only looked at, never issued).
pub fn stored_spec_ips(
    store: &Store,
    meta: &Metadata,
    pod_ips: Option<Vec<std::net::IpAddr>>,
) -> Result<CertificateSpec, DriverError> {
    let secrets = store.read_secrets(&meta.volume_id)?;
    let options = with_ips(options_of(meta), &meta.volume_context, pod_ips);
    Ok(cmcsi_attrs::parse_with_secrets(&meta.volume_context, secrets.iter(), &options)?.spec)
}

/// `options` with the Pod's IPs, or for a volume that uses `${POD_IP}`, the
/// stand-in addresses (validation only).
pub(crate) fn with_ips(
    options: ParseOptions,
    context: &std::collections::BTreeMap<String, String>,
    pod_ips: Option<Vec<std::net::IpAddr>>,
) -> ParseOptions {
    match pod_ips {
        Some(ips) => options.with_pod_ips(ips),
        None if cmcsi_attrs::uses_pod_ip(context) => {
            options.with_pod_ips(crate::gates::VALIDATION_IPS.to_vec())
        }
        None => options,
    }
}

/// The spec of a stored volume given the Secret data to resolve passwords with.
pub fn spec_with<'a>(
    meta: &Metadata,
    secrets: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<CertificateSpec, DriverError> {
    Ok(parsed_with(meta, secrets)?.spec)
}

fn parsed_with<'a>(
    meta: &Metadata,
    secrets: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Parsed, DriverError> {
    Ok(cmcsi_attrs::parse_with_secrets(
        &meta.volume_context,
        secrets,
        &with_ips(options_of(meta), &meta.volume_context, None),
    )?)
}

/// The passwords `spec` took from the volume's Secret (only those; none when
/// it took none), for the store's private secrets file.
pub fn secrets_of(spec: &CertificateSpec) -> VolumeSecrets {
    spec.files
        .secret_passwords()
        .into_iter()
        .map(|(key, password)| (key, password.expose()))
        .collect()
}

/// The parse options of a new volume: the original defaults with the node's
/// request limits. (Stored volumes were checked against them when published
/// and are read back with the library's defaults.)
fn publish_options(mut opts: ParseOptions, limits: &crate::config::RequestLimits) -> ParseOptions {
    opts.max_sans = limits.max_sans;
    opts.max_file_path_depth = limits.max_file_name_depth;
    opts.max_file_path_bytes = limits.max_file_name_bytes;
    opts
}

impl Driver {
    /// The parsed spec for a publish: a new volume's context with the
    /// request's Secret data, or an existing volume's stored context with the
    /// request's Secret data (the kubelet sends it with every publish) and
    /// else what the store kept.
    pub(crate) async fn publish_parsed(
        &self,
        req: &PublishRequest,
        existing: Option<&Metadata>,
    ) -> Result<Parsed, DriverError> {
        match existing {
            None => {
                let defaults = if self.config.go_defaults {
                    ParseOptions::go_driver()
                } else {
                    ParseOptions::original()
                };
                Ok(cmcsi_attrs::parse_with_secrets(
                    &req.context,
                    req.secrets.iter(),
                    &with_ips(
                        publish_options(defaults, &self.config.request_limits),
                        &req.context,
                        None,
                    ),
                )?)
            }
            Some(meta) if !req.secrets.is_empty() => parsed_with(meta, req.secrets.iter()),
            Some(meta) => {
                let id = meta.volume_id.clone();
                let stored = self.on_store(move |s| s.read_secrets(&id)).await?;
                parsed_with(meta, stored.iter())
            }
        }
    }

    /// [`stored_spec`] on the blocking pool.
    pub(crate) async fn stored_spec(&self, meta: Metadata) -> Result<CertificateSpec, DriverError> {
        self.on_store(move |s| stored_spec(s, &meta)).await
    }
}

/// Adds the keystores, truststores and bundle `spec` asks for to the issuance's
/// file set, so they are swapped in with the key and the certificate. The
/// truststores are written only when the issuer returned a CA. JKS entries are
/// dated by the leaf's `notBefore`.
pub fn add_files(
    files: &mut FileSet,
    spec: &CertificateSpec,
    key: &PrivateKey,
    summary: &ChainSummary,
    chain_pem: &[u8],
    ca_pem: &[u8],
) -> Result<(), DriverError> {
    let has_ca = !ca_pem.iter().all(u8::is_ascii_whitespace);
    if let Some(p12) = &spec.files.pkcs12 {
        let profile = convert::pkcs12_profile(p12.profile);
        let der = keygen::pkcs12(key, chain_pem, p12.password.expose(), profile)?;
        files.insert(p12.filename.clone(), der);
        if let Some(name) = &p12.truststore_filename
            && has_ca
        {
            let der = keygen::pkcs12_truststore(ca_pem, p12.password.expose(), profile)?;
            files.insert(name.clone(), der);
        }
    }
    if let Some(jks) = &spec.files.jks {
        let created = summary.not_before;
        let store = keygen::jks(
            key,
            chain_pem,
            ca_pem,
            &jks.alias,
            jks.password.expose(),
            created,
        )?;
        files.insert(jks.filename.clone(), store);
        if has_ca {
            let trust = keygen::jks_truststore(ca_pem, jks.password.expose(), created)?;
            files.insert(jks.truststore_filename.clone(), trust);
        }
    }
    if let Some(name) = &spec.files.credential_bundle {
        let bundle = keygen::credential_bundle(key, chain_pem)?;
        files.insert(name.clone(), bundle.as_bytes().to_vec());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The store (which does not depend on attrs) redacts every context value
    /// in `Debug`; every secret-valued attribute must stay hidden there.
    #[test]
    fn the_store_redacts_every_secret_valued_attribute() {
        let mut meta = Metadata::new("v", "/t");
        for (i, key) in cmcsi_attrs::keys::SECRET_KEYS.iter().enumerate() {
            meta.volume_context
                .insert((*key).to_owned(), format!("secret-value-{i}"));
        }
        let shown = format!("{meta:?}");
        assert!(!shown.contains("secret-value-"), "{shown}");
    }
}
