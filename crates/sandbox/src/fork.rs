//! Process creation and the other process-level kernel calls, in one place.
//!
//! `fork` is only sound here because its callers are either the helper process (a
//! freshly exec'd, single-threaded program) or the capability probe, whose child only
//! makes async-signal-safe system calls on buffers prepared before the fork.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::spec::ExitStatus;

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// The effective uid.
pub fn geteuid() -> u32 {
    // SAFETY: geteuid cannot fail and has no preconditions.
    unsafe { libc::geteuid() }
}

/// The effective gid.
pub fn getegid() -> u32 {
    // SAFETY: getegid cannot fail and has no preconditions.
    unsafe { libc::getegid() }
}

/// The result of [`fork`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    /// In the parent, with the child's pid.
    Parent(libc::pid_t),
    /// In the child.
    Child,
}

/// `fork(2)`. Only call it from a single-threaded process (the helper).
pub fn fork() -> io::Result<Forked> {
    // SAFETY: the helper is single-threaded (it is a freshly exec'd program that never
    // starts threads), so the child is a complete copy with no lock held by another thread.
    let pid = check(unsafe { libc::fork() })?;
    Ok(if pid == 0 {
        Forked::Child
    } else {
        Forked::Parent(pid)
    })
}

/// Decode a `waitpid` status word.
pub fn decode_status(status: libc::c_int) -> ExitStatus {
    if libc::WIFEXITED(status) {
        ExitStatus {
            code: Some(libc::WEXITSTATUS(status)),
            signal: None,
        }
    } else if libc::WIFSIGNALED(status) {
        ExitStatus {
            code: None,
            signal: Some(libc::WTERMSIG(status)),
        }
    } else {
        ExitStatus {
            code: None,
            signal: None,
        }
    }
}

/// `waitpid(pid, 0)`, retried on `EINTR`; `pid == -1` waits for any child.
pub fn waitpid(pid: libc::pid_t) -> io::Result<(libc::pid_t, ExitStatus)> {
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid out pointer.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        return Ok((rc, decode_status(status)));
    }
}

/// `unshare(2)`.
pub fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: unshare only changes this process's namespaces.
    check(unsafe { libc::unshare(flags) }).map(drop)
}

/// Ask the kernel to SIGKILL this process when its parent dies, and exit at once if
/// the parent is already gone.
pub fn die_with_parent(expected_parent: libc::pid_t) {
    // SAFETY: prctl(PR_SET_PDEATHSIG) with a signal number has no memory effects.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    // SAFETY: getppid has no preconditions.
    if unsafe { libc::getppid() } != expected_parent {
        exit_now(1);
    }
}

/// The parent pid.
pub fn getppid() -> libc::pid_t {
    // SAFETY: getppid has no preconditions.
    unsafe { libc::getppid() }
}

/// `_exit(2)`: leave without running destructors or atexit handlers (the state is a
/// copy shared with the parent after a fork).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and is always safe to call.
    unsafe { libc::_exit(code) }
}

/// `umask(2)`.
pub fn set_umask(mask: u32) {
    // SAFETY: umask cannot fail and touches no memory.
    unsafe { libc::umask(mask as libc::mode_t) };
}

/// `kill(2)`.
pub fn kill(pid: libc::pid_t, sig: libc::c_int) {
    // SAFETY: sending a signal has no memory effects.
    unsafe { libc::kill(pid, sig) };
}

/// A pipe whose both ends are close-on-exec.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 returned two new descriptors we now own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Set or clear `FD_CLOEXEC`.
pub fn set_cloexec(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFD/F_SETFD on a descriptor number; no memory is touched.
    unsafe {
        let f = check(libc::fcntl(fd, libc::F_GETFD))?;
        let nf = if on {
            f | libc::FD_CLOEXEC
        } else {
            f & !libc::FD_CLOEXEC
        };
        check(libc::fcntl(fd, libc::F_SETFD, nf)).map(drop)
    }
}

/// `dup2(2)`, and leave the new descriptor inheritable.
pub fn dup2(old: RawFd, new: RawFd) -> io::Result<()> {
    if old == new {
        return set_cloexec(new, false);
    }
    // SAFETY: dup2 on descriptor numbers; closes `new` first if it is open.
    check(unsafe { libc::dup2(old, new) }).map(drop)
}

/// Duplicate `fd` to a new close-on-exec descriptor at or above `min`.
pub fn dup_cloexec(fd: RawFd, min: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor we own.
    let n = check(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) })?;
    // SAFETY: `n` is a fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

/// Close every descriptor from `first` up (descriptors inherited by accident, such as
/// a build tool's jobserver pipe, must not reach the sandboxed command).
pub fn close_from(first: RawFd) {
    // SAFETY: close_range only closes descriptors; nothing in this single-threaded
    // helper owns a descriptor at or above `first` at this point.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            0,
        )
    };
    if rc == 0 {
        return;
    }
    // Kernels before 5.9: close what /proc lists.
    let fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
                .filter(|fd| *fd >= first)
                .collect()
        })
        .unwrap_or_default();
    for fd in fds {
        // SAFETY: as above; a descriptor of the directory listing may already be closed.
        unsafe { libc::close(fd) };
    }
}

/// Switch to `uid`/`gid` with the supplementary `groups` (`None`: leave them).
pub fn set_ids(uid: u32, gid: u32, groups: Option<&[u32]>) -> io::Result<()> {
    if let Some(groups) = groups {
        // SAFETY: pointer and length describe `groups`.
        check(unsafe { libc::setgroups(groups.len(), groups.as_ptr()) })?;
    }
    // SAFETY: set*id calls have no memory effects.
    check(unsafe { libc::setresgid(gid, gid, gid) })?;
    // SAFETY: as above.
    check(unsafe { libc::setresuid(uid, uid, uid) })?;
    Ok(())
}

/// `execve(2)`; returns only on failure.
pub fn execve(path: &Path, argv: &[String], env: &[String]) -> io::Error {
    let to_c =
        |s: &[u8]| CString::new(s).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e));
    let p = match to_c(path.as_os_str().as_bytes()) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let argv: Vec<CString> = match argv.iter().map(|a| to_c(a.as_bytes())).collect() {
        Ok(v) => v,
        Err(e) => return e,
    };
    let env: Vec<CString> = match env.iter().map(|a| to_c(a.as_bytes())).collect() {
        Ok(v) => v,
        Err(e) => return e,
    };
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut env_p: Vec<*const libc::c_char> = env.iter().map(|a| a.as_ptr()).collect();
    env_p.push(std::ptr::null());
    // SAFETY: all arrays are NULL-terminated arrays of valid C strings that outlive the call.
    unsafe { libc::execve(p.as_ptr(), argv_p.as_ptr(), env_p.as_ptr()) };
    io::Error::last_os_error()
}

/// What [`probe_userns_overlay`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// A user namespace could be created and mapped.
    pub userns: bool,
    /// overlayfs with `userxattr` mounted inside it.
    pub overlay: bool,
    /// Why not, when something failed.
    pub detail: String,
    /// The call that failed when `userns` is false (empty when unknown).
    pub failed_call: String,
    /// Its errno, when known.
    pub errno: Option<i32>,
}

/// Exit codes of the probe child: a failed `unshare` exits with `UNSHARE_EXIT + errno`,
/// a failed map write with `MAP_EXIT + errno` (errnos above 100 are reported as 100,
/// i.e. unknown).
const UNSHARE_EXIT: i32 = 10;
const MAP_EXIT: i32 = 120;
const ERRNO_MAX: i32 = 100;
/// The call named for a map write failure.
pub const MAP_CALL: &str = "writing the id maps of a new user namespace";

/// Fork a child that creates a user and mount namespace, maps the current ids to 0 and
/// mounts a small overlay with `userxattr` in a temporary directory.
pub fn probe_userns_overlay() -> Probe {
    probe_userns_overlay_in(&std::env::temp_dir())
}

/// [`probe_userns_overlay`] with the overlay's directories under `dir` (the file
/// system that will hold the upper dirs matters: not all support overlayfs).
pub fn probe_userns_overlay_in(dir: &Path) -> Probe {
    match probe_inner(dir) {
        Ok(p) => p,
        Err(e) => Probe {
            userns: false,
            overlay: false,
            detail: hoist_image::chain_text(&e),
            failed_call: format!("preparing the user namespace probe in {}", dir.display()),
            errno: e.raw_os_error(),
        },
    }
}

fn probe_inner(dir: &Path) -> io::Result<Probe> {
    let base = dir.join(format!(
        "hoist-probe-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    for d in ["lower", "upper", "work", "merged"] {
        std::fs::create_dir_all(base.join(d))?;
    }
    let c = |s: String| CString::new(s).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e));
    let data = c(format!(
        "lowerdir={},upperdir={},workdir={},userxattr,metacopy=off",
        base.join("lower").display(),
        base.join("upper").display(),
        base.join("work").display()
    ))?;
    let merged = c(base.join("merged").display().to_string())?;
    let uid_map = format!("0 {} 1", geteuid());
    let gid_map = format!("0 {} 1", getegid());
    let overlay = c("overlay".into())?;
    let setgroups_p = c("/proc/self/setgroups".into())?;
    let uid_map_p = c("/proc/self/uid_map".into())?;
    let gid_map_p = c("/proc/self/gid_map".into())?;

    // SAFETY: the child only calls async-signal-safe functions (unshare, open, write,
    // close, mount, _exit) on buffers allocated before the fork, so it is sound even if
    // the parent has other threads.
    let pid = check(unsafe { libc::fork() })?;
    if pid == 0 {
        // SAFETY: see above; every pointer refers to memory prepared before the fork.
        unsafe {
            if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) != 0 {
                libc::_exit(UNSHARE_EXIT + (*libc::__errno_location()).clamp(0, ERRNO_MAX));
            }
            for (p, d) in [
                (&setgroups_p, b"deny".as_slice()),
                (&uid_map_p, uid_map.as_bytes()),
                (&gid_map_p, gid_map.as_bytes()),
            ] {
                let fd = libc::open(p.as_ptr(), libc::O_WRONLY);
                if fd < 0 || libc::write(fd, d.as_ptr() as *const libc::c_void, d.len()) < 0 {
                    libc::_exit(MAP_EXIT + (*libc::__errno_location()).clamp(0, ERRNO_MAX));
                }
                libc::close(fd);
            }
            if libc::mount(
                overlay.as_ptr(),
                merged.as_ptr(),
                overlay.as_ptr(),
                0,
                data.as_ptr() as *const libc::c_void,
            ) != 0
            {
                libc::_exit(4);
            }
            libc::_exit(0);
        }
    }
    let (_, st) = waitpid(pid)?;
    // The overlay workdir holds a mode-0 "work" dir.
    let _ = std::fs::set_permissions(
        base.join("work/work"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    );
    let _ = std::fs::remove_dir_all(&base);
    let errno = |code: i32, base: i32| Some(code - base).filter(|e| (1..ERRNO_MAX).contains(e));
    let failed = |call: &str, errno: Option<i32>| Probe {
        userns: false,
        overlay: false,
        detail: match errno {
            Some(e) => format!("{call} failed: {}", io::Error::from_raw_os_error(e)),
            None => format!("{call} failed"),
        },
        failed_call: call.to_string(),
        errno,
    };
    Ok(match st.code {
        Some(0) => Probe {
            userns: true,
            overlay: true,
            detail: String::new(),
            failed_call: String::new(),
            errno: None,
        },
        Some(4) => Probe {
            userns: true,
            overlay: false,
            detail: "mount -t overlay -o userxattr failed".into(),
            failed_call: String::new(),
            errno: None,
        },
        Some(c) if c >= MAP_EXIT => failed(MAP_CALL, errno(c, MAP_EXIT)),
        Some(c) if c >= UNSHARE_EXIT => failed(crate::caps::UNSHARE_CALL, errno(c, UNSHARE_EXIT)),
        _ => failed(crate::caps::UNSHARE_CALL, None),
    })
}

/// Read from a raw descriptor (retrying on `EINTR`).
pub fn read_fd(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is writable for its length.
        let n = unsafe {
            libc::read(
                fd.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        return Ok(n as usize);
    }
}

/// Write all of `buf` to a raw descriptor (retrying on `EINTR`).
pub fn write_all_fd(fd: RawFd, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: `buf` is readable for its length.
        let n = unsafe { libc::write(fd, buf.as_ptr() as *const libc::c_void, buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

/// Wait until one of `fds` is readable (or hung up). Returns the readiness of each.
pub fn poll_read(fds: &[RawFd], timeout_ms: i32) -> io::Result<Vec<bool>> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    loop {
        // SAFETY: `p` is a valid array of pollfd of the given length.
        let rc = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, timeout_ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        return Ok(p.iter().map(|x| x.revents != 0).collect());
    }
}

/// `flock(2)` on an open file.
pub fn flock(fd: RawFd, exclusive: bool, nonblock: bool) -> io::Result<()> {
    let mut op = if exclusive {
        libc::LOCK_EX
    } else {
        libc::LOCK_SH
    };
    if nonblock {
        op |= libc::LOCK_NB;
    }
    loop {
        // SAFETY: flock on a descriptor number has no memory effects.
        let rc = unsafe { libc::flock(fd, op) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        return Ok(());
    }
}

/// Create a whiteout (a 0:0 character device): allowed without `CAP_MKNOD`.
pub fn mknod_whiteout(path: &Path) -> io::Result<()> {
    let p = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: valid NUL-terminated path.
    check(unsafe { libc::mknod(p.as_ptr(), libc::S_IFCHR, 0) }).map(drop)
}

/// `lchown(2)`.
pub fn lchown(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
}

/// Set atime and mtime of `path` without following a final symlink.
pub fn set_times_nofollow(path: &Path, atime: (i64, i64), mtime: (i64, i64)) -> io::Result<()> {
    let p = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let ts = [
        libc::timespec {
            tv_sec: atime.0,
            tv_nsec: atime.1,
        },
        libc::timespec {
            tv_sec: mtime.0,
            tv_nsec: mtime.1,
        },
    ];
    // SAFETY: valid path and a two-element timespec array.
    check(unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            p.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .map(drop)
}

/// List the extended attribute names of `path` (not following symlinks).
pub fn llistxattr(path: &Path) -> io::Result<Vec<Vec<u8>>> {
    let p = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: `buf` is writable for its length.
        let n = unsafe {
            libc::llistxattr(p.as_ptr(), buf.as_mut_ptr() as *mut libc::c_char, buf.len())
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ERANGE) {
                buf.resize(buf.len() * 4, 0);
                continue;
            }
            if e.raw_os_error() == Some(libc::ENOTSUP) {
                return Ok(Vec::new());
            }
            return Err(e);
        }
        buf.truncate(n as usize);
        return Ok(buf
            .split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| s.to_vec())
            .collect());
    }
}

/// Read one extended attribute of `path` (not following symlinks).
pub fn lgetxattr(path: &Path, name: &[u8]) -> io::Result<Vec<u8>> {
    let p = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let n = CString::new(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: `buf` is writable for its length.
        let r = unsafe {
            libc::lgetxattr(
                p.as_ptr(),
                n.as_ptr(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ERANGE) {
                buf.resize(buf.len() * 4, 0);
                continue;
            }
            return Err(e);
        }
        buf.truncate(r as usize);
        return Ok(buf);
    }
}

/// Set one extended attribute of `path` (not following symlinks).
pub fn lsetxattr(path: &Path, name: &[u8], value: &[u8]) -> io::Result<()> {
    let p = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let n = CString::new(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: valid C strings and a readable value buffer.
    check(unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr() as *const libc::c_void,
            value.len(),
            0,
        )
    })
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_decoding() {
        assert_eq!(
            decode_status(3 << 8),
            ExitStatus {
                code: Some(3),
                signal: None
            }
        );
        assert_eq!(
            decode_status(9),
            ExitStatus {
                code: None,
                signal: Some(9)
            }
        );
    }

    #[test]
    fn probe_runs() {
        let p = probe_userns_overlay();
        // On this project's hosts user namespaces and overlayfs work; elsewhere the
        // probe must at least explain itself.
        assert!(p.userns && p.overlay || !p.detail.is_empty());
    }
}
