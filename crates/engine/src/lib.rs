//! The hoist build engine: a Dockerfile and a context in, an OCI image out, no daemon.
//!
//! - [`build`] runs a whole build from [`BuildOptions`] and writes every `--output`.
//! - [`options`] holds the validated options, [`output`] the `--output` syntax,
//!   [`progress`] the displays (terminal, plain, JSON).
//! - Inside: [`engine`] walks stages and instructions; [`copy`] plans COPY with Docker's
//!   semantics over a [`tree::SourceTree`] (the context or another stage); [`fsview`] is the
//!   metadata view of an image's filesystem; [`layers`] manages layer blobs.
//! - The cache directory is [`hoist_cache`]; [`gc`] re-exports it and adds the sandbox's
//!   part ([`SandboxRemover`], used by [`prune`]). Builds hold [`CacheLock`] shared while
//!   they run, and prune after themselves when [`BuildOptions::cache_max_bytes`] is set.
//!
//! A program that builds Dockerfiles with `RUN` must call [`sandbox_init`] first thing in
//! `main`: RUN re-executes the program as its unprivileged sandbox helper, and that call
//! is where the helper takes over. Without it, a RUN step fails and says so.
//!
//! ```no_run
//! use hoist_engine::{build, options::BuildOptions, output::OutputSpec, progress};
//! fn main() {
//!     hoist_engine::sandbox_init(); // first, before any thread starts
//!     let mut opts = BuildOptions::new("fixtures/hello");
//!     opts.outputs.push(OutputSpec::parse("type=oci,dest=/tmp/hello-oci").unwrap());
//!     let result = build(&opts, progress::display(progress::Mode::Plain).as_ref()).unwrap();
//!     println!("{}", result.manifest_digest);
//! }
//! ```
//!
//! `examples/run_build.rs` is a complete program (`cargo run -p hoist-engine --example
//! run_build -- CONTEXT OUT`).

pub mod assemble;
pub mod attestations;
pub mod buildfile;
pub mod cache;
pub mod cleanup;
pub mod compat;
pub mod copy;
pub mod copy_sources;
pub mod download;
pub mod early_push;
pub mod engine;
pub mod error;
pub(crate) mod execute;
pub mod export;
pub mod fsview;
pub mod gc;
pub mod glob;
pub mod history;
pub mod inroot;
pub mod key;
pub mod layers;
pub mod lint;
pub mod lowerprep;
pub mod options;
pub mod output;
pub mod plan;
pub mod progress;
pub mod provenance;
pub mod remote_cache;
pub mod resolver;
pub(crate) mod schedule;
pub mod ssh;
pub(crate) mod stage;
pub mod staging;
pub(crate) mod steps;
pub mod tree;
pub mod unpack;
pub mod user;
pub mod variants;

use std::io::Read;
use std::path::PathBuf;

use hoist_image::{Digest, Platform};

pub use engine::{BaseResolver, Built, BuiltImage};
pub use error::{Error, Result};
pub use gc::{
    entries, format_size, parse_size, prune, usage, CacheEntry, CacheLock, CacheUsage, Kind,
    KindUsage, PruneOptions, PruneReport, SandboxRemover,
};
pub use options::BuildOptions;

/// The sandbox helper's entry point ([`hoist_sandbox::init`]): call it first in `main` of
/// any program that builds Dockerfiles with `RUN` (see the crate docs).
pub use hoist_sandbox::init as sandbox_init;

static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Ask running builds to stop at the next step (a Ctrl-C handler calls this). The running
/// step's sandbox receives the signal itself; temporary files are removed as the build
/// unwinds.
pub fn interrupt() {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Whether [`interrupt`] was called.
pub fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst)
}

/// What [`build`] returns.
#[derive(Debug, Clone)]
pub struct BuildResult {
    /// The manifest digest: the image's identity.
    pub manifest_digest: Digest,
    /// The config digest (Docker's "image ID") of the first platform's image.
    pub config_digest: Digest,
    /// Size of the root document (manifest or index) in bytes.
    pub size: u64,
    /// The image (or images and their index), readable as a source.
    pub built: Built,
}

fn read_dockerfile(opts: &BuildOptions) -> Result<(String, String, Option<PathBuf>)> {
    match &opts.dockerfile {
        Some(p) if p.as_os_str() == "-" => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| Error::io("<stdin>", e))?;
            Ok(("Dockerfile".into(), s, None))
        }
        other => {
            // The default Dockerfile is part of the context: read it inside the context
            // (a `Dockerfile -> /etc/shadow` link must not be read); `-f` is the user's.
            let path = match other {
                Some(p) => p.clone(),
                None => inroot::host_path(&opts.context, "Dockerfile")?,
            };
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            let name = path.display().to_string();
            let text = hoist_dockerfile::error::decode(&bytes, &name)
                .map_err(|e| Error::Dockerfile(e.to_string()))?
                .to_string();
            Ok((name, text, Some(path)))
        }
    }
}

fn read_ignore(
    opts: &BuildOptions,
    df_path: Option<&PathBuf>,
) -> Result<Option<hoist_dockerfile::ignore::Matcher>> {
    let mut candidates = Vec::new();
    if opts.dockerfile.is_none() {
        candidates.push(inroot::host_path(&opts.context, "Dockerfile.dockerignore")?);
    } else if let Some(p) = df_path {
        let mut s = p.as_os_str().to_owned();
        s.push(".dockerignore");
        candidates.push(PathBuf::from(s));
    }
    candidates.push(inroot::host_path(&opts.context, ".dockerignore")?);
    for c in candidates {
        match std::fs::read_to_string(&c) {
            Ok(text) => {
                let patterns = hoist_dockerfile::ignore::parse_ignore_file(&text);
                let m = hoist_dockerfile::ignore::Matcher::new(&patterns)
                    .map_err(|e| Error::Invalid(format!("{}: {e}", c.display())))?;
                return Ok(Some(m));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(c, e)),
        }
    }
    Ok(None)
}

/// What every build reads before it starts: the parsed Dockerfile, its name for messages,
/// and the context filtered by its `.dockerignore`.
struct Prepared {
    df: hoist_dockerfile::Dockerfile,
    df_name: String,
    context: tree::LocalContext,
    /// The sha256 of the Dockerfile's text (provenance).
    df_digest: Digest,
}

/// Read and parse the Dockerfile, open the context, create the cache directory.
fn prepare(opts: &BuildOptions, progress: &dyn progress::Progress) -> Result<Prepared> {
    let (df_name, text, df_path) = read_dockerfile(opts)?;
    let df =
        hoist_dockerfile::parse(&text, &df_name).map_err(|e| Error::Dockerfile(e.to_string()))?;
    let ignore = read_ignore(opts, df_path.as_ref())?;
    lint::before_build(&df, &df_name, opts, ignore.as_ref(), progress)?;
    let context = tree::LocalContext::new(&opts.context, ignore)?;
    std::fs::create_dir_all(&opts.cache_dir).map_err(|e| Error::io(&opts.cache_dir, e))?;
    Ok(Prepared {
        df,
        df_name,
        context,
        df_digest: Digest::sha256(text.as_bytes()),
    })
}

/// Run a build with the default resolver (local image transports and registries).
pub fn build(opts: &BuildOptions, progress: &dyn progress::Progress) -> Result<BuildResult> {
    let opts = &opts.absolute();
    let resolver = resolver::DefaultResolver::new(opts, progress)?;
    build_with(opts, progress, &resolver, Some(&resolver))
}

/// Run a build with a given resolver for base images and pusher for `type=image,push=true`.
///
/// The build holds the cache's lock shared from start to end (see [`gc`]), so a
/// concurrent prune never removes what it uses; with [`BuildOptions::cache_max_bytes`]
/// set, a successful build then prunes the cache to that bound (after writing its
/// outputs), reporting what it evicted as [`progress::Event::Info`].
pub fn build_with(
    opts: &BuildOptions,
    progress: &dyn progress::Progress,
    resolver: &dyn BaseResolver,
    pusher: Option<&dyn export::Pusher>,
) -> Result<BuildResult> {
    let opts = &opts.absolute();
    let input = prepare(opts, progress)?;
    let lock = lock_cache(opts, progress)?;
    let result = build_locked(opts, progress, resolver, pusher, &input)?;
    drop(lock);
    if let Some(max) = opts.cache_max_bytes {
        prune_after_build(opts, max, progress);
    }
    Ok(result)
}

/// The build's shared hold on the cache. A lock that cannot be taken fails the build
/// (naming the lock file and the reason): an unlocked build could have a concurrent
/// prune remove what it uses. Only a file system without `flock` support (ENOLCK,
/// EOPNOTSUPP: some network file systems) lets the build run unlocked, with a warning.
fn lock_cache(
    opts: &BuildOptions,
    progress: &dyn progress::Progress,
) -> Result<Option<gc::CacheLock>> {
    let r = gc::CacheLock::shared_telling(&opts.cache_dir, || {
        progress.event(progress::Event::Info(&format!(
            "waiting for the prune of {} to finish",
            opts.cache_dir.display()
        )))
    });
    match r {
        Ok(l) => Ok(Some(l)),
        Err(e) if lock_unsupported(&e) => {
            let msg = format!(
                "cannot lock the cache ({}): this file system does not support locks, so a \
                 concurrent cache prune could disturb this build",
                hoist_image::chain_text(&e)
            );
            tracing::warn!("{msg}");
            progress.event(progress::Event::Warning(&msg));
            Ok(None)
        }
        Err(e) => Err(Error::Invalid(format!(
            "cannot lock the cache {}: {}",
            opts.cache_dir.display(),
            hoist_image::chain_text(&e)
        ))),
    }
}

/// Whether a cache lock failed only because the file system has no `flock`
/// (ENOLCK, EOPNOTSUPP).
fn lock_unsupported(e: &hoist_cache::Error) -> bool {
    const ENOLCK: i32 = 37;
    const EOPNOTSUPP: i32 = 95;
    matches!(e, hoist_cache::Error::Io { source, .. }
        if matches!(source.raw_os_error(), Some(ENOLCK | EOPNOTSUPP)))
}

fn prune_after_build(opts: &BuildOptions, max: u64, progress: &dyn progress::Progress) {
    match gc::prune(&opts.cache_dir, &gc::PruneOptions::new(max)) {
        Ok(r) => {
            if r.skipped.is_some() || !r.evicted.is_empty() || r.bytes_after > max {
                progress.event(progress::Event::Info(&r.summary()));
            }
            for e in r.errors.iter().take(5) {
                progress.event(progress::Event::Warning(&format!("cache prune: {e}")));
            }
        }
        Err(e) => progress.event(progress::Event::Warning(&format!(
            "cache prune failed: {e}"
        ))),
    }
}

fn build_locked(
    opts: &BuildOptions,
    progress: &dyn progress::Progress,
    resolver: &dyn BaseResolver,
    pusher: Option<&dyn export::Pusher>,
    input: &Prepared,
) -> Result<BuildResult> {
    if opts.outputs.is_empty() {
        progress.event(progress::Event::Warning(
            "no --output given: the image is kept only in hoist's cache (add -o type=oci,dest=DIR, -o type=docker,dest=FILE.tar or --push)",
        ));
    }
    let oci = opts.outputs.first().map(output_is_oci).unwrap_or(true);
    let session = remote_cache::Session::open(opts, progress)?.map(std::sync::Arc::new);
    let built = build_images_locked(opts, progress, resolver, input, oci, session.as_ref())?;
    let scratch = engine::scratch_dir(&opts.cache_dir)?;
    // Each output gets the build in the encoding it asks for (the first output's is the
    // one the steps wrote; others re-encode cached diffs, never re-running a step).
    let mut meta = None;
    let mut groups: Vec<(variants::Encoding, bool, Vec<output::OutputSpec>)> = Vec::new();
    for o in &opts.outputs {
        let key = (variants::Encoding::of(o), output_is_oci(o));
        match groups.iter_mut().find(|g| (g.0, g.1) == key) {
            Some(g) => g.2.push(o.clone()),
            None => groups.push((key.0, key.1, vec![o.clone()])),
        }
    }
    if groups.is_empty() {
        groups.push((built.first().encoding(), oci, Vec::new()));
    }
    // All outputs or none: every file output is staged first, then the pushes run,
    // then the staged outputs are renamed into place together (see `staging`).
    let mut staging = staging::Staging::new();
    let mut encoded = Vec::new();
    for (encoding, oci, outputs) in &groups {
        let b = built.encoded(*encoding, *oci)?;
        // Layers still only in a remote cache: fetched for outputs that write bytes; a
        // push mounts them instead.
        if let Some(sess) = &session {
            if pusher.is_none()
                || outputs
                    .iter()
                    .any(|o| !matches!(o.output, output::Output::Image { .. }))
            {
                sess.ensure_image(&b.source())?;
            }
        }
        let m = export::stage_built(
            &b,
            outputs,
            &opts.tags,
            scratch.path(),
            progress,
            &mut staging,
        )?;
        meta.get_or_insert(m);
        encoded.push((b, outputs));
    }
    for (b, outputs) in &encoded {
        let lazy_pusher = match (&session, pusher) {
            (Some(s), Some(p)) => Some(remote_cache::LazyPusher {
                inner: p,
                session: s,
            }),
            _ => None,
        };
        let pusher = match &lazy_pusher {
            Some(p) => Some(p as &dyn export::Pusher),
            None => pusher,
        };
        export::push(&b.source(), outputs, &opts.tags, pusher, progress)?;
    }
    staging.commit()?;
    let meta = meta.expect("at least one group");
    if let Some(p) = &opts.iidfile {
        export::create_parent_dir(p)?;
        meta.write_iidfile(p)?;
    }
    if let Some(p) = &opts.metadata_file {
        export::create_parent_dir(p)?;
        meta.write_metadata_file(p)?;
    }
    if let Some(s) = &session {
        // After the image is complete and every output written.
        let mut pushed = Vec::new();
        for o in &opts.outputs {
            if let output::Output::Image { names, push: true } = &o.output {
                pushed.extend(if names.is_empty() {
                    opts.tags.clone()
                } else {
                    names.clone()
                });
            }
        }
        remote_cache::write::export_all(s, built.first().encoding(), &pushed, progress)?;
        progress.event(progress::Event::Info(&s.summary()));
    }
    Ok(BuildResult {
        manifest_digest: meta.manifest_digest.clone(),
        config_digest: built.first().config.digest(),
        size: meta.size,
        built,
    })
}

/// Whether an output wants OCI media types (the default) rather than Docker's.
fn output_is_oci(o: &output::OutputSpec) -> bool {
    o.oci_mediatypes != Some(false)
}

/// Build the image of `opts` (its `--target` stage) into the cache's blob store and
/// write no output: the caller decides what to do with the image (export it with
/// [`export::export`], push it, read it as a [`hoist_image::Source`]). `oci` picks OCI
/// media types, otherwise Docker's. `outputs`, `iidfile`, `metadata_file` and
/// `cache_max_bytes` of `opts` are not used. One platform only: with several
/// [`BuildOptions::platforms`] use [`build_images`].
///
/// The cache is locked shared only while building: a caller that exports afterwards
/// and shares the cache with `prune`s should hold [`gc::CacheLock::shared`] itself.
pub fn build_image(
    opts: &BuildOptions,
    progress: &dyn progress::Progress,
    resolver: &dyn BaseResolver,
    oci: bool,
) -> Result<BuiltImage> {
    if opts.target_platforms().len() > 1 {
        return Err(Error::Invalid(
            "several platforms make an image index: use build_images".into(),
        ));
    }
    let built = build_images(opts, progress, resolver, oci)?;
    Ok(built.images.into_iter().next().expect("one platform"))
}

/// [`build_image`] for every platform of [`BuildOptions::target_platforms`]: one image
/// per platform (built one after the other, sharing the step cache, so stages that run
/// on the build platform are built once), and an image index over them when there are
/// several.
pub fn build_images(
    opts: &BuildOptions,
    progress: &dyn progress::Progress,
    resolver: &dyn BaseResolver,
    oci: bool,
) -> Result<Built> {
    let opts = &opts.absolute();
    let input = prepare(opts, progress)?;
    let lock = lock_cache(opts, progress)?;
    let built = build_images_with_caches(opts, progress, resolver, &input, oci);
    drop(lock);
    built
}

/// [`build_images_locked`] with the `--cache-from`/`--cache-to` of `opts`: every blob
/// of the result is in the store afterwards (the caller reads it), and the caches are
/// exported once the images are complete.
fn build_images_with_caches(
    opts: &BuildOptions,
    progress: &dyn progress::Progress,
    resolver: &dyn BaseResolver,
    input: &Prepared,
    oci: bool,
) -> Result<Built> {
    let session = remote_cache::Session::open(opts, progress)?.map(std::sync::Arc::new);
    let built = build_images_locked(opts, progress, resolver, input, oci, session.as_ref())?;
    if let Some(s) = &session {
        s.ensure_image(&built.source())?;
        remote_cache::write::export_all(s, built.first().encoding(), &[], progress)?;
        progress.event(progress::Event::Info(&s.summary()));
    }
    Ok(built)
}

fn build_images_locked(
    opts: &BuildOptions,
    progress: &dyn progress::Progress,
    resolver: &dyn BaseResolver,
    input: &Prepared,
    oci: bool,
    session: Option<&std::sync::Arc<remote_cache::Session>>,
) -> Result<Built> {
    let platforms = opts.target_platforms();
    let several = platforms.len() > 1;
    export::check_outputs(&opts.outputs, platforms.len())?;
    attestations::check_outputs(opts, oci)?;
    let mut index_annotations = std::collections::BTreeMap::new();
    let mut descriptor_annotations = std::collections::BTreeMap::new();
    for o in &opts.outputs {
        index_annotations.extend(o.index_annotations.clone());
        descriptor_annotations.extend(o.descriptor_annotations.clone());
    }
    if !several && (!index_annotations.is_empty() || !descriptor_annotations.is_empty()) {
        progress.event(progress::Event::Warning(
            "annotation-index and annotation-manifest-descriptor apply to the image index of a \
             multi-platform build; a single-platform image has none",
        ));
    }
    // Key files given as ssh sources are served by agents that live as long as the build
    // (every platform's).
    let (sockets, _agents) = ssh::agent_sockets(&opts.ssh)?;
    let with_agents;
    let opts = if sockets != opts.ssh {
        with_agents = BuildOptions {
            ssh: sockets,
            ..opts.clone()
        };
        &with_agents
    } else {
        opts
    };
    let mut images = Vec::new();
    for (i, p) in platforms.into_iter().enumerate() {
        if several {
            progress.event(progress::Event::Info(&format!("building for {p}")));
        }
        images.push(build_image_locked(
            opts,
            progress,
            resolver,
            input,
            oci,
            p,
            i == 0,
            session,
        )?);
    }
    if !several && !opts.attest.any() {
        return Ok(Built::single(images.pop().expect("one platform")));
    }
    Built::indexed(images, oci, &index_annotations, &descriptor_annotations)
}

/// One platform's image. `opts.ssh` already names agent sockets.
fn build_image_locked(
    opts: &BuildOptions,
    progress: &dyn progress::Progress,
    resolver: &dyn BaseResolver,
    input: &Prepared,
    oci: bool,
    platform: Platform,
    warn_unused: bool,
    session: Option<&std::sync::Arc<remote_cache::Session>>,
) -> Result<BuiltImage> {
    let store = hoist_image::BlobStore::new(opts.cache_dir.join("blobs"))?;
    let scratch = engine::scratch_dir(&opts.cache_dir)?;
    let mut eng = engine::Engine::new(
        opts,
        progress,
        resolver,
        input.context.clone(),
        store,
        scratch.path().to_path_buf(),
    )?;
    eng.remote = session.cloned();
    let host = Platform::host();
    let platforms = hoist_dockerfile::Platforms {
        target_os: platform.os.clone(),
        target_arch: platform.architecture.clone(),
        target_variant: platform.variant.clone().unwrap_or_default(),
        build_os: host.os.clone(),
        build_arch: host.architecture.clone(),
        build_variant: host.variant.clone().unwrap_or_default(),
    };
    let global = hoist_dockerfile::GlobalScope::new(&input.df, &opts.build_args, &platforms)
        .map_err(|e| Error::Dockerfile(e.to_string()))?;
    let plan = plan::plan(
        &plan::PlanInput {
            df: &input.df,
            df_name: &input.df_name,
            global: &global,
            target: opts.target.as_deref(),
            platform: &platform,
            named_contexts: &opts.named_contexts,
        },
        &eng,
    )?;
    let state = schedule::run(&eng, &plan, opts.effective_jobs())?;
    if warn_unused {
        let declared = plan.declared_args();
        let unused: Vec<String> = global
            .unused_build_args(std::iter::empty())
            .into_iter()
            .filter(|a| !declared.contains(a) && a != "SOURCE_DATE_EPOCH")
            .collect();
        if !unused.is_empty() {
            progress.event(progress::Event::Warning(&format!(
                "one or more build args [{}] were not consumed",
                unused.join(" ")
            )));
        }
    }
    let mut image = finish(&eng, &state, oci)?;
    eng.hasher.save();
    if opts.attest.any() {
        image.attestations = attestations::predicates(&eng, input, &image)?;
    }
    Ok(image)
}

/// The image of the target stage: its config with the build's labels and created
/// time, its layers in the primary encoding.
fn finish(eng: &engine::Engine<'_>, state: &stage::StageState, oci: bool) -> Result<BuiltImage> {
    let opts = eng.opts;
    let mut config = state.config.clone();
    config.created = Some(eng.created.clone());
    if !opts.default_labels.is_empty() || !opts.labels.is_empty() {
        let labels = config
            .config
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(std::collections::BTreeMap::new);
        for (k, v) in &opts.default_labels {
            labels.entry(k.clone()).or_insert_with(|| v.clone());
        }
        for (k, v) in &opts.labels {
            labels.insert(k.clone(), v.clone());
        }
    }
    if let Some(s) = &eng.remote {
        s.finals.lock().expect("poisoned").push(state.key);
        if remote_cache::wants_inline(eng.remote.as_ref()) {
            config.extra.insert(
                remote_cache::format::INLINE_CONFIG_KEY.to_string(),
                remote_cache::inline_config(s, &state.key, &state.layers, eng.encoding),
            );
        }
    }
    let mut annotations = std::collections::BTreeMap::new();
    for o in &opts.outputs {
        annotations.extend(o.annotations.clone());
    }
    assemble::assemble(&assemble::AssembleInput {
        store: &eng.store,
        cache_dir: &opts.cache_dir,
        config,
        layers: &state.layers,
        annotations: &annotations,
        encoding: eng.encoding,
        oci,
        remote: eng.remote.clone(),
    })
}
