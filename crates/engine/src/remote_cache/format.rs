//! The cache artifact: an OCI image manifest with its own artifact type.
//!
//! ```text
//!  manifest  (application/vnd.oci.image.manifest.v1+json)
//!    artifactType: application/vnd.hoist.build-cache.v1
//!    config ──► application/vnd.hoist.build-cache.config.v1+json
//!    │            { "version": 1,
//!    │              "steps":   { "<step key hex>": { "layer": 0, "index": 1,
//!    │                                               "diffID": "sha256:…",
//!    │                                               "compression": "gzip", "level": 6 },
//!    │                           "<step key hex>": { } ,            ← a step with no layer
//!    │                           … },
//!    │              "aliases": { "<COPY --from alias hex>": "<step key hex>", … } }
//!    layers[0] ──► a cached layer blob (its own media type: …tar+gzip, …tar+zstd, …tar)
//!    layers[1] ──► that layer's file list (application/vnd.hoist.build-cache.layer-index.v1+json)
//!    …
//! ```
//!
//! A step entry names its layer and its file list by position in `layers`. Keys are
//! the engine's step keys ([`crate::key`]): a digest over everything that made the
//! result; secret values never enter a key, so no secret is in the artifact, and a layer
//! is in it only as the result of the key that made it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The manifest's `artifactType`.
pub const ARTIFACT_TYPE: &str = "application/vnd.hoist.build-cache.v1";
/// The config's media type.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.hoist.build-cache.config.v1+json";
/// A layer file list's media type.
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.hoist.build-cache.layer-index.v1+json";
/// Where an inline cache lives in an image config (a top-level field).
pub const INLINE_CONFIG_KEY: &str = "hoist.build-cache.v1";
/// The largest cache config read (the manifest is bounded by the registry client).
pub const MAX_CONFIG_SIZE: u64 = 64 << 20;
/// The largest layer file list read.
pub const MAX_INDEX_SIZE: u64 = 256 << 20;

/// The cache config.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CacheConfig {
    /// Format version: 1.
    pub version: u32,
    /// Step key (hex) → result.
    #[serde(default)]
    pub steps: BTreeMap<String, StepEntry>,
    /// `COPY --from` alias (hex) → the step key (hex) the copy had; see
    /// [`super::alias_key`].
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
}

/// What one step produced.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StepEntry {
    /// Position of the layer blob in the manifest's layers (absent: no layer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<usize>,
    /// Position of the layer's file list (registry/local caches; inline caches have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// The layer's diff ID.
    #[serde(rename = "diffID", default, skip_serializing_if = "Option::is_none")]
    pub diff_id: Option<String>,
    /// The blob's compression (`gzip`, `zstd`, `uncompressed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    /// Its effective level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<i32>,
}
