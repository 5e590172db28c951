//! Source trees COPY and ADD read from: the local build context (filtered by
//! `.dockerignore`) and the filesystem of another stage or image.
//!
//! Both present paths relative to their root, metadata in the container's terms, and
//! contents as files on disk, so the COPY planner ([`crate::copy`]) is written once.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hoist_dockerfile::ignore::Matcher;

use crate::error::{Error, Result};
use crate::fsview::{self, FsView, Kind};

/// Metadata of a source path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrcMeta {
    /// What it is.
    pub kind: Kind,
    /// Permission bits.
    pub mode: u32,
    /// Owner (the container's view; 0 for context files).
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time (seconds).
    pub mtime: i64,
    /// For a file with other hard links in the tree: the same key for all its names.
    pub link: Option<String>,
}

impl SrcMeta {
    /// Whether it is a directory.
    pub fn is_dir(&self) -> bool {
        self.kind == Kind::Dir
    }
}

/// A tree of files COPY can read.
///
/// Every path is interpreted inside the tree's root, as BuildKit does: symlinks in the
/// parent components are followed inside the root ([`crate::inroot`]), so no path
/// reaches outside it, whatever the links in the tree say.
pub trait SourceTree {
    /// Metadata of `rel` without following a final symlink; `None` if absent or excluded.
    fn stat(&self, rel: &str) -> Result<Option<SrcMeta>>;
    /// Names in directory `rel` (a final symlink followed), sorted bytewise (excluded
    /// ones omitted).
    fn list(&self, rel: &str) -> Result<Vec<String>>;
    /// The file on disk holding the content of regular file `rel` (every symlink
    /// resolved inside the root).
    fn content_path(&self, rel: &str) -> Result<PathBuf>;
    /// Whether ownership of the tree is meaningful (a stage) or not (the context).
    fn preserves_owner(&self) -> bool;
    /// Resolve symlinks in `rel` inside the tree (following the last component too).
    fn resolve(&self, rel: &str) -> Result<String>;
}

/// The local build context: a directory, with `.dockerignore` applied.
#[derive(Clone)]
pub struct LocalContext {
    root: PathBuf,
    ignore: Option<Matcher>,
}

impl LocalContext {
    /// Open a context directory with an optional ignore matcher.
    pub fn new(root: impl Into<PathBuf>, ignore: Option<Matcher>) -> Result<LocalContext> {
        let root = root.into();
        let md = fs::metadata(&root).map_err(|e| Error::io(&root, e))?;
        if !md.is_dir() {
            return Err(Error::Invalid(format!(
                "build context {} is not a directory",
                root.display()
            )));
        }
        Ok(LocalContext { root, ignore })
    }

    /// The context directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether a `.dockerignore` filters the context.
    pub fn has_ignore(&self) -> bool {
        self.ignore.is_some()
    }

    /// Lay out `rel` (a directory or file of the context) at `dest` as the build sees
    /// it, ignored paths left out: directories are created with their modes, regular
    /// files hard-linked (copied when `copy` is set or linking fails, e.g. across file
    /// systems), symlinks recreated. What `RUN --mount=type=bind` mounts from a
    /// filtered context, as BuildKit only ever has the filtered context.
    pub fn materialize(&self, rel: &str, dest: &Path, copy: bool) -> Result<()> {
        let md = match self.stat(rel)? {
            Some(m) => m,
            None => {
                return Err(Error::Invalid(format!(
                    "{rel}: not in the build context (missing or excluded by .dockerignore)"
                )))
            }
        };
        self.materialize_entry(rel, &md, dest, copy)
    }

    fn materialize_entry(&self, rel: &str, md: &SrcMeta, dest: &Path, copy: bool) -> Result<()> {
        let src = self.root.join(self.real(rel, false)?);
        match &md.kind {
            Kind::Dir => {
                fs::create_dir(dest).map_err(|e| Error::io(dest, e))?;
                for name in self.list(rel)? {
                    let child = fsview::join(rel, &name);
                    if let Some(cmd) = self.stat(&child)? {
                        self.materialize_entry(&child, &cmd, &dest.join(&name), copy)?;
                    }
                }
                fs::set_permissions(dest, fs::Permissions::from_mode(md.mode))
                    .map_err(|e| Error::io(dest, e))?;
            }
            Kind::File(_) if copy || fs::hard_link(&src, dest).is_err() => {
                fs::copy(&src, dest).map_err(|e| Error::io(&src, e))?;
            }
            Kind::Symlink(target) => {
                std::os::unix::fs::symlink(target, dest).map_err(|e| Error::io(dest, e))?;
            }
            _ => {}
        }
        Ok(())
    }

    /// `rel` resolved inside the context (see [`crate::inroot`]): the parents always,
    /// the last component when `follow_last`. An excluded symlink does not exist for
    /// the build (BuildKit never receives it), so it is not followed.
    fn real(&self, rel: &str, follow_last: bool) -> Result<String> {
        crate::inroot::resolve(self, rel, follow_last)
    }

    fn excluded(&self, rel: &str) -> bool {
        match &self.ignore {
            Some(m) => !rel.is_empty() && m.matches(rel),
            None => false,
        }
    }

    /// Whether `rel` is excluded. The matcher implements BuildKit's
    /// `MatchesOrParentMatches`: a path is excluded when it or a parent matches, with
    /// later `!` exceptions re-including it.
    fn excluded_with_parents(&self, rel: &str) -> bool {
        self.excluded(rel)
    }
}

fn meta_of(md: &fs::Metadata, path: &Path) -> Result<SrcMeta> {
    let ft = md.file_type();
    let kind = if ft.is_dir() {
        Kind::Dir
    } else if ft.is_file() {
        Kind::File(md.len())
    } else if ft.is_symlink() {
        let t = fs::read_link(path).map_err(|e| Error::io(path, e))?;
        Kind::Symlink(t.to_string_lossy().into_owned())
    } else {
        Kind::Special
    };
    Ok(SrcMeta {
        link: (ft.is_file() && md.nlink() > 1).then(|| format!("{}:{}", md.dev(), md.ino())),
        kind,
        mode: md.permissions().mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
        mtime: md.mtime(),
    })
}

impl crate::inroot::Lookup for LocalContext {
    fn symlink_target(&self, rel: &str) -> Result<Option<String>> {
        if self.excluded_with_parents(rel) {
            return Ok(None);
        }
        crate::inroot::HostRoot::new(&self.root).symlink_target(rel)
    }
}

impl SourceTree for LocalContext {
    fn stat(&self, rel: &str) -> Result<Option<SrcMeta>> {
        let rel = self.real(rel, false)?;
        let p = self.root.join(&rel);
        if self.excluded_with_parents(&rel) {
            // An excluded directory may still contain re-included children (`!dir/keep`).
            if let Some(m) = &self.ignore {
                if !m.may_reinclude_children(&rel) {
                    return Ok(None);
                }
                return match fs::symlink_metadata(&p) {
                    // BuildKit's context only holds an excluded directory when an
                    // exception re-includes something below it.
                    Ok(md) if md.is_dir() && !self.list(&rel)?.is_empty() => {
                        Ok(Some(meta_of(&md, &p)?))
                    }
                    _ => Ok(None),
                };
            }
            return Ok(None);
        }
        match fs::symlink_metadata(&p) {
            Ok(md) => Ok(Some(meta_of(&md, &p)?)),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(Error::io(p, e)),
        }
    }

    fn list(&self, rel: &str) -> Result<Vec<String>> {
        let rel = self.real(rel, true)?;
        let p = self.root.join(&rel);
        let rd = fs::read_dir(&p).map_err(|e| Error::io(&p, e))?;
        let mut names = Vec::new();
        for ent in rd {
            let ent = ent.map_err(|e| Error::io(&p, e))?;
            let name = match ent.file_name().into_string() {
                Ok(n) => n,
                Err(n) => {
                    return Err(Error::Invalid(format!(
                        "{}: file name {:?} is not valid UTF-8",
                        p.display(),
                        n
                    )))
                }
            };
            let child = fsview::join(&rel, &name);
            if self.excluded_with_parents(&child) {
                let is_dir = ent.file_type().map(|t| t.is_dir()).unwrap_or(false);
                let keep = is_dir
                    && self
                        .ignore
                        .as_ref()
                        .is_some_and(|m| m.may_reinclude_children(&child))
                    && self.stat(&child)?.is_some();
                if !keep {
                    continue;
                }
            }
            names.push(name);
        }
        names.sort();
        Ok(names)
    }

    fn content_path(&self, rel: &str) -> Result<PathBuf> {
        Ok(self.root.join(self.real(rel, true)?))
    }

    fn preserves_owner(&self) -> bool {
        false
    }

    fn resolve(&self, rel: &str) -> Result<String> {
        self.real(rel, true)
    }
}

/// Another stage's (or image's) filesystem: metadata from its [`FsView`], contents from
/// a directory where its layers were unpacked.
pub struct StageTree<'a> {
    view: &'a FsView,
    rootfs: PathBuf,
    /// Files other paths are hard links to.
    link_targets: std::collections::HashSet<String>,
}

impl<'a> StageTree<'a> {
    /// A tree over `view` whose contents are unpacked at `rootfs`.
    pub fn new(view: &'a FsView, rootfs: impl Into<PathBuf>) -> StageTree<'a> {
        let link_targets = view
            .walk("")
            .filter_map(|(_, m)| match &m.kind {
                Kind::Hardlink(t) => Some(t.clone()),
                _ => None,
            })
            .collect();
        StageTree {
            view,
            rootfs: rootfs.into(),
            link_targets,
        }
    }
}

impl SourceTree for StageTree<'_> {
    fn stat(&self, rel: &str) -> Result<Option<SrcMeta>> {
        let rel = &self.view.resolve(rel, false)?;
        Ok(self.view.get(rel).map(|m| SrcMeta {
            link: match &m.kind {
                Kind::Hardlink(t) => Some(t.clone()),
                Kind::File(_) if self.link_targets.contains(rel.as_str()) => Some(rel.to_string()),
                _ => None,
            },
            kind: m.kind.clone(),
            mode: m.mode,
            uid: m.uid,
            gid: m.gid,
            mtime: m.mtime,
        }))
    }

    fn list(&self, rel: &str) -> Result<Vec<String>> {
        let rel = self.view.resolve(rel, true)?;
        let depth = if rel.is_empty() {
            0
        } else {
            rel.split('/').count()
        };
        let mut names: Vec<String> = self
            .view
            .walk(&rel)
            .filter(|(k, _)| !k.is_empty() && k.as_str() != rel)
            .filter(|(k, _)| k.split('/').count() == depth + 1)
            .map(|(k, _)| fsview::split(k).1.to_string())
            .collect();
        names.sort();
        Ok(names)
    }

    fn content_path(&self, rel: &str) -> Result<PathBuf> {
        Ok(self.rootfs.join(self.view.resolve(rel, true)?))
    }

    fn preserves_owner(&self) -> bool {
        true
    }

    fn resolve(&self, rel: &str) -> Result<String> {
        self.view.resolve(rel, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excluded_dirs_exist_only_with_reincluded_contents() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("folder/sub")).unwrap();
        fs::write(d.path().join("folder/sub/other"), "x").unwrap();
        fs::write(d.path().join("keep"), "x").unwrap();
        let m = Matcher::from_ignore_file("**\n!folder/sub/file\n!keep\n").unwrap();
        let ctx = LocalContext::new(d.path(), Some(m)).unwrap();
        assert!(ctx.stat("folder").unwrap().is_none());
        assert_eq!(ctx.list("").unwrap(), ["keep"]);
        fs::write(d.path().join("folder/sub/file"), "x").unwrap();
        assert!(ctx.stat("folder").unwrap().is_some());
        assert_eq!(ctx.list("folder/sub").unwrap(), ["file"]);
    }

    #[test]
    fn a_path_through_a_file_does_not_exist() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("f.txt"), "x").unwrap();
        let ctx = LocalContext::new(d.path(), None).unwrap();
        assert!(ctx.stat("f.txt/sub").unwrap().is_none());
    }
}
