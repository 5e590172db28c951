//! Sandbox benchmarks (`cargo bench -p hoist-sandbox`):
//!
//! 1. per-step overhead: a trivial `RUN true` (helper spawn, namespaces, overlay,
//!    /proc, /dev, pivot_root, exec, wait), then the layer diff and the clean-up;
//! 2. a one-file change over a large lower dir (`HOIST_BENCH_LOWER_MB`, default 1024):
//!    the overlay upper-dir diff against a full-tree snapshot walk (what a differ
//!    without overlayfs has to do, before and after the command).
//!
//! `HOIST_BENCH_DIR` chooses the file system (default `$TMPDIR`); `HOIST_BENCH_FALLBACK=1`
//! also times the snapshot differ.
//!
//! This binary also shows the required shape of a program using the sandbox: it calls
//! `hoist_sandbox::init()` first and uses itself (`/proc/self/exe`) as the helper.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hoist_image::layer::WriteOptions;
use hoist_sandbox::fallback::Snapshot;
use hoist_sandbox::{RunSpec, Sandbox, SandboxConfig};

fn busybox_rootfs(dir: &Path) {
    for d in ["bin", "sbin", "usr/bin", "usr/sbin", "etc", "tmp", "root"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", dir.join("bin/busybox")).unwrap();
    let out = std::process::Command::new("/bin/busybox")
        .arg("--list-full")
        .output()
        .unwrap();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let p = dir.join(line);
        if line != "bin/busybox" && std::fs::symlink_metadata(&p).is_err() {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink("/bin/busybox", &p).unwrap();
        }
    }
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// CPU time (user + system) used so far by this process and its reaped children: unlike
/// wall time, it does not grow when other jobs compete for the CPUs.
fn cpu_time() -> Duration {
    let get = |who| {
        let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: getrusage fills the rusage buffer we own.
        #[allow(unsafe_code)]
        let ru = unsafe {
            libc::getrusage(who, ru.as_mut_ptr());
            ru.assume_init()
        };
        let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
        tv(ru.ru_utime) + tv(ru.ru_stime)
    };
    get(libc::RUSAGE_SELF) + get(libc::RUSAGE_CHILDREN)
}

fn step(sb: &Sandbox, lowers: &[PathBuf], argv: &[&str], blobs: &Path) -> [Duration; 4] {
    let dirs = sb.create_run_dirs().unwrap();
    let spec = RunSpec::new(
        lowers.to_vec(),
        dirs.upper.clone(),
        dirs.work.clone(),
        argv.iter().map(|s| s.to_string()).collect(),
    );
    let c0 = cpu_time();
    let t0 = Instant::now();
    let st = sb.run(&spec, &mut |_, _| {}).unwrap();
    assert!(st.success());
    let t1 = Instant::now();
    let cpu = cpu_time() - c0;
    sb.diff_layer(&dirs.upper, blobs, &WriteOptions::default())
        .unwrap();
    let t2 = Instant::now();
    sb.remove_tree(&dirs.base).unwrap();
    let t3 = Instant::now();
    [t1 - t0, t2 - t1, t3 - t2, cpu]
}

fn main() {
    hoist_sandbox::init();
    let caps = hoist_sandbox::capabilities();
    println!("host: {}", caps.explain());
    // HOIST_BENCH_DIR: where the lower dirs and the state dir go (default: $TMPDIR).
    let root = std::env::var_os("HOIST_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let tmp = tempfile::Builder::new()
        .prefix("hoist-sbbench-")
        .tempdir_in(&root)
        .unwrap();
    println!("bench dir: {}", tmp.path().display());
    let base = tmp.path().join("base");
    busybox_rootfs(&base);
    let sb = Sandbox::new(SandboxConfig::new(tmp.path().join("state"))).unwrap();
    let blobs = tmp.path().join("blobs");

    // 1. Per-step overhead.
    let n = 30;
    for argv in [&["/bin/true"][..], &["/bin/sh", "-c", "true"][..]] {
        let mut run = Vec::new();
        let mut diff = Vec::new();
        let mut rm = Vec::new();
        let mut cpu = Vec::new();
        for _ in 0..3 {
            step(&sb, std::slice::from_ref(&base), argv, &blobs);
        }
        for _ in 0..n {
            let [a, b, c, d] = step(&sb, std::slice::from_ref(&base), argv, &blobs);
            cpu.push(d);
            run.push(a);
            diff.push(b);
            rm.push(c);
        }
        let total: Vec<Duration> = run
            .iter()
            .zip(&diff)
            .zip(&rm)
            .map(|((a, b), c)| *a + *b + *c)
            .collect();
        println!(
            "RUN {:?} ({n} runs, median): run {} (CPU {}), diff {}, cleanup {}, whole step {} \
             (target < 50 ms)",
            argv,
            ms(median(run)),
            ms(median(cpu)),
            ms(median(diff)),
            ms(median(rm)),
            ms(median(total)),
        );
    }

    // 2. A one-file change over a large lower dir.
    let mb: usize = std::env::var("HOIST_BENCH_LOWER_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let big = tmp.path().join("big");
    let files = mb * 32; // 32 KiB each, 100 per directory
    let chunk: Vec<u8> = (0..32 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    let t = Instant::now();
    for i in 0..files {
        let d = big.join(format!("data/d{:04}", i / 100));
        if i % 100 == 0 {
            std::fs::create_dir_all(&d).unwrap();
        }
        std::fs::write(d.join(format!("f{i}")), &chunk).unwrap();
    }
    println!(
        "lower dir: {files} files, {mb} MiB, written in {}",
        ms(t.elapsed())
    );
    let lowers = vec![base.clone(), big.clone()];
    let argv = ["/bin/sh", "-c", "echo changed > /data/d0000/f0"];
    let mut runs = Vec::new();
    let mut diffs = Vec::new();
    for _ in 0..5 {
        let [run, diff, _, _] = step(&sb, &lowers, &argv, &blobs);
        runs.push(run);
        diffs.push(diff);
    }
    let (run, diff) = (median(runs), median(diffs));
    let mut walk = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let before = Snapshot::take(&big).unwrap();
        let after = Snapshot::take(&big).unwrap();
        assert_eq!(before.len(), after.len());
        walk.push(t.elapsed());
    }
    let walk = median(walk);
    println!(
        "1-file change over {mb} MiB ({files} files): overlay: run {}, layer diff {}; \
         full-tree snapshot walk (before + after, no copy, no layer) {} -> the overlay diff is \
         {:.0}x faster (target >= 10x); even counting the whole RUN it is {:.1}x faster",
        ms(run),
        ms(diff),
        ms(walk),
        walk.as_secs_f64() / diff.as_secs_f64(),
        walk.as_secs_f64() / (run + diff).as_secs_f64(),
    );
    if std::env::var("HOIST_BENCH_FALLBACK").is_ok() {
        let mut sb2 = Sandbox::new(SandboxConfig::new(tmp.path().join("state2"))).unwrap();
        sb2.use_snapshot_differ(true);
        let [run, diff, rm, _] = step(&sb2, &lowers, &argv, &blobs);
        println!(
            "same step with the snapshot differ (copy + snapshot + diff): run {}, diff {}, cleanup {}",
            ms(run),
            ms(diff),
            ms(rm)
        );
    }
}
