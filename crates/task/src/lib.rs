//! hoist's Concourse task mode: a drop-in replacement for
//! [oci-build-task](https://github.com/concourse/oci-build-task) that needs no daemon and
//! no `privileged: true`.
//!
//! Concourse runs a task in a working directory holding its inputs and (empty) output
//! directories, with the task's params as environment variables. [`TaskParams::from_env`]
//! reads oci-build-task's params (and hoist's `HOIST_*` ones) strictly; [`run`] builds the
//! image — plus `ADDITIONAL_TARGETS`, or every image of a build file ([`buildfile`]) —
//! and writes each into its output directory when that directory exists ([`outputs`]).
//! A `cache/` directory (a Concourse task cache) keeps layers, the step cache and
//! `RUN --mount=type=cache` contents between runs, bounded in size.
//!
//! See `docs/concourse.md` for pipelines.

/// The build file (shared with `hoist bake`): [`hoist_engine::buildfile`].
pub use hoist_engine::buildfile;
pub mod cache_params;
pub mod files;
pub mod outputs;
pub mod params;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hoist_engine::options::BuildOptions;
use hoist_engine::progress::{Event, Progress};
use hoist_image::Digest;

pub use params::{ParamError, ParamErrors, TaskParams};

/// What can go wrong in a task.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The params are wrong (nothing was built).
    #[error("{0}")]
    Params(#[from] ParamErrors),
    /// The build file is wrong (nothing was built).
    #[error("build file {0}")]
    BuildFile(String),
    /// A build failed.
    #[error("building {image}")]
    Build {
        /// Which image.
        image: String,
        /// Why.
        #[source]
        source: hoist_engine::Error,
    },
    /// Writing an output failed.
    #[error("writing outputs: {0}")]
    Output(String),
    /// An image operation failed.
    #[error(transparent)]
    Image(#[from] hoist_image::Error),
    /// A file could not be read or written.
    #[error("{}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// One image a task builds.
#[derive(Debug, Clone)]
pub struct Job {
    /// The name shown in logs (`image`, a target, a build-file image).
    pub name: String,
    /// The output directory (written only if it exists).
    pub output_dir: PathBuf,
    /// The build.
    pub options: BuildOptions,
    /// Names recorded in `image.tar`.
    pub tags: Vec<String>,
}

/// What one image of the task produced.
#[derive(Debug, Clone)]
pub struct ImageReport {
    /// The job's name.
    pub name: String,
    /// The OCI manifest digest of the built image (the index digest for several
    /// platforms).
    pub manifest_digest: Digest,
    /// What was written, or `None` when the output directory does not exist.
    pub written: Option<outputs::Written>,
}

/// What a task run did.
#[derive(Debug, Clone)]
pub struct TaskReport {
    /// Every image, in build order.
    pub images: Vec<ImageReport>,
}

fn base_options(p: &TaskParams, cache_dir: &Path, auth_file: Option<&Path>) -> BuildOptions {
    let mut o = BuildOptions::new(&p.context);
    o.cache_dir = cache_dir.to_path_buf();
    o.build_args = p.build_args.clone();
    o.labels = p.labels.clone();
    o.platforms = p.platforms.clone();
    o.secrets = p.secrets.clone();
    o.ssh = p.ssh.clone();
    o.add_hosts = p.add_hosts.clone();
    o.no_cache = p.no_cache;
    o.cache_from = p.cache_from.clone();
    o.cache_to = p.cache_to.clone();
    o.pull = p.pull;
    o.source_date_epoch = p.source_date_epoch;
    let mut reg = hoist_registry::ClientConfig {
        ca_certs: p.ca_certs.clone(),
        mirrors: p.registry_mirrors.clone(),
        insecure: p.insecure_registries.clone(),
        ..Default::default()
    };
    reg.auth.explicit.extend(p.credentials.clone());
    if let Some(f) = auth_file {
        // HOIST_REGISTRY_AUTH first, then the usual credential files.
        let mut files = vec![f.to_path_buf()];
        files.extend(reg.auth.search_path());
        reg.auth.files = Some(files);
    }
    o.registry = reg;
    o
}

/// The builds a task's params ask for, in order: each `ADDITIONAL_TARGETS` entry, then the
/// main image (as oci-build-task does), or every image of the build file.
/// `auth_file` holds `HOIST_REGISTRY_AUTH`'s document (see [`run`]).
pub fn plan(p: &TaskParams, cache_dir: &Path, auth_file: Option<&Path>) -> Result<Vec<Job>> {
    let mut jobs = Vec::new();
    if let Some(f) = &p.build_file {
        let specs = buildfile::load(f).map_err(Error::BuildFile)?;
        for s in specs {
            if !s.outputs.is_empty() || s.push {
                return Err(Error::BuildFile(format!(
                    "image {}: outputs and push are for hoist bake; a task writes each image to \
                     its output directory (push it with registry-image's put)",
                    s.name
                )));
            }
            if s.attest.any() {
                return Err(Error::BuildFile(format!(
                    "image {}: attest is for hoist bake; a task writes image.tar (a \
                     docker-archive), which cannot hold attestations",
                    s.name
                )));
            }
            let mut o = base_options(p, cache_dir, auth_file);
            o.context = s.context.clone();
            o.dockerfile = Some(s.dockerfile.clone());
            o.target = s.target.clone();
            // The file's args win over the task's BUILD_ARG_* params, which fill in the rest.
            o.build_args.extend(s.args.clone());
            o.labels.extend(s.labels.clone());
            if !s.platforms.is_empty() {
                o.platforms = s.platforms.clone();
            }
            params::check_platforms(&o.platforms, p.output_oci, p.unpack_rootfs)
                .map_err(|e| Error::BuildFile(format!("image {}: platform {e}", s.name)))?;
            provenance(&mut o);
            let tags = if s.tags.is_empty() {
                p.tags.clone()
            } else {
                s.tags.clone()
            };
            jobs.push(Job {
                name: s.name.clone(),
                output_dir: p.workdir.join(&s.output),
                options: o,
                tags,
            });
        }
        return Ok(jobs);
    }
    let mut main = base_options(p, cache_dir, auth_file);
    main.dockerfile = p.dockerfile.clone();
    provenance(&mut main);
    for t in &p.additional_targets {
        let mut o = main.clone();
        o.target = Some(t.clone());
        jobs.push(Job {
            name: t.clone(),
            output_dir: p.workdir.join(t),
            options: o,
            tags: p.tags.clone(),
        });
    }
    main.target = p.target.clone();
    jobs.push(Job {
        name: "image".into(),
        output_dir: p.workdir.join("image"),
        options: main,
        tags: p.tags.clone(),
    });
    Ok(jobs)
}

/// Git provenance labels when the context is a git checkout (a Concourse `git` input).
fn provenance(o: &mut BuildOptions) {
    if let Some(info) = hoist_engine::provenance::git_info(&o.context) {
        o.default_labels = hoist_engine::provenance::labels(&info);
    }
}

/// Run a task: build every job of [`plan`] and write its outputs.
pub fn run(p: &TaskParams, progress: &dyn Progress) -> Result<TaskReport> {
    // Without a `cache` directory the cache lives only as long as the task.
    let temp_cache;
    let cache_dir = match &p.cache_dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|e| Error::Io {
                path: d.clone(),
                source: e,
            })?;
            d.clone()
        }
        None => {
            temp_cache = tempfile::Builder::new()
                .prefix("hoist-task-cache-")
                .tempdir()
                .map_err(|e| Error::Io {
                    path: std::env::temp_dir(),
                    source: e,
                })?;
            temp_cache.path().to_path_buf()
        }
    };
    // HOIST_REGISTRY_AUTH becomes a private credential file for the task's duration.
    let auth_dir = match &p.auth_json {
        Some(doc) => {
            let d = tempfile::Builder::new()
                .prefix("hoist-task-auth-")
                .tempdir()
                .map_err(|e| Error::Io {
                    path: std::env::temp_dir(),
                    source: e,
                })?;
            let f = d.path().join("auth.json");
            hoist_image::atomic_write(&f, doc.as_bytes())?;
            Some((d, f))
        }
        None => None,
    };
    let jobs = plan(p, &cache_dir, auth_dir.as_ref().map(|(_, f)| f.as_path()))?;
    let missing: Vec<String> = jobs
        .iter()
        .filter(|j| !j.output_dir.is_dir())
        .map(|j| j.name.clone())
        .collect();
    if !missing.is_empty() {
        progress.event(Event::Warning(&format!(
            "no output directory for {}: built but not written (declare the outputs in the task)",
            missing.join(", ")
        )));
    }
    let opts = outputs::OutputOptions {
        oci_layout: p.output_oci,
        unpack_rootfs: p.unpack_rootfs,
        tags: Vec::new(),
        unsafe_files: p.unsafe_files,
    };
    // Held from the first build to the last output, so a concurrent prune of a shared
    // cache never removes what the outputs are written from.
    let lock = match hoist_cache::CacheLock::shared(&cache_dir) {
        Ok(l) => Some(l),
        Err(e) => {
            let msg = format!(
                "cannot lock the cache ({}): a concurrent cache prune could disturb this run",
                hoist_image::chain_text(&e)
            );
            tracing::warn!("{msg}");
            progress.event(Event::Warning(&msg));
            None
        }
    };
    let mut images = Vec::new();
    for job in &jobs {
        progress.event(Event::Info(&format!("building {}", job.name)));
        let resolver = hoist_engine::resolver::DefaultResolver::new(&job.options, progress)
            .map_err(|e| Error::Build {
                image: job.name.clone(),
                source: e,
            })?;
        // A run killed by a signal leaves `.tmp-*` entries behind: sweep those first.
        hoist_engine::cleanup::sweep_stale(&job.options.cache_dir);
        let built =
            hoist_engine::build_images(&job.options, progress, &resolver, true).map_err(|e| {
                Error::Build {
                    image: job.name.clone(),
                    source: e,
                }
            })?;
        let written = if job.output_dir.is_dir() {
            let o = outputs::OutputOptions {
                tags: job.tags.clone(),
                ..opts.clone()
            };
            Some(outputs::write(&built, &job.output_dir, &o, progress)?)
        } else {
            None
        };
        images.push(ImageReport {
            name: job.name.clone(),
            manifest_digest: built.digest(),
            written,
        });
    }
    drop(lock);
    if p.cache_dir.is_some() {
        prune_cache(&cache_dir, p.cache_max_bytes, progress);
    } else {
        // The temporary cache may hold files of other (subordinate) users.
        let _ = hoist_cache::prune(&cache_dir, &prune_options(&cache_dir, 0));
    }
    Ok(TaskReport { images })
}

/// Prune to `max` bytes, removing trees of subordinate ids (rootless RUN) through the
/// sandbox.
fn prune_options(cache_dir: &Path, max: u64) -> hoist_cache::PruneOptions {
    hoist_cache::PruneOptions::new(max)
        .with_remover(hoist_engine::SandboxRemover::shared(cache_dir))
}

/// Keep the task cache under its bound, least recently used entries first.
fn prune_cache(cache_dir: &Path, max: u64, progress: &dyn Progress) {
    match hoist_cache::prune(cache_dir, &prune_options(cache_dir, max)) {
        Ok(r) => {
            progress.event(Event::Info(&r.summary()));
            for e in r.errors.iter().take(5) {
                progress.event(Event::Warning(&format!("cache prune: {e}")));
            }
        }
        Err(e) => progress.event(Event::Warning(&format!("cache prune failed: {e}"))),
    }
}

/// The environment of this process as a map (what Concourse passes as params).
pub fn process_env() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}
