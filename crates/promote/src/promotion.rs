//! Promote one exact image through environments, and remember every promotion.
//!
//! # Naming
//!
//! Environment `NAME` is the tag `env-NAME` ([`env_tag`]) in the destination
//! repository. `NAME` must be a valid tag suffix (`[A-Za-z0-9_.-]`, at most 124
//! characters).
//!
//! # Promotion records
//!
//! Each promotion (and rollback) is recorded as an OCI artifact attached to the
//! image it points the environment at:
//!
//! ```text
//! manifest (pushed by digest, never tagged)
//!   artifactType  application/vnd.hoist.promotion.v1+json
//!   config        application/vnd.hoist.promotion.v1+json  → {env, time, source, digest,
//!                                                             previous, note, kind, repository}
//!   layers        [ application/vnd.oci.empty.v1+json {} ]
//!   subject       the image's manifest descriptor
//!   annotations   vnd.hoist.promotion.env, org.opencontainers.image.created
//! ```
//!
//! Registries with the OCI 1.1 referrers API index it by `subject`. For registries
//! without it (distribution 2.8 has none), hoist also maintains the referrers tag
//! schema: an index tagged `sha256-<hex of the image digest>` listing the records.
//! Reading goes through [`hoist_registry::Client::referrers`], which handles both.
//! Updating that index is read-modify-write: two promotions of the same image at the
//! same instant can lose one index entry (the record artifact itself stays).
//!
//! # History and rollback
//!
//! [`history`] gathers the records of an environment by walking from the image the
//! environment runs (and every image that has a referrers tag) through each
//! record's `previous` digest. Replaying them in time order, a promotion pushes its
//! digest on a stack and a rollback pops one; [`rollback`] re-points the
//! environment at the entry below the top, so repeated rollbacks walk further back.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use hoist_image::{media_type, Descriptor, Digest, Index, Manifest, RawDocument};
use hoist_registry::{Client, PushOptions, Reference};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::facts::{
    format_time, image_facts, parse_time, read_small_blob, tag_digests, REVISION_LABEL,
};
use crate::tags::{empty_descriptor, put_small_blob, EMPTY_JSON};
use crate::{Error, Result};

/// The tag prefix of environments: environment `prod` is tag `env-prod`.
pub const ENV_TAG_PREFIX: &str = "env-";
/// The artifact type (and config media type) of promotion records.
pub const PROMOTION_ARTIFACT_TYPE: &str = "application/vnd.hoist.promotion.v1+json";
/// The annotation naming a record's environment.
pub const ENV_ANNOTATION: &str = "vnd.hoist.promotion.env";

/// The environment tag for `env`, validated.
pub fn env_tag(env: &str) -> Result<String> {
    let ok = !env.is_empty()
        && env.len() <= 124
        && env
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
    if !ok {
        return Err(Error::Invalid(format!(
            "environment name {env:?}: use letters, digits, '_', '.', '-' (at most 124)"
        )));
    }
    Ok(format!("{ENV_TAG_PREFIX}{env}"))
}

/// Whether a record is a promotion or a rollback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `hoist promote`.
    Promote,
    /// `hoist rollback`.
    Rollback,
}

/// The content of a promotion record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The environment.
    pub env: String,
    /// When (RFC 3339, UTC, nanoseconds).
    pub time: String,
    /// Where the image came from (`registry/repo@digest`).
    pub source: String,
    /// `registry/repo` the environment tag lives in.
    pub repository: String,
    /// The image the environment now runs.
    pub digest: Digest,
    /// What it ran before, if anything.
    #[serde(default)]
    pub previous: Option<Digest>,
    /// Free text ("tested", "signed-off").
    #[serde(default)]
    pub note: Option<String>,
    /// Promotion or rollback.
    pub kind: Kind,
}

/// A record as found in the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredRecord {
    /// The record manifest's digest.
    pub artifact: Digest,
    /// Its content.
    #[serde(flatten)]
    pub record: Record,
}

impl std::ops::Deref for StoredRecord {
    type Target = Record;
    fn deref(&self) -> &Record {
        &self.record
    }
}

/// What [`promote`] or [`rollback`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PromoteReport {
    /// `registry/repo:env-NAME`.
    pub environment_tag: String,
    /// The digest the environment runs now.
    pub digest: Digest,
    /// What it ran before.
    pub previous: Option<Digest>,
    /// Whether the image was copied to the destination repository.
    pub copied: bool,
    /// The promotion record's digest (`None` if the environment already ran it).
    pub record: Option<Digest>,
}

fn not_found(r: &Reference) -> impl FnOnce(hoist_registry::Error) -> Error + '_ {
    move |e| {
        if e.is_not_found() {
            Error::NotFound(r.to_string())
        } else {
            e.into()
        }
    }
}

/// Promote `src` (which must name a digest) to environment `env` in `to` (default:
/// `src`'s repository): copy it there if needed (the digest is checked to be
/// unchanged), point `env-NAME` at it and attach a promotion record.
pub fn promote(
    client: &Client,
    src: &Reference,
    env: &str,
    to: Option<&Reference>,
    note: Option<&str>,
) -> Result<PromoteReport> {
    let digest = src.digest().cloned().ok_or_else(|| {
        Error::Invalid(format!(
            "{src}: promote takes REF@DIGEST, so that exactly the tested image moves"
        ))
    })?;
    let tag = env_tag(env)?;
    if let Some(to) = to {
        if to.digest().is_some() || to.tag().is_some_and(|t| t != "latest") {
            return Err(Error::Invalid(format!(
                "--to {to}: give a repository without tag or digest"
            )));
        }
    }
    // Only the repository of `dest_repo` is used (with_tag/with_digest replace the rest).
    let dest_repo = to.unwrap_or(src);
    let env_ref = dest_repo.with_tag(&tag)?;
    let at_dest = dest_repo.with_digest(digest.clone());
    // The source must exist (and its bytes match the digest: get_manifest verifies).
    let src_doc = client.get_manifest(src).map_err(not_found(src))?;
    if src_doc.digest() != digest {
        return Err(Error::DigestMismatch {
            what: src.to_string(),
            expected: digest,
            actual: src_doc.digest(),
        });
    }
    let previous = client.head_manifest(&env_ref)?.map(|d| d.digest);
    if previous.as_ref() == Some(&digest) {
        return Ok(PromoteReport {
            environment_tag: env_ref.to_string(),
            digest,
            previous,
            copied: false,
            record: None,
        });
    }
    let mut copied = false;
    if client.head_manifest(&at_dest)?.is_none() {
        let source = client.source(src);
        let mount_from = if src.registry() == dest_repo.registry() {
            vec![src.clone()]
        } else {
            Vec::new()
        };
        let report = client.push(
            &source,
            std::slice::from_ref(&at_dest),
            &PushOptions {
                mount_from,
                ..Default::default()
            },
        )?;
        if let Some(d) = report.digest {
            if d != digest {
                return Err(Error::DigestMismatch {
                    what: format!("copy of {src} to {at_dest}"),
                    expected: digest,
                    actual: d,
                });
            }
        }
        copied = true;
    }
    let record = Record {
        env: env.to_string(),
        time: format_time(OffsetDateTime::now_utc()),
        source: src.to_string(),
        repository: dest_repo.name(),
        digest: digest.clone(),
        previous: previous.clone(),
        note: note.map(str::to_string),
        kind: Kind::Promote,
    };
    point_and_record(client, dest_repo, &env_ref, &src_doc, record, copied)
}

fn point_and_record(
    client: &Client,
    repo: &Reference,
    env_ref: &Reference,
    doc: &RawDocument,
    record: Record,
    copied: bool,
) -> Result<PromoteReport> {
    let digest = doc.digest();
    client.put_manifest(env_ref, doc)?;
    let now = client.head_manifest(env_ref)?.map(|d| d.digest);
    if now.as_ref() != Some(&digest) {
        return Err(Error::Conflict(format!(
            "{env_ref} points at {now:?} right after setting it to {digest}"
        )));
    }
    let artifact = attach_record(client, repo, &doc.descriptor(), &record)?;
    tracing::info!("{env_ref} → {digest} (record {artifact})");
    Ok(PromoteReport {
        environment_tag: env_ref.to_string(),
        digest,
        previous: record.previous,
        copied,
        record: Some(artifact),
    })
}

/// Push a record artifact with `subject` by digest, and list it in the referrers
/// tag-schema index when the registry's referrers API does not show it.
fn attach_record(
    client: &Client,
    repo: &Reference,
    subject: &Descriptor,
    record: &Record,
) -> Result<Digest> {
    let body = serde_json::to_vec(record).map_err(|e| Error::Invalid(e.to_string()))?;
    let config = Descriptor::new(
        PROMOTION_ARTIFACT_TYPE,
        Digest::sha256(&body),
        body.len() as u64,
    );
    put_small_blob(client, repo, &config, &body)?;
    let empty = empty_descriptor();
    put_small_blob(client, repo, &empty, EMPTY_JSON)?;
    let annotations = BTreeMap::from([
        (ENV_ANNOTATION.to_string(), record.env.clone()),
        (
            crate::facts::CREATED_ANNOTATION.to_string(),
            record.time.clone(),
        ),
    ]);
    let mut subject = subject.clone();
    subject.annotations = None;
    subject.platform = None;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(media_type::OCI_MANIFEST.into()),
        artifact_type: Some(PROMOTION_ARTIFACT_TYPE.into()),
        config,
        layers: vec![empty],
        subject: Some(subject.clone()),
        annotations: Some(annotations.clone()),
    };
    let doc = RawDocument::from_value(media_type::OCI_MANIFEST, &manifest);
    let d = doc.digest();
    client.put_manifest(&repo.with_digest(d.clone()), &doc)?;
    let listed = client.referrers(repo, &subject.digest, Some(PROMOTION_ARTIFACT_TYPE))?;
    if !listed.manifests.iter().any(|m| m.digest == d) {
        let tag = format!(
            "{}-{}",
            subject.digest.algorithm().as_str(),
            subject.digest.hex()
        );
        let tref = repo.with_tag(&tag)?;
        let mut index: Index = match client.get_manifest(&tref) {
            Ok(doc) => doc
                .parse()
                .map_err(|e| Error::Invalid(format!("{tref}: invalid referrers index: {e}")))?,
            Err(e) if e.is_not_found() => Index {
                schema_version: 2,
                media_type: Some(media_type::OCI_INDEX.into()),
                artifact_type: None,
                manifests: Vec::new(),
                subject: None,
                annotations: None,
            },
            Err(e) => return Err(e.into()),
        };
        let mut entry = doc.descriptor();
        entry.artifact_type = Some(PROMOTION_ARTIFACT_TYPE.into());
        entry.annotations = Some(annotations);
        index.manifests.push(entry);
        client.put_manifest(
            &tref,
            &RawDocument::from_value(media_type::OCI_INDEX, &index),
        )?;
    }
    Ok(d)
}

/// The promotion records attached to `subject` in `repo`, oldest first.
pub fn records_for(
    client: &Client,
    repo: &Reference,
    subject: &Digest,
) -> Result<Vec<StoredRecord>> {
    let index = client.referrers(repo, subject, Some(PROMOTION_ARTIFACT_TYPE))?;
    let mut out = Vec::new();
    for desc in index.manifests {
        let doc = client.get_manifest_by_descriptor(repo, &desc)?;
        let m: Manifest = doc
            .parse()
            .map_err(|e| Error::Invalid(format!("record {}: {e}", desc.digest)))?;
        if m.config.media_type != PROMOTION_ARTIFACT_TYPE {
            continue;
        }
        let body = read_small_blob(client, repo, &m.config)?;
        let record: Record = serde_json::from_slice(&body)
            .map_err(|e| Error::Invalid(format!("record {}: {e}", desc.digest)))?;
        out.push(StoredRecord {
            artifact: desc.digest,
            record,
        });
    }
    sort_records(&mut out);
    Ok(out)
}

fn sort_records(v: &mut [StoredRecord]) {
    v.sort_by(|a, b| {
        let (ta, tb) = (parse_time(&a.time), parse_time(&b.time));
        ta.cmp(&tb).then(a.time.cmp(&b.time))
    });
}

/// Every promotion record of `env` in `repo`, oldest first (see the module docs).
pub fn history(client: &Client, repo: &Reference, env: &str) -> Result<Vec<StoredRecord>> {
    let tag = env_tag(env)?;
    let tags = tag_digests(client, repo)?;
    let mut queue: VecDeque<Digest> = VecDeque::new();
    for (t, d) in &tags {
        if *t == tag {
            queue.push_back(d.clone());
        } else if let Some(hex) = t.strip_prefix("sha256-") {
            if let Ok(s) = Digest::parse(&format!("sha256:{hex}")) {
                queue.push_back(s);
            }
        }
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    while let Some(d) = queue.pop_front() {
        if !seen.insert(d.clone()) {
            continue;
        }
        for r in records_for(client, repo, &d)? {
            if r.env != env {
                continue;
            }
            if let Some(p) = &r.previous {
                queue.push_back(p.clone());
            }
            out.push(r);
        }
    }
    sort_records(&mut out);
    Ok(out)
}

/// The stack of digests `records` (oldest first) leave: promotions push, rollbacks pop.
pub fn replay(records: &[StoredRecord]) -> Vec<Digest> {
    let mut stack: Vec<Digest> = Vec::new();
    for r in records {
        match r.kind {
            Kind::Promote => stack.push(r.digest.clone()),
            Kind::Rollback => {
                stack.pop();
                if stack.last() != Some(&r.digest) {
                    stack.push(r.digest.clone());
                }
            }
        }
    }
    stack
}

/// Re-point `env` in `repo` at the image it ran before the current promotion, and
/// record that as a rollback.
pub fn rollback(
    client: &Client,
    repo: &Reference,
    env: &str,
    note: Option<&str>,
) -> Result<PromoteReport> {
    let tag = env_tag(env)?;
    let env_ref = repo.with_tag(&tag)?;
    let current = client
        .head_manifest(&env_ref)?
        .map(|d| d.digest)
        .ok_or_else(|| Error::NotFound(env_ref.to_string()))?;
    let records = history(client, repo, env)?;
    let stack = replay(&records);
    if stack.last() != Some(&current) {
        return Err(Error::Conflict(format!(
            "{env_ref} points at {current}, which is not where its promotion records leave \
             it ({}); it was moved outside hoist: promote explicitly instead",
            stack
                .last()
                .map(|d| d.to_string())
                .unwrap_or_else(|| "no record".into())
        )));
    }
    let target = match stack.len() {
        n if n >= 2 => stack[n - 2].clone(),
        _ => {
            return Err(Error::Invalid(format!(
                "{env_ref}: no earlier promotion to roll back to"
            )))
        }
    };
    let at = repo.with_digest(target.clone());
    let doc = client.get_manifest(&at).map_err(not_found(&at))?;
    let record = Record {
        env: env.to_string(),
        time: format_time(OffsetDateTime::now_utc()),
        source: at.to_string(),
        repository: repo.name(),
        digest: target,
        previous: Some(current),
        note: note.map(str::to_string),
        kind: Kind::Rollback,
    };
    point_and_record(client, repo, &env_ref, &doc, record, false)
}

/// One environment in [`status`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvStatus {
    /// The environment name.
    pub env: String,
    /// The digest it runs.
    pub digest: Digest,
    /// The image's commit (`org.opencontainers.image.revision` label).
    pub commit: Option<String>,
    /// The image's creation time.
    pub created: Option<String>,
    /// The latest record that put it there, if any.
    pub promoted: Option<StoredRecord>,
}

/// Which digest every environment of `repo` runs.
pub fn status(client: &Client, repo: &Reference) -> Result<Vec<EnvStatus>> {
    let mut out = Vec::new();
    for (tag, digest) in tag_digests(client, repo)? {
        let Some(env) = tag.strip_prefix(ENV_TAG_PREFIX) else {
            continue;
        };
        let facts = image_facts(client, repo, &digest)?;
        let promoted = records_for(client, repo, &digest)?
            .into_iter()
            .rfind(|r| r.env == env);
        out.push(EnvStatus {
            env: env.to_string(),
            digest,
            commit: facts.labels.get(REVISION_LABEL).cloned(),
            created: facts.created.clone(),
            promoted,
        });
    }
    Ok(out)
}
