//! The trust-bundle part of `cargo xtask demo`: a CA rotation that mTLS survives. A
//! ClusterTrustBundle holds the issuer's CA; Pod A's volume names it; the issuer's CA
//! rotates and the bundle is updated to old + new; the driver rewrites A's CA file
//! without reissuing; Pod B is issued by the new CA; each Pod verifies the other's
//! leaf with its own CA file (OpenSSL). The same scenario as the driver's `trust` e2e
//! test, told step by step.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use cmcsi_keygen::{ChainSummary, TrustBundle};
use cmcsi_proto::v1::node_client::NodeClient;
use cmcsi_testkit::FakeApi;
use cmcsi_testkit::kubelet::{Pod, prepare_target, publish_request};
use tonic::transport::Channel;

use super::volume_id;

const NAMESPACE: &str = "payments";
const BUNDLE: &str = "payments-ca-bundle";
/// How long the driver may take to bring a source change to a volume (the bound).
const REFRESH_BOUND: Duration = Duration::from_secs(10);

/// The bundle the driver writes for these PEM sources: deduplicated, in its stable order.
fn bundle_of(sources: &[&str]) -> Result<String> {
    let mut b = TrustBundle::new(1 << 20);
    for (i, s) in sources.iter().enumerate() {
        b.add_source(&format!("CA {}", i + 1), s.as_bytes())?;
    }
    Ok(b.to_pem())
}

/// `openssl verify -CAfile ca crt`: `Ok` when it verifies, else OpenSSL's words.
fn openssl_verify(ca: &Path, crt: &Path) -> Result<Result<(), String>> {
    let out = std::process::Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(ca)
        .arg(crt)
        .output()
        .context("running openssl (needed to show the verification)")?;
    if out.status.success() {
        return Ok(Ok(()));
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let reason = text
        .lines()
        .find(|l| l.contains("error"))
        .unwrap_or(text.trim())
        .trim()
        .to_owned();
    Ok(Err(reason))
}

fn certificates(pem: &[u8]) -> usize {
    String::from_utf8_lossy(pem)
        .matches("-----BEGIN CERTIFICATE-----")
        .count()
}

/// Runs the story; returns the volumes it published (volume id, target), still
/// published, for the demo's clean-up.
pub(super) async fn run(
    api: &FakeApi,
    node: &mut NodeClient<Channel>,
    pods_dir: &Path,
) -> Result<Vec<(String, PathBuf)>> {
    let t_story = Instant::now();
    println!(
        "\n== Trust across a CA rotation (namespace {NAMESPACE}), the volume attribute:\n     \
         csi.cert-manager.io/cluster-trust-bundle-name: {BUNDLE}"
    );
    let ca1 = api.issuer_ca_pem("ca-issuer");
    let no_labels = BTreeMap::new();
    api.put_cluster_trust_bundle(BUNDLE, None, &no_labels, &ca1)
        .map_err(|e| anyhow!("publishing ClusterTrustBundle {BUNDLE}: {e}"))?;
    println!("    ClusterTrustBundle {BUNDLE} holds the issuer's CA (CA 1)");

    let attrs = [
        ("csi.cert-manager.io/issuer-name", "ca-issuer"),
        ("csi.cert-manager.io/dns-names", "${POD_NAME}.payments.svc"),
        ("csi.cert-manager.io/cluster-trust-bundle-name", BUNDLE),
    ];
    let mut publish = async |name: &str| -> Result<(String, PathBuf)> {
        let pod = Pod::new(NAMESPACE, name);
        let vol = volume_id(&pod);
        let target = pods_dir
            .join(&pod.uid)
            .join("volumes/kubernetes.io~csi/tls/mount");
        prepare_target(&target)?;
        node.node_publish_volume(publish_request(&vol, &target, pod.context(&attrs)))
            .await
            .with_context(|| format!("publishing the volume of {name}"))?;
        Ok((vol, target))
    };
    // Each CA alone in a file, to show (with OpenSSL) which one signed a leaf.
    let cas = tempfile::tempdir()?;
    let ca_file = |n: usize| cas.path().join(format!("ca-{n}.pem"));
    let ca1_file = ca_file(1);
    std::fs::write(&ca1_file, &ca1)?;
    let signed_by = |target: &Path| -> Result<String> {
        let crt = target.join("crt.pem");
        let serial = ChainSummary::from_pem(&std::fs::read(&crt)?)?.serial_hex;
        let by: Vec<String> = (1..=2)
            .filter(|n| ca_file(*n).exists())
            .filter(|n| matches!(openssl_verify(&ca_file(*n), &crt), Ok(Ok(()))))
            .map(|n| format!("CA {n}"))
            .collect();
        Ok(format!(
            "leaf serial {serial} verifies against {}",
            if by.is_empty() {
                "no single CA".to_owned()
            } else {
                by.join(", ")
            }
        ))
    };

    let a = publish("pod-a").await?;
    let a_ca = std::fs::read(a.1.join("ca.pem"))?;
    println!(
        "-- Pod pod-a: {} alone; its ca.pem holds {} certificate",
        signed_by(&a.1)?,
        certificates(&a_ca)
    );

    let (crt, key) = (
        std::fs::read(a.1.join("crt.pem"))?,
        std::fs::read(a.1.join("key.pem"))?,
    );
    let requests = api.requests(NAMESPACE).len();
    let ca2 = api.rotate_issuer_ca("ca-issuer")?;
    std::fs::write(ca_file(2), &ca2)?;
    api.put_cluster_trust_bundle(BUNDLE, None, &no_labels, &format!("{ca1}{ca2}"))
        .map_err(|e| anyhow!("updating ClusterTrustBundle {BUNDLE}: {e}"))?;
    println!("    the issuer's CA rotates to CA 2; {BUNDLE} now holds CA 1 + CA 2");
    let both = bundle_of(&[&ca1, &ca2])?;
    let t0 = Instant::now();
    while std::fs::read(a.1.join("ca.pem"))? != both.as_bytes() {
        if t0.elapsed() > REFRESH_BOUND {
            bail!(
                "pod-a's ca.pem did not follow {BUNDLE} within {} s",
                REFRESH_BOUND.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let unchanged =
        std::fs::read(a.1.join("crt.pem"))? == crt && std::fs::read(a.1.join("key.pem"))? == key;
    let new_requests = api.requests(NAMESPACE).len() - requests;
    println!(
        "    pod-a's ca.pem holds both after {:.1} s; key and certificate {}, {} new CertificateRequest",
        t0.elapsed().as_secs_f64(),
        if unchanged { "unchanged" } else { "CHANGED" },
        new_requests
    );
    if !unchanged || new_requests != 0 {
        bail!("a trust refresh must not reissue pod-a");
    }

    let b = publish("pod-b").await?;
    println!(
        "-- Pod pod-b: {} alone; its ca.pem holds {} certificates",
        signed_by(&b.1)?,
        certificates(&std::fs::read(b.1.join("ca.pem"))?)
    );
    for (from, ca, to, crt) in [
        ("pod-a", &a.1, "pod-b", &b.1),
        ("pod-b", &b.1, "pod-a", &a.1),
    ] {
        let result = openssl_verify(&ca.join("ca.pem"), &crt.join("crt.pem"))?;
        println!(
            "    openssl verify -CAfile <{from}'s ca.pem> <{to}'s crt.pem>: {}",
            match &result {
                Ok(()) => "OK".to_owned(),
                Err(e) => format!("FAILED ({e})"),
            }
        );
        result.map_err(|e| anyhow!("{from} does not trust {to}: {e}"))?;
    }
    // Why the bundle: the issuer's CA alone (what `ca.pem` held before trust bundles) would
    // not let a Pod issued after the rotation trust one issued before it.
    match openssl_verify(&ca_file(2), &a.1.join("crt.pem"))? {
        Ok(()) => bail!("CA 2 alone verified pod-a's leaf, which CA 1 signed"),
        Err(e) => println!("    without the bundle (CA 2 alone), pod-a's leaf: FAILED ({e})"),
    }
    println!(
        "    (the rotation story took {:.1} s)",
        t_story.elapsed().as_secs_f64()
    );
    Ok(vec![a, b])
}
