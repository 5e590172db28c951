//! Walking the cache directory: every entry with its size and last use, and the bytes
//! no entry accounts for.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use hoist_image::Descriptor;

use crate::entry::{CacheEntry, Kind};
use crate::error::{Error, Result};
use crate::layout::blob_rel;

/// Temporaries that processes not holding the cache lock may be writing (blob and ref
/// temp files of `hoist pull`) are only removed when untouched for this long.
pub const UNLOCKED_TEMP_GRACE: Duration = Duration::from_secs(3600);

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

/// One walk of the cache.
#[derive(Default)]
pub(crate) struct Scan {
    pub(crate) entries: Vec<CacheEntry>,
    /// Bytes no entry accounts for.
    pub(crate) other: u64,
    /// Markers (relative to `used/`).
    pub(crate) markers: Vec<PathBuf>,
}

impl Scan {
    pub(crate) fn total(&self) -> u64 {
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
                        .and_then(|b| serde_json::from_slice::<crate::records::CachedStep>(&b).ok())
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

/// Walk `cache_dir`.
pub(crate) fn scan(cache_dir: &Path) -> Result<Scan> {
    Scanner {
        cache: cache_dir,
        du: Du::default(),
        scan: Scan::default(),
        now: SystemTime::now(),
    }
    .run()
}

/// Least recently used first; ties: cheapest to make again first.
pub(crate) fn lru_order(a: &CacheEntry, b: &CacheEntry) -> std::cmp::Ordering {
    a.last_used
        .cmp(&b.last_used)
        .then(a.kind.tie_rank().cmp(&b.kind.tie_rank()))
        .then(a.path.cmp(&b.path))
}
