//! The helper process: the single-threaded side of the protocol in
//! [`protocol`](crate::protocol). Everything here runs in a freshly exec'd process.

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::caps::IdMode;
use crate::fork::{self, Forked};
use crate::protocol::{Msg, Op, Request, RunRequest, PARENT_ENV, STATUS_FD};
use crate::rootfs::{self, RootSource, RootfsPlan};
use crate::spec::Network;
use crate::syscall::LinuxSyscall;
use crate::{fallback, layers, Error, Result};

/// Send a message on the status descriptor (a single write per message).
pub fn send(msg: &Msg) {
    let mut line = serde_json::to_vec(msg)
        .unwrap_or_else(|_| br#"{"Error":"unserialisable helper message"}"#.to_vec());
    line.push(b'\n');
    let _ = fork::write_all_fd(STATUS_FD, &line);
}

/// Entry point of the helper: never returns.
pub fn main() -> ! {
    let code = match helper() {
        Ok(()) => 0,
        Err(e) => {
            send(&Msg::Error(hoist_image::chain_text(&e)));
            1
        }
    };
    fork::exit_now(code)
}

fn read_exact(fd: &OwnedFd, buf: &mut [u8]) -> Result<()> {
    let mut off = 0;
    while off < buf.len() {
        let n = fork::read_fd(fd, &mut buf[off..]).map_err(|e| Error::sys("read control", e))?;
        if n == 0 {
            return Err(Error::Helper("control pipe closed early".into()));
        }
        off += n;
    }
    Ok(())
}

fn helper() -> Result<()> {
    fork::close_from(STATUS_FD + 1);
    fork::set_cloexec(STATUS_FD, true).map_err(|e| Error::sys("status fd", e))?;
    if let Some(ppid) = std::env::var(PARENT_ENV)
        .ok()
        .and_then(|p| p.parse::<i32>().ok())
    {
        fork::die_with_parent(ppid);
    }
    // Move the control pipe off stdin, so the command gets /dev/null there.
    let control = fork::dup_cloexec(0, 10).map_err(|e| Error::sys("dup control", e))?;
    let null = std::fs::File::open("/dev/null").map_err(|e| Error::io("/dev/null", e))?;
    fork::dup2(null.as_raw_fd(), 0).map_err(|e| Error::sys("dup2 /dev/null", e))?;
    drop(null);

    let mut len = [0u8; 4];
    read_exact(&control, &mut len)?;
    let mut body = vec![0u8; u32::from_le_bytes(len) as usize];
    read_exact(&control, &mut body)?;
    let req: Request =
        serde_json::from_slice(&body).map_err(|e| Error::Helper(format!("bad request: {e}")))?;

    if req.userns {
        fork::unshare(libc::CLONE_NEWUSER).map_err(|e| Error::sys("unshare(CLONE_NEWUSER)", e))?;
        send(&Msg::Ready);
        let mut go = [0u8; 1];
        read_exact(&control, &mut go)?;
        if go[0] != b'G' {
            return Err(Error::Helper(
                "parent could not map the user namespace".into(),
            ));
        }
        // Become root of the namespace (the mapped user is 0 already; this also drops
        // the host's supplementary groups where allowed).
        let groups: &[u32] = &[];
        fork::set_ids(0, 0, req.id_mode.can_setgroups().then_some(groups))
            .map_err(|e| Error::sys("setresuid(0)", e))?;
    }
    let result = match req.op {
        Op::Run(run) => run_op(&run, &req.id_mode)?,
        Op::Unpack {
            blob,
            media_type,
            dest,
            same_owner,
            check,
        } => {
            layers::unpack(&blob, &media_type, &dest, same_owner, &check)
                .map_err(|e| unmapped_owner_hint(e, &req.id_mode))?;
            serde_json::Value::Null
        }
        Op::Diff {
            upper,
            blobs_dir,
            opts,
        } => {
            let d = layers::diff(&upper, &blobs_dir, &layers::from_wire(&opts))?;
            serde_json::to_value(layers::WireLayer::from(&d))
                .map_err(|e| Error::Helper(e.to_string()))?
        }
        Op::Remove { dir } => {
            layers::remove_tree(&dir)?;
            serde_json::Value::Null
        }
    };
    send(&Msg::Done(result));
    Ok(())
}

/// A layer entry owned by an id that does not exist in the namespace fails to unpack
/// with `chown: Invalid argument`: say which ids exist and how to get more.
fn unmapped_owner_hint(e: Error, id_mode: &IdMode) -> Error {
    let msg = hoist_image::chain_text(&e);
    if !(msg.contains(": chown: ") && msg.contains("(os error 22)")) {
        return e;
    }
    let show = |max: Option<u32>| max.map_or("all".to_string(), |m| format!("0-{m}"));
    let (uids, gids) = match id_mode {
        IdMode::Root { uids, gids, .. } => {
            (crate::caps::show_ids(uids), crate::caps::show_ids(gids))
        }
        _ => (show(id_mode.max_uid()), show(id_mode.max_gid())),
    };
    let how = match id_mode {
        IdMode::Root { .. } => {
            "hoist runs as root of a user namespace (a container) that has only these ids: \
             give the container a larger id range"
        }
        _ => "give the user larger ranges in /etc/subuid and /etc/subgid",
    };
    Error::Unsupported(format!(
        "{msg}: the layer has a file owned by an id that does not exist in this sandbox \
         (uids {uids}, gids {gids}); {how}"
    ))
}

fn mkdir(p: &Path) -> Result<()> {
    std::fs::create_dir_all(p).map_err(|e| Error::io(p, e))
}

fn run_op(req: &RunRequest, id_mode: &IdMode) -> Result<serde_json::Value> {
    let spec = &req.spec;
    let mut ns = libc::CLONE_NEWPID | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS;
    if spec.network == Network::None {
        ns |= libc::CLONE_NEWNET;
    }
    fork::unshare(ns).map_err(|e| Error::sys("unshare(PID|IPC|UTS|NET)", e))?;

    let w = &spec.work_dir;
    let root = w.join("root");
    let stage = w.join("stage");
    mkdir(&root)?;
    mkdir(&stage)?;
    let (source, snapshot) = if req.overlay {
        let ovl = w.join("ovl");
        mkdir(&ovl)?;
        let mut lowers: Vec<PathBuf> = spec.lower_dirs.iter().rev().cloned().collect();
        if lowers.is_empty() {
            let empty = w.join("empty");
            mkdir(&empty)?;
            lowers.push(empty);
        }
        (
            RootSource::Overlay {
                lowers,
                upper: spec.upper_dir.clone(),
                work: ovl,
            },
            None,
        )
    } else {
        let merged = w.join("merged");
        mkdir(&merged)?;
        fallback::merge_lowers(&spec.lower_dirs, &merged)?;
        let snap = fallback::Snapshot::take(&merged)?;
        // On kernels without fine-grained timestamps, make sure any change the command
        // makes lands on a later clock tick than the snapshot's ctimes.
        std::thread::sleep(std::time::Duration::from_millis(10));
        (RootSource::Bind(merged), Some(snap))
    };
    let plan = RootfsPlan {
        root,
        stage,
        source,
        hostname: spec.hostname.clone(),
        hosts: rootfs::hosts_file(&spec.hostname, &spec.extra_hosts),
        resolv_conf: req.resolv_conf.clone(),
        mounts: req.mounts.clone(),
        network: spec.network,
    };

    let (created_r, created_w) = fork::pipe().map_err(|e| Error::sys("pipe", e))?;
    match fork::fork().map_err(|e| Error::sys("fork", e))? {
        Forked::Child => {
            drop(created_r);
            let code = match init(req, id_mode, &plan, created_w) {
                Ok(never) => match never {},
                Err(e) => {
                    send(&Msg::Error(hoist_image::chain_text(&e)));
                    1
                }
            };
            fork::exit_now(code)
        }
        Forked::Parent(pid) => {
            drop(created_w);
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                match fork::read_fd(&created_r, &mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let (_, st) = fork::waitpid(pid).map_err(|e| Error::sys("waitpid", e))?;
            tracing::debug!(?st, "sandbox init exited");
            let created: Vec<PathBuf> = serde_json::from_slice(&buf).unwrap_or_default();
            let changes_root = match &plan.source {
                RootSource::Overlay { upper, .. } => upper.clone(),
                RootSource::Bind(merged) => merged.clone(),
            };
            remove_mountpoints(&changes_root, &created, snapshot.as_ref());
            if let (Some(snap), RootSource::Bind(merged)) = (&snapshot, &plan.source) {
                fallback::diff_into_upper(merged, snap, &spec.upper_dir)?;
            }
            let lowers: Vec<PathBuf> = spec.lower_dirs.iter().rev().cloned().collect();
            fallback::prune_unchanged_dirs(&spec.upper_dir, &lowers)?;
            Ok(serde_json::Value::Null)
        }
    }
}

/// Remove the mount points the set-up had to create, if they are still empty, so a
/// RUN with `--mount` leaves no trace of it in the layer.
fn remove_mountpoints(base: &Path, created: &[PathBuf], snap: Option<&fallback::Snapshot>) {
    for rel in created.iter().rev() {
        if snap.is_some_and(|s| s.contains(rel)) {
            continue;
        }
        let p = base.join(rel);
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            let _ = std::fs::remove_dir(&p);
        } else if meta.is_file() && meta.len() == 0 {
            let _ = std::fs::remove_file(&p);
        }
    }
}

/// Look `name` up in `PATH` from `env` (inside the new root).
fn resolve_exe(name: &str, env: &[String]) -> Result<PathBuf> {
    if name.contains('/') {
        return Ok(PathBuf::from(name));
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let p = Path::new(dir).join(name);
        if let Ok(m) = std::fs::metadata(&p) {
            use std::os::unix::fs::PermissionsExt;
            if m.is_file() && m.permissions().mode() & 0o111 != 0 {
                return Ok(p);
            }
        }
    }
    Err(Error::Helper(format!(
        "{name}: executable file not found in $PATH ({path})"
    )))
}

/// Create the missing components of the working directory, owned by the user the
/// command runs as (as BuildKit does for `WORKDIR` under `USER`).
fn create_workdir(cwd: &Path, uid: u32, gid: u32) -> Result<()> {
    let mut missing = Vec::new();
    let mut cur = Some(cwd);
    while let Some(p) = cur {
        if std::fs::symlink_metadata(p).is_ok() {
            break;
        }
        missing.push(p.to_path_buf());
        cur = p.parent();
    }
    for p in missing.iter().rev() {
        std::fs::create_dir(p).map_err(|e| Error::io(p, e))?;
        fork::lchown(p, uid, gid).map_err(|e| Error::io(p, e))?;
    }
    Ok(())
}

enum Never {}

/// pid 1 of the sandbox.
fn init(
    req: &RunRequest,
    id_mode: &IdMode,
    plan: &RootfsPlan,
    created_w: OwnedFd,
) -> Result<Never> {
    // Die with the helper (the pid-namespace parent is invisible from here).
    fork::die_with_parent(0);
    fork::unshare(libc::CLONE_NEWNS).map_err(|e| Error::sys("unshare(CLONE_NEWNS)", e))?;
    let created = rootfs::setup(&LinuxSyscall, plan)?;
    {
        let mut f = std::fs::File::from(created_w);
        let _ = f.write_all(&serde_json::to_vec(&created).unwrap_or_default());
    }
    let spec = &req.spec;
    if spec.argv.is_empty() {
        return Err(Error::InvalidSpec("empty argv".into()));
    }
    fork::set_umask(0o022);
    let cwd = if spec.cwd.is_empty() { "/" } else { &spec.cwd };
    create_workdir(Path::new(cwd), spec.uid, spec.gid)?;
    let exe = resolve_exe(&spec.argv[0], &req.env)?;
    let groups = id_mode.can_setgroups().then_some(spec.groups.as_slice());

    match fork::fork().map_err(|e| Error::sys("fork", e))? {
        Forked::Child => {
            let err = match fork::set_ids(spec.uid, spec.gid, groups) {
                Err(e) => format!(
                    "switch to user {}:{} (groups {:?}): {e}",
                    spec.uid, spec.gid, spec.groups
                ),
                Ok(()) => match std::env::set_current_dir(cwd) {
                    Err(e) => format!("chdir {cwd}: {e}"),
                    Ok(()) => {
                        let e = fork::execve(&exe, &spec.argv, &req.env);
                        format!("exec {}: {e}", exe.display())
                    }
                },
            };
            send(&Msg::Error(err));
            fork::exit_now(127)
        }
        Forked::Parent(cmd) => loop {
            match fork::waitpid(-1) {
                Ok((pid, st)) if pid == cmd => {
                    send(&Msg::Exit(st));
                    fork::exit_now(0)
                }
                Ok(_) => continue,
                Err(e) => return Err(Error::sys("waitpid", e)),
            }
        },
    }
}
