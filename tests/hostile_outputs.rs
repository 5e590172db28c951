//! No partial outputs: a failed build, or a failed output among several, writes
//! nothing (not even the missing parent directories); an existing destination keeps
//! its content. And a cache that cannot be locked fails the build instead of letting it
//! run unlocked.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;

fn context(env: &Env, dockerfile: &str) -> PathBuf {
    let ctx = env.path("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    fs::write(ctx.join("hello.txt"), "hello\n").unwrap();
    ctx
}

/// Every `--output` type that writes to the file system, to `dest`.
fn specs(dest: &Path) -> Vec<(&'static str, String)> {
    let d = |n: &str| dest.join(n).display().to_string();
    vec![
        ("oci layout", format!("type=oci,dest={}", d("layout"))),
        (
            "oci archive",
            format!("type=oci,dest={}", d("image.oci.tar")),
        ),
        (
            "oci zstd",
            format!("type=oci,dest={},compression=zstd", d("zstd")),
        ),
        (
            "docker archive",
            format!("type=docker,dest={}", d("image.tar")),
        ),
        ("tar", format!("type=tar,dest={}", d("fs.tar"))),
        ("local", format!("type=local,dest={}", d("files"))),
    ]
}

fn build(env: &Env, ctx: &Path, outputs: &[String]) -> std::process::Output {
    let mut c = env.hoist();
    c.arg("build");
    for o in outputs {
        c.arg("-o").arg(o);
    }
    c.arg(ctx).output().unwrap()
}

#[test]
fn a_failed_build_writes_no_output_of_any_type() {
    let env = Env::new();
    let ctx = context(
        &env,
        &format!(
            "FROM oci:{}:latest\nCOPY hello.txt /\nCOPY missing.txt /\n",
            busybox_base().display()
        ),
    );
    let dest = env.path("out/nested");
    let all: Vec<String> = specs(&dest).into_iter().map(|s| s.1).collect();
    let o = build(&env, &ctx, &all);
    assert!(!o.status.success());
    assert!(
        !env.path("out").exists(),
        "nothing (not even parents) for a failed build"
    );
}

#[test]
fn a_failing_later_output_takes_back_the_earlier_ones() {
    let env = Env::new();
    let ctx = context(
        &env,
        &format!(
            "FROM oci:{}:latest\nCOPY hello.txt /\n",
            busybox_base().display()
        ),
    );
    // A destination a layout may not replace: a directory with something in it.
    let bad = env.path("not-a-layout");
    fs::create_dir_all(&bad).unwrap();
    fs::write(bad.join("keep.txt"), "mine").unwrap();
    let bad_spec = format!("type=oci,dest={}", bad.display());
    for (name, spec) in specs(&env.path("out/a")) {
        let o = build(&env, &ctx, &[spec.clone(), bad_spec.clone()]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{name}: {err}");
        assert!(err.contains("not an OCI image layout"), "{name}: {err}");
        assert!(
            !env.path("out").exists(),
            "{name}: an earlier output stayed"
        );
        let left: Vec<_> = fs::read_dir(env.dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("hoist-"))
            .collect();
        assert!(left.is_empty(), "{name}: temporaries left: {left:?}");
        assert_eq!(fs::read_to_string(bad.join("keep.txt")).unwrap(), "mine");
    }

    // Existing destinations keep their old content when a later output fails, and are
    // replaced when all succeed.
    let out = env.path("existing");
    fs::create_dir_all(out.join("files")).unwrap();
    fs::write(out.join("files/old"), "old").unwrap();
    fs::write(out.join("image.tar"), "old tar").unwrap();
    let good = [
        format!("type=local,dest={}", out.join("files").display()),
        format!("type=docker,dest={}", out.join("image.tar").display()),
    ];
    let mut with_bad = good.to_vec();
    with_bad.push(bad_spec.clone());
    assert!(!build(&env, &ctx, &with_bad).status.success());
    assert_eq!(fs::read_to_string(out.join("files/old")).unwrap(), "old");
    assert_eq!(
        fs::read_to_string(out.join("image.tar")).unwrap(),
        "old tar"
    );
    let o = build(&env, &ctx, &good);
    assert_success(&o, "all outputs good");
    assert!(!out.join("files/old").exists());
    assert_eq!(
        fs::read_to_string(out.join("files/hello.txt")).unwrap(),
        "hello\n"
    );
    assert_ne!(fs::read(out.join("image.tar")).unwrap(), b"old tar");

    // Adding to an existing OCI layout: its index.json comes back when a later output
    // fails.
    let layout = env.path("layout");
    env.ok(&[
        "build",
        "-o",
        &format!("type=oci,dest={}", layout.display()),
        ctx.to_str().unwrap(),
    ]);
    let index = fs::read(layout.join("index.json")).unwrap();
    let o = build(
        &env,
        &ctx,
        &[format!("type=oci,dest={}", layout.display()), bad_spec],
    );
    assert!(!o.status.success());
    assert_eq!(fs::read(layout.join("index.json")).unwrap(), index);
}

#[test]
fn a_cache_that_cannot_be_locked_fails_the_build() {
    let env = Env::new();
    let ctx = context(
        &env,
        &format!("FROM oci:{}:latest\n", busybox_base().display()),
    );
    let cache = env.path("cache");
    // The lock file's place is taken by a directory: the lock cannot be opened.
    fs::create_dir_all(cache.join("lock")).unwrap();
    let out = env.path("img");
    let err = env.fails(&[
        "build",
        "-o",
        &format!("type=oci,dest={}", out.display()),
        ctx.to_str().unwrap(),
    ]);
    assert!(err.contains("cannot lock the cache"), "{err}");
    assert!(err.contains("lock"), "{err}");
    assert!(!out.exists());
}
