//! Least-recently-used eviction: [`prune`] and its [`PruneOptions`].

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::entry::{CacheEntry, Kind};
use crate::error::Result;
use crate::lock::CacheLock;
use crate::report::{Evicted, PruneReport, Reason};
use crate::scan::{lru_order, scan, Scan};

/// Removes a directory tree of the cache that a plain removal could not remove
/// (permission denied): in a rootless cache, trees holding files of subordinate ids,
/// which only a process in the build's user namespace may delete. The engine provides
/// one that uses the sandbox (`hoist_engine::SandboxRemover`); without one, such trees
/// stay and are reported in [`PruneReport::errors`].
pub trait TreeRemover: Send + Sync {
    /// Remove the tree at `path`, whose plain removal failed with `denied`. On failure,
    /// the whole message to report (it should name `path` and `denied`).
    fn remove_denied(&self, path: &Path, denied: &io::Error) -> std::result::Result<(), String>;
}

/// How to [`prune`].
#[derive(Clone)]
#[non_exhaustive]
pub struct PruneOptions {
    /// Evict least recently used entries until the cache uses at most this many bytes.
    pub max_bytes: u64,
    /// Only report what would be evicted.
    pub dry_run: bool,
    /// Wait for running builds to finish instead of skipping the prune.
    pub wait: bool,
    /// What removes trees a plain removal cannot (see [`TreeRemover`]); none by default.
    pub remover: Option<Arc<dyn TreeRemover>>,
}

impl PruneOptions {
    /// Prune to `max_bytes`, for real, skipping if a build is running, with no
    /// [`TreeRemover`].
    pub fn new(max_bytes: u64) -> PruneOptions {
        PruneOptions {
            max_bytes,
            dry_run: false,
            wait: false,
            remover: None,
        }
    }

    /// The same options, removing denied trees with `remover`.
    pub fn with_remover(mut self, remover: Arc<dyn TreeRemover>) -> PruneOptions {
        self.remover = Some(remover);
        self
    }
}

impl std::fmt::Debug for PruneOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PruneOptions")
            .field("max_bytes", &self.max_bytes)
            .field("dry_run", &self.dry_run)
            .field("wait", &self.wait)
            .field("remover", &self.remover.is_some())
            .finish()
    }
}

/// Equal when the bounds and flags are, and both have the same remover (or none).
impl PartialEq for PruneOptions {
    fn eq(&self, other: &PruneOptions) -> bool {
        self.max_bytes == other.max_bytes
            && self.dry_run == other.dry_run
            && self.wait == other.wait
            && match (&self.remover, &other.remover) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            }
    }
}

impl Eq for PruneOptions {}

/// What to evict, in order, and the usage expected afterwards.
fn plan(s: &Scan, max_bytes: u64, failed: &HashSet<PathBuf>) -> (Vec<Evicted>, u64) {
    let mut out = Vec::new();
    let mut gone: HashSet<&Path> = HashSet::new();
    let mut estimate = s.total();
    let take = |e: &CacheEntry, reason, out: &mut Vec<Evicted>, estimate: &mut u64| {
        out.push(Evicted {
            entry: e.clone(),
            reason,
        });
        *estimate = estimate.saturating_sub(e.bytes);
    };
    let usable = |e: &CacheEntry| e.evictable && !failed.contains(&e.path);
    // Garbage first, whatever the bound: temporaries of dead processes, dangling records.
    for e in s.entries.iter().filter(|e| usable(e)) {
        let reason = if e.kind == Kind::Temporary {
            Reason::Temporary
        } else if e.dangling {
            Reason::Dangling
        } else {
            continue;
        };
        gone.insert(&e.path);
        take(e, reason, &mut out, &mut estimate);
    }
    // Who needs which blob: evicting a blob makes them dangling.
    let mut dependents: HashMap<&Path, Vec<&CacheEntry>> = HashMap::new();
    for e in &s.entries {
        for b in &e.needs {
            dependents.entry(b.as_path()).or_default().push(e);
        }
    }
    let mut lru: Vec<&CacheEntry> = s
        .entries
        .iter()
        .filter(|e| usable(e) && !gone.contains(e.path.as_path()))
        .collect();
    lru.sort_by(|a, b| lru_order(a, b));
    for e in lru {
        if estimate <= max_bytes {
            break;
        }
        if !gone.insert(&e.path) {
            continue;
        }
        take(e, Reason::LeastRecentlyUsed, &mut out, &mut estimate);
        if e.kind == Kind::Blob {
            for d in dependents.get(e.path.as_path()).into_iter().flatten() {
                if usable(d) && gone.insert(&d.path) {
                    take(d, Reason::Dangling, &mut out, &mut estimate);
                }
            }
        }
    }
    (out, estimate)
}

/// Removes entries; trees a plain removal cannot remove go to the [`TreeRemover`].
struct Remover<'a> {
    cache: PathBuf,
    denied: Option<&'a dyn TreeRemover>,
}

impl Remover<'_> {
    fn remove_tree(&self, p: &Path) -> std::result::Result<(), String> {
        let plain = match hoist_image::fsutil::remove_dir_all_writable(p) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => e,
        };
        match self.denied {
            Some(r) if plain.kind() == io::ErrorKind::PermissionDenied => {
                r.remove_denied(p, &plain)
            }
            _ => Err(format!("{}: {plain}", p.display())),
        }
    }

    /// Remove one entry; directories are renamed out of the way first. On failure, the
    /// error and the path (relative) that holds what is left.
    fn evict(&self, e: &CacheEntry) -> std::result::Result<(), (String, PathBuf)> {
        let abs = self.cache.join(&e.path);
        let fail = |err: &dyn std::fmt::Display, at: &Path| {
            (format!("{}: {err}", abs.display()), at.to_path_buf())
        };
        let md = match fs::symlink_metadata(&abs) {
            Ok(m) => m,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(fail(&err, &e.path)),
        };
        if md.is_dir() {
            let target = if e.kind == Kind::Temporary {
                e.path.clone()
            } else {
                let name = e.path.file_name().unwrap_or_default().to_string_lossy();
                let trash = e
                    .path
                    .with_file_name(format!(".gc-{}-{name}", std::process::id()));
                fs::rename(&abs, self.cache.join(&trash)).map_err(|err| fail(&err, &e.path))?;
                trash
            };
            self.remove_tree(&self.cache.join(&target))
                .map_err(|msg| (msg, target))?;
        } else {
            match fs::remove_file(&abs) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(fail(&err, &e.path)),
            }
        }
        if matches!(e.kind, Kind::Rootfs | Kind::Lower | Kind::Mount) {
            remove_marker(&self.cache.join("used").join(&e.path));
        }
        Ok(())
    }
}

/// Remove a use marker; one that cannot be removed is logged with the reason (it
/// only makes the next scan see a stale marker again).
fn remove_marker(p: &Path) {
    match fs::remove_file(p) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %p.display(), "stale use marker not removed: {e}"),
    }
}

/// Evict least recently used entries of `cache_dir` until it uses at most
/// `opts.max_bytes` (see [`crate::layout`] for what an entry is and how last use is known).
/// Temporaries of dead processes and dangling step records and refs go first, whatever
/// the bound.
///
/// Takes the cache lock exclusively; when a build (or anything else) holds it, returns
/// at once with [`PruneReport::skipped`] set, unless `opts.wait`. A dry run takes the
/// lock too (so it reports what a prune would do now) and changes nothing.
pub fn prune(cache_dir: &Path, opts: &PruneOptions) -> Result<PruneReport> {
    let mut report = PruneReport {
        dry_run: opts.dry_run,
        max_bytes: opts.max_bytes,
        ..Default::default()
    };
    if !cache_dir.is_dir() {
        return Ok(report);
    }
    let _lock = if opts.wait {
        CacheLock::exclusive(cache_dir)?
    } else {
        match CacheLock::try_exclusive(cache_dir)? {
            Some(l) => l,
            None => {
                report.skipped = Some(format!(
                    "{} is in use by a running build; try again when it has finished, \
                     or wait for it",
                    cache_dir.display()
                ));
                return Ok(report);
            }
        }
    };
    let remover = Remover {
        cache: cache_dir.to_path_buf(),
        denied: opts.remover.as_deref(),
    };
    let mut failed: HashSet<PathBuf> = HashSet::new();
    // Directories never shrink and removals can fail: measure again after each round.
    for round in 0..4 {
        let s = scan(cache_dir)?;
        if round == 0 {
            report.bytes_before = s.total();
        }
        report.bytes_after = s.total();
        let (plan, estimate) = plan(&s, opts.max_bytes, &failed);
        if opts.dry_run {
            report.bytes_after = estimate;
            report.evicted = plan;
            return Ok(report);
        }
        if round == 0 {
            // Markers of directories that are gone.
            let dirs: HashSet<&Path> = s
                .entries
                .iter()
                .filter(|e| matches!(e.kind, Kind::Rootfs | Kind::Lower | Kind::Mount))
                .map(|e| e.path.as_path())
                .collect();
            for m in s.markers.iter().filter(|m| !dirs.contains(m.as_path())) {
                remove_marker(&cache_dir.join("used").join(m));
            }
        }
        if plan.is_empty() {
            break;
        }
        for ev in plan {
            match remover.evict(&ev.entry) {
                Ok(()) => {
                    tracing::debug!(kind = %ev.entry.kind, path = %ev.entry.path.display(),
                        bytes = ev.entry.bytes, reason = ?ev.reason, "evicted");
                    report.evicted.push(ev);
                }
                Err((msg, left)) => {
                    tracing::warn!("could not evict: {msg}");
                    failed.insert(ev.entry.path.clone());
                    failed.insert(left);
                    report.errors.push(msg);
                }
            }
        }
        if round == 3 {
            report.bytes_after = scan(cache_dir)?.total();
        }
    }
    Ok(report)
}

// ---------------------------------------------------------------------------------------
// Sizes.

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::{Path, PathBuf};
    use std::time::{Duration, SystemTime};

    use hoist_image::{Descriptor, Digest};

    use std::sync::Arc;

    use crate::layout::blob_rel;
    use crate::*;

    fn write(p: &Path, data: &[u8]) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, data).unwrap();
    }

    fn set_mtime(p: &Path, secs: u64) {
        fs::File::open(p)
            .unwrap()
            .set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
            .unwrap();
    }

    /// A synthetic cache: every kind, with known last uses.
    fn fake_cache(dir: &Path) -> (Digest, Digest) {
        let layer = vec![7u8; 40_000];
        let ld = Digest::sha256(&layer);
        let other = vec![9u8; 40_000];
        let od = Digest::sha256(&other);
        let bp = |d: &Digest| dir.join(blob_rel(d));
        write(&bp(&ld), &layer);
        write(&bp(&od), &other);
        let step = CachedStep {
            layer: Some(Descriptor::new(
                "application/vnd.oci.image.layer.v1.tar",
                ld.clone(),
                40_000,
            )),
            diff_id: Some(ld.clone()),
        };
        write(
            &dir.join("steps/ab/ab01"),
            &serde_json::to_vec(&step).unwrap(),
        );
        let gone = Digest::sha256(b"gone");
        let dangling = CachedStep {
            layer: Some(Descriptor::new("x", gone, 4)),
            diff_id: None,
        };
        write(
            &dir.join("steps/cd/cd01"),
            &serde_json::to_vec(&dangling).unwrap(),
        );
        write(&dir.join("index/0011"), b"[]");
        write(&dir.join("rootfs/c1/etc/hostname"), &[1u8; 9000]);
        write(&dir.join("lower/root-0/d1/file"), &[2u8; 9000]);
        write(&dir.join("mounts/m1/cachefile"), &[3u8; 9000]);
        write(&dir.join("tmp/build-x/junk"), b"junk");
        write(&dir.join("used/rootfs/c1"), b"");
        write(&dir.join("used/rootfs/orphan"), b"");
        // Last uses: other blob oldest, then rootfs, index, layer + its step, lower, mount.
        set_mtime(&bp(&od), 1000);
        set_mtime(&dir.join("used/rootfs/c1"), 2000);
        set_mtime(&dir.join("index/0011"), 3000);
        set_mtime(&bp(&ld), 4000);
        set_mtime(&dir.join("steps/ab/ab01"), 4500);
        mark_used(dir, &dir.join("lower/root-0/d1"));
        set_mtime(&dir.join("used/lower/root-0/d1"), 5000);
        mark_used(dir, &dir.join("mounts/m1"));
        (ld, od)
    }

    #[test]
    fn usage_kinds_and_lru_plan() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let (ld, od) = fake_cache(dir);
        let u = usage(dir).unwrap();
        assert_eq!(u.get(Kind::Blob).entries, 2);
        assert_eq!(u.get(Kind::Step).entries, 2);
        assert_eq!(u.get(Kind::Step).dangling, 1);
        for k in [
            Kind::Index,
            Kind::Rootfs,
            Kind::Lower,
            Kind::Mount,
            Kind::Temporary,
        ] {
            assert_eq!(u.get(k).entries, 1, "{k}");
        }
        assert!(u.get(Kind::Blob).bytes >= 80_000);
        let order: Vec<PathBuf> = entries(dir).unwrap().into_iter().map(|e| e.path).collect();
        let pos = |p: &str| order.iter().position(|x| x == Path::new(p)).unwrap();
        assert!(pos(&format!("blobs/sha256/{}", od.hex())) < pos("rootfs/c1"));
        assert!(pos("rootfs/c1") < pos("index/0011"));
        assert!(pos("lower/root-0/d1") < pos("mounts/m1"));

        // Dry run: garbage, then the oldest blob; nothing changes on disk.
        let bound = u.total_bytes - 30_000;
        let mut o = PruneOptions::new(bound);
        o.dry_run = true;
        let r = prune(dir, &o).unwrap();
        let what: Vec<(String, Reason)> = r
            .evicted
            .iter()
            .map(|e| (e.entry.path.display().to_string(), e.reason))
            .collect();
        assert_eq!(
            what,
            vec![
                ("steps/cd/cd01".to_string(), Reason::Dangling),
                ("tmp/build-x".to_string(), Reason::Temporary),
                (
                    format!("blobs/sha256/{}", od.hex()),
                    Reason::LeastRecentlyUsed
                ),
            ]
        );
        assert_eq!(usage(dir).unwrap(), u);
        assert!(dir.join("used/rootfs/orphan").exists());

        // For real, down to nothing evictable: the layer takes its step record with it.
        let r = prune(dir, &PruneOptions::new(0)).unwrap();
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        let step = r
            .evicted
            .iter()
            .find(|e| e.entry.path == Path::new("steps/ab/ab01"))
            .unwrap();
        assert_eq!(step.reason, Reason::Dangling);
        let u = usage(dir).unwrap();
        assert_eq!(u.entries(), 0, "{u}");
        assert_eq!(u.total_bytes, r.bytes_after);
        assert!(!dir.join(blob_rel(&ld)).exists());
        assert!(!dir.join("used/rootfs/orphan").exists());
        assert!(!dir.join("used/lower/root-0/d1").exists());
        // No half-removed directory anywhere.
        for d in ["rootfs", "lower/root-0", "mounts"] {
            assert_eq!(fs::read_dir(dir.join(d)).unwrap().count(), 0, "{d}");
        }
    }

    #[test]
    fn prune_skips_while_locked_and_waits_when_told() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        fake_cache(&dir);
        let held = CacheLock::shared(&dir).unwrap();
        let r = prune(&dir, &PruneOptions::new(0)).unwrap();
        assert!(r.skipped.is_some() && r.evicted.is_empty());
        assert!(r.summary().contains("skipped"), "{}", r.summary());
        assert!(CacheLock::try_exclusive(&dir).unwrap().is_none());
        assert!(CacheLock::try_shared(&dir).unwrap().is_some());
        let t = {
            let dir = dir.clone();
            std::thread::spawn(move || {
                let mut o = PruneOptions::new(0);
                o.wait = true;
                prune(&dir, &o).unwrap()
            })
        };
        std::thread::sleep(Duration::from_millis(200));
        assert!(!t.is_finished());
        drop(held);
        let r = t.join().unwrap();
        assert!(r.skipped.is_none() && !r.evicted.is_empty());
    }

    #[test]
    fn young_unlocked_temporaries_stay() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        write(&dir.join("blobs/sha256/.tmp-young"), b"partial");
        write(&dir.join("blobs/sha256/.tmp-old"), b"partial");
        set_mtime(&dir.join("blobs/sha256/.tmp-old"), 1000);
        let r = prune(dir, &PruneOptions::new(0)).unwrap();
        assert_eq!(r.evicted.len(), 1);
        assert!(dir.join("blobs/sha256/.tmp-young").exists());
        assert!(!dir.join("blobs/sha256/.tmp-old").exists());
    }

    /// Set or clear the immutable attribute: even root cannot remove such a file, as a
    /// rootless build's user cannot remove files of its subordinate ids.
    fn chattr(flag: &str, p: &Path) -> bool {
        std::process::Command::new("chattr")
            .arg(flag)
            .arg(p)
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Clears the attribute, then removes the tree; records the paths it was given.
    struct Unfreeze(std::sync::Mutex<Vec<PathBuf>>);

    impl TreeRemover for Unfreeze {
        fn remove_denied(&self, p: &Path, denied: &std::io::Error) -> Result<(), String> {
            assert_eq!(denied.kind(), std::io::ErrorKind::PermissionDenied);
            self.0.lock().unwrap().push(p.to_path_buf());
            chattr("-i", &p.join("frozen"));
            fs::remove_dir_all(p).map_err(|e| e.to_string())
        }
    }

    #[test]
    fn denied_trees_go_to_the_remover() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        write(&dir.join("rootfs/c1/frozen"), b"x");
        if !chattr("+i", &dir.join("rootfs/c1/frozen")) {
            eprintln!("skipped: chattr +i needs root on a file system that supports it");
            return;
        }
        // Whatever happens, leave nothing immutable behind in the temporary directory.
        struct Thaw<'a>(&'a Path);
        impl Drop for Thaw<'_> {
            fn drop(&mut self) {
                let dirs = fs::read_dir(self.0.join("rootfs")).into_iter().flatten();
                for e in dirs.flatten() {
                    chattr("-i", &e.path().join("frozen"));
                }
            }
        }
        let _thaw = Thaw(dir);
        // Without a remover: reported, left (renamed aside), retried by the next prune.
        let r = prune(dir, &PruneOptions::new(0)).unwrap();
        assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
        assert!(r.errors[0].contains("frozen") || r.errors[0].contains(".gc-"));
        let left: Vec<_> = fs::read_dir(dir.join("rootfs"))
            .unwrap()
            .flatten()
            .collect();
        assert_eq!(left.len(), 1);
        let trash = left[0].path();
        assert!(trash
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(".gc-"));
        // With one: it gets the tree, and the cache ends up empty.
        let remover = Arc::new(Unfreeze(Default::default()));
        let opts = PruneOptions::new(0).with_remover(remover.clone());
        let r = prune(dir, &opts).unwrap();
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!(*remover.0.lock().unwrap(), vec![trash]);
        assert_eq!(fs::read_dir(dir.join("rootfs")).unwrap().count(), 0);
        assert_eq!(usage(dir).unwrap().entries(), 0);
    }
}
