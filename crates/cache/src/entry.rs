//! What the cache holds: the [`Kind`]s of entries and one [`CacheEntry`].

use std::path::PathBuf;
use std::time::SystemTime;

use serde::Serialize;

/// What an entry of the cache is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A blob in `blobs/` (layer, config, manifest).
    Blob,
    /// A pull cache ref in `refs/`.
    Ref,
    /// A step cache record in `steps/`.
    Step,
    /// A layer metadata index in `index/`.
    Index,
    /// A build context's stat cache in `filehash/`.
    FileHash,
    /// An unpacked root file system in `rootfs/`.
    Rootfs,
    /// An unpacked overlay lower directory in `lower/`.
    Lower,
    /// A `RUN --mount=type=cache` directory in `mounts/`.
    Mount,
    /// A temporary left by a killed build, pull or prune (`tmp/`, `sandbox/`, `.tmp-*`,
    /// `.gc-*`).
    Temporary,
}

impl Kind {
    /// Every kind, in display order.
    pub const ALL: [Kind; 9] = [
        Kind::Blob,
        Kind::Ref,
        Kind::Step,
        Kind::Index,
        Kind::FileHash,
        Kind::Rootfs,
        Kind::Lower,
        Kind::Mount,
        Kind::Temporary,
    ];

    /// A short lower-case name (`blob`, `step`, `rootfs`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Blob => "blob",
            Kind::Ref => "ref",
            Kind::Step => "step",
            Kind::Index => "index",
            Kind::FileHash => "filehash",
            Kind::Rootfs => "rootfs",
            Kind::Lower => "lower",
            Kind::Mount => "mount",
            Kind::Temporary => "temporary",
        }
    }

    /// Which kind goes first when two entries were last used at the same instant: what
    /// is cheapest to make again.
    pub(crate) fn tie_rank(self) -> u8 {
        match self {
            Kind::Temporary => 0,
            Kind::Rootfs => 1,
            Kind::Lower => 2,
            Kind::Index => 3,
            Kind::FileHash => 4,
            Kind::Step => 5,
            Kind::Ref => 6,
            Kind::Mount => 7,
            Kind::Blob => 8,
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One evictable entry of the cache.
#[derive(Debug, Clone, Serialize)]
pub struct CacheEntry {
    /// What it is.
    pub kind: Kind,
    /// Its path, relative to the cache directory (`blobs/sha256/…`, `rootfs/…`).
    pub path: PathBuf,
    /// Disk usage in bytes (`st_blocks` × 512 over the whole tree; a hard-linked inode
    /// is counted for the first entry it is seen in).
    pub bytes: u64,
    /// When it was last used (see [`crate::layout`]).
    #[serde(serialize_with = "unix_seconds")]
    pub last_used: SystemTime,
    /// A step record or ref whose blob is gone (useless: always evicted), or an
    /// unreadable one.
    pub dangling: bool,
    /// Whether prune may remove it now (false only for young temporaries of processes
    /// that do not hold the cache lock).
    #[serde(skip)]
    pub(crate) evictable: bool,
    /// Blobs (relative paths) it needs: a step's layer, a ref's documents.
    #[serde(skip)]
    pub(crate) needs: Vec<PathBuf>,
    /// Apparent size (blobs: compared with descriptors).
    #[serde(skip)]
    pub(crate) len: u64,
}

fn unix_seconds<S: serde::Serializer>(
    t: &SystemTime,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    let secs = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    };
    s.serialize_f64(secs)
}
