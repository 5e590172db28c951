//! `--cache-to` / `--cache-from`: a build cache shared by machines through the real
//! distribution registry (plain, htpasswd, TLS) or a directory. Each "machine" is an
//! empty hoist cache directory and its own copy of the context.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use hoist_testutil::Registry;

/// A multi-stage build: every RUN appends its name to a cache mount, so a machine's
/// cache directory shows which RUNs it executed.
fn dockerfile() -> String {
    let base = busybox_base();
    format!(
        "FROM oci:{b}:latest AS builder\n\
         RUN --mount=type=cache,target=/runs,id=runs echo deps >> /runs/log && mkdir /deps && echo deps > /deps/d\n\
         COPY src.txt /src/src.txt\n\
         RUN --mount=type=cache,target=/runs,id=runs echo compile >> /runs/log && cat /src/src.txt /deps/d > /out.bin\n\
         FROM oci:{b}:latest\n\
         ENV APP=/app\n\
         COPY --from=builder /out.bin /app/out.bin\n\
         COPY app.txt /app/app.txt\n\
         RUN --mount=type=cache,target=/runs,id=runs echo package >> /runs/log && wc -c /app/app.txt > /app/size\n",
        b = base.display()
    )
}

/// A context for one machine.
fn context(env: &Env, name: &str, app: &str) -> PathBuf {
    let ctx = env.path(name);
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("Dockerfile"), dockerfile()).unwrap();
    fs::write(ctx.join("src.txt"), "source code\n").unwrap();
    fs::write(ctx.join("app.txt"), app).unwrap();
    ctx
}

/// What the RUN steps that executed on a machine wrote (its cache mounts).
fn runs(cache: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(dirs) = fs::read_dir(cache.join("mounts")) else {
        return out;
    };
    for d in dirs {
        let log = d.unwrap().path().join("log");
        if let Ok(s) = fs::read_to_string(&log) {
            out.extend(s.lines().map(String::from));
        }
    }
    out
}

/// Step name → CACHED or DONE, from `--progress plain`.
fn step_states(stderr: &str) -> BTreeMap<String, String> {
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for l in stderr.lines() {
        let Some(rest) = l.strip_prefix('#') else {
            continue;
        };
        let Some((id, what)) = rest.split_once(' ') else {
            continue;
        };
        if what == "CACHED" || what.starts_with("DONE") {
            if let Some(n) = names.get(id) {
                out.insert(
                    n.clone(),
                    if what == "CACHED" { "CACHED" } else { "DONE" }.to_string(),
                );
            }
        } else if what.starts_with('[') || what.starts_with("FROM") || !names.contains_key(id) {
            names.insert(id.to_string(), what.to_string());
        }
    }
    out
}

fn machine(env: &Env, name: &str) -> (PathBuf, std::process::Command) {
    let cache = env.path(&format!("{name}-cache"));
    let mut c = env.hoist();
    c.env("HOIST_CACHE_DIR", &cache);
    (cache, c)
}

fn build(cmd: &mut std::process::Command, args: &[&str]) -> (String, String) {
    let out = cmd.args(args).output().unwrap();
    assert_success(&out, &format!("hoist {}", args.join(" ")));
    (
        String::from_utf8(out.stdout).unwrap().trim().to_string(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Blob GETs in the registry's log (after `from` lines), by digest.
fn blob_gets(reg: &Registry, from: usize) -> Vec<String> {
    reg.log()
        .lines()
        .skip(from)
        .filter(|l| l.contains("\"GET /v2/") && l.contains("/blobs/sha256:"))
        .filter_map(|l| {
            let i = l.find("/blobs/")?;
            Some(l[i + 7..].split([' ', '"', '?']).next()?.to_string())
        })
        .collect()
}

fn log_len(reg: &Registry) -> usize {
    reg.log().lines().count()
}

/// The cache artifact's manifest in the registry.
fn cache_manifest(reg: &Registry, repo_tag: &str) -> serde_json::Value {
    let raw = skopeo_raw(&format!("docker://{}/{repo_tag}", reg.addr()));
    serde_json::from_slice(&raw).unwrap()
}

#[test]
fn two_ci_machines_share_the_cache_through_the_registry() {
    if !hoist_testutil::have_registry() {
        eprintln!("skipped: no docker-registry");
        return;
    }
    let reg = Registry::plain();
    let env = Env::new();
    let cache_ref = format!("{}/ci/app-cache:main", reg.addr());
    let cache_to = format!("type=registry,ref={cache_ref},mode=max");
    let cache_from = format!("type=registry,ref={cache_ref}");

    // Machine A: an empty cache, builds and pushes, exports every stage's steps.
    let ctx_a = context(&env, "a-ctx", "app v1\n");
    let (cache_a, mut a) = machine(&env, "a");
    let image_a = format!("{}/ci/app:a", reg.addr());
    let (digest_a, _) = build(
        &mut a,
        &[
            "build",
            "--progress",
            "plain",
            "--cache-to",
            &cache_to,
            "-t",
            &image_a,
            "--push",
            ctx_a.to_str().unwrap(),
        ],
    );
    assert_eq!(runs(&cache_a).len(), 3, "machine A ran every RUN");
    let m = cache_manifest(&reg, "ci/app-cache:main");
    assert_eq!(m["artifactType"], "application/vnd.hoist.build-cache.v1");
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.hoist.build-cache.config.v1+json"
    );
    let file_lists: Vec<String> = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["mediaType"] == "application/vnd.hoist.build-cache.layer-index.v1+json")
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    assert!(!file_lists.is_empty());

    // Machine B: another empty cache, another checkout of the same sources; pushes to
    // another repository of the same registry.
    let ctx_b = context(&env, "b-ctx", "app v1\n");
    let (cache_b, mut b) = machine(&env, "b");
    let image_b = format!("{}/ci/app-b:b", reg.addr());
    let before = log_len(&reg);
    let (digest_b, err_b) = build(
        &mut b,
        &[
            "build",
            "--progress",
            "plain",
            "--cache-from",
            &cache_from,
            "-t",
            &image_b,
            "--push",
            ctx_b.to_str().unwrap(),
        ],
    );
    assert_eq!(digest_b, digest_a, "the same image as machine A\n{err_b}");
    assert!(
        runs(&cache_b).is_empty(),
        "no RUN executed on B: {:?}",
        runs(&cache_b)
    );
    let states = step_states(&err_b);
    let steps: Vec<_> = states
        .iter()
        .filter(|(n, _)| !n.contains("FROM") && !n.contains("ENV"))
        .collect();
    assert!(steps.len() >= 6, "{states:?}\n{err_b}");
    for (name, state) in &steps {
        assert_eq!(state.as_str(), "CACHED", "{name}\n{err_b}");
    }
    // Only the cache's config and file lists were read: no layer blob was downloaded,
    // the push mounted them from the cache's repository.
    let config_digest = m["config"]["digest"].as_str().unwrap().to_string();
    let layer_gets: Vec<_> = blob_gets(&reg, before)
        .into_iter()
        .filter(|d| *d != config_digest && !file_lists.contains(d))
        .collect();
    assert!(
        layer_gets.is_empty(),
        "layer blobs downloaded: {layer_gets:?}\n{err_b}"
    );
    assert!(
        err_b.contains(" 0 layer blobs fetched (0 bytes)"),
        "hoist's own counters: {err_b}"
    );
    assert!(err_b.contains("mounted"), "{err_b}");
    let pushed = skopeo_inspect(&format!("docker://{image_b}"));
    assert_eq!(pushed["Digest"], digest_a);

    // One context file changes on B: only the steps after it run.
    fs::write(ctx_b.join("app.txt"), "app v2, longer\n").unwrap();
    let (digest_c, err_c) = build(
        &mut machine(&env, "b").1,
        &[
            "build",
            "--progress",
            "plain",
            "--cache-from",
            &cache_from,
            "-t",
            &image_b,
            "--push",
            ctx_b.to_str().unwrap(),
        ],
    );
    assert_ne!(digest_c, digest_a);
    assert_eq!(runs(&cache_b), vec!["package".to_string()], "{err_c}");
    let states = step_states(&err_c);
    for (name, state) in &states {
        let want = if name.contains("app.txt") || name.contains("package") {
            "DONE"
        } else if name.contains("FROM") || name.contains("ENV") {
            continue;
        } else {
            "CACHED"
        };
        assert_eq!(state, want, "{name}\n{err_c}");
    }
    // Cold build of the new context elsewhere gives the same digest (the cache is never wrong).
    let ctx_d = context(&env, "d-ctx", "app v2, longer\n");
    let (digest_d, _) = build(
        &mut machine(&env, "d").1,
        &["build", "--no-cache", ctx_d.to_str().unwrap()],
    );
    assert_eq!(digest_d, digest_c);
}

/// A single-stage build (for inline caches, which hold the final stage's steps).
fn single_stage(env: &Env, name: &str, app: &str) -> PathBuf {
    let ctx = env.path(name);
    fs::create_dir_all(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM oci:{}:latest\n\
             RUN --mount=type=cache,target=/runs,id=runs echo one >> /runs/log && echo 1 > /one\n\
             COPY app.txt /app.txt\n\
             RUN --mount=type=cache,target=/runs,id=runs echo two >> /runs/log && cat /app.txt /one > /two\n",
            busybox_base().display()
        ),
    )
    .unwrap();
    fs::write(ctx.join("app.txt"), app).unwrap();
    ctx
}

#[test]
fn bad_specs_are_refused_before_building_naming_the_flag() {
    let env = Env::new();
    let ctx = context(&env, "ctx", "x\n");
    for (flag, spec, want) in [
        ("--cache-to", "type=registry", "type=registry needs ref="),
        (
            "--cache-to",
            "type=s3,bucket=b",
            "unknown cache type \"s3\"",
        ),
        (
            "--cache-to",
            "type=registry,ref=r.example/c:t,mode=all",
            "unknown mode \"all\"",
        ),
        ("--cache-to", "type=local", "type=local needs dest="),
        ("--cache-from", "type=registry", "type=registry needs ref="),
        (
            "--cache-from",
            "type=gha,scope=x",
            "unknown cache type \"gha\"",
        ),
    ] {
        let err = env.fails(&["build", flag, spec, ctx.to_str().unwrap()]);
        assert!(
            err.contains(flag) && err.contains(want),
            "{flag} {spec}: {err}"
        );
        assert!(
            runs(&env.path("cache")).is_empty(),
            "nothing ran for {spec}"
        );
    }
}

#[test]
fn unusable_cache_refs_are_warnings_and_cold_builds() {
    if !hoist_testutil::have_registry() {
        return;
    }
    let reg = Registry::plain();
    let env = Env::new();
    // An ordinary image, pushed by an ordinary build.
    let plain_ctx = single_stage(&env, "plain", "plain\n");
    let image = format!("{}/ordinary/image:1", reg.addr());
    build(
        &mut machine(&env, "p").1,
        &["build", "-t", &image, "--push", plain_ctx.to_str().unwrap()],
    );
    // A real cache, whose config blob is then corrupted in the registry's storage.
    let corrupt = format!("{}/c/corrupt:1", reg.addr());
    build(
        &mut machine(&env, "c").1,
        &[
            "build",
            "--cache-to",
            &format!("type=registry,ref={corrupt}"),
            plain_ctx.to_str().unwrap(),
        ],
    );
    let m = cache_manifest(&reg, "c/corrupt:1");
    let cfg: hoist_image::Digest = m["config"]["digest"].as_str().unwrap().parse().unwrap();
    let p = reg.blob_data_path(&cfg);
    let mut bytes = fs::read(&p).unwrap();
    bytes[0] ^= 0x20;
    fs::write(&p, bytes).unwrap();
    // A foreign artifact: another tool's manifest and config.
    let foreign = format!("{}/c/foreign:1", reg.addr());
    push_foreign_artifact(&reg, &foreign);

    let ctx = single_stage(&env, "ctx", "app\n");
    for (from, want) in [
        (format!("{}/c/missing:1", reg.addr()), "building without it"),
        (image.clone(), "is an ordinary image, not a build cache"),
        (corrupt.clone(), "digest"),
        (foreign.clone(), "is not a hoist build cache"),
        (
            "127.0.0.1:1/nothing/here:1".to_string(),
            "building without it",
        ),
    ] {
        let name = format!("m{}", from.len() % 97);
        let (cache, mut m) = machine(&env, &name);
        let _ = fs::remove_dir_all(&cache);
        let spec = format!("type=registry,ref={from}");
        let (_, err) = build(
            &mut m,
            &[
                "build",
                "--progress",
                "plain",
                "--cache-from",
                &spec,
                ctx.to_str().unwrap(),
            ],
        );
        assert!(
            err.contains("WARNING") && err.contains("--cache-from") && err.contains(want),
            "{from}: {err}"
        );
        assert_eq!(runs(&cache).len(), 2, "a cold build: {err}");
        // strict=true makes it an error.
        let _ = fs::remove_dir_all(&cache);
        let out = machine(&env, &name)
            .1
            .args([
                "build",
                "--cache-from",
                &format!("{spec},strict=true"),
                ctx.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(!out.status.success(), "strict {from}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--cache-from") && err.contains("strict=true"),
            "{err}"
        );
        if want != "building without it" {
            assert!(err.contains(want), "{err}");
        }
    }
}

/// Push an OCI artifact of another tool (its own artifact type and config).
fn push_foreign_artifact(reg: &Registry, reference: &str) {
    let client = hoist_registry::Client::new(hoist_registry::ClientConfig::default()).unwrap();
    let r = hoist_registry::Reference::parse(reference).unwrap();
    let config = b"{\"tool\":\"other\"}".to_vec();
    let d = hoist_image::Digest::sha256(&config);
    let desc = hoist_image::Descriptor::new(
        "application/vnd.example.config+json",
        d,
        config.len() as u64,
    );
    client
        .upload_blob(&r, &desc, None, &|| {
            Ok(Box::new(std::io::Cursor::new(config.clone())))
        })
        .unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.example.thing.v1",
        "config": desc,
        "layers": [],
    });
    let doc = hoist_image::RawDocument::new(
        "application/vnd.oci.image.manifest.v1+json",
        serde_json::to_vec(&manifest).unwrap(),
    );
    client.put_manifest(&r, &doc).unwrap();
    let _ = reg;
}

#[test]
fn a_local_cache_directory_is_shared_and_replaced_atomically() {
    let env = Env::new();
    let dir = env.path("ci-cache");
    let ctx_a = context(&env, "a-ctx", "v1\n");
    let (cache_a, mut a) = machine(&env, "a");
    let (digest_a, _) = build(
        &mut a,
        &[
            "build",
            "--cache-to",
            &format!("type=local,dest={},mode=max", dir.display()),
            ctx_a.to_str().unwrap(),
        ],
    );
    assert_eq!(runs(&cache_a).len(), 3);
    assert!(dir.join("oci-layout").is_file() && dir.join("index.json").is_file());
    let ctx_b = context(&env, "b-ctx", "v1\n");
    let (cache_b, mut b) = machine(&env, "b");
    let (digest_b, err) = build(
        &mut b,
        &[
            "build",
            "--progress",
            "plain",
            "--cache-from",
            &format!("type=local,src={}", dir.display()),
            "--cache-to",
            &format!("type=local,dest={}", dir.display()),
            ctx_b.to_str().unwrap(),
        ],
    );
    assert_eq!(digest_a, digest_b);
    assert!(runs(&cache_b).is_empty(), "{err}");
    // Re-exported with mode=min by B: the builder stage's steps are gone from it, and so
    // are their blobs (the directory was replaced, not added to).
    let blobs = |d: &Path| fs::read_dir(d.join("blobs/sha256")).unwrap().count();
    let idx: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    assert_eq!(idx["manifests"].as_array().unwrap().len(), 1);
    let n = blobs(&dir);
    assert!(n > 2, "{n}");
    assert!(
        !fs::read_dir(dir.parent().unwrap()).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains(".tmp")),
        "no temporary left beside the cache directory"
    );
}

#[test]
fn the_cache_is_bounded_to_what_the_last_build_used() {
    if !hoist_testutil::have_registry() {
        return;
    }
    let reg = Registry::plain();
    let env = Env::new();
    let r = format!("{}/ci/bounded:cache", reg.addr());
    let to = format!("type=registry,ref={r}");
    let ctx = single_stage(&env, "ctx", "one\n");
    build(
        &mut machine(&env, "a").1,
        &["build", "--cache-to", &to, ctx.to_str().unwrap()],
    );
    let first = cache_manifest(&reg, "ci/bounded:cache");
    fs::write(ctx.join("app.txt"), "two\n").unwrap();
    build(
        &mut machine(&env, "a").1,
        &["build", "--cache-to", &to, ctx.to_str().unwrap()],
    );
    let second = cache_manifest(&reg, "ci/bounded:cache");
    let layers = |m: &serde_json::Value| {
        m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        layers(&first).len(),
        layers(&second).len(),
        "same number of steps"
    );
    let dropped: Vec<_> = layers(&first)
        .into_iter()
        .filter(|d| !layers(&second).contains(d))
        .collect();
    assert!(
        !dropped.is_empty(),
        "the old COPY app.txt layer and what followed are no longer in the ref"
    );
}

#[test]
fn concurrent_exporters_to_one_ref_both_succeed() {
    if !hoist_testutil::have_registry() {
        return;
    }
    let reg = Registry::plain();
    let env = Env::new();
    let r = format!("{}/ci/shared:cache", reg.addr());
    let to = format!("type=registry,ref={r},mode=max");
    let children: Vec<_> = ["x", "y"]
        .iter()
        .map(|n| {
            let ctx = context(&env, &format!("{n}-ctx"), &format!("app {n}\n"));
            let (_, mut c) = machine(&env, n);
            c.args(["build", "--cache-to", &to, ctx.to_str().unwrap()])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut digests = Vec::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert_success(&out, "a concurrent exporter");
        digests.push(String::from_utf8(out.stdout).unwrap().trim().to_string());
    }
    // The ref is a valid cache: a third machine reuses it (one writer's steps, all of
    // the builder stage, which both share).
    let ctx = context(&env, "z-ctx", "app x\n");
    let (cache_z, mut z) = machine(&env, "z");
    let (_, err) = build(
        &mut z,
        &[
            "build",
            "--progress",
            "plain",
            "--cache-from",
            &format!("type=registry,ref={r}"),
            ctx.to_str().unwrap(),
        ],
    );
    assert!(!err.contains("WARNING: --cache-from"), "{err}");
    let ran = runs(&cache_z);
    assert!(
        !ran.contains(&"deps".to_string()) && !ran.contains(&"compile".to_string()),
        "{ran:?}\n{err}"
    );
}

#[test]
fn inline_cache_travels_with_the_pushed_image() {
    if !hoist_testutil::have_registry() {
        return;
    }
    let reg = Registry::plain();
    let env = Env::new();
    let image = format!("{}/ci/inline:1", reg.addr());
    let ctx_a = single_stage(&env, "a-ctx", "app\n");
    let (digest_a, _) = build(
        &mut machine(&env, "a").1,
        &[
            "build",
            "--cache-to",
            "type=inline",
            "-t",
            &image,
            "--push",
            ctx_a.to_str().unwrap(),
        ],
    );
    let cfg = skopeo_config(&format!("docker://{image}"));
    assert!(cfg["hoist.build-cache.v1"]["steps"].is_object(), "{cfg}");
    let ctx_b = single_stage(&env, "b-ctx", "app\n");
    let (cache_b, mut b) = machine(&env, "b");
    let (digest_b, err) = build(
        &mut b,
        &[
            "build",
            "--progress",
            "plain",
            "--cache-from",
            &image,
            "--cache-to",
            "type=inline",
            ctx_b.to_str().unwrap(),
        ],
    );
    assert_eq!(digest_a, digest_b, "{err}");
    assert!(runs(&cache_b).is_empty(), "{err}");
}

/// htpasswd auth over TLS: the cache is exported and imported with the build's
/// credentials and CA.
#[test]
fn registry_with_htpasswd_and_tls() {
    if !hoist_testutil::have_registry() {
        return;
    }
    let reg = Registry::start(
        hoist_testutil::RegistryAuth::Htpasswd {
            user: "alice".into(),
            password: "wonderland".into(),
        },
        Some(hoist_testutil::TestCa::new()),
    );
    let env = Env::new();
    let ca = env.path("ca.pem");
    fs::write(&ca, reg.ca_pem().unwrap()).unwrap();
    let authfile = env.path("auth.json");
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
            "--ca-cert",
            ca.to_str().unwrap(),
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"wonderland\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert_success(&out, "hoist login");
    let r = format!("{}/secure/cache:main", reg.addr());
    let common = [
        "--authfile",
        authfile.to_str().unwrap(),
        "--ca-cert",
        ca.to_str().unwrap(),
    ];
    let ctx_a = context(&env, "a-ctx", "v1\n");
    let mut a = machine(&env, "a").1;
    let to = format!("type=registry,ref={r},mode=max");
    let (digest_a, _) = build(
        a.args(["build"]).args(common),
        &[
            "--cache-to",
            &to,
            "-t",
            &format!("{}/secure/app:1", reg.addr()),
            "--push",
            ctx_a.to_str().unwrap(),
        ],
    );
    // Without credentials: a warning, a cold build.
    let ctx_b = context(&env, "b-ctx", "v1\n");
    let (cache_n, mut n) = machine(&env, "n");
    let (_, err) = build(
        n.args([
            "build",
            "--progress",
            "plain",
            "--ca-cert",
            ca.to_str().unwrap(),
        ]),
        &[
            "--cache-from",
            &format!("type=registry,ref={r}"),
            ctx_b.to_str().unwrap(),
        ],
    );
    assert!(
        err.contains("WARNING") && err.contains("--cache-from"),
        "{err}"
    );
    assert_eq!(runs(&cache_n).len(), 3);
    // With them: every step from the cache.
    let (cache_b, mut b) = machine(&env, "b");
    let (digest_b, err) = build(
        b.args(["build", "--progress", "plain"]).args(common),
        &[
            "--cache-from",
            &format!("type=registry,ref={r}"),
            "-t",
            &format!("{}/secure/app-b:1", reg.addr()),
            "--push",
            ctx_b.to_str().unwrap(),
        ],
    );
    assert_eq!(digest_a, digest_b, "{err}");
    assert!(runs(&cache_b).is_empty(), "{err}");
}

/// Concourse task mode: CACHE_TO on one worker, CACHE_FROM on another, through a TLS
/// registry with htpasswd, using the task's DOCKER_* credentials and LOCAL_CA_CERTIFICATE.
#[test]
fn task_params_share_the_cache_with_the_task_credentials() {
    if !hoist_testutil::have_registry() {
        return;
    }
    let reg = Registry::start(
        hoist_testutil::RegistryAuth::Htpasswd {
            user: "ci".into(),
            password: "s3cret".into(),
        },
        Some(hoist_testutil::TestCa::new()),
    );
    let env = Env::new();
    let r = format!("{}/team/app:cache", reg.addr());
    let worker = |name: &str, params: &[(&str, String)]| {
        let work = env.path(name);
        fs::create_dir_all(work.join("image")).unwrap();
        let ctx = context(&env, &format!("{name}/src"), "v1\n");
        let cache = env.path(&format!("{name}-cache"));
        let out = std::process::Command::new(hoist_bin())
            .arg("task")
            .current_dir(&work)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", std::env::var_os("HOME").unwrap_or_default())
            .env("CONTEXT", ctx)
            .env("HOIST_CACHE_DIR", &cache)
            .env("DOCKER_REGISTRY", reg.addr())
            .env("DOCKER_USERNAME", "ci")
            .env("DOCKER_PASSWORD", "s3cret")
            .env("LOCAL_CA_CERTIFICATE", reg.ca_pem().unwrap())
            .envs(params.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_success(&out, &format!("hoist task on {name}"));
        let digest = fs::read_to_string(work.join("image/manifest-digest")).unwrap();
        (
            cache,
            digest,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (cache_1, digest_1, _) = worker(
        "w1",
        &[("CACHE_TO", format!("type=registry,ref={r},mode=max"))],
    );
    assert_eq!(runs(&cache_1).len(), 3);
    let (cache_2, digest_2, log) = worker(
        "w2",
        &[(
            "CACHE_FROM",
            format!(
                "type=registry,ref={}/team/app:cache-branch\ntype=registry,ref={r}",
                reg.addr()
            ),
        )],
    );
    assert!(runs(&cache_2).is_empty(), "{log}");
    assert!(digest_1.starts_with("sha256:"), "{digest_1}");
    assert_eq!(digest_1, digest_2);
    assert!(
        log.contains("cache-branch") && log.contains("building without it"),
        "{log}"
    );
    // A bad spec is a param error naming the param.
    let work = env.path("w3");
    fs::create_dir_all(work.join("image")).unwrap();
    let out = std::process::Command::new(hoist_bin())
        .arg("task")
        .current_dir(&work)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CACHE_TO", "type=registry")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("CACHE_TO") && err.contains("needs ref="),
        "{err}"
    );
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
fn an_interrupted_export_leaves_the_previous_ref() {
    if !hoist_testutil::have_registry() {
        return;
    }
    use std::io::BufRead;
    let reg = Registry::plain();
    let env = Env::new();
    let ctx = single_stage(&env, "ctx", "v1\n");
    let direct = format!("{}/ci/int:cache", reg.addr());
    build(
        &mut machine(&env, "a").1,
        &[
            "build",
            "--cache-to",
            &format!("type=registry,ref={direct}"),
            ctx.to_str().unwrap(),
        ],
    );
    let before = skopeo_raw(&format!("docker://{direct}"));
    // A new build with a 24 MB layer, exported through a slow link (2 MiB/s): killed
    // while the export uploads (a CI job's timeout, or Ctrl-C twice).
    fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM oci:{}:latest\nCOPY app.txt /app.txt\nRUN head -c 25165824 /dev/urandom > /big\n",
            busybox_base().display()
        ),
    )
    .unwrap();
    let slow = slow_proxy(&reg.addr(), 2 << 20);
    let mut child = machine(&env, "b")
        .1
        .args([
            "build",
            "--progress",
            "plain",
            "--insecure-registry",
            &slow,
            "--cache-to",
            &format!("type=registry,ref={slow}/ci/int:cache"),
            "-o",
            &format!("type=oci,dest={}", env.path("out").display()),
            ctx.to_str().unwrap(),
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut log = String::new();
    for line in std::io::BufReader::new(stderr).lines() {
        let line = line.unwrap();
        log.push_str(&line);
        log.push('\n');
        if line.contains("exporting build cache") {
            std::thread::sleep(std::time::Duration::from_millis(1500));
            run(std::process::Command::new("kill").args(["-KILL", &child.id().to_string()]));
        }
    }
    let status = child.wait().unwrap();
    assert!(!status.success(), "the export was interrupted: {log}");
    assert!(log.contains("exporting build cache"), "{log}");
    assert!(
        env.path("out/index.json").is_file(),
        "the image was written before the export"
    );
    assert_eq!(
        skopeo_raw(&format!("docker://{direct}")),
        before,
        "the ref still points at the previous cache"
    );
}
