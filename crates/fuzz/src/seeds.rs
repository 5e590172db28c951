//! The seed corpus, made by hoist itself: real layers, documents and archives written
//! by hoist's own writers and sinks, plus hostile layers and archives built byte by
//! byte ([`crate::rawtar`]). Nothing is downloaded.
//!
//! `cargo run -p hoist-fuzz --example write-seeds` writes them to `fuzz/seeds/TARGET/`
//! (committed; what `scripts/fuzz.sh` starts from), and the corpus test runs each
//! through its target as generated now, so a seed that stops passing is noticed even
//! before it is written out again.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use hoist_image::layer::{sort_entries, Compression, Entry, EntryKind, LayerWriter, WriteOptions};
use hoist_image::mutate::{Image, Layer, MediaTypes, WrittenImage, WrittenIndex};
use hoist_image::{
    to_canonical_json, write_docker_archive, write_oci_archive, BlobStore, Digest, Platform,
    Result, Source,
};

use crate::rawtar::{kind, RawTar};

/// One seed input.
#[derive(Debug, Clone)]
pub struct Seed {
    /// The target it is for.
    pub target: &'static str,
    /// Its file name in the corpus folder.
    pub name: String,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// Every seed of every target.
pub fn all() -> Result<Vec<Seed>> {
    let tmp = tempfile::tempdir().map_err(|e| hoist_image::Error::io("temp dir", e))?;
    let mut out = Vec::new();
    let mut add = |target: &'static str, name: &str, bytes: Vec<u8>| {
        out.push(Seed {
            target,
            name: name.to_string(),
            bytes,
        })
    };
    for (name, text) in DOCKERFILES {
        add("dockerfile", name, text.as_bytes().to_vec());
    }
    for (name, bytes) in layers()? {
        add("layer", &name, bytes);
    }
    for (name, bytes) in hostile_layers() {
        add("layer", &name, bytes);
    }

    let store = BlobStore::new(tmp.path().join("store"))?;
    let amd64 = image(&store, "linux/amd64", MediaTypes::Oci, Compression::Gzip)?;
    let arm64 = image(&store, "linux/arm64/v8", MediaTypes::Oci, Compression::Zstd)?;
    let docker = image(&store, "linux/amd64", MediaTypes::Docker, Compression::None)?;
    let index = WrittenIndex::new(
        vec![amd64.clone(), arm64.clone()],
        MediaTypes::Oci,
        &BTreeMap::new(),
        &BTreeMap::new(),
    )?;

    add(
        "documents",
        "oci-manifest.json",
        amd64.manifest.bytes.clone(),
    );
    add("documents", "oci-config.json", amd64.config.bytes.clone());
    add(
        "documents",
        "docker-manifest.json",
        docker.manifest.bytes.clone(),
    );
    add(
        "documents",
        "docker-config.json",
        docker.config.bytes.clone(),
    );
    add("documents", "oci-index.json", index.index.bytes.clone());
    add(
        "documents",
        "descriptor.json",
        to_canonical_json(&amd64.manifest.descriptor()),
    );
    add(
        "documents",
        "lines.txt",
        format!(
            "{}\nlinux/arm/v7\nwindows/amd64\ndocker-archive:/x.tar:busybox:latest\noci:./out:v1\n",
            Digest::sha256(b"x")
        )
        .into_bytes(),
    );

    let platform = Platform::parse("linux/amd64").expect("platform");
    let file = tmp.path().join("out.tar");
    for (name, src) in [("oci", &amd64 as &dyn Source), ("docker", &docker)] {
        write_docker_archive(src, &file, &["example/app:latest".into()], &platform)?;
        add("docker_archive", &format!("{name}-image.tar"), read(&file)?);
        if name == "docker" {
            let m = tar_member(&read(&file)?, "manifest.json");
            add("documents", "docker-archive-manifest.json", m);
        }
    }
    add("docker_archive", "classic.tar", classic_docker_archive());
    for (name, src) in [
        ("image", &amd64 as &dyn Source),
        ("docker-types", &docker),
        ("index", &index),
    ] {
        write_oci_archive(src, &file, Some("latest"))?;
        add("oci", &format!("{name}.tar"), read(&file)?);
    }
    Ok(out)
}

/// Write every seed under `dir/TARGET/NAME` (the corpus folders are replaced).
pub fn write_all(dir: &Path) -> Result<usize> {
    let seeds = all()?;
    for (target, _) in crate::TARGETS {
        let d = dir.join(target);
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).map_err(|e| hoist_image::Error::io(&d, e))?;
    }
    for s in &seeds {
        let p = dir.join(s.target).join(&s.name);
        fs::write(&p, &s.bytes).map_err(|e| hoist_image::Error::io(&p, e))?;
    }
    Ok(seeds.len())
}

fn read(p: &Path) -> Result<Vec<u8>> {
    fs::read(p).map_err(|e| hoist_image::Error::io(p, e))
}

fn tar_member(tar: &[u8], name: &str) -> Vec<u8> {
    let mut a = tar::Archive::new(tar);
    for e in a.entries().expect("tar") {
        let mut e = e.expect("entry");
        if e.path().expect("path").to_str() == Some(name) {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut v).expect("read");
            return v;
        }
    }
    panic!("no {name} in the archive")
}

/// The entries of an ordinary small layer: directories, files, a symlink, a hard
/// link, a FIFO, an xattr.
fn entries() -> Vec<Entry> {
    let mut exe = Entry::file_bytes("usr/bin/app", "#!/bin/sh\necho hi\n");
    exe.mode = 0o4755;
    exe.xattrs
        .insert("user.comment".into(), b"set by a seed".to_vec());
    let mut v = vec![
        Entry::dir("etc"),
        Entry::file_bytes("etc/hostname", "seed\n"),
        Entry::symlink("etc/localtime", "/usr/share/zoneinfo/UTC"),
        Entry::dir("usr"),
        Entry::dir("usr/bin"),
        exe,
        Entry::new(
            "usr/bin/app2",
            EntryKind::Hardlink("usr/bin/app".into()),
            0o755,
        ),
        Entry::new("run/fifo", EntryKind::Fifo, 0o600),
        Entry::symlink("bin", "usr/bin"),
    ];
    sort_entries(&mut v);
    v
}

fn layer_bytes(entries: Vec<Entry>, compression: Compression) -> Result<Vec<u8>> {
    let opts = WriteOptions {
        compression,
        threads: 1,
        ..WriteOptions::default()
    };
    let mut w = LayerWriter::new(Vec::new(), &opts)?;
    w.append_all(entries)?;
    Ok(w.finish()?.0)
}

fn layers() -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for (name, c) in [
        ("plain", Compression::None),
        ("gzip", Compression::Gzip),
        ("zstd", Compression::Zstd),
    ] {
        out.push((format!("hoist-{name}.tar"), layer_bytes(entries(), c)?));
    }
    let mut whiteouts = vec![
        Entry::dir("etc"),
        Entry::file_bytes("etc/.wh.hostname", ""),
        Entry::dir("usr"),
        Entry::file_bytes("usr/.wh..wh..opq", ""),
        Entry::file_bytes("usr/kept", "k"),
    ];
    sort_entries(&mut whiteouts);
    out.push((
        "hoist-whiteouts.tar".into(),
        layer_bytes(whiteouts, Compression::None)?,
    ));
    Ok(out)
}

/// Layers that try to write outside the root, each as an attacker would write it.
fn hostile_layers() -> Vec<(String, Vec<u8>)> {
    use kind::*;
    let mut out = Vec::new();
    let mut one = |name: &str, f: &dyn Fn(&mut RawTar)| {
        let mut t = RawTar::new();
        f(&mut t);
        out.push((format!("hostile-{name}.tar"), t.finish()));
    };
    one("dotdot", &|t| {
        t.entry(FILE, b"../sentinel", b"", 0o644, b"escaped");
        t.entry(FILE, b"a/../../empty/x", b"", 0o644, b"escaped");
    });
    one("absolute", &|t| {
        t.entry(FILE, b"/etc/passwd", b"", 0o644, b"root::0:0::/:/bin/sh\n");
    });
    one("symlink-up", &|t| {
        t.entry(SYMLINK, b"up", b"..", 0o777, b"");
        t.entry(FILE, b"up/sentinel", b"", 0o644, b"escaped");
        t.entry(SYMLINK, b"upup", b"../../../../..", 0o777, b"");
        t.entry(DIR, b"upup/empty", b"", 0o755, b"");
        t.entry(FILE, b"upup/empty/x", b"", 0o644, b"escaped");
    });
    one("symlink-root", &|t| {
        t.entry(SYMLINK, b"r", b"/", 0o777, b"");
        t.entry(FILE, b"r/../sentinel", b"", 0o644, b"escaped");
        t.entry(SYMLINK, b"e", b"/../empty", 0o777, b"");
        t.entry(FILE, b"e/x", b"", 0o644, b"escaped");
    });
    one("symlink-chain", &|t| {
        t.entry(DIR, b"d", b"", 0o755, b"");
        t.entry(SYMLINK, b"d/l1", b"../l2", 0o777, b"");
        t.entry(SYMLINK, b"l2", b"d/../../", 0o777, b"");
        t.entry(FILE, b"d/l1/sentinel", b"", 0o644, b"escaped");
        t.entry(SYMLINK, b"loop", b"loop", 0o777, b"");
        t.entry(FILE, b"loop/x", b"", 0o644, b"x");
    });
    one("hardlink-out", &|t| {
        t.entry(HARDLINK, b"h", b"../sentinel", 0o644, b"");
        t.entry(HARDLINK, b"h2", b"/etc/passwd", 0o644, b"");
        t.entry(SYMLINK, b"up", b"..", 0o777, b"");
        t.entry(HARDLINK, b"h3", b"up/sentinel", 0o644, b"");
    });
    one("replace-symlink", &|t| {
        t.entry(SYMLINK, b"x", b"../sentinel", 0o777, b"");
        t.entry(FILE, b"x", b"", 0o644, b"replaced, not followed");
        t.entry(SYMLINK, b"d", b"../empty", 0o777, b"");
        t.entry(DIR, b"d", b"", 0o755, b"");
        t.entry(FILE, b"d/y", b"", 0o644, b"in the root");
    });
    one("whiteouts", &|t| {
        t.entry(SYMLINK, b"up", b"..", 0o777, b"");
        t.entry(FILE, b"up/.wh.sentinel", b"", 0o644, b"");
        t.entry(FILE, b".wh...", b"", 0o644, b"");
        t.entry(FILE, b"up/.wh..wh..opq", b"", 0o644, b"");
        t.entry(FILE, b"../.wh.empty", b"", 0o644, b"");
    });
    one("pax", &|t| {
        t.pax(&[
            ("path", b"../sentinel"),
            ("SCHILY.xattr.user.x", b"1"),
            ("uid", b"4294967296"),
            ("mtime", b"-1.5"),
        ]);
        t.entry(FILE, b"innocent", b"", 0o644, b"escaped?");
        t.pax(&[("linkpath", b"/../../sentinel")]);
        t.entry(HARDLINK, b"h", b"ok", 0o644, b"");
        let long = [&b"a/"[..]; 80].concat();
        t.entry(
            FILE,
            &[&long[..], b"../../../../x"].concat(),
            b"",
            0o644,
            b"long",
        );
    });
    one("specials", &|t| {
        t.entry(CHAR, b"dev/null", b"", 0o666, b"");
        t.entry(FIFO, b"fifo", b"", 0o600, b"");
        t.entry(b'7', b"contiguous", b"", 0o644, b"c");
        t.entry(b'Z', b"unknown-type", b"", 0o644, b"");
        t.entry(DIR, b"locked", b"", 0o000, b"");
        t.entry(FILE, b"locked/f", b"", 0o000, b"");
    });
    out
}

/// A docker-archive as `docker save` before docker 25 wrote it: `<id>/layer.tar`,
/// a config named by its digest without `rootfs.diff_ids`, and a repeated layer
/// stored as a symlink to the first.
fn classic_docker_archive() -> Vec<u8> {
    use kind::*;
    let layer = {
        let mut t = RawTar::new();
        t.entry(DIR, b"app", b"", 0o755, b"");
        t.entry(FILE, b"app/hello", b"", 0o644, b"hi\n");
        t.finish()
    };
    let config = br#"{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"]},"rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_name = format!("{}.json", Digest::sha256(config).hex());
    let manifest = format!(
        r#"[{{"Config":"{config_name}","RepoTags":["example/classic:latest"],"Layers":["1111/layer.tar","2222/layer.tar"]}}]"#
    );
    let mut t = RawTar::new();
    t.entry(FILE, b"manifest.json", b"", 0o644, manifest.as_bytes());
    t.entry(FILE, config_name.as_bytes(), b"", 0o644, config);
    t.entry(DIR, b"1111/", b"", 0o755, b"");
    t.entry(FILE, b"1111/layer.tar", b"", 0o644, &layer);
    t.entry(DIR, b"2222/", b"", 0o755, b"");
    t.entry(SYMLINK, b"2222/layer.tar", b"../1111/layer.tar", 0o777, b"");
    t.entry(
        FILE,
        b"repositories",
        b"",
        0o644,
        br#"{"example/classic":{"latest":"2222"}}"#,
    );
    t.finish()
}

fn image(
    store: &BlobStore,
    platform: &str,
    family: MediaTypes,
    compression: Compression,
) -> Result<WrittenImage> {
    let opts = WriteOptions {
        compression,
        threads: 1,
        ..WriteOptions::default()
    };
    let base = Layer::from_entries(store, entries(), &opts)?;
    let top = Layer::from_entries(
        store,
        [
            Entry::dir("etc"),
            Entry::file_bytes("etc/.wh.hostname", ""),
            Entry::file_bytes("etc/app.conf", "x=1\n"),
        ],
        &opts,
    )?;
    Image::empty(&Platform::parse(platform).expect("platform"))
        .with_media_types(family)
        .with_time(0)
        .append_layer(base, "ADD rootfs /")
        .append_layer(top, "COPY app.conf /etc/")
        .with_entrypoint(vec!["/usr/bin/app".into()])
        .with_env("A", "1")
        .write(store)
}

/// Dockerfiles covering the syntax: directives, continuation, heredocs, JSON and
/// shell forms, every instruction, variables and their modifiers, stages, mounts.
const DOCKERFILES: &[(&str, &str)] = &[
    (
        "multistage.Dockerfile",
        "# syntax=docker/dockerfile:1\n# escape=\\\nARG BASE=busybox\nFROM ${BASE:-alpine} AS build\nWORKDIR /src\nCOPY --chown=1:1 --chmod=0755 . .\nRUN --mount=type=cache,target=/root/.cache \\\n    --mount=type=secret,id=tok \\\n    make && make install\nFROM scratch\nCOPY --from=build /out/app /app\nENTRYPOINT [\"/app\"]\nCMD [\"--help\"]\n",
    ),
    (
        "everything.Dockerfile",
        "FROM --platform=$BUILDPLATFORM debian:bookworm AS base\nLABEL a=b \"c d\"=e\nENV A=1 B=\"two words\" C=${A}x\nENV OLD style\nEXPOSE 80/tcp 53/udp\nVOLUME [\"/data\"]\nUSER 1000:1000\nSTOPSIGNAL SIGTERM\nHEALTHCHECK --interval=5s CMD true\nSHELL [\"/bin/bash\", \"-c\"]\nONBUILD RUN echo hi\nADD --checksum=sha256:0000000000000000000000000000000000000000000000000000000000000000 https://example.invalid/x /x\nADD --link a.tar /\nARG X\nRUN echo ${X:+set} ${X:?missing} ${A%%1} ${B/two/2} $$\nMAINTAINER nobody\n",
    ),
    (
        "heredoc.Dockerfile",
        "FROM busybox\nRUN <<EOF\nset -e\necho $HOME\nEOF\nCOPY <<-'END' /etc/motd\n\thello ${USER}\n\tEND\nRUN <<A cat /dev/stdin && <<B cat\na\nA\nb\nB\n",
    ),
    (
        "backtick.Dockerfile",
        "# escape=`\nFROM mcr.invalid/windows\nRUN dir `\n    c:\\\nCOPY [\"a b\", \"c:\\\\\"]\n",
    ),
    (
        "dockerignore",
        "# comment\n*.log\n!important.log\nnode_modules/\n**/target\n/abs\n[a-z]?.tmp\n!**/keep/**\n",
    ),
];
