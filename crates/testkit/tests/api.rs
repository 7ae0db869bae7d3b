//! The fake API through the real kube client: CRUD, selectors, watches,
//! auth, counters and fault injection.
#![allow(clippy::unwrap_used)]

mod common;

use cmcsi_testkit::{DEFAULT_USERNAME, FakeApi, Fault, Verb};
use common::*;
use futures::{StreamExt, TryStreamExt};
use kube::api::{
    DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use serde_json::{Value, json};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

#[tokio::test]
async fn create_with_generate_name_get_and_404() {
    let api = FakeApi::start().await.unwrap();
    let crs = crs(api.client().await.unwrap(), "ns1");
    let (_, pem) = csr("a", &["a.example"], &[]);
    let created = crs
        .create(
            &PostParams::default(),
            &dynobj(cr("ca", &pem, json!({"x": "1"}))),
        )
        .await
        .unwrap();
    let name = created.metadata.name.clone().unwrap();
    assert!(name.starts_with("csi-") && name.len() == 9, "{name}");
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    assert!(created.metadata.resource_version.is_some());
    assert_eq!(created.metadata.namespace.as_deref(), Some("ns1"));
    let got = crs.get(&name).await.unwrap();
    assert_eq!(got.metadata.uid, created.metadata.uid);
    // spec.username is the identity of the creating token, as cert-manager's webhook sets it.
    assert_eq!(got.data["spec"]["username"], DEFAULT_USERNAME);

    let err = crs.get("missing").await.unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 404);
            assert_eq!(s.reason, "NotFound");
        }
        other => panic!("expected a 404 Status, got {other:?}"),
    }
    assert!(crs.get_opt("missing").await.unwrap().is_none());
    api.shutdown().await;
}

#[tokio::test]
async fn create_conflict_and_invalid() {
    let api = FakeApi::start().await.unwrap();
    let crs = crs(api.client().await.unwrap(), "ns1");
    let (_, pem) = csr("a", &[], &[]);
    let mut body = cr("ca", &pem, json!({}));
    body["metadata"] = json!({"name": "fixed"});
    crs.create(&PostParams::default(), &dynobj(body.clone()))
        .await
        .unwrap();
    match crs
        .create(&PostParams::default(), &dynobj(body.clone()))
        .await
        .unwrap_err()
    {
        kube::Error::Api(s) => assert_eq!((s.code, s.reason.as_str()), (409, "AlreadyExists")),
        other => panic!("{other:?}"),
    }
    body["metadata"] = json!({"name": "no-issuer"});
    body["spec"]["issuerRef"] = json!({});
    match crs
        .create(&PostParams::default(), &dynobj(body))
        .await
        .unwrap_err()
    {
        kube::Error::Api(s) => assert_eq!((s.code, s.reason.as_str()), (422, "Invalid")),
        other => panic!("{other:?}"),
    }
    api.shutdown().await;
}

#[tokio::test]
async fn list_with_label_selectors_and_all_namespaces() {
    let api = FakeApi::start().await.unwrap();
    let client = api.client().await.unwrap();
    let (_, pem) = csr("a", &[], &[]);
    for (ns, node, vol) in [
        ("a", "n1", "v1"),
        ("a", "n1", "v2"),
        ("a", "n2", "v3"),
        ("b", "n1", "v4"),
    ] {
        crs(client.clone(), ns)
            .create(
                &PostParams::default(),
                &dynobj(cr("ca", &pem, json!({"node": node, "vol": vol}))),
            )
            .await
            .unwrap();
    }
    let names = |l: kube::core::ObjectList<kube::api::DynamicObject>| {
        let mut v: Vec<String> = l
            .items
            .iter()
            .map(|o| {
                o.data["metadata"]["labels"]["vol"]
                    .as_str()
                    .map(String::from)
                    .unwrap_or_else(|| o.metadata.labels.as_ref().unwrap()["vol"].clone())
            })
            .collect();
        v.sort();
        v
    };
    let a = crs(client.clone(), "a");
    let l = a
        .list(&ListParams::default().labels("node=n1"))
        .await
        .unwrap();
    assert!(l.metadata.resource_version.is_some());
    assert_eq!(names(l), ["v1", "v2"]);
    let l = a
        .list(&ListParams::default().labels("node=n1,vol=v2"))
        .await
        .unwrap();
    assert_eq!(names(l), ["v2"]);
    let l = a
        .list(&ListParams::default().labels("vol in (v1,v3)"))
        .await
        .unwrap();
    assert_eq!(names(l), ["v1", "v3"]);
    let l = a
        .list(&ListParams::default().labels("vol notin (v1,v3),node"))
        .await
        .unwrap();
    assert_eq!(names(l), ["v2"]);
    let all = crs_all(client.clone());
    let l = all
        .list(&ListParams::default().labels("node=n1"))
        .await
        .unwrap();
    assert_eq!(names(l), ["v1", "v2", "v4"]);
    // Pagination.
    let l = all.list(&ListParams::default().limit(3)).await.unwrap();
    assert_eq!(l.items.len(), 3);
    let cont = l.metadata.continue_.clone().unwrap();
    let l2 = all
        .list(&ListParams::default().limit(3).continue_token(&cont))
        .await
        .unwrap();
    assert_eq!(l2.items.len(), 1);
    assert_eq!(api.counts().verb(Verb::List), 7);
    assert_eq!(api.counts().verb(Verb::Create), 4);
    api.shutdown().await;
}

#[tokio::test]
async fn watch_sees_added_modified_deleted_and_bookmarks() {
    let api = FakeApi::start().await.unwrap();
    let crs = crs(api.client().await.unwrap(), "w");
    let rv = crs
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = crs
        .watch(&WatchParams::default().labels("app=x"), &rv)
        .await
        .unwrap()
        .boxed();
    api.wait_for_watches(1, T).await.unwrap();
    let (_, pem) = csr("a", &[], &[]);
    let created = crs
        .create(
            &PostParams::default(),
            &dynobj(cr("ca", &pem, json!({"app": "x"}))),
        )
        .await
        .unwrap();
    // Not selected: never seen.
    crs.create(
        &PostParams::default(),
        &dynobj(cr("ca", &pem, json!({"app": "y"}))),
    )
    .await
    .unwrap();
    let name = created.metadata.name.unwrap();
    crs.patch_status(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"conditions": [{"type": "Approved", "status": "True"}]}})),
    )
    .await
    .unwrap();
    api.send_bookmarks();
    crs.delete(&name, &DeleteParams::default()).await.unwrap();

    let mut seen = Vec::new();
    while seen.len() < 4 {
        let ev = tokio::time::timeout(T, stream.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push(match ev {
            WatchEvent::Added(o) => format!("ADDED {}", o.metadata.name.unwrap()),
            WatchEvent::Modified(o) => {
                assert_eq!(o.data["status"]["conditions"][0]["type"], "Approved");
                format!("MODIFIED {}", o.metadata.name.unwrap())
            }
            WatchEvent::Deleted(o) => format!("DELETED {}", o.metadata.name.unwrap()),
            WatchEvent::Bookmark(b) => {
                assert!(b.metadata.resource_version.parse::<u64>().unwrap() > 0);
                "BOOKMARK".into()
            }
            WatchEvent::Error(e) => panic!("{e:?}"),
        });
    }
    assert_eq!(
        seen,
        [
            format!("ADDED {name}"),
            format!("MODIFIED {name}"),
            "BOOKMARK".into(),
            format!("DELETED {name}")
        ]
    );
    assert_eq!(api.counts().verb(Verb::Watch), 1);
    assert_eq!(
        api.counts().of(Verb::Patch, "certificaterequests/status"),
        1
    );
    assert_eq!(api.counts().verb(Verb::Delete), 1);
    api.shutdown().await;
}

#[tokio::test]
async fn watch_from_expired_resource_version_gets_410() {
    let api = FakeApi::start().await.unwrap();
    let crs = crs(api.client().await.unwrap(), "w");
    let (_, pem) = csr("a", &[], &[]);
    let old_rv = crs
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    for _ in 0..3 {
        crs.create(&PostParams::default(), &dynobj(cr("ca", &pem, json!({}))))
            .await
            .unwrap();
    }
    // Within the history window the missed events are replayed.
    let mut s = crs
        .watch(&WatchParams::default(), &old_rv)
        .await
        .unwrap()
        .boxed();
    for _ in 0..3 {
        let ev = tokio::time::timeout(T, s.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(matches!(ev, WatchEvent::Added(_)));
    }
    drop(s);
    api.set_watch_history_limit(1);
    let mut s = crs
        .watch(&WatchParams::default(), &old_rv)
        .await
        .unwrap()
        .boxed();
    match tokio::time::timeout(T, s.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
    {
        WatchEvent::Error(e) => assert_eq!(e.code, 410),
        other => panic!("expected 410, got {other:?}"),
    }
    api.shutdown().await;
}

#[tokio::test]
async fn runtime_watcher_relists_after_drop_and_410() {
    use kube::runtime::watcher;
    let api = FakeApi::start().await.unwrap();
    let all = crs_all(api.client().await.unwrap());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut s = watcher(all, watcher::Config::default().labels("node=n1")).boxed();
        while let Some(ev) = s.next().await {
            if let Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) = ev {
                let _ = tx.send(o.metadata.name.unwrap());
            }
        }
    });
    api.wait_for_watches(1, T).await.unwrap();
    assert_eq!(api.counts().verb(Verb::List), 1);
    let (_, pem) = csr("a", &[], &[]);
    let c = crs(api.client().await.unwrap(), "x");
    let first = c
        .create(
            &PostParams::default(),
            &dynobj(cr("ca", &pem, json!({"node": "n1"}))),
        )
        .await
        .unwrap();
    assert_eq!(
        tokio::time::timeout(T, rx.recv()).await.unwrap().unwrap(),
        first.metadata.name.unwrap()
    );

    // A dropped watch is resumed from the last resourceVersion, without a relist.
    assert_eq!(api.drop_watches(), 1);
    api.wait_for_watches(1, T).await.unwrap();
    assert_eq!(api.counts().verb(Verb::Watch), 2);
    assert_eq!(api.counts().verb(Verb::List), 1);

    // With the history gone, the resumed watch gets 410 and the watcher relists.
    // (An unselected change moves the server past the watcher's last resourceVersion.)
    c.create(
        &PostParams::default(),
        &dynobj(cr("ca", &pem, json!({"node": "n2"}))),
    )
    .await
    .unwrap();
    api.expire_watch_history();
    api.drop_watches();
    let second = c
        .create(
            &PostParams::default(),
            &dynobj(cr("ca", &pem, json!({"node": "n1"}))),
        )
        .await
        .unwrap();
    let name2 = second.metadata.name.unwrap();
    loop {
        let n = tokio::time::timeout(T, rx.recv()).await.unwrap().unwrap();
        if n == name2 {
            break;
        }
    }
    assert_eq!(api.counts().verb(Verb::List), 2, "{:?}", api.counts());
    task.abort();
    api.shutdown().await;
}

#[tokio::test]
async fn tokens_identities_and_401() {
    let api = FakeApi::start().await.unwrap();
    api.add_token("pod-token", "system:serviceaccount:app:web");
    let (_, pem) = csr("a", &[], &[]);
    let as_pod = crs(api.client_with_token("pod-token").await.unwrap(), "app");
    let o = as_pod
        .create(&PostParams::default(), &dynobj(cr("ca", &pem, json!({}))))
        .await
        .unwrap();
    assert_eq!(o.data["spec"]["username"], "system:serviceaccount:app:web");
    let groups = o.data["spec"]["groups"].as_array().unwrap();
    assert!(groups.contains(&json!("system:serviceaccounts:app")));

    // The client cannot claim another identity.
    let mut body = cr("ca", &pem, json!({}));
    body["spec"]["username"] = json!("system:admin");
    let o = as_pod
        .create(&PostParams::default(), &dynobj(body))
        .await
        .unwrap();
    assert_eq!(o.data["spec"]["username"], "system:serviceaccount:app:web");

    let stranger = crs(api.client_with_token("nope").await.unwrap(), "app");
    match stranger.list(&ListParams::default()).await.unwrap_err() {
        kube::Error::Api(s) => assert_eq!(s.code, 401),
        other => panic!("{other:?}"),
    }
    api.remove_token("pod-token");
    assert!(as_pod.list(&ListParams::default()).await.is_err());
    api.shutdown().await;
}

#[tokio::test]
async fn injected_5xx_and_429() {
    let api = FakeApi::start().await.unwrap();
    let crs = crs(api.client().await.unwrap(), "f");
    api.fail_next(1, Fault::Status(500));
    match crs.list(&ListParams::default()).await.unwrap_err() {
        kube::Error::Api(s) => assert_eq!(s.code, 500),
        other => panic!("{other:?}"),
    }
    // kube retries 503 (and 429, 504) by itself: the fault shows in the counts only.
    api.fail_next(2, Fault::Status(503));
    crs.list(&ListParams::default()).await.unwrap();
    assert_eq!(api.counts().verb(Verb::List), 4);

    api.fail_next_verb(
        2,
        Verb::Create,
        Fault::TooManyRequests {
            retry_after_secs: 0,
        },
    );
    // Other verbs are not affected.
    crs.list(&ListParams::default()).await.unwrap();
    assert_eq!(api.counts().verb(Verb::List), 5);
    let (_, pem) = csr("a", &[], &[]);
    crs.create(&PostParams::default(), &dynobj(cr("ca", &pem, json!({}))))
        .await
        .unwrap();
    assert_eq!(api.requests("f").len(), 1);
    assert_eq!(api.counts().verb(Verb::Create), 3);

    // Without kube's retry layer the 429 reaches the caller.
    let mut config = api.config(cmcsi_testkit::DEFAULT_TOKEN).await.unwrap();
    config.default_retry = false;
    let plain = crs_for(kube::Client::try_from(config).unwrap(), "f");
    api.fail_next(
        1,
        Fault::TooManyRequests {
            retry_after_secs: 7,
        },
    );
    match plain.list(&ListParams::default()).await.unwrap_err() {
        kube::Error::Api(s) => assert_eq!((s.code, s.reason.as_str()), (429, "TooManyRequests")),
        other => panic!("{other:?}"),
    }

    // The Retry-After header, seen on the wire.
    api.fail_next(
        1,
        Fault::TooManyRequests {
            retry_after_secs: 7,
        },
    );
    let resp = raw_get(
        &api,
        "/apis/cert-manager.io/v1/namespaces/f/certificaterequests",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 429"), "{resp}");
    assert!(
        resp.to_ascii_lowercase().contains("retry-after: 7"),
        "{resp}"
    );
    api.shutdown().await;
}

fn crs_for(client: kube::Client, ns: &str) -> kube::Api<kube::api::DynamicObject> {
    common::crs(client, ns)
}

/// A GET over a raw TCP connection, returning the response head and body.
async fn raw_get(api: &FakeApi, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(api.addr()).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        cmcsi_testkit::DEFAULT_TOKEN
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn down_refuses_connections_then_comes_back_on_same_port() {
    let api = FakeApi::start().await.unwrap();
    let crs = crs(api.client().await.unwrap(), "d");
    crs.list(&ListParams::default()).await.unwrap();
    let addr = api.addr();
    api.go_down().await.unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    assert!(crs.list(&ListParams::default()).await.is_err());
    api.come_up().await.unwrap();
    assert_eq!(api.addr(), addr);
    crs.list(&ListParams::default()).await.unwrap();

    api.down_for(Duration::from_millis(300)).await.unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    let mut ok = false;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if crs.list(&ListParams::default()).await.is_ok() {
            ok = true;
            break;
        }
    }
    assert!(ok, "the API did not come back");
    api.shutdown().await;
}

#[tokio::test]
async fn update_patch_and_status_rules() {
    let api = FakeApi::start().await.unwrap();
    let crs = crs(api.client().await.unwrap(), "u");
    let (_, pem) = csr("a", &[], &[]);
    let o = crs
        .create(&PostParams::default(), &dynobj(cr("ca", &pem, json!({}))))
        .await
        .unwrap();
    let name = o.metadata.name.clone().unwrap();
    // Metadata patch on the main resource.
    let p = crs
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"k": "v"}}})),
        )
        .await
        .unwrap();
    assert_eq!(p.metadata.labels.unwrap()["k"], "v");
    // Status is ignored on the main resource...
    let p = crs
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"ca": "eA=="}})),
        )
        .await
        .unwrap();
    assert!(p.data.get("status").is_none());
    // ...and spec is immutable.
    assert!(
        crs.patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"isCA": true}}))
        )
        .await
        .is_err()
    );
    // A stale resourceVersion on replace conflicts.
    let mut stale = o.clone();
    stale.metadata.labels = Some([("z".to_string(), "1".to_string())].into());
    match crs
        .replace(&name, &PostParams::default(), &stale)
        .await
        .unwrap_err()
    {
        kube::Error::Api(s) => assert_eq!(s.code, 409),
        other => panic!("{other:?}"),
    }
    // JSON patch on status.
    let p = crs
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::<Value>::Json(
                serde_json::from_value(
                    json!([{"op": "add", "path": "/status", "value": {"ca": "eA=="}}]),
                )
                .unwrap(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(p.data["status"]["ca"], "eA==");
    api.shutdown().await;
}

#[tokio::test]
async fn discovery_and_version() {
    let api = FakeApi::start().await.unwrap();
    let client = api.client().await.unwrap();
    let v = client.apiserver_version().await.unwrap();
    assert_eq!(v.major, "1");
    let groups = client.list_api_groups().await.unwrap();
    assert!(groups.groups.iter().any(|g| g.name == "cert-manager.io"));
    let res = client
        .list_api_group_resources("cert-manager.io/v1")
        .await
        .unwrap();
    assert!(
        res.resources
            .iter()
            .any(|r| r.name == "certificaterequests")
    );
    assert_eq!(api.counts().verb(Verb::Discovery), 3);
    api.shutdown().await;
}

#[tokio::test]
async fn kubeconfig_file_works_with_kube() {
    let api = FakeApi::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    api.write_kubeconfig(&path, cmcsi_testkit::DEFAULT_TOKEN)
        .unwrap();
    let kc = kube::config::Kubeconfig::read_from(&path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    assert_eq!(
        config.cluster_url.to_string().trim_end_matches('/'),
        api.url()
    );
    let client = kube::Client::try_from(config).unwrap();
    crs(client, "k").list(&ListParams::default()).await.unwrap();
    api.shutdown().await;
}

#[tokio::test]
async fn delete_returns_object_and_emits_deleted() {
    let api = FakeApi::start().await.unwrap();
    let crs = crs(api.client().await.unwrap(), "del");
    let (_, pem) = csr("a", &[], &[]);
    let o = crs
        .create(&PostParams::default(), &dynobj(cr("ca", &pem, json!({}))))
        .await
        .unwrap();
    let name = o.metadata.name.unwrap();
    let res = crs.delete(&name, &DeleteParams::default()).await.unwrap();
    let deleted = res.left().expect("the deleted object");
    assert_eq!(deleted.metadata.name.as_deref(), Some(name.as_str()));
    assert!(api.request("del", &name).is_none());
    match crs
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap_err()
    {
        kube::Error::Api(s) => assert_eq!(s.code, 404),
        other => panic!("{other:?}"),
    }
    api.shutdown().await;
}

#[tokio::test]
async fn delete_preconditions_guard_against_the_wrong_object() {
    let api = FakeApi::start().await.unwrap();
    let crs = crs(api.client().await.unwrap(), "pre");
    let (_, pem) = csr("a", &[], &[]);
    let o = crs
        .create(&PostParams::default(), &dynobj(cr("ca", &pem, json!({}))))
        .await
        .unwrap();
    let name = o.metadata.name.clone().unwrap();
    let wrong = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: Some("not-the-uid".into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    match crs.delete(&name, &wrong).await.unwrap_err() {
        kube::Error::Api(s) => assert_eq!(s.code, 409),
        other => panic!("{other:?}"),
    }
    assert!(api.request("pre", &name).is_some());
    let right = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: o.metadata.uid.clone(),
            resource_version: None,
        }),
        ..Default::default()
    };
    crs.delete(&name, &right).await.unwrap();
    assert!(api.request("pre", &name).is_none());
    api.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn watch_timeout_is_honoured_or_not() {
    let api = FakeApi::start().await.unwrap();
    let crs = crs(api.client().await.unwrap(), "t");
    let mut s = crs
        .watch(&WatchParams::default().timeout(60), "0")
        .await
        .unwrap()
        .boxed();
    // Virtual time: the 60 s pass at once and the server ends the stream.
    let end = tokio::time::timeout(Duration::from_secs(120), s.try_next())
        .await
        .unwrap();
    assert!(matches!(end, Ok(None)), "{end:?}");

    api.set_honour_watch_timeouts(false);
    let mut s = crs
        .watch(&WatchParams::default().timeout(60), "0")
        .await
        .unwrap()
        .boxed();
    assert!(
        tokio::time::timeout(Duration::from_secs(600), s.try_next())
            .await
            .is_err()
    );
    api.shutdown().await;
}

#[tokio::test]
async fn https_with_token_and_with_client_certificate() {
    let api = FakeApi::builder().tls().start().await.unwrap();
    assert!(api.url().starts_with("https://127.0.0.1:"), "{}", api.url());
    let (_, pem) = csr("a", &[], &[]);

    // A bearer token over HTTPS, the server checked against the test CA.
    let crs_token = crs(api.client().await.unwrap(), "ns1");
    let made = crs_token
        .create(&PostParams::default(), &dynobj(cr("ca", &pem, json!({}))))
        .await
        .unwrap();
    assert_eq!(made.data["spec"]["username"], DEFAULT_USERNAME);

    // A client certificate from the test CA: its CN is the user.
    let kc: kube::config::Kubeconfig =
        serde_json::from_value(api.client_cert_kubeconfig("system:node:n1").unwrap()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let crs_cert = crs(kube::Client::try_from(config).unwrap(), "ns1");
    let made = crs_cert
        .create(&PostParams::default(), &dynobj(cr("ca", &pem, json!({}))))
        .await
        .unwrap();
    assert_eq!(made.data["spec"]["username"], "system:node:n1");

    // Without the CA the client refuses the server.
    let mut kc = api.kubeconfig(cmcsi_testkit::DEFAULT_TOKEN);
    kc["clusters"][0]["cluster"]
        .as_object_mut()
        .unwrap()
        .remove("certificate-authority-data");
    let kc: kube::config::Kubeconfig = serde_json::from_value(kc).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let untrusting = crs(kube::Client::try_from(config).unwrap(), "ns1");
    assert!(untrusting.list(&ListParams::default()).await.is_err());
    api.shutdown().await;
}
