//! `hoist sign REF --key NAME.key`: a cosign-compatible signature of one image.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use hoist_engine::resolver::registry_reference;

use super::registry_args::RegistryArgs;

/// Flags of `hoist sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// The image: [docker://]REGISTRY/REPO[:TAG|@DIGEST] (a tag is signed by its digest).
    pub image: String,
    /// The private key (PEM; `hoist key generate`). Encrypted keys take
    /// $HOIST_KEY_PASSWORD or ask on the terminal.
    #[arg(long)]
    pub key: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Registry settings.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Run `hoist sign`: prints the signed digest.
pub fn run(a: SignArgs) -> Result<ExitCode> {
    let image = registry_reference(&a.image)?;
    let key = hoist_sign::key::load_private(&a.key, &mut super::key::existing_passphrase)
        .with_context(|| format!("reading the key {}", a.key.display()))?;
    let client = hoist_registry::Client::new(a.registry.to_config())?;
    let signed = hoist_sign::cosign::sign(&client, &image, &key)
        .with_context(|| format!("signing {image}"))?;
    if a.json {
        crate::commands::out(&serde_json::to_string_pretty(&signed)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if signed.added {
        eprintln!(
            "signed {}@{} ({})",
            image.name(),
            signed.digest,
            signed.signature_ref
        );
    } else {
        eprintln!(
            "{}@{} already carries this key's signature ({})",
            image.name(),
            signed.digest,
            signed.signature_ref
        );
    }
    crate::commands::out(&signed.digest.to_string())?;
    Ok(ExitCode::SUCCESS)
}
