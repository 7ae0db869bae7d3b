//! Process hardening done first thing at start: no core dumps, not
//! dumpable.
//!
//! The driver holds every Pod's private key in memory. A crash that writes
//! a core file would put those keys on the host's disk (through the node's
//! `core_pattern` handler, often outside the container), and a dumpable
//! process can be read by anything that can `ptrace` it as the same user.
//! So at start the driver sets `RLIMIT_CORE` to 0 (soft and hard: no core
//! file, and the process cannot raise it again) and `PR_SET_DUMPABLE` to 0
//! (no core dump even through a pipe handler, no `ptrace` attach by
//! non-root, `/proc/<pid>/` files owned by root). `SECURITY.md` says how
//! to debug a crash anyway.

use rustix::process::{DumpableBehavior, Resource, Rlimit};

/// What [`apply`] could not do, one message per step; empty when all of it
/// worked.
#[derive(Debug, Default)]
#[must_use = "log the steps that failed"]
pub struct Report {
    /// The steps that failed, each naming the step and the error.
    pub failures: Vec<String>,
}

/// Sets `RLIMIT_CORE` to 0 and makes the process not dumpable. Runs before
/// logging is set up, so it reports instead of logging; see [`log`].
pub fn apply() -> Report {
    let mut report = Report::default();
    if let Err(e) = rustix::process::setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    ) {
        report.failures.push(format!(
            "could not set RLIMIT_CORE to 0 ({e}): a crash may write a core file with private keys"
        ));
    }
    if let Err(e) = rustix::process::set_dumpable_behavior(DumpableBehavior::NotDumpable) {
        report.failures.push(format!(
            "could not clear PR_SET_DUMPABLE ({e}): the process stays dumpable and ptrace-able"
        ));
    }
    report
}

/// Logs each failure of `report` as a warning.
pub fn log(report: &Report) {
    for failure in &report.failures {
        tracing::warn!("process hardening: {failure}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHILD: &str = "CMCSI_HARDENING_TEST_CHILD";

    /// `apply` changes the whole process, so the test re-runs itself in a
    /// child process and checks there.
    #[test]
    fn apply_disables_core_dumps_and_dumpability() {
        if std::env::var_os(CHILD).is_some() {
            assert_eq!(
                rustix::process::dumpable_behavior().unwrap(),
                DumpableBehavior::Dumpable,
                "a test process starts dumpable"
            );
            let report = apply();
            assert!(report.failures.is_empty(), "{:?}", report.failures);
            assert_eq!(
                rustix::process::dumpable_behavior().unwrap(),
                DumpableBehavior::NotDumpable
            );
            let core = rustix::process::getrlimit(Resource::Core);
            assert_eq!(core.current, Some(0));
            assert_eq!(core.maximum, Some(0));
            return;
        }
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "hardening::tests::apply_disables_core_dumps_and_dumpability",
                "--exact",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .status()
            .unwrap();
        assert!(status.success(), "the child's checks failed");
    }
}
