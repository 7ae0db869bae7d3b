//! The mount-namespace helper: it names the test by the function it is called
//! in, runs the body in a namespace of its own, and fails when the inner run
//! executed nothing.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use cmcsi_testkit::mount_ns::{self, Error, Outcome};
use cmcsi_testkit::{current_test_name, in_mount_namespace};

/// The mount namespace of a process, as `mnt:[inode]`.
fn mount_ns_of(pid: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/mnt"))
        .unwrap()
        .display()
        .to_string()
}

fn mount_points() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_owned))
        .collect()
}

#[test]
fn the_name_is_the_functions_own() {
    assert_eq!(current_test_name!(), "the_name_is_the_functions_own");
}

mod nested {
    #[test]
    fn names_in_modules_carry_the_module_path() {
        assert_eq!(
            cmcsi_testkit::current_test_name!(),
            "nested::names_in_modules_carry_the_module_path"
        );
    }
}

#[test]
fn a_name_taken_inside_a_closure_is_refused() {
    let err = std::panic::catch_unwind(|| current_test_name!()).unwrap_err();
    let msg = err.downcast_ref::<String>().unwrap();
    assert!(
        msg.contains("directly in the body of a #[test] function"),
        "{msg}"
    );
    assert!(msg.contains("{{closure}}"), "{msg}");
}

#[test]
fn the_name_of_a_lib_unit_test_drops_the_crate() {
    assert_eq!(
        mount_ns::test_name(
            "cmcsi_store::tests",
            "cmcsi_store::tests::opens::__cmcsi_testkit_here"
        ),
        "tests::opens"
    );
}

#[test]
fn the_body_runs_in_a_private_namespace_and_its_mounts_stay_there() {
    in_mount_namespace!({
        assert!(mount_ns::is_inside(
            "the_body_runs_in_a_private_namespace_and_its_mounts_stay_there"
        ));
        // The inner test binary is the unshare process itself (unshare execs
        // it), so its parent is the outer test binary, in the machine's
        // namespace.
        let parent = std::os::unix::process::parent_id().to_string();
        assert_ne!(mount_ns_of("self"), mount_ns_of(&parent));

        let dir = tempfile::tempdir().unwrap();
        rustix::mount::mount(
            "tmpfs",
            dir.path(),
            "tmpfs",
            rustix::mount::MountFlags::empty(),
            None,
        )
        .unwrap();
        let mp = dir.path().display().to_string();
        assert!(mount_points().contains(&mp));
        // The parent's view (the machine's) does not have it.
        let outside = std::fs::read_to_string(format!("/proc/{parent}/mountinfo")).unwrap();
        assert!(
            !outside.lines().any(|l| l.split(' ').nth(4) == Some(&mp)),
            "{mp} leaked out of the namespace"
        );
        rustix::mount::unmount(dir.path(), rustix::mount::UnmountFlags::DETACH).unwrap();
    });
}

#[test]
fn async_bodies_run_on_a_runtime() {
    in_mount_namespace!(async {
        let task = tokio::spawn(async { 7 });
        assert_eq!(task.await.unwrap(), 7);
    });
}

/// The check that makes the helper trustworthy: a test name that matches no
/// test (a renamed function, a name typed by hand) runs zero tests in the
/// inner run, which libtest reports as success; the helper must not.
#[test]
fn a_name_that_matches_no_test_is_a_failure_not_a_pass() {
    match mount_ns::run_test_in_namespace("no_test_has_this_name") {
        Err(Error::RanNothing { test }) => assert_eq!(test, "no_test_has_this_name"),
        Ok(Outcome::Skipped(why)) => {
            eprintln!("SKIPPED a_name_that_matches_no_test_is_a_failure_not_a_pass: {why}")
        }
        other => panic!("expected RanNothing, got {other:?}"),
    }
    // A prefix of real test names matches them without --exact; with it,
    // nothing runs, and that is reported too.
    match mount_ns::run_test_in_namespace("the_body_runs") {
        Err(Error::RanNothing { .. }) | Ok(Outcome::Skipped(_)) => {}
        other => panic!("expected RanNothing, got {other:?}"),
    }
}

/// A test that exists but does not go through the helper runs and passes in
/// the inner run, yet never records that a namespaced body finished.
#[test]
fn a_test_that_never_enters_the_helper_is_a_failure() {
    match mount_ns::run_test_in_namespace("the_name_is_the_functions_own") {
        Err(Error::RanNothing { .. }) | Ok(Outcome::Skipped(_)) => {}
        other => panic!("expected RanNothing, got {other:?}"),
    }
}

/// A failing body fails the outer test, with the inner status.
#[test]
fn a_failing_body_fails_the_outer_test() {
    match mount_ns::run_test_in_namespace("fails_when_inside") {
        Err(Error::Failed { test, status }) => {
            assert_eq!(test, "fails_when_inside");
            assert!(!status.success());
        }
        Ok(Outcome::Skipped(_)) => {}
        other => panic!("expected Failed, got {other:?}"),
    }
}

/// Fails only when run inside a namespace (by the test above); passes
/// trivially on its own.
#[test]
fn fails_when_inside() {
    if mount_ns::is_inside("fails_when_inside") {
        panic!("failing on purpose inside the namespace");
    }
}

#[test]
fn tools_get_a_command_that_marks_the_inner_side() {
    let cmd = mount_ns::unshare_command(
        Path::new("/bin/true"),
        "xtask demo",
        mount_ns::Privilege::Root,
    );
    assert_eq!(cmd.get_program(), "unshare");
    let args: Vec<_> = cmd.get_args().map(|a| a.to_str().unwrap()).collect();
    assert_eq!(
        args,
        ["--mount", "--propagation", "private", "--", "/bin/true"]
    );
    let env: Vec<_> = cmd.get_envs().collect();
    assert_eq!(
        env,
        [(
            std::ffi::OsStr::new(mount_ns::INSIDE_ENV),
            Some(std::ffi::OsStr::new("xtask demo"))
        )]
    );
}
