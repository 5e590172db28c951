//! Shared helpers of the `formats_*` tests: real tools (umoci, skopeo, podman), test
//! images made with umoci, and a failure-injecting source wrapper.

#![allow(dead_code)]

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use hoist_image::{Descriptor, RawDocument, Result, Source};

/// Run a command, panic with its output unless it succeeds, return stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (is the tool installed?)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `Command::new(prog).args(args)`.
pub fn cmd(prog: &str, args: &[&str]) -> Command {
    let mut c = Command::new(prog);
    c.args(args);
    c
}

/// `s` of a path.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// An image made with umoci in `work/layout` tagged `v1`, two layers:
/// 1. `/bin/busybox`, `/bin/sh -> busybox`, `/etc/hello` ("hello\n"), `/etc/keep`;
/// 2. `/etc/second` ("second\n") added, `/etc/hello` deleted (a whiteout).
///
/// Config: `Cmd ["/bin/sh"]`, linux/amd64. Returns the layout path.
pub fn umoci_image(work: &Path) -> PathBuf {
    let layout = work.join("layout");
    let bundle = work.join("bundle");
    let img = format!("{}:v1", s(&layout));
    run(&mut cmd("umoci", &["init", "--layout", s(&layout)]));
    run(&mut cmd("umoci", &["new", "--image", &img]));
    run(&mut cmd(
        "umoci",
        &["unpack", "--rootless", "--image", &img, s(&bundle)],
    ));
    let root = bundle.join("rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
    std::fs::write(root.join("etc/hello"), "hello\n").unwrap();
    std::fs::write(root.join("etc/keep"), "keep\n").unwrap();
    run(&mut cmd("umoci", &["repack", "--image", &img, s(&bundle)]));
    std::fs::remove_dir_all(&bundle).unwrap();
    run(&mut cmd(
        "umoci",
        &["unpack", "--rootless", "--image", &img, s(&bundle)],
    ));
    std::fs::write(root.join("etc/second"), "second\n").unwrap();
    std::fs::remove_file(root.join("etc/hello")).unwrap();
    run(&mut cmd("umoci", &["repack", "--image", &img, s(&bundle)]));
    run(&mut cmd(
        "umoci",
        &[
            "config",
            "--image",
            &img,
            "--config.cmd",
            "/bin/sh",
            "--architecture",
            "amd64",
            "--os",
            "linux",
        ],
    ));
    run(&mut cmd("umoci", &["gc", "--layout", s(&layout)]));
    std::fs::remove_dir_all(&bundle).unwrap();
    layout
}

/// Check an unpacked root file system has exactly the files of [`umoci_image`].
pub fn check_rootfs(root: &Path) {
    let busybox = std::fs::read("/bin/busybox").unwrap();
    assert_eq!(std::fs::read(root.join("bin/busybox")).unwrap(), busybox);
    assert_eq!(
        std::fs::read_link(root.join("bin/sh")).unwrap(),
        PathBuf::from("busybox")
    );
    assert_eq!(
        std::fs::read_to_string(root.join("etc/second")).unwrap(),
        "second\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("etc/keep")).unwrap(),
        "keep\n"
    );
    assert!(
        !root.join("etc/hello").exists(),
        "the whiteout of /etc/hello was not applied"
    );
    assert!(!root.join("etc/.wh.hello").exists());
}

/// Names in a directory, sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A source that fails (or corrupts) the `fail_at`-th blob it serves (counting from 1).
pub struct FailingSource<'a> {
    pub inner: &'a dyn Source,
    pub fail_at: usize,
    pub corrupt: bool,
    pub served: AtomicUsize,
}

impl<'a> FailingSource<'a> {
    pub fn new(inner: &'a dyn Source, fail_at: usize, corrupt: bool) -> Self {
        FailingSource {
            inner,
            fail_at,
            corrupt,
            served: AtomicUsize::new(0),
        }
    }
}

/// Streams the inner reader, then fails (or appends a byte) at the end.
struct Broken<R> {
    inner: R,
    corrupt: bool,
    done: bool,
}

impl<R: Read> Read for Broken<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 || self.done {
            // Flip the first byte of the stream when corrupting.
            return Ok(n);
        }
        self.done = true;
        if self.corrupt {
            buf[0] = b'!';
            Ok(1)
        } else {
            Err(io::Error::other("injected failure"))
        }
    }
}

impl Source for FailingSource<'_> {
    fn name(&self) -> String {
        format!("failing({})", self.inner.name())
    }
    fn root(&self) -> Result<RawDocument> {
        self.inner.root()
    }
    fn manifest(&self, desc: &Descriptor) -> Result<RawDocument> {
        self.inner.manifest(desc)
    }
    fn blob(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send + '_>> {
        let n = self.served.fetch_add(1, Ordering::SeqCst) + 1;
        let r = self.inner.blob(desc)?;
        if n == self.fail_at {
            Ok(Box::new(Broken {
                inner: r,
                corrupt: self.corrupt,
                done: false,
            }))
        } else {
            Ok(r)
        }
    }
}
