//! Tags, promotion and retention against real `docker-registry` processes (distribution
//! 2.8: no referrers API, so the tag-schema fallback is exercised), checked with skopeo.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hoist_image::{media_type, Descriptor, Digest, RawDocument};
use hoist_promote::policy::Policy;
use hoist_promote::prune::{self, PruneOptions};
use hoist_promote::{promotion, tags, Error};
use hoist_registry::{AuthConfig, Client, ClientConfig, Reference};
use hoist_testutil::{have_registry, skopeo, Registry};
use time::OffsetDateTime;

fn note(n: &str) -> promotion::PromoteOptions {
    promotion::PromoteOptions {
        note: Some(n.to_string()),
        ..Default::default()
    }
}

fn client() -> Client {
    Client::new(ClientConfig {
        auth: AuthConfig {
            anonymous: true,
            ..Default::default()
        },
        retry_delay: Duration::from_millis(20),
        retries: 1,
        ..Default::default()
    })
    .unwrap()
}

fn put_blob(c: &Client, repo: &Reference, mt: &str, bytes: &[u8]) -> Descriptor {
    let desc = Descriptor::new(mt, Digest::sha256(bytes), bytes.len() as u64);
    let owned = bytes.to_vec();
    let open = move || -> hoist_image::Result<Box<dyn std::io::Read + Send>> {
        Ok(Box::new(std::io::Cursor::new(owned.clone())))
    };
    c.upload_blob(repo, &desc, None, &open).unwrap();
    desc
}

/// Push a tiny image (one shared 1 KiB layer, a config unique to `n`) created
/// `days_ago` days ago, tagged `tag`. Returns its digest.
fn push_build(c: &Client, repo: &Reference, tag: &str, n: u32, days_ago: i64) -> Digest {
    let mut tar = vec![0u8; 1024];
    tar[..8].copy_from_slice(b"hoisttst");
    let layer = put_blob(c, repo, media_type::OCI_LAYER_TAR, &tar);
    let created = OffsetDateTime::now_utc() - time::Duration::days(days_ago);
    let config = serde_json::json!({
        "created": created.format(&time::format_description::well_known::Rfc3339).unwrap(),
        "architecture": "amd64", "os": "linux",
        "config": {"Labels": {"org.opencontainers.image.revision": format!("commit{n}")}},
        "rootfs": {"type": "layers", "diff_ids": [layer.digest.to_string()]},
    });
    let config = put_blob(
        c,
        repo,
        media_type::OCI_CONFIG,
        &serde_json::to_vec(&config).unwrap(),
    );
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": media_type::OCI_MANIFEST,
        "config": config, "layers": [layer],
    });
    let doc = RawDocument::from_value(media_type::OCI_MANIFEST, &manifest);
    c.put_manifest(&repo.with_tag(tag).unwrap(), &doc).unwrap()
}

fn repo(reg: &Registry, name: &str) -> Reference {
    Reference::parse(&format!("{}/{name}", reg.addr())).unwrap()
}

fn skopeo_digest(r: &str) -> String {
    let out = skopeo(&["inspect", "--tls-verify=false", &format!("docker://{r}")]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["Digest"].as_str().unwrap().to_string()
}

fn tag_map(c: &Client, r: &Reference) -> BTreeMap<String, Digest> {
    tags::list(c, r, false, false)
        .unwrap()
        .into_iter()
        .filter_map(|t| Some((t.tag?, t.digest)))
        .collect()
}

#[test]
fn tag_untag_and_list() {
    if !have_registry() {
        eprintln!("skipped: no docker-registry");
        return;
    }
    let reg = Registry::plain();
    let c = client();
    let app = repo(&reg, "team/app");
    let d = push_build(&c, &app, "v1", 1, 2);
    let other = push_build(&c, &app, "other", 2, 1);

    let got = tags::tag(
        &c,
        &app.with_tag("v1").unwrap(),
        &["stable".into(), "v1.0".into()],
    )
    .unwrap();
    assert_eq!(got, d);
    assert_eq!(
        skopeo_digest(&format!("{}:stable", app.name())),
        d.to_string()
    );

    let report = tags::untag(&c, &app.with_tag("stable").unwrap()).unwrap();
    assert_eq!(report.digest, d);
    assert_eq!(report.siblings, ["v1", "v1.0"]);
    let now = tag_map(&c, &app);
    assert_eq!(
        now.keys().map(String::as_str).collect::<Vec<_>>(),
        ["other", "v1", "v1.0"]
    );
    assert_eq!(now["v1"], d);
    assert_eq!(now["other"], other);
    assert_eq!(
        skopeo_digest(&format!("{}:v1.0", app.name())),
        d.to_string()
    );

    // The last tag of an image: the image stays reachable by digest.
    tags::untag(&c, &app.with_tag("v1").unwrap()).unwrap();
    tags::untag(&c, &app.with_tag("v1.0").unwrap()).unwrap();
    assert!(c
        .head_manifest(&app.with_digest(d.clone()))
        .unwrap()
        .is_some());
    assert_eq!(tag_map(&c, &app).len(), 1);

    // Errors change nothing.
    let e = tags::untag(&c, &app.with_tag("missing").unwrap()).unwrap_err();
    assert!(matches!(e, Error::NotFound(_)), "{e}");
    let e = tags::tag(&c, &app.with_tag("missing").unwrap(), &["x".into()]).unwrap_err();
    assert!(matches!(e, Error::NotFound(_)), "{e}");
    let e = tags::untag(&c, &app.with_digest(d.clone())).unwrap_err();
    assert!(matches!(e, Error::Invalid(_)), "{e}");
    assert_eq!(tag_map(&c, &app).len(), 1);

    let details = tags::list(&c, &app, true, false).unwrap();
    assert_eq!(details[0].tag.as_deref(), Some("other"));
    assert!(details[0].created.is_some());
    assert_eq!(
        details[0].labels.as_ref().unwrap()["org.opencontainers.image.revision"],
        "commit2"
    );
}

const KEEP_10_BUILDS: &str = r#"{"rules":[
  {"rulePriority":1,"description":"keep the 10 newest builds",
   "selection":{"tagStatus":"tagged","tagPrefixList":["build-"],"countType":"imageCountMoreThan","countNumber":10},
   "action":{"type":"expire"}},
  {"rulePriority":2,"selection":{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"days","countNumber":365},
   "action":{"type":"expire"}}]}"#;

#[test]
fn prune_thirty_builds() {
    if !have_registry() {
        eprintln!("skipped: no docker-registry");
        return;
    }
    let reg = Registry::plain();
    let c = client();
    let app = repo(&reg, "app");
    // build-N was created 31-N days ago: build-30 is the newest.
    let digests: Vec<Digest> = (1..=30)
        .map(|n| push_build(&c, &app, &format!("build-{n}"), n, 31 - n as i64))
        .collect();
    let old = push_build(&c, &app, "ancient", 99, 400);
    // prod runs build-3; staging ran build-8, now runs build-9; a protected tag on build-4.
    promotion::promote(
        &c,
        &app.with_digest(digests[2].clone()),
        "prod",
        None,
        &promotion::PromoteOptions::default(),
    )
    .unwrap();
    promotion::promote(
        &c,
        &app.with_digest(digests[7].clone()),
        "staging",
        None,
        &promotion::PromoteOptions::default(),
    )
    .unwrap();
    promotion::promote(
        &c,
        &app.with_digest(digests[8].clone()),
        "staging",
        None,
        &promotion::PromoteOptions::default(),
    )
    .unwrap();
    tags::tag(&c, &app.with_tag("build-4").unwrap(), &["keepme".into()]).unwrap();
    // qa ran build-6 and was then removed: its record does not protect build-6.
    promotion::promote(
        &c,
        &app.with_digest(digests[5].clone()),
        "qa",
        None,
        &promotion::PromoteOptions::default(),
    )
    .unwrap();
    tags::untag(&c, &app.with_tag("env-qa").unwrap()).unwrap();

    let policy = Policy::parse(KEEP_10_BUILDS).unwrap();
    let opts = PruneOptions {
        protect_tags: vec!["keepme".into()],
        max_delete: Some(5),
        ..Default::default()
    };
    let plan = prune::plan(&c, &app, &policy, &opts).unwrap();
    let verdict = |d: &Digest| {
        plan.decisions
            .iter()
            .find(|x| x.digest == *d)
            .unwrap()
            .clone()
    };
    // build-1..20 expire except build-3 (env-prod), build-4 (keepme), build-8 (promotion
    // record for live staging); build-9 is env-staging but among the 10 newest? no: it is
    // build-9, so protected by its tag. The 400-day-old image expires by rule 2.
    let mut expected_deletes: Vec<Digest> = (1..=20)
        .filter(|n| ![3, 4, 8, 9].contains(n))
        .map(|n| digests[n - 1].clone())
        .collect();
    expected_deletes.sort();
    let mut planned: Vec<Digest> = plan.deletes().map(|d| d.digest.clone()).collect();
    planned.sort();
    assert_eq!(planned, expected_deletes);
    assert!(verdict(&digests[2]).reason.contains("env-prod"));
    assert!(verdict(&digests[3]).reason.contains("keepme"));
    assert!(
        verdict(&digests[7])
            .reason
            .contains("live environment staging"),
        "{}",
        verdict(&digests[7]).reason
    );
    // No push records here (pushed by a plain client): ordered by their meaningful
    // created times; and a created time never proves a push is old.
    assert!(verdict(&digests[25])
        .reason
        .contains("most recently created"));
    assert!(verdict(&old).reason.contains("rule 2"));
    assert_eq!(verdict(&old).code, hoist_promote::policy::Code::TimeUnknown);
    assert!(plan.other.iter().all(|o| o.reason.contains("referrers")));
    assert!(!plan.other.is_empty());
    assert!(plan.decisions.iter().all(|d| !d.reason.is_empty()));

    // Too many deletes: nothing happens.
    let e = prune::apply(&c, &app, &plan, &opts).unwrap_err();
    assert!(
        matches!(
            e,
            Error::TooManyDeletes {
                planned: 16,
                max: 5
            }
        ),
        "{e}"
    );
    // 30 builds, ancient, env-prod, env-staging, keepme, 4 referrers tags.
    assert_eq!(tag_map(&c, &app).len(), 30 + 1 + 2 + 1 + 4);

    // build-5 gets re-tagged between plan and apply: it must survive.
    tags::tag(&c, &app.with_tag("build-5").unwrap(), &["hotfix".into()]).unwrap();
    let opts = PruneOptions {
        max_delete: Some(20),
        ..opts
    };
    let report = prune::apply(&c, &app, &plan, &opts).unwrap();
    assert_eq!(report.deleted.len(), 15);
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(report.skipped[0].digest, digests[4]);
    assert!(report.skipped[0].reason.contains("hotfix"));

    let left = tag_map(&c, &app);
    for n in 1..=30usize {
        let t = format!("build-{n}");
        let kept = n > 20 || [3, 4, 5, 8, 9].contains(&n);
        assert_eq!(left.contains_key(&t), kept, "{t}");
        let exists = c
            .head_manifest(&app.with_digest(digests[n - 1].clone()))
            .unwrap()
            .is_some();
        assert_eq!(exists, kept, "{t} by digest");
    }
    assert_eq!(left["env-prod"], digests[2]);
    assert_eq!(
        skopeo_digest(&format!("{}:env-prod", app.name())),
        digests[2].to_string()
    );
    assert!(left.contains_key("ancient"), "no push time: kept");
    // The deleted images' promotion records went with them; the live ones stay.
    assert!(!left.contains_key(&format!("sha256-{}", digests[5].hex())));
    assert!(left.contains_key(&format!("sha256-{}", digests[7].hex())));
    assert!(left.contains_key(&format!("sha256-{}", digests[2].hex())));

    // A fresh plan sees build-5's new tag; the policy still selects it (its build-
    // tag is beyond the 10 newest), and it is the only delete left.
    let again = prune::plan(&c, &app, &policy, &opts).unwrap();
    let more: Vec<_> = again.deletes().collect();
    assert_eq!(more.len(), 1, "{more:?}");
    assert_eq!(more[0].digest, digests[4]);
    assert_eq!(more[0].tags, ["build-5", "hotfix"]);
}

#[test]
fn kept_index_protects_its_children() {
    if !have_registry() {
        eprintln!("skipped: no docker-registry");
        return;
    }
    let reg = Registry::plain();
    let c = client();
    let app = repo(&reg, "multi");
    let a = push_build(&c, &app, "child-a", 1, 10);
    let b = push_build(&c, &app, "child-b", 2, 5);
    let lone = push_build(&c, &app, "child-c", 3, 20);
    let size = |d: &Digest| {
        c.head_manifest(&app.with_digest(d.clone()))
            .unwrap()
            .unwrap()
            .size
    };
    let index = serde_json::json!({
        "schemaVersion": 2, "mediaType": media_type::OCI_INDEX,
        "manifests": [
            {"mediaType": media_type::OCI_MANIFEST, "digest": a, "size": size(&a),
             "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": media_type::OCI_MANIFEST, "digest": b, "size": size(&b),
             "platform": {"architecture": "arm64", "os": "linux"}},
        ],
    });
    let idx = c
        .put_manifest(
            &app.with_tag("release-1").unwrap(),
            &RawDocument::from_value(media_type::OCI_INDEX, &index),
        )
        .unwrap();
    let policy = Policy::parse(r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"tagged","tagPrefixList":["child-"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#).unwrap();
    let plan = prune::plan(&c, &app, &policy, &PruneOptions::default()).unwrap();
    let find = |d: &Digest| plan.decisions.iter().find(|x| x.digest == *d).unwrap();
    assert_eq!(find(&idx).verdict, hoist_promote::policy::Verdict::Keep);
    assert!(
        find(&a).reason.contains("referenced by kept index"),
        "{}",
        find(&a).reason
    );
    let deletes: Vec<Digest> = plan.deletes().map(|d| d.digest.clone()).collect();
    assert_eq!(deletes, std::slice::from_ref(&lone));
    prune::apply(&c, &app, &plan, &PruneOptions::default()).unwrap();
    assert!(c.head_manifest(&app.with_digest(a)).unwrap().is_some());
    assert!(c.head_manifest(&app.with_digest(lone)).unwrap().is_none());
    assert_eq!(
        skopeo_digest(&format!("{}:release-1", app.name())),
        idx.to_string()
    );
}

#[test]
fn promote_across_registries_history_and_rollback() {
    if !have_registry() {
        eprintln!("skipped: no docker-registry");
        return;
    }
    let dev_reg = Registry::plain();
    let prod_reg = Registry::plain();
    let c = client();
    let dev = repo(&dev_reg, "team/app");
    let prod = repo(&prod_reg, "release/app");
    let d1 = push_build(&c, &dev, "build-1", 1, 2);
    let d2 = push_build(&c, &dev, "build-2", 2, 1);

    let r = promotion::promote(&c, &dev.with_digest(d1.clone()), "dev", None, &note("ci")).unwrap();
    assert!(!r.copied);
    assert_eq!(r.previous, None);
    let r = promotion::promote(
        &c,
        &dev.with_digest(d1.clone()),
        "prod",
        Some(&prod),
        &note("signed-off"),
    )
    .unwrap();
    assert!(r.copied);
    assert_eq!(r.digest, d1);
    assert_eq!(
        skopeo_digest(&format!("{}:env-prod", prod.name())),
        d1.to_string()
    );
    assert_eq!(
        skopeo_digest(&format!("{}@{d1}", prod.name())),
        d1.to_string()
    );
    // The record is reachable through the referrers tag schema.
    let fallback = format!("sha256-{}", d1.hex());
    assert!(tag_map(&c, &prod).contains_key(&fallback));
    let recs = promotion::records_for(&c, &prod, &d1).unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].env, "prod");
    assert_eq!(recs[0].note.as_deref(), Some("signed-off"));
    assert_eq!(recs[0].source, dev.with_digest(d1.clone()).to_string());

    let r = promotion::promote(
        &c,
        &dev.with_digest(d2.clone()),
        "prod",
        Some(&prod),
        &promotion::PromoteOptions::default(),
    )
    .unwrap();
    assert_eq!(r.previous, Some(d1.clone()));
    let st = promotion::status(&c, &prod).unwrap();
    assert_eq!(st.len(), 1);
    assert_eq!(st[0].env, "prod");
    assert_eq!(st[0].digest, Some(d2.clone()));
    assert_eq!(st[0].commit.as_deref(), Some("commit2"));
    assert!(st[0].promoted.is_some());

    let h = promotion::history(&c, &prod, "prod").unwrap();
    assert_eq!(
        h.iter().map(|r| r.digest.clone()).collect::<Vec<_>>(),
        [d1.clone(), d2.clone()]
    );

    let r = promotion::rollback(&c, &prod, "prod", None).unwrap();
    assert_eq!(r.digest, d1);
    assert_eq!(r.previous, Some(d2.clone()));
    assert_eq!(
        skopeo_digest(&format!("{}:env-prod", prod.name())),
        d1.to_string()
    );
    let h = promotion::history(&c, &prod, "prod").unwrap();
    assert_eq!(h.len(), 3);
    assert_eq!(h[2].kind, promotion::Kind::Rollback);
    // Nothing earlier than d1.
    let e = promotion::rollback(&c, &prod, "prod", None).unwrap_err();
    assert!(matches!(e, Error::Invalid(_)), "{e}");

    // Errors change nothing: a missing digest, a reference without digest.
    let missing = Digest::sha256(b"no such image");
    let e = promotion::promote(
        &c,
        &dev.with_digest(missing),
        "qa",
        Some(&prod),
        &promotion::PromoteOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::NotFound(_)), "{e}");
    let e = promotion::promote(
        &c,
        &dev.with_tag("build-1").unwrap(),
        "qa",
        Some(&prod),
        &promotion::PromoteOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::Invalid(_)), "{e}");
    assert!(!tag_map(&c, &prod).contains_key("env-qa"));

    // A registry that serves bytes not matching the digest: refused, nothing changes.
    let d3 = push_build(&c, &dev, "build-3", 3, 0);
    let stored = dev_reg.blob_data_path(&d3);
    let mut bytes = std::fs::read(&stored).unwrap();
    bytes.push(b' ');
    std::fs::write(&stored, bytes).unwrap();
    let e = promotion::promote(
        &c,
        &dev.with_digest(d3.clone()),
        "qa",
        Some(&prod),
        &promotion::PromoteOptions::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("digest mismatch"), "{e}");
    assert!(!tag_map(&c, &prod).contains_key("env-qa"));
    assert!(c.head_manifest(&prod.with_digest(d3)).unwrap().is_none());
}

/// A registry with deletes disabled (distribution's default).
struct NoDelete {
    child: Child,
    _dir: tempfile::TempDir,
    addr: String,
}

impl Drop for NoDelete {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_no_delete() -> NoDelete {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yml"), "version: 0.1\n").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let child = Command::new(hoist_testutil::REGISTRY_BIN)
        .arg("serve")
        .arg(dir.path().join("config.yml"))
        .env(
            "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY",
            dir.path().join("s"),
        )
        .env("REGISTRY_HTTP_ADDR", &addr)
        .env("REGISTRY_LOG_LEVEL", "error")
        .env("REGISTRY_LOG_ACCESSLOG_DISABLED", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if std::net::TcpStream::connect(&addr).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    NoDelete {
        child,
        _dir: dir,
        addr,
    }
}

#[test]
fn registry_without_delete_support_changes_nothing() {
    if !have_registry() {
        eprintln!("skipped: no docker-registry");
        return;
    }
    let reg = start_no_delete();
    let c = client();
    let app = Reference::parse(&format!("{}/app", reg.addr)).unwrap();
    let d = push_build(&c, &app, "a", 1, 1);
    tags::tag(&c, &app.with_tag("a").unwrap(), &["b".into()]).unwrap();
    let e = tags::untag(&c, &app.with_tag("a").unwrap()).unwrap_err();
    assert!(matches!(e, Error::DeleteUnsupported { .. }), "{e}");
    assert!(e.to_string().contains("nothing was changed"));
    let left = tag_map(&c, &app);
    assert_eq!(left.len(), 2);
    assert!(left.values().all(|v| *v == d));

    let policy = Policy::parse(
        r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
    )
    .unwrap();
    push_build(&c, &app, "c", 2, 0);
    let plan = prune::plan(&c, &app, &policy, &PruneOptions::default()).unwrap();
    assert_eq!(plan.deletes().count(), 1);
    let e = prune::apply(&c, &app, &plan, &PruneOptions::default()).unwrap_err();
    assert!(matches!(e, Error::DeleteUnsupported { .. }), "{e}");
    assert_eq!(tag_map(&c, &app).len(), 3);
}
