//! End-to-end tests of the step cache: a cached build gives the image a `--no-cache`
//! build gives, whatever earlier builds did; every input of a step is part of its key;
//! independent stages run in parallel with the same result for any `--jobs`.
//!
//! Runs as root and as the unprivileged user (scripts/test-unprivileged.sh).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;

fn from_busybox() -> String {
    format!("FROM oci:{}:latest\n", busybox_base().display())
}

fn context(env: &Env, name: &str, dockerfile: &str, files: &[(&str, &str)]) -> PathBuf {
    let ctx = env.path(name);
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    for (p, c) in files {
        let f = ctx.join(p);
        fs::create_dir_all(f.parent().unwrap()).unwrap();
        fs::write(f, c).unwrap();
    }
    ctx
}

/// Build `ctx` into an OCI layout with `extra` flags; returns the manifest digest.
fn build(env: &Env, ctx: &Path, out: &str, extra: &[&str]) -> String {
    let iid = env.path(&format!("{out}.digest"));
    let meta = env.path(&format!("{out}.json"));
    let dest = env.path(out);
    let _ = fs::remove_dir_all(&dest);
    let mut args = vec![
        "build".to_string(),
        "--progress".into(),
        "plain".into(),
        "--metadata-file".into(),
        meta.display().to_string(),
        "--iidfile".into(),
        iid.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    if !extra.iter().any(|a| a.starts_with("type=")) {
        args.push("-o".into());
        args.push(format!("type=oci,dest={}", dest.display()));
    }
    args.push(ctx.display().to_string());
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    env.ok(&a);
    let m: serde_json::Value = serde_json::from_slice(&fs::read(&meta).unwrap()).unwrap();
    m["containerimage.digest"]
        .as_str()
        .expect("metadata has the manifest digest")
        .to_string()
}

/// Build and return (digest, stderr).
fn build_logged(env: &Env, ctx: &Path, out: &str, extra: &[&str]) -> (String, String) {
    let dest = env.path(out);
    let _ = fs::remove_dir_all(&dest);
    let meta = env.path(&format!("{out}.json"));
    let mut c = env.hoist();
    c.args(["build", "--progress", "plain", "--metadata-file"])
        .arg(&meta)
        .args(extra)
        .arg("-o")
        .arg(format!("type=oci,dest={}", dest.display()))
        .arg(ctx);
    let out = c.output().unwrap();
    assert_success(&out, "hoist build");
    let m: serde_json::Value = serde_json::from_slice(&fs::read(&meta).unwrap()).unwrap();
    (
        m["containerimage.digest"].as_str().unwrap().to_string(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Read a file of a built image (unpacked with umoci).
fn image_file(env: &Env, layout: &str, path: &str) -> String {
    let dest = env.path(&format!("{layout}-unpacked"));
    let _ = fs::remove_dir_all(&dest);
    let rootfs = umoci_unpack(&env.path(layout), "latest", &dest);
    fs::read_to_string(rootfs.join(path.trim_start_matches('/'))).unwrap()
}

#[test]
fn add_content_enters_the_key_of_later_steps() {
    let env = Env::new();
    let df = from_busybox() + "ADD f.txt /f.txt\nRUN cat /f.txt > /copy.txt\n";
    let ctx = context(&env, "ctx", &df, &[("f.txt", "one\n")]);
    build(&env, &ctx, "a", &[]);
    assert_eq!(image_file(&env, "a", "/copy.txt"), "one\n");
    fs::write(ctx.join("f.txt"), "two\n").unwrap();
    let cached = build(&env, &ctx, "b", &[]);
    assert_eq!(image_file(&env, "b", "/f.txt"), "two\n");
    assert_eq!(
        image_file(&env, "b", "/copy.txt"),
        "two\n",
        "RUN after a changed ADD must run again"
    );
    let fresh = build(&env, &ctx, "c", &["--no-cache"]);
    assert_eq!(cached, fresh);
}

#[test]
fn compression_never_depends_on_cache_history() {
    let env = Env::new();
    let df = from_busybox() + "COPY data /data\nRUN echo ran > /ran.txt\n";
    let ctx = context(&env, "ctx", &df, &[("data", &"payload ".repeat(10_000))]);
    // A reference from a cache that only ever saw gzip.
    let clean = Env::new();
    let reference = build(&clean, &ctx, "ref", &[]);
    // zstd first, uncached; then default and explicit gzip builds from that cache.
    build(
        &env,
        &ctx,
        "z",
        &[
            "--no-cache",
            "-o",
            &format!("type=oci,dest={},compression=zstd", env.path("z").display()),
        ],
    );
    let layout = env.path("z");
    let idx: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let mdigest = idx["manifests"][0]["digest"].as_str().unwrap().to_string();
    let manifest: serde_json::Value = serde_json::from_slice(
        &fs::read(
            layout
                .join("blobs/sha256")
                .join(mdigest.trim_start_matches("sha256:")),
        )
        .unwrap(),
    )
    .unwrap();
    let last = manifest["layers"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        last["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    let (default, log) = build_logged(&env, &ctx, "d", &[]);
    assert_eq!(
        default, reference,
        "a default build after a zstd one is gzip, as always"
    );
    assert_eq!(
        log.matches("CACHED").count(),
        2,
        "COPY and RUN must come from the cache:\n{log}"
    );
    let gzip = build(
        &env,
        &ctx,
        "g",
        &[
            "-o",
            &format!("type=oci,dest={},compression=gzip", env.path("g").display()),
        ],
    );
    assert_eq!(gzip, reference);
    // And the zstd image itself is what a fresh zstd build makes.
    let z2 = build(
        &clean,
        &ctx,
        "z2",
        &[
            "--no-cache",
            "-o",
            &format!(
                "type=oci,dest={},compression=zstd",
                clean.path("z2").display()
            ),
        ],
    );
    let z1 = build(
        &env,
        &ctx,
        "z1",
        &[
            "-o",
            &format!(
                "type=oci,dest={},compression=zstd",
                env.path("z1").display()
            ),
        ],
    );
    assert_eq!(z1, z2);
}

#[test]
fn source_date_epoch_enters_run_keys() {
    let env = Env::new();
    let df = from_busybox() + "RUN echo hi > /hi.txt\n";
    let ctx = context(&env, "ctx", &df, &[]);
    let a = build(&env, &ctx, "a", &["--build-arg", "SOURCE_DATE_EPOCH=100"]);
    let b = build(
        &env,
        &ctx,
        "b",
        &["--build-arg", "SOURCE_DATE_EPOCH=1000000000"],
    );
    assert_ne!(a, b);
    let fresh = build(
        &env,
        &ctx,
        "c",
        &["--no-cache", "--build-arg", "SOURCE_DATE_EPOCH=1000000000"],
    );
    assert_eq!(b, fresh);
}

#[test]
fn a_mode_change_alone_invalidates_copy() {
    let env = Env::new();
    let df = "FROM scratch\nCOPY tool /tool\n";
    let ctx = context(&env, "ctx", df, &[("tool", "#!/bin/sh\n")]);
    fs::set_permissions(ctx.join("tool"), fs::Permissions::from_mode(0o644)).unwrap();
    let a = build(&env, &ctx, "a", &[]);
    fs::set_permissions(ctx.join("tool"), fs::Permissions::from_mode(0o755)).unwrap();
    let b = build(&env, &ctx, "b", &[]);
    assert_ne!(a, b);
    assert_eq!(b, build(&env, &ctx, "c", &["--no-cache"]));
}

#[test]
fn a_build_arg_used_only_by_a_later_run_enters_its_key() {
    let env = Env::new();
    let df = from_busybox() + "ARG X\nRUN echo unrelated > /u\nRUN echo \"$X\" > /x\n";
    let ctx = context(&env, "ctx", &df, &[]);
    build(&env, &ctx, "a", &["--build-arg", "X=one"]);
    assert_eq!(image_file(&env, "a", "/x"), "one\n");
    build(&env, &ctx, "b", &["--build-arg", "X=two"]);
    assert_eq!(image_file(&env, "b", "/x"), "two\n");
}

#[test]
fn cache_mount_contents_are_not_inputs() {
    let env = Env::new();
    let df = from_busybox()
        + "RUN --mount=type=cache,target=/c sh -c 'echo run >> /c/log; echo done > /out'\n";
    let ctx = context(&env, "ctx", &df, &[]);
    let (a, _) = build_logged(&env, &ctx, "a", &[]);
    // The first build changed the cache mount's contents; the step is still a hit.
    let (b, log) = build_logged(&env, &ctx, "b", &[]);
    assert_eq!(a, b);
    assert!(log.contains("CACHED"), "{log}");
}

/// Serve successive bodies over HTTP on loopback, one per request.
fn serve_bodies(bodies: Vec<&'static [u8]>) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for (stream, body) in listener.incoming().zip(bodies) {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(body);
        }
    });
    format!("http://{addr}")
}

#[test]
fn add_from_a_url_whose_content_changes() {
    let env = Env::new();
    let url = serve_bodies(vec![b"first\n", b"second\n", b"second\n"]);
    let df = from_busybox() + &format!("ADD {url}/f.txt /f.txt\nRUN cp /f.txt /copy.txt\n");
    let ctx = context(&env, "ctx", &df, &[]);
    build(&env, &ctx, "a", &[]);
    assert_eq!(image_file(&env, "a", "/copy.txt"), "first\n");
    let b = build(&env, &ctx, "b", &[]);
    assert_eq!(image_file(&env, "b", "/copy.txt"), "second\n");
    assert_eq!(b, build(&env, &ctx, "c", &["--no-cache"]));
}

#[test]
fn onbuild_of_a_stage_in_the_same_file_is_triggered() {
    let env = Env::new();
    let df = "FROM scratch AS base\nONBUILD COPY t.txt /t.txt\nCOPY b.txt /b.txt\nFROM base\n";
    let ctx = context(
        &env,
        "ctx",
        df,
        &[("t.txt", "trigger\n"), ("b.txt", "base\n")],
    );
    build(&env, &ctx, "a", &[]);
    assert_eq!(image_file(&env, "a", "/t.txt"), "trigger\n");
    assert_eq!(image_file(&env, "a", "/b.txt"), "base\n");
    let cfg = skopeo_config(&format!("oci:{}:latest", env.path("a").display()));
    assert!(
        cfg["config"]["OnBuild"].is_null(),
        "triggers are consumed: {cfg}"
    );
}

#[test]
fn graph_errors_come_before_any_step_runs() {
    let env = Env::new();
    let df = from_busybox()
        + "RUN echo should-not-run\nCOPY --from=later /x /x\nFROM scratch AS later\n";
    let ctx = context(&env, "ctx", &df, &[]);
    let err = env.fails(&["build", "--progress", "plain", ctx.to_str().unwrap()]);
    assert!(
        err.contains("needs to be defined before current stage"),
        "{err}"
    );
    assert!(err.contains("Dockerfile:3"), "{err}");
    assert!(!err.contains("should-not-run"), "nothing ran:\n{err}");
}

/// Dockerfiles of the end-to-end suite (fixtures and the RUN-heavy ones here).
fn dockerfiles() -> Vec<(String, PathBuf)> {
    let mut v = Vec::new();
    for f in ["hello", "copyrules", "multistage", "onbuild"] {
        v.push((f.to_string(), fixture(f)));
    }
    v
}

#[test]
fn cached_builds_equal_uncached_builds_on_every_fixture() {
    let env = Env::new();
    let mut cases = dockerfiles();
    let runs = context(
        &env,
        "runs",
        &(from_busybox()
            + "ARG MODE=0755\n\
               FROM scratch AS files\n\
               COPY --chmod=0600 a.txt /secretish\n\
               FROM oci:BUSYBOX:latest AS tool\n\
               RUN mkdir -p /out && echo built > /out/tool && rm -rf /tmp/*\n\
               FROM oci:BUSYBOX:latest\n\
               ARG MODE\n\
               WORKDIR /app\n\
               COPY --link --chmod=0755 a.txt ./\n\
               COPY --parents dir/sub/x.txt /p/\n\
               COPY --exclude=*.skip dir/ /ex/\n\
               COPY --from=tool /out/ /usr/local/bin/\n\
               COPY --from=files /secretish /s\n\
               RUN <<EOF\n\
               echo heredoc > /h.txt\n\
               rm -f /etc/motd\n\
               EOF\n\
               ADD arch.tar /unpacked/\n\
               USER 1000\n\
               RUN --mount=type=cache,target=/tmp/c echo cached-mount > /tmp/x || true\n")
            .replace("BUSYBOX", &busybox_base().display().to_string()),
        &[
            ("a.txt", "a\n"),
            ("dir/sub/x.txt", "x\n"),
            ("dir/y.skip", "y\n"),
        ],
    );
    run(std::process::Command::new("tar")
        .arg("-C")
        .arg(&runs)
        .arg("-cf")
        .arg(runs.join("arch.tar"))
        .arg("dir"));
    cases.push(("runs".into(), runs));
    for (name, ctx) in cases {
        let first = build(&env, &ctx, &format!("{name}-1"), &[]);
        let cached = build(&env, &ctx, &format!("{name}-2"), &[]);
        let fresh = build(&env, &ctx, &format!("{name}-3"), &["--no-cache"]);
        let serial = build(
            &env,
            &ctx,
            &format!("{name}-4"),
            &["--no-cache", "--jobs", "1"],
        );
        assert_eq!(first, cached, "{name}: cached rebuild");
        assert_eq!(first, fresh, "{name}: --no-cache");
        assert_eq!(first, serial, "{name}: --jobs 1");
    }
}

#[test]
fn independent_stages_run_at_the_same_time() {
    // Not a timing test: each stage waits (bounded) until the other has started, which
    // only succeeds when both run at once.
    let env = Env::new();
    let stage = |me: &str, other: &str| {
        format!(
            "FROM oci:{bb}:latest AS {me}\n\
             RUN --mount=type=cache,target=/shared,id=rendezvous,sharing=shared sh -c \
             'touch /shared/{me}; i=0; while [ ! -e /shared/{other} ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; \
             [ -e /shared/{other} ] && echo together > /{me}.txt'\n",
            bb = busybox_base().display()
        )
    };
    let df = format!(
        "{}{}FROM scratch\nCOPY --from=left /left.txt /\nCOPY --from=right /right.txt /\n",
        stage("left", "right"),
        stage("right", "left")
    );
    let ctx = context(&env, "ctx", &df, &[]);
    let (_, log) = build_logged(&env, &ctx, "out", &["--jobs", "2"]);
    assert_eq!(image_file(&env, "out", "/left.txt"), "together\n", "{log}");
    assert_eq!(image_file(&env, "out", "/right.txt"), "together\n");
}
