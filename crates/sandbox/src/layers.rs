//! Layer blobs in and out of the sandbox: unpacking a blob as an overlay lower
//! directory and writing an upper directory as a layer, through `hoist_image::layer`.
//!
//! These run in the helper's user namespace when hoist is unprivileged (so file owners
//! are the container's view), and in a root helper otherwise.

use std::path::Path;

use hoist_image::layer::{
    apply_layer_checked, walk, write_layer_blob, ApplyOptions, EntryKind, LayerDescriptor,
    LayerName, MtimePolicy, Ownership, StreamCheck, WalkOptions, WhiteoutMode, WriteOptions,
    XattrPolicy,
};
use hoist_image::media_type::{self, Compression};
use serde::{Deserialize, Serialize};

use crate::protocol::{UnpackCheck, WireWriteOptions};
use crate::{Error, Result};

/// Unpack `blob` into `dest` (created if missing) in overlay lower format: whiteouts
/// become 0:0 character devices and opaque directories get `user.overlay.opaque=y`.
/// `same_owner`: give entries the archive's owners (else the unpacking user's).
/// `check`: the layer's index (for errors), expected diff ID and size bound; on a
/// failure `dest` is left for the caller to remove.
pub fn unpack(
    blob: &Path,
    mt: &str,
    dest: &Path,
    same_owner: bool,
    check: &UnpackCheck,
) -> Result<()> {
    let compression = media_type::layer_compression(mt);
    std::fs::create_dir_all(dest).map_err(|e| Error::io(dest, e))?;
    let f = std::fs::File::open(blob).map_err(|e| Error::io(blob, e))?;
    let opts = ApplyOptions {
        same_owner,
        allow_devices: crate::fork::geteuid() == 0,
        whiteouts: WhiteoutMode::Overlay,
        xattrs: true,
        ..ApplyOptions::default()
    };
    let digest = blob
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|h| hoist_image::Digest::parse(&format!("sha256:{h}")).ok());
    let stream = StreamCheck {
        name: LayerName {
            index: check.index,
            digest,
        },
        compression,
        diff_id: check.diff_id.clone(),
        max_size: check.max_size,
    };
    let stats = apply_layer_checked(f, stream, dest, &opts)?;
    tracing::debug!(blob = %blob.display(), files = stats.files, "unpacked layer");
    Ok(())
}

/// The options a RUN layer is written with: `opts` with overlay translation on and
/// owners preserved (they are the container's ids).
pub fn run_layer_options(opts: &WriteOptions) -> WriteOptions {
    let mut o = opts.clone();
    o.overlay_upper = true;
    o.ownership = Ownership::Preserve;
    o
}

/// Write the upper directory `upper` as a layer blob into `blobs_dir`.
pub fn diff(upper: &Path, blobs_dir: &Path, opts: &WriteOptions) -> Result<LayerDescriptor> {
    let opts = run_layer_options(opts);
    let walk_opts = WalkOptions {
        xattrs: XattrPolicy::All,
        hardlinks: true,
        include_root: false,
        overlay_upper: true,
    };
    // overlayfs hard-links all its whiteouts to one inode: they must stay whiteouts,
    // not become hard links to each other.
    let mut whiteouts = std::collections::HashSet::new();
    let entries = walk(upper, "", &walk_opts, &|_, _| true)?.map(move |e| {
        let mut e = e?;
        match &e.kind {
            EntryKind::CharDevice { major: 0, minor: 0 } => {
                whiteouts.insert(e.path.clone());
            }
            EntryKind::Hardlink(target) if whiteouts.contains(target) => {
                e.kind = EntryKind::CharDevice { major: 0, minor: 0 };
            }
            _ => {}
        }
        Ok::<_, hoist_image::Error>(e)
    });
    Ok(write_layer_blob(blobs_dir, entries, &opts)?)
}

/// Remove a tree, making directories writable first where needed (the overlay work
/// dir holds a mode-0 directory).
pub fn remove_tree(dir: &Path) -> Result<()> {
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(dir, e)),
        Ok(_) => {}
    }
    if std::fs::remove_dir_all(dir).is_ok() {
        return Ok(());
    }
    fix_perms(dir);
    std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))
}

fn fix_perms(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return;
    };
    if !meta.is_dir() {
        return;
    }
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            fix_perms(&e.path());
        }
    }
}

/// [`LayerDescriptor`] over the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireLayer {
    digest: hoist_image::Digest,
    diff_id: hoist_image::Digest,
    size: u64,
    uncompressed_size: u64,
    media_type: String,
}

impl From<&LayerDescriptor> for WireLayer {
    fn from(d: &LayerDescriptor) -> Self {
        WireLayer {
            digest: d.digest.clone(),
            diff_id: d.diff_id.clone(),
            size: d.size,
            uncompressed_size: d.uncompressed_size,
            media_type: d.media_type.clone(),
        }
    }
}

impl From<WireLayer> for LayerDescriptor {
    fn from(w: WireLayer) -> Self {
        LayerDescriptor {
            digest: w.digest,
            diff_id: w.diff_id,
            size: w.size,
            uncompressed_size: w.uncompressed_size,
            media_type: w.media_type,
        }
    }
}

/// The wire form of `opts`, refusing what cannot cross a process boundary.
pub fn to_wire(opts: &WriteOptions) -> Result<WireWriteOptions> {
    if opts.mode_override.is_some() {
        return Err(Error::InvalidSpec(
            "a RUN layer cannot have a mode override".into(),
        ));
    }
    Ok(WireWriteOptions {
        compression: match opts.compression {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Zstd => 2,
        },
        level: opts.level,
        threads: opts.threads,
        source_date_epoch: opts.source_date_epoch,
        fixed_mtime: match opts.mtime {
            MtimePolicy::Preserve => None,
            MtimePolicy::Fixed(t) => Some(t),
        },
    })
}

/// Back from the wire form.
pub fn from_wire(w: &WireWriteOptions) -> WriteOptions {
    WriteOptions {
        compression: match w.compression {
            0 => Compression::None,
            2 => Compression::Zstd,
            _ => Compression::Gzip,
        },
        level: w.level,
        threads: w.threads,
        source_date_epoch: w.source_date_epoch,
        mtime: match w.fixed_mtime {
            None => MtimePolicy::Preserve,
            Some(t) => MtimePolicy::Fixed(t),
        },
        ..WriteOptions::default()
    }
}
