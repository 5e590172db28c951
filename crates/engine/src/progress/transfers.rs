//! Displays of blob transfers (pull, push, copy, download), one per progress mode:
//!
//! - [`Bars`]: on a terminal, one indicatif bar per transfer in flight (bytes,
//!   rate, ETA), removed when it ends; the build display prints through it.
//! - [`Lines`] in plain mode: a line every [`Lines::interval`] and at every
//!   quarter of a large transfer, for CI logs without a terminal:
//!   `push sha256:abcd1234abcd… 48.0 MiB / 150.0 MiB (32%) 21.3 MiB/s ETA 5s`.
//! - [`Lines`] in JSON mode: the same moments as one JSON object per line.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hoist_image::progress::{Direction, Transfer, TransferReporter};

/// Transfers smaller than this get no quarter lines and no summary line (configs,
/// small layers): only a line if they take longer than the interval.
pub const MIN_REPORTED: u64 = 4 << 20;

/// `sha256:0123456789ab…` (a digest cut to 12 hex digits) or a URL as is.
pub fn short_name(name: &str) -> String {
    match name.split_once(':') {
        Some((alg, hex)) if hex.len() > 12 && hex.chars().all(|c| c.is_ascii_hexdigit()) => {
            format!("{alg}:{}…", &hex[..12])
        }
        _ => name.to_string(),
    }
}

/// `512 B`, `3.4 KiB`, `48.0 MiB`, `1.2 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// Plain or JSON transfer lines, throttled (see the module docs). Clones share
/// the output.
#[derive(Clone)]
pub struct Lines {
    json: bool,
    interval: Duration,
    out: Arc<Mutex<Box<dyn Write + Send>>>,
}

impl Lines {
    /// Plain lines on stderr, every `interval` (and at each quarter).
    pub fn plain(interval: Duration) -> Lines {
        Lines::to(false, interval, Box::new(std::io::stderr()))
    }

    /// JSON lines on stderr.
    pub fn json(interval: Duration) -> Lines {
        Lines::to(true, interval, Box::new(std::io::stderr()))
    }

    /// Lines written to `out` (JSON if `json`).
    pub fn to(json: bool, interval: Duration, out: Box<dyn Write + Send>) -> Lines {
        Lines {
            json,
            interval,
            out: Arc::new(Mutex::new(out)),
        }
    }

    /// How often a running transfer gets a line.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    fn write(&self, line: &str) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

/// The interval of progress lines: `HOIST_PROGRESS_INTERVAL` seconds, default 5.
pub fn interval_from_env() -> Duration {
    std::env::var("HOIST_PROGRESS_INTERVAL")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(Duration::from_secs(5))
}

struct LineTransfer {
    lines: Lines,
    direction: Direction,
    name: String,
    total: Option<u64>,
    start: Instant,
    done: AtomicU64,
    /// (last line at, last quarter reported, whether any line was printed).
    state: Mutex<(Instant, u64, bool)>,
}

impl LineTransfer {
    fn line(&self, done: u64, finished: Option<bool>) -> String {
        let secs = self.start.elapsed().as_secs_f64().max(1e-3);
        let rate = done as f64 / secs;
        let d = self.direction.as_str();
        if self.lines.json {
            let event = match finished {
                None => "transfer",
                Some(true) => "transfer_done",
                Some(false) => "transfer_failed",
            };
            return serde_json::json!({
                "event": event,
                "direction": d,
                "name": self.name,
                "bytes": done,
                "total": self.total,
                "bytes_per_second": rate.round() as u64,
                "seconds": (secs * 1000.0).round() / 1000.0,
            })
            .to_string();
        }
        let name = short_name(&self.name);
        let rate_s = format!("{}/s", human_bytes(rate as u64));
        match finished {
            Some(true) => format!(
                "{d} {name} {} done in {secs:.1}s ({rate_s})",
                human_bytes(done)
            ),
            Some(false) => format!("{d} {name} stopped after {}", human_bytes(done)),
            None => match self.total {
                Some(t) if t > 0 => {
                    let pct = done.saturating_mul(100) / t;
                    let eta = if rate > 0.0 {
                        format!(" ETA {:.0}s", (t.saturating_sub(done)) as f64 / rate)
                    } else {
                        String::new()
                    };
                    format!(
                        "{d} {name} {} / {} ({pct}%) {rate_s}{eta}",
                        human_bytes(done),
                        human_bytes(t)
                    )
                }
                _ => format!("{d} {name} {} {rate_s}", human_bytes(done)),
            },
        }
    }
}

impl Transfer for LineTransfer {
    fn advance(&self, n: u64) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        let quarter = match self.total {
            Some(t) if t >= MIN_REPORTED => done.saturating_mul(4) / t,
            _ => 0,
        };
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let due = st.0.elapsed() >= self.lines.interval;
        // Quarters 1-3 (the end is the summary line).
        let new_quarter = quarter > st.1 && quarter < 4;
        if due || new_quarter {
            st.0 = Instant::now();
            st.1 = st.1.max(quarter);
            st.2 = true;
            drop(st);
            self.lines.write(&self.line(done, None));
        }
    }

    fn finish(&self, ok: bool) {
        let done = self.done.load(Ordering::Relaxed);
        let printed = self.state.lock().unwrap_or_else(|e| e.into_inner()).2;
        let large = self.total.unwrap_or(done) >= MIN_REPORTED;
        if printed || large || (self.lines.json && !ok) {
            self.lines.write(&self.line(done, Some(ok)));
        }
    }
}

impl TransferReporter for Lines {
    fn start(&self, direction: Direction, name: &str, total: Option<u64>) -> Box<dyn Transfer> {
        let now = Instant::now();
        Box::new(LineTransfer {
            lines: self.clone(),
            direction,
            name: name.to_string(),
            total,
            start: now,
            done: AtomicU64::new(0),
            state: Mutex::new((now, 0, false)),
        })
    }
}

/// Terminal bars: one per transfer in flight. Clones share the bars.
#[derive(Clone)]
pub struct Bars {
    multi: indicatif::MultiProgress,
}

impl Default for Bars {
    fn default() -> Self {
        Bars::new()
    }
}

impl Bars {
    /// Bars on stderr.
    pub fn new() -> Bars {
        Bars {
            multi: indicatif::MultiProgress::with_draw_target(
                indicatif::ProgressDrawTarget::stderr(),
            ),
        }
    }

    /// Run `f` (which writes to stderr) with the bars hidden, then draw them again.
    pub fn suspend<T>(&self, f: impl FnOnce() -> T) -> T {
        self.multi.suspend(f)
    }
}

struct Bar {
    bar: indicatif::ProgressBar,
    multi: indicatif::MultiProgress,
    label: String,
    start: Instant,
}

impl Transfer for Bar {
    fn advance(&self, n: u64) {
        self.bar.inc(n);
    }

    fn finish(&self, ok: bool) {
        let done = self.bar.position();
        self.bar.finish_and_clear();
        self.multi.remove(&self.bar);
        if done >= MIN_REPORTED || !ok {
            let secs = self.start.elapsed().as_secs_f64().max(1e-3);
            let line = if ok {
                format!(
                    "{} {} done in {secs:.1}s ({}/s)",
                    self.label,
                    human_bytes(done),
                    human_bytes((done as f64 / secs) as u64)
                )
            } else {
                format!("{} stopped after {}", self.label, human_bytes(done))
            };
            let _ = self.multi.println(line);
        }
    }
}

impl TransferReporter for Bars {
    fn start(&self, direction: Direction, name: &str, total: Option<u64>) -> Box<dyn Transfer> {
        let label = format!("{} {}", direction.as_str(), short_name(name));
        let bar = match total {
            Some(t) => indicatif::ProgressBar::new(t).with_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            ),
            None => indicatif::ProgressBar::new_spinner().with_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix} {spinner} {binary_bytes} {binary_bytes_per_sec}",
                )
                .expect("valid template"),
            ),
        };
        let bar = self.multi.add(bar.with_prefix(label.clone()));
        bar.enable_steady_tick(Duration::from_millis(200));
        Box::new(Bar {
            bar,
            multi: self.multi.clone(),
            label,
            start: Instant::now(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn run(json: bool, total: u64, chunks: u64) -> Vec<String> {
        let buf = Buf::default();
        let lines = Lines::to(json, Duration::from_secs(3600), Box::new(buf.clone()));
        let name = format!("sha256:{}", "ab".repeat(32));
        let t = lines.start(Direction::Push, &name, Some(total));
        for _ in 0..chunks {
            t.advance(total / chunks);
        }
        t.finish(true);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn large_transfers_get_quarter_lines_and_a_summary() {
        let lines = run(false, 160 << 20, 160);
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert!(
            lines[0].starts_with("push sha256:abababababab… 40.0 MiB / 160.0 MiB (25%) "),
            "{lines:?}"
        );
        assert!(lines[0].contains("/s"), "{lines:?}");
        assert!(lines[2].contains("(75%)"), "{lines:?}");
        assert!(lines[3].contains("160.0 MiB done in"), "{lines:?}");
    }

    #[test]
    fn small_transfers_stay_quiet_and_json_is_one_object_per_line() {
        assert!(run(false, 2000, 4).is_empty());
        let lines = run(true, 160 << 20, 16);
        assert_eq!(lines.len(), 4, "{lines:?}");
        for l in &lines {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["direction"], "push");
        }
        let last: serde_json::Value = serde_json::from_str(&lines[3]).unwrap();
        assert_eq!(last["event"], "transfer_done");
        assert_eq!(last["bytes"], 160u64 << 20);
    }

    #[test]
    fn names_and_sizes() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(150 << 20), "150.0 MiB");
        assert_eq!(
            short_name("https://example.test/x"),
            "https://example.test/x"
        );
    }
}
