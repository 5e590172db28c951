//! `hoist inspect`: an image's digest, manifest, config, layers and history.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use hoist_image::{Platform, Source};

/// Flags of `hoist inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The image: oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REF].
    pub image: String,
    /// Print the raw root manifest (or index) exactly as stored.
    #[arg(long, conflicts_with = "config")]
    pub raw: bool,
    /// Print the image config exactly as stored.
    #[arg(long)]
    pub config: bool,
    /// Platform to pick from an index (default: the host's).
    #[arg(long)]
    pub platform: Option<String>,
    /// Print the attached attestations (SLSA provenance, SPDX SBOM) of every image.
    #[arg(long, conflicts_with_all = ["raw", "config"])]
    pub attestations: bool,
    /// With --attestations: print them as one JSON array (whole statements).
    #[arg(long, requires = "attestations")]
    pub json: bool,
    /// Registry settings (for docker://REF).
    #[command(flatten)]
    pub registry: super::registry_args::RegistryArgs,
}

/// Open any image reference hoist understands.
pub fn open_source(
    reference: &str,
    registry: &super::registry_args::RegistryArgs,
) -> Result<Box<dyn Source>> {
    if let Some(s) = hoist_engine::resolver::open_local(reference)? {
        return Ok(s);
    }
    if !reference.starts_with("docker://") && reference.contains(':') && !reference.contains('/') {
        let t = reference.split(':').next().unwrap_or_default();
        if !t.contains('.') {
            bail!("unknown transport {t:?} in {reference:?}: expected docker://, oci:, oci-archive: or docker-archive:");
        }
    }
    let resolver = hoist_engine::resolver::DefaultResolver::standalone(
        registry.to_config(),
        hoist_image::BlobStore::new(hoist_engine::options::default_cache_dir().join("blobs"))?,
        hoist_registry::PullPolicy::Always,
    );
    super::transfer::open_any(reference, &resolver)
}

/// Run `hoist inspect`.
pub fn run(args: InspectArgs) -> Result<ExitCode> {
    let src = open_source(&args.image, &args.registry)?;
    let platform = match &args.platform {
        Some(p) => Platform::parse(p).with_context(|| format!("--platform {p:?}"))?,
        None => Platform::host(),
    };
    let root = src.root()?;
    if args.attestations {
        return print_attestations(src.as_ref(), args.json);
    }
    if args.raw {
        use std::io::Write;
        std::io::stdout().write_all(&root.bytes)?;
        return Ok(ExitCode::SUCCESS);
    }
    let img = hoist_image::source::resolve_document(src.as_ref(), root.clone(), &platform)?;
    if args.config {
        use std::io::Write;
        std::io::stdout().write_all(&img.config_raw)?;
        return Ok(ExitCode::SUCCESS);
    }
    let cfg = &img.config;
    let layers: Vec<serde_json::Value> = img
        .manifest
        .layers
        .iter()
        .zip(cfg.rootfs.diff_ids.iter())
        .map(|(l, d)| {
            serde_json::json!({
                "digest": l.digest.to_string(),
                "diffID": d.to_string(),
                "size": l.size,
                "mediaType": l.media_type,
            })
        })
        .collect();
    let out = serde_json::json!({
        "name": src.name(),
        "digest": root.digest().to_string(),
        "mediaType": hoist_image::source::document_media_type(&root)?,
        "manifestDigest": img.manifest_raw.digest().to_string(),
        "configDigest": img.manifest.config.digest.to_string(),
        "platform": cfg.platform().to_string(),
        "created": cfg.created,
        "config": cfg.config,
        "layers": layers,
        "history": cfg.history,
    });
    crate::commands::out(&serde_json::to_string_pretty(&out)?)?;
    Ok(ExitCode::SUCCESS)
}

/// `--attestations`: every statement of the image's index.
fn print_attestations(src: &dyn Source, json: bool) -> Result<ExitCode> {
    let found = hoist_attest::layout::read_attestations(src)
        .with_context(|| format!("reading the attestations of {}", src.name()))?;
    if json {
        crate::commands::out(&serde_json::to_string_pretty(&found)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if found.is_empty() {
        eprintln!("{} has no attestations", src.name());
        return Ok(ExitCode::SUCCESS);
    }
    for f in &found {
        crate::commands::out(&format!(
            "{} {} {}",
            f.platform.as_deref().unwrap_or("-"),
            f.subject,
            f.predicate_type
        ))?;
        crate::commands::out(&serde_json::to_string_pretty(&f.statement["predicate"])?)?;
    }
    Ok(ExitCode::SUCCESS)
}
