//! Key pool: hits when warm, inline generation when empty, refills after takes, and the
//! bound on concurrent background generations.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use cmcsi_keygen::{Error, KeyPool, KeySpec, PoolConfig, PrivateKey};

fn config(spec: KeySpec, size: usize, max_concurrent: usize) -> PoolConfig {
    PoolConfig {
        sizes: BTreeMap::from([(spec, size)]),
        max_concurrent_generations: max_concurrent,
        max_concurrent_large_rsa: 1,
    }
}

#[tokio::test]
async fn default_config_keeps_rsa_2048_keys_warm() {
    let pool = KeyPool::new(PoolConfig::default()).unwrap();
    assert_eq!(pool.target(&KeySpec::RSA_2048), 4);
    assert_eq!(pool.target(&KeySpec::EcdsaP256), 0);
    pool.fill();
    pool.wait_idle().await;
    assert_eq!(pool.available(&KeySpec::RSA_2048), 4);

    let key = pool.take(&KeySpec::RSA_2048).await.unwrap();
    assert_eq!(key.spec(), KeySpec::RSA_2048);
    let stats = pool.stats();
    assert_eq!((stats.hits, stats.misses), (1, 0));
    assert_eq!(stats.refills, 4);
    // A default pool generates one key at a time.
    assert_eq!(stats.peak_running, 1);
    pool.wait_idle().await;
    assert_eq!(pool.stats().refills, 5);
}

#[tokio::test]
async fn warm_pool_serves_hits_with_distinct_keys() {
    let pool = KeyPool::new(config(KeySpec::EcdsaP256, 3, 2)).unwrap();
    pool.fill();
    pool.wait_idle().await;
    assert_eq!(pool.available(&KeySpec::EcdsaP256), 3);

    let a = pool.take(&KeySpec::EcdsaP256).await.unwrap();
    let b = pool.take(&KeySpec::EcdsaP256).await.unwrap();
    assert_ne!(a.public_key_der().unwrap(), b.public_key_der().unwrap());
    let stats = pool.stats();
    assert_eq!((stats.hits, stats.misses, stats.unpooled), (2, 0, 0));
}

#[tokio::test]
async fn empty_pool_generates_inline_then_refills() {
    let pool = KeyPool::new(config(KeySpec::EcdsaP384, 2, 1)).unwrap();
    // Nothing generated yet: the first take is a miss served inline.
    assert_eq!(pool.available(&KeySpec::EcdsaP384), 0);
    let key = pool.take(&KeySpec::EcdsaP384).await.unwrap();
    assert_eq!(key.spec(), KeySpec::EcdsaP384);
    let stats = pool.stats();
    assert_eq!((stats.hits, stats.misses), (0, 1));

    // The take scheduled the refill.
    pool.wait_idle().await;
    assert_eq!(pool.available(&KeySpec::EcdsaP384), 2);
    assert_eq!(pool.stats().refills, 2);
}

#[tokio::test]
async fn takes_are_refilled_back_to_the_target() {
    let pool = KeyPool::new(config(KeySpec::Ed25519, 3, 2)).unwrap();
    pool.fill();
    pool.wait_idle().await;
    for _ in 0..2 {
        pool.take(&KeySpec::Ed25519).await.unwrap();
    }
    pool.wait_idle().await;
    assert_eq!(pool.available(&KeySpec::Ed25519), 3);
    let stats = pool.stats();
    assert_eq!(stats.hits, 2);
    assert_eq!(stats.refills, 5);
    assert_eq!(stats.available, 3);
    assert_eq!(stats.pending, 0);

    // Filling a full pool schedules nothing.
    pool.fill();
    assert_eq!(pool.stats().pending, 0);
}

#[tokio::test]
async fn unpooled_specs_are_generated_inline_without_refills() {
    let pool = KeyPool::new(PoolConfig::default()).unwrap();
    let key = pool.take(&KeySpec::EcdsaP521).await.unwrap();
    assert_eq!(key.spec(), KeySpec::EcdsaP521);
    let stats = pool.stats();
    assert_eq!((stats.hits, stats.misses, stats.unpooled), (0, 0, 1));
    assert_eq!(pool.available(&KeySpec::EcdsaP521), 0);
    // The take did start the configured RSA refills, though; let them finish.
    pool.wait_idle().await;
    assert_eq!(pool.available(&KeySpec::EcdsaP521), 0);
}

/// A generator that blocks until the test opens the gate, counting how many run at once
/// and how many started. RSA specs get an Ed25519 key, so tests do not spend real seconds.
struct Gate {
    open: Mutex<bool>,
    cv: Condvar,
    active: AtomicUsize,
    max_active: AtomicUsize,
    started: AtomicUsize,
}

impl Gate {
    /// A closed gate and a pool whose generator waits at it.
    fn pool(config: PoolConfig) -> (Arc<Gate>, KeyPool) {
        let gate = Arc::new(Gate {
            open: Mutex::new(false),
            cv: Condvar::new(),
            active: AtomicUsize::new(0),
            max_active: AtomicUsize::new(0),
            started: AtomicUsize::new(0),
        });
        let g = Arc::clone(&gate);
        let pool = KeyPool::with_generator(config, move |spec| g.generate(spec)).unwrap();
        (gate, pool)
    }

    fn generate(&self, spec: &KeySpec) -> Result<PrivateKey, Error> {
        self.started.fetch_add(1, Ordering::SeqCst);
        let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_active.fetch_max(now, Ordering::SeqCst);
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.cv.wait(open).unwrap();
        }
        drop(open);
        self.active.fetch_sub(1, Ordering::SeqCst);
        match spec {
            KeySpec::Rsa { .. } => PrivateKey::generate(&KeySpec::Ed25519),
            _ => PrivateKey::generate(spec),
        }
    }

    /// Waits (bounded) until `n` generations are blocked at the gate.
    async fn wait_active(&self, n: usize) {
        for _ in 0..1000 {
            if self.active.load(Ordering::SeqCst) == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{n} generations never ran at once");
    }

    fn open(&self) {
        *self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        self.cv.notify_all();
    }
}

/// Opens the gate when dropped, also when an assertion fails: the runtime's shutdown
/// waits for its blocking threads, so a closed gate would hang the failing test.
struct OpenOnDrop(Arc<Gate>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_generations_respect_the_concurrency_bound() {
    let (gate, pool) = Gate::pool(config(KeySpec::EcdsaP256, 6, 2));
    pool.fill();
    assert_eq!(pool.stats().pending, 6);

    // Wait (bounded) until the two permitted generations are blocked in the generator.
    for _ in 0..1000 {
        if gate.active.load(Ordering::SeqCst) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(gate.active.load(Ordering::SeqCst), 2);
    // Give the other four every chance to (wrongly) start.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stats = pool.stats();
    assert_eq!(stats.running, 2);
    assert_eq!(stats.pending, 6);
    assert_eq!(gate.active.load(Ordering::SeqCst), 2);

    *gate.open.lock().unwrap() = true;
    gate.cv.notify_all();
    pool.wait_idle().await;
    assert_eq!(gate.max_active.load(Ordering::SeqCst), 2);
    let stats = pool.stats();
    assert_eq!(stats.peak_running, 2);
    assert_eq!(stats.refills, 6);
    assert_eq!(stats.available, 6);
    assert_eq!(stats.running, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refills_wait_while_a_take_generates_inline() {
    let (gate, pool) = Gate::pool(config(KeySpec::EcdsaP256, 2, 2));
    // An empty pool: the take generates inline (blocked at the gate) and
    // schedules two refills, which must not start while it runs.
    let taker = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.take(&KeySpec::EcdsaP256).await })
    };
    for _ in 0..1000 {
        if gate.active.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stats = pool.stats();
    assert_eq!(
        gate.active.load(Ordering::SeqCst),
        1,
        "only the inline generation runs"
    );
    assert_eq!((stats.misses, stats.pending, stats.running), (1, 2, 0));

    *gate.open.lock().unwrap() = true;
    gate.cv.notify_all();
    taker.await.unwrap().unwrap();
    pool.wait_idle().await;
    let stats = pool.stats();
    assert_eq!((stats.refills, stats.available), (2, 2));
}

#[tokio::test]
async fn failing_generator_is_counted_and_reported() {
    let pool = KeyPool::with_generator(config(KeySpec::EcdsaP256, 2, 1), |spec| {
        Err(Error::Generate {
            spec: *spec,
            reason: "no entropy".into(),
        })
    })
    .unwrap();
    let err = pool.take(&KeySpec::EcdsaP256).await.unwrap_err();
    assert!(err.to_string().contains("no entropy"), "{err}");
    pool.wait_idle().await;
    let stats = pool.stats();
    assert_eq!(stats.misses, 1);
    assert_eq!(stats.refill_failures, 2);
    assert_eq!(stats.available, 0);
}

#[test]
fn invalid_specs_are_refused_and_fill_needs_a_runtime() {
    let err = KeyPool::new(config(KeySpec::Rsa { bits: 1024 }, 1, 1)).unwrap_err();
    assert!(matches!(err, Error::UnsupportedSpec { .. }), "{err}");

    // Outside a Tokio runtime, fill() does nothing instead of panicking.
    let pool = KeyPool::new(config(KeySpec::Ed25519, 2, 1)).unwrap();
    pool.fill();
    assert_eq!(pool.stats().pending, 0);
    // Size 0 means "not pooled".
    let pool = KeyPool::new(config(KeySpec::Ed25519, 0, 1)).unwrap();
    assert_eq!(pool.target(&KeySpec::Ed25519), 0);
}

/// A generator that sleeps `delay` per key and counts its calls; it returns a cheap
/// Ed25519 key whatever the spec, so large-RSA tests do not spend real seconds.
fn slow_pool(config: PoolConfig, delay: Duration) -> (Arc<AtomicUsize>, KeyPool) {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let pool = KeyPool::with_generator(config, move |_spec| {
        c.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(delay);
        PrivateKey::generate(&KeySpec::Ed25519)
    })
    .unwrap();
    (calls, pool)
}

const RSA_8192: KeySpec = KeySpec::Rsa { bits: 8192 };

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_large_rsa_takes_stay_within_the_cap_and_a_retry_joins_the_key() {
    let config = PoolConfig {
        sizes: BTreeMap::new(),
        max_concurrent_generations: 1,
        max_concurrent_large_rsa: 1,
    };
    let (calls, pool) = slow_pool(config, Duration::from_millis(400));
    let takes: Vec<_> = (0..20)
        .map(|_| {
            let p = pool.clone();
            tokio::spawn(async move { p.take(&RSA_8192).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(pool.stats().large_rsa_running, 1);
    for t in &takes {
        t.abort();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Cancelled: the one generation already running finishes; none of the others start.
    assert!(pool.stats().large_rsa_running <= 1);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let stats = pool.stats();
    assert_eq!(stats.large_rsa_running, 0);
    assert_eq!(stats.inline_running, 0);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "only the first take generated"
    );

    // The retry gets the key the cancelled take left, without generating again.
    pool.take(&RSA_8192).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(pool.stats().orphans_adopted, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_rsa_cap_bounds_concurrent_takes_but_not_small_keys() {
    let config = PoolConfig {
        sizes: BTreeMap::new(),
        max_concurrent_generations: 1,
        max_concurrent_large_rsa: 2,
    };
    let (_calls, pool) = slow_pool(config, Duration::from_millis(300));
    let mut takes = Vec::new();
    for _ in 0..4 {
        let p = pool.clone();
        takes.push(tokio::spawn(async move { p.take(&RSA_8192).await }));
    }
    let p = pool.clone();
    takes.push(tokio::spawn(
        async move { p.take(&KeySpec::RSA_2048).await },
    ));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stats = pool.stats();
    assert_eq!(stats.large_rsa_running, 2);
    assert_eq!(stats.inline_running, 3, "two large and the RSA-2048 take");
    for t in takes {
        t.await.unwrap().unwrap();
    }
    assert_eq!(pool.stats().large_rsa_running, 0);
}

/// Cancels a take of `spec` mid-generation, then takes again: the retry must join the
/// running generation, not start a second one, and refills must wait meanwhile.
async fn retry_joins_the_cancelled_generation(spec: KeySpec, pooled: usize) {
    let (gate, pool) = Gate::pool(config(spec, pooled, 2));
    let _open = OpenOnDrop(Arc::clone(&gate));
    let first = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.take(&spec).await })
    };
    gate.wait_active(1).await;
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());

    let retry = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.take(&spec).await })
    };
    // Give a second generation, or a refill, every chance to (wrongly) start.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        gate.started.load(Ordering::SeqCst),
        1,
        "{spec}: the retry started a generation of its own"
    );
    assert!(!retry.is_finished());
    let stats = pool.stats();
    assert_eq!(stats.inline_running, 1, "{spec}");
    assert_eq!(stats.running, 0, "{spec}: a refill ran while a take waited");

    gate.open();
    retry.await.unwrap().unwrap();
    let stats = pool.stats();
    assert_eq!(stats.orphans_adopted, 1, "{spec}");
    // The cancelled take was the one miss; the retry counts as neither hit nor miss.
    let (misses, unpooled) = if pooled > 0 { (1, 0) } else { (0, 1) };
    assert_eq!(
        (stats.hits, stats.misses, stats.unpooled),
        (0, misses, unpooled),
        "{spec}"
    );
    pool.wait_idle().await;
    assert_eq!(pool.available(&spec), pooled, "{spec}: refilled afterwards");

    // Nothing is left to join: the next take of an empty pool generates again.
    let before = gate.started.load(Ordering::SeqCst);
    if pooled == 0 {
        pool.take(&spec).await.unwrap();
        assert_eq!(gate.started.load(Ordering::SeqCst), before + 1, "{spec}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_joins_the_generation_of_a_cancelled_take_of_any_spec() {
    retry_joins_the_cancelled_generation(KeySpec::RSA_2048, 0).await;
    retry_joins_the_cancelled_generation(KeySpec::RSA_2048, 2).await;
    retry_joins_the_cancelled_generation(KeySpec::Rsa { bits: 3072 }, 0).await;
    retry_joins_the_cancelled_generation(KeySpec::Rsa { bits: 8192 }, 0).await;
    retry_joins_the_cancelled_generation(KeySpec::EcdsaP256, 1).await;
}
