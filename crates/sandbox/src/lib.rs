//! The `RUN` sandbox of hoist: runs a command without a daemon and without root,
//! isolated in fresh user, mount, pid, ipc and uts (and optionally network)
//! namespaces on an overlayfs root, and turns what it changed into a layer in time
//! proportional to the change.
//!
//! - [`Sandbox`]: created once per build ([`SandboxConfig`]); [`Sandbox::run`] runs a
//!   [`RunSpec`], [`Sandbox::unpack_layer`] prepares lower dirs,
//!   [`Sandbox::diff_layer`] writes the upper dir as a layer.
//! - [`capabilities`]: what the host allows ([`Capabilities`]), with explanations.
//! - [`init`]: must be the first call in `main` of every binary that uses the sandbox,
//!   because the sandbox re-executes that binary as its single-threaded helper.
//!
//! ```no_run
//! use hoist_sandbox::{RunSpec, Sandbox, SandboxConfig};
//! hoist_sandbox::init();
//! let sb = Sandbox::new(SandboxConfig::new("/var/tmp/hoist-state"))?;
//! let dirs = sb.create_run_dirs()?;
//! let spec = RunSpec::new(vec!["/layers/base".into()], dirs.upper.clone(), dirs.work.clone(),
//!     vec!["/bin/sh".into(), "-c".into(), "echo hi > /greeting".into()]);
//! let status = sb.run(&spec, &mut |_stream, line| print!("{}", String::from_utf8_lossy(line)))?;
//! assert!(status.success());
//! let layer = sb.diff_layer(&dirs.upper, "/blobs".as_ref(), &Default::default())?;
//! println!("{}", layer.digest);
//! sb.remove_tree(&dirs.base)?;
//! # Ok::<(), hoist_sandbox::Error>(())
//! ```
//!
//! How ids map: as root, a user namespace with the identity mapping of every id that
//! exists where hoist runs (the sandbox's capabilities stay inside its namespaces; files
//! keep their real ids): all ids on a host, only those of the container's user namespace
//! (e.g. `0 0 65536`) when hoist is root in a Concourse task or rootless Podman. As an
//! unprivileged user with `/etc/subuid` and `/etc/subgid` ranges, container 0 is the user
//! and 1..N the subordinate ids of all the user's ranges, in file order
//! (`newuidmap`/`newgidmap`); without ranges only 0 exists. Without user namespaces
//! (seccomp, sysctls) the sandbox does not start and [`Capabilities::id_mode`] says why
//! and what to change; builds without `RUN` never start it.
//! Unpacking, diffing and removing trees run inside the namespace, so layers always
//! carry the container's ids.

pub mod caps;
pub mod error;
mod helper;
mod idmap;
mod layers;
mod protocol;
pub mod rootfs;
mod sandbox;
pub mod spec;
pub mod syscall;

// Internals exposed for this crate's integration tests and benchmarks only; not a
// stable API.
#[doc(hidden)]
pub mod fallback;
#[doc(hidden)]
pub mod fork;

pub use caps::{Capabilities, IdMode, IdRange, IdRanges, UsernsFailure};
pub use error::{Error, Result};
pub use protocol::UnpackCheck;
pub use sandbox::{RunDirs, Sandbox, SandboxConfig};
pub use spec::{
    CacheOwner, CacheSharing, ExitStatus, MountSpec, Network, OutputStream, RunSpec, SecretSource,
};

/// If this process was started as the sandbox helper (`argv[1] == "__hoist-sandbox"`),
/// run the helper protocol and exit; otherwise return at once. Call it first in
/// `main`, before any thread is started.
pub fn init() {
    INIT_CALLED.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut args = std::env::args_os();
    let _ = args.next();
    if args.next().is_some_and(|a| a == protocol::HELPER_ARG) {
        helper::main();
    }
}

static INIT_CALLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether [`init`] ran in this process. A [`Sandbox`] whose helper is this program
/// (`/proc/self/exe`, the default) refuses to start without it: the re-executed program
/// would run its own `main` instead of the helper.
pub fn init_called() -> bool {
    INIT_CALLED.load(std::sync::atomic::Ordering::SeqCst)
}

/// Detect what this host allows (root, user namespaces, subordinate id ranges,
/// `newuidmap`, overlayfs in a user namespace). Probes once per process.
pub fn capabilities() -> Capabilities {
    static CAPS: std::sync::OnceLock<Capabilities> = std::sync::OnceLock::new();
    CAPS.get_or_init(caps::detect).clone()
}
