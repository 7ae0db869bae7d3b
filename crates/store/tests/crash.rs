//! Crash safety: a child process writes file sets and metadata in a loop and
//! is killed with SIGKILL at random points, again and again. After every kill
//! the set a Pod would see is entirely one generation and the metadata parses.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cmcsi_store::{FileSet, Metadata, Store, StoreOptions};
use common::*;

/// Set (to the data root) in the child process.
const CHILD_ENV: &str = "CMCSI_STORE_CRASH_CHILD_ROOT";
const KILLS: u32 = 220;
const VOLUME: &str = "csi-crash-test";
/// Always in the set.
const FIXED: [&str; 4] = ["crt.pem", "key.pem", "ca.pem", "bar/foo.crt"];
/// Only in even generations, so names come and go too.
const EVEN_ONLY: &str = "extra/even.pem";

fn generation_set(generation: u64) -> FileSet {
    let mut s = FileSet::new();
    // Sizes vary with the generation so writes are not all the same length.
    let body = format!(
        "generation {generation}\n{}",
        "x".repeat((generation % 97) as usize * 40)
    );
    for name in FIXED {
        s.insert(name, body.clone());
    }
    if generation.is_multiple_of(2) {
        s.insert(EVEN_ONLY, body.clone());
    }
    s
}

fn generation_of(contents: &str) -> u64 {
    contents
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("generation "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a generation file: {contents:?}"))
}

/// The child's body. A no-op when run as an ordinary test.
#[test]
fn crash_child_writer() {
    let Some(root) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let store = Store::open(
        Path::new(&root),
        StoreOptions {
            mount_tmpfs: false,
            tmpfs_size: None,
        },
    )
    .unwrap();
    let mut meta = match store.read_metadata(VOLUME) {
        Ok(m) => m,
        Err(_) => {
            let m = Metadata::new(VOLUME, "/target");
            store.create_volume(&m, None).unwrap();
            m
        }
    };
    let mut generation: u64 = meta
        .volume_context
        .get("generation")
        .and_then(|g| g.parse().ok())
        .unwrap_or(0);
    if generation == 0 {
        generation = 1;
        store.write_files(VOLUME, &generation_set(1), None).unwrap();
        meta.volume_context.insert("generation".into(), "1".into());
        store.write_metadata(&meta).unwrap();
    }
    println!("CRASH-CHILD-READY");
    std::io::stdout().flush().unwrap();
    loop {
        generation += 1;
        store
            .write_files(VOLUME, &generation_set(generation), None)
            .unwrap();
        meta.volume_context
            .insert("generation".into(), generation.to_string());
        meta.next_issuance_time = Some(SystemTime::now());
        store.write_metadata(&meta).unwrap();
    }
}

/// Checks what a Pod would see; returns the visible generation.
fn check_visible(store: &Store) -> u64 {
    let data = store.data_dir(VOLUME).unwrap();
    let gens: Vec<u64> = FIXED
        .iter()
        .map(|name| {
            let s = std::fs::read_to_string(data.join(name))
                .unwrap_or_else(|e| panic!("{name} not readable: {e}"));
            generation_of(&s)
        })
        .collect();
    let generation = gens[0];
    assert!(gens.iter().all(|g| *g == generation), "mixed set: {gens:?}");
    assert_eq!(
        std::fs::read_to_string(data.join(FIXED[0])).unwrap(),
        std::str::from_utf8(generation_set(generation).get(FIXED[0]).unwrap()).unwrap(),
        "contents complete"
    );
    match std::fs::read_to_string(data.join(EVEN_ONLY)) {
        Ok(s) => {
            assert_eq!(
                generation % 2,
                0,
                "{EVEN_ONLY} visible in odd generation {generation}"
            );
            assert_eq!(generation_of(&s), generation);
        }
        Err(e) => {
            assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
            assert_eq!(
                generation % 2,
                1,
                "{EVEN_ONLY} missing in even generation {generation}"
            );
        }
    }
    generation
}

#[test]
fn sigkill_at_random_points_never_leaves_a_mixed_set() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let tmp = tempdir();
    let root = tmp.path().to_path_buf();
    let exe = std::env::current_exe().unwrap();
    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        | 1;
    println!("crash test seed {seed}");
    let mut last_visible = 0;
    let mut last_meta = 0;
    for kill in 0..KILLS {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child_writer",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &root)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = lines.any(|l| l.map(|l| l.ends_with("CRASH-CHILD-READY")).unwrap_or(false));
        if !ready {
            let out = child.wait_with_output().unwrap();
            panic!(
                "child {kill} did not start: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // xorshift: a random point within the first ~15 ms of writing.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_micros(seed % 15_000));
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(!status.success(), "child {kill} exited by itself: {status}");

        // The dead child's lock is gone with it.
        let store = Store::open(
            &root,
            StoreOptions {
                mount_tmpfs: false,
                tmpfs_size: None,
            },
        )
        .unwrap();
        let visible = check_visible(&store);
        let meta = store.read_metadata(VOLUME).unwrap();
        let meta_gen: u64 = meta.volume_context["generation"].parse().unwrap();
        // Files are written before metadata: metadata lags by at most one.
        assert!(
            meta_gen == visible || meta_gen + 1 == visible,
            "kill {kill}: metadata generation {meta_gen}, files {visible}"
        );
        assert!(
            visible >= last_visible && meta_gen >= last_meta,
            "went backwards"
        );
        let rec = store.list().unwrap();
        assert_eq!(rec.volumes.len(), 1);
        assert!(rec.set_aside.is_empty(), "{:?}", rec.set_aside);
        let reused = store.read_current_file(VOLUME, "key.pem").unwrap().unwrap();
        assert_eq!(
            generation_of(std::str::from_utf8(&reused).unwrap()),
            visible
        );
        last_visible = visible;
        last_meta = meta_gen;
    }
    println!("{KILLS} kills, last visible generation {last_visible}");
    assert!(last_visible > 1, "the child never got to write");
    // Whatever the kills left behind is cleaned up by the next write.
    let store = Store::open(
        &root,
        StoreOptions {
            mount_tmpfs: false,
            tmpfs_size: None,
        },
    )
    .unwrap();
    store
        .write_files(VOLUME, &generation_set(last_visible + 1), None)
        .unwrap();
    let data = store.data_dir(VOLUME).unwrap();
    assert_eq!(set_dirs(&data).len(), 1, "leftovers: {:?}", set_dirs(&data));
}
