//! Attestations in the image index, as BuildKit lays them out.
//!
//! ```text
//! index
//!   manifests[0..n]  the images (one per platform)
//!   manifests[n..]   one attestation manifest per image:
//!       platform     unknown/unknown
//!       annotations  vnd.docker.reference.type:   attestation-manifest
//!                    vnd.docker.reference.digest: <that image's manifest digest>
//!
//! attestation manifest (OCI image manifest)
//!   config  application/vnd.oci.image.config.v1+json
//!           {"architecture":"unknown","os":"unknown","config":{},"rootfs":{…diff_ids = layer digests}}
//!   layers  application/vnd.in-toto+json, one per statement,
//!           annotation in-toto.io/predicate-type: https://spdx.dev/Document | https://slsa.dev/provenance/v1
//! ```
//!
//! Platform-aware clients skip `unknown/unknown`, so pulls and runs are unchanged.

use std::collections::BTreeMap;

use hoist_image::{
    media_type, BlobStore, Descriptor, Digest, Index, Manifest, Platform, RawDocument, Source,
};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::intoto::{Statement, INTOTO_MEDIA_TYPE, PREDICATE_TYPE_ANNOTATION};

/// The index-entry annotation naming what an entry is.
pub const REFERENCE_TYPE: &str = "vnd.docker.reference.type";
/// The index-entry annotation naming the image an attestation manifest is about.
pub const REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";
/// [`REFERENCE_TYPE`]'s value for attestation manifests.
pub const ATTESTATION_MANIFEST: &str = "attestation-manifest";
/// Largest statement read back (16 MiB).
pub const MAX_STATEMENT: u64 = 16 << 20;

/// The platform of attestation manifests.
pub fn unknown_platform() -> Platform {
    Platform {
        architecture: "unknown".into(),
        os: "unknown".into(),
        os_version: None,
        os_features: None,
        variant: None,
    }
}

/// Write `statements` about image `subject` into `store` as an attestation manifest.
/// Returns the manifest and its index entry (platform and annotations set).
pub fn write_attestation_manifest(
    store: &BlobStore,
    subject: &Digest,
    statements: &[Statement],
) -> Result<(RawDocument, Descriptor)> {
    let mut layers = Vec::new();
    for s in statements {
        let bytes = s.to_bytes();
        let d = store.put_bytes(&bytes)?;
        let mut desc = Descriptor::new(INTOTO_MEDIA_TYPE, d, bytes.len() as u64);
        desc.annotations = Some(BTreeMap::from([(
            PREDICATE_TYPE_ANNOTATION.to_string(),
            s.predicate_type.clone(),
        )]));
        layers.push(desc);
    }
    let config = serde_json::json!({
        "architecture": "unknown",
        "os": "unknown",
        "config": {},
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|l| l.digest.to_string()).collect::<Vec<_>>(),
        },
    });
    let config_bytes = hoist_image::to_canonical_json(&config);
    let cd = store.put_bytes(&config_bytes)?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(media_type::OCI_MANIFEST.into()),
        artifact_type: None,
        config: Descriptor::new(media_type::OCI_CONFIG, cd, config_bytes.len() as u64),
        layers,
        subject: None,
        annotations: None,
    };
    let raw = RawDocument::from_value(media_type::OCI_MANIFEST, &manifest);
    store.put_bytes(&raw.bytes)?;
    let mut entry = raw.descriptor();
    entry.platform = Some(unknown_platform());
    entry.annotations = Some(BTreeMap::from([
        (REFERENCE_DIGEST.to_string(), subject.to_string()),
        (REFERENCE_TYPE.to_string(), ATTESTATION_MANIFEST.to_string()),
    ]));
    Ok((raw, entry))
}

/// One attestation to make about an image, before its digest is known: the digest
/// depends on the output's layer encoding, the predicate does not.
#[derive(Debug, Clone, PartialEq)]
pub struct Predicate {
    /// The subject's name ([`crate::intoto::subject_name`]).
    pub subject_name: String,
    /// The predicate type.
    pub predicate_type: String,
    /// The predicate.
    pub predicate: serde_json::Value,
}

/// Write the statements of `predicates` about image `subject` as its attestation
/// manifest ([`write_attestation_manifest`]).
pub fn attach(
    store: &BlobStore,
    subject: &Digest,
    predicates: &[Predicate],
) -> Result<(RawDocument, Descriptor)> {
    let statements: Vec<Statement> = predicates
        .iter()
        .map(|p| {
            Statement::new(
                &p.subject_name,
                subject,
                &p.predicate_type,
                p.predicate.clone(),
            )
        })
        .collect();
    write_attestation_manifest(store, subject, &statements)
}

/// Whether an index entry is an attestation manifest.
pub fn is_attestation_entry(d: &Descriptor) -> bool {
    d.annotations
        .as_ref()
        .and_then(|a| a.get(REFERENCE_TYPE))
        .is_some_and(|t| t == ATTESTATION_MANIFEST)
}

/// One attestation read back.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    /// The image it is about.
    pub subject: Digest,
    /// That image's platform, when the index says.
    pub platform: Option<String>,
    /// The statement's predicate type.
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// The attestation manifest holding it.
    pub manifest: Digest,
    /// The layer (statement blob).
    pub layer: Digest,
    /// The whole statement.
    pub statement: serde_json::Value,
}

/// Every attestation in `src`'s index (none when its root is a single manifest).
/// Each statement is read verified and parsed; a malformed one is an error.
pub fn read_attestations(src: &dyn Source) -> Result<Vec<Found>> {
    let root = src.root()?;
    let mt = hoist_image::source::document_media_type(&root)?;
    if !media_type::is_index(&mt) {
        return Ok(Vec::new());
    }
    let index: Index = root
        .parse()
        .map_err(|e| Error::Invalid(format!("{}: invalid index: {e}", src.name())))?;
    read_from_index(src, &index)
}

/// [`read_attestations`] of a parsed index.
pub fn read_from_index(src: &dyn Source, index: &Index) -> Result<Vec<Found>> {
    let mut out = Vec::new();
    for entry in index.manifests.iter().filter(|d| is_attestation_entry(d)) {
        let subject: Digest = entry
            .annotations
            .as_ref()
            .and_then(|a| a.get(REFERENCE_DIGEST))
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "attestation manifest {} has no {REFERENCE_DIGEST}",
                    entry.digest
                ))
            })?
            .parse()
            .map_err(|e| Error::Invalid(format!("attestation manifest {}: {e}", entry.digest)))?;
        let platform = index
            .manifests
            .iter()
            .find(|m| m.digest == subject)
            .and_then(|m| m.platform.as_ref())
            .map(|p| p.to_string());
        let doc = src.manifest(entry)?;
        hoist_image::source::verify_document(&doc, entry)?;
        let m: Manifest = doc
            .parse()
            .map_err(|e| Error::Invalid(format!("attestation manifest {}: {e}", entry.digest)))?;
        for layer in m
            .layers
            .iter()
            .filter(|l| l.media_type == INTOTO_MEDIA_TYPE)
        {
            let bytes = hoist_image::read_verified(src, layer, MAX_STATEMENT)?;
            let statement: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| Error::Invalid(format!("statement {}: {e}", layer.digest)))?;
            let predicate_type = statement
                .get("predicateType")
                .and_then(|p| p.as_str())
                .or_else(|| {
                    layer
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get(PREDICATE_TYPE_ANNOTATION))
                        .map(String::as_str)
                })
                .unwrap_or_default()
                .to_string();
            out.push(Found {
                subject: subject.clone(),
                platform: platform.clone(),
                predicate_type,
                manifest: entry.digest.clone(),
                layer: layer.digest.clone(),
                statement,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intoto::SLSA_PROVENANCE_V1;

    #[test]
    fn written_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path().join("blobs")).unwrap();
        let image = Digest::sha256(b"image");
        let s = Statement::new("_", &image, SLSA_PROVENANCE_V1, serde_json::json!({"x": 1}));
        let (raw, entry) =
            write_attestation_manifest(&store, &image, std::slice::from_ref(&s)).unwrap();
        assert_eq!(
            entry.platform.as_ref().unwrap().to_string(),
            "unknown/unknown"
        );
        assert!(is_attestation_entry(&entry));
        let m: Manifest = raw.parse().unwrap();
        assert_eq!(m.layers[0].media_type, INTOTO_MEDIA_TYPE);
        assert_eq!(
            m.layers[0].annotations.as_ref().unwrap()[PREDICATE_TYPE_ANNOTATION],
            SLSA_PROVENANCE_V1
        );
        let mut img = Descriptor::new(media_type::OCI_MANIFEST, image.clone(), 5);
        img.platform = Platform::parse("linux/amd64");
        let index = Index {
            schema_version: 2,
            media_type: Some(media_type::OCI_INDEX.into()),
            artifact_type: None,
            manifests: vec![img, entry],
            subject: None,
            annotations: None,
        };
        let idx = RawDocument::from_value(media_type::OCI_INDEX, &index);
        store.put_bytes(&idx.bytes).unwrap();
        let src = hoist_image::StoreSource::new(store.clone(), idx).with_manifest(raw);
        let found = read_attestations(&src).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].subject, image);
        assert_eq!(found[0].platform.as_deref(), Some("linux/amd64"));
        assert_eq!(found[0].statement["predicate"]["x"], 1);
        // Same input, same bytes.
        let (again, _) = write_attestation_manifest(&store, &image, &[s]).unwrap();
        assert_eq!(again.digest(), found[0].manifest);
    }
}
