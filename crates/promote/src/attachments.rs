//! cosign's tag attachments (`sha256-<hex>.sig`, `.att`, `.sbom`): carried with an
//! image to another repository, byte-exact, so its signatures and attestations verify
//! there too. (Referrers are carried by [`crate::artifact::carry_referrers`].)

use hoist_image::{media_type, Digest, Index};
use hoist_registry::{Client, PushOptions, Reference};

use crate::Result;

/// The suffixes of cosign's attachment tags.
pub const SUFFIXES: &[&str] = &["sig", "att", "sbom"];

/// cosign's attachment tag of `digest`: `sha256-<hex>.<suffix>`.
pub fn attachment_tag(digest: &Digest, suffix: &str) -> String {
    format!("{}-{}.{suffix}", digest.algorithm().as_str(), digest.hex())
}

/// Copy the attachment tags of `digest` (and of each image of it, when it is an index)
/// from `src` to `dst`'s repository. The image must already be in `dst`. Returns how
/// many tags were copied (tags already pointing at the same bytes are left alone).
pub fn carry_tag_attachments(
    client: &Client,
    src: &Reference,
    dst: &Reference,
    digest: &Digest,
) -> Result<usize> {
    let mut digests = vec![digest.clone()];
    let doc = client.get_manifest(&src.with_digest(digest.clone()))?;
    if hoist_image::source::document_media_type(&doc)
        .map(|mt| media_type::is_index(&mt))
        .unwrap_or(false)
    {
        if let Ok(index) = doc.parse::<Index>() {
            digests.extend(index.manifests.into_iter().map(|m| m.digest));
        }
    }
    let mut copied = 0;
    for d in &digests {
        for suffix in SUFFIXES {
            let tag = attachment_tag(d, suffix);
            let from = src.with_tag(&tag)?;
            let Some(have) = client.head_manifest(&from)? else {
                continue;
            };
            let to = dst.with_tag(&tag)?;
            if client.head_manifest(&to)?.map(|h| h.digest) == Some(have.digest.clone()) {
                continue;
            }
            let mount_from = if src.registry() == dst.registry() {
                vec![src.clone()]
            } else {
                Vec::new()
            };
            client.push(
                &client.source(&from),
                std::slice::from_ref(&to),
                &PushOptions {
                    mount_from,
                    ..Default::default()
                },
            )?;
            copied += 1;
        }
    }
    Ok(copied)
}
