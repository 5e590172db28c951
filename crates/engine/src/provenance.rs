//! Provenance from a git checkout: which commit an image was built from.
//!
//! In a git work tree, `hoist build` records the standard OCI labels
//! `org.opencontainers.image.revision` (the commit), `org.opencontainers.image.source` (the
//! `origin` remote, credentials stripped) and `org.opencontainers.image.created` (the commit
//! time, so the label is as reproducible as the rest of the image), unless the user set them.
//! Tags may use templates: `{git-sha}`, `{git-short-sha}`, `{git-branch}` (with `/` made
//! `-`, as tags allow no slash) and `{date}` (`YYYYMMDD` of the commit time, or of
//! `SOURCE_DATE_EPOCH` when set).

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
    Some(GitInfo {
        sha,
        branch,
        source,
        commit_time,
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

/// Expand `{git-sha}`, `{git-short-sha}`, `{git-branch}` and `{date}` in a tag.
pub fn expand_tag(tag: &str, info: Option<&GitInfo>, epoch: Option<i64>) -> Result<String> {
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
    let mut out = tag.to_string();
    if out.contains("{git-sha}") {
        out = out.replace("{git-sha}", &need_git("git-sha")?.sha);
    }
    if out.contains("{git-short-sha}") {
        let sha = &need_git("git-short-sha")?.sha;
        out = out.replace("{git-short-sha}", &sha[..7.min(sha.len())]);
    }
    if out.contains("{git-branch}") {
        let b = &need_git("git-branch")?.branch;
        if b.is_empty() {
            return Err(Error::Invalid(format!(
                "-t {tag}: {{git-branch}} on a detached HEAD"
            )));
        }
        let clean: String = b
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        out = out.replace("{git-branch}", &clean);
    }
    if out.contains("{date}") {
        let t = epoch.or(info.map(|i| i.commit_time)).unwrap_or(0);
        let date = crate::engine::rfc3339(t)[..10].replace('-', "");
        out = out.replace("{date}", &date);
    }
    if let Some(i) = out.find('{') {
        return Err(Error::Invalid(format!(
            "-t {tag}: unknown template at {:?} (expected {{git-sha}}, {{git-short-sha}}, {{git-branch}} or {{date}})",
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
}
