//! # cmcsi-renewer: when to issue
//!
//! Decides *when* each volume's certificate is issued again, and calls back
//! into the driver through the small [`Issue`] trait to do it.
//!
//! - **One schedule.** Every managed volume has one due instant in one ordered
//!   map; a single scheduler task sleeps until the earliest one. Nothing due
//!   means no wakeup, however many volumes are managed (no per-volume loop).
//! - **Due time.** `notAfter − renew-before` when `renew-before` is set and
//!   shorter than the lifetime, else `notAfter − lifetime/3`, then moved earlier
//!   by a jitter of up to [`RenewerConfig::jitter_fraction`] of the lifetime
//!   (capped by [`RenewerConfig::jitter_cap`]), so Pods created together do not
//!   renew together. [`Planner`] computes it; `disable-auto-renew` volumes are
//!   never renewed.
//! - **Failures.** Per-volume exponential backoff with jitter (by default the
//!   Go driver's: 30 s doubling to a 5 minute cap, plus up to 50%). The old
//!   certificate stays; [`Renewer::snapshot`] shows the volume retrying with
//!   its last error. Once the certificate has expired the renewer keeps
//!   retrying and logs each failure at error level (`... EXPIRED at ...`).
//! - **Not ready.** An attempt may answer "not ready"
//!   ([`IssueFailure::not_ready`]: the driver's Pod does not meet its
//!   readiness gates yet). That is no failure: the volume is checked again
//!   with [`RenewerConfig::not_ready_backoff`] (Go's gate backoff: 1 s
//!   doubling to 10 s), or at once on [`Renewer::wake`], which the driver
//!   calls when the volume's Pod changes. The renewer owns every wait.
//! - **Outages.** A failure because something every volume shares did not
//!   answer ([`IssueFailure::unavailable`]: the API) backs off like any
//!   other, and is retried as soon as another volume's attempt succeeds.
//! - **Fair pace.** With [`RenewerConfig::renewal_rate`], renewals start at
//!   most that often node-wide, the slots going round-robin to the
//!   [`Tenant`]s with renewals waiting ([`Renewer::manage_in`]).
//! - **Concurrency cap.** At most [`RenewerConfig::max_concurrent`] issuances
//!   run at once, first issuances ([`Renewer::acquire_first_issuance`]) served
//!   before queued renewals, so a renewal storm never delays a starting Pod.
//! - **Forget.** [`Renewer::forget`] takes effect at once: the schedule entry
//!   goes and a running attempt is cancelled.
//! - **Restart.** [`Renewer::restore`] schedules the stored volumes; overdue
//!   ones are spread over [`RenewerConfig::recovery_spread`].
//! - **Time** comes from tokio's clock through one [`Clock`], so tests run with
//!   paused time.
//!
//! It is not the issuance itself: keys, requests, files and metadata belong to
//! the driver's [`Issue`] implementation, which should also store the next
//! issuance time (from [`Renewer::planner`]) so that a restart can
//! [`restore`](Renewer::restore) it.
//!
//! Start with [`Renewer::start`], then [`Renewer::manage`] each volume after
//! its first issuance.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::{Duration, SystemTime};
//! use cmcsi_renewer::{
//!     IssuancePermit, Issue, IssueFailure, IssueReason, Lifetime, Renewer, RenewerConfig, VolumeId,
//! };
//!
//! struct Driver;
//!
//! impl Issue for Driver {
//!     async fn issue(
//!         &self,
//!         volume: VolumeId,
//!         reason: IssueReason,
//!         permit: IssuancePermit,
//!     ) -> Result<Lifetime, IssueFailure> {
//!         // Make a key, get it signed, write the files and metadata, handing
//!         // a clone of `permit` to each blocking task...
//!         let now = SystemTime::now();
//!         Ok(Lifetime::new(now, now + Duration::from_secs(24 * 3600)))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let renewer = Renewer::start(Arc::new(Driver), RenewerConfig::default())?;
//!
//! // NodePublishVolume: take a slot ahead of renewals, issue, then hand over.
//! let permit = renewer.acquire_first_issuance().await;
//! let lifetime = Driver.issue("csi-1234".into(), IssueReason::Requested, permit).await?;
//! let due = renewer.manage("csi-1234", lifetime, false).expect("auto-renew is on");
//! assert!(due < lifetime.not_after);
//! assert_eq!(renewer.snapshot("csi-1234").and_then(|s| s.due), Some(due));
//!
//! // NodeUnpublishVolume:
//! assert!(renewer.forget("csi-1234"));
//! assert_eq!(renewer.managed_count(), 0);
//! # Ok(())
//! # }
//! ```

mod backoff;
mod clock;
mod config;
mod limiter;
mod pacer;
mod renewer;
mod types;

pub use backoff::Backoff;
pub use clock::Clock;
pub use config::{Planner, RenewerConfig, StartError};
pub use limiter::IssuancePermit;
pub use renewer::{Renewer, RestoredVolume};
pub use types::{
    FailureKind, IssuanceEvent, Issue, IssueFailure, IssueReason, Lifetime, Outcome, Stats, Tenant,
    VolumeId, VolumeState,
};
