//! Build while pushing (issue 16): with `--push`, the layers of the image go to the
//! registry while the build runs; the pushed image is the one a push after the build
//! gives, and layers of stages that are not part of the image are never uploaded.

mod common;

use std::fs;
use std::process::Command;

use common::*;
use hoist_testutil::Registry;

const DOCKERFILE: &str = "\
FROM scratch AS tools
COPY tool.bin /tool.bin
FROM scratch
COPY a.txt /a.txt
COPY --from=tools /tool.bin /opt/tool.bin
COPY b.txt /b.txt
";

fn context(env: &Env) -> std::path::PathBuf {
    let ctx = env.path("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("Dockerfile"), DOCKERFILE).unwrap();
    fs::write(ctx.join("a.txt"), "a\n".repeat(100_000)).unwrap();
    fs::write(ctx.join("b.txt"), "b\n").unwrap();
    let noise: Vec<u8> = (0u32..300_000)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(ctx.join("tool.bin"), noise).unwrap();
    ctx
}

fn build(env: &Env, early: bool, args: &[&str]) -> (String, String) {
    let mut c: Command = env.hoist();
    if !early {
        c.env("HOIST_EARLY_PUSH", "0");
    }
    let out = c
        .args(["build", "--progress", "plain"])
        .args(args)
        .output()
        .unwrap();
    assert_success(&out, &format!("hoist build {}", args.join(" ")));
    (
        String::from_utf8(out.stdout).unwrap().trim().to_string(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// The blobs the registry stores (every repository).
fn stored_blobs(reg: &Registry) -> Vec<String> {
    let root = reg.storage().join("docker/registry/v2/blobs/sha256");
    let mut out = Vec::new();
    for prefix in fs::read_dir(&root).into_iter().flatten().flatten() {
        for blob in fs::read_dir(prefix.path()).into_iter().flatten().flatten() {
            out.push(blob.file_name().to_string_lossy().into_owned());
        }
    }
    out.sort();
    out
}

#[test]
fn build_while_push_equals_push_after_build() {
    let reg = Registry::plain();
    let env = Env::new();
    let ctx = context(&env);
    let ctx_s = ctx.to_str().unwrap();

    // Build while pushing, into an empty registry.
    let early = format!("{}/early/app:1", reg.addr());
    let (digest, log) = build(&env, true, &["-t", &early, "--push", ctx_s]);
    assert!(
        log.contains("uploaded during the build: 3 layers"),
        "the layers went up during the build:\n{log}"
    );
    let inspect = skopeo_inspect(&format!("docker://{early}"));
    assert_eq!(inspect["Digest"], digest);
    let layers: Vec<String> = inspect["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect();
    assert_eq!(layers.len(), 3);
    // Exactly the image's blobs (3 layers, the config, the manifest): the `tools`
    // stage's own layer was not uploaded.
    let blobs = stored_blobs(&reg);
    assert_eq!(blobs.len(), 5, "{blobs:?}");
    for l in &layers {
        assert!(blobs.contains(&l["sha256:".len()..].to_string()), "{l}");
    }

    // Push after the build (early uploads off), fresh cache: the same image.
    let env2 = Env::new();
    let ctx2 = context(&env2);
    let late = format!("{}/late/app:1", reg.addr());
    let (digest2, log2) = build(
        &env2,
        false,
        &["-t", &late, "--push", ctx2.to_str().unwrap()],
    );
    assert!(!log2.contains("uploaded during the build"), "{log2}");
    assert_eq!(digest2, digest);
    // And the same as an OCI layout written by the build.
    let layout = env2.path("out-oci");
    let (digest3, _) = build(
        &env2,
        true,
        &[
            "-o",
            &format!("type=oci,dest={}", layout.display()),
            ctx2.to_str().unwrap(),
        ],
    );
    assert_eq!(digest3, digest);

    // Every pushed blob verifies (skopeo checks digests as it copies).
    let dir = env.path("copied");
    let mut c = Command::new("skopeo");
    c.args(["copy", "--src-tls-verify=false"])
        .arg(format!("docker://{early}"))
        .arg(format!("dir:{}", dir.display()));
    run(&mut c);

    // A rebuild with --push re-sends nothing.
    let (again, log3) = build(&env, true, &["-t", &early, "--push", ctx_s]);
    assert_eq!(again, digest);
    assert!(
        log3.contains("uploaded during the build: 0 layers"),
        "{log3}"
    );
}
