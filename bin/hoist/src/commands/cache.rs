//! `hoist cache`: what the build cache holds, and keeping it under a bound.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

/// `hoist cache` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum CacheCommand {
    /// Show the cache's disk usage by kind (blobs, step records, unpacked layers…).
    Usage(UsageArgs),
    /// Evict least recently used entries until the cache fits a size.
    Prune(PruneArgs),
}

/// Flags of `hoist cache usage`.
#[derive(Debug, clap::Args)]
pub struct UsageArgs {
    /// The cache directory (default: $HOIST_CACHE_DIR or ~/.cache/hoist).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `hoist cache prune`.
#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// The bound: 500MB, 10GiB, 2g, 0 to empty the cache.
    #[arg(long)]
    pub max_size: String,
    /// The cache directory (default: $HOIST_CACHE_DIR or ~/.cache/hoist).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Only say what would be evicted.
    #[arg(long)]
    pub dry_run: bool,
    /// Wait for running builds instead of skipping.
    #[arg(long)]
    pub wait: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Run `hoist cache …`.
pub fn run(cmd: CacheCommand) -> Result<ExitCode> {
    match cmd {
        CacheCommand::Usage(a) => {
            let dir = a
                .cache_dir
                .unwrap_or_else(hoist_engine::options::default_cache_dir);
            let u = hoist_cache::usage(&dir)?;
            if a.json {
                crate::commands::out(&serde_json::to_string_pretty(&u)?)?;
            } else {
                println!("{}\n{u}", dir.display());
            }
        }
        CacheCommand::Prune(a) => {
            let dir = a
                .cache_dir
                .unwrap_or_else(hoist_engine::options::default_cache_dir);
            // Trees of subordinate ids (rootless RUN) are removed through the sandbox.
            let mut o = hoist_cache::PruneOptions::new(hoist_cache::parse_size(&a.max_size)?)
                .with_remover(hoist_engine::SandboxRemover::shared(&dir));
            o.dry_run = a.dry_run;
            o.wait = a.wait;
            let r = hoist_cache::prune(&dir, &o)?;
            if a.json {
                crate::commands::out(&serde_json::to_string_pretty(&r)?)?;
            } else {
                println!("{}", r.summary());
                for e in &r.errors {
                    eprintln!("warning: {e}");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
