//! Step keys: the one place where the identity of a step's result is derived.
//!
//! A step's key is a digest of everything that can change the bytes it produces, and of
//! nothing else:
//!
//! ```text
//!   base key ──────────────┐   scratch: H(platform) · image: H(manifest digest)
//!                          ▼   · stage: that stage's last key
//!   step 1 key = H( "step/v2", parent key,
//!                   expanded instruction (canonical JSON: flags, sources, heredoc bodies,
//!                                         mounts; secrets by id, never by value),
//!                   settings (target platform, SOURCE_DATE_EPOCH / mtime rule),
//!                   inputs:  COPY/ADD/WORKDIR → the planned layer entries: path, mode,
//!                                              owner, mtime, and file CONTENT (BLAKE3)
//!                            RUN → argv, env it sees (ENV + ARGs), cwd, uid/gid/groups,
//!                                  network, hosts, mount sources by CONTENT )
//!                          ▼
//!   step 2 key = H( …, step 1 key, … )          …and so on to the stage's last key.
//! ```
//!
//! What is *not* in a key: compression (a cached diff is compressed per output, see
//! [`crate::variants`]), outputs, progress, cache mount contents (cache mounts are not
//! inputs), secret values, the Dockerfile's line numbers and comments.
//!
//! Every step family goes through [`step_key`]; no handler builds a key of its own.

use std::path::Path;

use hoist_image::layer::{Entry, EntryKind, FileSource};
use serde::Serialize;

use crate::cache::FileHasher;
use crate::error::{Error, Result};

/// A cache key (BLAKE3).
pub type Key = [u8; 32];

/// Fold parts into a key.
pub struct KeyBuilder(blake3::Hasher);

impl KeyBuilder {
    /// Start a key of a kind (`step/v2`, …).
    pub fn new(kind: &str) -> KeyBuilder {
        let mut h = blake3::Hasher::new();
        h.update(kind.as_bytes());
        h.update(&[0]);
        KeyBuilder(h)
    }
    /// Add bytes (length-prefixed, so parts never run together).
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.update(&(b.len() as u64).to_le_bytes());
        self.0.update(b);
        self
    }
    /// Add a string.
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }
    /// Add a number.
    pub fn num(&mut self, n: i64) -> &mut Self {
        self.0.update(&n.to_le_bytes());
        self
    }
    /// Add a serialisable value (as canonical JSON).
    pub fn json<T: Serialize>(&mut self, v: &T) -> &mut Self {
        let b = hoist_image::to_canonical_json(v);
        self.bytes(&b)
    }
    /// Finish.
    pub fn finish(&self) -> Key {
        *self.0.finalize().as_bytes()
    }
}

/// The build settings that change the bytes of a step's result.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Settings {
    /// The platform the stage is built for.
    pub platform: String,
    /// `SOURCE_DATE_EPOCH`: file times of new layers are clamped to it (0 without it).
    pub epoch: Option<i64>,
}

/// What a step reads besides its parent's result and its own instruction.
pub enum Input<'a> {
    /// Planned layer entries (COPY, ADD, WORKDIR, heredocs): metadata and file contents.
    Entries(&'a [Entry]),
    /// A described value (RUN's process: argv, env, identity, network; a mount's options).
    Value(&'a str, serde_json::Value),
    /// A directory tree read by the step (bind mount sources), by content.
    Tree(&'a Path),
}

/// The key of a step: its parent's key, its expanded instruction, the build settings,
/// and the content of every input. See the module docs for the full derivation.
pub fn step_key<I: Serialize + ?Sized>(
    parent: &Key,
    instruction: &I,
    settings: &Settings,
    inputs: &[Input<'_>],
    hasher: &FileHasher,
) -> Result<Key> {
    let mut k = KeyBuilder::new("step/v2");
    k.bytes(parent).json(&instruction).json(settings);
    k.num(inputs.len() as i64);
    for input in inputs {
        match input {
            Input::Entries(entries) => {
                k.str("entries");
                key_entries(&mut k, entries, hasher)?;
            }
            Input::Value(what, v) => {
                k.str("value").str(what).json(v);
            }
            Input::Tree(path) => {
                k.str("tree");
                key_tree(&mut k, path, hasher)?;
            }
        }
    }
    Ok(k.finish())
}

/// The key a stage starts from when its base is `scratch`.
pub fn scratch_key(platform: &str) -> Key {
    KeyBuilder::new("scratch/v1").str(platform).finish()
}

/// The key a stage starts from when its base is an image (by manifest digest, which
/// names its config and every layer by content).
pub fn image_key(manifest_digest: &str) -> Key {
    KeyBuilder::new("image/v1").str(manifest_digest).finish()
}

/// Fold a list of layer entries (metadata and content) into a key.
pub fn key_entries(k: &mut KeyBuilder, entries: &[Entry], hasher: &FileHasher) -> Result<()> {
    k.num(entries.len() as i64);
    for e in entries {
        k.str(&e.path)
            .num(e.mode as i64)
            .num(e.uid as i64)
            .num(e.gid as i64)
            .num(e.mtime);
        k.num(e.xattrs.len() as i64);
        for (n, v) in &e.xattrs {
            k.str(n).bytes(v);
        }
        match &e.kind {
            EntryKind::File { source, size } => {
                k.str("f").num(*size as i64);
                match source {
                    FileSource::Path(p) => k.bytes(&hasher.hash(p)?),
                    FileSource::Bytes(b) => k.bytes(b),
                };
            }
            EntryKind::Dir => {
                k.str("d");
            }
            EntryKind::Symlink(t) => {
                k.str("l").str(t);
            }
            EntryKind::Hardlink(t) => {
                k.str("h").str(t);
            }
            EntryKind::CharDevice { major, minor } => {
                k.str("c").num(*major as i64).num(*minor as i64);
            }
            EntryKind::BlockDevice { major, minor } => {
                k.str("b").num(*major as i64).num(*minor as i64);
            }
            EntryKind::Fifo => {
                k.str("p");
            }
        }
    }
    Ok(())
}

/// Fold a directory tree (names, kinds, modes, owners, contents) into a key.
pub fn key_tree(k: &mut KeyBuilder, path: &Path, hasher: &FileHasher) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let md = std::fs::symlink_metadata(path).map_err(|e| Error::io(path, e))?;
    k.num((md.permissions().mode() & 0o7777) as i64)
        .num(md.uid() as i64)
        .num(md.gid() as i64);
    if md.is_symlink() {
        let t = std::fs::read_link(path).map_err(|e| Error::io(path, e))?;
        k.str("l").str(&t.to_string_lossy());
    } else if md.is_dir() {
        let mut names = Vec::new();
        for e in std::fs::read_dir(path).map_err(|e| Error::io(path, e))? {
            names.push(e.map_err(|e| Error::io(path, e))?.file_name());
        }
        names.sort();
        k.str("d").num(names.len() as i64);
        for n in names {
            k.str(&n.to_string_lossy());
            key_tree(k, &path.join(&n), hasher)?;
        }
    } else if md.is_file() {
        k.str("f").bytes(&hasher.hash(path)?);
    } else {
        k.str("s").num(md.rdev() as i64);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            platform: "linux/amd64".into(),
            epoch: None,
        }
    }

    #[test]
    fn every_part_changes_the_key() {
        let h = FileHasher::load(None);
        let p = [1u8; 32];
        let e = vec![Entry::file_bytes("a", "x")];
        let base = step_key(&p, "COPY a /", &settings(), &[Input::Entries(&e)], &h).unwrap();
        let same = step_key(&p, "COPY a /", &settings(), &[Input::Entries(&e)], &h).unwrap();
        assert_eq!(base, same);
        let other_parent = step_key(
            &[2u8; 32],
            "COPY a /",
            &settings(),
            &[Input::Entries(&e)],
            &h,
        )
        .unwrap();
        assert_ne!(base, other_parent);
        let other_instr = step_key(&p, "COPY b /", &settings(), &[Input::Entries(&e)], &h).unwrap();
        assert_ne!(base, other_instr);
        let mut s = settings();
        s.epoch = Some(1);
        let other_epoch = step_key(&p, "COPY a /", &s, &[Input::Entries(&e)], &h).unwrap();
        assert_ne!(base, other_epoch);
        let e2 = vec![Entry::file_bytes("a", "y")];
        let other_content =
            step_key(&p, "COPY a /", &settings(), &[Input::Entries(&e2)], &h).unwrap();
        assert_ne!(base, other_content);
        let mut e3 = e.clone();
        e3[0].mode = 0o600;
        let other_mode = step_key(&p, "COPY a /", &settings(), &[Input::Entries(&e3)], &h).unwrap();
        assert_ne!(base, other_mode);
    }
}
