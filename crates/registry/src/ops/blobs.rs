//! Reading blobs: `HEAD`, and downloads that resume with `Range` after a dropped
//! connection.

use std::io::{self, Read};
use std::sync::Arc;

use hoist_image::{Descriptor, Digest};
use reqwest::blocking::Response;
use reqwest::header::{CONTENT_LENGTH, RANGE};
use reqwest::{Method, StatusCode};

use super::header;
use crate::client::{registry_error, scope, Endpoint};
use crate::{Client, Error, Reference, Result};

impl Client {
    /// `HEAD` a blob: its size if `r`'s repository has it.
    pub fn head_blob(&self, r: &Reference, digest: &Digest) -> Result<Option<u64>> {
        let ep = self.registry_endpoint(r.registry())?;
        self.with_retry("HEAD blob", |_| {
            self.head_blob_on(&ep, r.repository(), digest, false)
        })
    }

    pub(super) fn head_blob_on(
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
