//! Compressed encodings of cached diffs.
//!
//! A step's result is a diff (its diff ID); an output wants that diff compressed some
//! way. Encodings are cached by `(diff ID, algorithm, level)`:
//!
//! ```text
//! CACHE/steps/<xx>/<H("variant/v1", diff_id, algorithm, level)>   → {layer: descriptor}
//! ```
//!
//! (the same record format and eviction as step records: a record whose blob was
//! evicted is a miss). A missing encoding is made from any blob of the diff by
//! decompressing it, checking the diff ID, and compressing it again; the bytes are the
//! ones a fresh step would have written (see [`hoist_image::layer::write_encoded_blob`]).
//! So a cached build and a `--no-cache` build give the same digest whatever
//! compression earlier builds used.

use std::path::Path;

use hoist_image::layer::write_encoded_blob;
use hoist_image::media_type::{self, Compression};
use hoist_image::{BlobStore, Descriptor};

use crate::cache::{CachedStep, StepCache};
use crate::error::Result;
use crate::key::KeyBuilder;
use crate::layers::{open_uncompressed, LayerRef};
use crate::output::OutputSpec;

/// How an output wants the layers of a build encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Encoding {
    /// The compression of new layers.
    pub compression: Compression,
    /// Its level (`None`: the algorithm's default, gzip 6 and zstd 3).
    pub level: Option<i32>,
    /// `force-compression=true`: base layers are re-encoded too.
    pub force: bool,
}

impl Default for Encoding {
    fn default() -> Self {
        Encoding {
            compression: Compression::Gzip,
            level: None,
            force: false,
        }
    }
}

impl Encoding {
    /// The encoding `--output` asks for (gzip by default).
    pub fn of(o: &OutputSpec) -> Encoding {
        Encoding {
            compression: o.compression.unwrap_or(Compression::Gzip),
            level: o.compression_level,
            force: o.force_compression,
        }
    }

    /// The encoding new layers are written in: the first output's.
    pub fn primary(outputs: &[OutputSpec]) -> Encoding {
        outputs.first().map(Encoding::of).unwrap_or_default()
    }

    /// The level this encoding really uses.
    pub(crate) fn effective_level(&self) -> i32 {
        match (self.compression, self.level) {
            (Compression::None, _) => 0,
            (Compression::Gzip, l) => l.unwrap_or(6).clamp(0, 9),
            (Compression::Zstd, l) => l.unwrap_or(3),
        }
    }

    fn record_key(&self, diff_id: &hoist_image::Digest) -> crate::key::Key {
        KeyBuilder::new("variant/v1")
            .str(&diff_id.to_string())
            .str(media_type::oci_layer(self.compression))
            .num(self.effective_level() as i64)
            .finish()
    }
}

fn records(cache_dir: &Path) -> StepCache {
    // Always looked up, even with --no-cache: an encoding is a pure function of the
    // diff, so a recorded one is exactly what a fresh compression would write.
    StepCache::new(cache_dir.join("steps"), true)
}

/// Record that `layer`'s blob is its diff in `enc`.
pub(crate) fn record(cache_dir: &Path, layer: &LayerRef, enc: &Encoding) {
    let step = CachedStep {
        layer: Some(layer.desc.clone()),
        diff_id: Some(layer.diff_id.clone()),
    };
    records(cache_dir).put(&enc.record_key(&layer.diff_id), &step);
}

/// The blob of `layer` in `enc`: its own for base layers (unless forced), else the
/// recorded encoding, else a new one made from the blob the build has.
pub(crate) fn encode(
    cache_dir: &Path,
    store: &BlobStore,
    layer: &LayerRef,
    enc: &Encoding,
) -> Result<Descriptor> {
    let same_compression =
        media_type::layer_compression(&layer.desc.media_type) == Some(enc.compression);
    if layer.from_base && (!enc.force || same_compression) {
        return Ok(layer.desc.clone());
    }
    let cache = records(cache_dir);
    let key = enc.record_key(&layer.diff_id);
    if let Some(CachedStep {
        layer: Some(desc), ..
    }) = cache.get(&key, store)
    {
        return Ok(desc);
    }
    let tar = open_uncompressed(store, layer, None)?;
    let d = write_encoded_blob(
        store.root(),
        tar,
        &layer.diff_id,
        enc.compression,
        enc.level,
    )?;
    let desc = d.descriptor();
    cache.put(
        &key,
        &CachedStep {
            layer: Some(desc.clone()),
            diff_id: Some(layer.diff_id.clone()),
        },
    );
    Ok(desc)
}
