//! Artifacts attached to an image: write one, list them, carry them to another repository.
//!
//! Every record hoist keeps about an image (promotion records, push records, marks) is
//! an OCI 1.1 artifact whose `subject` is the image:
//!
//! ```text
//! manifest (pushed by digest, never tagged)
//!   artifactType  application/vnd.hoist.<kind>.v1+json
//!   config        same media type → the record as JSON
//!   layers        [ application/vnd.oci.empty.v1+json {} ]
//!   subject       the image's manifest descriptor
//!   annotations   org.opencontainers.image.created, plus the kind's own
//! ```
//!
//! Registries with the referrers API index it by `subject`. For registries without it
//! (distribution 2.8 has none) hoist also maintains the referrers tag schema: an index
//! tagged `sha256-<hex of the image digest>` listing the artifacts. Reading goes through
//! [`hoist_registry::Client::referrers`], which handles both.

use std::collections::{BTreeMap, BTreeSet};

use hoist_image::{media_type, Descriptor, Digest, Index, Manifest, RawDocument};
use hoist_registry::{Client, PushOptions, Reference};
use serde::de::DeserializeOwned;

use crate::facts::read_small_blob;
use crate::tags::{empty_descriptor, put_small_blob, EMPTY_JSON};
use crate::{Error, Result};

/// The referrers fallback tag of `subject`: `sha256-<hex>`.
pub fn referrers_tag(subject: &Digest) -> String {
    format!("{}-{}", subject.algorithm().as_str(), subject.hex())
}

/// The artifact types hoist writes (and may delete with the image they describe).
pub fn is_hoist_artifact_type(t: &str) -> bool {
    t.starts_with("application/vnd.hoist.")
}

/// Build the artifact manifest for `body` (JSON) of `artifact_type` about `subject`.
fn artifact_manifest(
    artifact_type: &str,
    body: &[u8],
    subject: Option<&Descriptor>,
    annotations: BTreeMap<String, String>,
) -> (Manifest, Descriptor) {
    let config = Descriptor::new(artifact_type, Digest::sha256(body), body.len() as u64);
    let subject = subject.map(|s| {
        let mut s = s.clone();
        s.annotations = None;
        s.platform = None;
        s
    });
    (
        Manifest {
            schema_version: 2,
            media_type: Some(media_type::OCI_MANIFEST.into()),
            artifact_type: Some(artifact_type.into()),
            config: config.clone(),
            layers: vec![empty_descriptor()],
            subject,
            annotations: (!annotations.is_empty()).then_some(annotations),
        },
        config,
    )
}

/// Push a small artifact (`body` as its config blob) by digest, without listing it
/// anywhere. Returns its document.
pub(crate) fn put_artifact(
    client: &Client,
    repo: &Reference,
    artifact_type: &str,
    body: &[u8],
    subject: Option<&Descriptor>,
    annotations: BTreeMap<String, String>,
) -> Result<RawDocument> {
    let (manifest, config) = artifact_manifest(artifact_type, body, subject, annotations);
    put_small_blob(client, repo, &config, body)?;
    put_small_blob(client, repo, &empty_descriptor(), EMPTY_JSON)?;
    let doc = RawDocument::from_value(media_type::OCI_MANIFEST, &manifest);
    client.put_manifest(&repo.with_digest(doc.digest()), &doc)?;
    Ok(doc)
}

/// Push an artifact with `subject` by digest, and list it in the referrers tag-schema
/// index when the registry's referrers API does not show it. Returns its digest.
///
/// Updating that index is read-modify-write (the distribution API has no conditional
/// PUT): two writers attaching to the same image at the same instant can lose one
/// index entry. The artifact itself stays, and push records are also reachable
/// through the repository ledger, which loses nothing.
pub fn attach(
    client: &Client,
    repo: &Reference,
    subject: &Descriptor,
    artifact_type: &str,
    body: &[u8],
    annotations: BTreeMap<String, String>,
) -> Result<Digest> {
    let doc = put_artifact(
        client,
        repo,
        artifact_type,
        body,
        Some(subject),
        annotations.clone(),
    )?;
    list_in_referrers(
        client,
        repo,
        &subject.digest,
        &doc,
        artifact_type,
        annotations,
    )?;
    Ok(doc.digest())
}

/// Make sure `doc` (an artifact about `subject`, already in `repo`) shows in `repo`'s
/// referrers of `subject`: through the API, else in the tag-schema index.
pub fn list_in_referrers(
    client: &Client,
    repo: &Reference,
    subject: &Digest,
    doc: &RawDocument,
    artifact_type: &str,
    annotations: BTreeMap<String, String>,
) -> Result<()> {
    let d = doc.digest();
    let listed = client.referrers(repo, subject, None)?;
    if listed.manifests.iter().any(|m| m.digest == d) {
        return Ok(());
    }
    let tref = repo.with_tag(&referrers_tag(subject))?;
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
    if index.manifests.iter().any(|m| m.digest == d) {
        return Ok(());
    }
    let mut entry = doc.descriptor();
    entry.artifact_type = Some(artifact_type.into());
    entry.annotations = (!annotations.is_empty()).then_some(annotations);
    index.manifests.push(entry);
    client.put_manifest(
        &tref,
        &RawDocument::from_value(media_type::OCI_INDEX, &index),
    )?;
    Ok(())
}

/// The artifacts of `artifact_type` attached to `subject` in `repo`, with their
/// parsed JSON bodies, in the order the registry lists them.
pub fn list<T: DeserializeOwned>(
    client: &Client,
    repo: &Reference,
    subject: &Digest,
    artifact_type: &str,
) -> Result<Vec<(Digest, T)>> {
    let index = client.referrers(repo, subject, Some(artifact_type))?;
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for desc in index.manifests {
        if !seen.insert(desc.digest.clone()) {
            continue;
        }
        let doc = match client.get_manifest_by_descriptor(repo, &desc) {
            Ok(d) => d,
            // Listed in a stale tag-schema index but deleted since.
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        };
        let m: Manifest = doc
            .parse()
            .map_err(|e| Error::Invalid(format!("artifact {}: {e}", desc.digest)))?;
        if m.config.media_type != artifact_type {
            continue;
        }
        out.push((
            desc.digest.clone(),
            read_body(client, repo, &m, &desc.digest)?,
        ));
    }
    Ok(out)
}

/// Read and parse an artifact's config blob.
pub(crate) fn read_body<T: DeserializeOwned>(
    client: &Client,
    repo: &Reference,
    m: &Manifest,
    what: &Digest,
) -> Result<T> {
    let body = read_small_blob(client, repo, &m.config)?;
    serde_json::from_slice(&body).map_err(|e| Error::Invalid(format!("artifact {what}: {e}")))
}

/// Copy every artifact attached to `subject` in `src` (any type: hoist's records,
/// marks, signatures, attestations), and recursively the artifacts attached to
/// those, to `dst`, listing each there as a referrer. Returns how many were copied.
///
/// The image itself must already be in `dst`. Copies are byte-exact, so digests and
/// `subject` fields stay valid.
pub fn carry_referrers(
    client: &Client,
    src: &Reference,
    dst: &Reference,
    subject: &Digest,
) -> Result<usize> {
    let mut copied = 0;
    let mut queue = vec![subject.clone()];
    let mut seen = BTreeSet::new();
    while let Some(s) = queue.pop() {
        if !seen.insert(s.clone()) {
            continue;
        }
        let index = client.referrers(src, &s, None)?;
        for desc in index.manifests {
            let from = src.with_digest(desc.digest.clone());
            let to = dst.with_digest(desc.digest.clone());
            if client.head_manifest(&to)?.is_none() {
                let source = client.source(&from);
                let mount_from = if src.registry() == dst.registry() {
                    vec![src.clone()]
                } else {
                    Vec::new()
                };
                client.push(
                    &source,
                    std::slice::from_ref(&to),
                    &PushOptions {
                        mount_from,
                        ..Default::default()
                    },
                )?;
                copied += 1;
            }
            let doc = client.get_manifest(&to)?;
            let artifact_type = desc.artifact_type.clone().unwrap_or_default();
            list_in_referrers(
                client,
                dst,
                &s,
                &doc,
                &artifact_type,
                desc.annotations.clone().unwrap_or_default(),
            )?;
            queue.push(desc.digest);
        }
    }
    Ok(copied)
}
