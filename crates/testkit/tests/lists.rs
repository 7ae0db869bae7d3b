//! List and watch semantics the fake API copies from a real API server:
//! `resourceVersion=0` lists ignore `limit`; consistent lists are paged;
//! streaming lists (`sendInitialEvents=true`) end their initial events with
//! the `k8s.io/initial-events-end` bookmark, or are refused with 422 when the
//! `WatchList` feature gate is off. The same for CertificateRequests and Pods.
#![allow(clippy::unwrap_used)]

mod common;

use cmcsi_testkit::FakeApi;
use common::*;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use serde_json::json;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

async fn raw_list(client: &kube::Client, path: &str) -> serde_json::Value {
    client
        .request::<serde_json::Value>(http::Request::get(path).body(Vec::new()).unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn limit_is_ignored_from_the_watch_cache_and_honoured_otherwise() {
    let api = FakeApi::start().await.unwrap();
    let client = api.client().await.unwrap();
    let c = crs(client.clone(), "x");
    let (_, pem) = csr("a", &[], &[]);
    for _ in 0..5 {
        c.create(&Default::default(), &dynobj(cr("ca", &pem, json!({}))))
            .await
            .unwrap();
    }
    // resourceVersion=0: the watch cache, the whole collection. (kube's
    // ListParams drops resourceVersion=0 when a limit is set, for this very
    // reason, so the request is made by hand.)
    let l = raw_list(
        &client,
        "/apis/cert-manager.io/v1/namespaces/x/certificaterequests?limit=2&resourceVersion=0",
    )
    .await;
    assert_eq!(l["items"].as_array().unwrap().len(), 5);
    assert!(l["metadata"].get("continue").is_none());
    // No resourceVersion: a consistent read, paged.
    let l = c.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(l.items.len(), 2);
    assert_eq!(l.metadata.remaining_item_count, Some(3));
    let cont = l.metadata.continue_.unwrap();
    let l = c
        .list(&ListParams::default().limit(2).continue_token(&cont))
        .await
        .unwrap();
    assert_eq!(l.items.len(), 2);

    // Pods: the same.
    for i in 0..5 {
        api.put_pod("ns", &format!("p{i}"), &format!("u{i}"), "node-a");
    }
    let l = raw_list(&client, "/api/v1/pods?limit=2&resourceVersion=0").await;
    assert_eq!(l["items"].as_array().unwrap().len(), 5);
    let pods: Api<Pod> = Api::all(client);
    let l = pods.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(l.items.len(), 2);
    assert!(l.metadata.continue_.is_some());
    api.shutdown().await;
}

#[tokio::test]
async fn streaming_lists_end_with_the_initial_events_bookmark_or_get_422() {
    let api = FakeApi::start().await.unwrap();
    let client = api.client().await.unwrap();
    let (_, pem) = csr("a", &[], &[]);
    let c = crs(client.clone(), "x");
    for _ in 0..3 {
        c.create(&Default::default(), &dynobj(cr("ca", &pem, json!({}))))
            .await
            .unwrap();
    }
    api.put_pod("ns", "p", "u", "node-a");
    let wp = WatchParams::streaming_lists();
    // CertificateRequests: three ADDED, then the bookmark.
    let mut s = crs_all(client.clone())
        .watch(&wp, "0")
        .await
        .unwrap()
        .boxed();
    let mut added = 0;
    loop {
        match tokio::time::timeout(T, s.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            WatchEvent::Added(_) => added += 1,
            WatchEvent::Bookmark(b) => {
                assert!(
                    b.metadata
                        .annotations
                        .contains_key("k8s.io/initial-events-end")
                );
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(added, 3);
    // Pods: one ADDED, then the bookmark.
    let pods: Api<Pod> = Api::all(client.clone());
    let mut s = pods.watch(&wp, "0").await.unwrap().boxed();
    assert!(matches!(
        tokio::time::timeout(T, s.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap(),
        WatchEvent::Added(_)
    ));
    match tokio::time::timeout(T, s.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
    {
        WatchEvent::Bookmark(b) => {
            assert!(
                b.metadata
                    .annotations
                    .contains_key("k8s.io/initial-events-end")
            );
        }
        other => panic!("{other:?}"),
    }
    // The WatchList gate off: 422 Invalid, for both.
    api.set_watch_list(false);
    for err in [
        crs_all(client.clone()).watch(&wp, "0").await.err(),
        pods.watch(&wp, "0").await.err(),
    ] {
        match err {
            Some(kube::Error::Api(s)) => {
                assert_eq!(s.code, 422);
                assert!(s.message.contains("WatchList"), "{}", s.message);
            }
            other => panic!("{other:?}"),
        }
    }
    api.shutdown().await;
}
