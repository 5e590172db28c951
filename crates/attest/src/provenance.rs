//! SLSA provenance v1: what an image was built from, and how.
//!
//! ```text
//! predicate
//!   buildDefinition
//!     buildType             https://hoist.invalid/build/dockerfile/v1
//!     externalParameters    configSource {uri, digest{sha1}, path}  (git checkout)
//!                           request {frontend, dockerfile{path, digest}, args, target, platform}
//!     internalParameters    builderPlatform
//!     resolvedDependencies  every base image (pkg:docker/…@digest), the git commit
//!   runDetails
//!     builder               id, version{hoist}
//!     metadata              invocationId, startedOn, finishedOn, completeness, reproducible
//!     byproducts            (mode=max) every stage's steps as written
//! ```
//!
//! Nothing secret gets in: `--secret` values never (only their ids, in mode=max); build
//! args whose name looks like a secret (BuildKit's `SecretsUsedInArgOrEnv` words and
//! more), whose value looks like a credential, or whose value holds a secret's value are
//! left out entirely; URL credentials are stripped. Times are the build's epoch
//! (`SOURCE_DATE_EPOCH`, else 0), as every other time in a hoist image, so two builds
//! of the same inputs give the same bytes.

use std::collections::BTreeMap;

use hoist_image::{Digest, Platform};
use serde_json::{json, Value};

use crate::options::ProvenanceMode;

/// The build type hoist's provenance declares.
pub const BUILD_TYPE: &str = "https://hoist.invalid/build/dockerfile/v1";

/// The git checkout the context lives in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitSource {
    /// The `origin` URL (credentials are stripped here too).
    pub url: Option<String>,
    /// The commit of `HEAD`.
    pub commit: String,
    /// Whether the work tree had uncommitted changes.
    pub dirty: bool,
}

/// A base image a stage started from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct BaseImage {
    /// The reference as resolved (`docker.io/library/debian:12`, `oci:dir:tag`).
    pub reference: String,
    /// Its manifest digest.
    pub digest: Digest,
    /// The platform it was resolved for.
    pub platform: String,
}

/// One step of a stage, as written in the Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The stage's name (or its index).
    pub stage: String,
    /// The first line of the instruction.
    pub line: usize,
    /// The instruction as written (before build args are expanded).
    pub text: String,
}

/// Everything provenance records.
#[derive(Debug, Clone)]
pub struct ProvenanceInput {
    /// min or max.
    pub mode: ProvenanceMode,
    /// The Dockerfile's name (relative to the context when inside it).
    pub dockerfile: String,
    /// The sha256 of the Dockerfile's bytes.
    pub dockerfile_digest: Digest,
    /// The checkout, when the context is in one.
    pub git: Option<GitSource>,
    /// Base images by digest.
    pub bases: Vec<BaseImage>,
    /// `--build-arg` values (redacted here).
    pub build_args: BTreeMap<String, String>,
    /// `--secret` ids (recorded in mode=max).
    pub secret_ids: Vec<String>,
    /// `--secret` values: never recorded, and args containing them are dropped.
    pub secret_values: Vec<Vec<u8>>,
    /// `--target`.
    pub target: Option<String>,
    /// The image's platform.
    pub platform: Platform,
    /// hoist's version.
    pub builder_version: String,
    /// Start and finish, seconds since the epoch.
    pub started: i64,
    /// See `started`.
    pub finished: i64,
    /// Every step (used in mode=max).
    pub steps: Vec<Step>,
    /// The `--build-context` names and what they point at (directories: names only).
    pub named_contexts: BTreeMap<String, String>,
}

/// Whether a build-arg name looks like it holds a secret.
pub fn secret_looking_name(name: &str) -> bool {
    const WORDS: &[&str] = &[
        "apikey",
        "auth",
        "credential",
        "credentials",
        "key",
        "password",
        "pword",
        "passwd",
        "pass",
        "pwd",
        "secret",
        "token",
        "private",
        "cert",
        "signature",
        "session",
        "cookie",
    ];
    const SUBSTRINGS: &[&str] = &[
        "password",
        "passwd",
        "secret",
        "token",
        "apikey",
        "api_key",
        "credential",
        "private_key",
        "auth",
    ];
    let lower = name.to_ascii_lowercase();
    lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|w| WORDS.contains(&w))
        || SUBSTRINGS.iter().any(|s| lower.contains(s))
}

/// Whether a value looks like a credential (a token format, a key, URL credentials).
pub fn secret_looking_value(value: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "ghp_",
        "gho_",
        "ghu_",
        "ghs_",
        "ghr_",
        "github_pat_",
        "glpat-",
        "xoxb-",
        "xoxp-",
        "xoxa-",
        "AKIA",
        "ASIA",
        "sk-",
        "sk_live_",
        "rk_live_",
        "npm_",
        "pypi-",
        "hf_",
        "AIza",
        "ya29.",
    ];
    let v = value.trim();
    PREFIXES
        .iter()
        .any(|p| v.starts_with(p) && v.len() >= p.len() + 8)
        || v.contains("-----BEGIN")
        || v.starts_with("eyJ") && v.matches('.').count() == 2 && v.len() > 30
        || url_has_credentials(v)
}

fn url_has_credentials(v: &str) -> bool {
    let Some((_, rest)) = v.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority.contains('@')
}

/// `url` without `user:password@`.
pub fn strip_credentials(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://{host}{tail}"),
        None => url.to_string(),
    }
}

/// The build args provenance may record: secret-looking ones left out.
pub fn recordable_args(
    args: &BTreeMap<String, String>,
    secret_values: &[Vec<u8>],
) -> BTreeMap<String, String> {
    args.iter()
        .filter(|(k, v)| {
            !secret_looking_name(k)
                && !secret_looking_value(v)
                && !secret_values.iter().any(|s| {
                    !s.is_empty() && v.as_bytes().windows(s.len()).any(|w| w == s.as_slice())
                })
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn sha(d: &Digest) -> Value {
    json!({ d.algorithm().as_str(): d.hex() })
}

/// The provenance predicate.
pub fn predicate(p: &ProvenanceInput) -> Value {
    let args = recordable_args(&p.build_args, &p.secret_values);
    let mut request = json!({
        "frontend": "dockerfile.v0",
        "dockerfile": {"path": p.dockerfile, "digest": sha(&p.dockerfile_digest)},
        "args": args,
        "platform": p.platform.to_string(),
    });
    if let Some(t) = &p.target {
        request["target"] = json!(t);
    }
    if !p.named_contexts.is_empty() {
        request["contexts"] = json!(p.named_contexts);
    }
    let mut external = json!({ "request": request });
    let mut deps: Vec<Value> = Vec::new();
    let mut bases = p.bases.clone();
    bases.sort();
    bases.dedup();
    for b in &bases {
        deps.push(json!({
            "uri": base_uri(&b.reference, &b.platform),
            "digest": sha(&b.digest),
        }));
    }
    if let Some(g) = &p.git {
        let url = g.url.as_deref().map(strip_credentials);
        let mut source = json!({
            "digest": {"sha1": g.commit},
            "path": p.dockerfile,
        });
        if let Some(u) = &url {
            source["uri"] = json!(u);
        }
        if g.dirty {
            source["dirty"] = json!(true);
        }
        external["configSource"] = source;
        let mut dep = json!({ "digest": {"sha1": g.commit} });
        if let Some(u) = &url {
            dep["uri"] = json!(format!("{u}#{}", g.commit));
        }
        deps.push(dep);
    }
    let time = |t: i64| hoist_image::mutate::rfc3339(t);
    let invocation = hoist_image::Digest::sha256(
        format!("{}|{}|{}", p.dockerfile_digest, p.platform, p.started).as_bytes(),
    );
    let mut metadata = json!({
        "invocationId": invocation.hex(),
        "startedOn": time(p.started),
        "finishedOn": time(p.finished),
        "completeness": {"parameters": true, "environment": true, "materials": p.git.is_some() || !bases.is_empty()},
        "reproducible": true,
    });
    metadata["hoist:mode"] = json!(match p.mode {
        ProvenanceMode::Min => "min",
        ProvenanceMode::Max => "max",
    });
    let mut run = json!({
        "builder": {
            "id": "https://hoist.invalid/builder",
            "version": {"hoist": p.builder_version},
        },
        "metadata": metadata,
    });
    if p.mode == ProvenanceMode::Max {
        let steps: Vec<Value> = p
            .steps
            .iter()
            .map(|s| json!({"stage": s.stage, "line": s.line, "instruction": s.text}))
            .collect();
        run["byproducts"] = json!([{
            "name": "steps",
            "mediaType": "application/json",
            "content": steps,
        }]);
        if !p.secret_ids.is_empty() {
            let mut ids = p.secret_ids.clone();
            ids.sort();
            external["request"]["secrets"] =
                json!(ids.iter().map(|i| json!({"id": i})).collect::<Vec<_>>());
        }
    }
    json!({
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": external,
            "internalParameters": {"builderPlatform": Platform::host().to_string()},
            "resolvedDependencies": deps,
        },
        "runDetails": run,
    })
}

/// `pkg:docker/NAME@TAG?platform=…` for a registry reference; the reference itself for
/// local transports (`oci:DIR`, archives), credentials stripped.
fn base_uri(reference: &str, platform: &str) -> String {
    let r = reference.strip_prefix("docker://").unwrap_or(reference);
    if r.starts_with("oci:") || r.starts_with("oci-archive:") || r.starts_with("docker-archive:") {
        return strip_credentials(r);
    }
    let (name, version) = match r.split_once('@') {
        Some((n, _)) => (n, None),
        None => (r, None::<&str>),
    };
    let last_slash = name.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (name, tag) = match name[last_slash..].rfind(':') {
        Some(i) => (&name[..last_slash + i], &name[last_slash + i + 1..]),
        None => (name, version.unwrap_or("latest")),
    };
    format!(
        "pkg:docker/{name}@{tag}?platform={}",
        crate::sbom::purl::encode(platform)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> ProvenanceInput {
        ProvenanceInput {
            mode: ProvenanceMode::Min,
            dockerfile: "Dockerfile".into(),
            dockerfile_digest: Digest::sha256(b"FROM scratch\n"),
            git: Some(GitSource {
                url: Some("https://user:hunter2@git.example/app.git".into()),
                commit: "0123456789abcdef0123456789abcdef01234567".into(),
                dirty: false,
            }),
            bases: vec![BaseImage {
                reference: "localhost:5000/base:1".into(),
                digest: Digest::sha256(b"base"),
                platform: "linux/amd64".into(),
            }],
            build_args: BTreeMap::from([
                ("VERSION".to_string(), "1.2".to_string()),
                ("NPM_TOKEN".to_string(), "abc".to_string()),
                ("DB_PASSWORD".to_string(), "pw".to_string()),
                ("GH".to_string(), "ghp_0123456789abcdef0123".to_string()),
                (
                    "MIRROR".to_string(),
                    "https://bob:pw1@mirror.example/".to_string(),
                ),
                ("NOTE".to_string(), "has topsecretvalue inside".to_string()),
            ]),
            secret_ids: vec!["npmrc".into()],
            secret_values: vec![b"topsecretvalue".to_vec()],
            target: None,
            platform: Platform::parse("linux/amd64").unwrap(),
            builder_version: "0.1.0".into(),
            started: 0,
            finished: 0,
            steps: vec![Step {
                stage: "0".into(),
                line: 1,
                text: "RUN make".into(),
            }],
            named_contexts: BTreeMap::new(),
        }
    }

    #[test]
    fn secrets_never_appear() {
        let v = predicate(&input());
        let s = serde_json::to_string(&v).unwrap();
        for secret in [
            "abc\"",
            "NPM_TOKEN",
            "pw\"",
            "DB_PASSWORD",
            "ghp_",
            "pw1",
            "hunter2",
            "topsecretvalue",
        ] {
            assert!(!s.contains(secret), "{secret} in {s}");
        }
        assert_eq!(
            v["buildDefinition"]["externalParameters"]["request"]["args"]["VERSION"],
            "1.2"
        );
        assert_eq!(
            v["buildDefinition"]["externalParameters"]["configSource"]["uri"],
            "https://git.example/app.git"
        );
        assert!(v["runDetails"].get("byproducts").is_none());
    }

    #[test]
    fn max_adds_steps_and_secret_ids_and_bytes_are_stable() {
        let mut i = input();
        i.mode = ProvenanceMode::Max;
        let a = serde_json::to_vec(&predicate(&i)).unwrap();
        let b = serde_json::to_vec(&predicate(&i)).unwrap();
        assert_eq!(a, b);
        let v = predicate(&i);
        assert_eq!(
            v["runDetails"]["byproducts"][0]["content"][0]["instruction"],
            "RUN make"
        );
        assert_eq!(
            v["buildDefinition"]["externalParameters"]["request"]["secrets"][0]["id"],
            "npmrc"
        );
        let deps = v["buildDefinition"]["resolvedDependencies"]
            .as_array()
            .unwrap();
        assert_eq!(
            deps[0]["uri"],
            "pkg:docker/localhost:5000/base@1?platform=linux%2Famd64"
        );
        assert_eq!(deps[0]["digest"]["sha256"], Digest::sha256(b"base").hex());
    }

    #[test]
    fn names_and_values() {
        for n in [
            "GITHUB_TOKEN",
            "api_key",
            "PASSWORD",
            "aws-secret",
            "NPMAUTH",
            "my_private_key",
        ] {
            assert!(secret_looking_name(n), "{n}");
        }
        for n in ["VERSION", "BASE_IMAGE", "GO_VERSION", "TARGETARCH"] {
            assert!(!secret_looking_name(n), "{n}");
        }
        assert!(secret_looking_value("AKIAIOSFODNN7EXAMPLE"));
        assert!(!secret_looking_value("1.2.3"));
        assert_eq!(strip_credentials("https://a:b@h/x"), "https://h/x");
        assert_eq!(strip_credentials("https://h/x@y"), "https://h/x@y");
    }
}
