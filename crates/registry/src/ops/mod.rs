//! Registry API primitives: manifests, blobs, uploads, tags, referrers.

mod blobs;
mod manifests;
mod tags;
mod upload;

use std::io::Read;

use hoist_image::Digest;
use reqwest::blocking::Response;

/// Largest manifest accepted (as containerd: 4 MiB).
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;

/// What happened to one blob during a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobOutcome {
    /// The registry already had it (HEAD said so).
    Skipped,
    /// Mounted from another repository of the same registry.
    Mounted,
    /// Uploaded (bytes sent).
    Uploaded(u64),
}

/// Opens a fresh stream of a blob's content (called again on each retry).
pub type OpenBlob<'a> = dyn Fn() -> hoist_image::Result<Box<dyn Read + Send + 'a>> + Sync + 'a;

fn header(resp: &Response, name: reqwest::header::HeaderName) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn docker_digest(resp: &Response) -> Option<Digest> {
    header(
        resp,
        "docker-content-digest".parse().expect("valid header name"),
    )
    .and_then(|d| Digest::parse(d.trim()).ok())
}

fn with_query(url: &str, kv: &str) -> String {
    if url.contains('?') {
        format!("{url}&{kv}")
    } else {
        format!("{url}?{kv}")
    }
}
