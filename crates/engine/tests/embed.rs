//! Embedding: a program that calls `hoist_engine::build` on a Dockerfile with RUN works
//! when it calls `hoist_engine::sandbox_init()` first (as `examples/run_build.rs` does),
//! and without that call fails saying what to do. Its own `main` (`harness = false`): it
//! is that program, run once each way. Skips without umoci and busybox (the base image).

use std::path::{Path, PathBuf};
use std::process::Command;

use hoist_engine::{build, options::BuildOptions, output::OutputSpec, progress};

const SKIP_INIT: &str = "HOIST_EMBED_TEST_SKIP_INIT";

fn main() {
    if std::env::var_os(SKIP_INIT).is_none() {
        hoist_engine::sandbox_init();
    }
    if let Some(ctx) = std::env::var_os("HOIST_EMBED_TEST_CONTEXT") {
        // The embedded program: build and report.
        let mut opts = BuildOptions::new(PathBuf::from(ctx));
        opts.cache_dir = std::env::var_os("HOIST_EMBED_TEST_CACHE").unwrap().into();
        let out = std::env::var("HOIST_EMBED_TEST_OUT").unwrap();
        opts.outputs
            .push(OutputSpec::parse(&format!("type=local,dest={out}")).unwrap());
        let display = progress::display(progress::Mode::Quiet);
        match build(&opts, display.as_ref()) {
            Ok(_) => std::process::exit(0),
            Err(e) => {
                eprintln!("{}", hoist_image::chain_text(&e));
                std::process::exit(1);
            }
        }
    }
    let Some(base) = busybox_base() else {
        eprintln!("embed: skipped (needs umoci and busybox)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM oci:{}:latest\nRUN echo embedded > /made\n",
            base.display()
        ),
    )
    .unwrap();
    let run = |skip_init: bool, out: &Path| {
        let mut c = Command::new(std::env::current_exe().unwrap());
        c.env("HOIST_EMBED_TEST_CONTEXT", &ctx)
            .env("HOIST_EMBED_TEST_CACHE", tmp.path().join("cache"))
            .env("HOIST_EMBED_TEST_OUT", out);
        if skip_init {
            c.env(SKIP_INIT, "1");
        }
        c.output().unwrap()
    };
    let without = run(true, &tmp.path().join("out-without"));
    let err = String::from_utf8_lossy(&without.stderr);
    assert!(!without.status.success());
    assert!(
        err.contains(
            "did not call hoist_sandbox::init() (re-exported as hoist_engine::sandbox_init())"
        ),
        "{err}"
    );
    let out = tmp.path().join("out");
    let with = run(false, &out);
    assert!(
        with.status.success(),
        "{}",
        String::from_utf8_lossy(&with.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(out.join("made")).unwrap(),
        "embedded\n"
    );
    eprintln!("embed: ok");
}

fn busybox_base() -> Option<PathBuf> {
    for tool in ["umoci", "busybox"] {
        let found = std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
        if !found {
            return None;
        }
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .to_string();
    let dir = repo.join(format!("target/test-bases/busybox-oci-uid{uid}"));
    if !dir.join("index.json").is_file() {
        let ok = Command::new("bash")
            .arg(repo.join("scripts/make-busybox-base.sh"))
            .arg(&dir)
            .status()
            .ok()?
            .success();
        if !ok {
            return None;
        }
    }
    Some(dir)
}
