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

use hoist_image::{Descriptor, Digest, RawDocument};
use hoist_registry::{Client, PushOptions, Reference};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::artifact::{self, carry_referrers};
use crate::facts::{format_time, image_facts, parse_time, tag_digests, REVISION_LABEL};
use crate::gate::Gate;
use crate::ledger::{self, Action, Event};
use crate::marks::{marks_for, Mark};
use crate::records::PushInfo;
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
    /// Who (from `--by` or the environment, see [`crate::actor`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
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

/// Options for [`promote`].
#[derive(Debug, Default)]
pub struct PromoteOptions {
    /// A note kept in the record.
    pub note: Option<String>,
    /// Who promotes (default: from the environment, see [`crate::actor`]).
    pub by: Option<String>,
    /// Checks the image must pass first (all are run; any failure refuses).
    pub gates: Vec<Box<dyn Gate>>,
}

/// Run every gate on `digest` in `repo`; refuse with all failures.
fn check_gates(
    client: &Client,
    repo: &Reference,
    digest: &Digest,
    gates: &[Box<dyn Gate>],
) -> Result<()> {
    let mut failures = Vec::new();
    for g in gates {
        match g.check(client, repo, digest) {
            Ok(None) => {}
            Ok(Some(why)) => failures.push(format!("{}: {why}", g.name())),
            Err(e) => failures.push(format!("{}: could not check: {e}", g.name())),
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Error::Refused(failures))
    }
}

/// Promote `src` (which must name a digest) to environment `env` in `to` (default:
/// `src`'s repository): check the gates, copy it there if needed (the digest is
/// checked to be unchanged; its referrers — marks, records, signatures — come along),
/// point `env-NAME` at it and attach a promotion record. A promotion into another
/// repository is also recorded on the source side (record and ledger entry), so
/// `status` of either repository shows it.
pub fn promote(
    client: &Client,
    src: &Reference,
    env: &str,
    to: Option<&Reference>,
    opts: &PromoteOptions,
) -> Result<PromoteReport> {
    let note = opts.note.as_deref();
    let by = opts.by.clone().or_else(crate::actor::from_env);
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
    check_gates(client, src, &digest, &opts.gates)?;
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
        crate::records::record_push(
            client,
            dest_repo,
            &digest,
            &[],
            &PushInfo {
                via: "promote".into(),
                from: Some(src.to_string()),
                ..Default::default()
            },
        )?;
    }
    if dest_repo.name() != src.name() {
        let n = carry_referrers(client, src, dest_repo, &digest)?;
        tracing::info!("carried {n} referrers of {digest} to {}", dest_repo.name());
        let n = crate::attachments::carry_tag_attachments(client, src, dest_repo, &digest)?;
        tracing::info!("carried {n} signature/attestation tags of {digest}");
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
        by: by.clone(),
    };
    let report = point_and_record(
        client,
        dest_repo,
        &env_ref,
        &src_doc,
        record.clone(),
        copied,
    )?;
    if dest_repo.name() != src.name() {
        // The source side learns where its image went.
        attach_record(client, src, &src_doc.descriptor(), &record)?;
        let mut ev = Event::new(Action::Promote, digest.clone(), src, "promote");
        ev.env = Some(env.to_string());
        ev.to = Some(dest_repo.name());
        ev.by = by;
        ledger::append(client, src, &ev)?;
    }
    Ok(report)
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

/// Attach a promotion record to `subject` in `repo` (see [`crate::artifact`]).
fn attach_record(
    client: &Client,
    repo: &Reference,
    subject: &Descriptor,
    record: &Record,
) -> Result<Digest> {
    let body = serde_json::to_vec(record).map_err(|e| Error::Invalid(e.to_string()))?;
    let annotations = BTreeMap::from([
        (ENV_ANNOTATION.to_string(), record.env.clone()),
        (
            crate::facts::CREATED_ANNOTATION.to_string(),
            record.time.clone(),
        ),
    ]);
    artifact::attach(
        client,
        repo,
        subject,
        PROMOTION_ARTIFACT_TYPE,
        &body,
        annotations,
    )
}

/// The promotion records of environments of `repo` attached to `subject` there, oldest
/// first. Records carried along by copies from other repositories (which describe
/// environments elsewhere) are left out.
pub fn records_for(
    client: &Client,
    repo: &Reference,
    subject: &Digest,
) -> Result<Vec<StoredRecord>> {
    let here = repo.name();
    let mut out: Vec<StoredRecord> =
        artifact::list::<Record>(client, repo, subject, PROMOTION_ARTIFACT_TYPE)?
            .into_iter()
            .map(|(artifact, record)| StoredRecord { artifact, record })
            .filter(|r| r.repository == here)
            .collect();
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
        by: crate::actor::from_env(),
    };
    point_and_record(client, repo, &env_ref, &doc, record, false)
}

/// One environment in [`status`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvStatus {
    /// The environment name.
    pub env: String,
    /// `registry/repository` its tag lives in (another one than the repository asked
    /// about when the image was promoted elsewhere with `--to`).
    pub repository: String,
    /// The digest it runs (`None` if its tag is gone there).
    pub digest: Option<Digest>,
    /// The image's commit (`org.opencontainers.image.revision` label).
    pub commit: Option<String>,
    /// The image's creation time.
    pub created: Option<String>,
    /// The latest record that put it there, if any (when, by whom, from where).
    pub promoted: Option<StoredRecord>,
    /// The marks of the image it runs.
    pub marks: Vec<Mark>,
    /// Why the environment could not be read, if it could not (another registry down).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn env_status(client: &Client, repo: &Reference, env: &str, digest: Digest) -> Result<EnvStatus> {
    let facts = image_facts(client, repo, &digest)?;
    let promoted = records_for(client, repo, &digest)?
        .into_iter()
        .rfind(|r| r.env == env);
    Ok(EnvStatus {
        env: env.to_string(),
        repository: repo.name(),
        commit: facts.labels.get(REVISION_LABEL).cloned(),
        created: facts.created.clone(),
        marks: marks_for(client, repo, &digest)?,
        digest: Some(digest),
        promoted,
        error: None,
    })
}

/// Every environment of `repo`: the ones whose tag lives in `repo`, and the ones its
/// images were promoted to in other repositories or registries (found through the
/// ledger's `promote` entries and read where they live), sorted by environment and
/// repository.
pub fn status(client: &Client, repo: &Reference) -> Result<Vec<EnvStatus>> {
    let mut out = Vec::new();
    for (tag, digest) in tag_digests(client, repo)? {
        let Some(env) = tag.strip_prefix(ENV_TAG_PREFIX) else {
            continue;
        };
        out.push(env_status(client, repo, env, digest)?);
    }
    let here = repo.name();
    let mut remote: BTreeSet<(String, String)> = BTreeSet::new();
    for e in ledger::read(client, repo)?.entries {
        let ev = e.event;
        if let (Action::Promote, Some(env), Some(to)) = (ev.action, ev.env, ev.to) {
            if to != here {
                remote.insert((env, to));
            }
        }
    }
    for (env, to) in remote {
        let at = Reference::parse(&to)?;
        let read = || -> Result<EnvStatus> {
            match client.head_manifest(&at.with_tag(&env_tag(&env)?)?)? {
                Some(d) => env_status(client, &at, &env, d.digest),
                None => Ok(EnvStatus {
                    env: env.clone(),
                    repository: to.clone(),
                    digest: None,
                    commit: None,
                    created: None,
                    promoted: None,
                    marks: Vec::new(),
                    error: Some(format!("{to}: tag {ENV_TAG_PREFIX}{env} is gone")),
                }),
            }
        };
        out.push(read().unwrap_or_else(|e| EnvStatus {
            env: env.clone(),
            repository: to.clone(),
            digest: None,
            commit: None,
            created: None,
            promoted: None,
            marks: Vec::new(),
            error: Some(e.to_string()),
        }));
    }
    out.sort_by(|a, b| (&a.env, &a.repository).cmp(&(&b.env, &b.repository)));
    Ok(out)
}
