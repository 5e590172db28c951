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

use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use reqwest::blocking::{Client as Http, RequestBuilder, Response};
use reqwest::header::{HeaderMap, ACCEPT, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};

use crate::auth::{AuthConfig, Credential};

/// Apply hoist's settings to a blocking or async reqwest client builder.
macro_rules! configure {
    ($builder:expr, $cfg:expr, $verify:expr, $roots:expr, $identity:expr) => {{
        let cfg: &ClientConfig = $cfg;
        let mut b = $builder
            .user_agent(cfg.user_agent.clone())
            .connect_timeout(cfg.connect_timeout)
            .pool_max_idle_per_host(cfg.concurrency.max(1) * 2)
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::limited(10));
        if !$verify {
            b = b.danger_accept_invalid_certs(true);
        }
        for c in $roots {
            b = b.add_root_certificate(c);
        }
        if let Some(id) = $identity {
            b = b.identity(id);
        }
        b
    }};
}

/// A channel of body chunks as a stream, for `reqwest::Body::wrap_stream`.
struct RxStream(tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>);

impl futures_core::Stream for RxStream {
    type Item = std::io::Result<Vec<u8>>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}
use crate::reference::{DOCKER_HUB, DOCKER_HUB_API};
use crate::{Error, ErrorCode, Result};

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
    /// Mirrors for Docker Hub (`https://mirror.example`, `127.0.0.1:5001`), tried in
    /// order before Docker Hub itself.
    pub mirrors: Vec<String>,
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
        ClientConfig {
            auth: AuthConfig::default(),
            ca_certs,
            certs_dirs,
            insecure: Vec::new(),
            mirrors: Vec::new(),
            concurrency: 6,
            retries: 4,
            retry_delay: Duration::from_millis(250),
            user_agent: format!("hoist/{}", env!("CARGO_PKG_VERSION")),
            chunk_size: None,
            connect_timeout: Duration::from_secs(30),
        }
    }
}

/// How a registry wants to be authenticated, from its `/v2/` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    None,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// One registry host as reached: scheme, HTTP client, auth challenge.
#[derive(Debug)]
pub(crate) struct Endpoint {
    /// The API host (`registry-1.docker.io`, `localhost:5000`).
    pub host: String,
    /// The registry name credentials are looked up under (`docker.io`).
    pub cred_name: String,
    /// `https://host` or `http://host`.
    pub base: String,
    pub http: Http,
    pub challenge: Challenge,
    /// Whether certificates are verified (not for `--insecure-registry` HTTPS).
    pub verify: bool,
    /// A plain-HTTP endpoint whose client has no system roots (see `http_client`).
    pub plain: bool,
    /// An async client for streamed uploads, built on first use.
    pub async_http: std::sync::OnceLock<reqwest::Client>,
}

#[derive(Clone)]
struct Token {
    value: String,
    expires: Instant,
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
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    fn is_insecure(&self, host: &str) -> bool {
        self.inner.config.insecure.iter().any(|h| {
            let h = h
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .trim_end_matches('/');
            h == host
        })
    }

    /// Files of Docker's `certs.d/<host>/` layout that apply to `host`, sorted.
    fn host_tls_files(&self, host: &str) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for dir in &self.inner.config.certs_dirs {
            let d = dir.join(host.replace(['[', ']'], ""));
            let d = if d.is_dir() { d } else { dir.join(host) };
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            let mut names: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
            names.sort();
            out.extend(names);
        }
        out
    }

    /// A blocking client. `plain` clients (for plain-HTTP endpoints) skip loading the
    /// system roots and stop at redirects to HTTPS, which [`Client::send`] then follows
    /// with a full client: most plain-HTTP registries never redirect, and loading the
    /// system roots is most of the start-up time of a short command.
    fn http_client(&self, host: &str, verify: bool, plain: bool) -> Result<Http> {
        let files = self.host_tls_files(host);
        let key = format!(
            "{verify}|{plain}|{}",
            files
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join("|")
        );
        if let Some(c) = self.inner.clients.lock().expect("poisoned").get(&key) {
            return Ok(c.clone());
        }
        let c = self.build_http_client(host, verify, plain, &files)?;
        self.inner
            .clients
            .lock()
            .expect("poisoned")
            .insert(key, c.clone());
        Ok(c)
    }

    /// Extra roots (configured CAs and `certs.d/<host>/*.crt`) and a client identity
    /// (`certs.d/<host>/*.cert` + `.key`) for `host`.
    fn tls_material(
        &self,
        host: &str,
        files: &[PathBuf],
    ) -> Result<(Vec<reqwest::Certificate>, Option<reqwest::Identity>)> {
        let mut roots = Vec::new();
        for ca in &self.inner.config.ca_certs {
            roots.extend(load_ca(ca)?);
        }
        let mut identity = None;
        for p in files {
            match p.extension().and_then(|e| e.to_str()) {
                Some("crt") => {
                    roots.extend(load_ca(&CaCert::File(p.clone()))?);
                    tracing::debug!(host, file = %p.display(), "trusting CA from certs.d");
                }
                Some("cert") => {
                    let key = p.with_extension("key");
                    if key.is_file() {
                        let mut pem = read_file(p)?;
                        pem.extend_from_slice(&read_file(&key)?);
                        identity = Some(reqwest::Identity::from_pem(&pem).map_err(|e| {
                            Error::Config(format!(
                                "{}: bad client certificate or key: {e}",
                                p.display()
                            ))
                        })?);
                    }
                }
                _ => {}
            }
        }
        Ok((roots, identity))
    }

    fn build_http_client(
        &self,
        host: &str,
        verify: bool,
        plain: bool,
        files: &[PathBuf],
    ) -> Result<Http> {
        let (roots, identity) = self.tls_material(host, files)?;
        let mut b = configure!(Http::builder(), &self.inner.config, verify, roots, identity)
            .timeout(None)
            .tls_built_in_root_certs(!plain);
        if plain {
            b = b.redirect(reqwest::redirect::Policy::custom(|a| {
                if a.url().scheme() == "https" {
                    a.stop()
                } else if a.previous().len() >= 10 {
                    a.error("too many redirects")
                } else {
                    a.follow()
                }
            }));
        }
        b.build()
            .map_err(|e| Error::Config(format!("building the HTTP client: {e}")))
    }

    /// The async client of an endpoint, for streamed uploads.
    pub(crate) fn async_client(&self, ep: &Endpoint) -> Result<reqwest::Client> {
        if let Some(c) = ep.async_http.get() {
            return Ok(c.clone());
        }
        let files = self.host_tls_files(&ep.host);
        let (roots, identity) = self.tls_material(&ep.host, &files)?;
        let c = configure!(
            reqwest::Client::builder(),
            &self.inner.config,
            ep.verify,
            roots,
            identity
        )
        .build()
        .map_err(|e| Error::Config(format!("building the HTTP client: {e}")))?;
        Ok(ep.async_http.get_or_init(|| c).clone())
    }

    /// `PUT` a body streamed from `rx` (chunks of any size) with a known length.
    ///
    /// Uploads go through reqwest's async client on a small private runtime: the
    /// blocking client hands its body over in 8 KiB pieces, two thread wake-ups
    /// each, which costs more CPU than the registry's own hashing on a busy
    /// machine; here each chunk of about 1 MiB is one hand-over.
    pub(crate) fn put_streamed(
        &self,
        ep: &Endpoint,
        repo: &str,
        url: &str,
        size: u64,
        rx: tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
        what: &str,
    ) -> Result<(StatusCode, HeaderMap, Vec<u8>)> {
        let auth = self.auth_header(ep, repo, &[scope(repo, true)])?;
        let client = self.async_client(ep)?;
        let rt = match self.inner.runtime.get() {
            Some(rt) => rt,
            None => {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("hoist-upload")
                    .enable_all()
                    .build()
                    .map_err(|e| Error::Config(format!("starting the upload runtime: {e}")))?;
                let _ = self.inner.runtime.set(rt);
                self.inner.runtime.get().expect("just set")
            }
        };
        let mut req = client
            .put(url)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::CONTENT_LENGTH, size.to_string())
            .body(reqwest::Body::wrap_stream(RxStream(rx)));
        if let Some(a) = auth {
            req = req.header(reqwest::header::AUTHORIZATION, a);
        }
        let host = ep.host.clone();
        rt.block_on(async move {
            let resp = req.send().await.map_err(|e| Error::Transport {
                registry: host.clone(),
                what: what.to_string(),
                source: strip(e),
            })?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
            Ok((status, headers, body))
        })
    }

    /// The `Authorization` header for a request to `repo` with `scopes`.
    pub(crate) fn auth_header(
        &self,
        ep: &Endpoint,
        repo: &str,
        scopes: &[String],
    ) -> Result<Option<String>> {
        use base64::Engine as _;
        let scopes: BTreeSet<String> = scopes.iter().cloned().collect();
        Ok(match &ep.challenge {
            Challenge::None => None,
            Challenge::Basic => match self.credential(ep, repo)? {
                Some(Credential::Basic { username, password }) => Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD
                        .encode(format!("{username}:{password}"))
                )),
                Some(Credential::RegistryToken(t)) => Some(format!("Bearer {t}")),
                _ => None,
            },
            Challenge::Bearer { realm, service } => {
                let cred = self.credential(ep, repo)?;
                let t = self.token(ep, realm, service.as_deref(), &scopes, cred.as_ref(), false)?;
                Some(format!("Bearer {t}"))
            }
        })
    }

    /// The endpoint for an API host, pinging it the first time.
    pub(crate) fn endpoint(&self, host: &str, cred_name: &str) -> Result<Arc<Endpoint>> {
        if let Some(ep) = self.inner.endpoints.lock().expect("poisoned").get(host) {
            return Ok(ep.clone());
        }
        let ep = Arc::new(self.with_retry(&format!("ping {host}"), |_| {
            self.ping(host, cred_name, None)
        })?);
        self.inner
            .endpoints
            .lock()
            .expect("poisoned")
            .insert(host.to_string(), ep.clone());
        Ok(ep)
    }

    /// The endpoints to read `registry` from: mirrors first for Docker Hub, then origin.
    pub(crate) fn read_endpoints(&self, registry: &str) -> Vec<Result<Arc<Endpoint>>> {
        let mut out = Vec::new();
        if registry == DOCKER_HUB {
            for m in &self.inner.config.mirrors {
                out.push(self.mirror_endpoint(m));
            }
        }
        out.push(self.registry_endpoint(registry));
        out
    }

    /// The origin endpoint for a registry name.
    pub(crate) fn registry_endpoint(&self, registry: &str) -> Result<Arc<Endpoint>> {
        let host = if registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            registry
        };
        self.endpoint(host, registry)
    }

    fn mirror_endpoint(&self, mirror: &str) -> Result<Arc<Endpoint>> {
        let (scheme, rest) = match mirror.split_once("://") {
            Some((s, r)) if s == "http" || s == "https" => (Some(s), r),
            Some(_) => {
                return Err(Error::Config(format!(
                    "registry mirror {mirror:?}: only http:// and https:// are supported"
                )))
            }
            None => (None, mirror),
        };
        let host = rest.trim_end_matches('/').trim_end_matches("/v2");
        if host.is_empty() || host.contains('/') {
            return Err(Error::Config(format!(
                "registry mirror {mirror:?}: expected [SCHEME://]HOST[:PORT]"
            )));
        }
        let key = format!("mirror:{mirror}");
        if let Some(ep) = self.inner.endpoints.lock().expect("poisoned").get(&key) {
            return Ok(ep.clone());
        }
        let ep = Arc::new(self.ping(host, host, scheme)?);
        self.inner
            .endpoints
            .lock()
            .expect("poisoned")
            .insert(key, ep.clone());
        Ok(ep)
    }

    fn ping(&self, host: &str, cred_name: &str, force_scheme: Option<&str>) -> Result<Endpoint> {
        let explicit = self.is_insecure(host);
        let attempts: Vec<(&str, bool)> = match force_scheme {
            Some("http") => vec![("http", true)],
            Some(_) => vec![("https", !explicit)],
            None if explicit => vec![("https", false), ("http", true)],
            // Loopback registries are nearly always plain HTTP (Docker allows it without
            // configuration); an HTTPS one answers the HTTP probe with 400 and is then
            // reached over HTTPS, verified.
            None if is_loopback_host(host) => vec![("http", true), ("https", true)],
            None => vec![("https", true)],
        };
        let mut last_err = None;
        let n = attempts.len();
        for (i, (scheme, verify)) in attempts.into_iter().enumerate() {
            let has_next = i + 1 < n;
            let plain = scheme == "http";
            let http = self.http_client(host, verify, plain)?;
            let base = format!("{scheme}://{host}");
            let what = "GET /v2/".to_string();
            let resp = match http.get(format!("{base}/v2/")).send() {
                Ok(r) => r,
                Err(e) => {
                    let e = strip(e);
                    tracing::debug!(host, scheme, error = %e, "ping failed");
                    last_err = Some(Error::Transport {
                        registry: host.to_string(),
                        what,
                        source: e,
                    });
                    continue;
                }
            };
            let challenge = match resp.status() {
                s if s.is_success() => Challenge::None,
                StatusCode::UNAUTHORIZED => {
                    parse_challenge(resp.headers()).ok_or_else(|| Error::Protocol {
                        registry: host.to_string(),
                        message: "401 from /v2/ without a usable WWW-Authenticate challenge".into(),
                    })?
                }
                // An HTTPS server answering a plain-HTTP probe: try HTTPS next.
                StatusCode::BAD_REQUEST if scheme == "http" && has_next => {
                    tracing::debug!(host, "HTTP probe refused; trying HTTPS");
                    continue;
                }
                // An HTTPS server answering our plain-HTTP fallback: report why HTTPS failed.
                _ if scheme == "http" && last_err.is_some() => {
                    return Err(last_err.expect("checked"));
                }
                _ => return Err(registry_error(host, &what, resp)),
            };
            tracing::debug!(host, scheme, ?challenge, "registry reached");
            return Ok(Endpoint {
                host: host.to_string(),
                cred_name: cred_name.to_string(),
                base,
                http,
                challenge,
                verify,
                plain,
                async_http: std::sync::OnceLock::new(),
            });
        }
        Err(last_err.unwrap_or_else(|| Error::Config(format!("no way to reach {host}"))))
    }

    fn credential(&self, ep: &Endpoint, repo: &str) -> Result<Option<Credential>> {
        let key = format!("{}/{repo}", ep.cred_name);
        if let Some(c) = self.inner.creds.lock().expect("poisoned").get(&key) {
            return Ok(c.clone());
        }
        let c = self.inner.config.auth.lookup(&ep.cred_name, Some(repo))?;
        self.inner
            .creds
            .lock()
            .expect("poisoned")
            .insert(key, c.clone());
        Ok(c)
    }

    /// Run `f` with retries and backoff while it fails with a retryable error.
    pub(crate) fn with_retry<T>(
        &self,
        what: &str,
        mut f: impl FnMut(u32) -> Result<T>,
    ) -> Result<T> {
        let max = self.inner.config.retries;
        let mut attempt = 0;
        loop {
            match f(attempt) {
                Ok(v) => return Ok(v),
                Err(e) if attempt < max && e.is_retryable() => {
                    let wait = match &e {
                        Error::Registry {
                            retry_after: Some(d),
                            ..
                        } => (*d).min(Duration::from_secs(60)),
                        _ => backoff(self.inner.config.retry_delay, attempt),
                    };
                    tracing::warn!(
                        "{what}: {e}; retrying in {:.1}s ({}/{max})",
                        wait.as_secs_f64(),
                        attempt + 1
                    );
                    std::thread::sleep(wait);
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn token(
        &self,
        ep: &Endpoint,
        realm: &str,
        service: Option<&str>,
        scopes: &BTreeSet<String>,
        cred: Option<&Credential>,
        fresh: bool,
    ) -> Result<String> {
        if let Some(Credential::RegistryToken(t)) = cred {
            return Ok(t.clone());
        }
        let key = format!(
            "{}|{}",
            ep.host,
            scopes.iter().cloned().collect::<Vec<_>>().join(" ")
        );
        if !fresh {
            if let Some(t) = self.inner.tokens.lock().expect("poisoned").get(&key) {
                if t.expires > Instant::now() {
                    return Ok(t.value.clone());
                }
            }
        }
        let what = "token request".to_string();
        let mut req = match cred {
            Some(Credential::IdentityToken(refresh)) => {
                let mut form: Vec<(&str, String)> = vec![
                    ("grant_type", "refresh_token".into()),
                    ("refresh_token", refresh.clone()),
                    ("client_id", "hoist".into()),
                ];
                if let Some(s) = service {
                    form.push(("service", s.to_string()));
                }
                if !scopes.is_empty() {
                    form.push((
                        "scope",
                        scopes.iter().cloned().collect::<Vec<_>>().join(" "),
                    ));
                }
                self.realm_client(ep, realm)?.post(realm).form(&form)
            }
            _ => {
                let mut q: Vec<(&str, String)> = Vec::new();
                if let Some(s) = service {
                    q.push(("service", s.to_string()));
                }
                for s in scopes {
                    q.push(("scope", s.clone()));
                }
                let mut r = self.realm_client(ep, realm)?.get(realm).query(&q);
                if let Some(Credential::Basic { username, password }) = cred {
                    r = r.basic_auth(username, Some(password));
                }
                r
            }
        };
        req = req.header(ACCEPT, "application/json");
        let resp = req.send().map_err(|e| Error::Transport {
            registry: ep.host.clone(),
            what: what.clone(),
            source: strip(e),
        })?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(Error::Unauthorized {
                registry: ep.cred_name.clone(),
                had_credentials: cred.is_some(),
                detail: format!(
                    "the token service refused the request (HTTP {})",
                    status.as_u16()
                ),
            });
        }
        if !status.is_success() {
            return Err(registry_error(&ep.host, &what, resp));
        }
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            #[serde(default)]
            token: String,
            #[serde(default)]
            access_token: String,
            #[serde(default)]
            expires_in: Option<u64>,
        }
        let body = read_body(resp, 1 << 20, &ep.host, &what)?;
        let t: TokenResponse = serde_json::from_slice(&body).map_err(|_| Error::Protocol {
            registry: ep.host.clone(),
            message: "the token service answered with something that is not a token".into(),
        })?;
        let value = if t.token.is_empty() {
            t.access_token
        } else {
            t.token
        };
        if value.is_empty() {
            return Err(Error::Protocol {
                registry: ep.host.clone(),
                message: "the token service answered without a token".into(),
            });
        }
        // Tokens last at least 60 s per the spec; renew 10 s early.
        let life = t.expires_in.unwrap_or(60).max(10);
        self.inner.tokens.lock().expect("poisoned").insert(
            key,
            Token {
                value: value.clone(),
                expires: Instant::now() + Duration::from_secs(life.saturating_sub(10).max(1)),
            },
        );
        Ok(value)
    }

    fn authorize(
        &self,
        ep: &Endpoint,
        challenge: &Challenge,
        repo: &str,
        scopes: &BTreeSet<String>,
        fresh: bool,
        req: RequestBuilder,
    ) -> Result<RequestBuilder> {
        Ok(match challenge {
            Challenge::None => req,
            Challenge::Basic => match self.credential(ep, repo)? {
                Some(Credential::Basic { username, password }) => {
                    req.basic_auth(username, Some(password))
                }
                Some(Credential::RegistryToken(t)) => req.bearer_auth(t),
                _ => req,
            },
            Challenge::Bearer { realm, service } => {
                let cred = self.credential(ep, repo)?;
                let t = self.token(ep, realm, service.as_deref(), scopes, cred.as_ref(), fresh)?;
                req.bearer_auth(t)
            }
        })
    }

    /// Send one request with authentication. `build` is called again (at most once)
    /// if the registry asks for a different token; it returns `None` when the body
    /// cannot be replayed. Error statuses other than 401 are returned as responses.
    pub(crate) fn send(
        &self,
        ep: &Endpoint,
        repo: &str,
        scopes: &[String],
        what: &str,
        mut build: impl FnMut(&Http) -> Option<RequestBuilder>,
    ) -> Result<Response> {
        let mut scopes: BTreeSet<String> = scopes.iter().cloned().collect();
        let mut challenge = ep.challenge.clone();
        let mut fresh = false;
        for round in 0..2 {
            let Some(req) = build(&ep.http) else {
                return Err(Error::Protocol {
                    registry: ep.host.clone(),
                    message: format!("{what}: authentication changed during an upload"),
                });
            };
            let req = self.authorize(ep, &challenge, repo, &scopes, fresh, req)?;
            let resp = req.send().map_err(|e| Error::Transport {
                registry: ep.host.clone(),
                what: what.to_string(),
                source: strip(e),
            })?;
            if ep.plain && resp.status().is_redirection() {
                if let Some(resp) = self.follow_https_redirect(ep, what, &resp, &mut build)? {
                    return Ok(resp);
                }
            }
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
            let cred = self.credential(ep, repo)?;
            let new = parse_challenge(resp.headers());
            if round == 0 {
                if let Some(Challenge::Bearer { realm, service }) = &new {
                    if let Some(s) = bearer_param(resp.headers(), "scope") {
                        scopes.extend(s.split(' ').map(str::to_string));
                    }
                    challenge = Challenge::Bearer {
                        realm: realm.clone(),
                        service: service.clone(),
                    };
                    fresh = true;
                    continue;
                }
                if new == Some(Challenge::Basic) && challenge != Challenge::Basic {
                    challenge = Challenge::Basic;
                    continue;
                }
            }
            let body = response_error_body(resp);
            return Err(Error::Unauthorized {
                registry: ep.cred_name.clone(),
                had_credentials: cred.is_some(),
                detail: if body.1.is_empty() {
                    format!("{what} was refused")
                } else {
                    format!("{what}: {}", body.1)
                },
            });
        }
        unreachable!("the loop returns in its second round")
    }

    /// The client for a token realm: a plain endpoint's client has no system roots,
    /// so an HTTPS realm gets the full one.
    pub(crate) fn realm_client(&self, ep: &Endpoint, realm: &str) -> Result<Http> {
        if ep.plain && realm.starts_with("https://") {
            self.http_client(&ep.host, ep.verify, false)
        } else {
            Ok(ep.http.clone())
        }
    }

    /// Follow a plain-HTTP endpoint's redirect to HTTPS (blob storage) with a client
    /// that trusts the system roots, without the registry's credentials.
    fn follow_https_redirect(
        &self,
        ep: &Endpoint,
        what: &str,
        resp: &Response,
        build: &mut impl FnMut(&Http) -> Option<RequestBuilder>,
    ) -> Result<Option<Response>> {
        let Some(loc) = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .filter(|l| l.starts_with("https://"))
        else {
            return Ok(None);
        };
        let url = reqwest::Url::parse(loc).map_err(|_| Error::Protocol {
            registry: ep.host.clone(),
            message: format!("{what}: invalid redirect location"),
        })?;
        let full = self.http_client(&ep.host, ep.verify, false)?;
        let Some(rb) = build(&full) else {
            return Ok(None);
        };
        let transport = |e: reqwest::Error| Error::Transport {
            registry: ep.host.clone(),
            what: what.to_string(),
            source: strip(e),
        };
        let mut req = rb.build().map_err(transport)?;
        *req.url_mut() = url;
        req.headers_mut().remove(reqwest::header::AUTHORIZATION);
        full.execute(req).map(Some).map_err(transport)
    }

    /// Send and turn error statuses into [`Error::Registry`].
    pub(crate) fn send_ok(
        &self,
        ep: &Endpoint,
        repo: &str,
        scopes: &[String],
        what: &str,
        build: impl FnMut(&Http) -> Option<RequestBuilder>,
    ) -> Result<Response> {
        let resp = self.send(ep, repo, scopes, what, build)?;
        if resp.status().is_success() {
            Ok(resp)
        } else {
            Err(registry_error(&ep.host, what, resp))
        }
    }

    /// A request builder for `method` on `ep` at `path_or_url` (absolute URLs from
    /// `Location` headers are used as they are).
    pub(crate) fn url(ep: &Endpoint, path_or_url: &str) -> String {
        if path_or_url.starts_with("http://") || path_or_url.starts_with("https://") {
            path_or_url.to_string()
        } else {
            format!("{}{}", ep.base, path_or_url)
        }
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

    pub(crate) fn method(http: &Http, m: Method, url: &str) -> RequestBuilder {
        http.request(m, url)
    }
}

fn read_file(p: &Path) -> Result<Vec<u8>> {
    std::fs::read(p).map_err(|e| Error::Io {
        path: p.to_path_buf(),
        source: e,
    })
}

/// Check that a CA certificate can be loaded; returns how many certificates it holds.
pub fn validate_ca(ca: &CaCert) -> Result<usize> {
    load_ca(ca).map(|c| c.len())
}

fn load_ca(ca: &CaCert) -> Result<Vec<reqwest::Certificate>> {
    let (pem, name) = match ca {
        CaCert::File(p) => (read_file(p)?, p.display().to_string()),
        CaCert::Pem(s) => (s.as_bytes().to_vec(), "PEM text".to_string()),
    };
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| Error::Config(format!("CA certificate {name}: {e}")))?;
    if certs.is_empty() {
        return Err(Error::Config(format!(
            "CA certificate {name}: no PEM certificate found"
        )));
    }
    Ok(certs)
}

/// Drop the URL (it may carry signed state) from a reqwest error.
pub(crate) fn strip(e: reqwest::Error) -> reqwest::Error {
    e.without_url()
}

fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.min(10));
    let cap = Duration::from_secs(30);
    let d = exp.min(cap);
    // Jitter: up to +50 %, from the clock's nanoseconds (no RNG dependency needed).
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    d + d.mul_f64(f64::from(nanos % 500) / 1000.0)
}

/// Read at most `limit` bytes of a response body.
pub(crate) fn read_body(resp: Response, limit: u64, host: &str, what: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    resp.take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| {
            Error::Image(hoist_image::Error::stream(
                format!("{host}: {what}: reading the response"),
                e,
            ))
        })?;
    if out.len() as u64 > limit {
        return Err(Error::Protocol {
            registry: host.to_string(),
            message: format!("{what}: response larger than the {limit} bytes allowed"),
        });
    }
    Ok(out)
}

fn error_body(bytes: &[u8]) -> (Vec<ErrorCode>, String) {
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(default)]
        errors: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_slice::<Body>(bytes) {
        Ok(b) => {
            let codes = b.errors.iter().map(|i| ErrorCode::parse(&i.code)).collect();
            let msg = b
                .errors
                .iter()
                .map(|i| i.message.clone())
                .filter(|m| !m.is_empty())
                .collect::<Vec<_>>()
                .join("; ");
            (codes, msg)
        }
        Err(_) => (Vec::new(), String::new()),
    }
}

fn response_error_body(resp: Response) -> (Vec<ErrorCode>, String) {
    let mut bytes = Vec::new();
    // Best effort: an unreadable error body still leaves the status to report.
    let _ = resp.take(64 << 10).read_to_end(&mut bytes);
    error_body(&bytes)
}

/// Turn an error response into [`Error::Registry`].
pub(crate) fn registry_error(host: &str, what: &str, resp: Response) -> Error {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let mut bytes = Vec::new();
    let _ = resp.take(64 << 10).read_to_end(&mut bytes);
    registry_error_parts(host, what, status, &headers, &bytes)
}

/// [`registry_error`] from an already read response.
pub(crate) fn registry_error_parts(
    host: &str,
    what: &str,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
) -> Error {
    let retry_after = headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let (codes, message) = error_body(body);
    Error::Registry {
        registry: host.to_string(),
        what: what.to_string(),
        status,
        codes,
        message,
        retry_after,
    }
}

/// `Retry-After`: delay-seconds or an HTTP date.
pub(crate) fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

fn parse_challenge(h: &HeaderMap) -> Option<Challenge> {
    let mut basic = false;
    for v in h.get_all(WWW_AUTHENTICATE) {
        let Ok(s) = v.to_str() else { continue };
        let (scheme, params) = s.trim().split_once(' ').unwrap_or((s.trim(), ""));
        if scheme.eq_ignore_ascii_case("bearer") {
            let p = parse_params(params);
            let realm = p.get("realm")?.clone();
            return Some(Challenge::Bearer {
                realm,
                service: p.get("service").cloned(),
            });
        }
        if scheme.eq_ignore_ascii_case("basic") {
            basic = true;
        }
    }
    basic.then_some(Challenge::Basic)
}

fn bearer_param(h: &HeaderMap, name: &str) -> Option<String> {
    for v in h.get_all(WWW_AUTHENTICATE) {
        let Ok(s) = v.to_str() else { continue };
        let (scheme, params) = s.trim().split_once(' ').unwrap_or((s.trim(), ""));
        if scheme.eq_ignore_ascii_case("bearer") {
            return parse_params(params).get(name).cloned();
        }
    }
    None
}

/// Parse `k="v", k2=v2` auth parameters (quoted strings may contain commas).
fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == b' ' || b[i] == b',') {
            i += 1;
        }
        let ks = i;
        while i < b.len() && b[i] != b'=' {
            i += 1;
        }
        let key = s[ks..i].trim().to_ascii_lowercase();
        i += 1;
        let mut val = String::new();
        if i < b.len() && b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                val.push(b[i] as char);
                i += 1;
            }
            i += 1;
        } else {
            let vs = i;
            while i < b.len() && b[i] != b',' {
                i += 1;
            }
            val = s[vs.min(b.len())..i.min(b.len())].trim().to_string();
        }
        if !key.is_empty() {
            out.insert(key, val);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let mut h = HeaderMap::new();
        h.insert(
            WWW_AUTHENTICATE,
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#
                .parse()
                .unwrap(),
        );
        assert_eq!(
            parse_challenge(&h),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into())
            })
        );
        assert_eq!(
            bearer_param(&h, "scope").unwrap(),
            "repository:a/b:pull,push"
        );
        let mut h = HeaderMap::new();
        h.insert(
            WWW_AUTHENTICATE,
            r#"Basic realm="Registry Realm""#.parse().unwrap(),
        );
        assert_eq!(parse_challenge(&h), Some(Challenge::Basic));
    }

    #[test]
    fn misc() {
        assert!(is_loopback_host("localhost:5000"));
        assert!(is_loopback_host("127.0.0.1:5000"));
        assert!(is_loopback_host("127.8.9.10"));
        assert!(is_loopback_host("[::1]:5000"));
        assert!(!is_loopback_host("10.0.0.1:5000"));
        assert!(!is_loopback_host("example.com"));
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert!(backoff(Duration::from_millis(100), 3) >= Duration::from_millis(800));
        assert!(backoff(Duration::from_millis(100), 30) <= Duration::from_secs(45));
    }
}
