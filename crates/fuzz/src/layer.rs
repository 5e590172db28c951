//! The layer applier on a hostile layer: it must refuse or apply, never write outside
//! its root, and resolve paths the same way with `openat2(RESOLVE_IN_ROOT)` as with
//! the user-space walk it falls back to.
//!
//! The input is a layer blob (plain tar, gzip or zstd, sniffed as `apply_layer`
//! does), its tar checksums repaired first ([`crate::tarfix`]). It is applied three
//! times, each into a fresh [`Jail`]: OCI whiteouts with `openat2`, OCI whiteouts
//! in user space (the two trees and outcomes must be equal), and overlay whiteouts.

use hoist_image::layer::{apply_layer, ApplyOptions, WhiteoutMode};

use crate::jail::{snapshot, Jail};
use crate::tarfix::fix_checksums;

/// Bound on the uncompressed size while fuzzing (a small bomb must stop quickly).
pub const MAX_SIZE: u64 = 16 << 20;

/// Options for applying untrusted bytes while fuzzing: no device nodes (the fuzzer
/// runs as root on a shared machine), a small bound; the rest as in a build.
pub fn options(whiteouts: WhiteoutMode, userspace_resolution: bool) -> ApplyOptions {
    ApplyOptions {
        allow_devices: false,
        whiteouts,
        userspace_resolution,
        max_size: MAX_SIZE,
        ..ApplyOptions::default()
    }
}

/// The target body (see the module docs).
pub fn layer(data: &[u8]) {
    let blob = fix_checksums(data);
    let mut seen = Vec::new();
    for (mode, userspace) in [
        (WhiteoutMode::Oci, false),
        (WhiteoutMode::Oci, true),
        (WhiteoutMode::Overlay, false),
    ] {
        let jail = Jail::new();
        let result = apply_layer(&blob[..], None, &jail.root(), &options(mode, userspace));
        let what = format!("{mode:?} whiteouts, user-space resolution {userspace}");
        jail.check(&[], &what);
        if mode == WhiteoutMode::Oci {
            seen.push((
                what,
                result.map(|s| s.diff_id).map_err(|e| e.to_string()),
                snapshot(&jail.root()),
            ));
        }
    }
    let (a, b) = (&seen[0], &seen[1]);
    assert_eq!(
        a.1.is_ok(),
        b.1.is_ok(),
        "outcomes differ: {}: {:?}, {}: {:?}",
        a.0,
        a.1,
        b.0,
        b.1
    );
    assert_eq!(a.2, b.2, "trees differ between {} and {}", a.0, b.0);
}
