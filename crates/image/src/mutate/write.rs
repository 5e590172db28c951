//! Turning an [`Image`] into documents: [`WrittenImage`] and [`WrittenIndex`], both
//! [`Source`]s, so every sink (layout, archives, push) takes them.

use std::collections::BTreeMap;
use std::io::Read;

use crate::{
    BlobStore, Descriptor, Digest, Error, Index, Manifest, Platform, RawDocument, Result, Source,
};

use super::canonical::{index_media_type, manifest_media_types};
use super::{Image, Layer, MediaTypes};

/// An image whose config and manifest exist (in a [`BlobStore`] and in memory),
/// with layers wherever they are. As a [`Source`] it serves the manifest and config
/// from memory and each layer from its own backing, so a base image's layers are
/// read from their source only when a sink needs their bytes.
#[derive(Debug, Clone)]
pub struct WrittenImage {
    /// The manifest's exact bytes (its digest is the image's identity).
    pub manifest: RawDocument,
    /// The config's exact bytes.
    pub config: RawDocument,
    /// The platform the config declares.
    pub platform: Platform,
    /// The store the manifest and config were put in.
    pub store: BlobStore,
    layers: Vec<Layer>,
}

impl WrittenImage {
    /// The manifest digest.
    pub fn digest(&self) -> Digest {
        self.manifest.digest()
    }

    /// The layers, base first, with the media types written.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    fn layer(&self, digest: &Digest) -> Option<&Layer> {
        self.layers.iter().find(|l| l.digest() == digest)
    }
}

impl Image {
    /// Write the config and manifest into `store` and return the image as a
    /// [`Source`]. The config's `rootfs.diff_ids` is rebuilt from the layers, layer
    /// media types follow the image's [`MediaTypes`], and manifest annotations are
    /// written with OCI media types only. The bytes are canonical JSON: the same
    /// image value always gives the same digest.
    pub fn write(&self, store: &BlobStore) -> Result<WrittenImage> {
        let layers = self.canonical_layers()?;
        let (manifest_mt, config_mt) = manifest_media_types(self.media_types);
        let mut config = self.config.clone();
        config.rootfs.diff_ids = layers.iter().map(|l| l.diff_id().clone()).collect();
        let config_raw = RawDocument::from_value(config_mt, &config);
        store.put_bytes(&config_raw.bytes)?;
        let oci = self.media_types == MediaTypes::Oci;
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(manifest_mt.into()),
            artifact_type: None,
            config: config_raw.descriptor(),
            layers: layers.iter().map(|l| l.descriptor().clone()).collect(),
            subject: None,
            annotations: (oci && !self.annotations.is_empty()).then(|| self.annotations.clone()),
        };
        let manifest_raw = RawDocument::from_value(manifest_mt, &manifest);
        store.put_bytes(&manifest_raw.bytes)?;
        tracing::debug!(digest = %manifest_raw.digest(), layers = layers.len(), "wrote image");
        Ok(WrittenImage {
            manifest: manifest_raw,
            config: config_raw,
            platform: config.platform(),
            store: store.clone(),
            layers,
        })
    }
}

impl Source for WrittenImage {
    fn name(&self) -> String {
        format!("image {}", self.manifest.digest())
    }

    fn root(&self) -> Result<RawDocument> {
        Ok(self.manifest.clone())
    }

    fn manifest(&self, desc: &Descriptor) -> Result<RawDocument> {
        if desc.digest == self.manifest.digest() {
            return Ok(self.manifest.clone());
        }
        Err(Error::NotFound(format!(
            "manifest {} in {}",
            desc.digest,
            self.name()
        )))
    }

    fn blob(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send + '_>> {
        if desc.digest == self.config.digest() {
            return Ok(Box::new(std::io::Cursor::new(self.config.bytes.clone())));
        }
        match self.layer(&desc.digest) {
            Some(l) => l.open_raw(),
            None => Ok(Box::new(self.store.open(&desc.digest)?)),
        }
    }

    fn blob_file(&self, desc: &Descriptor) -> Option<std::path::PathBuf> {
        if desc.digest == self.config.digest() {
            return None;
        }
        match self.layer(&desc.digest) {
            Some(l) => l.raw_file(),
            None => self
                .store
                .has_descriptor(desc)
                .then(|| self.store.path(&desc.digest)),
        }
    }

    fn has_blob(&self, desc: &Descriptor) -> Result<bool> {
        if desc.digest == self.config.digest() {
            return Ok(true);
        }
        match self.layer(&desc.digest) {
            Some(l) => l.has_raw(),
            None => Ok(self.store.has(&desc.digest)),
        }
    }
}

/// An image index (OCI) or manifest list (Docker) over written images: the result
/// of a multi-platform assembly, and a [`Source`] too.
#[derive(Debug, Clone)]
pub struct WrittenIndex {
    /// The index's exact bytes.
    pub index: RawDocument,
    /// The images it lists, in order.
    pub images: Vec<WrittenImage>,
}

impl WrittenIndex {
    /// Write an index over `images` into `store` (the first image's store when
    /// `None`). Each entry carries its image's platform and `descriptor_annotations`;
    /// the index carries `index_annotations`. Annotations are OCI only.
    pub fn new(
        images: Vec<WrittenImage>,
        family: MediaTypes,
        index_annotations: &BTreeMap<String, String>,
        descriptor_annotations: &BTreeMap<String, String>,
    ) -> Result<WrittenIndex> {
        let store = images
            .first()
            .map(|i| i.store.clone())
            .ok_or_else(|| Error::Format("an index needs at least one image".into()))?;
        let some =
            |a: &BTreeMap<String, String>| (family.is_oci() && !a.is_empty()).then(|| a.clone());
        let mut seen = std::collections::BTreeSet::new();
        for i in &images {
            if !seen.insert(i.platform.to_string()) {
                return Err(Error::Format(format!(
                    "two images for platform {} in one index",
                    i.platform
                )));
            }
        }
        let manifests = images
            .iter()
            .map(|i| {
                let mut d = i.manifest.descriptor();
                d.platform = Some(i.platform.clone());
                d.annotations = some(descriptor_annotations);
                d
            })
            .collect();
        let mt = index_media_type(family);
        let index = Index {
            schema_version: 2,
            media_type: Some(mt.into()),
            artifact_type: None,
            manifests,
            subject: None,
            annotations: some(index_annotations),
        };
        let raw = RawDocument::from_value(mt, &index);
        store.put_bytes(&raw.bytes)?;
        Ok(WrittenIndex { index: raw, images })
    }

    /// The index digest.
    pub fn digest(&self) -> Digest {
        self.index.digest()
    }

    fn image_with_blob(&self, digest: &Digest) -> Option<&WrittenImage> {
        self.images
            .iter()
            .find(|i| i.config.digest() == *digest || i.layer(digest).is_some())
    }
}

impl Source for WrittenIndex {
    fn name(&self) -> String {
        format!("index {}", self.index.digest())
    }

    fn root(&self) -> Result<RawDocument> {
        Ok(self.index.clone())
    }

    fn manifest(&self, desc: &Descriptor) -> Result<RawDocument> {
        if desc.digest == self.index.digest() {
            return Ok(self.index.clone());
        }
        self.images
            .iter()
            .find(|i| i.manifest.digest() == desc.digest)
            .map(|i| i.manifest.clone())
            .ok_or_else(|| Error::NotFound(format!("manifest {} in {}", desc.digest, self.name())))
    }

    fn blob(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send + '_>> {
        match self.image_with_blob(&desc.digest) {
            Some(i) => i.blob(desc),
            None => Err(Error::NotFound(format!(
                "blob {} in {}",
                desc.digest,
                self.name()
            ))),
        }
    }

    fn has_blob(&self, desc: &Descriptor) -> Result<bool> {
        match self.image_with_blob(&desc.digest) {
            Some(i) => i.has_blob(desc),
            None => Ok(false),
        }
    }

    fn blob_file(&self, desc: &Descriptor) -> Option<std::path::PathBuf> {
        self.image_with_blob(&desc.digest)?.blob_file(desc)
    }
}
