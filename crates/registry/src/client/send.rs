//! Sending one request: authentication (with one re-challenge), redirects of
//! plain-HTTP endpoints to HTTPS blob storage, error statuses.

use std::collections::BTreeSet;

use reqwest::blocking::{Client as Http, RequestBuilder, Response};
use reqwest::{Method, StatusCode};

use super::challenge::{bearer_param, parse_challenge, Challenge};
use super::pace::transport;
use super::response::{registry_error, response_error_body};
use super::Endpoint;
use crate::{Client, Error, Result};

impl Client {
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
            self.count_request(&ep.host);
            let resp = req
                .send()
                .map_err(|e| transport(&ep.host, what, e, self.inner.config.read_timeout))?;
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
        let transport =
            |e: reqwest::Error| transport(&ep.host, what, e, self.inner.config.read_timeout);
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

    pub(crate) fn method(http: &Http, m: Method, url: &str) -> RequestBuilder {
        http.request(m, url)
    }
}
