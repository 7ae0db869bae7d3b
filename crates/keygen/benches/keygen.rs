//! Key generation and CSR time per algorithm.
//!
//! Run with `cargo bench -p cmcsi-keygen --bench keygen`. RSA generation time varies a lot
//! from key to key (prime search), so its samples are few and its spread is wide.

#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use cmcsi_keygen::{CsrParams, KeySpec, PrivateKey, Subject, build_csr};
use criterion::{Criterion, criterion_group, criterion_main};

const SPECS: [KeySpec; 6] = [
    KeySpec::Rsa { bits: 2048 },
    KeySpec::Rsa { bits: 4096 },
    KeySpec::EcdsaP256,
    KeySpec::EcdsaP384,
    KeySpec::EcdsaP521,
    KeySpec::Ed25519,
];

fn name(spec: &KeySpec) -> String {
    spec.to_string().replace(' ', "-")
}

fn keygen(c: &mut Criterion) {
    let mut group = c.benchmark_group("keygen");
    for spec in SPECS {
        if spec.is_rsa() {
            group.sample_size(10);
            group.measurement_time(Duration::from_secs(if spec == KeySpec::RSA_2048 {
                10
            } else {
                60
            }));
        } else {
            group.sample_size(50);
            group.measurement_time(Duration::from_secs(3));
        }
        group.bench_function(name(&spec), |b| {
            b.iter(|| PrivateKey::generate(black_box(&spec)).unwrap())
        });
    }
    group.finish();
}

fn csr(c: &mut Criterion) {
    let params = CsrParams {
        subject: Subject::common_name("bench.example"),
        dns_names: vec!["bench.example".into(), "www.bench.example".into()],
        ip_addresses: vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))],
        uris: vec!["spiffe://cluster.local/ns/default/sa/bench".into()],
    };
    let mut group = c.benchmark_group("csr");
    group.sample_size(50);
    group.measurement_time(Duration::from_secs(3));
    for spec in SPECS {
        let key = PrivateKey::generate(&spec).unwrap();
        group.bench_function(name(&spec), |b| {
            b.iter(|| build_csr(black_box(&key), black_box(&params)).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, keygen, csr);
criterion_main!(benches);
