//! What planning looks at, read from an app directory (the only I/O of this crate).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use crate::{Error, Result};

/// Files read in full (each at most [`MAX_FILE`] bytes).
const READ: &[&str] = &[
    "package.json",
    "Cargo.toml",
    "Procfile",
    "hoist.toml",
    "pyproject.toml",
];
/// Largest file read.
pub const MAX_FILE: u64 = 256 << 10;

/// What an app directory holds, as far as planning cares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// The directory's name, for messages.
    pub dir: String,
    /// Top-level regular files (and symlinks), by name.
    pub files: BTreeSet<String>,
    /// Top-level directories, by name.
    pub dirs: BTreeSet<String>,
    /// Files in `public/`, `dist/` and `bin/`, as `public/index.html`.
    pub nested: BTreeSet<String>,
    /// Executable ELF files at the top or in `bin/` (`app`, `bin/app`).
    pub executables: BTreeSet<String>,
    /// Contents of the few files planning reads (see [`Facts::read`]).
    pub contents: BTreeMap<String, String>,
}

impl Facts {
    /// Read the listing of `dir` (and of `public/`, `dist/`, `bin/`) and the small
    /// files `package.json`, `Cargo.toml`, `Procfile`, `pyproject.toml`, `hoist.toml`.
    pub fn read(dir: &Path) -> Result<Facts> {
        let io = |p: &Path, e| Error::Io {
            path: p.to_path_buf(),
            source: e,
        };
        let mut f = Facts {
            dir: dir.display().to_string(),
            ..Default::default()
        };
        for ent in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
            let ent = ent.map_err(|e| io(dir, e))?;
            let Ok(name) = ent.file_name().into_string() else {
                continue;
            };
            let meta = std::fs::metadata(ent.path());
            if meta.as_ref().is_ok_and(|m| m.is_dir()) {
                f.dirs.insert(name);
            } else if meta.is_ok() {
                if is_elf_executable(&ent.path()) {
                    f.executables.insert(name.clone());
                }
                f.files.insert(name);
            }
        }
        for sub in ["public", "dist", "bin"] {
            if !f.dirs.contains(sub) {
                continue;
            }
            let p = dir.join(sub);
            for ent in std::fs::read_dir(&p).map_err(|e| io(&p, e))? {
                let ent = ent.map_err(|e| io(&p, e))?;
                let Ok(name) = ent.file_name().into_string() else {
                    continue;
                };
                let rel = format!("{sub}/{name}");
                if sub == "bin" && is_elf_executable(&ent.path()) {
                    f.executables.insert(rel.clone());
                }
                f.nested.insert(rel);
            }
        }
        for name in READ {
            if !f.files.contains(*name) {
                continue;
            }
            let p = dir.join(name);
            let mut text = String::new();
            std::fs::File::open(&p)
                .and_then(|h| h.take(MAX_FILE).read_to_string(&mut text))
                .map_err(|e| io(&p, e))?;
            f.contents.insert(name.to_string(), text);
        }
        Ok(f)
    }

    /// Whether a top-level file exists.
    pub fn has(&self, name: &str) -> bool {
        self.files.contains(name)
    }
}

fn is_elf_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Ok(m) = std::fs::metadata(p) else {
        return false;
    };
    if !m.is_file() || m.permissions().mode() & 0o111 == 0 {
        return false;
    }
    let mut magic = [0u8; 4];
    std::fs::File::open(p)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_listing_and_small_files() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("package.json"), "{}").unwrap();
        std::fs::create_dir(t.path().join("dist")).unwrap();
        std::fs::write(t.path().join("dist/index.html"), "x").unwrap();
        std::fs::create_dir(t.path().join("bin")).unwrap();
        let exe = t.path().join("bin/app");
        std::fs::write(&exe, b"\x7fELF....").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(t.path().join("notelf"), "#!/bin/sh").unwrap();
        let f = Facts::read(t.path()).unwrap();
        assert!(f.has("package.json") && f.dirs.contains("dist"));
        assert!(f.nested.contains("dist/index.html"));
        assert_eq!(f.executables.iter().collect::<Vec<_>>(), ["bin/app"]);
        assert_eq!(f.contents["package.json"], "{}");
    }
}
