//! ADD's extraction of local tar archives, as BuildKit does it (`unpack` in its file
//! backend, moby `chrootarchive.Untar`).
//!
//! - A source is an archive when it is a regular file whose content, after gzip, bzip2,
//!   xz or zstd decompression (detected by magic bytes), starts with a valid tar header.
//! - It is extracted into the destination (created `0755`, owned by `--chown` or root),
//!   whatever the destination's spelling; `--chmod` does not apply to its entries.
//! - Entries keep their mode and owner (`--chown` replaces the owner); symlinks are
//!   `0777`; an existing directory takes the entry's metadata, anything else is
//!   replaced. Missing parents of an entry are created `0755`, owned by root.
//! - The extraction is confined to the destination as by a chroot: symlinks met on the
//!   way (the image's or the archive's own, `dir -> ..`) resolve inside it, so no entry
//!   is written below a symlink, and `..` cannot climb out.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::Path;

use hoist_image::layer::{Entry, EntryKind, FileSource};

use crate::copy::{DestState, MtimeRule};
use crate::error::{Error, Result};
use crate::fsview::{self, FsView, Kind};

/// The compression of a file that holds a tar archive (`"tar"` when uncompressed), or
/// `None` when it is no archive.
pub fn archive_kind(path: &Path) -> Result<Option<&'static str>> {
    let head = read_head(File::open(path).map_err(|e| Error::io(path, e))?, 6)
        .map_err(|e| Error::io(path, e))?;
    let kind = if head.starts_with(&[0x1f, 0x8b]) {
        "gzip"
    } else if head.starts_with(b"BZh") {
        "bzip2"
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        "xz"
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        "zstd"
    } else {
        "tar"
    };
    let Ok(r) = open_archive(path, kind) else {
        return Ok(None);
    };
    let block = read_head(r, 512).unwrap_or_default();
    Ok(valid_tar_header(&block).then_some(kind))
}

fn read_head(mut r: impl Read, n: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    let mut got = 0;
    while got < n {
        match r.read(&mut buf[got..])? {
            0 => break,
            k => got += k,
        }
    }
    buf.truncate(got);
    Ok(buf)
}

/// Go's `tar.Reader.Next` accepts a first block whose checksum is right (any format).
fn valid_tar_header(b: &[u8]) -> bool {
    if b.len() < 512 || b.iter().all(|&x| x == 0) {
        return false;
    }
    let field = String::from_utf8_lossy(&b[148..156]);
    let Ok(stored) = u32::from_str_radix(field.trim_matches(|c: char| c == ' ' || c == '\0'), 8)
    else {
        return false;
    };
    let sum: u32 = b
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            if (148..156).contains(&i) {
                32
            } else {
                x as u32
            }
        })
        .sum();
    sum == stored
}

fn open_archive(path: &Path, kind: &str) -> Result<Box<dyn Read>> {
    let f = BufReader::new(File::open(path).map_err(|e| Error::io(path, e))?);
    Ok(match kind {
        "gzip" => Box::new(flate2::bufread::MultiGzDecoder::new(f)),
        "bzip2" => Box::new(bzip2::bufread::MultiBzDecoder::new(f)),
        "xz" => Box::new(xz2::bufread::XzDecoder::new_multi_decoder(f)),
        "zstd" => Box::new(
            zstd::stream::read::Decoder::with_buffer(f)
                .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?,
        ),
        _ => Box::new(f),
    })
}

/// Resolve `rel` below `root` (both image paths), following every symlink, with `root`
/// acting as `/` (a chroot).
fn resolve_in(view: &FsView, root: &str, rel: &str) -> Result<String> {
    let base: Vec<String> = root
        .split('/')
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect();
    let mut done = base.clone();
    let mut todo: Vec<String> = rel
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(str::to_string)
        .rev()
        .collect();
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            if done.len() > base.len() {
                done.pop();
            }
            continue;
        }
        done.push(c);
        if let Some(Kind::Symlink(t)) = view.get(&done.join("/")).map(|m| &m.kind) {
            hops += 1;
            if hops > 255 {
                return Err(Error::Invalid(format!(
                    "too many levels of symbolic links in {rel}"
                )));
            }
            let t = t.clone();
            done.pop();
            if t.starts_with('/') {
                done = base.clone();
            }
            todo.extend(
                t.split('/')
                    .filter(|c| !c.is_empty() && *c != ".")
                    .map(str::to_string)
                    .rev(),
            );
        }
    }
    Ok(done.join("/"))
}

/// Extract the archive at `path` into the directory `dest_dir` (resolved, existing).
pub(crate) fn extract(
    dest: &mut DestState,
    path: &Path,
    kind: &str,
    dest_dir: &str,
    chown: Option<(u32, u32)>,
    mtime: MtimeRule,
    staging: &Path,
) -> Result<()> {
    let name = path.display().to_string();
    let err = |e: std::io::Error| Error::Invalid(format!("extracting {name}: {e}"));
    let staging = tempfile::Builder::new()
        .prefix("add-")
        .tempdir_in(staging)
        .map_err(|e| Error::io(staging, e))?
        .keep();
    let mut ar = tar::Archive::new(open_archive(path, kind)?);
    for (n, ent) in ar.entries().map_err(err)?.enumerate() {
        let mut ent = ent.map_err(err)?;
        let h = ent.header().clone();
        if matches!(
            h.entry_type(),
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
        ) {
            continue;
        }
        let raw = String::from_utf8_lossy(&ent.path_bytes()).into_owned();
        let rel = hoist_image::layer::normalize_path(&raw).map_err(|_| {
            Error::Invalid(format!(
                "{name}: archive entry {raw:?} escapes the destination"
            ))
        })?;
        if rel.is_empty() {
            continue; // "./": the destination itself, which exists
        }
        let (parent, leaf) = fsview::split(&rel);
        let parent_real = resolve_in(&dest.view, dest_dir, parent)?;
        dest.mkdir_all(&parent_real, 0o755, (0, 0), mtime.created())?;
        let target = fsview::join(&parent_real, leaf);
        let link = || {
            ent.link_name_bytes()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        };
        let mut mode = h.mode().unwrap_or(0o644) & 0o7777;
        let kind = match h.entry_type() {
            tar::EntryType::Directory => EntryKind::Dir,
            tar::EntryType::Symlink => {
                mode = 0o777;
                EntryKind::Symlink(link())
            }
            tar::EntryType::Link => {
                let t = link();
                let (tp, tl) = fsview::split(t.trim_start_matches('/'));
                let tp = resolve_in(&dest.view, dest_dir, tp)?;
                EntryKind::Hardlink(fsview::join(&tp, tl))
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let staged = staging.join(n.to_string());
                let mut f = File::create(&staged).map_err(|e| Error::io(&staged, e))?;
                let size = std::io::copy(&mut ent, &mut f).map_err(err)?;
                f.flush().map_err(|e| Error::io(&staged, e))?;
                EntryKind::File {
                    source: FileSource::Path(staged),
                    size,
                }
            }
            tar::EntryType::Fifo => EntryKind::Fifo,
            tar::EntryType::Char | tar::EntryType::Block => {
                let major = h.device_major().ok().flatten().unwrap_or(0);
                let minor = h.device_minor().ok().flatten().unwrap_or(0);
                if h.entry_type() == tar::EntryType::Char {
                    EntryKind::CharDevice { major, minor }
                } else {
                    EntryKind::BlockDevice { major, minor }
                }
            }
            other => {
                tracing::warn!("{name}: skipping {raw:?} of type {other:?}");
                continue;
            }
        };
        let mut e = Entry::new(target, kind, mode);
        (e.uid, e.gid) =
            chown.unwrap_or((h.uid().unwrap_or(0) as u32, h.gid().unwrap_or(0) as u32));
        e.mtime = mtime.for_source(h.mtime().unwrap_or(0) as i64);
        dest.put(e);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chroot_resolution_stays_in_the_destination() {
        let mut v = FsView::new();
        v.put(&Entry::dir("d"));
        v.put(&Entry::symlink("d/up", ".."));
        v.put(&Entry::symlink("d/abs", "/etc"));
        assert_eq!(resolve_in(&v, "d", "up/etc").unwrap(), "d/etc");
        assert_eq!(resolve_in(&v, "d", "up/up/x").unwrap(), "d/x");
        assert_eq!(resolve_in(&v, "d", "abs").unwrap(), "d/etc");
        assert_eq!(resolve_in(&v, "d", "../../x").unwrap(), "d/x");
    }

    #[test]
    fn tar_headers_are_recognised_by_checksum() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_old();
        h.set_path("f").unwrap();
        h.set_size(0);
        h.set_cksum();
        b.append(&h, &[][..]).unwrap();
        let data = b.into_inner().unwrap();
        assert!(valid_tar_header(&data[..512]));
        assert!(!valid_tar_header(&[0u8; 512]));
        assert!(!valid_tar_header(&[b'a'; 512]));
    }
}
