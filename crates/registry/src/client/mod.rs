//! The HTTP side: per-host connections (scheme, TLS roots), the auth challenge
//! flow with a token cache, retries with backoff, and error mapping.
//!
//! Why `reqwest::blocking` and scoped threads rather than an async API: hoist's
//! build engine is synchronous, and every image source is a borrowed `&dyn Source`.
//! Scoped threads can borrow it for concurrent blob transfers; tasks on a runtime
//! would need `'static` data. So the public API is blocking and a pull or push runs
//! a bounded pool of [`ClientConfig::concurrency`] scoped worker threads.
//!
//! One exception, for speed: a blob upload's body is streamed through reqwest's
//! async client on a small private tokio runtime (`put_streamed`). A scoped
//! thread reads the source in 1 MiB chunks into a bounded channel that the request
//! body drains, so the source may still be borrowed and nothing is buffered beyond
//! four chunks; the blocking client would hand the body over in 8 KiB pieces with
//! two thread wake-ups each (about 1 s of system CPU per 500 MB).
//!
//! Plain-HTTP endpoints (loopback registries) get a client without the system
//! roots, since loading them dominates the run time of a short command; a redirect
//! to HTTPS (blob storage) is followed with a full client.
//!
//! Here: [`ClientConfig`] and [`Client`]'s shared state. By responsibility:
//! `tls` (roots, identities, the reqwest clients), `endpoint` (reaching a host:
//! scheme and challenge), `challenge` (credentials and tokens), `send` (one
//! authenticated request), `retry` (backoff, `Retry-After`), `response` (bodies and
//! error mapping), `stream_upload` (async streamed `PUT`s).

mod challenge;
mod endpoint;
mod pace;
mod response;
mod retry;
mod send;
mod stream_upload;
mod tls;

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::blocking::Client as Http;

use crate::auth::{AuthConfig, Credential};
use crate::Result;

use challenge::Token;
use tls::load_ca;

pub(crate) use challenge::Challenge;
pub(crate) use endpoint::Endpoint;
pub(crate) use pace::{body_timeout, stalled_in, PacedReader};
pub(crate) use response::{read_body, registry_error, registry_error_parts};
pub use tls::validate_ca;

/// An extra trusted CA certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaCert {
    /// A PEM file (one or more certificates).
    File(PathBuf),
    /// PEM text.
    Pem(String),
}

/// Configuration of a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Where credentials come from.
    pub auth: AuthConfig,
    /// Extra CA certificates trusted for every registry, on top of the system roots.
    /// [`ClientConfig::default`] adds `$LOCAL_CA_CERTIFICATE` (PEM text, or a path).
    pub ca_certs: Vec<CaCert>,
    /// Directories laid out as Docker's `certs.d/<host[:port]>/{*.crt, *.cert, *.key}`.
    /// Default: `/etc/docker/certs.d`, `/etc/containers/certs.d`,
    /// `~/.config/containers/certs.d`, `$DOCKER_CONFIG/certs.d` or `~/.docker/certs.d`.
    pub certs_dirs: Vec<PathBuf>,
    /// Registries (`host[:port]`) that may be used over plain HTTP or with an
    /// unverified certificate (`--insecure-registry`). Loopback hosts may always fall
    /// back to HTTP, as Docker allows.
    pub insecure: Vec<String>,
    /// Mirrors (`--registry-mirror`): `[SCHEME://]HOST[:PORT]` for Docker Hub, or
    /// `REGISTRY=[SCHEME://]HOST[:PORT]` for any registry; tried in order, before the
    /// `hosts.toml` hosts and the registry itself (see [`crate::mirrors`]).
    pub mirrors: Vec<String>,
    /// Directories of containerd's `certs.d/<registry>/hosts.toml` layout naming each
    /// registry's mirrors (see [`crate::mirrors`]). Default: `/etc/containerd/certs.d`
    /// and `~/.config/containerd/certs.d`.
    pub hosts_dirs: Vec<PathBuf>,
    /// Blobs transferred at once.
    pub concurrency: usize,
    /// Retries after the first attempt for transient failures (5xx, 429, dropped
    /// connections).
    pub retries: u32,
    /// The first backoff delay; doubled at each retry (with jitter, capped at 30 s).
    pub retry_delay: Duration,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// Upload blobs larger than this in chunks of this size (`PATCH`); `None` uploads
    /// every blob in one streamed `PUT`.
    pub chunk_size: Option<u64>,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Read (idle) timeout (`--registry-timeout`): a registry that sends nothing for
    /// this long while hoist waits for an answer or reads a body, or less than
    /// [`ClientConfig::min_rate`] bytes per second over this long, fails the request
    /// with [`Error::Stalled`](crate::Error::Stalled), which is retried. Default
    /// 30 s, or `$HOIST_REGISTRY_TIMEOUT` (seconds).
    pub read_timeout: Duration,
    /// The slowest transfer accepted, in bytes per second, measured over windows of
    /// [`ClientConfig::read_timeout`] (as curl's `--speed-limit`). Default 1024;
    /// 0 disables the check (the idle timeout still applies).
    pub min_rate: u64,
    /// The longest `Retry-After` honoured (`--registry-max-retry-after`): a registry
    /// asking for longer is retried after this long, and the log says so. Default
    /// 60 s, or `$HOIST_REGISTRY_MAX_RETRY_AFTER` (seconds).
    pub max_retry_after: Duration,
    /// Where blob downloads (pulls) and uploads (pushes) report their progress.
    pub progress: hoist_image::progress::Reporter,
}

impl Default for ClientConfig {
    fn default() -> Self {
        let mut ca_certs = Vec::new();
        if let Ok(v) = std::env::var("LOCAL_CA_CERTIFICATE") {
            let v = v.trim().to_string();
            if v.contains("-----BEGIN") {
                ca_certs.push(CaCert::Pem(v));
            } else if !v.is_empty() {
                ca_certs.push(CaCert::File(PathBuf::from(v)));
            }
        }
        let mut certs_dirs = vec![
            PathBuf::from("/etc/docker/certs.d"),
            PathBuf::from("/etc/containers/certs.d"),
        ];
        if let Some(h) = std::env::var_os("HOME") {
            certs_dirs.push(PathBuf::from(&h).join(".config/containers/certs.d"));
        }
        certs_dirs.push(
            crate::auth::docker_config_path()
                .parent()
                .map(|p| p.join("certs.d"))
                .unwrap_or_default(),
        );
        let mut hosts_dirs = vec![PathBuf::from("/etc/containerd/certs.d")];
        if let Some(h) = std::env::var_os("HOME") {
            hosts_dirs.push(PathBuf::from(&h).join(".config/containerd/certs.d"));
        }
        ClientConfig {
            auth: AuthConfig::default(),
            ca_certs,
            certs_dirs,
            insecure: Vec::new(),
            mirrors: Vec::new(),
            hosts_dirs,
            concurrency: 6,
            retries: 4,
            retry_delay: Duration::from_millis(250),
            user_agent: format!("hoist/{}", env!("CARGO_PKG_VERSION")),
            chunk_size: None,
            connect_timeout: Duration::from_secs(30),
            read_timeout: env_secs("HOIST_REGISTRY_TIMEOUT").unwrap_or(Duration::from_secs(30)),
            min_rate: 1024,
            max_retry_after: env_secs("HOIST_REGISTRY_MAX_RETRY_AFTER")
                .unwrap_or(Duration::from_secs(60)),
            progress: hoist_image::progress::Reporter::none(),
        }
    }
}

/// A whole number of seconds from an environment variable (a bad value is
/// reported and ignored).
fn env_secs(var: &str) -> Option<Duration> {
    let v = std::env::var(var).ok()?;
    match v.trim().parse::<u64>() {
        Ok(s) => Some(Duration::from_secs(s.max(1))),
        Err(_) => {
            tracing::warn!("{var}={v:?} is not a number of seconds; ignored");
            None
        }
    }
}

pub(crate) struct Inner {
    pub config: ClientConfig,
    endpoints: Mutex<HashMap<String, Arc<Endpoint>>>,
    /// HTTP clients by TLS setup (verify flag + host-specific files), shared across
    /// hosts and schemes so the system roots are loaded once.
    clients: Mutex<HashMap<String, Http>>,
    /// A private runtime for streamed uploads (see [`Client::put_streamed`]).
    runtime: std::sync::OnceLock<tokio::runtime::Runtime>,
    tokens: Mutex<HashMap<String, Token>>,
    creds: Mutex<HashMap<String, Option<Credential>>>,
    /// Blobs known to exist in other repositories: digest → (registry, repository).
    pub(crate) locations: Mutex<HashMap<String, BTreeSet<(String, String)>>>,
    /// Mirrors: parsed hosts, who served what, unreachable mirrors.
    pub(crate) mirrors: crate::mirrors::MirrorState,
    /// HTTP requests sent or attempted, per host (see [`Client::requests_sent`]).
    requests: Mutex<HashMap<String, u64>>,
}

/// A registry client. Cheap to clone (shared state: connections, tokens).
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

/// The media types hoist asks for when fetching a manifest.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// `repository:NAME:ACTIONS` token scope.
pub(crate) fn scope(repo: &str, push: bool) -> String {
    format!(
        "repository:{repo}:{}",
        if push { "pull,push" } else { "pull" }
    )
}

/// Whether `host` (with optional port) is a loopback address or `localhost`.
pub fn is_loopback_host(host: &str) -> bool {
    let h = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    if h == "localhost" || h.ends_with(".localhost") {
        return true;
    }
    h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl Client {
    /// Create a client. Loads the configured CA certificates now, so a bad CA file is
    /// reported here.
    pub fn new(config: ClientConfig) -> Result<Client> {
        for ca in &config.ca_certs {
            load_ca(ca)?;
        }
        Ok(Client {
            inner: Arc::new(Inner {
                config,
                endpoints: Mutex::new(HashMap::new()),
                clients: Mutex::new(HashMap::new()),
                runtime: std::sync::OnceLock::new(),
                tokens: Mutex::new(HashMap::new()),
                creds: Mutex::new(HashMap::new()),
                locations: Mutex::new(HashMap::new()),
                mirrors: Default::default(),
                requests: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// How many HTTP requests this client (and its clones) sent or tried to send to
    /// `host` (`host[:port]`), counting every attempt: pings, retries, token-less
    /// rounds. For diagnostics, and for tests that a host was not contacted.
    pub fn requests_sent(&self, host: &str) -> u64 {
        let m = self.inner.requests.lock().expect("poisoned");
        m.get(host).copied().unwrap_or(0)
    }

    fn count_request(&self, host: &str) {
        *self
            .inner
            .requests
            .lock()
            .expect("poisoned")
            .entry(host.to_string())
            .or_default() += 1;
    }

    pub(crate) fn cached_endpoint(&self, key: &str) -> Option<Arc<Endpoint>> {
        self.inner
            .endpoints
            .lock()
            .expect("poisoned")
            .get(key)
            .cloned()
    }

    pub(crate) fn cache_endpoint(&self, key: String, ep: Arc<Endpoint>) {
        self.inner
            .endpoints
            .lock()
            .expect("poisoned")
            .insert(key, ep);
    }

    /// Record that a blob exists in `registry/repo` (for cross-repository mounts).
    pub(crate) fn remember(&self, digest: &hoist_image::Digest, registry: &str, repo: &str) {
        self.inner
            .locations
            .lock()
            .expect("poisoned")
            .entry(digest.to_string())
            .or_default()
            .insert((registry.to_string(), repo.to_string()));
    }

    /// Drop every cached token (tests; after `login`).
    pub fn clear_tokens(&self) {
        self.inner.tokens.lock().expect("poisoned").clear();
        self.inner.creds.lock().expect("poisoned").clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback_host("localhost:5000"));
        assert!(is_loopback_host("127.0.0.1:5000"));
        assert!(is_loopback_host("127.8.9.10"));
        assert!(is_loopback_host("[::1]:5000"));
        assert!(!is_loopback_host("10.0.0.1:5000"));
        assert!(!is_loopback_host("example.com"));
    }
}
