//! Parallel, deterministic gzip built on libdeflate.
//!
//! The uncompressed stream is cut into fixed-size segments of [`BLOCK_SIZE`]
//! bytes, and each segment into [`CHUNK`]-byte chunks. A chunk whose byte
//! histogram is nearly flat (see [`looks_incompressible`]: a collision-entropy
//! test in integer arithmetic, ~1 GB/s) is *raw*; runs of raw chunks shorter than
//! [`MIN_RAW_RUN`] count as compressible. A segment is then written as gzip
//! members, each member being
//!
//! ```text
//! 1f 8b 08 00 00 00 00 00 00 ff           fixed header: no name, mtime 0, OS unknown
//! [stored deflate blocks of a raw run]    copied, never searched for matches
//! [libdeflate(compressible run, level)]   one raw deflate stream, ends the member
//! crc32 (LE) | size mod 2^32 (LE)
//! ```
//!
//! (a trailing raw run is a member of stored blocks only). Everything depends on
//! the bytes of the segment alone, never on which thread or how many threads did
//! the work, so the blob is identical for any thread count.
//!
//! # Why gzip members, not one deflate stream
//!
//! libdeflate compresses whole buffers: it cannot continue a stream from a
//! dictionary or end a buffer with a sync flush, so the pieces cannot be spliced
//! into one deflate stream. RFC 1952 (§2.2) defines a gzip file as a series of
//! members, and every image consumer reads them: Go's `compress/gzip` (docker,
//! containerd, BuildKit, podman, buildah, skopeo, umoci, crane, kaniko) reads
//! multistream by default, as do GNU gzip, zlib's `gzread`, Python and Java.
//! eStargz layers are exactly this (one member per file chunk) and run on every
//! runtime. Rust's `flate2::read::GzDecoder` stops after the first member: use
//! `MultiGzDecoder`, as hoist does everywhere.
//!
//! The level keeps gzip's meaning (0 = stored, 1 fastest … 9 smallest, default
//! 6): it is libdeflate's level of the same number, which gives slightly smaller
//! output than zlib's at the same level (measured in BENCHMARKS.md).
//!
//! At most `2 * threads` segments are in flight, so memory stays bounded (a few
//! MiB) whatever the stream size.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use libdeflater::{CompressionLvl, Compressor};

/// Size of the independently compressed segments (fixed: changing it changes digests).
pub const BLOCK_SIZE: usize = 1 << 20;
/// Granularity of the raw/compressible decision (fixed: it changes digests).
pub const CHUNK: usize = 4096;
/// Raw runs shorter than this many chunks are deflated with their neighbours.
pub const MIN_RAW_RUN: usize = 2;
/// Largest payload of one stored deflate block.
const STORED_MAX: usize = 65_535;

const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// Whether deflate is not worth running on `chunk`: its collision entropy
/// (Rényi order 2, `-log2 Σ p²`) is at least 7.5 bits per byte, i.e.
/// `181 · Σ count² ≤ n²`. Random and already-compressed data score ~7.9–8;
/// text, code and binaries score 4–7. Integer arithmetic only, so the decision
/// is the same on every machine.
pub fn looks_incompressible(chunk: &[u8]) -> bool {
    if chunk.len() < 256 {
        return false;
    }
    let mut h = [0u32; 256];
    for &b in chunk {
        h[b as usize] += 1;
    }
    let sum_sq: u64 = h.iter().map(|&c| u64::from(c) * u64::from(c)).sum();
    let n = chunk.len() as u64;
    sum_sq * 181 <= n * n
}

/// The per-chunk decision of a segment, with short raw runs folded into the
/// compressible ones: a list of (start, end, raw) runs covering `data`.
fn runs(data: &[u8], level: u32) -> Vec<(usize, usize, bool)> {
    if level == 0 {
        return vec![(0, data.len(), true)];
    }
    let raw: Vec<bool> = data.chunks(CHUNK).map(looks_incompressible).collect();
    let mut out: Vec<(usize, usize, bool)> = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        let mut j = i;
        while j < raw.len() && raw[j] == raw[i] {
            j += 1;
        }
        let is_raw = raw[i] && j - i >= MIN_RAW_RUN;
        let (start, end) = (i * CHUNK, (j * CHUNK).min(data.len()));
        match out.last_mut() {
            Some(last) if last.2 == is_raw => last.1 = end,
            _ => out.push((start, end, is_raw)),
        }
        i = j;
    }
    out
}

/// One thread's compressor (libdeflate's state is reused across segments).
struct Deflater {
    level: u32,
    compressor: Option<Compressor>,
}

impl Deflater {
    fn new(level: u32) -> io::Result<Deflater> {
        let compressor = if level == 0 {
            None
        } else {
            let lvl = CompressionLvl::new(level as i32)
                .map_err(|e| io::Error::other(format!("gzip level {level}: {e:?}")))?;
            Some(Compressor::new(lvl))
        };
        Ok(Deflater { level, compressor })
    }

    /// The gzip members of one segment.
    fn segment(&mut self, data: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(data.len() / 2 + 1024);
        if data.is_empty() {
            member(&mut out, &[], &[], None)?;
            return Ok(out);
        }
        let runs = runs(data, self.level);
        let mut k = 0;
        while k < runs.len() {
            let (start, end, raw) = runs[k];
            if raw {
                match runs.get(k + 1) {
                    Some(&(_, cend, false)) => {
                        member(
                            &mut out,
                            &data[start..end],
                            &data[end..cend],
                            self.compressor.as_mut(),
                        )?;
                        k += 2;
                    }
                    _ => {
                        member(&mut out, &data[start..end], &[], None)?;
                        k += 1;
                    }
                }
            } else {
                member(&mut out, &[], &data[start..end], self.compressor.as_mut())?;
                k += 1;
            }
        }
        Ok(out)
    }
}

/// Append one gzip member: `stored` as stored blocks, then `packed` deflated
/// (when a compressor is given and `packed` is not empty).
fn member(
    out: &mut Vec<u8>,
    stored: &[u8],
    packed: &[u8],
    compressor: Option<&mut Compressor>,
) -> io::Result<()> {
    out.extend_from_slice(&HEADER);
    let deflate = !packed.is_empty() && compressor.is_some();
    let mut crc = crc32fast::Hasher::new();
    crc.update(stored);
    crc.update(packed);
    if deflate {
        write_stored(out, stored, false);
        if let Some(c) = compressor {
            let at = out.len();
            out.resize(at + c.deflate_compress_bound(packed.len()), 0);
            let n = c
                .deflate_compress(packed, &mut out[at..])
                .map_err(|e| io::Error::other(format!("deflate: {e:?}")))?;
            out.truncate(at + n);
        }
    } else {
        // Either nothing to deflate, or level 0: all stored, the last block final.
        let mut all = Vec::new();
        let data = if packed.is_empty() {
            stored
        } else {
            all.extend_from_slice(stored);
            all.extend_from_slice(packed);
            &all[..]
        };
        write_stored(out, data, true);
    }
    let len = (stored.len() + packed.len()) as u64;
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(&((len & 0xffff_ffff) as u32).to_le_bytes());
    Ok(())
}

/// Stored deflate blocks of `data` (byte-aligned: a member starts aligned and
/// every stored block ends aligned). With `last`, the final block has BFINAL
/// set; an empty `data` with `last` is one empty final block.
fn write_stored(out: &mut Vec<u8>, data: &[u8], last: bool) {
    if data.is_empty() {
        if last {
            out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
        }
        return;
    }
    let mut pieces = data.chunks(STORED_MAX).peekable();
    while let Some(p) = pieces.next() {
        let fin = last && pieces.peek().is_none();
        let len = p.len() as u16;
        out.push(u8::from(fin));
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(p);
    }
}

struct Job {
    data: Vec<u8>,
    reply: SyncSender<io::Result<Vec<u8>>>,
}

struct Pool {
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    fn new(threads: usize, level: u32) -> io::Result<Pool> {
        let (tx, rx) = mpsc::sync_channel::<Job>(threads * 2);
        let rx = Arc::new(Mutex::new(rx));
        let mut workers = Vec::with_capacity(threads);
        for i in 0..threads {
            let rx = Arc::clone(&rx);
            let mut deflater = Deflater::new(level)?;
            let handle = std::thread::Builder::new()
                .name(format!("hoist-gzip-{i}"))
                .spawn(move || loop {
                    let job = {
                        let Ok(guard) = rx.lock() else { return };
                        match guard.recv() {
                            Ok(job) => job,
                            Err(_) => return,
                        }
                    };
                    let done = deflater.segment(&job.data);
                    // The receiver may be gone when the writer was dropped mid-way.
                    let _ = job.reply.send(done);
                })?;
            workers.push(handle);
        }
        Ok(Pool {
            jobs: Some(tx),
            workers,
        })
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.jobs.take();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// A gzip writer that compresses fixed-size segments on a thread pool, with
/// output identical for any number of threads (see the [module](self) docs for
/// the format). Call [`GzipWriter::finish`] to write the last segment; dropping
/// it without finishing leaves a truncated stream.
pub struct GzipWriter<W: Write> {
    out: W,
    block: Vec<u8>,
    local: Option<Deflater>,
    pool: Option<Pool>,
    pending: VecDeque<Receiver<io::Result<Vec<u8>>>>,
    max_pending: usize,
    wrote_any: bool,
}

impl<W: Write> GzipWriter<W> {
    /// A writer at `level` (0..=9, gzip's meaning) using `threads` threads
    /// (1 = compress on the caller's thread).
    pub fn new(out: W, level: u32, threads: usize) -> io::Result<Self> {
        let threads = threads.max(1);
        let level = level.min(9);
        let (local, pool) = if threads > 1 {
            (None, Some(Pool::new(threads, level)?))
        } else {
            (Some(Deflater::new(level)?), None)
        };
        Ok(GzipWriter {
            out,
            block: Vec::with_capacity(BLOCK_SIZE),
            local,
            pool,
            pending: VecDeque::new(),
            max_pending: threads * 2,
            wrote_any: false,
        })
    }

    fn dispatch(&mut self) -> io::Result<()> {
        let data = std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK_SIZE));
        self.wrote_any = true;
        if let Some(d) = &mut self.local {
            let done = d.segment(&data)?;
            return self.out.write_all(&done);
        }
        while self.pending.len() >= self.max_pending {
            self.drain_one()?;
        }
        let pool = self.pool.as_ref().ok_or_else(pool_gone)?;
        let (reply, rx) = mpsc::sync_channel(1);
        let jobs = pool.jobs.as_ref().ok_or_else(pool_gone)?;
        jobs.send(Job { data, reply }).map_err(|_| pool_gone())?;
        self.pending.push_back(rx);
        Ok(())
    }

    fn drain_one(&mut self) -> io::Result<()> {
        if let Some(rx) = self.pending.pop_front() {
            let done = rx.recv().map_err(|_| pool_gone())??;
            self.out.write_all(&done)?;
        }
        Ok(())
    }

    /// Compress what is left and return the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        if !self.block.is_empty() || !self.wrote_any {
            self.dispatch()?;
        }
        while !self.pending.is_empty() {
            self.drain_one()?;
        }
        self.out.flush()?;
        self.pool.take();
        let GzipWriter { out, .. } = self;
        Ok(out)
    }
}

fn pool_gone() -> io::Error {
    io::Error::other("gzip worker thread died")
}

impl<W: Write> Write for GzipWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.block.len() == BLOCK_SIZE {
            self.dispatch()?;
        }
        let n = (BLOCK_SIZE - self.block.len()).min(buf.len());
        self.block.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            if self.block.len() == BLOCK_SIZE {
                self.dispatch()?;
            }
            let room = BLOCK_SIZE - self.block.len();
            let n = room.min(buf.len());
            self.block.extend_from_slice(&buf[..n]);
            buf = &buf[n..];
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        // Flushing cannot emit a partial segment without changing the output;
        // data is written as segments fill up and on `finish`.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Text, pseudo-random bytes and zeros in runs of a few KiB to a few MiB, so
    /// stored runs, deflated runs and mixed chunks all occur.
    fn data(n: usize) -> Vec<u8> {
        let mut x: u32 = 1;
        let mut out = Vec::with_capacity(n);
        let mut kind = 0u32;
        while out.len() < n {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let run = 1000 + (x >> 8) as usize % 40_000;
            for i in 0..run.min(n - out.len()) {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                out.push(match kind % 3 {
                    0 => (x >> 16) as u8,
                    1 => b"hello layer "[i % 12],
                    _ => 0,
                });
            }
            kind += 1 + (x >> 30);
        }
        out
    }

    fn gz(input: &[u8], level: u32, threads: usize) -> Vec<u8> {
        let mut w = GzipWriter::new(Vec::new(), level, threads).unwrap();
        let (a, b) = input.split_at(input.len() / 2);
        for chunk in a.chunks(70_001) {
            w.write_all(chunk).unwrap();
        }
        // Through `write` too, as `io::copy` does.
        std::io::copy(&mut &b[..], &mut w).unwrap();
        w.finish().unwrap()
    }

    fn gunzip(blob: &[u8]) -> Vec<u8> {
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(blob)
            .read_to_end(&mut back)
            .unwrap();
        back
    }

    #[test]
    fn same_bytes_for_any_thread_count_and_round_trips() {
        for n in [0, 1, CHUNK, BLOCK_SIZE, BLOCK_SIZE + 1, 3 * BLOCK_SIZE + 17] {
            let input = data(n);
            for level in [0, 1, 6, 9] {
                let one = gz(&input, level, 1);
                assert_eq!(one, gz(&input, level, 2), "n={n} level={level}");
                assert_eq!(one, gz(&input, level, 5), "n={n} level={level}");
                assert_eq!(gunzip(&one), input, "n={n} level={level}");
            }
        }
    }

    #[test]
    fn random_data_is_stored_and_text_is_deflated() {
        let mut x: u64 = 7;
        let random: Vec<u8> = (0..BLOCK_SIZE)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        assert!(random.chunks(CHUNK).all(looks_incompressible));
        let blob = gz(&random, 6, 2);
        // Stored: 5 bytes per 64 KiB block plus one header and trailer.
        let overhead = blob.len() - random.len();
        assert!(
            overhead <= 18 + 5 * (BLOCK_SIZE / STORED_MAX + 1),
            "{overhead}"
        );
        assert_eq!(gunzip(&blob), random);

        let text: Vec<u8> = (0..BLOCK_SIZE).map(|i| b"some words, "[i % 12]).collect();
        assert!(!looks_incompressible(&text[..CHUNK]));
        assert!(gz(&text, 6, 2).len() < text.len() / 50);
    }

    #[test]
    fn members_are_valid_gzip_with_crc() {
        let input = data(BLOCK_SIZE + 5000);
        let mut blob = gz(&input, 6, 2);
        // Corrupting the last member's CRC is detected by a strict decoder.
        let at = blob.len() - 8;
        blob[at] ^= 1;
        let mut back = Vec::new();
        assert!(flate2::read::MultiGzDecoder::new(&blob[..])
            .read_to_end(&mut back)
            .is_err());
    }
}
