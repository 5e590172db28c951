//! Provenance from a git checkout: which commit an image was built from.
//!
//! In a git work tree, `hoist build` records the standard OCI labels
//! `org.opencontainers.image.revision` (the commit), `org.opencontainers.image.source` (the
//! `origin` remote, credentials stripped) and `org.opencontainers.image.created` (the commit
//! time, so the label is as reproducible as the rest of the image), unless the user set them.
//! Tags may use templates (the table is in docs/lifecycle.md):
//!
//! | template          | expands to                                                     |
//! |-------------------|----------------------------------------------------------------|
//! | `{git-sha}`       | full commit of `HEAD` (+`-dirty`)                              |
//! | `{git-short-sha}` | first 7 characters of it (+`-dirty`)                           |
//! | `{git-tag}`       | the tag pointing exactly at `HEAD` (+`-dirty`); error if none  |
//! | `{git-describe}`  | `git describe --tags --always` (+`-dirty`)                     |
//! | `{git-branch}`    | branch, `/` made `-`; error on a detached `HEAD`               |
//! | `{date}`          | `YYYYMMDD` of `SOURCE_DATE_EPOCH`, else of the commit time     |
//! | `{env:NAME}`      | the environment variable `NAME` (error if unset or empty)      |
//!
//! A checkout with uncommitted changes (tracked or untracked, not ignored) builds a
//! different image than its commit, so the git templates never expand silently
//! there: they get `-dirty` ([`DirtyTags::Suffix`], as `git describe --dirty`) or the
//! build is refused ([`DirtyTags::Refuse`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::error::{Error, Result};

/// What git says about the checkout a context lives in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitInfo {
    /// Full commit hash of `HEAD`.
    pub sha: String,
    /// Branch name (empty on a detached `HEAD`).
    pub branch: String,
    /// `origin` URL without credentials, if any.
    pub source: Option<String>,
    /// Commit time (seconds since the epoch).
    pub commit_time: i64,
    /// Whether the work tree has uncommitted changes (tracked or untracked files).
    pub dirty: bool,
    /// The tag pointing exactly at `HEAD`, if any.
    pub exact_tag: Option<String>,
    /// `git describe --tags --always` (without `-dirty`).
    pub describe: Option<String>,
}

/// What git tag templates do in a checkout with uncommitted changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DirtyTags {
    /// Append `-dirty` (the default).
    #[default]
    Suffix,
    /// Refuse to build.
    Refuse,
}

impl std::str::FromStr for DirtyTags {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "suffix" => Ok(DirtyTags::Suffix),
            "refuse" => Ok(DirtyTags::Refuse),
            _ => Err(format!("{s:?}: expected suffix or refuse")),
        }
    }
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Remove `user:password@` from a URL.
fn strip_credentials(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((_, host)) = rest.split_once('@') {
            return format!("{scheme}://{host}");
        }
    }
    url.to_string()
}

/// Git facts for `dir`, or `None` when it is not in a git work tree (or git is missing).
pub fn git_info(dir: &Path) -> Option<GitInfo> {
    let sha = git(dir, &["rev-parse", "--verify", "HEAD"])?;
    if sha.len() < 40 {
        return None;
    }
    let branch = git(dir, &["symbolic-ref", "--short", "-q", "HEAD"]).unwrap_or_default();
    let source = git(dir, &["config", "--get", "remote.origin.url"])
        .filter(|u| !u.is_empty())
        .map(|u| strip_credentials(&u));
    let commit_time = git(dir, &["log", "-1", "--format=%ct", "HEAD"])
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let dirty = git(dir, &["status", "--porcelain"]).is_none_or(|s| !s.is_empty());
    let exact_tag =
        git(dir, &["describe", "--tags", "--exact-match", "HEAD"]).filter(|t| !t.is_empty());
    let describe = git(dir, &["describe", "--tags", "--always", "HEAD"]).filter(|t| !t.is_empty());
    Some(GitInfo {
        sha,
        branch,
        source,
        commit_time,
        dirty,
        exact_tag,
        describe,
    })
}

/// The OCI labels for `info` (to add where the user did not set them).
pub fn labels(info: &GitInfo) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert("org.opencontainers.image.revision".into(), info.sha.clone());
    if let Some(s) = &info.source {
        m.insert("org.opencontainers.image.source".into(), s.clone());
    }
    m.insert(
        "org.opencontainers.image.created".into(),
        crate::engine::rfc3339(info.commit_time),
    );
    m
}

/// Expand the tag templates (see the module docs) in `tag`, with [`DirtyTags::Suffix`]
/// and the process environment.
pub fn expand_tag(tag: &str, info: Option<&GitInfo>, epoch: Option<i64>) -> Result<String> {
    expand_tag_with(tag, info, epoch, DirtyTags::Suffix, &|k| {
        std::env::var(k).ok()
    })
}

fn sanitize(v: &str) -> String {
    v.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Expand the tag templates (see the module docs) in `tag`: `dirty` says what git
/// templates do in a checkout with uncommitted changes, `env` reads `{env:NAME}`.
pub fn expand_tag_with(
    tag: &str,
    info: Option<&GitInfo>,
    epoch: Option<i64>,
    dirty: DirtyTags,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String> {
    if !tag.contains('{') {
        return Ok(tag.to_string());
    }
    let need_git = |what: &str| {
        info.ok_or_else(|| {
            Error::Invalid(format!(
                "-t {tag}: {{{what}}} needs the build context to be in a git checkout"
            ))
        })
    };
    // The commit-naming templates, honest about uncommitted changes.
    let committed = |what: &str, value: &str| -> Result<String> {
        let i = need_git(what)?;
        if !i.dirty {
            return Ok(value.to_string());
        }
        match dirty {
            DirtyTags::Suffix => Ok(format!("{value}-dirty")),
            DirtyTags::Refuse => Err(Error::Invalid(format!(
                "-t {tag}: {{{what}}} in a checkout with uncommitted changes would name an \
                 image that is not that commit (commit or stash them, or use \
                 --dirty-tags suffix)"
            ))),
        }
    };
    let mut out = tag.to_string();
    if out.contains("{git-sha}") {
        let v = committed("git-sha", &need_git("git-sha")?.sha)?;
        out = out.replace("{git-sha}", &v);
    }
    if out.contains("{git-short-sha}") {
        let sha = &need_git("git-short-sha")?.sha;
        let v = committed("git-short-sha", &sha[..7.min(sha.len())])?;
        out = out.replace("{git-short-sha}", &v);
    }
    if out.contains("{git-tag}") {
        let t = need_git("git-tag")?.exact_tag.clone().ok_or_else(|| {
            Error::Invalid(format!(
                "-t {tag}: {{git-tag}}: HEAD has no tag pointing exactly at it"
            ))
        })?;
        let v = committed("git-tag", &sanitize(&t))?;
        out = out.replace("{git-tag}", &v);
    }
    if out.contains("{git-describe}") {
        let i = need_git("git-describe")?;
        let d = i
            .describe
            .clone()
            .unwrap_or_else(|| i.sha[..7.min(i.sha.len())].to_string());
        let v = committed("git-describe", &sanitize(&d))?;
        out = out.replace("{git-describe}", &v);
    }
    if out.contains("{git-branch}") {
        let b = &need_git("git-branch")?.branch;
        if b.is_empty() {
            return Err(Error::Invalid(format!(
                "-t {tag}: {{git-branch}} on a detached HEAD"
            )));
        }
        out = out.replace("{git-branch}", &sanitize(b));
    }
    if out.contains("{date}") {
        let t = epoch.or(info.map(|i| i.commit_time)).unwrap_or(0);
        let date = crate::engine::rfc3339(t)[..10].replace('-', "");
        out = out.replace("{date}", &date);
    }
    while let Some(i) = out.find("{env:") {
        let Some(len) = out[i..].find('}') else { break };
        let name = out[i + 5..i + len].to_string();
        let value = env(&name).filter(|v| !v.is_empty()).ok_or_else(|| {
            Error::Invalid(format!(
                "-t {tag}: {{env:{name}}}: the environment variable {name} is not set"
            ))
        })?;
        out = out.replacen(&format!("{{env:{name}}}"), &sanitize(&value), 1);
    }
    if let Some(i) = out.find('{') {
        return Err(Error::Invalid(format!(
            "-t {tag}: unknown template at {:?} (expected {{git-sha}}, {{git-short-sha}}, \
             {{git-tag}}, {{git-describe}}, {{git-branch}}, {{date}} or {{env:NAME}})",
            &out[i..]
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_and_credentials() {
        let info = GitInfo {
            sha: "0123456789abcdef0123456789abcdef01234567".into(),
            branch: "feature/x".into(),
            source: Some(strip_credentials("https://user:tok@git.example/a/b.git")),
            commit_time: 1_700_000_000,
            dirty: false,
            exact_tag: None,
            describe: Some("v1.2-3-g0123456".into()),
        };
        assert_eq!(info.source.as_deref(), Some("https://git.example/a/b.git"));
        assert_eq!(
            expand_tag("app:{git-short-sha}", Some(&info), None).unwrap(),
            "app:0123456"
        );
        assert_eq!(
            expand_tag("app:{git-branch}-{date}", Some(&info), None).unwrap(),
            "app:feature-x-20231114"
        );
        assert_eq!(
            expand_tag("app:{date}", None, Some(0)).unwrap(),
            "app:19700101"
        );
        assert!(expand_tag("app:{git-sha}", None, None).is_err());
        assert!(expand_tag("app:{nope}", Some(&info), None).is_err());
        assert_eq!(expand_tag("app:1", None, None).unwrap(), "app:1");
    }

    #[test]
    fn dirty_checkouts_never_reuse_the_clean_tag() {
        let mut info = GitInfo {
            sha: "0123456789abcdef0123456789abcdef01234567".into(),
            branch: "main".into(),
            source: None,
            commit_time: 1_700_000_000,
            dirty: true,
            exact_tag: Some("v1.2".into()),
            describe: Some("v1.2".into()),
        };
        let env = |k: &str| (k == "BUILD_BUILDID").then(|| "42".to_string());
        let x = |t: &str, info: &GitInfo, d| expand_tag_with(t, Some(info), None, d, &env);
        assert_eq!(
            x("a:{git-short-sha}", &info, DirtyTags::Suffix).unwrap(),
            "a:0123456-dirty"
        );
        assert_eq!(
            x("a:{git-tag}", &info, DirtyTags::Suffix).unwrap(),
            "a:v1.2-dirty"
        );
        assert_eq!(
            x("a:{git-describe}", &info, DirtyTags::Suffix).unwrap(),
            "a:v1.2-dirty"
        );
        assert!(x("a:{git-short-sha}", &info, DirtyTags::Refuse).is_err());
        // Branch, date and env do not name a commit.
        assert_eq!(
            x(
                "a:{git-branch}-{env:BUILD_BUILDID}",
                &info,
                DirtyTags::Refuse
            )
            .unwrap(),
            "a:main-42"
        );
        assert!(x("a:{env:NOPE}", &info, DirtyTags::Suffix).is_err());
        info.dirty = false;
        info.exact_tag = None;
        assert_eq!(
            x("a:{git-short-sha}", &info, DirtyTags::Refuse).unwrap(),
            "a:0123456"
        );
        assert!(x("a:{git-tag}", &info, DirtyTags::Suffix).is_err());
    }
}
