//! The image core of hoist: the OCI data model and everything that turns files into
//! layers and layers into files.
//!
//! - [`Digest`], [`Descriptor`], [`Manifest`], [`Index`], [`ImageConfig`]: the documents.
//! - [`RawDocument`]: a JSON document together with the exact bytes its digest covers.
//! - [`mutate`]: images as values ([`mutate::Image`], [`mutate::Layer`]) and the
//!   transforms that assemble them without a Dockerfile (append, config, time, media types).
//!
//! ```
//! use hoist_image::{Digest, Descriptor, media_type};
//! let d = Digest::sha256(b"{}");
//! let desc = Descriptor::new(media_type::OCI_EMPTY, d.clone(), 2);
//! assert_eq!(desc.digest, d);
//! ```

pub mod digest;
pub mod error;
pub mod layer;
pub mod media_type;
pub mod mutate;
pub mod progress;
pub mod source;
pub mod spec;
pub mod store;

pub mod archive;
pub mod docker_archive;
pub mod fsutil;
pub mod layout;
pub mod oci_archive;
pub mod place;
pub mod rootfs;
pub mod sink;
pub mod store_source;
pub mod transport;
pub mod validate;

pub use digest::{Algorithm, Digest, DigestError, Hasher, HashingWriter, VerifyingReader};
pub use error::{chain_text, BoxError, Error, Result};
pub use source::{open_verified, read_verified, resolve, ResolvedImage, Source};
pub use spec::{
    to_canonical_json, ContainerConfig, Descriptor, HealthConfig, History, ImageConfig, Index,
    Manifest, Platform, RootFs,
};
pub use store::{BlobStore, BlobWriter};

pub use docker_archive::DockerArchiveSource;
pub use fsutil::{atomic_write, AtomicDir, AtomicFile};
pub use layout::OciLayoutSource;
pub use oci_archive::OciArchiveSource;
pub use rootfs::{unpack_rootfs, write_rootfs_tar, UnpackStats};
pub use sink::{
    copy_to_store, write_docker_archive, write_oci_archive, write_oci_layout, ImageMetadata,
};
pub use store_source::StoreSource;
pub use transport::ImageRef;
pub use validate::{validate, ValidateReport};

/// A JSON document (manifest, index or config) with the exact bytes it was read
/// from or written as. Its digest is always the digest of those bytes, so passing
/// a `RawDocument` along never changes an image's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawDocument {
    /// The media type it is served or stored under.
    pub media_type: String,
    /// The exact bytes.
    pub bytes: Vec<u8>,
}

impl RawDocument {
    /// Wrap bytes with their media type.
    pub fn new(media_type: impl Into<String>, bytes: Vec<u8>) -> RawDocument {
        RawDocument {
            media_type: media_type.into(),
            bytes,
        }
    }

    /// Serialise `value` canonically.
    pub fn from_value<T: serde::Serialize>(
        media_type: impl Into<String>,
        value: &T,
    ) -> RawDocument {
        RawDocument::new(media_type, to_canonical_json(value))
    }

    /// The sha256 digest of the bytes.
    pub fn digest(&self) -> Digest {
        Digest::sha256(&self.bytes)
    }

    /// A descriptor for this document.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(
            self.media_type.clone(),
            self.digest(),
            self.bytes.len() as u64,
        )
    }

    /// Parse the bytes as `T`.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.bytes)
    }
}
