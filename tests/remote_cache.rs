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
