//! The engine's shared context: what every step of a build may use, safe to share
//! between the executor's threads.
//!
//! The build itself is three parts, each in its own module:
//! [`crate::plan`] turns the Dockerfile into a graph of stages and steps before anything
//! runs, [`crate::schedule`] runs the needed stages in parallel (bounded by `--jobs`),
//! and [`crate::execute`] runs one stage's steps through the instruction handlers in
//! [`crate::steps`], looking each step up in the step cache by its key
//! ([`crate::key`]). [`crate::assemble`] makes the image of the target stage.
//!
//! Every blob (base layers, new layers, configs, manifests) lives in the
//! content-addressed store under hoist's cache directory; a built image is a root
//! manifest over that store, which every sink (layout, archives, registry) can read.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hoist_image::layer::{write_layer_blob, Entry, MtimePolicy, Ownership, WriteOptions};
use hoist_image::{BlobStore, Digest, Platform, Source};

use crate::copy::MtimeRule;
use crate::error::{Error, Result};
use crate::key::{Key, Settings};
use crate::layers::{self, LayerRef};
use crate::options::BuildOptions;
use crate::progress::{Event, Progress};
use crate::stage::StageState;
pub use crate::stage::DEFAULT_PATH_ENV;
use crate::tree::LocalContext;
use crate::user;
use crate::variants::Encoding;

pub use crate::assemble::{Built, BuiltImage};

/// Resolves image references that are not stages (registries, local layouts, archives)
/// to a [`Source`]. The engine imports what it needs into its store.
pub trait BaseResolver: Send + Sync {
    /// Open `reference` (e.g. `docker.io/library/busybox:latest`, `oci:dir:tag`).
    fn open(&self, reference: &str, platform: &Platform) -> Result<Box<dyn Source>>;

    /// A layer of the image being built is in `store` (called as each step of the
    /// target's image makes one; see [`crate::early_push`]). Default: nothing.
    fn layer_ready(&self, store: &BlobStore, desc: &hoist_image::Descriptor) {
        let _ = (store, desc);
    }
}

/// Format seconds since the epoch as RFC 3339 (UTC): the image crate's formatter.
pub use hoist_image::mutate::rfc3339;

/// An image imported into the store: its config and layers (metadata view included).
type Imported = Arc<StageState>;

/// An image whose manifest and config were fetched.
pub(crate) struct Resolved {
    src: Box<dyn Source>,
    img: hoist_image::ResolvedImage,
}

/// A value computed once, or the error computing it gave.
type OnceCell<T> = Arc<std::sync::OnceLock<std::result::Result<Arc<T>, String>>>;

/// Values computed once per key, concurrent callers of a key waiting for the first.
struct OnceMap<T> {
    map: Mutex<HashMap<String, OnceCell<T>>>,
}

impl<T> Default for OnceMap<T> {
    fn default() -> Self {
        OnceMap {
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> OnceMap<T> {
    /// The values computed successfully so far, with their keys.
    fn done(&self) -> Vec<(String, Arc<T>)> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.iter()
            .filter_map(|(k, c)| match c.get() {
                Some(Ok(v)) => Some((k.clone(), v.clone())),
                _ => None,
            })
            .collect()
    }

    fn get(&self, key: &str, make: impl FnOnce() -> Result<Arc<T>>) -> Result<Arc<T>> {
        let cell = {
            let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(key.to_string()).or_default().clone()
        };
        cell.get_or_init(|| make().map_err(|e| e.to_string()))
            .clone()
            .map_err(Error::Invalid)
    }
}

/// Files read from layers, by (layer diff ID, path in the layer); `None`: not a file.
type UserFiles = HashMap<(Digest, String), Option<Vec<u8>>>;

/// The shared context of one build for one platform.
pub(crate) struct Engine<'a> {
    pub opts: &'a BuildOptions,
    pub progress: &'a dyn Progress,
    pub resolver: &'a dyn BaseResolver,
    pub context: LocalContext,
    pub store: BlobStore,
    pub scratch: PathBuf,
    pub created: String,
    pub epoch: Option<i64>,
    /// How new layers are written (the first output's compression).
    pub encoding: Encoding,
    /// Images resolved (manifest and config fetched) so far, by `reference@platform`.
    resolved: OnceMap<Resolved>,
    /// Images imported (layers in the store) so far, by `reference@platform`.
    images: OnceMap<StageState>,
    /// The step cache.
    pub(crate) cache: crate::cache::StepCache,
    /// Content hashes of context files (with a stat cache).
    pub(crate) hasher: crate::cache::FileHasher,
    /// Where layer metadata indexes are cached.
    pub(crate) index_dir: PathBuf,
    /// The RUN sandbox, started by the first RUN.
    pub(crate) sandbox:
        Arc<std::sync::OnceLock<std::result::Result<hoist_sandbox::Sandbox, String>>>,
    /// `--cache-from` / `--cache-to` of the build, if any.
    pub(crate) remote: Option<Arc<crate::remote_cache::Session>>,
    /// `/etc/passwd` and `/etc/group` as read from layers, by (layer diff ID, path in
    /// it): every RUN resolves its user, and a layer's files never change, so the
    /// layer holding them is decompressed once per build instead of once per step.
    pub(crate) user_files: Mutex<UserFiles>,
}

impl<'a> Engine<'a> {
    pub fn new(
        opts: &'a BuildOptions,
        progress: &'a dyn Progress,
        resolver: &'a dyn BaseResolver,
        context: LocalContext,
        store: BlobStore,
        scratch: PathBuf,
    ) -> Result<Engine<'a>> {
        let epoch = opts.source_date_epoch;
        let ctx_id = crate::key::KeyBuilder::new("ctx")
            .str(
                &std::path::absolute(&opts.context)
                    .unwrap_or_else(|_| opts.context.clone())
                    .to_string_lossy(),
            )
            .finish();
        Ok(Engine {
            opts,
            progress,
            resolver,
            context,
            store,
            scratch,
            created: rfc3339(epoch.unwrap_or(0)),
            epoch,
            encoding: Encoding::primary(&opts.outputs),
            resolved: OnceMap::default(),
            images: OnceMap::default(),
            cache: crate::cache::StepCache::new(opts.cache_dir.join("steps"), !opts.no_cache),
            hasher: crate::cache::FileHasher::load(Some(
                opts.cache_dir.join("filehash").join(hex::encode(ctx_id)),
            )),
            index_dir: opts.cache_dir.join("index"),
            sandbox: Arc::new(std::sync::OnceLock::new()),
            remote: None,
            user_files: Mutex::default(),
        })
    }

    /// The settings that enter every step key of a stage built for `platform`.
    pub fn settings(&self, platform: &Platform) -> Settings {
        Settings {
            platform: platform.to_string(),
            epoch: self.epoch,
        }
    }

    pub(crate) fn mtime_rule(&self) -> MtimeRule {
        match self.epoch {
            Some(e) => MtimeRule::Clamp(e),
            None => MtimeRule::Fixed(0),
        }
    }

    /// How new layers are written: the primary encoding, file times as planned.
    pub(crate) fn write_options(&self) -> WriteOptions {
        WriteOptions {
            compression: self.encoding.compression,
            level: self.encoding.level,
            threads: 0,
            source_date_epoch: self.epoch,
            mtime: MtimePolicy::Preserve,
            ownership: Ownership::Preserve,
            mode_override: None,
            overlay_upper: false,
        }
    }

    /// Write entries as a new layer on `state` (an empty one too: BuildKit keeps a layer
    /// for every COPY/ADD/WORKDIR, see [`crate::compat`]); the entries get the existing
    /// directories above them, with their current metadata.
    pub(crate) fn add_layer(&self, state: &mut StageState, entries: &[Entry]) -> Result<bool> {
        let added = crate::compat::existing_parents(entries, &state.view);
        // Every planner's output is sorted: the parents are merged in lazily, without a
        // second copy of the entries (memory stays flat on a COPY of 100,000 files).
        let sorted_copy;
        let entries = if added.is_empty() || crate::compat::is_sorted(entries) {
            entries
        } else {
            sorted_copy = {
                let mut v = entries.to_vec();
                hoist_image::layer::sort_entries(&mut v);
                v
            };
            &sorted_copy[..]
        };
        let all = || crate::compat::merged(entries, &added);
        let opts = self.write_options();
        let d = write_layer_blob(self.store.root(), all().cloned(), &opts)?;
        let layer = LayerRef::built(d.descriptor(), d.diff_id.clone());
        crate::variants::record(&self.opts.cache_dir, &layer, &self.encoding);
        state.view.add_layer_entries(all());
        self.push_layer(state, layer);
        Ok(true)
    }

    /// Put a layer on top of `state`.
    pub(crate) fn push_layer(&self, state: &mut StageState, layer: LayerRef) {
        state.config.rootfs.diff_ids.push(layer.diff_id.clone());
        state.layers.push(layer);
        state.rootfs = None;
    }

    /// Apply the cached result of step `key`, if there is one: `Some(made_a_layer)`.
    pub(crate) fn cache_hit(&self, state: &mut StageState, key: &Key) -> Result<Option<bool>> {
        let Some(hit) = self.cache.get(key, &self.store) else {
            return match &self.remote {
                Some(r) if !self.opts.no_cache => {
                    crate::remote_cache::apply_hit(self, r, state, key)
                }
                _ => Ok(None),
            };
        };
        let parent = state.key;
        state.key = *key;
        match (hit.layer, hit.diff_id) {
            (Some(desc), Some(diff_id)) => {
                crate::gc::touch_blob(&self.store, &desc.digest);
                let l = LayerRef::built(desc, diff_id);
                let index = layers::layer_index(&self.store, &l, &self.index_dir)?;
                state.view.add_layer_index(&index);
                self.push_layer(state, l.clone());
                self.record_step(parent, *key, Some(Some(l)));
                Ok(Some(true))
            }
            _ => {
                self.record_step(parent, *key, Some(None));
                Ok(Some(false))
            }
        }
    }

    /// Tell the remote cache session (if any) what a step did: see
    /// [`crate::remote_cache::Session::record`].
    pub(crate) fn record_step(&self, parent: Key, key: Key, result: Option<Option<LayerRef>>) {
        if let Some(r) = &self.remote {
            r.record(parent, key, result);
        }
    }

    /// Fetch the blobs of `layers` that are still only in an imported cache.
    pub(crate) fn fetch_layers(&self, layers: &[LayerRef]) -> Result<()> {
        if let Some(r) = &self.remote {
            for l in layers {
                r.ensure(&l.desc)?;
            }
        }
        Ok(())
    }

    /// Record a step's result (the layer it just put on `state`, if `made_layer`) under
    /// its key, and make the key the state's.
    pub(crate) fn cache_put(&self, state: &mut StageState, key: &Key, made_layer: bool) {
        let l = made_layer.then(|| state.layers.last().cloned()).flatten();
        let step = crate::cache::CachedStep {
            layer: l.as_ref().map(|l| l.desc.clone()),
            diff_id: l.map(|l| l.diff_id),
        };
        self.cache.put(key, &step);
        self.record_step(state.key, *key, Some(l_ref(state, made_layer)));
        state.key = *key;
    }

    /// A layer step (COPY, ADD, WORKDIR): the key over the planned entries, then the
    /// cached result or a new layer. Returns `(made_a_layer, cached)`.
    pub(crate) fn layer_step<I: serde::Serialize + ?Sized>(
        &self,
        state: &mut StageState,
        instruction: &I,
        entries: &[Entry],
    ) -> Result<(bool, bool)> {
        let platform = state.config.platform();
        let key = crate::key::step_key(
            &state.key,
            instruction,
            &self.settings(&platform),
            &[crate::key::Input::Entries(entries)],
            &self.hasher,
        )?;
        if let Some(made) = self.cache_hit(state, &key)? {
            return Ok((made, true));
        }
        let made = self.add_layer(state, entries)?;
        self.cache_put(state, &key, made);
        Ok((made, false))
    }

    pub(crate) fn passwd_group(
        &self,
        state: &StageState,
    ) -> Result<(Vec<user::PasswdEntry>, Vec<user::GroupEntry>)> {
        let read = |p: &str| -> Result<String> {
            // Only the layer holding the file is needed (it may still be remote).
            if let Some(l) =
                crate::remote_cache::layer_of(&state.view, p).and_then(|i| state.layers.get(i))
            {
                self.fetch_layers(std::slice::from_ref(l))?;
            }
            let Some((target, i)) = layers::locate_image_file(&state.view, p)? else {
                return Ok(String::new());
            };
            let Some(l) = state.layers.get(i) else {
                return Ok(String::new());
            };
            let id = (l.diff_id.clone(), target);
            let cached = self
                .user_files
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&id)
                .cloned();
            let bytes = match cached {
                Some(b) => b,
                None => {
                    let b = layers::read_image_file(&self.store, &state.layers, &state.view, p)?;
                    self.user_files
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(id, b.clone());
                    b
                }
            };
            Ok(bytes
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default())
        };
        Ok((
            user::parse_passwd(&read("etc/passwd")?),
            user::parse_group(&read("etc/group")?),
        ))
    }

    pub(crate) fn chown_ids(
        &self,
        state: &StageState,
        spec: Option<&str>,
    ) -> Result<Option<(u32, u32)>> {
        let Some(spec) = spec.filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        // Ids need no lookup; names are resolved as BuildKit does (unknown: root).
        let (p, g) = if user::chown_needs_lookup(spec) {
            self.passwd_group(state)?
        } else {
            (Vec::new(), Vec::new())
        };
        Ok(Some(user::resolve_chown(spec, &p, &g)))
    }

    /// Unpack a stage's filesystem (cached by chain ID) and return its directory.
    pub(crate) fn rootfs_of(&self, state: &StageState) -> Result<PathBuf> {
        let diff_ids: Vec<Digest> = state.layers.iter().map(|l| l.diff_id.clone()).collect();
        let dir = match layers::chain_id(&diff_ids) {
            Some(c) => self.opts.cache_dir.join("rootfs").join(c.hex()),
            None => {
                let d = self.scratch.join("empty-rootfs");
                std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
                return Ok(d);
            }
        };
        if !dir.is_dir() {
            self.fetch_layers(&state.layers)?;
        }
        layers::materialize(&self.store, &state.layers, &dir)?;
        crate::gc::mark_used(&self.opts.cache_dir, &dir);
        Ok(dir)
    }

    /// Resolve an image reference to its manifest and config, once per build.
    pub(crate) fn resolve_image(
        &self,
        reference: &str,
        platform: &Platform,
    ) -> Result<Arc<Resolved>> {
        self.resolved.get(&format!("{reference}@{platform}"), || {
            let src = self.resolver.open(reference, platform)?;
            let img = hoist_image::resolve(src.as_ref(), platform)?;
            Ok(Arc::new(Resolved { src, img }))
        })
    }

    /// Every image resolved so far: (reference, platform, manifest digest), sorted.
    pub(crate) fn resolved_images(&self) -> Vec<(String, String, Digest)> {
        let mut out: Vec<(String, String, Digest)> = self
            .resolved
            .done()
            .into_iter()
            .map(|(key, r)| {
                let (reference, platform) = key.rsplit_once('@').unwrap_or((&key, ""));
                (
                    reference.to_string(),
                    platform.to_string(),
                    r.img.manifest_raw.digest(),
                )
            })
            .collect();
        out.sort();
        out
    }

    /// Import an image (registry, layout or archive) into the store, once per build
    /// (concurrent callers of the same image wait for the first).
    pub(crate) fn import_image(&self, reference: &str, platform: &Platform) -> Result<Imported> {
        self.images.get(&format!("{reference}@{platform}"), || {
            self.import_image_now(reference, platform)
        })
    }

    fn import_image_now(&self, reference: &str, platform: &Platform) -> Result<Imported> {
        let resolved = self.resolve_image(reference, platform)?;
        let (src, img) = (&resolved.src, &resolved.img);
        let diff_ids = img.config.rootfs.diff_ids.clone();
        if diff_ids.len() != img.manifest.layers.len() {
            return Err(Error::Invalid(format!(
                "{reference}: the config lists {} layers but the manifest {}",
                diff_ids.len(),
                img.manifest.layers.len()
            )));
        }
        if !img.config.os.is_empty() && img.config.os != platform.os
            || !img.config.architecture.is_empty()
                && img.config.architecture != platform.architecture
        {
            self.progress.event(Event::Warning(&format!(
                "{reference} is {}/{}, not the requested {platform}",
                img.config.os, img.config.architecture
            )));
        }
        // Used now (the pull cache's copies of the manifest and config, if any, too).
        crate::gc::touch_blob(&self.store, &img.manifest_raw.digest());
        crate::gc::touch_blob(&self.store, &img.manifest.config.digest);
        let mut layers = Vec::new();
        for (i, (desc, diff_id)) in img.manifest.layers.iter().zip(diff_ids).enumerate() {
            // Uncompressed base layers (docker save, skopeo) are compressed on import;
            // foreign layers are never downloaded.
            let desc = crate::output::import_base_layer(
                &self.store,
                src.as_ref(),
                reference,
                i,
                desc,
                self.encoding.compression,
            )?;
            layers.push(LayerRef::base(desc, diff_id));
        }
        let view = layers::view_of(&self.store, &layers, &self.index_dir)?;
        let mut config = img.config.clone();
        config.extra.clear();
        if let Some(c) = config.config.as_mut() {
            c.extra.clear();
        }
        if config
            .config
            .as_ref()
            .and_then(|c| c.env.as_ref())
            .is_none()
        {
            config.config.get_or_insert_with(Default::default).env =
                Some(vec![DEFAULT_PATH_ENV.to_string()]);
        }
        Ok(Arc::new(StageState {
            config,
            layers,
            view,
            declared_args: Vec::new(),
            cmd_set: false,
            rootfs: None,
            key: crate::key::image_key(&img.manifest_raw.digest().to_string()),
        }))
    }

    /// A history entry for the step just run.
    pub(crate) fn history(&self, state: &mut StageState, created_by: String, empty: bool) {
        state.config.history.push(hoist_image::History {
            created: Some(self.created.clone()),
            created_by: Some(created_by),
            comment: Some("buildkit.dockerfile.v0".into()),
            empty_layer: if empty { Some(true) } else { None },
            author: None,
        });
    }

    /// The context tree (for ADD).
    pub(crate) fn context_tree(&self) -> &dyn crate::tree::SourceTree {
        &self.context
    }
}

/// The planner asks for base images' env and ONBUILD triggers: the image's config
/// answers that (its layers are imported when the stage that starts from it runs).
impl crate::plan::BaseInfo for Engine<'_> {
    fn base_info(
        &self,
        reference: &str,
        platform: &Platform,
    ) -> Result<(Vec<String>, Vec<String>)> {
        let img = self.resolve_image(reference, platform)?;
        let c = img.img.config.config.as_ref();
        Ok((
            c.and_then(|c| c.env.clone()).unwrap_or_default(),
            c.and_then(|c| c.on_build.clone()).unwrap_or_default(),
        ))
    }
}

/// The layer a step just put on `state`, if it made one.
fn l_ref(state: &StageState, made_layer: bool) -> Option<LayerRef> {
    made_layer.then(|| state.layers.last().cloned()).flatten()
}

/// The scratch directory for this build (removed at the end).
pub(crate) fn scratch_dir(cache: &Path) -> Result<tempfile::TempDir> {
    let tmp = cache.join("tmp");
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    tempfile::Builder::new()
        .prefix("build-")
        .tempdir_in(&tmp)
        .map_err(|e| Error::io(&tmp, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
