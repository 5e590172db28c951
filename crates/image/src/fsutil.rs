//! Atomic file and directory replacement.
//!
//! Every output hoist writes appears whole or not at all:
//!
//! ```text
//! <parent>/
//!   out.tar                    the destination, replaced only on success
//!   .out.tar.hoist-tmp-XXXXXX  transient: the file being written (removed on failure)
//!   out/                       a destination directory
//!   .out.hoist-tmp-XXXXXX/     transient: the directory being assembled
//!   .out.hoist-old-XXXXXX/     transient: the previous directory, removed after the swap
//! ```
//!
//! Temporaries live beside the destination (same file system, so `rename` is atomic),
//! are `fsync`ed before the rename, and the parent directory is `fsync`ed after it.
//! Dropping an [`AtomicFile`] or [`AtomicDir`] without committing removes the temporary.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The parent directory of `path` (`.` for a bare file name) and its file name.
fn split(path: &Path) -> Result<(PathBuf, OsString)> {
    let name = path.file_name().ok_or_else(|| {
        Error::Format(format!(
            "{}: an output must name a file or directory to create or replace \
             (such as ./out), not . or ..",
            path.display()
        ))
    })?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((parent, name.to_os_string()))
}

fn prefix(name: &OsString, kind: &str) -> String {
    format!(".{}.hoist-{kind}-", name.to_string_lossy())
}

/// `fsync` a directory so a rename inside it is durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let f = File::open(dir).map_err(|e| Error::io(dir, e))?;
    f.sync_all().map_err(|e| Error::io(dir, e))
}

/// Write `bytes` to `path` atomically (temp file beside it, fsync, rename, fsync dir).
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = AtomicFile::create(path)?;
    f.write_all(bytes)
        .map_err(|e| Error::io(f.temp_path(), e))?;
    f.commit()
}

/// A file written under a temporary name and renamed over its destination on
/// [`commit`](AtomicFile::commit). Dropped uncommitted, it leaves nothing behind.
pub struct AtomicFile {
    dest: PathBuf,
    parent: PathBuf,
    file: io::BufWriter<tempfile::NamedTempFile>,
}

impl AtomicFile {
    /// Start writing a file that will become `dest`. The parent directory must exist.
    pub fn create(dest: &Path) -> Result<AtomicFile> {
        let (parent, name) = split(dest)?;
        let tmp = tempfile::Builder::new()
            .prefix(&prefix(&name, "tmp"))
            .tempfile_in(&parent)
            .map_err(|e| Error::io(&parent, e))?;
        Ok(AtomicFile {
            dest: dest.to_path_buf(),
            parent,
            file: io::BufWriter::with_capacity(256 << 10, tmp),
        })
    }

    /// Where the content is being written.
    pub fn temp_path(&self) -> &Path {
        self.file.get_ref().path()
    }

    /// The final destination.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// The temporary file itself, with everything written so far flushed to it,
    /// for in-kernel copies (`copy_file_range`) at its current offset. Later
    /// writes through `Write` continue after what was copied.
    pub fn raw_file(&mut self) -> io::Result<&mut File> {
        self.file.flush()?;
        Ok(self.file.get_mut().as_file_mut())
    }

    /// Flush, fsync, rename over the destination and fsync the directory.
    pub fn commit(self) -> Result<()> {
        let AtomicFile { dest, parent, file } = self;
        let tmp = file
            .into_inner()
            .map_err(|e| Error::io(&dest, e.into_error()))?;
        tmp.as_file()
            .sync_all()
            .map_err(|e| Error::io(tmp.path(), e))?;
        // Output files are meant to be read by others (0644 minus umask), not 0600.
        set_default_file_mode(tmp.as_file(), tmp.path())?;
        tmp.persist(&dest).map_err(|e| Error::io(&dest, e.error))?;
        sync_dir(&parent)
    }
}

fn set_default_file_mode(f: &File, path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = 0o666 & !current_umask();
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io(path, e))
}

/// The process's umask (read from `/proc/self/status`; 022 if unknown).
pub fn current_umask() -> u32 {
    // Reading the umask needs a syscall that also sets it; `/proc/self/status`
    // reports it without changing anything.
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// A directory assembled under a temporary name beside its destination and renamed
/// into place on [`commit`](AtomicDir::commit), replacing an existing directory only
/// then. Dropped uncommitted, the temporary directory is removed.
pub struct AtomicDir {
    dest: PathBuf,
    parent: PathBuf,
    name: OsString,
    tmp: Option<tempfile::TempDir>,
}

impl AtomicDir {
    /// Start assembling a directory that will become `dest`. The parent must exist.
    pub fn create(dest: &Path) -> Result<AtomicDir> {
        let (parent, name) = split(dest)?;
        let tmp = tempfile::Builder::new()
            .prefix(&prefix(&name, "tmp"))
            .tempdir_in(&parent)
            .map_err(|e| Error::io(&parent, e))?;
        Ok(AtomicDir {
            dest: dest.to_path_buf(),
            parent,
            name,
            tmp: Some(tmp),
        })
    }

    /// The temporary directory to fill.
    pub fn path(&self) -> &Path {
        self.tmp.as_ref().expect("present until commit").path()
    }

    /// The final destination.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Move the directory into place. An existing destination directory is first
    /// renamed aside, then removed once the new one is in place; an existing
    /// destination that is not a directory is an error.
    pub fn commit(mut self) -> Result<()> {
        let tmp = self.tmp.take().expect("present until commit");
        let tmp_path = tmp.keep();
        // tempfile creates the directory 0700; outputs are meant to be shared.
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&tmp_path)
                .map(|m| m.permissions().mode() & 0o7777)
                .unwrap_or(0o700);
            if mode == 0o700 {
                let _ = fs::set_permissions(
                    &tmp_path,
                    fs::Permissions::from_mode(0o777 & !current_umask()),
                );
            }
        }
        let result = self.swap_in(&tmp_path);
        if result.is_err() {
            let _ = fs::remove_dir_all(&tmp_path);
        }
        result
    }

    fn swap_in(&self, tmp_path: &Path) -> Result<()> {
        match fs::symlink_metadata(&self.dest) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::rename(tmp_path, &self.dest).map_err(|e| Error::io(&self.dest, e))?;
            }
            Err(e) => return Err(Error::io(&self.dest, e)),
            Ok(m) if !m.is_dir() => {
                return Err(Error::Format(format!(
                    "{}: exists and is not a directory",
                    self.dest.display()
                )))
            }
            Ok(_) => {
                let old = tempfile::Builder::new()
                    .prefix(&prefix(&self.name, "old"))
                    .tempdir_in(&self.parent)
                    .map_err(|e| Error::io(&self.parent, e))?
                    .keep();
                // `rename` onto an empty directory replaces it; `old` is empty.
                fs::rename(&self.dest, &old).map_err(|e| Error::io(&self.dest, e))?;
                if let Err(e) = fs::rename(tmp_path, &self.dest) {
                    // Put the previous directory back.
                    let _ = fs::rename(&old, &self.dest);
                    return Err(Error::io(&self.dest, e));
                }
                remove_dir_all_writable(&old).map_err(|e| Error::io(&old, e))?;
            }
        }
        sync_dir(&self.parent)
    }
}

impl Drop for AtomicDir {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let p = tmp.keep();
            let _ = remove_dir_all_writable(&p);
        }
    }
}

/// Remove a tree, first making directories writable (an unpacked rootfs may contain
/// read-only directories that an unprivileged user could otherwise not empty).
pub fn remove_dir_all_writable(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(first) => {
            make_dirs_writable(path);
            fs::remove_dir_all(path).map_err(|_| first)
        }
    }
}

fn make_dirs_writable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(m) = fs::symlink_metadata(path) else {
        return;
    };
    if !m.is_dir() {
        return;
    }
    let mode = m.permissions().mode();
    if mode & 0o700 != 0o700 {
        let _ = fs::set_permissions(path, fs::Permissions::from_mode(mode | 0o700));
    }
    if let Ok(rd) = fs::read_dir(path) {
        for ent in rd.flatten() {
            make_dirs_writable(&ent.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn atomic_file_commit_and_drop() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("out.json");
        atomic_write(&p, b"one").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"one");
        let mut f = AtomicFile::create(&p).unwrap();
        f.write_all(b"two").unwrap();
        drop(f);
        assert_eq!(fs::read(&p).unwrap(), b"one");
        assert_eq!(names(d.path()), vec!["out.json"]);
    }

    #[test]
    fn atomic_dir_replaces_only_on_commit() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("out");
        fs::create_dir(&dest).unwrap();
        fs::write(dest.join("old"), b"x").unwrap();
        let a = AtomicDir::create(&dest).unwrap();
        fs::write(a.path().join("new"), b"y").unwrap();
        drop(a);
        assert_eq!(names(&dest), vec!["old"]);
        assert_eq!(names(d.path()), vec!["out"]);
        let a = AtomicDir::create(&dest).unwrap();
        fs::write(a.path().join("new"), b"y").unwrap();
        a.commit().unwrap();
        assert_eq!(names(&dest), vec!["new"]);
        assert_eq!(names(d.path()), vec!["out"]);
    }
}
