//! BuildKit's rules for what a step leaves in the image, each in one small function the
//! dispatch calls (so the engine's structure can change without losing them).
//!
//! - [`SCRATCH_WORKDIR`]: an image built `FROM scratch` starts with `WorkingDir "/"`
//!   (BuildKit's `emptyImage`).
//! - [`makes_layer`]: RUN, COPY and ADD always add a layer, even one that changes
//!   nothing; WORKDIR adds one unless it is `/` (BuildKit runs a `mkdir -p` file
//!   operation for it). Every other instruction only changes the config.
//! - [`with_existing_parents`]: a layer that writes below an existing directory also
//!   carries that directory with its current metadata, as an overlay upper directory
//!   does after a copy-up. Without it, whoever unpacks the layer alone (a RUN's lower
//!   directory) creates the parent with default metadata, and the next RUN's copy-up
//!   would turn `/tmp` 1777 into 0755.

use std::collections::BTreeSet;
use std::path::PathBuf;

use hoist_dockerfile::InstructionKind;
use hoist_image::layer::{path_order, Entry, EntryKind};

use crate::fsview::{self, FsView, Kind};

/// The working directory of a `FROM scratch` image.
pub const SCRATCH_WORKDIR: &str = "/";

/// Whether the instruction adds a layer to the image (an empty one if nothing
/// changed). `workdir` is the normalized WORKDIR for a WORKDIR instruction.
pub fn makes_layer(kind: &InstructionKind, workdir: &str) -> bool {
    match kind {
        InstructionKind::Run { .. }
        | InstructionKind::Copy { .. }
        | InstructionKind::Add { .. } => true,
        InstructionKind::Workdir { .. } => workdir != "/",
        _ => false,
    }
}

/// `entries` (sorted parents first, paths resolved) plus an entry for every existing
/// directory of `view` that is a parent of an entry and not itself in `entries`, with
/// its metadata as the view has it. The result is sorted parents first.
pub fn with_existing_parents(mut entries: Vec<Entry>, view: &FsView) -> Vec<Entry> {
    let added = existing_parents(&entries, view);
    if added.is_empty() {
        return entries;
    }
    entries.extend(added);
    entries.sort_by(|a, b| path_order(&a.path, &b.path));
    entries
}

/// Only the directories [`with_existing_parents`] adds, sorted in layer order.
pub fn existing_parents(entries: &[Entry], view: &FsView) -> Vec<Entry> {
    let present: BTreeSet<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    let mut parents: BTreeSet<String> = BTreeSet::new();
    for e in entries {
        let mut p = fsview::parent_of(&e.path);
        while !p.is_empty() && !present.contains(p) && parents.insert(p.to_string()) {
            p = fsview::parent_of(p);
        }
    }
    let mut added = Vec::new();
    for p in parents {
        let Some(m) = view.get(&p) else { continue };
        if m.kind != Kind::Dir {
            continue;
        }
        let mut d = Entry::new(p, EntryKind::Dir, m.mode);
        d.uid = m.uid;
        d.gid = m.gid;
        d.mtime = m.mtime;
        added.push(d);
    }
    added.sort_by(|a, b| path_order(&a.path, &b.path));
    added
}

/// Whether `entries` are in layer order ([`path_order`]).
pub fn is_sorted(entries: &[Entry]) -> bool {
    entries
        .windows(2)
        .all(|w| path_order(&w[0].path, &w[1].path) != std::cmp::Ordering::Greater)
}

/// `entries` and the `added` parents ([`existing_parents`]) in the order of
/// `with_existing_parents(entries.to_vec(), view)`, without copying `entries`: a COPY
/// of 100,000 files keeps one list of entries in memory, not two. `entries` must be
/// sorted ([`is_sorted`]) unless `added` is empty.
pub fn merged<'a>(entries: &'a [Entry], added: &'a [Entry]) -> impl Iterator<Item = &'a Entry> {
    Merge {
        a: entries,
        b: added,
    }
}

/// Two sorted lists merged, `a` first on ties (what a stable sort of `a ++ b` gives).
struct Merge<'a> {
    a: &'a [Entry],
    b: &'a [Entry],
}

impl<'a> Iterator for Merge<'a> {
    type Item = &'a Entry;
    fn next(&mut self) -> Option<&'a Entry> {
        let take_a = match (self.a.first(), self.b.first()) {
            (None, None) => return None,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(x), Some(y)) => path_order(&x.path, &y.path) != std::cmp::Ordering::Greater,
        };
        let side = if take_a { &mut self.a } else { &mut self.b };
        let (first, rest) = side.split_first()?;
        *side = rest;
        Some(first)
    }
}

/// Lower directories (bottom first) without repeats: layers with the same diff ID (every
/// empty layer) share one directory, which overlayfs refuses to stack twice. Only the
/// topmost copy is kept; a lower copy of an identical layer is shadowed by it anyway.
pub fn dedup_lowers(dirs: Vec<PathBuf>) -> Vec<PathBuf> {
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<PathBuf> = dirs
        .into_iter()
        .rev()
        .filter(|d| seen.insert(d.clone()))
        .collect();
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn repeated_lowers_keep_the_top_copy() {
        let p = |s: &str| std::path::PathBuf::from(s);
        assert_eq!(
            super::dedup_lowers(vec![p("e"), p("a"), p("e"), p("b"), p("e")]),
            vec![p("a"), p("b"), p("e")]
        );
    }

    use super::*;

    fn view_with(entries: &[Entry]) -> FsView {
        let mut v = FsView::new();
        v.add_layer_entries(entries);
        v
    }

    #[test]
    fn existing_parents_keep_their_metadata() {
        let mut tmp = Entry::new("tmp", EntryKind::Dir, 0o1777);
        tmp.uid = 0;
        let mut home = Entry::new("home/app", EntryKind::Dir, 0o700);
        home.uid = 1000;
        home.gid = 1000;
        let view = view_with(&[tmp, Entry::dir("home"), home]);
        let out = with_existing_parents(
            vec![
                Entry::file_bytes("tmp/x", "x"),
                Entry::new("home/app/new", EntryKind::Dir, 0o755),
                Entry::file_bytes("home/app/new/f", "f"),
            ],
            &view,
        );
        let got: Vec<(String, u32, u32)> = out
            .iter()
            .map(|e| (e.path.clone(), e.mode, e.uid))
            .collect();
        assert_eq!(
            got,
            vec![
                ("home".into(), 0o755, 0),
                ("home/app".into(), 0o700, 1000),
                ("home/app/new".into(), 0o755, 0),
                ("home/app/new/f".into(), 0o644, 0),
                ("tmp".into(), 0o1777, 0),
                ("tmp/x".into(), 0o644, 0),
            ]
        );
    }

    #[test]
    fn merged_entries_equal_the_sorted_copy_without_copying() {
        let mut tmp = Entry::new("tmp", EntryKind::Dir, 0o1777);
        tmp.uid = 7;
        let view = view_with(&[tmp, Entry::dir("home"), Entry::dir("home/app")]);
        let entries = vec![
            Entry::new("home/app/new", EntryKind::Dir, 0o755),
            Entry::file_bytes("home/app/new/f", "f"),
            Entry::file_bytes("home/app/new/f", "g"),
            Entry::file_bytes("home/b", "b"),
            Entry::file_bytes("tmp/x", "x"),
        ];
        assert!(is_sorted(&entries));
        let added = existing_parents(&entries, &view);
        assert_eq!(added.len(), 3);
        let merged: Vec<Entry> = merged(&entries, &added).cloned().collect();
        assert_eq!(merged, with_existing_parents(entries.clone(), &view));
        // Nothing to add: the entries themselves, in their order.
        let unsorted = vec![Entry::file_bytes("b", ""), Entry::file_bytes("a", "")];
        assert!(!is_sorted(&unsorted));
        assert!(existing_parents(&unsorted, &view).is_empty());
        assert_eq!(with_existing_parents(unsorted.clone(), &view), unsorted);
    }

    #[test]
    fn parents_the_layer_creates_are_not_duplicated() {
        let out = with_existing_parents(
            vec![
                Entry::new("a", EntryKind::Dir, 0o700),
                Entry::file_bytes("a/f", ""),
            ],
            &FsView::new(),
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].mode, 0o700);
    }

    #[test]
    fn which_steps_make_layers() {
        let run = hoist_dockerfile::parse_instruction("RUN true").unwrap();
        let env = hoist_dockerfile::parse_instruction("ENV A=b").unwrap();
        let wd = hoist_dockerfile::parse_instruction("WORKDIR /").unwrap();
        assert!(makes_layer(&run.kind, "/"));
        assert!(!makes_layer(&env.kind, "/"));
        assert!(!makes_layer(&wd.kind, "/"));
        assert!(makes_layer(&wd.kind, "/app"));
    }
}
