//! What the engine asks the sandbox to run: [`RunSpec`] and its parts.
//!
//! These types are plain data (serialisable) because they travel as JSON over a pipe to
//! the single-threaded helper process that builds the namespaces.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One `RUN` step, fully resolved by the engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSpec {
    /// Unpacked layer directories, BOTTOM first (each made by
    /// [`Sandbox::unpack_layer`](crate::Sandbox::unpack_layer)).
    pub lower_dirs: Vec<PathBuf>,
    /// Empty directory that receives the step's changes (the overlay upper dir).
    pub upper_dir: PathBuf,
    /// Empty scratch directory on the same file system as `upper_dir`.
    pub work_dir: PathBuf,
    /// The command to execute (shell form already turned into `/bin/sh -c ...`).
    /// `argv[0]` without a `/` is looked up in the `PATH` of `env`.
    pub argv: Vec<String>,
    /// The environment, `KEY=value` strings. Nothing of hoist's own environment leaks in.
    pub env: Vec<String>,
    /// Working directory inside the container; created (owned by root) when missing.
    pub cwd: String,
    /// User id inside the container.
    pub uid: u32,
    /// Group id inside the container.
    pub gid: u32,
    /// Supplementary group ids inside the container.
    pub groups: Vec<u32>,
    /// Extra mounts (`RUN --mount`), applied in order.
    pub mounts: Vec<MountSpec>,
    /// Network mode.
    pub network: Network,
    /// Hostname inside the sandbox (also written to `/etc/hostname`).
    pub hostname: String,
    /// Extra `/etc/hosts` entries: `(hostname, address)`.
    pub extra_hosts: Vec<(String, String)>,
}

impl RunSpec {
    /// A spec with defaults (root, `/`, host network, hostname `hoist`) for `argv`
    /// over `lower_dirs`, using the given upper and work directories.
    pub fn new(
        lower_dirs: Vec<PathBuf>,
        upper_dir: PathBuf,
        work_dir: PathBuf,
        argv: Vec<String>,
    ) -> RunSpec {
        RunSpec {
            lower_dirs,
            upper_dir,
            work_dir,
            argv,
            env: vec![
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
            ],
            cwd: "/".to_string(),
            uid: 0,
            gid: 0,
            groups: Vec::new(),
            mounts: Vec::new(),
            network: Network::Host,
            hostname: "hoist".to_string(),
            extra_hosts: Vec::new(),
        }
    }
}

/// The owner and permission bits a cache mount's directory starts with (BuildKit makes
/// it with `mkdir /cache` as `uid:gid`, mode `mode`, under umask 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheOwner {
    /// Owner uid inside the container (BuildKit's default: 0).
    pub uid: u32,
    /// Owner gid inside the container (default 0).
    pub gid: u32,
    /// Permission bits (default `0755`; only `0777` of it is used).
    pub mode: u32,
}

/// A `RUN --mount`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum MountSpec {
    /// `type=bind`: a host directory or file (build context, another stage's rootfs).
    Bind {
        /// Host path.
        src: PathBuf,
        /// Absolute path inside the container.
        target: String,
        /// Read-only (the default for `type=bind`).
        readonly: bool,
    },
    /// `type=tmpfs`.
    Tmpfs {
        /// Absolute path inside the container.
        target: String,
        /// Size limit in bytes (`None`: the kernel default, half of RAM).
        size: Option<u64>,
    },
    /// `type=secret` as a file: the bytes live on a tmpfs, never in the upper dir.
    SecretFile {
        /// Where the secret's bytes come from.
        source: SecretSource,
        /// Absolute path inside the container (`/run/secrets/<id>` by default).
        target: String,
        /// File mode (`0o400` by default).
        mode: u32,
        /// Owner uid inside the container.
        uid: u32,
        /// Owner gid inside the container.
        gid: u32,
    },
    /// `type=secret,env=NAME`: the secret is only in the command's environment.
    SecretEnv {
        /// The variable name.
        name: String,
        /// The value.
        value: String,
    },
    /// `type=cache`: a persistent host directory shared between builds.
    Cache {
        /// Host directory (created by the engine).
        src: PathBuf,
        /// Absolute path inside the container.
        target: String,
        /// How concurrent builds share it.
        sharing: CacheSharing,
        /// Read-only.
        readonly: bool,
        /// `uid=`/`gid=`/`mode=`: the owner and mode the cache's root directory starts
        /// with (applied inside the sandbox while the directory is empty).
        owner: Option<CacheOwner>,
    },
    /// A read-only view of a stack of unpacked layer dirs (another stage's root file
    /// system, for `RUN --mount=type=bind,from=STAGE`), mounted as a read-only
    /// overlay (a plain read-only bind when there is one dir).
    Layers {
        /// The layer dirs, BOTTOM first (as in [`RunSpec::lower_dirs`]).
        lowers: Vec<PathBuf>,
        /// Absolute path inside the container.
        target: String,
    },
    /// `type=ssh`: the SSH agent socket.
    Ssh {
        /// Host path of the agent socket (`SSH_AUTH_SOCK`).
        sock: PathBuf,
        /// Absolute path inside the container; `SSH_AUTH_SOCK` is set to it when unset.
        target: String,
    },
}

/// Where a secret file's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SecretSource {
    /// The bytes themselves.
    Bytes(Vec<u8>),
    /// A host file, read by the sandbox at run time.
    Path(PathBuf),
}

/// `sharing=` of a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum CacheSharing {
    /// Used by concurrent runs at the same time (`sharing=shared`, the default).
    #[default]
    Shared,
    /// A concurrent run gets a fresh, empty, throw-away directory instead.
    Private,
    /// Concurrent runs wait for each other (an exclusive `flock` on the directory).
    Locked,
}

/// `RUN --network=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Network {
    /// Share the host's network namespace (`default` and `host`, as buildah does).
    #[default]
    Host,
    /// A new network namespace with only the loopback interface up.
    None,
}

/// Which stream a chunk of output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OutputStream {
    /// The command's standard output.
    Stdout,
    /// The command's standard error.
    Stderr,
}

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// The exit code, when it exited normally.
    pub code: Option<i32>,
    /// The signal that killed it, if any.
    pub signal: Option<i32>,
}

impl ExitStatus {
    /// Whether the command exited with code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code, self.signal) {
            (Some(c), _) => write!(f, "exit code {c}"),
            (None, Some(s)) => write!(f, "killed by signal {s}"),
            (None, None) => write!(f, "unknown exit status"),
        }
    }
}
