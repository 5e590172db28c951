//! `--cache-to` / `--cache-from` of `hoist build` (BuildKit's syntax; see docs/cache.md).

use anyhow::Result;
use clap::Args;
use hoist_engine::options::BuildOptions;
use hoist_engine::remote_cache::{CacheExport, CacheImport};

/// Remote build cache flags.
#[derive(Debug, Args, Clone, Default)]
pub struct CacheFlags {
    /// Export the build's steps: type=registry,ref=REG/REPO:TAG | type=local,dest=DIR |
    /// type=inline, with [mode=min|max][,compression=gzip|zstd|uncompressed]
    /// [,ignore-error=true] (repeatable).
    #[arg(long = "cache-to", value_name = "SPEC")]
    pub cache_to: Vec<String>,
    /// Reuse steps from: type=registry,ref=REF | type=local,src=DIR | REF, with
    /// [,strict=true] to fail instead of warning when it cannot be read (repeatable:
    /// the first that has a step wins, e.g. the branch's cache, then main's).
    #[arg(long = "cache-from", value_name = "SPEC")]
    pub cache_from: Vec<String>,
}

impl CacheFlags {
    /// Parse the specs into `o` (each error names its flag).
    pub fn apply(&self, o: &mut BuildOptions) -> Result<()> {
        for s in &self.cache_to {
            o.cache_to.push(CacheExport::parse(s)?);
        }
        for s in &self.cache_from {
            o.cache_from.push(CacheImport::parse(s)?);
        }
        Ok(())
    }
}
