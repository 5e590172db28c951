//! Where an image's age comes from. Ordering is never a guess.
//!
//! Sources, best first:
//!
//! 1. **hoist's push record**: the latest `push` event of the digest in the repository
//!    [`crate::ledger`] (hoist's clock right after the registry accepted the manifest).
//! 2. **the registry's own push time**, where its API exposes one, behind
//!    [`RegistryPushTimes`]. The CNCF distribution registry (and so Docker Hub's open
//!    API, Quay's v2 API, Zot's) has none: [`DistributionApi`] answers "unknown" for
//!    every digest. ECR (`DescribeImages` `imagePushedAt`), Harbor
//!    (`/api/v2.0/projects/P/repositories/R/artifacts` `push_time`), Artifactory
//!    (storage API `created` of `manifest.json`), GHCR and GitLab (package APIs
//!    `created_at` of a version) are further implementations; see docs/lifecycle.md.
//! 3. **the config's `created`**, only when meaningful: a reproducible build writes
//!    1970-01-01 (or a fixed date before 1980, as Nix and some tools do), which says
//!    nothing, so such times are dropped ([`meaningful_created`]).
//!
//! Times from different classes ([`TimeClass`]: pushed vs created) are never compared.

use std::collections::BTreeMap;

use hoist_image::Digest;
use hoist_registry::{Client, Reference};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::Result;

/// Where a time came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimeSource {
    /// hoist's push record (the repository ledger).
    PushRecord,
    /// The registry's own push time.
    Registry,
    /// The image config's `created` (meaningful ones only).
    Created,
}

/// Which times can be compared with each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeClass {
    /// When the image arrived in the repository.
    Pushed,
    /// When the image says it was made.
    Created,
}

impl TimeSource {
    /// The class of this source.
    pub fn class(self) -> TimeClass {
        match self {
            TimeSource::PushRecord | TimeSource::Registry => TimeClass::Pushed,
            TimeSource::Created => TimeClass::Created,
        }
    }
}

/// A time with its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dated {
    /// The time.
    pub time: OffsetDateTime,
    /// Where it came from.
    pub source: TimeSource,
}

/// A registry's own record of when each manifest was pushed.
///
/// Contract: return a time only for digests the registry itself states a push time
/// for; leave every other digest out (never estimate). An error means the registry
/// could not be asked; the caller then treats every time as unknown (fail closed).
pub trait RegistryPushTimes: std::fmt::Debug {
    /// A name for reports (`distribution`, `ecr`).
    fn name(&self) -> &str;
    /// Push times of `digests` in `repo`.
    fn push_times(
        &self,
        client: &Client,
        repo: &Reference,
        digests: &[Digest],
    ) -> Result<BTreeMap<Digest, OffsetDateTime>>;
}

/// The distribution API (OCI distribution spec): it states no push time for a manifest
/// (no field, no `Last-Modified` on manifests), so every digest is unknown here and
/// ordering rests on hoist's records.
#[derive(Debug, Clone, Copy, Default)]
pub struct DistributionApi;

impl RegistryPushTimes for DistributionApi {
    fn name(&self) -> &str {
        "distribution"
    }
    fn push_times(
        &self,
        _client: &Client,
        _repo: &Reference,
        _digests: &[Digest],
    ) -> Result<BTreeMap<Digest, OffsetDateTime>> {
        Ok(BTreeMap::new())
    }
}

/// `created` if it says something: times before 1980-01-01 are the placeholders of
/// reproducible builds (1970-01-01, 1970-01-01T00:00:01) and are dropped.
pub fn meaningful_created(t: Option<OffsetDateTime>) -> Option<OffsetDateTime> {
    const JAN_1_1980: i64 = 315_532_800;
    t.filter(|t| t.unix_timestamp() >= JAN_1_1980)
}

/// The best push time of each digest: hoist's records, else the registry's.
pub fn push_times(
    recorded: &BTreeMap<Digest, OffsetDateTime>,
    registry: &BTreeMap<Digest, OffsetDateTime>,
    digest: &Digest,
) -> Option<Dated> {
    if let Some(t) = recorded.get(digest) {
        return Some(Dated {
            time: *t,
            source: TimeSource::PushRecord,
        });
    }
    registry.get(digest).map(|t| Dated {
        time: *t,
        source: TimeSource::Registry,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reproducible_placeholders_are_not_times() {
        let t = |s| OffsetDateTime::from_unix_timestamp(s).unwrap();
        assert_eq!(meaningful_created(Some(t(0))), None);
        assert_eq!(meaningful_created(Some(t(1))), None);
        assert_eq!(
            meaningful_created(Some(t(1_700_000_000))),
            Some(t(1_700_000_000))
        );
        assert_eq!(meaningful_created(None), None);
    }

    #[test]
    fn records_win_over_the_registry() {
        let d = Digest::sha256(b"x");
        let t = |s| OffsetDateTime::from_unix_timestamp(s).unwrap();
        let rec = BTreeMap::from([(d.clone(), t(2_000_000_000))]);
        let reg = BTreeMap::from([(d.clone(), t(1_000_000_000))]);
        let got = push_times(&rec, &reg, &d).unwrap();
        assert_eq!(got.source, TimeSource::PushRecord);
        assert_eq!(got.time, t(2_000_000_000));
        let got = push_times(&BTreeMap::new(), &reg, &d).unwrap();
        assert_eq!(got.source, TimeSource::Registry);
        assert!(push_times(&BTreeMap::new(), &BTreeMap::new(), &d).is_none());
    }
}
