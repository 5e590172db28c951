//! All of a build's outputs appear together or not at all.
//!
//! Each `--output` is first written in full under a temporary name beside its
//! destination (a *staged* output). Only when every output is staged (and every push
//! done) does [`Staging::commit`] rename them into place, one by one; when a rename
//! fails, the ones already made are undone (the previous destinations come back). A
//! [`Staging`] dropped without a commit removes what it staged, the parent
//! directories it created and restores an OCI layout's `index.json` it changed: a
//! failed build or a failed output writes nothing.
//!
//! ```text
//! parent/
//!   out.tar                      destination (old content until the commit)
//!   .out.tar.hoist-PID-N         staged output, renamed onto out.tar at the commit
//!   .out.tar.hoist-old-PID-N     the old out.tar during the commit (removed after)
//! ```
//!
//! What cannot be taken back: a push that succeeded (the registry keeps the tag) and
//! bytes already written to standard output. Pushes therefore run after everything
//! else is staged, and standard output is written last.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// One staged output.
struct Staged {
    tmp: PathBuf,
    dest: PathBuf,
}

/// Outputs written under temporary names, waiting for [`Staging::commit`].
#[derive(Default)]
pub struct Staging {
    staged: Vec<Staged>,
    /// Parent directories created for the outputs, outermost first.
    created: Vec<PathBuf>,
    /// OCI layouts an image was added to in place: (`index.json`, its old content).
    indexes: Vec<(PathBuf, Option<Vec<u8>>)>,
    /// Files to copy to standard output at the commit, in order.
    stdout: Vec<PathBuf>,
}

impl Staging {
    /// Nothing staged yet.
    pub fn new() -> Staging {
        Staging::default()
    }

    /// Create the missing parent directories of `dest` (as buildx does), remembering
    /// them so that an uncommitted staging removes them again.
    pub fn create_parents(&mut self, dest: &Path) -> Result<()> {
        let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) else {
            return Ok(());
        };
        let mut missing = Vec::new();
        let mut p = parent;
        while !p.as_os_str().is_empty() && std::fs::symlink_metadata(p).is_err() {
            missing.push(p.to_path_buf());
            match p.parent() {
                Some(q) => p = q,
                None => break,
            }
        }
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        self.created.extend(missing.into_iter().rev());
        Ok(())
    }

    /// A fresh temporary path beside `dest` (not created) for its staged content.
    pub fn temp_for(dest: &Path, what: &str) -> PathBuf {
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "output".into());
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        dest.with_file_name(format!(".{name}.hoist-{what}{}-{n}", std::process::id()))
    }

    /// Stage an output: `tmp` (a file or directory written in full) becomes `dest` at
    /// the commit.
    pub fn add(&mut self, tmp: PathBuf, dest: PathBuf) {
        self.staged.push(Staged { tmp, dest });
    }

    /// Remember an OCI layout's `index.json` before an image is added to it in place
    /// (blobs added to a layout are harmless; its index is what names images).
    pub fn keep_index(&mut self, layout: &Path) -> Result<()> {
        let p = layout.join("index.json");
        let old = match std::fs::read(&p) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(&p, e)),
        };
        self.indexes.push((p, old));
        Ok(())
    }

    /// Copy `file` (staged in a scratch directory) to standard output at the commit.
    pub fn add_stdout(&mut self, file: PathBuf) {
        self.stdout.push(file);
    }

    /// Rename every staged output into place (undoing the renames made so far if one
    /// fails), then write the standard output ones.
    pub fn commit(mut self) -> Result<()> {
        let staged = std::mem::take(&mut self.staged);
        // (dest, where its previous content went)
        let mut done: Vec<(PathBuf, Option<PathBuf>)> = Vec::new();
        let mut failure = None;
        for (i, s) in staged.iter().enumerate() {
            match swap_in(s) {
                Ok(old) => done.push((s.dest.clone(), old)),
                Err(e) => {
                    failure = Some((i, e));
                    break;
                }
            }
        }
        if let Some((i, e)) = failure {
            for (dest, old) in done.into_iter().rev() {
                undo(&dest, old.as_deref());
            }
            for s in &staged[i..] {
                remove_quietly(&s.tmp);
            }
            return Err(e);
        }
        for (_, old) in done {
            if let Some(old) = old {
                remove_quietly(&old);
            }
        }
        for s in &staged {
            if let Some(parent) = s.dest.parent().filter(|p| !p.as_os_str().is_empty()) {
                if let Err(e) = hoist_image::fsutil::sync_dir(parent) {
                    tracing::warn!(dir = %parent.display(), "fsync after the output rename: {e}");
                }
            }
        }
        self.indexes.clear();
        self.created.clear();
        let files = std::mem::take(&mut self.stdout);
        for f in &files {
            let r = (|| {
                use std::io::Write;
                let mut src = std::fs::File::open(f).map_err(|e| Error::io(f, e))?;
                let mut out = std::io::stdout().lock();
                std::io::copy(&mut src, &mut out).map_err(|e| Error::io("<stdout>", e))?;
                out.flush().map_err(|e| Error::io("<stdout>", e))
            })();
            remove_quietly(f);
            r?;
        }
        Ok(())
    }
}

/// Put a staged output in place; returns where the previous destination went.
fn swap_in(s: &Staged) -> Result<Option<PathBuf>> {
    let old = match std::fs::symlink_metadata(&s.dest) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io(&s.dest, e)),
        Ok(m) => {
            let tmp_is_dir = std::fs::symlink_metadata(&s.tmp)
                .map(|t| t.is_dir())
                .unwrap_or(false);
            if tmp_is_dir && !m.is_dir() {
                return Err(Error::Invalid(format!(
                    "{}: exists and is not a directory",
                    s.dest.display()
                )));
            }
            if !tmp_is_dir && m.is_dir() {
                return Err(Error::Invalid(format!(
                    "{}: is a directory, the output is a file",
                    s.dest.display()
                )));
            }
            let aside = Staging::temp_for(&s.dest, "old-");
            std::fs::rename(&s.dest, &aside).map_err(|e| Error::io(&s.dest, e))?;
            Some(aside)
        }
    };
    if let Err(e) = std::fs::rename(&s.tmp, &s.dest) {
        if let Some(a) = &old {
            undo(&s.dest, Some(a));
        }
        return Err(Error::io(&s.dest, e));
    }
    Ok(old)
}

/// Take back a rename onto `dest`: remove what is there, put `old` back.
fn undo(dest: &Path, old: Option<&Path>) {
    remove_quietly(dest);
    if let Some(old) = old {
        if let Err(e) = std::fs::rename(old, dest) {
            tracing::warn!(
                dest = %dest.display(),
                kept = %old.display(),
                "could not put the previous output back: {e}"
            );
        }
    }
}

/// Remove a file or tree, logging (not failing on) what cannot be removed.
fn remove_quietly(p: &Path) {
    let r = match std::fs::symlink_metadata(p) {
        Err(_) => return,
        Ok(m) if m.is_dir() => hoist_image::fsutil::remove_dir_all_writable(p),
        Ok(_) => std::fs::remove_file(p),
    };
    if let Err(e) = r {
        tracing::warn!(path = %p.display(), "could not remove a staged output: {e}");
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        for s in self.staged.drain(..) {
            remove_quietly(&s.tmp);
        }
        for f in self.stdout.drain(..) {
            remove_quietly(&f);
        }
        for (p, old) in self.indexes.drain(..).rev() {
            let r = match &old {
                Some(b) => hoist_image::atomic_write(&p, b).map_err(|e| e.to_string()),
                None => std::fs::remove_file(&p).map_err(|e| e.to_string()),
            };
            if let Err(e) = r {
                tracing::warn!(path = %p.display(), "could not restore an OCI layout's index: {e}");
            }
        }
        for d in self.created.drain(..).rev() {
            // Only if still empty: never remove what someone else put there.
            if let Err(e) = std::fs::remove_dir(&d) {
                tracing::debug!(dir = %d.display(), "created parent not removed: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncommitted_staging_leaves_nothing_and_a_commit_replaces() {
        let t = tempfile::tempdir().unwrap();
        let dest = t.path().join("a/b/out.tar");
        {
            let mut s = Staging::new();
            s.create_parents(&dest).unwrap();
            let tmp = Staging::temp_for(&dest, "");
            std::fs::write(&tmp, b"new").unwrap();
            s.add(tmp, dest.clone());
        }
        assert!(!t.path().join("a").exists(), "parents removed again");

        let mut s = Staging::new();
        s.create_parents(&dest).unwrap();
        std::fs::write(&dest, b"old").unwrap();
        let tmp = Staging::temp_for(&dest, "");
        std::fs::write(&tmp, b"new").unwrap();
        s.add(tmp, dest.clone());
        // A second output whose destination is a directory fails the commit: the first
        // rename is undone.
        let d2 = t.path().join("a/b/dir");
        std::fs::create_dir(&d2).unwrap();
        let tmp2 = Staging::temp_for(&d2, "");
        std::fs::write(&tmp2, b"file").unwrap();
        s.add(tmp2, d2.clone());
        assert!(s.commit().is_err());
        assert_eq!(std::fs::read(&dest).unwrap(), b"old");
        let left: Vec<_> = std::fs::read_dir(t.path().join("a/b"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
    }
}
