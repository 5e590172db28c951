//! `hoist login` / `hoist logout`.

use std::path::{Path, PathBuf};

use reqwest::Method;

use crate::auth::{default_login_file, remove_credentials, store_credentials, Credential};
use crate::client::{registry_error, Challenge};
use crate::reference::DOCKER_HUB;
use crate::{Client, Error, Result};

/// Normalise what a user types after `login` (`docker.io`, `https://index.docker.io/v1/`,
/// `localhost:5000`) to a registry name.
pub fn normalize_registry(input: &str) -> Result<String> {
    let s = input
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let s = s
        .strip_suffix("/v1")
        .or_else(|| s.strip_suffix("/v2"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or("");
    if host.is_empty() {
        return Err(Error::Config(format!("invalid registry {input:?}")));
    }
    Ok(match host {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => DOCKER_HUB.to_string(),
        h => {
            // Validate through the reference parser.
            crate::Reference::parse(&format!("{h}/x"))?;
            h.to_string()
        }
    })
}

impl Client {
    /// Verify `username`/`password` against `registry`, then store them in `file`
    /// (default: `$REGISTRY_AUTH_FILE`, else Docker's `config.json`) in Docker's
    /// format. Returns the file written.
    pub fn login(
        &self,
        registry: &str,
        username: &str,
        password: &str,
        file: Option<&Path>,
    ) -> Result<PathBuf> {
        let registry = normalize_registry(registry)?;
        let ep = self.registry_endpoint(&registry)?;
        let cred = Credential::Basic {
            username: username.to_string(),
            password: password.to_string(),
        };
        match &ep.challenge {
            Challenge::None => {
                tracing::info!(registry, "the registry does not require authentication");
            }
            Challenge::Basic => {
                let resp = ep
                    .http
                    .request(Method::GET, format!("{}/v2/", ep.base))
                    .basic_auth(username, Some(password))
                    .send()
                    .map_err(|e| Error::Transport {
                        registry: registry.clone(),
                        what: "GET /v2/".into(),
                        cause: e.without_url(),
                    })?;
                if resp.status() == reqwest::StatusCode::UNAUTHORIZED {
                    return Err(Error::Unauthorized {
                        registry,
                        had_credentials: true,
                        detail: "invalid username or password".into(),
                    });
                }
                if !resp.status().is_success() {
                    return Err(registry_error(&ep.host, "GET /v2/", resp));
                }
            }
            Challenge::Bearer { realm, service } => {
                let mut q: Vec<(&str, &str)> = vec![("account", username)];
                if let Some(s) = service {
                    q.push(("service", s));
                }
                let resp = self
                    .realm_client(&ep, realm)?
                    .get(realm)
                    .query(&q)
                    .basic_auth(username, Some(password))
                    .send()
                    .map_err(|e| Error::Transport {
                        registry: registry.clone(),
                        what: "token request".into(),
                        cause: e.without_url(),
                    })?;
                if resp.status() == reqwest::StatusCode::UNAUTHORIZED
                    || resp.status() == reqwest::StatusCode::FORBIDDEN
                {
                    return Err(Error::Unauthorized {
                        registry,
                        had_credentials: true,
                        detail: "invalid username or password".into(),
                    });
                }
                if !resp.status().is_success() {
                    return Err(registry_error(&ep.host, "token request", resp));
                }
            }
        }
        let file = file
            .map(Path::to_path_buf)
            .unwrap_or_else(default_login_file);
        store_credentials(&file, &registry, &cred)?;
        self.clear_tokens();
        Ok(file)
    }
}

/// Remove stored credentials for `registry` from `file` (default as for login).
/// Returns whether there were any.
pub fn logout(registry: &str, file: Option<&Path>) -> Result<bool> {
    let registry = normalize_registry(registry)?;
    let file = file
        .map(Path::to_path_buf)
        .unwrap_or_else(default_login_file);
    remove_credentials(&file, &registry)
}
