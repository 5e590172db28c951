//! `hoist verify REF --key NAME.pub`: check an image's cosign signatures.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use hoist_engine::resolver::registry_reference;

use super::registry_args::RegistryArgs;

/// Flags of `hoist verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The image: [docker://]REGISTRY/REPO[:TAG|@DIGEST].
    pub image: String,
    /// The public key (PEM, `NAME.pub`).
    #[arg(long)]
    pub key: PathBuf,
    /// Also require the signature to name this repository (REGISTRY/REPO).
    #[arg(long, value_name = "REPO")]
    pub identity: Option<String>,
    /// Print what was found as JSON.
    #[arg(long)]
    pub json: bool,
    /// Registry settings.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Run `hoist verify`: exit 0 when a signature verifies, 1 otherwise.
pub fn run(a: VerifyArgs) -> Result<ExitCode> {
    let image = registry_reference(&a.image)?;
    let key = hoist_sign::key::load_public(&a.key)
        .with_context(|| format!("reading the key {}", a.key.display()))?;
    let client = hoist_registry::Client::new(a.registry.to_config())?;
    let v = hoist_sign::cosign::verify(&client, &image, &key, a.identity.as_deref())
        .with_context(|| format!("verifying {image}"))?;
    if a.json {
        crate::commands::out(&serde_json::to_string_pretty(&v)?)?;
    }
    if !v.ok() {
        bail!("{}: {}", image.name(), v.failure());
    }
    if !a.json {
        for s in v.signatures.iter().filter(|s| s.verified) {
            eprintln!(
                "verified: {}@{} signed for {}",
                image.name(),
                v.digest,
                s.identity.as_deref().unwrap_or("?")
            );
        }
        crate::commands::out(&v.digest.to_string())?;
    }
    Ok(ExitCode::SUCCESS)
}
