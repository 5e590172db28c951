//! Exporting: the steps an export carries (mode=min: the final image's chain;
//! mode=max: every step), their layers in the export's encoding and their file lists,
//! written as one artifact — pushed (manifest last, so an interrupted export leaves
//! the previous ref as it was) or written as an OCI layout (replaced atomically).
//!
//! An export holds only this build's steps, so entries the build did not use are
//! dropped from the ref: the cache stays bounded by what one build needs.

use std::collections::{BTreeMap, HashMap, HashSet};

use hoist_image::media_type;
use hoist_image::{Descriptor, Manifest, RawDocument, StoreSource};

use super::format::{self, CacheConfig, StepEntry};
use super::session::{reg_err, LazySource, Seen, Session};
use super::spec::{CacheExport, ExportTarget, Mode};
use crate::error::{Error, Result};
use crate::key::Key;
use crate::layers::{self, LayerRef};
use crate::progress::{Event, Progress};
use crate::variants::Encoding;

/// The steps of `seen` an export of `mode` carries, with their results.
pub(crate) fn select(seen: &HashMap<Key, Seen>, finals: &[Key], mode: Mode) -> BTreeMap<Key, Seen> {
    let mut out = BTreeMap::new();
    match mode {
        Mode::Max => {
            for (k, s) in seen {
                if s.result.is_some() {
                    out.insert(*k, s.clone());
                }
            }
        }
        Mode::Min => {
            for f in finals {
                let mut k = *f;
                let mut guard = HashSet::new();
                while let Some(s) = seen.get(&k) {
                    if !guard.insert(k) {
                        break;
                    }
                    if s.result.is_some() {
                        out.insert(k, s.clone());
                    }
                    k = s.parent;
                }
            }
        }
    }
    out
}

/// What one layer step becomes in the artifact.
struct Parts {
    layers: Vec<Descriptor>,
    positions: HashMap<hoist_image::Digest, usize>,
}

impl Parts {
    fn add(&mut self, d: Descriptor) -> usize {
        if let Some(i) = self.positions.get(&d.digest) {
            return *i;
        }
        let mut d = d;
        d.annotations = None;
        self.layers.push(d.clone());
        self.positions.insert(d.digest, self.layers.len() - 1);
        self.layers.len() - 1
    }
}

/// The blob of `layer` in `enc`, fetching a lazily imported blob only when it must be
/// re-encoded.
pub(crate) fn blob_in(session: &Session, layer: &LayerRef, enc: &Encoding) -> Result<Descriptor> {
    if let Some(d) = session.encoded_as(layer, enc.compression, enc.effective_level()) {
        return Ok(d);
    }
    session.ensure(&layer.desc)?;
    crate::variants::encode(&session.cache_dir, &session.store, layer, enc)
}

/// The file list of a layer as a blob in the store.
fn index_blob(
    session: &Session,
    layer: &LayerRef,
    known: Option<&Descriptor>,
) -> Result<Descriptor> {
    if let Some(d) = known {
        if session.store.has_descriptor(d) {
            return Ok(d.clone());
        }
    }
    let index_dir = session.cache_dir.join("index");
    let idx = match std::fs::read(index_dir.join(layer.diff_id.hex())) {
        Ok(b) => serde_json::from_slice(&b).ok(),
        Err(_) => None,
    };
    let idx: Vec<crate::fsview::IndexEntry> = match idx {
        Some(i) => i,
        None => {
            session.ensure(&layer.desc)?;
            layers::layer_index(&session.store, layer, &index_dir)?
        }
    };
    let bytes = serde_json::to_vec(&idx)
        .map_err(|e| Error::Invalid(format!("serialising a layer file list: {e}")))?;
    let digest = session.store.put_bytes(&bytes)?;
    Ok(Descriptor::new(
        format::INDEX_MEDIA_TYPE,
        digest,
        bytes.len() as u64,
    ))
}

/// The artifact for `spec`: its manifest (in the store, with its config and file lists).
pub(crate) fn artifact(
    session: &Session,
    spec: &CacheExport,
    build_enc: Encoding,
) -> Result<RawDocument> {
    let seen = session.seen.lock().expect("poisoned").clone();
    let finals = session.finals.lock().expect("poisoned").clone();
    let chosen = select(&seen, &finals, spec.mode);
    let enc = Encoding {
        compression: spec.compression.unwrap_or(build_enc.compression),
        level: if spec.compression.is_some() {
            spec.compression_level
        } else {
            build_enc.level
        },
        force: false,
    };
    let mut parts = Parts {
        layers: Vec::new(),
        positions: HashMap::new(),
    };
    let mut config = CacheConfig {
        version: 1,
        ..Default::default()
    };
    for (k, s) in &chosen {
        let mut e = StepEntry::default();
        if let Some(Some(l)) = &s.result {
            let blob = blob_in(session, l, &enc)?;
            let index = index_blob(session, l, s.index.as_ref())?;
            e.layer = Some(parts.add(blob.clone()));
            e.index = Some(parts.add(index));
            e.diff_id = Some(l.diff_id.to_string());
            e.compression = Some(
                match media_type::layer_compression(&blob.media_type) {
                    Some(hoist_image::media_type::Compression::Zstd) => "zstd",
                    Some(hoist_image::media_type::Compression::None) => "uncompressed",
                    _ => "gzip",
                }
                .to_string(),
            );
            e.level = Some(enc.effective_level());
        }
        config.steps.insert(hex::encode(k), e);
    }
    let keys: HashSet<String> = config.steps.keys().cloned().collect();
    for (a, k) in session.aliases.lock().expect("poisoned").iter() {
        let k = hex::encode(k);
        if keys.contains(&k) {
            config.aliases.insert(hex::encode(a), k);
        }
    }
    let config_bytes = hoist_image::to_canonical_json(&config);
    let config_digest = session.store.put_bytes(&config_bytes)?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(media_type::OCI_MANIFEST.to_string()),
        artifact_type: Some(format::ARTIFACT_TYPE.to_string()),
        config: Descriptor::new(
            format::CONFIG_MEDIA_TYPE,
            config_digest,
            config_bytes.len() as u64,
        ),
        layers: parts.layers,
        subject: None,
        annotations: None,
    };
    let bytes = hoist_image::to_canonical_json(&manifest);
    session.store.put_bytes(&bytes)?;
    Ok(RawDocument::new(media_type::OCI_MANIFEST, bytes))
}

/// Write every registry and local `--cache-to` (inline ones are in the image config).
/// `pushed` are the names the image was just pushed to (mount sources).
pub fn export_all(
    session: &Session,
    build_enc: Encoding,
    pushed: &[String],
    progress: &dyn Progress,
) -> Result<()> {
    for spec in &session.exports {
        if spec.target == ExportTarget::Inline {
            continue;
        }
        if crate::interrupted() {
            return Err(Error::Interrupted);
        }
        let r = export_one(session, spec, build_enc, pushed, progress);
        match r {
            Ok(()) => {}
            Err(e) if spec.ignore_error => progress.event(Event::Warning(&format!(
                "--cache-to {}: {} (ignored: ignore-error=true)",
                spec.spec,
                hoist_image::chain_text(&e)
            ))),
            Err(e) => {
                return Err(Error::Invalid(format!(
                    "--cache-to {}: {}",
                    spec.spec,
                    hoist_image::chain_text(&e)
                )))
            }
        }
    }
    Ok(())
}

fn export_one(
    session: &Session,
    spec: &CacheExport,
    build_enc: Encoding,
    pushed: &[String],
    progress: &dyn Progress,
) -> Result<()> {
    progress.event(Event::Info(&format!(
        "exporting build cache ({})",
        spec.spec
    )));
    let doc = artifact(session, spec, build_enc)?;
    let m: Manifest = doc
        .parse()
        .map_err(|e| Error::Invalid(format!("the cache manifest: {e}")))?;
    let steps = m.layers.len();
    let src = StoreSource::new(session.store.clone(), doc).with_name("build cache");
    let lazy = LazySource {
        inner: &src,
        session,
    };
    match &spec.target {
        ExportTarget::Registry(r) => {
            let dest = crate::resolver::registry_reference(r)?;
            let mut mount_from = Vec::new();
            for m in session.mount_sources().iter().chain(pushed) {
                if let Ok(r) = crate::resolver::registry_reference(m) {
                    mount_from.push(r);
                }
            }
            let opts = hoist_registry::PushOptions {
                mount_from,
                cache: Some(session.store.clone()),
                always_check_blobs: false,
            };
            let report = session
                .client()?
                .push(&lazy, std::slice::from_ref(&dest), &opts)
                .map_err(reg_err)?;
            progress.event(Event::Info(&format!(
                "exported build cache to {dest} ({steps} blobs: {} uploaded, {} mounted, {} \
                 already there)",
                report.uploaded, report.mounted, report.skipped
            )));
        }
        ExportTarget::Local(dir) => {
            crate::export::create_parent_dir(dir)?;
            let out = hoist_image::AtomicDir::create(dir)?;
            hoist_image::sink::write_oci_layout(&lazy, out.path(), Some("latest"))?;
            out.commit()?;
            progress.event(Event::Info(&format!(
                "exported build cache to {} ({steps} blobs)",
                dir.display()
            )));
        }
        ExportTarget::Inline => {}
    }
    Ok(())
}
