//! Retention: turn a lifecycle [`Policy`] into a [`Plan`], then apply it fail-closed.
//!
//! # What is a candidate
//!
//! The distribution API cannot list manifests, only tags. The candidates are
//! therefore every tagged image or index of the repository, plus the untagged
//! images hoist knows about: every digest of the repository [`crate::ledger`] (what
//! hoist pushed or untagged) that still exists, and the subjects of referrers
//! fallback tags (`sha256-<hex>`). Referrers indexes, artifacts (records, marks,
//! signatures, the ledger) and placeholders are never candidates.
//!
//! # Push time
//!
//! From [`crate::order`]: hoist's push records (the ledger), else the registry's own
//! push time, else (for ordering only) a meaningful `created`. See
//! [`crate::policy`] for which rule uses which time and how ties are kept.
//!
//! # Never deleted
//!
//! Whatever the rules say, these are kept, with a code and the reason in the plan:
//! `in-use`: images carrying an environment tag (`env-*`), or with a promotion record
//! for an environment that is live (has an `env-NAME` tag); `protected-tag`: a tag
//! given with [`PruneOptions::protect_tags`]; `marked`: images with a mark;
//! `child-of-kept-index`: manifests reachable from a kept index.
//!
//! # Applying
//!
//! [`apply`] first checks that the registry can delete and that the plan is within
//! [`PruneOptions::max_delete`]; then, right before each delete, it lists the tags and
//! the image's marks again: a digest that gained a tag the plan did not see, a
//! protected tag or a mark, or that is gone, is skipped and reported. After deleting an
//! image it appends a `delete` event to the ledger and deletes hoist's own artifacts
//! about it (records, marks) and its referrers tag (`sha256-<hex>`), unless that index
//! also lists artifacts hoist did not make.
//!
//! Limits: between the last re-check and the DELETE there is still a window of one
//! request (the distribution API has no conditional delete); and a manifest that no
//! tag, no referrers tag and no ledger entry names (pushed by another tool, then
//! untagged) cannot be seen.

use std::collections::{BTreeMap, BTreeSet};

use hoist_image::Digest;
use hoist_registry::{Client, Reference};
use serde::Serialize;
use time::OffsetDateTime;

use crate::artifact::{is_hoist_artifact_type, referrers_tag};
use crate::facts::{ensure_delete_supported, image_facts, tag_digests, ImageFacts};
use crate::ledger::{self, Action, Event};
use crate::marks::marks_for;
use crate::order::{self, meaningful_created, DistributionApi, RegistryPushTimes};
use crate::policy::{evaluate, glob_match, Candidate, Code, Decision, Policy, Verdict};
use crate::promotion::{self, ENV_TAG_PREFIX};
use crate::{Error, Result};

/// Options for [`plan`] and [`apply`].
#[derive(Debug)]
pub struct PruneOptions {
    /// Tags whose images are never deleted, besides `env-*` (globs: `*` matches any
    /// run of characters, so `release-*` protects every release tag).
    pub protect_tags: Vec<String>,
    /// Abort [`apply`] when the plan deletes more than this.
    pub max_delete: Option<usize>,
    /// "Now" for `sinceImagePushed`.
    pub now: OffsetDateTime,
    /// The registry's own push times (the distribution API has none).
    pub registry_times: Box<dyn RegistryPushTimes>,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            protect_tags: Vec::new(),
            max_delete: None,
            now: OffsetDateTime::now_utc(),
            registry_times: Box::new(DistributionApi),
        }
    }
}

/// A manifest that is not a candidate, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotCandidate {
    /// Its digest.
    pub digest: Digest,
    /// Its tags.
    pub tags: Vec<String>,
    /// Why it is left alone, as a code (`not-an-image`, `referrers-index`).
    pub code: String,
    /// Why it is left alone.
    pub reason: String,
}

/// What [`plan`] decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// `registry/repository`.
    pub repository: String,
    /// One decision per candidate image.
    pub decisions: Vec<Decision>,
    /// Manifests that are not images (always kept).
    pub other: Vec<NotCandidate>,
}

impl Plan {
    /// The decisions to delete.
    pub fn deletes(&self) -> impl Iterator<Item = &Decision> {
        self.decisions
            .iter()
            .filter(|d| d.verdict == Verdict::Delete)
    }
}

/// The subject of a referrers fallback tag `sha256-<hex>`.
pub fn is_referrers_tag(tag: &str) -> Option<Digest> {
    let hex = tag.strip_prefix("sha256-")?;
    if hex.len() == 64 {
        Digest::parse(&format!("sha256:{hex}")).ok()
    } else {
        None
    }
}

fn protected_tag(tag: &str, opts: &PruneOptions) -> bool {
    tag.starts_with(ENV_TAG_PREFIX) || opts.protect_tags.iter().any(|p| glob_match(p, tag))
}

/// Evaluate `policy` over `repo`'s images. Reads only.
pub fn plan(
    client: &Client,
    repo: &Reference,
    policy: &Policy,
    opts: &PruneOptions,
) -> Result<Plan> {
    policy.validate()?;
    let tagged = tag_digests(client, repo)?;
    let ledger = ledger::read(client, repo)?;
    let mut by_digest: BTreeMap<Digest, Vec<String>> = BTreeMap::new();
    let mut untagged: BTreeSet<Digest> = BTreeSet::new();
    let mut other = Vec::new();
    let mut live_envs = BTreeSet::new();
    for (tag, digest) in &tagged {
        if let Some(subject) = is_referrers_tag(tag) {
            untagged.insert(subject);
            other.push(NotCandidate {
                digest: digest.clone(),
                tags: vec![tag.clone()],
                code: "referrers-index".into(),
                reason: "referrers index (tag schema)".into(),
            });
            continue;
        }
        if let Some(env) = tag.strip_prefix(ENV_TAG_PREFIX) {
            live_envs.insert(env.to_string());
        }
        by_digest
            .entry(digest.clone())
            .or_default()
            .push(tag.clone());
    }
    untagged.extend(ledger.by_digest().into_keys());
    for s in untagged {
        if !by_digest.contains_key(&s)
            && client
                .head_manifest(&repo.with_digest(s.clone()))?
                .is_some()
        {
            by_digest.insert(s, Vec::new());
        }
    }
    let recorded = ledger.push_times();
    let digests: Vec<Digest> = by_digest.keys().cloned().collect();
    let registry_times = opts.registry_times.push_times(client, repo, &digests)?;
    let mut facts: BTreeMap<Digest, ImageFacts> = BTreeMap::new();
    let mut candidates = Vec::new();
    for (digest, tags) in by_digest {
        let f = image_facts(client, repo, &digest)?;
        if let Some(t) = &f.artifact_type {
            other.push(NotCandidate {
                digest: digest.clone(),
                tags,
                code: "not-an-image".into(),
                reason: format!("not an image (artifact type {t})"),
            });
            continue;
        }
        let env_tags: Vec<&String> = tags
            .iter()
            .filter(|t| t.starts_with(ENV_TAG_PREFIX))
            .collect();
        let protected_tags: Vec<&String> = tags
            .iter()
            .filter(|t| !t.starts_with(ENV_TAG_PREFIX) && protected_tag(t, opts))
            .collect();
        let protected = if !env_tags.is_empty() {
            Some((Code::InUse, format!("in use: environment tag {env_tags:?}")))
        } else if !protected_tags.is_empty() {
            Some((
                Code::ProtectedTag,
                format!("protected tag {protected_tags:?}"),
            ))
        } else {
            None
        };
        candidates.push(Candidate {
            digest: digest.clone(),
            tags,
            pushed: order::push_times(&recorded, &registry_times, &digest),
            created: meaningful_created(f.created_time()),
            protected,
        });
        facts.insert(digest, f);
    }
    let mut decisions = evaluate(policy, &candidates, opts.now);

    // Marks and promotion records for live environments.
    for d in decisions
        .iter_mut()
        .filter(|d| d.verdict == Verdict::Delete)
    {
        let marks = marks_for(client, repo, &d.digest)?;
        if !marks.is_empty() {
            let names: Vec<&str> = marks.iter().map(|m| m.name.as_str()).collect();
            d.verdict = Verdict::Keep;
            d.code = Code::Marked;
            d.reason = format!("marked {} (overrides: {})", names.join(", "), d.reason);
            continue;
        }
        let records = promotion::records_for(client, repo, &d.digest)?;
        if let Some(r) = records.iter().find(|r| live_envs.contains(&r.env)) {
            d.verdict = Verdict::Keep;
            d.code = Code::InUse;
            d.reason = format!(
                "in use: promoted to live environment {} at {} (overrides: {})",
                r.env, r.time, d.reason
            );
        }
    }
    // Reachability from kept indexes, to a fixed point.
    loop {
        let reachable: BTreeMap<Digest, Digest> = decisions
            .iter()
            .filter(|d| d.verdict == Verdict::Keep)
            .filter_map(|d| facts.get(&d.digest))
            .flat_map(|f| f.children.iter().map(|c| (c.clone(), f.digest.clone())))
            .collect();
        let mut changed = false;
        for d in decisions
            .iter_mut()
            .filter(|d| d.verdict == Verdict::Delete)
        {
            if let Some(parent) = reachable.get(&d.digest) {
                d.verdict = Verdict::Keep;
                d.code = Code::ChildOfKeptIndex;
                d.reason = format!(
                    "referenced by kept index {parent} (overrides: {})",
                    d.reason
                );
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    Ok(Plan {
        repository: repo.name(),
        decisions,
        other,
    })
}

/// What [`apply`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ApplyReport {
    /// Digests deleted.
    pub deleted: Vec<Digest>,
    /// Planned deletes not done, and why.
    pub skipped: Vec<Skipped>,
}

/// A planned delete [`apply`] did not do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The image.
    pub digest: Digest,
    /// Always [`Code::Changed`].
    pub code: Code,
    /// Why it was kept after all.
    pub reason: String,
}

/// After deleting `subject`, delete hoist's own artifacts the referrers tag schema
/// lists for it (records, marks) and that index (whose tag `sha256-<hex>` goes with
/// it): they only describe the deleted image.
fn remove_referrers_tag(client: &Client, repo: &Reference, subject: &Digest) -> Result<()> {
    let tref = repo.with_tag(&referrers_tag(subject))?;
    let doc = match client.get_manifest(&tref) {
        Ok(doc) => doc,
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let index: hoist_image::Index = doc
        .parse()
        .map_err(|e| Error::Invalid(format!("{tref}: invalid referrers index: {e}")))?;
    for m in index.manifests.iter().filter(|m| {
        m.artifact_type
            .as_deref()
            .is_some_and(is_hoist_artifact_type)
    }) {
        match client.delete_manifest(repo, &m.digest) {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    if index.manifests.iter().all(|m| {
        m.artifact_type
            .as_deref()
            .is_some_and(is_hoist_artifact_type)
    }) {
        client.delete_manifest(repo, &doc.digest())?;
    }
    Ok(())
}

/// Carry out `plan`'s deletes (see the module docs for the checks).
pub fn apply(
    client: &Client,
    repo: &Reference,
    plan: &Plan,
    opts: &PruneOptions,
) -> Result<ApplyReport> {
    let deletes: Vec<&Decision> = plan.deletes().collect();
    if let Some(max) = opts.max_delete {
        if deletes.len() > max {
            return Err(Error::TooManyDeletes {
                planned: deletes.len(),
                max,
            });
        }
    }
    let mut report = ApplyReport::default();
    if deletes.is_empty() {
        return Ok(report);
    }
    ensure_delete_supported(client, repo)?;
    for d in deletes {
        // Re-check right before deleting.
        let now: Vec<String> = tag_digests(client, repo)?
            .into_iter()
            .filter(|(_, g)| *g == d.digest)
            .map(|(t, _)| t)
            .collect();
        let unseen: Vec<&String> = now.iter().filter(|t| !d.tags.contains(t)).collect();
        let skip = if !unseen.is_empty() {
            Some(format!("re-tagged since the plan: {unseen:?}"))
        } else if let Some(t) = now.iter().find(|t| protected_tag(t, opts)) {
            Some(format!("now carries protected tag {t}"))
        } else if client
            .head_manifest(&repo.with_digest(d.digest.clone()))?
            .is_none()
        {
            Some("already gone".to_string())
        } else {
            let marks = marks_for(client, repo, &d.digest)?;
            (!marks.is_empty()).then(|| {
                format!(
                    "marked since the plan: {}",
                    marks
                        .iter()
                        .map(|m| m.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
        };
        if let Some(why) = skip {
            tracing::warn!("not deleting {}: {why}", d.digest);
            report.skipped.push(Skipped {
                digest: d.digest.clone(),
                code: Code::Changed,
                reason: why,
            });
            continue;
        }
        client.delete_manifest(repo, &d.digest)?;
        tracing::info!("deleted {} ({:?}): {}", d.digest, d.tags, d.reason);
        report.deleted.push(d.digest.clone());
        let mut ev = Event::new(Action::Delete, d.digest.clone(), repo, "prune");
        ev.tags = d.tags.clone();
        ledger::append(client, repo, &ev)?;
        remove_referrers_tag(client, repo, &d.digest)?;
    }
    Ok(report)
}
