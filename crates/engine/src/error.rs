//! Errors of the build engine.

use std::path::PathBuf;

/// Where in the Dockerfile something went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// Dockerfile path as given.
    pub file: String,
    /// 1-based line of the instruction.
    pub line: usize,
    /// The instruction text (first line).
    pub text: String,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, shown(&self.text))
    }
}

/// At most [`hoist_dockerfile::error::MAX_SHOWN_CHARS`] characters of `text` (an
/// instruction or a command line), for messages: a 50 MB RUN line is not repeated.
pub fn shown(text: &str) -> std::borrow::Cow<'_, str> {
    hoist_dockerfile::error::excerpt(text, hoist_dockerfile::error::MAX_SHOWN_CHARS)
}

/// Errors of the build engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The Dockerfile does not parse or expand.
    #[error("{0}")]
    Dockerfile(String),
    /// An instruction failed; the location names the Dockerfile line.
    #[error("{location}: {message}")]
    Step {
        /// Which instruction.
        location: Location,
        /// What went wrong.
        message: String,
    },
    /// A feature this build cannot provide (with the reason).
    #[error("{0}")]
    Unsupported(String),
    /// Invalid options or arguments.
    #[error("{0}")]
    Invalid(String),
    /// A layer could not be read.
    #[error("{0}")]
    Layer(String),
    /// I/O on a path.
    #[error("{}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// From the image crate.
    #[error(transparent)]
    Image(#[from] hoist_image::Error),
    /// From the cache crate.
    #[error(transparent)]
    Cache(#[from] hoist_cache::Error),
    /// Interrupted (Ctrl-C).
    #[error("interrupted")]
    Interrupted,
    /// A stage this one needs failed (that stage's error is the one reported).
    #[error("{0}")]
    DependencyFailed(String),
}

impl Error {
    /// An I/O error on a path.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Attach an instruction location to an error (unless it has one).
    pub fn at(self, location: &Location) -> Error {
        match self {
            e @ (Error::Step { .. } | Error::Interrupted | Error::DependencyFailed(_)) => e,
            other => Error::Step {
                location: location.clone(),
                message: hoist_image::chain_text(&other),
            },
        }
    }
}

/// Result alias of the build engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;
