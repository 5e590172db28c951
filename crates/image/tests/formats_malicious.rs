//! Hostile archives and layouts: clear errors, nothing read or written outside.

mod formats_util;

use std::path::Path;

use formats_util::listing;
use hoist_image::layer::ApplyOptions;
use hoist_image::{
    unpack_rootfs, write_oci_layout, Digest, DockerArchiveSource, Error, OciArchiveSource,
    OciLayoutSource, Platform,
};

/// One raw tar member: name bytes go straight into the header (no sanitising).
struct Raw<'a> {
    name: &'a str,
    kind: tar::EntryType,
    data: &'a [u8],
    link: Option<&'a str>,
}

fn file<'a>(name: &'a str, data: &'a [u8]) -> Raw<'a> {
    Raw {
        name,
        kind: tar::EntryType::Regular,
        data,
        link: None,
    }
}

/// Write a tar with headers built by hand, so names like `../x` get in.
fn raw_tar(path: &Path, members: &[Raw]) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for m in members {
        let mut h = tar::Header::new_ustar();
        let name = m.name.as_bytes();
        if name.len() > 100 {
            // A PAX header carries the long name.
            let rec = pax_record("path", m.name);
            let mut ph = tar::Header::new_ustar();
            ph.set_entry_type(tar::EntryType::XHeader);
            ph.as_mut_bytes()[..9].copy_from_slice(b"PaxHeader");
            ph.set_size(rec.len() as u64);
            ph.set_mode(0o644);
            ph.set_cksum();
            b.append(&ph, &rec[..]).unwrap();
            h.as_mut_bytes()[..5].copy_from_slice(b"dummy");
        } else {
            h.as_mut_bytes()[..name.len()].copy_from_slice(name);
        }
        h.set_entry_type(m.kind);
        h.set_size(m.data.len() as u64);
        h.set_mode(0o644);
        if let Some(l) = m.link {
            h.set_link_name(l).unwrap();
        }
        h.set_cksum();
        b.append(&h, m.data).unwrap();
    }
    b.into_inner().unwrap();
}

fn pax_record(key: &str, value: &str) -> Vec<u8> {
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    loop {
        let rec = format!("{len}{body}");
        if rec.len() == len {
            return rec.into_bytes();
        }
        len = rec.len();
    }
}

fn assert_unsafe(e: Error, what: &str) {
    assert!(
        matches!(e, Error::UnsafeEntry { .. }),
        "{what}: expected an unsafe-entry error, got {e}"
    );
}

/// A minimal image config for a one-layer image made of `layer`.
fn docker_config(layer: &[u8]) -> Vec<u8> {
    let diff_id = Digest::sha256(layer);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]}
    });
    serde_json::to_vec(&config).unwrap()
}

#[test]
fn archive_member_names_that_escape_are_refused() {
    let t = tempfile::tempdir().unwrap();
    for (i, bad) in [
        "../x",
        "/etc/passwd",
        "a/../../x",
        &format!("{}/../../../x", "d".repeat(120)),
    ]
    .iter()
    .enumerate()
    {
        let p = t.path().join(format!("bad{i}.tar"));
        raw_tar(
            &p,
            &[
                file("manifest.json", b"[]"),
                file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
                file(bad, b"x"),
            ],
        );
        let e = DockerArchiveSource::open(&p, None).unwrap_err();
        assert!(
            hoist_image::chain_text(&e).contains(&bad[..bad.len().min(20)]),
            "{e}"
        );
        assert_unsafe(e, bad);
        assert_unsafe(OciArchiveSource::open(&p, None).unwrap_err(), bad);
    }
    assert_eq!(listing(t.path()).len(), 4, "nothing was extracted");
}

#[test]
fn manifest_json_pointing_outside_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let layer = tar_with(&[("hello", b"hi\n" as &[u8])]);
    let config = docker_config(&layer);
    let cases = [
        (
            r#"[{"Config":"../../etc/passwd","RepoTags":null,"Layers":["l.tar"]}]"#,
            "config",
        ),
        (
            r#"[{"Config":"/etc/passwd","RepoTags":null,"Layers":["l.tar"]}]"#,
            "absolute config",
        ),
        (
            r#"[{"Config":"c.json","RepoTags":null,"Layers":["../../etc/passwd"]}]"#,
            "layer",
        ),
        (
            r#"[{"Config":"c.json","RepoTags":null,"Layers":["link/layer.tar"]}]"#,
            "symlink layer",
        ),
    ];
    for (i, (mj, what)) in cases.iter().enumerate() {
        let p = t.path().join(format!("m{i}.tar"));
        raw_tar(
            &p,
            &[
                file("c.json", &config),
                file("l.tar", &layer),
                Raw {
                    name: "link/layer.tar",
                    kind: tar::EntryType::Symlink,
                    data: b"",
                    link: Some("../../../etc/passwd"),
                },
                file("manifest.json", mj.as_bytes()),
            ],
        );
        assert_unsafe(DockerArchiveSource::open(&p, None).unwrap_err(), what);
    }
    // The same archive with sane names opens.
    let p = t.path().join("ok.tar");
    raw_tar(
        &p,
        &[
            file("c.json", &config),
            file("l.tar", &layer),
            file(
                "manifest.json",
                br#"[{"Config":"c.json","RepoTags":["ok:1"],"Layers":["l.tar"]}]"#,
            ),
        ],
    );
    DockerArchiveSource::open(&p, Some("ok:1")).unwrap();
}

fn tar_with(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn hostile_layer_cannot_write_outside_the_output() {
    let t = tempfile::tempdir().unwrap();
    // A layer whose entries climb out, by name and through a symlink.
    let mut layer = Vec::new();
    {
        let mut b = tar::Builder::new(&mut layer);
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        b.append_link(&mut h, "up", "../../..").unwrap();
        let mut h = tar::Header::new_ustar();
        h.as_mut_bytes()[..10].copy_from_slice(b"up/escaped");
        h.set_size(3);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, &b"bad"[..]).unwrap();
        b.finish().unwrap();
    }
    let config = docker_config(&layer);
    let p = t.path().join("hostile.tar");
    raw_tar(
        &p,
        &[
            file("c.json", &config),
            file("l/layer.tar", &layer),
            file(
                "manifest.json",
                br#"[{"Config":"c.json","RepoTags":null,"Layers":["l/layer.tar"]}]"#,
            ),
        ],
    );
    let src = DockerArchiveSource::open(&p, None).unwrap();
    let work = t.path().join("a/b");
    std::fs::create_dir_all(&work).unwrap();
    let out = work.join("out");
    let r = unpack_rootfs(
        &src,
        &Platform::parse("linux/amd64").unwrap(),
        &out,
        &ApplyOptions::default(),
    );
    // Either the applier refuses the entry, or it resolves it inside the root; it
    // never writes outside.
    for dir in [t.path(), &t.path().join("a"), &work] {
        assert!(
            !dir.join("escaped").exists(),
            "escaped into {}",
            dir.display()
        );
    }
    match r {
        Err(e) => {
            assert_unsafe(e, "layer entry through a symlink");
            assert_eq!(listing(&work), Vec::<String>::new());
        }
        // Resolved as if the output were `/`: `up` points at the root itself.
        Ok(_) => assert_eq!(std::fs::read(out.join("escaped")).unwrap(), b"bad"),
    }
}

#[test]
fn tampered_blobs_and_documents_are_detected() {
    let t = tempfile::tempdir().unwrap();
    let layout = formats_util::umoci_image(&t.path().join("img"));
    let src = OciLayoutSource::open(&layout, Some("v1")).unwrap();
    let m = hoist_image::resolve(&src, &Platform::parse("linux/amd64").unwrap())
        .unwrap()
        .manifest;

    // A layer changed on disk: writing fails, the destination never appears.
    let layer_path = layout.join("blobs/sha256").join(m.layers[0].digest.hex());
    let original = std::fs::read(&layer_path).unwrap();
    let mut changed = original.clone();
    let last = changed.len() - 1;
    changed[last] ^= 0xff;
    std::fs::write(&layer_path, &changed).unwrap();
    let out = t.path().join("out");
    let e = write_oci_layout(&src, &out, None).unwrap_err();
    assert!(hoist_image::chain_text(&e).contains("mismatch"), "{e}");
    assert!(!out.exists());
    std::fs::write(&layer_path, &original).unwrap();

    // A manifest changed on disk: opening fails.
    let root = src.root_descriptor().clone();
    let mp = layout.join("blobs/sha256").join(root.digest.hex());
    let bytes = std::fs::read(&mp).unwrap();
    let mut changed = bytes.clone();
    changed[0] = b' ';
    std::fs::write(&mp, &changed).unwrap();
    let e = OciLayoutSource::open(&layout, Some("v1")).unwrap_err();
    assert!(matches!(e, Error::DigestMismatch { .. }), "{e}");
    std::fs::write(&mp, &bytes).unwrap();

    // An index.json entry whose digest is not a digest.
    let index = std::fs::read_to_string(layout.join("index.json")).unwrap();
    std::fs::write(
        layout.join("index.json"),
        index.replace(
            &format!("sha256:{}", root.digest.hex()),
            "sha256:../../../etc/passwd",
        ),
    )
    .unwrap();
    let e = OciLayoutSource::open(&layout, None).unwrap_err();
    assert!(
        hoist_image::chain_text(&e).contains("invalid digest"),
        "{e}"
    );
}

#[test]
fn a_config_that_lies_about_diff_ids_is_caught() {
    let t = tempfile::tempdir().unwrap();
    let layer = tar_with(&[("hello", b"hi\n" as &[u8])]);
    let other = tar_with(&[("hello", b"bye\n" as &[u8])]);
    // The config claims the diff ID of another layer; the layer file itself is what
    // manifest.json names, so its blob digest is computed and verifies fine.
    let config = docker_config(&other);
    let p = t.path().join("lying.tar");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &layer).unwrap();
    let gz = gz.finish().unwrap();
    raw_tar(
        &p,
        &[
            file("c.json", &config),
            file("l/layer.tar", &gz),
            file(
                "manifest.json",
                br#"[{"Config":"c.json","RepoTags":null,"Layers":["l/layer.tar"]}]"#,
            ),
        ],
    );
    let src = DockerArchiveSource::open(&p, None).unwrap();
    let e = hoist_image::validate(&src).unwrap_err();
    assert!(matches!(e, Error::DigestMismatch { .. }), "{e}");
    let out = t.path().join("out");
    let e = unpack_rootfs(
        &src,
        &Platform::parse("linux/amd64").unwrap(),
        &out,
        &ApplyOptions::default(),
    )
    .unwrap_err();
    assert!(hoist_image::chain_text(&e).contains("diff ID"), "{e}");
    assert!(!out.exists());
}
