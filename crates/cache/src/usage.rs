//! How much of the cache each kind of entry uses ([`usage`]) and every entry in
//! least-recently-used order ([`entries`]).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::entry::{CacheEntry, Kind};
use crate::error::Result;
use crate::scan::{lru_order, scan};
use crate::size::format_size;

/// Bytes and entries of one kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct KindUsage {
    /// Disk usage in bytes.
    pub bytes: u64,
    /// Number of entries.
    pub entries: u64,
    /// Of which dangling (see [`CacheEntry::dangling`]).
    pub dangling: u64,
}

/// What [`usage`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CacheUsage {
    /// Disk usage of the whole cache directory, in bytes (what `du` says).
    pub total_bytes: u64,
    /// By kind (every kind is present, possibly with zeros).
    pub kinds: BTreeMap<Kind, KindUsage>,
    /// What no entry accounts for: directories themselves, the lock, last-use markers,
    /// unknown files. Never evicted.
    pub other_bytes: u64,
}

impl CacheUsage {
    /// The usage of one kind.
    pub fn get(&self, kind: Kind) -> KindUsage {
        self.kinds.get(&kind).copied().unwrap_or_default()
    }

    /// Number of entries of every kind.
    pub fn entries(&self) -> u64 {
        self.kinds.values().map(|k| k.entries).sum()
    }
}

impl std::fmt::Display for CacheUsage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for k in Kind::ALL {
            let u = self.get(k);
            write!(
                f,
                "{:<10} {:>10}  {:>7} entries",
                k.as_str(),
                format_size(u.bytes),
                u.entries
            )?;
            if u.dangling > 0 {
                write!(f, " ({} dangling)", u.dangling)?;
            }
            writeln!(f)?;
        }
        writeln!(f, "{:<10} {:>10}", "other", format_size(self.other_bytes))?;
        write!(f, "{:<10} {:>10}", "total", format_size(self.total_bytes))
    }
}

/// How much of `cache_dir` each kind of entry uses. Read-only and lock-free: while a
/// build runs, the numbers are a snapshot of a moving target. A missing directory is an
/// empty cache.
pub fn usage(cache_dir: &Path) -> Result<CacheUsage> {
    if !cache_dir.exists() {
        return Ok(empty_usage());
    }
    let s = scan(cache_dir)?;
    let mut u = empty_usage();
    u.total_bytes = s.total();
    u.other_bytes = s.other;
    for e in &s.entries {
        let k = u.kinds.entry(e.kind).or_default();
        k.bytes += e.bytes;
        k.entries += 1;
        k.dangling += e.dangling as u64;
    }
    Ok(u)
}

fn empty_usage() -> CacheUsage {
    CacheUsage {
        kinds: Kind::ALL
            .iter()
            .map(|k| (*k, KindUsage::default()))
            .collect(),
        ..Default::default()
    }
}

/// Every entry of `cache_dir`, least recently used first. Read-only and lock-free, like
/// [`usage`].
pub fn entries(cache_dir: &Path) -> Result<Vec<CacheEntry>> {
    if !cache_dir.exists() {
        return Ok(Vec::new());
    }
    let mut v = scan(cache_dir)?.entries;
    v.sort_by(lru_order);
    Ok(v)
}

// ---------------------------------------------------------------------------------------
