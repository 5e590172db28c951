//! Errors of the registry client.
//!
//! Registry errors keep the distribution spec's error codes
//! ([`ErrorCode`]) and every error says whether retrying can help
//! ([`Error::is_retryable`]). No message ever contains a password, a token or a
//! signed upload URL: requests are named by method and path only.

use std::fmt;
use std::path::PathBuf;

use hoist_image::Digest;

/// An error code from the OCI distribution spec (the `code` of an error body).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `BLOB_UNKNOWN`
    BlobUnknown,
    /// `BLOB_UPLOAD_INVALID`
    BlobUploadInvalid,
    /// `BLOB_UPLOAD_UNKNOWN`
    BlobUploadUnknown,
    /// `DIGEST_INVALID`
    DigestInvalid,
    /// `MANIFEST_BLOB_UNKNOWN`
    ManifestBlobUnknown,
    /// `MANIFEST_INVALID`
    ManifestInvalid,
    /// `MANIFEST_UNKNOWN`
    ManifestUnknown,
    /// `NAME_INVALID`
    NameInvalid,
    /// `NAME_UNKNOWN`
    NameUnknown,
    /// `SIZE_INVALID`
    SizeInvalid,
    /// `UNAUTHORIZED`
    Unauthorized,
    /// `DENIED`
    Denied,
    /// `UNSUPPORTED`
    Unsupported,
    /// `TOOMANYREQUESTS`
    TooManyRequests,
    /// Any other code, verbatim.
    Other(String),
}

impl ErrorCode {
    /// Parse a code string.
    pub fn parse(s: &str) -> ErrorCode {
        match s {
            "BLOB_UNKNOWN" => ErrorCode::BlobUnknown,
            "BLOB_UPLOAD_INVALID" => ErrorCode::BlobUploadInvalid,
            "BLOB_UPLOAD_UNKNOWN" => ErrorCode::BlobUploadUnknown,
            "DIGEST_INVALID" => ErrorCode::DigestInvalid,
            "MANIFEST_BLOB_UNKNOWN" => ErrorCode::ManifestBlobUnknown,
            "MANIFEST_INVALID" => ErrorCode::ManifestInvalid,
            "MANIFEST_UNKNOWN" => ErrorCode::ManifestUnknown,
            "NAME_INVALID" => ErrorCode::NameInvalid,
            "NAME_UNKNOWN" => ErrorCode::NameUnknown,
            "SIZE_INVALID" => ErrorCode::SizeInvalid,
            "UNAUTHORIZED" => ErrorCode::Unauthorized,
            "DENIED" => ErrorCode::Denied,
            "UNSUPPORTED" => ErrorCode::Unsupported,
            "TOOMANYREQUESTS" => ErrorCode::TooManyRequests,
            other => ErrorCode::Other(other.to_string()),
        }
    }

    /// The spec's spelling.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::BlobUnknown => "BLOB_UNKNOWN",
            ErrorCode::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            ErrorCode::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            ErrorCode::DigestInvalid => "DIGEST_INVALID",
            ErrorCode::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            ErrorCode::ManifestInvalid => "MANIFEST_INVALID",
            ErrorCode::ManifestUnknown => "MANIFEST_UNKNOWN",
            ErrorCode::NameInvalid => "NAME_INVALID",
            ErrorCode::NameUnknown => "NAME_UNKNOWN",
            ErrorCode::SizeInvalid => "SIZE_INVALID",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Denied => "DENIED",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::TooManyRequests => "TOOMANYREQUESTS",
            ErrorCode::Other(s) => s,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Errors of the registry client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A reference that does not parse.
    #[error("invalid reference {input:?}: {reason}")]
    InvalidReference {
        /// The rejected input.
        input: String,
        /// Why.
        reason: String,
    },
    /// The registry answered with an error status.
    #[error("{registry}: {what}: HTTP {status}{}", fmt_codes(codes, message))]
    Registry {
        /// The registry host.
        registry: String,
        /// The request (`GET /v2/app/manifests/latest`), never with query or credentials.
        what: String,
        /// The HTTP status.
        status: u16,
        /// The spec error codes in the body, if any.
        codes: Vec<ErrorCode>,
        /// The registry's message(s), if any.
        message: String,
        /// How long the registry asked us to wait (`Retry-After`), if it did.
        retry_after: Option<std::time::Duration>,
    },
    /// Credentials are missing or were refused.
    #[error("{registry}: authentication failed{}: {detail}", if *.had_credentials { " (credentials refused)" } else { " (no credentials; try `hoist login`)" })]
    Unauthorized {
        /// The registry host.
        registry: String,
        /// Whether credentials were sent.
        had_credentials: bool,
        /// What went wrong (never contains a secret).
        detail: String,
    },
    /// A network or TLS failure (shown with its whole chain of causes: reqwest's own
    /// message alone, "error sending request", says nothing).
    ///
    /// The causes are part of the message, so the error has no `source()`: a
    /// `{:#}` chain would repeat them.
    #[error("{registry}: {what}: {}", transport_detail(cause))]
    Transport {
        /// The registry host.
        registry: String,
        /// The request, never with query or credentials.
        what: String,
        /// The underlying error (URL removed).
        cause: reqwest::Error,
    },
    /// A registry that accepted a request and then sent nothing for longer than the
    /// read timeout (`--registry-timeout`), or less than the minimum rate.
    #[error("registry {registry} stopped responding ({stall}) while {what}")]
    Stalled {
        /// The registry host.
        registry: String,
        /// What was being read (`reading blob sha256:…`), never with credentials.
        what: String,
        /// How it stalled.
        stall: Stall,
    },
    /// A retryable failure that kept failing: the last attempt's error, once.
    #[error("after {attempts} attempts: {last}")]
    Retried {
        /// How many attempts were made.
        attempts: u32,
        /// The last attempt's error.
        last: Box<Error>,
    },
    /// The run was interrupted ([`crate::interrupt`]): a push stops before it
    /// writes another blob or any tag.
    #[error("interrupted")]
    Interrupted,
    /// Content did not match its digest or size.
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was verified.
        what: String,
        /// The digest it should have.
        expected: Digest,
        /// The digest it has.
        actual: Digest,
    },
    /// The registry broke the protocol (missing header, unexpected status).
    #[error("{registry}: {message}")]
    Protocol {
        /// The registry host.
        registry: String,
        /// What was wrong.
        message: String,
    },
    /// A credential file or helper failed.
    #[error("credentials: {0}")]
    Credentials(String),
    /// A configuration problem (bad CA file, bad mirror URL).
    #[error("configuration: {0}")]
    Config(String),
    /// An image that is not in the local cache (`--pull=never`).
    #[error("{0} is not in the local cache and pulling is disabled (--pull=never)")]
    NotCached(String),
    /// A local file error.
    #[error("{}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// An error from the image layer (a source, the blob store, a document).
    #[error(transparent)]
    Image(#[from] hoist_image::Error),
}

/// How a registry stalled (see [`Error::Stalled`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stall {
    /// Nothing at all for this long.
    Idle(std::time::Duration),
    /// `bytes` in `window`, below `min_rate` bytes per second.
    Slow {
        /// Bytes received in the window.
        bytes: u64,
        /// The window (the read timeout).
        window: std::time::Duration,
        /// The minimum rate, in bytes per second.
        min_rate: u64,
    },
}

impl fmt::Display for Stall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stall::Idle(d) => write!(f, "no data for {} s", fmt_secs(*d)),
            Stall::Slow {
                bytes,
                window,
                min_rate,
            } => write!(
                f,
                "{bytes} bytes in {} s, below the minimum of {min_rate} bytes/s",
                fmt_secs(*window)
            ),
        }
    }
}

fn fmt_secs(d: std::time::Duration) -> String {
    if d.subsec_millis() == 0 {
        d.as_secs().to_string()
    } else {
        format!("{:.1}", d.as_secs_f64())
    }
}

fn fmt_codes(codes: &[ErrorCode], message: &str) -> String {
    let mut s = String::new();
    if !codes.is_empty() {
        s.push(' ');
        s.push_str(
            &codes
                .iter()
                .map(ErrorCode::as_str)
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
    if !message.is_empty() {
        s.push_str(": ");
        s.push_str(message);
    }
    s
}

impl Error {
    /// Whether retrying the same operation may succeed (5xx, 429, dropped connections).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Registry { status, codes, .. } => {
                *status >= 500
                    || *status == 429
                    || *status == 408
                    || codes.contains(&ErrorCode::TooManyRequests)
                    || codes.contains(&ErrorCode::BlobUploadUnknown)
            }
            Error::Transport { cause, .. } => {
                !(cause.is_builder() || cause.is_redirect() || is_tls_error(cause))
            }
            Error::Stalled { .. } => true,
            // A read error carries the registry error behind it, if any: a download
            // whose own resumes gave up is not tried again from the start.
            Error::Image(hoist_image::Error::Stream { source, .. }) => source
                .get_ref()
                .and_then(|e| e.downcast_ref::<Error>())
                .is_none_or(Error::is_retryable),
            // Its retries are spent (an outer retry loop must not multiply them).
            Error::Retried { .. } => false,
            _ => false,
        }
    }

    /// A short label for a retry warning (the whole cause is reported once, in the
    /// final error).
    pub fn brief(&self) -> String {
        match self {
            Error::Registry { status, .. } => format!("HTTP {status}"),
            Error::Transport { cause, .. } if cause.is_connect() => "cannot connect".into(),
            Error::Transport { .. } => "connection failed".into(),
            Error::Stalled { stall, .. } => format!("stopped responding ({stall})"),
            Error::Retried { last, .. } => last.brief(),
            Error::Image(_) => "read failed".into(),
            _ => "failed".into(),
        }
    }

    /// The last attempt's error of a [`Error::Retried`], else `self`.
    pub fn last_attempt(&self) -> &Error {
        match self {
            Error::Retried { last, .. } => last.last_attempt(),
            e => e,
        }
    }

    /// The distribution error codes, if the registry sent any.
    pub fn codes(&self) -> &[ErrorCode] {
        match self.last_attempt() {
            Error::Registry { codes, .. } => codes,
            _ => &[],
        }
    }

    /// The HTTP status, for registry errors.
    pub fn status(&self) -> Option<u16> {
        match self.last_attempt() {
            Error::Registry { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the error means "does not exist" (404, `*_UNKNOWN`).
    pub fn is_not_found(&self) -> bool {
        match self.last_attempt() {
            Error::Registry { status, codes, .. } => {
                *status == 404
                    || codes.iter().any(|c| {
                        matches!(
                            c,
                            ErrorCode::ManifestUnknown
                                | ErrorCode::BlobUnknown
                                | ErrorCode::NameUnknown
                        )
                    })
            }
            Error::Image(hoist_image::Error::NotFound(_)) => true,
            _ => false,
        }
    }
}

/// A transport error with its causes, and what to do about an untrusted certificate.
fn transport_detail(e: &reqwest::Error) -> String {
    // One walk down the cause chain: each new message, and whether any is about TLS.
    let mut parts = vec![e.to_string()];
    let mut tls = false;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let s = err.to_string();
        tls |= mentions_tls(&s);
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = err.source();
    }
    let mut out = parts.join(": ");
    if tls {
        out.push_str(
            " (to trust a private CA: --ca-cert FILE, LOCAL_CA_CERTIFICATE, or \
             certs.d/<host>/ca.crt; --insecure-registry skips verification)",
        );
    }
    out
}

/// Whether an error message is about certificate verification.
fn mentions_tls(s: &str) -> bool {
    s.contains("certificate") || s.contains("InvalidCertificate")
}

/// Whether any cause of `e` is about certificate verification (never worth a retry).
fn is_tls_error(e: &reqwest::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if mentions_tls(&err.to_string()) {
            return true;
        }
        cur = err.source();
    }
    false
}

impl From<Error> for hoist_image::Error {
    fn from(e: Error) -> hoist_image::Error {
        match e {
            Error::Image(inner) => inner,
            Error::DigestMismatch {
                what,
                expected,
                actual,
            } => hoist_image::Error::DigestMismatch {
                what,
                expected,
                actual,
            },
            other if other.is_not_found() => hoist_image::Error::NotFound(other.to_string()),
            other => hoist_image::Error::Other(Box::new(other)),
        }
    }
}

/// Result alias for the registry crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
