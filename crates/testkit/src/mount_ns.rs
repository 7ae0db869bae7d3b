//! Running a test, or a whole tool, in a private mount namespace.
//!
//! The driver mounts a tmpfs for its data root and bind-mounts every
//! published volume. Tests and tools that let it do so must not leave those
//! mounts on the machine that runs them, so they run in a mount namespace of
//! their own (`unshare --mount --propagation private`): whatever is mounted
//! in it goes away with its last process, and nothing propagates back.
//!
//! - In a test, call [`in_mount_namespace!`](crate::in_mount_namespace)
//!   directly in the body of the `#[test]` function. It re-executes the test
//!   binary for exactly this test inside a new namespace and fails when that
//!   inner run did not execute the body (a test name that matched nothing).
//!   Without the privilege to make the namespace it prints
//!   `SKIPPED <test>: <why>` and passes.
//! - A tool that re-executes itself (`cargo xtask demo`, `cargo xtask
//!   bench`) builds its command with [`unshare_command`] and asks
//!   [`is_inside`] which side it is on.
//!
//! ```no_run
//! #[test]
//! fn mounts_stay_private() {
//!     cmcsi_testkit::in_mount_namespace!({
//!         // mount, bind, unmount: none of it is seen outside
//!     });
//! }
//!
//! #[test]
//! fn async_bodies_get_a_runtime() {
//!     cmcsi_testkit::in_mount_namespace!(async {
//!         tokio::task::yield_now().await;
//!     });
//! }
//! ```

use std::ffi::OsStr;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;

/// Set in the environment of a process started by [`unshare_command`]; its
/// value is the label the command was made with (for a test: the test's
/// name), so [`is_inside`] can tell which re-execution this is.
pub const INSIDE_ENV: &str = "CMCSI_IN_MOUNT_NAMESPACE";

/// Where the inner run of a test records that the test's body finished (a
/// file in a temporary directory the outer run made and removes).
pub const MARKER_ENV: &str = "CMCSI_MOUNT_NAMESPACE_MARKER";

/// The name of the function item [`current_test_name!`](crate::current_test_name)
/// defines to find out where it was called.
#[doc(hidden)]
pub const HERE_FN: &str = "__cmcsi_testkit_here";

/// How the new namespace gets the privilege to mount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Privilege {
    /// This process must be root (CAP_SYS_ADMIN).
    Root,
    /// Root when this process is root; otherwise an unprivileged user
    /// namespace that maps the caller to root, where mounting a tmpfs and
    /// bind mounts are allowed (needs `kernel.unprivileged_userns_clone=1`).
    RootOrUserNamespace,
}

/// A test that ran in its namespace, or why it could not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The inner run executed the test's body and it passed.
    Passed,
    /// No namespace could be made here; the reason, for the SKIPPED line.
    Skipped(String),
}

/// Why running a test in its own mount namespace failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The test binary (or the marker directory) could not be set up.
    #[error("could not re-run `{test}` under unshare: {source}")]
    Spawn {
        /// The test's name.
        test: String,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The inner run failed (the test's assertions, or the harness).
    #[error("`{test}` failed inside its mount namespace ({status}); its output is above")]
    Failed {
        /// The test's name.
        test: String,
        /// The inner run's exit status.
        status: ExitStatus,
    },
    /// The inner run succeeded without executing the test's body: the name
    /// given to the test harness matched no test.
    #[error(
        "`{test}` did not run inside its mount namespace: the test binary, asked for exactly \
         `{test}`, ran no test by that name (its output is above); call in_mount_namespace! \
         directly in the #[test] function's body so the name is the function's own"
    )]
    RanNothing {
        /// The test's name.
        test: String,
    },
}

/// Whether this process was started by [`unshare_command`] with `label`.
pub fn is_inside(label: &str) -> bool {
    std::env::var_os(INSIDE_ENV).is_some_and(|v| v == OsStr::new(label))
}

/// `program` under `unshare --mount --propagation private`, with
/// [`INSIDE_ENV`] set to `label`. Add the program's own arguments, stdio and
/// environment to the command it returns.
pub fn unshare_command(program: impl AsRef<OsStr>, label: &str, privilege: Privilege) -> Command {
    let mut cmd = Command::new("unshare");
    if privilege == Privilege::RootOrUserNamespace && !is_root() {
        cmd.args(["--user", "--map-root-user"]);
    }
    cmd.args(["--mount", "--propagation", "private", "--"])
        .arg(program)
        .env(INSIDE_ENV, label);
    cmd
}

/// Why a private mount namespace cannot be made here (not root, no
/// `unshare`), or `None` when it can. Probed once per process.
pub fn unavailable() -> Option<String> {
    static PROBE: OnceLock<Option<String>> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            if !is_root() {
                return Some(format!(
                    "needs root to make a private mount namespace (running as uid {}); \
                     run the tests as root to include it",
                    rustix::process::geteuid().as_raw()
                ));
            }
            match Command::new("unshare")
                .args(["--mount", "--propagation", "private", "true"])
                .stdin(Stdio::null())
                .output()
            {
                Ok(out) if out.status.success() => None,
                Ok(out) => Some(format!(
                    "`unshare --mount` failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                )),
                Err(e) => Some(format!("could not run `unshare` (install util-linux): {e}")),
            }
        })
        .clone()
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Re-executes the current test binary for exactly `test` (a libtest name
/// such as `module::function`) in a new private mount namespace, passing its
/// output on through `print!` (so the harness shows it for a failed test).
///
/// `Ok(Outcome::Passed)` only when the inner run succeeded *and* executed
/// the body of a test that called [`run_test`] with the same name; a name
/// that matches no test is [`Error::RanNothing`].
pub fn run_test_in_namespace(test: &str) -> Result<Outcome, Error> {
    if let Some(why) = unavailable() {
        return Ok(Outcome::Skipped(why));
    }
    let spawn = |source| Error::Spawn {
        test: test.to_owned(),
        source,
    };
    let exe = std::env::current_exe().map_err(spawn)?;
    let scratch = tempfile::Builder::new()
        .prefix("cmcsi-mount-ns-")
        .tempdir()
        .map_err(spawn)?;
    let marker = scratch.path().join("ran");
    let out_path = scratch.path().join("output");
    // The inner output goes to a file, not a pipe: a daemon the test
    // started and leaked would hold a pipe open and hang the wait.
    let out = std::fs::File::create(&out_path).map_err(spawn)?;
    let err = out.try_clone().map_err(spawn)?;
    let status = unshare_command(&exe, test, Privilege::Root)
        .args([
            test,
            "--exact",
            // An ignored test is only here because the outer run was asked
            // to include it; the inner run must not drop it again.
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(MARKER_ENV, &marker)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .status()
        .map_err(spawn)?;
    let output = std::fs::read(&out_path).unwrap_or_default();
    print!(
        "---- {test} in a private mount namespace ----\n{}",
        String::from_utf8_lossy(&output)
    );
    if !status.success() {
        return Err(Error::Failed {
            test: test.to_owned(),
            status,
        });
    }
    match std::fs::read_to_string(&marker) {
        Ok(ran) if ran == test => Ok(Outcome::Passed),
        _ => Err(Error::RanNothing {
            test: test.to_owned(),
        }),
    }
}

/// What [`in_mount_namespace!`](crate::in_mount_namespace) expands to: in
/// the inner run, runs `body` and records that it finished; otherwise runs
/// [`run_test_in_namespace`] and panics when it fails, or prints
/// `SKIPPED <test>: <why>` (straight to stderr, so it shows even where the
/// harness captures output) when no namespace can be made.
pub fn run_test(test: &str, body: impl FnOnce()) {
    if is_inside(test) {
        body();
        if let Some(marker) = std::env::var_os(MARKER_ENV)
            && let Err(e) = std::fs::write(Path::new(&marker), test)
        {
            panic!(
                "{test} passed but could not record it in {}: {e}",
                Path::new(&marker).display()
            );
        }
        return;
    }
    match run_test_in_namespace(test) {
        Ok(Outcome::Passed) => {}
        Ok(Outcome::Skipped(why)) => {
            let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
        }
        Err(e) => panic!("{e}"),
    }
}

/// Runs an async test body on a multi-threaded runtime with two workers
/// (the driver's tests start processes and servers that need both).
pub fn block_on<F: Future<Output = ()>>(body: F) {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(body),
        Err(e) => panic!("could not start a tokio runtime for the test: {e}"),
    }
}

/// The libtest name of the test whose body called
/// [`current_test_name!`](crate::current_test_name): `module_path` without
/// the crate's name, then the function's name, taken from the type name of
/// a function item defined in that body
/// (`crate::module::test_fn::__cmcsi_testkit_here`).
///
/// # Panics
/// When the item was not defined directly in a function of `module_path`
/// (inside a closure or an async block), with a message saying so.
#[doc(hidden)]
pub fn test_name(module_path: &str, here_type_name: &str) -> String {
    let function = here_type_name
        .strip_suffix(HERE_FN)
        .and_then(|p| p.strip_suffix("::"))
        .and_then(|p| p.strip_prefix(module_path))
        .and_then(|p| p.strip_prefix("::"))
        .filter(|f| !f.is_empty() && f.chars().all(|c| c.is_alphanumeric() || c == '_'));
    let Some(function) = function else {
        panic!(
            "in_mount_namespace!/current_test_name! must be called directly in the body of a \
             #[test] function, not in a closure or async block (called in `{here_type_name}`)"
        );
    };
    match module_path.split_once("::") {
        Some((_crate, modules)) => format!("{modules}::{function}"),
        None => function.to_owned(),
    }
}

/// The libtest name (`module::function`, without the crate) of the test
/// function whose body this is called in, from `module_path!()` and the
/// function's own name: never a string typed by hand that a rename could
/// leave behind.
#[macro_export]
macro_rules! current_test_name {
    () => {{
        fn __cmcsi_testkit_here() {}
        $crate::mount_ns::test_name(
            ::core::module_path!(),
            ::std::any::type_name_of_val(&__cmcsi_testkit_here),
        )
    }};
}

/// Runs a test's body in a private mount namespace of its own; call it
/// directly in the body of the `#[test]` function, with a block or an async
/// block (which gets a two-worker tokio runtime):
///
/// ```no_run
/// #[test]
/// fn publish_mounts_the_volume() {
///     cmcsi_testkit::in_mount_namespace!(async {
///         // start the driver, publish, check the mount
///     });
/// }
/// ```
///
/// The test binary is re-executed for exactly this test (named by
/// [`current_test_name!`](crate::current_test_name)) under `unshare --mount
/// --propagation private`; the outer test fails when the inner one fails or
/// did not run the body. Without root or `unshare` it prints
/// `SKIPPED <test>: <why>` and passes. See [`mount_ns`](crate::mount_ns).
#[macro_export]
macro_rules! in_mount_namespace {
    (async move $body:block) => {
        $crate::mount_ns::run_test(&$crate::current_test_name!(), || {
            $crate::mount_ns::block_on(async move $body)
        })
    };
    (async $body:block) => {
        $crate::mount_ns::run_test(&$crate::current_test_name!(), || {
            $crate::mount_ns::block_on(async $body)
        })
    };
    ($body:block) => {
        $crate::mount_ns::run_test(&$crate::current_test_name!(), || $body)
    };
}
