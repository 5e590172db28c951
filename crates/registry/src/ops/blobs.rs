//! Reading blobs: `HEAD`, and downloads that resume with `Range` after a dropped
//! connection.

use std::io::{self, Read};
use std::sync::Arc;

use hoist_image::{Descriptor, Digest};
use reqwest::blocking::Response;
use reqwest::header::{CONTENT_LENGTH, RANGE};
use reqwest::{Method, StatusCode};

use super::header;
use crate::client::{registry_error, scope, stalled_in, Endpoint, PacedReader};
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
        Ok(Box::new(
            BlobReader {
                client: self.clone(),
                ep,
                repo: r.repository().to_string(),
                digest: desc.digest.clone(),
                offset: 0,
                resp: None,
                resumes: 0,
            }
            .with_response(resp),
        ))
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

/// A blob download that resumes with `Range` after a dropped connection or a
/// stall (see [`crate::client::Pace`]), at most [`ClientConfig::retries`] times.
///
/// [`ClientConfig::retries`]: crate::ClientConfig::retries
struct BlobReader {
    client: Client,
    ep: Arc<Endpoint>,
    repo: String,
    digest: Digest,
    offset: u64,
    resp: Option<PacedReader<Response>>,
    resumes: u32,
}

impl BlobReader {
    fn with_response(mut self, resp: Response) -> Self {
        self.resp = Some(self.paced(resp));
        self
    }

    fn paced(&self, resp: Response) -> PacedReader<Response> {
        PacedReader::new(
            resp,
            self.client.config(),
            &self.ep.host,
            format!("reading blob {}", self.digest),
        )
    }
}

/// An I/O error carrying a registry error (found again by `Error::is_retryable`
/// and by the pull's error mapping).
fn io_error(e: Error) -> io::Error {
    let kind = match e.last_attempt() {
        Error::Stalled { .. } => io::ErrorKind::TimedOut,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, e)
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.resp.is_none() {
                let r = self
                    .client
                    .blob_request(&self.ep, &self.repo, &self.digest, self.offset)
                    .map_err(io_error)?;
                self.resp = Some(self.paced(r));
            }
            let resp = self.resp.as_mut().expect("just set");
            match resp.read(buf) {
                Ok(n) => {
                    self.offset += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let max = self.client.config().retries;
                    // A stall is the registry's error; anything else is the connection's.
                    let err = match stalled_in(&e) {
                        Some(Error::Stalled {
                            registry,
                            what,
                            stall,
                        }) => Error::Stalled {
                            registry: registry.clone(),
                            what: what.clone(),
                            stall: *stall,
                        },
                        _ => Error::Image(hoist_image::Error::stream(
                            format!("{}: reading blob {}", self.ep.host, self.digest),
                            e,
                        )),
                    };
                    if self.resumes >= max || crate::cancel::interrupted() {
                        return Err(io_error(if self.resumes == 0 {
                            err
                        } else {
                            Error::Retried {
                                attempts: self.resumes + 1,
                                last: Box::new(err),
                            }
                        }));
                    }
                    self.resumes += 1;
                    tracing::warn!(
                        digest = %self.digest,
                        offset = self.offset,
                        "download {}; resuming (attempt {} of {})",
                        err.brief(),
                        self.resumes + 1,
                        max + 1
                    );
                    tracing::debug!("download of {} failed: {err}", self.digest);
                    self.resp = None;
                    std::thread::sleep(self.client.config().retry_delay * self.resumes);
                }
            }
        }
    }
}
