//! Progress of blob transfers: a small reporter trait that everything moving bytes
//! (registry pulls and pushes, copies between transports, `ADD` downloads) calls,
//! and that displays (hoist's terminal bars, CI lines, JSON events) implement.
//!
//! It lives in the image crate, below both the registry client and the build
//! engine, so neither has to know the other's display.
//!
//! ```
//! use std::io::Read;
//! use hoist_image::progress::{Direction, ProgressReader, Reporter};
//! let reporter = Reporter::none();
//! let t = reporter.start(Direction::Pull, "sha256:abcd", Some(5));
//! let mut r = ProgressReader::new(&b"hello"[..], t, Some(5));
//! let mut out = Vec::new();
//! r.read_to_end(&mut out).unwrap();
//! assert_eq!(r.transferred(), 5);
//! ```

use std::io::Read;
use std::sync::Arc;

/// What a transfer does (the first word of a progress line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// A blob downloaded from a registry.
    Pull,
    /// A blob uploaded to a registry.
    Push,
    /// A blob copied between local transports (or from a registry to one).
    Copy,
    /// A file downloaded over HTTP (`ADD https://…`).
    Download,
}

impl Direction {
    /// `pull`, `push`, `copy`, `download`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Pull => "pull",
            Direction::Push => "push",
            Direction::Copy => "copy",
            Direction::Download => "download",
        }
    }
}

/// Receives the progress of transfers.
///
/// Contract: implementations are cheap (called for every chunk read, from worker
/// threads, several transfers at once) and never fail or block on I/O for long;
/// a display decides itself how often to draw.
pub trait TransferReporter: Send + Sync {
    /// A transfer starts. `name` is what moves (a digest, a URL); `total` its size
    /// when known. Each retry of a transfer is a new one.
    fn start(&self, direction: Direction, name: &str, total: Option<u64>) -> Box<dyn Transfer>;
}

/// One transfer in flight.
pub trait Transfer: Send + Sync {
    /// `n` more bytes moved.
    fn advance(&self, n: u64);
    /// The transfer ended: `ok` when every byte moved. Called once (by
    /// [`ProgressReader`] when it is dropped).
    fn finish(&self, ok: bool);
}

/// A shared, clonable handle on a [`TransferReporter`] (what configurations hold).
#[derive(Clone)]
pub struct Reporter(Arc<dyn TransferReporter>);

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reporter")
    }
}

impl Default for Reporter {
    fn default() -> Self {
        Reporter::none()
    }
}

impl Reporter {
    /// Report to `r`.
    pub fn new(r: Arc<dyn TransferReporter>) -> Reporter {
        Reporter(r)
    }

    /// Report nothing.
    pub fn none() -> Reporter {
        Reporter(Arc::new(NoProgress))
    }

    /// Start a transfer (see [`TransferReporter::start`]).
    pub fn start(&self, direction: Direction, name: &str, total: Option<u64>) -> Box<dyn Transfer> {
        self.0.start(direction, name, total)
    }

    /// Wrap `r` so that reading it reports a transfer of `name`.
    pub fn reader<'a, R: Read + Send + 'a>(
        &self,
        direction: Direction,
        name: &str,
        total: Option<u64>,
        r: R,
    ) -> ProgressReader<R> {
        ProgressReader::new(r, self.start(direction, name, total), total)
    }
}

/// Reports nothing.
pub struct NoProgress;

struct NoTransfer;

impl Transfer for NoTransfer {
    fn advance(&self, _: u64) {}
    fn finish(&self, _: bool) {}
}

impl TransferReporter for NoProgress {
    fn start(&self, _: Direction, _: &str, _: Option<u64>) -> Box<dyn Transfer> {
        Box::new(NoTransfer)
    }
}

/// A reader that reports every byte read to a [`Transfer`], and finishes it when
/// dropped (`ok` if the stream reached its end or `total` bytes were read).
pub struct ProgressReader<R> {
    inner: R,
    transfer: Box<dyn Transfer>,
    total: Option<u64>,
    done: u64,
    eof: bool,
}

impl<R> ProgressReader<R> {
    /// Report reads of `inner` (of `total` bytes, if known) to `transfer`.
    pub fn new(inner: R, transfer: Box<dyn Transfer>, total: Option<u64>) -> ProgressReader<R> {
        ProgressReader {
            inner,
            transfer,
            total,
            done: 0,
            eof: false,
        }
    }

    /// Bytes read so far.
    pub fn transferred(&self) -> u64 {
        self.done
    }
}

impl<R: Read> Read for ProgressReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.eof = true;
        }
        self.done += n as u64;
        self.transfer.advance(n as u64);
        Ok(n)
    }
}

impl<R> Drop for ProgressReader<R> {
    fn drop(&mut self) {
        let complete = self.total.is_some_and(|t| self.done >= t);
        self.transfer.finish(self.eof || complete);
    }
}

/// A [`Source`](crate::Source) whose blob reads report [`Direction::Copy`]
/// transfers (for copies between transports).
pub struct ReportingSource<'a> {
    inner: &'a dyn crate::Source,
    reporter: Reporter,
}

impl<'a> ReportingSource<'a> {
    /// Report blob reads of `inner` to `reporter`.
    pub fn new(inner: &'a dyn crate::Source, reporter: Reporter) -> ReportingSource<'a> {
        ReportingSource { inner, reporter }
    }
}

impl crate::Source for ReportingSource<'_> {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn root(&self) -> crate::Result<crate::RawDocument> {
        self.inner.root()
    }
    fn manifest(&self, desc: &crate::Descriptor) -> crate::Result<crate::RawDocument> {
        self.inner.manifest(desc)
    }
    fn blob(&self, desc: &crate::Descriptor) -> crate::Result<Box<dyn Read + Send + '_>> {
        let r = self.inner.blob(desc)?;
        Ok(Box::new(self.reporter.reader(
            Direction::Copy,
            &desc.digest.to_string(),
            Some(desc.size),
            r,
        )))
    }
    fn has_blob(&self, desc: &crate::Descriptor) -> crate::Result<bool> {
        self.inner.has_blob(desc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Log(Mutex<Vec<String>>);
    struct T(Arc<Log>, String);
    impl Transfer for T {
        fn advance(&self, n: u64) {
            self.0 .0.lock().unwrap().push(format!("{} +{n}", self.1));
        }
        fn finish(&self, ok: bool) {
            self.0
                 .0
                .lock()
                .unwrap()
                .push(format!("{} done {ok}", self.1));
        }
    }
    struct R(Arc<Log>);
    impl TransferReporter for R {
        fn start(&self, d: Direction, name: &str, total: Option<u64>) -> Box<dyn Transfer> {
            self.0
                 .0
                .lock()
                .unwrap()
                .push(format!("{} {name} {total:?}", d.as_str()));
            Box::new(T(self.0.clone(), name.to_string()))
        }
    }

    #[test]
    fn reader_reports_bytes_and_whether_it_finished() {
        let log = Arc::new(Log::default());
        let rep = Reporter::new(Arc::new(R(log.clone())));
        {
            let mut r = rep.reader(Direction::Push, "a", Some(3), &b"abc"[..]);
            std::io::copy(&mut r, &mut std::io::sink()).unwrap();
        }
        {
            let mut r = rep.reader(Direction::Pull, "b", Some(3), &b"abc"[..]);
            let mut one = [0u8; 1];
            r.read_exact(&mut one).unwrap();
        }
        {
            // Exactly `total` bytes read without seeing the end: complete.
            let mut r = rep.reader(Direction::Pull, "c", Some(1), &b"abc"[..]);
            let mut one = [0u8; 1];
            r.read_exact(&mut one).unwrap();
        }
        let got = log.0.lock().unwrap().clone();
        assert_eq!(got.first().unwrap(), "push a Some(3)");
        assert!(got.contains(&"a +3".to_string()), "{got:?}");
        assert!(got.contains(&"a done true".to_string()), "{got:?}");
        assert!(got.contains(&"b +1".to_string()), "{got:?}");
        assert!(got.contains(&"b done false".to_string()), "{got:?}");
        assert_eq!(got.last().unwrap(), "c done true");
    }
}
