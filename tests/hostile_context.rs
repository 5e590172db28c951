//! Hostile build contexts and Dockerfiles: symlinks in a context never reach a host file
//! (every reader resolves paths inside the context root, as BuildKit does), the default
//! Dockerfile is read inside the context, errors never dump a file or a huge line, and
//! COPY refuses what BuildKit refuses. Every hostile input is made by the test itself.
//! The suite runs as root and as an unprivileged user (scripts/test-unprivileged.sh).

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const HOST: &str = "HOST-SECRET-0xdeadbeef";
const INSIDE: &str = "in-context\n";

/// A directory outside the context holding "host" files a hostile context points at.
fn host_files(env: &Env) -> PathBuf {
    let host = env.path("host");
    fs::create_dir_all(host.join("dir")).unwrap();
    fs::write(host.join("secret.txt"), HOST).unwrap();
    fs::write(host.join("dir/inner.txt"), HOST).unwrap();
    fs::write(host.join("member.txt"), HOST).unwrap();
    run(Command::new("tar")
        .arg("-cf")
        .arg(host.join("host.tar"))
        .arg("-C")
        .arg(&host)
        .arg("member.txt"));
    host
}

/// What a link to `target` means inside the context: `ctx/target` (absolute targets
/// from the context root). Filled with in-context stand-ins of the host files.
fn stand_ins(ctx: &Path, at: &Path) {
    let d = ctx.join(at.strip_prefix("/").unwrap_or(at));
    fs::create_dir_all(d.join("dir")).unwrap();
    fs::write(d.join("secret.txt"), INSIDE).unwrap();
    fs::write(d.join("dir/inner.txt"), INSIDE).unwrap();
    let m = tempfile::tempdir().unwrap();
    fs::write(m.path().join("member.txt"), INSIDE).unwrap();
    run(Command::new("tar")
        .arg("-cf")
        .arg(d.join("host.tar"))
        .arg("-C")
        .arg(m.path())
        .arg("member.txt"));
}

fn ctx_with_links(env: &Env, name: &str, host: &Path) -> PathBuf {
    let ctx = env.path(name);
    fs::create_dir_all(&ctx).unwrap();
    // Absolute, relative (climbing past the root), nested, and a link to `/`.
    symlink(host, ctx.join("el")).unwrap();
    let depth = ctx.components().count();
    let up = vec![".."; depth + 2].join("/");
    symlink(format!("{up}{}", host.display()), ctx.join("up")).unwrap();
    symlink("el", ctx.join("nested")).unwrap();
    symlink("/", ctx.join("slash")).unwrap();
    stand_ins(&ctx, host);
    ctx
}

#[test]
fn context_symlinks_resolve_inside_the_context_for_every_reader() {
    let env = Env::new();
    let host = host_files(&env);
    let ctx = ctx_with_links(&env, "ctx", &host);
    let named = ctx_with_links(&env, "named", &host);
    let slash = host.strip_prefix("/").unwrap().display().to_string();
    fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM scratch\n\
             COPY el/secret.txt /abs\n\
             COPY up/secret.txt /rel\n\
             COPY nested/secret.txt /nested\n\
             COPY slash/{slash}/secret.txt /slash\n\
             COPY el/dir/ /dir/\n\
             COPY --link el/secret.txt /link\n\
             COPY --chown=7:7 el/secret.txt /chown\n\
             ADD el/secret.txt /add\n\
             ADD el/host.tar /tar/\n\
             COPY --from=extra el/secret.txt /named\n\
             COPY --from=extra up/dir/ /named-dir/\n"
        ),
    )
    .unwrap();
    let out = env.path("fs");
    let layout = env.path("oci");
    env.ok(&[
        "build",
        "--build-context",
        &format!("extra={}", named.display()),
        "-o",
        &format!("type=local,dest={}", out.display()),
        "-o",
        &format!("type=oci,dest={}", layout.display()),
        ctx.to_str().unwrap(),
    ]);
    for f in [
        "abs",
        "rel",
        "nested",
        "slash",
        "dir/inner.txt",
        "link",
        "chown",
        "add",
        "tar/member.txt",
        "named",
        "named-dir/inner.txt",
    ] {
        assert_eq!(fs::read_to_string(out.join(f)).unwrap(), INSIDE, "/{f}");
    }
    assert!(!layout_contains(&layout, HOST.as_bytes()));
}

#[test]
fn links_out_of_the_context_find_nothing_without_stand_ins() {
    let env = Env::new();
    let host = host_files(&env);
    let ctx = env.path("ctx");
    fs::create_dir_all(&ctx).unwrap();
    symlink(&host, ctx.join("el")).unwrap();
    for (df, ignore) in [
        ("COPY el/secret.txt /x", None),
        ("COPY el/dir/ /y/", None),
        ("ADD el/host.tar /t/", None),
        // An allow-list re-including the link itself.
        ("COPY el/secret.txt /x", Some("*\n!el\n!el/**\n")),
        // A glob through the link: an error, not a silent no-op.
        ("COPY el/*.txt /g/", None),
    ] {
        fs::write(ctx.join("Dockerfile"), format!("FROM scratch\n{df}\n")).unwrap();
        match ignore {
            Some(i) => fs::write(ctx.join(".dockerignore"), i).unwrap(),
            None => {
                let _ = fs::remove_file(ctx.join(".dockerignore"));
            }
        }
        let layout = env.path("never");
        let err = env.fails(&[
            "build",
            "-o",
            &format!("type=oci,dest={}", layout.display()),
            ctx.to_str().unwrap(),
        ]);
        assert!(err.contains("Dockerfile:2"), "{df}: {err}");
        assert!(!err.contains(HOST), "{df}: {err}");
        assert!(!layout.exists(), "{df}");
    }
    let err = {
        fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY el/*.txt /g/\n").unwrap();
        env.fails(&["build", ctx.to_str().unwrap()])
    };
    assert!(err.contains("no source files were specified"), "{err}");
}

#[test]
fn copy_from_a_stage_follows_its_symlinked_directories_inside_the_stage() {
    let env = Env::new();
    let ctx = env.path("ctx");
    fs::create_dir_all(ctx.join("tree/usr/lib")).unwrap();
    fs::write(ctx.join("tree/usr/lib/x"), "usrmerge\n").unwrap();
    symlink("usr/lib", ctx.join("tree/lib")).unwrap();
    // A link to / in a stage means the stage's root.
    symlink("/", ctx.join("tree/root-link")).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch AS s\nCOPY tree/ /\n\
         FROM scratch\nCOPY --from=s /lib/x /x\nCOPY --from=s /root-link/lib/ /l/\n",
    )
    .unwrap();
    let out = env.path("fs");
    env.ok(&[
        "build",
        "-o",
        &format!("type=local,dest={}", out.display()),
        ctx.to_str().unwrap(),
    ]);
    assert_eq!(fs::read_to_string(out.join("x")).unwrap(), "usrmerge\n");
    assert_eq!(fs::read_to_string(out.join("l/x")).unwrap(), "usrmerge\n");
}

#[test]
fn the_default_dockerfile_is_read_inside_the_context_and_errors_stay_short() {
    let env = Env::new();
    let host = host_files(&env);
    let shadow = host.join("Dockerfile.secret");
    let lines: String = (0..50).map(|i| format!("{HOST}-{i} x\n")).collect();
    fs::write(&shadow, format!("FROM scratch\n{lines}")).unwrap();
    let ctx = env.path("ctx");
    fs::create_dir_all(&ctx).unwrap();
    symlink(&shadow, ctx.join("Dockerfile")).unwrap();
    let err = env.fails(&["build", ctx.to_str().unwrap()]);
    assert!(!err.contains(HOST), "{err}");
    assert!(err.contains("Dockerfile.secret"), "{err}");
    // Given explicitly with -f, it is the user's choice: read, but quoted briefly.
    let err = env.fails(&[
        "build",
        "-f",
        shadow.to_str().unwrap(),
        ctx.to_str().unwrap(),
    ]);
    assert!(err.contains(&format!("{HOST}-0")), "{err}");
    assert!(!err.contains(&format!("{HOST}-40")), "{err}");
    // A huge line is quoted truncated.
    let long = format!("FROM scratch\nBOGUS {}\n", "y".repeat(1 << 20));
    fs::remove_file(ctx.join("Dockerfile")).unwrap();
    fs::write(ctx.join("Dockerfile"), long).unwrap();
    let err = env.fails(&["build", ctx.to_str().unwrap()]);
    assert!(err.len() < 4096, "{} bytes of errors", err.len());
    // Invalid UTF-8: the line and column are named.
    fs::write(ctx.join("Dockerfile"), b"FROM scratch\nLABEL a=\xff\n").unwrap();
    let err = env.fails(&["build", ctx.to_str().unwrap()]);
    assert!(
        err.contains("Dockerfile:2:9") && err.contains("UTF-8"),
        "{err}"
    );
}

#[test]
fn copy_of_a_named_fifo_is_an_error() {
    let env = Env::new();
    let ctx = env.path("ctx");
    fs::create_dir_all(&ctx).unwrap();
    run(Command::new("mkfifo").arg(ctx.join("pipe")));
    fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY pipe /pipe\n").unwrap();
    let err = env.fails(&["build", ctx.to_str().unwrap()]);
    assert!(
        err.contains("Dockerfile:2") && err.contains("FIFO") && err.contains("/pipe"),
        "{err}"
    );
}

fn from_busybox() -> String {
    format!("FROM oci:{}:latest\n", busybox_base().display())
}

#[test]
fn secrets_stay_out_of_layers_history_logs_and_errors() {
    let env = Env::new();
    let file_value = "file-secret-7f3a9c";
    let env_value = "env-secret-5b2e1d";
    let secret = env.path("token.txt");
    fs::write(&secret, file_value).unwrap();
    let ctx = env.path("ctx");
    fs::create_dir_all(&ctx).unwrap();
    // The Dockerfile names only the values' digests (its text is in the history).
    let hex = |v: &str| sha256_of(v.as_bytes())["sha256:".len()..].to_string();
    let ok = from_busybox()
        + &format!(
            "RUN --mount=type=secret,id=f --mount=type=secret,id=e,env=E \
             test \"$(sha256sum < /run/secrets/f | cut -c1-64)\" = {} \
             && test \"$(printf %s \"$E\" | sha256sum | cut -c1-64)\" = {} \
             && echo checked > /checked\n",
            hex(file_value),
            hex(env_value)
        );
    fs::write(ctx.join("Dockerfile"), &ok).unwrap();
    let layout = env.path("oci");
    let secrets = [
        "--secret".to_string(),
        format!("id=f,src={}", secret.display()),
        "--secret".to_string(),
        "id=e,env=HOIST_TEST_SECRET".to_string(),
    ];
    let build = |df: &str, out: Option<&Path>| {
        fs::write(ctx.join("Dockerfile"), df).unwrap();
        let mut c = env.hoist();
        c.arg("build").arg("--progress=plain").args(&secrets);
        if let Some(o) = out {
            c.arg("-o").arg(format!("type=oci,dest={}", o.display()));
        }
        c.arg(&ctx).env("HOIST_TEST_SECRET", env_value);
        c.output().unwrap()
    };
    let out = build(&ok, Some(&layout));
    assert_success(&out, "build with secrets");
    for v in [file_value, env_value] {
        assert!(!layout_contains(&layout, v.as_bytes()), "{v} in a blob");
        for s in [&out.stdout, &out.stderr] {
            assert!(!String::from_utf8_lossy(s).contains(v), "{v} in the log");
        }
    }
    let rootfs = umoci_unpack(&layout, "latest", &env.path("u"));
    assert_eq!(
        fs::read_to_string(rootfs.join("checked")).unwrap(),
        "checked\n"
    );
    // A failing RUN using the secrets: its error names the command, never the values.
    let failing = from_busybox()
        + "RUN --mount=type=secret,id=f --mount=type=secret,id=e,env=E \
           test \"$E\" = \"$(cat /run/secrets/f)\"\n";
    let out = build(&failing, None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("did not complete successfully"), "{err}");
    for v in [file_value, env_value] {
        assert!(!err.contains(v), "{v} in the error: {err}");
    }
}

#[test]
fn a_huge_run_line_fails_without_repeating_itself() {
    let env = Env::new();
    let ctx = env.path("ctx");
    fs::create_dir_all(&ctx).unwrap();
    let huge = "y".repeat(50 << 20);
    fs::write(
        ctx.join("Dockerfile"),
        format!("{}RUN echo {huge}\n", from_busybox()),
    )
    .unwrap();
    let out = env
        .hoist()
        .args(["build", "--progress=plain"])
        .arg(&ctx)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.len() < 64 << 10, "{} bytes of stderr", err.len());
    assert!(
        err.contains("Dockerfile:2"),
        "{}",
        &err[..err.len().min(4000)]
    );
}
