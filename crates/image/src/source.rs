//! Image sources: the one interface every place an image can come from implements.
//!
//! Following go-containerregistry's `v1.Image`, an image is a value reached through a
//! [`Source`]: a root document (a manifest or an index), child manifests, and blobs,
//! all addressed by descriptor. A registry repository, an OCI layout, an OCI
//! archive, a docker-archive and a fresh build are all sources; every sink
//! (write a layout, write an archive, push, unpack a rootfs) is a function over
//! `&dyn Source`. So any source feeds any sink and `copy` is just `sink(source)`.
//!
//! Contract:
//! - [`Source::root`] returns the exact bytes of the root document; its digest is the
//!   image's identity and sinks must store those bytes unchanged.
//! - [`Source::blob`] streams a blob's bytes. Implementations need not verify;
//!   consumers wrap the stream in [`VerifyingReader`](crate::VerifyingReader) (see
//!   [`open_verified`]) so content from any source is always checked.
//! - Sources are `Send + Sync` so sinks may fetch several blobs at once.

use std::io::Read;

use crate::{
    media_type, Descriptor, Error, ImageConfig, Index, Manifest, Platform, RawDocument, Result,
    VerifyingReader,
};

/// Anything an image can be read from.
pub trait Source: Send + Sync {
    /// A human-readable name for messages (`oci:./out:latest`).
    fn name(&self) -> String;

    /// The root document: an image manifest or an index, exact bytes.
    fn root(&self) -> Result<RawDocument>;

    /// A manifest or index referenced (by an index) from this source.
    fn manifest(&self, desc: &Descriptor) -> Result<RawDocument>;

    /// Stream a blob (config or layer).
    fn blob(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send + '_>>;

    /// Whether the blob can be fetched from this source (for example, a
    /// docker-archive omits nothing, but a registry may miss foreign layers).
    fn has_blob(&self, desc: &Descriptor) -> Result<bool> {
        let _ = desc;
        Ok(true)
    }

    /// A local file that holds exactly the blob's bytes (`desc.size` of them) and is
    /// trusted to match its digest, such as a blob of hoist's own store. Outputs
    /// on the same file system then reflink or hard-link it, or copy it in the
    /// kernel, instead of streaming it (see [`crate::place`]). `None` (the
    /// default) when the source has no such file.
    fn blob_file(&self, desc: &Descriptor) -> Option<std::path::PathBuf> {
        let _ = desc;
        None
    }
}

/// Open a blob and verify its digest and size while it streams.
pub fn open_verified<'a>(
    src: &'a dyn Source,
    desc: &Descriptor,
) -> Result<VerifyingReader<Box<dyn Read + Send + 'a>>> {
    let r = src.blob(desc)?;
    Ok(VerifyingReader::new(
        r,
        desc.digest.clone(),
        Some(desc.size),
    ))
}

/// Read a small blob (a config) fully, verified.
pub fn read_verified(src: &dyn Source, desc: &Descriptor, limit: u64) -> Result<Vec<u8>> {
    if desc.size > limit {
        return Err(Error::Format(format!(
            "{} is {} bytes, more than the {} allowed for a {}",
            desc.digest, desc.size, limit, desc.media_type
        )));
    }
    let mut out = Vec::with_capacity(desc.size as usize);
    open_verified(src, desc)?
        .read_to_end(&mut out)
        .map_err(|e| Error::stream(format!("reading {} from {}", desc.digest, src.name()), e))?;
    Ok(out)
}

/// Verify that a document's bytes match a descriptor.
pub fn verify_document(doc: &RawDocument, desc: &Descriptor) -> Result<()> {
    let actual = doc.digest();
    if actual != desc.digest {
        return Err(Error::DigestMismatch {
            what: format!("manifest {}", desc.digest),
            expected: desc.digest.clone(),
            actual,
        });
    }
    Ok(())
}

/// One resolved single-platform image: its manifest and config, parsed and raw.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// The manifest's exact bytes.
    pub manifest_raw: RawDocument,
    /// The parsed manifest.
    pub manifest: Manifest,
    /// The config's exact bytes.
    pub config_raw: Vec<u8>,
    /// The parsed config.
    pub config: ImageConfig,
}

impl ResolvedImage {
    /// The manifest's descriptor.
    pub fn descriptor(&self) -> Descriptor {
        self.manifest_raw.descriptor()
    }
}

/// Largest manifest or config hoist accepts (as containerd does, 4 MiB).
pub const MAX_DOCUMENT_SIZE: u64 = 4 << 20;

/// Resolve the root of `src` to one image for `platform`, walking an index if needed.
pub fn resolve(src: &dyn Source, platform: &Platform) -> Result<ResolvedImage> {
    let root = src.root()?;
    resolve_document(src, root, platform)
}

/// Resolve a given document (manifest or index) of `src` to one image for `platform`.
pub fn resolve_document(
    src: &dyn Source,
    doc: RawDocument,
    platform: &Platform,
) -> Result<ResolvedImage> {
    let mut doc = doc;
    for _ in 0..4 {
        let mt = document_media_type(&doc)?;
        if media_type::is_index(&mt) {
            let index: Index = doc
                .parse()
                .map_err(|e| Error::json(format!("index in {}", src.name()), e))?;
            let desc = select_platform(&index, platform)?;
            let child = src.manifest(&desc)?;
            verify_document(&child, &desc)?;
            doc = child;
            continue;
        }
        if !media_type::is_manifest(&mt) {
            return Err(Error::Format(format!(
                "{}: unsupported manifest media type {mt:?}",
                src.name()
            )));
        }
        let manifest: Manifest = doc
            .parse()
            .map_err(|e| Error::json(format!("manifest in {}", src.name()), e))?;
        let config_raw = read_verified(src, &manifest.config, MAX_DOCUMENT_SIZE)?;
        let config: ImageConfig = serde_json::from_slice(&config_raw)
            .map_err(|e| Error::json(format!("config {}", manifest.config.digest), e))?;
        return Ok(ResolvedImage {
            manifest_raw: doc,
            manifest,
            config_raw,
            config,
        });
    }
    Err(Error::Format(format!(
        "{}: image indexes nested more than 4 deep (hoist follows at most 4 levels of index)",
        src.name()
    )))
}

/// The media type of a document: its `mediaType` field, or the type it was served as,
/// or inferred from its shape (`manifests` → OCI index, `layers` → OCI manifest).
pub fn document_media_type(doc: &RawDocument) -> Result<String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
        schema_version: Option<u32>,
        manifests: Option<serde_json::Value>,
        layers: Option<serde_json::Value>,
    }
    let p: Probe = doc.parse().map_err(|e| Error::json("manifest", e))?;
    if p.schema_version == Some(1) {
        return Err(Error::Format(
            "Docker schema 1 manifests are not supported".into(),
        ));
    }
    if let Some(mt) = p.media_type.filter(|m| !m.is_empty()) {
        return Ok(mt);
    }
    if media_type::is_index(&doc.media_type) || media_type::is_manifest(&doc.media_type) {
        return Ok(doc.media_type.clone());
    }
    if p.manifests.is_some() {
        Ok(media_type::OCI_INDEX.into())
    } else if p.layers.is_some() {
        Ok(media_type::OCI_MANIFEST.into())
    } else {
        Err(Error::Format(
            "document is neither a manifest nor an index".into(),
        ))
    }
}

/// Pick the manifest for `platform` from an index.
pub fn select_platform(index: &Index, platform: &Platform) -> Result<Descriptor> {
    let mut available = Vec::new();
    for m in &index.manifests {
        match &m.platform {
            Some(p) => {
                if platform.matches(p) {
                    return Ok(m.clone());
                }
                available.push(p.to_string());
            }
            None => available.push("(unspecified)".into()),
        }
    }
    // An index with a single entry without platform (common for OCI layouts) is that image.
    if index.manifests.len() == 1 && index.manifests[0].platform.is_none() {
        return Ok(index.manifests[0].clone());
    }
    Err(Error::NoMatchingPlatform {
        wanted: platform.to_string(),
        available: available.join(", "),
    })
}
