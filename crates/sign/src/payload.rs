//! The sigstore "simple signing" payload cosign signs and containers/image verifies.
//!
//! ```json
//! {"critical":{"identity":{"docker-reference":"REGISTRY/REPO"},
//!              "image":{"docker-manifest-digest":"sha256:…"},
//!              "type":"cosign container image signature"},
//!  "optional":null}
//! ```
//!
//! The identity is the repository without tag, as cosign writes it (policies that
//! accept such signatures use `signedIdentity: matchRepository`).

use hoist_image::Digest;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The `critical.type` every simple-signing payload has.
pub const SIGNATURE_TYPE: &str = "cosign container image signature";

/// A simple-signing payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payload {
    /// What the signature covers.
    pub critical: Critical,
    /// Optional claims (`null` when none; containers/image reads `creator`, `timestamp`).
    pub optional: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The critical section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Critical {
    /// The repository signed for.
    pub identity: Identity,
    /// The image signed.
    pub image: ImageClaim,
    /// Always [`SIGNATURE_TYPE`].
    #[serde(rename = "type")]
    pub kind: String,
}

/// `critical.identity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// `REGISTRY/REPO`.
    #[serde(rename = "docker-reference")]
    pub docker_reference: String,
}

/// `critical.image`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageClaim {
    /// The manifest digest.
    #[serde(rename = "docker-manifest-digest")]
    pub docker_manifest_digest: String,
}

impl Payload {
    /// The payload for `digest` in repository `repo` (`REGISTRY/REPO`).
    pub fn new(repo: &str, digest: &Digest) -> Payload {
        Payload {
            critical: Critical {
                identity: Identity {
                    docker_reference: repo.to_string(),
                },
                image: ImageClaim {
                    docker_manifest_digest: digest.to_string(),
                },
                kind: SIGNATURE_TYPE.into(),
            },
            optional: None,
        }
    }

    /// The exact bytes to sign (compact JSON, fields in the order above).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a payload always serialises")
    }

    /// Parse signed bytes, strictly: unknown critical fields or another type are refused.
    pub fn parse(bytes: &[u8]) -> Result<Payload> {
        let p: Payload = serde_json::from_slice(bytes)
            .map_err(|e| Error::Invalid(format!("not a simple-signing payload: {e}")))?;
        if p.critical.kind != SIGNATURE_TYPE {
            return Err(Error::Invalid(format!(
                "payload type {:?} is not {SIGNATURE_TYPE:?}",
                p.critical.kind
            )));
        }
        Ok(p)
    }

    /// The digest it claims.
    pub fn digest(&self) -> Result<Digest> {
        self.critical
            .image
            .docker_manifest_digest
            .parse()
            .map_err(|e| Error::Invalid(format!("payload digest: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_cosigns_layout() {
        let d = Digest::sha256(b"x");
        let p = Payload::new("localhost:5000/app", &d);
        let s = String::from_utf8(p.to_bytes()).unwrap();
        assert_eq!(
            s,
            format!(
                r#"{{"critical":{{"identity":{{"docker-reference":"localhost:5000/app"}},"image":{{"docker-manifest-digest":"{d}"}},"type":"cosign container image signature"}},"optional":null}}"#
            )
        );
        assert_eq!(Payload::parse(s.as_bytes()).unwrap(), p);
        assert_eq!(p.digest().unwrap(), d);
    }

    #[test]
    fn other_payloads_are_refused() {
        assert!(Payload::parse(b"{}").is_err());
        let bad = r#"{"critical":{"identity":{"docker-reference":"a"},"image":{"docker-manifest-digest":"sha256:00"},"type":"other"},"optional":null}"#;
        assert!(Payload::parse(bad.as_bytes()).is_err());
        let extra = r#"{"critical":{"identity":{"docker-reference":"a"},"image":{"docker-manifest-digest":"sha256:00"},"type":"cosign container image signature","x":1},"optional":null}"#;
        assert!(Payload::parse(extra.as_bytes()).is_err());
    }
}
