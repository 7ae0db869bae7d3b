//! Get a certificate from cert-manager: make a key and a CSR, create one
//! CertificateRequest, wait for its outcome, write the key and the chain to
//! a directory, and delete the request.
//!
//! ```text
//! cargo run -p cmcsi-issuer-client --example request_certificate -- \
//!     --namespace default --issuer ca-issuer --issuer-kind ClusterIssuer \
//!     --dns-name app.default.svc --pod-name app-0 --pod-uid "$(kubectl get pod app-0 -o jsonpath='{.metadata.uid}')" \
//!     --out ./tls
//! ```
//!
//! `--kubeconfig PATH` picks a kubeconfig; without it `KUBECONFIG`, then
//! `~/.kube/config`, then the in-cluster service account are tried. The
//! request is owned by the Pod named with `--pod-name`/`--pod-uid` (the
//! client requires an owner, so Kubernetes deletes forgotten requests with
//! their Pod): name a Pod that exists, or the garbage collector deletes the
//! request before it is issued. Your own program picks the Kubernetes API
//! version through `k8s-openapi`'s feature (this crate's dev-dependency picks
//! `v1_33` for the example).
//!
//! The crate's tests run this program's [`run`] against a fake API server.

use std::collections::BTreeMap;
use std::error::Error;
use std::path::PathBuf;
use std::time::Duration;

use cmcsi_issuer_client::{IssuerClient, IssuerRef, NewRequest, PodRef, client_from_config};
use cmcsi_keygen::{ChainSummary, CsrParams, KeyEncoding, KeySpec, PrivateKey, Subject, build_csr};

/// The command line.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--kubeconfig`: the kubeconfig to use; `None` infers one.
    pub kubeconfig: Option<PathBuf>,
    /// `--namespace`: where the request (and the Pod) are.
    pub namespace: String,
    /// `--issuer`: the issuer's name.
    pub issuer: String,
    /// `--issuer-kind`: `Issuer` (default) or `ClusterIssuer`.
    pub issuer_kind: String,
    /// `--dns-name`: the certificate's DNS name and common name.
    pub dns_name: String,
    /// `--pod-name`, `--pod-uid`: the Pod that owns the request.
    pub pod: PodRef,
    /// `--out`: the directory for `tls.key`, `tls.crt` and `ca.crt`.
    pub out: PathBuf,
}

impl Options {
    /// Parses `--flag value` pairs; every flag but `--kubeconfig` and
    /// `--issuer-kind` is required.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
        let mut flags = BTreeMap::new();
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
            flags.insert(flag, value);
        }
        let mut take = |name: &str| flags.remove(name);
        let mut required = |name: &str| take(name).ok_or_else(|| format!("{name} is required"));
        let options = Options {
            namespace: required("--namespace")?,
            issuer: required("--issuer")?,
            dns_name: required("--dns-name")?,
            pod: PodRef {
                name: required("--pod-name")?,
                uid: required("--pod-uid")?,
            },
            out: required("--out")?.into(),
            kubeconfig: take("--kubeconfig").map(PathBuf::from),
            issuer_kind: take("--issuer-kind").unwrap_or_else(|| "Issuer".to_owned()),
        };
        if let Some(unknown) = flags.keys().next() {
            return Err(format!("unknown flag {unknown}"));
        }
        Ok(options)
    }
}

/// What [`run`] wrote.
#[derive(Debug)]
pub struct Written {
    /// The request's name.
    pub request: String,
    /// The leaf's serial number, hex.
    pub serial_hex: String,
    /// The directory holding `tls.key`, `tls.crt` and `ca.crt`.
    pub out: PathBuf,
}

/// The whole program, given its options.
pub async fn run(options: &Options) -> Result<Written, Box<dyn Error>> {
    // The key and the CSR (cmcsi-keygen). ECDSA P-256 is quick to generate.
    let key = PrivateKey::generate(&KeySpec::EcdsaP256)?;
    let csr_pem = build_csr(
        &key,
        &CsrParams {
            subject: Subject::common_name(options.dns_name.clone()),
            dns_names: vec![options.dns_name.clone()],
            ip_addresses: vec![],
            uris: vec![],
        },
    )?;

    // One connection (rate-limited: 0 qps / 0 burst take the defaults) and
    // the watch that sees the request's outcome.
    let connection = client_from_config(options.kubeconfig.clone(), 0.0, 0).await?;
    let issuer = IssuerClient::new(connection, "request-certificate-example");
    issuer.wait_synced(Duration::from_secs(30)).await?;

    // Requests are grouped by volume id; a tool without volumes uses one id
    // per certificate it keeps.
    let volume_id = format!("example-{}", options.dns_name);
    let submitted = issuer
        .submit(
            NewRequest {
                namespace: options.namespace.clone(),
                csr_pem: csr_pem.into_bytes(),
                issuer_ref: IssuerRef {
                    name: options.issuer.clone(),
                    kind: Some(options.issuer_kind.clone()),
                    group: Some("cert-manager.io".to_owned()),
                },
                duration: Some(Duration::from_secs(24 * 3600)),
                usages: vec!["digital signature".into(), "server auth".into()],
                volume_id: volume_id.clone(),
                pod: options.pod.clone(),
                ..Default::default()
            },
            None,
        )
        .await?;
    println!(
        "created CertificateRequest {}/{}",
        submitted.namespace, submitted.name
    );

    // Denied, failed or invalid requests come back as errors that say why.
    let issued = issuer
        .await_outcome(&submitted, Duration::from_secs(60))
        .await?;
    let summary = ChainSummary::from_pem(&issued.certificate_pem)?;
    if !summary.leaf_matches_key(&key) {
        return Err("the issued certificate is not for our key".into());
    }

    std::fs::create_dir_all(&options.out)?;
    write_private(
        &options.out.join("tls.key"),
        key.to_pem(KeyEncoding::Pkcs8)?.as_bytes(),
    )?;
    std::fs::write(options.out.join("tls.crt"), &issued.certificate_pem)?;
    std::fs::write(options.out.join("ca.crt"), &issued.ca_pem)?;

    // The certificate is ours; the request has done its job.
    issuer.cleanup(&volume_id, 0).await?;
    Ok(Written {
        request: submitted.name,
        serial_hex: summary.serial_hex,
        out: options.out.clone(),
    })
}

/// Writes a secret file readable by its owner only.
fn write_private(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(data)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("{e}\n(see the comment at the top of examples/request_certificate.rs)");
            return std::process::ExitCode::from(2);
        }
    };
    match run(&options).await {
        Ok(written) => {
            println!(
                "issued serial {} (request {}); wrote tls.key, tls.crt and ca.crt to {}",
                written.serial_hex,
                written.request,
                written.out.display()
            );
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
