//! R1, crashes: the driver is killed with SIGKILL at random instants across
//! hundreds of publish and renewal cycles, and restarted each time. After
//! every kill (while the driver is dead, so nothing moves) each volume shows a
//! complete, matching key and certificate or none yet, every mounted Pod
//! volume still serves, no volume has more than one live request, and nothing
//! stray is in the store. Over the whole run, a request in flight at a kill is
//! always resumed, never asked for a second time.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cmcsi_testkit::in_mount_namespace;
use cmcsi_testkit::kubelet::{prepare_target, publish_request};
use cmcsi_testkit::{FakeApi, Script, Verb};
use common::{
    Harness, Pod, Rng, is_failed, is_mounted, is_signed, json_events, mounts_under, publish_at,
    read_set, requests_for, set_matches, unpublish_at,
};

const NS: &str = "crash";
/// Publish and renewal cycles the run must reach.
const MIN_CYCLES: usize = 200;
/// Volumes alive at any time.
const LIVE_VOLUMES: usize = 10;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Want {
    Published,
    Unpublished,
}

#[derive(Debug)]
struct Vol {
    pod: String,
    target: PathBuf,
    want: Want,
    /// The last publish returned OK (and no unpublish since).
    published: bool,
    /// Unpublish returned OK.
    gone: bool,
}

type Kubelet = Arc<Mutex<BTreeMap<String, Vol>>>;

fn attrs() -> [(&'static str, &'static str); 4] {
    [
        ("csi.cert-manager.io/issuer-name", "ca-issuer"),
        ("csi.cert-manager.io/dns-names", "crash.example.com"),
        ("csi.cert-manager.io/duration", "3s"),
        ("csi.cert-manager.io/key-algorithm", "ECDSA"),
    ]
}

/// One volume's kubelet loop: publish until it succeeds (checking the files
/// at once), later unpublish until that succeeds. Survives driver restarts.
fn spawn_kubelet(
    kubelet: &Kubelet,
    socket: PathBuf,
    volume: String,
    errors: Arc<Mutex<Vec<String>>>,
) -> tokio::task::JoinHandle<()> {
    let kubelet = Arc::clone(kubelet);
    tokio::spawn(async move {
        loop {
            let (want, published, pod, target) = {
                let k = kubelet.lock().unwrap();
                let v = &k[&volume];
                (v.want, v.published, v.pod.clone(), v.target.clone())
            };
            match want {
                Want::Published if !published => {
                    prepare_target(&target).unwrap();
                    let req =
                        publish_request(&volume, &target, Pod::new(NS, &pod).context(&attrs()));
                    match publish_at(&socket, req).await {
                        Ok(()) => {
                            // Reported published: the Pod must see a full set now.
                            match read_set(&target, "key.pem", "crt.pem") {
                                Some((k, c)) => {
                                    if let Err(e) = set_matches(&k, &c) {
                                        errors.lock().unwrap().push(format!(
                                            "{volume}: published with a broken set: {e}"
                                        ));
                                    }
                                }
                                None => errors
                                    .lock()
                                    .unwrap()
                                    .push(format!("{volume}: reported published but empty")),
                            }
                            kubelet.lock().unwrap().get_mut(&volume).unwrap().published = true;
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(150)).await,
                    }
                }
                Want::Published => tokio::time::sleep(Duration::from_millis(50)).await,
                Want::Unpublished => match unpublish_at(&socket, &volume, &target).await {
                    Ok(()) => {
                        let mut k = kubelet.lock().unwrap();
                        let v = k.get_mut(&volume).unwrap();
                        v.gone = true;
                        v.published = false;
                        return;
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(150)).await,
                },
            }
        }
    })
}

/// Checks the store and the mounts while the driver is dead. Returns the
/// live request recorded in each volume's pending file.
fn check_frozen(
    h: &Harness,
    kubelet: &Kubelet,
    known: &BTreeSet<String>,
    errors: &mut Vec<String>,
) -> HashMap<String, String> {
    let mut pending = HashMap::new();
    let inmemfs = h.data_root.join("inmemfs");
    for entry in std::fs::read_dir(&inmemfs).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name == ".quarantine" {
            let q: Vec<_> = std::fs::read_dir(inmemfs.join(&name)).unwrap().collect();
            if !q.is_empty() {
                errors.push(format!("the store set entries aside: {q:?}"));
            }
            continue;
        }
        if name.starts_with('.') {
            // An interrupted volume creation; removed at the next start.
            continue;
        }
        if !known.contains(&name) {
            errors.push(format!("stray entry in the data root: {name}"));
            continue;
        }
        let vol = inmemfs.join(&name);
        let meta = std::fs::read(vol.join("metadata.json")).unwrap();
        if let Err(e) = serde_json::from_slice::<serde_json::Value>(&meta) {
            errors.push(format!("{name}: metadata.json is not JSON: {e}"));
        }
        let data = vol.join("data");
        if let Some((k, c)) = read_set(&data, "key.pem", "crt.pem")
            && let Err(e) = set_matches(&k, &c)
        {
            errors.push(format!("{name}: stored set is broken: {e}"));
        }
        let sets = std::fs::read_dir(&data)
            .unwrap()
            .filter(|e| {
                let n = e.as_ref().unwrap().file_name();
                let n = n.to_string_lossy();
                n.starts_with("..") && n != "..data"
            })
            .count();
        // The current set, plus at most one left by a write the kill cut
        // short (removed by the next write).
        if sets > 2 {
            errors.push(format!("{name}: {sets} file sets in data/"));
        }
        for entry in std::fs::read_dir(&vol).unwrap() {
            let n = entry.unwrap().file_name().to_string_lossy().into_owned();
            if ![
                "metadata.json",
                "data",
                // The driver's private side files: the in-flight request,
                // the last failed issuance, the request that issued the set.
                "pending-request.json",
                "last-error.json",
                "issued-by",
            ]
            .contains(&n.as_str())
                && !n.starts_with('.')
            {
                errors.push(format!("{name}: unexpected file {n}"));
            }
        }
        if let Ok(raw) = std::fs::read(vol.join("pending-request.json")) {
            let p: serde_json::Value = serde_json::from_slice(&raw).unwrap();
            let req = p["name"].as_str().unwrap().to_string();
            if h.api.request(NS, &req).is_some_and(|r| !is_failed(&r)) {
                pending.insert(name.clone(), req);
            }
        }
    }
    for (volume, v) in kubelet.lock().unwrap().iter() {
        if v.want == Want::Published && v.published {
            if !is_mounted(&v.target) {
                errors.push(format!("{volume}: published but no longer mounted"));
                continue;
            }
            match read_set(&v.target, "key.pem", "crt.pem") {
                Some((k, c)) => {
                    if let Err(e) = set_matches(&k, &c) {
                        errors.push(format!("{volume}: the Pod sees a broken set: {e}"));
                    }
                }
                None => errors.push(format!("{volume}: the Pod sees an empty volume")),
            }
        }
        let reqs = requests_for(&h.api, volume);
        let live = reqs
            .iter()
            .filter(|r| !is_signed(r) && !is_failed(r))
            .count();
        if live > 1 {
            errors.push(format!("{volume}: {live} requests in flight at once"));
        }
        if reqs.len() > 2 {
            errors.push(format!(
                "{volume}: {} requests kept (max-requests-per-volume is 1)",
                reqs.len()
            ));
        }
    }
    pending
}

fn event_str<'a>(e: &'a serde_json::Value, field: &str) -> Option<&'a str> {
    e.get(field).and_then(|v| v.as_str())
}

#[test]
fn sigkill_at_random_instants_never_loses_or_doubles_a_certificate() {
    in_mount_namespace!(async {
        let mut rng = Rng::from_env("R1");
        let api = FakeApi::builder().issuer("ca-issuer", Script::Delay(Duration::from_millis(250)));
        let mut h = Harness::start_with(
            api,
            &[
                "--log-format",
                "json",
                "--recovery-spread",
                "1s",
                "--key-pool-size",
                "0",
                "--issuance-timeout",
                "10s",
                "--renewal-backoff-initial",
                "1s",
                "--renewal-backoff-max",
                "2s",
            ],
        )
        .await;
        let socket = h.socket();
        let kubelet: Kubelet = Arc::new(Mutex::new(BTreeMap::new()));
        let task_errors = Arc::new(Mutex::new(Vec::new()));
        let mut errors = Vec::new();
        let mut known = BTreeSet::new();
        let mut tasks = Vec::new();
        let mut next_id = 0usize;
        let mut new_volume =
            |h: &Harness,
             kubelet: &Kubelet,
             known: &mut BTreeSet<String>,
             tasks: &mut Vec<tokio::task::JoinHandle<()>>| {
                let volume = format!("csi-crash-{next_id:04}");
                let pod = format!("pod-{next_id:04}");
                next_id += 1;
                kubelet.lock().unwrap().insert(
                    volume.clone(),
                    Vol {
                        pod,
                        target: h.target(&volume),
                        want: Want::Published,
                        published: false,
                        gone: false,
                    },
                );
                known.insert(volume.clone());
                tasks.push(spawn_kubelet(
                    kubelet,
                    socket.clone(),
                    volume,
                    Arc::clone(&task_errors),
                ));
            };
        for _ in 0..LIVE_VOLUMES {
            new_volume(&h, &kubelet, &mut known, &mut tasks);
        }

        // (volume, request, log offset after which it must be resumed)
        let mut must_resume: Vec<(String, String, usize)> = Vec::new();
        let mut kills = 0usize;
        let mut unpublished = 0usize;
        let started = Instant::now();
        let issued = |log: &str| {
            json_events(log, 0)
                .iter()
                .filter(|e| {
                    event_str(e, "msg") == Some("issuance")
                        && event_str(e, "outcome") == Some("issued")
                })
                .count()
        };
        while issued(&h.logs()) < MIN_CYCLES || kills < 40 {
            assert!(
                started.elapsed() < Duration::from_secs(240),
                "only {} cycles and {kills} kills in 240 s",
                issued(&h.logs())
            );
            tokio::time::sleep(Duration::from_millis(rng.range(100, 1500))).await;
            h.kill_driver();
            kills += 1;
            let pending = check_frozen(&h, &kubelet, &known, &mut errors);
            let offset = h.logs().len();
            for (volume, req) in pending {
                must_resume.push((volume, req, offset));
            }
            // Pods come and go: now and then one is deleted and another
            // takes its place.
            if rng.chance(30) {
                let mut k = kubelet.lock().unwrap();
                let candidates: Vec<String> = k
                    .iter()
                    .filter(|(_, v)| v.want == Want::Published)
                    .map(|(n, _)| n.clone())
                    .collect();
                let victim = &candidates[rng.range(0, candidates.len() as u64) as usize];
                k.get_mut(victim).unwrap().want = Want::Unpublished;
                unpublished += 1;
                drop(k);
                new_volume(&h, &kubelet, &mut known, &mut tasks);
            }
            if rng.chance(10) {
                // Sometimes the driver comes back after the kubelet has
                // already retried for a while.
                tokio::time::sleep(Duration::from_millis(rng.range(200, 800))).await;
            }
            h.restart_driver().await;
        }

        // Let everything settle: every Pod published, then one last
        // kill to check the final state, then every Pod deleted.
        let settle = Instant::now() + Duration::from_secs(60);
        loop {
            let done = kubelet
                .lock()
                .unwrap()
                .values()
                .all(|v| (v.want == Want::Published && v.published) || v.gone);
            if done {
                break;
            }
            assert!(
                Instant::now() < settle,
                "volumes did not settle: {:?}",
                kubelet.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        h.kill_driver();
        let pending = check_frozen(&h, &kubelet, &known, &mut errors);
        let offset = h.logs().len();
        for (volume, req) in pending {
            must_resume.push((volume, req, offset));
        }
        h.restart_driver().await;
        // Give resumed requests a moment to be picked up, then delete
        // every Pod.
        tokio::time::sleep(Duration::from_secs(2)).await;
        for v in kubelet.lock().unwrap().values_mut() {
            if v.want == Want::Published {
                v.want = Want::Unpublished;
            }
        }
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(60), t)
                .await
                .expect("every Pod is unpublished")
                .unwrap();
        }

        let log = h.logs();
        let events = json_events(&log, 0);
        let cycles = issued(&log);
        eprintln!(
            "R1: {cycles} issuances, {kills} kills, {unpublished} Pods replaced, {} resumptions checked",
            must_resume.len()
        );

        // A request in flight at a kill is the next one issued or resumed
        // for its volume: the kill never causes a second request.
        let mut with_offsets: Vec<(usize, serde_json::Value)> = Vec::new();
        let mut at = 0usize;
        for line in log.lines() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
                with_offsets.push((at, v));
            }
            at += line.len() + 1;
        }
        for (volume, req, offset) in &must_resume {
            let next = with_offsets.iter().find(|(o, e)| {
                *o >= *offset
                    && event_str(e, "volume") == Some(volume.as_str())
                    && (event_str(e, "msg") == Some("resuming in-flight CertificateRequest")
                        || (event_str(e, "msg") == Some("issuance")
                            && event_str(e, "outcome") == Some("issued")))
            });
            match next {
                Some((_, e)) => {
                    if event_str(e, "request") != Some(req.as_str()) {
                        errors.push(format!(
                            "{volume}: {req} was in flight at a kill, but the next request was {e}"
                        ));
                    }
                }
                None => {
                    let k = kubelet.lock().unwrap();
                    if k[volume].want != Want::Unpublished {
                        errors.push(format!("{volume}: {req} was never resumed"));
                    }
                }
            }
        }

        // Every request created was issued into its volume, unless its
        // Pod was deleted first.
        let mut created = BTreeSet::new();
        let mut issued_names = BTreeSet::new();
        for e in &events {
            match event_str(e, "msg") {
                Some("created CertificateRequest")
                | Some("resuming in-flight CertificateRequest") => {
                    if let Some(n) = event_str(e, "name").or(event_str(e, "request")) {
                        created.insert(n.to_string());
                    }
                }
                Some("issuance") if event_str(e, "outcome") == Some("issued") => {
                    issued_names.insert(event_str(e, "request").unwrap().to_string());
                }
                _ => {}
            }
        }
        let pod_of_volume: HashMap<String, (String, Want)> = kubelet
            .lock()
            .unwrap()
            .iter()
            .map(|(n, v)| (v.pod.clone(), (n.clone(), v.want)))
            .collect();
        let mut orphans_of_deleted = 0;
        for name in created.difference(&issued_names) {
            // Names are `<pod>-<random>`; every Pod here is deleted at the
            // end, so an orphan is fine only if its Pod was replaced
            // during the run, not at the very end.
            let pod = name.rsplit_once('-').map(|(p, _)| p).unwrap_or("");
            match pod_of_volume.get(pod) {
                Some(_) => orphans_of_deleted += 1,
                None => errors.push(format!("request {name} belongs to no Pod")),
            }
        }
        assert!(
            orphans_of_deleted <= unpublished + LIVE_VOLUMES,
            "{orphans_of_deleted} requests were created and never issued, \
                 but only {unpublished} Pods were deleted mid-run"
        );
        let creates = h.api.counts().verb(Verb::Create) as usize;
        assert!(
            creates <= created.len(),
            "{creates} creates reached the API, but the driver accounts for {} requests",
            created.len()
        );

        // The node is clean.
        assert_eq!(
            mounts_under(&h.dir.path().join("pods")),
            Vec::<String>::new()
        );
        let left: Vec<_> = std::fs::read_dir(h.data_root.join("inmemfs"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        assert!(left.is_empty(), "volumes left in the store: {left:?}");
        assert!(h.serving().await);
        assert!(
            !log.contains("panicked"),
            "the driver panicked:\n{}",
            log.lines()
                .filter(|l| l.contains("panicked"))
                .collect::<Vec<_>>()
                .join("\n")
        );

        errors.extend(task_errors.lock().unwrap().drain(..));
        assert!(cycles >= MIN_CYCLES, "only {cycles} cycles");
        assert!(
            errors.is_empty(),
            "{} problems:\n{}",
            errors.len(),
            errors.join("\n")
        );
    });
}
