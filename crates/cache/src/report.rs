//! What a prune did: [`PruneReport`], its [`Evicted`] entries and their [`Reason`]s.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::entry::{CacheEntry, Kind};
use crate::size::format_size;

/// Why an entry was evicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// The cache was over its bound and this was the least recently used entry.
    LeastRecentlyUsed,
    /// A step record or ref whose blob is gone (or evicted now), or an unreadable one.
    Dangling,
    /// A temporary left behind by a killed process.
    Temporary,
}

/// One evicted entry.
#[derive(Debug, Clone, Serialize)]
pub struct Evicted {
    /// The entry.
    #[serde(flatten)]
    pub entry: CacheEntry,
    /// Why it went.
    pub reason: Reason,
}

/// What [`crate::prune()`] did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    /// Set when nothing was done, with the reason (a build holds the cache lock).
    pub skipped: Option<String>,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// The bound.
    pub max_bytes: u64,
    /// Disk usage of the cache before.
    pub bytes_before: u64,
    /// Disk usage after, measured again (a dry run: estimated). It can stay above the
    /// bound when what is left is not evictable (directories, markers, young
    /// temporaries, entries that could not be removed).
    pub bytes_after: u64,
    /// What was evicted, in order.
    pub evicted: Vec<Evicted>,
    /// Entries that could not be removed, with the error.
    pub errors: Vec<String>,
}

impl PruneReport {
    /// Bytes evicted (the sum of the evicted entries' sizes).
    pub fn evicted_bytes(&self) -> u64 {
        self.evicted.iter().map(|e| e.entry.bytes).sum()
    }

    /// One line: what was evicted, by kind, and the sizes before and after.
    pub fn summary(&self) -> String {
        if let Some(why) = &self.skipped {
            return format!("cache prune skipped: {why}");
        }
        let verb = if self.dry_run {
            "would evict"
        } else {
            "evicted"
        };
        let mut by_kind: BTreeMap<Kind, usize> = BTreeMap::new();
        for e in &self.evicted {
            *by_kind.entry(e.entry.kind).or_default() += 1;
        }
        let kinds: Vec<String> = by_kind.iter().map(|(k, n)| format!("{n} {k}")).collect();
        let mut s = if self.evicted.is_empty() {
            format!(
                "cache: nothing to evict, {}",
                format_size(self.bytes_before)
            )
        } else {
            format!(
                "cache: {verb} {} entries, {} ({}): {} -> {}",
                self.evicted.len(),
                format_size(self.evicted_bytes()),
                kinds.join(", "),
                format_size(self.bytes_before),
                format_size(self.bytes_after)
            )
        };
        s.push_str(&format!(" (bound {})", format_size(self.max_bytes)));
        if self.bytes_after > self.max_bytes {
            s.push_str("; still over the bound: the rest is not evictable");
        }
        if !self.errors.is_empty() {
            s.push_str(&format!(
                "; {} entries could not be removed",
                self.errors.len()
            ));
        }
        s
    }
}

impl std::fmt::Display for PruneReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.summary())
    }
}

// ---------------------------------------------------------------------------------------
