//! COPY and ADD planning: sources + destination → the entries of a new layer, with
//! Docker's semantics.
//!
//! - A directory source copies its *contents* into the destination.
//! - A destination ending in `/` (or several sources) is a directory; a destination that
//!   is an existing directory in the image receives the source inside it; otherwise a
//!   single file source is copied *to* the destination path.
//! - Wildcards (`*`, `?`, `[...]`, Go's `filepath.Match`) may appear in any component;
//!   a wildcard that matches nothing copies nothing, a plain path that is missing fails.
//! - New files are owned by 0:0 unless `--chown` (context) or keep their owner (another
//!   stage); directories COPY creates are owned by root or the `--chown` user; existing
//!   directories are left exactly as they are (no entry in the layer).
//! - Symlinks in the destination path are followed inside the root; a source whose last
//!   component is a symlink is followed; symlinks inside copied directories are kept.

use std::collections::BTreeMap;

use hoist_dockerfile::ignore::Matcher;
use hoist_image::layer::{path_order, Entry, EntryKind, FileSource, ModeOverride};

use crate::error::{Error, Result};
use crate::fsview::{self, FsView, Kind};
use crate::tree::{SourceTree, SrcMeta};

/// What to copy and how.
#[derive(Debug, Clone, Default)]
pub struct CopyRequest {
    /// Source paths or patterns, relative to the tree root.
    pub sources: Vec<String>,
    /// Destination, absolute or relative to `workdir`.
    pub dest: String,
    /// The stage's working directory (absolute).
    pub workdir: String,
    /// `--chown` resolved to ids.
    pub chown: Option<(u32, u32)>,
    /// `--chmod`.
    pub chmod: Option<ModeOverride>,
    /// `--exclude` patterns.
    pub exclude: Vec<String>,
    /// `--parents`.
    pub parents: bool,
    /// How file times are recorded.
    pub mtime: MtimeRule,
}

/// How COPY records modification times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MtimeRule {
    /// Every entry gets this time (the reproducible default: 0 without `SOURCE_DATE_EPOCH`).
    Fixed(i64),
    /// Sources keep their time, clamped to this one (`SOURCE_DATE_EPOCH`); created
    /// directories get it.
    Clamp(i64),
}

impl Default for MtimeRule {
    fn default() -> Self {
        MtimeRule::Fixed(0)
    }
}

impl MtimeRule {
    /// The time for a source entry with time `t`.
    pub fn for_source(self, t: i64) -> i64 {
        match self {
            MtimeRule::Fixed(f) => f,
            MtimeRule::Clamp(c) => t.clamp(0, c),
        }
    }

    /// The time for an entry hoist creates.
    pub fn created(self) -> i64 {
        match self {
            MtimeRule::Fixed(f) | MtimeRule::Clamp(f) => f,
        }
    }
}

/// Whether a path contains glob metacharacters.
pub fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Match one path component against a Go `filepath.Match` pattern component.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn class(p: &[char], c: char) -> Option<(bool, usize)> {
        // p starts after '['; returns (matched, chars consumed incl. ']').
        let mut i = 0;
        let negate = p.first() == Some(&'^');
        if negate {
            i += 1;
        }
        let mut matched = false;
        let mut first = true;
        loop {
            let ch = *p.get(i)?;
            if ch == ']' && !first {
                i += 1;
                break;
            }
            first = false;
            let lo = if ch == '\\' {
                i += 1;
                *p.get(i)?
            } else {
                ch
            };
            i += 1;
            let mut hi = lo;
            if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|&x| x != ']') {
                i += 1;
                hi = if p[i] == '\\' {
                    i += 1;
                    *p.get(i)?
                } else {
                    p[i]
                };
                i += 1;
            }
            if lo <= c && c <= hi {
                matched = true;
            }
        }
        Some((matched != negate, i))
    }
    fn rec(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => {
                let rest = &p[1..];
                (0..=n.len()).any(|k| rec(rest, &n[k..]))
            }
            Some('?') => !n.is_empty() && rec(&p[1..], &n[1..]),
            Some('[') => match (n.first(), class(&p[1..], *n.first().unwrap_or(&'\0'))) {
                (Some(_), Some((true, used))) => rec(&p[1 + used..], &n[1..]),
                _ => false,
            },
            Some('\\') if p.len() > 1 => n.first() == Some(&p[1]) && rec(&p[2..], &n[1..]),
            Some(c) => n.first() == Some(c) && rec(&p[1..], &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    rec(&p, &n)
}

/// Clean a source path into a relative path inside the tree (`..` cannot leave the root).
pub fn clean_rel(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

/// Expand one source pattern against the tree. Returns matched relative paths (sorted).
fn expand_source(tree: &dyn SourceTree, pattern: &str) -> Result<Vec<String>> {
    let rel = clean_rel(pattern);
    if !has_wildcard(&rel) {
        return Ok(vec![rel]);
    }
    check_literal_prefix(tree, pattern, &rel)?;
    let mut current = vec![String::new()];
    for comp in rel.split('/') {
        let mut next = Vec::new();
        for base in &current {
            if has_wildcard(comp) {
                // The directory is read inside the tree, its own symlink followed there.
                let real = tree.resolve(base)?;
                if !tree.stat(&real)?.is_some_and(|m| m.is_dir()) {
                    continue;
                }
                for name in tree.list(base)? {
                    if glob_match(comp, &name) {
                        next.push(fsview::join(base, &name));
                    }
                }
            } else {
                let unescaped = comp.replace('\\', "");
                next.push(fsview::join(base, &unescaped));
            }
        }
        current = next;
    }
    let mut out: Vec<String> = Vec::new();
    for p in current {
        if tree.stat(&p)?.is_some() {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// A wildcard source whose literal directory (the components before the first
/// wildcard) goes through a symlink must find a directory where the link leads inside
/// the tree: otherwise the pattern cannot match and, as in BuildKit, that is an error
/// rather than a silent no-op (a link such as `el -> /etc` never reaches the host).
fn check_literal_prefix(tree: &dyn SourceTree, pattern: &str, rel: &str) -> Result<()> {
    let literal: Vec<&str> = rel.split('/').take_while(|c| !has_wildcard(c)).collect();
    if literal.is_empty() {
        return Ok(());
    }
    let literal = literal.join("/").replace('\\', "");
    let real = tree.resolve(&literal)?;
    if real == literal || tree.stat(&real)?.is_some_and(|m| m.is_dir()) {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "no source files were specified: {pattern}: /{literal} is a symlink to /{real} \
         inside the build context, which is not a directory there"
    )))
}

struct Planner<'a> {
    tree: &'a dyn SourceTree,
    view: &'a FsView,
    req: &'a CopyRequest,
    exclude: Option<Matcher>,
    out: BTreeMap<String, Entry>,
    /// Sources named without a wildcard (resolved): a special file among them is an error.
    named: std::collections::BTreeSet<String>,
}

impl Planner<'_> {
    fn owner(&self, meta: &SrcMeta) -> (u32, u32) {
        match self.req.chown {
            Some(ids) => ids,
            None if self.tree.preserves_owner() => (meta.uid, meta.gid),
            None => (0, 0),
        }
    }

    fn created_dir_owner(&self) -> (u32, u32) {
        self.req.chown.unwrap_or((0, 0))
    }

    fn mode(&self, mode: u32, is_dir: bool) -> u32 {
        match &self.req.chmod {
            Some(m) => m.apply(mode, is_dir),
            None => mode,
        }
    }

    /// Make sure `dir` (an image path, resolved) exists, emitting entries for missing
    /// directories. Fails if a non-directory is in the way.
    fn ensure_dir(&mut self, dir: &str) -> Result<()> {
        if dir.is_empty() {
            return Ok(());
        }
        if let Some(e) = self.out.get(dir) {
            if e.is_dir() {
                return Ok(());
            }
            return Err(Error::Invalid(format!(
                "cannot copy into /{dir}: it is not a directory"
            )));
        }
        match self.view.get(dir) {
            Some(m) if m.is_dir() => return Ok(()),
            Some(Meta {
                kind: Kind::Symlink(_),
                ..
            }) => {
                // Resolved paths have no symlinks in parents; a final symlink to a dir is fine.
                if self.view.is_dir(dir) {
                    return Ok(());
                }
                return Err(Error::Invalid(format!(
                    "cannot copy into /{dir}: it is a symlink to a non-directory"
                )));
            }
            Some(_) => {
                return Err(Error::Invalid(format!(
                    "cannot copy into /{dir}: it is not a directory"
                )))
            }
            None => {}
        }
        self.ensure_dir(fsview::parent_of(dir))?;
        let (uid, gid) = self.created_dir_owner();
        let mut e = Entry::new(dir.to_string(), EntryKind::Dir, 0o755);
        e.uid = uid;
        e.gid = gid;
        e.mtime = self.req.mtime.created();
        self.out.insert(dir.to_string(), e);
        Ok(())
    }

    fn emit(&mut self, src_rel: &str, meta: &SrcMeta, dest: String) -> Result<()> {
        let (uid, gid) = self.owner(meta);
        let kind = match &meta.kind {
            Kind::Dir => EntryKind::Dir,
            Kind::File(size) => EntryKind::File {
                source: FileSource::Path(self.tree.content_path(src_rel)?),
                size: *size,
            },
            Kind::Hardlink(_) => {
                let p = self.tree.content_path(src_rel)?;
                let size = std::fs::metadata(&p).map_err(|e| Error::io(&p, e))?.len();
                EntryKind::File {
                    source: FileSource::Path(p),
                    size,
                }
            }
            Kind::Symlink(t) => EntryKind::Symlink(t.clone()),
            Kind::Special if self.named.contains(src_rel) => {
                return Err(Error::Invalid(format!(
                    "\"/{src_rel}\": cannot copy a device, FIFO or socket: only regular files, \
                     directories and symlinks can be copied"
                )));
            }
            Kind::Special => {
                tracing::warn!(
                    "skipping special file /{src_rel} (devices and sockets are not copied)"
                );
                return Ok(());
            }
        };
        // A directory already in the image keeps its metadata: no entry needed.
        if matches!(kind, EntryKind::Dir) && self.view.get(&dest).is_some_and(|m| m.is_dir()) {
            return Ok(());
        }
        let is_dir = matches!(kind, EntryKind::Dir);
        let mode = if matches!(kind, EntryKind::Symlink(_)) {
            0o777
        } else {
            self.mode(meta.mode, is_dir)
        };
        let mut e = Entry::new(dest.clone(), kind, mode);
        e.uid = uid;
        e.gid = gid;
        e.mtime = self.req.mtime.for_source(meta.mtime);
        self.out.insert(dest, e);
        Ok(())
    }

    fn excluded(&self, rel_in_source: &str) -> bool {
        match &self.exclude {
            Some(m) => !rel_in_source.is_empty() && m.matches(rel_in_source),
            None => false,
        }
    }

    /// Copy the contents of source dir `src` into image dir `dest` (resolved).
    fn copy_dir_contents(&mut self, src: &str, dest: &str, excl_base: &str) -> Result<()> {
        for name in self.tree.list(src)? {
            let child = fsview::join(src, &name);
            let rel_excl = fsview::join(excl_base, &name);
            if self.excluded(&rel_excl) {
                continue;
            }
            let meta = match self.tree.stat(&child)? {
                Some(m) => m,
                None => continue,
            };
            let d = fsview::join(dest, &name);
            if let Some(existing) = self.view.get(&d) {
                if existing.is_dir() && !meta.is_dir() {
                    return Err(Error::Invalid(format!(
                        "cannot replace directory /{d} with a non-directory from {child}"
                    )));
                }
            }
            self.emit(&child, &meta, d.clone())?;
            if meta.is_dir() {
                self.copy_dir_contents(&child, &d, &rel_excl)?;
            }
        }
        Ok(())
    }
}

use crate::fsview::Meta;

/// Plan a COPY: returns the layer entries, sorted, with parents before children.
pub fn plan(tree: &dyn SourceTree, req: &CopyRequest, view: &FsView) -> Result<Vec<Entry>> {
    let exclude = if req.exclude.is_empty() {
        None
    } else {
        Some(
            Matcher::new(&hoist_dockerfile::ignore::parse_ignore_file(
                &req.exclude.join("\n"),
            ))
            .map_err(|e| Error::Invalid(format!("--exclude: {e}")))?,
        )
    };
    let mut p = Planner {
        tree,
        view,
        req,
        exclude,
        out: BTreeMap::new(),
        named: Default::default(),
    };

    // Destination: absolute, relative to WORKDIR otherwise.
    let dest_is_dir_hint = req.dest.ends_with('/')
        || req.dest == "."
        || req.dest.ends_with("/.")
        || req.dest == ".."
        || req.dest.ends_with("/..");
    let dest_abs = if req.dest.starts_with('/') {
        req.dest.clone()
    } else {
        format!("{}/{}", req.workdir.trim_end_matches('/'), req.dest)
    };
    let dest_clean = clean_rel(&dest_abs);

    let mut matched: Vec<(String, bool)> = Vec::new(); // (path, from a wildcard)
    for s in &req.sources {
        let found = expand_source(tree, s)?;
        let wild = has_wildcard(&clean_rel(s));
        if !wild {
            let rel = &found[0];
            if tree.stat(rel)?.is_none() {
                return Err(Error::Invalid(format!("\"/{rel}\": not found")));
            }
        }
        for f in found {
            matched.push((f, wild));
        }
    }
    if matched.is_empty() {
        return Ok(Vec::new());
    }
    let several = matched.len() > 1 || req.sources.len() > 1;
    if req.sources.len() > 1 && !dest_is_dir_hint {
        return Err(Error::Invalid(
            "when using COPY with more than one source file, the destination must be a directory and end with a /".into(),
        ));
    }

    let dest_resolved = view.resolve(&dest_clean, true)?;
    let dest_is_dir = dest_is_dir_hint || several || view.is_dir(&dest_clean);

    for (src, wild) in &matched {
        let meta0 = tree
            .stat(src)?
            .ok_or_else(|| Error::Invalid(format!("\"/{src}\": not found")))?;
        // Follow a symlink named as the source itself.
        let (src_real, meta) = if matches!(meta0.kind, Kind::Symlink(_)) {
            let r = tree.resolve(src)?;
            match tree.stat(&r)? {
                Some(m) => (r, m),
                None => {
                    return Err(Error::Invalid(format!(
                        "\"/{src}\": symlink target /{r} not found"
                    )))
                }
            }
        } else {
            (src.clone(), meta0)
        };
        if !*wild {
            p.named.insert(src_real.clone());
        }
        let rel_for_parents = src.clone();
        if meta.is_dir() {
            let target = if req.parents {
                view.resolve(&fsview::join(&dest_clean, &rel_for_parents), true)?
            } else {
                dest_resolved.clone()
            };
            if let Some(m) = view.get(&target) {
                if !m.is_dir() && !matches!(m.kind, Kind::Symlink(_)) {
                    return Err(Error::Invalid(format!(
                        "cannot copy directory {src} to /{target}: not a directory"
                    )));
                }
            }
            p.ensure_dir(&target)?;
            p.copy_dir_contents(&src_real, &target, "")?;
        } else {
            let name = fsview::split(src).1.to_string();
            let target = if req.parents {
                fsview::join(&dest_clean, &rel_for_parents)
            } else if dest_is_dir {
                fsview::join(&dest_clean, &name)
            } else {
                dest_clean.clone()
            };
            if p.excluded(&name) {
                continue;
            }
            let (parent, leaf) = fsview::split(&target);
            let parent_real = view.resolve(parent, true)?;
            p.ensure_dir(&parent_real)?;
            let dest_path = fsview::join(&parent_real, leaf);
            if view.get(&dest_path).is_some_and(|m| m.is_dir()) {
                return Err(Error::Invalid(format!(
                    "cannot replace directory /{dest_path} with file {src}"
                )));
            }
            p.emit(&src_real, &meta, dest_path)?;
        }
    }

    let mut entries: Vec<Entry> = p.out.into_values().collect();
    entries.sort_by(|a, b| path_order(&a.path, &b.path));
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob() {
        assert!(glob_match("*.txt", "a.txt"));
        assert!(glob_match("*", ".hidden"));
        assert!(!glob_match("*.txt", "a.txt.bak"));
        assert!(glob_match("a?c", "abc"));
        assert!(glob_match("[a-c]x", "bx"));
        assert!(!glob_match("[^a-c]x", "bx"));
        assert!(glob_match("[^a-c]x", "dx"));
        assert!(glob_match("arr\\[0\\].txt", "arr[0].txt"));
        assert!(!glob_match("[", "["));
    }

    #[test]
    fn clean() {
        assert_eq!(clean_rel("../../a/./b/"), "a/b");
        assert_eq!(clean_rel("/"), "");
    }
}
