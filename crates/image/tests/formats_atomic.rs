//! A sink whose source fails (or serves corrupt bytes) part way leaves neither its
//! destination nor temporary files behind, and never changes an existing output.

mod formats_util;

use std::path::Path;

use formats_util::{listing, umoci_image, FailingSource};
use hoist_image::layer::ApplyOptions;
use hoist_image::{
    copy_to_store, unpack_rootfs, write_docker_archive, write_oci_archive, write_oci_layout,
    write_rootfs_tar, BlobStore, Error, OciLayoutSource, Platform, Source,
};

fn amd64() -> Platform {
    Platform::parse("linux/amd64").unwrap()
}

const KINDS: [&str; 5] = [
    "oci layout",
    "oci archive",
    "docker archive",
    "local",
    "tar",
];

/// Write one kind of output from `src` under `dir`.
fn write_one(kind: &str, src: &dyn Source, dir: &Path) -> hoist_image::Result<()> {
    match kind {
        "oci layout" => write_oci_layout(src, &dir.join("oci"), Some("t")).map(drop),
        "oci archive" => write_oci_archive(src, &dir.join("oci.tar"), Some("t")).map(drop),
        "docker archive" => {
            write_docker_archive(src, &dir.join("docker.tar"), &["a:b".into()], &amd64()).map(drop)
        }
        "local" => {
            unpack_rootfs(src, &amd64(), &dir.join("local"), &ApplyOptions::default()).map(drop)
        }
        "tar" => write_rootfs_tar(src, &amd64(), &dir.join("rootfs.tar")),
        _ => unreachable!(),
    }
}

#[test]
fn failing_source_leaves_nothing_behind() {
    let t = tempfile::tempdir().unwrap();
    let layout = umoci_image(&t.path().join("img"));
    let good = OciLayoutSource::open(&layout, Some("v1")).unwrap();
    let out = t.path().join("out");
    std::fs::create_dir(&out).unwrap();
    // The image has three blobs: the config and two layers.
    for corrupt in [false, true] {
        for fail_at in [1, 2, 3] {
            for kind in KINDS {
                let src = FailingSource::new(&good, fail_at, corrupt);
                let e = write_one(kind, &src, &out).expect_err(&format!(
                    "{kind} must fail (corrupt={corrupt}, blob {fail_at})"
                ));
                let msg = hoist_image::chain_text(&e);
                let expected = if corrupt {
                    "mismatch"
                } else {
                    "injected failure"
                };
                assert!(
                    msg.contains(expected),
                    "{kind} (corrupt={corrupt}, blob {fail_at}): {msg}"
                );
                assert_eq!(listing(&out), Vec::<String>::new(), "{kind}");
            }
        }
    }
    // The same sinks succeed with the intact source.
    for kind in KINDS {
        write_one(kind, &good, &out).unwrap();
    }
    assert_eq!(
        listing(&out),
        ["docker.tar", "local", "oci", "oci.tar", "rootfs.tar"]
    );
}

#[test]
fn each_sink_alone_leaves_nothing_on_failure() {
    let t = tempfile::tempdir().unwrap();
    let layout = umoci_image(&t.path().join("img"));
    let good = OciLayoutSource::open(&layout, Some("v1")).unwrap();
    let out = t.path().join("out");
    std::fs::create_dir(&out).unwrap();

    let src = FailingSource::new(&good, 2, false);
    assert!(write_oci_layout(&src, &out.join("oci"), Some("t")).is_err());
    assert_eq!(listing(&out), Vec::<String>::new());

    let src = FailingSource::new(&good, 2, false);
    assert!(write_oci_archive(&src, &out.join("oci.tar"), None).is_err());
    assert_eq!(listing(&out), Vec::<String>::new());

    let src = FailingSource::new(&good, 2, true);
    let e = write_docker_archive(&src, &out.join("d.tar"), &[], &amd64()).unwrap_err();
    assert!(hoist_image::chain_text(&e).contains("mismatch"), "{e}");
    assert_eq!(listing(&out), Vec::<String>::new());

    let src = FailingSource::new(&good, 3, false);
    assert!(unpack_rootfs(&src, &amd64(), &out.join("local"), &ApplyOptions::default()).is_err());
    assert_eq!(listing(&out), Vec::<String>::new());

    let src = FailingSource::new(&good, 3, true);
    assert!(write_rootfs_tar(&src, &amd64(), &out.join("r.tar")).is_err());
    assert_eq!(listing(&out), Vec::<String>::new());

    // A store never gets a blob that did not verify.
    let store = BlobStore::new(t.path().join("store")).unwrap();
    let src = FailingSource::new(&good, 2, true);
    assert!(copy_to_store(&src, &store).is_err());
    let tmp: Vec<_> = listing(&t.path().join("store/sha256"))
        .into_iter()
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(tmp.is_empty(), "{tmp:?}");
    let manifest = hoist_image::resolve(&good, &amd64()).unwrap().manifest;
    assert!(!manifest.layers.iter().all(|l| store.has(&l.digest)));
}

#[test]
fn failing_update_keeps_an_existing_layout_and_local_dir() {
    let t = tempfile::tempdir().unwrap();
    let layout = umoci_image(&t.path().join("img"));
    let good = OciLayoutSource::open(&layout, Some("v1")).unwrap();
    let oci = t.path().join("oci");
    write_oci_layout(&good, &oci, Some("a")).unwrap();
    let index_before = std::fs::read(oci.join("index.json")).unwrap();
    let blobs_before = listing(&oci.join("blobs/sha256"));
    // Remove one layer so the update must fetch it, and fail while fetching it.
    let manifest = hoist_image::resolve(&good, &amd64()).unwrap().manifest;
    let top = &manifest.layers[1].digest;
    std::fs::remove_file(oci.join("blobs/sha256").join(top.hex())).unwrap();
    let src = FailingSource::new(&good, 1, true);
    let e = write_oci_layout(&src, &oci, Some("b")).unwrap_err();
    assert!(
        matches!(e, Error::DigestMismatch { .. })
            || hoist_image::chain_text(&e).contains("mismatch"),
        "{e}"
    );
    assert_eq!(std::fs::read(oci.join("index.json")).unwrap(), index_before);
    let mut after = listing(&oci.join("blobs/sha256"));
    after.push(top.hex().to_string());
    after.sort();
    assert_eq!(after, blobs_before, "no temporary or partial blob is left");
    assert_eq!(listing(&oci), ["blobs", "index.json", "oci-layout"]);

    // A failing type=local keeps the previous directory as it was.
    let local = t.path().join("local");
    unpack_rootfs(&good, &amd64(), &local, &ApplyOptions::default()).unwrap();
    let src = FailingSource::new(&good, 3, false);
    assert!(unpack_rootfs(&src, &amd64(), &local, &ApplyOptions::default()).is_err());
    formats_util::check_rootfs(&local);
    assert_eq!(listing(t.path()), ["img", "local", "oci"]);
}

#[test]
fn concurrent_writers_to_one_layout_keep_every_tag() {
    let t = tempfile::tempdir().unwrap();
    let layout = umoci_image(&t.path().join("img"));
    let good = OciLayoutSource::open(&layout, Some("v1")).unwrap();
    let oci = t.path().join("oci");
    write_oci_layout(&good, &oci, Some("first")).unwrap();
    std::thread::scope(|s| {
        for i in 0..8 {
            let (good, oci) = (&good, &oci);
            s.spawn(move || write_oci_layout(good, oci, Some(&format!("t{i}"))).unwrap());
        }
    });
    let index: hoist_image::Index =
        serde_json::from_slice(&std::fs::read(oci.join("index.json")).unwrap()).unwrap();
    let mut names: Vec<String> = index
        .manifests
        .iter()
        .map(|d| {
            d.annotation(hoist_image::layout::ANNOTATION_REF_NAME)
                .unwrap()
                .to_string()
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["first", "t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7"]
    );
    assert_eq!(listing(&oci), ["blobs", "index.json", "oci-layout"]);
}
