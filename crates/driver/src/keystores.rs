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

use std::collections::HashMap;

use cmcsi_attrs::{CertificateSpec, ParseOptions, Pkcs12Profile};
use cmcsi_keygen::{self as keygen, ChainSummary, PrivateKey};
use cmcsi_store::{FileSet, Metadata, Store, VolumeSecrets};

use crate::error::DriverError;

/// The parse options for a stored volume: volumes written by the Go driver keep
/// its defaults (`tls.crt`, `tls.key`, `ca.crt`, 2160h, `LegacyRC2`).
pub fn options_of(meta: &Metadata) -> ParseOptions {
    if meta.written_by_go() {
        ParseOptions::go_driver()
    } else {
        ParseOptions::original()
    }
}

/// The spec of a stored volume, its Secret-backed passwords read from the
/// store's secrets file.
pub fn stored_spec(store: &Store, meta: &Metadata) -> Result<CertificateSpec, DriverError> {
    let secrets = store.read_secrets(&meta.volume_id)?;
    spec_with(meta, secrets.iter())
}

/// The spec of a stored volume given the Secret data to resolve passwords with.
pub fn spec_with<'a>(
    meta: &Metadata,
    secrets: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<CertificateSpec, DriverError> {
    Ok(cmcsi_attrs::parse_with_secrets(&meta.volume_context, secrets, &options_of(meta))?.spec)
}

/// The spec for a publish: a new volume's context with the request's Secret
/// data, or an existing volume's stored context with the request's Secret data
/// (the kubelet sends it with every publish) and else what the store kept.
pub fn publish_spec(
    store: &Store,
    existing: Option<&Metadata>,
    context: &std::collections::BTreeMap<String, String>,
    request_secrets: &HashMap<String, String>,
) -> Result<CertificateSpec, DriverError> {
    let from_request = request_secrets
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()));
    match existing {
        None => {
            Ok(
                cmcsi_attrs::parse_with_secrets(context, from_request, &ParseOptions::original())?
                    .spec,
            )
        }
        Some(meta) if !request_secrets.is_empty() => spec_with(meta, from_request),
        Some(meta) => stored_spec(store, meta),
    }
}

/// Keeps the passwords `spec` took from the volume's Secret (only those, and
/// nothing when there are none) in the store's private secrets file.
pub fn save_secrets(
    store: &Store,
    volume_id: &str,
    spec: &CertificateSpec,
) -> Result<(), DriverError> {
    let secrets: VolumeSecrets = spec
        .files
        .secret_passwords()
        .into_iter()
        .map(|(key, password)| (key, password.expose()))
        .collect();
    Ok(store.write_secrets(volume_id, &secrets)?)
}

/// cert-manager's profile names on both sides.
pub fn pkcs12_profile(profile: Pkcs12Profile) -> keygen::Pkcs12Profile {
    match profile {
        Pkcs12Profile::LegacyRc2 => keygen::Pkcs12Profile::LegacyRc2,
        Pkcs12Profile::LegacyDes => keygen::Pkcs12Profile::LegacyDes,
        Pkcs12Profile::Modern2023 => keygen::Pkcs12Profile::Modern2023,
        // `Pkcs12Profile` is non-exhaustive; attrs accepts nothing else today.
        _ => keygen::Pkcs12Profile::Modern2023,
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
        let profile = pkcs12_profile(p12.profile);
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

    /// The store redacts by its own list of secret keys (it does not depend on
    /// attrs); every secret-valued attribute must be on it.
    #[test]
    fn the_store_redacts_every_secret_valued_attribute() {
        let mut meta = Metadata::new("v", "/t");
        for (i, key) in cmcsi_attrs::keys::SECRET_VALUED.iter().enumerate() {
            meta.volume_context
                .insert((*key).to_owned(), format!("secret-value-{i}"));
        }
        let shown = format!("{meta:?}");
        assert!(!shown.contains("secret-value-"), "{shown}");
    }

    #[test]
    fn profiles_map_by_name() {
        for &p in Pkcs12Profile::ALL {
            assert_eq!(pkcs12_profile(p).as_str(), p.as_str());
        }
    }
}
