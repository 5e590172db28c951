//! The errors of making and reading attestations.

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An option is malformed (`--provenance`, `--sbom`, `--attest`).
    #[error("{0}")]
    Invalid(String),
    /// Reading or writing an image failed.
    #[error(transparent)]
    Image(#[from] hoist_image::Error),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
