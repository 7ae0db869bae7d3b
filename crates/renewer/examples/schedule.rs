//! Keep one short-lived "certificate" renewed: an [`Issue`] implementation
//! that fails once (to show the backoff) and otherwise issues a 3-second
//! lifetime; the renewer calls it when each renewal falls due, and the
//! program prints every attempt as it happens, then stops after three
//! issuances.
//!
//! ```text
//! cargo run -p cmcsi-renewer --example schedule
//! ```
//!
//! Replace the body of `issue` with real work (a key, a request, files) and
//! the lifetimes with the issued certificate's `notBefore`/`notAfter`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use cmcsi_renewer::{
    IssuancePermit, Issue, IssueFailure, IssueReason, Lifetime, Outcome, Renewer, RenewerConfig,
    VolumeId,
};

/// Issues 3-second certificates; the second attempt fails.
struct ShortLived {
    attempts: AtomicU32,
}

impl Issue for ShortLived {
    async fn issue(
        &self,
        volume: VolumeId,
        reason: IssueReason,
        _permit: IssuancePermit,
    ) -> Result<Lifetime, IssueFailure> {
        let n = self.attempts.fetch_add(1, Ordering::SeqCst) + 1;
        println!("attempt {n}: issuing {volume} ({reason})");
        if n == 2 {
            return Err(IssueFailure::new("the issuer is not ready (simulated)"));
        }
        let now = SystemTime::now();
        Ok(Lifetime::new(now, now + Duration::from_secs(3)))
    }
}

fn in_ms(at: SystemTime) -> u128 {
    at.duration_since(SystemTime::now())
        .unwrap_or_default()
        .as_millis()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let driver = Arc::new(ShortLived {
        attempts: AtomicU32::new(0),
    });
    let config = RenewerConfig {
        // Quick retries for the demonstration (the default starts at 30 s).
        backoff_initial: Duration::from_millis(500),
        backoff_cap: Duration::from_secs(2),
        ..RenewerConfig::default()
    };
    let renewer = Renewer::start(driver.clone(), config)?;
    let mut events = renewer.subscribe();

    // The first issuance is the caller's (a Pod is waiting); then the
    // renewer takes over.
    let permit = renewer.acquire_first_issuance().await;
    let lifetime = driver
        .issue("csi-example".into(), IssueReason::Requested, permit)
        .await?;
    let due = renewer
        .manage("csi-example", lifetime, false)
        .ok_or("auto-renew is off")?;
    println!("managed; first renewal in {} ms", in_ms(due));

    let mut issued = 1;
    while issued < 3 {
        let event = tokio::time::timeout(Duration::from_secs(10), events.recv()).await??;
        match event.outcome {
            Outcome::Issued { next_due, .. } => {
                issued += 1;
                let next = next_due.map(in_ms).unwrap_or_default();
                println!(
                    "  {} renewed ({}); next in {next} ms",
                    event.volume, event.reason
                );
            }
            Outcome::Failed {
                message,
                attempts,
                retry_at,
                ..
            } => println!(
                "  {} failed ({message}), attempt {attempts}; retry in {} ms",
                event.volume,
                in_ms(retry_at)
            ),
            other => println!("  {other:?}"),
        }
    }
    let state = renewer
        .snapshot("csi-example")
        .ok_or("volume not managed")?;
    println!(
        "{} issuances, {} attempts; retrying: {}",
        issued,
        driver.attempts.load(Ordering::SeqCst),
        state.retrying
    );
    renewer.forget("csi-example");
    renewer.shutdown();
    Ok(())
}
