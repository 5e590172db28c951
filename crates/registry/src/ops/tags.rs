//! Listing tags (with `Link` pagination) and referrers.

use hoist_image::{Digest, Index};
use reqwest::header::LINK;
use reqwest::{Method, StatusCode};

use super::{header, MAX_MANIFEST_SIZE};
use crate::client::{read_body, registry_error, scope};
use crate::{Client, Error, Reference, Result};

impl Client {
    /// Every tag of `r`'s repository, following `Link` pagination.
    pub fn list_tags(&self, r: &Reference) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct Tags {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let repo = r.repository();
        let ep = self.registry_endpoint(r.registry())?;
        let mut next = Some(format!("/v2/{repo}/tags/list?n=1000"));
        let mut out = Vec::new();
        let mut pages = 0;
        while let Some(path) = next.take() {
            pages += 1;
            if pages > 10_000 {
                return Err(Error::Protocol {
                    registry: ep.host.clone(),
                    message: "tag list pagination does not end".into(),
                });
            }
            let what = format!("GET /v2/{repo}/tags/list");
            let url = Client::url(&ep, &path);
            let (body, link) = self.with_retry(&what, |_| {
                let resp = self.send_ok(&ep, repo, &[scope(repo, false)], &what, |h| {
                    Some(Client::method(h, Method::GET, &url))
                })?;
                let link = header(&resp, LINK);
                Ok((
                    read_body(&self.inner.config, resp, 16 << 20, &ep.host, &what)?,
                    link,
                ))
            })?;
            let t: Tags = serde_json::from_slice(&body).map_err(|e| Error::Protocol {
                registry: ep.host.clone(),
                message: format!("{what}: invalid JSON: {e}"),
            })?;
            out.extend(t.tags.unwrap_or_default());
            next = link.and_then(|l| parse_next_link(&l));
        }
        Ok(out)
    }

    /// The referrers of `digest` in `r`'s repository (OCI 1.1 API, falling back to the
    /// `sha256-<hex>` tag schema), optionally filtered by artifact type.
    pub fn referrers(
        &self,
        r: &Reference,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Index> {
        let repo = r.repository();
        let mut path = format!("/v2/{repo}/referrers/{digest}");
        if let Some(t) = artifact_type {
            path.push_str(&format!("?artifactType={t}"));
        }
        let what = format!("GET /v2/{repo}/referrers/{digest}");
        let ep = self.registry_endpoint(r.registry())?;
        let url = Client::url(&ep, &path);
        let resp = self.with_retry(&what, |_| {
            self.send(&ep, repo, &[scope(repo, false)], &what, |h| {
                Some(
                    Client::method(h, Method::GET, &url)
                        .header("Accept", hoist_image::media_type::OCI_INDEX),
                )
            })
        })?;
        let mut index: Index = if resp.status().is_success() {
            let body = read_body(&self.inner.config, resp, MAX_MANIFEST_SIZE, &ep.host, &what)?;
            serde_json::from_slice(&body).map_err(|e| Error::Protocol {
                registry: ep.host.clone(),
                message: format!("{what}: invalid index: {e}"),
            })?
        } else if resp.status() == StatusCode::NOT_FOUND
            || resp.status() == StatusCode::METHOD_NOT_ALLOWED
        {
            let tag = format!("{}-{}", digest.algorithm().as_str(), digest.hex());
            let tref = r.with_tag(&tag)?;
            match self.get_manifest(&tref) {
                Ok(doc) => doc.parse().map_err(|e| Error::Protocol {
                    registry: ep.host.clone(),
                    message: format!("referrers tag {tag}: invalid index: {e}"),
                })?,
                Err(e) if e.is_not_found() => Index {
                    schema_version: 2,
                    media_type: Some(hoist_image::media_type::OCI_INDEX.into()),
                    artifact_type: None,
                    manifests: Vec::new(),
                    subject: None,
                    annotations: None,
                },
                Err(e) => return Err(e),
            }
        } else {
            return Err(registry_error(&ep.host, &what, resp));
        };
        if let Some(t) = artifact_type {
            index
                .manifests
                .retain(|m| m.artifact_type.as_deref() == Some(t));
        }
        Ok(index)
    }
}

fn parse_next_link(link: &str) -> Option<String> {
    for part in link.split(',') {
        let (url, params) = part.split_once(';')?;
        if params.contains("rel=\"next\"") || params.contains("rel=next") {
            let u = url.trim().trim_start_matches('<').trim_end_matches('>');
            return Some(u.to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links() {
        assert_eq!(
            parse_next_link(r#"</v2/a/tags/list?last=x&n=2>; rel="next""#).unwrap(),
            "/v2/a/tags/list?last=x&n=2"
        );
        assert_eq!(parse_next_link(r#"</x>; rel="prev""#), None);
    }
}
