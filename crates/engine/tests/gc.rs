//! Cache eviction end to end: real builds (`hoist_engine::build`) into temporary caches,
//! pruned with `hoist_engine::prune`, checked with this file's own `du` walk.
//!
//! Its own `main` (`harness = false`): RUN steps re-execute this binary as the sandbox
//! helper, which must call `hoist_sandbox::init()` before anything else. Arguments: an
//! optional substring filter on test names; flags (`--test-threads=2`, …) are ignored.
//! Passes as root and as an unprivileged user with subordinate id ranges (then lower
//! dirs hold files of subordinate ids, removed through the sandbox). Tests that need the
//! sandbox, the busybox base (umoci, busybox) or a registry say so and skip without them.

use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use hoist_engine::output::OutputSpec;
use hoist_engine::progress::{Event, Progress};
use hoist_engine::{gc, BuildOptions, Kind, PruneOptions};
use hoist_image::{Digest, Manifest};

type Test = (&'static str, fn());

fn main() {
    hoist_sandbox::init();
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let tests: &[Test] = &[
        (
            "lru_prune_keeps_the_latest_build_and_rebuilds_the_same_digest",
            lru_prune_keeps_the_latest_build_and_rebuilds_the_same_digest,
        ),
        ("dry_run_deletes_nothing", dry_run_deletes_nothing),
        (
            "cache_max_bytes_prunes_after_the_build",
            cache_max_bytes_prunes_after_the_build,
        ),
        (
            "every_kind_is_measured_and_removed_including_rootless_trees",
            every_kind_is_measured_and_removed_including_rootless_trees,
        ),
        (
            "prune_skips_while_a_build_runs",
            prune_skips_while_a_build_runs,
        ),
        (
            "pull_cache_misses_on_missing_blobs_and_pulls_again",
            pull_cache_misses_on_missing_blobs_and_pulls_again,
        ),
    ];
    let mut failed = Vec::new();
    let mut ran = 0;
    for (name, f) in tests {
        if filter.as_deref().is_some_and(|flt| !name.contains(flt)) {
            continue;
        }
        ran += 1;
        println!("test {name} ...");
        match std::panic::catch_unwind(f) {
            Ok(()) => println!("test {name} ... ok"),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed.push(*name);
            }
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed",
        if failed.is_empty() { "ok" } else { "FAILED" },
        ran - failed.len(),
        failed.len()
    );
    if !failed.is_empty() {
        for f in &failed {
            println!("    {f}");
        }
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------------------------
// Support.

fn repo() -> PathBuf {
    std::env::var_os("HOIST_REPO")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

fn tempdir() -> tempfile::TempDir {
    let base = std::env::var_os("HOIST_TEST_TMP")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&base).unwrap();
    tempfile::Builder::new()
        .prefix("hoist-gc-")
        .tempdir_in(base)
        .unwrap()
}

/// Remove a test's temp dir, whatever ids own the files in it (rootless lower dirs).
struct Scratch {
    dir: Option<tempfile::TempDir>,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            dir: Some(tempdir()),
        }
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.as_ref().unwrap().path().join(rel)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let Some(d) = self.dir.take() else { return };
        let cache = d.path().join("cache");
        if cache.exists() {
            // Evicting everything removes what only the sandbox can remove.
            let mut o = PruneOptions::new(0);
            o.wait = true;
            let _ = hoist_engine::prune(&cache, &o);
        }
        let _ = hoist_image::fsutil::remove_dir_all_writable(d.path());
        std::mem::forget(d);
    }
}

fn uid() -> u32 {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX)
}

/// Deterministic incompressible bytes.
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn context(dir: &Path, dockerfile: &str, files: &[(&str, Vec<u8>)]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
    for (name, data) in files {
        std::fs::write(dir.join(name), data).unwrap();
    }
    dir.to_path_buf()
}

/// Records what a build reports; optionally signals step starts.
#[derive(Default)]
struct Rec {
    infos: Mutex<Vec<String>>,
    done: Mutex<Vec<bool>>,
    started: Mutex<Option<std::sync::mpsc::Sender<String>>>,
}

impl Progress for Rec {
    fn event(&self, e: Event<'_>) {
        match e {
            Event::Info(m) => self.infos.lock().unwrap().push(m.to_string()),
            Event::Done { cached, .. } => self.done.lock().unwrap().push(cached),
            Event::Start { name, .. } => {
                if let Some(tx) = self.started.lock().unwrap().as_ref() {
                    let _ = tx.send(name.to_string());
                }
            }
            _ => {}
        }
    }
}

fn opts(cache: &Path, ctx: &Path, out: Option<&Path>) -> BuildOptions {
    let mut o = BuildOptions::new(ctx);
    o.cache_dir = cache.to_path_buf();
    o.source_date_epoch = None;
    if let Some(out) = out {
        o.outputs
            .push(OutputSpec::parse(&format!("type=oci,dest={}", out.display())).unwrap());
    }
    o
}

struct Built {
    digest: Digest,
    manifest: Manifest,
    rec: Rec,
}

fn build_with_opts(o: &BuildOptions) -> Built {
    let rec = Rec::default();
    let r = hoist_engine::build(o, &rec).unwrap_or_else(|e| panic!("build failed: {e}"));
    let manifest: Manifest = r.built.first().manifest.parse().unwrap();
    Built {
        digest: r.manifest_digest,
        manifest,
        rec,
    }
}

fn build(cache: &Path, ctx: &Path) -> Built {
    build_with_opts(&opts(cache, ctx, None))
}

fn blob(cache: &Path, d: &Digest) -> PathBuf {
    cache
        .join("blobs")
        .join(d.algorithm().as_str())
        .join(d.hex())
}

/// `du -s --block-size=1`, hard links once: independent of the code under test.
fn du(p: &Path) -> u64 {
    fn walk(p: &Path, seen: &mut HashSet<(u64, u64)>) -> u64 {
        let Ok(md) = std::fs::symlink_metadata(p) else {
            return 0;
        };
        if !md.is_dir() && md.nlink() > 1 && !seen.insert((md.dev(), md.ino())) {
            return 0;
        }
        let mut n = md.blocks() * 512;
        if md.is_dir() {
            if let Ok(rd) = std::fs::read_dir(p) {
                for e in rd.flatten() {
                    n += walk(&e.path(), seen);
                }
            }
        }
        n
    }
    walk(p, &mut HashSet::new())
}

/// How many files and directories under `p` belong to another user than this process's.
fn owned_by_others(p: &Path) -> usize {
    let Ok(md) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    let mut n = usize::from(md.uid() != uid());
    if md.is_dir() {
        if let Ok(rd) = std::fs::read_dir(p) {
            n += rd
                .flatten()
                .map(|e| owned_by_others(&e.path()))
                .sum::<usize>();
        }
    }
    n
}

/// Every path under `p` with its size and mtime.
fn snapshot(p: &Path) -> BTreeMap<PathBuf, (u64, SystemTime)> {
    fn walk(p: &Path, out: &mut BTreeMap<PathBuf, (u64, SystemTime)>) {
        let Ok(md) = std::fs::symlink_metadata(p) else {
            return;
        };
        out.insert(p.to_path_buf(), (md.len(), md.modified().unwrap()));
        if md.is_dir() {
            if let Ok(rd) = std::fs::read_dir(p) {
                for e in rd.flatten() {
                    walk(&e.path(), out);
                }
            }
        }
    }
    let mut m = BTreeMap::new();
    walk(p, &mut m);
    m
}

fn pause() {
    // Beyond the kernel's coarse clock, so uses are ordered.
    std::thread::sleep(Duration::from_millis(30));
}

/// Two COPY-only images from scratch (no sandbox, no base), A then B.
fn two_images(s: &Scratch) -> (PathBuf, PathBuf) {
    let a = context(
        &s.path("a"),
        "FROM scratch\nCOPY a.bin /a.bin\nCOPY note /note\n",
        &[("a.bin", noise(1, 300_000)), ("note", b"a\n".to_vec())],
    );
    let b = context(
        &s.path("b"),
        "FROM scratch\nCOPY b.bin /b.bin\nCOPY note /note\n",
        &[("b.bin", noise(2, 300_000)), ("note", b"b\n".to_vec())],
    );
    (a, b)
}

fn sandbox_ok() -> bool {
    match hoist_sandbox::capabilities().id_mode() {
        Ok(_) => true,
        Err(e) => {
            println!("    skipped: the sandbox cannot run here: {e}");
            false
        }
    }
}

/// The busybox base image (OCI layout, tag latest), made once with umoci.
fn busybox_base() -> Option<PathBuf> {
    let dir = repo()
        .join("target/test-bases")
        .join(format!("busybox-oci-uid{}", uid()));
    if dir.join("index.json").is_file() {
        return Some(dir);
    }
    for tool in ["umoci", "busybox"] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false);
        if !found {
            println!("    skipped: {tool} is not installed (needed for the busybox base)");
            return None;
        }
    }
    let out = std::process::Command::new("bash")
        .arg(repo().join("scripts/make-busybox-base.sh"))
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "make-busybox-base.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(dir)
}

// ---------------------------------------------------------------------------------------
// Tests.

fn lru_prune_keeps_the_latest_build_and_rebuilds_the_same_digest() {
    let s = Scratch::new();
    let cache = s.path("cache");
    let (a, b) = two_images(&s);
    let built_a = build(&cache, &a);
    pause();
    let built_b = build(&cache, &b);
    pause();

    let total = du(&cache);
    let u = hoist_engine::usage(&cache).unwrap();
    assert_eq!(u.total_bytes, total, "usage vs du:\n{u}");
    assert_eq!(
        u.total_bytes,
        u.other_bytes + u.kinds.values().map(|k| k.bytes).sum::<u64>()
    );
    assert!(u.get(Kind::Blob).entries >= 8, "{u}"); // 2 × (2 layers, config, manifest)
                                                    // 4 step records, and the encoding record of each of the 4 layers (variants.rs).
    assert_eq!(u.get(Kind::Step).entries, 8, "{u}");
    assert!(u.get(Kind::FileHash).entries >= 2, "{u}");

    // A bound that A's big layer must make room for, and B fits in.
    let bound = total - 150_000;
    let before = hoist_engine::entries(&cache).unwrap();
    let r = hoist_engine::prune(&cache, &PruneOptions::new(bound)).unwrap();
    assert!(r.skipped.is_none() && r.errors.is_empty(), "{r:?}");
    assert_eq!(r.bytes_before, total);
    let after = du(&cache);
    assert!(
        after <= bound,
        "du {after} > bound {bound}: {}",
        r.summary()
    );
    assert_eq!(r.bytes_after, after);
    assert!(r.summary().contains("evicted"), "{}", r.summary());

    // Oldest first: everything evicted for the bound was used before everything kept.
    let evicted: HashSet<&Path> = r.evicted.iter().map(|e| e.entry.path.as_path()).collect();
    let lru_last = r
        .evicted
        .iter()
        .filter(|e| e.reason == gc::Reason::LeastRecentlyUsed)
        .map(|e| e.entry.last_used)
        .max()
        .expect("something was evicted for the bound");
    for e in before
        .iter()
        .filter(|e| !evicted.contains(e.path.as_path()))
    {
        assert!(
            e.last_used >= lru_last,
            "{} kept but used before an evicted entry",
            e.path.display()
        );
        assert!(cache.join(&e.path).exists(), "{}", e.path.display());
    }
    // A's big layer went (with its step record); B is whole.
    let big_a = &built_a.manifest.layers[0].digest;
    assert!(!blob(&cache, big_a).exists());
    for d in built_b
        .manifest
        .layers
        .iter()
        .map(|l| &l.digest)
        .chain([&built_b.manifest.config.digest, &built_b.digest])
    {
        assert!(blob(&cache, d).exists(), "B's blob {d} was evicted");
    }

    // B again: all from the cache. A again: recomputed, the same image.
    let again_b = build(&cache, &b);
    assert_eq!(again_b.digest, built_b.digest);
    assert!(
        again_b.rec.done.lock().unwrap().iter().skip(1).all(|c| *c),
        "B's steps should all be cache hits"
    );
    let again_a = build(&cache, &a);
    assert_eq!(again_a.digest, built_a.digest);
    assert!(blob(&cache, big_a).exists());

    // Down to nothing evictable, and the cache still works.
    let r = hoist_engine::prune(&cache, &PruneOptions::new(0)).unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let u = hoist_engine::usage(&cache).unwrap();
    assert_eq!(u.entries(), 0, "{u}");
    assert_eq!(r.bytes_after, du(&cache));
    assert_eq!(build(&cache, &a).digest, built_a.digest);
}

fn dry_run_deletes_nothing() {
    let s = Scratch::new();
    let cache = s.path("cache");
    let (a, b) = two_images(&s);
    build(&cache, &a);
    pause();
    build(&cache, &b);
    let before = snapshot(&cache);
    let total = du(&cache);
    let mut o = PruneOptions::new(0);
    o.dry_run = true;
    let r = hoist_engine::prune(&cache, &o).unwrap();
    assert!(r.dry_run && r.skipped.is_none());
    assert!(r.evicted.len() >= 14, "{}", r.summary()); // 8 blobs, 4 steps, 2 stat caches
    assert!(r.summary().contains("would evict"), "{}", r.summary());
    assert_eq!(r.bytes_before, total);
    assert!(r.bytes_after < total / 10, "{}", r.summary());
    assert_eq!(snapshot(&cache), before, "a dry run changed the cache");
}

fn cache_max_bytes_prunes_after_the_build() {
    let s = Scratch::new();
    let cache = s.path("cache");
    let (a, b) = two_images(&s);
    let built_a = build(&cache, &a);
    let one = du(&cache);
    pause();
    let bound = one + 50_000;
    let mut o = opts(&cache, &b, Some(&s.path("out-b")));
    o.cache_max_bytes = Some(bound);
    let built_b = build_with_opts(&o);
    let after = du(&cache);
    assert!(after <= bound, "du {after} > bound {bound}");
    let infos = built_b.rec.infos.lock().unwrap().clone();
    assert!(
        infos
            .iter()
            .any(|m| m.starts_with("cache: evicted") && m.contains("blob")),
        "{infos:?}"
    );
    assert!(!blob(&cache, &built_a.manifest.layers[0].digest).exists());
    assert!(blob(&cache, &built_b.manifest.layers[0].digest).exists());
    // The output was written before the prune and is whole.
    assert!(s.path("out-b/index.json").is_file());
    let layer = &built_b.manifest.layers[0].digest;
    assert!(s.path("out-b/blobs/sha256").join(layer.hex()).is_file());
    // Under the bound: nothing more to say.
    let mut o = opts(&cache, &b, None);
    o.cache_max_bytes = Some(bound);
    let again = build_with_opts(&o);
    assert_eq!(again.digest, built_b.digest);
    let infos = again.rec.infos.lock().unwrap().clone();
    assert!(!infos.iter().any(|m| m.starts_with("cache:")), "{infos:?}");
}

fn every_kind_is_measured_and_removed_including_rootless_trees() {
    if !sandbox_ok() {
        return;
    }
    let Some(base) = busybox_base() else { return };
    let s = Scratch::new();
    let cache = s.path("cache");
    let df = format!(
        "FROM oci:{}:latest AS base\n\
         COPY big.bin /big.bin\n\
         RUN --mount=type=cache,target=/var/cache/t sh -c 'echo x >> /var/cache/t/log; chown -R 1000:1000 /var/cache/t'\n\
         RUN mkdir -p /data/sub && echo hi > /data/sub/f && chmod 700 /data/sub && chown -R 1000:1000 /data\n\
         FROM scratch\n\
         COPY --from=base /data /data\n",
        base.display()
    );
    let ctx = context(&s.path("ctx"), &df, &[("big.bin", noise(3, 100_000))]);
    let first = build(&cache, &ctx);

    let u = hoist_engine::usage(&cache).unwrap();
    for k in [
        Kind::Blob,
        Kind::Step,
        Kind::Index,
        Kind::FileHash,
        Kind::Rootfs,
        Kind::Lower,
        Kind::Mount,
    ] {
        assert!(u.get(k).entries > 0 && u.get(k).bytes > 0, "no {k}:\n{u}");
    }
    assert_eq!(u.get(Kind::Temporary).entries, 0, "{u}");
    assert_eq!(u.total_bytes, du(&cache), "{u}");
    // Directories' uses are recorded beside them, never on them.
    for kind in ["rootfs", "mounts"] {
        for e in std::fs::read_dir(cache.join(kind)).unwrap().flatten() {
            assert!(cache.join("used").join(kind).join(e.file_name()).is_file());
        }
    }

    // Rootless with subordinate ids, RUN's chown leaves files this user does not own.
    let foreign = owned_by_others(&cache.join("lower")) + owned_by_others(&cache.join("mounts"));
    println!("    files of other ids in lower/ and mounts/: {foreign}");

    let r = hoist_engine::prune(&cache, &PruneOptions::new(0)).unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    for d in ["rootfs", "mounts"] {
        let left: Vec<_> = std::fs::read_dir(cache.join(d))
            .unwrap()
            .flatten()
            .collect();
        assert!(left.is_empty(), "{d}: {left:?}");
    }
    for g in std::fs::read_dir(cache.join("lower")).unwrap().flatten() {
        let left: Vec<_> = std::fs::read_dir(g.path()).unwrap().flatten().collect();
        assert!(left.is_empty(), "{}: {left:?}", g.path().display());
    }
    assert_eq!(hoist_engine::usage(&cache).unwrap().entries(), 0);
    assert_eq!(r.bytes_after, du(&cache));

    // Everything is made again, to the same image; the cache mount starts afresh.
    let again = build(&cache, &ctx);
    assert_eq!(again.digest, first.digest);
    assert!(!again.rec.done.lock().unwrap().iter().skip(1).any(|c| *c));
}

fn prune_skips_while_a_build_runs() {
    if !sandbox_ok() {
        return;
    }
    let Some(base) = busybox_base() else { return };
    let s = Scratch::new();
    let cache = s.path("cache");
    let (a, _) = two_images(&s);
    build(&cache, &a);
    let ctx = context(
        &s.path("slow"),
        &format!("FROM oci:{}:latest\nRUN sleep 2\n", base.display()),
        &[],
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let rec = Rec::default();
    *rec.started.lock().unwrap() = Some(tx);
    let o = opts(&cache, &ctx, None);
    std::thread::scope(|sc| {
        let t = sc.spawn(|| hoist_engine::build(&o, &rec));
        loop {
            let name = rx
                .recv_timeout(Duration::from_secs(120))
                .expect("the RUN step starts");
            if name.contains("RUN") {
                break;
            }
        }
        let entries = hoist_engine::entries(&cache).unwrap().len();
        let r = hoist_engine::prune(&cache, &PruneOptions::new(0)).unwrap();
        assert!(r.skipped.is_some(), "{r:?}");
        assert!(r.evicted.is_empty());
        assert!(r.summary().contains("skipped"));
        assert!(hoist_engine::entries(&cache).unwrap().len() >= entries);
        t.join().unwrap().expect("the build succeeds");
    });
    let r = hoist_engine::prune(&cache, &PruneOptions::new(0)).unwrap();
    assert!(r.skipped.is_none() && !r.evicted.is_empty() && r.errors.is_empty());
}

fn pull_cache_misses_on_missing_blobs_and_pulls_again() {
    if !hoist_testutil::have_registry() {
        println!("    skipped: docker-registry is not installed");
        return;
    }
    let skopeo = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("skopeo").is_file()))
        .unwrap_or(false);
    if !skopeo {
        println!("    skipped: skopeo is not installed");
        return;
    }
    let Some(base) = busybox_base() else { return };
    let reg = hoist_testutil::Registry::plain();
    let name = format!("{}/gc/busybox:latest", reg.addr());
    let s = Scratch::new();
    // An auth file of its own: as another user, skopeo's default one may be unreadable.
    let auth = s.path("auth.json");
    std::fs::write(&auth, "{\"auths\":{}}").unwrap();
    let authfile = format!("--dest-authfile={}", auth.display());
    hoist_testutil::skopeo_push_layout(&base, "latest", &name, &[&authfile]);
    let cache = s.path("cache");
    let ctx = context(
        &s.path("ctx"),
        &format!("FROM {name}\nCOPY f /f\n"),
        &[("f", b"f\n".to_vec())],
    );
    let first = build(&cache, &ctx);
    let refs: Vec<PathBuf> = std::fs::read_dir(cache.join("refs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    assert_eq!(refs.len(), 1);
    let entry: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&refs[0]).unwrap()).unwrap();
    let manifest = Digest::parse(entry["manifest"]["digest"].as_str().unwrap()).unwrap();
    let doc: Manifest =
        serde_json::from_slice(&std::fs::read(blob(&cache, &manifest)).unwrap()).unwrap();
    // Each of the base's documents gone: a miss, pulled again (--pull=missing).
    for d in [&manifest, &doc.config.digest, &doc.layers[0].digest] {
        std::fs::remove_file(blob(&cache, d)).unwrap();
        let again = build(&cache, &ctx);
        assert_eq!(again.digest, first.digest);
        assert!(blob(&cache, d).is_file(), "{d} was not pulled again");
    }
    // Evicting everything (refs too); --pull=never is then a miss, not a broken build.
    let r = hoist_engine::prune(&cache, &PruneOptions::new(0)).unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert!(r.evicted.iter().any(|e| e.entry.kind == Kind::Ref));
    let mut o = opts(&cache, &ctx, None);
    o.pull = hoist_engine::options::PullPolicy::Never;
    let err = hoist_engine::build(&o, &Rec::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("not in the local cache"), "{err}");
    assert_eq!(build(&cache, &ctx).digest, first.digest);
    // A ref whose manifest blob is gone is dangling: pruned whatever the bound.
    std::fs::remove_file(blob(&cache, &manifest)).unwrap();
    let r = hoist_engine::prune(&cache, &PruneOptions::new(u64::MAX)).unwrap();
    assert!(
        r.evicted
            .iter()
            .any(|e| e.entry.kind == Kind::Ref && e.reason == gc::Reason::Dangling),
        "{r:?}"
    );
}
