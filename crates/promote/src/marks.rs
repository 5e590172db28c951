//! Marks: "tested", "signed-off" — named facts about one digest, kept in the registry.
//!
//! A mark is an artifact of type [`MARK_TYPE`] attached to the image (see
//! [`crate::artifact`]), so it follows the digest when `copy` or `promote` carry the
//! referrers to another registry. `promote --require NAME,…` checks them
//! ([`crate::gate::RequireMarks`]); `prune` never deletes a marked image.

use std::collections::BTreeMap;

use hoist_image::Digest;
use hoist_registry::{Client, Reference};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::artifact;
use crate::facts::{format_time, parse_time};
use crate::{Error, Result};

/// The artifact type of marks.
pub const MARK_TYPE: &str = "application/vnd.hoist.mark.v1+json";
/// The annotation naming a mark.
pub const MARK_ANNOTATION: &str = "vnd.hoist.mark.name";

/// The content of a mark.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// The mark (`tested`, `signed-off`).
    pub name: String,
    /// The image.
    pub digest: Digest,
    /// `registry/repository` it was marked in.
    pub repository: String,
    /// When (RFC 3339, UTC).
    pub time: String,
    /// Who.
    #[serde(default)]
    pub by: Option<String>,
    /// Free text.
    #[serde(default)]
    pub note: Option<String>,
}

/// Check a mark name: letters, digits, `_`, `.`, `-`, at most 64.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "mark name {name:?}: use letters, digits, '_', '.', '-' (at most 64)"
        )))
    }
}

/// Attach mark `name` to the image `image` names (which must name a digest). `by`
/// defaults to the actor from the environment. Returns the mark artifact's digest.
pub fn mark(
    client: &Client,
    image: &Reference,
    name: &str,
    by: Option<&str>,
    note: Option<&str>,
) -> Result<Digest> {
    validate_name(name)?;
    let digest = image.digest().cloned().ok_or_else(|| {
        Error::Invalid(format!(
            "{image}: mark takes REPO@DIGEST, so that exactly that image is marked"
        ))
    })?;
    let subject = client
        .head_manifest(image)?
        .ok_or_else(|| Error::NotFound(image.to_string()))?;
    if subject.digest != digest {
        return Err(Error::DigestMismatch {
            what: image.to_string(),
            expected: digest,
            actual: subject.digest,
        });
    }
    let m = Mark {
        name: name.to_string(),
        digest,
        repository: image.name(),
        time: format_time(OffsetDateTime::now_utc()),
        by: by.map(str::to_string).or_else(crate::actor::from_env),
        note: note.map(str::to_string),
    };
    let body = serde_json::to_vec(&m).map_err(|e| Error::Invalid(e.to_string()))?;
    let annotations = BTreeMap::from([
        (MARK_ANNOTATION.to_string(), m.name.clone()),
        (crate::facts::CREATED_ANNOTATION.to_string(), m.time.clone()),
    ]);
    let d = artifact::attach(client, image, &subject, MARK_TYPE, &body, annotations)?;
    tracing::info!("marked {image} {name} (artifact {d})");
    Ok(d)
}

/// The marks attached to `digest` in `repo`, oldest first.
pub fn marks_for(client: &Client, repo: &Reference, digest: &Digest) -> Result<Vec<Mark>> {
    let mut v: Vec<Mark> = artifact::list::<Mark>(client, repo, digest, MARK_TYPE)?
        .into_iter()
        .map(|(_, m)| m)
        .filter(|m| m.digest == *digest)
        .collect();
    v.sort_by(|a, b| (parse_time(&a.time), &a.time).cmp(&(parse_time(&b.time), &b.time)));
    Ok(v)
}
