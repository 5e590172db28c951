//! Reading docker-archives (`docker save` output), read in place through a [`TarIndex`].
//!
//! ```text
//! classic (docker < 25)              docker 25+
//!   manifest.json                      manifest.json      (Layers: blobs/sha256/<hex>)
//!   repositories                       repositories
//!   <config-hex>.json                  index.json, oci-layout
//!   <layer-id>/layer.tar  (plain tar,  blobs/sha256/<hex>  (config, manifests, layers)
//!     maybe a symlink to another
//!     layer's layer.tar)
//! ```
//!
//! `manifest.json` is a list of `{Config, RepoTags, Layers}`. When the archive also
//! carries an OCI `index.json` with a manifest for the selected config, that original
//! manifest is served unchanged (so the image keeps its digest). Otherwise a Docker
//! schema-2 manifest is synthesised, deterministically: the config's digest, and per
//! layer file its digest (taken from a `blobs/sha256/<hex>` name, from the config's
//! `diff_ids` for an uncompressed layer, or computed), size and compression, detected
//! from the content (plain tar, gzip or zstd).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde::Deserialize;

use crate::archive::TarIndex;
use crate::layout::{blob_path, parse_index, read_document, OCI_LAYOUT_FILE};
use crate::media_type::{self, Compression};
use crate::source::MAX_DOCUMENT_SIZE;
use crate::{
    Descriptor, Digest, Error, Hasher, ImageConfig, Manifest, RawDocument, Result, Source,
};

/// Media type of an uncompressed Docker layer (what skopeo and docker use for the
/// `layer.tar` files of a docker-archive); the same as [`media_type::DOCKER_LAYER_TAR`].
pub use crate::media_type::DOCKER_LAYER_TAR;

/// One entry of a docker-archive's `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerArchiveEntry {
    /// The config file's member name.
    pub config: String,
    /// `repo:tag` names (may be absent).
    #[serde(default)]
    pub repo_tags: Option<Vec<String>>,
    /// The layer files' member names, base first.
    pub layers: Vec<String>,
}

/// The compression of a layer stream, from its first bytes.
pub fn detect_compression(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// A `repo:tag` in its familiar form (`docker.io/library/` dropped, `:latest` added),
/// so `busybox`, `busybox:latest` and `docker.io/library/busybox:latest` compare equal.
pub fn familiar_name(name: &str) -> String {
    let n = name.strip_prefix("docker.io/").unwrap_or(name);
    let n = n.strip_prefix("library/").unwrap_or(n);
    let last = n.rsplit('/').next().unwrap_or(n);
    if last.contains(':') {
        n.to_string()
    } else {
        format!("{n}:latest")
    }
}

/// An image in a docker-archive (`docker-archive:FILE[:REPO:TAG|:@N]`).
#[derive(Debug, Clone)]
pub struct DockerArchiveSource {
    tar: TarIndex,
    reference: Option<String>,
    entry: DockerArchiveEntry,
    root: RawDocument,
    /// Blob digest → member name, for the members `manifest.json` names.
    members: BTreeMap<Digest, String>,
}

impl DockerArchiveSource {
    /// Index the archive at `path` and select the image `reference`: `repo:tag`
    /// (matched against `RepoTags`), `@N` (the N-th entry of `manifest.json`), or
    /// `None` for the only image.
    pub fn open(path: impl AsRef<Path>, reference: Option<&str>) -> Result<DockerArchiveSource> {
        let path = path.as_ref();
        let what = format!("docker-archive {}", path.display());
        let tar = TarIndex::open(path)?;
        if !tar.contains("manifest.json") {
            return Err(Error::Format(format!(
                "{what}: not a docker-archive (no manifest.json member)"
            )));
        }
        let bytes = tar.read_member("manifest.json", MAX_DOCUMENT_SIZE)?;
        let entries: Vec<DockerArchiveEntry> = serde_json::from_slice(&bytes)
            .map_err(|e| Error::json(format!("{what}: manifest.json"), e))?;
        let entry = select(&entries, reference, &what)?;

        let config_bytes = tar.read_member(&entry.config, MAX_DOCUMENT_SIZE)?;
        let config_digest = Digest::sha256(&config_bytes);
        let config: ImageConfig = serde_json::from_slice(&config_bytes)
            .map_err(|e| Error::json(format!("{what}: config {}", entry.config), e))?;
        if !config.rootfs.diff_ids.is_empty() && config.rootfs.diff_ids.len() != entry.layers.len()
        {
            return Err(Error::Format(format!(
                "{what}: the config lists {} layers, manifest.json {}",
                config.rootfs.diff_ids.len(),
                entry.layers.len()
            )));
        }
        let mut members = BTreeMap::new();
        members.insert(config_digest.clone(), entry.config.clone());

        let root = match original_manifest(&tar, &config_digest, &entry.layers, &what)? {
            Some(doc) => {
                let m: Manifest = doc
                    .parse()
                    .map_err(|e| Error::json(format!("{what}: manifest"), e))?;
                for (l, name) in m.layers.iter().zip(&entry.layers) {
                    members
                        .entry(l.digest.clone())
                        .or_insert_with(|| name.clone());
                }
                doc
            }
            None => {
                let mut layers = Vec::with_capacity(entry.layers.len());
                let mut oci = false;
                for (i, name) in entry.layers.iter().enumerate() {
                    let size = tar.size(name)?;
                    let mut head = [0u8; 8];
                    let n = read_head(&tar, name, &mut head)?;
                    let compression = detect_compression(&head[..n]);
                    let digest = match (digest_from_name(name), compression) {
                        (Some(d), _) => d,
                        (None, Compression::None) if !config.rootfs.diff_ids.is_empty() => {
                            config.rootfs.diff_ids[i].clone()
                        }
                        (None, _) => hash_member(&tar, name)?,
                    };
                    let mt = match compression {
                        Compression::None => DOCKER_LAYER_TAR,
                        Compression::Gzip => media_type::DOCKER_LAYER_GZIP,
                        Compression::Zstd => {
                            oci = true;
                            media_type::OCI_LAYER_ZSTD
                        }
                    };
                    members
                        .entry(digest.clone())
                        .or_insert_with(|| name.clone());
                    layers.push(Descriptor::new(mt, digest, size));
                }
                // Docker's schema 2 has no zstd layer type: describe such an image as OCI.
                let (manifest_mt, config_mt) = if oci {
                    for l in &mut layers {
                        l.media_type = match l.media_type.as_str() {
                            DOCKER_LAYER_TAR => media_type::OCI_LAYER_TAR.into(),
                            media_type::DOCKER_LAYER_GZIP => media_type::OCI_LAYER_GZIP.into(),
                            other => other.to_string(),
                        };
                    }
                    (media_type::OCI_MANIFEST, media_type::OCI_CONFIG)
                } else {
                    (media_type::DOCKER_MANIFEST, media_type::DOCKER_CONFIG)
                };
                let manifest = Manifest {
                    schema_version: 2,
                    media_type: Some(manifest_mt.into()),
                    artifact_type: None,
                    config: Descriptor::new(config_mt, config_digest, config_bytes.len() as u64),
                    layers,
                    subject: None,
                    annotations: None,
                };
                RawDocument::from_value(manifest_mt, &manifest)
            }
        };
        Ok(DockerArchiveSource {
            tar,
            reference: reference.map(str::to_string),
            entry,
            root,
            members,
        })
    }

    /// The selected `manifest.json` entry.
    pub fn entry(&self) -> &DockerArchiveEntry {
        &self.entry
    }

    /// The selected image's `RepoTags`.
    pub fn repo_tags(&self) -> &[String] {
        self.entry.repo_tags.as_deref().unwrap_or(&[])
    }

    fn member_for(&self, digest: &Digest) -> Result<String> {
        if let Some(m) = self.members.get(digest) {
            return Ok(m.clone());
        }
        let p = blob_path(digest);
        if self.tar.contains(&p) {
            return Ok(p);
        }
        Err(Error::NotFound(format!("blob {digest} in {}", self.name())))
    }
}

fn select(
    entries: &[DockerArchiveEntry],
    reference: Option<&str>,
    what: &str,
) -> Result<DockerArchiveEntry> {
    let available = || {
        let tags: Vec<String> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| match e.repo_tags.as_deref() {
                Some(t) if !t.is_empty() => format!("@{i} ({})", t.join(", ")),
                _ => format!("@{i}"),
            })
            .collect();
        if tags.is_empty() {
            "none".into()
        } else {
            tags.join(", ")
        }
    };
    match reference {
        None => match entries {
            [one] => Ok(one.clone()),
            [] => Err(Error::NotFound(format!(
                "{what}: manifest.json lists no images"
            ))),
            _ => Err(Error::Format(format!(
                "{what} holds {} images; name one (available: {})",
                entries.len(),
                available()
            ))),
        },
        Some(r) => {
            let found = if let Some(n) = r.strip_prefix('@') {
                let n: usize = n
                    .parse()
                    .map_err(|_| Error::Format(format!("{what}: invalid image index {r:?}")))?;
                entries.get(n)
            } else {
                let want = familiar_name(r);
                entries.iter().find(|e| {
                    e.repo_tags
                        .iter()
                        .flatten()
                        .any(|t| familiar_name(t) == want)
                })
            };
            found.cloned().ok_or_else(|| {
                Error::NotFound(format!(
                    "image {r:?} in {what} (available: {})",
                    available()
                ))
            })
        }
    }
}

/// `blobs/sha256/<hex>` → the digest.
fn digest_from_name(name: &str) -> Option<Digest> {
    let rest = name.strip_prefix("blobs/")?;
    let (alg, hex) = rest.split_once('/')?;
    Digest::parse(&format!("{alg}:{hex}")).ok()
}

fn read_head(tar: &TarIndex, name: &str, buf: &mut [u8]) -> Result<usize> {
    let mut r = tar.open_member(name)?;
    let mut n = 0;
    while n < buf.len() {
        let k = r
            .read(&mut buf[n..])
            .map_err(|e| Error::io(tar.path(), e))?;
        if k == 0 {
            break;
        }
        n += k;
    }
    Ok(n)
}

fn hash_member(tar: &TarIndex, name: &str) -> Result<Digest> {
    let mut r = tar.open_member(name)?;
    let mut h = Hasher::sha256();
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = r.read(&mut buf).map_err(|e| Error::io(tar.path(), e))?;
        if n == 0 {
            return Ok(h.finish());
        }
        h.update(&buf[..n]);
    }
}

/// The OCI manifest docker 25+ stores beside `manifest.json` for this config, if any
/// (looking through nested indexes, as the containerd image store saves them).
fn original_manifest(
    tar: &TarIndex,
    config: &Digest,
    layers: &[String],
    what: &str,
) -> Result<Option<RawDocument>> {
    if !tar.contains("index.json") || !tar.contains(OCI_LAYOUT_FILE) {
        return Ok(None);
    }
    let bytes = tar.read_member("index.json", MAX_DOCUMENT_SIZE)?;
    let index = parse_index(&bytes, &format!("{what}: index.json"))?;
    let mut queue: Vec<(Descriptor, usize)> = index.manifests.into_iter().map(|d| (d, 0)).collect();
    let mut visited = 0;
    while let Some((d, depth)) = queue.pop() {
        visited += 1;
        if visited > 1000 {
            break;
        }
        let is_index = media_type::is_index(&d.media_type);
        if !(media_type::is_manifest(&d.media_type) || is_index && depth < 2) {
            continue;
        }
        // Only what the archive holds: a saved index may name other platforms.
        let Ok(member) = tar.open_member(&blob_path(&d.digest)) else {
            continue;
        };
        let doc = read_document(member, &d, what)?;
        if is_index {
            if let Ok(child) = doc.parse::<crate::Index>() {
                queue.extend(child.manifests.into_iter().map(|c| (c, depth + 1)));
            }
            continue;
        }
        let Ok(m) = doc.parse::<Manifest>() else {
            continue;
        };
        // The same config may come with differently compressed layers: the layer
        // files manifest.json names must be this manifest's.
        let same_layers = m.layers.len() == layers.len()
            && m.layers
                .iter()
                .zip(layers)
                .all(|(l, name)| digest_from_name(name).is_none_or(|d| d == l.digest));
        if &m.config.digest == config && same_layers {
            return Ok(Some(doc));
        }
    }
    Ok(None)
}

impl Source for DockerArchiveSource {
    fn name(&self) -> String {
        match &self.reference {
            Some(r) => format!("docker-archive:{}:{r}", self.tar.path().display()),
            None => format!("docker-archive:{}", self.tar.path().display()),
        }
    }

    fn root(&self) -> Result<RawDocument> {
        Ok(self.root.clone())
    }

    fn manifest(&self, desc: &Descriptor) -> Result<RawDocument> {
        if desc.digest == self.root.digest() {
            return Ok(self.root.clone());
        }
        Err(Error::NotFound(format!(
            "manifest {} in {}",
            desc.digest,
            self.name()
        )))
    }

    fn blob(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send + '_>> {
        let m = self.member_for(&desc.digest)?;
        Ok(Box::new(self.tar.open_member(&m)?))
    }

    fn has_blob(&self, desc: &Descriptor) -> Result<bool> {
        Ok(self.member_for(&desc.digest).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_magic() {
        assert_eq!(familiar_name("busybox"), "busybox:latest");
        assert_eq!(familiar_name("docker.io/library/busybox:1"), "busybox:1");
        assert_eq!(
            familiar_name("localhost:5000/a/b"),
            "localhost:5000/a/b:latest"
        );
        assert_eq!(detect_compression(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(
            detect_compression(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(detect_compression(b"etc/"), Compression::None);
        let d = Digest::sha256(b"");
        assert_eq!(
            digest_from_name(&format!("blobs/sha256/{}", d.hex())),
            Some(d)
        );
        assert_eq!(digest_from_name("abc/layer.tar"), None);
    }
}

#[cfg(test)]
mod archive_tests {
    use super::*;
    use std::io::Write;

    /// A valid one-layer docker-archive with a gzip layer, as bytes.
    fn archive() -> Vec<u8> {
        let mut layer = Vec::new();
        {
            let mut b = tar::Builder::new(&mut layer);
            let mut h = tar::Header::new_ustar();
            h.set_size(5);
            h.set_mode(0o644);
            b.append_data(&mut h, "etc/hello", &b"hello"[..]).unwrap();
            b.finish().unwrap();
        }
        let diff_id = Digest::sha256(&layer);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&layer).unwrap();
        let gz = gz.finish().unwrap();
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}}}}"#
        );
        let mut b = tar::Builder::new(Vec::new());
        let mut add = |name: &str, data: &[u8]| {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, data).unwrap();
        };
        add("c.json", config.as_bytes());
        add("l/layer.tar", &gz);
        add(
            "manifest.json",
            br#"[{"Config":"c.json","RepoTags":["a:b"],"Layers":["l/layer.tar"]}]"#,
        );
        b.into_inner().unwrap()
    }

    #[test]
    fn docker25_layout_with_nested_index_keeps_the_original_manifest() {
        use crate::{Index, Platform};
        let layer = b"not really a tar, never unpacked here".to_vec();
        let ld = Digest::sha256(&layer);
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{ld}"]}}}}"#
        );
        let cd = Digest::sha256(config.as_bytes());
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(media_type::OCI_MANIFEST.into()),
            artifact_type: None,
            config: Descriptor::new(media_type::OCI_CONFIG, cd.clone(), config.len() as u64),
            layers: vec![Descriptor::new(
                media_type::OCI_LAYER_TAR,
                ld.clone(),
                layer.len() as u64,
            )],
            subject: None,
            annotations: Some([("x".to_string(), "y".to_string())].into()),
        };
        // Not canonical JSON: the original bytes must be kept, not re-serialised.
        let mbytes = serde_json::to_vec_pretty(&manifest).unwrap();
        let md = Digest::sha256(&mbytes);
        let mut mdesc = Descriptor::new(media_type::OCI_MANIFEST, md.clone(), mbytes.len() as u64);
        mdesc.platform = Platform::parse("linux/amd64");
        let mut other = Descriptor::new(media_type::OCI_MANIFEST, Digest::sha256(b"absent"), 6);
        other.platform = Platform::parse("linux/arm64");
        let child = Index {
            schema_version: 2,
            media_type: Some(media_type::OCI_INDEX.into()),
            artifact_type: None,
            manifests: vec![other, mdesc],
            subject: None,
            annotations: None,
        };
        let cbytes = serde_json::to_vec(&child).unwrap();
        let top = Index {
            manifests: vec![Descriptor::new(
                media_type::OCI_INDEX,
                Digest::sha256(&cbytes),
                cbytes.len() as u64,
            )],
            ..child.clone()
        };
        let mut b = tar::Builder::new(Vec::new());
        let mut add = |name: &str, data: &[u8]| {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, data).unwrap();
        };
        let bp = |d: &Digest| format!("blobs/sha256/{}", d.hex());
        add(&bp(&cd), config.as_bytes());
        add(&bp(&ld), &layer);
        add(&bp(&md), &mbytes);
        add(&bp(&Digest::sha256(&cbytes)), &cbytes);
        add("index.json", &serde_json::to_vec(&top).unwrap());
        add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
        let mj = format!(
            r#"[{{"Config":"{}","RepoTags":["a:b"],"Layers":["{}"]}}]"#,
            bp(&cd),
            bp(&ld)
        );
        add("manifest.json", mj.as_bytes());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d25.tar");
        std::fs::write(&p, b.into_inner().unwrap()).unwrap();
        let src = DockerArchiveSource::open(&p, Some("a:b")).unwrap();
        assert_eq!(src.root().unwrap().bytes, mbytes);
        let mut out = Vec::new();
        crate::open_verified(&src, &manifest.layers[0])
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, layer);
    }

    fn read_everything(path: &Path) -> Result<()> {
        let src = DockerArchiveSource::open(path, None)?;
        let img = crate::resolve(&src, &crate::Platform::parse("linux/amd64").unwrap())?;
        for l in &img.manifest.layers {
            let mut r = crate::open_verified(&src, l)?;
            std::io::copy(&mut r, &mut std::io::sink())
                .map_err(|e| Error::stream("reading layer", e))?;
        }
        Ok(())
    }

    #[test]
    fn corrupted_archives_fail_cleanly() {
        let good = archive();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.tar");
        std::fs::write(&p, &good).unwrap();
        read_everything(&p).unwrap();
        let src = DockerArchiveSource::open(&p, None).unwrap();
        let m: Manifest = src.root().unwrap().parse().unwrap();
        assert_eq!(m.layers[0].media_type, media_type::DOCKER_LAYER_GZIP);

        // Flip bytes and truncate at pseudo-random places: every outcome is Ok or a
        // clean error, never a panic, never unverified content.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut failures = 0;
        for i in 0..400 {
            let mut bad = good.clone();
            if i % 4 == 0 {
                bad.truncate((next() % good.len() as u64) as usize);
            } else {
                for _ in 0..1 + next() % 4 {
                    let at = (next() % bad.len() as u64) as usize;
                    bad[at] ^= 1 << (next() % 8);
                }
            }
            std::fs::write(&p, &bad).unwrap();
            if read_everything(&p).is_err() {
                failures += 1;
            }
        }
        // Most corruptions hit content that is verified or parsed.
        assert!(
            failures > 100,
            "only {failures} of 400 corruptions were noticed"
        );
    }
}
