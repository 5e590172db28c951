//! Errors of the cache.

use std::path::PathBuf;

/// Errors of the cache.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// I/O on a path.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Invalid input (a size that does not parse).
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// An I/O error on a path.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// A result with the cache's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
