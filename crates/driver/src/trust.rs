//! Trust bundles in volumes: which CA file an issuance writes when the volume names a
//! trust bundle source (`cluster-trust-bundle-*`, `trust-bundle-configmap`), and the
//! refresh that rewrites a volume's files, key and certificate unchanged, when a source
//! changes.
//!
//! The driver's side (the watch's notifications through the renewer's wake, and the
//! refresh itself) is in `trust_refresh`.

use cmcsi_attrs::{CertificateSpec, TrustBundle};
use cmcsi_issuer_client::{TrustError, TrustWatch};
use cmcsi_keygen::{self as keygen, ChainSummary, PrivateKey};
use cmcsi_store::FileSet;

use crate::error::DriverError;

/// The trust watch and the bound on one bundle, as an issuance needs them.
#[derive(Clone, Copy)]
pub(crate) struct TrustCtx<'a> {
    pub(crate) watch: &'a TrustWatch,
    pub(crate) max_bytes: usize,
    pub(crate) metrics: &'a crate::metrics::Metrics,
    pub(crate) events: &'a crate::events::Events,
}

/// The CA file of an issuance of `volume_id` whose spec names the trust bundle `tb`:
/// `Some(bundle)`, or `None` for the issuer's CA (an optional source that does not exist
/// yet). `current` is the volume's CA file now, if it has a file set: a source that
/// disappears or turns bad leaves it in place (logged), instead of failing the renewal.
pub(crate) async fn resolve(
    ctx: TrustCtx<'_>,
    volume_id: &str,
    spec: &CertificateSpec,
    tb: &TrustBundle,
    current: Option<Vec<u8>>,
) -> Result<Option<Vec<u8>>, DriverError> {
    let namespace = spec.pod.namespace.as_deref().unwrap_or_default();
    let pod = crate::events::pod_of(spec);
    let outcome = async {
        ctx.watch.register(volume_id, namespace, &tb.source).await?;
        ctx.metrics.trust_sources(&ctx.watch.volumes_per_source());
        let sources = ctx.watch.resolve(namespace, &tb.source).await?;
        let max = ctx.max_bytes;
        // Parsing up to a megabyte of certificates is CPU work: off the async workers.
        crate::blocking::run((), "trust bundle", move || {
            let mut bundle = keygen::TrustBundle::new(max);
            for (name, pem) in &sources {
                bundle.add_source(name, pem.as_bytes())?;
            }
            Ok::<_, keygen::Error>(bundle.to_pem().into_bytes())
        })
        .await?
        .map_err(|e| DriverError::TrustBundle(e.to_string()))
    }
    .await;
    match outcome {
        Ok(pem) => Ok(Some(pem)),
        Err(e) => {
            let missing = matches!(
                e,
                DriverError::Trust(TrustError::Missing { .. } | TrustError::NotLabelled { .. })
            );
            if let Some(current) = current
                && !matches!(e, DriverError::Trust(TrustError::ConfigMapsDisabled))
            {
                let (kind, source) = TrustWatch::source_labels(namespace, &tb.source);
                ctx.metrics.trust_missing(kind, &source);
                ctx.events
                    .trust_bundle_missing(volume_id, pod, &e.to_string());
                tracing::warn!(
                    volume = volume_id,
                    source = %tb.source,
                    error = %e,
                    "TrustBundleMissing: keeping the volume's last good trust bundle"
                );
                return Ok(Some(current));
            }
            if missing && tb.optional {
                tracing::info!(
                    volume = volume_id,
                    source = %tb.source,
                    "optional trust bundle source missing; writing the issuer's CA until it appears"
                );
                return Ok(None);
            }
            Err(e)
        }
    }
}

/// The files of a volume with `ca` as its CA file, from its current key and chain:
/// the same names and keystores as an issuance writes (`pipeline::file_set`).
pub(crate) fn refreshed_files(
    spec: &CertificateSpec,
    key_pem: &[u8],
    chain_pem: &[u8],
    ca: &[u8],
) -> Result<FileSet, DriverError> {
    let key_text = std::str::from_utf8(key_pem).map_err(|_| {
        DriverError::TrustBundle(
            "the volume's key file is not PEM; it is issued again at its next renewal".into(),
        )
    })?;
    let key = PrivateKey::from_pem_any(key_text)?;
    let summary = ChainSummary::from_pem(chain_pem)?;
    let mut files = FileSet::new();
    files.insert(spec.files.private_key.clone(), key_pem.to_vec());
    files.insert(spec.files.certificate.clone(), chain_pem.to_vec());
    files.insert(spec.files.ca.clone(), ca.to_vec());
    crate::keystores::add_files(&mut files, spec, &key, &summary, chain_pem, ca)?;
    Ok(files)
}
