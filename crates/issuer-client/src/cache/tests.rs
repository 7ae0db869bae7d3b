use super::*;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::utils::Backoff;

fn cr(name: &str, uid: &str) -> CertificateRequest {
    CertificateRequest {
        metadata: ObjectMeta {
            namespace: Some("ns".into()),
            name: Some(name.into()),
            uid: Some(uid.into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

#[test]
fn relist_drops_vanished_objects_and_wakes_waiters() {
    let cache = Cache::new();
    cache.handle(Event::Init);
    cache.handle(Event::InitApply(cr("a", "1")));
    cache.handle(Event::InitApply(cr("b", "2")));
    assert_eq!(cache.len(), 0, "buffered until InitDone");
    cache.handle(Event::InitDone);
    assert_eq!(cache.len(), 2);
    assert!(cache.health().synced);

    let mut rx_a = cache.subscribe("ns", "a");
    let mut rx_waiting = cache.subscribe("ns", "c");
    assert!(matches!(*rx_a.borrow_and_update(), Slot::Present(_)));

    // A relist after 410 no longer has "a": it was deleted meanwhile.
    cache.handle(Event::Init);
    cache.handle(Event::InitApply(cr("b", "2")));
    cache.handle(Event::InitDone);
    assert!(rx_a.has_changed().unwrap_or(true));
    assert!(matches!(*rx_a.borrow_and_update(), Slot::Deleted));
    assert_eq!(cache.health().lists, 2);
    // Someone waiting for a not-yet-seen request keeps waiting.
    assert!(matches!(*rx_waiting.borrow_and_update(), Slot::Unseen));
    cache.handle(Event::Apply(cr("c", "3")));
    assert!(matches!(*rx_waiting.borrow_and_update(), Slot::Present(_)));
    assert!(cache.get("ns", "c").is_some());
    cache.handle(Event::Delete(cr("c", "3")));
    assert!(matches!(*rx_waiting.borrow_and_update(), Slot::Deleted));
    assert!(cache.get("ns", "c").is_none());
}

fn labelled(ns: &str, name: &str, volume: &str, owner: &str) -> CertificateRequest {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, OwnerReference};
    let mut c = cr(name, &format!("uid-{name}"));
    c.metadata.namespace = Some(ns.into());
    c.metadata.labels = Some(
        [
            (LABEL_NODE_ID_HASH.to_owned(), label_hash("node-a")),
            (LABEL_VOLUME_ID_HASH.to_owned(), label_hash(volume)),
            ("noise.example.com/x".to_owned(), "y".repeat(60)),
        ]
        .into(),
    );
    c.metadata.annotations = Some(
        [
            (ANNOTATION_VOLUME_ID.to_owned(), volume.to_owned()),
            ("noise.example.com/big".to_owned(), "z".repeat(100_000)),
        ]
        .into(),
    );
    c.metadata.owner_references = Some(vec![OwnerReference {
        kind: "Pod".into(),
        uid: owner.into(),
        ..Default::default()
    }]);
    c.metadata.managed_fields = Some(vec![ManagedFieldsEntry::default()]);
    c.spec.request = vec![b'A'; 100_000];
    c
}

fn managed(volume: &str, ns: &str, pod_uid: &str) -> ManagedVolume {
    ManagedVolume {
        volume_id: volume.into(),
        namespace: ns.into(),
        pod_uid: Some(pod_uid.into()),
    }
}

#[test]
fn only_requests_of_managed_volumes_are_kept_slimmed() {
    let cache = Cache::with_admission(Admission::new(
        true,
        Caps::node(100),
        [managed("csi-mine", "app", "pod-1")],
    ));
    cache.handle(Event::Init);
    cache.handle(Event::InitApply(labelled("app", "ok", "csi-mine", "pod-1")));
    // Another namespace, another owner, another volume: all foreign.
    cache.handle(Event::InitApply(labelled(
        "evil", "ns", "csi-mine", "pod-1",
    )));
    cache.handle(Event::InitApply(labelled(
        "app", "owner", "csi-mine", "pod-2",
    )));
    cache.handle(Event::InitApply(labelled(
        "app",
        "vol",
        "csi-other",
        "pod-1",
    )));
    cache.handle(Event::InitDone);
    assert_eq!(cache.len(), 1);
    assert_eq!(cache.admission.ignored().foreign, 3);
    let kept = cache.get("app", "ok").unwrap().object;
    assert!(kept.spec.request.is_empty(), "the CSR is not kept");
    assert!(kept.metadata.managed_fields.is_none());
    assert_eq!(kept.metadata.labels.as_ref().unwrap().len(), 2);
    assert_eq!(kept.metadata.annotations.as_ref().unwrap().len(), 1);

    // A volume registered later: its new requests are kept; forgotten:
    // they are dropped.
    cache.admission.manage(managed("csi-late", "app", "pod-3"));
    cache.handle(Event::Apply(labelled("app", "late", "csi-late", "pod-3")));
    assert!(cache.get("app", "late").is_some());
    cache.admission.forget("csi-late");
    cache.drop_unowned("csi-late");
    assert!(cache.get("app", "late").is_none());
    assert!(cache.get("app", "ok").is_some());
}

#[test]
fn the_cache_holds_at_most_its_limit() {
    let cache = Cache::with_admission(Admission::new(false, Caps::node(2), []));
    for name in ["a", "b", "c", "d"] {
        cache.handle(Event::Apply(labelled("ns", name, "v", "p")));
    }
    assert_eq!(cache.len(), 2);
    assert_eq!(cache.admission.ignored().over_limit, 2);
    // Updates of held requests still apply; a delete makes room.
    cache.handle(Event::Apply(labelled("ns", "a", "v", "p")));
    cache.handle(Event::Delete(labelled("ns", "b", "v", "p")));
    cache.handle(Event::Apply(labelled("ns", "c", "v", "p")));
    assert!(cache.get("ns", "c").is_some());
    assert_eq!(cache.admission.ignored().over_limit, 2);
}

#[test]
fn unseen_slots_are_released() {
    let cache = Cache::new();
    let rx = cache.subscribe("ns", "x");
    cache.release("ns", "x");
    assert_eq!(cache.lock().entries.len(), 1, "still waited on");
    drop(rx);
    cache.release("ns", "x");
    assert!(cache.lock().entries.is_empty());
}

#[test]
fn backoff_doubles_to_max_and_resets() {
    let mut b = WatchBackoff::new(Duration::from_millis(100), Duration::from_millis(350));
    let d: Vec<Duration> = (0..4).map(|_| b.next().unwrap()).collect();
    let within = |d: Duration, base: u64| {
        d >= Duration::from_millis(base) && d <= Duration::from_millis(base).mul_f64(1.25)
    };
    assert!(within(d[0], 100) && within(d[1], 200), "{d:?}");
    assert!(within(d[2], 350) && within(d[3], 350), "{d:?}");
    b.reset();
    assert!(within(b.next().unwrap(), 100));
}

/// One namespace's look-alike requests (its own volume's labels, its own
/// Pod as owner) fill only that namespace's and that volume's share: another
/// namespace's requests are still admitted, the driver's own requests are
/// admitted whatever the caps, refusals are counted per namespace, and a
/// refused object never takes another volume's waiter.
#[test]
fn one_namespace_cannot_fill_the_watch_for_others() {
    let caps = Caps {
        node: 40,
        namespace: 20,
        volume: 4,
    };
    let cache = Cache::with_admission(Admission::new(
        true,
        caps,
        [
            managed("csi-evil-0", "evil", "pod-e"),
            managed("csi-evil-1", "evil", "pod-e"),
            managed("csi-victim", "good", "pod-v"),
        ],
    ));
    for volume in ["csi-evil-0", "csi-evil-1"] {
        for i in 0..100 {
            cache.handle(Event::Apply(labelled(
                "evil",
                &format!("{volume}-{i}"),
                volume,
                "pod-e",
            )));
        }
    }
    assert_eq!(cache.len(), 8, "four per volume");
    assert_eq!(cache.admission.ignored().over_limit, 192);
    assert_eq!(
        cache.admission.refused_by_namespace(),
        vec![("evil".to_owned(), 192)]
    );
    // The evil volume's own request, named before it is created, is admitted.
    cache.admission.expect("evil", "mine", "csi-evil-0");
    cache.handle(Event::Apply(labelled(
        "evil",
        "mine",
        "csi-evil-0",
        "pod-e",
    )));
    assert!(cache.get("evil", "mine").is_some());

    // Another namespace is untouched: its waiter sees its request.
    let mut rx = cache.subscribe("good", "victim-1");
    cache.handle(Event::Apply(labelled(
        "good",
        "victim-1",
        "csi-victim",
        "pod-v",
    )));
    assert!(matches!(*rx.borrow_and_update(), Slot::Present(_)));

    // Over the volume's cap, a refused request leaves a waiter's slot alone.
    for i in 0..3 {
        cache.handle(Event::Apply(labelled(
            "good",
            &format!("victim-fill-{i}"),
            "csi-victim",
            "pod-v",
        )));
    }
    let mut waiting = cache.subscribe("good", "victim-late");
    cache.handle(Event::Apply(labelled(
        "good",
        "victim-late",
        "csi-victim",
        "pod-v",
    )));
    assert!(matches!(*waiting.borrow_and_update(), Slot::Unseen));
    // ... and the same request, when the driver created it, is admitted.
    cache.admission.expect("good", "victim-late", "csi-victim");
    cache.handle(Event::Apply(labelled(
        "good",
        "victim-late",
        "csi-victim",
        "pod-v",
    )));
    assert!(matches!(*waiting.borrow_and_update(), Slot::Present(_)));

    // A relist applies the same caps and keeps the driver's own.
    cache.handle(Event::Init);
    for i in 0..100 {
        cache.handle(Event::InitApply(labelled(
            "evil",
            &format!("csi-evil-0-{i}"),
            "csi-evil-0",
            "pod-e",
        )));
    }
    cache.handle(Event::InitApply(labelled(
        "evil",
        "mine",
        "csi-evil-0",
        "pod-e",
    )));
    cache.handle(Event::InitApply(labelled(
        "good",
        "victim-late",
        "csi-victim",
        "pod-v",
    )));
    cache.handle(Event::InitDone);
    assert!(cache.get("evil", "mine").is_some());
    assert!(cache.get("good", "victim-late").is_some());
    assert_eq!(cache.len(), 6, "four look-alikes and the two own requests");
    // A delete ends the driver's claim on the name.
    cache.handle(Event::Delete(labelled(
        "evil",
        "mine",
        "csi-evil-0",
        "pod-e",
    )));
    assert!(!cache.admission.is_own(&("evil".into(), "mine".into())));
}

/// A request labelled for the node but without a volume label (the Pod
/// signer's, after a failover none of them this replica's own).
fn volumeless(ns: &str, name: &str) -> CertificateRequest {
    let mut c = cr(name, &format!("uid-{name}"));
    c.metadata.namespace = Some(ns.into());
    c.metadata.labels = Some([(LABEL_NODE_ID_HASH.to_owned(), label_hash("node-a"))].into());
    c
}

/// The per-volume cap counts only requests that carry a volume label:
/// requests of no volume are bounded by their namespace's and the node's
/// caps alone (they do not share one "volume" of four), and they do not eat
/// into a labelled volume's share; a labelled volume keeps its own cap.
#[test]
fn requests_of_no_volume_are_bounded_by_namespace_and_node_caps_alone() {
    let caps = Caps {
        node: 30,
        namespace: 12,
        volume: 4,
    };
    let cache = Cache::with_admission(Admission::new(false, caps, []));
    for i in 0..20 {
        cache.handle(Event::Apply(volumeless("a", &format!("a-{i}"))));
    }
    assert_eq!(cache.len(), 12, "the namespace's cap, not the volume's");
    assert_eq!(cache.admission.ignored().over_limit, 8);

    // A labelled volume beside unlabelled requests keeps its own cap of four;
    // the unlabelled ones fill the rest of the namespace's share.
    for i in 0..10 {
        cache.handle(Event::Apply(labelled(
            "b",
            &format!("v-{i}"),
            "csi-v",
            "pod",
        )));
    }
    for i in 0..10 {
        cache.handle(Event::Apply(volumeless("b", &format!("b-{i}"))));
    }
    let held = |ns: &str, prefix: &str| {
        cache
            .select(|c| {
                c.metadata.namespace.as_deref() == Some(ns)
                    && c.metadata
                        .name
                        .as_ref()
                        .is_some_and(|n| n.starts_with(prefix))
            })
            .len()
    };
    assert_eq!((held("b", "v-"), held("b", "b-")), (4, 8));

    // The node's cap bounds them all.
    for i in 0..20 {
        cache.handle(Event::Apply(volumeless("c", &format!("c-{i}"))));
    }
    assert_eq!(cache.len(), 30);
    assert_eq!(held("c", "c-"), 6);

    // A relist applies the same rule; a delete makes room in the namespace.
    cache.handle(Event::Init);
    for i in 0..20 {
        cache.handle(Event::InitApply(volumeless("a", &format!("a-{i}"))));
    }
    cache.handle(Event::InitDone);
    assert_eq!(cache.len(), 12);
    cache.handle(Event::Delete(volumeless("a", "a-0")));
    cache.handle(Event::Apply(volumeless("a", "a-19")));
    assert!(cache.get("a", "a-19").is_some());
}

#[test]
fn a_watch_counts_as_failing_only_while_its_failures_keep_coming() {
    use std::time::{Duration, Instant};
    let t0 = Instant::now();
    let bound = Duration::from_secs(30);
    let mut h = WatchHealth::default();
    assert_eq!(h.failing_for(t0, bound), None, "a working watch");
    h.failing_since = Some(t0);
    h.last_failure = Some(t0 + Duration::from_secs(50));
    assert_eq!(
        h.failing_for(t0 + Duration::from_secs(90), bound),
        Some(Duration::from_secs(90)),
        "failed 40s ago, within twice the retry bound: still failing"
    );
    assert_eq!(
        h.failing_for(t0 + Duration::from_secs(111), bound),
        None,
        "no failure for more than twice the retry bound: it reconnected quietly"
    );
}

#[test]
fn an_event_after_failures_clears_the_failing_time() {
    let cache = Cache::new();
    cache.health.send_modify(|h| {
        h.failing_since = Some(std::time::Instant::now());
        h.last_failure = h.failing_since;
        h.last_error = Some("connection refused".into());
    });
    cache.handle(Event::Init);
    cache.handle(Event::InitDone);
    let h = cache.health();
    assert_eq!(
        (h.failing_since, h.last_failure, h.last_error),
        (None, None, None)
    );
}

/// The names `select_labelled` finds for `volume`, sorted.
fn labelled_names(cache: &Cache, volume: &str) -> Vec<String> {
    let mut names: Vec<String> = cache
        .select_labelled(&label_hash(volume), |_| true)
        .into_iter()
        .map(|s| s.key.name)
        .collect();
    names.sort();
    names
}

#[test]
fn a_volumes_requests_are_found_through_the_label_index() {
    let cache = Cache::with_admission(Admission::new(
        true,
        Caps::node(100),
        [
            managed("csi-a", "app", "pod-a"),
            managed("csi-b", "app", "pod-b"),
        ],
    ));
    cache.handle(Event::Init);
    cache.handle(Event::InitApply(labelled("app", "a1", "csi-a", "pod-a")));
    cache.handle(Event::InitApply(labelled("app", "b1", "csi-b", "pod-b")));
    cache.handle(Event::InitDone);
    cache.handle(Event::Apply(labelled("app", "a2", "csi-a", "pod-a")));
    assert_eq!(labelled_names(&cache, "csi-a"), ["a1", "a2"]);
    assert_eq!(labelled_names(&cache, "csi-b"), ["b1"]);
    assert!(cache.lock().index_matches_entries());

    // Relabelled to the other volume: it moves in the index.
    cache.handle(Event::Apply(labelled("app", "a2", "csi-b", "pod-b")));
    assert_eq!(labelled_names(&cache, "csi-a"), ["a1"]);
    assert_eq!(labelled_names(&cache, "csi-b"), ["a2", "b1"]);
    // Updated in place: still there, once.
    cache.handle(Event::Apply(labelled("app", "b1", "csi-b", "pod-b")));
    assert_eq!(labelled_names(&cache, "csi-b"), ["a2", "b1"]);

    // Deleted, and dropped by a relist that no longer lists it.
    cache.handle(Event::Delete(labelled("app", "a1", "csi-a", "pod-a")));
    assert!(labelled_names(&cache, "csi-a").is_empty());
    cache.handle(Event::Init);
    cache.handle(Event::InitApply(labelled("app", "b1", "csi-b", "pod-b")));
    cache.handle(Event::InitDone);
    assert_eq!(labelled_names(&cache, "csi-b"), ["b1"]);
    assert!(cache.lock().index_matches_entries());

    // A forgotten volume's requests leave the index with it.
    cache.admission.forget("csi-b");
    cache.drop_unowned("csi-b");
    assert!(labelled_names(&cache, "csi-b").is_empty());
    assert!(cache.lock().index_matches_entries());
    assert!(cache.lock().by_volume.is_empty());
}
