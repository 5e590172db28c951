//! The layer applier: extract a layer onto a directory, safely.
//!
//! Every path is resolved *inside* the root, whatever the archive says:
//!
//! - names are cleaned lexically; a name whose `..` climbs above the root is
//!   refused (absolute names are taken relative to the root, as Docker does);
//! - the parent directory of each entry is opened with `openat2(2)` and
//!   `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`, so symlinks met on the way (even
//!   ones to `/` or `../..`) resolve as if the root were `/`;
//! - the final component is created with `*at` calls that never follow it
//!   (`O_CREAT|O_EXCL|O_NOFOLLOW`, `mkdirat`, `symlinkat`, `linkat` without
//!   `AT_SYMLINK_FOLLOW`, `mknodat`, `fchownat(AT_SYMLINK_NOFOLLOW)`, ...);
//! - hard-link targets are resolved the same way, so they cannot name a file
//!   outside the root;
//! - whiteouts delete through the same resolution, without following symlinks.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};

use rustix::fs::{
    AtFlags, FileType, Gid, Mode, OFlags, ResolveFlags, Timespec, Timestamps, Uid, XattrFlags,
};
use rustix::io::Errno;

use super::stream::{LayerName, LayerStream, StreamCheck};
use crate::media_type::Compression;
use crate::{Digest, Error, Result};

/// How whiteout entries (`.wh.NAME`, `.wh..wh..opq`) are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhiteoutMode {
    /// Apply them: `.wh.NAME` deletes `NAME`, `DIR/.wh..wh..opq` deletes whatever
    /// lower layers left in `DIR` (not what this layer adds, wherever the marker
    /// sits in the archive). For flattening layers onto one directory.
    #[default]
    Oci,
    /// Record them the overlayfs way, for building overlay lower directories:
    /// `.wh.NAME` becomes a 0:0 character device `NAME` (or, when `mknod` is not
    /// permitted, stays an empty `.wh.NAME` file, which fuse-overlayfs reads),
    /// and an opaque directory gets `trusted.overlay.opaque=y` as root, or
    /// `user.overlay.opaque=y` plus a `.wh..wh..opq` file otherwise.
    Overlay,
}

/// Options of [`apply_layer`].
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Give entries the owner in the archive (`chown`). Default: true when running
    /// as root.
    pub same_owner: bool,
    /// Create character and block devices (`mknod`, root only). When false they
    /// are skipped with a warning. Default: true when running as root.
    pub allow_devices: bool,
    /// How whiteouts are applied. Default: [`WhiteoutMode::Oci`].
    pub whiteouts: WhiteoutMode,
    /// Set the archive's extended attributes (best effort: failures are logged;
    /// `trusted.*` is skipped when not root). Default: true.
    pub xattrs: bool,
    /// Resolve paths component by component in user space instead of with
    /// `openat2(RESOLVE_IN_ROOT)`. The applier switches to this by itself when
    /// `openat2` is unavailable (Linux < 5.6, or a seccomp filter); the result is
    /// the same. Default: false.
    pub userspace_resolution: bool,
    /// Bound on the layer's uncompressed size: reading stops with
    /// [`Error::Layer`] past it (a decompression bomb). Default:
    /// [`default_max_layer_size`](super::default_max_layer_size).
    pub max_size: u64,
    /// Keep the setuid and setgid bits of regular files. When false they are cleared
    /// and the files listed in [`ApplyStats::unsafe_entries`] (for outputs that must
    /// not hand set-id programs to whoever reads them). Default: true.
    pub setid: bool,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        let root = rustix::process::geteuid().is_root();
        ApplyOptions {
            same_owner: root,
            allow_devices: root,
            whiteouts: WhiteoutMode::Oci,
            xattrs: true,
            userspace_resolution: false,
            max_size: super::stream::default_max_layer_size(),
            setid: true,
        }
    }
}

/// What [`apply_layer`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyStats {
    /// Archive entries read (whiteouts included).
    pub entries: u64,
    /// Regular files written.
    pub files: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Whiteouts applied (or recorded in overlay mode).
    pub whiteouts: u64,
    /// Entries skipped (devices without permission, unsupported types).
    pub skipped: u64,
    /// sha256 of the uncompressed tar stream: compare it with the image config's
    /// `rootfs.diff_ids`.
    pub diff_id: Digest,
    /// Size of the uncompressed tar stream.
    pub uncompressed_size: u64,
    /// Entries changed for safety because [`ApplyOptions::allow_devices`] or
    /// [`ApplyOptions::setid`] said so: device nodes not created and files whose
    /// setuid/setgid bits were cleared, as `/path (what)`; at most
    /// [`MAX_LISTED_UNSAFE`] (see `unsafe_count` for all).
    pub unsafe_entries: Vec<String>,
    /// How many entries were changed for safety (listed or not).
    pub unsafe_count: u64,
}

/// At most this many entries are listed in [`ApplyStats::unsafe_entries`].
pub const MAX_LISTED_UNSAFE: usize = 100;

/// Apply a layer blob onto `root` (which must exist).
///
/// `compression` gives the blob's compression; `None` sniffs it from the magic
/// bytes (gzip `1f 8b`, zstd `28 b5 2f fd`, else plain tar). The blob is streamed:
/// memory does not grow with its size. Errors name the offending entry
/// ([`Error::UnsafeEntry`] for entries refused for safety). See
/// [`apply_layer_checked`] to name the layer in errors and verify its diff ID.
pub fn apply_layer<R: Read + Send>(
    blob: R,
    compression: Option<Compression>,
    root: &Path,
    opts: &ApplyOptions,
) -> Result<ApplyStats> {
    let check = StreamCheck {
        compression,
        ..StreamCheck::default()
    };
    apply_layer_checked(blob, check, root, opts)
}

/// [`apply_layer`] through a [`LayerStream`] with `check`: errors name the layer
/// (`check.name`), a compression the media type contradicts is refused, and with
/// `check.diff_id` the uncompressed stream must hash to it (the caller must then
/// discard `root` on error: the mismatch is known only at the end). The bound is
/// `check.max_size`, else `opts.max_size`.
pub fn apply_layer_checked<R: Read + Send>(
    blob: R,
    mut check: StreamCheck,
    root: &Path,
    opts: &ApplyOptions,
) -> Result<ApplyStats> {
    check.max_size = Some(check.max_size.unwrap_or(opts.max_size));
    let name = check.name.clone();
    let stream = LayerStream::open(blob, check)?;

    let root_fd = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io(root, e.into()))?;
    let mut ap = Applier {
        root: root.to_path_buf(),
        root_fd,
        opts: opts.clone(),
        is_root: rustix::process::geteuid().is_root(),
        cache: None,
        created: HashSet::new(),
        dirs: Vec::new(),
        stats: Counts::default(),
        layer: name.clone(),
    };

    let mut archive = tar::Archive::new(stream);
    let entries = archive
        .entries()
        .map_err(|e| name.error("reading the layer tar", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| name.error("reading the layer tar", e))?;
        ap.apply_entry(entry)?;
    }
    ap.finish_dirs()?;
    // Hash what follows the end-of-archive blocks too: the diffID covers the stream.
    let (diff_id, uncompressed_size) = archive.into_inner().finish()?;
    Ok(ApplyStats {
        entries: ap.stats.entries,
        files: ap.stats.files,
        bytes: ap.stats.bytes,
        whiteouts: ap.stats.whiteouts,
        skipped: ap.stats.skipped,
        diff_id,
        uncompressed_size,
        unsafe_entries: ap.stats.unsafe_entries,
        unsafe_count: ap.stats.unsafe_count,
    })
}

#[derive(Default)]
struct Counts {
    entries: u64,
    files: u64,
    bytes: u64,
    whiteouts: u64,
    skipped: u64,
    unsafe_entries: Vec<String>,
    unsafe_count: u64,
}

impl Counts {
    fn note_unsafe(&mut self, raw: &[u8], what: String) {
        self.unsafe_count += 1;
        if self.unsafe_entries.len() < MAX_LISTED_UNSAFE {
            let p = String::from_utf8_lossy(raw);
            let p = p.trim_start_matches("./").trim_start_matches('/');
            self.unsafe_entries.push(format!("/{p} ({what})"));
        }
    }
}

struct Applier {
    root: PathBuf,
    root_fd: OwnedFd,
    opts: ApplyOptions,
    is_root: bool,
    /// The last parent directory opened: (in-root path, fd). Dropped whenever
    /// anything is removed, so it never points at a replaced directory.
    cache: Option<(Vec<u8>, OwnedFd)>,
    /// Paths this layer created, and their ancestors (kept by opaque whiteouts).
    created: HashSet<Vec<u8>>,
    /// Directories to give their final mode and mtime at the end.
    dirs: Vec<(Vec<u8>, u32, i64)>,
    stats: Counts,
    /// Names the layer in errors.
    layer: LayerName,
}

/// Clean an archive name: drop leading `/`, `.` and empty components, resolve
/// `..` lexically; `None` when `..` would climb above the root.
fn clean(raw: &[u8]) -> Option<Vec<u8>> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for comp in raw.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join(&b'/'))
}

fn split_parent(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (b"", path),
    }
}

/// `parent/name` as an in-root path (`name` alone at the root).
fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    if parent.is_empty() {
        name.to_vec()
    } else {
        [parent, b"/", name].concat()
    }
}

fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

fn in_root_flags() -> ResolveFlags {
    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS
}

/// Whether `openat2(2)` is unavailable (kernel < 5.6, or filtered by seccomp).
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// Open the directory at in-root path `p` (`""` = the root) as an `O_PATH` fd,
/// every symlink on the way resolved as if `root` were `/`.
fn open_in_root(root: &OwnedFd, p: &[u8], userspace: bool) -> rustix::io::Result<OwnedFd> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let p: &[u8] = if p.is_empty() { b"." } else { p };
    if !userspace && !NO_OPENAT2.load(AtomicOrdering::Relaxed) {
        loop {
            match rustix::fs::openat2(root, os(p), flags, Mode::empty(), in_root_flags()) {
                Err(Errno::AGAIN) | Err(Errno::INTR) => continue,
                Err(Errno::NOSYS) | Err(Errno::PERM)
                    if !NO_OPENAT2.load(AtomicOrdering::Relaxed) =>
                {
                    // Only give up on openat2 if it fails on the root itself.
                    if rustix::fs::openat2(root, ".", flags, Mode::empty(), in_root_flags()).is_ok()
                    {
                        return Err(Errno::PERM);
                    }
                    tracing::debug!("openat2 unavailable: resolving paths in user space");
                    NO_OPENAT2.store(true, AtomicOrdering::Relaxed);
                    break;
                }
                r => return r,
            }
        }
    }
    resolve_in_root_userspace(root, p)
}

/// The `RESOLVE_IN_ROOT` walk done by hand: one component at a time with
/// `O_NOFOLLOW`, symlinks read and expanded (absolute ones from the root), `..`
/// never above the root, at most 40 symlinks.
fn resolve_in_root_userspace(root: &OwnedFd, p: &[u8]) -> rustix::io::Result<OwnedFd> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut queue: std::collections::VecDeque<Vec<u8>> =
        p.split(|&b| b == b'/').map(<[u8]>::to_vec).collect();
    let mut stack: Vec<OwnedFd> = Vec::new();
    let mut cur = rustix::io::fcntl_dupfd_cloexec(root, 0)?;
    let mut links = 0;
    while let Some(comp) = queue.pop_front() {
        match comp.as_slice() {
            b"" | b"." => continue,
            b".." => {
                if let Some(up) = stack.pop() {
                    cur = up;
                }
                continue;
            }
            _ => {}
        }
        let st = rustix::fs::statat(&cur, os(&comp), AtFlags::SYMLINK_NOFOLLOW)?;
        if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
            links += 1;
            if links > 40 {
                return Err(Errno::LOOP);
            }
            let target = rustix::fs::readlinkat(&cur, os(&comp), Vec::new())?;
            let target = target.into_bytes();
            if target.starts_with(b"/") {
                stack.clear();
                cur = rustix::io::fcntl_dupfd_cloexec(root, 0)?;
            }
            for c in target.split(|&b| b == b'/').rev() {
                queue.push_front(c.to_vec());
            }
            continue;
        }
        let next = rustix::fs::openat(&cur, os(&comp), flags, Mode::empty())?;
        stack.push(std::mem::replace(&mut cur, next));
    }
    Ok(cur)
}

fn timestamps(mtime: i64) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// An owner id from a header or a PAX record, checked: `u32::MAX` is `(uid_t)-1`,
/// which `chown` reads as "leave unchanged", and larger ids do not exist.
fn owner_id(raw: &[u8], what: &str, v: u64) -> Result<u32> {
    u32::try_from(v)
        .ok()
        .filter(|&v| v != u32::MAX)
        .ok_or_else(|| {
            Applier::unsafe_entry(
                raw,
                format!(
                    "{what} {v} is not a valid owner id (at most {})",
                    u32::MAX - 1
                ),
            )
        })
}

/// A PAX `uid`/`gid` record: a decimal integer (as Go's archive/tar requires), not
/// `-1` or `1e9`, which a float parse would turn into root or a saturated id.
fn pax_id(raw: &[u8], what: &str, val: &[u8]) -> Result<u64> {
    std::str::from_utf8(val)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or_else(|| {
            Applier::unsafe_entry(
                raw,
                format!(
                    "PAX {what} record {:?} is not an owner id",
                    String::from_utf8_lossy(&val[..val.len().min(40)])
                ),
            )
        })
}

/// Metadata of one archive entry, PAX records applied.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    xattrs: Vec<(String, Vec<u8>)>,
}

impl Applier {
    fn unsafe_entry(name: &[u8], reason: impl Into<String>) -> Error {
        Error::UnsafeEntry {
            entry: String::from_utf8_lossy(name).into_owned(),
            reason: reason.into(),
        }
    }

    fn entry_err(&self, name: &[u8], what: &str, e: impl Into<io::Error>) -> Error {
        let path = self.root.join(os(name));
        let e: io::Error = e.into();
        if let Some(reason) = super::stream::fault_reason(&e) {
            // The stream underneath failed (bound, digest) while the entry was read.
            return Error::Layer {
                layer: self.layer.to_string(),
                reason,
            };
        }
        Error::Io {
            path,
            source: io::Error::new(
                e.kind(),
                format!(
                    "layer entry {:?}: {what}: {e}",
                    String::from_utf8_lossy(name)
                ),
            ),
        }
    }

    /// Open directory `dir` (an in-root path, cleaned) as an `O_PATH` fd,
    /// resolved inside the root; with `create`, make missing components (0755).
    fn open_dir(&mut self, dir: &[u8], create: bool, entry: &[u8]) -> Result<Option<OwnedFd>> {
        if let Some((p, fd)) = &self.cache {
            if p == dir {
                let fd = fd
                    .try_clone()
                    .map_err(|e| self.entry_err(entry, "dup", e))?;
                return Ok(Some(fd));
            }
        }
        let userspace = self.opts.userspace_resolution;
        let open = |p: &[u8]| open_in_root(&self.root_fd, p, userspace);
        let fd = match open(dir) {
            Ok(fd) => fd,
            Err(Errno::NOENT) if create => {
                // Create the missing components one by one, each resolved in root.
                let mut fd = open(b"").map_err(|e| self.entry_err(entry, "open root", e))?;
                let mut end = 0;
                for comp in dir.split(|&b| b == b'/') {
                    end += comp.len();
                    let sofar = &dir[..end];
                    fd = match open(sofar) {
                        Ok(f) => f,
                        Err(Errno::NOENT) => {
                            match rustix::fs::mkdirat(&fd, os(comp), Mode::from_raw_mode(0o755)) {
                                Ok(()) | Err(Errno::EXIST) => {}
                                Err(e) => {
                                    return Err(self.entry_err(entry, "create parent directory", e))
                                }
                            }
                            open(sofar).map_err(|e| match rustix::fs::readlinkat(&fd, os(comp), Vec::new()) {
                                // `comp` exists but does not open as a directory: a
                                // symlink whose target is missing or not a directory.
                                Ok(target) => self.entry_err(
                                    entry,
                                    &format!(
                                        "parent /{} is a symlink to {:?}, which is not a directory in the image",
                                        String::from_utf8_lossy(sofar),
                                        target.to_string_lossy()
                                    ),
                                    e,
                                ),
                                Err(_) => self.entry_err(entry, "open created parent directory", e),
                            })?
                        }
                        Err(e) => return Err(self.entry_err(entry, "open parent directory", e)),
                    };
                    end += 1;
                }
                fd
            }
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(self.entry_err(entry, "open parent directory", e)),
        };
        let dup = fd
            .try_clone()
            .map_err(|e| self.entry_err(entry, "dup", e))?;
        self.cache = Some((dir.to_vec(), dup));
        Ok(Some(fd))
    }

    fn mark_created(&mut self, path: &[u8]) {
        let mut p = path;
        while !p.is_empty() && self.created.insert(p.to_vec()) {
            p = split_parent(p).0;
        }
    }

    fn apply_entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<()> {
        self.stats.entries += 1;
        let raw = entry.path_bytes().into_owned();
        let path = clean(&raw)
            .ok_or_else(|| Self::unsafe_entry(&raw, "path escapes the root with `..`"))?;
        let header = entry.header();
        let etype = header.entry_type();
        let (mut uid, mut gid) = (header.uid().unwrap_or(0), header.gid().unwrap_or(0));
        let mut meta = Meta {
            mode: header.mode().unwrap_or(0o644) & 0o7777,
            uid: 0,
            gid: 0,
            mtime: header.mtime().unwrap_or(0) as i64,
            xattrs: Vec::new(),
        };
        let (devmajor, devminor) = (
            header.device_major().ok().flatten().unwrap_or(0),
            header.device_minor().ok().flatten().unwrap_or(0),
        );
        if let Ok(Some(pax)) = entry.pax_extensions() {
            for ext in pax.flatten() {
                let Ok(key) = ext.key() else { continue };
                let val = ext.value_bytes();
                let num = || std::str::from_utf8(val).ok()?.trim().parse::<f64>().ok();
                match key {
                    "uid" => uid = pax_id(&raw, "uid", val)?,
                    "gid" => gid = pax_id(&raw, "gid", val)?,
                    "mtime" => meta.mtime = num().unwrap_or(meta.mtime as f64) as i64,
                    k => {
                        if let Some(name) = k.strip_prefix("SCHILY.xattr.") {
                            meta.xattrs.push((name.to_string(), val.to_vec()));
                        }
                    }
                }
            }
        }

        meta.uid = owner_id(&raw, "uid", uid)?;
        meta.gid = owner_id(&raw, "gid", gid)?;

        use tar::EntryType as T;
        if matches!(
            etype,
            T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink
        ) {
            return Ok(());
        }
        if path.is_empty() {
            // The root itself ("./", "/"): never replaced.
            return Ok(());
        }
        let (parent, name) = split_parent(&path);
        let (parent, name) = (parent.to_vec(), name.to_vec());

        // Whiteouts.
        if let Some(target) = name.strip_prefix(b".wh.") {
            self.stats.whiteouts += 1;
            return self.whiteout(&raw, &parent, target, &meta);
        }

        let parent_fd = self
            .open_dir(&parent, true, &raw)?
            .ok_or_else(|| self.entry_err(&raw, "open parent directory", Errno::NOENT))?;
        self.mark_created(&path);

        let existing = rustix::fs::statat(&parent_fd, os(&name), AtFlags::SYMLINK_NOFOLLOW)
            .ok()
            .map(|st| FileType::from_raw_mode(st.st_mode));

        if etype == T::Directory {
            match existing {
                Some(FileType::Directory) => {}
                Some(_) => {
                    self.remove(&parent_fd, &name, &raw)?;
                    self.mkdir(&parent_fd, &name, &raw)?;
                }
                None => self.mkdir(&parent_fd, &name, &raw)?,
            }
            let fd = rustix::fs::openat(
                &parent_fd,
                os(&name),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| self.entry_err(&raw, "open directory", e))?;
            self.own(&fd, &meta, &raw)?;
            self.set_xattrs(&fd, &meta, &raw);
            self.dirs.push((path, meta.mode, meta.mtime));
            return Ok(());
        }
        if existing.is_some() {
            self.remove(&parent_fd, &name, &raw)?;
        }

        match etype {
            T::Regular | T::Continuous => {
                let fd = rustix::fs::openat(
                    &parent_fd,
                    os(&name),
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| self.entry_err(&raw, "create file", e))?;
                let mut file = File::from(fd);
                let n = io::copy(&mut entry, &mut file)
                    .map_err(|e| self.entry_err(&raw, "write file", e))?;
                self.stats.files += 1;
                self.stats.bytes += n;
                if !self.opts.setid && meta.mode & 0o6000 != 0 {
                    let what = match meta.mode & 0o6000 {
                        0o4000 => "setuid",
                        0o2000 => "setgid",
                        _ => "setuid and setgid",
                    };
                    self.stats.note_unsafe(
                        &raw,
                        format!("{what} bits cleared, mode {:04o}", meta.mode & !0o6000),
                    );
                    meta.mode &= !0o6000;
                }
                self.own(&file, &meta, &raw)?;
                rustix::fs::fchmod(&file, Mode::from_raw_mode(meta.mode))
                    .map_err(|e| self.entry_err(&raw, "chmod", e))?;
                self.set_xattrs(&file, &meta, &raw);
                rustix::fs::futimens(&file, &timestamps(meta.mtime))
                    .map_err(|e| self.entry_err(&raw, "set times", e))?;
            }
            T::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|c| c.into_owned())
                    .unwrap_or_default();
                rustix::fs::symlinkat(os(&target), &parent_fd, os(&name))
                    .map_err(|e| self.entry_err(&raw, "create symlink", e))?;
                self.own_at(&parent_fd, &name, &meta, &raw)?;
                rustix::fs::utimensat(
                    &parent_fd,
                    os(&name),
                    &timestamps(meta.mtime),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(|e| self.entry_err(&raw, "set times", e))?;
            }
            T::Link => {
                let target_raw = entry
                    .link_name_bytes()
                    .map(|c| c.into_owned())
                    .unwrap_or_default();
                let target = clean(&target_raw)
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| {
                        Self::unsafe_entry(
                            &raw,
                            format!(
                                "hard link target {:?} is outside the root",
                                String::from_utf8_lossy(&target_raw)
                            ),
                        )
                    })?;
                let (tparent, tname) = split_parent(&target);
                let tparent_fd = self
                    .open_dir(tparent, false, &raw)?
                    .ok_or_else(|| self.entry_err(&raw, "hard link target", Errno::NOENT))?;
                rustix::fs::linkat(
                    &tparent_fd,
                    os(tname),
                    &parent_fd,
                    os(&name),
                    AtFlags::empty(),
                )
                .map_err(|e| {
                    self.entry_err(
                        &raw,
                        &format!("hard link to {:?}", String::from_utf8_lossy(&target_raw)),
                        e,
                    )
                })?;
            }
            T::Char | T::Block | T::Fifo => {
                let ft = match etype {
                    T::Char => FileType::CharacterDevice,
                    T::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                if ft != FileType::Fifo && !self.opts.allow_devices {
                    tracing::warn!(
                        entry = %String::from_utf8_lossy(&raw),
                        "skipping device node (devices not allowed)"
                    );
                    self.stats.skipped += 1;
                    let kind = if ft == FileType::CharacterDevice {
                        "character"
                    } else {
                        "block"
                    };
                    self.stats.note_unsafe(
                        &raw,
                        format!("{kind} device {devmajor}:{devminor} not created"),
                    );
                    return Ok(());
                }
                let dev = rustix::fs::makedev(devmajor, devminor);
                match rustix::fs::mknodat(
                    &parent_fd,
                    os(&name),
                    ft,
                    Mode::from_raw_mode(0o600),
                    dev,
                ) {
                    Ok(()) => {}
                    Err(Errno::PERM) if ft != FileType::Fifo => {
                        tracing::warn!(
                            entry = %String::from_utf8_lossy(&raw),
                            "skipping device node (mknod not permitted)"
                        );
                        self.stats.skipped += 1;
                        return Ok(());
                    }
                    Err(e) => return Err(self.entry_err(&raw, "mknod", e)),
                }
                self.own_at(&parent_fd, &name, &meta, &raw)?;
                // Just created by us, not a symlink: chmodat cannot be redirected.
                rustix::fs::chmodat(
                    &parent_fd,
                    os(&name),
                    Mode::from_raw_mode(meta.mode),
                    AtFlags::empty(),
                )
                .map_err(|e| self.entry_err(&raw, "chmod", e))?;
                rustix::fs::utimensat(
                    &parent_fd,
                    os(&name),
                    &timestamps(meta.mtime),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(|e| self.entry_err(&raw, "set times", e))?;
            }
            other => {
                tracing::warn!(
                    entry = %String::from_utf8_lossy(&raw),
                    kind = ?other,
                    "skipping unsupported tar entry type"
                );
                self.stats.skipped += 1;
            }
        }
        Ok(())
    }

    fn mkdir(&mut self, parent: &OwnedFd, name: &[u8], raw: &[u8]) -> Result<()> {
        // Owner-writable while the layer is applied; the final mode is set at the end.
        rustix::fs::mkdirat(parent, os(name), Mode::from_raw_mode(0o700))
            .map_err(|e| self.entry_err(raw, "create directory", e))
    }

    fn own(&self, fd: impl AsFd, meta: &Meta, raw: &[u8]) -> Result<()> {
        if !self.opts.same_owner {
            return Ok(());
        }
        rustix::fs::fchown(
            fd,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
        )
        .map_err(|e| self.entry_err(raw, "chown", e))
    }

    fn own_at(&self, parent: &OwnedFd, name: &[u8], meta: &Meta, raw: &[u8]) -> Result<()> {
        if !self.opts.same_owner {
            return Ok(());
        }
        rustix::fs::chownat(
            parent,
            os(name),
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| self.entry_err(raw, "chown", e))
    }

    fn set_xattrs(&self, fd: impl AsFd, meta: &Meta, raw: &[u8]) {
        if !self.opts.xattrs {
            return;
        }
        for (k, v) in &meta.xattrs {
            if k.starts_with("trusted.") && !self.is_root {
                continue;
            }
            if let Err(e) = rustix::fs::fsetxattr(&fd, k.as_str(), v, XattrFlags::empty()) {
                tracing::warn!(
                    entry = %String::from_utf8_lossy(raw),
                    xattr = %k,
                    error = %e,
                    "could not set extended attribute"
                );
            }
        }
    }

    /// Remove `name` in `parent` (recursively for directories), never following
    /// symlinks.
    fn remove(&mut self, parent: &OwnedFd, name: &[u8], raw: &[u8]) -> Result<()> {
        self.cache = None;
        remove_all_at(parent, name, self.is_root).map_err(|e| self.entry_err(raw, "remove", e))
    }

    fn whiteout(&mut self, raw: &[u8], parent: &[u8], target: &[u8], meta: &Meta) -> Result<()> {
        let opaque = target == b".wh..opq";
        if !opaque
            && (target.is_empty() || target == b"." || target == b".." || target.contains(&b'/'))
        {
            return Err(Self::unsafe_entry(raw, "whiteout names no file"));
        }
        match self.opts.whiteouts {
            WhiteoutMode::Oci => {
                let Some(pfd) = self.open_dir(parent, false, raw)? else {
                    return Ok(());
                };
                self.cache = None;
                if opaque {
                    let mut path = parent.to_vec();
                    self.clean_opaque(&pfd, &mut path, raw)
                } else {
                    remove_all_at(&pfd, target, self.is_root)
                        .map_err(|e| self.entry_err(raw, "apply whiteout", e))
                }
            }
            WhiteoutMode::Overlay => {
                let pfd = self
                    .open_dir(parent, true, raw)?
                    .ok_or_else(|| self.entry_err(raw, "open parent directory", Errno::NOENT))?;
                self.mark_created(parent);
                if opaque {
                    let dfd = rustix::fs::openat(
                        &pfd,
                        ".",
                        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(|e| self.entry_err(raw, "open opaque directory", e))?;
                    let key = if self.is_root {
                        "trusted.overlay.opaque"
                    } else {
                        "user.overlay.opaque"
                    };
                    let mut res = rustix::fs::fsetxattr(&dfd, key, b"y", XattrFlags::empty());
                    if res.is_err() && self.is_root {
                        // Root of a user namespace cannot set `trusted.*`; overlayfs
                        // mounted there uses `userxattr` (added for hoist-sandbox).
                        res = rustix::fs::fsetxattr(
                            &dfd,
                            "user.overlay.opaque",
                            b"y",
                            XattrFlags::empty(),
                        );
                    }
                    if let Err(e) = res {
                        tracing::warn!(entry = %String::from_utf8_lossy(raw), error = %e, "could not mark directory opaque");
                    }
                    if !self.is_root {
                        self.write_marker(&pfd, b".wh..wh..opq", meta, raw)?;
                    }
                    Ok(())
                } else {
                    if rustix::fs::statat(&pfd, os(target), AtFlags::SYMLINK_NOFOLLOW).is_ok() {
                        self.remove(&pfd, target, raw)?;
                    }
                    match rustix::fs::mknodat(
                        &pfd,
                        os(target),
                        FileType::CharacterDevice,
                        Mode::empty(),
                        rustix::fs::makedev(0, 0),
                    ) {
                        Ok(()) => {
                            self.mark_created(&join(parent, target));
                            Ok(())
                        }
                        Err(Errno::PERM) => {
                            let mut wh = b".wh.".to_vec();
                            wh.extend_from_slice(target);
                            self.write_marker(&pfd, &wh, meta, raw)
                        }
                        Err(e) => Err(self.entry_err(raw, "create whiteout device", e)),
                    }
                }
            }
        }
    }

    fn write_marker(&mut self, pfd: &OwnedFd, name: &[u8], meta: &Meta, raw: &[u8]) -> Result<()> {
        if rustix::fs::statat(pfd, os(name), AtFlags::SYMLINK_NOFOLLOW).is_ok() {
            self.remove(pfd, name, raw)?;
        }
        let fd = rustix::fs::openat(
            pfd,
            os(name),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| self.entry_err(raw, "create whiteout file", e))?;
        rustix::fs::futimens(&fd, &timestamps(meta.mtime))
            .map_err(|e| self.entry_err(raw, "set times", e))
    }

    /// Delete everything under the directory at in-root `path` (open as `dir`'s
    /// child) that this layer did not create.
    fn clean_opaque(&mut self, parent_fd: &OwnedFd, path: &mut Vec<u8>, raw: &[u8]) -> Result<()> {
        // `parent_fd` is the opaque directory itself (resolved in root).
        let dfd = match rustix::fs::openat(
            parent_fd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(e) => return Err(self.entry_err(raw, "open opaque directory", e)),
        };
        let names = list_dir(&dfd).map_err(|e| self.entry_err(raw, "list opaque directory", e))?;
        for name in names {
            let len = path.len();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(&name);
            if self.created.contains(path.as_slice()) {
                let is_dir = rustix::fs::statat(&dfd, os(&name), AtFlags::SYMLINK_NOFOLLOW)
                    .map(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)
                    .unwrap_or(false);
                if is_dir {
                    let sub = rustix::fs::openat(
                        &dfd,
                        os(&name),
                        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(|e| self.entry_err(raw, "open directory", e))?;
                    self.clean_opaque(&sub, path, raw)?;
                }
            } else {
                remove_all_at(&dfd, &name, self.is_root)
                    .map_err(|e| self.entry_err(raw, "apply opaque whiteout", e))?;
            }
            path.truncate(len);
        }
        Ok(())
    }

    /// Give directories their final mode and mtime, deepest first, without
    /// following symlinks that later entries may have put in their place.
    fn finish_dirs(&mut self) -> Result<()> {
        let dirs = std::mem::take(&mut self.dirs);
        for (path, mode, mtime) in dirs.into_iter().rev() {
            let (parent, name) = split_parent(&path);
            let Some(pfd) = self.open_dir(parent, false, &path)? else {
                continue;
            };
            let fd = match rustix::fs::openat(
                &pfd,
                os(name),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(fd) => fd,
                // Replaced by a non-directory later in the layer.
                Err(Errno::NOTDIR) | Err(Errno::LOOP) | Err(Errno::NOENT) => continue,
                Err(e) => return Err(self.entry_err(&path, "open directory", e)),
            };
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))
                .map_err(|e| self.entry_err(&path, "chmod", e))?;
            rustix::fs::futimens(&fd, &timestamps(mtime))
                .map_err(|e| self.entry_err(&path, "set times", e))?;
        }
        Ok(())
    }
}

fn list_dir(fd: &OwnedFd) -> io::Result<Vec<Vec<u8>>> {
    let mut names = Vec::new();
    for de in rustix::fs::Dir::read_from(fd)? {
        let de = de?;
        let n = de.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(n.to_vec());
        }
    }
    Ok(names)
}

/// Remove `name` in `dir`, recursively, never following symlinks. A missing
/// `name` is not an error.
fn remove_all_at(dir: &OwnedFd, name: &[u8], is_root: bool) -> io::Result<()> {
    match rustix::fs::unlinkat(dir, os(name), AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => return Ok(()),
        Err(Errno::ISDIR) | Err(Errno::PERM) => {}
        Err(e) => return Err(e.into()),
    }
    let sub = match rustix::fs::openat(
        dir,
        os(name),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(()),
        Err(Errno::ACCESS) if !is_root => {
            rustix::fs::chmodat(dir, os(name), Mode::from_raw_mode(0o700), AtFlags::empty())?;
            rustix::fs::openat(
                dir,
                os(name),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?
        }
        Err(e) => return Err(e.into()),
    };
    if !is_root {
        // Our own directories may be read-only: make them writable to empty them.
        let _ = rustix::fs::fchmod(&sub, Mode::from_raw_mode(0o700));
    }
    for child in list_dir(&sub)? {
        remove_all_at(&sub, &child, is_root)?;
    }
    match rustix::fs::unlinkat(dir, os(name), AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parent_symlink_into_a_missing_directory_is_named() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        h.set_link_name("/missing/dir").unwrap();
        b.append_data(&mut h, "bin", &[][..]).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        b.append_data(&mut h, "bin/sub/x", &b"hi"[..]).unwrap();
        let tar = b.into_inner().unwrap();
        let root = tempfile::tempdir().unwrap();
        let err = apply_layer(&tar[..], None, root.path(), &ApplyOptions::default()).unwrap_err();
        let err = crate::chain_text(&err);
        assert!(
            err.contains("bin/sub/x")
                && err.contains("parent /bin is a symlink to \"/missing/dir\"")
                && err.contains("not a directory"),
            "{err}"
        );
    }

    #[test]
    fn userspace_resolution_matches_openat2() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::os::unix::fs::symlink("/", root.join("a/toroot")).unwrap();
        std::os::unix::fs::symlink("../../../..", root.join("a/b/up")).unwrap();
        std::os::unix::fs::symlink("/a/b", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("loop2", root.join("loop1")).unwrap();
        std::os::unix::fs::symlink("loop1", root.join("loop2")).unwrap();
        let fd = rustix::fs::open(root, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();
        let ino = |f: &OwnedFd| rustix::fs::fstat(f).unwrap().st_ino;
        for p in [
            "",
            "a",
            "a/b",
            "a/toroot",
            "a/toroot/a/b",
            "a/b/up",
            "a/b/up/a",
            "abs",
            "abs/up/abs",
        ] {
            let kernel = rustix::fs::openat2(
                &fd,
                if p.is_empty() { "." } else { p },
                OFlags::PATH | OFlags::DIRECTORY,
                Mode::empty(),
                in_root_flags(),
            )
            .unwrap();
            let user = resolve_in_root_userspace(&fd, p.as_bytes()).unwrap();
            assert_eq!(ino(&kernel), ino(&user), "{p}");
        }
        assert_eq!(
            resolve_in_root_userspace(&fd, b"loop1").unwrap_err(),
            Errno::LOOP
        );
        assert_eq!(
            resolve_in_root_userspace(&fd, b"nope").unwrap_err(),
            Errno::NOENT
        );
    }

    #[test]
    fn cleans_names() {
        assert_eq!(clean(b"/a/./b//c/").unwrap(), b"a/b/c");
        assert_eq!(clean(b"a/../b").unwrap(), b"b");
        assert!(clean(b"../x").is_none());
        assert!(clean(b"/abs/../../x").is_none());
        assert_eq!(clean(b"./").unwrap(), b"");
    }
}
