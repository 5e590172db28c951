//! `hoist assemble`: a base plus files and config, no Dockerfile, no RUN (ko, jib,
//! `crane append`). Flags (or `-f image.toml`) become a [`Recipe`] applied with the
//! image crate's mutate API; outputs use `hoist build`'s `--output` syntax.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use hoist_engine::export::{export, Pusher};
use hoist_engine::output::{Output, OutputSpec};
use hoist_engine::resolver::{registry_reference, DefaultResolver};
use hoist_image::layer::WriteOptions;
use hoist_image::mutate::{reproducible_time, AddSpec, Image, MediaTypes, Recipe, WrittenIndex};
use hoist_image::{Platform, Source};
use hoist_registry::{PullPolicy, PushOptions};

use super::transfer::{cache_store, open_any};

/// Flags of `hoist assemble`.
#[derive(Debug, Args)]
pub struct AssembleArgs {
    /// A spec file (TOML; see docs/assemble.md). Flags add to it.
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Base image: REF (registry), oci:DIR[:TAG], oci-archive:…, docker-archive:…, or scratch.
    #[arg(long)]
    pub base: Option<String>,
    /// Files to add: [PLATFORM=]SRC:DEST[,mode=0755][,owner=UID:GID] (repeatable).
    #[arg(long = "add")]
    pub adds: Vec<String>,
    /// Put every --add group into one layer (default: one layer per group).
    #[arg(long = "one-layer")]
    pub one_layer: bool,
    /// Entrypoint: a JSON array, or a command line split at spaces.
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Default command: a JSON array, or a command line split at spaces.
    #[arg(long)]
    pub cmd: Option<String>,
    /// Environment variable K=V (repeatable).
    #[arg(long = "env")]
    pub env: Vec<String>,
    /// Working directory.
    #[arg(long)]
    pub workdir: Option<String>,
    /// User (NAME, UID or UID:GID).
    #[arg(long)]
    pub user: Option<String>,
    /// Label K=V (repeatable).
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Port to expose: 8080, 53/udp (repeatable).
    #[arg(long = "expose")]
    pub expose: Vec<String>,
    /// Platforms, comma-separated (default: those --add names, else the host's).
    #[arg(long)]
    pub platform: Option<String>,
    /// Image name(s) (repeatable).
    #[arg(short = 't', long = "tag")]
    pub tags: Vec<String>,
    /// Output, as `hoist build --output` (type=oci,dest=…; type=docker,dest=…; …).
    #[arg(short = 'o', long = "output")]
    pub outputs: Vec<String>,
    /// Push to every -t name.
    #[arg(long)]
    pub push: bool,
    /// Write Docker media types instead of OCI's.
    #[arg(long = "docker-media-types")]
    pub docker_media_types: bool,
    /// hoist's cache directory.
    #[arg(long = "cache-dir", env = "HOIST_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Registry settings.
    #[command(flatten)]
    pub registry: super::registry_args::RegistryArgs,
}

fn argv(flag: &str, s: &str) -> Result<Vec<String>> {
    if s.trim_start().starts_with('[') {
        return serde_json::from_str(s)
            .with_context(|| format!("--{flag} {s:?}: not a JSON array of strings"));
    }
    Ok(s.split_whitespace().map(String::from).collect())
}

fn kv(flag: &str, s: &str) -> Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.into(), v.into())),
        _ => bail!("--{flag} {s:?}: expected KEY=VALUE"),
    }
}

impl AssembleArgs {
    /// The recipe (spec file, then flags) and the directory its paths are relative to.
    pub fn to_recipe(&self) -> Result<(Recipe, PathBuf)> {
        let (mut r, dir) = match &self.file {
            Some(f) => {
                let text = std::fs::read_to_string(f)
                    .with_context(|| format!("reading {}", f.display()))?;
                let r: Recipe =
                    toml::from_str(&text).with_context(|| format!("{}", f.display()))?;
                let dir = f.parent().map(PathBuf::from).unwrap_or_default();
                (r, dir)
            }
            None => (Recipe::default(), PathBuf::from(".")),
        };
        if self.base.is_some() {
            r.base = self.base.clone();
        }
        for a in &self.adds {
            r.add.push(AddSpec::parse(a)?);
        }
        r.one_layer |= self.one_layer;
        if let Some(e) = &self.entrypoint {
            r.entrypoint = Some(argv("entrypoint", e)?);
        }
        if let Some(c) = &self.cmd {
            r.cmd = Some(argv("cmd", c)?);
        }
        for e in &self.env {
            let (k, v) = kv("env", e)?;
            r.env.insert(k, v);
        }
        for l in &self.labels {
            let (k, v) = kv("label", l)?;
            r.labels.insert(k, v);
        }
        r.workdir = self.workdir.clone().or(r.workdir);
        r.user = self.user.clone().or(r.user);
        r.expose.extend(self.expose.iter().cloned());
        if let Some(p) = &self.platform {
            r.platforms = p.split(',').map(|s| s.trim().to_string()).collect();
        }
        if r.add.is_empty()
            && r.entrypoint.is_none()
            && r.cmd.is_none()
            && r.env.is_empty()
            && r.labels.is_empty()
        {
            bail!(
                "nothing to assemble: give --add SRC:DEST (or config flags such as --entrypoint)"
            );
        }
        Ok((r, dir))
    }
}

/// Pushes with the base's repository as a cross-repository mount source.
struct MountingPusher<'a> {
    resolver: &'a DefaultResolver<'static>,
    mount_from: Vec<hoist_registry::Reference>,
}

impl Pusher for MountingPusher<'_> {
    fn push(&self, src: &dyn Source, names: &[String]) -> hoist_engine::Result<()> {
        let refs = names
            .iter()
            .map(|n| registry_reference(n))
            .collect::<hoist_engine::Result<Vec<_>>>()?;
        let opts = PushOptions {
            mount_from: self.mount_from.clone(),
            cache: Some(self.resolver.store().clone()),
            ..Default::default()
        };
        let r = self
            .resolver
            .client()?
            .push(src, &refs, &opts)
            .map_err(|e| hoist_engine::Error::Image(e.into()))?;
        eprintln!(
            "pushed {}: {} blobs uploaded ({} bytes), {} mounted, {} already present",
            names.join(", "),
            r.uploaded,
            r.uploaded_bytes,
            r.mounted,
            r.skipped
        );
        Ok(())
    }
}

/// Run `hoist assemble`.
pub fn run(a: AssembleArgs) -> Result<ExitCode> {
    let (recipe, dir) = a.to_recipe()?;
    let mut outputs = a
        .outputs
        .iter()
        .map(|o| OutputSpec::parse(o))
        .collect::<Result<Vec<_>, _>>()?;
    if a.push {
        outputs.push(OutputSpec::parse("type=image,push=true")?);
    }
    if outputs.is_empty() {
        bail!("no output: give -o type=oci,dest=DIR (or another --output) or --push");
    }
    let pushes = outputs
        .iter()
        .any(|o| matches!(&o.output, Output::Image { push: true, .. }));
    if pushes
        && a.tags.is_empty()
        && !outputs
            .iter()
            .any(|o| matches!(&o.output, Output::Image { names, .. } if !names.is_empty()))
    {
        bail!("pushing needs a -t NAME (or --output type=image,name=REF,push=true)");
    }
    let (store, _lock) = cache_store(&a.cache_dir)?;
    let resolver =
        DefaultResolver::standalone(a.registry.to_config(), store.clone(), PullPolicy::Missing);
    let platforms = recipe.target_platforms(&Platform::host())?;
    let base_ref = recipe
        .base
        .clone()
        .filter(|b| !b.eq_ignore_ascii_case("scratch"));
    let base_src: Option<Arc<dyn Source>> = match &base_ref {
        Some(b) => Some(Arc::from(
            open_any(b, &resolver).with_context(|| format!("base {b}"))?,
        )),
        None => None,
    };
    let epoch = reproducible_time();
    let attrs = super::output_attrs::for_assemble(&outputs)?;
    if a.docker_media_types && attrs.oci_mediatypes == Some(true) {
        bail!("--docker-media-types and --output oci-mediatypes=true exclude each other");
    }
    let family = if a.docker_media_types || attrs.oci_mediatypes == Some(false) {
        MediaTypes::Docker
    } else {
        MediaTypes::Oci
    };
    if family == MediaTypes::Docker
        && !(attrs.annotations.is_empty()
            && attrs.index_annotations.is_empty()
            && attrs.descriptor_annotations.is_empty())
    {
        bail!(
            "--output annotation.*: Docker media types (--docker-media-types or \
             oci-mediatypes=false) have no annotations; use OCI media types to annotate"
        );
    }
    if platforms.len() < 2
        && !(attrs.index_annotations.is_empty() && attrs.descriptor_annotations.is_empty())
    {
        bail!(
            "--output annotation-index.* and annotation-manifest-descriptor.* apply to the \
             image index of a multi-platform image; this one has one platform (use annotation.*)"
        );
    }
    let mut opts = WriteOptions::default();
    if let Some(c) = attrs.compression {
        opts.compression = c;
    }
    opts.level = attrs.level;
    let mut images = Vec::new();
    for p in &platforms {
        let base = match &base_src {
            Some(s) => Image::from_source(s.clone(), p).with_context(|| format!("base for {p}"))?,
            None => Image::empty(p),
        };
        let img = recipe
            .apply(base, p, &dir, &store, epoch, &opts)
            .with_context(|| format!("assembling for {p}"))?
            .with_annotations(&attrs.annotations)
            .with_media_types(family);
        images.push(img.write(&store)?);
    }
    let mount_from = match &base_ref {
        Some(b) if hoist_engine::resolver::open_local(b)?.is_none() => vec![registry_reference(b)?],
        _ => Vec::new(),
    };
    let pusher = MountingPusher {
        resolver: &resolver,
        mount_from,
    };
    let progress = hoist_engine::progress::Quiet;
    let scratch = tempfile::tempdir()?;
    let first = images[0].platform.clone();
    let meta = if images.len() == 1 {
        export(
            &images[0],
            &first,
            &outputs,
            &a.tags,
            scratch.path(),
            Some(&pusher),
            &progress,
        )?
    } else {
        hoist_engine::export::check_outputs(&outputs, images.len())?;
        let idx = WrittenIndex::new(
            images,
            family,
            &attrs.index_annotations,
            &attrs.descriptor_annotations,
        )?;
        export(
            &idx,
            &first,
            &outputs,
            &a.tags,
            scratch.path(),
            Some(&pusher),
            &progress,
        )?
    };
    println!("{}", meta.manifest_digest);
    Ok(ExitCode::SUCCESS)
}
