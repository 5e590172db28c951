//! The auth challenge flow: Basic or Bearer from a registry's `WWW-Authenticate`,
//! credentials per repository, and a token cache per host and scope set.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use reqwest::blocking::RequestBuilder;
use reqwest::header::{HeaderMap, ACCEPT, WWW_AUTHENTICATE};
use reqwest::StatusCode;

use super::pace::transport;
use super::response::{read_body, registry_error};
use super::Endpoint;
use crate::auth::Credential;
use crate::{Client, Error, Result};

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

#[derive(Clone)]
pub(super) struct Token {
    value: String,
    expires: Instant,
}

impl Client {
    pub(super) fn credential(&self, ep: &Endpoint, repo: &str) -> Result<Option<Credential>> {
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
        let resp = req
            .send()
            .map_err(|e| transport(&ep.host, &what, e, self.inner.config.read_timeout))?;
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
        let body = read_body(&self.inner.config, resp, 1 << 20, &ep.host, &what)?;
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

    pub(super) fn authorize(
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
}

pub(super) fn parse_challenge(h: &HeaderMap) -> Option<Challenge> {
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

pub(super) fn bearer_param(h: &HeaderMap, name: &str) -> Option<String> {
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
}
