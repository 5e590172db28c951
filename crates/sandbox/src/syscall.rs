//! The kernel calls the rootfs set-up makes, behind a trait.
//!
//! [`Syscall`] is the narrow seam between the mount-sequence logic in
//! [`rootfs`](crate::rootfs) and the kernel, in the manner of youki's `syscall` module:
//! [`LinuxSyscall`] performs the calls, and a recording fake (in tests) lets the order
//! and arguments of every mount be checked without root or namespaces.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Mount flags used by the sandbox (a subset of `MS_*`).
pub mod flags {
    /// `MS_RDONLY`.
    pub const RDONLY: u64 = libc::MS_RDONLY;
    /// `MS_NOSUID`.
    pub const NOSUID: u64 = libc::MS_NOSUID;
    /// `MS_NODEV`.
    pub const NODEV: u64 = libc::MS_NODEV;
    /// `MS_NOEXEC`.
    pub const NOEXEC: u64 = libc::MS_NOEXEC;
    /// `MS_REMOUNT`.
    pub const REMOUNT: u64 = libc::MS_REMOUNT;
    /// `MS_BIND`.
    pub const BIND: u64 = libc::MS_BIND;
    /// `MS_REC`.
    pub const REC: u64 = libc::MS_REC;
    /// `MS_PRIVATE`.
    pub const PRIVATE: u64 = libc::MS_PRIVATE;
    /// `MS_NOATIME`.
    pub const NOATIME: u64 = libc::MS_NOATIME;
    /// `MS_NODIRATIME`.
    pub const NODIRATIME: u64 = libc::MS_NODIRATIME;
    /// `MS_RELATIME`.
    pub const RELATIME: u64 = libc::MS_RELATIME;
}

/// The kernel operations used to assemble a container root.
pub trait Syscall {
    /// `mount(2)`.
    fn mount(
        &self,
        source: Option<&str>,
        target: &Path,
        fstype: Option<&str>,
        flags: u64,
        data: Option<&str>,
    ) -> io::Result<()>;
    /// `umount2(2)` with `MNT_DETACH`.
    fn umount_detach(&self, target: &Path) -> io::Result<()>;
    /// `pivot_root(2)`.
    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()>;
    /// `chdir(2)`.
    fn chdir(&self, path: &Path) -> io::Result<()>;
    /// `sethostname(2)`.
    fn sethostname(&self, name: &str) -> io::Result<()>;
    /// The per-mount flags (`MS_RDONLY|MS_NOSUID|MS_NODEV|MS_NOEXEC` and the atime
    /// flags) of the mount holding `path`.
    fn mount_flags(&self, path: &Path) -> io::Result<u64>;
    /// `mkdir(2)` of one directory with `mode` (no error if it exists as a directory).
    fn mkdir(&self, path: &Path, mode: u32) -> io::Result<()>;
    /// Create an empty regular file (a mount point for a file bind mount).
    fn create_file(&self, path: &Path) -> io::Result<()>;
    /// Create a symbolic link.
    fn symlink(&self, target: &str, link: &Path) -> io::Result<()>;
    /// Write a file with `mode`, owned by `uid:gid`.
    fn write_file(&self, path: &Path, data: &[u8], mode: u32, uid: u32, gid: u32)
        -> io::Result<()>;
    /// Bring the loopback interface up (in a new network namespace).
    fn loopback_up(&self) -> io::Result<()>;
    /// If the directory `path` is empty, give it the owner `uid:gid` and permission bits
    /// `mode` (a new cache mount's root); leave a directory with contents alone.
    fn init_dir(&self, path: &Path, uid: u32, gid: u32, mode: u32) -> io::Result<()>;
}

fn cstr(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

fn cstr_s(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The real kernel.
#[derive(Debug, Default, Clone, Copy)]
pub struct LinuxSyscall;

impl Syscall for LinuxSyscall {
    fn mount(
        &self,
        source: Option<&str>,
        target: &Path,
        fstype: Option<&str>,
        flags: u64,
        data: Option<&str>,
    ) -> io::Result<()> {
        let src = source.map(cstr_s).transpose()?;
        let tgt = cstr(target)?;
        let fst = fstype.map(cstr_s).transpose()?;
        let dat = data.map(cstr_s).transpose()?;
        // SAFETY: every pointer is either null or a valid NUL-terminated string that
        // outlives the call.
        let rc = unsafe {
            libc::mount(
                src.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
                tgt.as_ptr(),
                fst.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
                flags as libc::c_ulong,
                dat.as_ref()
                    .map_or(std::ptr::null(), |s| s.as_ptr() as *const libc::c_void),
            )
        };
        check(rc)
    }

    fn umount_detach(&self, target: &Path) -> io::Result<()> {
        let tgt = cstr(target)?;
        // SAFETY: valid NUL-terminated path.
        check(unsafe { libc::umount2(tgt.as_ptr(), libc::MNT_DETACH) })
    }

    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()> {
        let n = cstr(new_root)?;
        let o = cstr(put_old)?;
        // SAFETY: raw syscall with two valid NUL-terminated paths.
        let rc = unsafe { libc::syscall(libc::SYS_pivot_root, n.as_ptr(), o.as_ptr()) };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    fn chdir(&self, path: &Path) -> io::Result<()> {
        std::env::set_current_dir(path)
    }

    fn sethostname(&self, name: &str) -> io::Result<()> {
        // SAFETY: pointer and length describe the bytes of `name`.
        check(unsafe { libc::sethostname(name.as_ptr() as *const libc::c_char, name.len()) })
    }

    fn mount_flags(&self, path: &Path) -> io::Result<u64> {
        let p = cstr(path)?;
        let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
        // SAFETY: `st` is a writable statvfs buffer, `p` a valid path.
        check(unsafe { libc::statvfs(p.as_ptr(), st.as_mut_ptr()) })?;
        // SAFETY: statvfs succeeded and filled the buffer.
        let st = unsafe { st.assume_init() };
        let f = st.f_flag;
        let mut out = 0;
        if f & libc::ST_RDONLY != 0 {
            out |= flags::RDONLY;
        }
        if f & libc::ST_NOSUID != 0 {
            out |= flags::NOSUID;
        }
        if f & libc::ST_NODEV != 0 {
            out |= flags::NODEV;
        }
        if f & libc::ST_NOEXEC != 0 {
            out |= flags::NOEXEC;
        }
        if f & libc::ST_NOATIME != 0 {
            out |= flags::NOATIME;
        }
        if f & libc::ST_NODIRATIME != 0 {
            out |= flags::NODIRATIME;
        }
        if f & libc::ST_RELATIME != 0 {
            out |= flags::RELATIME;
        }
        Ok(out)
    }

    fn mkdir(&self, path: &Path, mode: u32) -> io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        match std::fs::DirBuilder::new().mode(mode).create(path) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
            r => r,
        }
    }

    fn create_file(&self, path: &Path) -> io::Result<()> {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map(drop)
    }

    fn symlink(&self, target: &str, link: &Path) -> io::Result<()> {
        std::os::unix::fs::symlink(target, link)
    }

    fn write_file(
        &self,
        path: &Path,
        data: &[u8],
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        f.write_all(data)?;
        std::os::unix::fs::fchown(&f, Some(uid), Some(gid))?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        Ok(())
    }

    fn init_dir(&self, path: &Path, uid: u32, gid: u32, mode: u32) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        if std::fs::read_dir(path)?.next().is_some() {
            return Ok(());
        }
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o777))
    }

    fn loopback_up(&self) -> io::Result<()> {
        // SAFETY: plain socket(2); the fd is owned and closed below.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `ifreq` is plain data; zeroed is a valid value.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (i, b) in b"lo\0".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the `ifreq` we own; the
        // union member used is `ifru_flags`, which these requests use.
        let res = unsafe {
            if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) < 0 {
                Err(io::Error::last_os_error())
            } else {
                req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
                if libc::ioctl(fd, libc::SIOCSIFFLAGS, &mut req) < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(())
                }
            }
        };
        // SAFETY: `fd` is ours and not used after this.
        unsafe { libc::close(fd) };
        res
    }
}

/// A fake that records every call and succeeds, for unit tests of the mount sequence.
#[cfg(test)]
pub mod fake {
    use super::*;
    use std::cell::RefCell;

    /// One recorded call, rendered as a string (`mount tmpfs /r/dev tmpfs 0x6 mode=755`).
    #[derive(Debug, Default)]
    pub struct RecordingSyscall {
        /// The calls, in order.
        pub calls: RefCell<Vec<String>>,
    }

    impl RecordingSyscall {
        fn rec(&self, s: String) {
            self.calls.borrow_mut().push(s);
        }
        /// The recorded calls.
        pub fn calls(&self) -> Vec<String> {
            self.calls.borrow().clone()
        }
    }

    impl Syscall for RecordingSyscall {
        fn mount(
            &self,
            source: Option<&str>,
            target: &Path,
            fstype: Option<&str>,
            flags: u64,
            data: Option<&str>,
        ) -> io::Result<()> {
            self.rec(format!(
                "mount {} {} {} {:#x} {}",
                source.unwrap_or("-"),
                target.display(),
                fstype.unwrap_or("-"),
                flags,
                data.unwrap_or("-")
            ));
            Ok(())
        }
        fn umount_detach(&self, target: &Path) -> io::Result<()> {
            self.rec(format!("umount {}", target.display()));
            Ok(())
        }
        fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()> {
            self.rec(format!(
                "pivot_root {} {}",
                new_root.display(),
                put_old.display()
            ));
            Ok(())
        }
        fn chdir(&self, path: &Path) -> io::Result<()> {
            self.rec(format!("chdir {}", path.display()));
            Ok(())
        }
        fn sethostname(&self, name: &str) -> io::Result<()> {
            self.rec(format!("sethostname {name}"));
            Ok(())
        }
        fn mount_flags(&self, _path: &Path) -> io::Result<u64> {
            Ok(flags::NOSUID | flags::NODEV)
        }
        fn mkdir(&self, path: &Path, mode: u32) -> io::Result<()> {
            self.rec(format!("mkdir {} {:o}", path.display(), mode));
            Ok(())
        }
        fn create_file(&self, path: &Path) -> io::Result<()> {
            self.rec(format!("touch {}", path.display()));
            Ok(())
        }
        fn symlink(&self, target: &str, link: &Path) -> io::Result<()> {
            self.rec(format!("symlink {target} {}", link.display()));
            Ok(())
        }
        fn write_file(
            &self,
            path: &Path,
            data: &[u8],
            mode: u32,
            uid: u32,
            gid: u32,
        ) -> io::Result<()> {
            self.rec(format!(
                "write {} {}B {:o} {uid}:{gid}",
                path.display(),
                data.len(),
                mode
            ));
            Ok(())
        }
        fn loopback_up(&self) -> io::Result<()> {
            self.rec("loopback_up".to_string());
            Ok(())
        }
        fn init_dir(&self, path: &Path, uid: u32, gid: u32, mode: u32) -> io::Result<()> {
            self.rec(format!("init_dir {} {uid}:{gid} {mode:o}", path.display()));
            Ok(())
        }
    }
}
