//! Make a private key, a CSR for it and a PKCS#12 keystore, and write them
//! to a directory:
//!
//! ```text
//! cargo run -p cmcsi-keygen --no-default-features --example key_csr_pkcs12 -- OUT_DIR [DNS_NAME]
//! ```
//!
//! It needs no async runtime (the crate's `pool` feature is off above). In a
//! real program cert-manager signs the CSR; here a self-signed certificate
//! for the same key (made with `x509-cert`) stands in for the issued chain,
//! so the keystore can be built without a cluster. Check the keystore with
//! `openssl pkcs12 -in OUT_DIR/keystore.p12 -passin pass:changeit -info -nokeys`.

use std::error::Error;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use cmcsi_keygen::{
    ChainSummary, CsrParams, KeyEncoding, KeySpec, Pkcs12Profile, PrivateKey, Subject, build_csr,
    pkcs12,
};
use p256::ecdsa::{DerSignature, SigningKey};
use p256::pkcs8::DecodePrivateKey;
use x509_cert::builder::{Builder, CertificateBuilder, profile::cabf::Root};
use x509_cert::der::EncodePem;
use x509_cert::der::pem::LineEnding;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::time::Validity;

/// The keystore password. A real program takes it from a Secret, never
/// from its source.
const PASSWORD: &str = "changeit";

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(
        args.next()
            .ok_or("usage: key_csr_pkcs12 OUT_DIR [DNS_NAME]")?,
    );
    let dns_name = args.next().unwrap_or_else(|| "app.example.com".to_owned());
    std::fs::create_dir_all(&out)?;

    // 1. The key: ECDSA P-256, from the operating system's RNG.
    let spec = KeySpec::EcdsaP256;
    let key = PrivateKey::generate(&spec)?;
    let key_pem = key.to_pem(KeyEncoding::Pkcs8)?; // zeroized when dropped

    // 2. The CSR, as cert-manager expects it (subject, one SAN extension).
    let csr_pem = build_csr(
        &key,
        &CsrParams {
            subject: Subject::common_name(dns_name.clone()),
            dns_names: vec![dns_name.clone()],
            ip_addresses: vec![],
            uris: vec![],
        },
    )?;

    // 3. Stand-in for the issued chain: the key signs its own certificate.
    let chain_pem = self_signed(&key_pem, &dns_name)?;
    let summary = ChainSummary::from_pem(chain_pem.as_bytes())?;
    assert!(summary.leaf_matches_key(&key));

    // 4. The keystore: cert-manager's Modern2023 protection (AES-256-CBC,
    //    PBKDF2-HMAC-SHA256), readable by OpenSSL 3 and Java 17+.
    let p12 = pkcs12(
        &key,
        chain_pem.as_bytes(),
        PASSWORD,
        Pkcs12Profile::Modern2023,
    )?;

    write_private(&out.join("key.pem"), key_pem.as_bytes())?;
    std::fs::write(out.join("csr.pem"), &csr_pem)?;
    std::fs::write(out.join("crt.pem"), &chain_pem)?;
    write_private(&out.join("keystore.p12"), &p12)?;
    println!(
        "wrote key.pem, csr.pem, crt.pem (serial {}) and keystore.p12 ({} bytes) to {}",
        summary.serial_hex,
        p12.len(),
        out.display()
    );
    Ok(())
}

/// A self-signed certificate for the P-256 key in `key_pem`.
fn self_signed(key_pem: &str, dns_name: &str) -> Result<String, Box<dyn Error>> {
    let signer = SigningKey::from_pkcs8_pem(key_pem)?;
    let spki = SubjectPublicKeyInfoOwned::from_key(signer.verifying_key())?;
    // The CA/Browser Forum root profile wants a country and an organisation.
    let subject = Name::from_str(&format!("CN={dns_name},O=Example,C=US"))?;
    let mut serial = [0u8; 16];
    getrandom::fill(&mut serial).map_err(|e| e.to_string())?;
    serial[0] &= 0x7f; // positive
    let builder = CertificateBuilder::new(
        Root::new(false, subject)?,
        SerialNumber::new(&serial)?,
        Validity::from_now(Duration::from_secs(24 * 3600))?,
        spki,
    )?;
    let cert = builder.build::<_, DerSignature>(&signer)?;
    Ok(cert.to_pem(LineEnding::LF)?)
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
