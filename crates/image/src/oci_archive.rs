//! Reading OCI archives: an OCI image layout (see [`crate::layout`]) inside a tar file,
//! read in place through a [`TarIndex`] (nothing is extracted).

use std::io::Read;
use std::path::Path;

use crate::archive::TarIndex;
use crate::layout::{blob_path, parse_index, read_document, select_entry, OCI_LAYOUT_FILE};
use crate::source::MAX_DOCUMENT_SIZE;
use crate::{Descriptor, Error, Index, RawDocument, Result, Source};

/// An image in an OCI archive (`oci-archive:FILE[:REF]`).
#[derive(Debug, Clone)]
pub struct OciArchiveSource {
    tar: TarIndex,
    reference: Option<String>,
    index: Index,
    root_desc: Descriptor,
    root: RawDocument,
}

impl OciArchiveSource {
    /// Index the archive at `path` and select the image `reference` (a name,
    /// `@DIGEST`, or `None` for the only image).
    pub fn open(path: impl AsRef<Path>, reference: Option<&str>) -> Result<OciArchiveSource> {
        let tar = TarIndex::open(path.as_ref())?;
        let what = format!("OCI archive {}", path.as_ref().display());
        if !tar.contains(OCI_LAYOUT_FILE) {
            return Err(Error::Format(format!(
                "{what}: not an OCI archive (no {OCI_LAYOUT_FILE} member)"
            )));
        }
        let bytes = tar.read_member("index.json", MAX_DOCUMENT_SIZE)?;
        let index = parse_index(&bytes, &format!("{what}: index.json"))?;
        let root_desc = select_entry(&index, reference, &what)?;
        let root = read_document(
            tar.open_member(&blob_path(&root_desc.digest))?,
            &root_desc,
            &what,
        )?;
        Ok(OciArchiveSource {
            tar,
            reference: reference.map(str::to_string),
            index,
            root_desc,
            root,
        })
    }

    /// The archive's `index.json`.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// The selected `index.json` entry.
    pub fn root_descriptor(&self) -> &Descriptor {
        &self.root_desc
    }
}

impl Source for OciArchiveSource {
    fn name(&self) -> String {
        match &self.reference {
            Some(r) => format!("oci-archive:{}:{r}", self.tar.path().display()),
            None => format!("oci-archive:{}", self.tar.path().display()),
        }
    }

    fn root(&self) -> Result<RawDocument> {
        Ok(self.root.clone())
    }

    fn manifest(&self, desc: &Descriptor) -> Result<RawDocument> {
        if desc.digest == self.root_desc.digest {
            return Ok(self.root.clone());
        }
        read_document(
            self.tar.open_member(&blob_path(&desc.digest))?,
            desc,
            &self.name(),
        )
    }

    fn blob(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send + '_>> {
        Ok(Box::new(self.tar.open_member(&blob_path(&desc.digest))?))
    }

    fn has_blob(&self, desc: &Descriptor) -> Result<bool> {
        Ok(self.tar.contains(&blob_path(&desc.digest)))
    }
}
