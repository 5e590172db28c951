//! The cache lock: builds hold it shared, prune exclusive.

use std::fs;
use std::io;
use std::path::Path;

use crate::error::{Error, Result};

/// whole duration; [`crate::prune()`] holds it exclusively.
#[derive(Debug)]
pub struct CacheLock {
    _file: fs::File,
}

fn open_lock(cache_dir: &Path) -> Result<fs::File> {
    fs::create_dir_all(cache_dir).map_err(|e| Error::io(cache_dir, e))?;
    let p = cache_dir.join("lock");
    match fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&p)
    {
        Ok(f) => Ok(f),
        // A cache shared with another user: flock works on a read-only descriptor.
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            fs::File::open(&p).map_err(|e| Error::io(&p, e))
        }
        Err(e) => Err(Error::io(&p, e)),
    }
}

fn try_lock(cache_dir: &Path, exclusive: bool) -> Result<Option<CacheLock>> {
    let f = open_lock(cache_dir)?;
    let r = if exclusive {
        f.try_lock()
    } else {
        f.try_lock_shared()
    };
    match r {
        Ok(()) => Ok(Some(CacheLock { _file: f })),
        Err(fs::TryLockError::WouldBlock) => Ok(None),
        Err(fs::TryLockError::Error(e)) => Err(Error::io(cache_dir.join("lock"), e)),
    }
}

fn lock(cache_dir: &Path, exclusive: bool) -> Result<CacheLock> {
    let f = open_lock(cache_dir)?;
    let r = if exclusive { f.lock() } else { f.lock_shared() };
    r.map_err(|e| Error::io(cache_dir.join("lock"), e))?;
    Ok(CacheLock { _file: f })
}

impl CacheLock {
    /// Take the shared lock (what a build holds), waiting for a prune to finish.
    pub fn shared(cache_dir: &Path) -> Result<CacheLock> {
        lock(cache_dir, false)
    }

    /// Take the shared lock if no prune holds the cache.
    pub fn try_shared(cache_dir: &Path) -> Result<Option<CacheLock>> {
        try_lock(cache_dir, false)
    }

    /// Take the shared lock, calling `waiting` first when a prune holds the cache (so the
    /// caller can say why it waits), then waiting for it to finish.
    pub fn shared_telling(cache_dir: &Path, waiting: impl FnOnce()) -> Result<CacheLock> {
        match Self::try_shared(cache_dir)? {
            Some(l) => Ok(l),
            None => {
                waiting();
                Self::shared(cache_dir)
            }
        }
    }

    /// Take the exclusive lock (what prune holds), waiting for every build to finish.
    pub fn exclusive(cache_dir: &Path) -> Result<CacheLock> {
        lock(cache_dir, true)
    }

    /// Take the exclusive lock if nobody holds the cache.
    pub fn try_exclusive(cache_dir: &Path) -> Result<Option<CacheLock>> {
        try_lock(cache_dir, true)
    }
}
