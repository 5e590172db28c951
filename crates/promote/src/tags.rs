//! Tag operations that never move a blob: add tags, remove one tag safely, list.
//!
//! # Why `untag` does not simply DELETE
//!
//! The distribution API deletes manifests by digest, and deleting a digest removes
//! every tag that points at it. To remove only `TAG`, [`untag`] first re-points
//! `TAG` at a tiny placeholder artifact made for this one call (unique by an
//! annotation, so no other tag can share its digest), then deletes the
//! placeholder's digest: that removes `TAG` and nothing else. The image itself and
//! its sibling tags are checked before and after.

use std::collections::BTreeMap;

use hoist_image::{media_type, Descriptor, Digest, RawDocument};
use hoist_registry::{Client, Reference};
use serde::Serialize;

use crate::facts::{self, ensure_delete_supported, image_facts, resolve_tag, tag_digests};
use crate::ledger::{self, Action, Event};
use crate::{Error, Result};

/// The `artifactType` of the placeholders [`untag`] makes and deletes.
pub const PLACEHOLDER_ARTIFACT_TYPE: &str = "application/vnd.hoist.untag-placeholder.v1";

/// The OCI empty JSON blob `{}`.
pub(crate) const EMPTY_JSON: &[u8] = b"{}";

pub(crate) fn empty_descriptor() -> Descriptor {
    Descriptor::new(
        media_type::OCI_EMPTY,
        Digest::sha256(EMPTY_JSON),
        EMPTY_JSON.len() as u64,
    )
}

/// Upload a small in-memory blob.
pub(crate) fn put_small_blob(
    client: &Client,
    repo: &Reference,
    desc: &Descriptor,
    bytes: &[u8],
) -> Result<()> {
    let owned = bytes.to_vec();
    let open = move || -> hoist_image::Result<Box<dyn std::io::Read + Send>> {
        Ok(Box::new(std::io::Cursor::new(owned.clone())))
    };
    client.upload_blob(repo, desc, None, &open)?;
    Ok(())
}

/// Put the manifest `src` names under each of `tags` in the same repository
/// (exact bytes, so the digest is unchanged; no blob is read or written). Returns
/// the digest, checked for every new tag.
pub fn tag(client: &Client, src: &Reference, tags: &[String]) -> Result<Digest> {
    if tags.is_empty() {
        return Err(Error::Invalid("no tag to add".into()));
    }
    let targets = tags
        .iter()
        .map(|t| src.with_tag(t))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let doc = client.get_manifest(src).map_err(|e| {
        if e.is_not_found() {
            Error::NotFound(src.to_string())
        } else {
            e.into()
        }
    })?;
    let digest = doc.digest();
    if let Some(want) = src.digest() {
        if *want != digest {
            return Err(Error::DigestMismatch {
                what: src.to_string(),
                expected: want.clone(),
                actual: digest,
            });
        }
    }
    for t in &targets {
        let stored = client.put_manifest(t, &doc)?;
        let now = client.head_manifest(t)?.map(|d| d.digest);
        if stored != digest || now.as_ref() != Some(&digest) {
            return Err(Error::Conflict(format!(
                "{t}: expected {digest} after tagging, found {}",
                now.map(|d| d.to_string())
                    .unwrap_or_else(|| "no manifest".into())
            )));
        }
        tracing::info!("tagged {t} → {digest}");
    }
    Ok(digest)
}

/// What [`untag`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UntagReport {
    /// The tag removed.
    pub tag: String,
    /// The digest it pointed at (still in the registry).
    pub digest: Digest,
    /// Other tags on the same digest, verified to still point at it.
    pub siblings: Vec<String>,
}

/// Remove only the tag `r` names, keeping the image and its other tags (see the
/// module docs for how). Refuses, changing nothing, when the tag does not exist or
/// the registry cannot delete.
pub fn untag(client: &Client, r: &Reference) -> Result<UntagReport> {
    let tag = match (r.tag(), r.digest()) {
        (Some(t), None) => t.to_string(),
        _ => {
            return Err(Error::Invalid(format!(
                "{r}: untag takes REPO:TAG (without a digest)"
            )))
        }
    };
    let repo = r.with_tag(&tag)?;
    let original = client.get_manifest(&repo).map_err(|e| {
        if e.is_not_found() {
            Error::NotFound(repo.to_string())
        } else {
            e.into()
        }
    })?;
    let digest = original.digest();
    ensure_delete_supported(client, &repo)?;
    let siblings: Vec<String> = tag_digests(client, &repo)?
        .into_iter()
        .filter(|(t, d)| *t != tag && *d == digest)
        .map(|(t, _)| t)
        .collect();

    // A placeholder no other tag can point at: its annotations name this tag, the
    // digest it replaces and the current time.
    let nonce = facts::format_time(time::OffsetDateTime::now_utc());
    let empty = empty_descriptor();
    put_small_blob(client, &repo, &empty, EMPTY_JSON)?;
    let placeholder = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "artifactType": PLACEHOLDER_ARTIFACT_TYPE,
        "config": empty,
        "layers": [empty],
        "annotations": BTreeMap::from([
            ("vnd.hoist.untag.tag", tag.as_str()),
            ("vnd.hoist.untag.replaces", &digest.to_string()),
            ("vnd.hoist.untag.time", nonce.as_str()),
        ]),
    });
    let doc = RawDocument::from_value(media_type::OCI_MANIFEST, &placeholder);
    let pd = doc.digest();
    client.put_manifest(&repo, &doc)?;
    let restore = |why: String| -> Error {
        match client.put_manifest(&repo, &original) {
            Ok(_) => Error::Conflict(format!("{why}; {repo} was restored to {digest}")),
            Err(e) => Error::Conflict(format!(
                "{why}; restoring {repo} to {digest} failed too: {e}"
            )),
        }
    };
    match resolve_tag(client, &repo, &tag)? {
        Some(d) if d == pd => {}
        other => {
            return Err(restore(format!(
                "{repo} changed while untagging (now {other:?})"
            )))
        }
    }
    if let Err(e) = client.delete_manifest(&repo, &pd) {
        return Err(restore(format!(
            "deleting the placeholder {pd} failed: {e}"
        )));
    }
    // Verify: the tag is gone, the image and its siblings are intact.
    if let Some(d) = resolve_tag(client, &repo, &tag)? {
        return Err(Error::Conflict(format!(
            "{repo} still points at {d} after untagging"
        )));
    }
    if client
        .head_manifest(&repo.with_digest(digest.clone()))?
        .is_none()
    {
        return Err(Error::Conflict(format!(
            "{} vanished while untagging {tag}",
            repo.with_digest(digest.clone())
        )));
    }
    for s in &siblings {
        if resolve_tag(client, &repo, s)?.as_ref() != Some(&digest) {
            return Err(Error::Conflict(format!(
                "sibling tag {s} no longer points at {digest} after untagging {tag}"
            )));
        }
    }
    tracing::info!("untagged {repo} ({digest}); kept {siblings:?}");
    // The digest may now be untagged: the ledger keeps it visible.
    let mut ev = Event::new(Action::Untag, digest.clone(), &repo, "untag");
    ev.tags = vec![tag.clone()];
    ledger::append(client, &repo, &ev)?;
    Ok(UntagReport {
        tag,
        digest,
        siblings,
    })
}

/// One row of [`list`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagInfo {
    /// The tag (`None`: an untagged image the ledger knows, with `all`).
    pub tag: Option<String>,
    /// The digest it points at.
    pub digest: Digest,
    /// The manifest's media type (with `--details`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Creation time (with `--details`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Config labels (with `--details`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Artifact type, for tags of artifacts (with `--details`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

/// Every tag of `repo` (all pages), sorted, with its digest and, with `details`,
/// creation time and labels from the config. With `all`, also every untagged digest
/// the repository's [`crate::ledger`] names that still exists (after the tags).
pub fn list(client: &Client, repo: &Reference, details: bool, all: bool) -> Result<Vec<TagInfo>> {
    let mut out = Vec::new();
    let mut cache: BTreeMap<Digest, facts::ImageFacts> = BTreeMap::new();
    let mut rows: Vec<(Option<String>, Digest)> = tag_digests(client, repo)?
        .into_iter()
        .map(|(t, d)| (Some(t), d))
        .collect();
    if all {
        let tagged: std::collections::BTreeSet<Digest> =
            rows.iter().map(|(_, d)| d.clone()).collect();
        for d in ledger::read(client, repo)?.by_digest().into_keys() {
            if !tagged.contains(&d)
                && client
                    .head_manifest(&repo.with_digest(d.clone()))?
                    .is_some()
            {
                rows.push((None, d));
            }
        }
    }
    for (tag, digest) in rows {
        let mut info = TagInfo {
            tag,
            digest: digest.clone(),
            media_type: None,
            created: None,
            labels: None,
            artifact_type: None,
        };
        if details {
            if !cache.contains_key(&digest) {
                cache.insert(digest.clone(), image_facts(client, repo, &digest)?);
            }
            let f = &cache[&digest];
            info.media_type = Some(f.media_type.clone());
            info.created = f.created.clone();
            info.labels = Some(f.labels.clone());
            info.artifact_type = f.artifact_type.clone();
        }
        out.push(info);
    }
    Ok(out)
}
