//! Parallel, deterministic gzip.
//!
//! The uncompressed stream is cut into fixed-size blocks of [`BLOCK_SIZE`] bytes.
//! Each block is deflated independently (raw deflate, primed with the last 32 KiB
//! of the previous block as a dictionary, ended with a sync flush; the last block
//! ends the deflate stream), so the compressed bytes of a block depend only on the
//! data, never on which thread or how many threads did the work. The blocks are
//! written in order as ONE gzip member:
//!
//! ```text
//! 1f 8b 08 00 | 00 00 00 00 | 00 ff     fixed header: no name, mtime 0, OS unknown
//! deflate(block 0, sync flush) deflate(block 1, sync flush) ... deflate(last, final)
//! crc32 (LE) | size mod 2^32 (LE)      trailer; CRCs of blocks are combined
//! ```
//!
//! At most `2 * threads` blocks are in flight, so memory stays bounded (a few MiB)
//! whatever the stream size.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, FlushCompress, Status};

/// Size of the independently compressed blocks (fixed: changing it changes digests).
pub const BLOCK_SIZE: usize = 1 << 20;
/// Size of the dictionary carried from one block to the next.
const DICT_SIZE: usize = 32 * 1024;

const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

struct Job {
    data: Vec<u8>,
    dict: Vec<u8>,
    last: bool,
    reply: SyncSender<io::Result<Done>>,
}

struct Done {
    compressed: Vec<u8>,
    crc: crc32fast::Hasher,
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
                    let done = compress_block(&job.data, &job.dict, job.last, level);
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

/// Deflate one block. Non-last blocks end with a sync flush (byte-aligned, not
/// final); the last one finishes the deflate stream.
fn compress_block(data: &[u8], dict: &[u8], last: bool, level: u32) -> io::Result<Done> {
    let mut c = Compress::new(flate2::Compression::new(level), false);
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    loop {
        if out.capacity() - out.len() < 4096 {
            out.reserve(out.capacity().max(64 * 1024));
        }
        let consumed = c.total_in() as usize;
        let status = c
            .compress_vec(&data[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let all_in = c.total_in() as usize == data.len();
        match status {
            Status::StreamEnd => break,
            _ if !last && all_in && out.len() < out.capacity() => break,
            _ => {}
        }
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(data);
    Ok(Done {
        compressed: out,
        crc,
    })
}

/// A gzip writer that compresses fixed-size blocks on a thread pool, with output
/// identical for any number of threads. Call [`GzipWriter::finish`] to write the
/// trailer; dropping it without finishing leaves a truncated stream.
pub struct GzipWriter<W: Write> {
    out: W,
    level: u32,
    block: Vec<u8>,
    dict: Vec<u8>,
    crc: crc32fast::Hasher,
    total: u64,
    pool: Option<Pool>,
    pending: VecDeque<Receiver<io::Result<Done>>>,
    max_pending: usize,
}

impl<W: Write> GzipWriter<W> {
    /// A writer at `level` (0..=9) using `threads` threads (1 = compress on the
    /// caller's thread).
    pub fn new(mut out: W, level: u32, threads: usize) -> io::Result<Self> {
        out.write_all(&HEADER)?;
        let threads = threads.max(1);
        let pool = if threads > 1 {
            Some(Pool::new(threads, level.min(9))?)
        } else {
            None
        };
        Ok(GzipWriter {
            out,
            level: level.min(9),
            block: Vec::with_capacity(BLOCK_SIZE),
            dict: Vec::new(),
            crc: crc32fast::Hasher::new(),
            total: 0,
            pool,
            pending: VecDeque::new(),
            max_pending: threads * 2,
        })
    }

    fn dispatch(&mut self, last: bool) -> io::Result<()> {
        let data = std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK_SIZE));
        let dict = std::mem::take(&mut self.dict);
        if !last {
            self.dict = data[data.len().saturating_sub(DICT_SIZE)..].to_vec();
        }
        self.total += data.len() as u64;
        if self.pool.is_none() {
            let done = compress_block(&data, &dict, last, self.level)?;
            return self.emit(done);
        }
        while self.pending.len() >= self.max_pending {
            self.drain_one()?;
        }
        match &self.pool {
            None => Err(pool_gone()),
            Some(pool) => {
                let (reply, rx) = mpsc::sync_channel(1);
                let jobs = pool.jobs.as_ref().ok_or_else(pool_gone)?;
                jobs.send(Job {
                    data,
                    dict,
                    last,
                    reply,
                })
                .map_err(|_| pool_gone())?;
                self.pending.push_back(rx);
                Ok(())
            }
        }
    }

    fn drain_one(&mut self) -> io::Result<()> {
        if let Some(rx) = self.pending.pop_front() {
            let done = rx.recv().map_err(|_| pool_gone())??;
            self.emit(done)?;
        }
        Ok(())
    }

    fn emit(&mut self, done: Done) -> io::Result<()> {
        self.crc.combine(&done.crc);
        self.out.write_all(&done.compressed)
    }

    /// Compress what is left, write the trailer and return the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.dispatch(true)?;
        while !self.pending.is_empty() {
            self.drain_one()?;
        }
        let crc = self.crc.clone();
        self.out.write_all(&crc.finalize().to_le_bytes())?;
        self.out
            .write_all(&((self.total & 0xffff_ffff) as u32).to_le_bytes())?;
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
        // A full block is only dispatched once more data follows, so the last
        // block (dispatched by `finish`) is never empty unless the stream is.
        if self.block.len() == BLOCK_SIZE {
            self.dispatch(false)?;
        }
        let n = (BLOCK_SIZE - self.block.len()).min(buf.len());
        self.block.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            if self.block.len() == BLOCK_SIZE {
                self.dispatch(false)?;
            }
            let room = BLOCK_SIZE - self.block.len();
            let n = room.min(buf.len());
            self.block.extend_from_slice(&buf[..n]);
            buf = &buf[n..];
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        // Flushing cannot emit a partial block without changing the output; data
        // is written as blocks fill up and on `finish`.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn data(n: usize) -> Vec<u8> {
        let mut x: u32 = 1;
        (0..n)
            .map(|i| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                if i % 3 == 0 {
                    (x >> 16) as u8
                } else {
                    b"hello layer "[i % 12]
                }
            })
            .collect()
    }

    fn gz(input: &[u8], threads: usize) -> Vec<u8> {
        let mut w = GzipWriter::new(Vec::new(), 6, threads).unwrap();
        let (a, b) = input.split_at(input.len() / 2);
        for chunk in a.chunks(70_001) {
            w.write_all(chunk).unwrap();
        }
        // Through `write` too, as `io::copy` does.
        std::io::copy(&mut &b[..], &mut w).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn same_bytes_for_any_thread_count_and_round_trips() {
        for n in [0, 1, BLOCK_SIZE, BLOCK_SIZE + 1, 3 * BLOCK_SIZE + 17] {
            let input = data(n);
            let one = gz(&input, 1);
            assert_eq!(one, gz(&input, 2), "n={n}");
            assert_eq!(one, gz(&input, 5), "n={n}");
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&one[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, input, "n={n}");
        }
    }
}
