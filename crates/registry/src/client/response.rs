//! Reading responses: bounded bodies, error bodies into [`Error::Registry`],
//! `Retry-After`.

use std::io::Read;
use std::time::{Duration, Instant, SystemTime};

use reqwest::blocking::Response;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::pace::{stalled_in, PacedReader};
use crate::{ClientConfig, Error, ErrorCode, Result};

/// Read at most `limit` bytes of a response body, failing with [`Error::Stalled`]
/// if the registry stops sending it (see [`super::pace`]).
pub(crate) fn read_body(
    cfg: &ClientConfig,
    resp: Response,
    limit: u64,
    host: &str,
    what: &str,
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    PacedReader::new(resp, cfg, host, format!("reading the response to {what}"))
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| match stalled_in(&e) {
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
                format!("{host}: {what}: reading the response"),
                e,
            )),
        })?;
    if out.len() as u64 > limit {
        return Err(Error::Protocol {
            registry: host.to_string(),
            message: format!("{what}: response larger than the {limit} bytes allowed"),
        });
    }
    Ok(out)
}

fn error_body(bytes: &[u8]) -> (Vec<ErrorCode>, String) {
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(default)]
        errors: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_slice::<Body>(bytes) {
        Ok(b) => {
            let codes = b.errors.iter().map(|i| ErrorCode::parse(&i.code)).collect();
            let msg = b
                .errors
                .iter()
                .map(|i| i.message.clone())
                .filter(|m| !m.is_empty())
                .collect::<Vec<_>>()
                .join("; ");
            (codes, msg)
        }
        Err(_) => (Vec::new(), String::new()),
    }
}

pub(super) fn response_error_body(resp: Response) -> (Vec<ErrorCode>, String) {
    error_body(&error_bytes(resp))
}

/// An error response's body, best effort: at most 64 KiB and 10 s (a registry that
/// trickles it cannot hold the error back); an unreadable body still leaves the
/// status to report.
fn error_bytes(mut resp: Response) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut bytes = Vec::new();
    let mut buf = [0u8; 8192];
    while bytes.len() < 64 << 10 && Instant::now() < deadline {
        match resp.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n.min((64 << 10) - bytes.len())]),
        }
    }
    bytes
}

/// Turn an error response into [`Error::Registry`].
pub(crate) fn registry_error(host: &str, what: &str, resp: Response) -> Error {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = error_bytes(resp);
    registry_error_parts(host, what, status, &headers, &bytes)
}

/// [`registry_error`] from an already read response.
pub(crate) fn registry_error_parts(
    host: &str,
    what: &str,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
) -> Error {
    let retry_after = headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let (codes, message) = error_body(body);
    Error::Registry {
        registry: host.to_string(),
        what: what.to_string(),
        status,
        codes,
        message,
        retry_after,
    }
}

/// `Retry-After`: delay-seconds or an HTTP date.
pub(crate) fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
    }
}
