//! `hoist prune`: apply an ECR-style lifecycle policy to a repository, fail-closed.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use hoist_engine::resolver::registry_reference;
use hoist_promote::policy::{Policy, Verdict};
use hoist_promote::prune::{self, PruneOptions};

use super::registry_args::RegistryArgs;

/// Flags of `hoist prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// The repository: [docker://]REGISTRY/REPO.
    pub repository: String,
    /// The lifecycle policy (ECR JSON: rules[] with rulePriority, selection, action).
    #[arg(long, value_name = "FILE")]
    pub policy: PathBuf,
    /// Delete what the plan says (default: only print the plan).
    #[arg(long)]
    pub apply: bool,
    /// Refuse to apply a plan that deletes more than N images.
    #[arg(long = "max-delete", value_name = "N")]
    pub max_delete: Option<usize>,
    /// A tag whose image is never deleted, besides env-* (repeatable; `*` globs).
    #[arg(long = "protect-tag", value_name = "TAG")]
    pub protect_tags: Vec<String>,
    /// Print the plan (and what was done) as JSON.
    #[arg(long)]
    pub json: bool,
    /// Registry settings.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

fn code(c: &hoist_promote::policy::Code) -> String {
    serde_json::to_value(c)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Run `hoist prune`.
pub fn run(a: PruneArgs) -> Result<ExitCode> {
    let repo = registry_reference(&a.repository)?;
    let text = std::fs::read_to_string(&a.policy)
        .with_context(|| format!("reading {}", a.policy.display()))?;
    let policy = Policy::parse(&text).with_context(|| format!("{}", a.policy.display()))?;
    let client = hoist_registry::Client::new(a.registry.to_config())?;
    let opts = PruneOptions {
        protect_tags: a.protect_tags.clone(),
        max_delete: a.max_delete,
        ..Default::default()
    };
    let plan = prune::plan(&client, &repo, &policy, &opts)
        .with_context(|| format!("planning the prune of {}", repo.name()))?;
    let deletes = plan.deletes().count();
    if !a.json {
        for d in &plan.decisions {
            let verdict = match d.verdict {
                Verdict::Keep => "keep  ",
                Verdict::Delete => "delete",
            };
            let tags = if d.tags.is_empty() {
                "<untagged>".to_string()
            } else {
                d.tags.join(",")
            };
            println!(
                "{verdict} {} {tags}: [{}] {}",
                d.digest,
                code(&d.code),
                d.reason
            );
        }
        for o in &plan.other {
            println!("skip   {} {}: {}", o.digest, o.tags.join(","), o.reason);
        }
        println!(
            "plan: {deletes} to delete, {} to keep{}",
            plan.decisions.len() - deletes,
            if a.apply {
                ""
            } else {
                " (dry run; --apply to delete)"
            }
        );
    }
    if !a.apply {
        if let Some(max) = a.max_delete.filter(|m| deletes > *m) {
            eprintln!(
                "note: --apply would refuse this plan: {deletes} deletes > --max-delete {max}"
            );
        }
        if a.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({"plan": plan, "applied": false}))?
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let report = prune::apply(&client, &repo, &plan, &opts)
        .with_context(|| format!("pruning {}", repo.name()))?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"plan": plan, "applied": true, "report": report})
            )?
        );
    } else {
        for s in &report.skipped {
            println!("not deleted {}: {}", s.digest, s.reason);
        }
        println!(
            "deleted {} images, skipped {}",
            report.deleted.len(),
            report.skipped.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
