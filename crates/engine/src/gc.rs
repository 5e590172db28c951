//! The engine's side of hoist's cache directory. The cache itself (layout, lock, usage,
//! least-recently-used eviction, step records) is [`hoist_cache`]; this module re-exports
//! it for compatibility and adds what needs the sandbox: [`SandboxRemover`], which
//! removes trees holding files of subordinate ids (rootless RUN) through the sandbox's
//! user namespace, and [`prune`], which uses it unless told otherwise.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

pub use hoist_cache::{
    entries, format_size, parse_size, usage, CacheEntry, CacheLock, CacheUsage, Evicted, Kind,
    KindUsage, PruneOptions, PruneReport, Reason, TreeRemover, UNLOCKED_TEMP_GRACE,
};
pub(crate) use hoist_cache::{mark_used, touch, touch_blob};

/// A [`TreeRemover`] that removes trees a plain removal cannot (files of subordinate
/// ids) through the sandbox's user namespace. The sandbox starts on first use, with its
/// run directories in `CACHE/sandbox`.
pub struct SandboxRemover {
    sandbox_dir: PathBuf,
    sandbox: OnceLock<std::result::Result<hoist_sandbox::Sandbox, String>>,
}

impl SandboxRemover {
    /// A remover for the cache in `cache_dir`.
    pub fn new(cache_dir: &Path) -> SandboxRemover {
        SandboxRemover {
            sandbox_dir: cache_dir.join("sandbox"),
            sandbox: OnceLock::new(),
        }
    }

    /// [`SandboxRemover::new`], ready for [`PruneOptions::with_remover`].
    pub fn shared(cache_dir: &Path) -> Arc<dyn TreeRemover> {
        Arc::new(SandboxRemover::new(cache_dir))
    }
}

impl TreeRemover for SandboxRemover {
    fn remove_denied(&self, p: &Path, plain: &io::Error) -> std::result::Result<(), String> {
        let sb = self.sandbox.get_or_init(|| {
            hoist_sandbox::Sandbox::new(hoist_sandbox::SandboxConfig::new(self.sandbox_dir.clone()))
                .map_err(|e| hoist_image::chain_text(&e))
        });
        match sb {
            Ok(sb) => sb
                .remove_tree(p)
                .map_err(|e| format!("{}: {plain}; through the sandbox: {e}", p.display())),
            Err(e) => Err(format!(
                "{}: {plain} (files of subordinate ids need the sandbox, which cannot start: {e})",
                p.display()
            )),
        }
    }
}

/// [`hoist_cache::prune()`], removing trees of subordinate ids with a [`SandboxRemover`]
/// when `opts` names no [`TreeRemover`].
pub fn prune(cache_dir: &Path, opts: &PruneOptions) -> hoist_cache::Result<PruneReport> {
    if opts.remover.is_some() {
        return hoist_cache::prune(cache_dir, opts);
    }
    let opts = opts.clone().with_remover(SandboxRemover::shared(cache_dir));
    hoist_cache::prune(cache_dir, &opts)
}
