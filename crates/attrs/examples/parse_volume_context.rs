//! Parse a CSI volume context (the `volumeAttributes` of a Pod's inline
//! volume, plus what the kubelet adds) and print the certificate it asks for.
//!
//! ```text
//! cargo run -p cmcsi-attrs --example parse_volume_context -- \
//!     csi.cert-manager.io/issuer-name=ca-issuer \
//!     csi.cert-manager.io/dns-names='${POD_NAME}.${POD_NAMESPACE}.svc' \
//!     csi.storage.k8s.io/pod.name=web-0 csi.storage.k8s.io/pod.namespace=shop
//! ```
//!
//! Each argument is one `KEY=VALUE` attribute. Every problem is reported at
//! once, each naming the attribute and what it accepts; the exit code is 2
//! then.

use std::collections::BTreeMap;
use std::process::ExitCode;

use cmcsi_attrs::{KeyAlgorithm, Subject, format_go_duration, parse};

fn main() -> ExitCode {
    let mut context = BTreeMap::new();
    for arg in std::env::args().skip(1) {
        let Some((key, value)) = arg.split_once('=') else {
            eprintln!("argument {arg:?} is not KEY=VALUE");
            return ExitCode::from(2);
        };
        context.insert(key.to_owned(), value.to_owned());
    }

    let spec = match parse(&context) {
        Ok(spec) => spec,
        Err(errors) => {
            // AttributeErrors lists every problem, one per line.
            eprintln!(
                "the volume context has {} problem(s):\n{errors}",
                errors.len()
            );
            return ExitCode::from(2);
        }
    };

    let issuer = &spec.issuer;
    println!(
        "issuer:      {} {} ({})",
        issuer.kind, issuer.name, issuer.group
    );
    match &spec.subject {
        Subject::Fields(fields) => println!(
            "common name: {}",
            fields.common_name.as_deref().unwrap_or("(none)")
        ),
        literal => println!("subject:     {literal:?}"),
    }
    println!("dns names:   {:?}", spec.dns_names);
    println!("ip sans:     {:?}", spec.ip_sans);
    println!("uri sans:    {:?}", spec.uri_sans);
    println!("usages:      {:?}", spec.usages);
    let algorithm = match spec.key.algorithm {
        KeyAlgorithm::Rsa { bits } => format!("RSA {bits}"),
        KeyAlgorithm::Ecdsa(curve) => format!("ECDSA {curve:?}"),
        KeyAlgorithm::Ed25519 => "Ed25519".to_owned(),
    };
    println!("key:         {algorithm}, {:?} PEM", spec.key.encoding);
    println!("duration:    {}", format_go_duration(spec.duration));
    println!(
        "files:       {} {} {}",
        spec.files.certificate, spec.files.private_key, spec.files.ca
    );
    ExitCode::SUCCESS
}
