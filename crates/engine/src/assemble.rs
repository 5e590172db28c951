//! The image of a built stage: config, manifest and, for several platforms, the index
//! over them, all in the cache's blob store.
//!
//! Assembly is where a build's layers get their encoding: layers made by steps are
//! written in the compression each output asks for (see [`crate::variants`]), base
//! layers keep their blobs unless `force-compression` is set. The config does not
//! depend on the encoding (it lists diff IDs), so every output of one build holds the
//! same image config.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hoist_image::media_type;
use hoist_image::{BlobStore, Digest, ImageConfig, Platform, RawDocument};

use crate::error::{Error, Result};
use crate::layers::LayerRef;
use crate::variants::Encoding;

/// What a finished build produced.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    /// The manifest (exact bytes).
    pub manifest: RawDocument,
    /// The config (exact bytes).
    pub config: RawDocument,
    /// The platform.
    pub platform: Platform,
    /// Where every blob is.
    pub store: BlobStore,
    /// The attestations to attach to it (empty: none); made into statements about its
    /// digest, in an attestation manifest, when the index is made ([`Built::indexed`]).
    pub attestations: Vec<hoist_attest::layout::Predicate>,
    /// What the image was assembled from, to encode it again for another output.
    recipe: Recipe,
}

#[derive(Debug, Clone)]
struct Recipe {
    config: ImageConfig,
    layers: Vec<LayerRef>,
    annotations: BTreeMap<String, String>,
    cache_dir: PathBuf,
    encoding: Encoding,
    oci: bool,
    remote: Option<std::sync::Arc<crate::remote_cache::Session>>,
}

impl BuiltImage {
    /// The manifest digest (the image's identity).
    pub fn digest(&self) -> Digest {
        self.manifest.digest()
    }

    /// The image as a [`hoist_image::Source`] over the cache's store.
    pub fn source(&self) -> hoist_image::StoreSource {
        hoist_image::StoreSource::new(self.store.clone(), self.manifest.clone())
            .with_name("build result")
    }

    /// The encoding its new layers have.
    pub fn encoding(&self) -> Encoding {
        self.recipe.encoding
    }

    /// Whether it has OCI media types (else Docker's).
    pub fn oci(&self) -> bool {
        self.recipe.oci
    }

    /// The same image with its new layers in another encoding and/or other media types
    /// (a cached diff is compressed again, never rebuilt).
    pub fn encoded(&self, encoding: Encoding, oci: bool) -> Result<BuiltImage> {
        if encoding == self.recipe.encoding && oci == self.recipe.oci {
            return Ok(self.clone());
        }
        let r = &self.recipe;
        let mut image = assemble(&AssembleInput {
            store: &self.store,
            cache_dir: &r.cache_dir,
            config: r.config.clone(),
            layers: &r.layers,
            annotations: &r.annotations,
            encoding,
            oci,
            remote: r.remote.clone(),
        })?;
        image.attestations = self.attestations.clone();
        Ok(image)
    }
}

/// Everything [`assemble`] needs.
pub(crate) struct AssembleInput<'a> {
    pub store: &'a BlobStore,
    pub cache_dir: &'a Path,
    /// The final config (labels, created, …), `rootfs.diff_ids` set from `layers`.
    pub config: ImageConfig,
    pub layers: &'a [LayerRef],
    pub annotations: &'a BTreeMap<String, String>,
    pub encoding: Encoding,
    pub oci: bool,
    /// The build's remote caches: layers still only there keep their blobs when the
    /// encoding matches (nothing is fetched to name them).
    pub remote: Option<std::sync::Arc<crate::remote_cache::Session>>,
}

/// Write the config and manifest of an image into the store, through the image
/// crate's value-and-transform API ([`hoist_image::mutate`]): the engine decides each
/// layer's encoding, `mutate` writes the canonical documents.
pub(crate) fn assemble(input: &AssembleInput<'_>) -> Result<BuiltImage> {
    use hoist_image::mutate::{Image, Layer, MediaTypes};
    let store = input.store;
    let oci = input.oci;
    let mut layers = Vec::with_capacity(input.layers.len());
    for l in input.layers {
        let mut d = match &input.remote {
            Some(r) => crate::remote_cache::write::blob_in(r, l, &input.encoding)?,
            None => crate::variants::encode(input.cache_dir, store, l, &input.encoding)?,
        };
        crate::gc::touch_blob(store, &d.digest);
        d.annotations = None;
        layers.push(Layer::from_store(store, d, l.diff_id.clone()));
    }
    let mut config = input.config.clone();
    config.rootfs.diff_ids.clear();
    let family = if oci {
        MediaTypes::Oci
    } else {
        MediaTypes::Docker
    };
    let written = Image::from_parts(config, layers)?
        .with_media_types(family)
        .with_annotations(input.annotations)
        .write(store)
        .map_err(|e| match e {
            hoist_image::Error::Format(m) if m.contains("zstd") => {
                Error::Invalid("zstd layers need OCI media types (oci-mediatypes=true)".into())
            }
            other => other.into(),
        })?;
    crate::gc::touch_blob(store, &written.config.digest());
    crate::gc::touch_blob(store, &written.manifest.digest());
    Ok(BuiltImage {
        manifest: written.manifest.clone(),
        config: written.config.clone(),
        platform: written.platform.clone(),
        store: store.clone(),
        attestations: Vec::new(),
        recipe: Recipe {
            config: input.config.clone(),
            layers: input.layers.to_vec(),
            annotations: input.annotations.clone(),
            cache_dir: input.cache_dir.to_path_buf(),
            encoding: input.encoding,
            oci,
            remote: input.remote.clone(),
        },
    })
}

/// What a build made: one image, or (several `--platform`s) one image per platform and
/// the index that lists them, as `docker buildx build --platform a,b` makes.
#[derive(Debug, Clone)]
pub struct Built {
    /// One image per platform, in the order the platforms were given.
    pub images: Vec<BuiltImage>,
    /// The image index over `images`, when there are several (or attestations).
    pub index: Option<RawDocument>,
    /// The attestation manifests the index lists (BuildKit's layout, see
    /// [`hoist_attest::layout`]), one per image that has attestations.
    pub attestation_manifests: Vec<RawDocument>,
    /// Where every blob is.
    pub store: BlobStore,
    /// The index's and its entries' annotations (to make the index again).
    index_annotations: (BTreeMap<String, String>, BTreeMap<String, String>),
}

impl Built {
    /// The same build with its new layers in another encoding and/or other media types
    /// (cached diffs compressed again, nothing rebuilt; see [`BuiltImage::encoded`]).
    pub fn encoded(&self, encoding: Encoding, oci: bool) -> Result<Built> {
        let images = self
            .images
            .iter()
            .map(|i| i.encoded(encoding, oci))
            .collect::<Result<Vec<_>>>()?;
        if self.index.is_none() {
            return Ok(Built::single(images.into_iter().next().expect("one image")));
        }
        let (ia, da) = &self.index_annotations;
        Built::indexed(images, oci, ia, da)
    }

    /// One image, no index.
    pub fn single(image: BuiltImage) -> Built {
        Built {
            store: image.store.clone(),
            images: vec![image],
            index: None,
            attestation_manifests: Vec::new(),
            index_annotations: Default::default(),
        }
    }

    /// Several images under an index (OCI media types when `oci`, else a Docker manifest
    /// list), stored in the images' store. Entries carry each image's platform and
    /// `descriptor_annotations`; the index carries `index_annotations` (OCI only: a Docker
    /// manifest list has no annotations).
    pub fn indexed(
        images: Vec<BuiltImage>,
        oci: bool,
        index_annotations: &BTreeMap<String, String>,
        descriptor_annotations: &BTreeMap<String, String>,
    ) -> Result<Built> {
        let some = |a: &BTreeMap<String, String>| (oci && !a.is_empty()).then(|| a.clone());
        let store = images
            .first()
            .map(|i| i.store.clone())
            .ok_or_else(|| Error::Invalid("an index needs at least one image".into()))?;
        let mut manifests: Vec<hoist_image::Descriptor> = images
            .iter()
            .map(|i| {
                let mut d = i.manifest.descriptor();
                d.platform = Some(i.platform.clone());
                d.annotations = some(descriptor_annotations);
                d
            })
            .collect();
        // After every image, one attestation manifest per image that has attestations.
        let mut attestation_manifests = Vec::new();
        for i in &images {
            if i.attestations.is_empty() {
                continue;
            }
            if !oci {
                return Err(Error::Invalid(
                    "attestations need OCI media types (oci-mediatypes=true)".into(),
                ));
            }
            let (raw, entry) = hoist_attest::layout::attach(&store, &i.digest(), &i.attestations)
                .map_err(|e| Error::Invalid(format!("writing attestations: {e}")))?;
            crate::gc::touch_blob(&store, &raw.digest());
            manifests.push(entry);
            attestation_manifests.push(raw);
        }
        let mt = if oci {
            media_type::OCI_INDEX
        } else {
            media_type::DOCKER_MANIFEST_LIST
        };
        let index = hoist_image::Index {
            schema_version: 2,
            media_type: Some(mt.into()),
            artifact_type: None,
            manifests,
            subject: None,
            annotations: some(index_annotations),
        };
        let raw = RawDocument::from_value(mt, &index);
        store.put_bytes(&raw.bytes)?;
        crate::gc::touch_blob(&store, &raw.digest());
        Ok(Built {
            images,
            index: Some(raw),
            attestation_manifests,
            store,
            index_annotations: (index_annotations.clone(), descriptor_annotations.clone()),
        })
    }

    /// The root document: the index, or the one image's manifest.
    pub fn root(&self) -> &RawDocument {
        match &self.index {
            Some(i) => i,
            None => &self.images[0].manifest,
        }
    }

    /// The root's digest: what a registry reports for the pushed tag.
    pub fn digest(&self) -> Digest {
        self.root().digest()
    }

    /// The first platform's image (the only one without an index).
    pub fn first(&self) -> &BuiltImage {
        &self.images[0]
    }

    /// Every image's platform.
    pub fn platforms(&self) -> Vec<Platform> {
        self.images.iter().map(|i| i.platform.clone()).collect()
    }

    /// The whole result as a [`Source`] (an index source with its child manifests when
    /// there are several platforms).
    pub fn source(&self) -> hoist_image::StoreSource {
        let mut s = hoist_image::StoreSource::new(self.store.clone(), self.root().clone())
            .with_name("build result");
        if self.index.is_some() {
            for i in &self.images {
                s = s.with_manifest(i.manifest.clone());
            }
            for a in &self.attestation_manifests {
                s = s.with_manifest(a.clone());
            }
        }
        s
    }
}
