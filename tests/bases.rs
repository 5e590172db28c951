//! Base images handed over as archives by other tools: `skopeo copy … docker-archive:`
//! and `podman save` (docker-archive and oci-archive) write uncompressed layers with
//! Docker's `…rootfs.diff.tar` type or none at all. They must work for `FROM`,
//! `COPY --from=` and the task's `IMAGE_ARG_*`, and the outputs must describe the
//! layers' real bytes.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;

/// The busybox base as a docker-archive written by skopeo (uncompressed layers,
/// `manifest.json` without media types).
fn skopeo_docker_archive(dest: &Path) -> PathBuf {
    run(Command::new("skopeo").args([
        "copy",
        "--quiet",
        &format!("oci:{}:latest", busybox_base().display()),
        &format!("docker-archive:{}:localhost/busybox:1", dest.display()),
    ]));
    dest.to_path_buf()
}

/// The busybox base saved by podman in `format` (`docker-archive` or `oci-archive`).
fn podman_save(env: &Env, format: &str, dest: &Path) {
    // podman limits the run root path to 50 characters: use a short dir under /tmp.
    let short = tempfile::Builder::new()
        .prefix("pm")
        .tempdir_in("/tmp")
        .unwrap();
    let podman = || {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(short.path().join("r"))
            .arg("--runroot")
            .arg(short.path().join("s"))
            .args(["--storage-driver", "vfs"]);
        c
    };
    let input = env.path("podman-input.tar");
    if !input.exists() {
        run(Command::new("skopeo").args([
            "copy",
            "--quiet",
            &format!("oci:{}:latest", busybox_base().display()),
            &format!("oci-archive:{}:localhost/busybox:1", input.display()),
        ]));
    }
    run(podman().arg("load").arg("-i").arg(&input));
    run(podman()
        .args(["save", "--format", format, "-o"])
        .arg(dest)
        .arg("localhost/busybox:1"));
    let _ = podman().args(["system", "reset", "-f"]).output();
}

/// The layer media types of an image (skopeo's view of the raw manifest).
fn layer_types(reference: &str) -> Vec<String> {
    let raw: serde_json::Value = serde_json::from_slice(&skopeo_raw(reference)).unwrap();
    raw["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap().to_string())
        .collect()
}

/// Build `dockerfile` (with a `hello.txt` in the context) to an OCI archive and a
/// docker-archive; check both with skopeo, umoci and the layer media types.
fn build_and_check(env: &Env, name: &str, dockerfile: &str) {
    let ctx = env.path(&format!("{name}-ctx"));
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    std::fs::write(ctx.join("hello.txt"), "hello\n").unwrap();
    let oci = env.path(&format!("{name}-oci.tar"));
    let docker = env.path(&format!("{name}-docker.tar"));
    env.ok(&[
        "build",
        "-t",
        "localhost/out:1",
        "-o",
        &format!("type=oci,dest={}", oci.display()),
        "-o",
        &format!("type=docker,dest={}", docker.display()),
        ctx.to_str().unwrap(),
    ]);
    // The base's uncompressed layers are gzip-compressed like hoist's own (one
    // compression per image): OCI output says `…layer.v1.tar+gzip`, Docker output
    // `…rootfs.diff.tar.gzip`, and the bytes are gzip.
    let oci_ref = format!("oci-archive:{}", oci.display());
    let types = layer_types(&oci_ref);
    assert_eq!(
        types.first().map(String::as_str),
        Some("application/vnd.oci.image.layer.v1.tar+gzip"),
        "{name}: {types:?}"
    );
    assert!(
        types.iter().all(|t| t.starts_with("application/vnd.oci.")),
        "{name}: {types:?}"
    );
    let docker_ref = format!("docker-archive:{}", docker.display());
    let types = layer_types(&docker_ref);
    assert!(
        types
            .iter()
            .all(|t| t == "application/vnd.docker.image.rootfs.diff.tar.gzip"),
        "{name}: {types:?}"
    );
    // The bytes are what the OCI manifest says: gzip.
    let raw: serde_json::Value = serde_json::from_slice(&skopeo_raw(&oci_ref)).unwrap();
    let d = raw["layers"][0]["digest"].as_str().unwrap();
    let out = Command::new("tar")
        .arg("-xOf")
        .arg(&oci)
        .arg(format!("blobs/sha256/{}", d.trim_start_matches("sha256:")))
        .output()
        .unwrap();
    assert_success(&out, "tar -xO");
    assert_eq!(
        &out.stdout[..2],
        &[0x1f, 0x8b],
        "{name}: layer 0 is not gzip"
    );
    // skopeo copies (and so verifies) every blob; umoci unpacks by media type.
    let layout = env.path(&format!("{name}-layout"));
    run(Command::new("skopeo").args([
        "copy",
        "--quiet",
        &docker_ref,
        &format!("oci:{}:x", layout.display()),
    ]));
    let unpacked = env.path(&format!("{name}-unpacked"));
    let layout2 = env.path(&format!("{name}-layout2"));
    run(Command::new("skopeo").args([
        "copy",
        "--quiet",
        "--preserve-digests",
        &oci_ref,
        &format!("oci:{}:x", layout2.display()),
    ]));
    let root = umoci_unpack(&layout2, "x", &unpacked);
    assert_eq!(
        std::fs::read_to_string(root.join("hello.txt")).unwrap(),
        "hello\n"
    );
    assert!(
        root.join("bin/busybox").is_file(),
        "{name}: base files kept"
    );
}

#[test]
fn skopeo_docker_archive_is_a_base_for_from_and_copy_from() {
    let env = Env::new();
    let base = skopeo_docker_archive(&env.path("base.tar"));
    build_and_check(
        &env,
        "from",
        &format!("FROM docker-archive:{}\nCOPY hello.txt /\n", base.display()),
    );
    build_and_check(
        &env,
        "named",
        &format!(
            "FROM docker-archive:{}:localhost/busybox:1\nCOPY hello.txt /\n",
            base.display()
        ),
    );
    // COPY --from= an archive unpacks its (uncompressed) layers.
    build_and_check(
        &env,
        "copyfrom",
        &format!(
            "FROM docker-archive:{b}\nCOPY --from=docker-archive:{b} /bin/busybox /copied\nCOPY hello.txt /\n",
            b = base.display()
        ),
    );
}

#[test]
fn podman_saved_archives_are_bases_in_both_formats() {
    let env = Env::new();
    let docker = env.path("podman-docker.tar");
    podman_save(&env, "docker-archive", &docker);
    build_and_check(
        &env,
        "podman-docker",
        &format!(
            "FROM docker-archive:{}\nCOPY --from=docker-archive:{} /bin/busybox /copied\nCOPY hello.txt /\n",
            docker.display(),
            docker.display()
        ),
    );
    let oci = env.path("podman-oci.tar");
    podman_save(&env, "oci-archive", &oci);
    build_and_check(
        &env,
        "podman-oci",
        &format!(
            "FROM oci-archive:{}\nCOPY --from=oci-archive:{} /bin/busybox /copied\nCOPY hello.txt /\n",
            oci.display(),
            oci.display()
        ),
    );
}

#[test]
fn task_image_arg_takes_a_skopeo_docker_archive() {
    // As registry-image-resource hands a base over: `base/image.tar`.
    let env = Env::new();
    let work = env.path("work");
    std::fs::create_dir_all(work.join("base")).unwrap();
    std::fs::create_dir_all(work.join("src")).unwrap();
    std::fs::create_dir_all(work.join("image")).unwrap();
    std::fs::create_dir_all(env.path("tmp")).unwrap();
    skopeo_docker_archive(&work.join("base/image.tar"));
    std::fs::write(
        work.join("src/Dockerfile"),
        "ARG base\nFROM ${base}\nCOPY hello.txt /\n",
    )
    .unwrap();
    std::fs::write(work.join("src/hello.txt"), "hello\n").unwrap();
    let out = Command::new(hoist_bin())
        .arg("task")
        .current_dir(&work)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::var_os("HOME").unwrap_or_default())
        .env("TMPDIR", env.path("tmp"))
        .env("CONTEXT", "src")
        .env("IMAGE_ARG_base", "base/image.tar")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_success(&out, "hoist task with IMAGE_ARG_base=base/image.tar");
    let r = format!("docker-archive:{}", work.join("image/image.tar").display());
    let types = layer_types(&r);
    assert!(
        types
            .iter()
            .all(|t| t == "application/vnd.docker.image.rootfs.diff.tar.gzip"),
        "{types:?}"
    );
    let cfg = skopeo_config(&r);
    assert_eq!(
        cfg["rootfs"]["diff_ids"].as_array().unwrap().len(),
        types.len()
    );
}
