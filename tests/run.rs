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
