//! Clean-up that must not be silent: removing temporary trees after a failure, and
//! sweeping temporary files that a killed run left in the cache.

use std::path::Path;

/// Log (with the reason) a failed removal of a temporary path; the caller goes on.
pub fn remove_or_warn<E: std::fmt::Display>(path: &Path, r: std::result::Result<(), E>) {
    if let Err(e) = r {
        tracing::warn!(path = %path.display(), "could not remove a temporary tree: {e}");
    }
}

/// How old a temporary entry without an owner's pid must be before it counts as
/// stale (a build that outlives this is not expected).
const STALE_AGE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Remove temporary entries (`.tmp-*`) that a killed run left in the cache: those
/// named `.tmp-PID-…` whose process no longer exists, and other `.tmp-*` entries
/// untouched for a day. Entries of live processes are left alone. Failures are
/// logged, never fatal. Returns how many entries were removed.
pub fn sweep_stale(cache_dir: &Path) -> usize {
    let mut removed = 0;
    sweep_dir(cache_dir, 0, &mut removed);
    if removed > 0 {
        tracing::info!(cache = %cache_dir.display(), removed, "removed stale temporary files");
    }
    removed
}

fn sweep_dir(dir: &Path, depth: usize, removed: &mut usize) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let path = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if let Some(rest) = name.strip_prefix(".tmp-") {
            if is_stale(rest, &path) {
                let r = if ft.is_dir() {
                    hoist_image::fsutil::remove_dir_all_writable(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                match r {
                    Ok(()) => *removed += 1,
                    Err(e) => {
                        tracing::warn!(path = %path.display(), "could not remove a stale temporary entry: {e}")
                    }
                }
            }
            continue;
        }
        if ft.is_dir() && depth < 3 {
            sweep_dir(&path, depth + 1, removed);
        }
    }
}

fn is_stale(rest: &str, path: &Path) -> bool {
    let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
    if let Some(pid) = pid {
        return !Path::new("/proc").join(pid.to_string()).exists();
    }
    std::fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age > STALE_AGE)
}
