//! Writer → applier round trips on real files, determinism, and compatibility
//! with GNU tar, gzip and zstd.

mod layer_util;

use std::fs;
use std::io::Read;
use std::os::unix::fs::{lchown, symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;

use hoist_image::layer::{
    apply_layer, sort_entries, walk_dir, write_layer_blob, ApplyOptions, Compression, Entry,
    EntryKind, LayerWriter, ModeOverride, MtimePolicy, Ownership, WalkOptions, WhiteoutMode,
    WriteOptions,
};
use hoist_image::Digest;
use layer_util::{is_root, raw_entry, raw_tar, snapshot};
use rustix::fs::{AtFlags, FileType, Mode, Timespec, Timestamps, CWD};

fn set_mtime(p: &Path, t: i64) {
    let ts = Timespec {
        tv_sec: t,
        tv_nsec: 0,
    };
    rustix::fs::utimensat(
        CWD,
        p,
        &Timestamps {
            last_access: ts,
            last_modification: ts,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A tree with every kind of entry the writer supports (devices, owners and
/// capabilities only as root). Directory mtimes are set last.
fn make_tree(root: &Path) {
    let d = root.join("d");
    fs::create_dir(&d).unwrap();
    fs::write(d.join("small.txt"), "hello\n").unwrap();
    chmod(&d.join("small.txt"), 0o640);
    fs::write(d.join("big.bin"), pseudo_random(3 * 1024 * 1024 + 123, 7)).unwrap();
    fs::hard_link(d.join("small.txt"), d.join("hard")).unwrap();
    fs::write(root.join("empty"), "").unwrap();
    fs::write(root.join("setuid"), "#!/bin/sh\n").unwrap();
    chmod(&root.join("setuid"), 0o4755);
    fs::create_dir(root.join("sgid-dir")).unwrap();
    chmod(&root.join("sgid-dir"), 0o2775);
    fs::create_dir(root.join("tmp")).unwrap();
    chmod(&root.join("tmp"), 0o1777);
    symlink("d/small.txt", root.join("link")).unwrap();
    symlink("/etc/passwd", root.join("abs")).unwrap();
    let long_target = format!("{}/target", "t".repeat(150));
    symlink(&long_target, root.join("long-link")).unwrap();
    rustix::fs::mknodat(
        CWD,
        root.join("pipe"),
        FileType::Fifo,
        Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    // A path > 100 bytes (USTAR prefix split) and a component > 100 bytes (PAX path).
    let deep = root.join(format!("{}/{}", "p".repeat(60), "q".repeat(60)));
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join("file-in-a-deep-dir.txt"), "deep").unwrap();
    let long = root.join("long");
    fs::create_dir(&long).unwrap();
    fs::write(long.join("n".repeat(200)), "long name").unwrap();
    fs::create_dir(root.join("é")).unwrap();
    fs::write(root.join("é/ü.txt"), "unicode").unwrap();
    if is_root() {
        rustix::fs::mknodat(
            CWD,
            root.join("null"),
            FileType::CharacterDevice,
            Mode::from_raw_mode(0o666),
            rustix::fs::makedev(1, 3),
        )
        .unwrap();
        rustix::fs::mknodat(
            CWD,
            root.join("loop9"),
            FileType::BlockDevice,
            Mode::from_raw_mode(0o660),
            rustix::fs::makedev(7, 9),
        )
        .unwrap();
        lchown(d.join("small.txt"), Some(1234), Some(5678)).unwrap();
        lchown(root.join("link"), Some(42), Some(43)).unwrap();
        lchown(root.join("empty"), Some(3_000_000), Some(3_000_001)).unwrap();
        lchown(&d, Some(7), Some(8)).unwrap();
        fs::write(root.join("ping"), "cap").unwrap();
        // vfs_cap_data v2: effective, permitted = CAP_NET_RAW.
        let cap: [u8; 20] = [
            1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        rustix::fs::setxattr(
            root.join("ping"),
            "security.capability",
            &cap,
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
    }
    // mtimes, deepest first so directories keep theirs.
    let snap = snapshot(root);
    for (i, p) in snap.keys().rev().enumerate() {
        set_mtime(&root.join(p), 1_600_000_000 + i as i64 * 17);
    }
}

fn preserve_opts(compression: Compression) -> WriteOptions {
    WriteOptions {
        compression,
        mtime: MtimePolicy::Preserve,
        ownership: Ownership::Preserve,
        threads: 2,
        ..Default::default()
    }
}

fn write_blob(
    src: &Path,
    blobs: &Path,
    opts: &WriteOptions,
) -> hoist_image::layer::LayerDescriptor {
    let entries = walk_dir(src, "", &WalkOptions::default(), &|_, _| true).unwrap();
    write_layer_blob(blobs, entries, opts).unwrap()
}

fn blob_path(blobs: &Path, d: &Digest) -> std::path::PathBuf {
    blobs.join("sha256").join(d.hex())
}

#[test]
fn round_trip_every_kind_and_compression() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    make_tree(&src);
    let expected = snapshot(&src);
    assert!(expected.len() >= 18, "{expected:#?}");

    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let blobs = tmp.path().join(format!("blobs-{compression:?}"));
        let desc = write_blob(&src, &blobs, &preserve_opts(compression));
        let path = blob_path(&blobs, &desc.digest);
        let bytes = fs::read(&path).unwrap();
        assert_eq!(Digest::sha256(&bytes), desc.digest);
        assert_eq!(bytes.len() as u64, desc.size);

        for sniff in [None, Some(compression)] {
            let dest = tmp
                .path()
                .join(format!("dest-{compression:?}-{}", sniff.is_some()));
            fs::create_dir(&dest).unwrap();
            let stats = apply_layer(
                fs::File::open(&path).unwrap(),
                sniff,
                &dest,
                &ApplyOptions::default(),
            )
            .unwrap();
            assert_eq!(stats.diff_id, desc.diff_id, "{compression:?}");
            assert_eq!(stats.uncompressed_size, desc.uncompressed_size);
            assert_eq!(snapshot(&dest), expected, "{compression:?}");
        }
    }
}

#[test]
fn gnu_tar_gzip_and_zstd_read_our_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    make_tree(&src);
    let expected = snapshot(&src);

    let tar_blobs = tmp.path().join("tar");
    let desc = write_blob(&src, &tar_blobs, &preserve_opts(Compression::None));
    let tar_path = blob_path(&tar_blobs, &desc.digest);
    assert_eq!(desc.digest, desc.diff_id);

    // Literal names whatever the caller's locale (in the C locale GNU tar escapes UTF-8).
    let list = Command::new("tar")
        .arg("--quoting-style=literal")
        .arg("-tvf")
        .arg(&tar_path)
        .output()
        .unwrap();
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let listing = String::from_utf8(list.stdout).unwrap();
    assert!(listing.contains(&"n".repeat(200)), "{listing}");
    assert!(listing.contains("é/ü.txt"), "{listing}");
    assert!(listing.contains("d/small.txt link to d/hard"), "{listing}");

    // GNU tar extracts the same tree our applier does.
    let gnu = tmp.path().join("gnu");
    fs::create_dir(&gnu).unwrap();
    let mut cmd = Command::new("tar");
    cmd.args(["--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf"])
        .arg(&tar_path)
        .arg("-C")
        .arg(&gnu);
    if is_root() {
        cmd.arg("--same-owner");
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(snapshot(&gnu), expected);

    let gz_blobs = tmp.path().join("gz");
    let gz = write_blob(&src, &gz_blobs, &preserve_opts(Compression::Gzip));
    assert_eq!(gz.diff_id, desc.diff_id);
    let st = Command::new("gzip")
        .arg("-t")
        .arg(blob_path(&gz_blobs, &gz.digest))
        .status()
        .unwrap();
    assert!(st.success());
    let out = Command::new("gzip")
        .arg("-dc")
        .arg(blob_path(&gz_blobs, &gz.digest))
        .output()
        .unwrap();
    assert_eq!(Digest::sha256(&out.stdout), desc.diff_id);

    let zst_blobs = tmp.path().join("zst");
    let zst = write_blob(&src, &zst_blobs, &preserve_opts(Compression::Zstd));
    let out = Command::new("zstd")
        .arg("-dc")
        .arg(blob_path(&zst_blobs, &zst.digest))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(Digest::sha256(&out.stdout), desc.diff_id);
}

#[test]
fn same_context_same_digest_whatever_mtimes_owners_and_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    for (dir, t) in [(&a, 1_000_000_000), (&b, 1_700_000_000)] {
        fs::create_dir_all(dir.join("sub")).unwrap();
        fs::write(dir.join("sub/f"), pseudo_random(2_500_000, 3)).unwrap();
        fs::write(dir.join("g"), "text").unwrap();
        symlink("sub/f", dir.join("l")).unwrap();
        for p in ["sub/f", "g", "l", "sub"] {
            set_mtime(&dir.join(p), t);
        }
        if is_root() && t > 1_500_000_000 {
            for p in ["sub/f", "g", "l", "sub"] {
                lchown(dir.join(p), Some(4242), Some(4343)).unwrap();
            }
        }
    }
    for compression in [Compression::Gzip, Compression::Zstd, Compression::None] {
        let mut results = Vec::new();
        for (dir, threads) in [(&a, 1), (&b, 1), (&a, 4), (&b, 3)] {
            let opts = WriteOptions {
                compression,
                threads,
                ..Default::default()
            };
            let mut w = LayerWriter::new(Vec::new(), &opts).unwrap();
            let entries = walk_dir(dir, "app", &WalkOptions::default(), &|_, _| true).unwrap();
            w.append_all(entries).unwrap();
            results.push(w.finish().unwrap());
        }
        let (first_bytes, first) = &results[0];
        for (bytes, desc) in &results[1..] {
            assert_eq!(desc, first, "{compression:?}");
            assert!(bytes == first_bytes, "{compression:?}: bytes differ");
        }
    }
}

#[test]
fn source_date_epoch_clamps_and_policies_apply() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(src.join("dir")).unwrap();
    fs::write(src.join("dir/old"), "o").unwrap();
    fs::write(src.join("dir/new"), "n").unwrap();
    set_mtime(&src.join("dir/old"), 1_000);
    set_mtime(&src.join("dir/new"), 2_000_000_000);
    set_mtime(&src.join("dir"), 1_500);
    let opts = WriteOptions {
        mtime: MtimePolicy::Preserve,
        source_date_epoch: Some(1_234_567),
        ownership: Ownership::Fixed {
            uid: 1000,
            gid: 1001,
        },
        mode_override: Some(ModeOverride::parse("u=rwx,go=rX").unwrap()),
        ..Default::default()
    };
    let blobs = tmp.path().join("blobs");
    let desc = write_blob(&src, &blobs, &opts);
    let dest = tmp.path().join("dest");
    fs::create_dir(&dest).unwrap();
    apply_layer(
        fs::File::open(blob_path(&blobs, &desc.digest)).unwrap(),
        None,
        &dest,
        &ApplyOptions::default(),
    )
    .unwrap();
    let snap = snapshot(&dest);
    let owner = if is_root() { "1000:1001" } else { "" };
    assert!(snap["dir/old"].contains("mtime=1000"), "{snap:#?}");
    assert!(snap["dir/new"].contains("mtime=1234567"), "{snap:#?}");
    assert!(snap["dir"].contains("mtime=1500"), "{snap:#?}");
    // As GNU chmod: clauses apply in turn, so `X` sees the `x` that `u=rwx` just set.
    assert!(snap["dir/old"].contains("mode=755"), "{snap:#?}");
    assert!(snap["dir"].contains("mode=755"), "{snap:#?}");
    assert!(snap["dir/old"].contains(owner), "{snap:#?}");
}

#[test]
fn entries_from_a_list_with_generated_content_and_order_checks() {
    let mut entries = vec![
        Entry::file_bytes("etc/motd", "hi\n"),
        Entry::dir("etc"),
        Entry::symlink("etc/link", "motd"),
        Entry::new("etc/hard", EntryKind::Hardlink("etc/motd".into()), 0o644),
    ];
    // Unsorted input is refused: the writer never silently depends on input order.
    let mut w = LayerWriter::new(Vec::new(), &WriteOptions::default()).unwrap();
    let err = w.append_all(entries.clone()).unwrap_err().to_string();
    assert!(err.contains("etc"), "{err}");

    sort_entries(&mut entries);
    // A hard link must point at an earlier entry: "etc/hard" sorts before "etc/motd".
    let mut w = LayerWriter::new(Vec::new(), &WriteOptions::default()).unwrap();
    let err = w.append_all(entries.clone()).unwrap_err().to_string();
    assert!(err.contains("etc/hard"), "{err}");

    entries.retain(|e| e.path != "etc/hard");
    entries.push(Entry::new(
        "etc/z-hard",
        EntryKind::Hardlink("/etc/motd".into()),
        0o644,
    ));
    let mut w = LayerWriter::new(Vec::new(), &WriteOptions::default()).unwrap();
    w.append_all(entries).unwrap();
    let (blob, desc) = w.finish().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    apply_layer(&blob[..], None, tmp.path(), &ApplyOptions::default()).unwrap();
    assert_eq!(
        fs::read_to_string(tmp.path().join("etc/z-hard")).unwrap(),
        "hi\n"
    );
    assert_eq!(
        fs::read_link(tmp.path().join("etc/link")).unwrap(),
        Path::new("motd")
    );
    let mut plain = Vec::new();
    flate2::read::MultiGzDecoder::new(&blob[..])
        .read_to_end(&mut plain)
        .unwrap();
    assert_eq!(Digest::sha256(&plain), desc.diff_id);
    assert_eq!(plain.len() % 512, 0);
    assert!(plain.ends_with(&[0u8; 1024]));
}

#[test]
fn oci_whiteouts_and_opaque_dirs_whatever_their_position() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    for p in [
        "a/x",
        "a/sub/y",
        "b/z",
        "b/keep",
        "c",
        "file-then-dir",
        "dir-then-file/f",
    ] {
        fs::create_dir_all(root.join(p).parent().unwrap()).unwrap();
        fs::write(root.join(p), "lower").unwrap();
    }
    let layer = raw_tar(&[
        raw_entry("a/", b'5', "", b""),
        // Added by this layer *before* the opaque marker: must survive it.
        raw_entry("a/new", b'0', "", b"upper"),
        raw_entry("a/sub/", b'5', "", b""),
        raw_entry("a/sub/new2", b'0', "", b"upper"),
        raw_entry("a/.wh..wh..opq", b'0', "", b""),
        raw_entry("b/.wh.z", b'0', "", b""),
        raw_entry(".wh.c", b'0', "", b""),
        raw_entry("file-then-dir/", b'5', "", b""),
        raw_entry("dir-then-file", b'0', "", b"now a file"),
    ]);
    let stats = apply_layer(&layer[..], None, root, &ApplyOptions::default()).unwrap();
    assert_eq!(stats.whiteouts, 3);
    let snap = snapshot(root);
    let paths: Vec<&str> = snap.keys().map(String::as_str).collect();
    assert_eq!(
        paths,
        [
            "a",
            "a/new",
            "a/sub",
            "a/sub/new2",
            "b",
            "b/keep",
            "dir-then-file",
            "file-then-dir"
        ]
    );
    assert!(snap["file-then-dir"].starts_with("dir"));
    assert_eq!(
        fs::read_to_string(root.join("dir-then-file")).unwrap(),
        "now a file"
    );
}

#[test]
fn overlay_upper_dirs_become_whiteouts_and_back() {
    if !is_root() {
        eprintln!("skipped: needs root for 0:0 devices and trusted.* xattrs");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let upper = tmp.path().join("upper");
    fs::create_dir_all(upper.join("opaque")).unwrap();
    fs::write(upper.join("opaque/kept"), "k").unwrap();
    rustix::fs::setxattr(
        upper.join("opaque"),
        "trusted.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    rustix::fs::mknodat(
        CWD,
        upper.join("gone"),
        FileType::CharacterDevice,
        Mode::empty(),
        rustix::fs::makedev(0, 0),
    )
    .unwrap();
    // overlayfs hard-links whiteouts together: they must stay whiteouts.
    fs::hard_link(upper.join("gone"), upper.join("gone2")).unwrap();
    let walk = WalkOptions {
        overlay_upper: true,
        ..Default::default()
    };
    let entries = walk_dir(&upper, "", &walk, &|_, _| true).unwrap();
    let opts = WriteOptions {
        overlay_upper: true,
        compression: Compression::None,
        ..Default::default()
    };
    let mut w = LayerWriter::new(Vec::new(), &opts).unwrap();
    w.append_all(entries).unwrap();
    let (blob, _) = w.finish().unwrap();
    let listing = tar_list(&blob);
    assert_eq!(
        listing,
        [
            ".wh.gone",
            ".wh.gone2",
            "opaque/",
            "opaque/.wh..wh..opq",
            "opaque/kept"
        ]
    );

    // OCI mode onto a lower tree: deletions applied.
    let lower = tmp.path().join("lower");
    fs::create_dir_all(lower.join("opaque")).unwrap();
    fs::write(lower.join("opaque/old"), "o").unwrap();
    fs::write(lower.join("gone"), "g").unwrap();
    fs::write(lower.join("gone2"), "g").unwrap();
    apply_layer(&blob[..], None, &lower, &ApplyOptions::default()).unwrap();
    assert_eq!(
        snapshot(&lower).keys().collect::<Vec<_>>(),
        ["opaque", "opaque/kept"]
    );

    // Overlay mode: back to a 0:0 device and an opaque xattr.
    let ovl = tmp.path().join("ovl");
    fs::create_dir(&ovl).unwrap();
    let opts = ApplyOptions {
        whiteouts: WhiteoutMode::Overlay,
        ..Default::default()
    };
    apply_layer(&blob[..], None, &ovl, &opts).unwrap();
    let snap = snapshot(&ovl);
    assert!(snap["gone"].starts_with("char 0:0"), "{snap:#?}");
    let mut buf = [0u8; 8];
    let n =
        rustix::fs::getxattr(ovl.join("opaque"), "trusted.overlay.opaque", &mut buf[..]).unwrap();
    assert_eq!(&buf[..n], b"y");
}

fn tar_list(blob: &[u8]) -> Vec<String> {
    let mut a = tar::Archive::new(blob);
    a.entries()
        .unwrap()
        .map(|e| String::from_utf8(e.unwrap().path_bytes().into_owned()).unwrap())
        .collect()
}

/// Build a one-layer OCI layout around a layer blob, by hand.
fn oci_layout(dir: &Path, blobs: &Path, layer: &hoist_image::layer::LayerDescriptor) {
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    fs::copy(
        blob_path(blobs, &layer.digest),
        blob_path(&dir.join("blobs"), &layer.digest),
    )
    .unwrap();
    let put = |bytes: Vec<u8>| -> (Digest, usize) {
        let d = Digest::sha256(&bytes);
        let n = bytes.len();
        fs::write(blob_path(&dir.join("blobs"), &d), bytes).unwrap();
        (d, n)
    };
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
        layer.diff_id
    );
    let (cd, cn) = put(config.into_bytes());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cd}","size":{cn}}},"layers":[{{"mediaType":"{}","digest":"{}","size":{}}}]}}"#,
        layer.media_type, layer.digest, layer.size
    );
    let (md, mn) = put(manifest.into_bytes());
    fs::write(
        dir.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{md}","size":{mn},"annotations":{{"org.opencontainers.image.ref.name":"latest"}}}}]}}"#
        ),
    )
    .unwrap();
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

#[test]
fn skopeo_and_umoci_accept_our_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    make_tree(&src);
    let blobs = tmp.path().join("blobs");
    let desc = write_blob(&src, &blobs, &preserve_opts(Compression::Gzip));
    let layout = tmp.path().join("layout");
    oci_layout(&layout, &blobs, &desc);

    // skopeo copies the image, verifying every digest on the way.
    let copy = tmp.path().join("copy");
    let out = Command::new("skopeo")
        .arg("copy")
        .arg(format!("oci:{}:latest", layout.display()))
        .arg(format!("oci:{}:latest", copy.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(blob_path(&copy.join("blobs"), &desc.digest).exists());

    // umoci unpacks it (checking the diffID) into the same tree we apply.
    let bundle = tmp.path().join("bundle");
    let mut cmd = Command::new("umoci");
    cmd.arg("unpack");
    if !is_root() {
        cmd.arg("--rootless");
    }
    let out = cmd
        .arg("--image")
        .arg(format!("{}:latest", layout.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ours = tmp.path().join("ours");
    fs::create_dir(&ours).unwrap();
    apply_layer(
        fs::File::open(blob_path(&blobs, &desc.digest)).unwrap(),
        None,
        &ours,
        &ApplyOptions::default(),
    )
    .unwrap();
    assert_eq!(snapshot(&bundle.join("rootfs")), snapshot(&ours));
}

#[test]
fn walk_filters_prefixes_and_single_files() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("ctx");
    fs::create_dir_all(src.join("node_modules/x")).unwrap();
    fs::create_dir_all(src.join("src")).unwrap();
    fs::write(src.join("node_modules/x/i.js"), "").unwrap();
    fs::write(src.join("src/main.rs"), "fn main() {}").unwrap();
    fs::write(src.join("src/main.rs.bak"), "old").unwrap();
    fs::write(src.join("README"), "r").unwrap();
    let filter = |rel: &Path, is_dir: bool| {
        let ignored_dir = is_dir && rel == Path::new("node_modules");
        let backup = rel.extension() == Some(std::ffi::OsStr::new("bak"));
        !ignored_dir && !backup
    };
    let entries = walk_dir(&src, "/usr/src/app/", &WalkOptions::default(), &filter).unwrap();
    let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "usr/src/app",
            "usr/src/app/README",
            "usr/src/app/src",
            "usr/src/app/src/main.rs"
        ]
    );
    let opts = WalkOptions {
        include_root: false,
        ..Default::default()
    };
    let entries = walk_dir(&src.join("src"), "", &opts, &|_, _| true).unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].path, "main.rs");

    let single = walk_dir(&src.join("README"), "etc/readme", &opts, &|_, _| true).unwrap();
    assert_eq!(single.len(), 1);
    assert!(matches!(single[0].kind, EntryKind::File { size: 1, .. }));
    assert!(walk_dir(&src.join("README"), "", &opts, &|_, _| true).is_err());
}

#[test]
fn without_owner_and_device_rights_those_entries_are_skipped() {
    let mut entries = vec![
        Entry::new(
            "dev-null",
            EntryKind::CharDevice { major: 1, minor: 3 },
            0o666,
        ),
        Entry::new("fifo", EntryKind::Fifo, 0o600),
        Entry {
            uid: 4321,
            gid: 4321,
            ..Entry::file_bytes("owned", "x")
        },
    ];
    sort_entries(&mut entries);
    let opts = WriteOptions {
        ownership: Ownership::Preserve,
        ..Default::default()
    };
    let mut w = LayerWriter::new(Vec::new(), &opts).unwrap();
    w.append_all(entries).unwrap();
    let (blob, _) = w.finish().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let me = rustix::process::geteuid().as_raw();
    let stats = apply_layer(
        &blob[..],
        Some(Compression::Gzip),
        tmp.path(),
        &ApplyOptions {
            same_owner: false,
            allow_devices: false,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(stats.skipped, 1);
    assert_eq!(stats.entries, 3);
    let snap = snapshot(tmp.path());
    assert_eq!(snap.len(), 2, "{snap:#?}");
    assert!(snap["fifo"].starts_with("fifo mode=600"), "{snap:#?}");
    assert!(snap["owned"].contains(&format!("owner={me}:")), "{snap:#?}");
}

#[test]
fn a_file_that_changes_size_while_written_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("f");
    fs::write(&f, "12345").unwrap();
    for size in [4, 6] {
        let entry = Entry::new(
            "app/f",
            EntryKind::File {
                source: hoist_image::layer::FileSource::Path(f.clone()),
                size,
            },
            0o644,
        );
        let mut w = LayerWriter::new(Vec::new(), &WriteOptions::default()).unwrap();
        let err = w.append(&entry).unwrap_err().to_string();
        assert!(err.contains("app/f"), "{err}");
    }
}
