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
//! hoist extensions ("created" rules): `countType: sinceImageCreated` (with
//! `countUnit: days`) and `"orderBy": "created"` on `imageCountMoreThan` use the image's
//! own `created` time instead of the push time.
//!
//! | rule                                   | time used                                          |
//! |----------------------------------------|----------------------------------------------------|
//! | `imageCountMoreThan`                   | push time (record, else registry); among images with neither, a meaningful `created` |
//! | `sinceImagePushed`                     | push time only (`created` cannot prove a push is old) |
//! | `imageCountMoreThan` + `orderBy created` | meaningful `created` only                        |
//! | `sinceImageCreated`                    | meaningful `created` only                          |
//!
//! Fail closed: `imageCountMoreThan N` deletes an image only when N selected images are
//! *provably* newer (same class of time, strictly later). Images whose rank cannot be
//! established — no usable time, equal times, or times of another class — are kept
//! with code `ambiguous-order`; ties are never broken by digest. `since…` rules keep
//! images whose time is unknown. Protected images (see [`Candidate::protected`]) are
//! kept whatever the rules say.

use std::collections::BTreeSet;

use hoist_image::Digest;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::order::{Dated, TimeClass, TimeSource};
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
    /// hoist extension: order `imageCountMoreThan` by `created` instead of push time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_by: Option<OrderBy>,
}

/// `selection.orderBy` (hoist extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderBy {
    /// Push time (the default).
    Pushed,
    /// The image's `created` time.
    Created,
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
    /// hoist extension: expire what was created more than N days ago.
    SinceImageCreated,
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
                CountType::SinceImagePushed | CountType::SinceImageCreated => {
                    if s.count_unit.as_deref() != Some("days") {
                        return Err(Error::Policy(format!(
                            "rule {p}: {:?} needs countUnit \"days\"",
                            s.count_type
                        )));
                    }
                    if s.order_by.is_some() {
                        return Err(Error::Policy(format!(
                            "rule {p}: orderBy is only for imageCountMoreThan"
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
    /// When it was pushed, and according to whom (see [`crate::order`]).
    pub pushed: Option<Dated>,
    /// Its meaningful `created` time (see [`crate::order::meaningful_created`]).
    pub created: Option<OffsetDateTime>,
    /// Why it must never be deleted, if it must not.
    pub protected: Option<(Code, String)>,
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

/// The machine-readable reason of a decision (`--json` `code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Code {
    /// Among the N newest of its rule.
    WithinCount,
    /// N images of its rule are provably newer.
    BeyondCount,
    /// Its rank cannot be established (no usable time, a tie, or times that cannot be
    /// compared): kept.
    AmbiguousOrder,
    /// Older than its rule's age.
    Expired,
    /// Younger than its rule's age.
    WithinAge,
    /// Its rule needs a time it does not have: kept.
    TimeUnknown,
    /// No rule selects it.
    NoRule,
    /// An environment tag or a live promotion points at it.
    InUse,
    /// It carries a tag given with `--protect-tag`.
    ProtectedTag,
    /// It carries a mark (`hoist mark`).
    Marked,
    /// A kept index references it.
    ChildOfKeptIndex,
    /// Planned for deletion, but something changed before the delete (apply).
    Changed,
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
    /// Where the push time came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pushed_source: Option<TimeSource>,
    /// Its meaningful creation time (RFC 3339), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Keep or delete.
    pub verdict: Verdict,
    /// The rule that claimed it, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<u32>,
    /// Why, as a code.
    pub code: Code,
    /// Why, in words.
    pub reason: String,
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// The time a rule orders `c` by, with its class.
fn count_key(c: &Candidate, by: OrderBy) -> Option<(TimeClass, OffsetDateTime)> {
    match by {
        OrderBy::Pushed => c
            .pushed
            .map(|d| (d.source.class(), d.time))
            .or(c.created.map(|t| (TimeClass::Created, t))),
        OrderBy::Created => c.created.map(|t| (TimeClass::Created, t)),
    }
}

type Outcome = (Verdict, Option<u32>, Code, String);

fn count_rule(
    p: u32,
    n: u64,
    by: OrderBy,
    candidates: &[Candidate],
    selected: &[usize],
    out: &mut [Option<Outcome>],
) {
    let word_of = |k: Option<(TimeClass, OffsetDateTime)>| match k.map(|k| k.0) {
        Some(TimeClass::Created) => "created",
        Some(TimeClass::Pushed) => "pushed",
        None if by == OrderBy::Created => "created",
        None => "pushed",
    };
    let keys: Vec<Option<(TimeClass, OffsetDateTime)>> = selected
        .iter()
        .map(|&i| count_key(&candidates[i], by))
        .collect();
    for (a, &i) in selected.iter().enumerate() {
        let word = word_of(keys[a]);
        let Some((class, t)) = keys[a] else {
            out[i] = Some((
                Verdict::Keep,
                Some(p),
                Code::AmbiguousOrder,
                format!("rule {p}: no {word} time, so it cannot be ordered; kept"),
            ));
            continue;
        };
        let (mut newer, mut unsure) = (0u64, 0u64);
        for (b, k) in keys.iter().enumerate() {
            if a == b {
                continue;
            }
            match k {
                Some((c2, t2)) if *c2 == class && *t2 > t => newer += 1,
                Some((c2, t2)) if *c2 == class && *t2 < t => {}
                _ => unsure += 1,
            }
        }
        out[i] = Some(if newer >= n {
            (
                Verdict::Delete,
                Some(p),
                Code::BeyondCount,
                format!("rule {p}: {newer} selected images were {word} later (keeps {n})"),
            )
        } else if newer + unsure < n {
            (
                Verdict::Keep,
                Some(p),
                Code::WithinCount,
                format!("rule {p}: #{} most recently {word} (keeps {n})", newer + 1),
            )
        } else {
            (
                Verdict::Keep,
                Some(p),
                Code::AmbiguousOrder,
                format!(
                    "rule {p}: {newer} images were {word} later and {unsure} cannot be ordered \
                     against it (equal or incomparable times); kept rather than guessed"
                ),
            )
        });
    }
}

/// Evaluate `policy` over `candidates` at time `now`. The result is in the order
/// of `candidates`.
pub fn evaluate(policy: &Policy, candidates: &[Candidate], now: OffsetDateTime) -> Vec<Decision> {
    let mut rules: Vec<&Rule> = policy.rules.iter().collect();
    rules.sort_by_key(|r| r.rule_priority);
    let mut out: Vec<Option<Outcome>> = vec![None; candidates.len()];
    for rule in rules {
        let p = rule.rule_priority;
        let s = &rule.selection;
        let selected: Vec<usize> = (0..candidates.len())
            .filter(|&i| out[i].is_none() && s.matches(&candidates[i].tags))
            .collect();
        match s.count_type {
            CountType::ImageCountMoreThan => count_rule(
                p,
                s.count_number,
                s.order_by.unwrap_or(OrderBy::Pushed),
                candidates,
                &selected,
                &mut out,
            ),
            CountType::SinceImagePushed | CountType::SinceImageCreated => {
                let days = s.count_number;
                let pushed = s.count_type == CountType::SinceImagePushed;
                let word = if pushed { "pushed" } else { "created" };
                let limit = now - time::Duration::days(days.min(1 << 30) as i64);
                for i in selected {
                    let c = &candidates[i];
                    let t = if pushed {
                        c.pushed.map(|d| d.time)
                    } else {
                        c.created
                    };
                    out[i] = Some(match t {
                        None => (
                            Verdict::Keep,
                            Some(p),
                            Code::TimeUnknown,
                            format!("rule {p}: {word} time unknown, kept (fail-closed)"),
                        ),
                        Some(t) if t < limit => (
                            Verdict::Delete,
                            Some(p),
                            Code::Expired,
                            format!("rule {p}: {word} {}, more than {days} days ago", rfc3339(t)),
                        ),
                        Some(t) => (
                            Verdict::Keep,
                            Some(p),
                            Code::WithinAge,
                            format!("rule {p}: {word} {}, within {days} days", rfc3339(t)),
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
            let (mut verdict, rule, mut code, mut reason) = o.unwrap_or((
                Verdict::Keep,
                None,
                Code::NoRule,
                "no rule selects it".to_string(),
            ));
            if let Some((pcode, why)) = &c.protected {
                if verdict == Verdict::Delete {
                    reason = format!("{why} (overrides: {reason})");
                    code = *pcode;
                } else {
                    reason = format!("{reason}; also {why}");
                }
                verdict = Verdict::Keep;
            }
            Decision {
                digest: c.digest.clone(),
                tags: c.tags.clone(),
                pushed: c.pushed.map(|d| rfc3339(d.time)),
                pushed_source: c.pushed.map(|d| d.source),
                created: c.created.map(rfc3339),
                verdict,
                rule,
                code,
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
            pushed: days_ago.map(|d| Dated {
                time: now - time::Duration::days(d),
                source: TimeSource::PushRecord,
            }),
            created: None,
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
        c[5].protected = Some((Code::InUse, "in use: environment tag env-prod".into()));
        let d = evaluate(&p, &c, now);
        let v: Vec<Verdict> = d.iter().map(|d| d.verdict).collect();
        use Verdict::*;
        // rel-2 newest of rule 1; rel-1 expires; rel-0 would but is protected.
        // dev is older than 7 days; the untagged one is recent; x has no time.
        assert_eq!(v, [Delete, Keep, Delete, Keep, Keep, Keep]);
        assert_eq!(d[0].rule, Some(1));
        assert_eq!(d[2].rule, Some(2));
        assert_eq!(d[5].code, Code::InUse, "{}", d[5].reason);
        assert_eq!(d[4].code, Code::TimeUnknown);
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
        assert_eq!(d[0].code, Code::NoRule);
        assert_eq!(d[1].verdict, Verdict::Delete);
        assert_eq!(d[2].verdict, Verdict::Keep);
    }

    fn count_policy(n: u64, order_by: &str) -> Policy {
        Policy::parse(&format!(
            r#"{{"rules":[{{"rulePriority":1,"selection":{{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":{n}{order_by}}},"action":{{"type":"expire"}}}}]}}"#
        ))
        .unwrap()
    }

    #[test]
    fn ties_are_kept_never_broken_by_digest() {
        let now = OffsetDateTime::now_utc();
        // Four images, two pushed at the same instant at the boundary of "keep 2".
        let c = vec![
            cand(1, &["a"], Some(1), now),
            cand(2, &["b"], Some(5), now),
            cand(3, &["c"], Some(5), now),
            cand(4, &["d"], Some(9), now),
        ];
        let d = evaluate(&count_policy(2, ""), &c, now);
        let codes: Vec<Code> = d.iter().map(|d| d.code).collect();
        assert_eq!(
            codes,
            [
                Code::WithinCount,
                Code::AmbiguousOrder,
                Code::AmbiguousOrder,
                Code::BeyondCount
            ]
        );
        assert_eq!(d[3].verdict, Verdict::Delete);
    }

    #[test]
    fn unknown_and_incomparable_times_are_kept() {
        let now = OffsetDateTime::now_utc();
        let mut c = vec![
            cand(1, &["a"], Some(1), now),
            cand(2, &["b"], Some(2), now),
            cand(3, &["c"], None, now),
            cand(4, &["d"], None, now),
        ];
        // d has only a created time: not comparable with push times.
        c[3].created = Some(now);
        let d = evaluate(&count_policy(1, ""), &c, now);
        assert_eq!(d[0].code, Code::AmbiguousOrder, "{}", d[0].reason);
        assert_eq!(d[1].verdict, Verdict::Delete, "{}", d[1].reason);
        assert_eq!(d[2].code, Code::AmbiguousOrder);
        assert_eq!(d[3].code, Code::AmbiguousOrder);
    }

    #[test]
    fn pushed_rules_use_push_order_created_rules_use_created() {
        let now = OffsetDateTime::now_utc();
        let mut c = vec![
            cand(1, &["a"], Some(3), now),
            cand(2, &["b"], Some(2), now),
            cand(3, &["c"], Some(1), now),
        ];
        // Created in the opposite order.
        c[0].created = Some(now - time::Duration::days(1));
        c[1].created = Some(now - time::Duration::days(20));
        c[2].created = Some(now - time::Duration::days(30));
        let by_push = evaluate(&count_policy(1, ""), &c, now);
        assert_eq!(by_push[2].verdict, Verdict::Keep);
        assert_eq!(by_push[0].verdict, Verdict::Delete);
        let by_created = evaluate(&count_policy(1, r#","orderBy":"created""#), &c, now);
        assert_eq!(by_created[0].verdict, Verdict::Keep);
        assert_eq!(by_created[2].verdict, Verdict::Delete);
        let since = Policy::parse(r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"sinceImageCreated","countUnit":"days","countNumber":15},"action":{"type":"expire"}}]}"#).unwrap();
        let v: Vec<Verdict> = evaluate(&since, &c, now)
            .iter()
            .map(|d| d.verdict)
            .collect();
        assert_eq!(v, [Verdict::Keep, Verdict::Delete, Verdict::Delete]);
    }
}
