//! `hoist promote`, `hoist status`, `hoist history` and `hoist rollback`: move one
//! exact digest through environments (tag `env-NAME`), with promotion records
//! attached to the image as OCI artifacts.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use hoist_engine::resolver::registry_reference;
use hoist_promote::gate::{Gate, RequireMarks};
use hoist_promote::promotion::{self, PromoteOptions, PromoteReport};

use super::registry_args::RegistryArgs;

/// Flags of `hoist promote`.
#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// The image, by digest: [docker://]REGISTRY/REPO@sha256:….
    pub image: String,
    /// The environment: the tag `env-NAME` is pointed at the digest.
    #[arg(long)]
    pub env: String,
    /// Promote into another repository (or registry), copying the image by digest:
    /// docker://REGISTRY/REPO.
    #[arg(long, value_name = "REPO")]
    pub to: Option<String>,
    /// A note kept in the promotion record.
    #[arg(long)]
    pub note: Option<String>,
    /// Refuse unless the image carries these marks (comma-separated: tested,signed-off;
    /// see `hoist mark`).
    #[arg(long, value_name = "MARKS")]
    pub require: Vec<String>,
    /// Refuse unless the image carries a cosign signature verifying with this public
    /// key (PEM; repeatable: every key must have signed).
    #[arg(long = "require-signature", value_name = "PUBKEY")]
    pub require_signature: Vec<std::path::PathBuf>,
    /// Refuse unless every image of the digest carries these attestations
    /// (provenance, sbom; comma-separated or repeated).
    #[arg(long = "require-attestation", value_name = "KIND")]
    pub require_attestation: Vec<String>,
    /// Who promotes (default: $HOIST_ACTOR, the CI system's user variable, or $USER).
    #[arg(long)]
    pub by: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Registry settings.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

fn print_report(r: &PromoteReport, json: bool) -> Result<()> {
    if json {
        crate::commands::out(&serde_json::to_string_pretty(r)?)?;
        return Ok(());
    }
    let previous = r
        .previous
        .as_ref()
        .map(|d| d.to_string())
        .unwrap_or_else(|| "nothing".into());
    match &r.record {
        Some(rec) => eprintln!(
            "{} → {} (was {previous}{}; record {rec})",
            r.environment_tag,
            r.digest,
            if r.copied { "; image copied" } else { "" }
        ),
        None => eprintln!("{} already runs {}", r.environment_tag, r.digest),
    }
    println!("{}", r.digest);
    Ok(())
}

/// Run `hoist promote`.
pub fn promote(a: PromoteArgs) -> Result<ExitCode> {
    let src = registry_reference(&a.image)?;
    let to = a.to.as_deref().map(registry_reference).transpose()?;
    let client = hoist_registry::Client::new(a.registry.to_config())?;
    let mut gates: Vec<Box<dyn Gate>> = Vec::new();
    if !a.require.is_empty() {
        gates.push(Box::new(RequireMarks::parse(&a.require.join(","))?));
    }
    for k in &a.require_signature {
        let key = hoist_sign::key::load_public(k)
            .with_context(|| format!("--require-signature {}", k.display()))?;
        gates.push(Box::new(hoist_sign::gate::RequireSignature {
            key,
            key_name: k.display().to_string(),
        }));
    }
    if !a.require_attestation.is_empty() {
        let kinds = a
            .require_attestation
            .iter()
            .flat_map(|s| s.split(','))
            .filter(|s| !s.trim().is_empty())
            .map(hoist_sign::gate::AttestationKind::parse)
            .collect::<Result<Vec<_>, _>>()?;
        gates.push(Box::new(hoist_sign::gate::RequireAttestation(kinds)));
    }
    let opts = PromoteOptions {
        note: a.note.clone(),
        by: a.by.clone(),
        gates,
    };
    let report = promotion::promote(&client, &src, &a.env, to.as_ref(), &opts)
        .with_context(|| format!("promoting {src} to {}", a.env))?;
    print_report(&report, a.json)?;
    Ok(ExitCode::SUCCESS)
}

/// Flags of `hoist status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The repository: [docker://]REGISTRY/REPO.
    pub repository: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Registry settings.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Run `hoist status`: which digest (and commit) every environment runs.
pub fn status(a: StatusArgs) -> Result<ExitCode> {
    let repo = registry_reference(&a.repository)?;
    let client = hoist_registry::Client::new(a.registry.to_config())?;
    let st = promotion::status(&client, &repo)
        .with_context(|| format!("reading the environments of {}", repo.name()))?;
    if a.json {
        crate::commands::out(&serde_json::to_string_pretty(&st)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    for s in st {
        let promoted = s
            .promoted
            .as_ref()
            .map(|r| {
                format!(
                    "promoted {} by {} from {}{}",
                    r.time,
                    r.by.as_deref().unwrap_or("-"),
                    r.source,
                    r.note
                        .as_deref()
                        .map(|n| format!(" ({n})"))
                        .unwrap_or_default()
                )
            })
            .unwrap_or_else(|| "no promotion record".into());
        let marks = if s.marks.is_empty() {
            "-".to_string()
        } else {
            s.marks
                .iter()
                .map(|m| format!("{}({})", m.name, m.by.as_deref().unwrap_or("-")))
                .collect::<Vec<_>>()
                .join(",")
        };
        let digest = s
            .digest
            .as_ref()
            .map(|d| d.to_string())
            .unwrap_or_else(|| "-".into());
        let mut line = format!(
            "{}\t{digest}\tin={}\tcommit={}\tmarks={marks}\t{promoted}",
            s.env,
            s.repository,
            s.commit.as_deref().unwrap_or("-"),
        );
        if let Some(e) = &s.error {
            line.push_str(&format!("\terror={e}"));
        }
        crate::commands::out(&line)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Flags of `hoist history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The repository: [docker://]REGISTRY/REPO.
    pub repository: String,
    /// The environment.
    #[arg(long)]
    pub env: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Registry settings.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Run `hoist history`: past promotions of an environment, newest first.
pub fn history(a: HistoryArgs) -> Result<ExitCode> {
    let repo = registry_reference(&a.repository)?;
    let client = hoist_registry::Client::new(a.registry.to_config())?;
    let mut h = promotion::history(&client, &repo, &a.env)
        .with_context(|| format!("reading the history of {} in {}", a.env, repo.name()))?;
    h.reverse();
    if a.json {
        crate::commands::out(&serde_json::to_string_pretty(&h)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    for r in h {
        println!(
            "{}\t{:?}\t{}\tprevious={}\tsource={}{}",
            r.time,
            r.kind,
            r.digest,
            r.previous
                .as_ref()
                .map(|d| d.to_string())
                .unwrap_or_else(|| "-".into()),
            r.source,
            r.note
                .as_deref()
                .map(|n| format!("\tnote={n}"))
                .unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Flags of `hoist rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The repository: [docker://]REGISTRY/REPO.
    pub repository: String,
    /// The environment.
    #[arg(long)]
    pub env: String,
    /// A note kept in the rollback record.
    #[arg(long)]
    pub note: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Registry settings.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Run `hoist rollback`: re-point the environment at what it ran before.
pub fn rollback(a: RollbackArgs) -> Result<ExitCode> {
    let repo = registry_reference(&a.repository)?;
    let client = hoist_registry::Client::new(a.registry.to_config())?;
    let report = promotion::rollback(&client, &repo, &a.env, a.note.as_deref())
        .with_context(|| format!("rolling back {} in {}", a.env, repo.name()))?;
    print_report(&report, a.json)?;
    Ok(ExitCode::SUCCESS)
}
