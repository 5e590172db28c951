//! Hostile bases: layers that are bombs, mislabelled, or lie about their diff ID.
//! Each hostile layout is made here, from the busybox base plus one crafted layer.

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn put_blob(layout: &Path, data: &[u8]) -> String {
    let d = sha(data);
    fs::write(layout.join("blobs/sha256").join(&d[7..]), data).unwrap();
    d
}

fn get_blob(layout: &Path, digest: &str) -> Vec<u8> {
    fs::read(layout.join("blobs/sha256").join(&digest[7..])).unwrap()
}

/// A tar with one file `name` of `size` zero bytes.
fn zero_tar(name: &str, size: u64) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, name, std::io::repeat(0).take_n(size))
        .unwrap();
    b.into_inner().unwrap()
}

trait TakeN: std::io::Read + Sized {
    fn take_n(self, n: u64) -> std::io::Take<Self> {
        std::io::Read::take(self, n)
    }
}
impl<R: std::io::Read> TakeN for R {}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Copy the busybox base to `dir` and append a layer (`blob`, `media_type`) whose
/// config diff ID is `diff_id`. Returns the layout and the layer's digest.
fn with_layer(dir: &Path, blob: &[u8], media_type: &str, diff_id: &str) -> (PathBuf, String) {
    let base = busybox_base();
    run(std::process::Command::new("cp")
        .arg("-r")
        .arg(&base)
        .arg(dir));
    let index: Value = serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    let mdesc = &index["manifests"][0];
    let mut manifest: Value =
        serde_json::from_slice(&get_blob(dir, mdesc["digest"].as_str().unwrap())).unwrap();
    let mut config: Value = serde_json::from_slice(&get_blob(
        dir,
        manifest["config"]["digest"].as_str().unwrap(),
    ))
    .unwrap();
    let layer = put_blob(dir, blob);
    config["rootfs"]["diff_ids"]
        .as_array_mut()
        .unwrap()
        .push(json!(diff_id));
    let cbytes = serde_json::to_vec(&config).unwrap();
    manifest["config"]["digest"] = json!(put_blob(dir, &cbytes));
    manifest["config"]["size"] = json!(cbytes.len());
    manifest["layers"].as_array_mut().unwrap().push(json!({
        "mediaType": media_type, "digest": layer, "size": blob.len()
    }));
    let mbytes = serde_json::to_vec(&manifest).unwrap();
    let mut index = index.clone();
    index["manifests"][0]["digest"] = json!(put_blob(dir, &mbytes));
    index["manifests"][0]["size"] = json!(mbytes.len());
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    (dir.to_path_buf(), layer)
}

fn context(env: &Env, dockerfile: &str) -> PathBuf {
    let ctx = env.path("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    ctx
}

/// Files under the cache whose name contains `needle` (lower dirs, indexes, rootfs).
fn cache_entries(env: &Env, needle: &str) -> Vec<PathBuf> {
    fn walk(d: &Path, needle: &str, out: &mut Vec<PathBuf>, depth: usize) {
        let Ok(rd) = fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.file_name().unwrap().to_string_lossy().contains(needle) {
                out.push(p.clone());
            }
            if depth < 4 && e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                walk(&p, needle, out, depth + 1);
            }
        }
    }
    let mut v = Vec::new();
    walk(&env.path("cache"), needle, &mut v, 0);
    v
}

#[test]
fn gzip_bomb_stops_at_the_layer_size_bound_on_every_path() {
    let env = Env::new();
    let tar_bytes = zero_tar("bomb", 96 << 20);
    let blob = gzip(&tar_bytes);
    let (layout, digest) = with_layer(&env.path("base"), &blob, GZIP, &sha(&tar_bytes));
    let from = format!("FROM oci:{}:latest\n", layout.display());
    let want = format!("layer 1 ({digest}): expands past the bound of 16 MiB");
    // No RUN: the metadata index and the type=local output.
    let ctx = context(&env, &format!("{from}COPY Dockerfile /d\n"));
    let dest = env.path("local");
    let err = env.fails(&[
        "--max-layer-size",
        "16M",
        "build",
        "-o",
        &format!("type=local,dest={}", dest.display()),
        ctx.to_str().unwrap(),
    ]);
    assert!(err.contains(&want), "{err}");
    assert!(!dest.exists(), "a failed build left its output");
    // RUN: the sandbox's lower directories.
    fs::write(ctx.join("Dockerfile"), format!("{from}RUN true\n")).unwrap();
    let out = env
        .hoist()
        .env("HOIST_MAX_LAYER_SIZE", "16M")
        .args(["build", ctx.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&want), "{err}");
    // The bound is large enough by default.
    env.ok(&["build", ctx.to_str().unwrap()]);
}

#[test]
fn zstd_layer_labelled_gzip_is_named() {
    let env = Env::new();
    let tar_bytes = zero_tar("f", 10);
    let blob = zstd::encode_all(&tar_bytes[..], 3).unwrap();
    let (layout, digest) = with_layer(&env.path("base"), &blob, GZIP, &sha(&tar_bytes));
    let ctx = context(
        &env,
        &format!("FROM oci:{}:latest\nCOPY Dockerfile /d\n", layout.display()),
    );
    let err = env.fails(&["build", ctx.to_str().unwrap()]);
    assert!(
        err.contains(&format!(
            "layer 1 ({digest}) is zstd but its media type says gzip"
        )) || err.contains(&format!(
            "layer 1 ({digest}): is zstd but its media type says gzip"
        )),
        "{err}"
    );
}

#[test]
fn a_layer_that_lies_about_its_diff_id_never_enters_the_cache() {
    let env = Env::new();
    let tar_bytes = zero_tar("f", 10);
    let blob = gzip(&tar_bytes);
    let lie = sha(b"something else");
    let (layout, digest) = with_layer(&env.path("base"), &blob, GZIP, &lie);
    for df in ["COPY Dockerfile /d\n", "RUN true\n"] {
        let ctx = context(&env, &format!("FROM oci:{}:latest\n{df}", layout.display()));
        let dest = env.path("local");
        let err = env.fails(&[
            "build",
            "-o",
            &format!("type=local,dest={}", dest.display()),
            ctx.to_str().unwrap(),
        ]);
        assert!(err.contains(&format!("layer 1 ({digest})")), "{df}: {err}");
        assert!(err.contains("diff ID should be"), "{df}: {err}");
        assert!(!dest.exists());
        let left = cache_entries(&env, &lie[7..]);
        assert!(
            left.is_empty(),
            "{df}: cache entries under the lying diff ID: {left:?}"
        );
    }
}

/// A tar whose one entry is named `name` verbatim (even `../x`, which the tar
/// crate's own setters refuse).
fn raw_name_tar(name: &str) -> Vec<u8> {
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_size(3);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    let mut data = b"bad".to_vec();
    data.resize(512, 0);
    out.extend(data);
    out.extend([0u8; 1024]);
    out
}

#[test]
fn a_failed_task_leaves_no_output() {
    let env = Env::new();
    let work = env.path("work");
    fs::create_dir_all(work.join("image")).unwrap();
    fs::create_dir_all(work.join("src")).unwrap();
    fs::create_dir_all(env.path("tmp")).unwrap();
    fs::write(
        work.join("src/Dockerfile"),
        "ARG base_image\nFROM ${base_image}\n",
    )
    .unwrap();
    let tar_bytes = raw_name_tar("../../escape");
    let blob = gzip(&tar_bytes);
    with_layer(&work.join("busybox"), &blob, GZIP, &sha(&tar_bytes));
    let out = std::process::Command::new(hoist_bin())
        .arg("task")
        .current_dir(&work)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::var_os("HOME").unwrap_or_default())
        .env("TMPDIR", env.path("tmp"))
        .env("CONTEXT", "src")
        .env("IMAGE_ARG_base_image", "busybox")
        .env("UNPACK_ROOTFS", "true")
        .env("OUTPUT_OCI", "true")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("escape"), "{err}");
    let left: Vec<_> = fs::read_dir(work.join("image"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "a failed task left {left:?}\n{err}");
}

#[test]
fn stale_temporary_files_of_dead_runs_are_swept() {
    let env = Env::new();
    let lower = env.path("cache/lower/root-0");
    let dead = lower.join(".tmp-999999999-abc");
    let live = lower.join(format!(".tmp-{}-abc", std::process::id()));
    fs::create_dir_all(dead.join("usr")).unwrap();
    fs::create_dir_all(&live).unwrap();
    let ctx = context(
        &env,
        &format!("FROM oci:{}:latest\n", busybox_base().display()),
    );
    env.ok(&["build", ctx.to_str().unwrap()]);
    assert!(
        !dead.exists(),
        "the dead run's temporary dir is still there"
    );
    assert!(live.exists(), "a live process's temporary dir was removed");
}

/// A TCP proxy on loopback to `upstream` that forwards client bytes at `rate` bytes/s.
fn slow_proxy(upstream: &str, rate: usize) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let upstream = upstream.to_string();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let Ok(server) = std::net::TcpStream::connect(&upstream) else {
                continue;
            };
            let (mut c_r, mut s_w) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (mut s_r, mut c_w) = (server, client);
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 << 10];
                while let Ok(n) = c_r.read(&mut buf) {
                    if n == 0 || s_w.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_secs_f64(n as f64 / rate as f64));
                }
                let _ = s_w.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s_r, &mut c_w);
                let _ = c_w.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    addr
}

#[test]
fn sigint_during_a_push_stops_it_untagged_with_exit_130() {
    if !hoist_testutil::have_registry() {
        eprintln!("skipped: no docker-registry");
        return;
    }
    let reg = hoist_testutil::Registry::plain();
    let env = Env::new();
    // A big incompressible layer, so the push is still uploading when SIGINT comes.
    let mut data = vec![0u8; 256 << 20];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "big", &data[..]).unwrap();
    let tar_bytes = b.into_inner().unwrap();
    drop(data);
    let (layout, _) = with_layer(
        &env.path("base"),
        &tar_bytes,
        "application/vnd.oci.image.layer.v1.tar",
        &sha(&tar_bytes),
    );
    // Pushed through a slow loopback link (16 MiB/s), so the upload is surely running when
    // SIGINT comes, however fast the machine.
    let slow = slow_proxy(&reg.addr(), 16 << 20);
    let dest = format!("docker://{slow}/sig/app:1");
    let child = env
        .hoist()
        .args([
            "push",
            "--insecure-registry",
            &slow,
            &format!("oci:{}:latest", layout.display()),
            &dest,
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    run(std::process::Command::new("kill").args(["-INT", &child.id().to_string()]));
    let sent = std::time::Instant::now();
    let out = child.wait_with_output().unwrap();
    let took = sent.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(took < std::time::Duration::from_secs(2), "took {took:?}");
    assert!(
        !reg.tag_link_path("sig/app", "1").exists(),
        "the interrupted push left a tag"
    );
}

#[test]
fn deeply_nested_indexes_are_refused_with_a_clear_error() {
    let env = Env::new();
    let dir = env.path("nested");
    run(std::process::Command::new("cp")
        .arg("-r")
        .arg(busybox_base())
        .arg(&dir));
    let mut index: Value =
        serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    let mut desc = index["manifests"][0].clone();
    for _ in 0..200 {
        let child = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [desc],
        });
        let bytes = serde_json::to_vec(&child).unwrap();
        desc = json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": put_blob(&dir, &bytes),
            "size": bytes.len(),
        });
    }
    desc["annotations"] = json!({"org.opencontainers.image.ref.name": "latest"});
    index["manifests"] = json!([desc]);
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    let ctx = context(&env, &format!("FROM oci:{}:latest\n", dir.display()));
    let err = env.fails(&["build", ctx.to_str().unwrap()]);
    assert!(
        err.contains("image indexes nested more than 4 deep"),
        "{err}"
    );
}
