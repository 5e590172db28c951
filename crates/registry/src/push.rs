//! Push any image [`Source`] to one or more references.
//!
//! Order, so that a failed push never leaves a tag pointing at a partial image:
//!
//! 1. walk the source: the root, every child manifest of an index (verified), and
//!    the set of blobs they reference;
//! 2. for each destination repository that does not already hold the root manifest
//!    by digest (the registry only accepts a manifest whose blobs it has, so then
//!    everything is there), every blob, several at once: `HEAD` (skip if
//!    present), else a cross-repository mount when the blob is known in another
//!    repository of the same registry, else a streamed upload;
//! 3. child manifests by digest;
//! 4. only when all of that succeeded for every destination: the root manifest
//!    under each tag (or by digest).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use hoist_image::source::{document_media_type, verify_document};
use hoist_image::{
    media_type, BlobStore, Descriptor, Digest, Index, Manifest, RawDocument, Source,
};

use crate::ops::BlobOutcome;
use crate::pull::{cached_locations, is_foreign, parallel};
use crate::{Client, Error, Reference, Result};

/// Options for [`Client::push`].
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// Other repositories (same registry) that may hold the blobs, tried as mount
    /// sources (for example the base image a build started `FROM`).
    pub mount_from: Vec<Reference>,
    /// A pull cache whose ref index tells which repositories the cached blobs came
    /// from (mount candidates when pushing to the same registry).
    pub cache: Option<BlobStore>,
    /// Check every blob even when the registry already has the root manifest
    /// (by default such a push only writes the tags).
    pub always_check_blobs: bool,
}

/// What [`Client::push`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushReport {
    /// The digest of the root manifest or index pushed.
    pub digest: Option<Digest>,
    /// The references written (tags or digests), in order.
    pub references: Vec<Reference>,
    /// Manifests (including index children) written, per destination repository.
    pub manifests: usize,
    /// Blobs uploaded.
    pub uploaded: usize,
    /// Bytes uploaded.
    pub uploaded_bytes: u64,
    /// Blobs mounted from another repository.
    pub mounted: usize,
    /// Bytes mounted.
    pub mounted_bytes: u64,
    /// Blobs the registry already had.
    pub skipped: usize,
    /// Bytes the registry already had.
    pub skipped_bytes: u64,
}

struct Tree {
    /// Children first, the root last.
    manifests: Vec<RawDocument>,
    blobs: Vec<Descriptor>,
}

fn walk(src: &dyn Source, doc: RawDocument, tree: &mut Tree, depth: usize) -> Result<()> {
    if depth > 4 {
        return Err(Error::Image(hoist_image::Error::Format(format!(
            "{}: indexes nested too deeply",
            src.name()
        ))));
    }
    let mt = document_media_type(&doc)?;
    if media_type::is_index(&mt) {
        let index: Index = doc
            .parse()
            .map_err(|e| hoist_image::Error::json(format!("index in {}", src.name()), e))?;
        for m in &index.manifests {
            if tree.manifests.iter().any(|d| d.digest() == m.digest) {
                continue;
            }
            let child = src.manifest(m)?;
            verify_document(&child, m)?;
            walk(src, child, tree, depth + 1)?;
        }
    } else if media_type::is_manifest(&mt) || doc.parse::<Manifest>().is_ok() {
        let m: Manifest = doc
            .parse()
            .map_err(|e| hoist_image::Error::json(format!("manifest in {}", src.name()), e))?;
        for d in std::iter::once(&m.config).chain(&m.layers) {
            if is_foreign(d) && d.urls.as_ref().is_some_and(|u| !u.is_empty()) {
                continue;
            }
            if !tree.blobs.iter().any(|b| b.digest == d.digest) {
                tree.blobs.push(d.clone());
            }
        }
    } else {
        return Err(Error::Image(hoist_image::Error::Format(format!(
            "{}: cannot push a document of type {mt:?}",
            src.name()
        ))));
    }
    let mut doc = doc;
    doc.media_type = mt;
    tree.manifests.push(doc);
    Ok(())
}

impl Client {
    /// Push `src` to every reference in `dests` (several tags, or several
    /// repositories of one or more registries). See the module docs for the order.
    pub fn push(
        &self,
        src: &dyn Source,
        dests: &[Reference],
        opts: &PushOptions,
    ) -> Result<PushReport> {
        if dests.is_empty() {
            return Err(Error::Config("push: no destination".into()));
        }
        let root = src.root()?;
        let mut tree = Tree {
            manifests: Vec::new(),
            blobs: Vec::new(),
        };
        walk(src, root, &mut tree, 0)?;
        let root = tree.manifests.last().expect("walk pushes the root").clone();
        let root_digest = root.digest();
        for d in dests {
            if let Some(want) = d.digest() {
                if *want != root_digest {
                    return Err(Error::DigestMismatch {
                        what: format!(
                            "push to {d}: the image's digest differs from the reference's"
                        ),
                        expected: want.clone(),
                        actual: root_digest,
                    });
                }
            }
        }
        // Largest blobs first: they bound the total time.
        let mut blobs = tree.blobs.clone();
        blobs.sort_by_key(|b| std::cmp::Reverse(b.size));

        let mut repos: BTreeMap<(String, String), Reference> = BTreeMap::new();
        for d in dests {
            repos
                .entry((d.registry().to_string(), d.repository().to_string()))
                .or_insert_with(|| d.clone());
        }
        let uploaded = AtomicUsize::new(0);
        let uploaded_bytes = AtomicU64::new(0);
        let mounted = AtomicUsize::new(0);
        let mounted_bytes = AtomicU64::new(0);
        let skipped = AtomicUsize::new(0);
        let skipped_bytes = AtomicU64::new(0);
        let mut manifests = 0;
        // Tags that already point at this image need no write at all.
        let mut current = Vec::new();
        for d in dests {
            let is_current = !opts.always_check_blobs
                && d.tag().is_some()
                && self.head_manifest_upstream(d)?.map(|h| h.digest).as_ref() == Some(&root_digest);
            current.push(is_current);
        }
        for ((registry, repo), dest) in &repos {
            let ep = self.registry_endpoint(registry)?;
            let repo_current = dests
                .iter()
                .zip(&current)
                .any(|(d, c)| *c && d.registry() == registry && d.repository() == repo);
            // The registry only accepts a manifest whose blobs it has, so if the root
            // is already there by digest, the whole tree is (as crane does).
            if !opts.always_check_blobs
                && (repo_current
                    || self
                        .head_manifest_upstream(&dest.with_digest(root_digest.clone()))?
                        .is_some())
            {
                tracing::debug!(repository = %repo, "image already present; only tagging");
                skipped.fetch_add(blobs.len(), Ordering::Relaxed);
                skipped_bytes.fetch_add(blobs.iter().map(|b| b.size).sum(), Ordering::Relaxed);
                for d in &blobs {
                    self.remember(&d.digest, registry, repo);
                }
                continue;
            }
            let candidates = self.mount_candidates(registry, repo, opts);
            parallel(self.config().concurrency, &blobs, |desc| {
                let from = candidates
                    .get(&desc.digest.to_string())
                    .or_else(|| candidates.get("*"))
                    .map(String::as_str);
                let open = || src.blob(desc);
                let outcome = self.upload_blob_on(&ep, registry, repo, desc, from, &open)?;
                let (n, b) = match outcome {
                    BlobOutcome::Skipped => (&skipped, &skipped_bytes),
                    BlobOutcome::Mounted => (&mounted, &mounted_bytes),
                    BlobOutcome::Uploaded(_) => (&uploaded, &uploaded_bytes),
                };
                n.fetch_add(1, Ordering::Relaxed);
                b.fetch_add(desc.size, Ordering::Relaxed);
                tracing::debug!(digest = %desc.digest, ?outcome, "blob pushed");
                Ok(())
            })?;
            // Child manifests by digest; the root waits until every destination is complete.
            for m in &tree.manifests[..tree.manifests.len() - 1] {
                let d = m.digest();
                if self
                    .head_manifest_upstream(&dest.with_digest(d.clone()))?
                    .is_none()
                {
                    self.put_manifest_at(dest, &d.to_string(), m)?;
                }
                manifests += 1;
            }
        }
        let mut written = Vec::new();
        for (d, is_current) in dests.iter().zip(current) {
            if is_current {
                tracing::debug!(reference = %d, "already up to date");
                written.push(d.clone());
                continue;
            }
            let mref = match d.tag() {
                Some(t) => t.to_string(),
                None => root_digest.to_string(),
            };
            self.put_manifest_at(d, &mref, &root)?;
            manifests += 1;
            written.push(d.clone());
            tracing::info!(reference = %d, digest = %root_digest, "pushed");
        }
        Ok(PushReport {
            digest: Some(root_digest),
            references: written,
            manifests,
            uploaded: uploaded.into_inner(),
            uploaded_bytes: uploaded_bytes.into_inner(),
            mounted: mounted.into_inner(),
            mounted_bytes: mounted_bytes.into_inner(),
            skipped: skipped.into_inner(),
            skipped_bytes: skipped_bytes.into_inner(),
        })
    }

    /// digest → a repository of `registry` (not `repo`) known to hold it.
    fn mount_candidates(
        &self,
        registry: &str,
        repo: &str,
        opts: &PushOptions,
    ) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        if let Some(store) = &opts.cache {
            for (r, digests) in cached_locations(store, registry) {
                if r != repo {
                    for d in digests {
                        out.entry(d.to_string()).or_insert_with(|| r.clone());
                    }
                }
            }
        }
        for (digest, locs) in self.inner.locations.lock().expect("poisoned").iter() {
            if let Some((_, r)) = locs.iter().find(|(reg, r)| reg == registry && r != repo) {
                out.insert(digest.clone(), r.clone());
            }
        }
        // Explicit mount sources: any blob may be there; the registry decides.
        if let Some(m) = opts
            .mount_from
            .iter()
            .find(|m| m.registry() == registry && m.repository() != repo)
        {
            out.insert(String::from("*"), m.repository().to_string());
        }
        out
    }
}
