//! The keystore formats of an issuance (PKCS#12 and its truststore, JKS and its
//! truststore, the credential bundle) and the keystore passwords that come from
//! the volume's `nodePublishSecretRef` Secret.
//!
//! The kubelet sends the Secret's data (`NodePublishVolumeRequest.secrets`)
//! only with a publish. The passwords a volume's attributes name are kept in
//! the store's private secrets file (0600, outside `data/` and outside
//! `metadata.json`; see `volume::secrets_of`), so renewals, after a driver
//! restart too, open the same Secret-backed passwords (`volume::parse_stored`).
//! Nothing here logs a password or puts one in an error.

use cmcsi_attrs::CertificateSpec;
use cmcsi_keygen::{self as keygen, ChainSummary, PrivateKey};
use cmcsi_store::FileSet;

use crate::convert;
use crate::error::DriverError;

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
    use cmcsi_store::Metadata;

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
