//! Random access to the members of a tar file without extracting it.
//!
//! The OCI-archive and docker-archive readers index the tar once (a streaming scan of
//! the headers, PAX and GNU long names included, seeking over the data), keeping only
//! each member's name, offset and size. A member is then read with positioned reads
//! (`pread`) on the shared file handle, so several members can stream at once and
//! memory stays proportional to the number of members, never to their size.
//!
//! ```text
//! archive.tar
//!   [hdr oci-layout][data][hdr blobs/sha256/ab…][data ………………][hdr index.json][data]…
//!                    ^offset,size              ^offset,size
//! ```
//!
//! Archives are untrusted: member names that are absolute or contain `..` are refused
//! when indexing, names looked up are normalised the same way, and symbolic or hard
//! links between members (which `docker save` uses for repeated layers) are followed
//! only inside the archive and only a few levels deep.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::{Error, Result};

/// Most members an archive may have (a hostile archive cannot exhaust memory).
pub const MAX_MEMBERS: usize = 1_000_000;

/// How deep links between members are followed.
const MAX_LINK_HOPS: usize = 16;

#[derive(Debug, Clone)]
enum Member {
    File {
        offset: u64,
        size: u64,
    },
    Dir,
    /// A symbolic link; the target is relative to the link's directory (or absolute,
    /// meaning relative to the archive root).
    Symlink(String),
    /// A hard link to another member (by archive path).
    Hardlink(String),
}

/// An index of a tar file's members (see the module docs).
#[derive(Debug, Clone)]
pub struct TarIndex {
    path: PathBuf,
    file: Arc<File>,
    members: BTreeMap<String, Member>,
}

/// Normalise a member name: strip `./` and duplicate or trailing slashes; refuse
/// absolute names, `..` components and empty names.
pub fn normalize_member_name(name: &str) -> Result<String> {
    let unsafe_entry = |reason: &str| Error::UnsafeEntry {
        entry: name.chars().take(200).collect(),
        reason: reason.to_string(),
    };
    if name.starts_with('/') {
        return Err(unsafe_entry("absolute member name"));
    }
    if name.contains('\0') {
        return Err(unsafe_entry("NUL byte in member name"));
    }
    let mut parts = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(unsafe_entry("member name contains '..'")),
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Err(unsafe_entry("empty member name"));
    }
    Ok(parts.join("/"))
}

/// Resolve a link target against the directory of `link`, staying inside the archive.
fn resolve_link(link: &str, target: &str) -> Option<String> {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        let mut p: Vec<&str> = link.split('/').collect();
        p.pop();
        p
    };
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        None
    } else {
        Some(parts.join("/"))
    }
}

impl TarIndex {
    /// Open and index the tar file at `path`.
    pub fn open(path: &Path) -> Result<TarIndex> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let bad = |e: io::Error| {
            Error::Format(format!("{}: not a valid tar archive: {e}", path.display()))
        };
        let mut members = BTreeMap::new();
        {
            let mut archive = tar::Archive::new(&file);
            for entry in archive.entries_with_seek().map_err(bad)? {
                let entry = entry.map_err(bad)?;
                let raw_name = entry.path_bytes();
                let raw_name = String::from_utf8_lossy(&raw_name).into_owned();
                let is_dir = entry.header().entry_type() == tar::EntryType::Directory;
                if is_dir && raw_name.split('/').all(|c| c.is_empty() || c == ".") {
                    // The archive's root (`./`, as `tar -C dir -cf x.tar .` writes).
                    continue;
                }
                let name = normalize_member_name(&raw_name).map_err(|e| match e {
                    Error::UnsafeEntry { entry, reason } => Error::UnsafeEntry {
                        entry,
                        reason: format!("{reason} in {}", path.display()),
                    },
                    e => e,
                })?;
                let link = || -> Result<String> {
                    let l = entry.link_name_bytes().ok_or_else(|| {
                        Error::Format(format!(
                            "{}: link member {name} has no target",
                            path.display()
                        ))
                    })?;
                    Ok(String::from_utf8_lossy(&l).into_owned())
                };
                let member = match entry.header().entry_type() {
                    tar::EntryType::Regular | tar::EntryType::Continuous => Member::File {
                        offset: entry.raw_file_position(),
                        size: entry.size(),
                    },
                    tar::EntryType::Directory => Member::Dir,
                    tar::EntryType::Symlink => Member::Symlink(link()?),
                    tar::EntryType::Link => Member::Hardlink(normalize_member_name(&link()?)?),
                    tar::EntryType::GNUSparse => {
                        return Err(Error::Format(format!(
                            "{}: sparse member {name} is not supported",
                            path.display()
                        )))
                    }
                    // Devices, FIFOs and the like have no place in an image archive;
                    // they are indexed as nothing and so cannot be read.
                    _ => continue,
                };
                if members.len() >= MAX_MEMBERS {
                    return Err(Error::Format(format!(
                        "{}: more than {MAX_MEMBERS} members",
                        path.display()
                    )));
                }
                members.insert(name, member);
            }
        }
        tracing::debug!(path = %path.display(), members = members.len(), "indexed tar archive");
        Ok(TarIndex {
            path: path.to_path_buf(),
            file: Arc::new(file),
            members,
        })
    }

    /// The archive's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every member name (normalised), in sorted order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.members.keys().map(String::as_str)
    }

    fn lookup(&self, name: &str) -> Result<(u64, u64)> {
        let mut current = normalize_member_name(name)?;
        for _ in 0..MAX_LINK_HOPS {
            match self.members.get(&current) {
                Some(Member::File { offset, size }) => return Ok((*offset, *size)),
                Some(Member::Dir) => {
                    return Err(Error::Format(format!(
                        "{}: {current} is a directory",
                        self.path.display()
                    )))
                }
                Some(Member::Symlink(target)) => {
                    current = resolve_link(&current, target).ok_or_else(|| Error::UnsafeEntry {
                        entry: current.clone(),
                        reason: format!("symbolic link to {target:?} points outside the archive"),
                    })?;
                }
                Some(Member::Hardlink(target)) => current = target.clone(),
                None => {
                    return Err(Error::NotFound(format!(
                        "{} in {}",
                        current,
                        self.path.display()
                    )))
                }
            }
        }
        Err(Error::Format(format!(
            "{}: too many levels of links resolving {name}",
            self.path.display()
        )))
    }

    /// Whether a (regular, possibly linked) member exists.
    pub fn contains(&self, name: &str) -> bool {
        self.lookup(name).is_ok()
    }

    /// The size of a member.
    pub fn size(&self, name: &str) -> Result<u64> {
        self.lookup(name).map(|(_, size)| size)
    }

    /// Stream a member's content.
    pub fn open_member(&self, name: &str) -> Result<MemberReader> {
        let (offset, size) = self.lookup(name)?;
        Ok(MemberReader {
            file: self.file.clone(),
            pos: offset,
            end: offset + size,
        })
    }

    /// Read a small member fully, refusing members larger than `limit`.
    pub fn read_member(&self, name: &str, limit: u64) -> Result<Vec<u8>> {
        let (_, size) = self.lookup(name)?;
        if size > limit {
            return Err(Error::Format(format!(
                "{}: {name} is {size} bytes, more than the {limit} allowed",
                self.path.display()
            )));
        }
        let mut out = Vec::with_capacity(size as usize);
        self.open_member(name)?
            .read_to_end(&mut out)
            .map_err(|e| Error::io(&self.path, e))?;
        Ok(out)
    }
}

/// A reader over one member of a [`TarIndex`], using positioned reads.
#[derive(Debug)]
pub struct MemberReader {
    file: Arc<File>,
    pos: u64,
    end: u64,
}

impl MemberReader {
    /// Bytes left to read.
    pub fn remaining(&self) -> u64 {
        self.end - self.pos
    }
}

impl Read for MemberReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = (self.end - self.pos).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "archive truncated inside a member",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_and_refuses() {
        assert_eq!(normalize_member_name("./a//b/").unwrap(), "a/b");
        for bad in ["/etc/passwd", "../x", "a/../../x", "a/..", "", "./", "a\0b"] {
            assert!(normalize_member_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            resolve_link("a/b/layer.tar", "../c/layer.tar").unwrap(),
            "a/c/layer.tar"
        );
        assert_eq!(resolve_link("a/layer.tar", "/c").unwrap(), "c");
        assert!(resolve_link("a/layer.tar", "../../x").is_none());
    }

    fn build(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        let mut b = tar::Builder::new(f.reopen().unwrap());
        for (name, kind, data, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            if let Some(l) = link {
                b.append_link(&mut h, name, l).unwrap();
            } else {
                b.append_data(&mut h, name, *data).unwrap();
            }
        }
        b.into_inner().unwrap();
        f
    }

    #[test]
    fn index_read_links_and_long_names() {
        let long = format!("{}/file", "d".repeat(150));
        let f = build(&[
            ("./a/one", tar::EntryType::Regular, b"hello", None),
            (&long, tar::EntryType::Regular, b"long name", None),
            ("b/link", tar::EntryType::Symlink, b"", Some("../a/one")),
            ("b/hard", tar::EntryType::Link, b"", Some("a/one")),
            (
                "b/evil",
                tar::EntryType::Symlink,
                b"",
                Some("../../etc/passwd"),
            ),
        ]);
        let idx = TarIndex::open(f.path()).unwrap();
        assert_eq!(idx.read_member("a/one", 100).unwrap(), b"hello");
        assert_eq!(idx.read_member(&long, 100).unwrap(), b"long name");
        assert_eq!(idx.read_member("b/link", 100).unwrap(), b"hello");
        assert_eq!(idx.read_member("b/hard", 100).unwrap(), b"hello");
        assert!(matches!(
            idx.read_member("b/evil", 100),
            Err(Error::UnsafeEntry { .. })
        ));
        assert!(idx.read_member("a/one", 2).is_err());
        assert!(matches!(idx.open_member("nope"), Err(Error::NotFound(_))));
        assert!(matches!(
            idx.open_member("../../etc/passwd"),
            Err(Error::UnsafeEntry { .. })
        ));
    }

    #[test]
    fn refuses_dotdot_members() {
        // tar::Builder refuses `..` itself, so write the header by hand.
        let f = tempfile::NamedTempFile::new().unwrap();
        let mut b = tar::Builder::new(f.reopen().unwrap());
        let mut h = tar::Header::new_ustar();
        h.as_mut_bytes()[..4].copy_from_slice(b"../x");
        h.set_size(1);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, &b"x"[..]).unwrap();
        b.into_inner().unwrap();
        let e = TarIndex::open(f.path()).unwrap_err();
        assert!(matches!(e, Error::UnsafeEntry { .. }), "{e}");
    }
}
