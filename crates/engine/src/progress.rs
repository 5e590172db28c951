//! Build progress: the engine reports events; a [`Progress`] shows them.
//!
//! Three displays: a live one for terminals (the running step with a timer, finished
//! steps kept above it), plain lines for CI logs (`#3 [build 2/5] COPY . /app`,
//! `#3 DONE 0.4s`, in BuildKit's plain style), and JSON lines for tools.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A build event.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    /// A step starts. `id` is unique in the build.
    Start {
        /// Step id.
        id: usize,
        /// `[stage 2/5] COPY . /app`.
        name: &'a str,
    },
    /// Output of a running step.
    Log {
        /// Step id.
        id: usize,
        /// Raw bytes (lines, usually).
        data: &'a [u8],
    },
    /// A step finished.
    Done {
        /// Step id.
        id: usize,
        /// Whether it came from the cache.
        cached: bool,
        /// How long it took.
        elapsed: Duration,
    },
    /// A step failed.
    Failed {
        /// Step id.
        id: usize,
        /// Why.
        message: &'a str,
    },
    /// A warning not tied to a step.
    Warning(&'a str),
    /// A general message (exporting, pushing).
    Info(&'a str),
}

/// A sink for build events. Implementations must be cheap and never fail.
pub trait Progress: Send + Sync {
    /// Handle one event.
    fn event(&self, event: Event<'_>);
}

/// Which display to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A terminal display when stderr is a terminal and `CI` is unset, else plain.
    Auto,
    /// Plain lines.
    Plain,
    /// JSON lines.
    Json,
    /// Nothing.
    Quiet,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" | "tty" => Ok(Mode::Auto),
            "plain" => Ok(Mode::Plain),
            "json" | "rawjson" => Ok(Mode::Json),
            "quiet" => Ok(Mode::Quiet),
            other => Err(format!(
                "invalid progress mode {other:?} (expected auto, plain, json or quiet)"
            )),
        }
    }
}

/// Make the display for `mode`, writing to stderr.
pub fn display(mode: Mode) -> Box<dyn Progress> {
    match mode {
        Mode::Auto => {
            if std::io::stderr().is_terminal() && std::env::var_os("CI").is_none() {
                Box::new(Terminal::new())
            } else {
                Box::new(Plain::new())
            }
        }
        Mode::Plain => Box::new(Plain::new()),
        Mode::Json => Box::new(Json),
        Mode::Quiet => Box::new(Quiet),
    }
}

/// Discards everything.
pub struct Quiet;
impl Progress for Quiet {
    fn event(&self, _: Event<'_>) {}
}

/// BuildKit-style plain lines.
pub struct Plain {
    start: Instant,
    /// Each step's unfinished output line (steps of parallel stages interleave).
    partial: Mutex<std::collections::HashMap<usize, Vec<u8>>>,
}

impl Plain {
    /// A plain display.
    pub fn new() -> Plain {
        Plain {
            start: Instant::now(),
            partial: Mutex::new(std::collections::HashMap::new()),
        }
    }
}

impl Default for Plain {
    fn default() -> Self {
        Plain::new()
    }
}

impl Progress for Plain {
    fn event(&self, event: Event<'_>) {
        let mut err = std::io::stderr().lock();
        let _ = match event {
            Event::Start { id, name } => writeln!(err, "#{id} {name}"),
            Event::Log { id, data } => {
                let mut all = self.partial.lock().unwrap_or_else(|e| e.into_inner());
                let partial = all.entry(id).or_default();
                partial.extend_from_slice(data);
                while let Some(i) = partial.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = partial.drain(..=i).collect();
                    let t = self.start.elapsed().as_secs_f64();
                    let _ = writeln!(
                        err,
                        "#{id} {t:.3} {}",
                        String::from_utf8_lossy(&line[..line.len() - 1])
                    );
                }
                Ok(())
            }
            Event::Done {
                id, cached: true, ..
            } => writeln!(err, "#{id} CACHED"),
            Event::Done { id, elapsed, .. } => {
                writeln!(err, "#{id} DONE {:.1}s", elapsed.as_secs_f64())
            }
            Event::Failed { id, message } => writeln!(err, "#{id} ERROR: {message}"),
            Event::Warning(w) => writeln!(err, "WARNING: {w}"),
            Event::Info(m) => writeln!(err, "#- {m}"),
        };
    }
}

/// JSON lines (one object per event) on stderr.
pub struct Json;
impl Progress for Json {
    fn event(&self, event: Event<'_>) {
        let v = match event {
            Event::Start { id, name } => serde_json::json!({"event":"start","id":id,"name":name}),
            Event::Log { id, data } => {
                serde_json::json!({"event":"log","id":id,"data":String::from_utf8_lossy(data)})
            }
            Event::Done {
                id,
                cached,
                elapsed,
            } => {
                serde_json::json!({"event":"done","id":id,"cached":cached,"seconds":elapsed.as_secs_f64()})
            }
            Event::Failed { id, message } => {
                serde_json::json!({"event":"error","id":id,"message":message})
            }
            Event::Warning(w) => serde_json::json!({"event":"warning","message":w}),
            Event::Info(m) => serde_json::json!({"event":"info","message":m}),
        };
        let _ = writeln!(std::io::stderr().lock(), "{v}");
    }
}

/// A live terminal display, as BuildKit's: finished steps scroll up; every running
/// step (independent stages run at once) has a line with its timer and its last output
/// line, redrawn several times a second by a small ticker thread.
pub struct Terminal {
    state: std::sync::Arc<Mutex<TermState>>,
}

struct Running {
    name: String,
    started: Instant,
    last_line: String,
    partial: Vec<u8>,
}

struct TermState {
    start: Instant,
    running: std::collections::BTreeMap<usize, Running>,
    /// Lines drawn below the scrolled output (cleared before anything is printed).
    drawn: usize,
}

impl Terminal {
    /// A terminal display.
    pub fn new() -> Terminal {
        let state = std::sync::Arc::new(Mutex::new(TermState {
            start: Instant::now(),
            running: std::collections::BTreeMap::new(),
            drawn: 0,
        }));
        // The ticker holds only a weak reference: it ends when the display is dropped.
        let weak = std::sync::Arc::downgrade(&state);
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(200));
            let Some(state) = weak.upgrade() else { return };
            let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
            if !st.running.is_empty() {
                let mut err = std::io::stderr().lock();
                st.clear(&mut err);
                st.draw(&mut err);
            }
        });
        Terminal { state }
    }
}

impl Default for Terminal {
    fn default() -> Self {
        Terminal::new()
    }
}

fn width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(100)
}

fn clip(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// At most this many running steps get their own lines (the rest are counted).
const MAX_RUNNING_SHOWN: usize = 8;

impl TermState {
    fn clear(&mut self, err: &mut impl Write) {
        for _ in 0..self.drawn {
            let _ = write!(err, "\x1b[1A\x1b[2K");
        }
        let _ = write!(err, "\r");
        self.drawn = 0;
    }
    fn draw(&mut self, err: &mut impl Write) {
        let w = width();
        let mut lines = 0;
        for (id, r) in self.running.iter().take(MAX_RUNNING_SHOWN) {
            let _ = writeln!(
                err,
                "\x1b[1m=> #{id} {}\x1b[0m {:.1}s",
                clip(&r.name, w.saturating_sub(16)),
                r.started.elapsed().as_secs_f64()
            );
            lines += 1;
            if !r.last_line.is_empty() {
                let _ = writeln!(
                    err,
                    "   \x1b[2m{}\x1b[0m",
                    clip(&r.last_line, w.saturating_sub(4))
                );
                lines += 1;
            }
        }
        if self.running.len() > MAX_RUNNING_SHOWN {
            let _ = writeln!(
                err,
                "   … and {} more running",
                self.running.len() - MAX_RUNNING_SHOWN
            );
            lines += 1;
        }
        self.drawn = lines;
        let _ = err.flush();
    }
}

impl Progress for Terminal {
    fn event(&self, event: Event<'_>) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut err = std::io::stderr().lock();
        st.clear(&mut err);
        match event {
            Event::Start { id, name } => {
                st.running.insert(
                    id,
                    Running {
                        name: name.to_string(),
                        started: Instant::now(),
                        last_line: String::new(),
                        partial: Vec::new(),
                    },
                );
            }
            Event::Log { id, data } => {
                let several = st.running.len() > 1;
                if let Some(r) = st.running.get_mut(&id) {
                    r.partial.extend_from_slice(data);
                    while let Some(i) = r.partial.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = r.partial.drain(..=i).collect();
                        let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
                        // With several steps running, each output line names its step.
                        if several {
                            let _ = writeln!(err, "#{id} {text}");
                        } else {
                            let _ = writeln!(err, "   {text}");
                        }
                        r.last_line = text;
                    }
                }
            }
            Event::Done {
                id,
                cached,
                elapsed,
            } => {
                let name = st.running.remove(&id).map(|r| r.name).unwrap_or_default();
                if cached {
                    let _ = writeln!(err, "\x1b[34m=> CACHED #{id} {name}\x1b[0m");
                } else {
                    let _ = writeln!(
                        err,
                        "\x1b[34m=> #{id} {name}\x1b[0m {:.1}s",
                        elapsed.as_secs_f64()
                    );
                }
            }
            Event::Failed { id, message } => {
                st.running.remove(&id);
                let _ = writeln!(err, "\x1b[31m=> ERROR #{id}: {message}\x1b[0m");
            }
            Event::Warning(w) => {
                let _ = writeln!(err, "\x1b[33mWARNING: {w}\x1b[0m");
            }
            Event::Info(m) => {
                let t = st.start.elapsed().as_secs_f64();
                let _ = writeln!(err, "=> {m} ({t:.1}s)");
            }
        }
        st.draw(&mut err);
    }
}
