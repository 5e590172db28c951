//! Owner ids the applier cannot give a file are refused, named, never mapped to
//! another owner: `(uid_t)-1` (which `chown` reads as "leave unchanged", and which
//! crashed debug builds in rustix), ids past 32 bits (truncated before), and PAX
//! records that are not integers (`uid=-1` became root through a float parse).
//! Found by the `layer` fuzz target (fuzz/regressions/layer/).

use hoist_image::layer::{apply_layer, ApplyOptions};
use hoist_image::Error;

fn layer(pax: Option<(&str, &str)>, header_uid: u64) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    if let Some((k, v)) = pax {
        b.append_pax_extensions([(k, v.as_bytes())]).unwrap();
    }
    let mut h = tar::Header::new_gnu();
    h.set_path("f").unwrap();
    h.set_size(1);
    h.set_mode(0o644);
    h.set_uid(header_uid);
    h.set_cksum();
    b.append(&h, &b"x"[..]).unwrap();
    b.into_inner().unwrap()
}

fn apply(blob: &[u8]) -> hoist_image::Result<std::fs::Metadata> {
    let root = tempfile::tempdir().unwrap();
    // Owners are given as root (the default then); the check comes first either way.
    apply_layer(blob, None, root.path(), &ApplyOptions::default())?;
    Ok(std::fs::symlink_metadata(root.path().join("f")).unwrap())
}

#[test]
fn invalid_owner_ids_are_refused_with_the_id() {
    for (blob, shown) in [
        (layer(Some(("uid", "-1")), 0), "\"-1\""),
        (layer(Some(("gid", "1e3")), 0), "\"1e3\""),
        (layer(Some(("uid", "4294967295")), 0), "4294967295"),
        (layer(Some(("uid", "4294967296")), 0), "4294967296"),
        (layer(None, 4294967295), "4294967295"),
        (layer(None, 1 << 40), &(1u64 << 40).to_string()),
    ] {
        match apply(&blob) {
            Err(Error::UnsafeEntry { entry, reason }) => {
                assert_eq!(entry, "f");
                assert!(reason.contains(shown), "{reason}");
            }
            other => panic!("{shown}: expected a refusal, got {other:?}"),
        }
    }
}

#[test]
fn valid_owner_ids_still_apply() {
    use std::os::unix::fs::MetadataExt;
    let root = rustix::process::geteuid().is_root();
    for blob in [layer(Some(("uid", "1000")), 0), layer(None, 1000)] {
        let m = apply(&blob).unwrap();
        if root {
            assert_eq!(m.uid(), 1000);
        }
    }
}
