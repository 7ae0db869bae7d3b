//! # cmcsi-pod-signer: Kubernetes Pod certificates from cert-manager issuers
//!
//! What it is: a signer for Kubernetes `PodCertificateRequest`s
//! (`certificates.k8s.io/v1` since 1.37, `v1beta1` in 1.35–1.36, discovered
//! at start). The kubelet makes a Pod's key and asks for a certificate with a
//! stub PKCS#10 CSR; for the signer names
//! `clusterissuers.cert-manager.io/<name>` and
//! `issuers.cert-manager.io/<namespace>.<name>` (cert-manager's convention for
//! CertificateSigningRequests) this crate checks the CSR ([`csr::check`]:
//! size, signature, key type), creates **one** cert-manager
//! `CertificateRequest` named after the request's uid
//! ([`signer::certificate_request_name`], so restarts and a failover await
//! the same one), awaits it on one watch (`cmcsi-issuer-client`), checks the
//! chain (`cmcsi-keygen`), publishes the issuer's CA in a
//! `ClusterTrustBundle` ([`trust`]), and writes the request's status:
//! chain, `notBefore`/`notAfter` (the leaf's), `beginRefreshAt` (two thirds
//! into the lifetime, jittered) and the conditions the API defines.
//! Leader election on a `coordination.k8s.io/v1` Lease ([`leader`]) lets
//! several replicas run; only the leader signs.
//!
//! What it is not: it signs nothing itself (the issuer does), it never sees
//! a private key, and it knows nothing of CSI or files.
//!
//! Every tenant is hostile: the watch keeps no cache (each request is
//! reduced to what signing needs and queued per namespace, [`queue`]), the
//! queue and the work in flight are bounded overall and per namespace, CSRs
//! and chains are bounded by the API's limits, and Events never hold up
//! issuance.
//!
//! Where to start: [`config::Cli`] (the binary's flags) →
//! [`config::Config`] → [`run`].
//!
//! ```no_run
//! use clap::Parser;
//! # async fn demo() -> Result<(), cmcsi_pod_signer::SignerError> {
//! let cli = cmcsi_pod_signer::config::Cli::parse_from([
//!     "cert-manager-pod-signer", "--pod-name=signer-0", "--pod-namespace=cert-manager",
//! ]);
//! cmcsi_pod_signer::run(cli.try_into_config()?).await
//! # }
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod config;
pub mod csr;
mod error;
pub mod leader;
pub mod metrics;
pub mod queue;
pub mod signer;
pub mod signer_name;
pub mod trust;
pub mod types;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use error::{CsrError, SignerError};

use crate::leader::{Attempt, LeaderElector};
use crate::metrics::Metrics;

/// Which `certificates.k8s.io` version serves PodCertificateRequests, and
/// whether it serves ClusterTrustBundles too.
async fn discover(client: &kube::Client) -> Result<(String, bool), SignerError> {
    let mut last = String::new();
    for version in ["v1", "v1beta1"] {
        match client
            .list_api_group_resources(&format!("{}/{version}", types::CERTIFICATES_GROUP))
            .await
        {
            Ok(list) => {
                let has = |p: &str| list.resources.iter().any(|r| r.name == p);
                if has("podcertificaterequests") {
                    return Ok((version.to_owned(), has("clustertrustbundles")));
                }
                last = format!(
                    "{}/{version} has no podcertificaterequests",
                    types::CERTIFICATES_GROUP
                );
            }
            Err(e) => last = format!("{}/{version}: {e}", types::CERTIFICATES_GROUP),
        }
    }
    Err(SignerError::NoPodCertificateApi(last))
}

/// Runs the signer until SIGTERM/SIGINT (then it gives up the Lease) or an
/// error (including losing the Lease: the process exits and restarts as a
/// candidate, as client-go's leader election does).
pub async fn run(config: config::Config) -> Result<(), SignerError> {
    let metrics = Arc::new(Metrics::new());
    let listener = tokio::net::TcpListener::bind(config.metrics_bind_address)
        .await
        .map_err(|source| SignerError::Listen {
            address: config.metrics_bind_address.to_string(),
            source,
        })?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(metrics::serve(listener, Arc::clone(&metrics), async move {
        let _ = stop_rx.await;
    }));
    let result = tokio::select! {
        r = run_inner(config, Arc::clone(&metrics)) => r,
        () = shutdown_signal() => Ok(()),
    };
    let _ = stop_tx.send(());
    let _ = server.await;
    result
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
    tracing::info!("shutting down");
}

async fn run_inner(config: config::Config, metrics: Arc<Metrics>) -> Result<(), SignerError> {
    let connection = cmcsi_issuer_client::client_from_config(
        config.kubeconfig.clone(),
        config.qps,
        config.burst,
    )
    .await?;
    let client = connection.client().clone();
    let (version, bundles) = discover(&client).await?;
    tracing::info!(%version, trust_bundles = bundles, "serving PodCertificateRequests");
    if !bundles {
        tracing::warn!(
            "the API serves no ClusterTrustBundles in this version: no trust bundles are published"
        );
    }
    metrics.set_ready(true);
    let mut elector = LeaderElector::new(
        client.clone(),
        &config.lease_namespace,
        &config.lease_name,
        &config.identity,
        config.lease_duration,
        config.retry_period,
    );
    let (ns, name) = (config.lease_namespace.clone(), config.lease_name.clone());
    // Candidate until leader.
    loop {
        match elector.try_acquire_or_renew().await {
            Ok(Attempt::Leader) => break,
            Ok(Attempt::Follower(holder)) => {
                tracing::debug!(%holder, "waiting for the leader Lease")
            }
            Err(e) => tracing::warn!(error = %e, "leader election: API error; retrying"),
        }
        tokio::time::sleep(elector.retry_period()).await;
    }
    tracing::info!(lease = %format!("{ns}/{name}"), identity = %config.identity, "leading: signing PodCertificateRequests");
    metrics.leader.set(1);
    let trust = bundles
        .then(|| trust::TrustPublisher::new(client.clone(), &version, config.trust_bundle_overlap));
    let lease_duration = config.lease_duration;
    let inner = signer::Inner::new(config, connection, version, trust, Arc::clone(&metrics));
    let renew = async {
        let mut last_ok = Instant::now();
        loop {
            tokio::time::sleep(elector.retry_period()).await;
            match elector.try_acquire_or_renew().await {
                Ok(Attempt::Leader) => last_ok = Instant::now(),
                Ok(Attempt::Follower(holder)) => {
                    return SignerError::LostLease {
                        namespace: ns.clone(),
                        name: name.clone(),
                        detail: format!("{holder} holds it now"),
                    };
                }
                Err(e) => {
                    // Stop signing before another replica may take over.
                    if last_ok.elapsed() + elector.retry_period()
                        >= lease_duration.saturating_sub(Duration::from_millis(500))
                    {
                        return SignerError::LostLease {
                            namespace: ns.clone(),
                            name: name.clone(),
                            detail: format!("could not renew it: {e}"),
                        };
                    }
                }
            }
        }
    };
    let result = tokio::select! {
        e = renew => Err(e),
        r = signer::sign(Arc::clone(&inner)) => r,
        () = shutdown_signal() => {
            elector.release().await;
            Ok(())
        }
    };
    metrics.leader.set(0);
    result
}
