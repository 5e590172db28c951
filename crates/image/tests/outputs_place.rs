//! Outputs built from a store on the same file system share or copy its blobs in
//! the kernel (reflink, hard link, `copy_file_range`) and are byte-identical to
//! the streamed outputs; hoist's gzip members are read by skopeo and umoci.

mod formats_util;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use formats_util::{cmd, run, s};
use hoist_image::layer::WriteOptions;
use hoist_image::mutate::{reproducible_time, Image, Layer};
use hoist_image::sink::{write_docker_archive_to, write_oci_archive_to};
use hoist_image::{
    write_docker_archive, write_oci_archive, write_oci_layout, BlobStore, Platform, Source,
};

/// A tree mixing text and pseudo-random files so the gzip layer has stored and
/// deflated members.
fn tree(dir: &Path) {
    let mut x: u64 = 0x9e37_79b9;
    for i in 0..40 {
        let size = 3000 + i * 7919;
        let data: Vec<u8> = if i % 2 == 0 {
            (0..size)
                .map(|j| b"words in a text file\n"[j % 21])
                .collect()
        } else {
            (0..size)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x >> 32) as u8
                })
                .collect()
        };
        fs::write(dir.join(format!("f{i:02}")), data).unwrap();
    }
}

#[test]
fn outputs_reuse_store_blobs_and_match_streamed_bytes() {
    let t = tempfile::tempdir().unwrap();
    let ctx = t.path().join("ctx");
    fs::create_dir(&ctx).unwrap();
    tree(&ctx);
    let store = BlobStore::new(t.path().join("store")).unwrap();
    let opts = WriteOptions {
        threads: 3,
        ..Default::default()
    };
    let layer = Layer::from_dir(&store, &ctx, "data", &opts).unwrap();
    let desc = layer.descriptor().clone();
    // Committed blobs are sealed read-only.
    let blob = store.path(&desc.digest);
    assert_eq!(fs::metadata(&blob).unwrap().permissions().mode() & 0o222, 0);
    let image = Image::empty(&Platform::parse("linux/amd64").unwrap())
        .with_time(reproducible_time())
        .append_layer(layer, "COPY ctx /data")
        .write(&store)
        .unwrap();
    assert_eq!(image.blob_file(&desc).as_deref(), Some(blob.as_path()));

    // OCI layout: the layer is the store's inode (hard link) or a reflink with the
    // same bytes; sealed either way.
    let out = t.path().join("oci");
    write_oci_layout(&image, &out, Some("v1")).unwrap();
    let placed = out.join("blobs/sha256").join(desc.digest.hex());
    assert_eq!(fs::read(&placed).unwrap(), fs::read(&blob).unwrap());
    let (a, b) = (fs::metadata(&blob).unwrap(), fs::metadata(&placed).unwrap());
    assert_eq!(b.permissions().mode() & 0o222, 0);
    let linked = a.ino() == b.ino();
    eprintln!("layout blob hard-linked: {linked}");
    // A second export into the same layout keeps it (present, nothing copied).
    write_oci_layout(&image, &out, Some("v2")).unwrap();

    // Archives written through copy_file_range equal the streamed ones.
    let file = t.path().join("oci.tar");
    write_oci_archive(&image, &file, Some("v1")).unwrap();
    let (streamed, _) = write_oci_archive_to(&image, Vec::new(), Some("v1")).unwrap();
    assert_eq!(fs::read(&file).unwrap(), streamed);
    let dfile = t.path().join("docker.tar");
    let tags = vec!["example/app:v1".to_string()];
    let amd64 = Platform::parse("linux/amd64").unwrap();
    write_docker_archive(&image, &dfile, &tags, &amd64).unwrap();
    let (dstreamed, _) = write_docker_archive_to(&image, Vec::new(), &tags, &amd64).unwrap();
    assert_eq!(fs::read(&dfile).unwrap(), dstreamed);

    // Independent readers: skopeo copies (verifying digests) and umoci unpacks
    // (decompressing every gzip member, checking the diffID).
    let dir = t.path().join("skopeo-dir");
    run(&mut cmd(
        "skopeo",
        &[
            "copy",
            &format!("oci:{}:v1", s(&out)),
            &format!("dir:{}", s(&dir)),
        ],
    ));
    assert_eq!(
        fs::read(dir.join(desc.digest.hex())).unwrap(),
        fs::read(&blob).unwrap()
    );
    let bundle = t.path().join("bundle");
    run(&mut cmd(
        "umoci",
        &[
            "unpack",
            "--rootless",
            "--image",
            &format!("{}:v1", s(&out)),
            s(&bundle),
        ],
    ));
    for i in 0..40 {
        let name = format!("f{i:02}");
        assert_eq!(
            fs::read(bundle.join("rootfs/data").join(&name)).unwrap(),
            fs::read(ctx.join(&name)).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn layers_are_identical_for_any_thread_count() {
    let t = tempfile::tempdir().unwrap();
    let ctx = t.path().join("ctx");
    fs::create_dir(&ctx).unwrap();
    tree(&ctx);
    fs::write(ctx.join("big"), vec![b'z'; 3 << 20]).unwrap();
    let mut digests = Vec::new();
    for threads in [1, 2, 7] {
        let store = BlobStore::new(t.path().join(format!("s{threads}"))).unwrap();
        let opts = WriteOptions {
            threads,
            ..Default::default()
        };
        let l = Layer::from_dir(&store, &ctx, "data", &opts).unwrap();
        digests.push(l.descriptor().digest.clone());
    }
    assert_eq!(digests[0], digests[1]);
    assert_eq!(digests[0], digests[2]);
}
