//! The snapshot differ, for hosts where overlayfs cannot be mounted in a user namespace.
//!
//! The lower layers are copied into one `merged` directory, a metadata snapshot of it is
//! taken, the command runs on it, and afterwards the differences are written into the
//! upper directory in exactly the form overlayfs would have produced (changed and new
//! entries with their parents, 0:0 character-device whiteouts, `user.overlay.opaque`
//! on replaced directories), so the same layer writer turns either into a layer.
//!
//! Change detection uses the inode number and birth time (identity) and `ctime`, which
//! every content, metadata or link-count change updates and which no process inside
//! the sandbox can set back.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::fork;
use crate::{Error, Result};

const OPAQUE_KEYS: [&[u8]; 2] = [b"user.overlay.opaque", b"trusted.overlay.opaque"];

fn io(p: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::io(p, e)
}

fn sorted_names(dir: &Path) -> Result<Vec<OsString>> {
    let mut names: Vec<OsString> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()
        .map_err(io(dir))?;
    names.sort();
    Ok(names)
}

fn is_whiteout(m: &std::fs::Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn is_opaque(p: &Path) -> bool {
    OPAQUE_KEYS
        .iter()
        .any(|k| fork::lgetxattr(p, k).map(|v| v == b"y").unwrap_or(false))
}

fn remove_any(p: &Path) -> Result<()> {
    match std::fs::symlink_metadata(p) {
        Err(_) => Ok(()),
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p).map_err(io(p)),
        Ok(_) => std::fs::remove_file(p).map_err(io(p)),
    }
}

/// Copy owner, mode, xattrs (but overlay's own) and times of `src` onto `dst`.
fn copy_meta(src: &Path, m: &std::fs::Metadata, dst: &Path) -> Result<()> {
    fork::lchown(dst, m.uid(), m.gid()).map_err(io(dst))?;
    if !m.file_type().is_symlink() {
        std::fs::set_permissions(dst, std::fs::Permissions::from_mode(m.mode() & 0o7777))
            .map_err(io(dst))?;
    }
    if let Ok(names) = fork::llistxattr(src) {
        for n in names {
            if n.starts_with(b"user.overlay.") || n.starts_with(b"trusted.overlay.") {
                continue;
            }
            if let Ok(v) = fork::lgetxattr(src, &n) {
                if let Err(e) = fork::lsetxattr(dst, &n, &v) {
                    tracing::debug!(path = %dst.display(), error = %e, "xattr not copied");
                }
            }
        }
    }
    fork::set_times_nofollow(
        dst,
        (m.atime(), m.atime_nsec()),
        (m.mtime(), m.mtime_nsec()),
    )
    .map_err(io(dst))
}

/// Copy one non-directory entry; hard links among copied files are kept through `links`.
fn copy_node(
    src: &Path,
    m: &std::fs::Metadata,
    dst: &Path,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<()> {
    let ft = m.file_type();
    if ft.is_file() {
        if m.nlink() > 1 {
            if let Some(first) = links.get(&(m.dev(), m.ino())) {
                return std::fs::hard_link(first, dst).map_err(io(dst));
            }
            links.insert((m.dev(), m.ino()), dst.to_path_buf());
        }
        std::fs::copy(src, dst).map_err(io(dst))?;
    } else if ft.is_symlink() {
        let t = std::fs::read_link(src).map_err(io(src))?;
        std::os::unix::fs::symlink(t, dst).map_err(io(dst))?;
    } else if is_whiteout(m) {
        fork::mknod_whiteout(dst).map_err(io(dst))?;
    } else {
        // Devices, fifos and sockets: not representable without privileges; skipped.
        tracing::warn!(path = %src.display(), "snapshot differ skips special file");
        return Ok(());
    }
    copy_meta(src, m, dst)
}

/// Copy a whole directory tree (used for new and replaced directories).
fn copy_tree(src: &Path, dst: &Path, links: &mut HashMap<(u64, u64), PathBuf>) -> Result<()> {
    let m = std::fs::symlink_metadata(src).map_err(io(src))?;
    if !m.is_dir() {
        return copy_node(src, &m, dst, links);
    }
    std::fs::create_dir(dst).map_err(io(dst))?;
    for n in sorted_names(src)? {
        copy_tree(&src.join(&n), &dst.join(&n), links)?;
    }
    copy_meta(src, &m, dst)
}

/// Merge overlay lower directories (BOTTOM first) into `merged`, applying their
/// whiteouts and opaque directories.
pub fn merge_lowers(lowers: &[PathBuf], merged: &Path) -> Result<()> {
    for l in lowers {
        let mut links = HashMap::new();
        merge_dir(l, merged, &mut links)?;
    }
    Ok(())
}

fn merge_dir(src: &Path, dst: &Path, links: &mut HashMap<(u64, u64), PathBuf>) -> Result<()> {
    for n in sorted_names(src)? {
        let s = src.join(&n);
        let d = dst.join(&n);
        let m = std::fs::symlink_metadata(&s).map_err(io(&s))?;
        if is_whiteout(&m) {
            remove_any(&d)?;
            continue;
        }
        if m.is_dir() {
            let existing_dir = std::fs::symlink_metadata(&d)
                .map(|x| x.is_dir())
                .unwrap_or(false);
            if !existing_dir || is_opaque(&s) {
                remove_any(&d)?;
                std::fs::create_dir(&d).map_err(io(&d))?;
            }
            merge_dir(&s, &d, links)?;
            copy_meta(&s, &m, &d)?;
        } else {
            remove_any(&d)?;
            copy_node(&s, &m, &d, links)?;
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Meta {
    ino: u64,
    /// Birth time where the file system records it: inode numbers are reused at once
    /// on ext4, so `(ino, btime)` is the identity.
    btime: Option<std::time::SystemTime>,
    ctime: (i64, i64),
    is_dir: bool,
    kind: u32,
}

/// A metadata snapshot of a tree (relative path -> identity and ctime).
#[derive(Debug, Default)]
pub struct Snapshot {
    entries: HashMap<PathBuf, Meta>,
    children: HashMap<PathBuf, Vec<OsString>>,
}

impl Snapshot {
    /// Take a snapshot of `root`.
    pub fn take(root: &Path) -> Result<Snapshot> {
        let mut s = Snapshot::default();
        s.walk(root, PathBuf::new())?;
        Ok(s)
    }

    fn walk(&mut self, root: &Path, rel: PathBuf) -> Result<()> {
        let dir = root.join(&rel);
        let names = sorted_names(&dir)?;
        for n in &names {
            let r = rel.join(n);
            let p = root.join(&r);
            let m = std::fs::symlink_metadata(&p).map_err(io(&p))?;
            self.entries.insert(r.clone(), meta_of(&m));
            if m.is_dir() {
                self.walk(root, r)?;
            }
        }
        self.children.insert(rel, names);
        Ok(())
    }

    /// Whether `rel` was in the tree.
    pub fn contains(&self, rel: &Path) -> bool {
        self.entries.contains_key(rel)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the snapshot is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn meta_of(m: &std::fs::Metadata) -> Meta {
    Meta {
        ino: m.ino(),
        btime: m.created().ok(),
        ctime: (m.ctime(), m.ctime_nsec()),
        is_dir: m.is_dir(),
        kind: m.mode() & libc::S_IFMT,
    }
}

struct Differ<'a> {
    merged: &'a Path,
    upper: &'a Path,
    snap: &'a Snapshot,
    links: HashMap<(u64, u64), PathBuf>,
    made_dirs: Vec<PathBuf>,
    made: HashSet<PathBuf>,
}

impl Differ<'_> {
    /// Make sure the parents of `rel` exist in the upper dir (overlay's copy-up of
    /// parent directories, with their metadata).
    fn parents(&mut self, rel: &Path) -> Result<()> {
        let mut todo = Vec::new();
        let mut cur = rel.parent();
        while let Some(p) = cur {
            if p.as_os_str().is_empty() || self.made.contains(p) {
                break;
            }
            todo.push(p.to_path_buf());
            cur = p.parent();
        }
        for p in todo.into_iter().rev() {
            self.dir(&p, false)?;
        }
        Ok(())
    }

    fn dir(&mut self, rel: &Path, opaque: bool) -> Result<()> {
        let u = self.upper.join(rel);
        if !self.made.contains(rel) {
            std::fs::create_dir(&u).map_err(io(&u))?;
            self.made.insert(rel.to_path_buf());
            self.made_dirs.push(rel.to_path_buf());
        }
        if opaque {
            fork::lsetxattr(&u, b"user.overlay.opaque", b"y").map_err(io(&u))?;
        }
        Ok(())
    }

    fn walk(&mut self, rel: &Path) -> Result<()> {
        let dir = self.merged.join(rel);
        let names = sorted_names(&dir)?;
        let now: HashSet<&OsString> = names.iter().collect();
        if let Some(old) = self.snap.children.get(rel) {
            for n in old {
                if !now.contains(n) {
                    let r = rel.join(n);
                    self.parents(&r)?;
                    let u = self.upper.join(&r);
                    fork::mknod_whiteout(&u).map_err(io(&u))?;
                }
            }
        }
        for n in &names {
            let r = rel.join(n);
            let p = self.merged.join(&r);
            let m = std::fs::symlink_metadata(&p).map_err(io(&p))?;
            let cur = meta_of(&m);
            match self.snap.entries.get(&r) {
                None => {
                    self.parents(&r)?;
                    copy_tree(&p, &self.upper.join(&r), &mut self.links)?;
                }
                Some(old)
                    if old.kind != cur.kind || old.ino != cur.ino || old.btime != cur.btime =>
                {
                    self.parents(&r)?;
                    if cur.is_dir {
                        // Replaced directory: opaque, with all its new content.
                        self.dir(&r, true)?;
                        for c in sorted_names(&p)? {
                            copy_tree(&p.join(&c), &self.upper.join(r.join(&c)), &mut self.links)?;
                        }
                    } else {
                        copy_node(&p, &m, &self.upper.join(&r), &mut self.links)?;
                    }
                }
                Some(old) if cur.is_dir => {
                    if old.ctime != cur.ctime {
                        self.parents(&r)?;
                        self.dir(&r, false)?;
                    }
                    self.walk(&r)?;
                }
                Some(old) => {
                    if old.ctime != cur.ctime {
                        self.parents(&r)?;
                        copy_node(&p, &m, &self.upper.join(&r), &mut self.links)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Write the differences between `snap` and the current `merged` tree into `upper`
/// (an empty directory) in overlayfs upper format.
pub fn diff_into_upper(merged: &Path, snap: &Snapshot, upper: &Path) -> Result<()> {
    let mut d = Differ {
        merged,
        upper,
        snap,
        links: HashMap::new(),
        made_dirs: Vec::new(),
        made: HashSet::new(),
    };
    d.walk(Path::new(""))?;
    // Directory metadata last, deepest first, so adding entries does not change mtimes.
    let mut dirs = std::mem::take(&mut d.made_dirs);
    dirs.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for rel in dirs {
        let src = merged.join(&rel);
        let m = std::fs::symlink_metadata(&src).map_err(io(&src))?;
        copy_meta(&src, &m, &upper.join(&rel))?;
    }
    Ok(())
}

/// Remove from `upper` the directories that are empty, not opaque, and have the same
/// mode and owner as in the lower dirs (`lowers` TOP first): they were only copied up
/// because an entry was created and removed inside them (a mount point, a temp file),
/// and would otherwise put a meaningless directory entry in the layer. Walks the upper
/// dir only, so it costs time proportional to the change.
pub fn prune_unchanged_dirs(upper: &Path, lowers: &[PathBuf]) -> Result<()> {
    prune(upper, Path::new(""), lowers).map(drop)
}

/// Returns whether `rel` was removed.
fn prune(upper: &Path, rel: &Path, lowers: &[PathBuf]) -> Result<bool> {
    let dir = upper.join(rel);
    let mut empty = true;
    for n in sorted_names(&dir)? {
        let r = rel.join(&n);
        let m = std::fs::symlink_metadata(upper.join(&r)).map_err(io(&dir))?;
        if !(m.is_dir() && prune(upper, &r, lowers)?) {
            empty = false;
        }
    }
    if !empty || rel.as_os_str().is_empty() || is_opaque(&dir) {
        return Ok(false);
    }
    let m = std::fs::symlink_metadata(&dir).map_err(io(&dir))?;
    let lower = lowers
        .iter()
        .find_map(|l| std::fs::symlink_metadata(l.join(rel)).ok());
    match lower {
        Some(l)
            if l.is_dir() && l.mode() == m.mode() && l.uid() == m.uid() && l.gid() == m.gid() =>
        {
            std::fs::remove_dir(&dir).map_err(io(&dir))?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn differ_writes_overlay_upper_format() {
        let t = tempfile::tempdir().unwrap();
        let merged = t.path().join("m");
        let upper = t.path().join("u");
        fs::create_dir_all(merged.join("etc/sub")).unwrap();
        fs::create_dir_all(merged.join("gone/deep")).unwrap();
        fs::create_dir_all(merged.join("replaced/old")).unwrap();
        fs::write(merged.join("etc/passwd"), "root").unwrap();
        fs::write(merged.join("etc/keep"), "k").unwrap();
        fs::write(merged.join("etc/sub/x"), "x").unwrap();
        fs::write(merged.join("gone/deep/f"), "f").unwrap();
        fs::create_dir(&upper).unwrap();
        let snap = Snapshot::take(&merged).unwrap();
        assert!(snap.contains(Path::new("etc/sub/x")));
        // ctime has nanosecond resolution but may be coarse: make sure it moves.
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(merged.join("etc/passwd"), "root\nbob").unwrap();
        fs::write(merged.join("new"), "n").unwrap();
        fs::remove_dir_all(merged.join("gone")).unwrap();
        fs::remove_file(merged.join("etc/sub/x")).unwrap();
        fs::remove_dir_all(merged.join("replaced")).unwrap();
        fs::create_dir(merged.join("replaced")).unwrap();
        fs::write(merged.join("replaced/n"), "n").unwrap();
        fs::hard_link(merged.join("new"), merged.join("new2")).unwrap();
        diff_into_upper(&merged, &snap, &upper).unwrap();

        assert_eq!(
            fs::read_to_string(upper.join("etc/passwd")).unwrap(),
            "root\nbob"
        );
        assert!(!upper.join("etc/keep").exists());
        let wh = fs::symlink_metadata(upper.join("gone")).unwrap();
        assert!(is_whiteout(&wh));
        assert!(!upper.join("gone/deep").exists());
        assert!(is_whiteout(
            &fs::symlink_metadata(upper.join("etc/sub/x")).unwrap()
        ));
        assert!(is_opaque(&upper.join("replaced")));
        assert!(upper.join("replaced/n").exists());
        assert!(!upper.join("replaced/old").exists());
        let a = fs::metadata(upper.join("new")).unwrap();
        let b = fs::metadata(upper.join("new2")).unwrap();
        assert_eq!(a.ino(), b.ino());
    }

    #[test]
    fn merge_applies_whiteouts_and_opaque_dirs() {
        let t = tempfile::tempdir().unwrap();
        let l1 = t.path().join("l1");
        let l2 = t.path().join("l2");
        fs::create_dir_all(l1.join("d")).unwrap();
        fs::write(l1.join("d/a"), "a").unwrap();
        fs::write(l1.join("f"), "f").unwrap();
        fs::create_dir_all(l2.join("d")).unwrap();
        fs::write(l2.join("d/b"), "b").unwrap();
        fork::lsetxattr(&l2.join("d"), b"user.overlay.opaque", b"y").unwrap();
        fork::mknod_whiteout(&l2.join("f")).unwrap();
        let m = t.path().join("m");
        fs::create_dir(&m).unwrap();
        merge_lowers(&[l1, l2], &m).unwrap();
        assert!(!m.join("d/a").exists());
        assert!(m.join("d/b").exists());
        assert!(fs::symlink_metadata(m.join("f")).is_err());
    }
}
