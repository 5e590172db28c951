//! Placing a blob that already exists as a local file into another blob
//! directory without reading it through userspace when the file system allows.
//!
//! In order of preference:
//!
//! 1. **reflink** (`FICLONE`: btrfs, XFS, bcachefs…): a copy-on-write clone, an
//!    independent inode that shares the extents; O(extents), no data copied.
//! 2. **hard link**, only when the source is *sealed* (no write permission bit:
//!    hoist's stores seal every blob read-only when it is committed, see
//!    [`seal`]): both names then point at one immutable inode.
//! 3. **`copy_file_range`** (in-kernel copy; server-side on NFS), through
//!    `std::io::copy` between two files, which falls back to `sendfile` and then
//!    to a plain read/write loop.
//!
//! The result always appears atomically under its digest name (a temporary name
//! in the same directory, then `rename`).

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// How a blob got into place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    /// It was already there (right size).
    Present,
    /// Cloned with `FICLONE`.
    Reflinked,
    /// Hard-linked to the (sealed) source.
    HardLinked,
    /// Copied (`copy_file_range`, `sendfile` or read/write).
    Copied,
}

/// The permission bits a sealed blob gets: `mode` without any write bit.
pub fn sealed_mode(mode: u32) -> u32 {
    mode & 0o7555
}

/// Make a committed blob read-only (its mode without write bits). Best effort: a
/// blob owned by another user stays as it is.
pub fn seal(file: &File) {
    if let Ok(m) = file.metadata() {
        let mode = m.permissions().mode() & 0o7777;
        if mode & 0o222 != 0 {
            let _ = file.set_permissions(fs::Permissions::from_mode(sealed_mode(mode)));
        }
    }
}

/// Whether `meta` describes a sealed regular file (safe to share by hard link).
pub fn is_sealed(meta: &fs::Metadata) -> bool {
    meta.is_file() && meta.permissions().mode() & 0o222 == 0
}

/// Put the content of `src` at `dest` (which must not be relied on to exist):
/// reflink, else hard link when `src` is sealed, else an in-kernel copy. The new
/// file (when not hard-linked) gets `mode`; `dest` appears atomically.
pub fn place_file(src: &Path, dest: &Path, mode: u32) -> io::Result<Placed> {
    let dir = dest
        .parent()
        .ok_or_else(|| io::Error::other(format!("{}: no parent directory", dest.display())))?;
    let from = File::open(src)?;
    let meta = from.metadata()?;
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-place-")
        .tempfile_in(dir)?;
    if rustix::fs::ioctl_ficlone(tmp.as_file(), &from).is_ok() {
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(mode))?;
        tmp.persist(dest).map_err(|e| e.error)?;
        return Ok(Placed::Reflinked);
    }
    if is_sealed(&meta) {
        // Link under a temporary name, then rename over: atomic, and an existing
        // `dest` (same content by its name) is simply replaced.
        let link = tmp.path().with_extension("link");
        match fs::hard_link(src, &link) {
            Ok(()) => {
                drop(tmp);
                if let Err(e) = fs::rename(&link, dest) {
                    let _ = fs::remove_file(&link);
                    return Err(e);
                }
                return Ok(Placed::HardLinked);
            }
            Err(e) => {
                tracing::debug!(src = %src.display(), error = %e, "hard link refused, copying")
            }
        }
    }
    let mut from = from;
    let mut out = tmp.reopen()?;
    let n = io::copy(&mut from, &mut out)?;
    if n != meta.len() {
        return Err(io::Error::other(format!(
            "{}: copied {n} bytes of {}",
            src.display(),
            meta.len()
        )));
    }
    out.sync_data()?;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))?;
    tmp.persist(dest).map_err(|e| e.error)?;
    Ok(Placed::Copied)
}

/// Copy `len` bytes of `src` (from its current offset) to `out` in the kernel
/// when possible (`std::io::copy` between files uses `copy_file_range`, then
/// `sendfile`), else through a buffer.
pub fn copy_range(src: &mut File, out: &mut File, len: u64) -> io::Result<()> {
    use std::io::Read;
    let n = io::copy(&mut src.take(len), out)?;
    if n != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("copied {n} of {len} bytes"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn sealed_source_is_hard_linked_or_reflinked_and_identical() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        fs::write(&src, b"blob content").unwrap();
        let f = File::open(&src).unwrap();
        seal(&f);
        assert!(is_sealed(&fs::metadata(&src).unwrap()));
        let dest = t.path().join("dest");
        let how = place_file(&src, &dest, 0o444).unwrap();
        assert!(
            matches!(how, Placed::HardLinked | Placed::Reflinked),
            "{how:?}"
        );
        assert_eq!(fs::read(&dest).unwrap(), b"blob content");
        if how == Placed::HardLinked {
            assert_eq!(
                fs::metadata(&src).unwrap().ino(),
                fs::metadata(&dest).unwrap().ino()
            );
        }
    }

    #[test]
    fn writable_source_is_never_hard_linked() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        fs::write(&src, vec![7u8; 300_000]).unwrap();
        let dest = t.path().join("dest");
        let how = place_file(&src, &dest, 0o444).unwrap();
        assert_ne!(how, Placed::HardLinked);
        assert_ne!(
            fs::metadata(&src).unwrap().ino(),
            fs::metadata(&dest).unwrap().ino()
        );
        assert_eq!(fs::read(&dest).unwrap(), vec![7u8; 300_000]);
        assert_eq!(
            fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
            0o444
        );
    }

    #[test]
    fn copy_range_copies_exactly() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        fs::write(&src, b"0123456789").unwrap();
        let mut from = File::open(&src).unwrap();
        let mut out = File::create(t.path().join("out")).unwrap();
        copy_range(&mut from, &mut out, 4).unwrap();
        assert_eq!(fs::read(t.path().join("out")).unwrap(), b"0123");
        assert!(copy_range(&mut from, &mut out, 100).is_err());
    }
}
