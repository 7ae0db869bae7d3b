//! `examples/request_certificate.rs`, run against the fake API server: the
//! program a Rust developer would copy gets a certificate for its own key,
//! writes it, and deletes its request; a denied request is an error that
//! says so.
#![allow(clippy::unwrap_used)]

#[path = "../examples/request_certificate.rs"]
#[allow(dead_code)]
mod example;

use cmcsi_keygen::{ChainSummary, KeySpec, PrivateKey};
use cmcsi_testkit::{DEFAULT_TOKEN, FakeApi, Script};

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn the_example_gets_a_certificate_and_cleans_up() {
    let api = FakeApi::builder()
        .issuer("ca-issuer", Script::Sign)
        .issuer("no", Script::deny())
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig, DEFAULT_TOKEN).unwrap();
    let out = dir.path().join("tls");
    let kubeconfig = kubeconfig.to_str().unwrap();
    let out_str = out.to_str().unwrap();
    let options = example::Options::parse(args(&[
        "--kubeconfig",
        kubeconfig,
        "--namespace",
        "team-a",
        "--issuer",
        "ca-issuer",
        "--dns-name",
        "app.team-a.svc",
        "--pod-name",
        "app-0",
        "--pod-uid",
        "0b7e7a38-0000-4000-8000-000000000001",
        "--out",
        out_str,
    ]))
    .unwrap();

    let written = example::run(&options).await.unwrap();

    // The files are a key and the chain issued for it, from the API's CA.
    let key_pem = std::fs::read_to_string(out.join("tls.key")).unwrap();
    let key = PrivateKey::from_pem(&key_pem, &KeySpec::EcdsaP256).unwrap();
    let chain = std::fs::read(out.join("tls.crt")).unwrap();
    let summary = ChainSummary::from_pem(&chain).unwrap();
    assert!(summary.leaf_matches_key(&key));
    assert_eq!(summary.dns_names, ["app.team-a.svc"]);
    assert_eq!(summary.serial_hex, written.serial_hex);
    assert_eq!(
        std::fs::read_to_string(out.join("ca.crt")).unwrap(),
        api.ca_pem()
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out.join("tls.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the key is readable by others");
    }
    // The request was created where asked, then deleted.
    assert!(
        api.request("team-a", &written.request).is_none(),
        "request {} was left behind",
        written.request
    );

    // A denied request: an error naming the denial, nothing written.
    let denied_out = dir.path().join("denied");
    let mut denied = options.clone();
    denied.issuer = "no".into();
    denied.out = denied_out.clone();
    let e = example::run(&denied).await.unwrap_err().to_string();
    assert!(e.to_lowercase().contains("denied"), "{e}");
    assert!(!denied_out.exists());
}

#[test]
fn the_example_names_a_missing_flag() {
    let e = example::Options::parse(args(&["--namespace", "ns", "--issuer", "ca"])).unwrap_err();
    assert_eq!(e, "--dns-name is required");
    let e = example::Options::parse(args(&["--namespace"])).unwrap_err();
    assert_eq!(e, "--namespace needs a value");
    let mut full = args(&[
        "--namespace",
        "n",
        "--issuer",
        "i",
        "--dns-name",
        "d",
        "--pod-name",
        "p",
        "--pod-uid",
        "u",
        "--out",
        "o",
    ]);
    assert_eq!(
        example::Options::parse(full.clone()).unwrap().issuer_kind,
        "Issuer"
    );
    full.extend(args(&["--bogus", "x"]));
    assert_eq!(
        example::Options::parse(full).unwrap_err(),
        "unknown flag --bogus"
    );
}
