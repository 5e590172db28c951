//! `hoist build`: the conventions of `docker build`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use hoist_engine::options::{BuildOptions, NamedContext, PullPolicy, Secret};
use hoist_engine::output::{Output, OutputSpec};
use hoist_engine::progress::{self, Mode};
use hoist_image::Platform;

/// Flags of `hoist build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The build context directory.
    pub context: PathBuf,
    /// The Dockerfile (default: CONTEXT/Dockerfile; `-` for standard input).
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Name and tag for the image (repeatable).
    #[arg(short = 't', long = "tag")]
    pub tags: Vec<String>,
    /// Set a build argument: KEY=VALUE, or KEY to take it from the environment.
    #[arg(long = "build-arg")]
    pub build_args: Vec<String>,
    /// Build this stage (name or index) instead of the last.
    #[arg(long)]
    pub target: Option<String>,
    /// Target platform(s), os/arch[/variant], comma-separated; several build one image
    /// each under an image index. Default: the host's.
    #[arg(long)]
    pub platform: Option<String>,
    /// Output: type=oci|docker|local|tar|image|registry,dest=…,… (repeatable).
    #[arg(short = 'o', long = "output")]
    pub outputs: Vec<String>,
    /// Progress display: auto, plain, json or quiet.
    #[arg(long, default_value = "auto")]
    pub progress: String,
    /// Write the image ID to this file: the config digest, as `docker build --iidfile`
    /// (the image index digest when several platforms are built).
    #[arg(long)]
    pub iidfile: Option<PathBuf>,
    /// Write build metadata (digests, size) as JSON to this file.
    #[arg(long = "metadata-file")]
    pub metadata_file: Option<PathBuf>,
    /// Extra build context: NAME=DIR, NAME=oci:PATH[:TAG], NAME=docker-image://REF … (repeatable).
    #[arg(long = "build-context")]
    pub build_contexts: Vec<String>,
    /// Set a label on the final image: KEY=VALUE (repeatable).
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Do not use the step cache.
    #[arg(long = "no-cache")]
    pub no_cache: bool,
    /// Run at most N steps at once (independent stages run in parallel; default: one
    /// per CPU core). The image is the same for every N.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: Option<u32>,
    /// When to contact registries for base images: always, missing, never.
    #[arg(long, default_value = "missing", num_args = 0..=1, default_missing_value = "always")]
    pub pull: String,
    /// Push the image to every -t name (shorthand for --output type=image,push=true).
    #[arg(long)]
    pub push: bool,
    /// Secret for RUN --mount=type=secret: id=ID[,src=FILE|,env=VAR] (repeatable).
    #[arg(long = "secret")]
    pub secrets: Vec<String>,
    /// SSH for RUN --mount=type=ssh: default|ID[=SOCKET|KEY[,KEY]] (repeatable; key files are served by an ssh-agent).
    #[arg(long = "ssh")]
    pub ssh: Vec<String>,
    /// Add a host to /etc/hosts in RUN: HOST:IP (repeatable).
    #[arg(long = "add-host")]
    pub add_hosts: Vec<String>,
    /// Default network for RUN: default, none or host (BuildKit's values; anything else
    /// is refused before the build, even when no RUN would use it).
    #[arg(long, value_parser = ["default", "none", "host"])]
    pub network: Option<String>,
    /// hoist's cache directory.
    #[arg(long = "cache-dir", env = "HOIST_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// After the build, evict least recently used cache entries until the cache fits this
    /// size (500MB, 10GiB, 2g).
    #[arg(long, env = "HOIST_CACHE_MAX_SIZE")]
    pub cache_max_size: Option<String>,
    /// What git tag templates ({git-sha}, {git-short-sha}, {git-tag}, {git-describe})
    /// do in a checkout with uncommitted changes: suffix (append -dirty) or refuse.
    #[arg(
        long = "dirty-tags",
        env = "HOIST_DIRTY_TAGS",
        default_value = "suffix"
    )]
    pub dirty_tags: String,
    /// Only print the image digest.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Build the app directory from a generated plan (see `hoist plan`) even if it has a
    /// Dockerfile. Without -f and without CONTEXT/Dockerfile this is what happens anyway.
    #[arg(long)]
    pub auto: bool,
    /// For automatic builds: base image per kind, KIND=REF (repeatable; see `hoist plan`).
    #[arg(long = "base-image")]
    pub base_images: Vec<String>,
    /// Largest file an `ADD https://…` may download (e.g. 512M, 8G; default 8G).
    #[arg(
        long = "max-download-size",
        env = "HOIST_MAX_DOWNLOAD_SIZE",
        value_name = "SIZE"
    )]
    pub max_download_size: Option<String>,
    /// An `ADD https://…` download fails when the server sends nothing (or under
    /// 1 KiB) for this long: seconds, or 500ms, 2m (default 30).
    #[arg(
        long = "download-timeout",
        env = "HOIST_DOWNLOAD_TIMEOUT",
        value_name = "DURATION"
    )]
    pub download_timeout: Option<String>,
    /// Registry settings.
    #[command(flatten)]
    pub registry: super::registry_args::RegistryArgs,
    /// `--cache-to` / `--cache-from`.
    #[command(flatten)]
    pub cache: super::cache_flags::CacheFlags,
    /// Attestations (--provenance, --sbom, --attest).
    #[command(flatten)]
    pub attest: super::attest_args::AttestArgs,
}

fn key_value(flag: &str, s: &str) -> Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => bail!("{flag} {s:?}: expected KEY=VALUE"),
    }
}

impl BuildArgs {
    /// Turn raw flags into validated build options.
    pub fn to_options(&self) -> Result<BuildOptions> {
        let mut o = BuildOptions::new(&self.context);
        o.dockerfile = self.file.clone();
        for a in &self.build_args {
            let name = a.split_once('=').map_or(a.as_str(), |(k, _)| k);
            if !name.is_empty() && !valid_arg_name(name) {
                bail!(
                    "--build-arg {a:?}: {name:?} is not a build arg name (letters, digits, _, \
                     . and -, not starting with a digit)"
                );
            }
            match a.split_once('=') {
                Some((k, v)) if !k.is_empty() => {
                    o.build_args.insert(k.to_string(), v.to_string());
                }
                Some(_) => bail!("--build-arg {a:?}: empty name"),
                None => {
                    // docker build: a bare name takes the value from the environment, if set.
                    if let Ok(v) = std::env::var(a) {
                        o.build_args.insert(a.clone(), v);
                    }
                }
            }
        }
        o.target = self.target.clone();
        if let Some(p) = &self.platform {
            for one in p.split(',').map(str::trim) {
                o.platforms.push(Platform::parse(one).with_context(|| {
                    format!(
                        "--platform {p:?}: {one:?} is not a platform \
                         (expected os/arch[/variant], e.g. linux/amd64,linux/arm64)"
                    )
                })?);
            }
        }
        // Provenance: in a git checkout, record the commit and expand tag templates.
        let git = hoist_engine::provenance::git_info(&self.context);
        for s in &self.outputs {
            o.outputs.push(OutputSpec::parse(s)?);
        }
        if self.push {
            if self.tags.is_empty() {
                bail!("--push needs at least one -t NAME to push to");
            }
            o.outputs.push(OutputSpec::parse("type=image,push=true")?);
        }
        if o.outputs
            .iter()
            .any(|s| matches!(&s.output, Output::Image { names, .. } if names.is_empty()))
            && self.tags.is_empty()
        {
            bail!("--output type=image needs name=REF or a -t NAME");
        }
        for l in &self.labels {
            let (k, v) = key_value("--label", l)?;
            o.labels.insert(k, v);
        }
        for c in &self.build_contexts {
            let (k, v) = key_value("--build-context", c)?;
            o.named_contexts.insert(k, NamedContext::parse(&v));
        }
        for s in &self.secrets {
            o.secrets.push(Secret::parse(s)?);
        }
        for s in &self.ssh {
            let (id, sock) = match s.split_once('=') {
                Some((id, sock)) => (id.to_string(), PathBuf::from(sock)),
                None => {
                    let sock = std::env::var_os("SSH_AUTH_SOCK").with_context(|| {
                        format!("--ssh {s}: no socket given and SSH_AUTH_SOCK is not set")
                    })?;
                    (s.clone(), PathBuf::from(sock))
                }
            };
            o.ssh.insert(id, sock);
        }
        for h in &self.add_hosts {
            o.add_hosts.push(
                hoist_engine::options::parse_add_host(h)
                    .map_err(|e| anyhow::anyhow!("--add-host {e}"))?,
            );
        }
        o.network = self.network.clone();
        o.no_cache = self.no_cache;
        self.cache.apply(&mut o)?;
        o.jobs = self.jobs.map(|j| j as usize);
        o.pull = self
            .pull
            .parse::<PullPolicy>()
            .map_err(|e| anyhow::anyhow!("--pull: {e}"))?;
        if let Some(d) = &self.cache_dir {
            o.cache_dir = d.clone();
        }
        if let Some(m) = &self.cache_max_size {
            o.cache_max_bytes = Some(
                hoist_cache::parse_size(m).map_err(|e| anyhow::anyhow!("--cache-max-size: {e}"))?,
            );
        }
        o.source_date_epoch = match o.build_args.get("SOURCE_DATE_EPOCH") {
            Some(v) => Some(parse_epoch("--build-arg SOURCE_DATE_EPOCH", v)?),
            None => match std::env::var("SOURCE_DATE_EPOCH") {
                Ok(v) if !v.is_empty() => Some(parse_epoch("SOURCE_DATE_EPOCH", &v)?),
                _ => None,
            },
        };
        o.registry = self.registry.to_config();
        if let Some(m) = &self.max_download_size {
            o.download.max_size = hoist_image::layer::parse_size(m)
                .ok()
                .filter(|n| *n > 0)
                .with_context(|| {
                    format!("--max-download-size {m:?}: expected a size such as 512M or 8G")
                })?;
        }
        if let Some(t) = &self.download_timeout {
            o.download.idle_timeout = hoist_engine::download::parse_timeout(t)
                .map_err(|e| anyhow::anyhow!("--download-timeout {e}"))?;
        }
        let dirty: hoist_engine::provenance::DirtyTags = self
            .dirty_tags
            .parse()
            .map_err(|e| anyhow::anyhow!("--dirty-tags {e}"))?;
        o.tags = self
            .tags
            .iter()
            .map(|t| {
                hoist_engine::provenance::expand_tag_with(
                    t,
                    git.as_ref(),
                    o.source_date_epoch,
                    dirty,
                    &|k| std::env::var(k).ok(),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(info) = &git {
            o.default_labels = hoist_engine::provenance::labels(info);
        }
        o.iidfile = self.iidfile.clone();
        o.metadata_file = self.metadata_file.clone();
        o.attest = self.attest.to_options()?;
        Ok(o)
    }
}

/// A name an `ARG` can declare and a `$NAME` can reach.
fn valid_arg_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

fn parse_epoch(what: &str, v: &str) -> Result<i64> {
    v.trim()
        .parse::<i64>()
        .ok()
        .filter(|t| *t >= 0)
        .with_context(|| format!("{what}={v:?}: expected a non-negative number of seconds"))
}

/// For an automatic build (`--auto`, or no -f and no CONTEXT/Dockerfile): the
/// generated Dockerfile, in a temporary file that lives as long as the returned handle.
fn auto_dockerfile(args: &BuildArgs) -> Result<Option<tempfile::NamedTempFile>> {
    let has_dockerfile = args.file.is_some() || args.context.join("Dockerfile").exists();
    if !args.auto && has_dockerfile {
        if !args.base_images.is_empty() {
            bail!("--base-image applies to automatic builds only (--auto, or no Dockerfile)");
        }
        return Ok(None);
    }
    if args.auto && args.file.is_some() {
        bail!("--auto and -f exclude each other: --auto generates the Dockerfile");
    }
    let plan = super::plan::plan_for(&args.context, &args.base_images)?;
    eprintln!(
        "no Dockerfile: building {} as a {} app (see `hoist plan {}`)",
        args.context.display(),
        plan.kind.name(),
        args.context.display()
    );
    let mut f = tempfile::Builder::new()
        .prefix("hoist-plan-")
        .suffix(".Dockerfile")
        .tempfile()?;
    std::io::Write::write_all(&mut f, plan.dockerfile.as_bytes())?;
    Ok(Some(f))
}

/// Run `hoist build`.
pub fn run(args: BuildArgs) -> Result<ExitCode> {
    let planned = auto_dockerfile(&args)?;
    let mut opts = args.to_options()?;
    if let Some(f) = &planned {
        opts.dockerfile = Some(f.path().to_path_buf());
    }
    let mode: Mode = if args.quiet {
        Mode::Quiet
    } else {
        args.progress.parse().map_err(anyhow::Error::msg)?
    };
    let display = progress::display(mode);
    // A run killed by a signal leaves `.tmp-*` entries behind: sweep those first.
    hoist_engine::cleanup::sweep_stale(&opts.cache_dir);
    let result = hoist_engine::build(&opts, display.as_ref())?;
    super::lifecycle::record_build_pushes(&args, &opts, &result.manifest_digest)?;
    println!("{}", result.manifest_digest);
    Ok(ExitCode::SUCCESS)
}
