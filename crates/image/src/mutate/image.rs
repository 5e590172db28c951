//! [`Image`]: a config and ordered layers, as a value.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::source::resolve;
use crate::{media_type, ContainerConfig, Error, ImageConfig, Platform, Result, RootFs, Source};

use super::Layer;

/// The `PATH` BuildKit (and so hoist) gives images that set none.
pub const DEFAULT_PATH_ENV: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Which family of media types an image is written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MediaTypes {
    /// OCI image spec types (`application/vnd.oci.image.*`). The default.
    #[default]
    Oci,
    /// Docker's image manifest v2 schema 2 types. No zstd layers, no annotations.
    Docker,
}

impl MediaTypes {
    /// The family of a manifest media type (Docker for Docker's, OCI otherwise).
    pub fn of_manifest(mt: &str) -> MediaTypes {
        if mt == media_type::DOCKER_MANIFEST || mt == media_type::DOCKER_MANIFEST_LIST {
            MediaTypes::Docker
        } else {
            MediaTypes::Oci
        }
    }

    /// `true` for [`MediaTypes::Oci`].
    pub fn is_oci(self) -> bool {
        self == MediaTypes::Oci
    }
}

/// An image as a value: its config and its layers (base first), plus the media-type
/// family and the manifest annotations it will be written with.
///
/// Every transform (see the [module docs](super)) takes the image and returns the
/// changed one; nothing is written until [`Image::write`]. The config's
/// `rootfs.diff_ids` always follows the layers: it is rebuilt from them when written.
#[derive(Debug, Clone)]
pub struct Image {
    pub(crate) config: ImageConfig,
    pub(crate) layers: Vec<Layer>,
    pub(crate) media_types: MediaTypes,
    pub(crate) annotations: BTreeMap<String, String>,
}

impl Image {
    /// An image with no layers for `platform`, as `FROM scratch` makes: OCI media
    /// types, the default `PATH`, no history.
    pub fn empty(platform: &Platform) -> Image {
        Image {
            config: ImageConfig {
                architecture: platform.architecture.clone(),
                os: platform.os.clone(),
                variant: platform.variant.clone(),
                os_version: platform.os_version.clone(),
                os_features: platform.os_features.clone(),
                config: Some(ContainerConfig {
                    env: Some(vec![DEFAULT_PATH_ENV.to_string()]),
                    ..Default::default()
                }),
                rootfs: RootFs::default(),
                ..Default::default()
            },
            layers: Vec::new(),
            media_types: MediaTypes::Oci,
            annotations: BTreeMap::new(),
        }
    }

    /// An image from a config and its layers, in order. Fails when the config's
    /// non-empty `rootfs.diff_ids` disagree with the layers (an empty list is filled in).
    pub fn from_parts(config: ImageConfig, layers: Vec<Layer>) -> Result<Image> {
        let ids = &config.rootfs.diff_ids;
        if !ids.is_empty()
            && (ids.len() != layers.len() || ids.iter().zip(&layers).any(|(d, l)| d != l.diff_id()))
        {
            return Err(Error::Format(format!(
                "the config lists {} diff_ids that do not match the {} layers given",
                ids.len(),
                layers.len()
            )));
        }
        Ok(Image {
            config,
            layers,
            media_types: MediaTypes::Oci,
            annotations: BTreeMap::new(),
        })
    }

    /// The `platform` image of any source (a registry, a layout, an archive, a
    /// store): its manifest and config are read now; layer blobs stay in `source`
    /// until a sink needs them. Keeps the media-type family and the manifest's
    /// annotations; config fields hoist does not model are kept as they are.
    pub fn from_source(source: Arc<dyn Source>, platform: &Platform) -> Result<Image> {
        let img = resolve(source.as_ref(), platform)?;
        let ids = &img.config.rootfs.diff_ids;
        if ids.len() != img.manifest.layers.len() {
            return Err(Error::Format(format!(
                "{}: the config lists {} diff_ids but the manifest {} layers",
                source.name(),
                ids.len(),
                img.manifest.layers.len()
            )));
        }
        let layers = img
            .manifest
            .layers
            .iter()
            .zip(ids)
            .map(|(d, id)| {
                let mut d = d.clone();
                d.annotations = None;
                Layer::from_source(source.clone(), d, id.clone())
            })
            .collect();
        let mt = img
            .manifest
            .media_type
            .clone()
            .unwrap_or_else(|| img.manifest_raw.media_type.clone());
        Ok(Image {
            config: img.config,
            layers,
            media_types: MediaTypes::of_manifest(&mt),
            annotations: img.manifest.annotations.unwrap_or_default(),
        })
    }

    /// The config as it stands (`rootfs.diff_ids` is rebuilt when written).
    pub fn config(&self) -> &ImageConfig {
        &self.config
    }

    /// The layers, base first.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// The media-type family it will be written with.
    pub fn media_types(&self) -> MediaTypes {
        self.media_types
    }

    /// The manifest annotations it will be written with (OCI only).
    pub fn annotations(&self) -> &BTreeMap<String, String> {
        &self.annotations
    }

    /// The platform the config declares.
    pub fn platform(&self) -> Platform {
        self.config.platform()
    }
}
