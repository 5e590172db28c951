//! Reading a cache ref: the manifest and config only (blobs are fetched when needed,
//! see [`super::Session::ensure`]). Anything that is not a hoist cache (an ordinary
//! image without an inline cache, an index, a foreign artifact, a corrupt config) is an
//! error here, which the session turns into a warning and a cold build.

use std::collections::HashMap;
use std::io::Read;

use hoist_image::media_type::{self, Compression};
use hoist_image::{Descriptor, Digest, ImageConfig, Manifest, Source};

use super::format::{self, CacheConfig};
use crate::error::{Error, Result};

/// One step of an imported cache.
#[derive(Debug, Clone)]
pub(crate) struct RemoteStep {
    /// The layer blob (absent: the step made no layer).
    pub layer: Option<Descriptor>,
    /// Its diff ID.
    pub diff_id: Option<Digest>,
    /// The layer's file list (absent in inline caches).
    pub index: Option<Descriptor>,
    /// The blob's compression and effective level, when known.
    pub encoding: Option<(Compression, i32)>,
}

/// A cache that was read.
pub(crate) struct Imported {
    /// The `--cache-from` spec (for messages).
    pub spec: String,
    /// Where its blobs come from.
    pub source: Box<dyn Source>,
    /// The registry reference, for cross-repository mounts.
    pub reference: Option<hoist_registry::Reference>,
    /// Step key (hex) → result.
    pub steps: HashMap<String, RemoteStep>,
    /// Alias (hex) → step key (hex).
    pub aliases: HashMap<String, String>,
}

fn bad(what: &str) -> Error {
    Error::Invalid(what.to_string())
}

fn read_bounded(src: &dyn Source, desc: &Descriptor, limit: u64) -> Result<Vec<u8>> {
    if desc.size > limit {
        return Err(bad(&format!(
            "its config is {} bytes, more than the {limit} allowed",
            desc.size
        )));
    }
    let mut out = Vec::new();
    hoist_image::source::open_verified(src, desc)?
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::Invalid(format!("reading {}: {e}", desc.digest)))?;
    Ok(out)
}

/// Read the cache `src` holds (its root manifest and config).
pub(crate) fn read(
    spec: &str,
    src: Box<dyn Source>,
    reference: Option<hoist_registry::Reference>,
) -> Result<Imported> {
    let root = src.root()?;
    let mt = hoist_image::source::document_media_type(&root)?;
    if media_type::is_index(&mt) {
        return Err(bad(&format!(
            "{} is an image index, not a hoist build cache",
            src.name()
        )));
    }
    let manifest: Manifest = root
        .parse()
        .map_err(|e| bad(&format!("{}: not an image manifest ({e})", src.name())))?;
    let is_cache = manifest.artifact_type.as_deref() == Some(format::ARTIFACT_TYPE)
        || manifest.config.media_type == format::CONFIG_MEDIA_TYPE;
    let (config, inline) = if is_cache {
        if manifest.config.media_type != format::CONFIG_MEDIA_TYPE {
            return Err(bad(&format!(
                "{}: a hoist cache whose config has media type {:?}",
                src.name(),
                manifest.config.media_type
            )));
        }
        let b = read_bounded(src.as_ref(), &manifest.config, format::MAX_CONFIG_SIZE)?;
        let c: CacheConfig = serde_json::from_slice(&b)
            .map_err(|e| bad(&format!("{}: corrupt cache config: {e}", src.name())))?;
        (c, false)
    } else if manifest.config.media_type == media_type::OCI_CONFIG
        || manifest.config.media_type == media_type::DOCKER_CONFIG
    {
        let b = read_bounded(src.as_ref(), &manifest.config, format::MAX_CONFIG_SIZE)?;
        let img: ImageConfig = serde_json::from_slice(&b)
            .map_err(|e| bad(&format!("{}: corrupt image config: {e}", src.name())))?;
        let Some(v) = img.extra.get(format::INLINE_CONFIG_KEY) else {
            return Err(bad(&format!(
                "{} is an ordinary image, not a build cache (no hoist cache in it: push it \
                 with --cache-to type=inline, or export one with --cache-to type=registry)",
                src.name()
            )));
        };
        let c: CacheConfig = serde_json::from_value(v.clone())
            .map_err(|e| bad(&format!("{}: corrupt inline cache: {e}", src.name())))?;
        (c, true)
    } else {
        return Err(bad(&format!(
            "{} is not a hoist build cache (artifact type {:?}, config {:?})",
            src.name(),
            manifest.artifact_type,
            manifest.config.media_type
        )));
    };
    if config.version != 1 {
        return Err(bad(&format!(
            "{}: cache format version {} (this hoist reads version 1)",
            src.name(),
            config.version
        )));
    }
    let steps = check_steps(&src.name(), &config, &manifest, inline)?;
    for (a, k) in &config.aliases {
        if !is_key(a) || !is_key(k) {
            return Err(bad(&format!("{}: malformed alias {a:?}", src.name())));
        }
    }
    Ok(Imported {
        spec: spec.to_string(),
        source: src,
        reference,
        steps,
        aliases: config.aliases.into_iter().collect(),
    })
}

fn is_key(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn check_steps(
    name: &str,
    config: &CacheConfig,
    manifest: &Manifest,
    inline: bool,
) -> Result<HashMap<String, RemoteStep>> {
    let layer_at = |i: usize, what: &str| -> Result<Descriptor> {
        manifest.layers.get(i).cloned().ok_or_else(|| {
            bad(&format!(
                "{name}: a step's {what} is layer {i}, but the cache has {}",
                manifest.layers.len()
            ))
        })
    };
    let mut out = HashMap::new();
    for (k, e) in &config.steps {
        if !is_key(k) {
            return Err(bad(&format!("{name}: malformed step key {k:?}")));
        }
        let mut step = RemoteStep {
            layer: None,
            diff_id: None,
            index: None,
            encoding: None,
        };
        if let Some(i) = e.layer {
            let desc = layer_at(i, "layer")?;
            let Some(compression) = media_type::layer_compression(&desc.media_type) else {
                return Err(bad(&format!(
                    "{name}: layer {i} has media type {:?}, not a layer",
                    desc.media_type
                )));
            };
            if media_type::is_foreign_layer(&desc.media_type) {
                return Err(bad(&format!("{name}: layer {i} is a foreign layer")));
            }
            let diff_id: Digest = e
                .diff_id
                .as_deref()
                .ok_or_else(|| bad(&format!("{name}: layer {i} has no diff ID")))?
                .parse()
                .map_err(|_| bad(&format!("{name}: layer {i} has a malformed diff ID")))?;
            step.encoding = e.level.map(|l| (compression, l));
            step.layer = Some(desc);
            step.diff_id = Some(diff_id);
            if let Some(j) = e.index {
                let idx = layer_at(j, "file list")?;
                if idx.media_type != format::INDEX_MEDIA_TYPE {
                    return Err(bad(&format!(
                        "{name}: layer {j} should be a file list, is {:?}",
                        idx.media_type
                    )));
                }
                step.index = Some(idx);
            } else if !inline {
                return Err(bad(&format!("{name}: layer {i} has no file list")));
            }
        }
        out.insert(k.clone(), step);
    }
    Ok(out)
}
