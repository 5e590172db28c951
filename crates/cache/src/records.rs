//! Step records: what a finished COPY, ADD, RUN or WORKDIR produced, under its key
//! (`CACHE/steps/<xx>/<key>`: `{"layer": {descriptor} | null, "diff_id": "sha256:…"}`).
//!
//! Records are written atomically and only after their layer blob is in the store; a
//! hit whose blob has gone missing (evicted by [`crate::prune()`]) is a miss. A hit sets
//! the record's mtime: its last use. The keys themselves are derived by the engine.

use std::fs;
use std::path::PathBuf;

use hoist_image::{BlobStore, Descriptor, Digest};
use serde::{Deserialize, Serialize};

/// A step key: 32 bytes (the engine derives them).
pub type Key = [u8; 32];

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
        let b = match fs::read(&p) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(path = %p.display(), "step cache record unreadable, step runs again: {e}");
                return None;
            }
        };
        let c: CachedStep = match serde_json::from_slice(&b) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(path = %p.display(), "step cache record corrupt, step runs again: {e}");
                return None;
            }
        };
        if let Some(l) = &c.layer {
            if !store.has_descriptor(l) {
                return None;
            }
        }
        // Mark as used (for least-recently-used eviction, see `crate::prune`).
        crate::touch::touch(&p);
        Some(c)
    }

    /// Record a step (atomically). A record that cannot be written is logged with
    /// the reason (`tracing::warn!`): the build goes on, the step is not cached.
    pub fn put(&self, key: &Key, step: &CachedStep) {
        let p = self.path(key);
        if let Err(e) = crate::json::try_write_json_atomic(&p, step) {
            tracing::warn!(path = %p.display(), "step cache record not written: {e}");
        }
    }
}
