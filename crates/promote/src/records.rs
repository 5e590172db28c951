//! Push records: what hoist pushed, attached to the image and written to the ledger.
//!
//! After every push (build --push, push, copy, promote) hoist attaches a push record to
//! the image (an artifact of type [`PUSH_RECORD_TYPE`], see [`crate::artifact`]) and
//! appends the same event to the repository's [`crate::ledger`]. The ledger entry is
//! what ordering uses (it is found without knowing the digest); the attached record
//! travels with the image when it is copied.

use std::collections::BTreeMap;

use hoist_image::Digest;
use hoist_registry::{Client, Reference};
use serde::Serialize;

use crate::artifact;
use crate::ledger::{self, Action, Event};
use crate::{Error, Result};

/// The artifact type of push records.
pub const PUSH_RECORD_TYPE: &str = "application/vnd.hoist.push.v1+json";

/// What to say about a push, besides the digest and the time.
#[derive(Debug, Clone, Default)]
pub struct PushInfo {
    /// The hoist command (`build`, `push`, `copy`, `promote`).
    pub via: String,
    /// Where the image came from (an image reference), for copies.
    pub from: Option<String>,
    /// The git `origin` it was built from.
    pub source: Option<String>,
    /// The commit it was built from.
    pub commit: Option<String>,
    /// The CI build id (default: from the CI system's variables).
    pub build_id: Option<String>,
}

/// What [`record_push`] wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recorded {
    /// The push record attached to the image.
    pub record: Digest,
    /// The ledger entry.
    pub entry: Digest,
}

/// Record that `digest` was pushed to `repo` under `tags` (the tags at push time).
pub fn record_push(
    client: &Client,
    repo: &Reference,
    digest: &Digest,
    tags: &[String],
    info: &PushInfo,
) -> Result<Recorded> {
    let at = repo.with_digest(digest.clone());
    let subject = client
        .head_manifest(&at)?
        .ok_or_else(|| Error::NotFound(at.to_string()))?;
    let mut event = Event::new(Action::Push, digest.clone(), repo, &info.via);
    event.tags = tags.to_vec();
    event.from = info.from.clone();
    event.source = info.source.clone();
    event.commit = info.commit.clone();
    event.build_id = info
        .build_id
        .clone()
        .or_else(crate::actor::build_id_from_env);
    let body = serde_json::to_vec(&event).map_err(|e| Error::Invalid(e.to_string()))?;
    let annotations = BTreeMap::from([(
        crate::facts::CREATED_ANNOTATION.to_string(),
        event.time.clone(),
    )]);
    let record = artifact::attach(client, repo, &subject, PUSH_RECORD_TYPE, &body, annotations)?;
    event.record = Some(record.clone());
    let entry = ledger::append(client, repo, &event)?;
    tracing::info!("recorded push of {at} (record {record}, ledger entry {entry})");
    Ok(Recorded { record, entry })
}

/// The push records attached to `digest` in `repo` (including ones carried over from
/// other registries by copies), oldest first.
pub fn push_records(client: &Client, repo: &Reference, digest: &Digest) -> Result<Vec<Event>> {
    let mut v: Vec<Event> = artifact::list::<Event>(client, repo, digest, PUSH_RECORD_TYPE)?
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    v.sort_by(|a, b| (a.time(), &a.time).cmp(&(b.time(), &b.time)));
    Ok(v)
}

/// Record one push of `digest` to each repository among `dests` (references with a
/// tag or a digest; the tags of one repository go into one record).
pub fn record_pushes(
    client: &Client,
    dests: &[Reference],
    digest: &Digest,
    info: &PushInfo,
) -> Result<Vec<Recorded>> {
    let mut by_repo: BTreeMap<String, (Reference, Vec<String>)> = BTreeMap::new();
    for d in dests {
        let slot = by_repo
            .entry(d.name())
            .or_insert_with(|| (d.clone(), Vec::new()));
        if d.digest().is_none() {
            if let Some(t) = d.tag() {
                slot.1.push(t.to_string());
            }
        }
    }
    by_repo
        .into_values()
        .map(|(r, tags)| record_push(client, &r, digest, &tags, info))
        .collect()
}
