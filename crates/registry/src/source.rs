//! [`Source`] implementations: a registry repository, and an image pulled into the
//! local blob cache.

use std::io::Read;

use hoist_image::source::{document_media_type, verify_document, MAX_DOCUMENT_SIZE};
use hoist_image::{
    BlobStore, Descriptor, Error as ImageError, RawDocument, Result as ImageResult, Source,
};

use crate::{Client, Reference};

/// A repository on a registry, read as an image [`Source`]. Its root is the manifest
/// or index the reference's tag or digest points at (Accept-negotiated); blobs
/// stream from the registry (mirrors first for Docker Hub) and resume after a
/// dropped connection.
#[derive(Debug, Clone)]
pub struct RegistrySource {
    client: Client,
    reference: Reference,
}

impl Client {
    /// `r` as an image [`Source`].
    pub fn source(&self, r: &Reference) -> RegistrySource {
        RegistrySource {
            client: self.clone(),
            reference: r.clone(),
        }
    }
}

impl RegistrySource {
    /// The reference read.
    pub fn reference(&self) -> &Reference {
        &self.reference
    }

    /// The client used.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

impl Source for RegistrySource {
    fn name(&self) -> String {
        format!("docker://{}", self.reference)
    }

    fn root(&self) -> ImageResult<RawDocument> {
        Ok(self.client.get_manifest(&self.reference)?)
    }

    fn manifest(&self, desc: &Descriptor) -> ImageResult<RawDocument> {
        Ok(self
            .client
            .get_manifest_by_descriptor(&self.reference, desc)?)
    }

    fn blob(&self, desc: &Descriptor) -> ImageResult<Box<dyn Read + Send + '_>> {
        Ok(self.client.get_blob(&self.reference, desc)?)
    }

    fn has_blob(&self, desc: &Descriptor) -> ImageResult<bool> {
        Ok(self
            .client
            .head_blob(&self.reference, &desc.digest)?
            .is_some())
    }
}

/// An image in a local [`BlobStore`] (what [`Client::pull`] returns): its root is
/// the document given at creation, everything else is read from the store.
#[derive(Debug, Clone)]
pub struct CacheSource {
    name: String,
    store: BlobStore,
    root: RawDocument,
}

impl CacheSource {
    /// A source over `store` whose root is `root`.
    pub fn new(name: impl Into<String>, store: BlobStore, root: RawDocument) -> CacheSource {
        CacheSource {
            name: name.into(),
            store,
            root,
        }
    }

    /// A source over `store` whose root is the stored document `digest`.
    pub fn from_digest(
        name: impl Into<String>,
        store: BlobStore,
        desc: &Descriptor,
    ) -> ImageResult<CacheSource> {
        let root = read_document(&store, desc)?;
        Ok(CacheSource::new(name, store, root))
    }

    /// The blob store.
    pub fn store(&self) -> &BlobStore {
        &self.store
    }
}

/// Read a stored manifest or index, verified, with its media type.
pub(crate) fn read_document(store: &BlobStore, desc: &Descriptor) -> ImageResult<RawDocument> {
    if !store.has(&desc.digest) {
        return Err(ImageError::NotFound(format!(
            "manifest {} in {}",
            desc.digest,
            store.root().display()
        )));
    }
    let mut bytes = Vec::new();
    store
        .open(&desc.digest)?
        .take(MAX_DOCUMENT_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ImageError::io(store.path(&desc.digest), e))?;
    let mut doc = RawDocument::new(desc.media_type.clone(), bytes);
    verify_document(&doc, desc)?;
    if doc.media_type.is_empty() {
        doc.media_type = document_media_type(&doc)?;
    }
    Ok(doc)
}

impl Source for CacheSource {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn root(&self) -> ImageResult<RawDocument> {
        Ok(self.root.clone())
    }

    fn manifest(&self, desc: &Descriptor) -> ImageResult<RawDocument> {
        read_document(&self.store, desc)
    }

    fn blob(&self, desc: &Descriptor) -> ImageResult<Box<dyn Read + Send + '_>> {
        Ok(Box::new(self.store.open(&desc.digest)?))
    }

    fn has_blob(&self, desc: &Descriptor) -> ImageResult<bool> {
        Ok(self.store.has_descriptor(desc))
    }
}
