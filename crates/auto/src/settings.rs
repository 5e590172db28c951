//! Base images and set-up commands per kind: defaults, `hoist.toml`, `--base-image`.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::{Error, Facts, Kind, Result};

/// How plans are made: a forced kind, base images and set-up commands by key.
///
/// Keys are a kind's name (`static`, `node`, `python`, `go`, `rust`, `binary`: the
/// image the app runs in, or builds in for Go and Rust) and `go-runtime` /
/// `rust-runtime` (the final stage of those two).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Use this kind instead of detecting one.
    #[serde(default)]
    pub kind: Option<Kind>,
    /// Base image by key (see above).
    #[serde(default)]
    pub base: BTreeMap<String, String>,
    /// A shell command run first in the stage of that key (e.g. `apt-get install …`
    /// when the base lacks the toolchain).
    #[serde(default)]
    pub setup: BTreeMap<String, String>,
}

/// The official images used when nothing else is said.
pub const DEFAULT_BASES: &[(&str, &str)] = &[
    ("static", "busybox:stable"),
    ("node", "node:22-slim"),
    ("python", "python:3.12-slim"),
    ("go", "golang:1.23"),
    ("go-runtime", "gcr.io/distroless/static-debian12:nonroot"),
    ("rust", "rust:1"),
    ("rust-runtime", "debian:bookworm-slim"),
    ("binary", "debian:bookworm-slim"),
];

const KEYS: &[&str] = &[
    "static",
    "node",
    "python",
    "go",
    "go-runtime",
    "rust",
    "rust-runtime",
    "binary",
];

impl Settings {
    /// The settings of an app: its `hoist.toml` (if any), then `overrides`
    /// (`--base-image KEY=REF` values) on top.
    pub fn for_app(facts: &Facts, overrides: &[String]) -> Result<Settings> {
        let mut s = match facts.contents.get("hoist.toml") {
            Some(t) => toml::from_str::<Settings>(t)
                .map_err(|e| Error::Invalid(format!("{}/hoist.toml: {e}", facts.dir)))?,
            None => Settings::default(),
        };
        for k in s.base.keys().chain(s.setup.keys()) {
            check_key(k, "hoist.toml")?;
        }
        for o in overrides {
            let (k, v) = o
                .split_once('=')
                .filter(|(k, v)| !k.is_empty() && !v.is_empty())
                .ok_or_else(|| Error::Invalid(format!("--base-image {o:?}: expected KIND=REF")))?;
            check_key(k, "--base-image")?;
            s.base.insert(k.to_string(), v.to_string());
        }
        Ok(s)
    }

    /// The base for `key` and where it came from (for the plan's comments).
    pub fn base(&self, key: &str) -> (String, &'static str) {
        match self.base.get(key) {
            Some(b) => (b.clone(), "configured"),
            None => (
                DEFAULT_BASES
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| v.to_string())
                    .unwrap_or_default(),
                "default",
            ),
        }
    }

    /// The set-up command for `key`, if any.
    pub fn setup(&self, key: &str) -> Option<&str> {
        self.setup.get(key).map(String::as_str)
    }
}

fn check_key(k: &str, what: &str) -> Result<()> {
    if KEYS.contains(&k) {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{what}: unknown kind {k:?} (known: {})",
            KEYS.join(", ")
        )))
    }
}
