//! TLS and HTTP clients: extra roots (configured CAs, `certs.d/<host>/`), client
//! identities, and the blocking and async reqwest clients built from them.

use std::path::{Path, PathBuf};

use reqwest::blocking::Client as Http;

use super::{CaCert, ClientConfig, Endpoint};
use crate::{Client, Error, Result};

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

impl Client {
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
    pub(super) fn http_client(&self, host: &str, verify: bool, plain: bool) -> Result<Http> {
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
            // The idle timeout: the wait for headers and each body read (see pace.rs).
            .timeout(self.inner.config.read_timeout)
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

pub(super) fn load_ca(ca: &CaCert) -> Result<Vec<reqwest::Certificate>> {
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
