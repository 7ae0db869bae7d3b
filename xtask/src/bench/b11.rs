//! B11: a renewal storm. 1,000 volumes fall due while the API is down for
//! 60 s; after it returns, the driver's API request rate stays within its
//! client's QPS/burst, every volume is renewed within 1.2 × (1,000 / the
//! node's renewal rate) s of the API's return, and no certificate expires.
//!
//! The volumes are made to fall due together inside the outage: each one's
//! `renew-before` is chosen at its publish so that its renewal time is the
//! same instant for all (the planner's jitter, at most 5 % of the lifetime,
//! moves some a little earlier, still inside the outage), and the lifetime
//! is long enough that a renewal at the bound's end is still in time.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Result, bail};
use cmcsi_keygen::ChainSummary;
use cmcsi_testkit::kubelet::Pod;

use super::measure::{Figures, ISSUER, Node, Options, volume_id};

/// The driver's default `--max-renewals-per-second`.
const RENEWAL_RATE: f64 = 5.0;
/// The client's rate limit, set explicitly (the driver's built-in defaults).
const QPS: f64 = 50.0;
const BURST: f64 = 100.0;
const OUTAGE: Duration = Duration::from_secs(60);
/// Publishes in flight at once.
const CONCURRENCY: usize = 8;
/// Before the common due instant, the API goes down this long ahead (more
/// than the largest jitter, 5 % of the lifetime).
const DOWN_AHEAD: Duration = Duration::from_secs(30);

/// Runs B11 into `f` with `opts.b11_volumes` volumes.
pub async fn b11(opts: &Options, f: &mut Figures) -> Result<()> {
    let n = opts.b11_volumes;
    let bound = 1.2 * n as f64 / RENEWAL_RATE;
    eprintln!(
        "bench: B11: {n} volumes fall due during a {} s API outage; all renewed within {bound:.0} s of its end?",
        OUTAGE.as_secs()
    );
    let qps = QPS.to_string();
    let burst = BURST.to_string();
    let rate = RENEWAL_RATE.to_string();
    let node = Node::start(
        opts,
        "b11",
        &[
            "--kube-api-qps",
            &qps,
            "--kube-api-burst",
            &burst,
            "--max-renewals-per-second",
            &rate,
        ],
        false,
    )
    .await?;
    let result = storm(&node, n, bound, f).await;
    node.stop().await?;
    result
}

async fn storm(node: &Node, n: usize, bound: f64, f: &mut Figures) -> Result<()> {
    // Publishing ~0.05 s a volume on a quiet machine; allow twice that.
    let publish_budget = Duration::from_secs_f64(20.0 + 0.1 * n as f64);
    let start = Instant::now();
    let due_at = start + publish_budget + DOWN_AHEAD;
    // Renewed by the bound's end after the API returns, with a minute to
    // spare: then no certificate may expire.
    let lifetime = publish_budget
        + DOWN_AHEAD
        + OUTAGE
        + Duration::from_secs_f64(bound)
        + Duration::from_secs(60);
    let lifetime_s = lifetime.as_secs();
    let lifetime_attr = format!("{lifetime_s}s");

    let next = std::sync::atomic::AtomicUsize::new(0);
    let worker = || async {
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if i >= n {
                return Ok::<_, anyhow::Error>(());
            }
            // Due at `due_at`: notAfter − renew-before = now + (due_at − now).
            let until_due = due_at.saturating_duration_since(Instant::now()).as_secs();
            let renew_before = format!("{}s", lifetime_s.saturating_sub(until_due));
            let attrs = [
                ("csi.cert-manager.io/issuer-name", ISSUER),
                (
                    "csi.cert-manager.io/dns-names",
                    "${POD_NAME}.${POD_NAMESPACE}.svc",
                ),
                ("csi.cert-manager.io/key-algorithm", "ECDSA"),
                ("csi.cert-manager.io/duration", lifetime_attr.as_str()),
                ("csi.cert-manager.io/renew-before", renew_before.as_str()),
            ];
            // A few namespaces, as on a real node (fairness is per namespace).
            let pod = Pod::new(&format!("b11-{}", i % 4), &format!("storm-{i}"));
            node.publish(&volume_id(11, i), &pod, &attrs).await?;
        }
    };
    let results = futures::future::join_all((0..CONCURRENCY).map(|_| worker())).await;
    for r in results {
        r?;
    }
    let published = start.elapsed();
    f.insert("b11_publish_s", published.as_secs_f64());
    if published > publish_budget {
        bail!(
            "B11: publishing {n} volumes took {:.0} s, more than the {:.0} s planned before they \
             fall due; run on a quieter machine or with fewer volumes (--b11-volumes)",
            published.as_secs_f64(),
            publish_budget.as_secs_f64()
        );
    }
    let mut first: BTreeMap<usize, ChainSummary> = BTreeMap::new();
    for i in 0..n {
        first.insert(i, cert(node, i)?);
    }

    // Down before the first volume falls due, for OUTAGE.
    tokio::time::sleep_until((due_at - DOWN_AHEAD).into()).await;
    node.api.go_down().await?;
    eprintln!("bench:   API down for {} s", OUTAGE.as_secs());
    tokio::time::sleep(OUTAGE).await;
    node.api.come_up().await?;
    let up = Instant::now();
    let base = node.api.counts().total();
    eprintln!("bench:   API back; waiting for {n} renewals");

    // Request counts every 100 ms; each volume's certificate every second.
    let mut samples: Vec<(f64, f64)> = vec![(0.0, 0.0)];
    let mut renewed_at: BTreeMap<usize, f64> = BTreeMap::new();
    let mut expired = 0usize;
    let deadline = Duration::from_secs_f64(2.0 * bound + 60.0);
    let mut last_scan = Instant::now() - Duration::from_secs(1);
    while renewed_at.len() < n && up.elapsed() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        samples.push((
            up.elapsed().as_secs_f64(),
            (node.api.counts().total() - base) as f64,
        ));
        if last_scan.elapsed() < Duration::from_secs(1) {
            continue;
        }
        last_scan = Instant::now();
        let now = SystemTime::now();
        for (i, old) in &first {
            if renewed_at.contains_key(i) {
                continue;
            }
            // A swap in progress reads as no change: seen at the next scan.
            let Ok(c) = cert(node, *i) else { continue };
            if c.serial_hex != old.serial_hex {
                renewed_at.insert(*i, up.elapsed().as_secs_f64());
                if now > old.not_after {
                    expired += 1;
                }
            } else if now > old.not_after {
                expired += 1;
                renewed_at.insert(*i, f64::INFINITY);
            }
        }
    }
    let missing = n - renewed_at.len();
    let all_renewed = if missing == 0 {
        renewed_at.values().copied().fold(0.0, f64::max)
    } else {
        f64::INFINITY
    };
    eprintln!(
        "bench:   {} of {n} renewed, the last {all_renewed:.1} s after the API's return; {expired} expired",
        renewed_at.len()
    );
    f.insert("b11_volumes", n as f64);
    f.insert("b11_renewal_rate", RENEWAL_RATE);
    f.insert("b11_all_renewed_s", all_renewed);
    f.insert("b11_renewed_limit_s", bound);
    f.insert("b11_expired", (expired + missing) as f64);
    f.insert("b11_api_rate_ratio", peak_rate_ratio(&samples, QPS, BURST));
    f.insert(
        "b11_api_requests_after_return",
        samples.last().map_or(0.0, |s| s.1),
    );
    Ok(())
}

/// The largest share of the client's allowance any window used: over every
/// pair of samples, requests in between / (burst + qps × the window's
/// length). A token bucket of `qps` and `burst` never exceeds 1.
fn peak_rate_ratio(samples: &[(f64, f64)], qps: f64, burst: f64) -> f64 {
    let mut peak: f64 = 0.0;
    for (i, (t0, c0)) in samples.iter().enumerate() {
        for (t1, c1) in &samples[i + 1..] {
            peak = peak.max((c1 - c0) / (burst + qps * (t1 - t0)));
        }
    }
    peak
}

fn cert(node: &Node, i: usize) -> Result<ChainSummary> {
    let pem = std::fs::read(node.target(&volume_id(11, i)).join("crt.pem"))?;
    Ok(ChainSummary::from_pem(&pem)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_ratio_is_a_token_buckets_share() {
        // 100 at once (the burst), then 50 a second: exactly the allowance.
        let mut samples = vec![(0.0, 0.0), (0.1, 100.0)];
        for k in 1..=10 {
            samples.push((0.1 + k as f64, 100.0 + 50.0 * k as f64));
        }
        let r = peak_rate_ratio(&samples, 50.0, 100.0);
        assert!(r <= 1.0 && r > 0.95, "{r}");
        // 200 within a tenth of a second is twice the burst's worth.
        let r = peak_rate_ratio(&[(0.0, 0.0), (0.1, 210.0)], 50.0, 100.0);
        assert!(r > 1.9, "{r}");
    }
}
