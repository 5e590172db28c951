//! Pushing blobs: existence checks, cross-repository mounts, monolithic
//! (streamed) and chunked uploads.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use hoist_image::{Descriptor, Digest};
use reqwest::blocking::Response;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode};

use super::{header, with_query, BlobOutcome, OpenBlob};
use crate::client::{body_timeout, registry_error, registry_error_parts, scope, Endpoint};
use crate::{Client, Error, Reference, Result};

impl Client {
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
        let abandoned = AtomicBool::new(false);
        std::thread::scope(|s| {
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            let abandoned = &abandoned;
            let pump = s.spawn(move || pump(reader, |chunk| hand_over(&tx, chunk, abandoned)));
            let resp = self.put_streamed(ep, repo, &url, desc, rx, &what);
            // The request is over (answered, stalled or interrupted): the pump stops
            // even if the connection still holds the body stream.
            abandoned.store(true, Ordering::Relaxed);
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
                        .timeout(body_timeout(&self.inner.config, n as u64))
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

/// Send `chunk` to the request body; `false` once the request is over. Waits for
/// room without blocking for good, so a request that ended while its body stream
/// is still held elsewhere cannot leave the pump stuck.
fn hand_over(
    tx: &tokio::sync::mpsc::Sender<io::Result<Vec<u8>>>,
    chunk: io::Result<Vec<u8>>,
    abandoned: &AtomicBool,
) -> bool {
    use tokio::sync::mpsc::error::TrySendError;
    let mut chunk = chunk;
    loop {
        if abandoned.load(Ordering::Relaxed) {
            return false;
        }
        match tx.try_send(chunk) {
            Ok(()) => return true,
            Err(TrySendError::Closed(_)) => return false,
            Err(TrySendError::Full(c)) => {
                chunk = c;
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pumps() {
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
