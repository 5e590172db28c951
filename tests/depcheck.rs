//! Dependencies between hoist's crates point one way (as go-containerregistry's
//! `cmd/crane/depcheck_test.go` enforces for its packages): the Dockerfile crate is
//! pure, the image crate knows no registry, the engine does not know the CLI, and so on.
//! A new crate must be added to the table, with the crates it may use.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// Each crate and the hoist crates it may depend on (normal and build dependencies;
/// dev-dependencies may also use hoist-testutil).
const ALLOWED: &[(&str, &[&str])] = &[
    ("hoist-dockerfile", &[]),
    // App detection for builds without a Dockerfile: pure planning, no hoist crate.
    ("hoist-auto", &[]),
    ("hoist-image", &["hoist-dockerfile"]),
    ("hoist-sandbox", &["hoist-image"]),
    // The pull cache is part of hoist's cache directory (refs/, blobs, last uses).
    (
        "hoist-registry",
        &["hoist-image", "hoist-dockerfile", "hoist-cache"],
    ),
    ("hoist-testutil", &["hoist-image"]),
    // The fuzz targets' bodies: the parsers and readers they feed.
    ("hoist-fuzz", &["hoist-dockerfile", "hoist-image"]),
    (
        "hoist-engine",
        &[
            "hoist-dockerfile",
            "hoist-image",
            "hoist-registry",
            "hoist-sandbox",
            "hoist-cache",
            "hoist-attest",
        ],
    ),
    // No sandbox: removing trees of subordinate ids is injected (`TreeRemover`).
    ("hoist-cache", &["hoist-image"]),
    ("hoist-promote", &["hoist-image", "hoist-registry"]),
    // Attestations: in-toto statements, provenance, SBOM scans of any image source.
    ("hoist-attest", &["hoist-image"]),
    // Signatures on registries and the supply-chain gates of promote.
    (
        "hoist-sign",
        &[
            "hoist-image",
            "hoist-registry",
            "hoist-promote",
            "hoist-attest",
        ],
    ),
    (
        "hoist-task",
        &[
            "hoist-dockerfile",
            "hoist-image",
            "hoist-registry",
            "hoist-engine",
            "hoist-cache",
        ],
    ),
];

#[test]
fn crate_dependencies_point_one_way() {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let allowed: BTreeMap<&str, BTreeSet<&str>> = ALLOWED
        .iter()
        .map(|(k, v)| (*k, v.iter().copied().collect()))
        .collect();
    let mut problems = Vec::new();
    let mut seen = 0;
    for p in meta["packages"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        if name == "hoist" || !name.starts_with("hoist") {
            continue; // the binary may use every crate
        }
        seen += 1;
        let Some(ok) = allowed.get(name) else {
            problems.push(format!(
                "{name} is not in the dependency table of tests/depcheck.rs"
            ));
            continue;
        };
        for d in p["dependencies"].as_array().unwrap() {
            let dep = d["name"].as_str().unwrap();
            if !dep.starts_with("hoist") {
                continue;
            }
            let dev = d["kind"].as_str() == Some("dev");
            if dev && dep == "hoist-testutil" {
                continue;
            }
            if !ok.contains(dep) {
                problems.push(format!("{name} must not depend on {dep}"));
            }
        }
    }
    assert!(seen >= 8, "only {seen} hoist crates found");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
