//! The step cache: a finished COPY, ADD, RUN or WORKDIR is looked up by a key over
//! everything that determines its result, so an unchanged rebuild writes nothing.
//!
//! The records and stat caches live in [`hoist_cache`] ([`StepCache`], [`FileHasher`]),
//! re-exported here; the keys are derived in [`crate::key`].
//!
//! Keys chain: each stage starts from its base's identity (manifest digest, or the key of
//! the stage it builds on) and every instruction folds its expanded form into the chain,
//! so a change anywhere invalidates everything after it. File contents enter keys by
//! BLAKE3 digest (fast enough to hash a large context in well under a second); the stat
//! cache skips re-reading files whose size, times and inode are unchanged, and content
//! keys still match across fresh checkouts where those change. Entries are written
//! atomically and only after their layer blob is in the store; a hit whose blob has gone
//! missing (evicted by [`crate::gc::prune()`]) is a miss. A hit sets the record's mtime:
//! its last use.

pub use hoist_cache::{write_json_atomic, CachedStep, FileHasher, StepCache, STAT_CACHE_MIN_SIZE};

pub use crate::key::{key_entries, Key, KeyBuilder};
