//! Reading OCI image layouts (directories), per the OCI image-layout spec.
//!
//! ```text
//! DIR/
//!   oci-layout            {"imageLayoutVersion":"1.0.0"}
//!   index.json            an image index; each entry is one image (manifest or index),
//!                         named by the `org.opencontainers.image.ref.name` annotation
//!   blobs/
//!     sha256/<hex>        every manifest, index, config and layer, by digest
//! ```
//!
//! [`OciLayoutSource`] picks one entry of `index.json` (by name, by digest, or the only
//! one) and serves it as a [`Source`]. The same selection logic serves the OCI archive
//! reader ([`crate::oci_archive`]), whose tar holds exactly this tree. Writing layouts
//! is in [`crate::sink`].

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::source::{verify_document, MAX_DOCUMENT_SIZE};
use crate::{Descriptor, Digest, Error, Index, RawDocument, Result, Source};

/// The `oci-layout` file's name.
pub const OCI_LAYOUT_FILE: &str = "oci-layout";
/// The content of the `oci-layout` file hoist writes.
pub const OCI_LAYOUT_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
/// The annotation naming an image in an OCI layout's `index.json`.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The annotation containerd (and docker 25+'s `docker save`) puts the full image name in.
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";

/// The path of a blob inside a layout (`blobs/sha256/<hex>`).
pub fn blob_path(digest: &Digest) -> String {
    format!("blobs/{}/{}", digest.algorithm().as_str(), digest.hex())
}

/// Parse an `index.json`.
pub(crate) fn parse_index(bytes: &[u8], what: &str) -> Result<Index> {
    let index: Index = serde_json::from_slice(bytes).map_err(|e| Error::json(what, e))?;
    if index.schema_version != 2 {
        return Err(Error::Format(format!(
            "{what}: unsupported schemaVersion {}",
            index.schema_version
        )));
    }
    Ok(index)
}

/// The names an index entry answers to.
fn entry_names(d: &Descriptor) -> Vec<&str> {
    [ANNOTATION_REF_NAME, ANNOTATION_CONTAINERD_NAME]
        .iter()
        .filter_map(|k| d.annotation(k))
        .collect()
}

/// Pick the entry of a layout's `index.json` that `reference` names.
///
/// - `None`: the index must have exactly one entry.
/// - `@DIGEST`: the entry with that digest.
/// - a name: the entry whose `org.opencontainers.image.ref.name` (or containerd's
///   `io.containerd.image.name`) annotation equals it.
///
/// Errors list the names available.
pub fn select_entry(index: &Index, reference: Option<&str>, what: &str) -> Result<Descriptor> {
    let available = || {
        let names: Vec<String> = index
            .manifests
            .iter()
            .map(|d| match d.annotation(ANNOTATION_REF_NAME) {
                Some(n) => n.to_string(),
                None => format!("@{}", d.digest),
            })
            .collect();
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    };
    match reference {
        None => match index.manifests.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(Error::NotFound(format!("{what}: the index has no images"))),
            _ => Err(Error::Format(format!(
                "{what} holds {} images; name one (available: {})",
                index.manifests.len(),
                available()
            ))),
        },
        Some(r) => {
            let found = if let Some(d) = r.strip_prefix('@') {
                let d = Digest::parse(d)?;
                index.manifests.iter().find(|m| m.digest == d)
            } else {
                index.manifests.iter().find(|m| entry_names(m).contains(&r))
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

/// Read a manifest or index blob, check its size and digest against `desc`.
pub(crate) fn read_document(
    mut reader: impl Read,
    desc: &Descriptor,
    what: &str,
) -> Result<RawDocument> {
    if desc.size > MAX_DOCUMENT_SIZE {
        return Err(Error::Format(format!(
            "{what}: manifest {} is {} bytes, more than the {MAX_DOCUMENT_SIZE} allowed",
            desc.digest, desc.size
        )));
    }
    let mut bytes = Vec::with_capacity(desc.size as usize);
    (&mut reader)
        .take(desc.size + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::stream(format!("reading {} from {what}", desc.digest), e))?;
    let doc = RawDocument::new(desc.media_type.clone(), bytes);
    verify_document(&doc, desc)?;
    if doc.bytes.len() as u64 != desc.size {
        return Err(Error::Format(format!(
            "{what}: manifest {} is {} bytes, the descriptor says {}",
            desc.digest,
            doc.bytes.len(),
            desc.size
        )));
    }
    Ok(doc)
}

/// An image in an OCI layout directory.
#[derive(Debug, Clone)]
pub struct OciLayoutSource {
    dir: PathBuf,
    reference: Option<String>,
    index: Index,
    root_desc: Descriptor,
    root: RawDocument,
}

impl OciLayoutSource {
    /// Open the image `reference` (a name, `@DIGEST`, or `None` for the only image)
    /// of the layout at `dir`.
    pub fn open(dir: impl AsRef<Path>, reference: Option<&str>) -> Result<OciLayoutSource> {
        let dir = dir.as_ref().to_path_buf();
        let what = format!("OCI layout {}", dir.display());
        let layout = dir.join(OCI_LAYOUT_FILE);
        if !dir.is_dir() {
            return Err(Error::NotFound(format!("{what}: no such directory")));
        }
        if !layout.is_file() {
            return Err(Error::Format(format!(
                "{what}: not an OCI image layout (no {OCI_LAYOUT_FILE} file)"
            )));
        }
        let index_path = dir.join("index.json");
        let bytes = read_limited(&index_path, MAX_DOCUMENT_SIZE)?;
        let index = parse_index(&bytes, &format!("{}", index_path.display()))?;
        let root_desc = select_entry(&index, reference, &what)?;
        let f = open_blob_file(&dir, &root_desc.digest)?;
        let root = read_document(f, &root_desc, &what)?;
        Ok(OciLayoutSource {
            dir,
            reference: reference.map(str::to_string),
            index,
            root_desc,
            root,
        })
    }

    /// The layout directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The layout's whole `index.json`.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// The selected `index.json` entry (with its annotations).
    pub fn root_descriptor(&self) -> &Descriptor {
        &self.root_desc
    }
}

fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::new();
    f.take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::io(path, e))?;
    if out.len() as u64 > limit {
        return Err(Error::Format(format!(
            "{}: larger than the {limit} bytes allowed",
            path.display()
        )));
    }
    Ok(out)
}

fn open_blob_file(dir: &Path, digest: &Digest) -> Result<File> {
    let p = dir.join(blob_path(digest));
    File::open(&p).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            Error::NotFound(format!("blob {digest} in OCI layout {}", dir.display()))
        } else {
            Error::io(p, e)
        }
    })
}

impl Source for OciLayoutSource {
    fn name(&self) -> String {
        match &self.reference {
            Some(r) => format!("oci:{}:{r}", self.dir.display()),
            None => format!("oci:{}", self.dir.display()),
        }
    }

    fn root(&self) -> Result<RawDocument> {
        Ok(self.root.clone())
    }

    fn manifest(&self, desc: &Descriptor) -> Result<RawDocument> {
        if desc.digest == self.root_desc.digest {
            return Ok(self.root.clone());
        }
        let f = open_blob_file(&self.dir, &desc.digest)?;
        read_document(f, desc, &self.name())
    }

    fn blob(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send + '_>> {
        Ok(Box::new(open_blob_file(&self.dir, &desc.digest)?))
    }

    fn has_blob(&self, desc: &Descriptor) -> Result<bool> {
        Ok(self.dir.join(blob_path(&desc.digest)).is_file())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn entry(name: Option<&str>, data: &[u8]) -> Descriptor {
        let mut d = Descriptor::new(
            crate::media_type::OCI_MANIFEST,
            Digest::sha256(data),
            data.len() as u64,
        );
        if let Some(n) = name {
            d.annotations = Some(BTreeMap::from([(
                ANNOTATION_REF_NAME.to_string(),
                n.to_string(),
            )]));
        }
        d
    }

    #[test]
    fn selection() {
        let one = Index {
            schema_version: 2,
            media_type: None,
            artifact_type: None,
            manifests: vec![entry(None, b"a")],
            subject: None,
            annotations: None,
        };
        assert_eq!(select_entry(&one, None, "x").unwrap(), one.manifests[0]);
        let two = Index {
            manifests: vec![entry(Some("v1"), b"a"), entry(Some("v2"), b"b")],
            ..one.clone()
        };
        let e = select_entry(&two, None, "x").unwrap_err().to_string();
        assert!(e.contains("v1, v2"), "{e}");
        assert_eq!(
            select_entry(&two, Some("v2"), "x").unwrap(),
            two.manifests[1]
        );
        let by_digest = format!("@{}", Digest::sha256(b"a"));
        assert_eq!(
            select_entry(&two, Some(&by_digest), "x").unwrap(),
            two.manifests[0]
        );
        let e = select_entry(&two, Some("v3"), "x").unwrap_err().to_string();
        assert!(
            e.contains("\"v3\"") && e.contains("available: v1, v2"),
            "{e}"
        );
    }
}
