//! The mount sequence that turns a set of layer directories into a container root.
//!
//! Runs in the sandbox's pid-1 process, in its own mount namespace, before the command
//! is executed. Every kernel call goes through [`Syscall`], so the order and arguments
//! are unit-tested with a recording fake. The layout, relative to the run's work dir:
//!
//! ```text
//! work_dir/
//!   root/    mount point of the container root (overlay, or a bind of merged/)
//!   ovl/     overlayfs workdir
//!   empty/   empty lower dir when the image has no layer (FROM scratch)
//!   stage/   a private tmpfs: resolv.conf, hosts, hostname and secret files
//!   merged/  (fallback only) a full copy of the lower layers
//! ```

use std::path::{Component, Path, PathBuf};

use crate::spec::{MountSpec, Network};
use crate::syscall::{flags, Syscall};
use crate::{Error, Result};

/// How the root file system is provided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootSource {
    /// overlayfs with `userxattr`: lower dirs TOP first, upper, overlay workdir.
    Overlay {
        /// Lower directories, top-most first (overlay's order).
        lowers: Vec<PathBuf>,
        /// The upper directory.
        upper: PathBuf,
        /// The overlay work directory.
        work: PathBuf,
    },
    /// A plain directory bind-mounted as root (the snapshot fallback).
    Bind(PathBuf),
}

/// A mount after the parent resolved it (secret bytes loaded, cache instance chosen).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ResolvedMount {
    /// Bind a host path.
    Bind {
        /// Host path.
        src: PathBuf,
        /// Path in the container.
        target: String,
        /// Read-only.
        readonly: bool,
    },
    /// A cache directory, bound like [`ResolvedMount::Bind`]; with an owner, its root
    /// gets that owner and mode first if it is still empty.
    Cache {
        /// Host path.
        src: PathBuf,
        /// Path in the container.
        target: String,
        /// Read-only.
        readonly: bool,
        /// Owner and mode of a new cache.
        owner: Option<crate::spec::CacheOwner>,
    },
    /// A read-only overlay of layer dirs.
    Layers {
        /// Lower dirs, TOP first (overlay's order).
        lowers: Vec<PathBuf>,
        /// Path in the container.
        target: String,
    },
    /// A tmpfs.
    Tmpfs {
        /// Path in the container.
        target: String,
        /// Size in bytes.
        size: Option<u64>,
    },
    /// A secret file from bytes.
    Secret {
        /// The bytes.
        bytes: Vec<u8>,
        /// Path in the container.
        target: String,
        /// Mode.
        mode: u32,
        /// Owner uid.
        uid: u32,
        /// Owner gid.
        gid: u32,
    },
}

/// Everything the rootfs set-up needs.
#[derive(Debug, Clone)]
pub struct RootfsPlan {
    /// Where the root is mounted (`work_dir/root`).
    pub root: PathBuf,
    /// Where the staging tmpfs is mounted (`work_dir/stage`).
    pub stage: PathBuf,
    /// The root file system.
    pub source: RootSource,
    /// Hostname.
    pub hostname: String,
    /// Content of `/etc/hosts`.
    pub hosts: String,
    /// Content of `/etc/resolv.conf`.
    pub resolv_conf: String,
    /// User mounts.
    pub mounts: Vec<ResolvedMount>,
    /// Network mode.
    pub network: Network,
}

/// The device nodes bind-mounted from the host into `/dev`.
pub const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// Build the `/etc/hosts` content.
pub fn hosts_file(hostname: &str, extra: &[(String, String)]) -> String {
    let mut s = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    s.push_str(&format!("127.0.1.1\t{hostname}\n"));
    for (name, addr) in extra {
        s.push_str(&format!("{addr}\t{name}\n"));
    }
    s
}

/// Resolve `target` (an absolute container path) to a host path under `root`, following
/// symlinks as the container would see them, so a symlink in the image can never make
/// the set-up write or mount outside the root.
pub fn secure_join(root: &Path, target: &str) -> Result<PathBuf> {
    let mut resolved: Vec<std::ffi::OsString> = Vec::new();
    let mut pending: Vec<std::ffi::OsString> = Path::new(target)
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut links = 0;
    while let Some(c) = pending.pop() {
        if c == ".." {
            resolved.pop();
            continue;
        }
        let mut host = root.to_path_buf();
        host.extend(&resolved);
        host.push(&c);
        match std::fs::read_link(&host) {
            Ok(dest) => {
                links += 1;
                if links > 40 {
                    return Err(Error::InvalidSpec(format!(
                        "{target}: too many levels of symbolic links"
                    )));
                }
                if dest.is_absolute() {
                    resolved.clear();
                }
                for comp in dest.components().rev() {
                    match comp {
                        Component::Normal(n) => pending.push(n.to_os_string()),
                        Component::ParentDir => pending.push("..".into()),
                        _ => {}
                    }
                }
            }
            Err(_) => resolved.push(c),
        }
    }
    let mut out = root.to_path_buf();
    out.extend(&resolved);
    Ok(out)
}

/// Make sure `target` exists in the root as a directory (or an empty file), creating
/// missing components. Returns the created paths, relative to the root, parents first.
pub fn ensure_mountpoint(
    sys: &dyn Syscall,
    root: &Path,
    target: &str,
    is_dir: bool,
) -> Result<Vec<PathBuf>> {
    let host = secure_join(root, target)?;
    let rel = host
        .strip_prefix(root)
        .map_err(|_| Error::InvalidSpec(format!("{target} escapes the root")))?
        .to_path_buf();
    let mut created = Vec::new();
    let mut cur = root.to_path_buf();
    let comps: Vec<_> = rel.components().collect();
    for (i, c) in comps.iter().enumerate() {
        cur.push(c);
        if std::fs::symlink_metadata(&cur).is_ok() {
            continue;
        }
        let last = i + 1 == comps.len();
        if last && !is_dir {
            sys.create_file(&cur)
                .map_err(|e| Error::io(cur.clone(), e))?;
        } else {
            sys.mkdir(&cur, 0o755)
                .map_err(|e| Error::io(cur.clone(), e))?;
        }
        created.push(cur.strip_prefix(root).unwrap_or(&cur).to_path_buf());
    }
    Ok(created)
}

fn m(
    sys: &dyn Syscall,
    source: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    fl: u64,
    data: Option<&str>,
) -> Result<()> {
    sys.mount(source, target, fstype, fl, data).map_err(|e| {
        Error::sys(
            format!(
                "mount {} on {} ({})",
                source.unwrap_or("none"),
                target.display(),
                fstype.unwrap_or("bind")
            ),
            e,
        )
    })
}

fn path_str(p: &Path) -> Result<&str> {
    let s = p
        .to_str()
        .ok_or_else(|| Error::InvalidSpec(format!("{}: path is not UTF-8", p.display())))?;
    if s.contains([',', ':']) {
        return Err(Error::InvalidSpec(format!(
            "{s}: overlay paths may not contain ',' or ':'"
        )));
    }
    Ok(s)
}

/// The overlay mount options.
pub fn overlay_options(lowers: &[PathBuf], upper: &Path, work: &Path) -> Result<String> {
    let lowers = lowers
        .iter()
        .map(|p| path_str(p))
        .collect::<Result<Vec<_>>>()?;
    let data = format!(
        "lowerdir={},upperdir={},workdir={},userxattr,metacopy=off",
        lowers.join(":"),
        path_str(upper)?,
        path_str(work)?
    );
    // `metacopy=off`: a metadata-only change must copy the whole file up, or the upper
    // dir would hold a data-less file. (`userxattr` already rules out redirects.)
    // The kernel copies at most one page of mount data.
    if data.len() >= 4000 {
        return Err(Error::Unsupported(format!(
            "overlay mount options are {} bytes, over the kernel's page limit; \
             use a shorter state directory or fewer layers",
            data.len()
        )));
    }
    Ok(data)
}

/// Make `l/<prefix><i>` symlinks to `lowers` in the run's work dir (the parent of
/// `root`) and change into it, so overlay options can name the lowers by short relative
/// paths. Returns those paths.
fn short_links(
    sys: &dyn Syscall,
    root: &Path,
    prefix: &str,
    lowers: &[PathBuf],
) -> Result<Vec<String>> {
    let base = root.parent().unwrap_or(Path::new("/"));
    let links = base.join("l");
    sys.mkdir(&links, 0o755)
        .map_err(|e| Error::io(links.clone(), e))?;
    let mut short = Vec::with_capacity(lowers.len());
    for (i, l) in lowers.iter().enumerate() {
        let name = format!("{prefix}{i}");
        let link = links.join(&name);
        let target = l
            .to_str()
            .ok_or_else(|| Error::InvalidSpec(format!("{}: path is not UTF-8", l.display())))?;
        sys.symlink(target, &link)
            .map_err(|e| Error::io(link.clone(), e))?;
        short.push(format!("l/{name}"));
    }
    sys.chdir(base)
        .map_err(|e| Error::sys(format!("chdir {}", base.display()), e))?;
    Ok(short)
}

fn bind_readonly(sys: &dyn Syscall, target: &Path) -> Result<()> {
    // In a user namespace the locked flags (nosuid, nodev, ...) of the source mount
    // must be kept on remount, or the kernel refuses it.
    let cur = sys
        .mount_flags(target)
        .map_err(|e| Error::sys(format!("statvfs {}", target.display()), e))?;
    m(
        sys,
        None,
        target,
        None,
        flags::REMOUNT | flags::BIND | flags::RDONLY | cur,
        None,
    )
}

/// A minimal `/dev` (a tmpfs with the host's harmless device nodes, devpts, shm and the
/// usual links), as runc's default spec has it; `replaced` says which of its mounts a
/// user mount takes the place of.
fn minimal_dev(sys: &dyn Syscall, root: &Path, replaced: &dyn Fn(&str) -> bool) -> Result<()> {
    let dev = secure_join(root, "/dev")?;
    m(
        sys,
        Some("tmpfs"),
        &dev,
        Some("tmpfs"),
        flags::NOSUID | flags::NOEXEC,
        Some("mode=755,size=65536k"),
    )?;
    for d in DEVICES {
        let host = format!("/dev/{d}");
        if std::fs::symlink_metadata(&host).is_err() {
            tracing::warn!("{host} does not exist on the host; not in the sandbox either");
            continue;
        }
        let p = dev.join(d);
        sys.create_file(&p).map_err(|e| Error::io(p.clone(), e))?;
        m(sys, Some(&host), &p, None, flags::BIND, None)?;
    }
    let pts = dev.join("pts");
    sys.mkdir(&pts, 0o755)
        .map_err(|e| Error::io(pts.clone(), e))?;
    if !replaced("/dev/pts") {
        m(
            sys,
            Some("devpts"),
            &pts,
            Some("devpts"),
            flags::NOSUID | flags::NOEXEC,
            Some("newinstance,ptmxmode=0666,mode=0620"),
        )?;
    }
    let shm = dev.join("shm");
    sys.mkdir(&shm, 0o1777)
        .map_err(|e| Error::io(shm.clone(), e))?;
    if !replaced("/dev/shm") {
        m(
            sys,
            Some("shm"),
            &shm,
            Some("tmpfs"),
            flags::NOSUID | flags::NODEV | flags::NOEXEC,
            Some("mode=1777,size=65536k"),
        )?;
    }
    for (target, link) in [
        ("pts/ptmx", "ptmx"),
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ] {
        let l = dev.join(link);
        sys.symlink(target, &l)
            .map_err(|e| Error::io(l.clone(), e))?;
    }

    Ok(())
}

/// A container path as BuildKit compares mount destinations: absolute and cleaned
/// (`/dev/shm/` and `/dev//shm` are `/dev/shm`).
pub fn clean_target(target: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

impl ResolvedMount {
    /// The path in the container.
    pub fn target(&self) -> &str {
        match self {
            ResolvedMount::Bind { target, .. }
            | ResolvedMount::Cache { target, .. }
            | ResolvedMount::Layers { target, .. }
            | ResolvedMount::Tmpfs { target, .. }
            | ResolvedMount::Secret { target, .. } => target,
        }
    }
}

/// Assemble the root and pivot into it. Returns the mount points that had to be
/// created in the root file system (relative paths), so they can be removed from the
/// layer afterwards.
pub fn setup(sys: &dyn Syscall, plan: &RootfsPlan) -> Result<Vec<PathBuf>> {
    let root = &plan.root;
    let mut created = Vec::new();
    m(
        sys,
        None,
        Path::new("/"),
        None,
        flags::REC | flags::PRIVATE,
        None,
    )?;
    match &plan.source {
        RootSource::Overlay {
            lowers,
            upper,
            work,
        } => {
            // Short relative names for the lower dirs (`l/0`, `l/1`, ... symlinks in the
            // run's work dir, resolved from there), so hundreds of layers fit in the
            // one page of mount options, and any lower path is allowed.
            let short: Vec<PathBuf> = short_links(sys, root, "", lowers)?
                .into_iter()
                .map(PathBuf::from)
                .collect();
            let data = overlay_options(&short, upper, work)?;
            m(sys, Some("overlay"), root, Some("overlay"), 0, Some(&data))?;
        }
        RootSource::Bind(dir) => {
            m(
                sys,
                Some(path_str(dir)?),
                root,
                None,
                flags::BIND | flags::REC,
                None,
            )?;
        }
    }
    m(
        sys,
        Some("tmpfs"),
        &plan.stage,
        Some("tmpfs"),
        flags::NOSUID | flags::NODEV | flags::NOEXEC,
        Some("mode=755"),
    )?;

    // The default mounts, as runc's spec has them. A user mount at the same place
    // replaces one (BuildKit's dedupMounts). runc creates the mount points of /proc,
    // /dev and /sys in the root file system and leaves them there, so they stay in
    // the layer when the image had none.
    let replaced = |dest: &str| plan.mounts.iter().any(|m| clean_target(m.target()) == dest);
    for dir in ["/proc", "/dev", "/sys"] {
        ensure_mountpoint(sys, root, dir, true)?;
    }
    if !replaced("/proc") {
        m(
            sys,
            Some("proc"),
            &secure_join(root, "/proc")?,
            Some("proc"),
            flags::NOSUID | flags::NODEV | flags::NOEXEC,
            None,
        )?;
    }
    if !replaced("/dev") {
        minimal_dev(sys, root, &replaced)?;
    }

    // /etc/{resolv.conf,hosts,hostname} from the staging tmpfs.
    let etc_files = [
        ("resolv.conf", plan.resolv_conf.as_bytes().to_vec()),
        ("hosts", plan.hosts.as_bytes().to_vec()),
        ("hostname", format!("{}\n", plan.hostname).into_bytes()),
    ];
    for (name, content) in &etc_files {
        let target = format!("/etc/{name}");
        if replaced(&target) {
            continue;
        }
        let staged = plan.stage.join(name);
        sys.write_file(&staged, content, 0o644, 0, 0)
            .map_err(|e| Error::io(staged.clone(), e))?;
        created.extend(ensure_mountpoint(sys, root, &target, false)?);
        let t = secure_join(root, &target)?;
        m(sys, Some(path_str(&staged)?), &t, None, flags::BIND, None)?;
    }

    // RUN --mount.
    for (i, mount) in plan.mounts.iter().enumerate() {
        match mount {
            ResolvedMount::Cache {
                src,
                target,
                readonly,
                owner,
            } => {
                if let Some(o) = owner {
                    sys.init_dir(src, o.uid, o.gid, o.mode)
                        .map_err(|e| Error::io(src.clone(), e))?;
                }
                created.extend(ensure_mountpoint(sys, root, target, true)?);
                let t = secure_join(root, target)?;
                m(
                    sys,
                    Some(path_str(src)?),
                    &t,
                    None,
                    flags::BIND | flags::REC,
                    None,
                )?;
                if *readonly {
                    bind_readonly(sys, &t)?;
                }
            }
            ResolvedMount::Bind {
                src,
                target,
                readonly,
            } => {
                let is_dir = src.is_dir();
                created.extend(ensure_mountpoint(sys, root, target, is_dir)?);
                let t = secure_join(root, target)?;
                let s = src.to_str().ok_or_else(|| {
                    Error::InvalidSpec(format!("{}: path is not UTF-8", src.display()))
                })?;
                m(sys, Some(s), &t, None, flags::BIND | flags::REC, None)?;
                if *readonly {
                    bind_readonly(sys, &t)?;
                }
            }
            ResolvedMount::Layers { lowers, target } => {
                created.extend(ensure_mountpoint(sys, root, target, true)?);
                let t = secure_join(root, target)?;
                if let [only] = lowers.as_slice() {
                    let s = only.to_str().ok_or_else(|| {
                        Error::InvalidSpec(format!("{}: path is not UTF-8", only.display()))
                    })?;
                    m(sys, Some(s), &t, None, flags::BIND | flags::REC, None)?;
                    bind_readonly(sys, &t)?;
                } else {
                    let short = short_links(sys, root, &format!("m{i}-"), lowers)?;
                    let data = format!("lowerdir={},userxattr", short.join(":"));
                    m(
                        sys,
                        Some("overlay"),
                        &t,
                        Some("overlay"),
                        flags::RDONLY,
                        Some(&data),
                    )?;
                }
            }
            ResolvedMount::Tmpfs { target, size } => {
                created.extend(ensure_mountpoint(sys, root, target, true)?);
                let t = secure_join(root, target)?;
                // BuildKit's tmpfs mount: `nosuid` and the size, nothing else (the
                // kernel's default mode, 1777).
                let data = size.map(|s| format!("size={s}"));
                m(
                    sys,
                    Some("tmpfs"),
                    &t,
                    Some("tmpfs"),
                    flags::NOSUID,
                    data.as_deref(),
                )?;
            }
            ResolvedMount::Secret {
                bytes,
                target,
                mode,
                uid,
                gid,
            } => {
                let staged = plan.stage.join(format!("secret-{i}"));
                sys.write_file(&staged, bytes, *mode, *uid, *gid)
                    .map_err(|e| Error::io(staged.clone(), e))?;
                created.extend(ensure_mountpoint(sys, root, target, false)?);
                let t = secure_join(root, target)?;
                m(sys, Some(path_str(&staged)?), &t, None, flags::BIND, None)?;
                bind_readonly(sys, &t)?;
            }
        }
    }

    // Into the new root; the old one is detached so nothing of the host stays reachable.
    sys.chdir(root)
        .map_err(|e| Error::sys(format!("chdir {}", root.display()), e))?;
    sys.pivot_root(Path::new("."), Path::new("."))
        .map_err(|e| Error::sys("pivot_root", e))?;
    sys.umount_detach(Path::new("."))
        .map_err(|e| Error::sys("umount old root", e))?;
    sys.chdir(Path::new("/"))
        .map_err(|e| Error::sys("chdir /", e))?;
    sys.sethostname(&plan.hostname)
        .map_err(|e| Error::sys("sethostname", e))?;
    if plan.network == Network::None {
        sys.loopback_up()
            .map_err(|e| Error::sys("bring up loopback", e))?;
    }
    Ok(created)
}

/// Whether any mount in `mounts` needs the SSH socket env var, and its target.
pub fn ssh_target(mounts: &[MountSpec]) -> Option<&str> {
    mounts.iter().find_map(|m| match m {
        MountSpec::Ssh { target, .. } => Some(target.as_str()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscall::fake::RecordingSyscall;

    fn plan(root: &Path) -> RootfsPlan {
        RootfsPlan {
            root: root.to_path_buf(),
            stage: root.parent().unwrap().join("stage"),
            source: RootSource::Overlay {
                lowers: vec![PathBuf::from("/l/2"), PathBuf::from("/l/1")],
                upper: PathBuf::from("/w/upper"),
                work: PathBuf::from("/w/ovl"),
            },
            hostname: "box".into(),
            hosts: hosts_file("box", &[]),
            resolv_conf: "nameserver 127.0.0.53\n".into(),
            mounts: vec![
                ResolvedMount::Tmpfs {
                    target: "/cache".into(),
                    size: Some(1 << 20),
                },
                ResolvedMount::Secret {
                    bytes: b"s3cr3t".to_vec(),
                    target: "/run/secrets/tok".into(),
                    mode: 0o400,
                    uid: 0,
                    gid: 0,
                },
            ],
            network: Network::None,
        }
    }

    #[test]
    fn mount_sequence_is_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("proc")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/hosts"), "").unwrap();
        let sys = RecordingSyscall::default();
        let created = setup(&sys, &plan(&root)).unwrap();
        let calls = sys.calls();
        let r = root.display().to_string();
        let pos = |needle: &str| {
            calls
                .iter()
                .position(|c| c.starts_with(needle))
                .unwrap_or_else(|| panic!("no call {needle:?} in {calls:#?}"))
        };
        let w = tmp.path().display().to_string();
        assert_eq!(calls[0], "mount - / - 0x44000 -");
        assert_eq!(
            &calls[1..6],
            &[
                format!("mkdir {w}/l 755"),
                format!("symlink /l/2 {w}/l/0"),
                format!("symlink /l/1 {w}/l/1"),
                format!("chdir {w}"),
                format!(
                    "mount overlay {r} overlay 0x0 lowerdir=l/0:l/1,upperdir=/w/upper,\
                     workdir=/w/ovl,userxattr,metacopy=off"
                )
            ]
        );
        assert!(pos(&format!("mount proc {r}/proc proc")) > 1);
        assert!(
            pos(&format!("mount /dev/null {r}/dev/null"))
                > pos(&format!("mount tmpfs {r}/dev tmpfs"))
        );
        assert!(pos(&format!("mount devpts {r}/dev/pts devpts")) > 0);
        // The secret is written to the staging tmpfs only, then bound read-only.
        assert!(calls.contains(&format!("write {w}/stage/secret-1 6B 400 0:0")));
        let bind = pos(&format!("mount {w}/stage/secret-1 {r}/run/secrets/tok"));
        assert!(calls[bind + 1].starts_with(&format!("mount - {r}/run/secrets/tok - ")));
        // pivot_root comes after every mount, then the old root is detached.
        let piv = pos("pivot_root . .");
        assert!(calls[..piv].iter().all(|c| !c.starts_with("sethostname")));
        assert_eq!(calls[piv + 1], "umount .");
        assert_eq!(calls[piv + 3], "sethostname box");
        assert_eq!(calls.last().unwrap(), "loopback_up");
        // Mount points missing from the image are reported, existing ones are not.
        let created: Vec<String> = created.iter().map(|p| p.display().to_string()).collect();
        assert_eq!(
            created,
            vec![
                "etc/resolv.conf",
                "etc/hostname",
                "cache",
                "run",
                "run/secrets",
                "run/secrets/tok"
            ]
        );
    }

    /// runc's mount points for /proc, /dev and /sys stay in the root (BuildKit's layers
    /// have them); only the user mounts' and the /etc files' are reported for removal.
    /// A user mount at a default mount's place replaces it (BuildKit's dedupMounts), and
    /// a tmpfs is mounted as BuildKit does: `nosuid` and its size only.
    #[test]
    fn user_mounts_replace_defaults_and_runc_mount_points_stay() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        // (The fake makes no directories: /dev/shm is there as the /dev tmpfs has it.)
        std::fs::create_dir_all(root.join("dev/shm")).unwrap();
        let mut p = plan(&root);
        p.mounts = vec![
            ResolvedMount::Tmpfs {
                target: "/dev/shm/".into(),
                size: Some(128 << 20),
            },
            ResolvedMount::Tmpfs {
                target: "/tmp".into(),
                size: None,
            },
        ];
        let sys = RecordingSyscall::default();
        let created = setup(&sys, &p).unwrap();
        let calls = sys.calls();
        let r = root.display().to_string();
        for d in ["proc", "sys"] {
            assert!(
                calls.contains(&format!("mkdir {r}/{d} 755")),
                "{d}: {calls:#?}"
            );
        }
        let shm: Vec<&String> = calls
            .iter()
            .filter(|c| c.starts_with("mount ") && c.contains(&format!("{r}/dev/shm ")))
            .collect();
        assert_eq!(shm.len(), 1, "{shm:#?}");
        assert_eq!(
            shm[0],
            &format!("mount tmpfs {r}/dev/shm tmpfs 0x2 size=134217728")
        );
        assert!(
            calls.contains(&format!("mount tmpfs {r}/tmp tmpfs 0x2 -")),
            "{calls:#?}"
        );
        let created: Vec<String> = created.iter().map(|p| p.display().to_string()).collect();
        assert!(!created
            .iter()
            .any(|c| c == "dev" || c == "proc" || c == "sys"));
        assert!(created.contains(&"tmp".to_string()), "{created:?}");
        assert!(created.contains(&"etc".to_string()), "{created:?}");

        // A bind at /etc/hosts replaces hoist's hosts file; a cache gets its owner first.
        let mut p = plan(&root);
        p.mounts = vec![
            ResolvedMount::Bind {
                src: tmp.path().join("myhosts"),
                target: "/etc/hosts".into(),
                readonly: true,
            },
            ResolvedMount::Cache {
                src: PathBuf::from("/host/cache"),
                target: "/c".into(),
                readonly: false,
                owner: Some(crate::spec::CacheOwner {
                    uid: 1001,
                    gid: 1002,
                    mode: 0o751,
                }),
            },
        ];
        let sys = RecordingSyscall::default();
        setup(&sys, &p).unwrap();
        let calls = sys.calls();
        let w = tmp.path().display().to_string();
        assert!(!calls
            .iter()
            .any(|c| c.starts_with(&format!("write {w}/stage/hosts"))));
        assert!(calls.contains(&format!("write {w}/stage/resolv.conf 22B 644 0:0")));
        let init = calls
            .iter()
            .position(|c| c == "init_dir /host/cache 1001:1002 751");
        let bind = calls
            .iter()
            .position(|c| c.starts_with(&format!("mount /host/cache {r}/c ")));
        assert!(
            init.is_some() && bind.is_some() && init < bind,
            "{calls:#?}"
        );
    }

    #[test]
    fn mount_targets_compare_cleaned() {
        assert_eq!(clean_target("/dev/shm/"), "/dev/shm");
        assert_eq!(clean_target("dev//./shm"), "/dev/shm");
        assert_eq!(clean_target("/a/../../proc"), "/proc");
        assert_eq!(clean_target("/"), "/");
    }

    #[test]
    fn symlinks_cannot_escape_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::os::unix::fs::symlink("/../../../etc", root.join("a/up")).unwrap();
        std::os::unix::fs::symlink("../../..", root.join("a/rel")).unwrap();
        assert_eq!(
            secure_join(&root, "/a/up/passwd").unwrap(),
            root.join("etc/passwd")
        );
        assert_eq!(secure_join(&root, "/a/rel/x").unwrap(), root.join("x"));
        assert_eq!(secure_join(&root, "/../../x").unwrap(), root.join("x"));
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        assert!(secure_join(&root, "/loop/x").is_err());
    }

    #[test]
    fn overlay_options_reject_separators() {
        assert!(
            overlay_options(&[PathBuf::from("/a:b")], Path::new("/u"), Path::new("/w")).is_err()
        );
        let long: Vec<PathBuf> = (0..200)
            .map(|i| PathBuf::from(format!("/some/long/state/dir/{i}")))
            .collect();
        assert!(matches!(
            overlay_options(&long, Path::new("/u"), Path::new("/w")),
            Err(Error::Unsupported(_))
        ));
    }
}
