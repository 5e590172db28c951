//! [`StoreSource`]: an image whose blobs live in a [`BlobStore`] and whose root (and
//! child manifests) are held in memory, such as an image the engine has just built.

use std::collections::BTreeMap;
use std::io::Read;

use crate::layout::read_document;
use crate::{BlobStore, Descriptor, Digest, Error, RawDocument, Result, Source};

/// An image over a [`BlobStore`] with an in-memory root document.
///
/// Child manifests (of an index root) are looked up first among those added with
/// [`with_manifest`](StoreSource::with_manifest), then in the store. Blobs are served
/// from the store; like every source, they are verified by the consumer.
#[derive(Debug, Clone)]
pub struct StoreSource {
    name: String,
    store: BlobStore,
    root: RawDocument,
    manifests: BTreeMap<Digest, RawDocument>,
}

impl StoreSource {
    /// An image with root document `root` whose blobs are in `store`.
    pub fn new(store: BlobStore, root: RawDocument) -> StoreSource {
        StoreSource {
            name: format!("build image {}", root.digest()),
            store,
            root,
            manifests: BTreeMap::new(),
        }
    }

    /// Add a child manifest (for an index root).
    pub fn with_manifest(mut self, doc: RawDocument) -> StoreSource {
        self.manifests.insert(doc.digest(), doc);
        self
    }

    /// Set the name used in messages.
    pub fn with_name(mut self, name: impl Into<String>) -> StoreSource {
        self.name = name.into();
        self
    }

    /// The store blobs are read from.
    pub fn store(&self) -> &BlobStore {
        &self.store
    }
}

impl Source for StoreSource {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn root(&self) -> Result<RawDocument> {
        Ok(self.root.clone())
    }

    fn manifest(&self, desc: &Descriptor) -> Result<RawDocument> {
        if desc.digest == self.root.digest() {
            return Ok(RawDocument::new(
                desc.media_type.clone(),
                self.root.bytes.clone(),
            ));
        }
        if let Some(doc) = self.manifests.get(&desc.digest) {
            return Ok(RawDocument::new(desc.media_type.clone(), doc.bytes.clone()));
        }
        match self.store.open(&desc.digest) {
            Ok(f) => read_document(f, desc, &self.name),
            Err(Error::NotFound(_)) => Err(Error::NotFound(format!(
                "manifest {} in {}",
                desc.digest, self.name
            ))),
            Err(e) => Err(e),
        }
    }

    fn blob(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send + '_>> {
        Ok(Box::new(self.store.open(&desc.digest)?))
    }

    fn has_blob(&self, desc: &Descriptor) -> Result<bool> {
        Ok(self.store.has(&desc.digest))
    }

    fn blob_file(&self, desc: &Descriptor) -> Option<std::path::PathBuf> {
        self.store
            .has_descriptor(desc)
            .then(|| self.store.path(&desc.digest))
    }
}
