//! Gates: checks a digest must pass before `promote` moves it.
//!
//! A gate is anything implementing [`Gate`]; [`crate::promotion::promote`] runs every
//! gate of [`crate::promotion::PromoteOptions::gates`] before it changes anything and
//! refuses with all the failures at once. hoist ships [`RequireMarks`]; other checks
//! (a signature, an attestation) are further implementations of the same trait.

use hoist_image::Digest;
use hoist_registry::{Client, Reference};

use crate::marks::{marks_for, validate_name};
use crate::Result;

/// One check on the image to promote.
pub trait Gate: std::fmt::Debug + Send + Sync {
    /// A short name for messages (`require-marks`).
    fn name(&self) -> &str;
    /// Check `digest` in `repo`: `Ok(None)` passes, `Ok(Some(why))` refuses, `Err` means
    /// the check could not be made (the promotion is refused too).
    fn check(&self, client: &Client, repo: &Reference, digest: &Digest) -> Result<Option<String>>;
}

/// Refuse unless the image carries every one of these marks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequireMarks(pub Vec<String>);

impl RequireMarks {
    /// Parse `tested,signed-off`.
    pub fn parse(list: &str) -> Result<RequireMarks> {
        let names: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        for n in &names {
            validate_name(n)?;
        }
        Ok(RequireMarks(names))
    }
}

impl Gate for RequireMarks {
    fn name(&self) -> &str {
        "require-marks"
    }

    fn check(&self, client: &Client, repo: &Reference, digest: &Digest) -> Result<Option<String>> {
        let have = marks_for(client, repo, digest)?;
        let missing: Vec<&str> = self
            .0
            .iter()
            .filter(|n| !have.iter().any(|m| &m.name == *n))
            .map(String::as_str)
            .collect();
        Ok((!missing.is_empty()).then(|| {
            format!(
                "{}@{digest} lacks the mark{} {} (has: {}); add with `hoist mark {}@{digest} NAME`",
                repo.name(),
                if missing.len() == 1 { "" } else { "s" },
                missing.join(", "),
                if have.is_empty() {
                    "none".to_string()
                } else {
                    have.iter()
                        .map(|m| m.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                repo.name()
            )
        }))
    }
}
