//! Content hashes of build context files, with a persistent stat cache
//! (`CACHE/filehash/<ctx>.json`: path → size, mtime, ctime, inode, BLAKE3 of content).
//!
//! File contents enter step keys by BLAKE3 digest (fast enough to hash a large context
//! in well under a second); the stat cache skips re-reading files whose size, times and
//! inode are unchanged, and content keys still match across fresh checkouts where those
//! change.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::json::write_json_atomic;

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
            crate::touch::touch(f);
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
