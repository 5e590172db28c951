//! Layer bookkeeping for the engine: references to blobs in the store, decompression,
//! chain IDs, reading single files out of layers, and materialising a rootfs.

use std::fs;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use hoist_image::layer::{apply_layer_checked, ApplyOptions, LayerName, LayerStream, StreamCheck};
use hoist_image::media_type::{self, Compression};
use hoist_image::{BlobStore, Descriptor, Digest};

use crate::error::{Error, Result};
use crate::fsview::{index_from_tar, FsView, IndexEntry, Kind};

/// A layer of an image being built: its blob (in the store) and its diff ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRef {
    /// A blob of the layer in the store (any compression: outputs re-encode layers the
    /// build made, see [`crate::variants`]).
    pub desc: Descriptor,
    /// Digest of the uncompressed tar: the layer's identity.
    pub diff_id: Digest,
    /// Whether the layer comes from a base image (kept as the base's blob unless an
    /// output forces its compression) rather than from a step of this build.
    pub from_base: bool,
}

impl LayerRef {
    /// A layer a step of this build made.
    pub fn built(desc: Descriptor, diff_id: Digest) -> LayerRef {
        LayerRef {
            desc,
            diff_id,
            from_base: false,
        }
    }

    /// A layer of a base image.
    pub fn base(desc: Descriptor, diff_id: Digest) -> LayerRef {
        LayerRef {
            desc,
            diff_id,
            from_base: true,
        }
    }
}

/// Open a layer blob from the store, decompressed (gzip/zstd detected by magic bytes),
/// bounded and hashed (see [`hoist_image::layer::LayerStream`]). With `index`, errors
/// name the layer's position; the stream fails at its end when the content does not
/// hash to `layer.diff_id`.
pub fn open_uncompressed(
    store: &BlobStore,
    layer: &LayerRef,
    index: Option<usize>,
) -> Result<LayerStream<'static>> {
    let f = store.open(&layer.desc.digest)?;
    Ok(LayerStream::open(f, check_of(layer, index))?)
}

/// What to check while reading `layer` (the `index`-th of its image, if known).
pub fn check_of(layer: &LayerRef, index: Option<usize>) -> StreamCheck {
    StreamCheck {
        name: LayerName {
            index,
            digest: Some(layer.desc.digest.clone()),
        },
        compression: media_type::layer_compression(&layer.desc.media_type),
        diff_id: Some(layer.diff_id.clone()),
        max_size: None,
    }
}

/// Wrap a (possibly) compressed stream in the right decoder (magic bytes sniffed),
/// bounded by the default layer size bound.
pub fn decompress(
    r: Box<dyn Read + Send>,
    hint: Option<Compression>,
) -> Result<Box<dyn Read + Send>> {
    let check = StreamCheck {
        compression: hint.filter(|h| *h != Compression::None),
        ..StreamCheck::default()
    };
    Ok(Box::new(LayerStream::open(r, check)?))
}

/// OCI chain ID of a stack of diff IDs.
pub fn chain_id(diff_ids: &[Digest]) -> Option<Digest> {
    let mut it = diff_ids.iter();
    let mut chain = it.next()?.clone();
    for d in it {
        chain = Digest::sha256(format!("{chain} {d}").as_bytes());
    }
    Some(chain)
}

/// Read one regular file (exact path, relative) out of a layer, if it is there.
pub fn read_file_from_layer(
    store: &BlobStore,
    layer: &LayerRef,
    path: &str,
    limit: u64,
) -> Result<Option<Vec<u8>>> {
    let r = open_uncompressed(store, layer, None)?;
    let mut ar = tar::Archive::new(r);
    for ent in ar
        .entries()
        .map_err(|e| Error::Layer(format!("reading layer {}: {e}", layer.desc.digest)))?
    {
        let mut ent =
            ent.map_err(|e| Error::Layer(format!("reading layer {}: {e}", layer.desc.digest)))?;
        let name = String::from_utf8_lossy(&ent.path_bytes()).into_owned();
        let name = match hoist_image::layer::normalize_path(&name) {
            Ok(n) => n,
            Err(_) => continue,
        };
        if name == path && ent.header().entry_type().is_file() {
            if ent.size() > limit {
                return Err(Error::Layer(format!(
                    "/{path} is larger than {limit} bytes"
                )));
            }
            let mut v = Vec::with_capacity(ent.size() as usize);
            ent.read_to_end(&mut v)
                .map_err(|e| Error::Layer(format!("reading /{path}: {e}")))?;
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// Read a small file of an image (following symlinks inside the root) via its view.
pub fn read_image_file(
    store: &BlobStore,
    layers: &[LayerRef],
    view: &FsView,
    path: &str,
) -> Result<Option<Vec<u8>>> {
    match locate_image_file(view, path)? {
        Some((target, layer)) => match layers.get(layer) {
            Some(l) => read_file_from_layer(store, l, &target, 16 << 20),
            None => Ok(None),
        },
        None => Ok(None),
    }
}

/// Where [`read_image_file`] finds `path`: the path inside the layer (symlinks and
/// hard links followed) and the index of that layer; `None` when it is no file.
pub fn locate_image_file(view: &FsView, path: &str) -> Result<Option<(String, usize)>> {
    let real = view.resolve(path, true)?;
    let meta = match view.get(&real) {
        Some(m) => m.clone(),
        None => return Ok(None),
    };
    Ok(match &meta.kind {
        Kind::File(_) => Some((real.clone(), meta.layer)),
        Kind::Hardlink(t) => view.get(t).map(|m| (t.clone(), m.layer)),
        _ => None,
    })
}

/// The metadata index of a layer, cached by diff ID in `index_dir` (computed from the
/// blob's tar headers the first time).
pub fn layer_index(
    store: &BlobStore,
    layer: &LayerRef,
    index_dir: &Path,
) -> Result<Vec<IndexEntry>> {
    layer_index_at(store, layer, None, index_dir)
}

/// [`layer_index`] for the `index`-th layer of an image (named so in errors). The
/// layer's content is checked against its diff ID while the index is computed:
/// nothing enters the cache for a layer that does not match.
pub fn layer_index_at(
    store: &BlobStore,
    layer: &LayerRef,
    index: Option<usize>,
    index_dir: &Path,
) -> Result<Vec<IndexEntry>> {
    let file = index_dir.join(layer.diff_id.hex());
    match fs::read(&file) {
        Ok(b) => match serde_json::from_slice(&b) {
            Ok(v) => {
                crate::gc::touch(&file);
                return Ok(v);
            }
            Err(e) => tracing::warn!(
                path = %file.display(),
                "layer index corrupt, computing it again: {e}"
            ),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(
            path = %file.display(),
            "layer index unreadable, computing it again: {e}"
        ),
    }
    let mut r = open_uncompressed(store, layer, index)?;
    let name = r.name().clone();
    let idx = index_from_tar(&mut r, name)?;
    r.finish()?;
    save_layer_index(index_dir, &layer.diff_id, &idx);
    Ok(idx)
}

/// Record a layer's metadata index (best effort: it is only a cache).
pub fn save_layer_index(index_dir: &Path, diff_id: &Digest, idx: &[IndexEntry]) {
    crate::cache::write_json_atomic(&index_dir.join(diff_id.hex()), idx);
}

/// Build the metadata view of a stack of layers.
pub fn view_of(store: &BlobStore, layers: &[LayerRef], index_dir: &Path) -> Result<FsView> {
    let mut v = FsView::new();
    for (i, l) in layers.iter().enumerate() {
        v.add_layer_index(&layer_index_at(store, l, Some(i), index_dir)?);
    }
    Ok(v)
}

/// Unpack a stack of layers into a directory (OCI whiteouts applied), atomically: the
/// tree is built beside `dest` and renamed into place. Reuses `dest` if it exists.
pub fn materialize(store: &BlobStore, layers: &[LayerRef], dest: &Path) -> Result<()> {
    if dest.is_dir() {
        return Ok(());
    }
    let parent = dest
        .parent()
        .ok_or_else(|| Error::Invalid(format!("{}: no parent directory", dest.display())))?;
    fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-rootfs-")
        .tempdir_in(parent)
        .map_err(|e| Error::io(parent, e))?;
    let opts = ApplyOptions::default();
    for (i, l) in layers.iter().enumerate() {
        let f = store.open(&l.desc.digest)?;
        // Verified against the diff ID while applied; on error `tmp` is dropped
        // (removed) and nothing reaches `dest`.
        apply_layer_checked(BufReader::new(f), check_of(l, Some(i)), tmp.path(), &opts)?;
    }
    let tmp_path: PathBuf = tmp.keep();
    match fs::rename(&tmp_path, dest) {
        Ok(()) => Ok(()),
        Err(_) if dest.is_dir() => {
            // Another build made the same tree first.
            crate::cleanup::remove_or_warn(
                &tmp_path,
                hoist_image::fsutil::remove_dir_all_writable(&tmp_path),
            );
            Ok(())
        }
        Err(e) => {
            crate::cleanup::remove_or_warn(
                &tmp_path,
                hoist_image::fsutil::remove_dir_all_writable(&tmp_path),
            );
            Err(Error::io(dest, e))
        }
    }
}
