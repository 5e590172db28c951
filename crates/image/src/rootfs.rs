//! Flattening an image into a file system: `type=local` and `type=tar` outputs.
//!
//! [`unpack_rootfs`] applies every layer of the platform's image, base first, with
//! [`layer::apply_layer`](crate::layer::apply_layer) into a temporary directory
//! beside the destination, then renames it into place. [`write_rootfs_tar`] unpacks
//! the same way into a temporary directory and writes that tree as one plain tar
//! with the [`LayerWriter`], keeping the files' owners,
//! modes and mtimes. Each layer blob streams through a digest check; a layer whose
//! digest or size is wrong fails the output, which then never appears.

use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

use crate::docker_archive::DOCKER_LAYER_TAR;
use crate::fsutil::{AtomicDir, AtomicFile};
use crate::layer::{
    apply_layer_checked, walk, ApplyOptions, LayerWriter, MtimePolicy, OwnerMap, Ownership,
    WalkOptions, WriteOptions,
};
use crate::media_type::{self, Compression};
use crate::{open_verified, resolve, Error, Platform, Result, Source};

/// What [`unpack_rootfs`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnpackStats {
    /// Layers applied.
    pub layers: usize,
    /// Archive entries read, over all layers.
    pub entries: u64,
    /// Regular files written, over all layers.
    pub files: u64,
    /// Bytes of file content written, over all layers.
    pub bytes: u64,
    /// Entries changed for safety over all layers (see
    /// [`ApplyStats::unsafe_entries`](crate::layer::ApplyStats::unsafe_entries)), at most
    /// [`MAX_LISTED_UNSAFE`](crate::layer::MAX_LISTED_UNSAFE).
    pub unsafe_entries: Vec<String>,
    /// How many entries were changed for safety.
    pub unsafe_count: u64,
}

/// The compression a layer media type implies, if it is a layer type hoist knows
/// (the media_type table plus Docker's uncompressed layer type). `None` for an
/// unknown type: the applier then sniffs the content.
fn compression_of(mt: &str) -> Option<Compression> {
    if mt == DOCKER_LAYER_TAR {
        return Some(Compression::None);
    }
    media_type::layer_compression(mt)
}

/// Apply every layer of the `platform` image of `src` onto the existing directory
/// `root`, verifying each blob (digest, size) and its diff ID against the config.
pub fn apply_image(
    src: &dyn Source,
    platform: &Platform,
    root: &Path,
    opts: &ApplyOptions,
) -> Result<UnpackStats> {
    let img = resolve(src, platform)?;
    let diff_ids = &img.config.rootfs.diff_ids;
    if !diff_ids.is_empty() && diff_ids.len() != img.manifest.layers.len() {
        return Err(Error::Format(format!(
            "{}: the config lists {} layers, the manifest {}",
            src.name(),
            diff_ids.len(),
            img.manifest.layers.len()
        )));
    }
    let mut stats = UnpackStats::default();
    for (i, l) in img.manifest.layers.iter().enumerate() {
        let is_layer = l.media_type.starts_with("application/vnd.oci.image.layer.")
            || l.media_type
                .starts_with("application/vnd.docker.image.rootfs.");
        if !is_layer {
            return Err(Error::Format(format!(
                "{}: layer {} has media type {:?}, which is not a file system layer",
                src.name(),
                l.digest,
                l.media_type
            )));
        }
        let mut r = open_verified(src, l)?;
        let check = crate::layer::StreamCheck {
            name: crate::layer::LayerName::new(i, &l.digest),
            compression: compression_of(&l.media_type),
            diff_id: diff_ids.get(i).cloned(),
            max_size: None,
        };
        let s = apply_layer_checked(&mut r, check, root, opts)?;
        // The applier may stop at the tar end marker: read to the end so the digest
        // and size are checked on every byte.
        io::copy(&mut r, &mut io::sink())
            .map_err(|e| Error::stream(format!("reading layer {i} ({})", l.digest), e))?;
        stats.layers += 1;
        stats.entries += s.entries;
        stats.files += s.files;
        stats.bytes += s.bytes;
        stats.unsafe_count += s.unsafe_count;
        for e in s.unsafe_entries {
            if stats.unsafe_entries.len() < crate::layer::MAX_LISTED_UNSAFE {
                stats.unsafe_entries.push(e);
            }
        }
    }
    tracing::debug!(source = %src.name(), layers = stats.layers, files = stats.files, "applied image");
    Ok(stats)
}

/// Unpack the `platform` image of `src` into the directory `dir` (`type=local`).
///
/// The tree is assembled in a temporary directory beside `dir` and renamed into
/// place only when every layer applied; an existing `dir` is replaced then.
pub fn unpack_rootfs(
    src: &dyn Source,
    platform: &Platform,
    dir: &Path,
    opts: &ApplyOptions,
) -> Result<UnpackStats> {
    let out = AtomicDir::create(dir)?;
    let stats = apply_image(src, platform, out.path(), opts)?;
    out.commit()?;
    tracing::info!(dir = %dir.display(), files = stats.files, "unpacked root file system");
    Ok(stats)
}

/// Write the flattened file system of the `platform` image of `src` as one plain tar
/// at `file` (`type=tar`). Unpacks into a temporary directory beside `file`, then
/// writes that tree (owners, modes, mtimes, hard links, capabilities kept) and
/// renames the tar into place.
pub fn write_rootfs_tar(src: &dyn Source, platform: &Platform, file: &Path) -> Result<()> {
    let parent = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let out = AtomicFile::create(file)?;
    let out = write_rootfs_tar_to(src, platform, out, &parent)?;
    out.commit()?;
    tracing::info!(file = %file.display(), "wrote root file system tar");
    Ok(())
}

/// Stream the flattened file system of the `platform` image of `src` as one plain
/// tar into `out` (for `dest=-`), unpacking it first in a temporary directory under
/// `scratch` (removed before returning). Returns the writer.
pub fn write_rootfs_tar_to<W: Write>(
    src: &dyn Source,
    platform: &Platform,
    out: W,
    scratch: &Path,
) -> Result<W> {
    let tmp = tempfile::Builder::new()
        .prefix(".hoist-rootfs-")
        .tempdir_in(scratch)
        .map_err(|e| Error::io(scratch, e))?;
    let root = tmp.path().join("rootfs");
    std::fs::create_dir(&root).map_err(|e| Error::io(&root, e))?;
    let apply = ApplyOptions::default();
    let result = (|| {
        apply_image(src, platform, &root, &apply)?;
        let mut wopts = WriteOptions {
            compression: Compression::None,
            mtime: MtimePolicy::Preserve,
            ownership: Ownership::Preserve,
            ..WriteOptions::default()
        };
        if !apply.same_owner {
            // Unprivileged: the files are ours; they belonged to root in the image.
            let (uid, gid) = (
                rustix::process::geteuid().as_raw(),
                rustix::process::getegid().as_raw(),
            );
            wopts.ownership = Ownership::Map(OwnerMap(Arc::new(move |u, g| {
                (if u == uid { 0 } else { u }, if g == gid { 0 } else { g })
            })));
        }
        let walk_opts = WalkOptions {
            include_root: false,
            ..WalkOptions::default()
        };
        let entries = walk(&root, "", &walk_opts, &|_, _| true)?;
        let mut w = LayerWriter::new(out, &wopts)?;
        w.append_all(entries)?;
        let (out, desc) = w.finish()?;
        tracing::debug!(size = desc.size, "wrote root file system tar");
        Ok(out)
    })();
    if let Err(e) = crate::fsutil::remove_dir_all_writable(tmp.path()) {
        tracing::warn!(dir = %tmp.path().display(), error = %e, "cannot remove temporary directory");
    }
    result
}
