//! End-to-end tests of `hoist build` without RUN: every output type read back by
//! independent tools, Docker's COPY semantics checked inside the unpacked image,
//! reproducibility, and clear errors.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use common::*;

fn build_hello(env: &Env, out: &str) -> String {
    let ctx = fixture("hello");
    env.ok(&[
        "build",
        "-t",
        "hello:1.0",
        "--output",
        &format!("type=oci,dest={out}"),
        ctx.to_str().unwrap(),
    ])
    .trim()
    .to_string()
}

#[test]
fn hello_oci_layout_is_read_by_skopeo_and_umoci() {
    let env = Env::new();
    let out = env.path("oci");
    let digest = build_hello(&env, out.to_str().unwrap());
    assert!(digest.starts_with("sha256:"), "{digest}");

    // skopeo agrees on the digest and sees the config.
    let r = format!("oci:{}:1.0", out.display());
    let raw = skopeo_raw(&r);
    assert_eq!(
        format!(
            "sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&raw))
        ),
        digest
    );
    let cfg = skopeo_config(&r);
    let c = &cfg["config"];
    assert_eq!(c["User"], "1000:1000");
    assert_eq!(c["WorkingDir"], "/srv/app");
    assert_eq!(c["Entrypoint"], serde_json::json!(["/usr/local/bin/run"]));
    assert_eq!(c["Cmd"], serde_json::json!(["--port", "8080"]));
    assert_eq!(c["StopSignal"], "SIGTERM");
    assert_eq!(c["Labels"]["org.opencontainers.image.version"], "1.0");
    assert_eq!(c["Labels"]["org.opencontainers.image.title"], "hello");
    let ports = c["ExposedPorts"].as_object().unwrap();
    let mut keys: Vec<_> = ports.keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["8080/tcp", "9000/udp", "9001/udp"]);
    assert!(c["Volumes"]["/srv/app/data"].is_object());
    assert!(c["Env"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("GREETING=hello, world")));
    assert_eq!(
        c["Healthcheck"]["Test"],
        serde_json::json!(["CMD", "/usr/local/bin/run", "--check"])
    );
    assert_eq!(c["Healthcheck"]["Interval"], 30_000_000_000i64);
    assert_eq!(c["Healthcheck"]["Retries"], 3);
    // History like BuildKit's.
    let hist: Vec<String> = cfg["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["created_by"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(hist.contains(&"WORKDIR /srv/app".to_string()), "{hist:?}");
    assert!(
        hist.contains(&"COPY app/ ./ # buildkit".to_string()),
        "{hist:?}"
    );
    assert!(
        hist.contains(&"COPY --chmod=0755 app/run.sh /usr/local/bin/run # buildkit".to_string()),
        "{hist:?}"
    );
    assert!(
        hist.contains(&"EXPOSE [8080/tcp 9000/udp 9001/udp]".to_string()),
        "{hist:?}"
    );
    assert!(
        hist.contains(&r#"CMD ["--port" "8080"]"#.to_string()),
        "{hist:?}"
    );
    assert_eq!(cfg["created"], "1970-01-01T00:00:00Z");

    // umoci unpacks it; contents are what Docker semantics say.
    let rootfs = umoci_unpack(&out, "1.0", &env.path("bundle"));
    let app = rootfs.join("srv/app");
    assert_eq!(
        fs::read_to_string(app.join("index.html")).unwrap(),
        "<h1>hello</h1>\n"
    );
    assert_eq!(
        fs::read_link(app.join("default.html")).unwrap(),
        Path::new("index.html")
    );
    assert!(app.join("static/site.css").is_file());
    assert!(
        app.join("static/keep.tmp").is_file(),
        ".dockerignore exception"
    );
    assert!(
        !app.join("static/drop.tmp").exists(),
        ".dockerignore **/*.tmp"
    );
    assert!(!rootfs.join("srv/app/ignored").exists());
    let run = fs::metadata(rootfs.join("usr/local/bin/run")).unwrap();
    assert_eq!(run.permissions().mode() & 0o7777, 0o755);
    assert_eq!(
        fs::read_to_string(rootfs.join("etc/motd")).unwrap(),
        "Welcome to hello, world version 1.0\n"
    );
    if is_root() {
        let md = fs::metadata(app.join("index.html")).unwrap();
        assert_eq!(
            (md.uid(), md.gid()),
            (0, 0),
            "COPY without --chown is root-owned"
        );
    }
    assert_eq!(
        fs::metadata(app.join("index.html")).unwrap().mtime(),
        0,
        "normalised mtime"
    );
}

#[test]
fn every_output_type_is_readable_by_independent_tools() {
    let env = Env::new();
    let ctx = fixture("hello");
    let oci_tar = env.path("img-oci.tar");
    let docker_tar = env.path("img-docker.tar");
    let local = env.path("rootfs");
    let fs_tar = env.path("fs.tar");
    let meta = env.path("meta.json");
    let iid = env.path("iid");
    let digest = env
        .ok(&[
            "build",
            "-t",
            "localhost/hello:1.0",
            "-o",
            &format!("type=oci,dest={}", oci_tar.display()),
            "-o",
            &format!("type=docker,dest={}", docker_tar.display()),
            "-o",
            &format!("type=local,dest={}", local.display()),
            "-o",
            &format!("type=tar,dest={}", fs_tar.display()),
            "--metadata-file",
            meta.to_str().unwrap(),
            "--iidfile",
            iid.to_str().unwrap(),
            ctx.to_str().unwrap(),
        ])
        .trim()
        .to_string();

    // OCI archive.
    let i = skopeo_inspect(&format!("oci-archive:{}", oci_tar.display()));
    assert_eq!(i["Digest"], digest);
    // docker-archive: skopeo reads it and podman loads it.
    let i = skopeo_inspect(&format!("docker-archive:{}", docker_tar.display()));
    assert_eq!(i["Labels"]["org.opencontainers.image.title"], "hello");
    let copy_dir = env.path("copied");
    run(Command::new("skopeo").args([
        "copy",
        &format!("docker-archive:{}", docker_tar.display()),
        &format!("oci:{}:x", copy_dir.display()),
    ]));
    podman_load(&env, &docker_tar);

    // type=local and type=tar hold the final filesystem only.
    assert!(local.join("srv/app/index.html").is_file());
    assert!(local.join("etc/motd").is_file());
    let listing = run(Command::new("tar").arg("-tf").arg(&fs_tar));
    assert!(
        listing
            .lines()
            .any(|l| l.trim_start_matches("./") == "srv/app/index.html"),
        "{listing}"
    );

    // Metadata files.
    let m: serde_json::Value = serde_json::from_slice(&fs::read(&meta).unwrap()).unwrap();
    assert_eq!(m["containerimage.digest"], digest);
    let config_digest = m["containerimage.config.digest"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(fs::read_to_string(&iid).unwrap().trim(), config_digest);
    assert!(m["containerimage.descriptor"]["size"].as_u64().unwrap() > 0);
}

fn podman_load(_env: &Env, archive: &Path) {
    // podman limits the run root path to 50 characters: use a short dir under /tmp.
    let short = tempfile::Builder::new()
        .prefix("pm")
        .tempdir_in("/tmp")
        .unwrap();
    let root = short.path().join("r");
    let runroot = short.path().join("s");
    let podman = || {
        let mut c = Command::new("podman");
        c.args([
            "--root",
            root.to_str().unwrap(),
            "--runroot",
            runroot.to_str().unwrap(),
        ])
        .args(["--storage-driver", "vfs"]);
        c
    };
    let out = podman()
        .args(["load", "-i", archive.to_str().unwrap()])
        .output()
        .unwrap();
    assert_success(&out, "podman load");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("localhost/hello:1.0"), "{text}");
    let _ = podman().args(["system", "reset", "-f"]).output();
}

fn copy_tree(from: &Path, to: &Path) {
    run(Command::new("cp").arg("-a").arg(from).arg(to));
}

#[test]
fn same_context_gives_same_digest_whatever_mtimes_and_location() {
    let env = Env::new();
    let a = env.path("a");
    let b = env.path("elsewhere/b");
    fs::create_dir_all(b.parent().unwrap()).unwrap();
    copy_tree(&fixture("hello"), &a);
    copy_tree(&fixture("hello"), &b);
    // Different mtimes in the second copy.
    run(Command::new("find").arg(&b).args([
        "-exec",
        "touch",
        "-h",
        "-d",
        "2001-02-03 04:05:06",
        "{}",
        "+",
    ]));
    let d1 = env.ok(&["build", a.to_str().unwrap()]);
    let env2 = Env::new();
    let d2 = env2
        .hoist()
        .current_dir(b.parent().unwrap())
        .args(["build", "b"])
        .output()
        .unwrap();
    assert_success(&d2, "second build");
    assert_eq!(d1.trim(), String::from_utf8_lossy(&d2.stdout).trim());

    // SOURCE_DATE_EPOCH sets `created` and clamps file times.
    let out = env.path("sde");
    env.hoist()
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args([
            "build",
            "-o",
            &format!("type=oci,dest={}", out.display()),
            a.to_str().unwrap(),
        ])
        .output()
        .map(|o| assert_success(&o, "SDE build"))
        .unwrap();
    let cfg = skopeo_config(&format!("oci:{}", out.display()));
    assert_eq!(cfg["created"], "2023-11-14T22:13:20Z");
}

#[test]
fn multistage_builds_only_needed_stages_and_target_selects() {
    let env = Env::new();
    let ctx = fixture("multistage");
    // The `unused` stage would fail (missing file): it must not be built.
    let out = env.path("oci");
    env.ok(&[
        "build",
        "-o",
        &format!("type=oci,dest={}", out.display()),
        ctx.to_str().unwrap(),
    ]);
    let rootfs = umoci_unpack(&out, "latest", &env.path("b"));
    assert_eq!(fs::read_to_string(rootfs.join("srv/a.txt")).unwrap(), "a\n");
    assert_eq!(
        fs::read_to_string(rootfs.join("srv/README")).unwrap(),
        "read me\n"
    );
    if is_root() {
        let md = fs::metadata(rootfs.join("srv/README")).unwrap();
        assert_eq!((md.uid(), md.gid()), (10, 20));
    }
    // --target picks a stage; building the unused one fails naming the line.
    let out2 = env.path("docs");
    env.ok(&[
        "build",
        "--target",
        "docs",
        "-o",
        &format!("type=local,dest={}", out2.display()),
        ctx.to_str().unwrap(),
    ]);
    assert!(out2.join("docs/readme.txt").is_file());
    assert!(!out2.join("srv").exists());
    let err = env.fails(&["build", "--target", "unused", ctx.to_str().unwrap()]);
    assert!(
        err.contains("Dockerfile:6") && err.contains("does-not-exist"),
        "{err}"
    );
    let err = env.fails(&["build", "--target", "nope", ctx.to_str().unwrap()]);
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn copy_semantics_match_docker() {
    let env = Env::new();
    let ctx = fixture("copyrules");
    let out = env.path("fs");
    env.ok(&[
        "build",
        "-o",
        &format!("type=local,dest={}", out.display()),
        ctx.to_str().unwrap(),
    ]);
    let r = |p: &str| fs::read_to_string(out.join(p)).unwrap();
    // A directory source copies its contents.
    assert_eq!(r("copied-contents/file1"), "one\n");
    assert_eq!(r("copied-contents/sub/deep.txt"), "deep\n");
    assert!(!out.join("copied-contents/dir").exists());
    assert_eq!(
        fs::read_link(out.join("copied-contents/link-to-file1")).unwrap(),
        Path::new("file1")
    );
    // A single file to a path without slash becomes that file.
    assert_eq!(r("target-file"), "one\n");
    assert_eq!(r("multi/file1"), "one\n");
    assert_eq!(r("multi/file2"), "two\n");
    // Wildcards.
    assert_eq!(r("glob/file1"), "one\n");
    assert!(!out.join("glob/file2").exists());
    // A wildcard matching nothing is not an error and copies nothing.
    assert!(!out.join("empty").exists());
    // --parents keeps the source path.
    assert_eq!(r("parents/dir/sub/deep.txt"), "deep\n");
    // --exclude.
    assert!(out.join("excluded/sub/tool.bin").is_file());
    assert!(!out.join("excluded/sub/deep.txt").exists());
    assert!(!out.join("excluded/file2").exists());
    assert_eq!(r("excluded/file1"), "one\n");
    // Relative destinations follow WORKDIR.
    assert_eq!(r("work/file2"), "two\n");
    assert_eq!(r("work/rel/file2"), "two\n");
}

#[test]
fn chown_by_name_uses_the_image_passwd_and_onbuild_triggers_run() {
    let env = Env::new();
    let base = busybox_base();
    let ctx = env.path("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("f.txt"), "x\n").unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM oci:{}:latest\nCOPY --chown=app f.txt /home/app/\nCOPY --chown=app:staff f.txt /srv/g.txt\nWORKDIR /home/app/work\nUSER app\nWORKDIR /home/app/mine\n",
            base.display()
        ),
    )
    .unwrap();
    let out = env.path("oci");
    env.ok(&[
        "build",
        "-o",
        &format!("type=oci,dest={}", out.display()),
        ctx.to_str().unwrap(),
    ]);
    // The base layer passes through byte for byte.
    let base_layers = skopeo_inspect(&format!("oci:{}:latest", base.display()))["Layers"].clone();
    let layers = skopeo_inspect(&format!("oci:{}", out.display()))["Layers"].clone();
    assert_eq!(layers[0], base_layers[0]);
    if is_root() {
        let rootfs = umoci_unpack(&out, "latest", &env.path("b"));
        let md = fs::metadata(rootfs.join("home/app/f.txt")).unwrap();
        assert_eq!((md.uid(), md.gid()), (1000, 1000));
        let md = fs::metadata(rootfs.join("srv/g.txt")).unwrap();
        assert_eq!((md.uid(), md.gid()), (1000, 50));
        // Existing directories keep their owner.
        let md = fs::metadata(rootfs.join("home/app")).unwrap();
        assert_eq!((md.uid(), md.gid()), (1000, 1000));
        // WORKDIR creates directories as the current USER.
        let md = fs::metadata(rootfs.join("home/app/work")).unwrap();
        assert_eq!(md.uid(), 0);
        let md = fs::metadata(rootfs.join("home/app/mine")).unwrap();
        assert_eq!((md.uid(), md.gid()), (1000, 1000));
    }
    // A `--chown` name without a passwd entry is 0:0, as BuildKit's file operations
    // resolve it (they never fail on a name; only `USER` for RUN does).
    fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM oci:{}:latest\nCOPY --chown=ghost f.txt /\n",
            base.display()
        ),
    )
    .unwrap();
    let ghost = env.path("ghost-oci");
    env.ok(&[
        "build",
        "-o",
        &format!("type=oci,dest={}", ghost.display()),
        ctx.to_str().unwrap(),
    ]);
    if is_root() {
        let rootfs = umoci_unpack(&ghost, "latest", &env.path("ghost-rootfs"));
        let md = fs::metadata(rootfs.join("f.txt")).unwrap();
        assert_eq!((md.uid(), md.gid()), (0, 0));
    }

    // ONBUILD: build a base with triggers, then build FROM it.
    let onbuild = env.path("onbuild-oci");
    env.ok(&[
        "build",
        "-o",
        &format!("type=oci,dest={}", onbuild.display()),
        fixture("onbuild").to_str().unwrap(),
    ]);
    let cfg = skopeo_config(&format!("oci:{}", onbuild.display()));
    assert_eq!(cfg["config"]["OnBuild"].as_array().unwrap().len(), 2);
    let child = env.path("child");
    fs::create_dir_all(&child).unwrap();
    fs::write(child.join("trigger.txt"), "from child\n").unwrap();
    fs::write(
        child.join("Dockerfile"),
        format!("FROM oci:{}\n", onbuild.display()),
    )
    .unwrap();
    let out = env.path("child-fs");
    let child_oci = env.path("child-oci");
    env.ok(&[
        "build",
        "-o",
        &format!("type=local,dest={}", out.display()),
        "-o",
        &format!("type=oci,dest={}", child_oci.display()),
        child.to_str().unwrap(),
    ]);
    assert_eq!(
        fs::read_to_string(out.join("from-trigger.txt")).unwrap(),
        "from child\n"
    );
    let cfg = skopeo_config(&format!("oci:{}", child_oci.display()));
    assert_eq!(cfg["config"]["Labels"]["triggered"], "yes");
    assert!(
        cfg["config"]["OnBuild"].is_null(),
        "triggers do not carry over"
    );
}

#[test]
fn add_extracts_local_archives_and_named_contexts_work() {
    let env = Env::new();
    let ctx = env.path("ctx");
    let payload = env.path("payload");
    fs::create_dir_all(payload.join("inner")).unwrap();
    fs::create_dir_all(&ctx).unwrap();
    fs::write(payload.join("inner/x.txt"), "x\n").unwrap();
    run(Command::new("tar")
        .arg("-czf")
        .arg(ctx.join("p.tar.gz"))
        .arg("-C")
        .arg(&payload)
        .arg("."));
    run(Command::new("tar")
        .arg("-cJf")
        .arg(ctx.join("p.tar.xz"))
        .arg("-C")
        .arg(&payload)
        .arg("."));
    fs::write(ctx.join("plain.gz"), b"\x1f\x8b not really").unwrap();
    let named = env.path("named");
    fs::create_dir_all(&named).unwrap();
    fs::write(named.join("n.txt"), "named\n").unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nADD p.tar.gz /gz/\nADD p.tar.xz /xz\nADD plain.gz /raw/\nCOPY --from=extra n.txt /n.txt\n",
    )
    .unwrap();
    let out = env.path("fs");
    env.ok(&[
        "build",
        "--build-context",
        &format!("extra={}", named.display()),
        "-o",
        &format!("type=local,dest={}", out.display()),
        ctx.to_str().unwrap(),
    ]);
    assert_eq!(
        fs::read_to_string(out.join("gz/inner/x.txt")).unwrap(),
        "x\n"
    );
    assert_eq!(
        fs::read_to_string(out.join("xz/inner/x.txt")).unwrap(),
        "x\n"
    );
    assert!(
        out.join("raw/plain.gz").is_file(),
        "not a tar: copied as is"
    );
    assert_eq!(fs::read_to_string(out.join("n.txt")).unwrap(), "named\n");
}

#[test]
fn errors_name_the_file_and_line() {
    let env = Env::new();
    let ctx = env.path("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY missing.txt /\n").unwrap();
    let err = env.fails(&["build", ctx.to_str().unwrap()]);
    assert!(
        err.contains("Dockerfile:2") && err.contains("missing.txt"),
        "{err}"
    );
    fs::write(ctx.join("Dockerfile"), "FROM scratch\nFROB x\n").unwrap();
    let err = env.fails(&["build", ctx.to_str().unwrap()]);
    assert!(
        err.contains(":2") && err.to_lowercase().contains("frob"),
        "{err}"
    );
    // A failed build leaves no output behind.
    let out = env.path("never");
    fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY missing.txt /\n").unwrap();
    env.fails(&[
        "build",
        "-o",
        &format!("type=oci,dest={}", out.display()),
        ctx.to_str().unwrap(),
    ]);
    assert!(!out.exists());
    let leftovers: Vec<_> = fs::read_dir(env.path(""))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        !leftovers
            .iter()
            .any(|n| n.to_string_lossy().contains("tmp")),
        "{leftovers:?}"
    );
}

/// Serve `body` over HTTP on loopback for `n` requests; returns the base URL.
fn serve(body: &'static [u8], n: usize) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(n) {
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
fn add_from_a_url_verifies_the_checksum() {
    const BODY: &[u8] = b"downloaded content\n";
    let sum = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(BODY))
    );
    let env = Env::new();
    let ctx = env.path("ctx");
    fs::create_dir_all(&ctx).unwrap();
    let url = serve(BODY, 2);
    fs::write(
        ctx.join("Dockerfile"),
        format!("FROM scratch\nADD --checksum={sum} {url}/files/data.txt /dl/\nADD {url}/files/data.txt /named.txt\n"),
    )
    .unwrap();
    let out = env.path("fs");
    env.ok(&[
        "build",
        "-o",
        &format!("type=local,dest={}", out.display()),
        ctx.to_str().unwrap(),
    ]);
    assert_eq!(fs::read(out.join("dl/data.txt")).unwrap(), BODY);
    assert_eq!(fs::read(out.join("named.txt")).unwrap(), BODY);
    // BuildKit gives downloaded files mode 0600.
    assert_eq!(
        fs::metadata(out.join("named.txt"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    // A wrong checksum fails the build, naming the line.
    let url = serve(BODY, 1);
    let bad = format!("sha256:{}", "0".repeat(64));
    fs::write(
        ctx.join("Dockerfile"),
        format!("FROM scratch\nADD --checksum={bad} {url}/x /x\n"),
    )
    .unwrap();
    let err = env.fails(&["build", ctx.to_str().unwrap()]);
    assert!(
        err.contains("Dockerfile:2") && err.contains("checksum mismatch"),
        "{err}"
    );
}

#[test]
fn git_checkout_provenance_labels_and_tag_templates() {
    let env = Env::new();
    let ctx = env.path("repo");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("f.txt"), "x\n").unwrap();
    fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY f.txt /\n").unwrap();
    let git = |args: &[&str]| {
        run(Command::new("git")
            .arg("-C")
            .arg(&ctx)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
            .args(args)
            .env("GIT_COMMITTER_DATE", "1700000000 +0000")
            .env("GIT_AUTHOR_DATE", "1700000000 +0000"))
    };
    git(&["init", "-q", "-b", "main"]);
    git(&[
        "remote",
        "add",
        "origin",
        "https://user:secret@git.example/team/app.git",
    ]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "init"]);
    let sha = git(&["rev-parse", "HEAD"]).trim().to_string();
    let out = env.path("oci");
    let d1 = env.ok(&[
        "build",
        "-t",
        "app:{git-short-sha}",
        "-o",
        &format!("type=oci,dest={}", out.display()),
        ctx.to_str().unwrap(),
    ]);
    let tag = &sha[..7];
    let cfg = skopeo_config(&format!("oci:{}:{tag}", out.display()));
    let labels = &cfg["config"]["Labels"];
    assert_eq!(labels["org.opencontainers.image.revision"], sha.as_str());
    assert_eq!(
        labels["org.opencontainers.image.source"],
        "https://git.example/team/app.git"
    );
    assert_eq!(
        labels["org.opencontainers.image.created"],
        "2023-11-14T22:13:20Z"
    );
    // Reproducible: the same commit gives the same digest.
    let d2 = env.ok(&["build", ctx.to_str().unwrap()]);
    assert_eq!(d1.trim(), d2.trim());
    // A LABEL in the Dockerfile wins over the recorded one.
    fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nLABEL org.opencontainers.image.source=mine\n",
    )
    .unwrap();
    let out2 = env.path("oci2");
    env.ok(&[
        "build",
        "-o",
        &format!("type=oci,dest={}", out2.display()),
        ctx.to_str().unwrap(),
    ]);
    let cfg = skopeo_config(&format!("oci:{}", out2.display()));
    assert_eq!(
        cfg["config"]["Labels"]["org.opencontainers.image.source"],
        "mine"
    );
    // Templates outside a git checkout are a clear error.
    // (In the system temp dir: the test's own scratch space may sit inside hoist's checkout.)
    let plain_dir = tempfile::Builder::new()
        .prefix("hoist-plain-")
        .tempdir()
        .unwrap();
    let plain = plain_dir.path().to_path_buf();
    fs::write(plain.join("Dockerfile"), "FROM scratch\n").unwrap();
    let err = env.fails(&["build", "-t", "app:{git-sha}", plain.to_str().unwrap()]);
    assert!(err.contains("git checkout"), "{err}");
}

/// Build args no built stage declares are reported, as BuildKit does (proxy args,
/// `SOURCE_DATE_EPOCH` and args of stages that were built are not); the build succeeds.
#[test]
fn unconsumed_build_args_are_reported() {
    let env = Env::new();
    let ctx = env.path("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "ARG GLOBAL\nFROM scratch AS skipped\nARG ONLY_SKIPPED\n\
         FROM scratch\nARG USED\nCOPY Dockerfile /\n",
    )
    .unwrap();
    let out = env
        .hoist()
        .args(["build", "--progress", "plain"])
        .args(["--build-arg", "GLOBAL=1", "--build-arg", "USED=1"])
        .args(["--build-arg", "ONLY_SKIPPED=1", "--build-arg", "TYPO=1"])
        .args(["--build-arg", "HTTPS_PROXY=http://proxy:3128"])
        .args(["--build-arg", "SOURCE_DATE_EPOCH=0"])
        .arg(&ctx)
        .output()
        .unwrap();
    assert_success(&out, "hoist build");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("build args [ONLY_SKIPPED TYPO] were not consumed"),
        "{err}"
    );
}
