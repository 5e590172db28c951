//! [`Layer`]: one layer of an [`Image`](super::Image), wherever its blob lives.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;
use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use crate::layer::writer::Compressor;
use crate::layer::{walk, write_layer_blob, Entry, LayerItem, WalkOptions, WriteOptions};
use crate::media_type::{self, Compression};
use crate::{BlobStore, Descriptor, Digest, Error, Result, Source, VerifyingReader};

/// Where a layer's compressed blob can be read from.
#[derive(Clone)]
enum Backing {
    /// A local content-addressed store.
    Store(BlobStore),
    /// Any image source (a registry, a layout, an archive): read only when a sink needs
    /// the bytes, so a push to the registry that already has the blob never reads it.
    Source(Arc<dyn Source>),
}

/// One layer: the identity of its compressed blob (`digest`, `size`, `media_type`)
/// and of its content (`diff_id`, the sha256 of the uncompressed tar), plus where the
/// blob can be read. Cheap to clone; nothing is read until a stream is opened.
///
/// The compressed form is a function of `(diff_id, algorithm, level)`: hoist's
/// compressors are deterministic (fixed headers, fixed block and job sizes), so
/// [`Layer::compressed`] gives the same digest for the same content whatever layer
/// it starts from.
#[derive(Clone)]
pub struct Layer {
    desc: Descriptor,
    diff_id: Digest,
    backing: Backing,
}

impl fmt::Debug for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Layer")
            .field("digest", &self.desc.digest)
            .field("diff_id", &self.diff_id)
            .field("size", &self.desc.size)
            .field("media_type", &self.desc.media_type)
            .finish()
    }
}

impl Layer {
    /// A layer whose blob (`desc`) is in `store`, with content digest `diff_id`.
    /// Nothing is checked here; streams are verified when opened.
    pub fn from_store(store: &BlobStore, desc: Descriptor, diff_id: Digest) -> Layer {
        Layer {
            desc,
            diff_id,
            backing: Backing::Store(store.clone()),
        }
    }

    /// A layer whose blob is served by `source` (see [`Image::from_source`](super::Image::from_source)).
    pub fn from_source(source: Arc<dyn Source>, desc: Descriptor, diff_id: Digest) -> Layer {
        Layer {
            desc,
            diff_id,
            backing: Backing::Source(source),
        }
    }

    /// Write `entries` (in layer order; see [`crate::layer::sort_entries`]) as a layer
    /// into `store`, both digests computed while the tar streams (see
    /// [`crate::layer::LayerWriter`]).
    pub fn from_entries<I>(store: &BlobStore, entries: I, opts: &WriteOptions) -> Result<Layer>
    where
        I: IntoIterator,
        I::Item: LayerItem,
    {
        let d = write_layer_blob(store.root(), entries, opts)?;
        Ok(Layer::from_store(store, d.descriptor(), d.diff_id))
    }

    /// Write the tree at `dir` (or the single file `dir`) as a layer into `store`,
    /// placed at the in-image path `dest`. Owners, times and modes follow `opts` (by
    /// default owner 0:0 and mtime 0: the same files give the same layer anywhere).
    pub fn from_dir(
        store: &BlobStore,
        dir: &Path,
        dest: &str,
        opts: &WriteOptions,
    ) -> Result<Layer> {
        let entries = walk(dir, dest, &WalkOptions::default(), &|_, _| true)?;
        Layer::from_entries(store, entries, opts)
    }

    /// Store a tar stream as a layer: `tar` is read once, hashed (the diffID) and
    /// compressed as `opts` says into `store`. A gzip or zstd stream is recognised by
    /// its magic bytes and decompressed first, so its diffID is its content's.
    /// The stream is taken as it is (entries are not reordered or normalised).
    pub fn from_tar(
        store: &BlobStore,
        tar: impl Read + Send,
        opts: &WriteOptions,
    ) -> Result<Layer> {
        let plain = decompressor(Box::new(tar), None)?;
        compress_into(store, plain, opts)
    }

    /// The compressed blob's descriptor (media type, digest, size).
    pub fn descriptor(&self) -> &Descriptor {
        &self.desc
    }

    /// The sha256 of the compressed blob: what a manifest references.
    pub fn digest(&self) -> &Digest {
        &self.desc.digest
    }

    /// The sha256 of the uncompressed tar: what the config's `rootfs.diff_ids` lists.
    pub fn diff_id(&self) -> &Digest {
        &self.diff_id
    }

    /// The compressed blob's size in bytes.
    pub fn size(&self) -> u64 {
        self.desc.size
    }

    /// The blob's media type as the layer came (OCI or Docker spelling).
    pub fn media_type(&self) -> &str {
        &self.desc.media_type
    }

    /// The blob's compression, from its media type.
    pub fn compression(&self) -> Result<Compression> {
        media_type::layer_compression(&self.desc.media_type).ok_or_else(|| {
            Error::Format(format!(
                "layer {}: unknown layer media type {:?}",
                self.desc.digest, self.desc.media_type
            ))
        })
    }

    pub(crate) fn set_media_type(&mut self, mt: &str) {
        self.desc.media_type = mt.to_string();
    }

    /// Whether the blob is in `store` (with the right size).
    pub fn is_in(&self, store: &BlobStore) -> bool {
        store.has_descriptor(&self.desc)
    }

    /// Open the compressed blob as its backing serves it, not verified.
    pub(crate) fn open_raw(&self) -> Result<Box<dyn Read + Send + '_>> {
        match &self.backing {
            Backing::Store(s) => Ok(Box::new(s.open(&self.desc.digest)?)),
            Backing::Source(s) => s.blob(&self.desc),
        }
    }

    /// The local file holding the compressed blob, when the backing has one.
    pub(crate) fn raw_file(&self) -> Option<std::path::PathBuf> {
        match &self.backing {
            Backing::Store(s) => s
                .has_descriptor(&self.desc)
                .then(|| s.path(&self.desc.digest)),
            Backing::Source(s) => s.blob_file(&self.desc),
        }
    }

    /// Whether the backing can serve the blob.
    pub(crate) fn has_raw(&self) -> Result<bool> {
        match &self.backing {
            Backing::Store(s) => Ok(s.has_descriptor(&self.desc)),
            Backing::Source(s) => s.has_blob(&self.desc),
        }
    }

    /// Open the compressed blob, verified against its digest and size as it streams
    /// (a mismatch is an error at the end of the stream).
    pub fn open_compressed(&self) -> Result<Box<dyn Read + Send + '_>> {
        Ok(Box::new(VerifyingReader::new(
            self.open_raw()?,
            self.desc.digest.clone(),
            Some(self.desc.size),
        )))
    }

    /// Open the uncompressed tar (the blob verified as it is read, then decompressed).
    pub fn open_uncompressed(&self) -> Result<Box<dyn Read + Send + '_>> {
        let c = self.compression()?;
        decompressor(self.open_compressed()?, Some(c))
    }

    /// This layer compressed with `compression` at `level` (`None`: gzip 6, zstd 3),
    /// in `store`. When the layer already has that compression it is returned as it
    /// is. Otherwise the result comes from `store`'s record of earlier
    /// recompressions of the same `(diff_id, algorithm, level)` or, failing that, by
    /// decompressing and recompressing (the diffID is checked on the way).
    pub fn compressed(
        &self,
        store: &BlobStore,
        compression: Compression,
        level: Option<i32>,
    ) -> Result<Layer> {
        if self.compression()? == compression {
            return Ok(self.clone());
        }
        let level = effective_level(compression, level);
        let record = recompression_record(store, &self.diff_id, compression, level);
        if let Ok(text) = std::fs::read_to_string(&record) {
            if let Ok(desc) = serde_json::from_str::<Descriptor>(&text) {
                if store.has_descriptor(&desc) {
                    return Ok(Layer::from_store(store, desc, self.diff_id.clone()));
                }
            }
        }
        let opts = WriteOptions {
            compression,
            level: Some(level),
            ..WriteOptions::default()
        };
        let out = compress_into(store, self.open_uncompressed()?, &opts)?;
        if out.diff_id != self.diff_id {
            return Err(Error::DigestMismatch {
                what: format!("uncompressed content of layer {}", self.desc.digest),
                expected: self.diff_id.clone(),
                actual: out.diff_id,
            });
        }
        if let Some(dir) = record.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        crate::atomic_write(&record, &crate::to_canonical_json(&out.desc))?;
        Ok(out)
    }
}

/// The level a compressor uses for `level` (`None` = the default).
pub(crate) fn effective_level(c: Compression, level: Option<i32>) -> i32 {
    match c {
        Compression::None => 0,
        Compression::Gzip => level.unwrap_or(6).clamp(0, 9),
        Compression::Zstd => level.unwrap_or(3),
    }
}

/// Where a store records that `diff_id` compressed with `c` at `level` is a blob:
/// `<store>/recompressed/<algorithm>-<level>/<diff_id hex>` holds its descriptor.
fn recompression_record(
    store: &BlobStore,
    diff_id: &Digest,
    c: Compression,
    level: i32,
) -> std::path::PathBuf {
    let alg = match c {
        Compression::None => "none",
        Compression::Gzip => "gzip",
        Compression::Zstd => "zstd",
    };
    store
        .root()
        .join("recompressed")
        .join(format!("{alg}-{level}"))
        .join(diff_id.hex())
}

/// A reader of the uncompressed bytes of `r`, compressed with `c` (sniffed from the
/// magic bytes when `None`).
pub(crate) fn decompressor<'a>(
    r: Box<dyn Read + Send + 'a>,
    c: Option<Compression>,
) -> Result<Box<dyn Read + Send + 'a>> {
    let mut br = BufReader::with_capacity(256 << 10, r);
    let c = match c {
        Some(c) => c,
        None => {
            let head = br
                .fill_buf()
                .map_err(|e| Error::stream("reading the layer", e))?;
            if head.starts_with(&[0x1f, 0x8b]) {
                Compression::Gzip
            } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
                Compression::Zstd
            } else {
                Compression::None
            }
        }
    };
    Ok(match c {
        Compression::None => Box::new(br),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(br)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(br)
                .map_err(|e| Error::stream("starting the zstd decoder", e))?,
        ),
    })
}

/// Hash and compress an uncompressed tar stream into `store`.
fn compress_into(store: &BlobStore, mut plain: impl Read, opts: &WriteOptions) -> Result<Layer> {
    let blob = store.writer()?;
    let mut out =
        Compressor::new(blob, opts).map_err(|e| Error::stream("starting the compressor", e))?;
    let mut diff = Sha256::new();
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = match plain.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::stream("reading the layer tar", e)),
        };
        diff.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|e| Error::stream("compressing the layer", e))?;
    }
    let (blob, _, _) = out
        .finish()
        .map_err(|e| Error::stream("finishing the layer", e))?;
    let (digest, size) = blob.commit()?;
    let diff_id = Digest::from_sha256_bytes(diff.finalize().into());
    let desc = Descriptor::new(media_type::oci_layer(opts.compression), digest, size);
    Ok(Layer::from_store(store, desc, diff_id))
}

/// Entries in layer order from an unsorted list (a later entry for the same path
/// wins), for [`Layer::from_entries`].
pub fn sorted_entries(entries: impl IntoIterator<Item = Entry>) -> Vec<Entry> {
    let mut map = std::collections::BTreeMap::new();
    for e in entries {
        map.insert(e.path.clone(), e);
    }
    let mut v: Vec<Entry> = map.into_values().collect();
    crate::layer::sort_entries(&mut v);
    v
}
