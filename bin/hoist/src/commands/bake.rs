//! `hoist bake`: several images from one build file (the task mode's `HOIST_BUILD_FILE`
//! format), each with its own Dockerfile, context, args, tags and outputs.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use hoist_engine::buildfile;
use hoist_engine::options::{BuildOptions, PullPolicy};
use hoist_engine::progress::{self, Mode};

/// Flags of `hoist bake`.
#[derive(Debug, Args)]
pub struct BakeArgs {
    /// The images to build (names in the build file; default: all, in file order).
    pub targets: Vec<String>,
    /// The build file (TOML, or YAML named .yml/.yaml).
    #[arg(short = 'f', long = "file", default_value = "hoist.build.toml")]
    pub file: PathBuf,
    /// Push every image to its tags (as `push = true` on each).
    #[arg(long)]
    pub push: bool,
    /// Progress display: auto, plain, json or quiet.
    #[arg(long, default_value = "auto")]
    pub progress: String,
    /// Do not use the step cache.
    #[arg(long = "no-cache")]
    pub no_cache: bool,
    /// When to contact registries for base images: always, missing, never.
    #[arg(long, default_value = "missing", num_args = 0..=1, default_missing_value = "always")]
    pub pull: String,
    /// hoist's cache directory.
    #[arg(long = "cache-dir", env = "HOIST_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Attestations for every image, over the file's `attest` (--provenance, --sbom, --attest).
    #[command(flatten)]
    pub attest: super::attest_args::AttestArgs,
    /// Registry settings.
    #[command(flatten)]
    pub registry: super::registry_args::RegistryArgs,
}

/// Run `hoist bake`.
pub fn run(args: BakeArgs) -> Result<ExitCode> {
    let file = hoist_engine::options::absolute(&args.file);
    let specs = buildfile::load(&file).map_err(anyhow::Error::msg)?;
    for t in &args.targets {
        if !specs.iter().any(|s| &s.name == t) {
            let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
            bail!(
                "{}: no image {t:?} (images: {})",
                file.display(),
                names.join(", ")
            );
        }
    }
    let mut base = BuildOptions::new(".");
    base.no_cache = args.no_cache;
    base.pull = args
        .pull
        .parse::<PullPolicy>()
        .map_err(|e| anyhow::anyhow!("--pull: {e}"))?;
    if let Some(d) = &args.cache_dir {
        base.cache_dir = hoist_engine::options::absolute(d);
    }
    base.registry = args.registry.to_config();
    let mut jobs = Vec::new();
    for mut s in specs {
        if !args.targets.is_empty() && !args.targets.contains(&s.name) {
            continue;
        }
        s.push |= args.push;
        let mut o = s.options(&base).map_err(anyhow::Error::msg)?;
        args.attest.apply(&mut o.attest)?;
        jobs.push((s.name.clone(), o));
    }
    let mode: Mode = args.progress.parse().map_err(anyhow::Error::msg)?;
    let display = progress::display(mode);
    let results = buildfile::build_all(&jobs, display.as_ref())
        .map_err(|(name, e)| anyhow::Error::new(e).context(format!("building {name}")))?;
    for (name, r) in results {
        super::out(&format!("{name}: {}", r.manifest_digest)).context("printing")?;
    }
    Ok(ExitCode::SUCCESS)
}
