//! Every committed fuzz input replays through its target on every test run: the seed
//! corpus (`fuzz/seeds/TARGET/`) and the inputs that once crashed a target
//! (`fuzz/regressions/TARGET/`). A seed that panics fails the test, named.

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The files of `dir` (none when it does not exist), sorted.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

/// Run `body` on `data`; the panic message if it panicked.
fn replay(body: hoist_fuzz::Body, data: &[u8]) -> Option<String> {
    catch_unwind(AssertUnwindSafe(|| body(data)))
        .err()
        .map(|p| {
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "(no message)".into())
        })
}

#[test]
fn committed_corpus_replays_without_a_crash() {
    let mut failures = Vec::new();
    for (name, body) in hoist_fuzz::TARGETS {
        let seeds = inputs(&fuzz_dir().join("seeds").join(name));
        assert!(
            seeds.len() >= 3,
            "fuzz/seeds/{name} has {} inputs: run `cargo run -p hoist-fuzz --example write-seeds`",
            seeds.len()
        );
        let regressions = inputs(&fuzz_dir().join("regressions").join(name));
        for p in seeds.iter().chain(&regressions) {
            if let Some(msg) = replay(*body, &fs::read(p).unwrap()) {
                failures.push(format!("{}: {msg}", p.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn generated_seeds_pass_their_targets() {
    let seeds = hoist_fuzz::seeds::all().expect("generate the seeds");
    let mut failures = Vec::new();
    for s in &seeds {
        let body = hoist_fuzz::target(s.target).expect("known target");
        if let Some(msg) = replay(body, &s.bytes) {
            failures.push(format!("{}/{}: {msg}", s.target, s.name));
        }
    }
    for (name, _) in hoist_fuzz::TARGETS {
        assert!(
            seeds.iter().filter(|s| s.target == *name).count() >= 3,
            "too few seeds for {name}"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The check under the targets must itself fail: a write beside the root is seen.
#[test]
fn the_jail_notices_an_escape() {
    let jail = hoist_fuzz::jail::Jail::new();
    jail.check(&[], "untouched");
    fs::write(jail.dir().join("sentinel"), "changed").unwrap();
    let r = catch_unwind(AssertUnwindSafe(|| jail.check(&[], "written")));
    assert!(r.is_err(), "a changed sentinel must be noticed");

    let jail = hoist_fuzz::jail::Jail::new();
    fs::write(jail.dir().join("empty/x"), "x").unwrap();
    assert!(catch_unwind(AssertUnwindSafe(|| jail.check(&[], "x"))).is_err());

    let jail = hoist_fuzz::jail::Jail::new();
    fs::write(jail.dir().join("new"), "x").unwrap();
    assert!(catch_unwind(AssertUnwindSafe(|| jail.check(&[], "x"))).is_err());
}

/// The archive seeds are images hoist reads whole (so the fuzzer starts from inputs
/// that reach the unpacker and the sinks, not from ones refused at the first check).
#[test]
fn archive_seeds_open_and_unpack() {
    use hoist_image::{unpack_rootfs, DockerArchiveSource, OciArchiveSource, Platform, Source};
    let platform = Platform::parse("linux/amd64").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for s in hoist_fuzz::seeds::all().unwrap() {
        let file = tmp.path().join(&s.name);
        fs::write(&file, &s.bytes).unwrap();
        let src: Box<dyn Source> = match s.target {
            "docker_archive" => Box::new(DockerArchiveSource::open(&file, None).unwrap()),
            "oci" => Box::new(OciArchiveSource::open(&file, Some("latest")).unwrap()),
            _ => continue,
        };
        let out = tmp.path().join(format!("{}.out", s.name));
        let opts = hoist_fuzz::layer::options(Default::default(), false);
        let stats = unpack_rootfs(src.as_ref(), &platform, &out, &opts)
            .unwrap_or_else(|e| panic!("{}: {}", s.name, hoist_image::chain_text(&e)));
        assert!(stats.files >= 1, "{}: {stats:?}", s.name);
    }
}
