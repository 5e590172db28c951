//! Image lifecycle on registries: tags, environment promotion and retention.
//!
//! - [`tags`]: [`tags::tag`] adds tags (same manifest bytes, no blob moves),
//!   [`tags::untag`] removes one tag and never its siblings, [`tags::list`] lists
//!   tags with digests (and created time and labels).
//! - [`promotion`]: [`promotion::promote`] moves one exact digest to an environment
//!   tag `env-NAME` (copying across registries when needed) and attaches a promotion
//!   record (an OCI artifact with `subject`, plus the referrers tag-schema fallback);
//!   [`promotion::status`], [`promotion::history`], [`promotion::rollback`].
//! - [`prune`]: ECR-style lifecycle [`policy`] evaluated into a [`prune::Plan`]
//!   with a reason for every keep and delete, then applied fail-closed; image age
//!   comes from [`order`] (push records first, never a guess).
//! - [`records`] and [`ledger`]: every push hoist makes is recorded on the image and
//!   in a per-repository ledger that loses nothing under concurrent writers, so
//!   untagged images stay visible.
//! - [`marks`] and [`gate`]: `tested` / `signed-off` marks on a digest, and the checks
//!   `promote` runs before it moves anything.
//! - [`artifact`]: the OCI artifacts all of these are, and carrying them across
//!   registries.
//!
//! Every function takes a [`hoist_registry::Client`] and works on any
//! distribution-compatible registry; nothing here needs a registry extension.
//!
//! ```
//! use hoist_promote::policy::{glob_match, Policy};
//! let p = Policy::parse(r#"{"rules":[{"rulePriority":1,
//!   "selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":14},
//!   "action":{"type":"expire"}}]}"#).unwrap();
//! assert_eq!(p.rules.len(), 1);
//! assert!(glob_match("build-*", "build-42"));
//! ```

#![deny(missing_docs)]

pub mod actor;
pub mod artifact;
pub mod attachments;
pub mod error;
pub mod facts;
pub mod gate;
pub mod ledger;
pub mod marks;
pub mod order;
pub mod policy;
pub mod promotion;
pub mod prune;
pub mod records;
pub mod tags;

pub use error::{Error, Result};
