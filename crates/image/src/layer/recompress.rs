//! Re-encoding a layer: the same uncompressed tar (diff ID) under another compression.
//!
//! A layer's identity is its diff ID; its blob is one encoding of it. The build engine
//! caches diffs and asks for the encoding each output wants, so switching
//! `compression=` never re-runs a step and never changes another build's digest: the
//! compressed bytes are a function of (uncompressed bytes, algorithm, level) alone —
//! the writer's gzip blocks and zstd jobs have fixed sizes — whether the tar comes
//! from a fresh step or from a cached blob in another compression.

use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use sha2::{Digest as _, Sha256};

use super::options::WriteOptions;
use super::writer::{Compressor, LayerDescriptor};
use crate::media_type::{self, Compression};
use crate::{Digest, Error, Result};

/// Compress an uncompressed layer tar from `tar` into `blobs_dir` (atomically, as
/// [`write_layer_blob`](super::write_layer_blob) does) with `compression`/`level`.
/// The stream must hash to `diff_id`; otherwise nothing is stored and the error says
/// so (a corrupt cached blob never becomes another blob).
pub fn write_encoded_blob(
    blobs_dir: &Path,
    mut tar: impl Read,
    diff_id: &Digest,
    compression: Compression,
    level: Option<i32>,
) -> Result<LayerDescriptor> {
    let dir = blobs_dir.join("sha256");
    fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".layer-")
        .tempfile_in(&dir)
        .map_err(|e| Error::io(&dir, e))?;
    let opts = WriteOptions {
        compression,
        level,
        ..WriteOptions::default()
    };
    let ctx = |e| Error::stream(format!("re-encoding layer {diff_id}"), e);
    let mut out = Compressor::new(tmp, &opts).map_err(ctx)?;
    let mut hash = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = tar.read(&mut buf).map_err(ctx)?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        size += n as u64;
        out.write_all(&buf[..n]).map_err(ctx)?;
    }
    let actual = Digest::from_sha256_bytes(hash.finalize().into());
    if &actual != diff_id {
        return Err(Error::DigestMismatch {
            what: format!("layer {diff_id} (uncompressed)"),
            expected: diff_id.clone(),
            actual,
        });
    }
    let (mut tmp, digest, blob_size) = out.finish().map_err(ctx)?;
    tmp.flush().map_err(|e| Error::io(tmp.path(), e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| Error::io(tmp.path(), e))?;
    let digest = digest.unwrap_or_else(|| diff_id.clone());
    let dest = dir.join(digest.hex());
    // Blobs are immutable: sealed read-only (outputs may hard-link them).
    crate::place::seal(tmp.as_file());
    tmp.persist(&dest).map_err(|e| Error::io(&dest, e.error))?;
    Ok(LayerDescriptor {
        digest,
        diff_id: diff_id.clone(),
        size: blob_size,
        uncompressed_size: size,
        media_type: media_type::oci_layer(compression).to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::{write_layer_blob, Entry};
    use super::*;

    #[test]
    fn re_encoding_gives_the_bytes_a_fresh_write_gives() {
        let dir = tempfile::tempdir().unwrap();
        let entries = vec![
            Entry::dir("etc"),
            Entry::file_bytes("etc/motd", "hello\n".repeat(100_000)),
        ];
        let opts = |c| WriteOptions {
            compression: c,
            ..WriteOptions::default()
        };
        let zstd = write_layer_blob(dir.path(), entries.clone(), &opts(Compression::Zstd)).unwrap();
        let gzip = write_layer_blob(dir.path(), entries.clone(), &opts(Compression::Gzip)).unwrap();
        let none = write_layer_blob(dir.path(), entries, &opts(Compression::None)).unwrap();
        assert_eq!(zstd.diff_id, gzip.diff_id);
        let tar = fs::File::open(dir.path().join("sha256").join(none.digest.hex())).unwrap();
        let again =
            write_encoded_blob(dir.path(), tar, &gzip.diff_id, Compression::Gzip, None).unwrap();
        assert_eq!(again, gzip);
        let tar = fs::File::open(dir.path().join("sha256").join(none.digest.hex())).unwrap();
        let again =
            write_encoded_blob(dir.path(), tar, &zstd.diff_id, Compression::Zstd, None).unwrap();
        assert_eq!(again, zstd);
    }

    #[test]
    fn a_stream_that_is_not_the_layer_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let wrong = Digest::sha256(b"something else");
        let e = write_encoded_blob(dir.path(), &b"tar"[..], &wrong, Compression::Gzip, None)
            .unwrap_err();
        assert!(e.to_string().contains("digest mismatch"), "{e}");
        let left: Vec<_> = fs::read_dir(dir.path().join("sha256")).unwrap().collect();
        assert!(left.is_empty(), "nothing stored");
    }
}
