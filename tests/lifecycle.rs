//! End-to-end tests of image lifecycle against the real distribution registry, through
//! the `hoist` binary: retention by push order (never by digest), untagged images made
//! visible by the ledger, marks and gates, promotion across registries, and two hoist
//! processes pushing to one repository at once.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::process::Command;

use common::*;
use hoist_testutil::Registry;
use serde_json::Value;

/// Build `FROM scratch` + one file and push it as `repo:tag`; returns the digest.
fn build_push(env: &Env, repo: &str, tag: &str, content: &str, sde: Option<i64>) -> String {
    let ctx = env.path(&format!("ctx-{tag}-{}", content.len()));
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("f"), content).unwrap();
    fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY f /f\n").unwrap();
    let mut cmd = env.hoist();
    cmd.args(["build", "-q", "-t", &format!("{repo}:{tag}"), "--push"])
        .arg(&ctx);
    if let Some(t) = sde {
        cmd.env("SOURCE_DATE_EPOCH", t.to_string());
    }
    run(&mut cmd).trim().to_string()
}

fn exists(repo: &str, digest: &str) -> bool {
    Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{repo}@{digest}"),
        ])
        .output()
        .unwrap()
        .status
        .success()
}

fn prune_json(env: &Env, repo: &str, policy: &str, apply: bool) -> Value {
    let p = env.path("policy.json");
    fs::write(&p, policy).unwrap();
    let mut args = vec!["prune", repo, "--policy", p.to_str().unwrap(), "--json"];
    if apply {
        args.push("--apply");
    }
    serde_json::from_str(&env.ok(&args)).unwrap()
}

/// digest → (verdict, code).
fn verdicts(plan: &Value) -> BTreeMap<String, (String, String)> {
    plan["plan"]["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["digest"].as_str().unwrap().to_string(),
                (
                    d["verdict"].as_str().unwrap().to_string(),
                    d["code"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect()
}

const KEEP3_POLICY: &str = r#"{"rules":[
  {"rulePriority":1,"description":"keep the 3 newest builds",
   "selection":{"tagStatus":"tagged","tagPrefixList":["build-"],"countType":"imageCountMoreThan","countNumber":3},
   "action":{"type":"expire"}},
  {"rulePriority":2,"description":"keep one untagged",
   "selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1},
   "action":{"type":"expire"}}]}"#;

/// The issue's scenario: 10 builds (reproducible: all created 1970), 3 untagged
/// manifests, env-prod on build-2, a mark on build-4.
#[test]
fn retention_keeps_the_newest_by_push_order_and_sees_untagged_images() {
    let reg = Registry::plain();
    let env = Env::new();
    let repo = format!("{}/team/app", reg.addr());
    let builds: Vec<String> = (1..=10)
        .map(|n| {
            build_push(
                &env,
                &repo,
                &format!("build-{n}"),
                &format!("build {n}\n"),
                None,
            )
        })
        .collect();
    // Three images pushed under `tmp`, which moves on; then `tmp` is removed: all three
    // are untagged and only the ledger knows them.
    let untagged: Vec<String> = (1..=3)
        .map(|n| build_push(&env, &repo, "tmp", &format!("scratch {n}\n"), None))
        .collect();
    env.ok(&["untag", &format!("{repo}:tmp")]);
    env.ok(&["promote", &format!("{repo}@{}", builds[1]), "--env", "prod"]);
    env.ok(&["mark", &format!("{repo}@{}", builds[3]), "tested"]);

    let all = env.ok(&["tags", &repo, "--all"]);
    for u in &untagged {
        assert!(all.contains(&format!("<untagged>\t{u}")), "{all}");
    }
    assert!(!all.contains("hoist-ledger"), "{all}");

    let plan = prune_json(&env, &repo, KEEP3_POLICY, false);
    let v = verdicts(&plan);
    let is = |d: &str, verdict: &str, code: &str| {
        assert_eq!(
            v[d],
            (verdict.to_string(), code.to_string()),
            "{d}: {plan:#}"
        )
    };
    for n in [8, 9, 10] {
        is(&builds[n - 1], "keep", "within-count");
    }
    is(&builds[1], "keep", "in-use");
    is(&builds[3], "keep", "marked");
    for n in [1, 3, 5, 6, 7] {
        is(&builds[n - 1], "delete", "beyond-count");
    }
    is(&untagged[2], "keep", "within-count");
    is(&untagged[0], "delete", "beyond-count");
    is(&untagged[1], "delete", "beyond-count");
    for d in plan["plan"]["decisions"].as_array().unwrap() {
        assert_eq!(d["pushed_source"], "push-record", "{d}");
    }
    // Dry run by default: nothing is gone.
    assert!(builds.iter().all(|d| exists(&repo, d)));

    let applied = prune_json(&env, &repo, KEEP3_POLICY, true);
    assert_eq!(
        applied["report"]["deleted"].as_array().unwrap().len(),
        7,
        "{applied:#}"
    );
    for (i, d) in builds.iter().enumerate() {
        let kept = [2, 4, 8, 9, 10].contains(&(i + 1));
        assert_eq!(exists(&repo, d), kept, "build-{}", i + 1);
    }
    assert!(exists(&repo, &untagged[2]));
    assert!(!exists(&repo, &untagged[0]) && !exists(&repo, &untagged[1]));

    // A second run is a no-op.
    let again = prune_json(&env, &repo, KEEP3_POLICY, true);
    assert!(
        again["report"]["deleted"].as_array().unwrap().is_empty(),
        "{again:#}"
    );
    assert!(verdicts(&again).values().all(|(v, _)| v == "keep"));
}

/// SOURCE_DATE_EPOCH in the opposite order of the pushes: "pushed" rules follow the
/// push order, "created" rules the created times; the policy is plain ECR JSON
/// (tagPatternList, sinceImagePushed) plus hoist's `orderBy`.
#[test]
fn push_order_wins_for_pushed_rules_and_created_for_created_rules() {
    let reg = Registry::plain();
    let env = Env::new();
    let repo = format!("{}/team/sde", reg.addr());
    // build-1 is pushed first but claims the newest creation time.
    let builds: Vec<String> = (1..=5)
        .map(|n| {
            let sde = 1_750_000_000 - n as i64 * 86_400;
            build_push(
                &env,
                &repo,
                &format!("build-{n}"),
                &format!("sde {n}\n"),
                Some(sde),
            )
        })
        .collect();
    let ecr = r#"{"rules":[
      {"rulePriority":10,"selection":{"tagStatus":"tagged","tagPatternList":["build-*"],"countType":"imageCountMoreThan","countNumber":2},"action":{"type":"expire"}},
      {"rulePriority":20,"selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":1},"action":{"type":"expire"}}]}"#;
    let v = verdicts(&prune_json(&env, &repo, ecr, false));
    let kept: Vec<usize> = (1..=5).filter(|n| v[&builds[n - 1]].0 == "keep").collect();
    assert_eq!(kept, [4, 5], "pushed rule keeps the last two pushed: {v:?}");

    let created = r#"{"rules":[
      {"rulePriority":1,"selection":{"tagStatus":"tagged","tagPatternList":["build-*"],"countType":"imageCountMoreThan","countNumber":2,"orderBy":"created"},"action":{"type":"expire"}}]}"#;
    let v = verdicts(&prune_json(&env, &repo, created, false));
    let kept: Vec<usize> = (1..=5).filter(|n| v[&builds[n - 1]].0 == "keep").collect();
    assert_eq!(
        kept,
        [1, 2],
        "created rule keeps the two newest created: {v:?}"
    );

    // sinceImagePushed: everything was pushed just now.
    let since = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"days","countNumber":1},"action":{"type":"expire"}}]}"#;
    let v = verdicts(&prune_json(&env, &repo, since, false));
    assert!(
        v.values().all(|(v, c)| v == "keep" && c == "within-age"),
        "{v:?}"
    );
}

/// Images with no push record and the 1970 `created` of a reproducible build cannot be
/// ordered: prune keeps them all (`ambiguous-order`) instead of falling back to digests.
#[test]
fn images_without_usable_times_are_kept_as_ambiguous() {
    let reg = Registry::plain();
    let env = Env::new();
    let repo = format!("{}/team/foreign", reg.addr());
    for n in 1..=3 {
        // skopeo, not hoist: no push record.
        let ctx = env.path(&format!("l{n}"));
        hoist_testutil::make_layout(&ctx, "t", &[&[("f", format!("{n}").as_bytes())]]);
        run(Command::new("skopeo").args([
            "copy",
            "--dest-tls-verify=false",
            &format!("oci:{}:t", ctx.display()),
            &format!("docker://{repo}:build-{n}"),
        ]));
    }
    let policy = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#;
    let plan = prune_json(&env, &repo, policy, true);
    let v = verdicts(&plan);
    assert_eq!(v.len(), 3);
    assert!(
        v.values()
            .all(|(v, c)| v == "keep" && c == "ambiguous-order"),
        "{plan:#}"
    );
    assert!(plan["report"]["deleted"].as_array().unwrap().is_empty());
}

/// Two hoist processes push to one repository (the same tag, so most images end up
/// untagged) at the same time: the ledger keeps every push of both.
#[test]
fn two_processes_pushing_at_once_lose_nothing_in_the_ledger() {
    let reg = Registry::plain();
    let env = Env::new();
    let repo = format!("{}/team/race", reg.addr());
    let per_process = 4;
    let mut layouts = Vec::new();
    for p in 0..2 {
        for i in 0..per_process {
            let dir = env.path(&format!("img-{p}-{i}"));
            let img = hoist_testutil::make_layout(
                &dir,
                "t",
                &[&[("f", format!("process {p} image {i}").as_bytes())]],
            );
            layouts.push((p, dir, img.manifest.digest.to_string()));
        }
    }
    let script = |p: usize| -> String {
        layouts
            .iter()
            .filter(|(q, _, _)| *q == p)
            .map(|(_, dir, _)| {
                format!(
                    "\"$HOIST\" push oci:{}:t docker://{repo}:latest >/dev/null || exit 1\n",
                    dir.display()
                )
            })
            .collect()
    };
    let children: Vec<_> = (0..2)
        .map(|p| {
            Command::new("bash")
                .arg("-c")
                .arg(script(p))
                .env("HOIST", hoist_bin())
                .env("HOIST_CACHE_DIR", env.path(&format!("cache-{p}")))
                .env("HOIST_ACTOR", format!("job-{p}"))
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let all = env.ok(&["tags", &repo, "--all", "--json"]);
    let rows: Vec<Value> = serde_json::from_str(&all).unwrap();
    let listed: Vec<&str> = rows.iter().map(|r| r["digest"].as_str().unwrap()).collect();
    for (_, _, d) in &layouts {
        assert!(
            listed.contains(&d.as_str()),
            "{d} missing from {all}; registry log:\n{}",
            reg.log()
        );
    }
    // With no writer left, a compaction without grace period folds every entry into the
    // compacted ledger and removes every entry tag: the ledger alone holds every push.
    let client = hoist_registry::Client::new(hoist_registry::ClientConfig {
        auth: hoist_registry::AuthConfig {
            anonymous: true,
            ..Default::default()
        },
        ..Default::default()
    })
    .unwrap();
    let r = hoist_registry::Reference::parse(&repo).unwrap();
    hoist_promote::ledger::compact_with(&client, &r, std::time::Duration::ZERO).unwrap();
    let tags = client.list_tags(&r).unwrap();
    assert!(
        !tags.iter().any(|t| t.starts_with("hoist-ledger.")),
        "{tags:?}"
    );
    let ledger = hoist_promote::ledger::read(&client, &r).unwrap();
    let pushed = ledger.push_times();
    for (_, _, d) in &layouts {
        assert!(
            pushed.contains_key(&hoist_image::Digest::parse(d).unwrap()),
            "{d} missing from the ledger"
        );
    }
    let by: Vec<&str> = ledger
        .entries
        .iter()
        .filter_map(|e| e.event.by.as_deref())
        .collect();
    assert!(by.contains(&"job-0") && by.contains(&"job-1"), "{by:?}");
}

/// Marks gate a promotion; marks and records follow the digest to another registry, and
/// the environment is visible from both sides.
#[test]
fn marks_gate_promotion_and_follow_the_image_across_registries() {
    let a = Registry::plain();
    let b = Registry::plain();
    let env = Env::new();
    let src = format!("{}/team/app", a.addr());
    let dst = format!("{}/prod/app", b.addr());
    let d = build_push(&env, &src, "1", "release\n", None);
    let image = format!("{src}@{d}");
    let refused = env.fails(&[
        "promote",
        &image,
        "--env",
        "prod",
        "--to",
        &format!("docker://{dst}"),
        "--require",
        "tested,signed-off",
    ]);
    assert!(
        refused.contains("refused") && refused.contains("tested, signed-off"),
        "{refused}"
    );
    env.ok(&["mark", &image, "tested", "--by", "qa-bot"]);
    let refused = env.fails(&[
        "promote",
        &image,
        "--env",
        "prod",
        "--to",
        &format!("docker://{dst}"),
        "--require",
        "tested,signed-off",
    ]);
    assert!(
        refused.contains("signed-off") && !refused.contains("tested,"),
        "{refused}"
    );
    assert!(!exists(&dst, &d), "a refused promotion changes nothing");
    env.ok(&[
        "mark",
        &image,
        "signed-off",
        "--by",
        "alice",
        "--note",
        "CAB-42",
    ]);
    env.ok(&[
        "promote",
        &image,
        "--env",
        "prod",
        "--to",
        &format!("docker://{dst}"),
        "--require",
        "tested,signed-off",
        "--by",
        "release-bot",
    ]);
    // Destination side: the environment, its marks (carried) and who promoted it.
    let st: Vec<Value> = serde_json::from_str(&env.ok(&["status", &dst, "--json"])).unwrap();
    assert_eq!(st.len(), 1, "{st:?}");
    assert_eq!(st[0]["digest"], d.as_str());
    assert_eq!(st[0]["promoted"]["by"], "release-bot");
    let marks: Vec<&str> = st[0]["marks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(marks, ["tested", "signed-off"]);
    // Source side: the same environment, living in the other registry.
    let text = env.ok(&["status", &src]);
    assert!(
        text.contains("prod") && text.contains(&d) && text.contains(&format!("in={dst}")),
        "{text}"
    );
    assert!(text.contains("signed-off(alice)"), "{text}");
    // A plain copy carries the marks too: a gate in the copy's repository passes.
    let other = format!("{}/mirror/app", b.addr());
    env.ok(&[
        "copy",
        &format!("docker://{image}"),
        &format!("docker://{other}:1"),
    ]);
    env.ok(&[
        "promote",
        &format!("{other}@{d}"),
        "--env",
        "qa",
        "--require",
        "tested,signed-off",
    ]);
}

/// `{git-short-sha}` in a dirty checkout gets `-dirty`, or is refused.
#[test]
fn tag_templates_are_honest_about_dirty_checkouts() {
    let reg = Registry::plain();
    let env = Env::new();
    let repo = format!("{}/team/git", reg.addr());
    let ctx = env.path("repo");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("f"), "one\n").unwrap();
    fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY f /f\n").unwrap();
    let git = |args: &[&str]| {
        run(Command::new("git")
            .arg("-C")
            .arg(&ctx)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
            .args(args))
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-qm", "one"]);
    git(&["tag", "v1.0"]);
    let sha = git(&["rev-parse", "--short=7", "HEAD"]).trim().to_string();
    let build = |extra: &[&str], tag: &str| {
        let mut c = env.hoist();
        c.args(["build", "-q", "--push", "-t", &format!("{repo}:{tag}")])
            .args(extra)
            .arg(&ctx)
            .env("BUILD_BUILDID", "77");
        c.output().unwrap()
    };
    let out = build(&[], "{git-tag}-{git-short-sha}-{env:BUILD_BUILDID}");
    assert_success(&out, "clean build");
    fs::write(ctx.join("f"), "two\n").unwrap();
    let out = build(&[], "{git-short-sha}");
    assert_success(&out, "dirty build");
    let tags = env.ok(&["tags", &repo]);
    assert!(tags.contains(&format!("v1.0-{sha}-77\t")), "{tags}");
    assert!(tags.contains(&format!("{sha}-dirty\t")), "{tags}");
    assert!(!tags.contains(&format!("{sha}\t")), "{tags}");
    let out = build(&["--dirty-tags", "refuse"], "{git-short-sha}");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("uncommitted"));
    let out = build(&[], "{git-tag}");
    assert_success(&out, "dirty {git-tag} build");
    assert!(env.ok(&["tags", &repo]).contains("v1.0-dirty\t"));
    git(&["commit", "-qam", "two"]);
    let out = build(&[], "{git-tag}");
    assert!(!out.status.success(), "HEAD has no exact tag any more");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no tag"));
}
