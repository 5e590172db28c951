//! ECR-style lifecycle policies and their evaluation (pure: no I/O).
//!
//! A policy is the JSON Amazon ECR uses:
//!
//! ```json
//! {"rules": [{"rulePriority": 1, "description": "keep 10 builds",
//!             "selection": {"tagStatus": "tagged", "tagPrefixList": ["build-"],
//!                           "countType": "imageCountMoreThan", "countNumber": 10},
//!             "action": {"type": "expire"}}]}
//! ```
//!
//! Semantics (as ECR documents them):
//! - rules run by ascending `rulePriority`; an image is claimed by the first rule
//!   whose *selection* matches it, and only that rule decides (keep or expire);
//! - `tagStatus`: `tagged` (needs `tagPrefixList` or `tagPatternList`), `untagged`
//!   (no tag lists), `any` (no tag lists; must be the last rule);
//! - with several prefixes or patterns, every entry must be matched by one of the
//!   image's tags; patterns are globs where `*` matches any run of characters;
//! - `imageCountMoreThan N`: of the images the rule selects, the N most recently
//!   pushed are kept and the rest expire; `sinceImagePushed N` (`countUnit: days`):
//!   images pushed more than N days ago expire;
//! - images no rule selects are kept.
//!
//! Fail-closed additions: an image whose push time is unknown is never expired by
//! `sinceImagePushed` and counts as the newest for `imageCountMoreThan`; protected
//! images (see [`Candidate::protected`]) are kept whatever the rules say.

use std::collections::BTreeSet;

use hoist_image::Digest;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{Error, Result};

/// A lifecycle policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// The rules, in any order (they run by priority).
    pub rules: Vec<Rule>,
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// Unique; lower runs first.
    pub rule_priority: u32,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Which images the rule looks at and how it counts them.
    pub selection: Selection,
    /// What happens to the images it selects beyond the count.
    pub action: Action,
}

/// A rule's selection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Selection {
    /// Tagged, untagged or any image.
    pub tag_status: TagStatus,
    /// Tag prefixes (tagged only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tag_prefix_list: Vec<String>,
    /// Tag globs (tagged only; `*` wildcard).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tag_pattern_list: Vec<String>,
    /// How the count is interpreted.
    pub count_type: CountType,
    /// For `sinceImagePushed`: `days`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count_unit: Option<String>,
    /// The count.
    pub count_number: u64,
}

/// `selection.tagStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TagStatus {
    /// Images with at least one tag matching the lists.
    Tagged,
    /// Images without tags.
    Untagged,
    /// Every image.
    Any,
}

/// `selection.countType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CountType {
    /// Keep the N newest.
    ImageCountMoreThan,
    /// Expire what was pushed more than N days ago.
    SinceImagePushed,
}

/// `action`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// Only `expire`.
    #[serde(rename = "type")]
    pub kind: ActionType,
}

/// `action.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionType {
    /// Delete.
    Expire,
}

impl Policy {
    /// Parse and validate a policy document.
    pub fn parse(json: &str) -> Result<Policy> {
        let p: Policy = serde_json::from_str(json).map_err(|e| Error::Policy(e.to_string()))?;
        p.validate()?;
        Ok(p)
    }

    /// Check the constraints ECR enforces.
    pub fn validate(&self) -> Result<()> {
        if self.rules.is_empty() {
            return Err(Error::Policy("no rules".into()));
        }
        let mut seen = BTreeSet::new();
        let max = self
            .rules
            .iter()
            .map(|r| r.rule_priority)
            .max()
            .unwrap_or(0);
        for r in &self.rules {
            let p = r.rule_priority;
            if p == 0 {
                return Err(Error::Policy("rulePriority must be at least 1".into()));
            }
            if !seen.insert(p) {
                return Err(Error::Policy(format!("rulePriority {p} is used twice")));
            }
            let s = &r.selection;
            let lists = !s.tag_prefix_list.is_empty() || !s.tag_pattern_list.is_empty();
            match s.tag_status {
                TagStatus::Tagged if !lists => {
                    return Err(Error::Policy(format!(
                        "rule {p}: tagStatus tagged needs tagPrefixList or tagPatternList"
                    )))
                }
                TagStatus::Untagged | TagStatus::Any if lists => {
                    return Err(Error::Policy(format!(
                        "rule {p}: tag lists are only allowed with tagStatus tagged"
                    )))
                }
                TagStatus::Any if p != max => {
                    return Err(Error::Policy(format!(
                        "rule {p}: a tagStatus any rule must have the highest rulePriority"
                    )))
                }
                _ => {}
            }
            if !s.tag_prefix_list.is_empty() && !s.tag_pattern_list.is_empty() {
                return Err(Error::Policy(format!(
                    "rule {p}: give tagPrefixList or tagPatternList, not both"
                )));
            }
            match s.count_type {
                CountType::ImageCountMoreThan => {
                    if s.count_unit.is_some() {
                        return Err(Error::Policy(format!(
                            "rule {p}: countUnit is only for sinceImagePushed"
                        )));
                    }
                }
                CountType::SinceImagePushed => {
                    if s.count_unit.as_deref() != Some("days") {
                        return Err(Error::Policy(format!(
                            "rule {p}: sinceImagePushed needs countUnit \"days\""
                        )));
                    }
                }
            }
            if s.count_number == 0 {
                return Err(Error::Policy(format!(
                    "rule {p}: countNumber must be at least 1"
                )));
            }
        }
        Ok(())
    }
}

impl Selection {
    /// Whether an image with `tags` falls under this selection.
    pub fn matches(&self, tags: &[String]) -> bool {
        match self.tag_status {
            TagStatus::Any => true,
            TagStatus::Untagged => tags.is_empty(),
            TagStatus::Tagged => {
                !tags.is_empty()
                    && self
                        .tag_prefix_list
                        .iter()
                        .all(|p| tags.iter().any(|t| t.starts_with(p.as_str())))
                    && self
                        .tag_pattern_list
                        .iter()
                        .all(|p| tags.iter().any(|t| glob_match(p, t)))
            }
        }
    }
}

/// Match `text` against a glob where `*` matches any run of characters (the only
/// wildcard ECR supports).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// An image the policy is evaluated over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Its manifest (or index) digest.
    pub digest: Digest,
    /// Its tags (empty: untagged).
    pub tags: Vec<String>,
    /// When it was pushed (see the crate docs for where this comes from).
    pub pushed: Option<OffsetDateTime>,
    /// Why it must never be deleted, if it must not.
    pub protected: Option<String>,
}

/// Keep or delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Stays.
    Keep,
    /// Goes.
    Delete,
}

/// The decision about one image, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The image.
    pub digest: Digest,
    /// Its tags when the plan was made.
    pub tags: Vec<String>,
    /// Its push time (RFC 3339), if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pushed: Option<String>,
    /// Keep or delete.
    pub verdict: Verdict,
    /// The rule that claimed it, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<u32>,
    /// Why.
    pub reason: String,
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Evaluate `policy` over `candidates` at time `now`. The result is in the order
/// of `candidates`.
pub fn evaluate(policy: &Policy, candidates: &[Candidate], now: OffsetDateTime) -> Vec<Decision> {
    let mut rules: Vec<&Rule> = policy.rules.iter().collect();
    rules.sort_by_key(|r| r.rule_priority);
    let mut out: Vec<Option<(Verdict, Option<u32>, String)>> = vec![None; candidates.len()];
    for rule in rules {
        let p = rule.rule_priority;
        let s = &rule.selection;
        let mut selected: Vec<usize> = (0..candidates.len())
            .filter(|&i| out[i].is_none() && s.matches(&candidates[i].tags))
            .collect();
        match s.count_type {
            CountType::ImageCountMoreThan => {
                // Newest first; an unknown push time counts as newest (kept).
                selected.sort_by(|&a, &b| {
                    let (ca, cb) = (&candidates[a], &candidates[b]);
                    match (ca.pushed, cb.pushed) {
                        (None, None) => ca.digest.cmp(&cb.digest),
                        (None, Some(_)) => std::cmp::Ordering::Less,
                        (Some(_), None) => std::cmp::Ordering::Greater,
                        (Some(x), Some(y)) => y.cmp(&x).then(ca.digest.cmp(&cb.digest)),
                    }
                });
                for (rank, &i) in selected.iter().enumerate() {
                    let n = s.count_number;
                    out[i] = Some(if (rank as u64) < n {
                        (
                            Verdict::Keep,
                            Some(p),
                            format!(
                                "rule {p}: among the {n} most recently pushed (#{})",
                                rank + 1
                            ),
                        )
                    } else {
                        (
                            Verdict::Delete,
                            Some(p),
                            format!(
                                "rule {p}: more than {n} images selected; this is #{}",
                                rank + 1
                            ),
                        )
                    });
                }
            }
            CountType::SinceImagePushed => {
                let days = s.count_number;
                let limit = now - time::Duration::days(days.min(1 << 30) as i64);
                for i in selected {
                    out[i] = Some(match candidates[i].pushed {
                        None => (
                            Verdict::Keep,
                            Some(p),
                            format!("rule {p}: push time unknown, kept (fail-closed)"),
                        ),
                        Some(t) if t < limit => (
                            Verdict::Delete,
                            Some(p),
                            format!(
                                "rule {p}: pushed {} , more than {days} days ago",
                                rfc3339(t)
                            ),
                        ),
                        Some(t) => (
                            Verdict::Keep,
                            Some(p),
                            format!("rule {p}: pushed {}, within {days} days", rfc3339(t)),
                        ),
                    });
                }
            }
        }
    }
    candidates
        .iter()
        .zip(out)
        .map(|(c, o)| {
            let (mut verdict, rule, mut reason) =
                o.unwrap_or((Verdict::Keep, None, "no rule selects it".to_string()));
            if let Some(why) = &c.protected {
                if verdict == Verdict::Delete {
                    reason = format!("protected: {why} (overrides: {reason})");
                } else {
                    reason = format!("protected: {why}; {reason}");
                }
                verdict = Verdict::Keep;
            }
            Decision {
                digest: c.digest.clone(),
                tags: c.tags.clone(),
                pushed: c.pushed.map(rfc3339),
                verdict,
                rule,
                reason,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(n: u8, tags: &[&str], days_ago: Option<i64>, now: OffsetDateTime) -> Candidate {
        Candidate {
            digest: Digest::sha256(&[n]),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            pushed: days_ago.map(|d| now - time::Duration::days(d)),
            protected: None,
        }
    }

    #[test]
    fn globs() {
        assert!(glob_match("release-*", "release-1"));
        assert!(glob_match("*-rc*", "v1-rc2"));
        assert!(glob_match("a*b*c", "abc"));
        assert!(!glob_match("a*b*c", "acb"));
        assert!(!glob_match("v1", "v10"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("ab*ba", "aba"));
    }

    #[test]
    fn validation_rejects_what_ecr_rejects() {
        let bad = [
            r#"{"rules":[]}"#,
            r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"tagged","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
            r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},{"rulePriority":2,"selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
            r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countNumber":1},"action":{"type":"expire"}}]}"#,
            r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"delete"}}]}"#,
        ];
        for b in bad {
            assert!(Policy::parse(b).is_err(), "{b}");
        }
    }

    #[test]
    fn first_matching_rule_decides_and_protection_wins() {
        let now = OffsetDateTime::now_utc();
        let p = Policy::parse(
            r#"{"rules":[
            {"rulePriority":1,"selection":{"tagStatus":"tagged","tagPrefixList":["rel-"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},
            {"rulePriority":2,"selection":{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"days","countNumber":7},"action":{"type":"expire"}}]}"#,
        )
        .unwrap();
        let mut c = vec![
            cand(1, &["rel-1"], Some(30), now),
            cand(2, &["rel-2"], Some(20), now),
            cand(3, &["dev"], Some(10), now),
            cand(4, &[], Some(1), now),
            cand(5, &["x"], None, now),
            cand(6, &["rel-0"], Some(40), now),
        ];
        c[5].protected = Some("environment tag env-prod".into());
        let d = evaluate(&p, &c, now);
        let v: Vec<Verdict> = d.iter().map(|d| d.verdict).collect();
        use Verdict::*;
        // rel-2 newest of rule 1; rel-1 expires; rel-0 would but is protected.
        // dev is older than 7 days; the untagged one is recent; x has no time.
        assert_eq!(v, [Delete, Keep, Delete, Keep, Keep, Keep]);
        assert_eq!(d[0].rule, Some(1));
        assert_eq!(d[2].rule, Some(2));
        assert!(d[5].reason.starts_with("protected"), "{}", d[5].reason);
        assert!(d[4].reason.contains("unknown"));
    }

    #[test]
    fn unselected_images_are_kept() {
        let now = OffsetDateTime::now_utc();
        let p = Policy::parse(r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"tagged","tagPatternList":["b-*","*-x"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#).unwrap();
        let c = vec![
            cand(1, &["b-1"], Some(3), now),
            cand(2, &["b-2", "y-x"], Some(2), now),
            cand(3, &["b-3", "z-x"], Some(1), now),
        ];
        let d = evaluate(&p, &c, now);
        assert_eq!(d[0].verdict, Verdict::Keep);
        assert_eq!(d[0].reason, "no rule selects it");
        assert_eq!(d[1].verdict, Verdict::Delete);
        assert_eq!(d[2].verdict, Verdict::Keep);
    }
}
