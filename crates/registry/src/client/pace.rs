//! Registries that stop responding: the read timeout and the minimum rate.
//!
//! reqwest's blocking client applies its `timeout` to the wait for a response's
//! headers and, afresh, to every `read` of its body: that is the idle timeout, and
//! it needs no timer in the reading thread (reqwest's async `read_timeout` does,
//! and panics in a blocking body read). A body that trickles (a byte a second) is
//! never idle that long, so [`Pace`] also measures the rate over windows of the
//! timeout, as curl's `--speed-limit`/`--speed-time` do. Streamed uploads run on
//! the async client and use [`Pace`] from a watchdog (see `stream_upload`).

use std::io::{self, Read};
use std::time::{Duration, Instant};

use crate::error::Stall;
use crate::{ClientConfig, Error};

/// The rate of one transfer over windows of the read timeout.
#[derive(Debug)]
pub(crate) struct Pace {
    timeout: Duration,
    min_rate: u64,
    window_start: Instant,
    window_bytes: u64,
}

impl Pace {
    pub(crate) fn new(cfg: &ClientConfig) -> Pace {
        Pace {
            timeout: cfg.read_timeout,
            min_rate: cfg.min_rate,
            window_start: Instant::now(),
            window_bytes: 0,
        }
    }

    /// Count `n` bytes received (or sent); a window that closed below the minimum
    /// rate is a [`Stall::Slow`].
    pub(crate) fn record(&mut self, n: u64) -> Result<(), Stall> {
        self.window_bytes += n;
        self.check()
    }

    /// [`Pace::record`] with no new bytes (a watchdog's tick).
    pub(crate) fn check(&mut self) -> Result<(), Stall> {
        let elapsed = self.window_start.elapsed();
        if elapsed < self.timeout {
            return Ok(());
        }
        let need = self.min_rate as f64 * elapsed.as_secs_f64();
        if self.min_rate > 0 && (self.window_bytes as f64) < need {
            return Err(Stall::Slow {
                bytes: self.window_bytes,
                window: Duration::from_millis(elapsed.as_millis() as u64 / 100 * 100),
                min_rate: self.min_rate,
            });
        }
        self.window_start = Instant::now();
        self.window_bytes = 0;
        Ok(())
    }
}

/// The deadline of a request that carries a body of `len` bytes (a manifest, a
/// chunk): the read timeout plus the body at the minimum rate (1 KiB/s if none).
pub(crate) fn body_timeout(cfg: &ClientConfig, len: u64) -> Duration {
    cfg.read_timeout + Duration::from_secs(len / cfg.min_rate.max(1024))
}

/// Whether a reqwest error is a timeout of ours (not a refused connection).
fn stall_of(e: &reqwest::Error) -> bool {
    e.is_timeout() && !e.is_connect()
}

/// The error for a failed request: [`Error::Stalled`] for a timeout, else
/// [`Error::Transport`] (URL removed).
pub(crate) fn transport(host: &str, what: &str, e: reqwest::Error, timeout: Duration) -> Error {
    if stall_of(&e) {
        Error::Stalled {
            registry: host.to_string(),
            what: format!("waiting for the answer to {what}"),
            stall: Stall::Idle(timeout),
        }
    } else {
        Error::Transport {
            registry: host.to_string(),
            what: what.to_string(),
            cause: e.without_url(),
        }
    }
}

/// Whether an I/O error from a blocking body read is reqwest's read timeout.
fn is_timeout_io(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::TimedOut
        || e.get_ref()
            .and_then(|i| i.downcast_ref::<reqwest::Error>())
            .is_some_and(reqwest::Error::is_timeout)
}

/// A response body whose stalls are [`Error::Stalled`] (inside an `io::Error` of
/// kind `TimedOut`, so callers can find it with [`stalled_in`]).
pub(crate) struct PacedReader<R> {
    inner: R,
    pace: Pace,
    timeout: Duration,
    host: String,
    what: String,
}

impl<R: Read> PacedReader<R> {
    /// `what`: what is read, as the error says it ("reading blob sha256:…").
    pub(crate) fn new(inner: R, cfg: &ClientConfig, host: &str, what: String) -> Self {
        PacedReader {
            inner,
            pace: Pace::new(cfg),
            timeout: cfg.read_timeout,
            host: host.to_string(),
            what,
        }
    }

    fn stalled(&self, stall: Stall) -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            Error::Stalled {
                registry: self.host.clone(),
                what: self.what.clone(),
                stall,
            },
        )
    }
}

impl<R: Read> Read for PacedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(0) => Ok(0),
            Ok(n) => {
                if let Err(s) = self.pace.record(n as u64) {
                    return Err(self.stalled(s));
                }
                Ok(n)
            }
            Err(e) if is_timeout_io(&e) => Err(self.stalled(Stall::Idle(self.timeout))),
            Err(e) => Err(e),
        }
    }
}

/// The registry error inside an I/O error, if there is one.
pub(crate) fn stalled_in(e: &io::Error) -> Option<&Error> {
    e.get_ref().and_then(|i| i.downcast_ref::<Error>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_windows_are_stalls() {
        let cfg = ClientConfig {
            read_timeout: Duration::from_millis(50),
            min_rate: 1000,
            ..Default::default()
        };
        let mut p = Pace::new(&cfg);
        assert!(p.record(10).is_ok());
        std::thread::sleep(Duration::from_millis(60));
        match p.record(1) {
            Err(Stall::Slow { bytes: 11, .. }) => {}
            other => panic!("{other:?}"),
        }
        let mut p = Pace::new(&cfg);
        p.record(100_000).unwrap();
        std::thread::sleep(Duration::from_millis(60));
        assert!(p.record(1).is_ok(), "a fast window passes");
        let mut p = Pace::new(&ClientConfig { min_rate: 0, ..cfg });
        std::thread::sleep(Duration::from_millis(60));
        assert!(p.record(1).is_ok(), "0 disables the rate check");
    }
}
