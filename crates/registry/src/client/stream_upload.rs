//! Streamed blob uploads through reqwest's async client (see the module docs of
//! [`crate::client`] for why).

use reqwest::header::HeaderMap;
use reqwest::StatusCode;

use super::response::strip;
use super::{scope, Endpoint};
use crate::{Client, Error, Result};

/// A channel of body chunks as a stream, for `reqwest::Body::wrap_stream`.
struct RxStream(tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>);

impl futures_core::Stream for RxStream {
    type Item = std::io::Result<Vec<u8>>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

impl Client {
    /// `PUT` a body streamed from `rx` (chunks of any size) with a known length.
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
        size: u64,
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
        let mut req = client
            .put(url)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::CONTENT_LENGTH, size.to_string())
            .body(reqwest::Body::wrap_stream(RxStream(rx)));
        if let Some(a) = auth {
            req = req.header(reqwest::header::AUTHORIZATION, a);
        }
        let host = ep.host.clone();
        rt.block_on(async move {
            let resp = req.send().await.map_err(|e| Error::Transport {
                registry: host.clone(),
                what: what.to_string(),
                source: strip(e),
            })?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
            Ok((status, headers, body))
        })
    }
}
