//! Manifests and indexes: get (verified), head, put, delete.

use hoist_image::{Descriptor, Digest, RawDocument};
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{Method, StatusCode};

use super::{docker_digest, header, MAX_MANIFEST_SIZE};
use crate::client::{body_timeout, read_body, registry_error, scope, Endpoint, MANIFEST_ACCEPT};
use crate::{Client, Error, Reference, Result};

impl Client {
    fn manifest_on(&self, ep: &Endpoint, r: &Reference, mref: &str) -> Result<RawDocument> {
        let repo = r.repository();
        let path = format!("/v2/{repo}/manifests/{mref}");
        let what = format!("GET {path}");
        let url = Client::url(ep, &path);
        let resp = self.send_ok(ep, repo, &[scope(repo, false)], &what, |h| {
            Some(Client::method(h, Method::GET, &url).header("Accept", MANIFEST_ACCEPT))
        })?;
        let media_type = header(&resp, CONTENT_TYPE)
            .map(|m| m.split(';').next().unwrap_or("").trim().to_string())
            .unwrap_or_default();
        let claimed = docker_digest(&resp);
        let bytes = read_body(&self.inner.config, resp, MAX_MANIFEST_SIZE, &ep.host, &what)?;
        let doc = RawDocument::new(media_type, bytes);
        let actual = doc.digest();
        if let Ok(want) = Digest::parse(mref) {
            if want.algorithm() == actual.algorithm() && want != actual {
                return Err(Error::DigestMismatch {
                    what: format!("{}: manifest {want}", ep.host),
                    expected: want,
                    actual,
                });
            }
        } else if let Some(c) = claimed {
            if c.algorithm() == actual.algorithm() && c != actual {
                return Err(Error::DigestMismatch {
                    what: format!("{}: manifest {r} (Docker-Content-Digest)", ep.host),
                    expected: c,
                    actual,
                });
            }
        }
        Ok(doc)
    }

    /// Fetch the manifest or index `r` names (by digest if it has one), with Accept
    /// negotiation for OCI and Docker schema 2. The bytes are verified against the
    /// reference's digest, or against `Docker-Content-Digest` for a tag.
    pub fn get_manifest(&self, r: &Reference) -> Result<RawDocument> {
        let mref = r.manifest_ref();
        self.read_from(
            r,
            &format!("get manifest {r}"),
            r.digest().is_some(),
            |ep| self.manifest_on(ep, r, &mref),
        )
    }

    /// Fetch a manifest by descriptor from `r`'s repository, verified.
    pub fn get_manifest_by_descriptor(
        &self,
        r: &Reference,
        desc: &Descriptor,
    ) -> Result<RawDocument> {
        let mref = desc.digest.to_string();
        let mut doc = self.read_from(r, &format!("get manifest {}", desc.digest), true, |ep| {
            self.manifest_on(ep, r, &mref)
        })?;
        if doc.media_type.is_empty() {
            doc.media_type = desc.media_type.clone();
        }
        Ok(doc)
    }

    /// `HEAD` a manifest: its descriptor (media type, digest, size), or `None` if
    /// the tag or digest does not exist. Reads go to mirrors first.
    pub fn head_manifest(&self, r: &Reference) -> Result<Option<Descriptor>> {
        let what = format!("HEAD /v2/{}/manifests/{}", r.repository(), r.manifest_ref());
        let res = self.read_from(r, &what, r.digest().is_some(), |ep| {
            self.head_manifest_on(ep, r, &what)
        })?;
        self.head_result(r, res)
    }

    /// [`Client::head_manifest`] on the registry itself, never a mirror (what a push
    /// needs to know).
    pub(crate) fn head_manifest_upstream(&self, r: &Reference) -> Result<Option<Descriptor>> {
        let what = format!("HEAD /v2/{}/manifests/{}", r.repository(), r.manifest_ref());
        let ep = self.registry_endpoint(r.registry())?;
        let res = self.with_retry(&what, |_| self.head_manifest_on(&ep, r, &what))?;
        self.head_result(r, res)
    }

    #[allow(clippy::type_complexity)]
    fn head_manifest_on(
        &self,
        ep: &Endpoint,
        r: &Reference,
        what: &str,
    ) -> Result<Option<(String, Option<Digest>, Option<u64>)>> {
        let repo = r.repository();
        let url = Client::url(ep, &format!("/v2/{repo}/manifests/{}", r.manifest_ref()));
        let resp = self.send(ep, repo, &[scope(repo, false)], what, |h| {
            Some(Client::method(h, Method::HEAD, &url).header("Accept", MANIFEST_ACCEPT))
        })?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(registry_error(&ep.host, what, resp));
        }
        let mt = header(&resp, CONTENT_TYPE)
            .map(|m| m.split(';').next().unwrap_or("").trim().to_string())
            .unwrap_or_default();
        let size = header(&resp, CONTENT_LENGTH).and_then(|s| s.parse().ok());
        Ok(Some((mt, docker_digest(&resp), size)))
    }

    fn head_result(
        &self,
        r: &Reference,
        res: Option<(String, Option<Digest>, Option<u64>)>,
    ) -> Result<Option<Descriptor>> {
        match res {
            None => Ok(None),
            Some((mt, Some(d), Some(size))) => Ok(Some(Descriptor::new(mt, d, size))),
            // No digest header: fall back to GET and hash.
            Some(_) => {
                let doc = self.get_manifest(r)?;
                Ok(Some(doc.descriptor()))
            }
        }
    }

    /// Store a manifest or index under `r`'s tag (or digest, if `r` is digest-only).
    /// Returns the digest the registry reports (checked against the bytes).
    pub fn put_manifest(&self, r: &Reference, doc: &RawDocument) -> Result<Digest> {
        let mref = match (r.tag(), r.digest()) {
            (Some(t), _) => t.to_string(),
            (None, Some(d)) => d.to_string(),
            (None, None) => crate::reference::DEFAULT_TAG.to_string(),
        };
        self.put_manifest_at(r, &mref, doc)
    }

    pub(crate) fn put_manifest_at(
        &self,
        r: &Reference,
        mref: &str,
        doc: &RawDocument,
    ) -> Result<Digest> {
        let repo = r.repository();
        let path = format!("/v2/{repo}/manifests/{mref}");
        let what = format!("PUT {path}");
        let ep = self.registry_endpoint(r.registry())?;
        let url = Client::url(&ep, &path);
        let mt = match hoist_image::source::document_media_type(doc) {
            Ok(m) => m,
            Err(_) => doc.media_type.clone(),
        };
        let digest = doc.digest();
        self.with_retry(&what, |_| {
            let resp = self.send_ok(&ep, repo, &[scope(repo, true)], &what, |h| {
                Some(
                    Client::method(h, Method::PUT, &url)
                        .header(CONTENT_TYPE, mt.as_str())
                        .timeout(body_timeout(&self.inner.config, doc.bytes.len() as u64))
                        .body(doc.bytes.clone()),
                )
            })?;
            if let Some(d) = docker_digest(&resp) {
                if d.algorithm() == digest.algorithm() && d != digest {
                    return Err(Error::DigestMismatch {
                        what: format!("{}: stored manifest {r}", ep.host),
                        expected: digest.clone(),
                        actual: d,
                    });
                }
            }
            Ok(())
        })?;
        Ok(digest)
    }

    /// Delete a manifest by digest from `r`'s repository.
    pub fn delete_manifest(&self, r: &Reference, digest: &Digest) -> Result<()> {
        let repo = r.repository();
        let path = format!("/v2/{repo}/manifests/{digest}");
        let what = format!("DELETE {path}");
        let ep = self.registry_endpoint(r.registry())?;
        let url = Client::url(&ep, &path);
        self.with_retry(&what, |_| {
            self.send_ok(
                &ep,
                repo,
                &[format!("repository:{repo}:delete")],
                &what,
                |h| Some(Client::method(h, Method::DELETE, &url)),
            )
            .map(drop)
        })
    }
}
