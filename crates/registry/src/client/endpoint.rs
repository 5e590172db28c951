//! Reaching a registry host: scheme (HTTPS, or HTTP for loopback and insecure
//! registries), its HTTP client and its auth challenge, from `GET /v2/`.

use std::sync::Arc;

use reqwest::blocking::Client as Http;
use reqwest::StatusCode;

use super::challenge::{parse_challenge, Challenge};
use super::is_loopback_host;
use super::pace::transport;
use super::response::registry_error;
use crate::{Client, Error, Result};

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

impl Client {
    fn is_insecure(&self, host: &str) -> bool {
        self.inner.config.insecure.iter().any(|h| {
            let h = h
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .trim_end_matches('/');
            h == host
        })
    }

    /// The endpoint for an API host, pinging it the first time.
    pub(crate) fn endpoint(&self, host: &str, cred_name: &str) -> Result<Arc<Endpoint>> {
        if let Some(ep) = self.inner.endpoints.lock().expect("poisoned").get(host) {
            return Ok(ep.clone());
        }
        let ep = Arc::new(self.with_retry(&format!("reaching registry {host}"), |_| {
            self.ping(host, cred_name, None, false)
        })?);
        self.inner
            .endpoints
            .lock()
            .expect("poisoned")
            .insert(host.to_string(), ep.clone());
        Ok(ep)
    }

    /// The upstream endpoint for a registry name (see [`crate::mirrors`]).
    pub(crate) fn registry_endpoint(&self, registry: &str) -> Result<Arc<Endpoint>> {
        self.upstream_endpoint(registry)
    }

    /// Reach `host`: pick the scheme and learn its auth challenge from `GET /v2/`.
    /// `skip_verify`: HTTPS without certificate checks, as for `--insecure-registry`.
    pub(crate) fn ping(
        &self,
        host: &str,
        cred_name: &str,
        force_scheme: Option<&str>,
        skip_verify: bool,
    ) -> Result<Endpoint> {
        let explicit = self.is_insecure(host) || skip_verify;
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
            self.count_request(host);
            let resp = match http.get(format!("{base}/v2/")).send() {
                Ok(r) => r,
                Err(e) => {
                    let e = transport(host, &what, e, self.inner.config.read_timeout);
                    tracing::debug!(host, scheme, error = %e, "ping failed");
                    // A stall says most (the HTTPS probe after a stalled HTTP one
                    // mostly fails its handshake).
                    if !matches!(last_err, Some(Error::Stalled { .. })) {
                        last_err = Some(e);
                    }
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
}
