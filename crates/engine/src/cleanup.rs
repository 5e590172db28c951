//! Clean-up that must not be silent: removing temporary trees after a failure, and
//! sweeping temporary files that a killed run left in the cache.

use std::path::Path;

/// Log (with the reason) a failed removal of a temporary path; the caller goes on.
pub fn remove_or_warn<E: std::fmt::Display>(path: &Path, r: std::result::Result<(), E>) {
    if let Err(e) = r {
        tracing::warn!(path = %path.display(), "could not remove a temporary tree: {e}");
    }
}
