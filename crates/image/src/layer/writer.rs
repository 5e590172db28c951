//! The streaming layer writer: entries → deterministic tar → compression, with
//! both digests computed as the bytes flow.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};

use sha2::{Digest as _, Sha256};

use super::entry::{normalize_path, path_order, Entry, EntryKind, FileSource};
use super::gzip::GzipWriter;
use super::options::WriteOptions;
use super::tar::{self, Header};
use crate::media_type::{self, Compression};
use crate::{Digest, Error, HashingWriter, Result};

/// What a finished layer is: the identity of its blob and of its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerDescriptor {
    /// sha256 of the compressed blob (what manifests reference).
    pub digest: Digest,
    /// sha256 of the uncompressed tar (what the config's `rootfs.diff_ids` lists).
    pub diff_id: Digest,
    /// Size of the compressed blob in bytes.
    pub size: u64,
    /// Size of the uncompressed tar in bytes.
    pub uncompressed_size: u64,
    /// The OCI layer media type for the compression used.
    pub media_type: String,
}

impl LayerDescriptor {
    /// The manifest descriptor of this layer.
    pub fn descriptor(&self) -> crate::Descriptor {
        crate::Descriptor::new(self.media_type.clone(), self.digest.clone(), self.size)
    }
}

/// zstd job size (fixed: changing it changes digests).
const ZSTD_JOB_SIZE: u32 = 2 << 20;

/// Counts bytes written (the plain-tar case, whose blob digest is the diffID).
pub(crate) struct Counting<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A compressor over `W` that hashes the compressed bytes (shared with
/// [`crate::mutate`]'s tar and recompression paths).
pub(crate) enum Compressor<W: Write> {
    None(BufWriter<Counting<W>>),
    Gzip(GzipWriter<HashingWriter<W>>),
    Zstd(zstd::stream::write::Encoder<'static, HashingWriter<W>>),
}

impl<W: Write> Compressor<W> {
    pub(crate) fn new(out: W, opts: &WriteOptions) -> io::Result<Self> {
        let threads = opts.effective_threads();
        Ok(match opts.compression {
            Compression::None => {
                let out = Counting {
                    inner: out,
                    count: 0,
                };
                Compressor::None(BufWriter::with_capacity(256 * 1024, out))
            }
            Compression::Gzip => {
                let level = opts.level.unwrap_or(6).clamp(0, 9) as u32;
                Compressor::Gzip(GzipWriter::new(HashingWriter::new(out), level, threads)?)
            }
            Compression::Zstd => {
                let level = opts.level.unwrap_or(3);
                let mut enc = zstd::stream::write::Encoder::new(HashingWriter::new(out), level)?;
                // Always use zstd's multi-threaded mode (never 0 workers): its
                // streaming output then does not depend on the number of workers,
                // while single-threaded mode (0) produces different bytes.
                enc.multithread(threads.max(1) as u32)?;
                // Fixed 2 MiB jobs (zstd's default grows with the window, to 8 MiB
                // and more): bounds memory to a few jobs in flight, and a fixed job
                // size keeps the output independent of the worker count.
                enc.set_parameter(zstd::stream::raw::CParameter::JobSize(ZSTD_JOB_SIZE))?;
                Compressor::Zstd(enc)
            }
        })
    }

    /// Finish: the inner writer, the blob digest (`None` when the blob is the
    /// uncompressed stream itself) and the blob size.
    pub(crate) fn finish(self) -> io::Result<(W, Option<Digest>, u64)> {
        let hashed = match self {
            Compressor::None(w) => {
                let c = w.into_inner().map_err(|e| e.into_error())?;
                return Ok((c.inner, None, c.count));
            }
            Compressor::Gzip(w) => w.finish()?,
            Compressor::Zstd(w) => w.finish()?,
        };
        let (w, digest, size) = hashed.finish();
        Ok((w, Some(digest), size))
    }
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::None(w) => w.write(buf),
            Compressor::Gzip(w) => w.write(buf),
            Compressor::Zstd(w) => w.write(buf),
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Compressor::None(w) => w.write_all(buf),
            Compressor::Gzip(w) => w.write_all(buf),
            Compressor::Zstd(w) => w.write_all(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressor::None(w) => w.flush(),
            Compressor::Gzip(w) => w.flush(),
            Compressor::Zstd(w) => w.flush(),
        }
    }
}

/// Writes a layer blob to `W` in one streaming pass.
///
/// Entries must be appended in layer order (see
/// [`path_order`](super::path_order); [`walk_dir`](super::walk_dir) yields that
/// order, [`sort_entries`](super::sort_entries) sorts a list): a path that does
/// not sort strictly after the previous one is refused, so a layer never depends
/// on the order a caller happened to produce. File contents are streamed from
/// disk through the tar encoder, the diffID hash, the compressor and the blob hash
/// without ever holding a file or the layer in memory.
///
/// ```
/// use hoist_image::layer::{Entry, LayerWriter, WriteOptions};
/// let mut w = LayerWriter::new(Vec::new(), &WriteOptions::default())?;
/// w.append(&Entry::dir("etc"))?;
/// w.append(&Entry::file_bytes("etc/motd", "hello\n"))?;
/// let (blob, desc) = w.finish()?;
/// assert_eq!(desc.size, blob.len() as u64);
/// assert_eq!(desc.media_type, "application/vnd.oci.image.layer.v1.tar+gzip");
/// # Ok::<(), hoist_image::Error>(())
/// ```
pub struct LayerWriter<W: Write> {
    out: Compressor<W>,
    diff: Sha256,
    uncompressed: u64,
    opts: WriteOptions,
    header: Vec<u8>,
    copy_buf: Vec<u8>,
    /// Non-directory paths written so far (hardlink targets must be among them).
    written: HashSet<String>,
    previous: Option<String>,
}

impl<W: Write> LayerWriter<W> {
    /// Start a layer written to `out`.
    pub fn new(out: W, opts: &WriteOptions) -> Result<Self> {
        let out = Compressor::new(out, opts)
            .map_err(|e| Error::stream("starting the layer compressor", e))?;
        Ok(LayerWriter {
            out,
            diff: Sha256::new(),
            uncompressed: 0,
            opts: opts.clone(),
            header: Vec::with_capacity(4 * tar::BLOCK),
            copy_buf: vec![0; 256 * 1024],
            written: HashSet::new(),
            previous: None,
        })
    }

    /// The number of uncompressed tar bytes produced so far.
    pub fn uncompressed_size(&self) -> u64 {
        self.uncompressed
    }

    fn emit(&mut self, data: &[u8]) -> Result<()> {
        self.diff.update(data);
        self.uncompressed += data.len() as u64;
        self.out
            .write_all(data)
            .map_err(|e| Error::stream("writing the layer", e))
    }

    fn emit_header(&mut self) -> Result<()> {
        let h = std::mem::take(&mut self.header);
        let r = self.emit(&h);
        self.header = h;
        self.header.clear();
        r
    }

    /// Append one entry (and, for a file, its content).
    pub fn append(&mut self, entry: &Entry) -> Result<()> {
        let path = normalize_path(&entry.path)?;
        if path.is_empty() {
            // The root directory itself: never part of a layer.
            tracing::debug!("skipping layer entry for the root directory");
            return Ok(());
        }
        if let Some(prev) = &self.previous {
            if path_order(prev, &path) != std::cmp::Ordering::Less {
                return Err(Error::Format(format!(
                    "layer entry {path:?} comes after {prev:?}: entries must be sorted and unique"
                )));
            }
        }
        self.previous = Some(path.clone());

        let mut xattrs_storage;
        let mut xattrs = &entry.xattrs;
        if self.opts.overlay_upper {
            if let EntryKind::CharDevice { major: 0, minor: 0 } = entry.kind {
                return self.append_whiteout(&path, entry);
            }
            if xattrs.keys().any(|k| is_overlay_xattr(k)) {
                xattrs_storage = xattrs.clone();
                xattrs_storage.retain(|k, _| !is_overlay_xattr(k));
                xattrs = &xattrs_storage;
            }
        }
        let opaque = self.opts.overlay_upper
            && entry.is_dir()
            && ["trusted.overlay.opaque", "user.overlay.opaque"]
                .iter()
                .any(|k| entry.xattrs.get(*k).map(Vec::as_slice) == Some(b"y"));

        let (uid, gid) = self.opts.owner_for(entry.uid, entry.gid);
        let mtime = self.opts.mtime_for(entry.mtime);
        let mut mode = entry.mode & 0o7777;
        if let Some(m) = &self.opts.mode_override {
            if !matches!(entry.kind, EntryKind::Symlink(_)) {
                mode = m.apply(mode, entry.is_dir());
            }
        }

        let mut dir_name;
        let mut linkname = String::new();
        let mut name: &str = &path;
        let (typeflag, size, devmajor, devminor) = match &entry.kind {
            EntryKind::File { size, source } => {
                if let FileSource::Bytes(b) = source {
                    if b.len() as u64 != *size {
                        return Err(Error::Format(format!(
                            "layer entry {path:?}: size {size} but {} bytes of content",
                            b.len()
                        )));
                    }
                }
                (tar::REG, *size, 0, 0)
            }
            EntryKind::Dir => {
                dir_name = path.clone();
                dir_name.push('/');
                name = &dir_name;
                (tar::DIR, 0, 0, 0)
            }
            EntryKind::Symlink(target) => {
                linkname = target.clone();
                (tar::SYMLINK, 0, 0, 0)
            }
            EntryKind::Hardlink(target) => {
                let target = normalize_path(target)?;
                if !self.written.contains(&target) {
                    return Err(Error::Format(format!(
                        "layer entry {path:?}: hard link to {target:?}, which is not an earlier entry"
                    )));
                }
                linkname = target;
                (tar::LINK, 0, 0, 0)
            }
            EntryKind::CharDevice { major, minor } => (tar::CHAR, 0, *major, *minor),
            EntryKind::BlockDevice { major, minor } => (tar::BLOCKDEV, 0, *major, *minor),
            EntryKind::Fifo => (tar::FIFO, 0, 0, 0),
        };
        if linkname.contains('\0') {
            return Err(Error::Format(format!(
                "layer entry {path:?}: link target contains a NUL byte"
            )));
        }
        tar::encode(
            &Header {
                name,
                linkname: &linkname,
                typeflag,
                mode,
                uid: uid.into(),
                gid: gid.into(),
                size,
                mtime,
                devmajor,
                devminor,
                xattrs,
            },
            &mut self.header,
        );
        self.emit_header()?;

        if let EntryKind::File { source, size } = &entry.kind {
            match source {
                FileSource::Bytes(b) => self.emit(b)?,
                FileSource::Path(p) => self.copy_file(&path, p, *size)?,
            }
            let pad = tar::padding(*size);
            if pad > 0 {
                self.emit(&[0u8; tar::BLOCK][..pad])?;
            }
        }
        if !entry.is_dir() {
            self.written.insert(path.clone());
        }
        if opaque {
            let marker = Entry {
                path: format!("{path}/.wh..wh..opq"),
                kind: EntryKind::File {
                    source: FileSource::Bytes(Vec::new()),
                    size: 0,
                },
                mode: 0,
                uid: 0,
                gid: 0,
                mtime: entry.mtime,
                xattrs: BTreeMap::new(),
            };
            self.append_raw_whiteout(&marker.path, &marker)?;
        }
        Ok(())
    }

    /// A `.wh.NAME` entry for a 0:0 character device of an overlay upper dir.
    fn append_whiteout(&mut self, path: &str, entry: &Entry) -> Result<()> {
        let wh = match path.rsplit_once('/') {
            Some((dir, name)) => format!("{dir}/.wh.{name}"),
            None => format!(".wh.{path}"),
        };
        self.append_raw_whiteout(&wh, entry)
    }

    fn append_raw_whiteout(&mut self, path: &str, entry: &Entry) -> Result<()> {
        let (uid, gid) = self.opts.owner_for(entry.uid, entry.gid);
        let empty = BTreeMap::new();
        tar::encode(
            &Header {
                name: path,
                linkname: "",
                typeflag: tar::REG,
                mode: 0,
                uid: uid.into(),
                gid: gid.into(),
                size: 0,
                mtime: self.opts.mtime_for(entry.mtime),
                devmajor: 0,
                devminor: 0,
                xattrs: &empty,
            },
            &mut self.header,
        );
        self.emit_header()
    }

    fn copy_file(&mut self, path: &str, source: &std::path::Path, size: u64) -> Result<()> {
        let mut f = File::open(source).map_err(|e| Error::io(source, e))?;
        let mut buf = std::mem::take(&mut self.copy_buf);
        let result = (|| {
            let mut left = size;
            while left > 0 {
                let want = (buf.len() as u64).min(left) as usize;
                let n = match f.read(&mut buf[..want]) {
                    Ok(0) => {
                        return Err(Error::Format(format!(
                        "layer entry {path:?}: {} shrank while being read (expected {size} bytes)",
                        source.display()
                    )))
                    }
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Error::io(source, e)),
                };
                self.emit(&buf[..n])?;
                left -= n as u64;
            }
            let mut one = [0u8; 1];
            match f.read(&mut one) {
                Ok(0) => Ok(()),
                Ok(_) => Err(Error::Format(format!(
                    "layer entry {path:?}: {} grew while being read (expected {size} bytes)",
                    source.display()
                ))),
                Err(e) => Err(Error::io(source, e)),
            }
        })();
        self.copy_buf = buf;
        result
    }

    /// Append every entry of an iterator (of [`Entry`] or `Result<Entry>`).
    pub fn append_all<I>(&mut self, entries: I) -> Result<()>
    where
        I: IntoIterator,
        I::Item: LayerItem,
    {
        for e in entries {
            self.append(&e.into_entry()?)?;
        }
        Ok(())
    }

    /// End the archive, flush the compressor and return the output and the
    /// layer's descriptor.
    pub fn finish(mut self) -> Result<(W, LayerDescriptor)> {
        self.emit(&[0u8; 2 * tar::BLOCK])?;
        let compression = self.opts.compression;
        let (w, digest, size) = self
            .out
            .finish()
            .map_err(|e| Error::stream("finishing the layer", e))?;
        let diff_id = Digest::from_sha256_bytes(self.diff.finalize().into());
        let digest = digest.unwrap_or_else(|| diff_id.clone());
        Ok((
            w,
            LayerDescriptor {
                digest,
                diff_id,
                size,
                uncompressed_size: self.uncompressed,
                media_type: media_type::oci_layer(compression).to_string(),
            },
        ))
    }
}

fn is_overlay_xattr(k: &str) -> bool {
    k.starts_with("trusted.overlay.") || k.starts_with("user.overlay.")
}

/// Something that yields a layer [`Entry`]: an `Entry`, or a `Result<Entry>` as
/// produced by [`walk`](super::walk).
pub trait LayerItem {
    /// The entry, or the error met producing it.
    fn into_entry(self) -> Result<Entry>;
}

impl LayerItem for Entry {
    fn into_entry(self) -> Result<Entry> {
        Ok(self)
    }
}

impl LayerItem for Result<Entry> {
    fn into_entry(self) -> Result<Entry> {
        self
    }
}
