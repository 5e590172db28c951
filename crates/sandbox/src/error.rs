//! The error type of the sandbox crate.

use std::path::PathBuf;

/// Errors of the sandbox.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error on a path.
    #[error("{}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A system call failed.
    #[error("{call}")]
    Sys {
        /// The call and its main argument, for the message.
        call: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The host cannot run the sandbox in the requested way (no user namespaces, an
    /// unmapped uid, ...). The message says what is missing.
    #[error("sandbox unsupported: {0}")]
    Unsupported(String),
    /// The helper process failed while setting up the sandbox or doing an operation.
    #[error("sandbox helper: {0}")]
    Helper(String),
    /// The run specification is invalid.
    #[error("invalid run spec: {0}")]
    InvalidSpec(String),
    /// An error from the layer writer or applier.
    #[error(transparent)]
    Image(#[from] hoist_image::Error),
}

impl Error {
    /// Build an [`Error::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Build an [`Error::Sys`].
    pub fn sys(call: impl Into<String>, source: std::io::Error) -> Error {
        Error::Sys {
            call: call.into(),
            source,
        }
    }
}

/// Result alias for the sandbox crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
