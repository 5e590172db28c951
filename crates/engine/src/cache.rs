//! The step cache: a finished COPY, ADD, RUN or WORKDIR is looked up by a key over
//! everything that determines its result, so an unchanged rebuild writes nothing.
//!
//! ```text
//! CACHE/
//!   steps/<key>.json      {"layer": {descriptor} | null, "diff_id": "sha256:…"}
//!   filehash/<ctx>.json   stat cache: path → (size, mtime, ctime, inode, blake3 of content)
//! ```
//!
//! Keys chain: each stage starts from its base's identity (manifest digest, or the key of
//! the stage it builds on) and every instruction folds its expanded form into the chain,
//! so a change anywhere invalidates everything after it. File contents enter keys by
//! BLAKE3 digest (fast enough to hash a large context in well under a second); the stat
//! cache skips re-reading files whose size, times and inode are unchanged, and content
//! keys still match across fresh checkouts where those change. Entries are written
//! atomically and only after their layer blob is in the store; a hit whose blob has gone
//! missing (evicted by [`crate::gc::prune`]) is a miss. A hit sets the record's mtime:
//! its last use.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hoist_image::{BlobStore, Descriptor, Digest};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub use crate::key::{key_entries, Key, KeyBuilder};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StatEntry {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
    dev: u64,
    #[serde(with = "hex32")]
    hash: [u8; 32],
}

mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = <&str>::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}

/// Files smaller than this are not kept in the stat cache.
pub const STAT_CACHE_MIN_SIZE: u64 = 16 << 10;

/// Content hashes of files, with a persistent stat cache.
pub struct FileHasher {
    file: Option<PathBuf>,
    map: Mutex<HashMap<String, StatEntry>>,
    dirty: Mutex<bool>,
}

impl FileHasher {
    /// A hasher whose stat cache lives in `file` (none: no persistence).
    pub fn load(file: Option<PathBuf>) -> FileHasher {
        if let Some(f) = &file {
            crate::gc::touch(f);
        }
        let map = file
            .as_ref()
            .and_then(|f| fs::read(f).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        FileHasher {
            file,
            map: Mutex::new(map),
            dirty: Mutex::new(false),
        }
    }

    /// The BLAKE3 digest of a file's content.
    pub fn hash(&self, path: &Path) -> Result<[u8; 32]> {
        let md = fs::metadata(path).map_err(|e| Error::io(path, e))?;
        let key = path.to_string_lossy().into_owned();
        let mtime_ns = md.mtime() as i128 * 1_000_000_000 + md.mtime_nsec() as i128;
        let ctime_ns = md.ctime() as i128 * 1_000_000_000 + md.ctime_nsec() as i128;
        if let Some(e) = self.map.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            if e.size == md.len()
                && e.mtime_ns == mtime_ns
                && e.ctime_ns == ctime_ns
                && e.ino == md.ino()
                && e.dev == md.dev()
            {
                return Ok(e.hash);
            }
        }
        let mut h = blake3::Hasher::new();
        let mut f = fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut buf = vec![0u8; 256 << 10];
        loop {
            let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        let hash = *h.finalize().as_bytes();
        // Small files are cheaper to hash again than to remember: keeping memory flat
        // for contexts of hundreds of thousands of files.
        if md.len() < STAT_CACHE_MIN_SIZE {
            return Ok(hash);
        }
        self.map.lock().unwrap_or_else(|e| e.into_inner()).insert(
            key,
            StatEntry {
                size: md.len(),
                mtime_ns,
                ctime_ns,
                ino: md.ino(),
                dev: md.dev(),
                hash,
            },
        );
        *self.dirty.lock().unwrap_or_else(|e| e.into_inner()) = true;
        Ok(hash)
    }

    /// Save the stat cache (atomically).
    pub fn save(&self) {
        let Some(f) = &self.file else { return };
        if !*self.dirty.lock().unwrap_or_else(|e| e.into_inner()) {
            return;
        }
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        write_json_atomic(f, &*map);
    }
}

/// What a cached step produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedStep {
    /// The layer, or `None` when the step changed nothing.
    pub layer: Option<Descriptor>,
    /// Its diff ID.
    pub diff_id: Option<Digest>,
}

/// The on-disk step cache.
pub struct StepCache {
    dir: PathBuf,
    lookups: bool,
}

impl StepCache {
    /// A cache in `dir`; `lookups` false (`--no-cache`) still records results.
    pub fn new(dir: PathBuf, lookups: bool) -> StepCache {
        StepCache { dir, lookups }
    }

    fn path(&self, key: &Key) -> PathBuf {
        let hex = hex::encode(key);
        self.dir.join(&hex[..2]).join(&hex)
    }

    /// Look a step up; only returns entries whose blob is still in `store`.
    pub fn get(&self, key: &Key, store: &BlobStore) -> Option<CachedStep> {
        if !self.lookups {
            return None;
        }
        let p = self.path(key);
        let b = fs::read(&p).ok()?;
        let c: CachedStep = serde_json::from_slice(&b).ok()?;
        if let Some(l) = &c.layer {
            if !store.has_descriptor(l) {
                return None;
            }
        }
        // Mark as used (for least-recently-used eviction, see `crate::gc`).
        crate::gc::touch(&p);
        Some(c)
    }

    /// Record a step (atomically).
    pub fn put(&self, key: &Key, step: &CachedStep) {
        let p = self.path(key);
        if let Some(parent) = p.parent() {
            let _ = fs::create_dir_all(parent);
        }
        if let Ok(b) = serde_json::to_vec(step) {
            let _ = hoist_image::atomic_write(&p, &b);
        }
    }
}

/// Serialise `value` as JSON straight into a file, atomically (no in-memory copy).
pub fn write_json_atomic<T: Serialize + ?Sized>(path: &Path, value: &T) {
    use std::io::Write;
    if let Some(parent) = path.parent() {
        let _ = fs::create_dir_all(parent);
    }
    let Ok(f) = hoist_image::AtomicFile::create(path) else {
        return;
    };
    let mut w = std::io::BufWriter::new(f);
    if serde_json::to_writer(&mut w, value).is_ok() && w.flush().is_ok() {
        if let Ok(f) = w.into_inner() {
            let _ = f.commit();
        }
    }
}
