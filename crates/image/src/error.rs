//! The error type of the image crate.

use std::path::PathBuf;

use crate::{Digest, DigestError};

/// A boxed error from another layer (a registry client, a sandbox) passed through an
/// image [`Source`](crate::Source).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of the image crate.
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
    /// An I/O error not tied to one path (a stream).
    #[error("{context}")]
    Stream {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A malformed digest.
    #[error(transparent)]
    Digest(#[from] DigestError),
    /// Content did not match its digest or size.
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was verified (a blob, a manifest).
        what: String,
        /// The digest it should have.
        expected: Digest,
        /// The digest it has.
        actual: Digest,
    },
    /// A JSON document that does not parse.
    #[error("{what}: invalid JSON")]
    Json {
        /// Which document.
        what: String,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// A document or archive that is well-formed but not what the spec allows.
    #[error("{0}")]
    Format(String),
    /// A blob, manifest or tag that does not exist in a source.
    #[error("not found: {0}")]
    NotFound(String),
    /// A layer entry that would write outside the root, or is otherwise unsafe.
    #[error("unsafe layer entry {entry:?}: {reason}")]
    UnsafeEntry {
        /// The entry name as the archive gives it.
        entry: String,
        /// Why it is refused.
        reason: String,
    },
    /// A layer that cannot be read: corrupt, mislabelled, too large once
    /// uncompressed, or not matching its diff ID.
    #[error("{layer}: {reason}")]
    Layer {
        /// Which layer: index in the image and digest (`layer 2 (sha256:…)`).
        layer: String,
        /// What was wrong.
        reason: String,
    },
    /// An index has no manifest for the requested platform.
    #[error("no image for platform {wanted} (available: {available})")]
    NoMatchingPlatform {
        /// The requested platform.
        wanted: String,
        /// The platforms the index offers.
        available: String,
    },
    /// An error from another layer (registry, sandbox).
    #[error(transparent)]
    Other(BoxError),
}

impl Error {
    /// Build an [`Error::Io`] from a path and an I/O error.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Build an [`Error::Stream`].
    pub fn stream(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Stream {
            context: context.into(),
            source,
        }
    }

    /// Build an [`Error::Json`].
    pub fn json(what: impl Into<String>, source: serde_json::Error) -> Error {
        Error::Json {
            what: what.into(),
            source,
        }
    }
}

/// Result alias for the image crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error and its causes on one line, `outer: cause: root cause`, as `anyhow` prints
/// `{:#}`. Errors of hoist's crates name only their own context in `Display` and leave the
/// cause to [`std::error::Error::source`] (so a chain printer shows each cause once);
/// code that turns an error into a message string uses this to keep the causes.
pub fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        // A wrapper that already prints its cause (`#[error(transparent)]`, or a foreign
        // error that includes it) is not repeated.
        if !s.ends_with(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod chain_tests {
    use super::*;

    #[test]
    fn io_errors_name_the_path_once_and_the_cause_once() {
        let e = Error::Io {
            path: "/x/Dockerfile".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert_eq!(e.to_string(), "/x/Dockerfile");
        assert_eq!(chain_text(&e), "/x/Dockerfile: entity not found");
    }
}
