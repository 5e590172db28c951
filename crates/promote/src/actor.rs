//! Who is acting: the name hoist writes into records, marks and ledger entries.

/// The environment variables read for the actor, in order: hoist's own, then what CI
/// systems set (GitHub Actions, GitLab CI, Azure DevOps, Jenkins, Concourse), then the
/// login name.
pub const ACTOR_VARS: &[&str] = &[
    "HOIST_ACTOR",
    "GITHUB_ACTOR",
    "GITLAB_USER_LOGIN",
    "BUILD_REQUESTEDFOR",
    "BUILD_USER_ID",
    "BUILD_TEAM_NAME",
    "USER",
    "LOGNAME",
];

/// The environment variables read for a CI build id (for `{env:NAME}` use the name
/// directly), in order.
pub const BUILD_ID_VARS: &[&str] = &[
    "HOIST_BUILD_ID",
    "GITHUB_RUN_ID",
    "CI_JOB_ID",
    "BUILD_BUILDID",
    "BUILD_ID",
    "BUILD_NAME",
];

fn first(vars: &[&str]) -> Option<String> {
    vars.iter()
        .filter_map(|v| std::env::var(v).ok())
        .map(|v| v.trim().to_string())
        .find(|v| !v.is_empty())
}

/// The actor from the environment ([`ACTOR_VARS`]), if any is set.
pub fn from_env() -> Option<String> {
    first(ACTOR_VARS)
}

/// The CI build id from the environment ([`BUILD_ID_VARS`]), if any is set.
pub fn build_id_from_env() -> Option<String> {
    first(BUILD_ID_VARS)
}
