//! in-toto statements, the envelope of every attestation.

use std::collections::BTreeMap;

use hoist_image::Digest;
use serde::{Deserialize, Serialize};

/// The statement type BuildKit writes.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v0.1";
/// The media type of an attestation layer.
pub const INTOTO_MEDIA_TYPE: &str = "application/vnd.in-toto+json";
/// The layer annotation naming a statement's predicate type.
pub const PREDICATE_TYPE_ANNOTATION: &str = "in-toto.io/predicate-type";
/// SLSA provenance v1.
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";
/// SLSA provenance v0.2 (what older BuildKit writes; read, never written).
pub const SLSA_PROVENANCE_V02: &str = "https://slsa.dev/provenance/v0.2";
/// An SPDX document.
pub const SPDX_DOCUMENT: &str = "https://spdx.dev/Document";

/// One statement: subjects (the image) and a predicate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    /// [`STATEMENT_TYPE`].
    #[serde(rename = "_type")]
    pub kind: String,
    /// What the statement is about.
    pub subject: Vec<Subject>,
    /// The predicate's type ([`SLSA_PROVENANCE_V1`], [`SPDX_DOCUMENT`], …).
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// The predicate.
    pub predicate: serde_json::Value,
}

/// A statement's subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    /// `pkg:docker/NAME@TAG?platform=…`, or `_` for an image without a name.
    pub name: String,
    /// `{"sha256": "<hex>"}`.
    pub digest: BTreeMap<String, String>,
}

impl Statement {
    /// A statement about the image `digest` named `name`.
    pub fn new(
        name: &str,
        digest: &Digest,
        predicate_type: &str,
        predicate: serde_json::Value,
    ) -> Statement {
        Statement {
            kind: STATEMENT_TYPE.into(),
            subject: vec![Subject {
                name: name.to_string(),
                digest: BTreeMap::from([(
                    digest.algorithm().as_str().to_string(),
                    digest.hex().to_string(),
                )]),
            }],
            predicate_type: predicate_type.into(),
            predicate,
        }
    }

    /// Its bytes: canonical JSON (sorted keys), so equal inputs give equal bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        hoist_image::to_canonical_json(self)
    }
}

/// The purl-style subject name BuildKit gives an image: `pkg:docker/NAME@TAG?platform=OS%2FARCH`.
pub fn subject_name(tag: Option<&str>, platform: &hoist_image::Platform) -> String {
    let Some(tag) = tag else {
        return "_".into();
    };
    let (name, version) = split_tag(tag);
    format!(
        "pkg:docker/{name}@{version}?platform={}",
        crate::sbom::purl::encode(&platform.to_string())
    )
}

fn split_tag(name: &str) -> (&str, &str) {
    let name = name.split('@').next().unwrap_or(name);
    let last_slash = name.rfind('/').map(|i| i + 1).unwrap_or(0);
    match name[last_slash..].rfind(':') {
        Some(i) => (&name[..last_slash + i], &name[last_slash + i + 1..]),
        None => (name, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_names_as_buildkit_writes_them() {
        let p = hoist_image::Platform::parse("linux/amd64").unwrap();
        assert_eq!(
            subject_name(Some("localhost:5000/app:1"), &p),
            "pkg:docker/localhost:5000/app@1?platform=linux%2Famd64"
        );
        assert_eq!(
            subject_name(Some("localhost:5000/app"), &p),
            "pkg:docker/localhost:5000/app@latest?platform=linux%2Famd64"
        );
        assert_eq!(subject_name(None, &p), "_");
    }
}
