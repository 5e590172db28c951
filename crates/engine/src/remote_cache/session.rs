//! One build's use of remote caches: the imported caches (looked up by step key, blobs
//! fetched lazily and verified), and the record of every step the build ran or reused
//! (what an export writes).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use hoist_image::media_type::Compression;
use hoist_image::{BlobStore, Descriptor, Digest, Source};
use hoist_registry::{Client, ClientConfig};

use super::import::{self, Imported, RemoteStep};
use super::spec::{CacheExport, CacheImport, ImportSource};
use crate::error::{Error, Result};
use crate::fsview::IndexEntry;
use crate::key::Key;
use crate::layers::LayerRef;
use crate::options::BuildOptions;
use crate::progress::{Event, Progress};

/// A step the build ran or reused.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    /// The key it was chained on.
    pub parent: Key,
    /// `None`: a metadata step (ENV, LABEL…: only chained, nothing to cache);
    /// `Some(None)`: a cached step that made no layer; `Some(Some(l))`: its layer.
    pub result: Option<Option<LayerRef>>,
    /// The file list blob of its layer, when it came from an imported cache.
    pub index: Option<Descriptor>,
}

/// The remote caches of one build (all its platforms).
pub struct Session {
    pub(crate) exports: Vec<CacheExport>,
    pub(crate) imports: Vec<Imported>,
    config: ClientConfig,
    client: OnceLock<std::result::Result<Client, String>>,
    pub(crate) store: BlobStore,
    pub(crate) cache_dir: std::path::PathBuf,
    /// Step key → what the build did.
    pub(crate) seen: Mutex<HashMap<Key, Seen>>,
    /// COPY --from aliases recorded by this build.
    pub(crate) aliases: Mutex<HashMap<Key, Key>>,
    /// Blobs known to be in an imported cache (digest → import), not necessarily local.
    lazy: Mutex<HashMap<Digest, (usize, Descriptor)>>,
    /// The final stage's key of each platform built.
    pub(crate) finals: Mutex<Vec<Key>>,
    hits: AtomicU64,
    lists: AtomicU64,
    fetched: AtomicU64,
    fetched_bytes: AtomicU64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("exports", &self.exports)
            .field("imports", &self.imports.len())
            .finish()
    }
}

/// Turn a registry error into an engine error.
pub(crate) fn reg_err(e: hoist_registry::Error) -> Error {
    Error::Image(e.into())
}

impl Session {
    /// Open the caches `opts.cache_from` names (manifest and config only) for a build
    /// that also exports to `opts.cache_to`. `None` when neither is given. A cache that
    /// cannot be read is a warning (an error with `strict=true`).
    pub fn open(opts: &BuildOptions, progress: &dyn Progress) -> Result<Option<Session>> {
        if opts.cache_from.is_empty() && opts.cache_to.is_empty() {
            return Ok(None);
        }
        let mut config = opts.registry.clone();
        config.progress = progress.transfers();
        let s = Session {
            exports: opts.cache_to.clone(),
            imports: Vec::new(),
            config,
            client: OnceLock::new(),
            store: BlobStore::new(opts.cache_dir.join("blobs"))?,
            cache_dir: opts.cache_dir.clone(),
            seen: Mutex::default(),
            aliases: Mutex::default(),
            lazy: Mutex::default(),
            finals: Mutex::default(),
            hits: AtomicU64::new(0),
            lists: AtomicU64::new(0),
            fetched: AtomicU64::new(0),
            fetched_bytes: AtomicU64::new(0),
        };
        let mut s = s;
        if opts.no_cache && !opts.cache_from.is_empty() {
            progress.event(Event::Info("--no-cache: --cache-from is not read"));
            return Ok(Some(s));
        }
        for spec in &opts.cache_from {
            match s.read(spec) {
                Ok(imp) => {
                    progress.event(Event::Info(&format!(
                        "--cache-from {}: {} cached steps",
                        spec.spec,
                        imp.steps.len()
                    )));
                    s.imports.push(imp);
                }
                Err(e) if spec.strict => {
                    return Err(Error::Invalid(format!(
                        "--cache-from {}: {}",
                        spec.spec,
                        hoist_image::chain_text(&e)
                    )))
                }
                Err(e) => progress.event(Event::Warning(&format!(
                    "--cache-from {}: {}; building without it",
                    spec.spec,
                    hoist_image::chain_text(&e)
                ))),
            }
        }
        Ok(Some(s))
    }

    /// The registry client (created on first use, with the build's credentials).
    pub(crate) fn client(&self) -> Result<&Client> {
        self.client
            .get_or_init(|| {
                Client::new(self.config.clone()).map_err(|e| hoist_image::chain_text(&e))
            })
            .as_ref()
            .map_err(|e| Error::Invalid(format!("registry client: {e}")))
    }

    fn read(&self, spec: &CacheImport) -> Result<Imported> {
        match &spec.source {
            ImportSource::Registry(r) => {
                let r = crate::resolver::registry_reference(r)?;
                let src = self.client()?.source(&r);
                import::read(&spec.spec, Box::new(src), Some(r))
            }
            ImportSource::Local(dir) => {
                let src = hoist_image::OciLayoutSource::open(dir, Some("latest"))?;
                import::read(&spec.spec, Box::new(src), None)
            }
        }
    }

    /// The first imported result of `key`.
    pub(crate) fn lookup(&self, key: &Key) -> Option<(usize, RemoteStep)> {
        let hex = hex::encode(key);
        self.imports
            .iter()
            .enumerate()
            .find_map(|(i, imp)| imp.steps.get(&hex).map(|s| (i, s.clone())))
    }

    /// The step key a `COPY --from` alias stands for (this build's, then imported).
    pub(crate) fn alias(&self, alias: &Key) -> Option<Key> {
        if let Some(k) = self.aliases.lock().expect("poisoned").get(alias) {
            return Some(*k);
        }
        let hex = hex::encode(alias);
        self.imports.iter().find_map(|imp| {
            let k = imp.aliases.get(&hex)?;
            let mut out = [0u8; 32];
            hex::decode_to_slice(k, &mut out).ok()?;
            Some(out)
        })
    }

    /// Note that `desc` can be fetched from import `i`.
    pub(crate) fn note_lazy(&self, i: usize, desc: &Descriptor) {
        self.lazy
            .lock()
            .expect("poisoned")
            .entry(desc.digest.clone())
            .or_insert_with(|| (i, desc.clone()));
    }

    /// Whether `digest` is a cached blob not yet in the store.
    pub(crate) fn is_lazy(&self, digest: &Digest) -> bool {
        self.lazy.lock().expect("poisoned").contains_key(digest) && !self.store.has(digest)
    }

    /// Make sure `desc`'s blob is in the store: fetched (and verified against its
    /// digest and size) from the imported cache that has it. Blobs of no imported cache
    /// are left alone.
    pub(crate) fn ensure(&self, desc: &Descriptor) -> Result<()> {
        self.ensure_counted(desc, false)
    }

    fn ensure_counted(&self, desc: &Descriptor, file_list: bool) -> Result<()> {
        if self.store.has_descriptor(desc) {
            return Ok(());
        }
        let Some((i, d)) = self
            .lazy
            .lock()
            .expect("poisoned")
            .get(&desc.digest)
            .cloned()
        else {
            return Ok(());
        };
        let imp = &self.imports[i];
        let r = imp.source.blob(&d).map_err(|e| {
            Error::Invalid(format!(
                "--cache-from {}: fetching {}: {}",
                imp.spec,
                d.digest,
                hoist_image::chain_text(&e)
            ))
        })?;
        self.store.put_verified(r, &d).map_err(|e| {
            Error::Invalid(format!(
                "--cache-from {}: blob {}: {}",
                imp.spec,
                d.digest,
                hoist_image::chain_text(&e)
            ))
        })?;
        if file_list {
            self.lists.fetch_add(1, Ordering::Relaxed);
        } else {
            self.fetched.fetch_add(1, Ordering::Relaxed);
            self.fetched_bytes.fetch_add(d.size, Ordering::Relaxed);
        }
        tracing::debug!(digest = %d.digest, "fetched from the remote cache");
        Ok(())
    }

    /// The file list of an imported layer step: fetched (it is small) and verified.
    pub(crate) fn index_of(&self, i: usize, index: &Descriptor) -> Result<Vec<IndexEntry>> {
        if index.size > super::format::MAX_INDEX_SIZE {
            return Err(Error::Invalid(format!(
                "a layer file list of {} bytes",
                index.size
            )));
        }
        self.note_lazy(i, index);
        self.ensure_counted(index, true)?;
        let b = std::fs::read(self.store.path(&index.digest))
            .map_err(|e| Error::io(self.store.path(&index.digest), e))?;
        serde_json::from_slice(&b)
            .map_err(|e| Error::Invalid(format!("a corrupt layer file list {}: {e}", index.digest)))
    }

    /// Record what a step did (for the export).
    pub(crate) fn record(&self, parent: Key, key: Key, seen: Option<Option<LayerRef>>) {
        self.record_with(parent, key, seen, None);
    }

    /// [`Session::record`] with the file list the layer came with.
    pub(crate) fn record_with(
        &self,
        parent: Key,
        key: Key,
        result: Option<Option<LayerRef>>,
        index: Option<Descriptor>,
    ) {
        self.seen.lock().expect("poisoned").insert(
            key,
            Seen {
                parent,
                result,
                index,
            },
        );
    }

    /// Record a `COPY --from` alias.
    pub(crate) fn record_alias(&self, alias: Key, key: Key) {
        self.aliases.lock().expect("poisoned").insert(alias, key);
    }

    /// Count a step taken from an imported cache.
    pub(crate) fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }

    /// The cached blob of `layer` when it already has `compression` at `level` and is
    /// not local (so an output need not fetch it to know its descriptor).
    pub(crate) fn encoded_as(
        &self,
        layer: &LayerRef,
        compression: Compression,
        level: i32,
    ) -> Option<Descriptor> {
        if layer.from_base || self.store.has_descriptor(&layer.desc) {
            return None;
        }
        let (i, _) = self
            .lazy
            .lock()
            .expect("poisoned")
            .get(&layer.desc.digest)
            .cloned()?;
        let same = self.imports[i].steps.values().any(|s| {
            s.layer.as_ref().map(|d| &d.digest) == Some(&layer.desc.digest)
                && s.encoding == Some((compression, level))
        });
        same.then(|| layer.desc.clone())
    }

    /// Fetch every lazily imported blob `src`'s image needs (before an output that
    /// writes bytes).
    pub(crate) fn ensure_image(&self, src: &dyn Source) -> Result<()> {
        let g = hoist_image::sink::collect(src)?;
        for d in &g.blobs {
            if self.is_lazy(&d.digest) {
                self.ensure(d)?;
            }
        }
        Ok(())
    }

    /// The registries' repositories of the imported caches (mount sources).
    pub(crate) fn mount_sources(&self) -> Vec<String> {
        self.imports
            .iter()
            .filter_map(|i| i.reference.as_ref().map(|r| r.to_string()))
            .collect()
    }

    /// A line for the build's log: steps reused, blobs fetched.
    pub fn summary(&self) -> String {
        format!(
            "remote cache: {} steps reused, {} file lists and {} layer blobs fetched ({} bytes)",
            self.hits.load(Ordering::Relaxed),
            self.lists.load(Ordering::Relaxed),
            self.fetched.load(Ordering::Relaxed),
            self.fetched_bytes.load(Ordering::Relaxed)
        )
    }

    /// Layer blobs fetched from imported caches so far: (count, bytes).
    pub fn fetched(&self) -> (u64, u64) {
        (
            self.fetched.load(Ordering::Relaxed),
            self.fetched_bytes.load(Ordering::Relaxed),
        )
    }
}

/// A source whose cached blobs are fetched from the imported caches when read.
pub(crate) struct LazySource<'a> {
    pub inner: &'a dyn Source,
    pub session: &'a Session,
}

impl Source for LazySource<'_> {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn root(&self) -> hoist_image::Result<hoist_image::RawDocument> {
        self.inner.root()
    }
    fn manifest(&self, desc: &Descriptor) -> hoist_image::Result<hoist_image::RawDocument> {
        self.inner.manifest(desc)
    }
    fn blob(&self, desc: &Descriptor) -> hoist_image::Result<Box<dyn std::io::Read + Send + '_>> {
        if self.session.is_lazy(&desc.digest) {
            self.session
                .ensure(desc)
                .map_err(|e| hoist_image::Error::Format(hoist_image::chain_text(&e)))?;
        }
        self.inner.blob(desc)
    }
    fn has_blob(&self, desc: &Descriptor) -> hoist_image::Result<bool> {
        if self.session.is_lazy(&desc.digest) {
            return Ok(true);
        }
        self.inner.has_blob(desc)
    }
}
