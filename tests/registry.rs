//! End-to-end tests of hoist against real `docker-registry` processes: FROM a base pushed
//! by skopeo, --push, login with htpasswd, TLS with a test CA, copy across registries by
//! digest, pull to every output.

mod common;

use std::fs;
use std::process::Command;

use common::*;
use hoist_testutil::Registry;

fn push_busybox_with_skopeo(reg: &Registry, repo: &str, extra: &[&str]) {
    let base = busybox_base();
    let mut c = Command::new("skopeo");
    c.args(["copy", "--dest-tls-verify=false"])
        .args(extra)
        .arg(format!("oci:{}:latest", base.display()))
        .arg(format!("docker://{}/{repo}", reg.addr()));
    run(&mut c);
}

#[test]
fn build_from_a_skopeo_pushed_base_push_and_copy_between_registries() {
    let reg = Registry::plain();
    let other = Registry::plain();
    push_busybox_with_skopeo(&reg, "base/busybox:latest", &[]);
    let env = Env::new();
    let ctx = env.path("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {}/base/busybox:latest\nRUN echo built > /built\nCOPY Dockerfile /src/\n",
            reg.addr()
        ),
    )
    .unwrap();
    let name = format!("{}/app:1", reg.addr());
    let digest = env
        .ok(&[
            "build",
            "-t",
            &name,
            "-t",
            &format!("{}/app:latest", reg.addr()),
            "--push",
            ctx.to_str().unwrap(),
        ])
        .trim()
        .to_string();
    // skopeo sees the same digest under both tags and can unpack it.
    let i = skopeo_inspect(&format!("docker://{name}"));
    assert_eq!(i["Digest"], digest);
    let i = skopeo_inspect(&format!("docker://{}/app:latest", reg.addr()));
    assert_eq!(i["Digest"], digest);
    let dir = env.path("skopeo-oci");
    run(Command::new("skopeo").args([
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{name}"),
        &format!("oci:{}:x", dir.display()),
    ]));
    let rootfs = umoci_unpack(&dir, "x", &env.path("b"));
    assert_eq!(fs::read_to_string(rootfs.join("built")).unwrap(), "built\n");

    // Copy to another registry: the digest never changes.
    let dst = format!("{}/promoted/app:1", other.addr());
    let out = env.ok(&[
        "copy",
        &format!("docker://{name}"),
        &format!("docker://{dst}"),
    ]);
    assert_eq!(out.trim(), digest);
    assert_eq!(skopeo_inspect(&format!("docker://{dst}"))["Digest"], digest);

    // Pull to several outputs; inspect from the registry.
    let fsdir = env.path("pulled-fs");
    let tar = env.path("pulled.tar");
    env.ok(&[
        "pull",
        &dst,
        "-o",
        &format!("type=local,dest={}", fsdir.display()),
        "-o",
        &format!("type=docker,dest={}", tar.display()),
    ]);
    assert_eq!(fs::read_to_string(fsdir.join("built")).unwrap(), "built\n");
    assert_eq!(
        skopeo_inspect(&format!("docker-archive:{}", tar.display()))["Layers"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let j: serde_json::Value =
        serde_json::from_str(&env.ok(&["inspect", &format!("docker://{dst}")])).unwrap();
    assert_eq!(j["digest"], digest);

    // A rebuild pushes nothing new and gives the same digest.
    let again = env.ok(&["build", "-t", &name, "--push", ctx.to_str().unwrap()]);
    assert_eq!(again.trim(), digest);
}

#[test]
fn login_with_htpasswd_and_clear_errors_for_wrong_credentials() {
    let reg = Registry::htpasswd("alice", "wonderland");
    let env = Env::new();
    let authfile = env.path("auth.json");
    let base = busybox_base();
    let dest = format!("docker://{}/secure/app:1", reg.addr());
    // Without credentials: a clear error that does not leak anything.
    let err = env.fails(&[
        "push",
        "--authfile",
        authfile.to_str().unwrap(),
        &format!("oci:{}:latest", base.display()),
        &dest,
    ]);
    assert!(
        err.contains("authentication failed") && err.contains("hoist login"),
        "{err}"
    );
    // Wrong password: rejected by login, nothing stored.
    let out = env
        .hoist()
        .args([
            "login",
            &reg.addr(),
            "-u",
            "alice",
            "--password-stdin",
            "--authfile",
            authfile.to_str().unwrap(),
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"wrong-pass\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("wrong-pass"), "password in error: {err}");
    assert!(!authfile.exists() || !fs::read_to_string(&authfile).unwrap().contains(&reg.addr()));
    // Right password: stored, and push works.
    let out = env
        .hoist()
        .args([
            "login",
            &reg.addr(),
            "-u",
            "alice",
            "-p",
            "wonderland",
            "--authfile",
            authfile.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_success(&out, "login");
    let digest = env.ok(&[
        "push",
        "--authfile",
        authfile.to_str().unwrap(),
        &format!("oci:{}:latest", base.display()),
        &dest,
    ]);
    let raw = run(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        "alice:wonderland",
        &dest,
    ]));
    assert_eq!(
        format!(
            "sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(raw.as_bytes()))
        ),
        digest.trim()
    );
    env.ok(&[
        "logout",
        &reg.addr(),
        "--authfile",
        authfile.to_str().unwrap(),
    ]);
    assert!(!fs::read_to_string(&authfile).unwrap().contains(&reg.addr()));
}

#[test]
fn tls_registry_with_a_test_ca() {
    let reg = Registry::tls();
    let env = Env::new();
    let ca = env.path("ca.pem");
    fs::write(&ca, reg.ca_pem().unwrap()).unwrap();
    let base = busybox_base();
    let dest = format!("docker://{}/tls/app:1", reg.addr());
    // Without the CA: refused.
    env.fails(&["push", &format!("oci:{}:latest", base.display()), &dest]);
    // With --ca-cert, and with LOCAL_CA_CERTIFICATE holding the PEM.
    let d1 = env.ok(&[
        "push",
        "--ca-cert",
        ca.to_str().unwrap(),
        &format!("oci:{}:latest", base.display()),
        &dest,
    ]);
    let out = env
        .hoist()
        .env("LOCAL_CA_CERTIFICATE", reg.ca_pem().unwrap())
        .args(["inspect", &dest])
        .output()
        .unwrap();
    assert_success(&out, "inspect with LOCAL_CA_CERTIFICATE");
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["digest"], d1.trim());
}

#[test]
fn tags_untag_promote_status_and_prune_through_the_cli() {
    let reg = Registry::plain();
    let env = Env::new();
    let base = busybox_base();
    let repo = format!("{}/life/app", reg.addr());
    let digest = env
        .ok(&[
            "push",
            &format!("oci:{}:latest", base.display()),
            &format!("docker://{repo}:1"),
        ])
        .trim()
        .to_string();
    env.ok(&["tag", &format!("{repo}:1"), "v1", "stable"]);
    env.ok(&["untag", &format!("{repo}:stable")]);
    let tags = env.ok(&["tags", &repo]);
    assert!(
        tags.contains("v1") && tags.contains('1') && !tags.contains("stable"),
        "{tags}"
    );
    assert_eq!(
        skopeo_inspect(&format!("docker://{repo}:v1"))["Digest"],
        digest
    );
    // An older image (created 1970: reproducible build) promoted to prod.
    let ctx = env.path("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("f"), "old\n").unwrap();
    fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY f /f\n").unwrap();
    let old = env
        .ok(&[
            "build",
            "-t",
            &format!("{repo}:old"),
            "--push",
            ctx.to_str().unwrap(),
        ])
        .trim()
        .to_string();
    env.ok(&[
        "promote",
        &format!("{repo}@{old}"),
        "--env",
        "prod",
        "--note",
        "signed-off",
    ]);
    let status = env.ok(&["status", &repo]);
    assert!(status.contains("prod") && status.contains(&old), "{status}");
    // A newer build, pushed last: "keep only the newest image" (by push order) would
    // expire the prod one, which must survive --apply; the first push goes.
    fs::write(ctx.join("f"), "new\n").unwrap();
    let newest = env
        .ok(&[
            "build",
            "-t",
            &format!("{repo}:new"),
            "--push",
            ctx.to_str().unwrap(),
        ])
        .trim()
        .to_string();
    let policy = env.path("policy.json");
    fs::write(
        &policy,
        r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
    )
    .unwrap();
    let plan = env.ok(&[
        "prune",
        &repo,
        "--policy",
        policy.to_str().unwrap(),
        "--json",
    ]);
    assert!(plan.contains(&old), "{plan}");
    env.ok(&[
        "prune",
        &repo,
        "--policy",
        policy.to_str().unwrap(),
        "--apply",
    ]);
    assert_eq!(
        skopeo_inspect(&format!("docker://{repo}:env-prod"))["Digest"],
        old
    );
    assert_eq!(
        skopeo_inspect(&format!("docker://{repo}:new"))["Digest"],
        newest
    );
    let tags = env.ok(&["tags", &repo]);
    assert!(!tags.contains(&digest), "{tags}");
}

/// A multi-platform build pushed as one tag: the registry holds the index and every
/// platform's manifest, skopeo picks each platform, and FROM that tag resolves the
/// requested platform's image.
#[test]
fn multi_platform_push_and_build_from_the_index() {
    let reg = Registry::plain();
    let env = Env::new();
    let ctx = env.path("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nARG TARGETARCH\nCOPY Dockerfile /\nLABEL arch=$TARGETARCH\n",
    )
    .unwrap();
    let name = format!("{}/multi:1", reg.addr());
    let digest = env
        .ok(&[
            "build",
            "--platform",
            "linux/amd64,linux/arm64,linux/arm/v7",
            "-t",
            &name,
            "--push",
            ctx.to_str().unwrap(),
        ])
        .trim()
        .to_string();
    let raw = skopeo_raw(&format!("docker://{name}"));
    assert_eq!(sha256_of(&raw), digest);
    let index: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 3);
    assert_eq!(index["manifests"][2]["platform"]["variant"], "v7");
    for (arch, variant) in [("arm64", None), ("arm", Some("v7")), ("amd64", None)] {
        let mut c = Command::new("skopeo");
        c.args(["--override-arch", arch]);
        if let Some(v) = variant {
            c.args(["--override-variant", v]);
        }
        c.args(["inspect", "--config", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{name}"));
        let cfg: serde_json::Value = serde_json::from_str(&run(&mut c)).unwrap();
        assert_eq!(cfg["architecture"], arch);
        assert_eq!(cfg["config"]["Labels"]["arch"], arch);
    }

    // FROM the pushed index, for one platform: that platform's image is the base.
    let ctx2 = env.path("ctx2");
    fs::create_dir_all(&ctx2).unwrap();
    fs::write(
        ctx2.join("Dockerfile"),
        format!("FROM {name}\nLABEL child=1\n"),
    )
    .unwrap();
    let out = env.path("arm.tar");
    env.ok(&[
        "build",
        "--platform",
        "linux/arm64",
        "-o",
        &format!("type=docker,dest={}", out.display()),
        ctx2.to_str().unwrap(),
    ]);
    let cfg = skopeo_config(&format!("docker-archive:{}", out.display()));
    assert_eq!(cfg["architecture"], "arm64");
    assert_eq!(cfg["config"]["Labels"]["arch"], "arm64");
    assert_eq!(cfg["config"]["Labels"]["child"], "1");
}
