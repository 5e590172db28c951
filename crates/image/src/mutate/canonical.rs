//! Media types and layer compression, chosen when the image is written.

use crate::media_type::{self, Compression};
use crate::{BlobStore, Error, Result};

use super::{Image, Layer, MediaTypes};

/// Docker's name for an uncompressed layer.
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// The media type a layer blob of `compression` gets in the `family`. Zstd has no
/// Docker media type and is refused there.
pub fn layer_media_type(compression: Compression, family: MediaTypes) -> Result<&'static str> {
    Ok(match family {
        MediaTypes::Oci => media_type::oci_layer(compression),
        MediaTypes::Docker => match compression {
            Compression::Gzip => media_type::DOCKER_LAYER_GZIP,
            Compression::None => DOCKER_LAYER_TAR,
            Compression::Zstd => {
                return Err(Error::Format(
                    "zstd layers need OCI media types (oci-mediatypes=true)".into(),
                ))
            }
        },
    })
}

/// The manifest and config media types of a family.
pub fn manifest_media_types(family: MediaTypes) -> (&'static str, &'static str) {
    match family {
        MediaTypes::Oci => (media_type::OCI_MANIFEST, media_type::OCI_CONFIG),
        MediaTypes::Docker => (media_type::DOCKER_MANIFEST, media_type::DOCKER_CONFIG),
    }
}

/// The index media type of a family.
pub fn index_media_type(family: MediaTypes) -> &'static str {
    match family {
        MediaTypes::Oci => media_type::OCI_INDEX,
        MediaTypes::Docker => media_type::DOCKER_MANIFEST_LIST,
    }
}

impl Image {
    /// Write with this media-type family (manifest, config and every layer's type
    /// follow; blobs are unchanged, since the two families' layer formats are the same).
    pub fn with_media_types(mut self, family: MediaTypes) -> Image {
        self.media_types = family;
        self
    }

    /// Make every layer, or with `only_new` only the layers from index `from` on,
    /// `compression`-compressed at `level` (see [`Layer::compressed`]). BuildKit keeps
    /// base layers as they are unless compression is forced: pass the base's layer
    /// count as `from` for that.
    pub fn with_compression(
        mut self,
        store: &BlobStore,
        compression: Compression,
        level: Option<i32>,
        from: usize,
    ) -> Result<Image> {
        let mut layers = Vec::with_capacity(self.layers.len());
        for (i, l) in self.layers.iter().enumerate() {
            layers.push(if i < from {
                l.clone()
            } else {
                l.compressed(store, compression, level)?
            });
        }
        self.layers = layers;
        Ok(self)
    }

    /// The layers with their media types rewritten for the image's family.
    pub(crate) fn canonical_layers(&self) -> Result<Vec<Layer>> {
        self.layers
            .iter()
            .map(|l| {
                let mt = layer_media_type(l.compression()?, self.media_types)
                    .map_err(|e| Error::Format(format!("layer {}: {e}", l.digest())))?;
                let mut l = l.clone();
                l.set_media_type(mt);
                Ok(l)
            })
            .collect()
    }
}
