//! End-to-end checks of the readers and sinks with independent tools: an image made
//! by umoci is read with hoist's sources, written in every format, and read back by
//! skopeo (inspect + copy), umoci (unpack) and podman (load).

mod formats_util;

use std::collections::BTreeMap;
use std::path::Path;

use formats_util::{check_rootfs, cmd, run, s, umoci_image};
use hoist_image::docker_archive::DOCKER_LAYER_TAR;
use hoist_image::layout::ANNOTATION_REF_NAME;
use hoist_image::media_type;
use hoist_image::source::resolve;
use hoist_image::{
    copy_to_store, unpack_rootfs, validate, write_docker_archive, write_oci_archive,
    write_oci_layout, write_rootfs_tar, BlobStore, Descriptor, DockerArchiveSource, ImageMetadata,
    ImageRef, Index, Manifest, OciArchiveSource, OciLayoutSource, Platform, RawDocument, Source,
    StoreSource,
};
use serde_json::Value;

fn amd64() -> Platform {
    Platform::parse("linux/amd64").unwrap()
}

fn skopeo_inspect(reference: &str) -> Value {
    serde_json::from_str(&run(&mut cmd("skopeo", &["inspect", reference]))).unwrap()
}

fn skopeo_raw(reference: &str) -> String {
    run(&mut cmd("skopeo", &["inspect", "--raw", reference]))
}

fn manifest_of(src: &dyn Source) -> Manifest {
    resolve(src, &amd64()).unwrap().manifest
}

fn layer_digests(m: &Manifest) -> Vec<String> {
    m.layers.iter().map(|l| l.digest.to_string()).collect()
}

fn json_strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

fn umoci_unpack(image: &str, bundle: &Path) {
    run(&mut cmd(
        "umoci",
        &["unpack", "--rootless", "--image", image, s(bundle)],
    ));
}

#[test]
fn every_output_is_read_by_skopeo_umoci_and_podman() {
    let t = tempfile::tempdir().unwrap();
    let layout = umoci_image(t.path());
    let src = OciLayoutSource::open(&layout, Some("v1")).unwrap();
    let root = src.root().unwrap();
    let m = manifest_of(&src);
    assert_eq!(m.layers.len(), 2);
    assert_eq!(m.layers[0].media_type, media_type::OCI_LAYER_GZIP);
    let report = validate(&src).unwrap();
    assert_eq!((report.manifests, report.layers), (1, 2));
    assert!(report.entries >= 5, "{report:?}");
    // skopeo agrees on what the source is.
    let orig = skopeo_inspect(&format!("oci:{}:v1", s(&layout)));
    assert_eq!(orig["Digest"], root.digest().to_string());
    assert_eq!(json_strings(&orig["Layers"]), layer_digests(&m));

    // --- OCI layout ---
    let oci = t.path().join("out-oci");
    let entry = write_oci_layout(&src, &oci, Some("v1")).unwrap();
    assert_eq!(entry.digest, root.digest());
    assert_eq!(entry.annotation(ANNOTATION_REF_NAME), Some("v1"));
    let v = skopeo_inspect(&format!("oci:{}:v1", s(&oci)));
    assert_eq!(v["Digest"], root.digest().to_string());
    assert_eq!(json_strings(&v["Layers"]), layer_digests(&m));
    // The root bytes are stored unchanged.
    assert_eq!(
        skopeo_raw(&format!("oci:{}:v1", s(&oci))).as_bytes(),
        &root.bytes[..]
    );
    // Blobs are shared-readable like the rest of the output, not 0600, and sealed
    // read-only (they may be hard links to the store's immutable blobs).
    let want = 0o444 & !hoist_image::fsutil::current_umask();
    for n in formats_util::listing(&oci.join("blobs/sha256")) {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(oci.join("blobs/sha256").join(&n))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, want, "{n}");
    }
    let bundle = t.path().join("bundle-oci");
    umoci_unpack(&format!("{}:v1", s(&oci)), &bundle);
    check_rootfs(&bundle.join("rootfs"));
    // skopeo copies it to another layout without changing a digest.
    let copy = t.path().join("copy-oci");
    run(&mut cmd(
        "skopeo",
        &[
            "copy",
            "--preserve-digests",
            &format!("oci:{}:v1", s(&oci)),
            &format!("oci:{}:c", s(&copy)),
        ],
    ));
    assert_eq!(
        skopeo_inspect(&format!("oci:{}:c", s(&copy)))["Digest"],
        root.digest().to_string()
    );

    // Adding a second tag to the existing layout keeps the first.
    write_oci_layout(&src, &oci, Some("v2")).unwrap();
    let index: Index =
        serde_json::from_slice(&std::fs::read(oci.join("index.json")).unwrap()).unwrap();
    let names: Vec<_> = index
        .manifests
        .iter()
        .map(|d| d.annotation(ANNOTATION_REF_NAME).unwrap().to_string())
        .collect();
    assert_eq!(names, ["v1", "v2"]);
    // Re-writing a tag replaces its entry instead of adding one.
    write_oci_layout(&src, &oci, Some("v1")).unwrap();
    let index: Index =
        serde_json::from_slice(&std::fs::read(oci.join("index.json")).unwrap()).unwrap();
    assert_eq!(index.manifests.len(), 2);
    assert_eq!(
        skopeo_inspect(&format!("oci:{}:v2", s(&oci)))["Digest"],
        root.digest().to_string()
    );

    // --- OCI archive ---
    let oci_tar = t.path().join("out-oci.tar");
    write_oci_archive(&src, &oci_tar, Some("v1")).unwrap();
    let v = skopeo_inspect(&format!("oci-archive:{}", s(&oci_tar)));
    assert_eq!(v["Digest"], root.digest().to_string());
    assert_eq!(json_strings(&v["Layers"]), layer_digests(&m));
    let copy2 = t.path().join("copy-oci-archive");
    run(&mut cmd(
        "skopeo",
        &[
            "copy",
            "--preserve-digests",
            &format!("oci-archive:{}:v1", s(&oci_tar)),
            &format!("oci:{}:c", s(&copy2)),
        ],
    ));
    let bundle = t.path().join("bundle-oci-archive");
    umoci_unpack(&format!("{}:c", s(&copy2)), &bundle);
    check_rootfs(&bundle.join("rootfs"));
    // Deterministic: the same image gives the same bytes.
    let again = t.path().join("again.tar");
    write_oci_archive(&src, &again, Some("v1")).unwrap();
    assert_eq!(
        std::fs::read(&oci_tar).unwrap(),
        std::fs::read(&again).unwrap()
    );
    // An OCI archive made by GNU tar (`./`-prefixed names, a `./` root entry).
    let gnu = t.path().join("gnu.tar");
    run(&mut cmd("tar", &["-C", s(&oci), "-cf", s(&gnu), "."]));
    let g = OciArchiveSource::open(&gnu, Some("v2")).unwrap();
    assert_eq!(g.root().unwrap(), root);
    assert_eq!(layer_digests(&manifest_of(&g)), layer_digests(&m));
    // hoist reads its own archive back.
    let back = OciArchiveSource::open(&oci_tar, Some("v1")).unwrap();
    assert_eq!(back.root().unwrap(), src.root().unwrap());
    validate(&back).unwrap();
    validate(&OciLayoutSource::open(&oci, Some("v2")).unwrap()).unwrap();

    // --- docker-archive ---
    let docker_tar = t.path().join("out-docker.tar");
    let tags = vec!["localhost/hoist-test/img:v1".to_string()];
    let mdesc = write_docker_archive(&src, &docker_tar, &tags, &amd64()).unwrap();
    assert_eq!(mdesc.digest, root.digest());
    let config: Value =
        serde_json::from_slice(&hoist_image::read_verified(&src, &m.config, 1 << 20).unwrap())
            .unwrap();
    let v = skopeo_inspect(&format!("docker-archive:{}", s(&docker_tar)));
    // skopeo's docker-archive reader serves layers uncompressed, named by diff ID.
    assert_eq!(v["Layers"], config["rootfs"]["diff_ids"]);
    let copy3 = t.path().join("copy-docker-archive");
    run(&mut cmd(
        "skopeo",
        &[
            "copy",
            &format!("docker-archive:{}", s(&docker_tar)),
            &format!("oci:{}:c", s(&copy3)),
        ],
    ));
    let bundle = t.path().join("bundle-docker-archive");
    umoci_unpack(&format!("{}:c", s(&copy3)), &bundle);
    check_rootfs(&bundle.join("rootfs"));
    // It is an OCI layout too (as docker 25+ writes), with the original manifest.
    let v = skopeo_inspect(&format!("oci-archive:{}:v1", s(&docker_tar)));
    assert_eq!(v["Digest"], root.digest().to_string());
    // Round trip through hoist's reader: the same manifest, the same layers.
    let back = DockerArchiveSource::open(&docker_tar, Some("localhost/hoist-test/img:v1")).unwrap();
    assert_eq!(back.root().unwrap().bytes, root.bytes);
    assert_eq!(back.repo_tags(), &tags[..]);
    validate(&back).unwrap();
    let rt = t.path().join("roundtrip");
    write_oci_layout(&back, &rt, Some("rt")).unwrap();
    let bundle = t.path().join("bundle-roundtrip");
    umoci_unpack(&format!("{}:rt", s(&rt)), &bundle);
    check_rootfs(&bundle.join("rootfs"));

    podman_load(
        t.path(),
        &[
            (docker_tar.as_path(), "localhost/hoist-test/img:v1"),
            // podman names an OCI archive's image after its ref.name.
            (oci_tar.as_path(), "localhost/v1:latest"),
        ],
        &config,
    );
}

/// `podman load` each archive into a throw-away store and check the image it lists.
fn podman_load(_work: &Path, archives: &[(&Path, &str)], config: &Value) {
    // podman refuses a run root longer than 50 characters: keep its dirs short.
    let short = tempfile::Builder::new()
        .prefix("pm")
        .tempdir_in("/tmp")
        .unwrap();
    let work = short.path();
    let root = work.join("r");
    let runroot = work.join("s");
    let tmpdir = work.join("t");
    let podman = |args: &[&str]| {
        let mut c = cmd(
            "podman",
            &[
                "--root",
                s(&root),
                "--runroot",
                s(&runroot),
                "--tmpdir",
                s(&tmpdir),
                "--storage-driver",
                "vfs",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "none",
            ],
        );
        c.args(args).env("CONTAINERS_REGISTRIES_CONF", "/dev/null");
        run(&mut c)
    };
    for (archive, tag) in archives {
        let out = podman(&["load", "-i", s(archive)]);
        assert!(out.contains(tag), "podman load output: {out}");
        let images: Value = serde_json::from_str(&podman(&["images", "--format", "json"])).unwrap();
        let img = &images.as_array().unwrap()[0];
        assert!(
            json_strings(&img["Names"]).contains(&tag.to_string()),
            "{img}"
        );
        let inspect: Value = serde_json::from_str(&podman(&["image", "inspect", tag])).unwrap();
        assert_eq!(inspect[0]["RootFS"]["Layers"], config["rootfs"]["diff_ids"]);
    }
    // Clean podman's store (vfs layers may hold read-only dirs).
    let _ = podman(&["rmi", "-a", "-f"]);
}

#[test]
fn reads_skopeo_classic_docker_archive_and_gzip_layers() {
    let t = tempfile::tempdir().unwrap();
    let layout = umoci_image(t.path());
    let src = OciLayoutSource::open(&layout, None).unwrap();
    let m = manifest_of(&src);
    let config_raw = hoist_image::read_verified(&src, &m.config, 1 << 20).unwrap();
    let config: hoist_image::ImageConfig = serde_json::from_slice(&config_raw).unwrap();

    // skopeo writes the classic layout: uncompressed `<hex>.tar` layers, symlinks.
    let classic = t.path().join("classic.tar");
    run(&mut cmd(
        "skopeo",
        &[
            "copy",
            &format!("oci:{}:v1", s(&layout)),
            &format!("docker-archive:{}:example/app:v3", s(&classic)),
        ],
    ));
    let d = DockerArchiveSource::open(&classic, Some("example/app:v3")).unwrap();
    let dm = manifest_of(&d);
    assert_eq!(dm.media_type.as_deref(), Some(media_type::DOCKER_MANIFEST));
    assert!(dm.layers.iter().all(|l| l.media_type == DOCKER_LAYER_TAR));
    let diff_ids: Vec<String> = config
        .rootfs
        .diff_ids
        .iter()
        .map(|d| d.to_string())
        .collect();
    assert_eq!(layer_digests(&dm), diff_ids);
    assert_eq!(dm.config.digest, m.config.digest);
    validate(&d).unwrap();
    // Deterministic synthesis: opening twice gives the same root digest.
    let again = DockerArchiveSource::open(&classic, None).unwrap();
    assert_eq!(again.root().unwrap(), d.root().unwrap());
    // Also selectable as @0 and by the fully qualified name; unknown names list the tags.
    DockerArchiveSource::open(&classic, Some("@0")).unwrap();
    DockerArchiveSource::open(&classic, Some("docker.io/example/app:v3")).unwrap();
    let e = DockerArchiveSource::open(&classic, Some("nope:1"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("example/app:v3"), "{e}");
    check_docker_manifest_image(t.path(), &d, "classic");
    let diff_ids: Vec<String> = config
        .rootfs
        .diff_ids
        .iter()
        .map(|d| d.to_string())
        .collect();
    let v = skopeo_inspect(&format!(
        "docker-archive:{}",
        s(&t.path().join("classic-rewritten.tar"))
    ));
    assert_eq!(json_strings(&v["Layers"]), diff_ids);

    // A classic-layout archive whose layer.tar files are gzip (as some tools write).
    let gz = t.path().join("gzip-classic.tar");
    {
        let f = std::fs::File::create(&gz).unwrap();
        let mut b = tar::Builder::new(f);
        let mut add = |name: &str, data: &[u8]| {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, data).unwrap();
        };
        let mut layers = Vec::new();
        for (i, l) in m.layers.iter().enumerate() {
            let data = std::fs::read(layout.join("blobs/sha256").join(l.digest.hex())).unwrap();
            let name = format!("layer{i}/layer.tar");
            add(&name, &data);
            layers.push(name);
        }
        add("config.json", &config_raw);
        let mj =
            serde_json::json!([{"Config": "config.json", "RepoTags": ["gz:1"], "Layers": layers}]);
        add("manifest.json", &serde_json::to_vec(&mj).unwrap());
        b.into_inner().unwrap();
    }
    let g = DockerArchiveSource::open(&gz, None).unwrap();
    let gm = manifest_of(&g);
    assert!(gm
        .layers
        .iter()
        .all(|l| l.media_type == media_type::DOCKER_LAYER_GZIP));
    assert_eq!(layer_digests(&gm), layer_digests(&m));
    validate(&g).unwrap();
    check_docker_manifest_image(t.path(), &g, "gzip");
}

/// An image with a Docker schema-2 manifest (as a classic docker-archive gives):
/// skopeo 1.9's `oci:` reader ignores index entries that are not OCI manifests, so
/// check it through hoist's own layout reader, and through a docker-archive that
/// skopeo copies and umoci unpacks.
fn check_docker_manifest_image(work: &Path, src: &dyn Source, name: &str) {
    let root = src.root().unwrap();
    let m = manifest_of(src);
    let out = work.join(format!("{name}-layout"));
    write_oci_layout(src, &out, Some("x")).unwrap();
    let back = OciLayoutSource::open(&out, Some("x")).unwrap();
    assert_eq!(back.root().unwrap().bytes, root.bytes);
    assert_eq!(layer_digests(&manifest_of(&back)), layer_digests(&m));
    let tar = work.join(format!("{name}-rewritten.tar"));
    write_docker_archive(&back, &tar, &[format!("{name}:1")], &amd64()).unwrap();
    let copy = work.join(format!("{name}-copy"));
    run(&mut cmd(
        "skopeo",
        &[
            "copy",
            &format!("docker-archive:{}", s(&tar)),
            &format!("oci:{}:c", s(&copy)),
        ],
    ));
    let bundle = work.join(format!("{name}-bundle"));
    umoci_unpack(&format!("{}:c", s(&copy)), &bundle);
    check_rootfs(&bundle.join("rootfs"));
}

#[test]
fn multi_platform_store_source_and_metadata() {
    let t = tempfile::tempdir().unwrap();
    let layout = umoci_image(t.path());
    let src = OciLayoutSource::open(&layout, Some("v1")).unwrap();
    // Import into a store, then serve an index over it.
    let store = BlobStore::new(t.path().join("store")).unwrap();
    let root_desc = copy_to_store(&src, &store).unwrap();
    let mut child: Descriptor = root_desc.clone();
    child.platform = Some(amd64());
    let index = Index {
        schema_version: 2,
        media_type: Some(media_type::OCI_INDEX.into()),
        artifact_type: None,
        manifests: vec![child],
        subject: None,
        annotations: None,
    };
    let root = RawDocument::from_value(media_type::OCI_INDEX, &index);
    let built = StoreSource::new(store, root.clone());
    assert_eq!(validate(&built).unwrap().manifests, 1);
    let out = t.path().join("multi");
    let e = write_oci_layout(&built, &out, Some("m")).unwrap();
    assert_eq!(e.digest, root.digest());
    assert_eq!(e.media_type, media_type::OCI_INDEX);
    assert_eq!(
        skopeo_raw(&format!("oci:{}:m", s(&out))).as_bytes(),
        &root.bytes[..]
    );
    let v = skopeo_inspect(&format!("oci:{}:m", s(&out)));
    assert_eq!(v["Architecture"], "amd64");
    let bundle = t.path().join("bundle-multi");
    umoci_unpack(&format!("{}:m", s(&out)), &bundle);
    check_rootfs(&bundle.join("rootfs"));
    // A docker-archive resolves the platform's image.
    let tar = t.path().join("multi-docker.tar");
    let d = write_docker_archive(&built, &tar, &[], &amd64()).unwrap();
    assert_eq!(d.digest, root_desc.digest);
    let v = skopeo_inspect(&format!("docker-archive:{}", s(&tar)));
    assert_eq!(v["Architecture"], "amd64");
    let e = write_docker_archive(
        &built,
        &t.path().join("arm.tar"),
        &[],
        &Platform::parse("linux/arm64").unwrap(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("linux/arm64") && e.contains("linux/amd64"),
        "{e}"
    );
    assert!(!t.path().join("arm.tar").exists());

    // Metadata: the root's digest, the platform config's digest.
    let meta = ImageMetadata::of(&built, &amd64()).unwrap();
    let m = manifest_of(&src);
    assert_eq!(meta.manifest_digest, root.digest());
    assert_eq!(meta.config_digest, m.config.digest);
    assert_eq!(meta.size, root.bytes.len() as u64);
    let mf = t.path().join("metadata.json");
    meta.write_metadata_file(&mf).unwrap();
    let j: BTreeMap<String, Value> = serde_json::from_slice(&std::fs::read(&mf).unwrap()).unwrap();
    assert_eq!(j["containerimage.digest"], root.digest().to_string());
    // As BuildKit: a multi-platform result names no single config, and its image ID
    // (what buildx writes to --iidfile) is the index digest.
    assert!(!j.contains_key("containerimage.config.digest"), "{j:?}");
    assert_eq!(j["containerimage.descriptor"]["size"], root.bytes.len());
    let iid = t.path().join("iid");
    meta.write_iidfile(&iid).unwrap();
    assert_eq!(
        std::fs::read_to_string(&iid).unwrap(),
        root.digest().to_string()
    );
}

#[test]
fn transport_strings_open_the_right_source() {
    let t = tempfile::tempdir().unwrap();
    let layout = umoci_image(t.path());
    let src = OciLayoutSource::open(&layout, Some("v1")).unwrap();
    let digest = src.root().unwrap().digest();
    for r in [
        format!("oci:{}:v1", s(&layout)),
        format!("oci:{}", s(&layout)),
        format!("oci:{}:@{digest}", s(&layout)),
    ] {
        match ImageRef::parse(&r).unwrap() {
            ImageRef::OciLayout { path, reference } => {
                let o = OciLayoutSource::open(path, reference.as_deref()).unwrap();
                assert_eq!(o.root().unwrap().digest(), digest, "{r}");
            }
            other => panic!("{r} parsed as {other:?}"),
        }
    }
    let e = OciLayoutSource::open(&layout, Some("v9"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("available: v1"), "{e}");
    let e = OciLayoutSource::open(t.path().join("missing"), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no such directory"), "{e}");
}

#[test]
fn local_and_tar_outputs_flatten_the_image() {
    let t = tempfile::tempdir().unwrap();
    let layout = umoci_image(t.path());
    let src = OciLayoutSource::open(&layout, Some("v1")).unwrap();

    // type=local: into a new directory, then replacing an existing one.
    let local = t.path().join("local");
    let stats = unpack_rootfs(
        &src,
        &amd64(),
        &local,
        &hoist_image::layer::ApplyOptions::default(),
    )
    .unwrap();
    assert_eq!(stats.layers, 2);
    check_rootfs(&local);
    std::fs::write(local.join("stale"), "x").unwrap();
    unpack_rootfs(
        &src,
        &amd64(),
        &local,
        &hoist_image::layer::ApplyOptions::default(),
    )
    .unwrap();
    check_rootfs(&local);
    assert!(!local.join("stale").exists());

    // The same from a classic docker-archive (uncompressed Docker layer media type).
    let classic = t.path().join("classic.tar");
    run(&mut cmd(
        "skopeo",
        &[
            "copy",
            &format!("oci:{}:v1", s(&layout)),
            &format!("docker-archive:{}", s(&classic)),
        ],
    ));
    let d = DockerArchiveSource::open(&classic, None).unwrap();
    let local2 = t.path().join("local2");
    unpack_rootfs(
        &d,
        &amd64(),
        &local2,
        &hoist_image::layer::ApplyOptions::default(),
    )
    .unwrap();
    check_rootfs(&local2);

    // type=tar: one tar of the flattened tree, which GNU tar extracts.
    let tar_out = t.path().join("rootfs.tar");
    write_rootfs_tar(&src, &amd64(), &tar_out).unwrap();
    let listing = run(&mut cmd("tar", &["-tvf", s(&tar_out)]));
    assert!(!listing.contains(".wh."), "{listing}");
    assert!(listing.contains("etc/second"), "{listing}");
    let x = t.path().join("extracted");
    std::fs::create_dir(&x).unwrap();
    run(&mut cmd("tar", &["-xf", s(&tar_out), "-C", s(&x)]));
    check_rootfs(&x);
    // No temporary directory or file is left beside the outputs.
    let names = formats_util::listing(t.path());
    assert!(
        names.iter().all(|n| !n.starts_with('.')),
        "temporary files left: {names:?}"
    );
}
