//! The entries a layer is made of.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::{Error, Result};

/// One entry of a layer: a path in the image and what it is.
///
/// Entries hold *where* a file's content comes from, never the content of large
/// files, so a list of entries for a whole build context stays small.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The in-image path: relative, `/`-separated, normalised (no `.`/`..`
    /// components, no leading or trailing `/`, no empty components).
    /// See [`normalize_path`].
    pub path: String,
    /// What the entry is.
    pub kind: EntryKind,
    /// Permission bits plus setuid/setgid/sticky (`0o7777`); the file type bits are
    /// ignored.
    pub mode: u32,
    /// Owner user id (before [`Ownership`](super::Ownership) is applied).
    pub uid: u32,
    /// Owner group id (before [`Ownership`](super::Ownership) is applied).
    pub gid: u32,
    /// Modification time, seconds since the epoch (before
    /// [`MtimePolicy`](super::MtimePolicy) is applied).
    pub mtime: i64,
    /// Extended attributes (`security.capability`, `user.*`, ...), written as PAX
    /// `SCHILY.xattr.*` records.
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

/// The kind of a layer [`Entry`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File {
        /// Where the content comes from.
        source: FileSource,
        /// Its size in bytes. For [`FileSource::Path`] the file must still have
        /// exactly this size when the layer is written, or writing fails.
        size: u64,
    },
    /// A directory.
    Dir,
    /// A symbolic link to the given target (stored verbatim).
    Symlink(String),
    /// A hard link to an *earlier* entry of the same layer, named by its in-image
    /// path.
    Hardlink(String),
    /// A character device.
    CharDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A block device.
    BlockDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A named pipe.
    Fifo,
}

/// Where the content of a regular file comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileSource {
    /// Read from this host path when the layer is written (streamed, never held
    /// in memory).
    Path(PathBuf),
    /// These bytes: for small generated files (heredocs, generated configs).
    Bytes(Vec<u8>),
}

impl Entry {
    /// A directory entry with mode `0o755`, owned by 0:0, mtime 0.
    pub fn dir(path: impl Into<String>) -> Entry {
        Entry::new(path, EntryKind::Dir, 0o755)
    }

    /// A regular file with in-memory content, mode `0o644`, owned by 0:0, mtime 0.
    pub fn file_bytes(path: impl Into<String>, content: impl Into<Vec<u8>>) -> Entry {
        let content = content.into();
        let size = content.len() as u64;
        Entry::new(
            path,
            EntryKind::File {
                source: FileSource::Bytes(content),
                size,
            },
            0o644,
        )
    }

    /// A symlink entry (mode `0o777`), owned by 0:0, mtime 0.
    pub fn symlink(path: impl Into<String>, target: impl Into<String>) -> Entry {
        Entry::new(path, EntryKind::Symlink(target.into()), 0o777)
    }

    /// An entry of any kind, owned by 0:0, mtime 0, no xattrs.
    pub fn new(path: impl Into<String>, kind: EntryKind, mode: u32) -> Entry {
        Entry {
            path: path.into(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            mtime: 0,
            xattrs: BTreeMap::new(),
        }
    }

    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        matches!(self.kind, EntryKind::Dir)
    }
}

/// Normalise an in-image path: strip leading `/` and `./`, drop `.` and empty
/// components, resolve `..` lexically. Fails when `..` would climb above the root
/// or when the path contains a NUL byte. The root itself normalises to `""`.
///
/// ```
/// use hoist_image::layer::normalize_path;
/// assert_eq!(normalize_path("/usr//bin/./x").unwrap(), "usr/bin/x");
/// assert_eq!(normalize_path("a/b/../c/").unwrap(), "a/c");
/// assert!(normalize_path("a/../../etc").is_err());
/// ```
pub fn normalize_path(path: &str) -> Result<String> {
    if path.contains('\0') {
        return Err(Error::UnsafeEntry {
            entry: path.to_string(),
            reason: "path contains a NUL byte".into(),
        });
    }
    let mut parts: Vec<&str> = Vec::new();
    for comp in path.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(Error::UnsafeEntry {
                        entry: path.to_string(),
                        reason: "path escapes the root with `..`".into(),
                    });
                }
            }
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

/// Compare two normalised in-image paths in layer order: component by component,
/// each component by its bytes. A directory therefore sorts right before its
/// contents, and a directory's contents are contiguous (the order of a sorted
/// depth-first walk, as BuildKit and GNU tar `--sort=name` produce).
pub fn path_order(a: &str, b: &str) -> Ordering {
    a.split('/').cmp(b.split('/'))
}

/// Sort entries in layer order (see [`path_order`]). The sort is stable, so the
/// relative order of entries with the same path is kept (the last one wins when
/// the layer is applied).
pub fn sort_entries(entries: &mut [Entry]) {
    entries.sort_by(|a, b| path_order(&a.path, &b.path));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_paths() {
        assert_eq!(normalize_path("./a/b").unwrap(), "a/b");
        assert_eq!(normalize_path("/").unwrap(), "");
        assert_eq!(normalize_path("a/./b/..").unwrap(), "a");
        let err = normalize_path("../x").unwrap_err().to_string();
        assert!(err.contains("../x"), "{err}");
        assert!(normalize_path("/abs/../../x").is_err());
        assert!(normalize_path("a\0b").is_err());
    }

    #[test]
    fn orders_dirs_before_their_contents() {
        let mut v = vec!["a-c", "a/b", "a", "a/b/c", "B", "a.d"];
        v.sort_by(|a, b| path_order(a, b));
        assert_eq!(v, ["B", "a", "a/b", "a/b/c", "a-c", "a.d"]);
    }
}
