//! A scratch directory that notices writes outside the root it hands out.
//!
//! ```text
//! <tmp>/hoist-fuzz-XXXX/      the jail
//!   root/                     what the code under test writes into (or a name it creates)
//!   sentinel                  a file: must keep its content, mode and link count
//!   empty/                    a directory: must stay empty
//! ```
//!
//! A write that escapes the root by one `..` (a name, a symlink, a hard link) lands
//! beside the sentinel; [`Jail::check`] then panics. [`snapshot`] describes a tree
//! without following links or opening anything but regular files, so two appliers
//! can be compared.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

const SENTINEL: &[u8] = b"sentinel: must not change\n";

/// See the module docs.
pub struct Jail {
    dir: Option<tempfile::TempDir>,
}

impl Default for Jail {
    fn default() -> Self {
        Jail::new()
    }
}

impl Jail {
    /// A fresh jail with an empty `root/`.
    pub fn new() -> Jail {
        let dir = tempfile::Builder::new()
            .prefix("hoist-fuzz-")
            .tempdir()
            .expect("create the jail");
        fs::create_dir(dir.path().join("root")).expect("create root/");
        fs::write(dir.path().join("sentinel"), SENTINEL).expect("write the sentinel");
        fs::set_permissions(
            dir.path().join("sentinel"),
            fs::Permissions::from_mode(0o644),
        )
        .expect("chmod the sentinel");
        fs::create_dir(dir.path().join("empty")).expect("create empty/");
        fs::set_permissions(dir.path().join("empty"), fs::Permissions::from_mode(0o755))
            .expect("chmod empty/");
        Jail { dir: Some(dir) }
    }

    /// The jail directory itself.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("jail").path()
    }

    /// `root/`, which exists.
    pub fn root(&self) -> PathBuf {
        self.dir().join("root")
    }

    /// A path beside `root/` that does not exist yet (for outputs the code under
    /// test creates itself); name it in [`Jail::check`]'s `outputs` once it may exist.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir().join(name)
    }

    /// Panic if anything beside `root/` changed: the jail must hold exactly
    /// `root`, `sentinel`, `empty` and `outputs`, the sentinel its content, mode and
    /// single link, `empty/` no entry.
    pub fn check(&self, outputs: &[&str], what: &str) {
        let mut names: Vec<String> = fs::read_dir(self.dir())
            .expect("list the jail")
            .map(|e| {
                e.expect("jail entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        let mut want: Vec<String> = ["root", "sentinel", "empty"]
            .iter()
            .chain(outputs)
            .map(|s| s.to_string())
            .collect();
        want.sort();
        assert_eq!(names, want, "{what}: entries appeared beside the root");
        let s = self.dir().join("sentinel");
        let m = fs::symlink_metadata(&s).expect("stat the sentinel");
        assert!(m.is_file(), "{what}: the sentinel was replaced");
        assert_eq!(m.nlink(), 1, "{what}: the sentinel was hard-linked");
        assert_eq!(
            m.mode() & 0o7777,
            0o644,
            "{what}: the sentinel's mode changed"
        );
        assert_eq!(
            fs::read(&s).unwrap(),
            SENTINEL,
            "{what}: the sentinel was written"
        );
        let e = self.dir().join("empty");
        let m = fs::symlink_metadata(&e).expect("stat empty/");
        assert!(m.is_dir(), "{what}: empty/ was replaced");
        assert_eq!(m.mode() & 0o7777, 0o755, "{what}: empty/'s mode changed");
        assert!(
            fs::read_dir(&e).unwrap().next().is_none(),
            "{what}: something was written into empty/"
        );
    }
}

impl Drop for Jail {
    fn drop(&mut self) {
        if let Some(d) = self.dir.take() {
            // Layers may leave directories without write or search permission: give
            // them back so an unprivileged run can remove the tree.
            make_removable(d.path());
            let _ = d.close();
        }
    }
}

fn make_removable(dir: &Path) {
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            make_removable(&e.path());
        }
    }
}

/// A description of every entry under `root` (relative path → kind, mode, owner,
/// link count, size and content or link target), links never followed.
pub fn snapshot(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    let Ok(rd) = fs::read_dir(dir) else {
        out.insert(rel(root, dir), "unreadable directory".into());
        return;
    };
    let mut entries: Vec<_> = rd.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let Ok(m) = fs::symlink_metadata(&p) else {
            continue;
        };
        let ft = m.file_type();
        let head = format!(
            "mode {:o} owner {}:{} nlink {}",
            m.mode(),
            m.uid(),
            m.gid(),
            if ft.is_dir() { 0 } else { m.nlink() }
        );
        let desc = if ft.is_dir() {
            walk(root, &p, out);
            format!("dir {head}")
        } else if ft.is_symlink() {
            format!("symlink {head} -> {:?}", fs::read_link(&p).ok())
        } else if ft.is_file() {
            let mut content = Vec::new();
            let _ = fs::File::open(&p).and_then(|mut f| f.read_to_end(&mut content));
            format!(
                "file {head} {} bytes {:?}",
                m.len(),
                hoist_image::Digest::sha256(&content)
            )
        } else {
            format!("special {head} rdev {:x}", m.rdev())
        };
        out.insert(rel(root, &p), desc);
    }
}

fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap_or(p).display().to_string()
}
