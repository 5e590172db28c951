//! Walking a host directory into layer entries.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, Metadata};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::entry::{normalize_path, Entry, EntryKind, FileSource};
use crate::{Error, Result};

/// Which extended attributes a walk records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XattrPolicy {
    /// None.
    None,
    /// Only `security.capability` (what Docker and containerd put in layers; other
    /// xattrs such as SELinux labels are host-specific and break reproducibility).
    #[default]
    Capability,
    /// Every xattr except `system.*` (ACLs are kept out: they are host-specific).
    All,
}

/// Options of [`walk_dir`].
#[derive(Debug, Clone)]
pub struct WalkOptions {
    /// Which xattrs to record. Default: [`XattrPolicy::Capability`].
    pub xattrs: XattrPolicy,
    /// Detect hard links by (device, inode) among files with more than one link:
    /// the first one walked is a file, later ones are [`EntryKind::Hardlink`]s to
    /// it. Default: true.
    pub hardlinks: bool,
    /// Emit an entry for the walked directory itself, at `prefix` (when `prefix`
    /// is not empty). Default: true.
    pub include_root: bool,
    /// Walk an overlayfs upper directory: also record `trusted.overlay.opaque` /
    /// `user.overlay.opaque`, and never turn whiteouts (0:0 character devices,
    /// which overlayfs hard-links together) into hard links (pair with
    /// [`WriteOptions::overlay_upper`](super::WriteOptions::overlay_upper)).
    /// Default: false.
    pub overlay_upper: bool,
}

impl Default for WalkOptions {
    fn default() -> Self {
        WalkOptions {
            xattrs: XattrPolicy::default(),
            hardlinks: true,
            include_root: true,
            overlay_upper: false,
        }
    }
}

/// A filter deciding, from a path relative to the walked directory and whether it
/// is a directory, whether an entry is included. Returning `false` for a
/// directory skips its whole subtree.
pub type WalkFilter<'a> = &'a dyn Fn(&Path, bool) -> bool;

/// Walk `dir` and return its entries under `prefix`, in layer order (sorted by
/// name bytes, each directory right before its contents). See [`walk`] for the
/// streaming form, and for the details.
pub fn walk_dir(
    dir: &Path,
    prefix: &str,
    opts: &WalkOptions,
    filter: &dyn Fn(&Path, bool) -> bool,
) -> Result<Vec<Entry>> {
    walk(dir, prefix, opts, filter)?.collect()
}

/// Walk `dir` lazily: an iterator of entries under `prefix` (an in-image path,
/// normalised with [`normalize_path`]), in layer order. Memory is bounded by the
/// depth of the tree and the size of the largest directory, not by the number of
/// files, so it pairs with [`LayerWriter::append_all`](super::LayerWriter::append_all)
/// for trees of any size.
///
/// - Symlinks inside `dir` are recorded, never followed; `dir` itself is followed.
/// - When `dir` is not a directory, the walk yields one entry for it at `prefix`.
/// - Entries hold host paths ([`FileSource::Path`]), not contents; uid, gid, mode
///   and mtime are the file's own (the [`WriteOptions`](super::WriteOptions) policies
///   apply when writing).
/// - Names that are not UTF-8 are refused with an error naming the path.
pub fn walk<'a>(
    dir: &Path,
    prefix: &str,
    opts: &WalkOptions,
    filter: WalkFilter<'a>,
) -> Result<Walk<'a>> {
    let prefix = normalize_path(prefix)?;
    let meta = fs::metadata(dir).map_err(|e| Error::io(dir, e))?;
    let mut w = Walk {
        base: dir.to_path_buf(),
        prefix,
        opts: opts.clone(),
        filter,
        stack: Vec::new(),
        links: HashMap::new(),
        first: None,
    };
    if meta.is_dir() {
        if w.opts.include_root && !w.prefix.is_empty() {
            let e = w.entry(w.prefix.clone(), dir, &meta);
            w.first = Some(e);
        }
        let names = list(dir)?;
        w.stack.push(Level {
            rel: String::new(),
            names,
            next: 0,
        });
    } else {
        if w.prefix.is_empty() {
            return Err(Error::Format(format!(
                "{}: a single file needs a non-empty destination path",
                dir.display()
            )));
        }
        let e = w.entry(w.prefix.clone(), dir, &meta);
        w.first = Some(e);
    }
    Ok(w)
}

struct Level {
    rel: String,
    names: Vec<String>,
    next: usize,
}

/// The iterator returned by [`walk`].
pub struct Walk<'a> {
    base: PathBuf,
    prefix: String,
    opts: WalkOptions,
    filter: WalkFilter<'a>,
    stack: Vec<Level>,
    links: HashMap<(u64, u64), String>,
    first: Option<Result<Entry>>,
}

impl std::fmt::Debug for Walk<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Walk")
            .field("base", &self.base)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn list(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for de in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let de = de.map_err(|e| Error::io(dir, e))?;
        let name = de.file_name().into_string().map_err(|n| {
            Error::Format(format!("{}: file name is not UTF-8", dir.join(n).display()))
        })?;
        names.push(name);
    }
    names.sort_unstable();
    Ok(names)
}

impl Walk<'_> {
    fn entry(&mut self, path: String, host: &Path, meta: &Metadata) -> Result<Entry> {
        let ft = meta.file_type();
        // Hard links: the first path walked for a (device, inode) with several
        // links is the file; later ones link to it.
        // overlayfs hard-links its whiteouts (0:0 character devices) to one shared
        // inode: in an upper dir they must stay whiteouts, not links to each other.
        let overlay_whiteout = self.opts.overlay_upper && ft.is_char_device() && meta.rdev() == 0;
        let mut link_to = None;
        if self.opts.hardlinks && !ft.is_dir() && !overlay_whiteout && meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            match self.links.get(&key) {
                Some(first) => link_to = Some(first.clone()),
                None => {
                    self.links.insert(key, path.clone());
                }
            }
        }
        let kind = if ft.is_dir() {
            EntryKind::Dir
        } else if let Some(first) = link_to {
            EntryKind::Hardlink(first)
        } else if ft.is_symlink() {
            let t = fs::read_link(host).map_err(|e| Error::io(host, e))?;
            let t = t.into_os_string().into_string().map_err(|_| {
                Error::Format(format!("{}: symlink target is not UTF-8", host.display()))
            })?;
            EntryKind::Symlink(t)
        } else if ft.is_file() {
            EntryKind::File {
                source: FileSource::Path(host.to_path_buf()),
                size: meta.len(),
            }
        } else if ft.is_char_device() || ft.is_block_device() {
            let rdev = meta.rdev();
            let (major, minor) = (rustix::fs::major(rdev), rustix::fs::minor(rdev));
            if ft.is_char_device() {
                EntryKind::CharDevice { major, minor }
            } else {
                EntryKind::BlockDevice { major, minor }
            }
        } else if ft.is_fifo() {
            EntryKind::Fifo
        } else {
            return Err(Error::Format(format!(
                "{}: sockets cannot be put in a layer",
                host.display()
            )));
        };
        let xattrs = if ft.is_symlink() || matches!(kind, EntryKind::Hardlink(_)) {
            BTreeMap::new()
        } else {
            read_xattrs(
                host,
                self.opts.xattrs,
                self.opts.overlay_upper && ft.is_dir(),
            )?
        };
        Ok(Entry {
            path,
            kind,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            mtime: meta.mtime(),
            xattrs,
        })
    }
}

impl Iterator for Walk<'_> {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        loop {
            let top = self.stack.last_mut()?;
            if top.next >= top.names.len() {
                self.stack.pop();
                continue;
            }
            let name = std::mem::take(&mut top.names[top.next]);
            top.next += 1;
            let rel = if top.rel.is_empty() {
                name
            } else {
                format!("{}/{}", top.rel, name)
            };
            let host = self.base.join(&rel);
            let meta = match fs::symlink_metadata(&host) {
                Ok(m) => m,
                Err(e) => return Some(Err(Error::io(&host, e))),
            };
            let is_dir = meta.is_dir();
            if !(self.filter)(Path::new(&rel), is_dir) {
                continue;
            }
            let path = if self.prefix.is_empty() {
                rel.clone()
            } else {
                format!("{}/{}", self.prefix, rel)
            };
            let entry = self.entry(path, &host, &meta);
            if entry.is_ok() && is_dir {
                match list(&host) {
                    Ok(names) => self.stack.push(Level {
                        rel,
                        names,
                        next: 0,
                    }),
                    Err(e) => return Some(Err(e)),
                }
            }
            return Some(entry);
        }
    }
}

fn read_xattrs(
    path: &Path,
    policy: XattrPolicy,
    overlay: bool,
) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut names: Vec<String> = Vec::new();
    match policy {
        XattrPolicy::None => {}
        XattrPolicy::Capability => names.push("security.capability".into()),
        XattrPolicy::All => {
            let mut buf = vec![0u8; 4096];
            let n = loop {
                match rustix::fs::llistxattr(path, &mut buf[..]) {
                    Ok(n) => break n,
                    Err(rustix::io::Errno::RANGE) => buf.resize(buf.len() * 4, 0),
                    Err(rustix::io::Errno::NOTSUP) => break 0,
                    Err(e) => return Err(Error::io(path, e.into())),
                }
            };
            for raw in buf[..n].split(|&b| b == 0).filter(|s| !s.is_empty()) {
                if let Ok(name) = std::str::from_utf8(raw) {
                    if !name.starts_with("system.") {
                        names.push(name.to_string());
                    }
                }
            }
        }
    }
    if overlay {
        names.push("trusted.overlay.opaque".into());
        names.push("user.overlay.opaque".into());
    }
    for name in names {
        let mut buf = vec![0u8; 256];
        loop {
            match rustix::fs::lgetxattr(path, name.as_str(), &mut buf[..]) {
                Ok(n) => {
                    buf.truncate(n);
                    out.insert(name, buf);
                    break;
                }
                Err(rustix::io::Errno::RANGE) => buf.resize(buf.len() * 8, 0),
                Err(rustix::io::Errno::NODATA)
                | Err(rustix::io::Errno::NOTSUP)
                | Err(rustix::io::Errno::PERM)
                | Err(rustix::io::Errno::ACCESS) => break,
                Err(e) => return Err(Error::io(path, e.into())),
            }
        }
    }
    Ok(out)
}
