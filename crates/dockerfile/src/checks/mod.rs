//! BuildKit's build checks (`docker build --check`): the same rules, names, messages and
//! documentation URLs, as a pure function of the parsed Dockerfile and a few facts only a
//! build knows.
//!
//! - [`check`]`(dockerfile, file, &`[`Facts`]`)` runs every rule and returns a [`Report`]:
//!   the [`Warning`]s (rule, message, line) and whether `# check=error=true` makes them fail
//!   the build ([`Report::failure`]).
//! - [`Config`] is the `# check=skip=A,B;error=true;experimental=all` directive (or the
//!   `BUILDKIT_DOCKERFILE_CHECK` build arg, which wins, as in BuildKit).
//! - [`Facts`] carries what the Dockerfile alone does not say: build args, the base images'
//!   environment and shell (for `UndefinedVar` and `JSONArgsRecommended`), and the
//!   context's `.dockerignore` (for `CopyIgnoredFile`). What is not given is not guessed:
//!   `UndefinedVar` skips stages whose base image environment is unknown.
//!
//! ```
//! use hoist_dockerfile::{checks, parse};
//! let df = parse("FROM alpine as Build\nCMD echo hi\n", "Dockerfile").unwrap();
//! let report = checks::check(&df, "Dockerfile", &checks::Facts::default()).unwrap();
//! let names: Vec<&str> = report.warnings.iter().map(|w| w.rule.name).collect();
//! assert_eq!(names, ["StageNameCasing", "FromAsCasing", "JSONArgsRecommended"]);
//! assert_eq!(report.warnings[0].to_string(),
//!     "Dockerfile:1: StageNameCasing: Stage name 'Build' should be lowercase \
//!      (https://docs.docker.com/go/dockerfile/rule/stage-name-casing/)");
//! ```
//!
//! Not checked (yet): `NoEmptyContinuation` and `InvalidDefinitionDescription` (the parsed
//! model keeps neither empty continuation lines nor comments), `# check=` comments in front
//! of single instructions, and `InvalidBaseImagePlatform` (the engine reports platform
//! mismatches itself).

mod expand;
pub mod rules;
mod syntax;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::ignore::Matcher;
use crate::Dockerfile;
pub use rules::Rule;

/// What the checks need to know beyond the Dockerfile.
#[derive(Debug, Clone, Default)]
pub struct Facts<'a> {
    /// The build args (`--build-arg`).
    pub build_args: BTreeMap<String, String>,
    /// Per stage index: the base image's config, when the base is an image (not `scratch`
    /// or another stage) and it is known. Stages built on other stages inherit theirs.
    pub base_images: BTreeMap<usize, BaseImage>,
    /// The context's `.dockerignore`, when the context is known.
    pub ignore: Option<&'a Matcher>,
}

/// The parts of a base image's config the checks use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BaseImage {
    /// `Env` (`K=V`).
    pub env: Vec<String>,
    /// Whether `Shell` is set.
    pub shell: bool,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// The rule.
    #[serde(serialize_with = "rule_name")]
    pub rule: &'static Rule,
    /// BuildKit's message for this finding.
    pub message: String,
    /// The Dockerfile, as named to [`check`].
    pub file: String,
    /// 1-based line of the instruction.
    pub line: usize,
}

fn rule_name<S: serde::Serializer>(r: &&'static Rule, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(3))?;
    m.serialize_entry("name", r.name)?;
    m.serialize_entry("description", r.description)?;
    m.serialize_entry("url", r.url)?;
    m.end()
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: {}: {} ({})",
            self.file, self.line, self.rule.name, self.message, self.rule.url
        )
    }
}

/// The `check` directive's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// `skip=all`.
    pub skip_all: bool,
    /// `skip=A,B`.
    pub skip: BTreeSet<String>,
    /// `error=true`: any warning fails the build.
    pub error: bool,
    /// `experimental=all`.
    pub experimental_all: bool,
    /// `experimental=A,B`.
    pub experimental: BTreeSet<String>,
}

impl Config {
    /// Parse `skip=…;error=…;experimental=…` (BuildKit `ParseLintOptions`; BuildKit's
    /// error texts).
    pub fn parse(s: &str) -> Result<Config, String> {
        let mut c = Config::default();
        let s = s.trim();
        if s.is_empty() {
            return Ok(c);
        }
        let list = |v: &str| -> BTreeSet<String> {
            v.split(',')
                .map(|r| r.trim().to_string())
                .filter(|r| !r.is_empty())
                .collect()
        };
        for part in s.splitn(3, ';') {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("invalid check option {part:?}"))?;
            let v = v.trim();
            match k.trim() {
                "skip" if v == "all" => c.skip_all = true,
                "skip" => c.skip = list(v),
                "experimental" if v == "all" => c.experimental_all = true,
                "experimental" => c.experimental = list(v),
                "error" => {
                    c.error = match v {
                        "1" | "t" | "T" | "true" | "TRUE" | "True" => true,
                        "0" | "f" | "F" | "false" | "FALSE" | "False" => false,
                        _ => return Err(format!("failed to parse check option {part:?}")),
                    }
                }
                other => return Err(format!("invalid check option {other:?}")),
            }
        }
        Ok(c)
    }

    /// The settings for a build: the `BUILDKIT_DOCKERFILE_CHECK` build arg when given, else
    /// the Dockerfile's `# check=` directive (only its first word, as BuildKit reads it).
    pub fn for_build(
        df: &Dockerfile,
        build_args: &BTreeMap<String, String>,
    ) -> Result<Config, String> {
        let raw = match build_args.get("BUILDKIT_DOCKERFILE_CHECK") {
            Some(v) => v.clone(),
            None => df
                .directives
                .check
                .as_deref()
                .map(|d| d.split(' ').next().unwrap_or_default().to_string())
                .unwrap_or_default(),
        };
        Config::parse(&raw).map_err(|e| format!("failed to parse check options: {e}"))
    }

    fn enabled(&self, rule: &Rule) -> bool {
        if rule.experimental {
            self.experimental_all || self.experimental.contains(rule.name)
        } else {
            !(self.skip_all || self.skip.contains(rule.name))
        }
    }
}

/// What [`check`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The findings, in Dockerfile order.
    pub warnings: Vec<Warning>,
    /// `# check=error=true`: the findings fail the build.
    pub error: bool,
}

impl Report {
    /// With `error=true` and findings, BuildKit's error: `lint violation found for rules:
    /// A, B` (each rule once).
    pub fn failure(&self) -> Option<String> {
        if !self.error || self.warnings.is_empty() {
            return None;
        }
        let mut names: Vec<&str> = Vec::new();
        for w in &self.warnings {
            if !names.contains(&w.rule.name) {
                names.push(w.rule.name);
            }
        }
        Some(format!(
            "lint violation found for rules: {}",
            names.join(", ")
        ))
    }
}

/// Collects warnings for enabled rules.
pub(crate) struct Sink<'c> {
    config: &'c Config,
    file: String,
    warnings: Vec<Warning>,
}

impl Sink<'_> {
    pub(crate) fn warn(&mut self, rule: &'static Rule, line: usize, message: String) {
        if self.config.enabled(rule) {
            self.warnings.push(Warning {
                rule,
                message,
                file: self.file.clone(),
                line,
            });
        }
    }
}

/// Run every check on `df` (named `file` in warnings). Fails only when the `check`
/// directive (or `BUILDKIT_DOCKERFILE_CHECK`) itself is malformed.
pub fn check(df: &Dockerfile, file: &str, facts: &Facts) -> Result<Report, String> {
    let config = Config::for_build(df, &facts.build_args)?;
    let mut sink = Sink {
        config: &config,
        file: file.to_string(),
        warnings: Vec::new(),
    };
    syntax::check(df, facts, &mut sink);
    expand::check(df, facts, &mut sink);
    let mut warnings = sink.warnings;
    // Dockerfile order; rules keep their relative order on one line.
    warnings.sort_by_key(|w| w.line);
    Ok(Report {
        warnings,
        error: config.error,
    })
}

/// BuildKit's `suggest.Search`: the closest option within an edit distance below 3, none
/// on an exact match.
pub(crate) fn suggest<'a>(
    value: &str,
    options: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let mut best: Option<(usize, &str)> = None;
    for o in options {
        if o == value {
            return None;
        }
        let d = crate::edit_distance(value, o);
        if d < best.map_or(3, |b| b.0) {
            best = Some((d, o));
        }
    }
    best.map(|b| b.1.to_string())
}

#[cfg(test)]
mod tests;
