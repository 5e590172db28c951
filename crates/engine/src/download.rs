//! `ADD https://…` downloads: bounded in size and time, trusting the same extra CAs
//! and insecure hosts as the registry client, with transfer progress like pulls.
//!
//! An ADD URL is chosen by the Dockerfile's author and served by whoever runs that
//! host: hostile input. So a download
//!
//! - stops with an error naming the URL when it passes [`DownloadOptions::max_size`]
//!   (a `Content-Length` above the bound is refused before any byte is read);
//! - stops when the server stalls: no byte for [`DownloadOptions::idle_timeout`] (also
//!   for the response headers), or less than [`MIN_PROGRESS`] bytes in any such
//!   window (a trickle that would otherwise hold the build forever);
//! - verifies TLS against the system roots plus the registry configuration's
//!   `--ca-cert` files and `certs.d/<host>/*.crt`, and skips verification only for a
//!   host named with `--insecure-registry`;
//! - reports its bytes to the build's transfer display ([`Direction::Download`]).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hoist_image::progress::{Direction, Reporter};
use hoist_image::Digest;
use hoist_registry::{CaCert, ClientConfig};

use crate::error::{Error, Result};

/// Default bound on one download: 8 GiB.
pub const DEFAULT_MAX_DOWNLOAD_SIZE: u64 = 8 << 30;

/// Default idle timeout: 30 s.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A download must move at least this many bytes in every idle-timeout window.
pub const MIN_PROGRESS: u64 = 1024;

/// Environment variable for [`DownloadOptions::max_size`] (a size: `512M`, `2G`).
pub const MAX_DOWNLOAD_SIZE_ENV: &str = "HOIST_MAX_DOWNLOAD_SIZE";

/// Environment variable for [`DownloadOptions::idle_timeout`] (seconds).
pub const DOWNLOAD_TIMEOUT_ENV: &str = "HOIST_DOWNLOAD_TIMEOUT";

/// Bounds of `ADD` downloads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadOptions {
    /// At most this many bytes per download (`--max-download-size`).
    pub max_size: u64,
    /// A download fails when the server sends nothing (or less than [`MIN_PROGRESS`]
    /// bytes) for this long (`--download-timeout`).
    pub idle_timeout: Duration,
}

impl Default for DownloadOptions {
    /// The defaults, or `$HOIST_MAX_DOWNLOAD_SIZE` and `$HOIST_DOWNLOAD_TIMEOUT` when set
    /// (unparsable values are ignored with a warning).
    fn default() -> Self {
        let mut o = DownloadOptions {
            max_size: DEFAULT_MAX_DOWNLOAD_SIZE,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        };
        if let Ok(v) = std::env::var(MAX_DOWNLOAD_SIZE_ENV) {
            match hoist_image::layer::parse_size(&v) {
                Ok(n) if n > 0 => o.max_size = n,
                Ok(_) => tracing::warn!("{MAX_DOWNLOAD_SIZE_ENV}=0 ignored: must be positive"),
                Err(e) => tracing::warn!("{MAX_DOWNLOAD_SIZE_ENV}={v:?} ignored: {e}"),
            }
        }
        if let Ok(v) = std::env::var(DOWNLOAD_TIMEOUT_ENV) {
            match parse_timeout(&v) {
                Ok(d) => o.idle_timeout = d,
                Err(e) => tracing::warn!("{DOWNLOAD_TIMEOUT_ENV}={v:?} ignored: {e}"),
            }
        }
        o
    }
}

/// Parse a timeout: seconds, optionally with an `s`, `ms` or `m` suffix (`30`, `1.5s`,
/// `500ms`, `2m`). Must be positive.
pub fn parse_timeout(s: &str) -> std::result::Result<Duration, String> {
    let t = s.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        (t, 1.0)
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(Duration::from_secs_f64(v * scale)),
        _ => Err(format!(
            "{s:?} is not a positive duration (seconds, or e.g. 500ms, 2m)"
        )),
    }
}

/// The `host[:port]` of an `http(s)://` URL.
fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |x| x.1);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    authority.rsplit('@').next().unwrap_or(authority)
}

/// Extra trusted roots for `host`: the configured CAs and `certs.d/<host>/*.crt`.
fn extra_roots(cfg: &ClientConfig, host: &str) -> Result<Vec<reqwest::Certificate>> {
    let mut out = Vec::new();
    let load = |pem: &[u8], name: &str| {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| Error::Invalid(format!("CA certificate {name}: {e}")))?;
        if certs.is_empty() {
            return Err(Error::Invalid(format!(
                "CA certificate {name}: no PEM certificate found"
            )));
        }
        Ok(certs)
    };
    for ca in &cfg.ca_certs {
        match ca {
            CaCert::File(p) => {
                let pem = std::fs::read(p).map_err(|e| Error::io(p, e))?;
                out.extend(load(&pem, &p.display().to_string())?);
            }
            CaCert::Pem(s) => out.extend(load(s.as_bytes(), "PEM text")?),
        }
    }
    for dir in &cfg.certs_dirs {
        let d = dir.join(host);
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut files: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "crt"))
            .collect();
        files.sort();
        for p in files {
            let pem = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
            out.extend(load(&pem, &p.display().to_string())?);
        }
    }
    Ok(out)
}

/// The HTTP client for downloading from `host`.
fn client(
    cfg: &ClientConfig,
    opts: &DownloadOptions,
    host: &str,
) -> Result<reqwest::blocking::Client> {
    let insecure = cfg.insecure.iter().any(|h| h == host);
    let mut b = reqwest::blocking::Client::builder()
        .user_agent(cfg.user_agent.clone())
        .connect_timeout(
            cfg.connect_timeout
                .min(opts.idle_timeout.max(Duration::from_secs(1))),
        )
        // The blocking client applies this to the wait for the response headers and
        // then to each read of the body: an idle timeout.
        .timeout(opts.idle_timeout)
        .redirect(reqwest::redirect::Policy::limited(10));
    for c in extra_roots(cfg, host)? {
        b = b.add_root_certificate(c);
    }
    if insecure {
        tracing::warn!(
            host,
            "downloading without verifying the certificate (--insecure-registry)"
        );
        b = b.danger_accept_invalid_certs(true);
    }
    b.build()
        .map_err(|e| Error::Invalid(format!("HTTP client for {host}: {e}")))
}

/// What went wrong with a transfer, for the message: reqwest's chain, with a timeout
/// said plainly.
fn describe(e: &(dyn std::error::Error + 'static), opts: &DownloadOptions) -> String {
    let mut text = e.to_string();
    let mut src = e.source();
    let mut timed_out = false;
    while let Some(s) = src {
        let t = s.to_string();
        if t.contains("timed out") {
            timed_out = true;
        }
        if !text.contains(&t) {
            text.push_str(": ");
            text.push_str(&t);
        }
        src = s.source();
    }
    if timed_out || text.contains("timed out") {
        format!(
            "the server stopped responding (nothing for {}; --download-timeout)",
            show(opts.idle_timeout)
        )
    } else {
        text
    }
}

fn show(d: Duration) -> String {
    if d.as_millis() % 1000 == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// Download `url` into a new file in `scratch`, within `opts`' bounds, with the TLS
/// settings of `cfg`, reporting to `progress`; verify `checksum` if given. Returns the
/// file and its size.
pub fn download(
    url: &str,
    checksum: Option<&str>,
    scratch: &Path,
    cfg: &ClientConfig,
    opts: &DownloadOptions,
    progress: &Reporter,
) -> Result<(PathBuf, u64)> {
    let expected = checksum
        .map(|c| Digest::parse(c).map_err(|e| Error::Invalid(format!("--checksum: {e}"))))
        .transpose()?;
    let fail = |what: String| Error::Invalid(format!("downloading {url}: {what}"));
    let too_big = || {
        fail(format!(
            "larger than the bound of {} on a download (--max-download-size, {MAX_DOWNLOAD_SIZE_ENV})",
            hoist_image::layer::human_size(opts.max_size)
        ))
    };
    let host = host_of(url);
    let http = client(cfg, opts, host)?;
    let resp = http.get(url).send().map_err(|e| fail(describe(&e, opts)))?;
    if !resp.status().is_success() {
        return Err(fail(format!("HTTP {}", resp.status())));
    }
    let total = resp.content_length();
    if total.is_some_and(|t| t > opts.max_size) {
        return Err(too_big());
    }
    let tmp = tempfile::Builder::new()
        .prefix("download-")
        .tempfile_in(scratch)
        .map_err(|e| Error::io(scratch, e))?;
    let mut r = progress.reader(Direction::Download, url, total, resp);
    let mut w = hoist_image::HashingWriter::new(std::io::BufWriter::new(tmp));
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    let mut window = (Instant::now(), 0u64);
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(fail(describe(&e, opts))),
        };
        size += n as u64;
        if size > opts.max_size {
            return Err(too_big());
        }
        w.write_all(&buf[..n]).map_err(|e| Error::io(scratch, e))?;
        window.1 += n as u64;
        if window.0.elapsed() >= opts.idle_timeout {
            if window.1 < MIN_PROGRESS {
                return Err(fail(format!(
                    "the server stopped responding (less than {MIN_PROGRESS} bytes in {}; --download-timeout)",
                    show(opts.idle_timeout)
                )));
            }
            window = (Instant::now(), 0);
        }
    }
    drop(r);
    let (inner, digest, written) = w.finish();
    let tmp = inner
        .into_inner()
        .map_err(|e| Error::io(scratch, e.into_error()))?;
    debug_assert_eq!(written, size);
    if let Some(exp) = expected {
        let actual = if exp.algorithm() == digest.algorithm() {
            digest
        } else {
            let mut h = exp.hasher();
            let mut f = std::fs::File::open(tmp.path()).map_err(|e| Error::io(tmp.path(), e))?;
            loop {
                let n = f.read(&mut buf).map_err(|e| Error::io(tmp.path(), e))?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            h.finish()
        };
        if actual != exp {
            return Err(Error::Invalid(format!(
                "checksum mismatch for {url}: expected {exp}, got {actual}"
            )));
        }
    }
    let (_, path) = tmp.keep().map_err(|e| Error::io(scratch, e.error))?;
    Ok((path, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_and_hosts_parse() {
        assert_eq!(parse_timeout("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_timeout("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_timeout("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_timeout("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("soon").is_err());
        assert_eq!(host_of("https://u:p@h.example:8443/a?b"), "h.example:8443");
        assert_eq!(host_of("http://127.0.0.1:9/x"), "127.0.0.1:9");
    }
}
