//! Keeping hoist's cache directory under a size bound: disk usage by kind of entry
//! ([`usage`], [`entries`]), least-recently-used eviction ([`prune`]), and the lock that
//! keeps eviction away from running builds ([`CacheLock`]).
//!
//! ```text
//! CACHE/
//!   lock                        flock(2): builds hold it shared, prune exclusive
//!   blobs/sha256/<hex>          blobs: layers, configs, manifests (also the pull cache)
//!   refs/<hex>.json             the pull cache's tag index (points at manifest blobs)
//!   steps/<xx>/<key>            step cache records (point at layer blobs)
//!   index/<diff-id>             layer metadata indexes
//!   filehash/<ctx>              stat caches of build contexts
//!   rootfs/<chain-id>/          unpacked root file systems (COPY --from, bind mounts)
//!   lower/<mode>-<uid>/<diff-id>/  unpacked overlay lower dirs of RUN (rootless: may
//!                               hold files owned by subordinate ids)
//!   mounts/<key>/               RUN --mount=type=cache contents
//!   used/<entry path>           last-use markers of the directories above
//!   sandbox/, tmp/              transient: run dirs, build scratch dirs
//! ```
//!
//! # Entries and last use
//!
//! The eviction unit is one entry: a blob, a ref, a step record, an index or stat-cache
//! file, a rootfs, lower or cache-mount directory, or a temporary left behind by a killed
//! process. Its size is its real disk usage (`st_blocks`), hard links counted once per
//! inode in the whole cache.
//!
//! Access times are useless (`noatime`, `relatime`), so uses are recorded explicitly,
//! where entries are used, at the cost of one `utimensat(2)` each and never a tree walk:
//! a file's own mtime is its last use (step cache hits, layers of hits, base images'
//! blobs when resolved, the final image's blobs, layer indexes, refs on pull); a
//! directory's last use is the mtime of its marker `used/<entry path>` (falling back to
//! the directory's ctime, i.e. when it was made). Directories are never touched
//! themselves: rootfs and lower dirs are overlay lowers, and their root's metadata is
//! visible to RUN (and can end up in a layer).
//!
//! # Safety
//!
//! Every build holds a shared `flock` on `CACHE/lock` for its whole duration; [`prune`]
//! takes it exclusively and, unless told to wait, skips when it cannot get it at once. So
//! nothing a running build uses is ever removed. Other cache users (`hoist pull`,
//! `hoist copy`) should hold [`CacheLock::shared`] too; until they do, their temporary
//! files are only removed once an hour old, and a blob removed under them is a cache miss.
//!
//! Removal keeps the cache consistent at every instant: a file entry is unlinked (it is
//! whole or gone); a directory is first renamed to `.gc-*` beside itself, then removed,
//! so a crash never leaves half a tree under its real name (`.gc-*` leftovers are
//! temporaries, removed by the next prune). Step records and refs whose blobs are gone
//! are misses for the build and the puller; prune removes them ("dangling"), also when a
//! blob they need is evicted. Directories holding files of subordinate ids (rootless
//! RUN) are removed through the sandbox's user namespace when a plain removal is denied.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use hoist_image::{BlobStore, Descriptor, Digest};
use serde::Serialize;

use crate::error::{Error, Result};

/// Temporaries that processes not holding the cache lock may be writing (blob and ref
/// temp files of `hoist pull`) are only removed when untouched for this long.
pub const UNLOCKED_TEMP_GRACE: Duration = Duration::from_secs(3600);

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
    fn tie_rank(self) -> u8 {
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
    /// When it was last used (see the module docs).
    #[serde(serialize_with = "unix_seconds")]
    pub last_used: SystemTime,
    /// A step record or ref whose blob is gone (useless: always evicted), or an
    /// unreadable one.
    pub dangling: bool,
    /// Whether prune may remove it now (false only for young temporaries of processes
    /// that do not hold the cache lock).
    #[serde(skip)]
    evictable: bool,
    /// Blobs (relative paths) it needs: a step's layer, a ref's documents.
    #[serde(skip)]
    needs: Vec<PathBuf>,
    /// Apparent size (blobs: compared with descriptors).
    #[serde(skip)]
    len: u64,
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

/// Bytes and entries of one kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct KindUsage {
    /// Disk usage in bytes.
    pub bytes: u64,
    /// Number of entries.
    pub entries: u64,
    /// Of which dangling (see [`CacheEntry::dangling`]).
    pub dangling: u64,
}

/// What [`usage`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CacheUsage {
    /// Disk usage of the whole cache directory, in bytes (what `du` says).
    pub total_bytes: u64,
    /// By kind (every kind is present, possibly with zeros).
    pub kinds: BTreeMap<Kind, KindUsage>,
    /// What no entry accounts for: directories themselves, the lock, last-use markers,
    /// unknown files. Never evicted.
    pub other_bytes: u64,
}

impl CacheUsage {
    /// The usage of one kind.
    pub fn get(&self, kind: Kind) -> KindUsage {
        self.kinds.get(&kind).copied().unwrap_or_default()
    }

    /// Number of entries of every kind.
    pub fn entries(&self) -> u64 {
        self.kinds.values().map(|k| k.entries).sum()
    }
}

impl std::fmt::Display for CacheUsage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for k in Kind::ALL {
            let u = self.get(k);
            write!(
                f,
                "{:<10} {:>10}  {:>7} entries",
                k.as_str(),
                format_size(u.bytes),
                u.entries
            )?;
            if u.dangling > 0 {
                write!(f, " ({} dangling)", u.dangling)?;
            }
            writeln!(f)?;
        }
        writeln!(f, "{:<10} {:>10}", "other", format_size(self.other_bytes))?;
        write!(f, "{:<10} {:>10}", "total", format_size(self.total_bytes))
    }
}

/// How to [`prune`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PruneOptions {
    /// Evict least recently used entries until the cache uses at most this many bytes.
    pub max_bytes: u64,
    /// Only report what would be evicted.
    pub dry_run: bool,
    /// Wait for running builds to finish instead of skipping the prune.
    pub wait: bool,
}

impl PruneOptions {
    /// Prune to `max_bytes`, for real, skipping if a build is running.
    pub fn new(max_bytes: u64) -> PruneOptions {
        PruneOptions {
            max_bytes,
            dry_run: false,
            wait: false,
        }
    }
}

/// Why an entry was evicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// The cache was over its bound and this was the least recently used entry.
    LeastRecentlyUsed,
    /// A step record or ref whose blob is gone (or evicted now), or an unreadable one.
    Dangling,
    /// A temporary left behind by a killed process.
    Temporary,
}

/// One evicted entry.
#[derive(Debug, Clone, Serialize)]
pub struct Evicted {
    /// The entry.
    #[serde(flatten)]
    pub entry: CacheEntry,
    /// Why it went.
    pub reason: Reason,
}

/// What [`prune`] did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    /// Set when nothing was done, with the reason (a build holds the cache lock).
    pub skipped: Option<String>,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// The bound.
    pub max_bytes: u64,
    /// Disk usage of the cache before.
    pub bytes_before: u64,
    /// Disk usage after, measured again (a dry run: estimated). It can stay above the
    /// bound when what is left is not evictable (directories, markers, young
    /// temporaries, entries that could not be removed).
    pub bytes_after: u64,
    /// What was evicted, in order.
    pub evicted: Vec<Evicted>,
    /// Entries that could not be removed, with the error.
    pub errors: Vec<String>,
}

impl PruneReport {
    /// Bytes evicted (the sum of the evicted entries' sizes).
    pub fn evicted_bytes(&self) -> u64 {
        self.evicted.iter().map(|e| e.entry.bytes).sum()
    }

    /// One line: what was evicted, by kind, and the sizes before and after.
    pub fn summary(&self) -> String {
        if let Some(why) = &self.skipped {
            return format!("cache prune skipped: {why}");
        }
        let verb = if self.dry_run {
            "would evict"
        } else {
            "evicted"
        };
        let mut by_kind: BTreeMap<Kind, usize> = BTreeMap::new();
        for e in &self.evicted {
            *by_kind.entry(e.entry.kind).or_default() += 1;
        }
        let kinds: Vec<String> = by_kind.iter().map(|(k, n)| format!("{n} {k}")).collect();
        let mut s = if self.evicted.is_empty() {
            format!(
                "cache: nothing to evict, {}",
                format_size(self.bytes_before)
            )
        } else {
            format!(
                "cache: {verb} {} entries, {} ({}): {} -> {}",
                self.evicted.len(),
                format_size(self.evicted_bytes()),
                kinds.join(", "),
                format_size(self.bytes_before),
                format_size(self.bytes_after)
            )
        };
        s.push_str(&format!(" (bound {})", format_size(self.max_bytes)));
        if self.bytes_after > self.max_bytes {
            s.push_str("; still over the bound: the rest is not evictable");
        }
        if !self.errors.is_empty() {
            s.push_str(&format!(
                "; {} entries could not be removed",
                self.errors.len()
            ));
        }
        s
    }
}

impl std::fmt::Display for PruneReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.summary())
    }
}

// ---------------------------------------------------------------------------------------
// The lock.

/// A `flock(2)` on `CACHE/lock`, released when dropped. Builds hold it shared for their
/// whole duration; [`prune`] holds it exclusively.
#[derive(Debug)]
pub struct CacheLock {
    _file: fs::File,
}

fn open_lock(cache_dir: &Path) -> Result<fs::File> {
    fs::create_dir_all(cache_dir).map_err(|e| Error::io(cache_dir, e))?;
    let p = cache_dir.join("lock");
    match fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&p)
    {
        Ok(f) => Ok(f),
        // A cache shared with another user: flock works on a read-only descriptor.
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            fs::File::open(&p).map_err(|e| Error::io(&p, e))
        }
        Err(e) => Err(Error::io(&p, e)),
    }
}

fn try_lock(cache_dir: &Path, exclusive: bool) -> Result<Option<CacheLock>> {
    let f = open_lock(cache_dir)?;
    let r = if exclusive {
        f.try_lock()
    } else {
        f.try_lock_shared()
    };
    match r {
        Ok(()) => Ok(Some(CacheLock { _file: f })),
        Err(fs::TryLockError::WouldBlock) => Ok(None),
        Err(fs::TryLockError::Error(e)) => Err(Error::io(cache_dir.join("lock"), e)),
    }
}

fn lock(cache_dir: &Path, exclusive: bool) -> Result<CacheLock> {
    let f = open_lock(cache_dir)?;
    let r = if exclusive { f.lock() } else { f.lock_shared() };
    r.map_err(|e| Error::io(cache_dir.join("lock"), e))?;
    Ok(CacheLock { _file: f })
}

impl CacheLock {
    /// Take the shared lock (what a build holds), waiting for a prune to finish.
    pub fn shared(cache_dir: &Path) -> Result<CacheLock> {
        lock(cache_dir, false)
    }

    /// Take the shared lock if no prune holds the cache.
    pub fn try_shared(cache_dir: &Path) -> Result<Option<CacheLock>> {
        try_lock(cache_dir, false)
    }

    /// Take the shared lock, calling `waiting` first when a prune holds the cache (so the
    /// caller can say why it waits), then waiting for it to finish.
    pub fn shared_telling(cache_dir: &Path, waiting: impl FnOnce()) -> Result<CacheLock> {
        match Self::try_shared(cache_dir)? {
            Some(l) => Ok(l),
            None => {
                waiting();
                Self::shared(cache_dir)
            }
        }
    }

    /// Take the exclusive lock (what prune holds), waiting for every build to finish.
    pub fn exclusive(cache_dir: &Path) -> Result<CacheLock> {
        lock(cache_dir, true)
    }

    /// Take the exclusive lock if nobody holds the cache.
    pub fn try_exclusive(cache_dir: &Path) -> Result<Option<CacheLock>> {
        try_lock(cache_dir, true)
    }
}

// ---------------------------------------------------------------------------------------
// Recording uses.

const NOW: rustix::fs::Timestamps = rustix::fs::Timestamps {
    last_access: rustix::fs::Timespec {
        tv_sec: 0,
        tv_nsec: rustix::fs::UTIME_NOW,
    },
    last_modification: rustix::fs::Timespec {
        tv_sec: 0,
        tv_nsec: rustix::fs::UTIME_NOW,
    },
};

/// Mark a file entry (blob, step record, index, stat cache) as used now: one
/// `utimensat(2)` setting its times to now. Best effort.
pub(crate) fn touch(path: &Path) {
    let _ = rustix::fs::utimensat(rustix::fs::CWD, path, &NOW, rustix::fs::AtFlags::empty());
}

/// [`touch`] a blob of `store` (if it is there).
pub(crate) fn touch_blob(store: &BlobStore, digest: &Digest) {
    touch(&store.path(digest));
}

/// Mark a directory entry of the cache (`rootfs/…`, `lower/…/…`, `mounts/…`) as used now,
/// through its marker `used/<path>`: one `utimensat(2)`, or creating the marker the first
/// time. The directory itself is left alone. Best effort.
pub(crate) fn mark_used(cache_dir: &Path, dir: &Path) {
    let Ok(rel) = dir.strip_prefix(cache_dir) else {
        return;
    };
    let marker = cache_dir.join("used").join(rel);
    let r = rustix::fs::utimensat(rustix::fs::CWD, &marker, &NOW, rustix::fs::AtFlags::empty());
    if r == Err(rustix::io::Errno::NOENT) {
        if let Some(parent) = marker.parent() {
            let _ = fs::create_dir_all(parent);
        }
        let _ = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&marker);
    }
}

// ---------------------------------------------------------------------------------------
// Measuring.

/// Disk usage with hard links counted once.
#[derive(Default)]
struct Du {
    seen: HashSet<(u64, u64)>,
}

impl Du {
    fn blocks(&mut self, md: &fs::Metadata) -> u64 {
        if !md.is_dir() && md.nlink() > 1 && !self.seen.insert((md.dev(), md.ino())) {
            return 0;
        }
        md.blocks() * 512
    }

    /// The usage of `path` (whose metadata is `md`) and everything under it. Unreadable
    /// directories count for themselves only.
    fn tree(&mut self, path: &Path, md: &fs::Metadata) -> u64 {
        let mut n = self.blocks(md);
        if md.is_dir() {
            if let Ok(rd) = fs::read_dir(path) {
                for e in rd.flatten() {
                    if let Ok(m) = e.metadata() {
                        n += self.tree(&e.path(), &m);
                    }
                }
            }
        }
        n
    }
}

fn mtime(md: &fs::Metadata) -> SystemTime {
    md.modified().unwrap_or(SystemTime::UNIX_EPOCH)
}

fn ctime(md: &fs::Metadata) -> SystemTime {
    let t = SystemTime::UNIX_EPOCH;
    if md.ctime() >= 0 {
        t + Duration::new(md.ctime() as u64, md.ctime_nsec() as u32)
    } else {
        t
    }
}

#[derive(Default)]
struct Scan {
    entries: Vec<CacheEntry>,
    /// Bytes no entry accounts for.
    other: u64,
    /// Markers (relative to `used/`).
    markers: Vec<PathBuf>,
}

impl Scan {
    fn total(&self) -> u64 {
        self.other + self.entries.iter().map(|e| e.bytes).sum::<u64>()
    }
}

struct Scanner<'a> {
    cache: &'a Path,
    du: Du,
    scan: Scan,
    now: SystemTime,
}

fn children(dir: &Path) -> Vec<(String, PathBuf, fs::Metadata)> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<_> = rd
        .flatten()
        .filter_map(|e| {
            let md = e.metadata().ok()?;
            Some((e.file_name().to_string_lossy().into_owned(), e.path(), md))
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn blob_rel(d: &Digest) -> PathBuf {
    PathBuf::from("blobs")
        .join(d.algorithm().as_str())
        .join(d.hex())
}

#[derive(serde::Deserialize)]
struct RefDoc {
    root: Descriptor,
    manifest: Descriptor,
}

impl Scanner<'_> {
    fn rel(&self, p: &Path) -> PathBuf {
        p.strip_prefix(self.cache).unwrap_or(p).to_path_buf()
    }

    fn other(&mut self, p: &Path, md: &fs::Metadata) {
        self.scan.other += self.du.tree(p, md);
    }

    fn other_self(&mut self, md: &fs::Metadata) {
        self.scan.other += self.du.blocks(md);
    }

    fn push(&mut self, kind: Kind, p: &Path, md: &fs::Metadata) -> &mut CacheEntry {
        let rel = self.rel(p);
        let bytes = self.du.tree(p, md);
        let last_used = match kind {
            Kind::Rootfs | Kind::Lower | Kind::Mount => {
                match fs::metadata(self.cache.join("used").join(&rel)) {
                    Ok(m) => mtime(&m),
                    Err(_) => ctime(md),
                }
            }
            _ => mtime(md),
        };
        self.scan.entries.push(CacheEntry {
            kind,
            path: rel,
            bytes,
            last_used,
            dangling: false,
            evictable: true,
            needs: Vec::new(),
            len: md.len(),
        });
        self.scan.entries.last_mut().expect("just pushed")
    }

    /// A temporary; `unlocked`: written by processes that may not hold the lock.
    fn temp(&mut self, p: &Path, md: &fs::Metadata, unlocked: bool) {
        let young = self
            .now
            .duration_since(mtime(md))
            .map(|age| age < UNLOCKED_TEMP_GRACE)
            .unwrap_or(true);
        let e = self.push(Kind::Temporary, p, md);
        e.evictable = !(unlocked && young);
    }

    /// A directory of files of one kind (`index/`, `filehash/`, `steps/xx/`).
    fn files(&mut self, dir: &Path, md: &fs::Metadata, kind: Kind) {
        self.other_self(md);
        for (name, p, m) in children(dir) {
            if name.starts_with('.') {
                self.temp(&p, &m, false);
            } else if m.is_file() {
                let e = self.push(kind, &p, &m);
                if kind == Kind::Step {
                    match fs::read(&p)
                        .ok()
                        .and_then(|b| serde_json::from_slice::<crate::cache::CachedStep>(&b).ok())
                    {
                        Some(step) => {
                            if let Some(l) = step.layer {
                                e.needs.push(blob_rel(&l.digest));
                                e.len = l.size;
                            }
                        }
                        None => e.dangling = true,
                    }
                }
            } else {
                self.other(&p, &m);
            }
        }
    }

    /// A directory of directory entries (`rootfs/`, `mounts/`, `lower/<group>/`).
    fn dirs(&mut self, dir: &Path, md: &fs::Metadata, kind: Kind) {
        self.other_self(md);
        for (name, p, m) in children(dir) {
            if name.starts_with('.') {
                self.temp(&p, &m, false);
            } else if m.is_dir() {
                self.push(kind, &p, &m);
            } else {
                self.other(&p, &m);
            }
        }
    }

    fn blobs(&mut self, dir: &Path, md: &fs::Metadata) {
        self.other_self(md);
        for (_, alg_dir, alg_md) in children(dir) {
            if !alg_md.is_dir() {
                self.other(&alg_dir, &alg_md);
                continue;
            }
            self.other_self(&alg_md);
            for (name, p, m) in children(&alg_dir) {
                if name.starts_with('.') {
                    self.temp(&p, &m, true);
                } else if m.is_file() && is_hex(&name) {
                    self.push(Kind::Blob, &p, &m);
                } else {
                    self.other(&p, &m);
                }
            }
        }
    }

    fn refs(&mut self, dir: &Path, md: &fs::Metadata) {
        self.other_self(md);
        for (name, p, m) in children(dir) {
            if name.starts_with('.') {
                self.temp(&p, &m, true);
            } else if m.is_file() && name.ends_with(".json") {
                let e = self.push(Kind::Ref, &p, &m);
                match fs::read(&p)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<RefDoc>(&b).ok())
                {
                    Some(r) => {
                        e.needs.push(blob_rel(&r.root.digest));
                        e.needs.push(blob_rel(&r.manifest.digest));
                    }
                    None => e.dangling = true,
                }
            } else {
                self.other(&p, &m);
            }
        }
    }

    fn markers(&mut self, dir: &Path, md: &fs::Metadata, rel: &Path) {
        self.other_self(md);
        for (name, p, m) in children(dir) {
            let r = rel.join(&name);
            if m.is_dir() {
                self.markers(&p, &m, &r);
            } else {
                self.other_self(&m);
                self.scan.markers.push(r);
            }
        }
    }

    fn run(mut self) -> Result<Scan> {
        let md = fs::symlink_metadata(self.cache).map_err(|e| Error::io(self.cache, e))?;
        self.other_self(&md);
        for (name, p, m) in children(self.cache) {
            if !m.is_dir() {
                self.other(&p, &m);
                continue;
            }
            match name.as_str() {
                "blobs" => self.blobs(&p, &m),
                "refs" => self.refs(&p, &m),
                "steps" => {
                    self.other_self(&m);
                    for (n, sub, sm) in children(&p) {
                        if n.starts_with('.') {
                            self.temp(&sub, &sm, false);
                        } else if sm.is_dir() {
                            self.files(&sub, &sm, Kind::Step);
                        } else {
                            self.other(&sub, &sm);
                        }
                    }
                }
                "index" => self.files(&p, &m, Kind::Index),
                "filehash" => self.files(&p, &m, Kind::FileHash),
                "rootfs" => self.dirs(&p, &m, Kind::Rootfs),
                "mounts" => self.dirs(&p, &m, Kind::Mount),
                "lower" => {
                    self.other_self(&m);
                    for (n, group, gm) in children(&p) {
                        if n.starts_with('.') {
                            self.temp(&group, &gm, false);
                        } else if gm.is_dir() {
                            self.dirs(&group, &gm, Kind::Lower);
                        } else {
                            self.other(&group, &gm);
                        }
                    }
                }
                // Only builds (holding the lock) use these.
                "sandbox" | "tmp" => {
                    self.other_self(&m);
                    for (_, c, cm) in children(&p) {
                        self.temp(&c, &cm, false);
                    }
                }
                "used" => self.markers(&p, &m, Path::new("")),
                _ => self.other(&p, &m),
            }
        }
        // Step records and refs whose blobs are gone.
        let blobs: HashMap<PathBuf, u64> = self
            .scan
            .entries
            .iter()
            .filter(|e| e.kind == Kind::Blob)
            .map(|e| (e.path.clone(), e.len))
            .collect();
        for e in &mut self.scan.entries {
            // A step's layer must be there with its size; a ref's documents must be there.
            let missing = match e.kind {
                Kind::Step => e
                    .needs
                    .first()
                    .is_some_and(|b| blobs.get(b) != Some(&e.len)),
                Kind::Ref => e.needs.iter().any(|b| !blobs.contains_key(b)),
                _ => false,
            };
            e.dangling |= missing;
        }
        Ok(self.scan)
    }
}

fn scan(cache_dir: &Path) -> Result<Scan> {
    Scanner {
        cache: cache_dir,
        du: Du::default(),
        scan: Scan::default(),
        now: SystemTime::now(),
    }
    .run()
}

fn lru_order(a: &CacheEntry, b: &CacheEntry) -> std::cmp::Ordering {
    a.last_used
        .cmp(&b.last_used)
        .then(a.kind.tie_rank().cmp(&b.kind.tie_rank()))
        .then(a.path.cmp(&b.path))
}

/// How much of `cache_dir` each kind of entry uses. Read-only and lock-free: while a
/// build runs, the numbers are a snapshot of a moving target. A missing directory is an
/// empty cache.
pub fn usage(cache_dir: &Path) -> Result<CacheUsage> {
    if !cache_dir.exists() {
        return Ok(empty_usage());
    }
    let s = scan(cache_dir)?;
    let mut u = empty_usage();
    u.total_bytes = s.total();
    u.other_bytes = s.other;
    for e in &s.entries {
        let k = u.kinds.entry(e.kind).or_default();
        k.bytes += e.bytes;
        k.entries += 1;
        k.dangling += e.dangling as u64;
    }
    Ok(u)
}

fn empty_usage() -> CacheUsage {
    CacheUsage {
        kinds: Kind::ALL
            .iter()
            .map(|k| (*k, KindUsage::default()))
            .collect(),
        ..Default::default()
    }
}

/// Every entry of `cache_dir`, least recently used first. Read-only and lock-free, like
/// [`usage`].
pub fn entries(cache_dir: &Path) -> Result<Vec<CacheEntry>> {
    if !cache_dir.exists() {
        return Ok(Vec::new());
    }
    let mut v = scan(cache_dir)?.entries;
    v.sort_by(lru_order);
    Ok(v)
}

// ---------------------------------------------------------------------------------------
// Evicting.

/// What to evict, in order, and the usage expected afterwards.
fn plan(s: &Scan, max_bytes: u64, failed: &HashSet<PathBuf>) -> (Vec<Evicted>, u64) {
    let mut out = Vec::new();
    let mut gone: HashSet<&Path> = HashSet::new();
    let mut estimate = s.total();
    let take = |e: &CacheEntry, reason, out: &mut Vec<Evicted>, estimate: &mut u64| {
        out.push(Evicted {
            entry: e.clone(),
            reason,
        });
        *estimate = estimate.saturating_sub(e.bytes);
    };
    let usable = |e: &CacheEntry| e.evictable && !failed.contains(&e.path);
    // Garbage first, whatever the bound: temporaries of dead processes, dangling records.
    for e in s.entries.iter().filter(|e| usable(e)) {
        let reason = if e.kind == Kind::Temporary {
            Reason::Temporary
        } else if e.dangling {
            Reason::Dangling
        } else {
            continue;
        };
        gone.insert(&e.path);
        take(e, reason, &mut out, &mut estimate);
    }
    // Who needs which blob: evicting a blob makes them dangling.
    let mut dependents: HashMap<&Path, Vec<&CacheEntry>> = HashMap::new();
    for e in &s.entries {
        for b in &e.needs {
            dependents.entry(b.as_path()).or_default().push(e);
        }
    }
    let mut lru: Vec<&CacheEntry> = s
        .entries
        .iter()
        .filter(|e| usable(e) && !gone.contains(e.path.as_path()))
        .collect();
    lru.sort_by(|a, b| lru_order(a, b));
    for e in lru {
        if estimate <= max_bytes {
            break;
        }
        if !gone.insert(&e.path) {
            continue;
        }
        take(e, Reason::LeastRecentlyUsed, &mut out, &mut estimate);
        if e.kind == Kind::Blob {
            for d in dependents.get(e.path.as_path()).into_iter().flatten() {
                if usable(d) && gone.insert(&d.path) {
                    take(d, Reason::Dangling, &mut out, &mut estimate);
                }
            }
        }
    }
    (out, estimate)
}

/// Removes trees, through the sandbox's user namespace when files of subordinate ids
/// deny a plain removal.
struct Remover {
    cache: PathBuf,
    sandbox: OnceLock<std::result::Result<hoist_sandbox::Sandbox, String>>,
}

impl Remover {
    fn remove_tree(&self, p: &Path) -> std::result::Result<(), String> {
        let plain = match hoist_image::fsutil::remove_dir_all_writable(p) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => e,
        };
        if plain.kind() != io::ErrorKind::PermissionDenied {
            return Err(format!("{}: {plain}", p.display()));
        }
        let sb = self.sandbox.get_or_init(|| {
            hoist_sandbox::Sandbox::new(hoist_sandbox::SandboxConfig::new(
                self.cache.join("sandbox"),
            ))
            .map_err(|e| hoist_image::chain_text(&e))
        });
        match sb {
            Ok(sb) => sb
                .remove_tree(p)
                .map_err(|e| format!("{}: {plain}; through the sandbox: {e}", p.display())),
            Err(e) => Err(format!(
                "{}: {plain} (files of subordinate ids need the sandbox, which cannot start: {e})",
                p.display()
            )),
        }
    }

    /// Remove one entry; directories are renamed out of the way first. On failure, the
    /// error and the path (relative) that holds what is left.
    fn evict(&self, e: &CacheEntry) -> std::result::Result<(), (String, PathBuf)> {
        let abs = self.cache.join(&e.path);
        let fail = |err: &dyn std::fmt::Display, at: &Path| {
            (format!("{}: {err}", abs.display()), at.to_path_buf())
        };
        let md = match fs::symlink_metadata(&abs) {
            Ok(m) => m,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(fail(&err, &e.path)),
        };
        if md.is_dir() {
            let target = if e.kind == Kind::Temporary {
                e.path.clone()
            } else {
                let name = e.path.file_name().unwrap_or_default().to_string_lossy();
                let trash = e
                    .path
                    .with_file_name(format!(".gc-{}-{name}", std::process::id()));
                fs::rename(&abs, self.cache.join(&trash)).map_err(|err| fail(&err, &e.path))?;
                trash
            };
            self.remove_tree(&self.cache.join(&target))
                .map_err(|msg| (msg, target))?;
        } else {
            match fs::remove_file(&abs) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(fail(&err, &e.path)),
            }
        }
        if matches!(e.kind, Kind::Rootfs | Kind::Lower | Kind::Mount) {
            let _ = fs::remove_file(self.cache.join("used").join(&e.path));
        }
        Ok(())
    }
}

/// Evict least recently used entries of `cache_dir` until it uses at most
/// `opts.max_bytes` (see the module docs for what an entry is and how last use is known).
/// Temporaries of dead processes and dangling step records and refs go first, whatever
/// the bound.
///
/// Takes the cache lock exclusively; when a build (or anything else) holds it, returns
/// at once with [`PruneReport::skipped`] set, unless `opts.wait`. A dry run takes the
/// lock too (so it reports what a prune would do now) and changes nothing.
pub fn prune(cache_dir: &Path, opts: &PruneOptions) -> Result<PruneReport> {
    let mut report = PruneReport {
        dry_run: opts.dry_run,
        max_bytes: opts.max_bytes,
        ..Default::default()
    };
    if !cache_dir.is_dir() {
        return Ok(report);
    }
    let _lock = if opts.wait {
        CacheLock::exclusive(cache_dir)?
    } else {
        match CacheLock::try_exclusive(cache_dir)? {
            Some(l) => l,
            None => {
                report.skipped = Some(format!(
                    "{} is in use by a running build; try again when it has finished, \
                     or wait for it",
                    cache_dir.display()
                ));
                return Ok(report);
            }
        }
    };
    let remover = Remover {
        cache: cache_dir.to_path_buf(),
        sandbox: OnceLock::new(),
    };
    let mut failed: HashSet<PathBuf> = HashSet::new();
    // Directories never shrink and removals can fail: measure again after each round.
    for round in 0..4 {
        let s = scan(cache_dir)?;
        if round == 0 {
            report.bytes_before = s.total();
        }
        report.bytes_after = s.total();
        let (plan, estimate) = plan(&s, opts.max_bytes, &failed);
        if opts.dry_run {
            report.bytes_after = estimate;
            report.evicted = plan;
            return Ok(report);
        }
        if round == 0 {
            // Markers of directories that are gone.
            let dirs: HashSet<&Path> = s
                .entries
                .iter()
                .filter(|e| matches!(e.kind, Kind::Rootfs | Kind::Lower | Kind::Mount))
                .map(|e| e.path.as_path())
                .collect();
            for m in s.markers.iter().filter(|m| !dirs.contains(m.as_path())) {
                let _ = fs::remove_file(cache_dir.join("used").join(m));
            }
        }
        if plan.is_empty() {
            break;
        }
        for ev in plan {
            match remover.evict(&ev.entry) {
                Ok(()) => {
                    tracing::debug!(kind = %ev.entry.kind, path = %ev.entry.path.display(),
                        bytes = ev.entry.bytes, reason = ?ev.reason, "evicted");
                    report.evicted.push(ev);
                }
                Err((msg, left)) => {
                    tracing::warn!("could not evict: {msg}");
                    failed.insert(ev.entry.path.clone());
                    failed.insert(left);
                    report.errors.push(msg);
                }
            }
        }
        if round == 3 {
            report.bytes_after = scan(cache_dir)?.total();
        }
    }
    Ok(report)
}

// ---------------------------------------------------------------------------------------
// Sizes.

/// Parse a human size: plain bytes (`1048576`), or a number (decimals allowed) and a
/// unit, case-insensitive, with optional space: `K`, `M`, `G`, `T`, `P` and `KiB`,
/// `MiB`, … are powers of 1024 (`2g` = 2 GiB, as `du -B` and `docker --memory`);
/// `KB`, `MB`, `GB`, `TB`, `PB` are powers of 1000 (`500MB` = 500 000 000); `B` is bytes.
pub fn parse_size(s: &str) -> Result<u64> {
    let err = |why: &str| {
        Error::Invalid(format!(
            "invalid size {s:?}: {why} (expected a number of bytes, optionally with a unit: \
             500MB, 10GiB, 2g, 1.5T)"
        ))
    };
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = (&t[..split], t[split..].trim());
    if num.is_empty() {
        return Err(err(if t.starts_with('-') {
            "sizes cannot be negative"
        } else {
            "no number"
        }));
    }
    let (int, frac) = match num.split_once('.') {
        Some((i, f)) => (i, f),
        None => (num, ""),
    };
    if frac.contains('.') || (int.is_empty() && frac.is_empty()) {
        return Err(err("not a number"));
    }
    let mult: u128 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "ki" | "kib" => 1 << 10,
        "m" | "mi" | "mib" => 1 << 20,
        "g" | "gi" | "gib" => 1 << 30,
        "t" | "ti" | "tib" => 1 << 40,
        "p" | "pi" | "pib" => 1 << 50,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "pb" => 1_000_000_000_000_000,
        _ => {
            return Err(err(&format!(
                "unknown unit {unit:?} (use B, K/KiB, M/MiB, G/GiB, T/TiB, P/PiB, or KB, MB, GB, TB, PB)"
            )))
        }
    };
    if frac.len() > 18 || int.len() > 30 {
        return Err(err("too many digits"));
    }
    let int_v: u128 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| err("not a number"))?
    };
    let frac_v: u128 = if frac.is_empty() {
        0
    } else {
        frac.parse().map_err(|_| err("not a number"))?
    };
    let scale = 10u128.pow(frac.len() as u32);
    if mult == 1 && frac_v != 0 {
        return Err(err("a number of bytes must be whole"));
    }
    let v = int_v
        .checked_mul(mult)
        .and_then(|i| i.checked_add(frac_v * mult / scale))
        .filter(|v| *v <= u64::MAX as u128)
        .ok_or_else(|| err("too large"))?;
    Ok(v as u64)
}

/// Format bytes for people: `512 B`, `1.5 KiB`, `340.0 MiB`, `1.2 GiB`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.1} {}", UNITS[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("0").unwrap(), 0);
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_size("500MB").unwrap(), 500_000_000);
        assert_eq!(parse_size("500mb").unwrap(), 500_000_000);
        assert_eq!(parse_size("10GiB").unwrap(), 10 << 30);
        assert_eq!(parse_size("2g").unwrap(), 2 << 30);
        assert_eq!(parse_size("2G").unwrap(), 2 << 30);
        assert_eq!(parse_size(" 1.5 K ").unwrap(), 1536);
        assert_eq!(parse_size("1.5T").unwrap(), 3 << 39);
        assert_eq!(parse_size("64k").unwrap(), 65536);
        assert_eq!(parse_size("12b").unwrap(), 12);
        assert_eq!(parse_size(".5M").unwrap(), 512 << 10);
        assert!(parse_size("16EiB").is_err());
        assert_eq!(parse_size("16383P").unwrap(), 16383 << 50);
        for bad in [
            "",
            "MB",
            "-1",
            "1.2.3",
            "1.5",
            "10 parsecs",
            "1e9",
            "18446744073709551616",
            ".",
        ] {
            let e = parse_size(bad).unwrap_err().to_string();
            assert!(
                e.contains("invalid size") && e.contains("500MB"),
                "{bad}: {e}"
            );
        }
        assert!(parse_size("-1")
            .unwrap_err()
            .to_string()
            .contains("negative"));
        assert!(parse_size("3 parsecs")
            .unwrap_err()
            .to_string()
            .contains("unknown unit \"parsecs\""));
    }

    #[test]
    fn sizes_format() {
        assert_eq!(format_size(0), "0 B");
        assert_eq!(format_size(1023), "1023 B");
        assert_eq!(format_size(1536), "1.5 KiB");
        assert_eq!(format_size(10 << 30), "10.0 GiB");
    }

    fn write(p: &Path, data: &[u8]) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, data).unwrap();
    }

    fn set_mtime(p: &Path, secs: u64) {
        fs::File::open(p)
            .unwrap()
            .set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
            .unwrap();
    }

    /// A synthetic cache: every kind, with known last uses.
    fn fake_cache(dir: &Path) -> (Digest, Digest) {
        let layer = vec![7u8; 40_000];
        let ld = Digest::sha256(&layer);
        let other = vec![9u8; 40_000];
        let od = Digest::sha256(&other);
        let bp = |d: &Digest| dir.join(blob_rel(d));
        write(&bp(&ld), &layer);
        write(&bp(&od), &other);
        let step = crate::cache::CachedStep {
            layer: Some(Descriptor::new(
                "application/vnd.oci.image.layer.v1.tar",
                ld.clone(),
                40_000,
            )),
            diff_id: Some(ld.clone()),
        };
        write(
            &dir.join("steps/ab/ab01"),
            &serde_json::to_vec(&step).unwrap(),
        );
        let gone = Digest::sha256(b"gone");
        let dangling = crate::cache::CachedStep {
            layer: Some(Descriptor::new("x", gone, 4)),
            diff_id: None,
        };
        write(
            &dir.join("steps/cd/cd01"),
            &serde_json::to_vec(&dangling).unwrap(),
        );
        write(&dir.join("index/0011"), b"[]");
        write(&dir.join("rootfs/c1/etc/hostname"), &[1u8; 9000]);
        write(&dir.join("lower/root-0/d1/file"), &[2u8; 9000]);
        write(&dir.join("mounts/m1/cachefile"), &[3u8; 9000]);
        write(&dir.join("tmp/build-x/junk"), b"junk");
        write(&dir.join("used/rootfs/c1"), b"");
        write(&dir.join("used/rootfs/orphan"), b"");
        // Last uses: other blob oldest, then rootfs, index, layer + its step, lower, mount.
        set_mtime(&bp(&od), 1000);
        set_mtime(&dir.join("used/rootfs/c1"), 2000);
        set_mtime(&dir.join("index/0011"), 3000);
        set_mtime(&bp(&ld), 4000);
        set_mtime(&dir.join("steps/ab/ab01"), 4500);
        mark_used(dir, &dir.join("lower/root-0/d1"));
        set_mtime(&dir.join("used/lower/root-0/d1"), 5000);
        mark_used(dir, &dir.join("mounts/m1"));
        (ld, od)
    }

    #[test]
    fn usage_kinds_and_lru_plan() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let (ld, od) = fake_cache(dir);
        let u = usage(dir).unwrap();
        assert_eq!(u.get(Kind::Blob).entries, 2);
        assert_eq!(u.get(Kind::Step).entries, 2);
        assert_eq!(u.get(Kind::Step).dangling, 1);
        for k in [
            Kind::Index,
            Kind::Rootfs,
            Kind::Lower,
            Kind::Mount,
            Kind::Temporary,
        ] {
            assert_eq!(u.get(k).entries, 1, "{k}");
        }
        assert!(u.get(Kind::Blob).bytes >= 80_000);
        let order: Vec<PathBuf> = entries(dir).unwrap().into_iter().map(|e| e.path).collect();
        let pos = |p: &str| order.iter().position(|x| x == Path::new(p)).unwrap();
        assert!(pos(&format!("blobs/sha256/{}", od.hex())) < pos("rootfs/c1"));
        assert!(pos("rootfs/c1") < pos("index/0011"));
        assert!(pos("lower/root-0/d1") < pos("mounts/m1"));

        // Dry run: garbage, then the oldest blob; nothing changes on disk.
        let bound = u.total_bytes - 30_000;
        let mut o = PruneOptions::new(bound);
        o.dry_run = true;
        let r = prune(dir, &o).unwrap();
        let what: Vec<(String, Reason)> = r
            .evicted
            .iter()
            .map(|e| (e.entry.path.display().to_string(), e.reason))
            .collect();
        assert_eq!(
            what,
            vec![
                ("steps/cd/cd01".to_string(), Reason::Dangling),
                ("tmp/build-x".to_string(), Reason::Temporary),
                (
                    format!("blobs/sha256/{}", od.hex()),
                    Reason::LeastRecentlyUsed
                ),
            ]
        );
        assert_eq!(usage(dir).unwrap(), u);
        assert!(dir.join("used/rootfs/orphan").exists());

        // For real, down to nothing evictable: the layer takes its step record with it.
        let r = prune(dir, &PruneOptions::new(0)).unwrap();
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        let step = r
            .evicted
            .iter()
            .find(|e| e.entry.path == Path::new("steps/ab/ab01"))
            .unwrap();
        assert_eq!(step.reason, Reason::Dangling);
        let u = usage(dir).unwrap();
        assert_eq!(u.entries(), 0, "{u}");
        assert_eq!(u.total_bytes, r.bytes_after);
        assert!(!dir.join(blob_rel(&ld)).exists());
        assert!(!dir.join("used/rootfs/orphan").exists());
        assert!(!dir.join("used/lower/root-0/d1").exists());
        // No half-removed directory anywhere.
        for d in ["rootfs", "lower/root-0", "mounts"] {
            assert_eq!(fs::read_dir(dir.join(d)).unwrap().count(), 0, "{d}");
        }
    }

    #[test]
    fn prune_skips_while_locked_and_waits_when_told() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        fake_cache(&dir);
        let held = CacheLock::shared(&dir).unwrap();
        let r = prune(&dir, &PruneOptions::new(0)).unwrap();
        assert!(r.skipped.is_some() && r.evicted.is_empty());
        assert!(r.summary().contains("skipped"), "{}", r.summary());
        assert!(CacheLock::try_exclusive(&dir).unwrap().is_none());
        assert!(CacheLock::try_shared(&dir).unwrap().is_some());
        let t = {
            let dir = dir.clone();
            std::thread::spawn(move || {
                let mut o = PruneOptions::new(0);
                o.wait = true;
                prune(&dir, &o).unwrap()
            })
        };
        std::thread::sleep(Duration::from_millis(200));
        assert!(!t.is_finished());
        drop(held);
        let r = t.join().unwrap();
        assert!(r.skipped.is_none() && !r.evicted.is_empty());
    }

    #[test]
    fn young_unlocked_temporaries_stay() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        write(&dir.join("blobs/sha256/.tmp-young"), b"partial");
        write(&dir.join("blobs/sha256/.tmp-old"), b"partial");
        set_mtime(&dir.join("blobs/sha256/.tmp-old"), 1000);
        let r = prune(dir, &PruneOptions::new(0)).unwrap();
        assert_eq!(r.evicted.len(), 1);
        assert!(dir.join("blobs/sha256/.tmp-young").exists());
        assert!(!dir.join("blobs/sha256/.tmp-old").exists());
    }
}
