//! Crafted base layers, made here as OCI layouts: device nodes and setuid files (what
//! `type=local`, task `rootfs/` write of them), and a usrmerge base (`bin -> usr/bin`)
//! with a later layer that writes through the symlink (what RUN sees of it).

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::*;
use serde_json::json;
use sha2::{Digest as _, Sha256};

fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn put_blob(layout: &Path, data: &[u8]) -> (String, usize) {
    let d = sha(data);
    fs::write(layout.join("blobs/sha256").join(&d[7..]), data).unwrap();
    (d, data.len())
}

/// One tar entry to craft.
enum E<'a> {
    Dir(&'a str, u32),
    File(&'a str, u32, &'a [u8]),
    Link(&'a str, &'a str),
    Char(&'a str, u32, u32),
}

fn tar_of(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_ustar();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        match e {
            E::Dir(p, mode) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                h.set_size(0);
                b.append_data(&mut h, p, &[][..]).unwrap();
            }
            E::File(p, mode, data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, p, *data).unwrap();
            }
            E::Link(p, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, p, target).unwrap();
            }
            E::Char(p, major, minor) => {
                h.set_entry_type(tar::EntryType::Char);
                h.set_mode(0o666);
                h.set_size(0);
                h.set_device_major(*major).unwrap();
                h.set_device_minor(*minor).unwrap();
                b.append_data(&mut h, p, &[][..]).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

/// An OCI layout at `dir` (tag `latest`) of uncompressed `layers`, bottom first.
fn layout(dir: &Path, layers: &[Vec<u8>]) -> PathBuf {
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for l in layers {
        let (d, n) = put_blob(dir, l);
        diff_ids.push(d.clone());
        descs.push(
            json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": n}),
        );
    }
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let config = serde_json::to_vec(&json!({
        "architecture": arch, "os": "linux",
        "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let (cd, cn) = put_blob(dir, &config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
        "layers": descs,
    }))
    .unwrap();
    let (md, mn) = put_blob(dir, &manifest);
    fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": md, "size": mn,
                "annotations": {"org.opencontainers.image.ref.name": "latest"}
            }]
        }))
        .unwrap(),
    )
    .unwrap();
    dir.to_path_buf()
}

fn context(env: &Env, dockerfile: &str) -> PathBuf {
    let ctx = env.path("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    ctx
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

fn unsafe_base(env: &Env) -> PathBuf {
    layout(
        &env.path("unsafe-base"),
        &[tar_of(&[
            E::Dir("dev/", 0o755),
            E::Char("dev/evil", 1, 3),
            E::Dir("bin/", 0o755),
            E::File("bin/suid", 0o4755, b"#!/bin/sh\n"),
            E::File("bin/sgid", 0o2711, b"#!/bin/sh\n"),
            E::File("bin/plain", 0o755, b"#!/bin/sh\n"),
        ])],
    )
}

#[test]
fn device_nodes_and_setuid_files_are_skipped_unless_kept() {
    let env = Env::new();
    let base = unsafe_base(&env);
    let ctx = context(&env, &format!("FROM oci:{}:latest\n", base.display()));

    let out = env.path("out");
    let o = env
        .hoist()
        .args(["build", "--progress", "plain", "-o"])
        .arg(format!("type=local,dest={}", out.display()))
        .arg(&ctx)
        .output()
        .unwrap();
    assert_success(&o, "build -o type=local");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!out.join("dev/evil").exists(), "no device node by default");
    assert_eq!(mode(&out.join("bin/suid")), 0o755);
    assert_eq!(mode(&out.join("bin/sgid")), 0o711);
    assert_eq!(mode(&out.join("bin/plain")), 0o755);
    for needle in [
        "/dev/evil (character device 1:3",
        "/bin/suid (setuid",
        "/bin/sgid (setgid",
        "unsafe-files=keep",
    ] {
        assert!(err.contains(needle), "warning lists {needle}: {err}");
    }
    assert!(!err.contains("/bin/plain"), "{err}");

    let kept = env.path("kept");
    env.ok(&[
        "build",
        "-o",
        &format!("type=local,dest={},unsafe-files=keep", kept.display()),
        ctx.to_str().unwrap(),
    ]);
    assert_eq!(mode(&kept.join("bin/suid")), 0o4755);
    assert_eq!(mode(&kept.join("bin/sgid")), 0o2711);
    if is_root() {
        assert!(fs::symlink_metadata(kept.join("dev/evil"))
            .unwrap()
            .file_type()
            .is_char_device());
    }

    // Task mode: rootfs/ the same way, UNSAFE_FILES=keep to keep them.
    for (param, kept) in [(None, false), (Some("keep"), true)] {
        let work = env.path(if kept { "task-keep" } else { "task-skip" });
        fs::create_dir_all(work.join("image")).unwrap();
        fs::create_dir_all(work.join("src")).unwrap();
        fs::write(
            work.join("src/Dockerfile"),
            "ARG base_image\nFROM ${base_image}\n",
        )
        .unwrap();
        run(std::process::Command::new("cp")
            .arg("-r")
            .arg(&base)
            .arg(work.join("base")));
        let mut c = std::process::Command::new(hoist_bin());
        c.arg("task")
            .current_dir(&work)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", std::env::var_os("HOME").unwrap_or_default())
            .env("HOIST_CACHE_DIR", env.path("cache"))
            .env("CONTEXT", "src")
            .env("IMAGE_ARG_base_image", "base")
            .env("UNPACK_ROOTFS", "true")
            .stdin(std::process::Stdio::null());
        if let Some(v) = param {
            c.env("UNSAFE_FILES", v);
        }
        let o = c.output().unwrap();
        assert_success(&o, "hoist task");
        let rootfs = work.join("image/rootfs");
        assert_eq!(
            mode(&rootfs.join("bin/suid")),
            if kept { 0o4755 } else { 0o755 }
        );
        assert_eq!(rootfs.join("dev/evil").exists(), kept && is_root());
        if !kept {
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(
                err.contains("UNSAFE_FILES=keep") && err.contains("/bin/suid"),
                "{err}"
            );
        }
    }
    let bad = env.fails(&[
        "build",
        "-o",
        &format!(
            "type=local,dest={},unsafe-files=sometimes",
            env.path("x").display()
        ),
        ctx.to_str().unwrap(),
    ]);
    assert!(bad.contains("unsafe-files"), "{bad}");
}

/// A usrmerge base (`bin -> usr/bin`, busybox in usr/bin) and a layer that adds
/// `bin/x` through the symlink, without a `bin/` entry of its own.
fn usrmerge_base(env: &Env) -> PathBuf {
    let busybox = fs::read(
        String::from_utf8(
            std::process::Command::new("sh")
                .args(["-c", "command -v busybox"])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap()
        .trim(),
    )
    .expect("busybox on the host");
    let mut lower = vec![
        E::Dir("usr/", 0o755),
        E::Dir("usr/bin/", 0o755),
        E::File("usr/bin/busybox", 0o755, &busybox),
        E::Dir("tmp/", 0o1777),
        E::Dir("etc/", 0o755),
        E::File("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n"),
        E::File("etc/group", 0o644, b"root:x:0:\n"),
        E::Link("bin", "usr/bin"),
    ];
    let applets = ["sh", "cat", "ls", "echo", "readlink", "test", "stat"];
    let paths: Vec<String> = applets.iter().map(|a| format!("usr/bin/{a}")).collect();
    for p in &paths {
        lower.push(E::Link(p, "busybox"));
    }
    let upper = tar_of(&[E::File("bin/x", 0o644, b"written through the link\n")]);
    layout(&env.path("usrmerge"), &[tar_of(&lower), upper])
}

#[test]
fn run_sees_a_layer_written_through_a_lower_symlink() {
    let env = Env::new();
    let base = usrmerge_base(&env);
    let ctx = context(
        &env,
        &format!(
            "FROM oci:{}:latest\n\
             RUN cat /bin/x > /from-run && readlink /bin > /bin-link && ls /usr/bin > /usr-bin-list\n\
             RUN echo y > /bin/y\n",
            base.display()
        ),
    );
    let oci = env.path("oci");
    env.ok(&[
        "build",
        "-o",
        &format!("type=oci,dest={}", oci.display()),
        ctx.to_str().unwrap(),
    ]);
    let rootfs = umoci_unpack(&oci, "latest", &env.path("bundle"));
    assert_eq!(
        fs::read_to_string(rootfs.join("from-run")).unwrap(),
        "written through the link\n"
    );
    assert_eq!(
        fs::read_to_string(rootfs.join("bin-link")).unwrap(),
        "usr/bin\n"
    );
    let list = fs::read_to_string(rootfs.join("usr-bin-list")).unwrap();
    assert!(list.contains("busybox") && list.contains('x'), "{list}");
    assert_eq!(
        fs::read_link(rootfs.join("bin")).unwrap(),
        Path::new("usr/bin"),
        "the RUN layers keep /bin a symlink"
    );
    assert_eq!(fs::read_to_string(rootfs.join("usr/bin/y")).unwrap(), "y\n");
    assert!(rootfs.join("usr/bin/x").is_file());
}
