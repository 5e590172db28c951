//! Layers: writing a directory tree or a list of entries as a layer blob, and
//! applying layer blobs onto a directory.
//!
//! # Writing
//!
//! [`walk`]/[`walk_dir`] turn a host directory into [`Entry`]s (paths, not
//! contents); a [`LayerWriter`] streams them as a deterministic tar through a
//! compressor ([`Compression::Gzip`] in parallel fixed-size blocks, zstd, or none),
//! hashing the uncompressed stream (the diffID) and the compressed blob (the
//! digest) as the bytes flow. [`write_layer_blob`] does it all into a blob
//! directory, atomically.
//!
//! ```text
//!  walk(dir) ──Entry──▶ tar encoder ──┬─▶ sha256 ─▶ diff_id
//!                                     └─▶ compressor (N threads) ──┬─▶ sha256 ─▶ digest
//!                                                                  └─▶ out (file)
//! ```
//!
//! Layers are reproducible by default: entries in byte order, owner 0:0, mtime 0,
//! empty uname/gname, fixed gzip header, and compressed output that does not
//! depend on the thread count.
//!
//! ```
//! use hoist_image::layer::{walk, write_layer_blob, WalkOptions, WriteOptions};
//! let src = tempfile::tempdir()?;
//! std::fs::write(src.path().join("hello.txt"), "hi\n")?;
//! let blobs = tempfile::tempdir()?;
//! let entries = walk(src.path(), "app", &WalkOptions::default(), &|_, _| true)?;
//! let desc = write_layer_blob(blobs.path(), entries, &WriteOptions::default())?;
//! assert!(blobs.path().join("sha256").join(desc.digest.hex()).exists());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Applying
//!
//! [`apply_layer`] extracts a (possibly compressed) layer onto a directory,
//! handling OCI whiteouts, hard links, devices and ownership, and resolving every
//! path inside the root: hostile archives (`..` names, symlinks or hard links
//! pointing outside) never write outside it.

mod apply;
mod entry;
mod gzip;
mod options;
mod recompress;
mod stream;
mod tar;
mod walk;
pub(crate) mod writer;

use std::fs;
use std::io::Write;
use std::path::Path;

pub use crate::media_type::Compression;
pub use apply::{
    apply_layer, apply_layer_checked, ApplyOptions, ApplyStats, WhiteoutMode, MAX_LISTED_UNSAFE,
};
pub use entry::{normalize_path, path_order, sort_entries, Entry, EntryKind, FileSource};
pub use gzip::{GzipWriter, BLOCK_SIZE as GZIP_BLOCK_SIZE};
pub use options::{ModeOverride, MtimePolicy, OwnerMap, Ownership, WriteOptions};
pub use recompress::write_encoded_blob;
pub use stream::{
    default_max_layer_size, human_size, parse_size, set_default_max_layer_size, sniff_compression,
    LayerName, LayerStream, StreamCheck, DEFAULT_MAX_LAYER_SIZE, MAX_LAYER_SIZE_ENV,
};
pub use walk::{walk, walk_dir, Walk, WalkFilter, WalkOptions, XattrPolicy};
pub use writer::{LayerDescriptor, LayerItem, LayerWriter};

use crate::{Error, Result};

/// Write a layer made of `entries` (in layer order) into `blobs_dir` atomically:
/// the blob is streamed to a temporary file in `<blobs_dir>/sha256/`, synced, and
/// renamed to `<blobs_dir>/sha256/<hex digest>`. Returns its descriptor.
///
/// `entries` may yield [`Entry`] or `Result<Entry>` (e.g. a [`walk`]).
pub fn write_layer_blob<I>(
    blobs_dir: &Path,
    entries: I,
    opts: &WriteOptions,
) -> Result<LayerDescriptor>
where
    I: IntoIterator,
    I::Item: LayerItem,
{
    let dir = blobs_dir.join("sha256");
    fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".layer-")
        .tempfile_in(&dir)
        .map_err(|e| Error::io(&dir, e))?;
    let mut w = LayerWriter::new(tmp, opts)?;
    w.append_all(entries)?;
    let (mut tmp, desc) = w.finish()?;
    tmp.flush().map_err(|e| Error::io(tmp.path(), e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| Error::io(tmp.path(), e))?;
    let dest = dir.join(desc.digest.hex());
    // Blobs are immutable: sealed read-only (outputs may hard-link them).
    crate::place::seal(tmp.as_file());
    tmp.persist(&dest).map_err(|e| Error::io(&dest, e.error))?;
    if let Ok(d) = fs::File::open(&dir) {
        // Make the rename durable; failure here only weakens crash safety.
        let _ = d.sync_all();
    }
    tracing::debug!(digest = %desc.digest, size = desc.size, "wrote layer blob");
    Ok(desc)
}
