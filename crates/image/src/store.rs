//! A content-addressed blob directory.
//!
//! ```text
//! <root>/                    e.g. an OCI layout's `blobs/`, or hoist's cache `blobs/`
//!   sha256/
//!     e3b0c442…b855          one file per blob, named by the hex digest of its content
//!     .tmp-XXXXXX            transient: a blob being written (removed on failure)
//!   sha512/ …
//! ```
//!
//! Writers stream into a temporary file in the same directory, hashing as they go,
//! then `fsync` and `rename` it into place. A blob therefore appears whole or not at
//! all, two processes writing the same blob at once are both fine (the second rename
//! replaces identical content), and readers never see a partial file under a digest
//! name. Every write is verified against the expected digest and size when known.
//! A committed blob is *sealed*: its write permission bits are cleared, so that
//! outputs on the same file system can share it by hard link (see
//! [`crate::place`]); nothing writes to a blob in place.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::place::{place_file, seal, Placed};
use crate::{Algorithm, Descriptor, Digest, Error, Hasher, Result};

/// A content-addressed blob directory (see the module docs for the layout).
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

impl BlobStore {
    /// Open (creating if needed) a store rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Result<BlobStore> {
        let root = root.into();
        let dir = root.join("sha256");
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(BlobStore { root })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a blob with `digest` lives (whether or not it exists).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join(digest.algorithm().as_str())
            .join(digest.hex())
    }

    /// Whether the blob exists.
    pub fn has(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// Whether the blob exists with the expected size.
    pub fn has_descriptor(&self, desc: &Descriptor) -> bool {
        fs::metadata(self.path(&desc.digest))
            .map(|m| m.is_file() && m.len() == desc.size)
            .unwrap_or(false)
    }

    /// Open a blob for reading.
    pub fn open(&self, digest: &Digest) -> Result<File> {
        let p = self.path(digest);
        File::open(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::NotFound(format!("blob {digest} in {}", self.root.display()))
            } else {
                Error::io(p, e)
            }
        })
    }

    /// The blob's size on disk.
    pub fn size(&self, digest: &Digest) -> Result<u64> {
        let p = self.path(digest);
        fs::metadata(&p)
            .map(|m| m.len())
            .map_err(|e| Error::io(p, e))
    }

    /// Start writing a blob of unknown digest (sha256).
    pub fn writer(&self) -> Result<BlobWriter> {
        self.writer_for(Algorithm::Sha256)
    }

    fn writer_for(&self, alg: Algorithm) -> Result<BlobWriter> {
        let dir = self.root.join(alg.as_str());
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&dir)
            .map_err(|e| Error::io(&dir, e))?;
        Ok(BlobWriter {
            store: self.clone(),
            file: io::BufWriter::with_capacity(256 << 10, tmp),
            hasher: Hasher::new(alg),
            size: 0,
        })
    }

    /// Stream `reader` into the store, verifying it against `expected` (digest and size).
    /// If the blob is already present nothing is read.
    pub fn put_verified(&self, reader: impl Read, expected: &Descriptor) -> Result<()> {
        if self.has_descriptor(expected) {
            return Ok(());
        }
        let mut w = self.writer_for(expected.digest.algorithm())?;
        w.copy_from(reader, &format!("blob {}", expected.digest))?;
        w.commit_expected(expected)
    }

    /// Stream `reader` into the store; returns the digest and size.
    pub fn put(&self, reader: impl Read) -> Result<(Digest, u64)> {
        let mut w = self.writer()?;
        w.copy_from(reader, "blob")?;
        w.commit()
    }

    /// Store a small in-memory blob (a manifest or config).
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest> {
        let d = Digest::sha256(bytes);
        if self.has(&d) {
            return Ok(d);
        }
        let mut w = self.writer()?;
        w.write_all(bytes)
            .map_err(|e| Error::stream("writing blob", e))?;
        w.commit()?;
        Ok(d)
    }

    /// Put the blob `expected` from the local file `src` (trusted to hold it, e.g. a
    /// blob of another store; its size is checked) into this store by reflink,
    /// hard link (when `src` is sealed) or in-kernel copy, without hashing it
    /// again. New files get `mode`. See [`crate::place`].
    pub fn place_from(&self, src: &Path, expected: &Descriptor, mode: u32) -> Result<Placed> {
        if self.has_descriptor(expected) {
            return Ok(Placed::Present);
        }
        let len = fs::metadata(src).map_err(|e| Error::io(src, e))?.len();
        if len != expected.size {
            return Err(Error::Format(format!(
                "blob {}: {} has {len} bytes, expected {}",
                expected.digest,
                src.display(),
                expected.size
            )));
        }
        let dir = self.root.join(expected.digest.algorithm().as_str());
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let dest = self.path(&expected.digest);
        let how = place_file(src, &dest, mode).map_err(|e| Error::io(&dest, e))?;
        tracing::debug!(digest = %expected.digest, ?how, "placed blob");
        Ok(how)
    }

    /// Remove a blob (missing is not an error).
    pub fn remove(&self, digest: &Digest) -> Result<()> {
        let p = self.path(digest);
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(p, e)),
        }
    }

    /// Every blob digest in the store (ignores temp files and foreign names).
    pub fn list(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for alg in ["sha256", "sha512"] {
            let dir = self.root.join(alg);
            let rd = match fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(dir, e)),
            };
            for ent in rd {
                let ent = ent.map_err(|e| Error::io(&dir, e))?;
                if let Some(name) = ent.file_name().to_str() {
                    if let Ok(d) = Digest::parse(&format!("{alg}:{name}")) {
                        out.push(d);
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

/// A blob being written. Dropping it without committing removes the temp file.
pub struct BlobWriter {
    store: BlobStore,
    file: io::BufWriter<tempfile::NamedTempFile>,
    hasher: Hasher,
    size: u64,
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    fn copy_from(&mut self, mut reader: impl Read, what: &str) -> Result<()> {
        let mut buf = vec![0u8; 256 << 10];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::stream(format!("reading {what}"), e)),
            };
            self.write_all(&buf[..n])
                .map_err(|e| Error::stream(format!("writing {what}"), e))?;
        }
    }

    /// Finish: fsync, name the file by its digest. Returns digest and size.
    pub fn commit(self) -> Result<(Digest, u64)> {
        let BlobWriter {
            store,
            file,
            hasher,
            size,
        } = self;
        let digest = hasher.finish();
        persist(&store, file, &digest)?;
        Ok((digest, size))
    }

    /// Finish, but only if the content matches `expected` (digest and size);
    /// otherwise the temp file is removed and an error returned.
    pub fn commit_expected(self, expected: &Descriptor) -> Result<()> {
        let BlobWriter {
            store,
            file,
            hasher,
            size,
        } = self;
        let digest = hasher.finish();
        if digest != expected.digest {
            return Err(Error::DigestMismatch {
                what: format!("blob {}", expected.digest),
                expected: expected.digest.clone(),
                actual: digest,
            });
        }
        if size != expected.size {
            return Err(Error::Format(format!(
                "blob {}: size mismatch: expected {} bytes, got {size}",
                expected.digest, expected.size
            )));
        }
        persist(&store, file, &digest)
    }
}

fn persist(
    store: &BlobStore,
    file: io::BufWriter<tempfile::NamedTempFile>,
    digest: &Digest,
) -> Result<()> {
    let tmp = file
        .into_inner()
        .map_err(|e| Error::stream("flushing blob", e.into_error()))?;
    tmp.as_file()
        .sync_data()
        .map_err(|e| Error::io(tmp.path(), e))?;
    // Blobs are immutable: sealed read-only, so an output may hard-link them.
    seal(tmp.as_file());
    let dest = store.path(digest);
    tmp.persist(&dest).map_err(|e| Error::io(dest, e.error))?;
    Ok(())
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_open_verify() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::new(dir.path().join("blobs")).unwrap();
        let (d, n) = s.put(&b"hello"[..]).unwrap();
        assert_eq!(d, Digest::sha256(b"hello"));
        assert_eq!(n, 5);
        let mut out = String::new();
        s.open(&d).unwrap().read_to_string(&mut out).unwrap();
        assert_eq!(out, "hello");
        assert_eq!(s.list().unwrap(), vec![d.clone()]);

        // A wrong digest is rejected and leaves nothing behind.
        let bad = Descriptor::new("x", Digest::sha256(b"other"), 5);
        assert!(matches!(
            s.put_verified(&b"hello"[..], &bad),
            Err(Error::DigestMismatch { .. })
        ));
        let names: Vec<_> = fs::read_dir(dir.path().join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temp file left: {names:?}");
        // Right digest, wrong size.
        let bad = Descriptor::new("x", Digest::sha256(b"world"), 4);
        assert!(s.put_verified(&b"world"[..], &bad).is_err());
        assert!(!s.has(&Digest::sha256(b"world")));
    }
}
