//! Recording uses: a file entry's mtime, or a directory entry's marker in `used/`, is its
//! last use (see [`crate::layout`]).

use std::fs;
use std::path::Path;

use hoist_image::{BlobStore, Digest};

const NOW: rustix::fs::Timestamps = rustix::fs::Timestamps {
    last_access: rustix::fs::Timespec {
        tv_sec: 0,
        tv_nsec: rustix::fs::UTIME_NOW,
    },
    last_modification: rustix::fs::Timespec {
        tv_sec: 0,
        tv_nsec: rustix::fs::UTIME_NOW,
    },
};

/// Mark a file entry (blob, step record, index, stat cache) as used now: one
/// `utimensat(2)` setting its times to now. Best effort.
pub fn touch(path: &Path) {
    let r = rustix::fs::utimensat(rustix::fs::CWD, path, &NOW, rustix::fs::AtFlags::empty());
    if let Err(e) = r {
        not_marked(path, e);
    }
}

/// Log a use that could not be recorded: gone already (fine), or a cache this user
/// may only read (fine, logged at debug), or anything else (a warning with the reason:
/// the entry may then be evicted early).
fn not_marked(path: &Path, e: rustix::io::Errno) {
    use rustix::io::Errno;
    match e {
        Errno::NOENT => {}
        Errno::ACCESS | Errno::PERM | Errno::ROFS => {
            tracing::debug!(path = %path.display(), "use not recorded (read-only cache): {e}")
        }
        e => tracing::warn!(path = %path.display(), "use not recorded, LRU order may be off: {e}"),
    }
}

/// [`touch`] a blob of `store` (if it is there).
pub fn touch_blob(store: &BlobStore, digest: &Digest) {
    touch(&store.path(digest));
}

/// Mark a directory entry of the cache (`rootfs/…`, `lower/…/…`, `mounts/…`) as used now,
/// through its marker `used/<path>`: one `utimensat(2)`, or creating the marker the first
/// time. The directory itself is left alone. Best effort.
pub fn mark_used(cache_dir: &Path, dir: &Path) {
    let Ok(rel) = dir.strip_prefix(cache_dir) else {
        return;
    };
    let marker = cache_dir.join("used").join(rel);
    let r = rustix::fs::utimensat(rustix::fs::CWD, &marker, &NOW, rustix::fs::AtFlags::empty());
    match r {
        Ok(()) => {}
        Err(rustix::io::Errno::NOENT) => {
            let made = match marker.parent() {
                Some(parent) => fs::create_dir_all(parent),
                None => Ok(()),
            }
            .and_then(|()| {
                fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&marker)
            });
            if let Err(e) = made {
                not_marked(
                    &marker,
                    rustix::io::Errno::from_io_error(&e).unwrap_or(rustix::io::Errno::IO),
                );
            }
        }
        Err(e) => not_marked(&marker, e),
    }
}

// ---------------------------------------------------------------------------------------
