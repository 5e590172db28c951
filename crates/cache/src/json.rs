//! Writing JSON files of the cache atomically.

use std::fs;
use std::path::Path;

use serde::Serialize;

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
