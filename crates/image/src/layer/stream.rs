//! Reading a layer's uncompressed stream safely: the one place every reader of a
//! layer blob (the applier, the engine's metadata index, the sandbox's lower
//! directories, archive readers) decompresses through.
//!
//! A [`LayerStream`]:
//!
//! - checks the compression the media type claims against the magic bytes (a zstd
//!   blob labelled gzip is named as such, not reported as "invalid gzip header");
//! - stops with [`Error::Layer`] once the uncompressed stream passes a bound
//!   ([`ApplyOptions::max_size`](super::ApplyOptions::max_size), by default
//!   [`default_max_layer_size`]) so a decompression bomb never fills the disk;
//! - hashes the uncompressed bytes as they flow and, given the expected diff ID,
//!   fails at the end of the stream when they differ, so nothing derived from an
//!   unverified layer reaches a shared cache (no second pass over the blob);
//! - names the layer (index in the image and digest) in every error.
//!
//! ```text
//!  blob ─▶ magic check ─▶ gzip/zstd decoder ─▶ size bound ─▶ sha256 ─▶ reader
//!                                                               └─ finish(): == diff_id?
//! ```

use std::fmt;
use std::io::{self, BufRead, BufReader, Read};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest as _, Sha256};

use crate::media_type::Compression;
use crate::{Digest, Error, Result};

/// Default bound on a layer's uncompressed size: 32 GiB. Large enough for the
/// biggest real-world layers (CUDA and ML images), small enough that a bomb
/// stops long before it fills a CI worker's disk.
pub const DEFAULT_MAX_LAYER_SIZE: u64 = 32 << 30;

/// The environment variable that sets [`default_max_layer_size`] (a size such as
/// `8GiB`, `500M` or a number of bytes; see [`parse_size`]).
pub const MAX_LAYER_SIZE_ENV: &str = "HOIST_MAX_LAYER_SIZE";

/// 0 = not set: use the environment, then [`DEFAULT_MAX_LAYER_SIZE`].
static MAX_LAYER_SIZE: AtomicU64 = AtomicU64::new(0);

/// The bound on a layer's uncompressed size used when no explicit one is given:
/// the value of [`set_default_max_layer_size`], else `$HOIST_MAX_LAYER_SIZE`, else
/// [`DEFAULT_MAX_LAYER_SIZE`]. An unparsable environment value is ignored with a
/// warning.
pub fn default_max_layer_size() -> u64 {
    match MAX_LAYER_SIZE.load(Ordering::Relaxed) {
        0 => {}
        n => return n,
    }
    if let Ok(v) = std::env::var(MAX_LAYER_SIZE_ENV) {
        match parse_size(&v) {
            Ok(n) if n > 0 => return n,
            Ok(_) => tracing::warn!("{MAX_LAYER_SIZE_ENV}=0 ignored: the bound must be positive"),
            Err(e) => tracing::warn!("{MAX_LAYER_SIZE_ENV}={v:?} ignored: {e}"),
        }
    }
    DEFAULT_MAX_LAYER_SIZE
}

/// Set the process-wide default bound on a layer's uncompressed size (the CLI's
/// `--max-layer-size`). Helper processes get the bound explicitly (the sandbox's
/// unpack request carries it).
pub fn set_default_max_layer_size(bytes: u64) {
    MAX_LAYER_SIZE.store(bytes.max(1), Ordering::Relaxed);
}

/// Parse a size: a number of bytes, optionally followed by `K`, `M`, `G` or `T`
/// (powers of 1024; `KiB`, `KB`, `k` and the like are accepted too).
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (expected e.g. 512M, 32G or a byte count)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        u => return Err(format!("{s:?}: unknown size unit {u:?} (use K, M, G or T)")),
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// Human form of a byte count for messages (`32 GiB`, `1.5 MiB`, `100 bytes`).
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Which layer a stream is: for error messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerName {
    /// Position in the image's layer list (0 = base), when known.
    pub index: Option<usize>,
    /// The blob's (compressed) digest, when known.
    pub digest: Option<Digest>,
}

impl LayerName {
    /// Layer `index` with blob `digest`.
    pub fn new(index: usize, digest: &Digest) -> LayerName {
        LayerName {
            index: Some(index),
            digest: Some(digest.clone()),
        }
    }

    /// A layer known by its digest only.
    pub fn digest(digest: &Digest) -> LayerName {
        LayerName {
            index: None,
            digest: Some(digest.clone()),
        }
    }

    /// Wrap an I/O error met while reading this layer: a bound or digest failure
    /// raised by a [`LayerStream`] (even wrapped by the tar reader) comes back as
    /// the [`Error::Layer`] it is; anything else becomes an [`Error::Layer`]
    /// saying what was being done.
    pub fn error(&self, doing: &str, e: io::Error) -> Error {
        if let Some(f) = find_fault(&e) {
            return Error::Layer {
                layer: self.to_string(),
                reason: f.0.clone(),
            };
        }
        let mut reason = format!("{doing}: {e}");
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            let t = s.to_string();
            if !reason.contains(&t) {
                reason.push_str(": ");
                reason.push_str(&t);
            }
            src = s.source();
        }
        Error::Layer {
            layer: self.to_string(),
            reason,
        }
    }

    fn fail(&self, reason: impl Into<String>) -> Error {
        Error::Layer {
            layer: self.to_string(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for LayerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.index, &self.digest) {
            (Some(i), Some(d)) => write!(f, "layer {i} ({d})"),
            (Some(i), None) => write!(f, "layer {i}"),
            (None, Some(d)) => write!(f, "layer {d}"),
            (None, None) => f.write_str("the layer"),
        }
    }
}

/// A failure a [`LayerStream`] raised itself (bound passed, digest wrong), carried
/// through `io::Error` so that tar readers pass it on intact.
#[derive(Debug)]
struct Fault(String);

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Fault {}

/// Find a [`Fault`] in an I/O error or anything it wraps (the tar crate wraps
/// reader errors in its own error inside an `io::Error`).
fn find_fault(e: &io::Error) -> Option<&Fault> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = match e.get_ref() {
        Some(inner) => Some(inner),
        None => return None,
    };
    while let Some(err) = cur {
        if let Some(f) = err.downcast_ref::<Fault>() {
            return Some(f);
        }
        if let Some(io) = err.downcast_ref::<io::Error>() {
            if let Some(f) = find_fault(io) {
                return Some(f);
            }
        }
        cur = err.source();
    }
    None
}

/// The reason of a [`LayerStream`] failure carried by `e`, if it is one.
pub(crate) fn fault_reason(e: &io::Error) -> Option<String> {
    find_fault(e).map(|f| f.0.clone())
}

/// The compression the magic bytes at the start of `head` show.
pub fn sniff_compression(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

fn compression_name(c: Compression) -> &'static str {
    match c {
        Compression::None => "uncompressed tar",
        Compression::Gzip => "gzip",
        Compression::Zstd => "zstd",
    }
}

/// What to check while reading a layer.
#[derive(Debug, Clone, Default)]
pub struct StreamCheck {
    /// Names the layer in errors.
    pub name: LayerName,
    /// The compression the media type claims; `None` sniffs the magic bytes. A
    /// claim of gzip or zstd that the magic bytes contradict is an error; a claim
    /// of an uncompressed tar reads the blob as it is.
    pub compression: Option<Compression>,
    /// The expected diff ID (sha256 of the uncompressed stream), checked by
    /// [`LayerStream::finish`] and at the end of the stream.
    pub diff_id: Option<Digest>,
    /// Bound on the uncompressed size; `None` = [`default_max_layer_size`].
    pub max_size: Option<u64>,
}

/// A layer's uncompressed stream, bounded and hashed (see the module docs).
pub struct LayerStream<'a> {
    inner: Box<dyn Read + Send + 'a>,
    hash: Sha256,
    count: u64,
    limit: u64,
    check: StreamCheck,
    verified: Option<Digest>,
}

impl fmt::Debug for LayerStream<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LayerStream")
            .field("layer", &self.check.name.to_string())
            .field("count", &self.count)
            .field("limit", &self.limit)
            .finish()
    }
}

impl<'a> LayerStream<'a> {
    /// Start reading the (possibly compressed) layer `blob`.
    pub fn open(blob: impl Read + Send + 'a, check: StreamCheck) -> Result<LayerStream<'a>> {
        let mut br = BufReader::with_capacity(256 * 1024, blob);
        let head = br
            .fill_buf()
            .map_err(|e| check.name.error("reading the blob", e))?;
        let found = sniff_compression(head);
        let kind = match check.compression {
            None => found,
            Some(Compression::None) => Compression::None,
            Some(claim) => {
                if found != Compression::None && found != claim {
                    return Err(check.name.fail(format!(
                        "is {} but its media type says {}",
                        compression_name(found),
                        compression_name(claim)
                    )));
                }
                if found == Compression::None && !head.is_empty() {
                    let what = if head.len() >= 262 && &head[257..262] == b"ustar" {
                        "an uncompressed tar"
                    } else {
                        "not compressed data"
                    };
                    return Err(check.name.fail(format!(
                        "its media type says {} but the blob is {what} (first bytes {:02x?})",
                        compression_name(claim),
                        &head[..head.len().min(4)]
                    )));
                }
                claim
            }
        };
        let inner: Box<dyn Read + Send + 'a> = match kind {
            Compression::None => Box::new(br),
            Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(br)),
            Compression::Zstd => Box::new(
                zstd::stream::read::Decoder::with_buffer(br)
                    .map_err(|e| check.name.error("starting the zstd decoder", e))?,
            ),
        };
        let limit = check.max_size.unwrap_or_else(default_max_layer_size);
        Ok(LayerStream {
            inner,
            hash: Sha256::new(),
            count: 0,
            limit,
            check,
            verified: None,
        })
    }

    /// The layer's name for error messages.
    pub fn name(&self) -> &LayerName {
        &self.check.name
    }

    /// Uncompressed bytes read so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Read to the end (a tar reader may stop at the end-of-archive blocks) and
    /// return the diff ID and uncompressed size; an error when they differ from
    /// the expected diff ID.
    pub fn finish(mut self) -> Result<(Digest, u64)> {
        io::copy(&mut self, &mut io::sink())
            .map_err(|e| self.check.name.error("reading the end of the layer", e))?;
        let got = match self.verified.take() {
            Some(d) => d,
            None => Digest::from_sha256_bytes(self.hash.clone().finalize().into()),
        };
        if let Some(want) = &self.check.diff_id {
            if &got != want {
                return Err(self.check.name.fail(mismatch(want, &got)));
            }
        }
        Ok((got, self.count))
    }
}

fn mismatch(want: &Digest, got: &Digest) -> String {
    format!(
        "uncompressed content does not match the image config: diff ID should be {want}, is {got}"
    )
}

impl Read for LayerStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.verified.is_some() || buf.is_empty() {
            return Ok(0);
        }
        // Ask for at most one byte past the bound so a bomb is stopped there.
        let room = self.limit.saturating_sub(self.count).saturating_add(1);
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = match self.inner.read(&mut buf[..want]) {
            Ok(n) => n,
            Err(e) if find_fault(&e).is_some() => return Err(e),
            Err(e) => {
                let what = match self.check.compression {
                    Some(Compression::Gzip) => "invalid gzip data",
                    Some(Compression::Zstd) => "invalid zstd data",
                    _ => "reading the blob",
                };
                return Err(io::Error::new(
                    e.kind(),
                    Fault(format!("{what} at uncompressed offset {}: {e}", self.count)),
                ));
            }
        };
        self.count += n as u64;
        if self.count > self.limit {
            return Err(io::Error::other(Fault(format!(
                "expands past the bound of {} on a layer's uncompressed size \
                 (set it with --max-layer-size or {MAX_LAYER_SIZE_ENV})",
                human_size(self.limit)
            ))));
        }
        self.hash.update(&buf[..n]);
        if n == 0 {
            let got = Digest::from_sha256_bytes(self.hash.clone().finalize().into());
            if let Some(want) = &self.check.diff_id {
                if &got != want {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        Fault(mismatch(want, &got)),
                    ));
                }
            }
            self.verified = Some(got);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("2K").unwrap(), 2048);
        assert_eq!(parse_size("3MiB").unwrap(), 3 << 20);
        assert_eq!(parse_size("32G").unwrap(), 32 << 30);
        assert!(parse_size("12X").is_err());
        assert!(parse_size("G").is_err());
        assert_eq!(human_size(32 << 30), "32 GiB");
    }

    #[test]
    fn bound_stops_a_bomb() {
        let blob = gz(&vec![0u8; 8 << 20]);
        let check = StreamCheck {
            name: LayerName::new(2, &Digest::sha256(&blob)),
            compression: Some(Compression::Gzip),
            max_size: Some(1 << 20),
            ..StreamCheck::default()
        };
        let s = LayerStream::open(&blob[..], check).unwrap();
        let e = s.finish().unwrap_err().to_string();
        assert!(e.starts_with("layer 2 (sha256:"), "{e}");
        assert!(e.contains("expands past the bound of 1 MiB"), "{e}");
    }

    #[test]
    fn zstd_labelled_gzip_is_named() {
        let blob = zstd::encode_all(&b"hello"[..], 3).unwrap();
        let check = StreamCheck {
            name: LayerName::new(1, &Digest::sha256(&blob)),
            compression: Some(Compression::Gzip),
            ..StreamCheck::default()
        };
        let e = LayerStream::open(&blob[..], check).unwrap_err().to_string();
        assert!(e.contains("layer 1 (sha256:"), "{e}");
        assert!(e.ends_with("is zstd but its media type says gzip"), "{e}");
    }

    #[test]
    fn wrong_diff_id_fails_at_the_end() {
        let blob = gz(b"some bytes");
        let check = StreamCheck {
            name: LayerName::new(0, &Digest::sha256(&blob)),
            diff_id: Some(Digest::sha256(b"other bytes")),
            ..StreamCheck::default()
        };
        let s = LayerStream::open(&blob[..], check.clone()).unwrap();
        let e = s.finish().unwrap_err().to_string();
        assert!(e.contains("diff ID should be"), "{e}");
        let good = StreamCheck {
            diff_id: Some(Digest::sha256(b"some bytes")),
            ..check
        };
        let (d, n) = LayerStream::open(&blob[..], good)
            .unwrap()
            .finish()
            .unwrap();
        assert_eq!((d, n), (Digest::sha256(b"some bytes"), 10));
    }

    #[test]
    fn faults_survive_the_tar_reader() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(4 << 20);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "big", &vec![0u8; 4 << 20][..])
            .unwrap();
        let blob = gz(&b.into_inner().unwrap());
        let name = LayerName::new(3, &Digest::sha256(&blob));
        let check = StreamCheck {
            name: name.clone(),
            max_size: Some(4096),
            ..StreamCheck::default()
        };
        let s = LayerStream::open(&blob[..], check).unwrap();
        let mut ar = tar::Archive::new(s);
        let mut ent = ar.entries().unwrap().next().unwrap().unwrap();
        let e = io::copy(&mut ent, &mut io::sink()).unwrap_err();
        let e = name.error("reading the layer tar", e).to_string();
        assert!(e.contains("expands past the bound"), "{e}");
    }
}
