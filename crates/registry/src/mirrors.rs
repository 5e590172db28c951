//! Registry mirrors: where reads of a registry go, in which order.
//!
//! hoist reads mirrors the way containerd does, from `hosts.toml` files in a
//! `certs.d`-style directory tree (the primary format; see `docs/registries.md`):
//!
//! ```text
//! /etc/containerd/certs.d/            ClientConfig::hosts_dirs (--registry-config DIR)
//!   docker.io/hosts.toml              mirrors of docker.io
//!   quay.io/hosts.toml
//!   127.0.0.1:5000/hosts.toml         a registry with a port
//!   _default/hosts.toml               any registry without a directory of its own
//!
//! server = "https://registry-1.docker.io"     # the upstream (optional)
//!
//! [host."https://mirror.example"]             # tried first, in file order
//!   capabilities = ["pull", "resolve"]        # resolve: may answer tag lookups
//! [host."http://127.0.0.1:5001"]
//!   capabilities = ["pull"]                   # only by-digest reads
//!   skip_verify = true
//! ```
//!
//! `--registry-mirror URL` (task: `REGISTRY_MIRRORS`) adds a docker.io mirror,
//! `--registry-mirror REGISTRY=URL` one for any registry; these come before the
//! file's hosts.
//!
//! How a read goes: each mirror is tried once, without retries (a mirror that
//! cannot be reached is skipped for the rest of the run); then the upstream, with
//! the client's retries. The upstream is only contacted when no mirror served the
//! request, so an unreachable upstream costs nothing while a mirror has the image.
//! The source that served a repository is remembered and tried first for its later
//! reads (the image's blobs come from where its manifest came from).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::client::Endpoint;
use crate::reference::{DOCKER_HUB, DOCKER_HUB_API};
use crate::{Client, Error, Reference, Result};

/// One mirror of a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    /// `http://` or `https://`, or `None` to probe as for a registry host.
    pub scheme: Option<String>,
    /// `host[:port]`.
    pub host: String,
    /// Whether it may answer tag lookups (containerd's `resolve` capability); a
    /// mirror without it serves only reads by digest.
    pub resolve: bool,
    /// Whether it may serve content at all (containerd's `pull` capability).
    pub pull: bool,
    /// Whether TLS certificates go unverified (`skip_verify`).
    pub skip_verify: bool,
}

impl Mirror {
    /// Parse `[SCHEME://]HOST[:PORT]` (a trailing `/` or `/v2` is dropped).
    pub fn parse(url: &str) -> Result<Mirror> {
        let (scheme, rest) = match url.split_once("://") {
            Some((s, r)) if s == "http" || s == "https" => (Some(s.to_string()), r),
            Some(_) => {
                return Err(Error::Config(format!(
                    "registry mirror {url:?}: only http:// and https:// are supported"
                )))
            }
            None => (None, url),
        };
        let host = rest.trim_end_matches('/').trim_end_matches("/v2");
        if host.is_empty() || host.contains('/') {
            return Err(Error::Config(format!(
                "registry mirror {url:?}: expected [SCHEME://]HOST[:PORT] (paths are not supported)"
            )));
        }
        Ok(Mirror {
            scheme,
            host: host.to_string(),
            resolve: true,
            pull: true,
            skip_verify: false,
        })
    }

    fn key(&self) -> String {
        format!(
            "mirror:{}://{}",
            self.scheme.as_deref().unwrap_or("auto"),
            self.host
        )
    }
}

/// Where a registry's reads go: its mirrors in order, then the upstream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hosts {
    /// Mirrors, tried in order.
    pub mirrors: Vec<Mirror>,
    /// The upstream from `server`, if the file overrides it.
    pub server: Option<Mirror>,
    /// The `hosts.toml` this came from, if any.
    pub file: Option<PathBuf>,
}

/// The `hosts.toml` that applies to `registry` in `dirs` (the first directory that
/// has `<registry>/hosts.toml`, else `_default/hosts.toml`), parsed.
pub fn load_hosts(dirs: &[PathBuf], registry: &str) -> Result<Option<Hosts>> {
    for name in [registry, "_default"] {
        for dir in dirs {
            let p = dir.join(name).join("hosts.toml");
            match std::fs::read_to_string(&p) {
                Ok(text) => return parse_hosts(&text, &p).map(Some),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {}
                Err(e) => return Err(Error::Io { path: p, source: e }),
            }
        }
    }
    Ok(None)
}

/// Keys of containerd's format that hoist does not implement: refused with a clear
/// error rather than ignored.
const UNSUPPORTED: &[&str] = &["ca", "client", "header", "override_path", "dial_timeout"];

/// Parse a `hosts.toml` (`file` is for messages).
pub fn parse_hosts(text: &str, file: &Path) -> Result<Hosts> {
    let bad = |m: String| Error::Config(format!("{}: {m}", file.display()));
    let table: toml::Table = text.parse().map_err(|e| bad(format!("{e}")))?;
    let mut out = Hosts {
        file: Some(file.to_path_buf()),
        ..Hosts::default()
    };
    for (k, v) in &table {
        match k.as_str() {
            "server" => {
                let s = v
                    .as_str()
                    .ok_or_else(|| bad("`server` must be a string".into()))?;
                out.server = Some(Mirror::parse(s).map_err(|e| bad(e.to_string()))?);
            }
            "host" => {
                let hosts = v
                    .as_table()
                    .ok_or_else(|| bad("`host` must be a table of [host.\"URL\"]".into()))?;
                // `toml::Table` keeps the file's order (feature preserve_order):
                // containerd tries hosts in the order they are written.
                for (url, h) in hosts {
                    let mut m = Mirror::parse(url).map_err(|e| bad(e.to_string()))?;
                    let h = h
                        .as_table()
                        .ok_or_else(|| bad(format!("[host.{url:?}] must be a table")))?;
                    host_options(&mut m, h, &format!("[host.{url:?}]")).map_err(bad)?;
                    out.mirrors.push(m);
                }
            }
            // Top-level options apply to `server` (the upstream).
            "capabilities" | "skip_verify" => {}
            other if UNSUPPORTED.contains(&other) => {
                return Err(bad(format!(
                    "`{other}` is not supported by hoist (see docs/registries.md)"
                )))
            }
            other => return Err(bad(format!("unknown key `{other}`"))),
        }
    }
    if let Some(s) = &mut out.server {
        host_options(s, &table, "the top level").map_err(bad)?;
    }
    Ok(out)
}

fn host_options(m: &mut Mirror, t: &toml::Table, what: &str) -> std::result::Result<(), String> {
    for (k, v) in t {
        match k.as_str() {
            "capabilities" => {
                let caps = v
                    .as_array()
                    .ok_or_else(|| format!("{what}: `capabilities` must be a list"))?;
                let mut names = HashSet::new();
                for c in caps {
                    let c = c
                        .as_str()
                        .ok_or_else(|| format!("{what}: capabilities are strings"))?;
                    if !["pull", "resolve", "push"].contains(&c) {
                        return Err(format!(
                            "{what}: unknown capability {c:?} (expected pull, resolve, push)"
                        ));
                    }
                    names.insert(c);
                }
                m.pull = names.contains("pull");
                m.resolve = names.contains("resolve");
            }
            "skip_verify" => {
                m.skip_verify = v
                    .as_bool()
                    .ok_or_else(|| format!("{what}: `skip_verify` must be true or false"))?;
            }
            "server" | "host" => {}
            other if UNSUPPORTED.contains(&other) => {
                return Err(format!(
                    "{what}: `{other}` is not supported by hoist (see docs/registries.md)"
                ))
            }
            other => return Err(format!("{what}: unknown key `{other}`")),
        }
    }
    Ok(())
}

/// Mirror state shared by a client's clones.
#[derive(Default)]
pub(crate) struct MirrorState {
    /// Parsed hosts per registry.
    hosts: Mutex<HashMap<String, Arc<Hosts>>>,
    /// `registry/repository` → the key of the source that served it last.
    served: Mutex<HashMap<String, (String, String)>>,
    /// Mirrors that could not be reached (skipped from then on).
    dead: Mutex<HashSet<String>>,
}

/// One place a read can go.
#[derive(Debug, Clone)]
enum Route {
    Mirror(Mirror),
    Upstream,
}

impl Client {
    /// Where reads of `registry` go: `--registry-mirror`s, then the `hosts.toml` hosts.
    pub fn hosts(&self, registry: &str) -> Result<Arc<Hosts>> {
        if let Some(h) = self
            .inner
            .mirrors
            .hosts
            .lock()
            .expect("poisoned")
            .get(registry)
        {
            return Ok(h.clone());
        }
        let cfg = &self.inner.config;
        let mut hosts = load_hosts(&cfg.hosts_dirs, registry)?.unwrap_or_default();
        let mut flags = Vec::new();
        for m in &cfg.mirrors {
            let (reg, url) = match m.split_once('=') {
                Some((reg, url)) => (crate::login::normalize_registry(reg)?, url),
                None => (DOCKER_HUB.to_string(), m.as_str()),
            };
            if reg == registry {
                flags.push(Mirror::parse(url)?);
            }
        }
        flags.append(&mut hosts.mirrors);
        hosts.mirrors = flags;
        let hosts = Arc::new(hosts);
        self.inner
            .mirrors
            .hosts
            .lock()
            .expect("poisoned")
            .insert(registry.to_string(), hosts.clone());
        Ok(hosts)
    }

    /// The upstream endpoint of a registry (its `server` override, if any).
    pub(crate) fn upstream_endpoint(&self, registry: &str) -> Result<Arc<Endpoint>> {
        if let Some(s) = self.hosts(registry)?.server.clone() {
            return self.mirror_endpoint(&s);
        }
        let host = if registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            registry
        };
        self.endpoint(host, registry)
    }

    /// A mirror's endpoint, pinged once (no retries: the next source is there).
    /// Credentials for a mirror are looked up under the mirror's own host.
    fn mirror_endpoint(&self, m: &Mirror) -> Result<Arc<Endpoint>> {
        let key = m.key();
        if let Some(ep) = self.cached_endpoint(&key) {
            return Ok(ep);
        }
        let ep = Arc::new(self.ping(&m.host, &m.host, m.scheme.as_deref(), m.skip_verify)?);
        self.cache_endpoint(key, ep.clone());
        Ok(ep)
    }

    /// The host that last served `r`'s repository, and whether it is a mirror.
    pub fn served_by(&self, r: &Reference) -> Option<(String, bool)> {
        let key = format!("{}/{}", r.registry(), r.repository());
        self.inner
            .mirrors
            .served
            .lock()
            .expect("poisoned")
            .get(&key)
            .map(|(route, host)| (host.clone(), route.starts_with("mirror:")))
    }

    /// Run a read of `r` against its mirrors, then the upstream (see the module docs).
    /// `by_digest`: the read names content by digest (a mirror without the `resolve`
    /// capability may serve it).
    pub(crate) fn read_from<T>(
        &self,
        r: &Reference,
        what: &str,
        by_digest: bool,
        mut f: impl FnMut(&Arc<Endpoint>) -> Result<T>,
    ) -> Result<T> {
        let hosts = self.hosts(r.registry())?;
        let repo_key = format!("{}/{}", r.registry(), r.repository());
        let mut routes: Vec<Route> = hosts
            .mirrors
            .iter()
            .filter(|m| m.pull && (by_digest || m.resolve))
            .cloned()
            .map(Route::Mirror)
            .collect();
        routes.push(Route::Upstream);
        let last = self
            .inner
            .mirrors
            .served
            .lock()
            .expect("poisoned")
            .get(&repo_key)
            .map(|(k, _)| k.clone());
        if let Some(last) = last {
            if let Some(i) = routes.iter().position(|rt| route_key(rt) == last) {
                let rt = routes.remove(i);
                routes.insert(0, rt);
            }
        }
        for rt in routes {
            let key = route_key(&rt);
            let result = match &rt {
                Route::Mirror(m) => {
                    if self
                        .inner
                        .mirrors
                        .dead
                        .lock()
                        .expect("poisoned")
                        .contains(&key)
                    {
                        continue;
                    }
                    match self.mirror_endpoint(m) {
                        Ok(ep) => f(&ep).map(|v| (v, ep.host.clone())),
                        Err(e) => {
                            tracing::info!("mirror {} unreachable: {e}; skipping it", m.host);
                            self.inner
                                .mirrors
                                .dead
                                .lock()
                                .expect("poisoned")
                                .insert(key);
                            continue;
                        }
                    }
                }
                Route::Upstream => self.with_retry(what, |_| {
                    let ep = self.upstream_endpoint(r.registry())?;
                    f(&ep).map(|v| (v, ep.host.clone()))
                }),
            };
            match result {
                Ok((v, host)) => {
                    self.inner
                        .mirrors
                        .served
                        .lock()
                        .expect("poisoned")
                        .insert(repo_key, (key, host));
                    return Ok(v);
                }
                Err(e) => match rt {
                    Route::Mirror(m) => {
                        tracing::info!(
                            "mirror {} failed for {what}: {e}; trying the next source",
                            m.host
                        );
                    }
                    Route::Upstream => return Err(e),
                },
            }
        }
        unreachable!("the upstream route always returns")
    }
}

fn route_key(rt: &Route) -> String {
    match rt {
        Route::Mirror(m) => m.key(),
        Route::Upstream => "upstream".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_toml_in_file_order_with_capabilities() {
        let h = parse_hosts(
            r#"
server = "https://registry-1.docker.io"
[host."https://z-mirror.example"]
  capabilities = ["pull", "resolve"]
[host."http://127.0.0.1:5001"]
  capabilities = ["pull"]
  skip_verify = true
"#,
            Path::new("hosts.toml"),
        )
        .unwrap();
        assert_eq!(h.mirrors.len(), 2);
        assert_eq!(h.mirrors[0].host, "z-mirror.example", "file order kept");
        assert!(h.mirrors[0].resolve && h.mirrors[0].pull);
        assert_eq!(h.mirrors[1].scheme.as_deref(), Some("http"));
        assert!(!h.mirrors[1].resolve && h.mirrors[1].pull && h.mirrors[1].skip_verify);
        assert_eq!(h.server.unwrap().host, "registry-1.docker.io");
    }

    #[test]
    fn unsupported_and_unknown_keys_are_refused() {
        for (text, want) in [
            (
                "[host.\"https://m\"]\nca = \"x.crt\"\n",
                "`ca` is not supported",
            ),
            (
                "[host.\"https://m\"]\noverride_path = true\n",
                "override_path",
            ),
            ("serverr = \"x\"\n", "unknown key `serverr`"),
            ("[host.\"ftp://m\"]\n", "only http:// and https://"),
            ("[host.\"https://m/path\"]\n", "paths are not supported"),
            (
                "[host.\"https://m\"]\ncapabilities = [\"pul\"]\n",
                "unknown capability",
            ),
            ("server = ", "hosts.toml"),
        ] {
            let e = parse_hosts(text, Path::new("/x/hosts.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(e.contains("/x/hosts.toml"), "{e}");
        }
    }

    #[test]
    fn registry_dir_wins_over_default() {
        let d = tempfile::tempdir().unwrap();
        let w = |name: &str, url: &str| {
            std::fs::create_dir_all(d.path().join(name)).unwrap();
            std::fs::write(
                d.path().join(name).join("hosts.toml"),
                format!("[host.\"{url}\"]\n"),
            )
            .unwrap();
        };
        w("_default", "http://127.0.0.1:1");
        w("quay.io", "http://127.0.0.1:2");
        let dirs = vec![d.path().to_path_buf()];
        let q = load_hosts(&dirs, "quay.io").unwrap().unwrap();
        assert_eq!(q.mirrors[0].host, "127.0.0.1:2");
        let o = load_hosts(&dirs, "ghcr.io").unwrap().unwrap();
        assert_eq!(o.mirrors[0].host, "127.0.0.1:1");
        assert_eq!(
            load_hosts(&[d.path().join("none")], "ghcr.io").unwrap(),
            None
        );
    }
}
