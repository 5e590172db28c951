//! Retention: turn a lifecycle [`Policy`] into a [`Plan`], then apply it fail-closed.
//!
//! # What is a candidate
//!
//! The distribution API cannot list manifests, only tags. The candidates are
//! therefore every tagged image or index of the repository, plus the untagged
//! images hoist knows about: the subjects of referrers fallback tags
//! (`sha256-<hex>`, which promotion records create). Referrers indexes, artifacts
//! (promotion records, signatures) and placeholders are never candidates.
//!
//! # Push time
//!
//! Registries do not expose when a manifest was pushed. hoist uses the image
//! config's `created` time, else the manifest's `org.opencontainers.image.created`
//! annotation (for an index: its annotation, else its first image's). An image
//! without either is never expired by `sinceImagePushed` and counts as the newest
//! for `imageCountMoreThan`.
//!
//! # Never deleted
//!
//! Whatever the rules say, these are kept, with the reason in the plan:
//! images carrying an environment tag (`env-*`) or a tag given with
//! [`PruneOptions::protect_tags`]; images with a promotion record for an
//! environment that is live (has an `env-NAME` tag); manifests reachable from a kept
//! index.
//!
//! # Applying
//!
//! [`apply`] first checks that the registry can delete and that the plan is within
//! [`PruneOptions::max_delete`]; then, right before each delete, it lists the tags
//! again: a digest that gained a tag the plan did not see, or a protected tag, or
//! that is gone, is skipped and reported. After deleting an image it deletes the
//! promotion records listed under its referrers tag (`sha256-<hex>`) and that index,
//! unless the index also lists artifacts hoist did not make.
//!
//! Limits: between the last re-check and the DELETE there is still a window of one
//! request (the distribution API has no conditional delete); and a manifest no tag
//! and no referrers tag points at cannot be seen, so `untagged` rules only reach
//! untagged images that have promotion records.

use std::collections::{BTreeMap, BTreeSet};

use hoist_image::Digest;
use hoist_registry::{Client, Reference};
use serde::Serialize;
use time::OffsetDateTime;

use crate::facts::{ensure_delete_supported, image_facts, tag_digests, ImageFacts};
use crate::policy::{evaluate, glob_match, Candidate, Decision, Policy, Verdict};
use crate::promotion::{self, ENV_TAG_PREFIX};
use crate::{Error, Result};

/// Options for [`plan`] and [`apply`].
#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// Tags whose images are never deleted, besides `env-*` (globs: `*` matches any
    /// run of characters, so `release-*` protects every release tag).
    pub protect_tags: Vec<String>,
    /// Abort [`apply`] when the plan deletes more than this.
    pub max_delete: Option<usize>,
    /// "Now" for `sinceImagePushed`.
    pub now: OffsetDateTime,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            protect_tags: Vec::new(),
            max_delete: None,
            now: OffsetDateTime::now_utc(),
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

fn is_referrers_tag(tag: &str) -> Option<Digest> {
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
    let mut by_digest: BTreeMap<Digest, Vec<String>> = BTreeMap::new();
    let mut subjects: BTreeSet<Digest> = BTreeSet::new();
    let mut other = Vec::new();
    let mut live_envs = BTreeSet::new();
    for (tag, digest) in &tagged {
        if let Some(subject) = is_referrers_tag(tag) {
            subjects.insert(subject);
            other.push(NotCandidate {
                digest: digest.clone(),
                tags: vec![tag.clone()],
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
    for s in subjects {
        if !by_digest.contains_key(&s)
            && client
                .head_manifest(&repo.with_digest(s.clone()))?
                .is_some()
        {
            by_digest.insert(s, Vec::new());
        }
    }
    let mut facts: BTreeMap<Digest, ImageFacts> = BTreeMap::new();
    let mut candidates = Vec::new();
    for (digest, tags) in by_digest {
        let f = image_facts(client, repo, &digest)?;
        if let Some(t) = &f.artifact_type {
            other.push(NotCandidate {
                digest: digest.clone(),
                tags,
                reason: format!("not an image (artifact type {t})"),
            });
            continue;
        }
        let protected = tags
            .iter()
            .filter(|t| protected_tag(t, opts))
            .map(|t| {
                if t.starts_with(ENV_TAG_PREFIX) {
                    format!("environment tag {t}")
                } else {
                    format!("protected tag {t}")
                }
            })
            .collect::<Vec<_>>();
        candidates.push(Candidate {
            digest: digest.clone(),
            tags,
            pushed: f.created_time(),
            protected: (!protected.is_empty()).then(|| protected.join(", ")),
        });
        facts.insert(digest, f);
    }
    let mut decisions = evaluate(policy, &candidates, opts.now);

    // Promotion records for live environments.
    for d in decisions
        .iter_mut()
        .filter(|d| d.verdict == Verdict::Delete)
    {
        let records = promotion::records_for(client, repo, &d.digest)?;
        if let Some(r) = records.iter().find(|r| live_envs.contains(&r.env)) {
            d.verdict = Verdict::Keep;
            d.reason = format!(
                "protected: promoted to live environment {} at {} (overrides: {})",
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
                d.reason = format!(
                    "protected: referenced by kept index {parent} (overrides: {})",
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
    /// Why it was kept after all.
    pub reason: String,
}

/// After deleting `subject`, delete the promotion records the referrers tag schema
/// lists for it and that index (whose tag `sha256-<hex>` goes with it): they only
/// describe the deleted image.
fn remove_referrers_tag(client: &Client, repo: &Reference, subject: &Digest) -> Result<()> {
    let tag = format!("{}-{}", subject.algorithm().as_str(), subject.hex());
    let tref = repo.with_tag(&tag)?;
    let doc = match client.get_manifest(&tref) {
        Ok(doc) => doc,
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let index: hoist_image::Index = doc
        .parse()
        .map_err(|e| Error::Invalid(format!("{tref}: invalid referrers index: {e}")))?;
    for m in index
        .manifests
        .iter()
        .filter(|m| m.artifact_type.as_deref() == Some(promotion::PROMOTION_ARTIFACT_TYPE))
    {
        match client.delete_manifest(repo, &m.digest) {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    if index
        .manifests
        .iter()
        .all(|m| m.artifact_type.as_deref() == Some(promotion::PROMOTION_ARTIFACT_TYPE))
    {
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
            None
        };
        if let Some(why) = skip {
            tracing::warn!("not deleting {}: {why}", d.digest);
            report.skipped.push(Skipped {
                digest: d.digest.clone(),
                reason: why,
            });
            continue;
        }
        client.delete_manifest(repo, &d.digest)?;
        tracing::info!("deleted {} ({:?}): {}", d.digest, d.tags, d.reason);
        report.deleted.push(d.digest.clone());
        remove_referrers_tag(client, repo, &d.digest)?;
    }
    Ok(report)
}
