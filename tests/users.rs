//! End-to-end tests of what users meet first (issue 14): relative paths, output parents,
//! error texts, build checks, refused flags.

mod common;

use std::fs;
use std::path::Path;

use common::*;

fn write(dir: &Path, name: &str, body: &str) {
    let p = dir.join(name);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, body).unwrap();
}

fn run_in(env: &Env, cwd: &Path, args: &[&str]) -> std::process::Output {
    env.hoist().current_dir(cwd).args(args).output().unwrap()
}

#[test]
fn relative_context_cache_dir_and_output_parents() {
    let env = Env::new();
    let work = env.path("work");
    write(
        &work,
        "ctx/Dockerfile",
        &format!(
            "FROM oci:{}:latest\nRUN --mount=type=bind,source=src,target=/src cp /src/a /a\n",
            busybox_base().display()
        ),
    );
    write(&work, "ctx/src/a", "from the context\n");
    // Relative context, relative cache dir, an output under directories that do not exist.
    let out = run_in(
        &env,
        &work,
        &[
            "build",
            "--cache-dir",
            "cache",
            "-o",
            "type=oci,dest=out/deep/layout",
            "--iidfile",
            "ids/iid",
            "--metadata-file",
            "ids/meta.json",
            "ctx",
        ],
    );
    assert_success(&out, "hoist build with relative paths");
    assert!(
        work.join("cache/blobs").is_dir(),
        "the relative cache dir is used"
    );
    let rootfs = umoci_unpack(&work.join("out/deep/layout"), "latest", &env.path("b"));
    assert_eq!(
        fs::read_to_string(rootfs.join("a")).unwrap(),
        "from the context\n"
    );
    // --iidfile holds the config digest, as docker build writes it.
    let iid = fs::read_to_string(work.join("ids/iid")).unwrap();
    let meta: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(work.join("ids/meta.json")).unwrap()).unwrap();
    assert_eq!(iid.trim(), meta["containerimage.config.digest"]);
    let raw = skopeo_raw(&format!(
        "oci:{}:latest",
        work.join("out/deep/layout").display()
    ));
    let manifest: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(iid.trim(), manifest["config"]["digest"]);
}

#[test]
fn a_missing_dockerfile_names_its_cause_once() {
    let env = Env::new();
    fs::create_dir_all(env.path("empty")).unwrap();
    // Named with -f: a context without a Dockerfile is an automatic build instead.
    let missing = env.path("empty/Dockerfile");
    let err = env.fails(&[
        "build",
        "-f",
        missing.to_str().unwrap(),
        env.path("empty").to_str().unwrap(),
    ]);
    assert!(err.contains("Dockerfile"), "{err}");
    assert_eq!(
        err.matches("No such file or directory").count(),
        1,
        "the cause is printed once: {err}"
    );
}

#[test]
fn invalid_build_arg_names_are_refused() {
    let env = Env::new();
    let err = env.fails(&[
        "build",
        "--build-arg",
        "FOO BAR=1",
        fixture("hello").to_str().unwrap(),
    ]);
    assert!(err.contains("\"FOO BAR\" is not a build arg name"), "{err}");
}

#[test]
fn build_checks_warn_and_fail_under_error_true() {
    let env = Env::new();
    let ctx = env.path("ctx");
    write(
        &ctx,
        "Dockerfile",
        "FROM scratch as Build\nARG API_TOKEN\nCOPY secret.txt /\n",
    );
    write(&ctx, "secret.txt", "s");
    write(&ctx, ".dockerignore", "secret.txt\n");
    // `hoist dockerfile check` lists them (exit 1), also as JSON.
    let out = env
        .hoist()
        .args(["dockerfile", "check", "-f"])
        .arg(ctx.join("Dockerfile"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for want in [
        ":1: StageNameCasing: Stage name 'Build' should be lowercase (https://docs.docker.com/go/dockerfile/rule/stage-name-casing/)",
        ":1: FromAsCasing: 'as' and 'FROM' keywords' casing do not match",
        ":2: SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive data (ARG \"API_TOKEN\")",
        ":3: CopyIgnoredFile: Attempting to Copy file \"secret.txt\" that is excluded by .dockerignore",
    ] {
        assert!(text.contains(want), "{want}\nin:\n{text}");
    }
    let json = env
        .hoist()
        .args(["dockerfile", "check", "--json", "-f"])
        .arg(ctx.join("Dockerfile"))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["warnings"][0]["rule"]["name"], "StageNameCasing");
    assert_eq!(v["warnings"][0]["line"], 1);
    // `hoist build` prints them as warnings and still builds (COPY then fails: the file is
    // ignored, which is the point of the warning).
    let out = env.hoist().arg("build").arg(&ctx).output().unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("WARNING: ") && err.contains("StageNameCasing"),
        "{err}"
    );
    // error=true: the build fails before any step, naming the rules.
    write(
        &ctx,
        "Dockerfile",
        "# check=error=true;skip=SecretsUsedInArgOrEnv,CopyIgnoredFile\nFROM scratch as Build\n",
    );
    let err = env.fails(&["build", ctx.to_str().unwrap()]);
    assert!(
        err.contains("lint violation found for rules: StageNameCasing, FromAsCasing"),
        "{err}"
    );
    write(
        &ctx,
        "Dockerfile",
        "# check=skip=all;error=true\nFROM scratch as Build\n",
    );
    env.ok(&["build", ctx.to_str().unwrap()]);
}

#[test]
fn run_security_insecure_is_refused() {
    let env = Env::new();
    let ctx = env.path("ctx");
    write(
        &ctx,
        "Dockerfile",
        "FROM scratch\nRUN --security=insecure true\n",
    );
    let err = env.fails(&["build", ctx.to_str().unwrap()]);
    assert!(
        err.contains("Dockerfile:2: RUN --security=insecure is not supported"),
        "{err}"
    );
}

#[test]
fn dockerfile_parse_without_json_prints_the_dockerfile() {
    let env = Env::new();
    let ctx = env.path("ctx");
    write(&ctx, "Dockerfile", "from scratch\ncopy a /b\n");
    let plain = env.ok(&[
        "dockerfile",
        "parse",
        "-f",
        ctx.join("Dockerfile").to_str().unwrap(),
    ]);
    assert!(
        plain.contains("FROM scratch") && !plain.contains('{'),
        "{plain}"
    );
    let json = env.ok(&[
        "dockerfile",
        "parse",
        "--json",
        "-f",
        ctx.join("Dockerfile").to_str().unwrap(),
    ]);
    assert!(json.contains("\"stages\""), "{json}");
}

#[test]
fn copy_from_an_unknown_name_lists_the_stages() {
    let env = Env::new();
    let ctx = env.path("ctx");
    write(
        &ctx,
        "Dockerfile",
        "FROM scratch AS build\nFROM scratch\nCOPY --from=biuld /a /a\n",
    );
    let err = env.fails(&["build", "--pull=never", ctx.to_str().unwrap()]);
    assert!(
        err.contains("no stage or image named biuld; stages are: build, 1"),
        "{err}"
    );
}

#[test]
fn unused_build_args_are_reported() {
    let env = Env::new();
    let ctx = env.path("ctx");
    write(&ctx, "Dockerfile", "FROM scratch\nARG USED\n");
    let out = env
        .hoist()
        .args(["build", "--build-arg", "USED=1", "--build-arg", "NOPE=1"])
        .arg(&ctx)
        .output()
        .unwrap();
    assert_success(&out, "build");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("[NOPE] were not consumed"), "{err}");
}

#[test]
fn bake_builds_each_image_with_its_outputs_and_pushes_to_its_tags() {
    let reg = hoist_testutil::Registry::plain();
    let env = Env::new();
    let repo = env.path("repo");
    write(&repo, "api/Dockerfile", "FROM scratch\nCOPY a /api\n");
    write(&repo, "api/a", "api\n");
    write(
        &repo,
        "worker/w.Dockerfile",
        "FROM scratch\nARG WHAT\nCOPY ${WHAT} /worker\n",
    );
    write(&repo, "worker/b", "worker\n");
    write(
        &repo,
        "hoist.build.toml",
        &format!(
            "[images.api]\ncontext = \"api\"\noutputs = [\"type=oci,dest=out/api\"]\n\
             tags = [\"{reg}/api:1\"]\npush = true\n\n\
             [images.worker]\ncontext = \"worker\"\ndockerfile = \"w.Dockerfile\"\n\
             args = {{ WHAT = \"b\" }}\noutputs = [\"type=local,dest=out/worker\"]\n",
            reg = reg.addr()
        ),
    );
    // Run from elsewhere: paths are the build file's.
    let out = run_in(
        &env,
        &env.path(""),
        &["bake", "-f", "repo/hoist.build.toml"],
    );
    assert_success(&out, "hoist bake");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        fs::read_to_string(repo.join("out/worker/worker")).unwrap(),
        "worker\n"
    );
    let api_digest = stdout
        .lines()
        .find_map(|l| l.strip_prefix("api: "))
        .unwrap_or_else(|| panic!("{stdout}"));
    let raw = skopeo_raw(&format!("oci:{}:1", repo.join("out/api").display()));
    assert_eq!(sha256_of(&raw), api_digest);
    let i = skopeo_inspect(&format!("docker://{}/api:1", reg.addr()));
    assert_eq!(i["Digest"], api_digest);
    // One target only; an unknown one is named.
    let err = env.fails(&[
        "bake",
        "-f",
        repo.join("hoist.build.toml").to_str().unwrap(),
        "nope",
    ]);
    assert!(
        err.contains("no image \"nope\" (images: api, worker)"),
        "{err}"
    );
}

#[test]
fn unknown_network_values_are_refused_before_building() {
    let env = Env::new();
    // No RUN in the fixture: the value used to be accepted and never looked at.
    let err = env.fails(&[
        "build",
        "--network",
        "bridge",
        "-o",
        &format!("type=oci,dest={}", env.path("out").display()),
        fixture("hello").to_str().unwrap(),
    ]);
    assert!(
        err.contains("bridge") && err.contains("default") && err.contains("none"),
        "{err}"
    );
    assert!(!env.path("out").exists());
    env.ok(&[
        "build",
        "--network",
        "none",
        "-o",
        &format!("type=oci,dest={}", env.path("out").display()),
        fixture("hello").to_str().unwrap(),
    ]);
}

/// The modification time and name of every entry of a (gzip) layer blob, as GNU tar
/// lists them.
fn layer_listing(layout: &Path, tag: &str) -> String {
    let raw = skopeo_raw(&format!("oci:{}:{tag}", layout.display()));
    let m: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    let last = m["layers"].as_array().unwrap().last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    run(std::process::Command::new("tar")
        .args(["-tvzf"])
        .arg(layout.join("blobs/sha256").join(last))
        .args(["--full-time", "--numeric-owner"]))
}

#[test]
fn rewrite_timestamp_clamps_new_files_and_the_other_buildkit_attributes_are_refused() {
    let env = Env::new();
    let ctx = env.path("ctx");
    write(
        &ctx,
        "Dockerfile",
        &format!(
            "FROM oci:{}:latest\nRUN echo new > /new\n",
            busybox_base().display()
        ),
    );
    let out = env.path("out");
    env.ok(&[
        "build",
        "--build-arg",
        "SOURCE_DATE_EPOCH=1000",
        "-t",
        "t:1",
        "-o",
        &format!("type=oci,dest={},rewrite-timestamp=true", out.display()),
        ctx.to_str().unwrap(),
    ]);
    // The RUN wrote /new now; its layer says SOURCE_DATE_EPOCH (1000 s = 00:16:40).
    let listing = layer_listing(&out, "1");
    let line = listing
        .lines()
        .find(|l| l.ends_with(" new"))
        .unwrap_or_else(|| panic!("no /new in the RUN's layer:\n{listing}"));
    assert!(line.contains("1970-01-01 00:16:40"), "{line}");

    for (attr, what) in [
        (
            "rewrite-timestamp=false",
            "rewrite-timestamp=false is not supported",
        ),
        ("buildinfo=true", "buildinfo=true is not supported"),
        ("unpack=true", "unpack=true is not supported"),
        ("store=true", "store=true is not supported"),
    ] {
        let err = env.fails(&[
            "build",
            "-o",
            &format!("type=oci,dest={},{attr}", env.path("refused").display()),
            fixture("hello").to_str().unwrap(),
        ]);
        assert!(err.contains(what), "{attr}: {err}");
        assert!(!env.path("refused").exists());
    }
}

#[test]
fn pull_refuses_output_attributes_that_would_re_encode_the_image() {
    let env = Env::new();
    // Refused before any registry is asked: this address has no registry.
    for (attr, named) in [
        ("compression=zstd", "compression=zstd"),
        ("force-compression=true", "force-compression=true"),
        ("oci-mediatypes=false", "oci-mediatypes=false"),
        ("annotation.org.example.k=v", "annotation.org.example.k"),
    ] {
        let err = env.fails(&[
            "pull",
            "127.0.0.1:9/nothing:1",
            "-o",
            &format!("type=oci,dest={},{attr}", env.path("x").display()),
        ]);
        assert!(
            err.contains(&format!("{named} is not supported")) && err.contains("digest"),
            "{attr}: {err}"
        );
        assert!(
            !err.contains("127.0.0.1:9"),
            "asked the registry first: {err}"
        );
    }
}

#[test]
fn a_missing_context_and_a_file_in_an_output_path_are_named_once() {
    let env = Env::new();
    let missing = env.path("no-such-app");
    let err = env.fails(&["build", missing.to_str().unwrap()]);
    assert!(
        err.contains(&format!("{} does not exist", missing.display())),
        "{err}"
    );
    assert_eq!(err.matches("no-such-app").count(), 1, "named once: {err}");
    assert!(!err.contains("os error"), "{err}");

    // A file where a parent directory of --iidfile (or an output) has to be.
    fs::write(env.path("file"), "x").unwrap();
    for flag in ["--iidfile", "--metadata-file"] {
        let target = env.path("file/sub/id");
        let err = env.fails(&[
            "build",
            flag,
            target.to_str().unwrap(),
            fixture("hello").to_str().unwrap(),
        ]);
        assert!(
            err.contains(&format!(
                "{} exists and is not a directory",
                env.path("file").display()
            )),
            "{flag}: {err}"
        );
    }
}
