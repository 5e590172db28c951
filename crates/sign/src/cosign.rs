//! Signatures in cosign's registry layout, readable by cosign, skopeo and podman.
//!
//! The signatures of image `sha256:H` in a repository live in the manifest tagged
//! `sha256-H.sig` (containers/image reads it with `use-sigstore-attachments: true`):
//!
//! ```text
//! REPO:sha256-H.sig   OCI image manifest
//!   config    application/vnd.oci.image.config.v1+json  (diff_ids = the payload digests)
//!   layers    one per signature:
//!               mediaType   application/vnd.dev.cosign.simplesigning.v1+json
//!               digest      sha256 of the payload (see crate::payload)
//!               annotations dev.cosignproject.cosign/signature: base64(DER ECDSA-P256-SHA256)
//!   subject   the image (so registries with the referrers API list it too)
//! ```
//!
//! Signing again with another key appends a layer; signing again with the same key is
//! a no-op (ECDSA signatures here are deterministic, RFC 6979). For registries without
//! the referrers API, the manifest is also listed in the `sha256-H` referrers index.

use std::collections::BTreeMap;

use base64::Engine as _;
use hoist_image::{media_type, Descriptor, Digest, Manifest, RawDocument};
use hoist_registry::{Client, Reference};
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{DerSignature, Signature, SigningKey, VerifyingKey};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::payload::Payload;
use crate::registry::{get_optional, put_blob, read_blob};

/// The media type of a signature layer.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The annotation holding a layer's signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The artifact type of signature manifests (cosign's OCI 1.1 referrers type).
pub const SIG_ARTIFACT_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
/// The image config media type cosign's signature manifests carry.
const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";

/// The tag cosign stores the signatures of `digest` under: `sha256-<hex>.sig`.
pub fn sig_tag(digest: &Digest) -> String {
    format!("{}-{}.sig", digest.algorithm().as_str(), digest.hex())
}

/// The tag cosign stores attestations of `digest` under: `sha256-<hex>.att`.
pub fn att_tag(digest: &Digest) -> String {
    format!("{}-{}.att", digest.algorithm().as_str(), digest.hex())
}

/// The tag cosign stores an attached SBOM of `digest` under: `sha256-<hex>.sbom`.
pub fn sbom_tag(digest: &Digest) -> String {
    format!("{}-{}.sbom", digest.algorithm().as_str(), digest.hex())
}

/// What [`sign`] did.
#[derive(Debug, Clone, Serialize)]
pub struct Signed {
    /// The image's manifest digest.
    pub digest: Digest,
    /// The signature manifest's reference (`REPO:sha256-….sig`).
    pub signature_ref: String,
    /// The signature manifest's digest.
    pub signature_manifest: Digest,
    /// Whether a signature was added (false: this key had signed this image already).
    pub added: bool,
}

/// Sign the image `image` names (a tag is resolved to its digest first) with `key`,
/// storing the signature in cosign's layout in the image's repository.
pub fn sign(client: &Client, image: &Reference, key: &SigningKey) -> Result<Signed> {
    let doc = client.get_manifest(image)?;
    let digest = doc.digest();
    let payload = Payload::new(&image.name(), &digest).to_bytes();
    let sig: Signature = key.sign(&payload);
    let der: DerSignature = sig.to_der();
    let sig_b64 = base64::engine::general_purpose::STANDARD.encode(der.as_bytes());
    let tag_ref = image.with_tag(&sig_tag(&digest))?;
    let mut layers: Vec<Descriptor> = Vec::new();
    if let Some(existing) = get_optional(client, &tag_ref)? {
        let m: Manifest = existing
            .parse()
            .map_err(|e| Error::Invalid(format!("{tag_ref}: not a signature manifest: {e}")))?;
        layers = m.layers;
    }
    let payload_digest = Digest::sha256(&payload);
    // The same key signs the same payload to the same bytes (RFC 6979); an existing
    // signature verifying with this key's public half is this one.
    let vk = *key.verifying_key();
    let already = layers.iter().any(|l| {
        l.digest == payload_digest
            && l.annotations
                .as_ref()
                .and_then(|a| a.get(SIGNATURE_ANNOTATION))
                .is_some_and(|s| check_signature(&vk, &payload, s).is_ok())
    });
    if already {
        let current = client.get_manifest(&tag_ref)?;
        return Ok(Signed {
            digest,
            signature_ref: tag_ref.to_string(),
            signature_manifest: current.digest(),
            added: false,
        });
    }
    let mut layer = Descriptor::new(SIMPLE_SIGNING, payload_digest, payload.len() as u64);
    layer.annotations = Some(BTreeMap::from([(
        SIGNATURE_ANNOTATION.to_string(),
        sig_b64,
    )]));
    layers.push(layer.clone());
    put_blob(client, image, &layer, &payload)?;
    let manifest_doc = signature_manifest(client, image, &doc, &layers)?;
    client.put_manifest(&tag_ref, &manifest_doc)?;
    hoist_promote::artifact::list_in_referrers(
        client,
        image,
        &digest,
        &manifest_doc,
        SIG_ARTIFACT_TYPE,
        BTreeMap::new(),
    )?;
    Ok(Signed {
        digest,
        signature_ref: tag_ref.to_string(),
        signature_manifest: manifest_doc.digest(),
        added: true,
    })
}

/// The signature manifest over `layers` (its config uploaded), about `subject`.
fn signature_manifest(
    client: &Client,
    repo: &Reference,
    subject: &RawDocument,
    layers: &[Descriptor],
) -> Result<RawDocument> {
    // cosign's config: an empty image whose diff IDs are the payload digests.
    let zero = "0001-01-01T00:00:00Z";
    let config = serde_json::json!({
        "architecture": "",
        "config": {},
        "created": zero,
        "history": layers.iter().map(|_| serde_json::json!({"created": zero})).collect::<Vec<_>>(),
        "os": "",
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|l| l.digest.to_string()).collect::<Vec<_>>(),
        },
    });
    let config_bytes = hoist_image::to_canonical_json(&config);
    let config_desc = Descriptor::new(
        CONFIG_TYPE,
        Digest::sha256(&config_bytes),
        config_bytes.len() as u64,
    );
    put_blob(client, repo, &config_desc, &config_bytes)?;
    let mut subject_desc = subject.descriptor();
    subject_desc.media_type = hoist_image::source::document_media_type(subject)?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(media_type::OCI_MANIFEST.into()),
        artifact_type: Some(SIG_ARTIFACT_TYPE.into()),
        config: config_desc,
        layers: layers.to_vec(),
        subject: Some(subject_desc),
        annotations: None,
    };
    Ok(RawDocument::from_value(media_type::OCI_MANIFEST, &manifest))
}

/// Check a base64 DER signature of `payload` against `key`.
fn check_signature(key: &VerifyingKey, payload: &[u8], sig_b64: &str) -> Result<()> {
    let der = base64::engine::general_purpose::STANDARD
        .decode(sig_b64.trim())
        .map_err(|e| Error::Invalid(format!("signature is not base64: {e}")))?;
    let sig = Signature::from_der(&der)
        .or_else(|_| Signature::from_slice(&der))
        .map_err(|e| Error::Invalid(format!("signature is not ECDSA P-256: {e}")))?;
    key.verify(payload, &sig)
        .map_err(|_| Error::Invalid("signature does not verify with this key".into()))
}

/// One signature found on an image.
#[derive(Debug, Clone, Serialize)]
pub struct FoundSignature {
    /// The manifest that holds it.
    pub manifest: Digest,
    /// Its payload's digest.
    pub payload: Digest,
    /// The repository the payload names.
    pub identity: Option<String>,
    /// Whether it verified with the key.
    pub verified: bool,
    /// Why not, when it did not.
    pub reason: Option<String>,
}

/// What [`verify`] found.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// The image's manifest digest.
    pub digest: Digest,
    /// Every signature layer found (`.sig` tag and referrers).
    pub signatures: Vec<FoundSignature>,
}

impl Verification {
    /// Whether at least one signature verified.
    pub fn ok(&self) -> bool {
        self.signatures.iter().any(|s| s.verified)
    }

    /// A one-line explanation of a failure.
    pub fn failure(&self) -> String {
        if self.signatures.is_empty() {
            return format!("{} has no signature", self.digest);
        }
        let reasons: Vec<String> = self
            .signatures
            .iter()
            .filter_map(|s| s.reason.clone())
            .collect();
        format!(
            "none of the {} signature(s) of {} verifies with the key: {}",
            self.signatures.len(),
            self.digest,
            reasons.join("; ")
        )
    }
}

/// The digest `image` names (its tag resolved).
pub fn resolve_digest(client: &Client, image: &Reference) -> Result<Digest> {
    if let Some(d) = image.digest() {
        return Ok(d.clone());
    }
    Ok(client.get_manifest(image)?.digest())
}

/// Every signature of `digest` in `repo`, each checked against `key`: the `.sig` tag
/// and any referrer of the signature artifact type. The payload must name `digest`;
/// `identity`, when given, must equal the payload's repository.
pub fn verify_digest(
    client: &Client,
    repo: &Reference,
    digest: &Digest,
    key: &VerifyingKey,
    identity: Option<&str>,
) -> Result<Verification> {
    let mut manifests: Vec<RawDocument> = Vec::new();
    if let Some(doc) = get_optional(client, &repo.with_tag(&sig_tag(digest))?)? {
        manifests.push(doc);
    }
    for desc in client
        .referrers(repo, digest, Some(SIG_ARTIFACT_TYPE))?
        .manifests
    {
        if desc.artifact_type.as_deref() != Some(SIG_ARTIFACT_TYPE)
            || manifests.iter().any(|m| m.digest() == desc.digest)
        {
            continue;
        }
        match client.get_manifest_by_descriptor(repo, &desc) {
            Ok(doc) => manifests.push(doc),
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    let mut out = Verification {
        digest: digest.clone(),
        signatures: Vec::new(),
    };
    let mut seen = std::collections::BTreeSet::new();
    for doc in &manifests {
        let Ok(m) = doc.parse::<Manifest>() else {
            continue;
        };
        for l in m.layers.iter().filter(|l| l.media_type == SIMPLE_SIGNING) {
            let sig = l
                .annotations
                .as_ref()
                .and_then(|a| a.get(SIGNATURE_ANNOTATION))
                .cloned();
            if !seen.insert((l.digest.clone(), sig.clone())) {
                continue;
            }
            let mut found = FoundSignature {
                manifest: doc.digest(),
                payload: l.digest.clone(),
                identity: None,
                verified: false,
                reason: None,
            };
            let checked = (|| -> Result<()> {
                let sig = sig.ok_or_else(|| {
                    Error::Invalid(format!("layer {} has no {SIGNATURE_ANNOTATION}", l.digest))
                })?;
                let payload = read_blob(client, repo, l)?;
                check_signature(key, &payload, &sig)?;
                let p = Payload::parse(&payload)?;
                found.identity = Some(p.critical.identity.docker_reference.clone());
                if p.digest()? != *digest {
                    return Err(Error::Invalid(format!(
                        "signed payload names {}, not {digest}",
                        p.critical.image.docker_manifest_digest
                    )));
                }
                if let Some(want) = identity {
                    if p.critical.identity.docker_reference != want {
                        return Err(Error::Invalid(format!(
                            "signed for {}, not {want}",
                            p.critical.identity.docker_reference
                        )));
                    }
                }
                Ok(())
            })();
            match checked {
                Ok(()) => found.verified = true,
                Err(e) => found.reason = Some(e.to_string()),
            }
            out.signatures.push(found);
        }
    }
    Ok(out)
}

/// [`verify_digest`] of the image `image` names (a tag resolved to its digest).
pub fn verify(
    client: &Client,
    image: &Reference,
    key: &VerifyingKey,
    identity: Option<&str>,
) -> Result<Verification> {
    let digest = resolve_digest(client, image)?;
    verify_digest(client, image, &digest, key, identity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_cosigns() {
        let d = Digest::sha256(b"x");
        assert_eq!(sig_tag(&d), format!("sha256-{}.sig", d.hex()));
        assert_eq!(att_tag(&d), format!("sha256-{}.att", d.hex()));
    }

    #[test]
    fn signatures_check_against_the_right_key_only() {
        let a = SigningKey::random(&mut rand_core::OsRng);
        let b = SigningKey::random(&mut rand_core::OsRng);
        let payload = b"hello";
        let sig: Signature = a.sign(payload);
        let s = base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes());
        assert!(check_signature(a.verifying_key(), payload, &s).is_ok());
        assert!(check_signature(b.verifying_key(), payload, &s).is_err());
        assert!(check_signature(a.verifying_key(), b"hellO", &s).is_err());
        assert!(check_signature(a.verifying_key(), payload, "!!").is_err());
        // Deterministic: signing again gives the same bytes.
        let again: Signature = a.sign(payload);
        assert_eq!(sig, again);
    }
}
