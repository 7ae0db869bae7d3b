//! How clients reach the fake API: its HTTPS acceptor and kubeconfigs.

use std::sync::Arc;

use serde_json::Value;

use crate::ca::TestCa;
use crate::types::Error;

/// The HTTPS acceptor: a server certificate for 127.0.0.1 from `ca`, and
/// client certificates from `ca` accepted but not required (tokens work too).
pub(crate) fn tls_acceptor(ca: &TestCa) -> Result<tokio_rustls::TlsAcceptor, Error> {
    use der::{DecodePem, Encode};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let tls = |e: &dyn std::fmt::Display| Error::Tls(e.to_string());
    let (cert_pem, key_der) = ca.issue_tls(
        "cmcsi-testkit API",
        &[std::net::IpAddr::from([127, 0, 0, 1])],
        "server auth",
    )?;
    let leaf = x509_cert::Certificate::from_pem(cert_pem.as_bytes())
        .and_then(|c| c.to_der())
        .map_err(|e| tls(&e))?;
    let ca_der = ca.cert().to_der().map_err(|e| tls(&e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca_der))
        .map_err(|e| tls(&e))?;
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .map_err(|e| tls(&e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(&e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from(leaf)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_der)),
        )
        .map_err(|e| tls(&e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// A kubeconfig for a server URL and bearer token.
pub fn kubeconfig_json(url: &str, token: &str) -> Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "testkit", "cluster": {"server": url}}],
        "users": [{"name": "testkit", "user": {"token": token}}],
        "contexts": [{"name": "testkit", "context": {"cluster": "testkit", "user": "testkit", "namespace": "default"}}],
        "current-context": "testkit",
        "preferences": {},
    })
}
