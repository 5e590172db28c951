//! Registries that hang, trickle, throttle or drop uploads, played by servers written
//! here (std::net on 127.0.0.1): pull, build, copy and push must fail with a clear
//! error within a bound, or recover, and never hang.
//!
//! Timing asserts are upper bounds only, and generous: a 2 s `--registry-timeout`
//! and the default 4 retries end each case in well under a minute.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use sha2::{Digest as _, Sha256};

fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// One request as the hostile server saw it.
#[derive(Debug, Clone)]
struct Req {
    method: String,
    path: String,
    headers: HashMap<String, String>,
}

/// What the hostile server does with a request.
enum Reply {
    /// A whole response.
    Full(u16, Vec<(String, String)>, Vec<u8>),
    /// Headers at once, then the body one byte per `every`.
    Trickle(u16, Vec<(String, String)>, Vec<u8>, Duration),
    /// Never answer (and never read the body).
    Silent,
    /// Close the connection at once.
    Close,
}

type Handler = dyn Fn(&Req) -> Reply + Send + Sync;

/// Serve `handler` on a free loopback port; returns `host:port` and the count of
/// connections accepted.
fn serve(handler: Arc<Handler>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let conns = Arc::new(AtomicUsize::new(0));
    let c = conns.clone();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(s) = s else { continue };
            c.fetch_add(1, Ordering::SeqCst);
            let h = handler.clone();
            std::thread::spawn(move || connection(s, &*h));
        }
    });
    (addr, conns)
}

fn connection(s: TcpStream, handler: &Handler) {
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let req = Req {
            method,
            path,
            headers,
        };
        let reply = handler(&req);
        if matches!(reply, Reply::Silent) {
            // Hold the connection open, reading nothing, until the client gives up.
            std::thread::sleep(Duration::from_secs(600));
            return;
        }
        if matches!(reply, Reply::Close) {
            let _ = w.shutdown(Shutdown::Both);
            return;
        }
        let len: u64 = req
            .headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if std::io::copy(&mut (&mut r).take(len), &mut std::io::sink()).is_err() {
            return;
        }
        let (status, hdrs, body, every) = match reply {
            Reply::Full(s, h, b) => (s, h, b, None),
            Reply::Trickle(s, h, b, e) => (s, h, b, Some(e)),
            Reply::Silent | Reply::Close => unreachable!(),
        };
        let mut head = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len());
        for (k, v) in &hdrs {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        if w.write_all(head.as_bytes()).is_err() {
            return;
        }
        match every {
            None => {
                if w.write_all(&body).is_err() {
                    return;
                }
            }
            Some(e) => {
                for b in body {
                    if w.write_all(&[b]).is_err() {
                        return;
                    }
                    std::thread::sleep(e);
                }
            }
        }
    }
}

fn json_reply(body: &[u8], media_type: &str) -> Reply {
    Reply::Full(
        200,
        vec![
            ("Content-Type".into(), media_type.into()),
            ("Docker-Content-Digest".into(), sha(body)),
        ],
        body.to_vec(),
    )
}

/// A one-layer image the hostile server can serve: (manifest, config, layer).
fn image() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let mut b = tar::Builder::new(Vec::new());
    let data = vec![7u8; 20_000];
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "file", &data[..]).unwrap();
    let layer = b.into_inner().unwrap();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [sha(&layer)]},
        "config": {}
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": sha(&layer), "size": layer.len()}]
    }))
    .unwrap();
    (manifest, config, layer)
}

/// A registry serving [`image`] as `x:1`, with `hostile` deciding first.
fn registry(hostile: impl Fn(&Req) -> Option<Reply> + Send + Sync + 'static) -> String {
    let (manifest, config, layer) = image();
    let handler = move |r: &Req| -> Reply {
        if let Some(reply) = hostile(r) {
            return reply;
        }
        let blob = |d: &[u8]| {
            Reply::Full(
                200,
                vec![("Docker-Content-Digest".into(), sha(d))],
                d.to_vec(),
            )
        };
        match r.path.as_str() {
            "/v2/" => Reply::Full(200, vec![], b"{}".to_vec()),
            p if p.ends_with("/manifests/1") || p.ends_with(&sha(&manifest)) => {
                json_reply(&manifest, "application/vnd.oci.image.manifest.v1+json")
            }
            p if p.ends_with(&sha(&config)) => blob(&config),
            p if p.ends_with(&sha(&layer)) => blob(&layer),
            _ => Reply::Full(404, vec![], Vec::new()),
        }
    };
    serve(Arc::new(handler)).0
}

/// Run hoist with `args`, expecting failure within `bound`; its stderr.
fn fails_within(env: &Env, args: &[&str], bound: Duration) -> String {
    let start = Instant::now();
    let mut child = env
        .hoist()
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = String::new();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let _ = stderr.read_to_string(&mut err);
        err
    });
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let err = reader.join().unwrap();
            assert!(
                !status.success(),
                "hoist {args:?} should have failed:\n{err}"
            );
            return err;
        }
        if start.elapsed() > bound {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "hoist {args:?} still running after {bound:?} (hung):\n{}",
                reader.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

const BOUND: Duration = Duration::from_secs(120);

#[test]
fn a_registry_that_never_answers_fails_pull_and_push_with_a_clear_error() {
    let addr = registry(|_| Some(Reply::Silent));
    let env = Env::new();
    let image = format!("{addr}/x:1");
    let err = fails_within(&env, &["pull", "--registry-timeout", "2", &image], BOUND);
    assert!(
        err.contains(&format!(
            "registry {addr} stopped responding (no data for 2 s) while waiting for the answer to GET /v2/"
        )),
        "{err}"
    );
    assert!(err.contains("after 5 attempts"), "{err}");
    let layout = hoist_testutil::random_layout(&env.path("img"), "latest", 1, 1000, 1);
    let err = fails_within(
        &env,
        &[
            "push",
            "--registry-timeout",
            "2",
            &format!("oci:{}:latest", layout.dir.display()),
            &format!("docker://{addr}/y:1"),
        ],
        BOUND,
    );
    assert!(
        err.contains("stopped responding (no data for 2 s)"),
        "{err}"
    );
}

#[test]
fn a_trickled_manifest_fails_pull_and_build() {
    // Headers at once, then a byte a second: never idle for 2 s, but far below 1 KiB/s.
    let addr = registry(|r| {
        let (manifest, _, _) = image();
        r.path.ends_with("/manifests/1").then(|| {
            Reply::Trickle(
                200,
                vec![(
                    "Content-Type".into(),
                    "application/vnd.oci.image.manifest.v1+json".into(),
                )],
                manifest,
                Duration::from_millis(500),
            )
        })
    });
    let env = Env::new();
    let image = format!("{addr}/x:1");
    let err = fails_within(&env, &["pull", "--registry-timeout", "2", &image], BOUND);
    assert!(
        err.contains(&format!("registry {addr} stopped responding (")),
        "{err}"
    );
    assert!(err.contains("below the minimum of 1024 bytes/s"), "{err}");
    assert!(
        err.contains("while reading the response to GET /v2/x/manifests/1"),
        "{err}"
    );
    // The same base in a build.
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), format!("FROM {image}\n")).unwrap();
    let err = fails_within(
        &env,
        &["build", "--registry-timeout", "2", ctx.to_str().unwrap()],
        BOUND,
    );
    assert!(err.contains("stopped responding ("), "{err}");
}

#[test]
fn a_blob_that_stops_mid_way_fails_pull_and_copy_naming_the_blob() {
    let (_, _, layer) = image();
    let layer_digest = sha(&layer);
    let ld = layer_digest.clone();
    // The layer: headers, the first bytes, then nothing (each resume alike).
    let addr = registry(move |r| {
        if !r.path.ends_with(&ld) || r.method != "GET" {
            return None;
        }
        let (_, _, layer) = image();
        let from: usize = r
            .headers
            .get("range")
            .and_then(|v| v.strip_prefix("bytes="))
            .and_then(|v| v.trim_end_matches('-').parse().ok())
            .unwrap_or(0);
        let status = if from > 0 { 206 } else { 200 };
        let rest = layer[from..].to_vec();
        // A byte, then one every 5 s: idle longer than the timeout.
        Some(Reply::Trickle(status, vec![], rest, Duration::from_secs(5)))
    });
    let env = Env::new();
    let image = format!("{addr}/x:1");
    let err = fails_within(&env, &["pull", "--registry-timeout", "2", &image], BOUND);
    assert!(
        err.contains(&format!(
            "registry {addr} stopped responding (no data for 2 s) while reading blob {layer_digest}"
        )),
        "{err}"
    );
    let err = fails_within(
        &env,
        &[
            "copy",
            "--registry-timeout",
            "2",
            &format!("docker://{image}"),
            &format!("oci:{}:x", env.path("out").display()),
        ],
        BOUND,
    );
    assert!(err.contains("stopped responding"), "{err}");
    assert!(err.contains(&layer_digest), "{err}");
}

#[test]
fn an_upload_the_registry_never_answers_fails_the_push() {
    // Ping, HEAD and POST answered; the PUT with the blob is never answered.
    let addr_cell: Arc<Mutex<String>> = Arc::default();
    let a = addr_cell.clone();
    let addr = registry(move |r| match r.method.as_str() {
        "HEAD" => Some(Reply::Full(404, vec![], Vec::new())),
        "POST" => Some(Reply::Full(
            202,
            vec![(
                "Location".into(),
                format!("http://{}/v2/y/blobs/uploads/u1", a.lock().unwrap()),
            )],
            Vec::new(),
        )),
        "PUT" => Some(Reply::Silent),
        _ => None,
    });
    *addr_cell.lock().unwrap() = addr.clone();
    let env = Env::new();
    let layout = hoist_testutil::random_layout(&env.path("img"), "latest", 1, 1000, 2);
    let err = fails_within(
        &env,
        &[
            "push",
            "--registry-timeout",
            "2",
            &format!("oci:{}:latest", layout.dir.display()),
            &format!("docker://{addr}/y:1"),
        ],
        BOUND,
    );
    assert!(
        err.contains(&format!(
            "registry {addr} stopped responding (no data for 2 s) while uploading blob sha256:"
        )),
        "{err}"
    );
}

#[test]
fn a_day_long_retry_after_is_capped_and_said() {
    let addr = registry(|r| {
        r.path.contains("/manifests/").then(|| {
            Reply::Full(
                429,
                vec![("Retry-After".into(), "86400".into())],
                br#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#.to_vec(),
            )
        })
    });
    let env = Env::new();
    let err = fails_within(
        &env,
        &[
            "pull",
            "--registry-max-retry-after",
            "1",
            &format!("{addr}/x:1"),
        ],
        Duration::from_secs(60),
    );
    assert!(
        err.contains("registry asked to wait 86400 s; waiting at most 1 s"),
        "{err}"
    );
    assert!(err.contains("after 5 attempts"), "{err}");
    assert!(err.contains("HTTP 429 TOOMANYREQUESTS: slow down"), "{err}");
}

#[test]
fn an_unreachable_registry_reports_its_cause_once_after_bounded_attempts() {
    // Accepts and closes at once: every attempt fails the same way.
    let (addr, conns) = serve(Arc::new(|_: &Req| Reply::Close));
    let env = Env::new();
    let err = fails_within(&env, &["pull", &format!("{addr}/x:1")], BOUND);
    let (_, cause) = err
        .split_once("after 5 attempts: ")
        .unwrap_or_else(|| panic!("{err}"));
    // The cause without the host (which the retry warnings name).
    let cause = cause.lines().next().unwrap();
    let cause = cause.rsplit(": ").next().unwrap();
    assert!(!cause.is_empty(), "{err}");
    assert_eq!(err.matches(cause).count(), 1, "{cause:?} repeated:\n{err}");
    // Five attempts, each probing HTTP then HTTPS: not five per attempt of an outer
    // retry loop (25 attempts, 50 connections before).
    let n = conns.load(Ordering::SeqCst);
    assert!(n <= 10, "{n} connections");
}

/// A proxy to `upstream` that counts, per blob digest, the uploads that finish a
/// blob (`PUT …digest=`), and drops the connection during the uploads of `kill`
/// while `killing` holds.
struct CountingProxy {
    addr: String,
    puts: Arc<Mutex<HashMap<String, usize>>>,
    killing: Arc<AtomicBool>,
}

impl CountingProxy {
    fn start(upstream: &str, kill: Option<String>, kill_once: bool) -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let puts: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let killing = Arc::new(AtomicBool::new(kill.is_some()));
        let (p, k, up) = (puts.clone(), killing.clone(), upstream.to_string());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let server = TcpStream::connect(&up).unwrap();
                let (mut c_r, mut s_w) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (mut s_r, mut c_w) = (server, client);
                let (p, k, kill) = (p.clone(), k.clone(), kill.clone());
                std::thread::spawn(move || {
                    let marker = b"digest=sha256:";
                    let mut tail: Vec<u8> = Vec::new();
                    let mut buf = vec![0u8; 64 << 10];
                    let mut cut_after: Option<usize> = None;
                    while let Ok(n) = c_r.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        let mut hay = std::mem::take(&mut tail);
                        let old = hay.len();
                        hay.extend_from_slice(&buf[..n]);
                        let mut i = 0;
                        while let Some(pos) = find(&hay[i..], marker) {
                            let start = i + pos + marker.len();
                            if start + 64 > hay.len() {
                                break;
                            }
                            if start + 64 > old {
                                let d = format!(
                                    "sha256:{}",
                                    String::from_utf8_lossy(&hay[start..start + 64])
                                );
                                *p.lock().unwrap().entry(d.clone()).or_default() += 1;
                                if kill.as_deref() == Some(d.as_str()) && k.load(Ordering::SeqCst) {
                                    if kill_once {
                                        k.store(false, Ordering::SeqCst);
                                    }
                                    cut_after = Some(100 << 10);
                                }
                            }
                            i = start;
                        }
                        let keep = hay.len().saturating_sub(256);
                        tail = hay[keep..].to_vec();
                        if let Some(left) = cut_after.as_mut() {
                            if *left < n {
                                // Mid-body: drop both sides.
                                let _ = s_w.shutdown(Shutdown::Both);
                                let _ = c_r.shutdown(Shutdown::Both);
                                return;
                            }
                            *left -= n;
                        }
                        if s_w.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = s_w.shutdown(Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s_r, &mut c_w);
                    let _ = c_w.shutdown(Shutdown::Write);
                });
            }
        });
        CountingProxy {
            addr,
            puts,
            killing,
        }
    }

    fn count(&self, digest: &str) -> usize {
        self.puts.lock().unwrap().get(digest).copied().unwrap_or(0)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn a_push_retries_only_the_blob_that_failed_and_skips_uploaded_ones_on_rerun() {
    if !hoist_testutil::have_registry() {
        eprintln!("skipped: no docker-registry");
        return;
    }
    let reg = hoist_testutil::Registry::plain();
    let env = Env::new();
    // Three layers; the largest is dropped mid-upload.
    let layout = hoist_testutil::random_layout(&env.path("img"), "latest", 3, 2 << 20, 3);
    let big = layout.layers[0].digest.to_string();
    let others: Vec<String> = layout.layers[1..]
        .iter()
        .map(|l| l.digest.to_string())
        .chain([layout.config.digest.to_string()])
        .collect();
    let src = format!("oci:{}:latest", layout.dir.display());

    // 1. Dropped once: that blob is sent again, no other blob is.
    let proxy = CountingProxy::start(&reg.addr(), Some(big.clone()), true);
    env.ok(&[
        "push",
        "--insecure-registry",
        &proxy.addr,
        &src,
        &format!("docker://{}/a:1", proxy.addr),
    ]);
    assert_eq!(proxy.count(&big), 2, "the dropped blob, sent twice");
    for d in &others {
        assert_eq!(proxy.count(d), 1, "{d} was sent again");
    }

    // 2. Dropped every time: the push fails untagged; the rerun sends only that blob.
    let proxy = CountingProxy::start(&reg.addr(), Some(big.clone()), false);
    let err = env.fails(&[
        "push",
        "--insecure-registry",
        &proxy.addr,
        &src,
        &format!("docker://{}/b:1", proxy.addr),
    ]);
    assert!(err.contains("after 5 attempts"), "{err}");
    assert!(!reg.tag_link_path("b", "1").exists());
    assert_eq!(proxy.count(&big), 5);
    proxy.killing.store(false, Ordering::SeqCst);
    let before: Vec<usize> = others.iter().map(|d| proxy.count(d)).collect();
    env.ok(&[
        "push",
        "--insecure-registry",
        &proxy.addr,
        &src,
        &format!("docker://{}/b:1", proxy.addr),
    ]);
    assert!(reg.tag_link_path("b", "1").exists());
    assert_eq!(proxy.count(&big), 6, "the failed blob, sent once more");
    for (d, n) in others.iter().zip(before) {
        assert_eq!(proxy.count(d), n, "{d} was uploaded again on the rerun");
    }
}

#[test]
fn sigint_during_a_build_push_exits_130_without_a_tag() {
    if !hoist_testutil::have_registry() {
        eprintln!("skipped: no docker-registry");
        return;
    }
    let reg = hoist_testutil::Registry::plain();
    let env = Env::new();
    // A slow link (1 MiB/s) and a 16 MiB incompressible file: the push is surely
    // running when SIGINT comes.
    let (slow, uploading) = slow_proxy(&reg.addr(), 1 << 20);
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let mut data = vec![0u8; 16 << 20];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(ctx.join("big"), &data).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY big /big\n").unwrap();
    let tag = format!("{slow}/sig/app:1");
    let child = env
        .hoist()
        .args([
            "build",
            "--insecure-registry",
            &slow,
            "-t",
            &tag,
            "--push",
            ctx.to_str().unwrap(),
        ])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until a blob upload is under way.
    let start = Instant::now();
    while !uploading.load(Ordering::SeqCst) {
        assert!(start.elapsed() < BOUND, "the build never started pushing");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    run(std::process::Command::new("kill").args(["-INT", &child.id().to_string()]));
    let sent = Instant::now();
    let out = child.wait_with_output().unwrap();
    let took = sent.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(
        !reg.tag_link_path("sig/app", "1").exists(),
        "the interrupted push left a tag"
    );
}

/// A proxy to `upstream` that forwards client bytes at `rate` bytes/s; the flag turns
/// true once a blob upload (`PUT`) goes through it.
fn slow_proxy(upstream: &str, rate: usize) -> (String, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let uploading = Arc::new(AtomicBool::new(false));
    let (up, flag) = (upstream.to_string(), uploading.clone());
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let Ok(server) = TcpStream::connect(&up) else {
                continue;
            };
            let (mut c_r, mut s_w) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (mut s_r, mut c_w) = (server, client);
            let flag = flag.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 << 10];
                while let Ok(n) = c_r.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if find(&buf[..n], b"PUT /v2/").is_some() {
                        flag.store(true, Ordering::SeqCst);
                    }
                    if s_w.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_secs_f64(n as f64 / rate as f64));
                }
                let _ = s_w.shutdown(Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s_r, &mut c_w);
                let _ = c_w.shutdown(Shutdown::Write);
            });
        }
    });
    (addr, uploading)
}
