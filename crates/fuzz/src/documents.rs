//! The image documents: manifests, indexes, configs, descriptors, platforms and a
//! docker-archive's `manifest.json`, as they arrive from registries and archives.
//!
//! The input is taken as JSON and parsed as each type; whatever parses must reach a
//! fixed point in one step of canonical serialisation (serialise, parse, serialise
//! again: the same bytes), so a document hoist rewrites (a config it edits, a
//! manifest it synthesises) is stable. The media-type probe and platform selection
//! run on every input; digests, platforms and image references on each line of text.

use hoist_image::docker_archive::DockerArchiveEntry;
use hoist_image::source::{document_media_type, select_platform};
use hoist_image::{
    media_type, to_canonical_json, Descriptor, Digest, ImageConfig, ImageRef, Index, Manifest,
    Platform, RawDocument,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The target body (see the module docs).
pub fn documents(data: &[u8]) {
    fixed_point::<Manifest>(data);
    fixed_point::<ImageConfig>(data);
    fixed_point::<Descriptor>(data);
    fixed_point::<Platform>(data);
    fixed_point::<Vec<DockerArchiveEntry>>(data);
    if let Some(index) = fixed_point::<Index>(data) {
        for p in [
            "linux/amd64",
            "linux/arm64/v8",
            "linux/arm/v7",
            "windows/amd64",
        ] {
            let _ = select_platform(&index, &Platform::parse(p).expect("platform"));
        }
    }
    for mt in ["", media_type::OCI_INDEX, media_type::DOCKER_MANIFEST] {
        let _ = document_media_type(&RawDocument::new(mt, data.to_vec()));
    }
    if let Ok(text) = std::str::from_utf8(data) {
        for line in text.lines().take(64) {
            if let Ok(d) = Digest::parse(line) {
                assert_eq!(
                    Digest::parse(&d.to_string()).ok(),
                    Some(d.clone()),
                    "{line:?}"
                );
            }
            if let Some(p) = Platform::parse(line) {
                let shown = p.to_string();
                let again = Platform::parse(&shown)
                    .unwrap_or_else(|| panic!("{line:?} shows as {shown:?}, which does not parse"));
                assert_eq!(again.to_string(), shown, "{line:?}");
            }
            let _ = ImageRef::parse(line);
        }
    }
}

/// Parse `data` as `T`; when it parses, check that canonical JSON is a fixed point.
fn fixed_point<T: Serialize + DeserializeOwned>(data: &[u8]) -> Option<T> {
    let v: T = serde_json::from_slice(data).ok()?;
    let once = to_canonical_json(&v);
    let back: T = serde_json::from_slice(&once).unwrap_or_else(|e| {
        panic!(
            "{}: canonical JSON does not parse back: {e}\n{}",
            std::any::type_name::<T>(),
            String::from_utf8_lossy(&once)
        )
    });
    let twice = to_canonical_json(&back);
    assert_eq!(
        String::from_utf8_lossy(&once),
        String::from_utf8_lossy(&twice),
        "{}: canonical JSON is not a fixed point",
        std::any::type_name::<T>()
    );
    Some(v)
}
