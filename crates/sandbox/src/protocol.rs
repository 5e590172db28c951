//! The protocol between hoist and its sandbox helper process.
//!
//! ```text
//!  hoist (any threads)                       helper (re-exec, single-threaded)
//!  ───────────────────                       ─────────────────────────────────
//!  spawn  exe __hoist-sandbox                 fd 0 = control, fd 3 = status,
//!        (empty env, fds 0,1,2,3)             fds 1,2 = the command's output
//!  control ◀── u32 LE length + JSON Request
//!                                             unshare(CLONE_NEWUSER)
//!  status  ◀────────────────────────────────  {"Ready"}
//!  write /proc/PID/{uid,gid}_map
//!  (or newuidmap/newgidmap)
//!  control ──── "G" ───────────────────────▶  unshare(PID|IPC|UTS[|NET])
//!                                             fork ─▶ pid 1: unshare(NS), mounts,
//!                                                      pivot_root, fork ─▶ command
//!  stdout/stderr ◀── command output (lines)
//!  status  ◀── {"Exit":..} (pid 1) / {"Error":..} / {"Done":..} (helper), one JSON per line
//! ```

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::caps::IdMode;
use crate::rootfs::ResolvedMount;
use crate::spec::{ExitStatus, RunSpec};

/// The first argument that makes a binary act as the helper.
pub const HELPER_ARG: &str = "__hoist-sandbox";
/// Environment variable carrying the parent's pid (for the parent-death check).
pub const PARENT_ENV: &str = "HOIST_SANDBOX_PARENT";
/// The helper's status descriptor.
pub const STATUS_FD: i32 = 3;

/// A request to the helper.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    /// Create a user namespace and wait for the parent to map it.
    pub userns: bool,
    /// The id mapping the parent will install.
    pub id_mode: IdMode,
    /// What to do.
    pub op: Op,
}

/// What the helper checks while unpacking a layer (see
/// [`hoist_image::layer::StreamCheck`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UnpackCheck {
    /// The layer's position in its image, for errors.
    pub index: Option<usize>,
    /// The expected diff ID: the unpack fails when the content does not hash to it.
    pub diff_id: Option<hoist_image::Digest>,
    /// Bound on the uncompressed size (`None`: the helper's default).
    pub max_size: Option<u64>,
}

/// The operations the helper performs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Op {
    /// Run a command.
    Run(Box<RunRequest>),
    /// Unpack a layer blob into a directory in overlay lower format.
    Unpack {
        /// Compressed blob.
        blob: PathBuf,
        /// Its media type.
        media_type: String,
        /// Destination directory.
        dest: PathBuf,
        /// Give files the archive's owners (false with a single-id mapping, where
        /// only id 0 exists).
        same_owner: bool,
        /// What to check while unpacking: layer index, expected diff ID, size bound.
        #[serde(default)]
        check: UnpackCheck,
    },
    /// Write an upper directory as a layer blob.
    Diff {
        /// The upper directory.
        upper: PathBuf,
        /// The blob directory.
        blobs_dir: PathBuf,
        /// Writer options.
        opts: WireWriteOptions,
    },
    /// Remove a tree.
    Remove {
        /// The directory.
        dir: PathBuf,
    },
}

/// A RUN, resolved by the parent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRequest {
    /// The engine's spec.
    pub spec: RunSpec,
    /// Mounts with secrets loaded and cache instances chosen.
    pub mounts: Vec<ResolvedMount>,
    /// The final environment of the command.
    pub env: Vec<String>,
    /// Use overlayfs (else the snapshot fallback).
    pub overlay: bool,
    /// Content of `/etc/resolv.conf`.
    pub resolv_conf: String,
}

/// The serialisable part of [`hoist_image::layer::WriteOptions`] used for RUN layers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireWriteOptions {
    /// 0 none, 1 gzip, 2 zstd.
    pub compression: u8,
    /// Compression level.
    pub level: Option<i32>,
    /// Threads.
    pub threads: usize,
    /// SOURCE_DATE_EPOCH.
    pub source_date_epoch: Option<i64>,
    /// `None`: preserve mtimes; `Some(t)`: fixed.
    pub fixed_mtime: Option<i64>,
}

/// A message from the helper (one JSON document per line on the status fd).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Msg {
    /// The user namespace exists; map it.
    Ready,
    /// Something failed.
    Error(String),
    /// The command ended.
    Exit(ExitStatus),
    /// The operation finished, with its result.
    Done(serde_json::Value),
}
