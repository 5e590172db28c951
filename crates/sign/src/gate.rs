//! Supply-chain gates for `hoist promote`: a signature by a given key, attestations of
//! given kinds. Both implement [`hoist_promote::gate::Gate`], so `promote` runs them
//! with the others before it moves anything.

use hoist_attest::intoto::{SLSA_PROVENANCE_V02, SLSA_PROVENANCE_V1, SPDX_DOCUMENT};
use hoist_image::{media_type, Digest, Index, Manifest};
use hoist_promote::gate::Gate;
use hoist_registry::{Client, Reference};
use p256::ecdsa::VerifyingKey;

use crate::cosign::{att_tag, verify_digest};
use crate::error::Error;
use crate::registry::get_optional;

/// Refuse unless the image carries a signature that verifies with this key.
#[derive(Debug, Clone)]
pub struct RequireSignature {
    /// The public key.
    pub key: VerifyingKey,
    /// Where it came from, for messages.
    pub key_name: String,
}

impl Gate for RequireSignature {
    fn name(&self) -> &str {
        "require-signature"
    }

    fn check(
        &self,
        client: &Client,
        repo: &Reference,
        digest: &Digest,
    ) -> hoist_promote::Result<Option<String>> {
        let v = verify_digest(client, repo, digest, &self.key, None).map_err(to_promote)?;
        Ok((!v.ok()).then(|| {
            format!(
                "{}: {} (key {}); sign it with `hoist sign {}@{digest} --key KEY`",
                repo.name(),
                v.failure(),
                self.key_name,
                repo.name()
            )
        }))
    }
}

fn to_promote(e: Error) -> hoist_promote::Error {
    match e {
        Error::Registry(r) => (*r).into(),
        Error::Promote(p) => *p,
        other => hoist_promote::Error::Invalid(other.to_string()),
    }
}

/// An attestation kind a gate can require.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AttestationKind {
    /// SLSA provenance (v1 or v0.2).
    Provenance,
    /// An SBOM (SPDX or CycloneDX).
    Sbom,
}

impl AttestationKind {
    /// Parse `provenance` or `sbom`.
    pub fn parse(s: &str) -> Result<AttestationKind, Error> {
        match s.trim() {
            "provenance" => Ok(AttestationKind::Provenance),
            "sbom" => Ok(AttestationKind::Sbom),
            other => Err(Error::Invalid(format!(
                "--require-attestation {other:?}: expected provenance or sbom"
            ))),
        }
    }

    /// Whether a predicate type is of this kind.
    pub fn matches(self, predicate_type: &str) -> bool {
        match self {
            AttestationKind::Provenance => {
                predicate_type == SLSA_PROVENANCE_V1
                    || predicate_type == SLSA_PROVENANCE_V02
                    || predicate_type.starts_with("https://slsa.dev/provenance/")
            }
            AttestationKind::Sbom => {
                predicate_type == SPDX_DOCUMENT
                    || predicate_type.starts_with("https://spdx.dev/")
                    || predicate_type.starts_with("https://cyclonedx.org/bom")
            }
        }
    }

    fn label(self) -> &'static str {
        match self {
            AttestationKind::Provenance => "provenance",
            AttestationKind::Sbom => "sbom",
        }
    }
}

/// Refuse unless every image of the digest carries attestations of these kinds: in
/// its index (BuildKit's layout) or in cosign's `sha256-<digest>.att` tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequireAttestation(pub Vec<AttestationKind>);

/// One image of a digest and the predicate types attached to it: (image digest,
/// platform, predicate types).
pub type Attached = (Digest, Option<String>, Vec<String>);

/// The predicate types attached to every image of `digest` in `repo`.
pub fn attached_predicates(
    client: &Client,
    repo: &Reference,
    digest: &Digest,
) -> crate::Result<Vec<Attached>> {
    let at = repo.with_digest(digest.clone());
    let doc = client.get_manifest(&at)?;
    let mt = hoist_image::source::document_media_type(&doc)?;
    let mut images: Vec<Attached> = Vec::new();
    let mut found = Vec::new();
    if media_type::is_index(&mt) {
        let index: Index = doc
            .parse()
            .map_err(|e| Error::Invalid(format!("{at}: invalid index: {e}")))?;
        for m in &index.manifests {
            if !hoist_attest::layout::is_attestation_entry(m) {
                images.push((
                    m.digest.clone(),
                    m.platform.as_ref().map(|p| p.to_string()),
                    Vec::new(),
                ));
            }
        }
        let src = client.source(&at);
        found = hoist_attest::layout::read_from_index(&src, &index)
            .map_err(|e| Error::Invalid(format!("{at}: {e}")))?;
    } else {
        images.push((digest.clone(), None, Vec::new()));
    }
    let cosign = cosign_predicates(client, repo, digest)?;
    for (d, _, types) in images.iter_mut() {
        types.extend(
            found
                .iter()
                .filter(|f| &f.subject == d)
                .map(|f| f.predicate_type.clone()),
        );
        // cosign attestations of the whole digest count for each of its images.
        types.extend(cosign.iter().cloned());
        if d != digest {
            types.extend(cosign_predicates(client, repo, d)?);
        }
    }
    Ok(images)
}

/// Predicate types in cosign's `.att` tag of `digest` (layer annotation `predicateType`,
/// else the DSSE envelope's statement).
fn cosign_predicates(
    client: &Client,
    repo: &Reference,
    digest: &Digest,
) -> crate::Result<Vec<String>> {
    let Some(doc) = get_optional(client, &repo.with_tag(&att_tag(digest))?)? else {
        return Ok(Vec::new());
    };
    let Ok(m) = doc.parse::<Manifest>() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for l in &m.layers {
        if let Some(t) = l.annotations.as_ref().and_then(|a| a.get("predicateType")) {
            out.push(t.clone());
            continue;
        }
        if l.media_type == "application/vnd.dsse.envelope.v1+json" {
            let body = crate::registry::read_blob(client, repo, l)?;
            let env: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            use base64::Engine as _;
            if let Some(p) = env.get("payload").and_then(|p| p.as_str()) {
                if let Ok(stmt) = base64::engine::general_purpose::STANDARD.decode(p) {
                    let s: serde_json::Value = serde_json::from_slice(&stmt).unwrap_or_default();
                    if let Some(t) = s.get("predicateType").and_then(|t| t.as_str()) {
                        out.push(t.to_string());
                    }
                }
            }
        }
    }
    Ok(out)
}

impl Gate for RequireAttestation {
    fn name(&self) -> &str {
        "require-attestation"
    }

    fn check(
        &self,
        client: &Client,
        repo: &Reference,
        digest: &Digest,
    ) -> hoist_promote::Result<Option<String>> {
        let images = attached_predicates(client, repo, digest).map_err(to_promote)?;
        let mut missing = Vec::new();
        for (d, platform, types) in &images {
            for k in &self.0 {
                if !types.iter().any(|t| k.matches(t)) {
                    missing.push(format!(
                        "{} of {d}{}",
                        k.label(),
                        platform
                            .as_deref()
                            .map(|p| format!(" ({p})"))
                            .unwrap_or_default()
                    ));
                }
            }
        }
        Ok((!missing.is_empty()).then(|| {
            format!(
                "{}@{digest} lacks attestations: {}; build it with --provenance=mode=max --sbom=true",
                repo.name(),
                missing.join(", ")
            )
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert!(AttestationKind::parse("provenance")
            .unwrap()
            .matches(SLSA_PROVENANCE_V1));
        assert!(AttestationKind::Provenance.matches(SLSA_PROVENANCE_V02));
        assert!(!AttestationKind::Provenance.matches(SPDX_DOCUMENT));
        assert!(AttestationKind::Sbom.matches(SPDX_DOCUMENT));
        assert!(AttestationKind::parse("vuln").is_err());
    }
}
