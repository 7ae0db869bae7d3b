//! PodCertificateRequests, ClusterTrustBundles and Leases through the real kube client: the
//! API server's rules the signer depends on.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use base64::Engine as _;
use cmcsi_testkit::{FakeApi, SignParams, TestCa};
use common::*;
use futures::{StreamExt, TryStreamExt};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
    WatchEvent, WatchParams,
};
use serde_json::{Value, json};

fn resource(plural: &str, kind: &str, group: &str, version: &str) -> ApiResource {
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: format!("{group}/{version}"),
        kind: kind.into(),
        plural: plural.into(),
    }
}

fn pcrs(client: kube::Client, version: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        client,
        "apps",
        &resource(
            "podcertificaterequests",
            "PodCertificateRequest",
            "certificates.k8s.io",
            version,
        ),
    )
}

fn der_of(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

fn pcr(name: &str, csr_pem: &str, max: i64) -> DynamicObject {
    dynobj(json!({
        "apiVersion": "certificates.k8s.io/v1", "kind": "PodCertificateRequest",
        "metadata": {"name": name},
        "spec": {"signerName": "example.com/signer", "podName": "p", "podUID": "pu", "serviceAccountName": "sa",
                 "serviceAccountUID": "su", "nodeName": "n", "nodeUID": "nu", "maxExpirationSeconds": max,
                 "stubPKCS10Request": base64::engine::general_purpose::STANDARD.encode(der_of(csr_pem))},
    }))
}

fn times(leaf_pem: &str) -> (String, String, String) {
    let der = der_of(leaf_pem);
    use der::Decode;
    let cert = x509_cert::Certificate::from_der(&der).unwrap();
    let v = cert.tbs_certificate().validity();
    let s = |t: std::time::Duration| jiff::Timestamp::from_second(t.as_secs() as i64).unwrap();
    let (nb, na) = (
        s(v.not_before.to_unix_duration()),
        s(v.not_after.to_unix_duration()),
    );
    let mid = jiff::Timestamp::from_second((nb.as_second() + na.as_second()) / 2).unwrap();
    let f = |t: jiff::Timestamp| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    (f(nb), f(na), f(mid))
}

fn issued(chain: &str, nb: &str, na: &str, refresh: &str) -> Value {
    json!({"status": {
        "conditions": [{"type": "Issued", "status": "True", "reason": "Issued", "message": "ok",
                        "lastTransitionTime": "2026-01-01T00:00:00Z"}],
        "certificateChain": chain, "notBefore": nb, "notAfter": na, "beginRefreshAt": refresh,
        "issuedAt": nb,
    }})
}

fn code(e: kube::Error) -> u16 {
    match e {
        kube::Error::Api(s) => s.code,
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn pod_certificate_request_status_is_validated_as_the_api_server_does() {
    let api = FakeApi::start().await.unwrap();
    let client = api.client().await.unwrap();
    let v1 = pcrs(client.clone(), "v1");
    let ca = TestCa::new().unwrap();
    let (_, csr_pem) = csr("", &["a.apps.svc"], &[]);
    let (_, other_pem) = csr("", &["b.apps.svc"], &[]);
    let day = |h: u64| SignParams {
        duration: Some(Duration::from_secs(h * 3600)),
        ..Default::default()
    };
    let pp = PatchParams::default();

    // Spec checks on create: maxExpirationSeconds at least an hour.
    assert_eq!(
        code(
            v1.create(&PostParams::default(), &pcr("short", &csr_pem, 60))
                .await
                .unwrap_err()
        ),
        422
    );
    let created = v1
        .create(&PostParams::default(), &pcr("r", &csr_pem, 86_400))
        .await
        .unwrap();
    assert!(created.data.get("status").is_none());

    // A lifetime longer than maxExpirationSeconds is refused.
    let long = ca.sign(csr_pem.as_bytes(), &day(48)).unwrap();
    let (nb, na, mid) = times(&long);
    assert_eq!(
        code(
            v1.patch_status("r", &pp, &Patch::Merge(issued(&long, &nb, &na, &mid)))
                .await
                .unwrap_err()
        ),
        422
    );
    // A leaf for another key is refused.
    let foreign = ca.sign(other_pem.as_bytes(), &day(24)).unwrap();
    let (nb, na, mid) = times(&foreign);
    assert_eq!(
        code(
            v1.patch_status("r", &pp, &Patch::Merge(issued(&foreign, &nb, &na, &mid)))
                .await
                .unwrap_err()
        ),
        422
    );
    // notBefore other than the leaf's, and beginRefreshAt outside, are refused.
    let leaf = ca.sign(csr_pem.as_bytes(), &day(24)).unwrap();
    let (nb, na, mid) = times(&leaf);
    assert_eq!(
        code(
            v1.patch_status("r", &pp, &Patch::Merge(issued(&leaf, &mid, &na, &mid)))
                .await
                .unwrap_err()
        ),
        422
    );
    assert_eq!(
        code(
            v1.patch_status("r", &pp, &Patch::Merge(issued(&leaf, &nb, &na, &na)))
                .await
                .unwrap_err()
        ),
        422
    );
    // A chain over 100 KiB is refused.
    let huge = leaf.repeat(100 * 1024 / leaf.len() + 1);
    assert_eq!(
        code(
            v1.patch_status("r", &pp, &Patch::Merge(issued(&huge, &nb, &na, &mid)))
                .await
                .unwrap_err()
        ),
        422
    );
    // The valid one is accepted, then the status is immutable.
    let ok = v1
        .patch_status("r", &pp, &Patch::Merge(issued(&leaf, &nb, &na, &mid)))
        .await
        .unwrap();
    assert_eq!(ok.data["status"]["certificateChain"], leaf.as_str());
    let deny = json!({"status": {"conditions": [{"type": "Denied", "status": "True", "reason": "No", "message": "no",
                                                 "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
    assert_eq!(
        code(
            v1.patch_status("r", &pp, &Patch::Merge(deny))
                .await
                .unwrap_err()
        ),
        422
    );

    // v1beta1 reads the same object; its status has no issuedAt.
    let beta = pcrs(client.clone(), "v1beta1");
    beta.create(&PostParams::default(), &pcr("b", &csr_pem, 86_400))
        .await
        .unwrap();
    let written = beta
        .patch_status("b", &pp, &Patch::Merge(issued(&leaf, &nb, &na, &mid)))
        .await
        .unwrap();
    assert_eq!(
        written.types.unwrap().api_version,
        "certificates.k8s.io/v1beta1"
    );
    assert!(written.data["status"].get("issuedAt").is_none());
    assert_eq!(
        v1.get("r").await.unwrap().data["status"]["issuedAt"],
        nb.as_str()
    );

    // Served versions follow the cluster: v1beta1 only, v1 is 404.
    api.set_certificates_versions(&["v1beta1"]);
    assert_eq!(code(v1.get("r").await.unwrap_err()), 404);
    assert!(beta.get("r").await.is_ok());
    api.shutdown().await;
}

#[tokio::test]
async fn cluster_trust_bundles_and_leases() {
    let api = FakeApi::start().await.unwrap();
    let client = api.client().await.unwrap();
    let ctbs: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &resource(
            "clustertrustbundles",
            "ClusterTrustBundle",
            "certificates.k8s.io",
            "v1",
        ),
    );
    let ca = api.ca_pem();
    let bundle = |name: &str, signer: &str, pem: &str| {
        dynobj(json!({
        "apiVersion": "certificates.k8s.io/v1", "kind": "ClusterTrustBundle",
        "metadata": {"name": name}, "spec": {"signerName": signer, "trustBundle": pem}}))
    };
    // The name must start with the signer name, '/' as ':'.
    let e = ctbs
        .create(
            &PostParams::default(),
            &bundle("wrong", "example.com/s", &ca),
        )
        .await
        .unwrap_err();
    assert_eq!(code(e), 422);
    // Duplicates and non-certificate PEM are refused.
    let dup = format!("{ca}{ca}");
    assert_eq!(
        code(
            ctbs.create(
                &PostParams::default(),
                &bundle("example.com:s:a", "example.com/s", &dup)
            )
            .await
            .unwrap_err()
        ),
        422
    );
    assert_eq!(
        code(
            ctbs.create(
                &PostParams::default(),
                &bundle("example.com:s:a", "example.com/s", "junk")
            )
            .await
            .unwrap_err()
        ),
        422
    );

    let mut w = ctbs
        .watch(
            &WatchParams::default().fields("spec.signerName=example.com/s"),
            "0",
        )
        .await
        .unwrap()
        .boxed();
    let made = ctbs
        .create(
            &PostParams::default(),
            &bundle("example.com:s:a", "example.com/s", &ca),
        )
        .await
        .unwrap();
    ctbs.create(
        &PostParams::default(),
        &bundle("example.com:t:a", "example.com/t", &ca),
    )
    .await
    .unwrap();
    let first = w.try_next().await.unwrap().unwrap();
    assert!(
        matches!(first, WatchEvent::Added(o) if o.metadata.name.as_deref() == Some("example.com:s:a"))
    );
    let listed = ctbs
        .list(&ListParams::default().fields("spec.signerName=example.com/t"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    // Updates take the read resourceVersion; a stale one conflicts.
    let mut stale = made.clone();
    let mut fresh = made.clone();
    fresh.data["spec"]["trustBundle"] = json!(format!("{ca}"));
    ctbs.replace("example.com:s:a", &PostParams::default(), &fresh)
        .await
        .unwrap();
    stale.data["spec"]["trustBundle"] = json!(ca);
    assert_eq!(
        code(
            ctbs.replace("example.com:s:a", &PostParams::default(), &stale)
                .await
                .unwrap_err()
        ),
        409
    );
    let second = w.try_next().await.unwrap().unwrap();
    assert!(matches!(second, WatchEvent::Modified(_)));
    ctbs.delete("example.com:s:a", &DeleteParams::default())
        .await
        .unwrap();
    assert!(matches!(
        w.try_next().await.unwrap().unwrap(),
        WatchEvent::Deleted(_)
    ));
    assert_eq!(api.cluster_trust_bundles().len(), 1);

    // Leases: create once, update with optimistic concurrency.
    let leases: Api<DynamicObject> = Api::namespaced_with(
        client,
        "kube-system",
        &resource("leases", "Lease", "coordination.k8s.io", "v1"),
    );
    let lease = dynobj(
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l"},
                              "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}}),
    );
    let l = leases.create(&PostParams::default(), &lease).await.unwrap();
    assert_eq!(
        code(
            leases
                .create(&PostParams::default(), &lease)
                .await
                .unwrap_err()
        ),
        409
    );
    let mut b = l.clone();
    b.data["spec"]["holderIdentity"] = json!("b");
    leases
        .replace("l", &PostParams::default(), &b)
        .await
        .unwrap();
    let mut c = l.clone();
    c.data["spec"]["holderIdentity"] = json!("c");
    assert_eq!(
        code(
            leases
                .replace("l", &PostParams::default(), &c)
                .await
                .unwrap_err()
        ),
        409,
        "only one candidate wins"
    );
    assert_eq!(
        api.lease("kube-system", "l").unwrap()["spec"]["holderIdentity"],
        "b"
    );

    // A watch resuming from the first Lease's resourceVersion is replayed what
    // came after it; once the history is compacted it gets 410 Expired.
    let from = l.metadata.resource_version.clone().unwrap();
    let mut w = leases
        .watch(&WatchParams::default(), &from)
        .await
        .unwrap()
        .boxed();
    match w.try_next().await.unwrap().unwrap() {
        WatchEvent::Modified(o) => assert_eq!(o.data["spec"]["holderIdentity"], "b"),
        other => panic!("expected the missed update, got {other:?}"),
    }
    drop(w);
    api.expire_watch_history();
    let mut w = leases
        .watch(&WatchParams::default(), &from)
        .await
        .unwrap()
        .boxed();
    match w.try_next().await.unwrap().unwrap() {
        WatchEvent::Error(e) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected 410, got {other:?}"),
    }
    api.shutdown().await;
}
