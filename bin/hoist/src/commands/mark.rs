//! `hoist mark`: attach a mark ("tested", "signed-off") to one exact digest.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use hoist_engine::resolver::registry_reference;

use super::registry_args::RegistryArgs;

/// Flags of `hoist mark`.
#[derive(Debug, Args)]
pub struct MarkArgs {
    /// The image, by digest: [docker://]REGISTRY/REPO@sha256:….
    pub image: String,
    /// The mark: letters, digits, '_', '.', '-' (e.g. tested, signed-off).
    pub name: String,
    /// Free text kept with the mark.
    #[arg(long)]
    pub note: Option<String>,
    /// Who marks (default: $HOIST_ACTOR, the CI system's user variable, or $USER).
    #[arg(long)]
    pub by: Option<String>,
    /// Registry settings.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Run `hoist mark`: prints the mark artifact's digest.
pub fn run(a: MarkArgs) -> Result<ExitCode> {
    let image = registry_reference(&a.image)?;
    let client = hoist_registry::Client::new(a.registry.to_config())?;
    let d =
        hoist_promote::marks::mark(&client, &image, &a.name, a.by.as_deref(), a.note.as_deref())
            .with_context(|| format!("marking {image} {}", a.name))?;
    eprintln!("marked {image} {} (artifact {d})", a.name);
    println!("{d}");
    Ok(ExitCode::SUCCESS)
}
