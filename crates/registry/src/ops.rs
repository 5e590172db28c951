//! Registry API primitives: manifests, blobs, uploads, tags, referrers.

use std::io::{self, Read};
use std::sync::Arc;

use hoist_image::{Descriptor, Digest, Index, RawDocument};
use reqwest::blocking::Response;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LINK, LOCATION, RANGE};
use reqwest::{Method, StatusCode};

use crate::client::{
    read_body, registry_error, registry_error_parts, scope, Endpoint, MANIFEST_ACCEPT,
};
use crate::{Client, Error, Reference, Result};

/// Largest manifest accepted (as containerd: 4 MiB).
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;

/// What happened to one blob during a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobOutcome {
    /// The registry already had it (HEAD said so).
    Skipped,
    /// Mounted from another repository of the same registry.
    Mounted,
    /// Uploaded (bytes sent).
    Uploaded(u64),
}

/// Opens a fresh stream of a blob's content (called again on each retry).
pub type OpenBlob<'a> = dyn Fn() -> hoist_image::Result<Box<dyn Read + Send + 'a>> + Sync + 'a;

fn header(resp: &Response, name: reqwest::header::HeaderName) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn docker_digest(resp: &Response) -> Option<Digest> {
    header(
        resp,
        "docker-content-digest".parse().expect("valid header name"),
    )
    .and_then(|d| Digest::parse(d.trim()).ok())
}

fn with_query(url: &str, kv: &str) -> String {
    if url.contains('?') {
        format!("{url}&{kv}")
    } else {
        format!("{url}?{kv}")
    }
}

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
        let bytes = read_body(resp, MAX_MANIFEST_SIZE, &ep.host, &what)?;
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
                Ok((read_body(resp, 16 << 20, &ep.host, &what)?, link))
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

    /// `HEAD` a blob: its size if `r`'s repository has it.
    pub fn head_blob(&self, r: &Reference, digest: &Digest) -> Result<Option<u64>> {
        let ep = self.registry_endpoint(r.registry())?;
        self.with_retry("HEAD blob", |_| {
            self.head_blob_on(&ep, r.repository(), digest, false)
        })
    }

    fn head_blob_on(
        &self,
        ep: &Endpoint,
        repo: &str,
        digest: &Digest,
        push: bool,
    ) -> Result<Option<u64>> {
        let path = format!("/v2/{repo}/blobs/{digest}");
        let what = format!("HEAD {path}");
        let url = Client::url(ep, &path);
        let resp = self.send(ep, repo, &[scope(repo, push)], &what, |h| {
            Some(Client::method(h, Method::HEAD, &url))
        })?;
        match resp.status() {
            s if s.is_success() => Ok(Some(
                header(&resp, CONTENT_LENGTH)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0),
            )),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(registry_error(&ep.host, &what, resp)),
        }
    }

    /// Mount a blob from another repository of the same registry into `dest`.
    /// Returns `false` (and cancels the upload the registry opened instead) when the
    /// registry declined the mount.
    pub fn mount_blob(&self, dest: &Reference, digest: &Digest, from_repo: &str) -> Result<bool> {
        let ep = self.registry_endpoint(dest.registry())?;
        let repo = dest.repository();
        self.with_retry("mount blob", |_| {
            match self.start_upload(&ep, repo, Some((digest, from_repo)))? {
                None => Ok(true),
                Some(loc) => {
                    self.cancel_upload(&ep, repo, &loc);
                    Ok(false)
                }
            }
        })
    }

    /// POST an upload (optionally a mount). `None`: mounted (201). `Some(location)`: upload.
    fn start_upload(
        &self,
        ep: &Endpoint,
        repo: &str,
        mount: Option<(&Digest, &str)>,
    ) -> Result<Option<String>> {
        let mut path = format!("/v2/{repo}/blobs/uploads/");
        let mut scopes = vec![scope(repo, true)];
        if let Some((d, from)) = mount {
            path.push_str(&format!("?mount={d}&from={from}"));
            scopes.push(scope(from, false));
        }
        let what = format!("POST /v2/{repo}/blobs/uploads/");
        let url = Client::url(ep, &path);
        let resp = self.send_ok(ep, repo, &scopes, &what, |h| {
            Some(Client::method(h, Method::POST, &url).header(CONTENT_LENGTH, "0"))
        })?;
        if resp.status() == StatusCode::CREATED && mount.is_some() {
            return Ok(None);
        }
        if resp.status() != StatusCode::ACCEPTED {
            return Err(Error::Protocol {
                registry: ep.host.clone(),
                message: format!("{what}: unexpected HTTP {}", resp.status().as_u16()),
            });
        }
        let loc = header(&resp, LOCATION).ok_or_else(|| Error::Protocol {
            registry: ep.host.clone(),
            message: format!("{what}: 202 without a Location header"),
        })?;
        Ok(Some(Client::url(ep, &loc)))
    }

    fn cancel_upload(&self, ep: &Endpoint, repo: &str, loc: &str) {
        let r = self.send(ep, repo, &[scope(repo, true)], "DELETE upload", |h| {
            Some(Client::method(h, Method::DELETE, loc))
        });
        if let Err(e) = r {
            tracing::debug!("cancelling an upload failed: {e}");
        }
    }

    /// Push one blob into `dest`'s repository: skip it if present, mount it from
    /// `mount_from` if given, else upload it (monolithic or chunked), with retries.
    pub fn upload_blob(
        &self,
        dest: &Reference,
        desc: &Descriptor,
        mount_from: Option<&str>,
        open: &OpenBlob<'_>,
    ) -> Result<BlobOutcome> {
        let ep = self.registry_endpoint(dest.registry())?;
        self.upload_blob_on(
            &ep,
            dest.registry(),
            dest.repository(),
            desc,
            mount_from,
            open,
        )
    }

    pub(crate) fn upload_blob_on(
        &self,
        ep: &Arc<Endpoint>,
        registry: &str,
        repo: &str,
        desc: &Descriptor,
        mount_from: Option<&str>,
        open: &OpenBlob<'_>,
    ) -> Result<BlobOutcome> {
        let what = format!("push blob {}", desc.digest);
        let outcome = self.with_retry(&what, |attempt| {
            if self.head_blob_on(ep, repo, &desc.digest, true)?.is_some() {
                return Ok(if attempt == 0 {
                    BlobOutcome::Skipped
                } else {
                    // An earlier attempt's upload completed after all.
                    BlobOutcome::Uploaded(desc.size)
                });
            }
            let mount = mount_from.filter(|f| *f != repo).map(|f| (&desc.digest, f));
            let loc = match self.start_upload(ep, repo, mount)? {
                None => return Ok(BlobOutcome::Mounted),
                Some(l) => l,
            };
            if mount.is_some() {
                tracing::debug!(digest = %desc.digest, "mount declined; uploading");
            }
            let reader: Box<dyn Read + Send + '_> = Box::new(self.inner.config.progress.reader(
                hoist_image::progress::Direction::Push,
                &desc.digest.to_string(),
                Some(desc.size),
                open().map_err(Error::Image)?,
            ));
            match self.inner.config.chunk_size {
                Some(c) if c > 0 && desc.size > c => {
                    self.upload_chunked(ep, repo, desc, &loc, reader, c)?
                }
                _ => self.upload_monolithic(ep, repo, desc, &loc, reader)?,
            }
            Ok(BlobOutcome::Uploaded(desc.size))
        })?;
        self.remember(&desc.digest, registry, repo);
        Ok(outcome)
    }

    fn finish_upload(
        &self,
        ep: &Endpoint,
        desc: &Descriptor,
        resp: Response,
        what: &str,
    ) -> Result<()> {
        if resp.status() != StatusCode::CREATED {
            return Err(registry_error(&ep.host, what, resp));
        }
        check_stored_digest(ep, desc, resp.headers())
    }

    fn upload_monolithic(
        &self,
        ep: &Endpoint,
        repo: &str,
        desc: &Descriptor,
        loc: &str,
        reader: Box<dyn Read + Send + '_>,
    ) -> Result<()> {
        let url = with_query(loc, &format!("digest={}", desc.digest));
        let what = format!("PUT /v2/{repo}/blobs/uploads/");
        std::thread::scope(|s| {
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            let pump = s.spawn(move || pump(reader, |chunk| tx.blocking_send(chunk).is_ok()));
            let resp = self.put_streamed(ep, repo, &url, desc.size, rx, &what);
            let pumped = pump
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("reader panicked")));
            let (status, headers, body) = resp?;
            if let Err(e) = pumped {
                if status.is_success() {
                    return Err(Error::Image(hoist_image::Error::stream(
                        format!("reading blob {}", desc.digest),
                        e,
                    )));
                }
            }
            if status == StatusCode::UNAUTHORIZED {
                return Err(Error::Unauthorized {
                    registry: ep.cred_name.clone(),
                    had_credentials: true,
                    detail: format!("{what} was refused"),
                });
            }
            if status != StatusCode::CREATED {
                return Err(registry_error_parts(
                    &ep.host,
                    &what,
                    status.as_u16(),
                    &headers,
                    &body,
                ));
            }
            check_stored_digest(ep, desc, &headers)
        })
    }

    fn upload_chunked(
        &self,
        ep: &Endpoint,
        repo: &str,
        desc: &Descriptor,
        loc: &str,
        mut reader: Box<dyn Read + Send + '_>,
        chunk: u64,
    ) -> Result<()> {
        let what = format!("PATCH /v2/{repo}/blobs/uploads/");
        let mut loc = loc.to_string();
        let mut offset = 0u64;
        let mut buf = vec![0u8; chunk as usize];
        loop {
            let n = read_full(&mut reader, &mut buf).map_err(|e| {
                Error::Image(hoist_image::Error::stream(
                    format!("reading blob {}", desc.digest),
                    e,
                ))
            })?;
            if n == 0 {
                break;
            }
            let data = buf[..n].to_vec();
            let range = format!("{}-{}", offset, offset + n as u64 - 1);
            let resp = self.send(ep, repo, &[scope(repo, true)], &what, |h| {
                Some(
                    Client::method(h, Method::PATCH, &loc)
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .header(CONTENT_RANGE, range.as_str())
                        .header(CONTENT_LENGTH, n.to_string())
                        .body(data.clone()),
                )
            })?;
            if resp.status() != StatusCode::ACCEPTED {
                return Err(registry_error(&ep.host, &what, resp));
            }
            if let Some(l) = header(&resp, LOCATION) {
                loc = Client::url(ep, &l);
            }
            offset += n as u64;
            if n < buf.len() {
                break;
            }
        }
        let url = with_query(&loc, &format!("digest={}", desc.digest));
        let what = format!("PUT /v2/{repo}/blobs/uploads/");
        let resp = self.send(ep, repo, &[scope(repo, true)], &what, |h| {
            Some(Client::method(h, Method::PUT, &url).header(CONTENT_LENGTH, "0"))
        })?;
        self.finish_upload(ep, desc, resp, &what)
    }

    /// Stream a blob from `r`'s repository (mirrors first for Docker Hub). The stream
    /// resumes with a `Range` request if the connection drops; it is not verified
    /// (wrap it in a `VerifyingReader`, as [`hoist_image::open_verified`] does).
    pub fn get_blob(&self, r: &Reference, desc: &Descriptor) -> Result<Box<dyn Read + Send>> {
        let what = format!("GET blob {}", desc.digest);
        let (ep, resp) = self.read_from(r, &what, true, |ep| {
            let resp = self.blob_request(ep, r.repository(), &desc.digest, 0)?;
            Ok((ep.clone(), resp))
        })?;
        Ok(Box::new(BlobReader {
            client: self.clone(),
            ep,
            repo: r.repository().to_string(),
            digest: desc.digest.clone(),
            offset: 0,
            resp: Some(resp),
            resumes: 0,
        }))
    }

    fn blob_request(
        &self,
        ep: &Endpoint,
        repo: &str,
        digest: &Digest,
        offset: u64,
    ) -> Result<Response> {
        let path = format!("/v2/{repo}/blobs/{digest}");
        let what = format!("GET {path}");
        let url = Client::url(ep, &path);
        let resp = self.send_ok(ep, repo, &[scope(repo, false)], &what, |h| {
            let mut b = Client::method(h, Method::GET, &url);
            if offset > 0 {
                b = b.header(RANGE, format!("bytes={offset}-"));
            }
            Some(b)
        })?;
        if offset > 0 && resp.status() != StatusCode::PARTIAL_CONTENT {
            return Err(Error::Protocol {
                registry: ep.host.clone(),
                message: format!(
                    "{what}: the registry cannot resume a download (no range support)"
                ),
            });
        }
        Ok(resp)
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
            let body = read_body(resp, MAX_MANIFEST_SIZE, &ep.host, &what)?;
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

/// Check the digest a registry says it stored (`Docker-Content-Digest`), if it says.
fn check_stored_digest(
    ep: &Endpoint,
    desc: &Descriptor,
    headers: &reqwest::header::HeaderMap,
) -> Result<()> {
    let stored = headers
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .and_then(|d| Digest::parse(d.trim()).ok());
    if let Some(d) = stored {
        if d != desc.digest {
            return Err(Error::DigestMismatch {
                what: format!("{}: uploaded blob", ep.host),
                expected: desc.digest.clone(),
                actual: d,
            });
        }
    }
    Ok(())
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

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

const PUMP_CHUNK: usize = 1 << 20;

/// Read `reader` in 1 MiB chunks and hand them to `send` (which returns `false`
/// once the receiving request has ended); a read error is sent on, then returned.
fn pump(
    mut reader: Box<dyn Read + Send + '_>,
    mut send: impl FnMut(io::Result<Vec<u8>>) -> bool,
) -> io::Result<()> {
    loop {
        let mut buf = vec![0u8; PUMP_CHUNK];
        let n = match read_full(&mut reader, &mut buf) {
            Ok(n) => n,
            Err(e) => {
                send(Err(io::Error::new(e.kind(), e.to_string())));
                return Err(e);
            }
        };
        if n == 0 {
            return Ok(());
        }
        buf.truncate(n);
        if !send(Ok(buf)) {
            // The request ended early (error response, dropped connection).
            return Ok(());
        }
        if n < PUMP_CHUNK {
            return Ok(());
        }
    }
}

/// A blob download that resumes with `Range` after a dropped connection.
struct BlobReader {
    client: Client,
    ep: Arc<Endpoint>,
    repo: String,
    digest: Digest,
    offset: u64,
    resp: Option<Response>,
    resumes: u32,
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.resp.is_none() {
                let r = self
                    .client
                    .blob_request(&self.ep, &self.repo, &self.digest, self.offset)
                    .map_err(|e| io::Error::other(e.to_string()))?;
                self.resp = Some(r);
            }
            let resp = self.resp.as_mut().expect("just set");
            match resp.read(buf) {
                Ok(n) => {
                    self.offset += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if self.resumes < self.client.config().retries => {
                    self.resumes += 1;
                    tracing::warn!(
                        digest = %self.digest,
                        offset = self.offset,
                        "download interrupted ({e}); resuming"
                    );
                    self.resp = None;
                    std::thread::sleep(self.client.config().retry_delay * self.resumes);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_and_pumps() {
        assert_eq!(
            parse_next_link(r#"</v2/a/tags/list?last=x&n=2>; rel="next""#).unwrap(),
            "/v2/a/tags/list?last=x&n=2"
        );
        assert_eq!(parse_next_link(r#"</x>; rel="prev""#), None);
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut chunks = Vec::new();
        pump(Box::new(io::Cursor::new(data.clone())), |c| {
            chunks.push(c.unwrap());
            true
        })
        .unwrap();
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks.concat(), data);
        // A receiver that went away stops the pump without error.
        let mut n = 0;
        pump(Box::new(io::Cursor::new(data)), |_| {
            n += 1;
            false
        })
        .unwrap();
        assert_eq!(n, 1);
    }
}
