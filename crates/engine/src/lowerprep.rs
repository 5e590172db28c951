//! Lower directories that write through the symlinks of the layers below them.
//!
//! RUN stacks each layer, unpacked on its own, as an overlay lower directory. A layer
//! whose entries go through a symlink of a layer below (a usrmerge base has
//! `bin -> usr/bin`, a later layer adds `bin/x`) is applied *through* that symlink
//! when the layers are flattened (the applier resolves every parent inside the root,
//! as Docker, containerd and umoci do): `x` lands in `usr/bin`. Unpacked alone, the
//! layer would instead get a real `bin/` directory, which overlayfs shows above the
//! symlink: `/bin` loses everything but `x` (`exec /bin/sh: No such file`) and the
//! next RUN's layer records `bin` as a directory.
//!
//! So before such a layer is unpacked, the symlinks its paths go through (and the
//! directories they lead to, with the metadata the layers below give them) are
//! created in its lower directory first; the applier then resolves through them
//! exactly as when flattening. The result depends on the layers below, so that lower
//! directory is cached under the diff ID plus a digest of what was prepared.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use crate::error::{Error, Result};
use crate::fsview::{self, FsView, IndexEntry, IndexOp, Kind};

/// At most this many symlinks are followed resolving one path (as `inroot`).
const MAX_HOPS: u32 = 255;

/// What to create in a lower directory before its layer is unpacked into it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Prep {
    /// A directory reached through a symlink of a layer below, with its metadata there.
    Dir {
        /// Relative path.
        path: String,
        /// Permission bits.
        mode: u32,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
    },
    /// A symlink of a layer below that the layer's paths go through.
    Link {
        /// Relative path.
        path: String,
        /// Its target, as the layer below has it.
        target: String,
    },
}

struct Planner<'a> {
    below: &'a FsView,
    own: HashSet<&'a str>,
    out: BTreeMap<String, Prep>,
    links: usize,
}

impl Planner<'_> {
    /// Walk `path` (relative to the root or absolute) component by component as the
    /// applier would in the flattened tree, recording the symlinks of the layers below
    /// that it goes through and (`record_dirs`: inside a link's target) the directories
    /// it reaches. `last`: also resolve the last component. Returns the resolved path.
    fn walk(&mut self, path: &str, last: bool, record_dirs: bool, hops: &mut u32) -> String {
        let comps: Vec<&str> = path
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect();
        let mut cur = String::new();
        for (i, c) in comps.iter().enumerate() {
            let is_last = i + 1 == comps.len();
            if is_last && !last {
                return fsview::join(&cur, c);
            }
            if *c == ".." {
                cur = fsview::parent_of(&cur).to_string();
                continue;
            }
            let q = fsview::join(&cur, c);
            if self.own.contains(q.as_str()) {
                // The layer itself makes it: the applier uses what the layer has.
                cur = q;
                continue;
            }
            match self.below.get(&q).map(|m| (&m.kind, m)) {
                Some((Kind::Symlink(target), _)) if *hops < MAX_HOPS => {
                    *hops += 1;
                    self.links += 1;
                    self.out.insert(
                        q.clone(),
                        Prep::Link {
                            path: q.clone(),
                            target: target.clone(),
                        },
                    );
                    let next = if target.starts_with('/') {
                        target.clone()
                    } else {
                        fsview::join(&cur, target)
                    };
                    cur = self.walk(&next, true, true, hops);
                }
                Some((Kind::Dir, m)) if record_dirs => {
                    self.out.entry(q.clone()).or_insert(Prep::Dir {
                        path: q.clone(),
                        mode: m.mode,
                        uid: m.uid,
                        gid: m.gid,
                    });
                    cur = q;
                }
                _ => cur = q,
            }
        }
        cur
    }
}

/// What to create in the lower directory of a layer with entries `layer` over the
/// layers `below` (their merged view), parents first; empty when the layer's paths go
/// through no symlink of the layers below (the usual case: the lower directory is
/// then the layer alone).
pub fn plan(below: &FsView, layer: &[IndexEntry]) -> Vec<Prep> {
    if below.is_empty() {
        return Vec::new();
    }
    let mut p = Planner {
        below,
        own: layer
            .iter()
            .filter(|e| matches!(e.op, IndexOp::Put(_)))
            .map(|e| e.path.as_str())
            .collect(),
        out: BTreeMap::new(),
        links: 0,
    };
    for e in layer {
        let mut hops = 0;
        let include_last = matches!(e.op, IndexOp::Opaque);
        p.walk(&e.path, include_last, false, &mut hops);
    }
    if p.links == 0 {
        return Vec::new();
    }
    // BTreeMap order: a parent sorts before its children.
    p.out.into_values().collect()
}

/// A short digest of a plan, for the lower directory's name.
pub fn plan_id(plan: &[Prep]) -> String {
    let mut k = crate::key::KeyBuilder::new("lowerprep");
    for p in plan {
        match p {
            Prep::Dir {
                path,
                mode,
                uid,
                gid,
            } => k.str(&format!("d {path} {mode:o} {uid} {gid}")),
            Prep::Link { path, target } => k.str(&format!("l {path} {target}")),
        };
    }
    hex::encode(&k.finish()[..8])
}

/// Create `plan` in `dir` (an empty directory). Owners are set when running as root
/// (unprivileged, the directories belong to the user, root in the sandbox).
pub fn apply(dir: &Path, plan: &[Prep]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let root = hoist_sandbox::capabilities().uid == 0;
    for p in plan {
        match p {
            Prep::Dir {
                path,
                mode,
                uid,
                gid,
            } => {
                let full = dir.join(path);
                match std::fs::symlink_metadata(&full) {
                    Ok(_) => continue,
                    Err(_) => std::fs::create_dir_all(&full).map_err(|e| Error::io(&full, e))?,
                }
                // Writable by the unpacking user until the layer sets its own modes.
                std::fs::set_permissions(&full, std::fs::Permissions::from_mode(mode | 0o700))
                    .map_err(|e| Error::io(&full, e))?;
                if root {
                    std::os::unix::fs::lchown(&full, Some(*uid), Some(*gid))
                        .map_err(|e| Error::io(&full, e))?;
                }
            }
            Prep::Link { path, target } => {
                let full = dir.join(path);
                if let Some(parent) = full.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
                }
                std::os::unix::fs::symlink(target, &full).map_err(|e| Error::io(&full, e))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hoist_image::layer::{Entry, EntryKind};

    fn view(entries: &[Entry]) -> FsView {
        let mut v = FsView::new();
        v.add_layer_entries(entries);
        v
    }

    fn put(path: &str, kind: Kind) -> IndexEntry {
        IndexEntry {
            path: path.into(),
            op: IndexOp::Put(kind),
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
        }
    }

    #[test]
    fn paths_through_a_lower_symlink_get_it_and_its_target() {
        let below = view(&[
            Entry::new("usr", EntryKind::Dir, 0o755),
            Entry::new("usr/bin", EntryKind::Dir, 0o751),
            Entry::new("bin", EntryKind::Symlink("usr/bin".into()), 0o777),
        ]);
        let plan = plan(&below, &[put("bin/x", Kind::File(1))]);
        assert_eq!(
            plan,
            vec![
                Prep::Link {
                    path: "bin".into(),
                    target: "usr/bin".into()
                },
                Prep::Dir {
                    path: "usr".into(),
                    mode: 0o755,
                    uid: 0,
                    gid: 0
                },
                Prep::Dir {
                    path: "usr/bin".into(),
                    mode: 0o751,
                    uid: 0,
                    gid: 0
                },
            ]
        );
        // A layer that replaces the symlink with its own directory, or that does not go
        // through it, needs nothing.
        assert!(super::plan(
            &below,
            &[put("bin", Kind::Dir), put("bin/x", Kind::File(1))]
        )
        .is_empty());
        assert!(super::plan(&below, &[put("etc/x", Kind::File(1))]).is_empty());
        let t = tempfile::tempdir().unwrap();
        apply(t.path(), &plan).unwrap();
        assert_eq!(
            std::fs::read_link(t.path().join("bin")).unwrap(),
            Path::new("usr/bin")
        );
        assert!(t.path().join("bin/").is_dir(), "resolves to usr/bin");
        assert_ne!(plan_id(&plan), plan_id(&plan[..1]));
    }
}
