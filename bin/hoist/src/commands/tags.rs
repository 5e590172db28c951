//! `hoist tag`, `hoist untag` and `hoist tags`: tag management without moving blobs.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use hoist_engine::resolver::registry_reference;

use super::registry_args::RegistryArgs;

/// Flags of `hoist tag`.
#[derive(Debug, Args)]
pub struct TagArgs {
    /// The image: [docker://]REGISTRY/REPO:TAG or …@DIGEST.
    pub image: String,
    /// Tags to add in the same repository (the manifest is stored unchanged).
    #[arg(required = true)]
    pub tags: Vec<String>,
    /// Registry settings.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Run `hoist tag`: prints the digest the new tags point at.
pub fn tag(a: TagArgs) -> Result<ExitCode> {
    let src = registry_reference(&a.image)?;
    let client = hoist_registry::Client::new(a.registry.to_config())?;
    let digest = hoist_promote::tags::tag(&client, &src, &a.tags)
        .with_context(|| format!("tagging {src}"))?;
    for t in &a.tags {
        eprintln!("{}:{t} → {digest}", src.name());
    }
    println!("{digest}");
    Ok(ExitCode::SUCCESS)
}

/// Flags of `hoist untag`.
#[derive(Debug, Args)]
pub struct UntagArgs {
    /// The tag to remove: [docker://]REGISTRY/REPO:TAG. Other tags on the same digest
    /// are kept (the tag is moved to a throw-away placeholder, which is deleted).
    pub tag: String,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Registry settings.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Run `hoist untag`.
pub fn untag(a: UntagArgs) -> Result<ExitCode> {
    let r = registry_reference(&a.tag)?;
    let client = hoist_registry::Client::new(a.registry.to_config())?;
    let report =
        hoist_promote::tags::untag(&client, &r).with_context(|| format!("untagging {r}"))?;
    if a.json {
        crate::commands::out(&serde_json::to_string_pretty(&report)?)?;
    } else {
        println!(
            "removed {}:{} (was {}); still tagged: {}",
            r.name(),
            report.tag,
            report.digest,
            if report.siblings.is_empty() {
                "nothing (the image stays, by digest)".to_string()
            } else {
                report.siblings.join(", ")
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Flags of `hoist tags`.
#[derive(Debug, Args)]
pub struct TagsArgs {
    /// The repository: [docker://]REGISTRY/REPO.
    pub repository: String,
    /// Print JSON (an array of {tag, digest, …}).
    #[arg(long)]
    pub json: bool,
    /// Also read each image's config: creation time and labels.
    #[arg(long)]
    pub details: bool,
    /// Also list untagged images hoist pushed or untagged (from the repository ledger),
    /// as `<untagged>`.
    #[arg(long)]
    pub all: bool,
    /// Registry settings.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Run `hoist tags`: every tag (all pages of the tag list) with its digest.
pub fn tags(a: TagsArgs) -> Result<ExitCode> {
    let repo = registry_reference(&a.repository)?;
    let client = hoist_registry::Client::new(a.registry.to_config())?;
    let list = hoist_promote::tags::list(&client, &repo, a.details, a.all)
        .with_context(|| format!("listing the tags of {}", repo.name()))?;
    if a.json {
        crate::commands::out(&serde_json::to_string_pretty(&list)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    for t in list {
        let mut line = format!("{}\t{}", t.tag.as_deref().unwrap_or("<untagged>"), t.digest);
        if a.details {
            line.push('\t');
            line.push_str(t.created.as_deref().unwrap_or("-"));
            if let Some(at) = &t.artifact_type {
                line.push_str(&format!("\tartifact={at}"));
            }
            for (k, v) in t.labels.iter().flatten() {
                line.push_str(&format!("\t{k}={v}"));
            }
        }
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}
