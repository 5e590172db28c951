//! The per-repository ledger: every digest hoist pushed, untagged, promoted or deleted.
//!
//! The distribution API lists tags, never manifests, so an untagged image is invisible
//! to everyone but the one who pushed it. hoist writes down what it does, in the
//! repository itself, so that `prune` and `hoist tags --all` see every digest.
//!
//! # Format
//!
//! ```text
//! tag hoist-ledger.<unix-nanos>.<nonce>  ──►  entry manifest (one per event, never changed)
//!                                               artifactType application/vnd.hoist.ledger.entry.v1+json
//!                                               config → {"id": nonce, "event": Event}
//!
//! tag hoist-ledger  ──►  compacted ledger manifest
//!                          artifactType application/vnd.hoist.ledger.v1+json
//!                          config → {"repository", "previous": digest of the ledger it
//!                                    extends, "entries": [{"entry": digest, "event": Event}…]}
//! ```
//!
//! # Concurrency: nothing is lost
//!
//! The distribution API has no conditional PUT, so a read-modify-write of one document
//! can lose a concurrent writer's change. hoist never relies on one:
//!
//! 1. **Append**: each event is its own manifest under its own unique tag
//!    (`hoist-ledger.<nanos>.<nonce>`). Two writers never write the same tag.
//! 2. **Read**: list the tags, read every entry tag, *then* read `hoist-ledger`, and
//!    take the union. `hoist-ledger` is never deleted, so when it is listed but reads
//!    as missing (the distribution filesystem driver rewrites a tag link in place, and
//!    a concurrent read can see it half-written) the read is retried, never taken as
//!    "no ledger" — merging from an empty ledger would drop what was compacted.
//! 3. **Compact** (after every append, best effort): list entry tags, then read
//!    `hoist-ledger`, PUT the union under `hoist-ledger`, re-read it and retry on a
//!    conflict (someone else's ledger is there). An entry tag is deleted (by deleting
//!    the entry manifest, which nothing else points at) only when a re-read ledger
//!    contains it **and** the entry is older than the grace period
//!    ([`ENTRY_GRACE`], 10 minutes). A compaction that took longer than half the grace
//!    period from its tag listing to its PUT gives up without writing.
//!
//! Why that is enough: a ledger written after an entry's tag is deleted lacks the entry
//! only if its writer listed the tags before the entry existed and read a ledger
//! older than the one that folded it in — so its compaction spanned from before the
//! entry's creation to after its deletion, longer than the grace period; compactions
//! give up long before that. A reader (2) therefore finds each entry under its tag or
//! in the ledger it reads next. (The grace period is measured against the entry tag's
//! timestamp, so writers' clocks must agree within a few minutes.) Without the grace
//! period a slow compactor could overwrite the ledger with one that lacks an entry
//! another compactor had just folded in and untagged: the concurrency test saw it.
//!
//! Old compacted ledgers stay in the registry by digest (the `previous` chain); prune
//! never treats them as images. The ledger is one JSON blob, read fully (at most
//! [`hoist_image::source::MAX_DOCUMENT_SIZE`]: some tens of thousands of events).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hoist_image::{Digest, Manifest};
use hoist_registry::{Client, Reference};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::artifact::{put_artifact, read_body};
use crate::facts::{format_time, parse_time};
use crate::{Error, Result};

/// The tag of the compacted ledger.
pub const LEDGER_TAG: &str = "hoist-ledger";
/// The prefix of entry tags.
pub const ENTRY_TAG_PREFIX: &str = "hoist-ledger.";
/// The artifact type of the compacted ledger.
pub const LEDGER_TYPE: &str = "application/vnd.hoist.ledger.v1+json";
/// The artifact type of one ledger entry.
pub const ENTRY_TYPE: &str = "application/vnd.hoist.ledger.entry.v1+json";

/// How old an entry must be before compaction may delete its tag (see the module docs).
pub const ENTRY_GRACE: Duration = Duration::from_secs(600);

/// Whether `tag` is one of the ledger's reserved tags.
pub fn is_ledger_tag(tag: &str) -> bool {
    tag == LEDGER_TAG || tag.starts_with(ENTRY_TAG_PREFIX)
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// hoist pushed the digest (build --push, push, copy, promote).
    Push,
    /// hoist removed a tag from it (the digest stays, untagged).
    Untag,
    /// hoist promoted it to an environment (possibly in another repository).
    Promote,
    /// hoist deleted it (prune).
    Delete,
}

/// One event: the body of a push record and of a ledger entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// What happened.
    pub action: Action,
    /// The image's manifest (or index) digest.
    pub digest: Digest,
    /// When (RFC 3339, UTC, nanoseconds; hoist's clock right after the registry
    /// accepted the manifest).
    pub time: String,
    /// `registry/repository` it happened in.
    pub repository: String,
    /// Tags involved (pushed, or removed for `untag`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The hoist command: `build`, `push`, `copy`, `promote`, `untag`, `prune`.
    pub via: String,
    /// Where the image came from (an image reference, for copy and promote).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The source repository (git `origin`) it was built from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The commit it was built from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The CI build id (`--build-id`, or the CI system's variable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_id: Option<String>,
    /// Who (see `crate::actor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// For `promote`: the environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// For `promote`: `registry/repository` the environment tag lives in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// For `push`: the push record artifact attached to the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<Digest>,
}

impl Event {
    /// A new event of `action` on `digest` in `repo`, now, via `via`.
    pub fn new(action: Action, digest: Digest, repo: &Reference, via: &str) -> Event {
        Event {
            action,
            digest,
            time: format_time(OffsetDateTime::now_utc()),
            repository: repo.name(),
            tags: Vec::new(),
            via: via.to_string(),
            from: None,
            source: None,
            commit: None,
            build_id: None,
            by: crate::actor::from_env(),
            env: None,
            to: None,
            record: None,
        }
    }

    /// The time parsed.
    pub fn time(&self) -> Option<OffsetDateTime> {
        parse_time(&self.time)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct EntryBody {
    /// Makes every entry manifest unique.
    id: String,
    event: Event,
}

/// An event as stored in the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The entry manifest's digest (its identity).
    pub entry: Digest,
    /// The event.
    pub event: Event,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LedgerBody {
    repository: String,
    #[serde(default)]
    previous: Option<Digest>,
    entries: Vec<Entry>,
}

/// The ledger as read: every entry, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Ledger {
    /// The entries, sorted by time (then entry digest, only to make the order stable).
    pub entries: Vec<Entry>,
}

impl Ledger {
    /// Every digest the ledger mentions, with its events (oldest first).
    pub fn by_digest(&self) -> BTreeMap<Digest, Vec<&Event>> {
        let mut m: BTreeMap<Digest, Vec<&Event>> = BTreeMap::new();
        for e in &self.entries {
            m.entry(e.event.digest.clone()).or_default().push(&e.event);
        }
        m
    }

    /// The time of the latest `push` of each digest.
    pub fn push_times(&self) -> BTreeMap<Digest, OffsetDateTime> {
        let mut m = BTreeMap::new();
        for e in &self.entries {
            if e.event.action != Action::Push {
                continue;
            }
            if let Some(t) = e.event.time() {
                let slot = m.entry(e.event.digest.clone()).or_insert(t);
                if t > *slot {
                    *slot = t;
                }
            }
        }
        m
    }
}

fn nonce() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = format!(
        "{}:{}:{:?}:{}",
        std::process::id(),
        OffsetDateTime::now_utc().unix_timestamp_nanos(),
        std::thread::current().id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    Digest::sha256(seed.as_bytes()).hex()[..16].to_string()
}

/// Append `event` to `repo`'s ledger (a new entry tag), then compact (best effort: a
/// failed compaction loses nothing, the entry tag stays). Returns the entry digest.
pub fn append(client: &Client, repo: &Reference, event: &Event) -> Result<Digest> {
    let id = nonce();
    let body = serde_json::to_vec(&EntryBody {
        id: id.clone(),
        event: event.clone(),
    })
    .map_err(|e| Error::Invalid(e.to_string()))?;
    let doc = put_artifact(client, repo, ENTRY_TYPE, &body, None, BTreeMap::new())?;
    let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
    let tag = format!("{ENTRY_TAG_PREFIX}{nanos:020}.{id}");
    client.put_manifest(&repo.with_tag(&tag)?, &doc)?;
    if let Err(e) = compact(client, repo) {
        tracing::warn!(
            "compacting the ledger of {}: {e} (nothing is lost)",
            repo.name()
        );
    }
    Ok(doc.digest())
}

/// The entry tags of `repo`, and whether the `hoist-ledger` tag exists.
fn entry_tags(client: &Client, repo: &Reference) -> Result<(Vec<String>, bool)> {
    let tags = match client.list_tags(repo) {
        Ok(t) => t,
        Err(e) if e.is_not_found() => return Ok((Vec::new(), false)),
        Err(e) => return Err(e.into()),
    };
    let has_ledger = tags.iter().any(|t| t == LEDGER_TAG);
    Ok((
        tags.into_iter()
            .filter(|t| t.starts_with(ENTRY_TAG_PREFIX))
            .collect(),
        has_ledger,
    ))
}

fn read_entry(client: &Client, repo: &Reference, tag: &str) -> Result<Option<Entry>> {
    let r = repo.with_tag(tag)?;
    let doc = match client.get_manifest(&r) {
        Ok(d) => d,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let m: Manifest = doc
        .parse()
        .map_err(|e| Error::Invalid(format!("{r}: invalid ledger entry: {e}")))?;
    if m.artifact_type.as_deref() != Some(ENTRY_TYPE) {
        return Err(Error::Invalid(format!(
            "{r}: the reserved tag holds something that is not a hoist ledger entry"
        )));
    }
    let body: EntryBody = read_body(client, repo, &m, &doc.digest())?;
    Ok(Some(Entry {
        entry: doc.digest(),
        event: body.event,
    }))
}

/// The compacted ledger now under `hoist-ledger`: its digest and content.
fn read_compacted(client: &Client, repo: &Reference) -> Result<Option<(Digest, LedgerBody)>> {
    let r = repo.with_tag(LEDGER_TAG)?;
    let doc = match client.get_manifest(&r) {
        Ok(d) => d,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let m: Manifest = doc
        .parse()
        .map_err(|e| Error::Invalid(format!("{r}: invalid ledger: {e}")))?;
    if m.artifact_type.as_deref() != Some(LEDGER_TYPE) {
        return Err(Error::Invalid(format!(
            "{r}: the reserved tag holds something that is not a hoist ledger"
        )));
    }
    Ok(Some((
        doc.digest(),
        read_body(client, repo, &m, &doc.digest())?,
    )))
}

fn sorted(mut entries: Vec<Entry>) -> Vec<Entry> {
    let mut seen = BTreeSet::new();
    entries.retain(|e| seen.insert(e.entry.clone()));
    entries.sort_by(|a, b| {
        (a.event.time(), &a.event.time, &a.entry).cmp(&(b.event.time(), &b.event.time, &b.entry))
    });
    entries
}

/// Read `repo`'s ledger (entry tags first, then the compacted ledger; see the module
/// docs for why that order loses nothing).
pub fn read(client: &Client, repo: &Reference) -> Result<Ledger> {
    for _ in 0..8 {
        let mut entries = Vec::new();
        let (tags, has_ledger) = entry_tags(client, repo)?;
        for t in tags {
            entries.extend(read_entry(client, repo, &t)?);
        }
        match read_compacted(client, repo)? {
            Some((_, body)) => entries.extend(body.entries),
            // The tag is listed but reads as missing: it is being rewritten right now
            // (the filesystem driver does not replace it atomically). Read again.
            None if has_ledger => continue,
            None => {}
        }
        return Ok(Ledger {
            entries: sorted(entries),
        });
    }
    Err(Error::Conflict(format!(
        "{}: {LEDGER_TAG} is listed but cannot be read",
        repo.name()
    )))
}

/// Fold the entry tags into `hoist-ledger` and remove the tags of the entries older than
/// [`ENTRY_GRACE`] that a re-read ledger is seen to contain (see the module docs).
/// Returns how many entry tags were removed.
pub fn compact(client: &Client, repo: &Reference) -> Result<usize> {
    compact_with(client, repo, ENTRY_GRACE)
}

/// The entry tag's time (nanoseconds since the epoch, as written by [`append`]).
fn tag_time(tag: &str) -> Option<i128> {
    tag.strip_prefix(ENTRY_TAG_PREFIX)?
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// [`compact`] with another grace period. A short one is only safe when no other
/// hoist writes to the repository meanwhile (tests, maintenance windows).
pub fn compact_with(client: &Client, repo: &Reference, grace: Duration) -> Result<usize> {
    for attempt in 0..8 {
        let started = Instant::now();
        let (tags, has_ledger) = entry_tags(client, repo)?;
        if tags.is_empty() {
            return Ok(0);
        }
        let mut fresh = Vec::new();
        for t in &tags {
            if let Some(e) = read_entry(client, repo, t)? {
                fresh.push((t.clone(), e));
            }
        }
        let base = read_compacted(client, repo)?;
        if base.is_none() && has_ledger {
            // Listed but unreadable: being rewritten. Merging from nothing would drop
            // every compacted entry, so read again instead.
            continue;
        }
        let known: BTreeSet<Digest> = base
            .as_ref()
            .map(|(_, b)| b.entries.iter().map(|e| e.entry.clone()).collect())
            .unwrap_or_default();
        let mut merged: Vec<Entry> = base
            .as_ref()
            .map(|(_, b)| b.entries.clone())
            .unwrap_or_default();
        let new: Vec<Entry> = fresh
            .iter()
            .filter(|(_, e)| !known.contains(&e.entry))
            .map(|(_, e)| e.clone())
            .collect();
        let current = if new.is_empty() {
            base.as_ref().map(|(d, _)| d.clone())
        } else {
            merged.extend(new);
            let body = LedgerBody {
                repository: repo.name(),
                previous: base.as_ref().map(|(d, _)| d.clone()),
                entries: sorted(merged),
            };
            let bytes = serde_json::to_vec(&body).map_err(|e| Error::Invalid(e.to_string()))?;
            let doc = put_artifact(client, repo, LEDGER_TYPE, &bytes, None, BTreeMap::new())?;
            if started.elapsed() > grace / 2 {
                return Err(Error::Conflict(format!(
                    "{}: compacting took longer than half the grace period; gave up without \
                     writing (nothing is lost)",
                    repo.name()
                )));
            }
            client.put_manifest(&repo.with_tag(LEDGER_TAG)?, &doc)?;
            Some(doc.digest())
        };
        // Re-read: only what the ledger there now contains may lose its entry tag.
        let Some((now, body)) = read_compacted(client, repo)? else {
            continue;
        };
        if Some(&now) != current.as_ref() {
            tracing::debug!(
                "ledger of {} changed under us (attempt {attempt}); merging again",
                repo.name()
            );
            continue;
        }
        let contained: BTreeSet<&Digest> = body.entries.iter().map(|e| &e.entry).collect();
        let mut removed = 0;
        let now = OffsetDateTime::now_utc().unix_timestamp_nanos();
        let old_enough =
            |t: &str| tag_time(t).is_some_and(|at| now - at >= grace.as_nanos() as i128);
        for (_, e) in fresh
            .iter()
            .filter(|(t, e)| contained.contains(&e.entry) && old_enough(t))
        {
            match client.delete_manifest(repo, &e.entry) {
                Ok(()) => removed += 1,
                Err(err) if err.is_not_found() => {}
                // A registry without deletes keeps the entry tags: still correct.
                Err(err) if err.status() == Some(405) => return Ok(removed),
                Err(err) => return Err(err.into()),
            }
        }
        return Ok(removed);
    }
    Err(Error::Conflict(format!(
        "{}: the ledger kept changing while compacting; the entry tags stay (nothing is lost)",
        repo.name()
    )))
}
