//! Pull: resolve a reference to one image for a platform and fetch its blobs into a
//! shared content-addressed cache, with a small on-disk index of resolved tags.
//!
//! ```text
//! <cache>/                    any directory; hoist uses ~/.cache/hoist
//!   blobs/sha256/<hex>        the BlobStore given to Client::pull (manifests too)
//!   refs/<sha256(ref|platform)>.json
//!       {"reference": "docker.io/library/alpine:3.19", "platform": "linux/amd64",
//!        "root": {descriptor of the tag's manifest or index},
//!        "manifest": {descriptor of the platform's manifest}}
//! ```
//!
//! The `refs/` directory sits next to the blob store's root. Each entry is written
//! to a temporary file and renamed, so two hoist processes pulling at once never see
//! a torn entry; blobs are safe the same way (see [`BlobStore`]).
//!
//! This is the pull side of hoist's cache directory ([`hoist_cache::layout`]). The cache
//! may be pruned ([`hoist_cache::prune()`], least recently used first): a pull sets the
//! mtime of the ref entry and of every blob of the image it returns (their last use,
//! with [`hoist_cache::touch()`]), and a ref entry whose documents or layers are gone is a miss, pulled again.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use hoist_image::source::{document_media_type, resolve_document, select_platform};
use hoist_image::{
    media_type, BlobStore, Descriptor, Index, Manifest, Platform, RawDocument, ResolvedImage,
    VerifyingReader,
};

use hoist_cache::{touch, touch_blob};

use crate::source::{read_document, CacheSource};
use crate::{Client, Error, Reference, Result};

/// How many levels of image index are followed down to a manifest.
const MAX_INDEX_DEPTH: usize = 4;

/// When to contact the registry (`--pull=always|missing|never`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullPolicy {
    /// Always resolve the tag on the registry (blobs already cached are not fetched again).
    Always,
    /// Use the cached image if the tag was resolved before and every blob is present.
    #[default]
    Missing,
    /// Never contact the registry; fail if the image is not cached.
    Never,
}

impl std::str::FromStr for PullPolicy {
    type Err = Error;
    fn from_str(s: &str) -> Result<PullPolicy> {
        match s {
            "always" | "true" => Ok(PullPolicy::Always),
            "missing" | "ifmissing" | "if-missing" => Ok(PullPolicy::Missing),
            "never" | "false" => Ok(PullPolicy::Never),
            other => Err(Error::Config(format!(
                "invalid pull policy {other:?} (expected always, missing or never)"
            ))),
        }
    }
}

/// The result of [`Client::pull`].
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The reference pulled (as given, normalised).
    pub reference: Reference,
    /// The descriptor of what the reference points at (manifest or index).
    pub root: Descriptor,
    /// The digest of the platform's manifest (`reference@digest` pins it).
    pub digest: hoist_image::Digest,
    /// The resolved image: manifest and config, raw and parsed.
    pub image: ResolvedImage,
    /// The image as a source backed by the local store; its root is the platform's
    /// manifest.
    pub source: CacheSource,
    /// Whether the registry was contacted.
    pub from_registry: bool,
    /// Blobs downloaded (not already cached).
    pub blobs_downloaded: usize,
    /// Bytes downloaded.
    pub bytes_downloaded: u64,
    /// The host that served the image's manifest (a mirror's or the registry's own
    /// API host); `None` when it came from the cache.
    pub served_by: Option<String>,
    /// Whether [`Pulled::served_by`] is a mirror (see [`crate::mirrors`]).
    pub from_mirror: bool,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct RefEntry {
    reference: String,
    platform: String,
    root: Descriptor,
    manifest: Descriptor,
}

/// The ref index directory for a store: `<store root>/../refs` (see
/// [`hoist_cache::layout`]).
pub use hoist_cache::layout::refs_dir;

fn ref_entry_path(store: &BlobStore, r: &Reference, platform: &Platform) -> PathBuf {
    let key = hoist_image::Digest::sha256(format!("{r}|{platform}").as_bytes());
    refs_dir(store).join(format!("{}.json", key.hex()))
}

fn read_ref_entry(store: &BlobStore, r: &Reference, platform: &Platform) -> Option<RefEntry> {
    let bytes = std::fs::read(ref_entry_path(store, r, platform)).ok()?;
    let e: RefEntry = serde_json::from_slice(&bytes).ok()?;
    (e.reference == r.to_string() && e.platform == platform.to_string()).then_some(e)
}

fn write_ref_entry(
    store: &BlobStore,
    r: &Reference,
    platform: &Platform,
    root: &Descriptor,
    manifest: &Descriptor,
) -> Result<()> {
    use std::io::Write;
    let path = ref_entry_path(store, r, platform);
    let dir = refs_dir(store);
    std::fs::create_dir_all(&dir).map_err(|e| Error::Io {
        path: dir.clone(),
        source: e,
    })?;
    let entry = RefEntry {
        reference: r.to_string(),
        platform: platform.to_string(),
        root: root.clone(),
        manifest: manifest.clone(),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(&dir)
        .map_err(|e| Error::Io {
            path: dir.clone(),
            source: e,
        })?;
    tmp.write_all(&serde_json::to_vec_pretty(&entry).expect("serialisable"))
        .map_err(|e| Error::Io {
            path: path.clone(),
            source: e,
        })?;
    tmp.persist(&path).map_err(|e| Error::Io {
        path: path.clone(),
        source: e.error,
    })?;
    Ok(())
}

/// Every cached reference of `registry` with the blobs of its manifest: candidates
/// for cross-repository mounts when pushing to the same registry.
pub(crate) fn cached_locations(
    store: &BlobStore,
    registry: &str,
) -> Vec<(String, Vec<hoist_image::Digest>)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(refs_dir(store)) else {
        return out;
    };
    for ent in rd.flatten() {
        let Ok(bytes) = std::fs::read(ent.path()) else {
            continue;
        };
        let Ok(e) = serde_json::from_slice::<RefEntry>(&bytes) else {
            continue;
        };
        let Ok(r) = Reference::parse(&e.reference) else {
            continue;
        };
        if r.registry() != registry {
            continue;
        }
        let Ok(doc) = read_document(store, &e.manifest) else {
            continue;
        };
        let Ok(m) = doc.parse::<Manifest>() else {
            continue;
        };
        let mut digests = vec![m.config.digest.clone()];
        digests.extend(m.layers.iter().map(|l| l.digest.clone()));
        out.push((r.repository().to_string(), digests));
    }
    out
}

/// Run `f` over `items` on up to `n` threads; the first error stops the others.
pub(crate) fn parallel<T: Sync>(
    n: usize,
    items: &[T],
    f: impl Fn(&T) -> Result<()> + Sync,
) -> Result<()> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_err: Mutex<Option<Error>> = Mutex::new(None);
    let work = || loop {
        if failed.load(Ordering::Relaxed) {
            return;
        }
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(item) = items.get(i) else { return };
        if let Err(e) = f(item) {
            failed.store(true, Ordering::Relaxed);
            first_err.lock().expect("poisoned").get_or_insert(e);
            return;
        }
    };
    let threads = n.clamp(1, items.len().max(1));
    if threads == 1 {
        work();
    } else {
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(work);
            }
        });
    }
    match first_err.into_inner().expect("poisoned") {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

impl Client {
    /// Pull `r` for `platform` into `store` (see the module docs for the layout).
    ///
    /// Every blob is verified (digest and size) while it streams into the store;
    /// several download at once; blobs already in the store are not fetched again,
    /// so a base image is downloaded once across builds.
    pub fn pull(
        &self,
        r: &Reference,
        platform: &Platform,
        store: &BlobStore,
        policy: PullPolicy,
    ) -> Result<Pulled> {
        if policy != PullPolicy::Always {
            match self.pull_cached(r, platform, store) {
                Ok(p) => {
                    tracing::debug!(reference = %r, "using the cached image");
                    return Ok(p);
                }
                Err(e) if policy == PullPolicy::Never => {
                    tracing::debug!("not in cache: {e}");
                    return Err(Error::NotCached(r.to_string()));
                }
                Err(e) => tracing::debug!("not in cache ({e}); pulling"),
            }
        }
        self.pull_remote(r, platform, store)
    }

    fn pull_cached(&self, r: &Reference, platform: &Platform, store: &BlobStore) -> Result<Pulled> {
        let root_desc = match (r.digest(), read_ref_entry(store, r, platform)) {
            (Some(d), _) => {
                let mut desc = Descriptor::new(
                    "",
                    d.clone(),
                    store.size(d).map_err(|_| Error::NotCached(r.to_string()))?,
                );
                let doc = read_document(store, &desc)?;
                desc.media_type = doc.media_type;
                desc
            }
            (None, Some(e)) => e.root,
            (None, None) => return Err(Error::NotCached(r.to_string())),
        };
        let root = read_document(store, &root_desc)?;
        let src = CacheSource::new(format!("docker://{r}"), store.clone(), root.clone());
        let image = resolve_document(&src, root, platform)?;
        for l in &image.manifest.layers {
            if !store.has_descriptor(l) && !is_foreign(l) {
                return Err(Error::NotCached(r.to_string()));
            }
        }
        if r.digest().is_none() {
            touch(&ref_entry_path(store, r, platform));
        }
        touch_image(store, &root_desc, &image);
        Ok(self.finish_pull(r, root_desc, image, store, false, 0, 0))
    }

    #[allow(clippy::too_many_arguments)]
    fn finish_pull(
        &self,
        r: &Reference,
        root: Descriptor,
        image: ResolvedImage,
        store: &BlobStore,
        from_registry: bool,
        blobs: usize,
        bytes: u64,
    ) -> Pulled {
        let source = CacheSource::new(
            format!("docker://{r}"),
            store.clone(),
            image.manifest_raw.clone(),
        );
        Pulled {
            reference: r.clone(),
            root,
            digest: image.manifest_raw.digest(),
            image,
            source,
            from_registry,
            blobs_downloaded: blobs,
            bytes_downloaded: bytes,
            served_by: None,
            from_mirror: false,
        }
    }

    fn pull_remote(&self, r: &Reference, platform: &Platform, store: &BlobStore) -> Result<Pulled> {
        let root = self.get_manifest(r)?;
        let served = self.served_by(r);
        if let Some((host, mirror)) = &served {
            tracing::info!(reference = %r, host, mirror, "manifest served");
        }
        let mut root_desc = root.descriptor();
        root_desc.media_type = document_media_type(&root)?;
        store.put_bytes(&root.bytes)?;
        // Walk down to the platform's manifest, caching each document.
        let mut doc = root.clone();
        let mut manifest_desc = root_desc.clone();
        for _ in 0..MAX_INDEX_DEPTH {
            let mt = document_media_type(&doc)?;
            if !media_type::is_index(&mt) {
                break;
            }
            let index: Index = doc
                .parse()
                .map_err(|e| hoist_image::Error::json(format!("index of {r}"), e))?;
            let desc = select_platform(&index, platform)?;
            doc = match read_document(store, &desc) {
                Ok(d) => d,
                Err(_) => {
                    let d = self.get_manifest_by_descriptor(r, &desc)?;
                    hoist_image::source::verify_document(&d, &desc)?;
                    store.put_bytes(&d.bytes)?;
                    d
                }
            };
            manifest_desc = desc;
        }
        let mt = document_media_type(&doc)?;
        if media_type::is_index(&mt) {
            return Err(Error::Image(hoist_image::Error::Format(format!(
                "{r}: image indexes nested more than {MAX_INDEX_DEPTH} deep \
                 (hoist follows at most {MAX_INDEX_DEPTH} levels of index)"
            ))));
        }
        if !media_type::is_manifest(&mt) {
            return Err(Error::Image(hoist_image::Error::Format(format!(
                "{r}: unsupported manifest media type {mt:?}"
            ))));
        }
        let manifest: Manifest = doc
            .parse()
            .map_err(|e| hoist_image::Error::json(format!("manifest of {r}"), e))?;
        let mut wanted: Vec<Descriptor> = vec![manifest.config.clone()];
        for l in &manifest.layers {
            if !wanted.iter().any(|w| w.digest == l.digest) && !is_foreign(l) {
                wanted.push(l.clone());
            }
        }
        wanted.retain(|d| !store.has_descriptor(d));
        let count = wanted.len();
        let bytes = AtomicU64::new(0);
        parallel(self.config().concurrency, &wanted, |desc| {
            self.with_retry(&format!("download {}", desc.digest), |_| {
                let reader = self.inner.config.progress.reader(
                    hoist_image::progress::Direction::Pull,
                    &desc.digest.to_string(),
                    Some(desc.size),
                    self.get_blob(r, desc)?,
                );
                let verifying = VerifyingReader::new(reader, desc.digest.clone(), Some(desc.size));
                store.put_verified(verifying, desc).map_err(|e| match e {
                    hoist_image::Error::Stream { context, source }
                        if source.kind() == std::io::ErrorKind::InvalidData =>
                    {
                        Error::Image(hoist_image::Error::Format(format!(
                            "{}: {context}: {source}",
                            r.registry()
                        )))
                    }
                    other => Error::Image(other),
                })
            })?;
            bytes.fetch_add(desc.size, Ordering::Relaxed);
            tracing::debug!(digest = %desc.digest, size = desc.size, "blob downloaded");
            Ok(())
        })?;
        for d in std::iter::once(&manifest.config).chain(&manifest.layers) {
            self.remember(&d.digest, r.registry(), r.repository());
        }
        let src = CacheSource::new(format!("docker://{r}"), store.clone(), doc.clone());
        let image = resolve_document(&src, doc, platform)?;
        write_ref_entry(store, r, platform, &root_desc, &manifest_desc)?;
        // Blobs that were already cached are used again now.
        touch_image(store, &root_desc, &image);
        let mut pulled =
            self.finish_pull(r, root_desc, image, store, true, count, bytes.into_inner());
        if let Some((host, mirror)) = served {
            pulled.served_by = Some(host);
            pulled.from_mirror = mirror;
        }
        Ok(pulled)
    }

    /// What `hoist inspect docker://REF` shows: the raw root document and its digest,
    /// and, for `platform` (or when the root is a single manifest), the resolved
    /// image with its raw config.
    pub fn inspect(&self, r: &Reference, platform: Option<&Platform>) -> Result<Inspection> {
        let root = self.get_manifest(r)?;
        let mt = document_media_type(&root)?;
        let src = self.source(r);
        let image = if media_type::is_manifest(&mt) {
            Some(resolve_document(
                &src,
                root.clone(),
                platform.unwrap_or(&Platform::host()),
            )?)
        } else if let Some(p) = platform {
            Some(resolve_document(&src, root.clone(), p)?)
        } else {
            None
        };
        Ok(Inspection {
            reference: r.clone(),
            digest: root.digest(),
            media_type: mt,
            root,
            image,
        })
    }
}

/// Mark every blob of a pulled image as used ([`touch_blob`]): root document, manifest,
/// config, layers.
fn touch_image(store: &BlobStore, root: &Descriptor, image: &ResolvedImage) {
    touch_blob(store, &root.digest);
    touch_blob(store, &image.manifest_raw.digest());
    touch_blob(store, &image.manifest.config.digest);
    for l in &image.manifest.layers {
        touch_blob(store, &l.digest);
    }
}

/// Non-distributable ("foreign") layers are never fetched or pushed.
pub(crate) fn is_foreign(d: &Descriptor) -> bool {
    d.media_type.contains("nondistributable") || d.media_type.contains("foreign")
}

/// What [`Client::inspect`] returns.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// The reference inspected.
    pub reference: Reference,
    /// The digest of the root document (what the tag points at).
    pub digest: hoist_image::Digest,
    /// The root's media type.
    pub media_type: String,
    /// The root document, exact bytes.
    pub root: RawDocument,
    /// The platform's image (manifest + config), when resolved.
    pub image: Option<ResolvedImage>,
}
