//! Shared harness for hoist's end-to-end tests: run the real `hoist` binary in temp dirs
//! and check what it wrote with independent tools (skopeo, umoci, podman, tar).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The repository root (`HOIST_REPO` overrides it, for runs as another user from a copy).
pub fn repo() -> PathBuf {
    if let Some(r) = std::env::var_os("HOIST_REPO") {
        return PathBuf::from(r);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The hoist binary under test (`HOIST_BIN` overrides it).
pub fn hoist_bin() -> PathBuf {
    std::env::var_os("HOIST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_hoist")))
}

/// A fixture directory.
pub fn fixture(name: &str) -> PathBuf {
    repo().join("fixtures").join(name)
}

/// A scratch area for one test: its own cache dir and outputs.
pub struct Env {
    /// The temp dir (removed on drop).
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        // Scratch space lives beside the build output (cargo's per-target tmp dir) rather
        // than in /tmp, which CI machines often keep small; HOIST_TEST_TMP overrides both.
        let base = std::env::var_os("HOIST_TEST_TMP")
            .map(PathBuf::from)
            .or_else(|| option_env!("CARGO_TARGET_TMPDIR").map(PathBuf::from))
            .unwrap_or_else(std::env::temp_dir);
        std::fs::create_dir_all(&base).unwrap();
        Env {
            dir: tempfile::Builder::new()
                .prefix("hoist-e2e-")
                .tempdir_in(base)
                .unwrap(),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `hoist` with this env's cache dir, plain progress, no inherited hoist settings.
    pub fn hoist(&self) -> Command {
        let mut c = Command::new(hoist_bin());
        c.env("HOIST_CACHE_DIR", self.path("cache"))
            .env("CI", "1")
            .env_remove("SOURCE_DATE_EPOCH")
            .env_remove("HOIST_LOG");
        c
    }

    /// Run hoist, panic with its output unless it succeeds; return stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.hoist().args(args).output().unwrap();
        assert_success(&out, &format!("hoist {}", args.join(" ")));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Run hoist expecting failure; return stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.hoist().args(args).output().unwrap();
        assert!(
            !out.status.success(),
            "hoist {} should have failed; stdout:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).unwrap()
    }
}

pub fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Run a command and return its stdout, panicking with its output on failure.
pub fn run(cmd: &mut Command) -> String {
    let what = format!("{cmd:?}");
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_success(&out, &what);
    String::from_utf8(out.stdout).unwrap()
}

pub fn is_root() -> bool {
    rustix_uid() == 0
}

fn rustix_uid() -> u32 {
    // SAFETY-free: parse /proc/self/status rather than calling libc.
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|u| u.parse().ok())
        .unwrap_or(u32::MAX)
}

/// The busybox base image as an OCI layout (tag `latest`), made once with umoci and
/// cached under target/test-bases (shared by test processes: built in a temp dir and
/// renamed into place).
pub fn busybox_base() -> PathBuf {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        let dir = repo()
            .join("target/test-bases")
            .join(format!("busybox-oci-uid{}", rustix_uid()));
        if !dir.join("index.json").is_file() {
            run(Command::new("bash")
                .arg(repo().join("scripts/make-busybox-base.sh"))
                .arg(&dir));
        }
        dir
    })
    .clone()
}

/// `skopeo inspect` (the image's config summary) as JSON.
pub fn skopeo_inspect(reference: &str) -> serde_json::Value {
    let out = run(Command::new("skopeo").args(["inspect", "--tls-verify=false", reference]));
    serde_json::from_str(&out).unwrap()
}

/// `skopeo inspect --config --raw`: the config exactly as stored (skopeo's parsed view drops Docker's Healthcheck and OnBuild).
pub fn skopeo_config(reference: &str) -> serde_json::Value {
    let out = run(Command::new("skopeo").args([
        "inspect",
        "--config",
        "--raw",
        "--tls-verify=false",
        reference,
    ]));
    serde_json::from_str(&out).unwrap()
}

/// `skopeo inspect --raw` (the manifest bytes).
pub fn skopeo_raw(reference: &str) -> Vec<u8> {
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false", reference])
        .output()
        .unwrap();
    assert_success(&out, &format!("skopeo inspect --raw {reference}"));
    out.stdout
}

/// Unpack an OCI layout image with umoci; returns the rootfs path.
pub fn umoci_unpack(layout: &Path, tag: &str, dest: &Path) -> PathBuf {
    let mut c = Command::new("umoci");
    c.arg("unpack");
    if !is_root() {
        c.arg("--rootless");
    }
    c.arg("--image")
        .arg(format!("{}:{tag}", layout.display()))
        .arg(dest);
    run(&mut c);
    dest.join("rootfs")
}

/// sha256 of a file as `sha256:…`.
pub fn sha256_file(p: &Path) -> String {
    sha256_of(&std::fs::read(p).unwrap())
}

/// sha256 of bytes as `sha256:…`.
pub fn sha256_of(data: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// A real Debian base (bookworm minbase) as an OCI layout (tag `bookworm`), made once with
/// debootstrap (as root) and cached under target/test-bases. `None` when it cannot be
/// made here (not root and not made before): callers say so and skip.
pub fn debian_base() -> Option<PathBuf> {
    static BASE: OnceLock<Option<PathBuf>> = OnceLock::new();
    BASE.get_or_init(|| {
        let dir = repo().join("target/test-bases/debian-oci");
        if dir.join("index.json").is_file() {
            return Some(dir);
        }
        if !is_root() {
            return None;
        }
        // One maker at a time across test processes.
        let lock = repo().join("target/test-bases/.debian.lock");
        std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
        let f = std::fs::File::create(&lock).unwrap();
        let _ = f.lock();
        if !dir.join("index.json").is_file() {
            run(Command::new("bash")
                .arg(repo().join("scripts/make-debian-base.sh"))
                .arg(&dir));
        }
        Some(dir)
    })
    .clone()
}

/// Whether any blob of an OCI layout (decompressed when gzip) contains `needle`.
pub fn layout_contains(layout: &Path, needle: &[u8]) -> bool {
    use std::io::Read;
    let blobs = layout.join("blobs/sha256");
    for e in std::fs::read_dir(&blobs).unwrap() {
        let p = e.unwrap().path();
        let raw = std::fs::read(&p).unwrap();
        let mut data = raw.clone();
        if raw.starts_with(&[0x1f, 0x8b]) {
            data.clear();
            flate2::read::MultiGzDecoder::new(&raw[..])
                .read_to_end(&mut data)
                .unwrap();
        }
        if data.windows(needle.len()).any(|w| w == needle) {
            return true;
        }
    }
    false
}
