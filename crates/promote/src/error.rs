//! The crate error.

use hoist_image::Digest;

/// Everything that can go wrong while tagging, promoting or pruning.
///
/// Every operation checks what it can before it changes anything, so most of these
/// mean "nothing was changed"; the messages say so where it matters.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A registry request failed.
    #[error(transparent)]
    Registry(#[from] hoist_registry::Error),
    /// A document in the registry could not be read.
    #[error(transparent)]
    Image(#[from] hoist_image::Error),
    /// The image, tag or digest does not exist.
    #[error("{0}: not found in the registry; nothing was changed")]
    NotFound(String),
    /// The registry refuses manifest deletes.
    #[error(
        "{registry}: the registry does not support deleting manifests (HTTP {status}; for \
         distribution set storage.delete.enabled / REGISTRY_STORAGE_DELETE_ENABLED=true); \
         nothing was changed"
    )]
    DeleteUnsupported {
        /// The registry host.
        registry: String,
        /// The HTTP status it answered a probe with.
        status: u16,
    },
    /// A digest did not match what it had to be.
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was checked.
        what: String,
        /// The digest it must have.
        expected: Digest,
        /// The digest it has.
        actual: Digest,
    },
    /// The lifecycle policy is invalid.
    #[error("invalid lifecycle policy: {0}")]
    Policy(String),
    /// A plan deletes more images than allowed.
    #[error("the plan deletes {planned} images, more than the {max} allowed (--max-delete); nothing was deleted")]
    TooManyDeletes {
        /// Deletes in the plan.
        planned: usize,
        /// The limit.
        max: usize,
    },
    /// A request that cannot be carried out as asked (wrong reference form, …).
    #[error("{0}")]
    Invalid(String),
    /// A gate refused the promotion (each entry: `gate: why`).
    #[error("promotion refused; nothing was changed:\n  {}", .0.join("\n  "))]
    Refused(Vec<String>),
    /// Something changed under us or a post-condition failed.
    #[error("{0}")]
    Conflict(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
