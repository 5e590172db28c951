//! Sinks: functions that write any [`Source`] somewhere.
//!
//! - [`write_oci_layout`]: an OCI image layout directory (`type=oci,dest=DIR`); an
//!   existing layout gets the image added (blobs, plus an `index.json` entry named by
//!   `org.opencontainers.image.ref.name`, replacing an entry of the same name).
//! - [`write_oci_archive`]: the same layout as a tar file (`type=oci,dest=FILE.tar`).
//! - [`write_docker_archive`]: a `docker load`-able tar (`type=docker`) that is also an
//!   OCI layout, as docker 25+'s `docker save` writes:
//!
//! ```text
//! blobs/sha256/<config>     the config
//! blobs/sha256/<layer>…     the layers as they are (gzip layers stay gzip)
//! blobs/sha256/<manifest>   the manifest
//! index.json, oci-layout    the OCI view
//! manifest.json             [{"Config":"blobs/sha256/…","RepoTags":[…],"Layers":[…]}]
//! repositories              {"repo":{"tag":"<top layer hex>"}}
//! ```
//!
//! - [`copy_to_store`]: every blob and manifest into a [`BlobStore`].
//! - [`ImageMetadata`]: digests for `--iidfile` and `--metadata-file`.
//!
//! Every blob is verified against its digest and size while it streams
//! ([`open_verified`]); nothing is held in memory but manifests and configs. Outputs
//! appear atomically (see [`crate::fsutil`]): a failing sink leaves neither the
//! destination nor temporary files behind. Archives are deterministic: sorted members,
//! fixed headers (mode 0644/0755, owner 0:0, mtime 0), canonical JSON.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;

use crate::fsutil::{atomic_write, AtomicDir, AtomicFile};
use crate::layout::{
    blob_path, parse_index, ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME, OCI_LAYOUT_CONTENT,
    OCI_LAYOUT_FILE,
};
use crate::source::{document_media_type, resolve, verify_document};
use crate::{
    media_type, open_verified, to_canonical_json, BlobStore, Descriptor, Digest, Error, Index,
    Manifest, Platform, RawDocument, Result, Source,
};

/// Everything an image consists of, as found by walking its root.
#[derive(Debug, Clone)]
pub struct ImageGraph {
    /// The root document (manifest or index).
    pub root: RawDocument,
    /// Every manifest and index, the root first, each once.
    pub documents: Vec<RawDocument>,
    /// Every config and layer blob, each once, in the order first met.
    pub blobs: Vec<Descriptor>,
}

impl ImageGraph {
    /// The root's descriptor (media type from the document itself).
    pub fn root_descriptor(&self) -> Result<Descriptor> {
        let mt = document_media_type(&self.root)?;
        Ok(Descriptor::new(
            mt,
            self.root.digest(),
            self.root.bytes.len() as u64,
        ))
    }
}

/// Walk the root of `src`: every child manifest (verified) and every blob it names.
/// Layers a source cannot serve that carry `urls` (foreign layers) are left out.
pub fn collect(src: &dyn Source) -> Result<ImageGraph> {
    let root = src.root()?;
    let mut g = ImageGraph {
        root: root.clone(),
        documents: Vec::new(),
        blobs: Vec::new(),
    };
    let mut seen = BTreeSet::new();
    walk(src, root, 0, &mut g, &mut seen)?;
    Ok(g)
}

fn walk(
    src: &dyn Source,
    doc: RawDocument,
    depth: usize,
    g: &mut ImageGraph,
    seen: &mut BTreeSet<Digest>,
) -> Result<()> {
    if depth > 4 {
        return Err(Error::Format(format!(
            "{}: indexes nested too deeply",
            src.name()
        )));
    }
    if !seen.insert(doc.digest()) {
        return Ok(());
    }
    let mt = document_media_type(&doc)?;
    g.documents.push(doc.clone());
    if media_type::is_index(&mt) {
        let index: Index = doc
            .parse()
            .map_err(|e| Error::json(format!("index in {}", src.name()), e))?;
        for child in &index.manifests {
            if media_type::is_index(&child.media_type) || media_type::is_manifest(&child.media_type)
            {
                let c = src.manifest(child)?;
                verify_document(&c, child)?;
                walk(src, c, depth + 1, g, seen)?;
            } else {
                add_blob(src, child, g, seen)?;
            }
        }
    } else if media_type::is_manifest(&mt) {
        let m: Manifest = doc
            .parse()
            .map_err(|e| Error::json(format!("manifest in {}", src.name()), e))?;
        add_blob(src, &m.config, g, seen)?;
        for l in &m.layers {
            add_blob(src, l, g, seen)?;
        }
    } else {
        return Err(Error::Format(format!(
            "{}: unsupported manifest media type {mt:?}",
            src.name()
        )));
    }
    Ok(())
}

fn add_blob(
    src: &dyn Source,
    d: &Descriptor,
    g: &mut ImageGraph,
    seen: &mut BTreeSet<Digest>,
) -> Result<()> {
    if seen.contains(&d.digest) {
        return Ok(());
    }
    if d.urls.as_ref().is_some_and(|u| !u.is_empty()) && !src.has_blob(d)? {
        tracing::debug!(digest = %d.digest, "skipping foreign layer");
        return Ok(());
    }
    seen.insert(d.digest.clone());
    g.blobs.push(d.clone());
    Ok(())
}

fn document_descriptor(doc: &RawDocument) -> Descriptor {
    Descriptor::new(doc.media_type.clone(), doc.digest(), doc.bytes.len() as u64)
}

/// Store every manifest and blob of `src` in `store`, verified. Blobs already present
/// (with the right size) are not fetched. Returns the root's descriptor.
pub fn copy_to_store(src: &dyn Source, store: &BlobStore) -> Result<Descriptor> {
    let g = collect(src)?;
    for doc in &g.documents {
        store.put_verified(&doc.bytes[..], &document_descriptor(doc))?;
    }
    for d in &g.blobs {
        if store.has_descriptor(d) {
            continue;
        }
        put_blob(src, d, store)?;
    }
    g.root_descriptor()
}

/// Stream one blob into a store. [`BlobStore::put_verified`] checks the digest and
/// size as it writes (hashing once); reading at most one byte more than the expected
/// size keeps a hostile source from filling the disk.
fn put_blob(src: &dyn Source, d: &Descriptor, store: &BlobStore) -> Result<()> {
    let r = src.blob(d)?.take(d.size.saturating_add(1));
    store.put_verified(r, d)
}

fn ref_name_annotations(tag: Option<&str>) -> Option<BTreeMap<String, String>> {
    tag.map(|t| BTreeMap::from([(ANNOTATION_REF_NAME.to_string(), t.to_string())]))
}

fn new_index(manifests: Vec<Descriptor>) -> Index {
    Index {
        schema_version: 2,
        media_type: Some(media_type::OCI_INDEX.into()),
        artifact_type: None,
        manifests,
        subject: None,
        annotations: None,
    }
}

/// Write `src` as an OCI image layout at `dir`, naming it `tag` in `index.json`.
///
/// - `dir` missing or empty: the layout is assembled in a temporary directory beside
///   it and renamed into place.
/// - `dir` an existing layout (it has an `oci-layout` file): the blobs are added to
///   its `blobs/` (each appears atomically) and then `index.json` is replaced
///   atomically with one that has the new entry (an entry with the same name is
///   replaced). A failure before that leaves `index.json` as it was. Concurrent
///   writers to the same layout are serialised with `flock` on the directory.
/// - anything else: refused, so a mistyped destination never destroys a directory.
///
/// Returns the `index.json` entry written.
pub fn write_oci_layout(src: &dyn Source, dir: &Path, tag: Option<&str>) -> Result<Descriptor> {
    let g = collect(src)?;
    let mut entry = g.root_descriptor()?;
    entry.annotations = ref_name_annotations(tag);

    if dir.join(OCI_LAYOUT_FILE).is_file() {
        let store = BlobStore::new(dir.join("blobs"))?;
        put_all(src, &g, &store)?;
        // Serialise read-modify-write of index.json between hoist processes with a
        // lock on the layout directory itself (no lock file left behind).
        let lock = fs::File::open(dir).map_err(|e| Error::io(dir, e))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| Error::io(dir, e.into()))?;
        let index_path = dir.join("index.json");
        let mut index = match fs::read(&index_path) {
            Ok(b) => parse_index(&b, &index_path.display().to_string())?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => new_index(Vec::new()),
            Err(e) => return Err(Error::io(&index_path, e)),
        };
        index.manifests.retain(|m| match tag {
            Some(t) => m.annotation(ANNOTATION_REF_NAME) != Some(t),
            None => !(m.digest == entry.digest && m.annotation(ANNOTATION_REF_NAME).is_none()),
        });
        index.manifests.push(entry.clone());
        atomic_write(&index_path, &to_canonical_json(&index))?;
        drop(lock);
        tracing::info!(dir = %dir.display(), digest = %entry.digest, "added image to OCI layout");
        return Ok(entry);
    }

    match fs::read_dir(dir) {
        Ok(mut rd) => {
            if rd.next().is_some() {
                return Err(Error::Format(format!(
                    "{}: exists and is not an OCI image layout (no {OCI_LAYOUT_FILE} file); \
                     refusing to replace it",
                    dir.display()
                )));
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(dir, e)),
    }
    let out = AtomicDir::create(dir)?;
    let store = BlobStore::new(out.path().join("blobs"))?;
    put_all(src, &g, &store)?;
    fs::write(out.path().join(OCI_LAYOUT_FILE), OCI_LAYOUT_CONTENT)
        .map_err(|e| Error::io(out.path(), e))?;
    let index = new_index(vec![entry.clone()]);
    atomic_write(&out.path().join("index.json"), &to_canonical_json(&index))?;
    out.commit()?;
    tracing::info!(dir = %dir.display(), digest = %entry.digest, "wrote OCI layout");
    Ok(entry)
}

/// Store every document and blob of `g` in a layout's `blobs/`, readable by all
/// (an output is meant to be shared: 0644 less the umask, not the store's 0600).
fn put_all(src: &dyn Source, g: &ImageGraph, store: &BlobStore) -> Result<()> {
    for doc in &g.documents {
        let d = document_descriptor(doc);
        store.put_verified(&doc.bytes[..], &d)?;
        share(store, &d.digest);
    }
    let mode = 0o444 & !crate::fsutil::current_umask();
    for d in &g.blobs {
        if !store.has_descriptor(d) {
            match src.blob_file(d) {
                Some(file) => {
                    store.place_from(&file, d, mode)?;
                }
                None => put_blob(src, d, store)?,
            }
        }
        share(store, &d.digest);
    }
    Ok(())
}

/// Blobs of an output are readable by all and sealed (0444 less the umask): they
/// may be hard links to the cache's own immutable blobs.
fn share(store: &BlobStore, digest: &Digest) {
    use std::os::unix::fs::PermissionsExt;
    let p = store.path(digest);
    let mode = 0o444 & !crate::fsutil::current_umask();
    if let Ok(m) = fs::metadata(&p) {
        if m.permissions().mode() & 0o777 != mode {
            // Best effort: a blob another user put in a shared layout stays as it is.
            let _ = fs::set_permissions(&p, fs::Permissions::from_mode(mode));
        }
    }
}

/// What goes into an archive member.
enum Content {
    Dir,
    Bytes(Vec<u8>),
    Blob(Box<Descriptor>),
}

/// How [`write_tar`] reaches the file under `W` for in-kernel copies, if any.
type RawFile<W> = fn(&mut W) -> Option<io::Result<&mut fs::File>>;

fn no_raw_file<W>(_: &mut W) -> Option<io::Result<&mut fs::File>> {
    None
}

fn atomic_raw_file(w: &mut AtomicFile) -> Option<io::Result<&mut fs::File>> {
    Some(w.raw_file())
}

/// Write sorted members with fixed headers into a tar stream. Blobs the source has
/// as local files are copied with `copy_file_range` when `raw` gives the output
/// file.
fn write_tar<W: Write>(
    src: &dyn Source,
    out: W,
    members: BTreeMap<String, Content>,
    what: &str,
    raw: RawFile<W>,
) -> Result<W> {
    let io_err = |e: io::Error| Error::stream(format!("writing {what}"), e);
    let mut b = tar::Builder::new(out);
    let header = |size: u64, dir: bool| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(if dir {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        });
        h.set_mode(if dir { 0o755 } else { 0o644 });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(size);
        h
    };
    for (name, content) in members {
        match content {
            Content::Dir => {
                let mut h = header(0, true);
                b.append_data(&mut h, format!("{name}/"), io::empty())
                    .map_err(io_err)?;
            }
            Content::Bytes(bytes) => {
                let mut h = header(bytes.len() as u64, false);
                b.append_data(&mut h, &name, &bytes[..]).map_err(io_err)?;
            }
            Content::Blob(d) => {
                let mut h = header(d.size, false);
                if let Some(file) = src.blob_file(&d) {
                    if h.set_path(&name).is_ok() {
                        h.set_cksum();
                        if let Some(out) = raw(b.get_mut()) {
                            let out = out.map_err(io_err)?;
                            out.write_all(h.as_bytes()).map_err(io_err)?;
                            let mut f = fs::File::open(&file).map_err(|e| Error::io(&file, e))?;
                            crate::place::copy_range(&mut f, out, d.size).map_err(|e| {
                                Error::stream(
                                    format!("copying {} from {}", d.digest, file.display()),
                                    e,
                                )
                            })?;
                            let pad = (512 - d.size % 512) % 512;
                            out.write_all(&[0u8; 512][..pad as usize]).map_err(io_err)?;
                            continue;
                        }
                    }
                }
                let r = open_verified(src, &d)?;
                b.append_data(&mut h, &name, r).map_err(|e| {
                    Error::stream(format!("copying {} from {}", d.digest, src.name()), e)
                })?;
            }
        }
    }
    b.into_inner().map_err(io_err)
}

fn add_blob_dirs(members: &mut BTreeMap<String, Content>) {
    let algs: BTreeSet<String> = members
        .keys()
        .filter_map(|k| k.strip_prefix("blobs/"))
        .filter_map(|k| k.split_once('/').map(|(a, _)| a.to_string()))
        .collect();
    members.insert("blobs".into(), Content::Dir);
    for a in algs {
        members.insert(format!("blobs/{a}"), Content::Dir);
    }
}

/// Write `src` as an OCI archive (an OCI image layout in a tar) at `file`, naming the
/// image `tag`. The file appears atomically. Returns the `index.json` entry.
pub fn write_oci_archive(src: &dyn Source, file: &Path, tag: Option<&str>) -> Result<Descriptor> {
    let out = AtomicFile::create(file)?;
    let (out, entry) = oci_archive_to(src, out, tag, atomic_raw_file)?;
    out.commit()?;
    tracing::info!(file = %file.display(), digest = %entry.digest, "wrote OCI archive");
    Ok(entry)
}

/// Stream `src` as an OCI archive into `out` (for `dest=-`); see [`write_oci_archive`].
/// Returns the writer and the `index.json` entry.
pub fn write_oci_archive_to<W: Write>(
    src: &dyn Source,
    out: W,
    tag: Option<&str>,
) -> Result<(W, Descriptor)> {
    oci_archive_to(src, out, tag, no_raw_file)
}

fn oci_archive_to<W: Write>(
    src: &dyn Source,
    out: W,
    tag: Option<&str>,
    raw: RawFile<W>,
) -> Result<(W, Descriptor)> {
    let g = collect(src)?;
    let mut entry = g.root_descriptor()?;
    entry.annotations = ref_name_annotations(tag);
    let mut members = BTreeMap::new();
    for doc in &g.documents {
        members.insert(blob_path(&doc.digest()), Content::Bytes(doc.bytes.clone()));
    }
    for d in &g.blobs {
        members.insert(blob_path(&d.digest), Content::Blob(Box::new(d.clone())));
    }
    add_blob_dirs(&mut members);
    members.insert(
        OCI_LAYOUT_FILE.into(),
        Content::Bytes(OCI_LAYOUT_CONTENT.to_vec()),
    );
    members.insert(
        "index.json".into(),
        Content::Bytes(to_canonical_json(&new_index(vec![entry.clone()]))),
    );
    let out = write_tar(src, out, members, "OCI archive", raw)?;
    Ok((out, entry))
}

/// Split `repo[:tag]` into repository and tag (`latest` when absent).
fn split_repo_tag(name: &str) -> Result<(String, String)> {
    if name.is_empty() || name.contains('@') || name.chars().any(char::is_whitespace) {
        return Err(Error::Format(format!(
            "invalid repository tag {name:?}: expected REPOSITORY[:TAG]"
        )));
    }
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[last_slash..].rfind(':') {
        Some(i) => {
            let (repo, tag) = (&name[..last_slash + i], &name[last_slash + i + 1..]);
            if repo.is_empty() || tag.is_empty() {
                return Err(Error::Format(format!(
                    "invalid repository tag {name:?}: expected REPOSITORY[:TAG]"
                )));
            }
            Ok((repo.to_string(), tag.to_string()))
        }
        None => Ok((name.to_string(), "latest".to_string())),
    }
}

/// The full name containerd annotates (`docker.io/library/busybox:latest`).
fn containerd_name(repo: &str, tag: &str) -> String {
    let first = repo.split('/').next().unwrap_or(repo);
    let has_domain =
        repo.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    if has_domain {
        format!("{repo}:{tag}")
    } else if repo.contains('/') {
        format!("docker.io/{repo}:{tag}")
    } else {
        format!("docker.io/library/{repo}:{tag}")
    }
}

/// Write the `platform` image of `src` as a docker-archive at `file` (see the module
/// docs for the layout), tagged `repo_tags` (`repo[:tag]`, `latest` by default).
/// Layers are copied as they are. The file appears atomically. Returns the
/// manifest's descriptor.
pub fn write_docker_archive(
    src: &dyn Source,
    file: &Path,
    repo_tags: &[String],
    platform: &Platform,
) -> Result<Descriptor> {
    let out = AtomicFile::create(file)?;
    let (out, desc) = docker_archive_to(src, out, repo_tags, platform, atomic_raw_file)?;
    out.commit()?;
    tracing::info!(file = %file.display(), digest = %desc.digest, "wrote docker-archive");
    Ok(desc)
}

/// Stream the `platform` image of `src` as a docker-archive into `out` (for
/// `dest=-`); see [`write_docker_archive`]. Returns the writer and the manifest's
/// descriptor.
pub fn write_docker_archive_to<W: Write>(
    src: &dyn Source,
    out: W,
    repo_tags: &[String],
    platform: &Platform,
) -> Result<(W, Descriptor)> {
    docker_archive_to(src, out, repo_tags, platform, no_raw_file)
}

fn docker_archive_to<W: Write>(
    src: &dyn Source,
    out: W,
    repo_tags: &[String],
    platform: &Platform,
    raw: RawFile<W>,
) -> Result<(W, Descriptor)> {
    let img = resolve(src, platform)?;
    let tags: Vec<(String, String)> = repo_tags
        .iter()
        .map(|t| split_repo_tag(t))
        .collect::<Result<_>>()?;
    let mut members = BTreeMap::new();
    let config_path = blob_path(&img.manifest.config.digest);
    members.insert(config_path.clone(), Content::Bytes(img.config_raw.clone()));
    let compressions: std::collections::HashSet<_> = img
        .manifest
        .layers
        .iter()
        .map(|l| media_type::layer_compression(&l.media_type))
        .collect();
    if compressions.contains(&Some(media_type::Compression::Zstd)) || compressions.len() > 1 {
        // docker load before 25 has no zstd, and go-containerregistry's tarball reader
        // (Concourse's registry-image) decides from the first layer whether all are gzip.
        tracing::warn!(
            source = %src.name(),
            "the image mixes layer compressions or uses zstd; older docker load and \
             go-containerregistry may not read this docker-archive"
        );
    }
    let mut layer_paths = Vec::new();
    for l in &img.manifest.layers {
        if l.urls.as_ref().is_some_and(|u| !u.is_empty()) && !src.has_blob(l)? {
            return Err(Error::Format(format!(
                "{}: foreign layer {} is not available and a docker-archive needs every layer",
                src.name(),
                l.digest
            )));
        }
        let p = blob_path(&l.digest);
        layer_paths.push(p.clone());
        members.insert(p, Content::Blob(Box::new(l.clone())));
    }
    let manifest_mt = document_media_type(&img.manifest_raw)?;
    let manifest_desc = Descriptor::new(
        manifest_mt,
        img.manifest_raw.digest(),
        img.manifest_raw.bytes.len() as u64,
    );
    members.insert(
        blob_path(&manifest_desc.digest),
        Content::Bytes(img.manifest_raw.bytes.clone()),
    );
    add_blob_dirs(&mut members);

    let full_tags: Vec<String> = tags.iter().map(|(r, t)| format!("{r}:{t}")).collect();
    let manifest_json = serde_json::json!([{
        "Config": config_path,
        "RepoTags": if full_tags.is_empty() { serde_json::Value::Null } else { full_tags.clone().into() },
        "Layers": layer_paths,
    }]);
    members.insert(
        "manifest.json".into(),
        Content::Bytes(to_canonical_json(&manifest_json)),
    );
    if let Some(top) = img.manifest.layers.last() {
        if !tags.is_empty() {
            let mut repos: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
            for (r, t) in &tags {
                repos
                    .entry(r.clone())
                    .or_default()
                    .insert(t.clone(), top.digest.hex().to_string());
            }
            members.insert(
                "repositories".into(),
                Content::Bytes(to_canonical_json(&repos)),
            );
        }
    }
    let entries = if tags.is_empty() {
        vec![manifest_desc.clone()]
    } else {
        tags.iter()
            .map(|(r, t)| {
                let mut d = manifest_desc.clone();
                d.annotations = Some(BTreeMap::from([
                    (
                        ANNOTATION_CONTAINERD_NAME.to_string(),
                        containerd_name(r, t),
                    ),
                    (ANNOTATION_REF_NAME.to_string(), t.clone()),
                ]));
                d
            })
            .collect()
    };
    members.insert(
        "index.json".into(),
        Content::Bytes(to_canonical_json(&new_index(entries))),
    );
    members.insert(
        OCI_LAYOUT_FILE.into(),
        Content::Bytes(OCI_LAYOUT_CONTENT.to_vec()),
    );
    let out = write_tar(src, out, members, "docker-archive", raw)?;
    Ok((out, manifest_desc))
}

/// The identity of a built image, for `--iidfile` and `--metadata-file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageMetadata {
    /// Digest of the root document (the manifest, or the index of a multi-platform image).
    pub manifest_digest: Digest,
    /// Digest of the config of the image for the requested platform.
    pub config_digest: Digest,
    /// Size in bytes of the root document.
    pub size: u64,
    /// Media type of the root document.
    pub media_type: String,
}

impl ImageMetadata {
    /// Describe the root of `src` and the config of its `platform` image.
    pub fn of(src: &dyn Source, platform: &Platform) -> Result<ImageMetadata> {
        let root = src.root()?;
        let media_type = document_media_type(&root)?;
        let img = crate::source::resolve_document(src, root.clone(), platform)?;
        Ok(ImageMetadata {
            manifest_digest: root.digest(),
            config_digest: img.manifest.config.digest.clone(),
            size: root.bytes.len() as u64,
            media_type,
        })
    }

    /// Whether the root is an index (a multi-platform image).
    pub fn is_index(&self) -> bool {
        media_type::is_index(&self.media_type)
    }

    /// The image ID `docker build --iidfile` and buildx write: the config digest, or
    /// for a multi-platform image (no one config) the index digest.
    pub fn image_id(&self) -> &Digest {
        if self.is_index() {
            &self.manifest_digest
        } else {
            &self.config_digest
        }
    }

    /// The `--metadata-file` JSON, with BuildKit's keys (`containerimage.digest`,
    /// `containerimage.config.digest`, `containerimage.descriptor`).
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::json!({
            "containerimage.digest": self.manifest_digest.to_string(),
            "containerimage.descriptor": {
                "mediaType": self.media_type,
                "digest": self.manifest_digest.to_string(),
                "size": self.size,
            },
        });
        // BuildKit names a config only for a single-platform image.
        if !self.is_index() {
            v["containerimage.config.digest"] = self.config_digest.to_string().into();
        }
        let mut out = serde_json::to_vec_pretty(&v).expect("JSON values serialise");
        out.push(b'\n');
        out
    }

    /// Write the `--metadata-file` atomically.
    pub fn write_metadata_file(&self, path: &Path) -> Result<()> {
        atomic_write(path, &self.to_json())
    }

    /// Write the `--iidfile` (the image ID, no newline, as docker does) atomically.
    pub fn write_iidfile(&self, path: &Path) -> Result<()> {
        atomic_write(path, self.image_id().to_string().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_tags() {
        assert_eq!(
            split_repo_tag("busybox").unwrap(),
            ("busybox".into(), "latest".into())
        );
        assert_eq!(
            split_repo_tag("localhost:5000/a/b:v1").unwrap(),
            ("localhost:5000/a/b".into(), "v1".into())
        );
        assert_eq!(
            split_repo_tag("localhost:5000/a").unwrap(),
            ("localhost:5000/a".into(), "latest".into())
        );
        assert!(split_repo_tag("a@sha256:00").is_err());
        assert!(split_repo_tag("a:").is_err());
        assert_eq!(
            containerd_name("busybox", "1"),
            "docker.io/library/busybox:1"
        );
        assert_eq!(containerd_name("me/app", "1"), "docker.io/me/app:1");
        assert_eq!(
            containerd_name("localhost:5000/a", "1"),
            "localhost:5000/a:1"
        );
    }
}
