//! COPY and ADD planning: sources + destination → the entries of a new layer, with the
//! semantics of BuildKit's file backend (fsutil `copy.Copy`, called once per source).
//!
//! - The destination is absolute or relative to WORKDIR; one ending in `/` or `/.` is a
//!   directory and is created (with its parents) first. Symlinks in it are followed
//!   inside the root, the last component included.
//! - Each source (a path, or every match of a wildcard pattern, see [`crate::glob`]) is
//!   followed if it is a symlink, then:
//!   - a file goes *into* the destination when that is an existing directory, else *to*
//!     the destination path; a later source sees what earlier ones created (there is no
//!     "several sources need a directory" rule in BuildKit);
//!   - a directory's *contents* go into the destination; a destination directory that
//!     does not exist yet is created like the parents (`0755`, or the octal `--chmod`,
//!     owned by `--chown` or root); one that exists keeps its metadata.
//! - Below the top, entries take the source's metadata: mode (through `--chmod`,
//!   symlinks always `0777`), owner (`--chown`, else the source's for another stage and
//!   root for the context), and *existing directories are updated too*.
//! - Files hard-linked to each other inside one source stay hard links.
//! - `--exclude` patterns and the `--parents` pattern are matched against paths relative
//!   to the source; with `--parents` the directories leading to a match are created with
//!   the metadata of the source's directories, as they are met.
//! - ADD: a local file that is a (possibly compressed) tar is extracted into the
//!   destination instead ([`crate::unpack`]).
//! - Heredocs (`COPY <<EOF`) are files of mode `0644` copied after the paths.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use hoist_dockerfile::ignore::Matcher;
use hoist_image::layer::{path_order, Entry, EntryKind, FileSource, ModeOverride};

use crate::error::{Error, Result};
use crate::fsview::{self, FsView, Kind};
use crate::tree::{SourceTree, SrcMeta};

pub use crate::glob::{glob_match, has_wildcard};

/// What to copy and how.
#[derive(Debug, Clone, Default)]
pub struct CopyRequest {
    /// Source paths or patterns, relative to the tree root.
    pub sources: Vec<String>,
    /// Inline files (heredocs), copied after `sources`.
    pub heredocs: Vec<InlineFile>,
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
    /// ADD: extract local tar archives, staging their files in this directory.
    pub unpack: Option<PathBuf>,
}

/// A file whose content is given inline (a heredoc source).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineFile {
    /// Its name (the heredoc's delimiter word).
    pub name: String,
    /// Its content.
    pub content: Vec<u8>,
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

/// The image as the layer being planned leaves it: the view below plus what the layer
/// wrote so far.
pub(crate) struct DestState {
    /// The merged view (lower layers + this layer's entries).
    pub view: FsView,
    /// This layer's entries by path.
    pub out: BTreeMap<String, Entry>,
}

impl DestState {
    fn new(view: &FsView) -> DestState {
        DestState {
            view: view.clone(),
            out: BTreeMap::new(),
        }
    }

    /// Record an entry.
    pub fn put(&mut self, e: Entry) {
        if !e.is_dir() {
            // A non-directory replacing a directory this layer wrote drops its contents.
            let prefix = format!("{}/", e.path);
            let below: Vec<String> = self
                .out
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .map(|(k, _)| k.clone())
                .collect();
            for k in below {
                self.out.remove(&k);
            }
        }
        self.view.put(&e);
        self.out.insert(e.path.clone(), e);
    }

    /// Create `dir` (resolved) and its missing parents as directories with `mode` and
    /// `owner` (fsutil `MkdirAll`); a non-directory in the way is an error.
    pub fn mkdir_all(&mut self, dir: &str, mode: u32, owner: (u32, u32), mtime: i64) -> Result<()> {
        if dir.is_empty() {
            return Ok(());
        }
        if self.view.is_dir(dir) {
            return Ok(());
        }
        if self.view.get(dir).is_some() {
            return Err(Error::Invalid(format!(
                "cannot create directory /{dir}: a file is in the way"
            )));
        }
        self.mkdir_all(fsview::parent_of(dir), mode, owner, mtime)?;
        let mut e = Entry::new(dir.to_string(), EntryKind::Dir, mode);
        (e.uid, e.gid) = owner;
        e.mtime = mtime;
        self.put(e);
        Ok(())
    }

    fn into_entries(self) -> Vec<Entry> {
        // The view (as large as the layer) goes before the list is made: the peak of a
        // COPY of 100,000 files is this moment.
        let DestState { view, out } = self;
        drop(view);
        let mut v: Vec<Entry> = out.into_values().collect();
        v.sort_by(|a, b| path_order(&a.path, &b.path));
        v
    }
}

/// A directory met on the way down, created only once something below it is copied
/// (fsutil's `parentDirs`).
struct Pending {
    src: String,
    dst: String,
    copied: bool,
}

struct Planner<'a> {
    tree: &'a dyn SourceTree,
    req: &'a CopyRequest,
    dest: DestState,
    exclude: Option<Matcher>,
    include: Option<Matcher>,
    inodes: HashMap<String, String>,
    pending: Vec<Pending>,
}

fn matcher(text: &str, what: &str) -> Result<Matcher> {
    Matcher::new(&hoist_dockerfile::ignore::parse_ignore_file(text))
        .map_err(|e| Error::Invalid(format!("{what}: {e}")))
}

impl Planner<'_> {
    fn owner(&self, meta: &SrcMeta) -> (u32, u32) {
        match self.req.chown {
            Some(ids) => ids,
            None if self.tree.preserves_owner() => (meta.uid, meta.gid),
            None => (0, 0),
        }
    }

    /// Mode of directories the copy creates as destinations or their parents.
    fn created_dir_mode(&self) -> u32 {
        self.req
            .chmod
            .as_ref()
            .and_then(ModeOverride::octal_value)
            .unwrap_or(0o755)
    }

    fn mode(&self, mode: u32, is_dir: bool) -> u32 {
        match &self.req.chmod {
            Some(m) => m.apply(mode, is_dir),
            None => mode,
        }
    }

    fn mkdir_all(&mut self, dir: &str) -> Result<()> {
        let mode = self.created_dir_mode();
        let owner = self.req.chown.unwrap_or((0, 0));
        let mtime = self.req.mtime.created();
        self.dest.mkdir_all(dir, mode, owner, mtime)
    }

    /// fsutil `copyFileInfo` for a directory: owner and (chmod-ed) mode of the source.
    fn dir_info(&mut self, target: &str, meta: &SrcMeta) {
        if target.is_empty() {
            return; // the root keeps its metadata
        }
        let mut e = Entry::new(
            target.to_string(),
            EntryKind::Dir,
            self.mode(meta.mode, true),
        );
        (e.uid, e.gid) = self.owner(meta);
        e.mtime = self.req.mtime.for_source(meta.mtime);
        self.dest.put(e);
    }

    /// fsutil `copyDirectoryOnly`: create `target` with the source's mode, or (when
    /// `overwrite`) give an existing one the source's mode. Returns whether it was created.
    fn dir_only(&mut self, target: &str, meta: &SrcMeta, overwrite: bool) -> Result<bool> {
        match self.dest.view.get(target).cloned() {
            None => {
                let mut e = Entry::new(target.to_string(), EntryKind::Dir, meta.mode);
                e.mtime = self.req.mtime.for_source(meta.mtime);
                self.dest.put(e);
                Ok(true)
            }
            Some(m) if m.is_dir() => {
                if overwrite && !target.is_empty() {
                    let mut e = Entry::new(target.to_string(), EntryKind::Dir, meta.mode);
                    (e.uid, e.gid) = (m.uid, m.gid);
                    e.mtime = m.mtime;
                    self.dest.put(e);
                }
                Ok(false)
            }
            Some(_) => Err(Error::Invalid(format!(
                "cannot copy to non-directory: /{target}"
            ))),
        }
    }

    fn create_pending(&mut self) -> Result<()> {
        for i in 0..self.pending.len() {
            if self.pending[i].copied {
                continue;
            }
            let (src, dst) = (self.pending[i].src.clone(), self.pending[i].dst.clone());
            let meta = self
                .tree
                .stat(&self.tree.resolve(&src)?)?
                .filter(SrcMeta::is_dir)
                .ok_or_else(|| Error::Invalid(format!("/{src} is not a directory")))?;
            if self.dir_only(&dst, &meta, true)? {
                self.dir_info(&dst, &meta);
            }
            self.pending[i].copied = true;
        }
        Ok(())
    }

    /// fsutil `copier.copy`: `src` (a tree path), `comps` (its path relative to the
    /// source, for the patterns), `target` (resolved image path).
    fn copy(&mut self, src: &str, comps: &str, target: &str, overwrite: bool) -> Result<()> {
        let mut include = true;
        let mut excluded = false;
        if !comps.is_empty() {
            include = self.include.as_ref().is_none_or(|m| m.matches(comps));
            if self.exclude.as_ref().is_some_and(|m| m.matches(comps)) {
                include = false;
                excluded = true;
            }
            let exceptions = self.exclude.as_ref().is_some_and(Matcher::has_exclusions);
            if !include && self.include.is_none() && !exceptions {
                return Ok(());
            }
        }
        let Some(meta) = self.tree.stat(src)? else {
            return Err(Error::Invalid(format!("\"/{src}\": not found")));
        };
        if !include && !meta.is_dir() {
            return Ok(());
        }
        if include {
            self.create_pending()?;
        }
        let existing = self.dest.view.get(target).cloned();
        if !meta.is_dir() && existing.as_ref().is_some_and(|m| m.is_dir()) {
            return Err(Error::Invalid(format!(
                "cannot replace to directory /{target} with file"
            )));
        }
        let (uid, gid) = self.owner(&meta);
        let kind = match &meta.kind {
            Kind::Dir => {
                let created = if include {
                    self.dir_only(target, &meta, overwrite)?
                } else {
                    false
                };
                self.pending.push(Pending {
                    src: src.to_string(),
                    dst: target.to_string(),
                    copied: include,
                });
                let exceptions = self.exclude.as_ref().is_some_and(Matcher::has_exclusions);
                let r = if excluded && !exceptions {
                    Ok(())
                } else {
                    self.copy_children(src, comps, target)
                };
                self.pending.pop();
                r?;
                let copy_info = if overwrite { include } else { created };
                if copy_info {
                    self.dir_info(target, &meta);
                }
                return Ok(());
            }
            Kind::File(_) | Kind::Hardlink(_) => {
                let first = meta.link.as_ref().and_then(|id| match self.inodes.get(id) {
                    Some(first) => Some(first.clone()),
                    None => {
                        self.inodes.insert(id.clone(), target.to_string());
                        None
                    }
                });
                match first {
                    Some(first) => EntryKind::Hardlink(first),
                    None => {
                        let p = self.tree.content_path(src)?;
                        let size = match meta.kind {
                            Kind::File(s) => s,
                            _ => std::fs::metadata(&p).map_err(|e| Error::io(&p, e))?.len(),
                        };
                        EntryKind::File {
                            source: FileSource::Path(p),
                            size,
                        }
                    }
                }
            }
            Kind::Symlink(t) => EntryKind::Symlink(t.clone()),
            Kind::Special => {
                tracing::warn!("skipping special file /{src} (devices and sockets are not copied)");
                return Ok(());
            }
        };
        let mode = if matches!(kind, EntryKind::Symlink(_)) {
            0o777
        } else {
            self.mode(meta.mode, false)
        };
        let mut e = Entry::new(target.to_string(), kind, mode);
        (e.uid, e.gid) = (uid, gid);
        e.mtime = self.req.mtime.for_source(meta.mtime);
        self.dest.put(e);
        Ok(())
    }

    fn copy_children(&mut self, src: &str, comps: &str, target: &str) -> Result<()> {
        for name in self.tree.list(src)? {
            self.copy(
                &fsview::join(src, &name),
                &fsview::join(comps, &name),
                &fsview::join(target, &name),
                true,
            )?;
        }
        Ok(())
    }

    /// Create the directory the destination needs (`ensure`) and resolve the destination.
    fn ensure_dest(&mut self, (ensure, dest): &(String, String)) -> Result<String> {
        let ensure = self.dest.view.resolve(ensure, true)?;
        self.mkdir_all(&ensure)?;
        self.dest.view.resolve(dest, true)
    }

    /// One fsutil `Copy` call for source `m` (a path relative to the tree root) into
    /// the destination `dst` (resolved).
    fn copy_source(&mut self, m: &str, dst: &str) -> Result<()> {
        self.inodes.clear();
        let followed = self.tree.resolve(m)?;
        let Some(meta) = self.tree.stat(&followed)? else {
            return Err(Error::Invalid(format!("\"/{m}\": not found")));
        };
        if let (Some(staging), Kind::File(_)) = (&self.req.unpack, &meta.kind) {
            let path = self.tree.content_path(&followed)?;
            if let Some(kind) = crate::unpack::archive_kind(&path)? {
                let owner = self.req.chown.unwrap_or((0, 0));
                self.dest
                    .mkdir_all(dst, 0o755, owner, self.req.mtime.created())?;
                let staging = staging.clone();
                return crate::unpack::extract(
                    &mut self.dest,
                    &path,
                    kind,
                    dst,
                    self.req.chown,
                    self.req.mtime,
                    &staging,
                );
            }
        }
        let dest_is_dir = self.dest.view.is_dir(dst);
        let dest_exists = self.dest.view.get(dst).is_some();
        let mut dest_path = dst.to_string();
        if !meta.is_dir() && dest_is_dir {
            dest_path = fsview::join(dst, fsview::split(m).1);
        }
        let target = if meta.is_dir() && !dest_exists {
            dest_path.clone()
        } else {
            fsview::parent_of(&dest_path).to_string()
        };
        self.mkdir_all(&target)?;
        self.pending.clear();
        self.copy(&followed, "", &dest_path, false)
    }
}

/// Plan a COPY: returns the layer entries, sorted, with parents before children.
pub fn plan(tree: &dyn SourceTree, req: &CopyRequest, view: &FsView) -> Result<Vec<Entry>> {
    let exclude = if req.exclude.is_empty() {
        None
    } else {
        Some(matcher(&req.exclude.join("\n"), "--exclude")?)
    };
    let mut p = Planner {
        tree,
        req,
        dest: DestState::new(view),
        exclude,
        include: None,
        inodes: HashMap::new(),
        pending: Vec::new(),
    };

    // The destination as BuildKit's pathRelativeToWorkingDir + cleanPath leave it: a
    // trailing `/` or `/.` makes it a directory, created first (with its parents).
    let dest = if req.dest.is_empty() || req.dest == "." {
        "./"
    } else {
        req.dest.as_str()
    };
    let dest_abs = if dest.starts_with('/') {
        dest.to_string()
    } else {
        format!("{}/{}", req.workdir.trim_end_matches('/'), dest)
    };
    let dir_like = dest_abs.ends_with('/') || dest_abs.ends_with("/.");
    let dest_clean = clean_rel(&dest_abs);
    let ensure = if dir_like {
        dest_clean.clone()
    } else {
        fsview::parent_of(&dest_clean).to_string()
    };
    // Created by each copy (BuildKit's Copy call), so a wildcard matching nothing
    // leaves no destination behind.
    let target = (ensure, dest_clean);

    for s in &req.sources {
        let (src, pattern) = if req.parents {
            match s.split_once("/./") {
                Some((parent, pattern)) => (parent.to_string(), Some(clean_rel(pattern))),
                None => ("/".to_string(), Some(clean_rel(s))),
            }
        } else {
            (s.clone(), None)
        };
        let rel = clean_rel(&src);
        if let Some(pattern) = &pattern {
            // Without wildcards the path must exist (BuildKit's RequiredPaths), and an
            // empty pattern (`./`, `dir/./`) selects nothing, which BuildKit reports so.
            if !has_wildcard(&rel) && !has_wildcard(pattern) {
                let required = fsview::join(&rel, pattern);
                if pattern.is_empty() || tree.stat(&required)?.is_none() {
                    return Err(Error::Invalid(format!("\"/{required}\": not found")));
                }
            }
            p.include = Some(matcher(pattern, "--parents")?);
        }
        if has_wildcard(&rel) {
            check_literal_prefix(tree, &src, &rel)?;
        } else if let Some(m) = tree.stat(&tree.resolve(&rel)?)? {
            // A device, FIFO or socket named as a source is an error (inside a copied
            // directory it is skipped with a warning).
            if matches!(m.kind, Kind::Special) {
                return Err(Error::Invalid(format!(
                    "\"/{rel}\": cannot copy a device, FIFO or socket: only regular files, \
                     directories and symlinks can be copied"
                )));
            }
        }
        let matches = match crate::glob::expand(tree, &rel)? {
            Some(m) => m,
            None => vec![rel],
        };
        for m in matches {
            let dst = p.ensure_dest(&target)?;
            p.copy_source(&m, &dst)?;
        }
    }
    p.include = None;
    for h in &req.heredocs {
        let dst = p.ensure_dest(&target)?;
        copy_inline(&mut p, h, &dst)?;
    }
    Ok(p.dest.into_entries())
}

/// A heredoc: a `0644` root-owned file named after its delimiter, copied like a file
/// source (no wildcards, `--chmod` and `--chown` apply).
fn copy_inline(p: &mut Planner<'_>, h: &InlineFile, dst: &str) -> Result<()> {
    let dest_path = if p.dest.view.is_dir(dst) {
        fsview::join(dst, &h.name)
    } else {
        dst.to_string()
    };
    p.mkdir_all(fsview::parent_of(&dest_path))?;
    if p.dest.view.get(&dest_path).is_some_and(|m| m.is_dir()) {
        return Err(Error::Invalid(format!(
            "cannot replace to directory /{dest_path} with file"
        )));
    }
    let mut e = Entry::new(
        dest_path,
        EntryKind::File {
            size: h.content.len() as u64,
            source: FileSource::Bytes(h.content.clone()),
        },
        p.mode(0o644, false),
    );
    (e.uid, e.gid) = p.req.chown.unwrap_or((0, 0));
    e.mtime = p.req.mtime.created();
    p.dest.put(e);
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::LocalContext;
    use std::os::unix::fs::PermissionsExt;

    fn ctx(files: &[(&str, u32)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (p, mode) in files {
            let path = d.path().join(p);
            if p.ends_with('/') {
                std::fs::create_dir_all(&path).unwrap();
            } else {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, p.as_bytes()).unwrap();
            }
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode)).unwrap();
        }
        d
    }

    fn run(dir: &tempfile::TempDir, req: CopyRequest, view: &FsView) -> Result<Vec<(String, u32)>> {
        let tree = LocalContext::new(dir.path(), None).unwrap();
        Ok(plan(&tree, &req, view)?
            .into_iter()
            .map(|e| (e.path, e.mode))
            .collect())
    }

    fn req(sources: &[&str], dest: &str) -> CopyRequest {
        CopyRequest {
            sources: sources.iter().map(|s| s.to_string()).collect(),
            dest: dest.into(),
            workdir: "/".into(),
            ..Default::default()
        }
    }

    #[test]
    fn existing_directories_below_the_top_take_the_source_metadata() {
        let d = ctx(&[("etc/", 0o775), ("etc/f", 0o644)]);
        let mut view = FsView::new();
        view.put(&Entry::new("etc", EntryKind::Dir, 0o755));
        let got = run(&d, req(&["."], "/"), &view).unwrap();
        assert_eq!(got, [("etc".into(), 0o775), ("etc/f".into(), 0o644)]);
        // The destination directory itself keeps its own metadata.
        let got = run(&d, req(&["etc"], "/etc"), &view).unwrap();
        assert_eq!(got, [("etc/f".into(), 0o644)]);
    }

    #[test]
    fn octal_chmod_also_sets_created_destination_directories() {
        let d = ctx(&[("f", 0o644)]);
        let mut r = req(&["f"], "/a/b/");
        r.chmod = Some(ModeOverride::octal(0o700));
        let got = run(&d, r, &FsView::new()).unwrap();
        assert_eq!(
            got,
            [
                ("a".into(), 0o700),
                ("a/b".into(), 0o700),
                ("a/b/f".into(), 0o700)
            ]
        );
        let mut r = req(&["f"], "/s/");
        r.chmod = Some(ModeOverride::parse("u+x").unwrap());
        let got = run(&d, r, &FsView::new()).unwrap();
        assert_eq!(got, [("s".into(), 0o755), ("s/f".into(), 0o744)]);
    }

    #[test]
    fn several_sources_to_a_file_destination_are_copied_in_turn() {
        let d = ctx(&[("a", 0o644), ("b", 0o600)]);
        let got = run(&d, req(&["nothing*", "a", "b"], "/x"), &FsView::new()).unwrap();
        assert_eq!(got, [("x".into(), 0o600)]);
        // A wildcard matching nothing creates no destination either.
        let got = run(&d, req(&["nothing*"], "/dir/"), &FsView::new()).unwrap();
        assert!(got.is_empty(), "{got:?}");
    }

    #[test]
    fn wildcards_walk_directories_only_and_honour_escapes() {
        let d = ctx(&[("f.txt", 0o644), ("a/sub/x.txt", 0o644), ("n?pe/k", 0o644)]);
        let got = run(&d, req(&["*/sub/*.txt"], "/o/"), &FsView::new()).unwrap();
        assert_eq!(got, [("o".into(), 0o755), ("o/x.txt".into(), 0o644)]);
        let got = run(&d, req(&["n\\?pe/k"], "/k"), &FsView::new());
        assert!(got.is_err(), "an escaped ? is literal: {got:?}");
    }

    #[test]
    fn parents_keep_source_directory_modes_and_pivot() {
        let d = ctx(&[
            ("x/", 0o775),
            ("x/y/", 0o700),
            ("x/y/a.txt", 0o644),
            ("x/b.txt", 0o644),
        ]);
        let mut r = req(&["x/*/a.txt"], "/p/");
        r.parents = true;
        let got = run(&d, r, &FsView::new()).unwrap();
        assert_eq!(
            got,
            [
                ("p".into(), 0o755),
                ("p/x".into(), 0o775),
                ("p/x/y".into(), 0o700),
                ("p/x/y/a.txt".into(), 0o644)
            ]
        );
        let mut r = req(&["x/./y/a.txt"], "/p/");
        r.parents = true;
        let got = run(&d, r, &FsView::new()).unwrap();
        assert_eq!(
            got[1..],
            [("p/y".into(), 0o700), ("p/y/a.txt".into(), 0o644)]
        );
        let mut r = req(&["x/./"], "/p/");
        r.parents = true;
        assert!(
            run(&d, r, &FsView::new()).is_err(),
            "an empty pattern selects nothing"
        );
    }

    #[test]
    fn hard_links_inside_one_source_stay_links() {
        let d = ctx(&[("dir/a", 0o644)]);
        std::fs::hard_link(d.path().join("dir/a"), d.path().join("dir/b")).unwrap();
        let tree = LocalContext::new(d.path(), None).unwrap();
        let e = plan(&tree, &req(&["dir"], "/o/"), &FsView::new()).unwrap();
        assert!(
            matches!(&e[2].kind, EntryKind::Hardlink(t) if t == "o/a"),
            "{e:?}"
        );
    }

    #[test]
    fn heredocs_follow_the_file_rules() {
        let d = ctx(&[]);
        let mut r = req(&[], "/h/");
        r.heredocs = vec![InlineFile {
            name: "EOF".into(),
            content: b"hi".to_vec(),
        }];
        let got = run(&d, r, &FsView::new()).unwrap();
        assert_eq!(got, [("h".into(), 0o755), ("h/EOF".into(), 0o644)]);
    }

    #[test]
    fn clean() {
        assert_eq!(clean_rel("../../a/./b/"), "a/b");
        assert_eq!(clean_rel("/"), "");
    }
}
