//! Streamed blob uploads through reqwest's async client (see the module docs of
//! [`crate::client`] for why).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use hoist_image::Descriptor;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;

use super::pace::{transport, Pace};
use super::{scope, Endpoint};
use crate::error::Stall;
use crate::{Client, Error, Result};

/// How a streamed upload progresses, for its watchdog.
#[derive(Default)]
struct Progress {
    /// Body bytes handed to the connection.
    sent: AtomicU64,
    /// Anything that happened (a chunk taken, the headers, a response chunk).
    events: AtomicU64,
}

/// A channel of body chunks as a stream, for `reqwest::Body::wrap_stream`.
struct RxStream {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
    progress: Arc<Progress>,
}

impl futures_core::Stream for RxStream {
    type Item = std::io::Result<Vec<u8>>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Self::Item>> {
        let p = self.rx.poll_recv(cx);
        if let Poll::Ready(Some(Ok(chunk))) = &p {
            self.progress
                .sent
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            self.progress.events.fetch_add(1, Ordering::Relaxed);
        }
        p
    }
}

/// Run `work` until it ends, the upload stalls (nothing for the read timeout, or
/// below the minimum rate while the body is sent) or the run is interrupted.
async fn watched<T>(
    work: impl Future<Output = Result<T>>,
    progress: &Progress,
    size: u64,
    mut pace: Pace,
    timeout: Duration,
    stalled: impl Fn(Stall) -> Error,
) -> Result<T> {
    let watchdog = async {
        let (mut sent, mut events, mut last_event) = (0u64, 0u64, Instant::now());
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if crate::cancel::interrupted() {
                return Error::Interrupted;
            }
            let (s, e) = (
                progress.sent.load(Ordering::Relaxed),
                progress.events.load(Ordering::Relaxed),
            );
            if e != events {
                events = e;
                last_event = Instant::now();
            } else if last_event.elapsed() >= timeout {
                return stalled(Stall::Idle(timeout));
            }
            // The rate matters while the body goes out; then only the idle time.
            if sent < size {
                if let Err(st) = pace.record(s - sent) {
                    return stalled(st);
                }
            }
            sent = s;
        }
    };
    let mut work = std::pin::pin!(work);
    let mut watchdog = std::pin::pin!(watchdog);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = work.as_mut().poll(cx) {
            return Poll::Ready(r);
        }
        if let Poll::Ready(e) = watchdog.as_mut().poll(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Pending
    })
    .await
}

impl Client {
    /// `PUT` `blob`'s content streamed from `rx` (chunks of any size).
    ///
    /// Uploads go through reqwest's async client on a small private runtime: the
    /// blocking client hands its body over in 8 KiB pieces, two thread wake-ups
    /// each, which costs more CPU than the registry's own hashing on a busy
    /// machine; here each chunk of about 1 MiB is one hand-over.
    pub(crate) fn put_streamed(
        &self,
        ep: &Endpoint,
        repo: &str,
        url: &str,
        blob: &Descriptor,
        rx: tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
        what: &str,
    ) -> Result<(StatusCode, HeaderMap, Vec<u8>)> {
        let auth = self.auth_header(ep, repo, &[scope(repo, true)])?;
        let client = self.async_client(ep)?;
        let rt = match self.inner.runtime.get() {
            Some(rt) => rt,
            None => {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("hoist-upload")
                    .enable_all()
                    .build()
                    .map_err(|e| Error::Config(format!("starting the upload runtime: {e}")))?;
                let _ = self.inner.runtime.set(rt);
                self.inner.runtime.get().expect("just set")
            }
        };
        let progress = Arc::new(Progress::default());
        let mut req = client
            .put(url)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::CONTENT_LENGTH, blob.size.to_string())
            .body(reqwest::Body::wrap_stream(RxStream {
                rx,
                progress: progress.clone(),
            }));
        if let Some(a) = auth {
            req = req.header(reqwest::header::AUTHORIZATION, a);
        }
        let cfg = &self.inner.config;
        let timeout = cfg.read_timeout;
        let work = async {
            let mut resp = req
                .send()
                .await
                .map_err(|e| transport(&ep.host, what, e, timeout))?;
            progress.events.fetch_add(1, Ordering::Relaxed);
            let status = resp.status();
            let headers = resp.headers().clone();
            // Best effort, bounded: the status says what happened.
            let mut body = Vec::new();
            while let Ok(Some(chunk)) = resp.chunk().await {
                progress.events.fetch_add(1, Ordering::Relaxed);
                if body.len() < 64 << 10 {
                    body.extend_from_slice(&chunk);
                }
            }
            Ok((status, headers, body))
        };
        let stalled = |stall| Error::Stalled {
            registry: ep.host.clone(),
            what: format!("uploading blob {}", blob.digest),
            stall,
        };
        rt.block_on(watched(
            work,
            &progress,
            blob.size,
            Pace::new(cfg),
            timeout,
            stalled,
        ))
    }
}
