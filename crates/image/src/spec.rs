//! The OCI / Docker JSON documents: descriptors, manifests, indexes and image configs.
//!
//! Every map is a `BTreeMap` and every struct serialises its fields in a fixed
//! order, so serialising the same value always gives the same bytes. Fields
//! hoist does not model are kept in `extra` maps and written back, so reading
//! and re-writing a base image's config loses nothing.
//!
//! Documents received from elsewhere are identified by the digest of their
//! *original bytes*; never re-serialise a manifest you did not create when its
//! digest matters (see [`crate::RawDocument`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Digest;

/// A platform as found in an index and in an image config.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
pub struct Platform {
    /// CPU architecture, GOARCH spelling (`amd64`, `arm64`, …).
    pub architecture: String,
    /// Operating system, GOOS spelling (`linux`).
    pub os: String,
    /// OS version (Windows).
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// OS features (Windows).
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_features: Option<Vec<String>>,
    /// CPU variant (`v7`, `v8`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// The platform of the running host (`linux/amd64` etc.).
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            other => other,
        };
        let variant = match arch {
            "arm" => Some("v7".to_string()),
            _ => None,
        };
        Platform {
            architecture: arch.to_string(),
            os: "linux".to_string(),
            variant,
            ..Default::default()
        }
    }

    /// Parse `os/arch[/variant]` as `--platform` takes it.
    pub fn parse(s: &str) -> Option<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        let valid = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        };
        if parts.len() < 2 || parts.len() > 3 || !parts.iter().all(|p| valid(p)) {
            return None;
        }
        let os = parts[0].to_ascii_lowercase();
        let mut arch = parts[1].to_ascii_lowercase();
        let mut variant = parts.get(2).map(|v| v.to_ascii_lowercase());
        // Normalise as containerd's platforms package does.
        match arch.as_str() {
            "x86_64" | "x86-64" => arch = "amd64".into(),
            // v8 is arm64's default variant, left out as containerd (and so BuildKit's
            // TARGETPLATFORM and image configs) leave it out.
            "aarch64" | "arm64" => {
                arch = "arm64".into();
                if matches!(variant.as_deref(), Some("8" | "v8" | "v8.0")) {
                    variant = None;
                }
            }
            "armhf" => {
                arch = "arm".into();
                variant = Some("v7".into());
            }
            "armel" => {
                arch = "arm".into();
                variant = Some("v6".into());
            }
            "arm" => {
                variant = Some(match variant.as_deref() {
                    None | Some("7") | Some("v7") => "v7".into(),
                    Some("6") | Some("v6") => "v6".into(),
                    Some("5") | Some("v5") => "v5".into(),
                    Some(v) => v.to_string(),
                })
            }
            "i386" => arch = "386".into(),
            _ => {}
        }
        if arch == "amd64" && variant.as_deref() == Some("v1") {
            variant = None;
        }
        Some(Platform {
            architecture: arch,
            os,
            variant,
            ..Default::default()
        })
    }

    /// Whether an index entry for `candidate` satisfies a request for `self`.
    ///
    /// OS and architecture must be equal; a requested variant must match, and
    /// an entry without variant matches the default variant of its architecture.
    pub fn matches(&self, candidate: &Platform) -> bool {
        if self.os != candidate.os || self.architecture != candidate.architecture {
            return false;
        }
        let norm = |p: &Platform| -> Option<String> {
            match (p.architecture.as_str(), p.variant.as_deref()) {
                ("arm64", None) => Some("v8".into()),
                ("arm", None) => Some("v7".into()),
                ("amd64", Some("v1")) => None,
                (_, v) => v.map(str::to_string),
            }
        };
        norm(self) == norm(candidate)
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// A content descriptor: what a blob is, its digest and its size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: String,
    /// Digest of the referenced content.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// Alternative download URLs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Platform (in an index).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Artifact type (for artifacts in an index / referrers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Embedded data (base64), rarely used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

impl Descriptor {
    /// A descriptor with only the required fields.
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            urls: None,
            annotations: None,
            platform: None,
            artifact_type: None,
            data: None,
        }
    }

    /// An annotation's value.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }
}

/// An image manifest (OCI or Docker schema 2; the two share this shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// Media type (required by Docker, recommended by OCI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Artifact type (OCI 1.1 artifacts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// Layers, base first.
    pub layers: Vec<Descriptor>,
    /// The manifest this one refers to (OCI 1.1 referrers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// An image index / Docker manifest list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Always 2.
    pub schema_version: u32,
    /// Media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Artifact type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The manifests.
    pub manifests: Vec<Descriptor>,
    /// Subject (OCI 1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// `Healthcheck` in Docker's image config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct HealthConfig {
    /// `["NONE"]`, `["CMD", args…]` or `["CMD-SHELL", cmd]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<Vec<String>>,
    /// Nanoseconds between checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<i64>,
    /// Nanoseconds before a check is considered hung.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    /// Nanoseconds of start period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<i64>,
    /// Nanoseconds between checks during the start period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<i64>,
    /// Consecutive failures before unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
}

/// The execution parameters of an image (`config` in the image config JSON).
///
/// Field names follow Docker's (PascalCase), which is also what the OCI spec uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    /// `USER`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `EXPOSE` (`"80/tcp": {}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, Value>>,
    /// `ENV` as `K=V`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// `ENTRYPOINT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// `CMD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// `VOLUME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, Value>>,
    /// `WORKDIR`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// `LABEL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// `STOPSIGNAL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Docker: whether Cmd/Entrypoint are already escaped (Windows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_escaped: Option<bool>,
    /// Docker: `HEALTHCHECK`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    /// Docker: `ONBUILD` triggers (source text of each instruction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
    /// Docker: `SHELL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    /// Fields hoist does not model, kept as they were.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `rootfs` in the image config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Digests of the uncompressed layers, base first.
    pub diff_ids: Vec<Digest>,
}

impl Default for RootFs {
    fn default() -> Self {
        RootFs {
            kind: "layers".into(),
            diff_ids: Vec::new(),
        }
    }
}

/// One entry of the image history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct History {
    /// RFC 3339 time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The instruction that made it, as BuildKit writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Author.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Comment (BuildKit writes `buildkit.dockerfile.v0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// True when the step made no layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_layer: Option<bool>,
}

/// The image configuration blob.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ImageConfig {
    /// RFC 3339 creation time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Author (`MAINTAINER`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Architecture.
    pub architecture: String,
    /// OS.
    pub os: String,
    /// OS version.
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// OS features.
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_features: Option<Vec<String>>,
    /// CPU variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Execution parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ContainerConfig>,
    /// Layer diff IDs.
    pub rootfs: RootFs,
    /// History, one entry per instruction (layers and empty layers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    /// Fields hoist does not model (`container_config`, `docker_version`, …).
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl ImageConfig {
    /// The platform this config declares.
    pub fn platform(&self) -> Platform {
        Platform {
            architecture: self.architecture.clone(),
            os: self.os.clone(),
            os_version: self.os_version.clone(),
            os_features: self.os_features.clone(),
            variant: self.variant.clone(),
        }
    }
}

/// Serialise a document deterministically (sorted maps, fixed field order, compact).
pub fn to_canonical_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Going through `Value` sorts every map, including `extra` and flattened fields.
    let v = serde_json::to_value(value).expect("documents always serialise");
    serde_json::to_vec(&v).expect("values always serialise")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_parse_normalises() {
        let p = Platform::parse("linux/aarch64").unwrap();
        assert_eq!(p.to_string(), "linux/arm64");
        assert_eq!(
            Platform::parse("linux/arm64/v8").unwrap().to_string(),
            "linux/arm64"
        );
        assert_eq!(
            Platform::parse("linux/arm64/v9").unwrap().to_string(),
            "linux/arm64/v9"
        );
        assert!(Platform::parse("linux/arm64")
            .unwrap()
            .matches(&Platform::parse("linux/arm64/v8").unwrap()));
        assert!(!Platform::parse("linux/arm/v6")
            .unwrap()
            .matches(&Platform::parse("linux/arm/v7").unwrap()));
        assert!(Platform::parse("linux").is_none());
        assert!(Platform::parse("linux/amd64/v2/x").is_none());
    }

    #[test]
    fn config_round_trip_keeps_unknown_fields_and_is_sorted() {
        let raw = r#"{"zeta":1,"architecture":"amd64","os":"linux","docker_version":"20.10",
            "config":{"Env":["A=1"],"Unknown":{"b":1,"a":2}},"rootfs":{"type":"layers","diff_ids":[]}}"#;
        let c: ImageConfig = serde_json::from_str(raw).unwrap();
        assert_eq!(c.extra["docker_version"], "20.10");
        let out = String::from_utf8(to_canonical_json(&c)).unwrap();
        assert_eq!(
            out,
            r#"{"architecture":"amd64","config":{"Env":["A=1"],"Unknown":{"a":2,"b":1}},"docker_version":"20.10","os":"linux","rootfs":{"diff_ids":[],"type":"layers"},"zeta":1}"#
        );
    }
}
