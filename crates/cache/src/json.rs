//! Writing JSON files of the cache atomically.

use std::fs;
use std::path::Path;

use serde::Serialize;

/// Serialise `value` as JSON straight into a file, atomically (no in-memory copy).
/// The file is a cache: a failure is logged (`tracing::warn!`, with the path and the
/// reason) and leaves no partial file; the caller carries on without it.
pub fn write_json_atomic<T: Serialize + ?Sized>(path: &Path, value: &T) {
    if let Err(e) = try_write_json_atomic(path, value) {
        tracing::warn!(path = %path.display(), "cache file not written: {e}");
    }
}

/// [`write_json_atomic`], returning the failure instead of logging it.
pub fn try_write_json_atomic<T: Serialize + ?Sized>(
    path: &Path,
    value: &T,
) -> std::result::Result<(), String> {
    use std::io::Write;
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("creating {}: {e}", parent.display()))?;
    }
    let f = hoist_image::AtomicFile::create(path).map_err(|e| hoist_image::chain_text(&e))?;
    let mut w = std::io::BufWriter::new(f);
    serde_json::to_writer(&mut w, value).map_err(|e| format!("serialising: {e}"))?;
    w.flush().map_err(|e| format!("writing: {e}"))?;
    let f = w
        .into_inner()
        .map_err(|e| format!("writing: {}", e.error()))?;
    f.commit().map_err(|e| hoist_image::chain_text(&e))
}
