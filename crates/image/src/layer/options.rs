//! How entries are turned into tar headers: compression, times, owners, modes.

use std::fmt;
use std::sync::Arc;

use crate::media_type::Compression;
use crate::{Error, Result};

/// Options of the [`LayerWriter`](super::LayerWriter).
///
/// The defaults give reproducible layers: owner 0:0, every mtime 0, gzip.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// Compression of the blob. Default: [`Compression::Gzip`].
    pub compression: Compression,
    /// Compression level; `None` = gzip 6, zstd 3. Gzip accepts 0..=9, zstd 1..=22
    /// (negative zstd levels are fast modes).
    pub level: Option<i32>,
    /// Compression threads; 0 = all cores. The output never depends on it.
    pub threads: usize,
    /// `SOURCE_DATE_EPOCH`: when set, any mtime later than it becomes it.
    pub source_date_epoch: Option<i64>,
    /// Which mtime each entry gets (before the `source_date_epoch` clamp).
    pub mtime: MtimePolicy,
    /// Which owner each entry gets.
    pub ownership: Ownership,
    /// `--chmod`: a mode applied to every entry but symlinks.
    pub mode_override: Option<ModeOverride>,
    /// Treat entries as coming from an overlayfs upper directory: a 0:0 character
    /// device becomes a `.wh.NAME` whiteout, a directory with
    /// `trusted.overlay.opaque=y` (or `user.overlay.opaque=y`) gets a
    /// `DIR/.wh..wh..opq` marker right after it, and `trusted.overlay.*` /
    /// `user.overlay.*` xattrs are not written.
    pub overlay_upper: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            compression: Compression::Gzip,
            level: None,
            threads: 0,
            source_date_epoch: None,
            mtime: MtimePolicy::default(),
            ownership: Ownership::default(),
            mode_override: None,
            overlay_upper: false,
        }
    }
}

impl WriteOptions {
    /// The options with `source_date_epoch` taken from the `SOURCE_DATE_EPOCH`
    /// environment variable when it is set to an integer.
    pub fn with_env_source_date_epoch(mut self) -> Self {
        if let Some(t) = std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
        {
            self.source_date_epoch = Some(t);
        }
        self
    }

    /// The number of compression threads to use (`threads`, or all cores when 0).
    pub fn effective_threads(&self) -> usize {
        if self.threads > 0 {
            self.threads
        } else {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        }
    }

    /// The mtime written for an entry whose own mtime is `mtime`.
    pub fn mtime_for(&self, mtime: i64) -> i64 {
        let t = match self.mtime {
            MtimePolicy::Preserve => mtime,
            MtimePolicy::Fixed(t) => t,
        };
        let t = t.max(0);
        match self.source_date_epoch {
            Some(epoch) if t > epoch => epoch.max(0),
            _ => t,
        }
    }

    /// The owner written for an entry owned by `uid:gid`.
    pub fn owner_for(&self, uid: u32, gid: u32) -> (u32, u32) {
        match &self.ownership {
            Ownership::Preserve => (uid, gid),
            Ownership::Fixed { uid, gid } => (*uid, *gid),
            Ownership::Map(f) => (f.0)(uid, gid),
        }
    }
}

/// Which modification time entries get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MtimePolicy {
    /// The entry's own mtime (clamped by `source_date_epoch` when set).
    Preserve,
    /// This time for every entry (clamped by `source_date_epoch` when set).
    Fixed(i64),
}

impl Default for MtimePolicy {
    /// `Fixed(0)`: the same files give the same layer whatever their mtimes.
    fn default() -> Self {
        MtimePolicy::Fixed(0)
    }
}

/// Which owner entries get.
#[derive(Clone)]
pub enum Ownership {
    /// The entry's own uid/gid (from the file's metadata in [`walk_dir`](super::walk_dir)).
    Preserve,
    /// This owner for every entry: `0:0` for `COPY`, the `--chown` user otherwise.
    Fixed {
        /// User id.
        uid: u32,
        /// Group id.
        gid: u32,
    },
    /// A function of the entry's own uid/gid (e.g. a user-namespace mapping).
    Map(OwnerMap),
}

impl Default for Ownership {
    /// `Fixed { uid: 0, gid: 0 }`: the same files give the same layer whatever the
    /// host's uid.
    fn default() -> Self {
        Ownership::Fixed { uid: 0, gid: 0 }
    }
}

/// A uid/gid mapping function for [`Ownership::Map`].
#[derive(Clone)]
pub struct OwnerMap(pub Arc<dyn Fn(u32, u32) -> (u32, u32) + Send + Sync>);

impl fmt::Debug for Ownership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ownership::Preserve => f.write_str("Preserve"),
            Ownership::Fixed { uid, gid } => write!(f, "Fixed({uid}:{gid})"),
            Ownership::Map(_) => f.write_str("Map(..)"),
        }
    }
}

/// A `--chmod` value: octal (`755`, `0644`) or symbolic (`u+x,go-w`, `a=rX`),
/// applied to files and directories (not symlinks) as BuildKit does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeOverride(ModeSpec);

#[derive(Debug, Clone, PartialEq, Eq)]
enum ModeSpec {
    Octal(u32),
    Symbolic(Vec<Clause>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Clause {
    /// Bit mask of who: 0o4700 for u, 0o2070 for g, 0o1007 for o (incl. special bits).
    who: u32,
    /// `+`, `-` or `=`.
    op: char,
    /// Permission letters.
    perms: String,
}

impl ModeOverride {
    /// An octal mode.
    pub fn octal(mode: u32) -> ModeOverride {
        ModeOverride(ModeSpec::Octal(mode & 0o7777))
    }

    /// Parse a `--chmod` value: octal digits, or comma-separated symbolic clauses
    /// `[ugoa]*[+-=][rwxXst]*`.
    pub fn parse(s: &str) -> Result<ModeOverride> {
        let bad = |why: &str| Error::Format(format!("invalid --chmod value {s:?}: {why}"));
        if !s.is_empty() && s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            let m = u32::from_str_radix(s, 8).map_err(|_| bad("not an octal number"))?;
            if m > 0o7777 {
                return Err(bad("octal mode above 7777"));
            }
            return Ok(ModeOverride::octal(m));
        }
        let mut clauses = Vec::new();
        for part in s.split(',') {
            let op_at = part
                .find(['+', '-', '='])
                .ok_or_else(|| bad("missing operator (+, - or =)"))?;
            let (who_s, rest) = part.split_at(op_at);
            let mut who = 0;
            for c in who_s.chars() {
                who |= match c {
                    'u' => 0o4700,
                    'g' => 0o2070,
                    'o' => 0o1007,
                    'a' => 0o7777,
                    _ => return Err(bad("unknown class letter")),
                };
            }
            if who == 0 {
                who = 0o7777;
            }
            let op = rest.chars().next().unwrap_or('=');
            let perms = &rest[1..];
            if perms.contains(['+', '-', '=']) {
                return Err(bad("one operator per clause"));
            }
            if !perms.chars().all(|c| "rwxXst".contains(c)) {
                return Err(bad("unknown permission letter"));
            }
            clauses.push(Clause {
                who,
                op,
                perms: perms.to_string(),
            });
        }
        Ok(ModeOverride(ModeSpec::Symbolic(clauses)))
    }

    /// The mode of an octal `--chmod` (`None` for a symbolic one). BuildKit also gives it
    /// to the directories a COPY creates for its destination.
    pub fn octal_value(&self) -> Option<u32> {
        match &self.0 {
            ModeSpec::Octal(m) => Some(*m),
            ModeSpec::Symbolic(_) => None,
        }
    }

    /// The mode an entry with `mode` gets (`is_dir` matters for `X`).
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        match &self.0 {
            ModeSpec::Octal(m) => *m,
            ModeSpec::Symbolic(clauses) => {
                let mut mode = mode & 0o7777;
                for c in clauses {
                    let mut bits = 0;
                    for p in c.perms.chars() {
                        bits |= match p {
                            'r' => 0o444,
                            'w' => 0o222,
                            'x' => 0o111,
                            'X' if is_dir || mode & 0o111 != 0 => 0o111,
                            'X' => 0,
                            's' => 0o6000,
                            't' => 0o1000,
                            _ => 0,
                        };
                    }
                    let bits = bits & c.who;
                    mode = match c.op {
                        '+' => mode | bits,
                        '-' => mode & !bits,
                        _ => (mode & !c.who) | bits,
                    };
                }
                mode
            }
        }
    }
}

impl std::str::FromStr for ModeOverride {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        ModeOverride::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chmod_octal_and_symbolic() {
        assert_eq!(
            ModeOverride::parse("755").unwrap().apply(0o600, false),
            0o755
        );
        assert_eq!(ModeOverride::parse("4755").unwrap().apply(0, false), 0o4755);
        let m = ModeOverride::parse("u+x,go-w").unwrap();
        assert_eq!(m.apply(0o666, false), 0o744);
        let m = ModeOverride::parse("a=rX").unwrap();
        assert_eq!(m.apply(0o600, false), 0o444);
        assert_eq!(m.apply(0o700, true), 0o555);
        assert_eq!(m.apply(0o700, false), 0o555);
        let m = ModeOverride::parse("g=").unwrap();
        assert_eq!(m.apply(0o2775, true), 0o705);
        assert!(ModeOverride::parse("9").is_err());
        assert!(ModeOverride::parse("u+q").is_err());
        assert!(ModeOverride::parse("z+x").is_err());
    }

    #[test]
    fn mtime_policy_and_epoch() {
        let mut o = WriteOptions {
            mtime: MtimePolicy::Preserve,
            ..Default::default()
        };
        assert_eq!(o.mtime_for(1000), 1000);
        o.source_date_epoch = Some(500);
        assert_eq!(o.mtime_for(1000), 500);
        assert_eq!(o.mtime_for(100), 100);
        o.mtime = MtimePolicy::Fixed(0);
        assert_eq!(o.mtime_for(1000), 0);
    }
}
