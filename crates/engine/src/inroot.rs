//! Path resolution inside a root: the one resolver every reader of a build context, a
//! named context directory or a stage's filesystem goes through.
//!
//! BuildKit only ever sees the context as a tree of its own (transferred without following
//! links), so a symlink in the context can only point into the context: an absolute
//! target is resolved against the context root, `..` stops at the root, and a link to `/`
//! means the root itself. [`resolve`] walks a path component by component with those
//! rules, asking a [`Lookup`] whether each component is a symlink. [`HostRoot`] answers
//! from a directory on the host (`lstat` of a path whose every component was already
//! found not to be a symlink, so the kernel never follows a link the walk did not
//! choose); [`crate::fsview::FsView`] answers from a stage's layer metadata.
//!
//! ```
//! use hoist_engine::inroot::{host_path, HostRoot, resolve};
//! let d = tempfile::tempdir().unwrap();
//! std::fs::create_dir(d.path().join("sub")).unwrap();
//! std::os::unix::fs::symlink("/sub", d.path().join("abs")).unwrap();
//! std::os::unix::fs::symlink("../../..", d.path().join("up")).unwrap();
//! let root = HostRoot::new(d.path());
//! assert_eq!(resolve(&root, "abs/x", true).unwrap(), "sub/x");
//! assert_eq!(resolve(&root, "up/etc/shadow", true).unwrap(), "etc/shadow");
//! assert_eq!(host_path(d.path(), "up/sub").unwrap(), d.path().join("sub"));
//! ```
//!
//! The walk is as good as the tree is still: a context changed by another process while
//! the build reads it could swap a checked directory for a link. Build contexts are
//! checked-out trees nobody writes during the build; RUN steps never see the host context
//! writable (read-write bind mounts work on a copy).

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// How many symlinks one resolution may follow (Linux's `MAXSYMLINKS` is 40; BuildKit's
/// continuity allows 255).
pub const MAX_SYMLINKS: usize = 255;

/// What [`resolve`] asks about a path.
pub trait Lookup {
    /// If `rel` (relative to the root, no symlink in its parents) is a symlink, its
    /// target; `None` for anything else, including a missing path.
    fn symlink_target(&self, rel: &str) -> Result<Option<String>>;
}

/// Resolve `path` (relative to the root; a leading `/` is the root) inside the root,
/// following symlinks in every component, and in the last one too when `follow_last`.
/// The result is relative, cleaned, without a leading `/`; components that do not exist
/// are kept as they are (the caller finds them missing).
pub fn resolve(tree: &dyn Lookup, path: &str, follow_last: bool) -> Result<String> {
    let mut done: Vec<String> = Vec::new();
    let mut todo: Vec<String> = components(path).rev().map(str::to_string).collect();
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            done.pop();
            continue;
        }
        done.push(c);
        if todo.is_empty() && !follow_last {
            break;
        }
        let candidate = done.join("/");
        if let Some(target) = tree.symlink_target(&candidate)? {
            done.pop();
            hops += 1;
            if hops > MAX_SYMLINKS {
                return Err(Error::Invalid(format!(
                    "/{}: too many levels of symbolic links (more than {MAX_SYMLINKS})",
                    path.trim_start_matches('/')
                )));
            }
            if target.starts_with('/') {
                done.clear();
            }
            todo.extend(components(&target).rev().map(str::to_string));
        }
    }
    Ok(done.join("/"))
}

fn components(path: &str) -> impl DoubleEndedIterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty() && *c != ".")
}

/// A directory on the host seen as a root.
#[derive(Debug, Clone, Copy)]
pub struct HostRoot<'a> {
    root: &'a Path,
}

impl<'a> HostRoot<'a> {
    /// The tree rooted at `root`.
    pub fn new(root: &'a Path) -> HostRoot<'a> {
        HostRoot { root }
    }
}

impl Lookup for HostRoot<'_> {
    fn symlink_target(&self, rel: &str) -> Result<Option<String>> {
        let p = self.root.join(rel);
        match fs::symlink_metadata(&p) {
            Ok(md) if md.file_type().is_symlink() => {
                let t = fs::read_link(&p).map_err(|e| Error::io(&p, e))?;
                Ok(Some(t.to_string_lossy().into_owned()))
            }
            Ok(_) => Ok(None),
            // Missing, or a parent is not a directory: the caller finds the path absent.
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
}

/// The host path of `rel` inside `root`, every symlink (the last one too) resolved
/// inside `root`: what to open to read `rel` as BuildKit would.
pub fn host_path(root: &Path, rel: &str) -> Result<PathBuf> {
    Ok(root.join(resolve(&HostRoot::new(root), rel, true)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_never_leave_the_root() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::create_dir_all(r.join("usr/lib")).unwrap();
        symlink("/etc", r.join("el")).unwrap();
        symlink("../../..", r.join("up")).unwrap();
        symlink("/", r.join("slash")).unwrap();
        symlink("usr/lib", r.join("lib")).unwrap();
        symlink("el", r.join("nested")).unwrap();
        symlink("loop2", r.join("loop1")).unwrap();
        symlink("loop1", r.join("loop2")).unwrap();
        let root = HostRoot::new(r);
        let res = |p: &str, last: bool| resolve(&root, p, last).unwrap();
        assert_eq!(res("el/shadow", true), "etc/shadow");
        assert_eq!(res("nested/shadow", true), "etc/shadow");
        assert_eq!(res("up/etc/passwd", true), "etc/passwd");
        assert_eq!(res("slash", true), "");
        assert_eq!(res("slash/el", false), "el");
        assert_eq!(res("lib/x", true), "usr/lib/x");
        assert_eq!(res("lib/../x", true), "usr/x");
        assert_eq!(res("/../../lib", false), "lib");
        assert_eq!(res("el", false), "el");
        assert!(resolve(&root, "loop1/x", true).is_err());
        assert_eq!(host_path(r, "up").unwrap(), r.to_path_buf());
    }
}
