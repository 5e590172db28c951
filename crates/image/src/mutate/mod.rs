//! Assembling images as values: the image-level API, in the spirit of
//! go-containerregistry's `pkg/v1/mutate`, `empty` and `partial`.
//!
//! An [`Image`] is a config and ordered [`Layer`]s. Each layer knows its `digest`
//! (compressed blob), `diff_id` (uncompressed tar), size and media type, and opens
//! either stream; its blob stays where it is (a [`BlobStore`](crate::BlobStore), or
//! any [`Source`](crate::Source): registry, layout, archive) until a sink needs it.
//!
//! ```text
//!  Image::empty(platform) ─┐
//!  Image::from_source(src) ┴─▶ append(Addendum{layer, history}) ─▶ with_env / with_entrypoint / …
//!                              with_time / with_media_types / with_compression / with_annotation
//!                                 │
//!                                 ▼ write(store): config + manifest (canonical JSON)
//!                           WrittenImage ── is a Source ──▶ write_oci_layout / archives / push
//!                           WrittenIndex (several platforms) ─┘
//! ```
//!
//! - Transforms take the image and return the changed one; they compose in any order.
//! - Layers are made from a directory ([`Layer::from_dir`]), a list of entries
//!   ([`Layer::from_entries`]) or a tar stream ([`Layer::from_tar`]); both digests are
//!   computed while the bytes stream. Compression is chosen per layer and can be
//!   changed later ([`Image::with_compression`]): the compressed form is a function
//!   of `(diff_id, algorithm, level)`.
//! - Reproducible: [`reproducible_time`] is `SOURCE_DATE_EPOCH` or 0, layers get
//!   owner 0:0 and mtime 0 by default, documents are canonical JSON.
//!
//! Assembling an image without a Dockerfile:
//!
//! ```
//! use hoist_image::mutate::{reproducible_time, Image, Layer};
//! use hoist_image::{layer::WriteOptions, sink::write_oci_layout, BlobStore, Platform};
//! # let tmp = tempfile::tempdir()?;
//! # let app = tmp.path().join("app"); std::fs::write(&app, "#!/bin/sh\necho hi\n")?;
//! let store = BlobStore::new(tmp.path().join("blobs"))?;
//! let layer = Layer::from_dir(&store, &app, "usr/local/bin/app", &WriteOptions::default())?;
//! let image = Image::empty(&Platform::parse("linux/amd64").unwrap())
//!     .with_time(reproducible_time())
//!     .append_layer(layer, "COPY app /usr/local/bin/app")
//!     .with_entrypoint(vec!["/usr/local/bin/app".into()])
//!     .write(&store)?;
//! write_oci_layout(&image, &tmp.path().join("out"), Some("latest"))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod append;
mod canonical;
mod config;
mod image;
mod layer;
mod recipe;
mod time;
mod write;

#[cfg(test)]
mod tests;

pub use append::Addendum;
pub use canonical::{index_media_type, layer_media_type, manifest_media_types, DOCKER_LAYER_TAR};
pub use image::{Image, MediaTypes, DEFAULT_PATH_ENV};
pub use layer::{sorted_entries, Layer};
pub use recipe::{AddSpec, Recipe};
pub use time::{reproducible_time, rfc3339, source_date_epoch};
pub use write::{WrittenImage, WrittenIndex};
