//! End-to-end tests of RUN: the rootless sandbox on a busybox base and on a real Debian
//! base (apt works inside RUN), whiteouts, secrets, cache mounts, isolation. The same
//! binary runs as root (CI) and as an unprivileged user (scripts/test-unprivileged.sh).

mod common;

use std::fs;
use std::path::Path;

use common::*;

fn dockerfile(env: &Env, name: &str, body: &str) -> std::path::PathBuf {
    let ctx = env.path(name);
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("Dockerfile"), body).unwrap();
    ctx
}

fn from_busybox() -> String {
    format!("FROM oci:{}:latest\n", busybox_base().display())
}

#[test]
fn run_changes_become_layers_and_deletions_whiteouts() {
    let env = Env::new();
    let ctx = dockerfile(
        &env,
        "ctx",
        &(from_busybox()
            + "ARG WHO=builder\n\
               RUN echo \"made by $WHO\" > /made && mkdir -p /srv/data && echo d > /srv/data/d\n\
               RUN rm /etc/group && rm -r /home\n\
               RUN mkdir -p /srv/data && rm -rf /srv/data/* && echo new > /srv/data/n\n\
               USER app\n\
               WORKDIR /tmp/work\n\
               RUN id -u > /tmp/work/uid && touch /tmp/work/owned\n\
               RUN <<EOF\n\
               #!/bin/sh\n\
               echo \"script ran as $(id -un)\" > /tmp/work/script\n\
               EOF\n"),
    );
    let out = env.path("oci");
    env.ok(&[
        "build",
        "-o",
        &format!("type=oci,dest={}", out.display()),
        ctx.to_str().unwrap(),
    ]);
    let rootfs = umoci_unpack(&out, "latest", &env.path("b"));
    assert_eq!(
        fs::read_to_string(rootfs.join("made")).unwrap(),
        "made by builder\n"
    );
    assert!(
        !rootfs.join("etc/group").exists(),
        "whiteout of a base file"
    );
    assert!(
        !rootfs.join("home").exists(),
        "whiteout of a base directory"
    );
    assert!(rootfs.join("etc/passwd").exists());
    assert!(!rootfs.join("srv/data/d").exists());
    assert_eq!(
        fs::read_to_string(rootfs.join("srv/data/n")).unwrap(),
        "new\n"
    );
    assert_eq!(
        fs::read_to_string(rootfs.join("tmp/work/uid")).unwrap(),
        "1000\n"
    );
    assert_eq!(
        fs::read_to_string(rootfs.join("tmp/work/script")).unwrap(),
        "script ran as app\n"
    );
    if is_root() {
        use std::os::unix::fs::MetadataExt;
        let md = fs::metadata(rootfs.join("tmp/work/owned")).unwrap();
        assert_eq!(
            (md.uid(), md.gid()),
            (1000, 1000),
            "container ids in the layer"
        );
    }
    // Build args are not persisted in the config; history is BuildKit's.
    let cfg = skopeo_config(&format!("oci:{}", out.display()));
    let env_list = cfg["config"]["Env"].to_string();
    assert!(!env_list.contains("WHO"), "{env_list}");
    let hist: Vec<String> = cfg["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["created_by"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        hist.iter()
            .any(|h| h.starts_with("RUN |1 WHO=builder /bin/sh -c echo")),
        "{hist:?}"
    );
}

#[test]
fn failing_run_names_the_line_and_exit_code_and_leaves_nothing() {
    let env = Env::new();
    let ctx = dockerfile(
        &env,
        "ctx",
        &(from_busybox() + "RUN true\nRUN echo about to fail; exit 3\n"),
    );
    let out = env.path("oci");
    let err = env.fails(&[
        "build",
        "-o",
        &format!("type=oci,dest={}", out.display()),
        ctx.to_str().unwrap(),
    ]);
    assert!(err.contains("Dockerfile:3"), "{err}");
    assert!(err.contains("exit code 3"), "{err}");
    assert!(err.contains("about to fail"), "output is streamed: {err}");
    assert!(!out.exists());
    // No run directories survive.
    let sandbox = env.path("cache/sandbox");
    if sandbox.exists() {
        let left: Vec<_> = fs::read_dir(&sandbox).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }
}

#[test]
fn secrets_never_reach_a_layer_and_cache_mounts_persist() {
    let env = Env::new();
    let secret = env.path("token.txt");
    fs::write(&secret, "s3cr3t-value-4242").unwrap();
    let ctx = dockerfile(
        &env,
        "ctx",
        &(from_busybox()
            + "RUN --mount=type=secret,id=tok cat /run/secrets/tok | wc -c > /secret-len\n\
               RUN --mount=type=secret,id=tok,env=TOK test \"$(echo \"$TOK\" | sha256sum | cut -c1-8)\" = \"$(cat /run/secrets/tok 2>/dev/null; echo \"$TOK\" | sha256sum | cut -c1-8)\" && echo ok > /env-ok\n\
               RUN --mount=type=cache,target=/var/cache/thing sh -c 'echo run >> /var/cache/thing/log; wc -l < /var/cache/thing/log > /runs'\n\
               RUN --mount=type=tmpfs,target=/scratch sh -c 'echo t > /scratch/t && test -f /scratch/t'\n"),
    );
    let out = env.path("oci");
    let build = |out: &Path| {
        env.ok(&[
            "build",
            "--no-cache",
            "--secret",
            &format!("id=tok,src={}", secret.display()),
            "-o",
            &format!("type=oci,dest={}", out.display()),
            ctx.to_str().unwrap(),
        ])
    };
    build(&out);
    assert!(
        !layout_contains(&out, b"s3cr3t-value-4242"),
        "secret leaked into a blob"
    );
    let rootfs = umoci_unpack(&out, "latest", &env.path("b1"));
    assert_eq!(
        fs::read_to_string(rootfs.join("secret-len"))
            .unwrap()
            .trim(),
        "17"
    );
    assert_eq!(fs::read_to_string(rootfs.join("env-ok")).unwrap(), "ok\n");
    assert_eq!(fs::read_to_string(rootfs.join("runs")).unwrap().trim(), "1");
    assert!(!rootfs.join("scratch/t").exists());
    assert!(
        !rootfs.join("var/cache/thing/log").exists(),
        "cache mount contents stay out of the layer"
    );
    // The cache mount persists into the next build.
    let out2 = env.path("oci2");
    build(&out2);
    let rootfs = umoci_unpack(&out2, "latest", &env.path("b2"));
    assert_eq!(fs::read_to_string(rootfs.join("runs")).unwrap().trim(), "2");
    // A required secret that is missing is a clear error.
    let ctx2 = dockerfile(
        &env,
        "ctx2",
        &(from_busybox() + "RUN --mount=type=secret,id=nope,required cat /run/secrets/nope\n"),
    );
    let err = env.fails(&["build", ctx2.to_str().unwrap()]);
    assert!(
        err.contains("nope") && err.contains("Dockerfile:2"),
        "{err}"
    );
}

#[test]
fn sandbox_cannot_see_the_host() {
    let env = Env::new();
    let marker = env.path("host-only-marker");
    fs::write(&marker, "x").unwrap();
    let ctx = dockerfile(
        &env,
        "ctx",
        &(from_busybox()
            + &format!(
                "RUN test ! -e {marker} && test ! -e {cache} && test ! -e {ctx} \
                 && test -z \"$HOIST_SECRET_TOKEN\" && test -z \"$HOIST_CACHE_DIR\" \
                 && test \"$(ls /proc | grep -c '^[0-9]')\" -le 5 \
                 && test \"$(hostname)\" = buildkitsandbox \
                 && echo isolated > /isolated\n",
                marker = marker.display(),
                cache = env.path("cache").display(),
                ctx = env.path("ctx").display(),
            )),
    );
    let out = env.path("fs");
    let o = env
        .hoist()
        .env("HOIST_SECRET_TOKEN", "should-not-leak")
        .args([
            "build",
            "-o",
            &format!("type=local,dest={}", out.display()),
            ctx.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_success(&o, "isolation build");
    assert_eq!(
        fs::read_to_string(out.join("isolated")).unwrap(),
        "isolated\n"
    );
}

#[test]
fn apt_get_install_works_on_a_real_debian_base() {
    let Some(base) = debian_base() else {
        eprintln!("SKIP: no Debian base (debootstrap needs root; run the suite as root first)");
        return;
    };
    let env = Env::new();
    let ctx = dockerfile(
        &env,
        "ctx",
        &format!(
            "FROM oci:{}:bookworm\n\
             RUN apt-get update && apt-get install -y --no-install-recommends hello && rm -rf /var/lib/apt/lists/*\n\
             RUN hello > /greeting && rm -f /etc/issue\n",
            base.display()
        ),
    );
    let out = env.path("oci");
    env.ok(&[
        "build",
        "-o",
        &format!("type=oci,dest={}", out.display()),
        ctx.to_str().unwrap(),
    ]);
    let rootfs = umoci_unpack(&out, "latest", &env.path("b"));
    assert!(rootfs.join("usr/bin/hello").is_file(), "package installed");
    assert_eq!(
        fs::read_to_string(rootfs.join("greeting")).unwrap(),
        "Hello, world!\n"
    );
    assert!(
        !rootfs.join("etc/issue").exists(),
        "whiteout honoured by umoci"
    );
}

/// `--platform a,b` builds one image per platform under an index, BuildKit-style: stages on
/// `$BUILDPLATFORM` run natively (cross-compilation), `TARGET*` args differ per image, the
/// index names each platform, and outputs that hold one platform are refused up front.
#[test]
fn several_platforms_make_an_index_with_native_build_stages() {
    let env = Env::new();
    let ctx = dockerfile(
        &env,
        "ctx",
        &format!(
            "FROM --platform=$BUILDPLATFORM oci:{}:latest AS build\n\
             ARG TARGETPLATFORM TARGETARCH BUILDPLATFORM\n\
             RUN echo \"built on $BUILDPLATFORM for $TARGETPLATFORM\" > /out.txt\n\
             FROM scratch\n\
             ARG TARGETARCH\n\
             COPY --from=build /out.txt /\n\
             LABEL arch=$TARGETARCH\n",
            busybox_base().display()
        ),
    );
    let out = env.path("oci");
    let local = env.path("local");
    let iid = env.path("iid");
    let meta = env.path("meta.json");
    let digest = env
        .ok(&[
            "build",
            "--platform",
            "linux/amd64,linux/arm64",
            "-t",
            "multi:1",
            "-o",
            &format!("type=oci,dest={}", out.display()),
            "-o",
            &format!("type=local,dest={}", local.display()),
            "--iidfile",
            iid.to_str().unwrap(),
            "--metadata-file",
            meta.to_str().unwrap(),
            ctx.to_str().unwrap(),
        ])
        .trim()
        .to_string();

    // The index, as skopeo reads it.
    let layout_ref = format!("oci:{}:1", out.display());
    let raw = skopeo_raw(&layout_ref);
    assert_eq!(sha256_of(&raw), digest);
    let index: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let entries = index["manifests"].as_array().unwrap();
    let archs: Vec<&str> = entries
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(archs, ["amd64", "arm64"]);
    assert!(entries.iter().all(|m| m["platform"]["os"] == "linux"));
    // The image ID of a multi-platform build is the index digest; no single config.
    assert_eq!(fs::read_to_string(&iid).unwrap(), digest);
    let m: serde_json::Value = serde_json::from_slice(&fs::read(&meta).unwrap()).unwrap();
    assert_eq!(m["containerimage.digest"], digest.as_str());
    assert!(m.get("containerimage.config.digest").is_none(), "{m}");

    // Each platform's image: its config and its files.
    for arch in ["amd64", "arm64"] {
        let cfg: serde_json::Value =
            serde_json::from_str(&run(std::process::Command::new("skopeo")
                .args(["--override-arch", arch, "inspect", "--config", "--raw"])
                .arg(&layout_ref)))
            .unwrap();
        assert_eq!(cfg["architecture"], arch);
        assert_eq!(cfg["config"]["Labels"]["arch"], arch);
        let text = fs::read_to_string(local.join(format!("linux_{arch}/out.txt"))).unwrap();
        assert_eq!(
            text.trim(),
            format!("built on linux/amd64 for linux/{arch}"),
            "{arch}"
        );
    }
    // Every blob checks out: skopeo copies the whole index.
    run(std::process::Command::new("skopeo")
        .args(["copy", "--all", "-q"])
        .arg(&layout_ref)
        .arg(format!("oci:{}:copy", env.path("copy").display())));

    // Reproducible: the same index again (from the step cache and without it).
    let again = env
        .ok(&[
            "build",
            "--no-cache",
            "--platform",
            "linux/amd64,linux/arm64",
            ctx.to_str().unwrap(),
        ])
        .trim()
        .to_string();
    assert_eq!(again, digest);

    // BuildKit's index-level annotations.
    let annotated = env.path("annotated");
    env.ok(&[
        "build",
        "--platform",
        "linux/amd64,linux/arm64",
        "-o",
        &format!(
            "type=oci,dest={},annotation-index.org.opencontainers.image.title=multi,\
             annotation-manifest-descriptor.org.example.k=v",
            annotated.display()
        ),
        ctx.to_str().unwrap(),
    ]);
    let index: serde_json::Value =
        serde_json::from_slice(&skopeo_raw(&format!("oci:{}:latest", annotated.display())))
            .unwrap();
    assert_eq!(
        index["annotations"]["org.opencontainers.image.title"],
        "multi"
    );
    assert_eq!(index["manifests"][1]["annotations"]["org.example.k"], "v");

    // A docker-archive holds one platform: refused before anything is built.
    let err = env.fails(&[
        "build",
        "--platform",
        "linux/amd64,linux/arm64",
        "-o",
        &format!("type=docker,dest={}", env.path("d.tar").display()),
        ctx.to_str().unwrap(),
    ]);
    assert!(err.contains("type=oci"), "{err}");
    assert!(!env.path("d.tar").exists());
    let err = env.fails(&[
        "build",
        "--platform",
        "linux/amd64,linux/",
        ctx.to_str().unwrap(),
    ]);
    assert!(err.contains("not a platform"), "{err}");
}

/// RUN in a stage of a platform this machine cannot execute says what is missing (an
/// emulator) and the usual way around it, instead of "exec format error".
#[test]
fn run_for_a_foreign_platform_explains_the_emulator() {
    if std::path::Path::new("/proc/sys/fs/binfmt_misc/qemu-riscv64").exists() {
        eprintln!("skipped: this machine emulates riscv64");
        return;
    }
    let env = Env::new();
    // A riscv64 base: busybox's (amd64) files relabelled, enough to reach RUN.
    let base = env.path("base");
    let base_ctx = dockerfile(
        &env,
        "base-ctx",
        &format!(
            "FROM --platform=$BUILDPLATFORM oci:{}:latest AS bb\n\
             FROM scratch\n\
             COPY --from=bb / /\n",
            busybox_base().display()
        ),
    );
    env.ok(&[
        "build",
        "--platform",
        "linux/riscv64",
        "-o",
        &format!("type=oci,dest={}", base.display()),
        base_ctx.to_str().unwrap(),
    ]);
    let ctx = dockerfile(
        &env,
        "ctx",
        &format!("FROM oci:{}:latest\nRUN true\n", base.display()),
    );
    let err = env.fails(&[
        "build",
        "--platform",
        "linux/riscv64",
        ctx.to_str().unwrap(),
    ]);
    assert!(err.contains("linux/riscv64"), "{err}");
    assert!(err.contains("qemu-user-static"), "{err}");
    assert!(err.contains("BUILDPLATFORM"), "{err}");
    assert!(err.contains("Dockerfile:2"), "{err}");
}

/// `RUN --mount=type=bind` from the context sees the context as BuildKit has it, with
/// `.dockerignore` applied: ignored files are invisible (read-only and read-write mounts),
/// changing them does not invalidate the step, and writes never reach the context.
#[test]
fn bind_mounts_of_the_context_honour_dockerignore() {
    let env = Env::new();
    let ctx = dockerfile(
        &env,
        "ctx",
        &(from_busybox()
            + "RUN --mount=type=bind,target=/ctx \\\n\
                 test ! -e /ctx/secret.env && test ! -e /ctx/node_modules/big.js \\\n\
                 && test -f /ctx/node_modules/keep.txt && test -f /ctx/src/main.c \\\n\
                 && cat /proc/sys/kernel/random/uuid > /run-id\n\
               RUN --mount=type=bind,source=src,target=/w,rw \\\n\
                 touch /w/new && test ! -e /w/generated.o && ls /w > /w-listing\n"),
    );
    fs::write(
        ctx.join(".dockerignore"),
        "secret.env\nnode_modules\n!node_modules/keep.txt\nsrc/*.o\n",
    )
    .unwrap();
    fs::write(ctx.join("secret.env"), "TOKEN=1\n").unwrap();
    fs::create_dir_all(ctx.join("node_modules")).unwrap();
    fs::write(ctx.join("node_modules/big.js"), "x").unwrap();
    fs::write(ctx.join("node_modules/keep.txt"), "keep").unwrap();
    fs::create_dir_all(ctx.join("src")).unwrap();
    fs::write(ctx.join("src/main.c"), "int main;").unwrap();
    fs::write(ctx.join("src/generated.o"), "obj").unwrap();
    let out = env.path("oci");
    let build = || {
        env.ok(&[
            "build",
            "-o",
            &format!("type=oci,dest={}", out.display()),
            ctx.to_str().unwrap(),
        ])
        .trim()
        .to_string()
    };
    let first = build();
    let rootfs = umoci_unpack(&out, "latest", &env.path("b1"));
    assert_eq!(
        fs::read_to_string(rootfs.join("w-listing")).unwrap(),
        "main.c\nnew\n"
    );
    // Writes to the read-write mount stay out of the context.
    assert!(!ctx.join("src/new").exists());
    assert_eq!(
        fs::read_to_string(ctx.join("secret.env")).unwrap(),
        "TOKEN=1\n"
    );
    // Ignored files changing leave the steps cached (the uuid would differ otherwise).
    fs::write(ctx.join("secret.env"), "TOKEN=2\n").unwrap();
    fs::write(ctx.join("node_modules/big.js"), "y").unwrap();
    fs::write(ctx.join("src/generated.o"), "obj2").unwrap();
    fs::remove_dir_all(&out).unwrap();
    assert_eq!(build(), first);
    // A file the build sees changing re-runs the step.
    fs::write(ctx.join("src/main.c"), "int main(void);").unwrap();
    fs::remove_dir_all(&out).unwrap();
    assert_ne!(build(), first);
}

/// Symlinks in a bind mount's source are followed inside the source's own root, never on
/// the host: an absolute link in the context or in a stage must not mount a host file.
#[test]
fn bind_mount_sources_never_follow_links_onto_the_host() {
    let env = Env::new();
    // A stage whose /grp is an absolute link: the stage's /etc/group is meant, not the host's.
    let ctx = dockerfile(
        &env,
        "ctx",
        &(format!(
            "FROM oci:{}:latest AS s\nRUN echo 'stagegroup:x:4242:' > /etc/group && ln -s /etc/group /grp\n",
            busybox_base().display()
        ) + &from_busybox()
            + "RUN --mount=from=s,source=grp,target=/g cat /g > /seen-stage\n\
               RUN --mount=type=bind,source=rel,target=/r cat /r > /seen-rel\n"),
    );
    fs::write(ctx.join("real.txt"), "in the context\n").unwrap();
    std::os::unix::fs::symlink("real.txt", ctx.join("rel")).unwrap();
    let out = env.path("oci");
    env.ok(&[
        "build",
        "-o",
        &format!("type=oci,dest={}", out.display()),
        ctx.to_str().unwrap(),
    ]);
    let rootfs = umoci_unpack(&out, "latest", &env.path("b"));
    assert_eq!(
        fs::read_to_string(rootfs.join("seen-stage")).unwrap(),
        "stagegroup:x:4242:\n"
    );
    assert_eq!(
        fs::read_to_string(rootfs.join("seen-rel")).unwrap(),
        "in the context\n"
    );

    // An absolute link in the context to a host file: not found, never the host's file.
    let host_file = env.path("host-secret");
    fs::write(&host_file, "host secret\n").unwrap();
    let ctx2 = dockerfile(
        &env,
        "ctx2",
        &(from_busybox() + "RUN --mount=type=bind,source=abs,target=/a cat /a\n"),
    );
    std::os::unix::fs::symlink(&host_file, ctx2.join("abs")).unwrap();
    let err = env.fails(&["build", ctx2.to_str().unwrap()]);
    assert!(!err.contains("host secret"), "{err}");
    assert!(err.contains("not found"), "{err}");
}
