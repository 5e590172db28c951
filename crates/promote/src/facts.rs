//! What hoist needs to know about one manifest in a repository.

use std::collections::BTreeMap;
use std::io::Read;

use hoist_image::{media_type, Descriptor, Digest, ImageConfig, Index, Manifest, RawDocument};
use hoist_registry::{Client, Reference};
use time::OffsetDateTime;

use crate::{Error, Result};

/// The annotation read for an image's creation time when its config has none.
pub const CREATED_ANNOTATION: &str = "org.opencontainers.image.created";
/// The label (or annotation) `hoist status` reports as the image's commit.
pub const REVISION_LABEL: &str = "org.opencontainers.image.revision";

/// Facts about one manifest or index.
#[derive(Debug, Clone)]
pub struct ImageFacts {
    /// Its digest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Its exact bytes.
    pub raw: RawDocument,
    /// Creation time as written (config `created`, else the
    /// `org.opencontainers.image.created` annotation; for an index, the annotation
    /// or its first child's).
    pub created: Option<String>,
    /// Config labels (first child's for an index).
    pub labels: BTreeMap<String, String>,
    /// Manifests an index references.
    pub children: Vec<Digest>,
    /// `artifactType` (or a non-image config media type): not an image.
    pub artifact_type: Option<String>,
    /// The `subject` it refers to.
    pub subject: Option<Descriptor>,
}

impl ImageFacts {
    /// The creation time parsed as RFC 3339.
    pub fn created_time(&self) -> Option<OffsetDateTime> {
        parse_time(self.created.as_deref()?)
    }

    /// Whether this is an index.
    pub fn is_index(&self) -> bool {
        media_type::is_index(&self.media_type)
    }
}

/// Parse an RFC 3339 time.
pub fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

/// Format a time as RFC 3339 (nanoseconds kept, so records sort in push order).
pub fn format_time(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Read a small blob fully.
pub(crate) fn read_small_blob(
    client: &Client,
    r: &Reference,
    desc: &Descriptor,
) -> Result<Vec<u8>> {
    if desc.size > hoist_image::source::MAX_DOCUMENT_SIZE {
        return Err(Error::Invalid(format!(
            "{}: blob {} is too large ({} bytes)",
            r, desc.digest, desc.size
        )));
    }
    let mut out = Vec::new();
    hoist_image::VerifyingReader::new(
        client.get_blob(r, desc)?,
        desc.digest.clone(),
        Some(desc.size),
    )
    .read_to_end(&mut out)
    .map_err(|e| Error::Invalid(format!("{r}: reading blob {}: {e}", desc.digest)))?;
    Ok(out)
}

/// Fetch and describe the manifest `digest` of `repo`'s repository.
pub fn image_facts(client: &Client, repo: &Reference, digest: &Digest) -> Result<ImageFacts> {
    let r = repo.with_digest(digest.clone());
    let raw = client.get_manifest(&r).map_err(|e| {
        if e.is_not_found() {
            Error::NotFound(r.to_string())
        } else {
            e.into()
        }
    })?;
    let mt = hoist_image::source::document_media_type(&raw)?;
    let mut facts = ImageFacts {
        digest: digest.clone(),
        media_type: mt.clone(),
        raw: raw.clone(),
        created: None,
        labels: BTreeMap::new(),
        children: Vec::new(),
        artifact_type: None,
        subject: None,
    };
    let bad = |e: serde_json::Error| Error::Invalid(format!("{r}: invalid document: {e}"));
    if media_type::is_index(&mt) {
        let index: Index = raw.parse().map_err(bad)?;
        facts.children = index.manifests.iter().map(|d| d.digest.clone()).collect();
        facts.artifact_type = index.artifact_type.clone();
        facts.subject = index.subject.clone();
        facts.created = index
            .annotations
            .as_ref()
            .and_then(|a| a.get(CREATED_ANNOTATION).cloned());
        if facts.artifact_type.is_none() {
            if let Some(first) = index
                .manifests
                .iter()
                .find(|d| media_type::is_manifest(&d.media_type))
            {
                if let Ok(child) = image_facts(client, repo, &first.digest) {
                    if facts.created.is_none() {
                        facts.created = child.created;
                    }
                    facts.labels = child.labels;
                }
            }
        }
        return Ok(facts);
    }
    let m: Manifest = raw.parse().map_err(bad)?;
    facts.subject = m.subject.clone();
    let image_config = m.config.media_type == media_type::OCI_CONFIG
        || m.config.media_type == media_type::DOCKER_CONFIG;
    facts.artifact_type = m
        .artifact_type
        .clone()
        .or_else(|| (!image_config).then(|| m.config.media_type.clone()));
    let annotated = m
        .annotations
        .as_ref()
        .and_then(|a| a.get(CREATED_ANNOTATION).cloned());
    if image_config {
        let bytes = read_small_blob(client, repo, &m.config)?;
        let config: ImageConfig = serde_json::from_slice(&bytes).map_err(bad)?;
        facts.created = config.created.clone().or(annotated);
        facts.labels = config.config.and_then(|c| c.labels).unwrap_or_default();
    } else {
        facts.created = annotated;
    }
    Ok(facts)
}

/// The digest a tag points at now, or `None`.
pub fn resolve_tag(client: &Client, repo: &Reference, tag: &str) -> Result<Option<Digest>> {
    Ok(client
        .head_manifest(&repo.with_tag(tag)?)?
        .map(|d| d.digest))
}

/// Every tag of the repository with the digest it points at (tags that vanish while
/// listing are left out, and so are the ledger's reserved tags), sorted by tag.
pub fn tag_digests(client: &Client, repo: &Reference) -> Result<Vec<(String, Digest)>> {
    let mut tags = match client.list_tags(repo) {
        Ok(t) => t,
        Err(e) if e.is_not_found() => return Err(Error::NotFound(repo.name())),
        Err(e) => return Err(e.into()),
    };
    tags.sort();
    let mut out = Vec::with_capacity(tags.len());
    for t in tags {
        if crate::ledger::is_ledger_tag(&t) {
            continue;
        }
        if let Some(d) = resolve_tag(client, repo, &t)? {
            out.push((t, d));
        }
    }
    Ok(out)
}

/// Check that the registry deletes manifests, without changing anything: a DELETE
/// of a digest that cannot exist answers 404 when deletes are enabled and 405 (or
/// `UNSUPPORTED`) when not.
pub fn ensure_delete_supported(client: &Client, repo: &Reference) -> Result<()> {
    let nothing = Digest::sha256(b"hoist: a manifest that does not exist, to probe DELETE");
    match client.delete_manifest(repo, &nothing) {
        Ok(()) => Ok(()),
        Err(e) if e.status() == Some(404) => Ok(()),
        Err(e)
            if e.status() == Some(405)
                || e.codes().contains(&hoist_registry::ErrorCode::Unsupported) =>
        {
            Err(Error::DeleteUnsupported {
                registry: repo.registry().to_string(),
                status: e.status().unwrap_or(405),
            })
        }
        Err(e) => Err(e.into()),
    }
}
