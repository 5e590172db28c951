//! A thorough check of an image from any [`Source`], run by tests against every
//! source and sink (in the spirit of go-containerregistry's `validate.Image`).
//!
//! For every manifest reachable from the root (every platform of an index):
//! - the manifest and its config parse, and every digest and size matches;
//! - the config lists one diff ID per layer and, in an index, declares the platform
//!   its index entry claims;
//! - every layer streams with the right digest and size, decompresses according to
//!   its media type, has the uncompressed digest the config says (its diff ID), and
//!   is a well-formed tar.
//!
//! Everything streams: memory does not grow with layer sizes.

use std::io::{self, Read};

use crate::docker_archive::DOCKER_LAYER_TAR;
use crate::media_type::{self, Compression};
use crate::sink::collect;
use crate::source::{document_media_type, read_verified, MAX_DOCUMENT_SIZE};
use crate::{open_verified, Error, Hasher, ImageConfig, Index, Manifest, Result, Source};

/// What [`validate`] checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidateReport {
    /// Image manifests checked.
    pub manifests: usize,
    /// Layers checked (a layer shared by several manifests counts once per manifest).
    pub layers: usize,
    /// Uncompressed layer bytes read.
    pub uncompressed_bytes: u64,
    /// Tar entries read.
    pub entries: u64,
}

/// Check every manifest, config and layer of `src` (see the module docs).
pub fn validate(src: &dyn Source) -> Result<ValidateReport> {
    let g = collect(src)?;
    let mut report = ValidateReport::default();
    // Platforms the indexes claim, by manifest digest.
    let mut claimed = std::collections::BTreeMap::new();
    for doc in &g.documents {
        let mt = document_media_type(doc)?;
        if media_type::is_index(&mt) {
            let index: Index = doc
                .parse()
                .map_err(|e| Error::json(format!("index in {}", src.name()), e))?;
            for m in index.manifests {
                if let Some(p) = m.platform {
                    claimed.insert(m.digest, p);
                }
            }
        }
    }
    for doc in &g.documents {
        let mt = document_media_type(doc)?;
        if !media_type::is_manifest(&mt) {
            continue;
        }
        let m: Manifest = doc
            .parse()
            .map_err(|e| Error::json(format!("manifest {}", doc.digest()), e))?;
        if m.schema_version != 2 {
            return Err(Error::Format(format!(
                "manifest {}: schemaVersion {}",
                doc.digest(),
                m.schema_version
            )));
        }
        let config_raw = read_verified(src, &m.config, MAX_DOCUMENT_SIZE)?;
        let is_image = m.config.media_type == media_type::OCI_CONFIG
            || m.config.media_type == media_type::DOCKER_CONFIG;
        if !is_image {
            // An artifact (attestation, signature): its blobs were verified by
            // digest when read; there is no file system to check.
            for l in &m.layers {
                drain(open_verified(src, l)?, &l.digest.to_string())?;
            }
            report.manifests += 1;
            continue;
        }
        let config: ImageConfig = serde_json::from_slice(&config_raw)
            .map_err(|e| Error::json(format!("config {}", m.config.digest), e))?;
        if let Some(p) = claimed.get(&doc.digest()) {
            if !p.matches(&config.platform()) && !config.platform().matches(p) {
                return Err(Error::Format(format!(
                    "manifest {}: the index says {p}, the config {}",
                    doc.digest(),
                    config.platform()
                )));
            }
        }
        if config.rootfs.diff_ids.len() != m.layers.len() {
            return Err(Error::Format(format!(
                "manifest {}: {} layers but {} diff IDs in the config",
                doc.digest(),
                m.layers.len(),
                config.rootfs.diff_ids.len()
            )));
        }
        for (l, diff_id) in m.layers.iter().zip(&config.rootfs.diff_ids) {
            let compression = if l.media_type == DOCKER_LAYER_TAR {
                Compression::None
            } else {
                media_type::layer_compression(&l.media_type).ok_or_else(|| {
                    Error::Format(format!(
                        "layer {}: unknown layer media type {:?}",
                        l.digest, l.media_type
                    ))
                })?
            };
            let what = format!("layer {}", l.digest);
            let mut blob = open_verified(src, l)?;
            let (got, count) = {
                let raw: Box<dyn Read + '_> = match compression {
                    Compression::None => Box::new(&mut blob),
                    Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(&mut blob)),
                    Compression::Zstd => Box::new(
                        zstd::stream::read::Decoder::new(&mut blob)
                            .map_err(|e| Error::stream(what.clone(), e))?,
                    ),
                };
                let mut hashing = HashingReader {
                    inner: raw,
                    hasher: Hasher::new(diff_id.algorithm()),
                    count: 0,
                };
                {
                    let mut archive = tar::Archive::new(&mut hashing);
                    for entry in archive
                        .entries()
                        .map_err(|e| Error::stream(what.clone(), e))?
                    {
                        let mut entry = entry.map_err(|e| Error::stream(what.clone(), e))?;
                        io::copy(&mut entry, &mut io::sink())
                            .map_err(|e| Error::stream(what.clone(), e))?;
                        report.entries += 1;
                    }
                }
                // The padding after the end-of-archive marker is part of the diff ID.
                io::copy(&mut hashing, &mut io::sink())
                    .map_err(|e| Error::stream(what.clone(), e))?;
                (hashing.hasher.finish(), hashing.count)
            };
            // Whatever the decompressor left unread still has to match the digest.
            drain(&mut blob, &what)?;
            if &got != diff_id {
                return Err(Error::DigestMismatch {
                    what: format!("diff ID of {what}"),
                    expected: diff_id.clone(),
                    actual: got,
                });
            }
            report.layers += 1;
            report.uncompressed_bytes += count;
        }
        report.manifests += 1;
    }
    if report.manifests == 0 {
        return Err(Error::Format(format!("{}: no image manifest", src.name())));
    }
    Ok(report)
}

fn drain(mut r: impl Read, what: &str) -> Result<()> {
    io::copy(&mut r, &mut io::sink()).map_err(|e| Error::stream(what.to_string(), e))?;
    Ok(())
}

struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
    count: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}
