//! The build engine: stages, instructions, image assembly.
//!
//! Stages are built on demand: the target stage is built, and any stage it needs (as its
//! base, through `COPY --from` or `RUN --mount=from=`) is built first, once. Stages no one
//! needs are never built, as with BuildKit.
//!
//! Every blob (base layers, new layers, configs, manifests) lives in the content-addressed
//! store under hoist's cache directory; a built image is a root manifest over that store,
//! which every sink (layout, archives, registry) can read.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use hoist_dockerfile::{
    CopySource, Dockerfile, GlobalScope, Healthcheck, Instruction, InstructionKind, Platforms,
    ShellOrExec, Stage, StageScope,
};
use hoist_image::layer::{
    write_layer_blob, Entry, EntryKind, ModeOverride, MtimePolicy, Ownership, WriteOptions,
};
use hoist_image::media_type::{self, Compression};
use hoist_image::{
    BlobStore, ContainerConfig, Digest, HealthConfig, History, ImageConfig, Manifest, Platform,
    RawDocument, RootFs, Source,
};

use crate::copy::{self, CopyRequest, MtimeRule};
use crate::error::{Error, Location, Result};
use crate::fsview::{self, FsView};
use crate::history;
use crate::layers::{self, LayerRef};
use crate::options::BuildOptions;
use crate::progress::{Event, Progress};
use crate::tree::{LocalContext, SourceTree, StageTree};
use crate::user;

/// Resolves image references that are not stages (registries, local layouts, archives)
/// to a [`Source`]. The engine imports what it needs into its store.
pub trait BaseResolver: Send + Sync {
    /// Open `reference` (e.g. `docker.io/library/busybox:latest`, `oci:dir:tag`).
    fn open(&self, reference: &str, platform: &Platform) -> Result<Box<dyn Source>>;
}

/// The state of a stage while and after it is built.
#[derive(Debug, Clone)]
pub(crate) struct StageState {
    pub config: ImageConfig,
    pub layers: Vec<LayerRef>,
    pub view: FsView,
    /// ARGs declared in the stage (and its base stage), for RUN history.
    pub declared_args: Vec<String>,
    /// Whether CMD was set in this Dockerfile stage (ENTRYPOINT keeps it then).
    pub cmd_set: bool,
    /// Where the stage's filesystem is unpacked, once someone needed it.
    pub rootfs: Option<PathBuf>,
    /// The step-cache chain key of everything that made this state.
    pub key: crate::cache::Key,
}

impl StageState {
    fn scratch(platform: &Platform) -> StageState {
        StageState {
            config: ImageConfig {
                architecture: platform.architecture.clone(),
                os: platform.os.clone(),
                variant: platform.variant.clone(),
                config: Some(ContainerConfig {
                    env: Some(vec![DEFAULT_PATH_ENV.to_string()]),
                    working_dir: Some(crate::compat::SCRATCH_WORKDIR.to_string()),
                    ..Default::default()
                }),
                rootfs: RootFs::default(),
                ..Default::default()
            },
            layers: Vec::new(),
            view: FsView::new(),
            declared_args: Vec::new(),
            cmd_set: false,
            rootfs: None,
            key: crate::cache::KeyBuilder::new("scratch/v1")
                .str(&platform.to_string())
                .finish(),
        }
    }

    fn cfg(&mut self) -> &mut ContainerConfig {
        self.config.config.get_or_insert_with(Default::default)
    }

    fn env(&self) -> Vec<String> {
        self.config
            .config
            .as_ref()
            .and_then(|c| c.env.clone())
            .unwrap_or_default()
    }

    fn workdir(&self) -> String {
        self.config
            .config
            .as_ref()
            .and_then(|c| c.working_dir.clone())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into())
    }

    fn shell(&self) -> Vec<String> {
        self.config
            .config
            .as_ref()
            .and_then(|c| c.shell.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
    }

    fn user(&self) -> String {
        self.config
            .config
            .as_ref()
            .and_then(|c| c.user.clone())
            .unwrap_or_default()
    }
}

/// The `PATH` BuildKit sets for images without one.
pub const DEFAULT_PATH_ENV: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Format seconds since the epoch as RFC 3339 (UTC).
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if mo <= 2 { y + 1 } else { y };
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

/// What a finished build produced.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    /// The manifest (exact bytes).
    pub manifest: RawDocument,
    /// The config (exact bytes).
    pub config: RawDocument,
    /// The platform.
    pub platform: Platform,
    /// Where every blob is.
    pub store: BlobStore,
}

impl BuiltImage {
    /// The manifest digest (the image's identity).
    pub fn digest(&self) -> Digest {
        self.manifest.digest()
    }

    /// The image as a [`Source`] over the cache's store.
    pub fn source(&self) -> hoist_image::StoreSource {
        hoist_image::StoreSource::new(self.store.clone(), self.manifest.clone())
            .with_name("build result")
    }
}

/// What a build made: one image, or (several `--platform`s) one image per platform and
/// the index that lists them, as `docker buildx build --platform a,b` makes.
#[derive(Debug, Clone)]
pub struct Built {
    /// One image per platform, in the order the platforms were given.
    pub images: Vec<BuiltImage>,
    /// The image index over `images`, when there are several.
    pub index: Option<RawDocument>,
    /// Where every blob is.
    pub store: BlobStore,
}

impl Built {
    /// One image, no index.
    pub fn single(image: BuiltImage) -> Built {
        Built {
            store: image.store.clone(),
            images: vec![image],
            index: None,
        }
    }

    /// Several images under an index (OCI media types when `oci`, else a Docker manifest
    /// list), stored in the images' store. Entries carry each image's platform and
    /// `descriptor_annotations`; the index carries `index_annotations` (OCI only: a Docker
    /// manifest list has no annotations).
    pub fn indexed(
        images: Vec<BuiltImage>,
        oci: bool,
        index_annotations: &BTreeMap<String, String>,
        descriptor_annotations: &BTreeMap<String, String>,
    ) -> Result<Built> {
        let some = |a: &BTreeMap<String, String>| (oci && !a.is_empty()).then(|| a.clone());
        let store = images
            .first()
            .map(|i| i.store.clone())
            .ok_or_else(|| Error::Invalid("an index needs at least one image".into()))?;
        let manifests = images
            .iter()
            .map(|i| {
                let mut d = i.manifest.descriptor();
                d.platform = Some(i.platform.clone());
                d.annotations = some(descriptor_annotations);
                d
            })
            .collect();
        let mt = if oci {
            media_type::OCI_INDEX
        } else {
            media_type::DOCKER_MANIFEST_LIST
        };
        let index = hoist_image::Index {
            schema_version: 2,
            media_type: Some(mt.into()),
            artifact_type: None,
            manifests,
            subject: None,
            annotations: some(index_annotations),
        };
        let raw = RawDocument::from_value(mt, &index);
        store.put_bytes(&raw.bytes)?;
        crate::gc::touch_blob(&store, &raw.digest());
        Ok(Built {
            images,
            index: Some(raw),
            store,
        })
    }

    /// The root document: the index, or the one image's manifest.
    pub fn root(&self) -> &RawDocument {
        match &self.index {
            Some(i) => i,
            None => &self.images[0].manifest,
        }
    }

    /// The root's digest: what a registry reports for the pushed tag.
    pub fn digest(&self) -> Digest {
        self.root().digest()
    }

    /// The first platform's image (the only one without an index).
    pub fn first(&self) -> &BuiltImage {
        &self.images[0]
    }

    /// Every image's platform.
    pub fn platforms(&self) -> Vec<Platform> {
        self.images.iter().map(|i| i.platform.clone()).collect()
    }

    /// The whole result as a [`Source`] (an index source with its child manifests when
    /// there are several platforms).
    pub fn source(&self) -> hoist_image::StoreSource {
        let mut s = hoist_image::StoreSource::new(self.store.clone(), self.root().clone())
            .with_name("build result");
        if self.index.is_some() {
            for i in &self.images {
                s = s.with_manifest(i.manifest.clone());
            }
        }
        s
    }
}

pub(crate) struct Engine<'a> {
    pub opts: &'a BuildOptions,
    pub progress: &'a dyn Progress,
    pub resolver: &'a dyn BaseResolver,
    pub df: Dockerfile,
    pub df_name: String,
    pub global: GlobalScope,
    pub context: LocalContext,
    pub store: BlobStore,
    pub scratch: PathBuf,
    pub platform: Platform,
    pub created: String,
    pub epoch: Option<i64>,
    stages: Vec<Option<Arc<StageState>>>,
    building: Vec<bool>,
    images: HashMap<String, Arc<StageState>>,
    step: usize,
    /// The step being executed (for output lines).
    pub(crate) current_step: usize,
    /// The step cache.
    pub(crate) cache: crate::cache::StepCache,
    /// Content hashes of context files (with a stat cache).
    pub(crate) hasher: crate::cache::FileHasher,
    /// Where layer metadata indexes are cached.
    pub(crate) index_dir: PathBuf,
    /// Whether the step being executed was a cache hit.
    pub(crate) cached: bool,
    /// The RUN sandbox, started by the first RUN.
    pub(crate) sandbox:
        Arc<std::sync::OnceLock<std::result::Result<hoist_sandbox::Sandbox, String>>>,
}

impl<'a> Engine<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        opts: &'a BuildOptions,
        progress: &'a dyn Progress,
        resolver: &'a dyn BaseResolver,
        df: Dockerfile,
        df_name: String,
        context: LocalContext,
        store: BlobStore,
        scratch: PathBuf,
        platform: Platform,
    ) -> Result<Engine<'a>> {
        let build = Platform::host();
        let platforms = Platforms {
            target_os: platform.os.clone(),
            target_arch: platform.architecture.clone(),
            target_variant: platform.variant.clone().unwrap_or_default(),
            build_os: build.os.clone(),
            build_arch: build.architecture.clone(),
            build_variant: build.variant.clone().unwrap_or_default(),
        };
        let global = GlobalScope::new(&df, &opts.build_args, &platforms)
            .map_err(|e| Error::Dockerfile(e.to_string()))?;
        let n = df.stages.len();
        let epoch = opts.source_date_epoch;
        Ok(Engine {
            opts,
            progress,
            resolver,
            df,
            df_name,
            global,
            context,
            store,
            scratch,
            platform,
            created: rfc3339(epoch.unwrap_or(0)),
            epoch,
            stages: vec![None; n],
            building: vec![false; n],
            images: HashMap::new(),
            step: 0,
            current_step: 0,
            cache: crate::cache::StepCache::new(opts.cache_dir.join("steps"), !opts.no_cache),
            hasher: crate::cache::FileHasher::load(Some(
                opts.cache_dir.join("filehash").join(
                    crate::cache::KeyBuilder::new("ctx")
                        .str(
                            &std::path::absolute(&opts.context)
                                .unwrap_or_else(|_| opts.context.clone())
                                .to_string_lossy(),
                        )
                        .finish()
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<String>(),
                ),
            )),
            index_dir: opts.cache_dir.join("index"),
            cached: false,
            sandbox: Arc::new(std::sync::OnceLock::new()),
        })
    }

    /// `--build-arg`s that no ARG of the global scope or of a built stage declared
    /// (BuildKit warns about them; proxy args, `BUILDKIT_*` and `SOURCE_DATE_EPOCH`
    /// never count).
    pub fn unused_build_args(&self) -> Vec<String> {
        let declared: std::collections::BTreeSet<&String> = self
            .stages
            .iter()
            .flatten()
            .flat_map(|s| s.declared_args.iter())
            .collect();
        self.global
            .unused_build_args(std::iter::empty())
            .into_iter()
            .filter(|a| !declared.contains(a) && a != "SOURCE_DATE_EPOCH")
            .collect()
    }

    /// The index of the target stage.
    pub fn target_index(&self) -> Result<usize> {
        if self.df.stages.is_empty() {
            return Err(Error::Dockerfile(format!(
                "{}: the Dockerfile has no FROM instruction",
                self.df_name
            )));
        }
        match &self.opts.target {
            None => Ok(self.df.stages.len() - 1),
            Some(t) => self.stage_index(t).ok_or_else(|| {
                let names: Vec<&str> = self
                    .df
                    .stages
                    .iter()
                    .filter_map(|s| s.name.as_deref())
                    .collect();
                Error::Invalid(format!(
                    "target stage {t:?} could not be found (stages: {})",
                    if names.is_empty() {
                        "none named".to_string()
                    } else {
                        names.join(", ")
                    }
                ))
            }),
        }
    }

    fn stage_index(&self, name: &str) -> Option<usize> {
        let lower = name.to_ascii_lowercase();
        self.df
            .stages
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()))
    }

    fn next_step(&mut self) -> usize {
        self.step += 1;
        self.step
    }

    fn location(&self, i: &Instruction) -> Location {
        Location {
            file: self.df_name.clone(),
            line: i.span.start_line,
            text: i.original.lines().next().unwrap_or_default().to_string(),
        }
    }

    fn location_of_from(&self, s: &Stage) -> Location {
        Location {
            file: self.df_name.clone(),
            line: s.from.span.start_line,
            text: s
                .from
                .original
                .lines()
                .next()
                .unwrap_or_default()
                .to_string(),
        }
    }

    /// Build stage `idx` (and what it needs), once.
    pub fn build_stage(&mut self, idx: usize) -> Result<Arc<StageState>> {
        if let Some(s) = &self.stages[idx] {
            return Ok(s.clone());
        }
        if self.building[idx] {
            let stage = &self.df.stages[idx];
            return Err(Error::Step {
                location: self.location_of_from(stage),
                message: "circular dependency between stages".into(),
            });
        }
        self.building[idx] = true;
        let r = self.build_stage_inner(idx);
        self.building[idx] = false;
        let st = Arc::new(r?);
        self.stages[idx] = Some(st.clone());
        Ok(st)
    }

    fn build_stage_inner(&mut self, idx: usize) -> Result<StageState> {
        let stage = self.df.stages[idx].clone();
        let from_loc = self.location_of_from(&stage);
        let (image, platform_str) = self
            .global
            .expand_from(&stage)
            .map_err(|e| Error::Dockerfile(e.to_string()))?;
        let platform = match platform_str.as_deref().filter(|p| !p.is_empty()) {
            Some(p) => Platform::parse(p).ok_or_else(|| Error::Step {
                location: from_loc.clone(),
                message: format!("invalid --platform {p:?}: expected os/arch[/variant]"),
            })?,
            None => self.platform.clone(),
        };
        let label = stage_label(&stage, idx);
        let total = stage.instructions.len() + 1;
        let id = self.next_step();
        let name = format!("[{label} 1/{total}] FROM {image}");
        self.progress.event(Event::Start { id, name: &name });
        let started = Instant::now();
        let mut state = match self.base(&image, &platform) {
            Ok(s) => s,
            Err(e) => {
                let e = e.at(&from_loc);
                self.progress.event(Event::Failed {
                    id,
                    message: &e.to_string(),
                });
                return Err(e);
            }
        };
        self.progress.event(Event::Done {
            id,
            cached: false,
            elapsed: started.elapsed(),
        });

        let global = self.global.clone();
        let mut scope = StageScope::new(&global, &state.env());
        // ONBUILD triggers of the base run first, then are cleared.
        let triggers = state
            .config
            .config
            .as_mut()
            .and_then(|c| c.on_build.take())
            .unwrap_or_default();
        for t in triggers {
            let instr = hoist_dockerfile::parse_instruction(&t).map_err(|e| Error::Step {
                location: from_loc.clone(),
                message: format!("ONBUILD trigger {t:?} from the base image: {e}"),
            })?;
            let id = self.next_step();
            let name = format!("[{label}] ONBUILD {t}");
            self.run_step(&mut state, &mut scope, &instr, id, &name, &from_loc)?;
        }
        for (n, instr) in stage.instructions.iter().enumerate() {
            let loc = self.location(instr);
            let id = self.next_step();
            let name = format!(
                "[{label} {}/{total}] {}",
                n + 2,
                instr.original.lines().next().unwrap_or_default()
            );
            self.run_step(&mut state, &mut scope, instr, id, &name, &loc)?;
        }
        Ok(state)
    }

    fn run_step(
        &mut self,
        state: &mut StageState,
        scope: &mut StageScope,
        instr: &Instruction,
        id: usize,
        name: &str,
        loc: &Location,
    ) -> Result<()> {
        self.progress.event(Event::Start { id, name });
        self.current_step = id;
        if crate::interrupted() {
            return Err(Error::Interrupted);
        }
        let started = Instant::now();
        self.cached = false;
        let r = scope
            .apply(instr)
            .map_err(|e| Error::Dockerfile(e.to_string()))
            .and_then(|expanded| {
                state.key = crate::cache::KeyBuilder::new("instr/v1")
                    .bytes(&state.key)
                    .json(&expanded.kind)
                    .finish();
                self.dispatch(state, scope, &expanded)
            });
        match r {
            Ok(()) => {
                self.progress.event(Event::Done {
                    id,
                    cached: self.cached,
                    elapsed: started.elapsed(),
                });
                Ok(())
            }
            Err(e) => {
                let e = e.at(loc);
                self.progress.event(Event::Failed {
                    id,
                    message: &e.to_string(),
                });
                Err(e)
            }
        }
    }

    pub(crate) fn history(&self, state: &mut StageState, created_by: String, empty: bool) {
        state.config.history.push(History {
            created: Some(self.created.clone()),
            created_by: Some(created_by),
            comment: Some("buildkit.dockerfile.v0".into()),
            empty_layer: if empty { Some(true) } else { None },
            author: None,
        });
    }

    /// The base of a stage: scratch, another stage, a named context or an image.
    fn base(&mut self, image: &str, platform: &Platform) -> Result<StageState> {
        if image.eq_ignore_ascii_case("scratch") {
            return Ok(StageState::scratch(platform));
        }
        if let Some(nc) = self.opts.named_contexts.get(image) {
            return match nc {
                crate::options::NamedContext::Image(r) => {
                    let r = r.clone();
                    Ok((*self.import_image(&r, platform)?).clone())
                }
                crate::options::NamedContext::Dir(d) => Err(Error::Invalid(format!(
                    "build context {image:?} is a directory ({}); FROM needs an image",
                    d.display()
                ))),
            };
        }
        if let Some(i) = self.stage_index(image) {
            let st = self.build_stage(i)?;
            let mut s = (*st).clone();
            s.cmd_set = false;
            if let Some(c) = s.config.config.as_mut() {
                c.on_build = None;
            }
            return Ok(s);
        }
        Ok((*self.import_image(image, platform)?).clone())
    }

    /// Import an image (registry, layout or archive) into the store, once per build.
    fn import_image(&mut self, reference: &str, platform: &Platform) -> Result<Arc<StageState>> {
        let key = format!("{reference}@{platform}");
        if let Some(s) = self.images.get(&key) {
            return Ok(s.clone());
        }
        let src = self.resolver.open(reference, platform)?;
        let img = hoist_image::resolve(src.as_ref(), platform)?;
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
        for (desc, diff_id) in img.manifest.layers.iter().zip(diff_ids) {
            if !self.store.has_descriptor(desc) {
                let r = hoist_image::open_verified(src.as_ref(), desc)?;
                self.store.put_verified(r, desc)?;
            } else {
                crate::gc::touch_blob(&self.store, &desc.digest);
            }
            layers.push(LayerRef {
                desc: desc.clone(),
                diff_id,
            });
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
        let st = Arc::new(StageState {
            config,
            layers,
            view,
            declared_args: Vec::new(),
            cmd_set: false,
            rootfs: None,
            key: crate::cache::KeyBuilder::new("image/v1")
                .str(&img.manifest_raw.digest().to_string())
                .finish(),
        });
        self.images.insert(key, st.clone());
        Ok(st)
    }

    fn mtime_rule(&self) -> MtimeRule {
        match self.epoch {
            Some(e) => MtimeRule::Clamp(e),
            None => MtimeRule::Fixed(0),
        }
    }

    pub(crate) fn write_options(&self) -> WriteOptions {
        WriteOptions {
            compression: self.compression(),
            level: self.opts.outputs.iter().find_map(|o| o.compression_level),
            threads: 0,
            source_date_epoch: self.epoch,
            mtime: MtimePolicy::Preserve,
            ownership: Ownership::Preserve,
            mode_override: None,
            overlay_upper: false,
        }
    }

    pub fn compression(&self) -> Compression {
        self.opts
            .outputs
            .iter()
            .find_map(|o| o.compression)
            .unwrap_or(Compression::Gzip)
    }

    /// Write entries as a new layer on `state`.
    fn add_layer(&self, state: &mut StageState, entries: Vec<Entry>) -> Result<bool> {
        let entries = crate::compat::with_existing_parents(entries, &state.view);
        let d = write_layer_blob(
            self.store.root(),
            entries.iter().cloned(),
            &self.write_options(),
        )?;
        state.view.add_layer_entries(&entries);
        state.layers.push(LayerRef {
            desc: d.descriptor(),
            diff_id: d.diff_id.clone(),
        });
        state.config.rootfs.diff_ids.push(d.diff_id);
        state.rootfs = None;
        Ok(true)
    }

    /// Apply a cached step result if there is one; returns `Some(made_a_layer)` on a hit.
    pub(crate) fn cache_hit(
        &mut self,
        state: &mut StageState,
        key: &crate::cache::Key,
    ) -> Result<Option<bool>> {
        let Some(hit) = self.cache.get(key, &self.store) else {
            return Ok(None);
        };
        state.key = *key;
        self.cached = true;
        match (hit.layer, hit.diff_id) {
            (Some(desc), Some(diff_id)) => {
                crate::gc::touch_blob(&self.store, &desc.digest);
                let l = LayerRef { desc, diff_id };
                let index = layers::layer_index(&self.store, &l, &self.index_dir)?;
                state.view.add_layer_index(&index);
                state.config.rootfs.diff_ids.push(l.diff_id.clone());
                state.layers.push(l);
                state.rootfs = None;
                Ok(Some(true))
            }
            _ => Ok(Some(false)),
        }
    }

    /// Record a step's result in the cache and in the chain key.
    pub(crate) fn cache_put(
        &mut self,
        state: &mut StageState,
        key: &crate::cache::Key,
        made_layer: bool,
    ) {
        let step = if made_layer {
            let l = state.layers.last().cloned();
            crate::cache::CachedStep {
                layer: l.as_ref().map(|l| l.desc.clone()),
                diff_id: l.map(|l| l.diff_id),
            }
        } else {
            crate::cache::CachedStep {
                layer: None,
                diff_id: None,
            }
        };
        self.cache.put(key, &step);
        state.key = *key;
    }

    /// COPY/ADD: key over the planned entries, then the cache or a new layer.
    fn copy_step(
        &mut self,
        state: &mut StageState,
        kind: &str,
        entries: Vec<Entry>,
    ) -> Result<bool> {
        let mut k = crate::cache::KeyBuilder::new(kind);
        k.bytes(&state.key);
        crate::cache::key_entries(&mut k, &entries, &self.hasher)?;
        let key = k.finish();
        if let Some(made) = self.cache_hit(state, &key)? {
            return Ok(made);
        }
        let made = self.add_layer(state, entries)?;
        self.cache_put(state, &key, made);
        Ok(made)
    }

    pub(crate) fn passwd_group(
        &self,
        state: &StageState,
    ) -> Result<(Vec<user::PasswdEntry>, Vec<user::GroupEntry>)> {
        let read = |p: &str| -> Result<String> {
            Ok(
                layers::read_image_file(&self.store, &state.layers, &state.view, p)?
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default(),
            )
        };
        Ok((
            user::parse_passwd(&read("etc/passwd")?),
            user::parse_group(&read("etc/group")?),
        ))
    }

    fn chown_ids(&self, state: &StageState, spec: Option<&str>) -> Result<Option<(u32, u32)>> {
        let Some(spec) = spec.filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        // Numeric specs need no lookup.
        let numeric = spec
            .split(':')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        let (p, g) = if numeric {
            (Vec::new(), Vec::new())
        } else {
            self.passwd_group(state)?
        };
        user::resolve_chown(spec, &p, &g)
            .map(Some)
            .map_err(|e| Error::Invalid(e.to_string()))
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
        layers::materialize(&self.store, &state.layers, &dir)?;
        crate::gc::mark_used(&self.opts.cache_dir, &dir);
        Ok(dir)
    }

    /// Where `COPY --from=X` reads: a stage (by name or index), a named context or an image.
    pub(crate) fn copy_source(&mut self, from: &str) -> Result<CopyFrom> {
        if let Some(nc) = self.opts.named_contexts.get(from).cloned() {
            return match nc {
                crate::options::NamedContext::Dir(d) => Ok(CopyFrom::Dir(d)),
                crate::options::NamedContext::Image(r) => {
                    let p = self.platform.clone();
                    Ok(CopyFrom::Stage(self.import_image(&r, &p)?))
                }
            };
        }
        if let Some(i) = self.stage_index(from) {
            return Ok(CopyFrom::Stage(self.build_stage(i)?));
        }
        if let Ok(i) = from.parse::<usize>() {
            if i < self.df.stages.len() {
                return Ok(CopyFrom::Stage(self.build_stage(i)?));
            }
            return Err(Error::Invalid(format!("invalid stage index {i}")));
        }
        let p = self.platform.clone();
        Ok(CopyFrom::Stage(self.import_image(from, &p)?))
    }

    fn dispatch(
        &mut self,
        state: &mut StageState,
        scope: &mut StageScope,
        i: &Instruction,
    ) -> Result<()> {
        match &i.kind {
            InstructionKind::Env { vars } => {
                let mut msg = String::from("ENV");
                for kv in vars {
                    let env = state.cfg().env.get_or_insert_with(Vec::new);
                    add_env(env, &kv.key, &kv.value);
                    msg.push_str(&format!(" {}={}", kv.key, kv.value));
                }
                self.history(state, msg, true);
            }
            InstructionKind::Arg { args } => {
                let env = scope.run_env();
                let mut parts = Vec::new();
                for a in args {
                    let value = lookup(&env, &a.name);
                    parts.push(match value {
                        Some(v) => format!("{}={}", a.name, v),
                        None => a.name.clone(),
                    });
                    state.declared_args.push(a.name.clone());
                }
                self.history(state, format!("ARG {}", parts.join(" ")), true);
            }
            InstructionKind::Label { labels } => {
                let mut msg = String::from("LABEL");
                for kv in labels {
                    state
                        .cfg()
                        .labels
                        .get_or_insert_with(BTreeMap::new)
                        .insert(kv.key.clone(), kv.value.clone());
                    msg.push_str(&format!(" {}={}", kv.key, kv.value));
                }
                self.history(state, msg, true);
            }
            InstructionKind::Maintainer { maintainer } => {
                state.config.author = Some(maintainer.clone());
                self.history(state, format!("MAINTAINER {maintainer}"), true);
            }
            InstructionKind::Expose { ports } => {
                let specs = hoist_dockerfile::exposed_ports(ports).map_err(Error::Invalid)?;
                let map = state.cfg().exposed_ports.get_or_insert_with(BTreeMap::new);
                for s in &specs {
                    map.insert(s.clone(), serde_json::json!({}));
                }
                self.history(state, format!("EXPOSE {}", history::go_list(&specs)), true);
            }
            InstructionKind::User { user } => {
                state.cfg().user = Some(user.clone());
                self.history(state, format!("USER {user}"), true);
            }
            InstructionKind::Volume { volumes, .. } => {
                let map = state.cfg().volumes.get_or_insert_with(BTreeMap::new);
                for v in volumes {
                    if v.is_empty() {
                        return Err(Error::Invalid(
                            "VOLUME specified can not be an empty string".into(),
                        ));
                    }
                    map.insert(v.clone(), serde_json::json!({}));
                }
                self.history(state, format!("VOLUME {}", history::go_list(volumes)), true);
            }
            InstructionKind::Stopsignal { signal } => {
                if !hoist_dockerfile::valid_signal(signal) {
                    return Err(Error::Invalid(format!("invalid signal: {signal}")));
                }
                state.cfg().stop_signal = Some(signal.clone());
                self.history(state, format!("STOPSIGNAL {signal}"), true);
            }
            InstructionKind::Shell { shell } => {
                state.cfg().shell = Some(shell.clone());
                self.history(state, format!("SHELL {}", history::go_list(shell)), true);
            }
            InstructionKind::Cmd { cmd } => {
                let args = self.with_shell(state, cmd);
                let c = state.cfg();
                c.cmd = Some(args.clone());
                c.args_escaped = Some(true);
                state.cmd_set = true;
                self.history(
                    state,
                    format!("CMD {}", history::go_quote_list(&args)),
                    true,
                );
            }
            InstructionKind::Entrypoint { cmd } => {
                let args = self.with_shell(state, cmd);
                let cmd_set = state.cmd_set;
                let c = state.cfg();
                c.entrypoint = Some(args.clone());
                if !cmd_set {
                    c.cmd = None;
                }
                self.history(
                    state,
                    format!("ENTRYPOINT {}", history::go_quote_list(&args)),
                    true,
                );
            }
            InstructionKind::Healthcheck { check } => {
                let hc = match check {
                    Healthcheck::None => HealthConfig {
                        test: Some(vec!["NONE".into()]),
                        ..Default::default()
                    },
                    Healthcheck::Cmd {
                        cmd,
                        interval,
                        timeout,
                        start_period,
                        start_interval,
                        retries,
                    } => HealthConfig {
                        test: Some(match cmd {
                            ShellOrExec::Shell(s) => vec!["CMD-SHELL".into(), s.clone()],
                            ShellOrExec::Exec(a) => {
                                let mut v = vec!["CMD".to_string()];
                                v.extend(a.iter().cloned());
                                v
                            }
                        }),
                        interval: interval.filter(|v| *v != 0),
                        timeout: timeout.filter(|v| *v != 0),
                        start_period: start_period.filter(|v| *v != 0),
                        start_interval: start_interval.filter(|v| *v != 0),
                        retries: retries.filter(|v| *v != 0),
                    },
                };
                let msg = format!(
                    "HEALTHCHECK {{Test:{} Interval:{} Timeout:{} StartPeriod:{} StartInterval:{} Retries:{}}}",
                    history::go_list(hc.test.as_deref().unwrap_or_default()),
                    history::go_duration(hc.interval.unwrap_or(0)),
                    history::go_duration(hc.timeout.unwrap_or(0)),
                    history::go_duration(hc.start_period.unwrap_or(0)),
                    history::go_duration(hc.start_interval.unwrap_or(0)),
                    hc.retries.unwrap_or(0)
                );
                state.cfg().healthcheck = Some(hc);
                self.history(state, msg, true);
            }
            InstructionKind::Onbuild { expression, .. } => {
                state
                    .cfg()
                    .on_build
                    .get_or_insert_with(Vec::new)
                    .push(expression.clone());
            }
            InstructionKind::Workdir { path } => {
                let wd = normalize_workdir(&state.workdir(), path);
                state.cfg().working_dir = Some(wd.clone());
                let mut layer = false;
                if wd != "/" {
                    let user = state.user();
                    let owner = if user.is_empty() {
                        (0, 0)
                    } else {
                        self.chown_ids(state, Some(&user))?.unwrap_or((0, 0))
                    };
                    let entries =
                        mkdir_entries(&state.view, &wd, owner, self.mtime_rule().created())?;
                    layer = self.add_layer(state, entries)?;
                }
                self.history(state, format!("WORKDIR {wd}"), !layer);
            }
            InstructionKind::Copy {
                sources,
                dest,
                from,
                chown,
                chmod,
                link,
                parents,
                exclude,
                ..
            } => {
                let req = self.copy_request(
                    state,
                    sources,
                    dest,
                    chown.as_deref(),
                    chmod.as_deref(),
                    *parents,
                    exclude,
                )?;
                let msg = copy_history(
                    "COPY",
                    *parents,
                    chown.as_deref(),
                    chmod.as_deref(),
                    sources,
                    dest,
                );
                let entries = match from {
                    Some(f) => {
                        let src = self.copy_source(f)?;
                        self.plan_from(state, &src, &req, *link)?
                    }
                    None => self.plan_context(state, &req, sources, *link)?,
                };
                let layer = self.copy_step(state, "copy/v1", entries)?;
                self.history(state, msg, !layer);
            }
            InstructionKind::Add {
                sources,
                dest,
                chown,
                chmod,
                link,
                checksum,
                unpack,
                exclude,
                ..
            } => {
                let req = self.copy_request(
                    state,
                    sources,
                    dest,
                    chown.as_deref(),
                    chmod.as_deref(),
                    false,
                    exclude,
                )?;
                let msg = copy_history(
                    "ADD",
                    false,
                    chown.as_deref(),
                    chmod.as_deref(),
                    sources,
                    dest,
                );
                let entries = crate::add::plan_add(
                    self,
                    state,
                    &req,
                    sources,
                    checksum.as_deref(),
                    *unpack,
                    *link,
                )?;
                let layer = self.add_layer(state, entries)?;
                self.history(state, msg, !layer);
            }
            InstructionKind::Run { .. } => {
                crate::run::dispatch_run(self, state, scope, i)?;
            }
        }
        Ok(())
    }

    fn with_shell(&self, state: &StageState, cmd: &ShellOrExec) -> Vec<String> {
        match cmd {
            ShellOrExec::Exec(a) => a.clone(),
            ShellOrExec::Shell(s) => {
                let mut v = state.shell();
                v.push(s.clone());
                v
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn copy_request(
        &self,
        state: &StageState,
        sources: &[CopySource],
        dest: &str,
        chown: Option<&str>,
        chmod: Option<&str>,
        parents: bool,
        exclude: &[String],
    ) -> Result<CopyRequest> {
        let chmod = chmod
            .map(|m| {
                ModeOverride::parse(m).map_err(|_| {
                    Error::Invalid(format!(
                        "invalid chmod parameter: '{m}'. it should be octal string and between 0 and 07777, or a symbolic mode"
                    ))
                })
            })
            .transpose()?;
        Ok(CopyRequest {
            sources: sources
                .iter()
                .filter_map(|s| match s {
                    CopySource::Path(p) => Some(p.clone()),
                    CopySource::Heredoc(_) => None,
                })
                .collect(),
            heredocs: crate::copy_sources::inline_files(sources),
            dest: if dest.is_empty() {
                "./".into()
            } else {
                dest.to_string()
            },
            workdir: state.workdir(),
            chown: self.chown_ids(state, chown)?,
            chmod,
            exclude: exclude.to_vec(),
            parents,
            mtime: self.mtime_rule(),
            unpack: None,
        })
    }

    /// Plan COPY from the build context (plus heredoc sources).
    fn plan_context(
        &self,
        state: &StageState,
        req: &CopyRequest,
        sources: &[CopySource],
        link: bool,
    ) -> Result<Vec<Entry>> {
        let empty = FsView::new();
        let view = if link { &empty } else { &state.view };
        let _ = sources; // heredocs are in `req`
        copy::plan(&self.context, req, view)
    }

    fn plan_from(
        &self,
        state: &StageState,
        src: &CopyFrom,
        req: &CopyRequest,
        link: bool,
    ) -> Result<Vec<Entry>> {
        let empty = FsView::new();
        let view = if link { &empty } else { &state.view };
        match src {
            CopyFrom::Dir(d) => {
                let ctx = LocalContext::new(d, None)?;
                copy::plan(&ctx, req, view)
            }
            CopyFrom::Stage(s) => {
                let rootfs = self.rootfs_of(s)?;
                let tree = StageTree::new(&s.view, rootfs);
                copy::plan(&tree, req, view)
            }
        }
    }

    /// The context tree (for ADD).
    pub(crate) fn context_tree(&self) -> &dyn SourceTree {
        &self.context
    }

    /// Finish the target stage into an image in the store.
    pub fn assemble(&self, state: &StageState, oci: bool) -> Result<BuiltImage> {
        let mut config = state.config.clone();
        config.created = Some(self.created.clone());
        if !self.opts.default_labels.is_empty() {
            let labels = config
                .config
                .get_or_insert_with(Default::default)
                .labels
                .get_or_insert_with(BTreeMap::new);
            for (k, v) in &self.opts.default_labels {
                labels.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        if !self.opts.labels.is_empty() {
            let labels = config
                .config
                .get_or_insert_with(Default::default)
                .labels
                .get_or_insert_with(BTreeMap::new);
            for (k, v) in &self.opts.labels {
                labels.insert(k.clone(), v.clone());
            }
        }
        config.rootfs.diff_ids = state.layers.iter().map(|l| l.diff_id.clone()).collect();
        let config_mt = if oci {
            media_type::OCI_CONFIG
        } else {
            media_type::DOCKER_CONFIG
        };
        let config_raw = RawDocument::from_value(config_mt, &config);
        self.store.put_bytes(&config_raw.bytes)?;
        crate::gc::touch_blob(&self.store, &config_raw.digest());
        let mut layer_descs = Vec::new();
        for l in &state.layers {
            let mut d = l.desc.clone();
            d.media_type = layer_media_type(&d.media_type, oci)?;
            d.annotations = None;
            layer_descs.push(d);
        }
        let mut annotations = BTreeMap::new();
        for o in &self.opts.outputs {
            annotations.extend(o.annotations.clone());
        }
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(if oci {
                media_type::OCI_MANIFEST.into()
            } else {
                media_type::DOCKER_MANIFEST.into()
            }),
            artifact_type: None,
            config: config_raw.descriptor(),
            layers: layer_descs,
            subject: None,
            annotations: if annotations.is_empty() || !oci {
                None
            } else {
                Some(annotations)
            },
        };
        let manifest_raw =
            RawDocument::from_value(manifest.media_type.clone().unwrap_or_default(), &manifest);
        self.store.put_bytes(&manifest_raw.bytes)?;
        crate::gc::touch_blob(&self.store, &manifest_raw.digest());
        for l in &state.layers {
            crate::gc::touch_blob(&self.store, &l.desc.digest);
        }
        Ok(BuiltImage {
            manifest: manifest_raw,
            config: config_raw,
            platform: config.platform(),
            store: self.store.clone(),
        })
    }
}

/// Where COPY --from reads.
pub(crate) enum CopyFrom {
    /// A local directory (named context).
    Dir(PathBuf),
    /// A stage or image.
    Stage(Arc<StageState>),
}

fn stage_label(stage: &Stage, idx: usize) -> String {
    stage.name.clone().unwrap_or_else(|| format!("stage-{idx}"))
}

/// BuildKit's history text for COPY/ADD: `COPY [--parents] [--chown=…] [--chmod=…] SRC… DEST # buildkit`.
fn copy_history(
    keyword: &str,
    parents: bool,
    chown: Option<&str>,
    chmod: Option<&str>,
    sources: &[CopySource],
    dest: &str,
) -> String {
    let mut msg = String::from(keyword);
    if parents {
        msg.push_str(" --parents");
    }
    if let Some(c) = chown.filter(|c| !c.is_empty()) {
        msg.push_str(&format!(" --chown={c}"));
    }
    if let Some(c) = chmod.filter(|c| !c.is_empty()) {
        msg.push_str(&format!(" --chmod={c}"));
    }
    for s in sources {
        match s {
            CopySource::Path(p) => msg.push_str(&format!(" {p}")),
            CopySource::Heredoc(h) => msg.push_str(&format!(" <<{}", h.name)),
        }
    }
    msg.push_str(&format!(" {dest} # buildkit"));
    msg
}

fn lookup(env: &[String], key: &str) -> Option<String> {
    env.iter().rev().find_map(|e| {
        let (k, v) = e.split_once('=').unwrap_or((e.as_str(), ""));
        (k == key).then(|| v.to_string())
    })
}

/// Set `k=v` in an env list, replacing an existing `k` in place (BuildKit's `addEnv`).
pub fn add_env(env: &mut Vec<String>, k: &str, v: &str) {
    for e in env.iter_mut() {
        let key = e.split_once('=').map(|(a, _)| a).unwrap_or(e);
        if key == k {
            *e = format!("{k}={v}");
            return;
        }
    }
    env.push(format!("{k}={v}"));
}

/// BuildKit's `NormalizeWorkdir` for Linux: an absolute path is kept as written (a
/// trailing `/` stays in the config), a relative one is joined to the current one and
/// cleaned (Go's `path.Join`).
pub fn normalize_workdir(current: &str, requested: &str) -> String {
    if requested.starts_with('/') {
        return requested.to_string();
    }
    let joined = format!("{}/{}", current.trim_end_matches('/'), requested);
    format!("/{}", copy::clean_rel(&joined))
}

/// Entries creating `dir` and its missing parents (WORKDIR).
pub(crate) fn mkdir_entries(
    view: &FsView,
    dir: &str,
    owner: (u32, u32),
    mtime: i64,
) -> Result<Vec<Entry>> {
    let real = view.resolve(dir, true)?;
    let mut out = Vec::new();
    let mut p = real.as_str();
    let mut missing = Vec::new();
    while !p.is_empty() {
        match view.get(p) {
            Some(m) if m.is_dir() => break,
            Some(_) if view.is_dir(p) => break,
            Some(_) => {
                return Err(Error::Invalid(format!(
                    "cannot create directory /{p}: a file is in the way"
                )))
            }
            None => missing.push(p.to_string()),
        }
        p = fsview::parent_of(p);
    }
    for m in missing.into_iter().rev() {
        let mut e = Entry::new(m, EntryKind::Dir, 0o755);
        e.uid = owner.0;
        e.gid = owner.1;
        e.mtime = mtime;
        out.push(e);
    }
    Ok(out)
}

/// Sort entries and drop duplicates (the last one wins), keeping parents first.
pub(crate) fn merge_sorted(entries: &mut Vec<Entry>) {
    let mut map: BTreeMap<String, Entry> = BTreeMap::new();
    for e in entries.drain(..) {
        map.insert(e.path.clone(), e);
    }
    let mut v: Vec<Entry> = map.into_values().collect();
    v.sort_by(|a, b| hoist_image::layer::path_order(&a.path, &b.path));
    *entries = v;
}

fn layer_media_type(mt: &str, oci: bool) -> Result<String> {
    let c = media_type::layer_compression(mt)
        .ok_or_else(|| Error::Invalid(format!("unknown layer media type {mt:?}")))?;
    Ok(if oci {
        media_type::oci_layer(c).to_string()
    } else {
        match c {
            Compression::Gzip => media_type::DOCKER_LAYER_GZIP.into(),
            Compression::None => "application/vnd.docker.image.rootfs.diff.tar".into(),
            Compression::Zstd => {
                return Err(Error::Invalid(
                    "zstd layers need OCI media types (oci-mediatypes=true)".into(),
                ))
            }
        }
    })
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

    #[test]
    fn workdir() {
        assert_eq!(normalize_workdir("/", "app"), "/app");
        assert_eq!(normalize_workdir("/app", "../x/./y/"), "/x/y");
        assert_eq!(normalize_workdir("/a", "/b"), "/b");
        assert_eq!(normalize_workdir("/a", "/tmp/"), "/tmp/");
        assert_eq!(normalize_workdir("/tmp/", "x/"), "/tmp/x");
    }
}
