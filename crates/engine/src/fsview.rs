//! A metadata view of an image's merged filesystem, built from layer tar headers.
//!
//! COPY needs to know what already exists in the image (existing directories keep
//! their owner and mode; a destination that is an existing directory receives the
//! source inside it; symlinks in a destination path are followed inside the root),
//! and `--chown`/`USER` need `/etc/passwd`. The view answers those questions in the
//! container's terms (uids as the tar headers say, whatever the host user), without
//! unpacking anything: each layer's headers are streamed once and merged with OCI
//! whiteout semantics.

use std::collections::BTreeMap;
use std::io::Read;
use std::ops::Bound;

use hoist_image::layer::Entry;
use hoist_image::layer::EntryKind;

use crate::error::Result;

/// The kind of a filesystem object in the view.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Kind {
    /// A regular file of this size.
    File(u64),
    /// A directory.
    Dir,
    /// A symbolic link to this target.
    Symlink(String),
    /// A hard link to another path in the image.
    Hardlink(String),
    /// A device, fifo or other special file.
    Special,
}

/// Metadata of one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// What it is.
    pub kind: Kind,
    /// Permission bits (with setuid/setgid/sticky).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time (seconds).
    pub mtime: i64,
    /// Index of the layer that last wrote it.
    pub layer: usize,
}

impl Meta {
    /// Whether it is a directory.
    pub fn is_dir(&self) -> bool {
        self.kind == Kind::Dir
    }
}

/// The merged metadata of a stack of layers. Paths are relative, without a leading `/`;
/// the root itself is `""` and always a directory.
#[derive(Debug, Clone, Default)]
pub struct FsView {
    entries: BTreeMap<String, Meta>,
    layers: usize,
}

impl FsView {
    /// An empty filesystem (`FROM scratch`).
    pub fn new() -> FsView {
        FsView::default()
    }

    /// Number of layers merged so far.
    pub fn layer_count(&self) -> usize {
        self.layers
    }

    /// Merge an (uncompressed) layer tar stream's headers on top.
    pub fn add_layer_tar(&mut self, tar_stream: impl Read) -> Result<()> {
        let name = hoist_image::layer::LayerName {
            index: Some(self.layers),
            digest: None,
        };
        let index = index_from_tar(tar_stream, name)?;
        self.add_layer_index(&index);
        Ok(())
    }

    /// Merge a layer's metadata index (see [`index_from_tar`]) on top.
    pub fn add_layer_index(&mut self, index: &[IndexEntry]) {
        let layer = self.layers;
        for e in index {
            match &e.op {
                IndexOp::Opaque => self.remove_below(&e.path, Some(layer)),
                IndexOp::Whiteout => self.remove_tree(&e.path),
                IndexOp::Put(kind) => self.insert(
                    e.path.clone(),
                    Meta {
                        kind: kind.clone(),
                        mode: e.mode,
                        uid: e.uid,
                        gid: e.gid,
                        mtime: e.mtime,
                        layer,
                    },
                ),
            }
        }
        self.layers += 1;
    }

    /// Merge the entries of a layer hoist is writing (no need to re-read the tar).
    pub fn add_layer_entries<'a>(&mut self, entries: impl IntoIterator<Item = &'a Entry>) {
        let layer = self.layers;
        for e in entries.into_iter().filter_map(index_entry) {
            if let IndexOp::Put(kind) = e.op {
                self.insert(
                    e.path,
                    Meta {
                        kind,
                        mode: e.mode,
                        uid: e.uid,
                        gid: e.gid,
                        mtime: e.mtime,
                        layer,
                    },
                );
            }
        }
        self.layers += 1;
    }

    /// Put one entry on top of the current layers (a COPY planning its layer sees what it
    /// wrote so far: symlinks it created are followed, directories it created exist).
    pub fn put(&mut self, entry: &Entry) {
        if let Some(IndexEntry {
            path,
            op: IndexOp::Put(kind),
            mode,
            uid,
            gid,
            mtime,
        }) = index_entry(entry)
        {
            let layer = self.layers;
            self.insert(
                path,
                Meta {
                    kind,
                    mode,
                    uid,
                    gid,
                    mtime,
                    layer,
                },
            );
        }
    }

    fn insert(&mut self, path: String, meta: Meta) {
        // A non-directory replacing a directory removes what was below it.
        if meta.kind != Kind::Dir {
            if let Some(old) = self.entries.get(&path) {
                if old.is_dir() {
                    self.remove_below(&path, None);
                }
            }
        }
        // Parents that no layer mentioned exist implicitly as root-owned 0755 dirs.
        let mut p = parent_of(&path);
        while !p.is_empty() && !self.entries.contains_key(p) {
            self.entries.insert(
                p.to_string(),
                Meta {
                    kind: Kind::Dir,
                    mode: 0o755,
                    uid: 0,
                    gid: 0,
                    mtime: 0,
                    layer: meta.layer,
                },
            );
            p = parent_of(p);
        }
        self.entries.insert(path, meta);
    }

    /// Remove everything strictly below `dir` (written by layers before `before`, if given).
    fn remove_below(&mut self, dir: &str, before: Option<usize>) {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let keys: Vec<String> = self
            .entries
            .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(_, m)| before.is_none_or(|b| m.layer < b))
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            self.entries.remove(&k);
        }
    }

    fn remove_tree(&mut self, path: &str) {
        self.entries.remove(path);
        self.remove_below(path, None);
    }

    /// Metadata of `path` exactly (no symlink resolution).
    pub fn get(&self, path: &str) -> Option<&Meta> {
        if path.is_empty() {
            return Some(&ROOT_META);
        }
        self.entries.get(path)
    }

    /// Resolve `path` (absolute or relative to `/`) inside the root, following symlinks in
    /// every component (and in the last one when `follow_last`). `..` never leaves the root.
    /// Components that do not exist are kept as they are.
    pub fn resolve(&self, path: &str, follow_last: bool) -> Result<String> {
        crate::inroot::resolve(self, path, follow_last)
    }

    /// Whether `path` (resolved) is a directory.
    pub fn is_dir(&self, path: &str) -> bool {
        match self.resolve(path, true) {
            Ok(p) => self.get(&p).is_some_and(Meta::is_dir),
            Err(_) => false,
        }
    }

    /// Iterate over `dir` and everything below it (exact paths, sorted).
    pub fn walk<'a>(&'a self, dir: &'a str) -> impl Iterator<Item = (&'a String, &'a Meta)> + 'a {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let start = if dir.is_empty() {
            String::new()
        } else {
            dir.to_string()
        };
        self.entries
            .range::<str, _>((Bound::Included(start.as_str()), Bound::Unbounded))
            .take_while(move |(k, _)| dir.is_empty() || *k == dir || k.starts_with(&prefix))
    }

    /// Number of paths.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the view is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl crate::inroot::Lookup for FsView {
    fn symlink_target(&self, rel: &str) -> Result<Option<String>> {
        Ok(match self.entries.get(rel) {
            Some(Meta {
                kind: Kind::Symlink(target),
                ..
            }) => Some(target.clone()),
            _ => None,
        })
    }
}

/// What one tar entry of a layer does to the filesystem.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum IndexOp {
    /// Adds or replaces the path.
    Put(Kind),
    /// `.wh.NAME`: deletes the path (stored as the victim's path).
    Whiteout,
    /// `.wh..wh..opq`: hides what lower layers had below the directory (stored as the dir).
    Opaque,
}

/// One entry of a layer's metadata index: enough to rebuild an [`FsView`] without the
/// layer's content.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IndexEntry {
    /// The path the entry concerns.
    pub path: String,
    /// What happens to it.
    pub op: IndexOp,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time.
    pub mtime: i64,
}

/// Read a layer's tar headers (contents are skipped) into a metadata index.
/// `layer` names the layer in errors.
pub fn index_from_tar(
    tar_stream: impl Read,
    layer: hoist_image::layer::LayerName,
) -> Result<Vec<IndexEntry>> {
    let mut out = Vec::new();
    let mut ar = tar::Archive::new(tar_stream);
    let entries = ar
        .entries()
        .map_err(|e| layer.error("reading the layer tar", e))?;
    for ent in entries {
        let ent = ent.map_err(|e| layer.error("reading the layer tar", e))?;
        let raw = String::from_utf8_lossy(&ent.path_bytes()).into_owned();
        let path = match hoist_image::layer::normalize_path(&raw) {
            Ok(p) => p,
            Err(_) => continue, // the applier rejects such entries; the view ignores them
        };
        if path.is_empty() {
            continue;
        }
        let (parent, name) = split(&path);
        if name == ".wh..wh..opq" {
            out.push(IndexEntry {
                path: parent.to_string(),
                op: IndexOp::Opaque,
                mode: 0,
                uid: 0,
                gid: 0,
                mtime: 0,
            });
            continue;
        }
        if let Some(victim) = name.strip_prefix(".wh.") {
            out.push(IndexEntry {
                path: join(parent, victim),
                op: IndexOp::Whiteout,
                mode: 0,
                uid: 0,
                gid: 0,
                mtime: 0,
            });
            continue;
        }
        let h = ent.header();
        let link = || {
            ent.link_name_bytes()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        };
        let kind = match h.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => Kind::File(ent.size()),
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Symlink => Kind::Symlink(link()),
            tar::EntryType::Link => {
                Kind::Hardlink(hoist_image::layer::normalize_path(&link()).unwrap_or_default())
            }
            _ => Kind::Special,
        };
        out.push(IndexEntry {
            path,
            op: IndexOp::Put(kind),
            mode: h.mode().unwrap_or(0o644) & 0o7777,
            uid: h.uid().unwrap_or(0) as u32,
            gid: h.gid().unwrap_or(0) as u32,
            mtime: h.mtime().unwrap_or(0) as i64,
        });
    }
    Ok(out)
}

/// The metadata index of entries hoist writes itself.
pub fn index_from_entries(entries: &[Entry]) -> Vec<IndexEntry> {
    entries.iter().filter_map(index_entry).collect()
}

/// Serialises as the metadata index of `entries` without building it in memory.
pub struct EntriesIndex<'a>(pub &'a [Entry]);

impl serde::Serialize for EntriesIndex<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().filter_map(index_entry))
    }
}

fn index_entry(e: &Entry) -> Option<IndexEntry> {
    (!e.path.is_empty()).then(|| IndexEntry {
        path: e.path.clone(),
        op: IndexOp::Put(match &e.kind {
            EntryKind::File { size, .. } => Kind::File(*size),
            EntryKind::Dir => Kind::Dir,
            EntryKind::Symlink(t) => Kind::Symlink(t.clone()),
            EntryKind::Hardlink(t) => Kind::Hardlink(t.clone()),
            _ => Kind::Special,
        }),
        mode: e.mode & 0o7777,
        uid: e.uid,
        gid: e.gid,
        mtime: e.mtime,
    })
}

static ROOT_META: Meta = Meta {
    kind: Kind::Dir,
    mode: 0o755,
    uid: 0,
    gid: 0,
    mtime: 0,
    layer: 0,
};

/// `a/b/c` → (`a/b`, `c`); `c` → (``, `c`).
pub fn split(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("", path),
    }
}

/// The parent of a relative path (`""` for top-level names).
pub fn parent_of(path: &str) -> &str {
    split(path).0
}

/// Join a relative directory and a name.
pub fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else if name.is_empty() {
        dir.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (p, t, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*t);
            h.set_mode(if *t == tar::EntryType::Directory {
                0o755
            } else {
                0o644
            });
            h.set_uid(7);
            h.set_size(0);
            if !link.is_empty() {
                h.set_link_name(link).unwrap();
            }
            b.append_data(&mut h, p, &[][..]).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn whiteouts_and_symlinks() {
        use tar::EntryType::*;
        let mut v = FsView::new();
        v.add_layer_tar(
            &tar_of(&[
                ("etc/", Directory, ""),
                ("etc/passwd", Regular, ""),
                ("var/run", Symlink, "/run"),
                ("run/", Directory, ""),
                ("a/b/c", Regular, ""),
                ("link", Symlink, "../../../a"),
            ])[..],
        )
        .unwrap();
        assert!(v.get("a/b").unwrap().is_dir());
        assert_eq!(v.resolve("/var/run/x", false).unwrap(), "run/x");
        assert_eq!(v.resolve("link/b", false).unwrap(), "a/b");
        assert_eq!(v.resolve("../../etc", false).unwrap(), "etc");
        assert_eq!(v.resolve("var/run", false).unwrap(), "var/run");
        v.add_layer_tar(
            &tar_of(&[
                ("a/.wh..wh..opq", Regular, ""),
                ("a/new", Regular, ""),
                ("etc/.wh.passwd", Regular, ""),
            ])[..],
        )
        .unwrap();
        assert!(v.get("a/b/c").is_none());
        assert!(v.get("a/new").is_some());
        assert!(v.get("etc/passwd").is_none());
        assert!(v.get("etc").is_some());
        let loop_ = tar_of(&[("x", Symlink, "y"), ("y", Symlink, "x")]);
        v.add_layer_tar(&loop_[..]).unwrap();
        assert!(v.resolve("x/z", false).is_err());
    }
}
