//! hoist's cache directory, shared by the build engine, the registry pull path and the
//! CLI: its [`layout`], the [`CacheLock`] that keeps eviction away from running builds,
//! recording uses ([`touch()`], [`touch_blob`], [`mark_used`]), disk usage by kind of entry
//! ([`usage()`], [`entries`]), least-recently-used eviction ([`prune()`]), step records
//! ([`StepCache`]) and the build contexts' stat caches ([`FileHasher`]).
//!
//! This crate does not run anything in a sandbox: trees of subordinate ids (rootless
//! RUN) are removed by the [`TreeRemover`] the caller puts in [`PruneOptions`].
//!
//! ```no_run
//! let dir = std::path::Path::new("/var/cache/hoist");
//! println!("{}", hoist_cache::usage(dir).unwrap());
//! let opts = hoist_cache::PruneOptions::new(hoist_cache::parse_size("10GiB").unwrap());
//! println!("{}", hoist_cache::prune(dir, &opts).unwrap());
//! ```

pub mod entry;
pub mod error;
pub mod filehash;
pub mod json;
pub mod layout;
pub mod lock;
pub mod prune;
pub mod records;
pub mod report;
mod scan;
pub mod size;
pub mod touch;
pub mod usage;

pub use entry::{CacheEntry, Kind};
pub use error::{Error, Result};
pub use filehash::{FileHasher, STAT_CACHE_MIN_SIZE};
pub use json::write_json_atomic;
pub use lock::CacheLock;
pub use prune::{prune, PruneOptions, TreeRemover};
pub use records::{CachedStep, Key, StepCache};
pub use report::{Evicted, PruneReport, Reason};
pub use scan::UNLOCKED_TEMP_GRACE;
pub use size::{format_size, parse_size};
pub use touch::{mark_used, touch, touch_blob};
pub use usage::{entries, usage, CacheUsage, KindUsage};
