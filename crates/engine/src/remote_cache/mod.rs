//! A build cache shared across machines through a registry or a directory
//! (`--cache-to` / `--cache-from`, BuildKit's syntax; see `docs/cache.md`).
//!
//! ```text
//!   machine A                            registry                      machine B
//!   build ── steps' keys + results ──►  REPO:cache (artifact)  ──►  lookup by key
//!          (export after the image)      manifest + config          (manifest + config
//!                                        + layer blobs + file lists   up front; blobs
//!                                                                     when needed)
//! ```
//!
//! - [`spec`]: the flags. [`format`]: the artifact. [`import`](self::import): reading a ref.
//! - [`Session`]: one build's imports (lookups, lazy verified blob fetches) and the
//!   record of the steps it ran or reused; [`write`]: exports.
//!
//! Import is lazy: a step found in an imported cache takes its layer's descriptor and
//! file list (a small blob) and nothing else; the layer blob is fetched when a later
//! step that misses needs the files (RUN, COPY --from, a name lookup), when an output
//! writes the image's bytes, or never: `--push` to the same registry mounts it across
//! repositories. `COPY --from` a stage whose result came from the cache is found by an
//! alias (parent key, instruction, the source stage's key), so it needs no files of the
//! source stage either.

pub mod format;
pub(crate) mod import;
pub mod session;
pub mod spec;
pub mod write;

use std::sync::Arc;

use serde::Serialize;

pub use session::Session;
pub use spec::{CacheExport, CacheImport, ExportTarget, ImportSource, Mode};

use crate::engine::Engine;
use crate::error::Result;
use crate::export::Pusher;
use crate::key::{Key, KeyBuilder, Settings};
use crate::layers::LayerRef;
use crate::progress::Event;
use crate::stage::StageState;

/// The alias of a `COPY --from` step: its parent key, its instruction, the settings and
/// the key of the stage (or image) it copies from. The source's key names the source's
/// content, so the alias names the copy's result as well as its content key does, and
/// can be looked up without the source's files.
pub(crate) fn alias_key<I: Serialize + ?Sized>(
    parent: &Key,
    instruction: &I,
    settings: &Settings,
    source: &Key,
) -> Key {
    KeyBuilder::new("copy-from-alias/v1")
        .bytes(parent)
        .json(&instruction)
        .json(settings)
        .bytes(source)
        .finish()
}

/// Apply the imported result of `key` to `state`, if an imported cache has it:
/// `Some(made_a_layer)`. Only the layer's file list is fetched. A result that cannot be
/// used (its file list fails verification) is a warning and a miss.
pub(crate) fn apply_hit(
    eng: &Engine<'_>,
    session: &Session,
    state: &mut StageState,
    key: &Key,
) -> Result<Option<bool>> {
    let Some((i, step)) = session.lookup(key) else {
        return Ok(None);
    };
    let parent = state.key;
    let (Some(desc), Some(diff_id)) = (step.layer.clone(), step.diff_id.clone()) else {
        session.record(parent, *key, Some(None));
        session.hit();
        state.key = *key;
        return Ok(Some(false));
    };
    let layer = LayerRef::built(desc.clone(), diff_id.clone());
    session.note_lazy(i, &desc);
    let index = match &step.index {
        Some(idx) => match session.index_of(i, idx) {
            Ok(v) => v,
            Err(e) => {
                eng.progress.event(Event::Warning(&format!(
                    "--cache-from {}: {}; running the step",
                    session.imports[i].spec,
                    hoist_image::chain_text(&e)
                )));
                return Ok(None);
            }
        },
        // Inline caches carry no file lists: the layer itself is read.
        None => {
            session.ensure(&desc)?;
            crate::layers::layer_index(&eng.store, &layer, &eng.index_dir)?
        }
    };
    crate::layers::save_layer_index(&eng.index_dir, &diff_id, &index);
    state.view.add_layer_index(&index);
    eng.push_layer(state, layer.clone());
    // A local record too: once the blob is fetched, later builds hit locally.
    eng.cache.put(
        key,
        &crate::cache::CachedStep {
            layer: Some(desc),
            diff_id: Some(diff_id),
        },
    );
    session.record_with(parent, *key, Some(Some(layer)), step.index.clone());
    session.hit();
    state.key = *key;
    Ok(Some(true))
}

/// The position of the layer that holds the file at `path` (symlinks followed, hard
/// links to their target), if the view has one.
pub(crate) fn layer_of(view: &crate::fsview::FsView, path: &str) -> Option<usize> {
    use crate::fsview::Kind;
    let real = view.resolve(path, true).ok()?;
    let meta = view.get(&real)?;
    match &meta.kind {
        Kind::File(_) => Some(meta.layer),
        Kind::Hardlink(t) => view.get(t).map(|m| m.layer),
        _ => None,
    }
}

/// The inline cache of the final stage (mode=min): its steps, layers named by their
/// position in the image, for the image config's [`format::INLINE_CONFIG_KEY`].
pub(crate) fn inline_config(
    session: &Session,
    final_key: &Key,
    layers: &[LayerRef],
    enc: crate::variants::Encoding,
) -> serde_json::Value {
    let seen = session.seen.lock().expect("poisoned").clone();
    let chosen = write::select(&seen, std::slice::from_ref(final_key), Mode::Min);
    let mut config = format::CacheConfig {
        version: 1,
        ..Default::default()
    };
    for (k, s) in &chosen {
        let mut e = format::StepEntry::default();
        if let Some(Some(l)) = &s.result {
            let Some(pos) = layers
                .iter()
                .position(|x| !x.from_base && x.diff_id == l.diff_id)
            else {
                continue;
            };
            e.layer = Some(pos);
            e.diff_id = Some(l.diff_id.to_string());
            e.level = Some(enc.effective_level());
        }
        config.steps.insert(hex::encode(k), e);
    }
    serde_json::to_value(&config).unwrap_or_default()
}

/// Whether a build with `session` writes an inline cache.
pub(crate) fn wants_inline(session: Option<&Arc<Session>>) -> bool {
    session.is_some_and(|s| s.exports.iter().any(|e| e.target == ExportTarget::Inline))
}

/// Pushes an image whose cached layers may still be in the imported caches: the push
/// mounts them from the caches' repositories (same registry) and fetches only what it
/// must upload.
pub(crate) struct LazyPusher<'a> {
    /// The pusher that talks to the registry.
    pub inner: &'a dyn Pusher,
    /// The build's caches.
    pub session: &'a Session,
}

impl Pusher for LazyPusher<'_> {
    fn push(&self, src: &dyn hoist_image::Source, names: &[String]) -> Result<()> {
        let lazy = session::LazySource {
            inner: src,
            session: self.session,
        };
        self.inner
            .push_mounting(&lazy, names, &self.session.mount_sources())
    }
}
