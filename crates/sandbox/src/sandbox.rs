//! The parent side: [`Sandbox`] spawns the helper, maps its user namespace and pumps
//! the command's output.

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use hoist_image::layer::{LayerDescriptor, WriteOptions};

use crate::caps::{Capabilities, IdMode};
use crate::fork;
use crate::layers;
use crate::protocol::{Msg, Op, Request, RunRequest, HELPER_ARG, PARENT_ENV, STATUS_FD};
use crate::rootfs::ResolvedMount;
use crate::spec::{CacheSharing, ExitStatus, MountSpec, OutputStream, RunSpec, SecretSource};
use crate::{Error, Result};

/// Configuration of a [`Sandbox`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    /// Where run directories (upper, work) and throw-away cache instances go. Must be
    /// on a file system that supports overlayfs upper dirs (ext4, xfs, btrfs, tmpfs).
    pub state_dir: PathBuf,
    /// The executable re-executed as the helper; its `main` must call
    /// [`init`](crate::init) first. Default: `/proc/self/exe`.
    pub helper_exe: PathBuf,
}

impl SandboxConfig {
    /// A config with `state_dir` and the current executable as helper.
    pub fn new(state_dir: impl Into<PathBuf>) -> SandboxConfig {
        SandboxConfig {
            state_dir: state_dir.into(),
            helper_exe: PathBuf::from("/proc/self/exe"),
        }
    }
}

/// The directories of one RUN, made by [`Sandbox::create_run_dirs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDirs {
    /// The parent of both; remove it with [`Sandbox::remove_tree`].
    pub base: PathBuf,
    /// The (empty) upper directory.
    pub upper: PathBuf,
    /// The (empty) work directory.
    pub work: PathBuf,
}

/// Runs `RUN` steps in namespaces and turns their changes into layers.
///
/// Created once per build; it detects the host's [`Capabilities`] when created. All
/// namespace work happens in a helper process (a re-exec of `helper_exe`), so the
/// calling process may be multi-threaded.
#[derive(Debug)]
pub struct Sandbox {
    config: SandboxConfig,
    caps: Capabilities,
    id_mode: IdMode,
    overlay: bool,
    counter: AtomicU64,
}

/// A spawned helper.
struct Helper {
    child: Child,
    control: std::process::ChildStdin,
    status: OwnedFd,
    status_buf: Vec<u8>,
    msgs: Vec<Msg>,
}

impl Drop for Helper {
    fn drop(&mut self) {
        // Make sure no helper outlives an error path; a finished child is unaffected.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Helper {
    /// Parse complete status lines from the buffer.
    fn take_lines(&mut self) {
        while let Some(i) = self.status_buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.status_buf.drain(..=i).collect();
            match serde_json::from_slice::<Msg>(&line[..line.len() - 1]) {
                Ok(m) => self.msgs.push(m),
                Err(e) => self.msgs.push(Msg::Error(format!(
                    "malformed helper message {:?}: {e}",
                    String::from_utf8_lossy(&line)
                ))),
            }
        }
    }

    /// Read status until a message arrives (blocking); `None` at end of stream.
    fn next_msg(&mut self) -> Result<Option<Msg>> {
        loop {
            if !self.msgs.is_empty() {
                return Ok(Some(self.msgs.remove(0)));
            }
            let mut buf = [0u8; 4096];
            let n = fork::read_fd(&self.status, &mut buf)
                .map_err(|e| Error::sys("read helper status", e))?;
            if n == 0 {
                return Ok(None);
            }
            self.status_buf.extend_from_slice(&buf[..n]);
            self.take_lines();
        }
    }
}

/// Split output into lines for the callback.
struct LineSplitter {
    buf: Vec<u8>,
    stream: OutputStream,
}

impl LineSplitter {
    fn push(&mut self, data: &[u8], out: &mut dyn FnMut(OutputStream, &[u8])) {
        self.buf.extend_from_slice(data);
        let mut start = 0;
        while let Some(i) = self.buf[start..].iter().position(|b| *b == b'\n') {
            out(self.stream, &self.buf[start..start + i + 1]);
            start += i + 1;
        }
        self.buf.drain(..start);
        // Bound memory for output without newlines.
        if self.buf.len() >= 64 * 1024 {
            out(self.stream, &self.buf);
            self.buf.clear();
        }
    }

    fn finish(&mut self, out: &mut dyn FnMut(OutputStream, &[u8])) {
        if !self.buf.is_empty() {
            out(self.stream, &self.buf);
            self.buf.clear();
        }
    }
}

/// Mounts resolved for one run, with what must live as long as it.
#[derive(Default)]
struct Resolved {
    mounts: Vec<ResolvedMount>,
    env: Vec<String>,
    locks: Vec<CacheLock>,
    temps: Vec<PathBuf>,
}

/// An exclusive or shared lock held on a cache directory for one run.
struct CacheLock {
    _file: std::fs::File,
}

impl Sandbox {
    /// Detect the host's capabilities and prepare `config.state_dir`.
    pub fn new(config: SandboxConfig) -> Result<Sandbox> {
        if config.helper_exe == std::path::Path::new("/proc/self/exe") && !crate::init_called() {
            return Err(Error::Unsupported(
                "this program did not call hoist_sandbox::init() (re-exported as \
                 hoist_engine::sandbox_init()) first thing in main(): RUN re-executes the \
                 program as its sandbox helper, so main must start with that call"
                    .into(),
            ));
        }
        let mut caps = crate::capabilities();
        let id_mode = caps.id_mode().map_err(Error::Unsupported)?;
        std::fs::create_dir_all(&config.state_dir).map_err(|e| Error::io(&config.state_dir, e))?;
        // Upper dirs live in the state dir: probe overlayfs on that file system.
        let probe = fork::probe_userns_overlay_in(&config.state_dir);
        if !caps.overlay && probe.userns && probe.overlay {
            // The process-wide probe ran in $TMPDIR, which may be an overlay itself (a
            // container's root): the state dir's file system is what counts.
            caps.overlay = true;
            caps.notes
                .retain(|n| !n.starts_with("overlayfs cannot be mounted"));
        } else if caps.overlay && !probe.overlay {
            caps.overlay = false;
            caps.notes.push(format!(
                "overlayfs cannot use {} ({}): each RUN step copies the root file system \
                 and diffs it afterwards, which is slower",
                config.state_dir.display(),
                probe.detail
            ));
        }
        if !config.helper_exe.exists() {
            return Err(Error::io(
                &config.helper_exe,
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
        for n in &caps.notes {
            tracing::warn!("sandbox: {n}");
        }
        let sb = Sandbox {
            config,
            overlay: caps.overlay,
            caps,
            id_mode,
            counter: AtomicU64::new(0),
        };
        match sb.remove_stale() {
            Ok(0) => {}
            Ok(n) => tracing::info!("removed {n} directories left by killed builds"),
            Err(e) => tracing::warn!("could not clean the sandbox state dir: {e}"),
        }
        Ok(sb)
    }

    /// Remove run directories and private cache instances left in the state dir by
    /// hoist processes that no longer exist (killed with SIGKILL, power loss). Returns
    /// how many were removed. Called by [`Sandbox::new`].
    pub fn remove_stale(&self) -> Result<usize> {
        let dir = &self.config.state_dir;
        let mut n = 0;
        for e in std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .flatten()
        {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            let mut parts = name.splitn(3, '-');
            let (Some(kind), Some(pid), Some(_)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let Ok(pid) = pid.parse::<u32>() else {
                continue;
            };
            if !matches!(kind, "run" | "cache") || Path::new(&format!("/proc/{pid}")).exists() {
                continue;
            }
            self.remove_tree(&e.path())?;
            n += 1;
        }
        Ok(n)
    }

    /// Use the snapshot differ instead of overlayfs even where overlayfs works (it is
    /// chosen automatically where it does not). Slower: each RUN copies the lower dirs.
    pub fn use_snapshot_differ(&mut self, on: bool) {
        self.overlay = !on && self.caps.overlay;
    }

    /// Whether RUN steps use overlayfs (else the snapshot differ).
    pub fn uses_overlay(&self) -> bool {
        self.overlay
    }

    /// The detected capabilities.
    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    /// The id mapping in use.
    pub fn id_mode(&self) -> IdMode {
        self.id_mode
    }

    /// The configuration.
    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    fn unique(&self, prefix: &str) -> PathBuf {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        self.config
            .state_dir
            .join(format!("{prefix}-{}-{n}", std::process::id()))
    }

    /// Create fresh, empty upper and work directories for one RUN under the state dir.
    pub fn create_run_dirs(&self) -> Result<RunDirs> {
        let base = self.unique("run");
        let upper = base.join("upper");
        let work = base.join("work");
        for d in [&upper, &work] {
            std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
        }
        Ok(RunDirs { base, upper, work })
    }

    fn spawn(&self, req: &Request, output: bool) -> Result<Helper> {
        let (status_r, status_w) = fork::pipe().map_err(|e| Error::sys("pipe", e))?;
        let mut cmd = Command::new(&self.config.helper_exe);
        cmd.arg(HELPER_ARG)
            .env_clear()
            .env(PARENT_ENV, std::process::id().to_string())
            .stdin(Stdio::piped())
            .stdout(if output {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(if output {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        if let Ok(v) = std::env::var("RUST_LOG") {
            cmd.env("RUST_LOG", v);
        }
        let w = status_w.as_raw_fd();
        // SAFETY: the closure only calls dup2/fcntl (async-signal-safe) between fork and
        // exec, and allocates nothing.
        #[allow(unsafe_code)]
        unsafe {
            cmd.pre_exec(move || fork::dup2(w, STATUS_FD));
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::io(&self.config.helper_exe, e))?;
        drop(status_w);
        let control = child.stdin.take().expect("piped stdin");
        let mut h = Helper {
            child,
            control,
            status: status_r,
            status_buf: Vec::new(),
            msgs: Vec::new(),
        };
        let body = serde_json::to_vec(req).map_err(|e| Error::Helper(e.to_string()))?;
        let mut frame = (body.len() as u32).to_le_bytes().to_vec();
        frame.extend_from_slice(&body);
        h.control
            .write_all(&frame)
            .map_err(|e| Error::sys("write helper request", e))?;
        if req.userns {
            match h.next_msg()? {
                Some(Msg::Ready) => {}
                Some(Msg::Error(e)) => return Err(Error::Helper(e)),
                other => {
                    return Err(Error::Helper(format!(
                    "helper did not start (got {other:?}); is {} calling hoist_sandbox::init()?",
                    self.config.helper_exe.display()
                )))
                }
            }
            let pid = h.child.id();
            let res = crate::idmap::write_maps(pid, &self.id_mode, &self.caps);
            let go: &[u8] = if res.is_ok() { b"G" } else { b"A" };
            let _ = h.control.write_all(go);
            res?;
        }
        Ok(h)
    }

    /// Run a helper operation without output and return its `Done` value.
    fn helper_op(&self, op: Op) -> Result<serde_json::Value> {
        let req = Request {
            userns: true,
            id_mode: self.id_mode,
            op,
        };
        let mut h = self.spawn(&req, false)?;
        let mut done = None;
        let mut err = None;
        while let Some(m) = h.next_msg()? {
            match m {
                Msg::Done(v) => done = Some(v),
                Msg::Error(e) => err = Some(e),
                _ => {}
            }
        }
        let st = h.child.wait().map_err(|e| Error::sys("wait helper", e))?;
        if let Some(e) = err {
            return Err(Error::Helper(e));
        }
        done.ok_or_else(|| Error::Helper(format!("helper ended without result ({st})")))
    }

    fn check_ids(&self, spec: &RunSpec) -> Result<()> {
        let m = &self.id_mode;
        if !m.uid_exists(spec.uid)
            || !m.gid_exists(spec.gid)
            || spec.groups.iter().any(|g| !m.gid_exists(*g))
        {
            return Err(Error::Unsupported(format!(
                "user {}:{} (groups {:?}) does not exist in this sandbox: {}",
                spec.uid,
                spec.gid,
                spec.groups,
                self.caps.explain()
            )));
        }
        // The primary group alone is what the process has anyway without setgroups.
        if !self.id_mode.can_setgroups() && spec.groups.iter().any(|g| *g != spec.gid) {
            return Err(Error::Unsupported(format!(
                "supplementary groups cannot be set in this sandbox (they need /etc/subuid and \
                 /etc/subgid ranges, or a user namespace that allows setgroups): {}",
                self.caps.explain()
            )));
        }
        Ok(())
    }

    /// Resolve `RUN --mount`s: load secrets, take cache locks, choose private cache
    /// instances. Returns the mounts, extra env and held locks / temp dirs.
    fn resolve_mounts(&self, spec: &RunSpec) -> Result<Resolved> {
        let mut r = Resolved::default();
        let (mounts, env, locks, temps) = (&mut r.mounts, &mut r.env, &mut r.locks, &mut r.temps);
        for m in &spec.mounts {
            match m {
                MountSpec::Bind {
                    src,
                    target,
                    readonly,
                } => mounts.push(ResolvedMount::Bind {
                    src: src.clone(),
                    target: target.clone(),
                    readonly: *readonly,
                }),
                MountSpec::Tmpfs { target, size } => mounts.push(ResolvedMount::Tmpfs {
                    target: target.clone(),
                    size: *size,
                }),
                MountSpec::SecretFile {
                    source,
                    target,
                    mode,
                    uid,
                    gid,
                } => {
                    let bytes = match source {
                        SecretSource::Bytes(b) => b.clone(),
                        SecretSource::Path(p) => std::fs::read(p).map_err(|e| Error::io(p, e))?,
                    };
                    mounts.push(ResolvedMount::Secret {
                        bytes,
                        target: target.clone(),
                        mode: *mode,
                        uid: *uid,
                        gid: *gid,
                    });
                }
                MountSpec::SecretEnv { name, value } => env.push(format!("{name}={value}")),
                MountSpec::Cache {
                    src,
                    target,
                    sharing,
                    readonly,
                    owner,
                } => {
                    std::fs::create_dir_all(src).map_err(|e| Error::io(src, e))?;
                    let f = std::fs::File::open(src).map_err(|e| Error::io(src, e))?;
                    let src = match sharing {
                        CacheSharing::Shared => src.clone(),
                        CacheSharing::Locked => {
                            fork::flock(f.as_raw_fd(), true, false)
                                .map_err(|e| Error::sys(format!("flock {}", src.display()), e))?;
                            locks.push(CacheLock { _file: f });
                            src.clone()
                        }
                        CacheSharing::Private => {
                            if fork::flock(f.as_raw_fd(), true, true).is_ok() {
                                locks.push(CacheLock { _file: f });
                                src.clone()
                            } else {
                                // In use by another run: a fresh, throw-away instance.
                                let t = self.unique("cache");
                                std::fs::create_dir_all(&t).map_err(|e| Error::io(&t, e))?;
                                temps.push(t.clone());
                                t
                            }
                        }
                    };
                    mounts.push(ResolvedMount::Cache {
                        src,
                        target: target.clone(),
                        readonly: *readonly,
                        owner: *owner,
                    });
                }
                MountSpec::Layers { lowers, target } => {
                    if lowers.is_empty() {
                        return Err(Error::InvalidSpec(format!(
                            "layers mount at {target}: no layer"
                        )));
                    }
                    mounts.push(ResolvedMount::Layers {
                        lowers: lowers.iter().rev().cloned().collect(),
                        target: target.clone(),
                    });
                }
                MountSpec::Ssh { sock, target } => {
                    mounts.push(ResolvedMount::Bind {
                        src: sock.clone(),
                        target: target.clone(),
                        readonly: false,
                    });
                    if !spec.env.iter().any(|e| e.starts_with("SSH_AUTH_SOCK=")) {
                        env.push(format!("SSH_AUTH_SOCK={target}"));
                    }
                }
            }
        }
        Ok(r)
    }

    /// Run one command. Its output is passed to `out` line by line (a final partial
    /// line at the end); returns how it exited. An `Err` means the sandbox itself
    /// failed (or the executable could not be started), not that the command failed.
    pub fn run(
        &self,
        spec: &RunSpec,
        out: &mut dyn FnMut(OutputStream, &[u8]),
    ) -> Result<ExitStatus> {
        if spec.argv.is_empty() {
            return Err(Error::InvalidSpec("empty command".into()));
        }
        self.check_ids(spec)?;
        let Resolved {
            mounts,
            env: extra_env,
            locks,
            temps,
        } = self.resolve_mounts(spec)?;
        let mut env = spec.env.clone();
        env.extend(extra_env);
        let resolv_conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let req = Request {
            userns: true,
            id_mode: self.id_mode,
            op: Op::Run(Box::new(RunRequest {
                spec: spec.clone(),
                mounts,
                env,
                overlay: self.overlay,
                resolv_conf,
            })),
        };
        let result = self.run_helper(&req, out);
        drop(locks);
        for t in temps {
            if let Err(e) = self.remove_tree(&t) {
                tracing::warn!(path = %t.display(), error = %e, "could not remove private cache");
            }
        }
        result
    }

    fn run_helper(
        &self,
        req: &Request,
        out: &mut dyn FnMut(OutputStream, &[u8]),
    ) -> Result<ExitStatus> {
        let mut h = self.spawn(req, true)?;
        let stdout: OwnedFd = h.child.stdout.take().expect("piped").into();
        let stderr: OwnedFd = h.child.stderr.take().expect("piped").into();
        let mut so = LineSplitter {
            buf: Vec::new(),
            stream: OutputStream::Stdout,
        };
        let mut se = LineSplitter {
            buf: Vec::new(),
            stream: OutputStream::Stderr,
        };
        let mut open = [true, true, true];
        let mut buf = vec![0u8; 64 * 1024];
        while open.iter().any(|o| *o) {
            let fds: Vec<i32> = [&stdout, &stderr, &h.status]
                .iter()
                .zip(open)
                .map(|(fd, o)| if o { fd.as_raw_fd() } else { -1 })
                .collect();
            let ready = fork::poll_read(&fds, -1).map_err(|e| Error::sys("poll", e))?;
            for i in 0..3 {
                if !open[i] || !ready[i] {
                    continue;
                }
                let fd = [&stdout, &stderr, &h.status][i];
                let n = fork::read_fd(fd, &mut buf).map_err(|e| Error::sys("read output", e))?;
                if n == 0 {
                    open[i] = false;
                    continue;
                }
                match i {
                    0 => so.push(&buf[..n], out),
                    1 => se.push(&buf[..n], out),
                    _ => {
                        h.status_buf.extend_from_slice(&buf[..n]);
                        h.take_lines();
                    }
                }
            }
        }
        so.finish(out);
        se.finish(out);
        let st = h.child.wait().map_err(|e| Error::sys("wait helper", e))?;
        let mut exit = None;
        let mut done = false;
        for m in h.msgs.drain(..) {
            match m {
                Msg::Error(e) => return Err(Error::Helper(e)),
                Msg::Exit(s) => exit = Some(s),
                Msg::Done(_) => done = true,
                Msg::Ready => {}
            }
        }
        match (exit, done) {
            (Some(s), true) => Ok(s),
            _ => Err(Error::Helper(format!(
                "sandbox ended unexpectedly (helper {st})"
            ))),
        }
    }

    /// Unpack a layer blob (the compressed blob file) into `dest` for use as a lower
    /// directory: whiteouts become overlay whiteouts, and file owners are the
    /// container's ids (inside the user namespace when unprivileged). With the
    /// single-id mapping every file belongs to root, the only id there is.
    ///
    /// `check` names the layer in errors, and with a diff ID the unpack fails when
    /// the content does not match it (`dest` must then be discarded).
    pub fn unpack_layer(
        &self,
        blob: &Path,
        media_type: &str,
        dest: &Path,
        check: &crate::UnpackCheck,
    ) -> Result<()> {
        self.helper_op(Op::Unpack {
            blob: abs(blob)?,
            media_type: media_type.to_string(),
            dest: abs(dest)?,
            same_owner: !matches!(self.id_mode, IdMode::Single { .. }),
            check: check.clone(),
        })
        .map(drop)
    }

    /// Write an upper directory as a layer blob in `blobs_dir` (owners preserved as
    /// the container sees them, overlay whiteouts and opaque dirs translated; the other
    /// `opts` apply as given).
    pub fn diff_layer(
        &self,
        upper: &Path,
        blobs_dir: &Path,
        opts: &WriteOptions,
    ) -> Result<LayerDescriptor> {
        if self.id_mode.is_root() {
            // Ids are identical inside and out: no namespace needed.
            return layers::diff(upper, blobs_dir, opts);
        }
        let v = self.helper_op(Op::Diff {
            upper: abs(upper)?,
            blobs_dir: abs(blobs_dir)?,
            opts: layers::to_wire(opts)?,
        })?;
        let w: layers::WireLayer =
            serde_json::from_value(v).map_err(|e| Error::Helper(e.to_string()))?;
        Ok(w.into())
    }

    /// Remove a tree made by the sandbox (unpacked layers, run dirs); files owned by
    /// subordinate ids need the user namespace to be removed when unprivileged.
    pub fn remove_tree(&self, dir: &Path) -> Result<()> {
        if self.id_mode.is_root() {
            return layers::remove_tree(dir);
        }
        self.helper_op(Op::Remove { dir: abs(dir)? }).map(drop)
    }
}

fn abs(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).map_err(|e| Error::io(p, e))
}
