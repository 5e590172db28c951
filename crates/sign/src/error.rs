//! The errors of signing and verifying.

/// What can go wrong signing, verifying or reading keys.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A key file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A key file is not a key hoist can use.
    #[error("{path}: {message}")]
    Key {
        /// The file (or a description of where the key came from).
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A signature, payload or attestation is malformed.
    #[error("{0}")]
    Invalid(String),
    /// The registry failed.
    #[error(transparent)]
    Registry(Box<hoist_registry::Error>),
    /// Reading an image failed.
    #[error(transparent)]
    Image(Box<hoist_image::Error>),
    /// Promotion helpers failed.
    #[error(transparent)]
    Promote(Box<hoist_promote::Error>),
}

impl From<hoist_registry::Error> for Error {
    fn from(e: hoist_registry::Error) -> Error {
        Error::Registry(Box::new(e))
    }
}

impl From<hoist_image::Error> for Error {
    fn from(e: hoist_image::Error) -> Error {
        Error::Image(Box::new(e))
    }
}

impl From<hoist_promote::Error> for Error {
    fn from(e: hoist_promote::Error) -> Error {
        Error::Promote(Box::new(e))
    }
}

impl Error {
    pub(crate) fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }

    pub(crate) fn key(path: impl AsRef<std::path::Path>, message: impl Into<String>) -> Error {
        Error::Key {
            path: path.as_ref().display().to_string(),
            message: message.into(),
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
