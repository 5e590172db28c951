//! Small registry helpers: bounded, verified blob reads and in-memory uploads.

use std::io::Read;

use hoist_image::{Descriptor, RawDocument};
use hoist_registry::{Client, Reference};

use crate::error::{Error, Result};

/// Largest signature payload, config or attestation blob read into memory (16 MiB: an
/// SBOM of a large image is several MiB).
pub const MAX_SMALL_BLOB: u64 = 16 << 20;

/// Read a small blob of `r`'s repository fully, checking its size and digest.
pub fn read_blob(client: &Client, r: &Reference, desc: &Descriptor) -> Result<Vec<u8>> {
    if desc.size > MAX_SMALL_BLOB {
        return Err(Error::Invalid(format!(
            "{}: blob {} is too large ({} bytes, at most {MAX_SMALL_BLOB})",
            r.name(),
            desc.digest,
            desc.size
        )));
    }
    let mut out = Vec::new();
    hoist_image::VerifyingReader::new(
        client.get_blob(r, desc)?,
        desc.digest.clone(),
        Some(desc.size),
    )
    .take(MAX_SMALL_BLOB + 1)
    .read_to_end(&mut out)
    .map_err(|e| Error::Invalid(format!("{}: reading blob {}: {e}", r.name(), desc.digest)))?;
    Ok(out)
}

/// Upload an in-memory blob (skipped by the registry client when already there).
pub fn put_blob(client: &Client, r: &Reference, desc: &Descriptor, bytes: &[u8]) -> Result<()> {
    let owned = bytes.to_vec();
    let open = move || -> hoist_image::Result<Box<dyn Read + Send>> {
        Ok(Box::new(std::io::Cursor::new(owned.clone())))
    };
    client.upload_blob(r, desc, None, &open)?;
    Ok(())
}

/// The manifest at `r`, or `None` when the tag or digest does not exist.
pub fn get_optional(client: &Client, r: &Reference) -> Result<Option<RawDocument>> {
    match client.get_manifest(r) {
        Ok(d) => Ok(Some(d)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}
