//! The cache directory's layout, what an entry is, how last use is recorded, and why
//! eviction is safe.
//!
//! ```text
//! CACHE/
//!   lock                        flock(2): builds hold it shared, prune exclusive
//!   blobs/sha256/<hex>          blobs: layers, configs, manifests (also the pull cache)
//!   refs/<hex>.json             the pull cache's tag index (points at manifest blobs)
//!   steps/<xx>/<key>            step cache records (point at layer blobs)
//!   index/<diff-id>             layer metadata indexes
//!   filehash/<ctx>              stat caches of build contexts
//!   rootfs/<chain-id>/          unpacked root file systems (COPY --from, bind mounts)
//!   lower/<mode>-<uid>/<diff-id>/  unpacked overlay lower dirs of RUN (rootless: may
//!                               hold files owned by subordinate ids)
//!   mounts/<key>/               RUN --mount=type=cache contents
//!   used/<entry path>           last-use markers of the directories above
//!   sandbox/, tmp/              transient: run dirs, build scratch dirs
//! ```
//!
//! # Entries and last use
//!
//! The eviction unit is one entry: a blob, a ref, a step record, an index or stat-cache
//! file, a rootfs, lower or cache-mount directory, or a temporary left behind by a killed
//! process. Its size is its real disk usage (`st_blocks`), hard links counted once per
//! inode in the whole cache.
//!
//! Access times are useless (`noatime`, `relatime`), so uses are recorded explicitly,
//! where entries are used, at the cost of one `utimensat(2)` each and never a tree walk:
//! a file's own mtime is its last use (step cache hits, layers of hits, base images'
//! blobs when resolved, the final image's blobs, layer indexes, refs on pull); a
//! directory's last use is the mtime of its marker `used/<entry path>` (falling back to
//! the directory's ctime, i.e. when it was made). Directories are never touched
//! themselves: rootfs and lower dirs are overlay lowers, and their root's metadata is
//! visible to RUN (and can end up in a layer).
//!
//! # Safety
//!
//! Every build holds a shared `flock` on `CACHE/lock` for its whole duration; [`crate::prune()`]
//! takes it exclusively and, unless told to wait, skips when it cannot get it at once. So
//! nothing a running build uses is ever removed. Other cache users (`hoist pull`,
//! `hoist copy`) should hold [`crate::CacheLock::shared`] too; until they do, their temporary
//! files are only removed once an hour old, and a blob removed under them is a cache miss.
//!
//! Removal keeps the cache consistent at every instant: a file entry is unlinked (it is
//! whole or gone); a directory is first renamed to `.gc-*` beside itself, then removed,
//! so a crash never leaves half a tree under its real name (`.gc-*` leftovers are
//! temporaries, removed by the next prune). Step records and refs whose blobs are gone
//! are misses for the build and the puller; prune removes them ("dangling"), also when a
//! blob they need is evicted. Directories holding files of subordinate ids (rootless
//! RUN) are removed by the [`crate::TreeRemover`] given in [`crate::PruneOptions`] when a
//! plain removal is denied (the engine and the CLI pass one that uses the sandbox's user
//! namespace).

use std::path::PathBuf;

use hoist_image::{BlobStore, Digest};

/// A blob's path relative to the cache directory: `blobs/<algorithm>/<hex>`.
pub fn blob_rel(d: &Digest) -> PathBuf {
    PathBuf::from("blobs")
        .join(d.algorithm().as_str())
        .join(d.hex())
}

/// The pull cache's ref index directory for a store: `<store root>/../refs` (the store
/// being `CACHE/blobs`, that is `CACHE/refs`).
pub fn refs_dir(store: &BlobStore) -> PathBuf {
    let root = store.root();
    root.parent()
        .map(|p| p.join("refs"))
        .unwrap_or_else(|| root.join("refs"))
}
