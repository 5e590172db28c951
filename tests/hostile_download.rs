//! `ADD http(s)://…` against hostile servers, each run by the test itself on a loopback
//! port: one that trickles its body, one that never answers, one that sends more than
//! the bound, and an HTTPS server whose certificate a test CA signed.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Serve every connection with `respond` on a thread; returns the port.
fn serve(respond: fn(TcpStream)) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            std::thread::spawn(move || respond(c));
        }
    });
    port
}

/// Read the request head (up to the blank line).
fn read_request(c: &mut TcpStream) {
    let mut got = Vec::new();
    let mut b = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        match c.read(&mut b) {
            Ok(1) => got.push(b[0]),
            _ => return,
        }
    }
}

fn context(env: &Env, url: &str) -> PathBuf {
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM scratch\nADD {url} /downloaded\n"),
    )
    .unwrap();
    ctx
}

fn build(env: &Env, ctx: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let out = env.path("oci");
    let mut c = env.hoist();
    c.arg("build")
        .args(extra)
        .arg("-o")
        .arg(format!("type=oci,dest={}", out.display()))
        .arg(ctx);
    c.output().unwrap()
}

#[test]
fn a_trickling_or_silent_server_times_out_naming_the_url() {
    // 1 byte every 100 ms of a promised 100 kB: no read ever waits long, but the
    // download would take hours.
    let trickle = serve(|mut c| {
        read_request(&mut c);
        let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n");
        for _ in 0..100_000 {
            if c.write_all(b"x").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    // Accepts, reads the request, never answers.
    let silent = serve(|mut c| {
        read_request(&mut c);
        std::thread::sleep(Duration::from_secs(600));
    });
    for port in [trickle, silent] {
        let env = Env::new();
        let url = format!("http://127.0.0.1:{port}/slow.bin");
        let ctx = context(&env, &url);
        let t = Instant::now();
        let out = build(&env, &ctx, &["--download-timeout", "1s"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "took {:?}",
            t.elapsed()
        );
        assert!(err.contains(&url), "{err}");
        assert!(err.contains("stopped responding"), "{err}");
        assert!(!env.path("oci").exists(), "no output for a failed build");
    }
}

#[test]
fn a_download_past_the_size_bound_is_refused() {
    // Announces 2 MiB.
    let announced = serve(|mut c| {
        read_request(&mut c);
        let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2097152\r\n\r\n");
        let _ = c.write_all(&vec![b'a'; 2 << 20]);
    });
    // Says nothing about its length and sends 2 MiB (then closes).
    let unannounced = serve(|mut c| {
        read_request(&mut c);
        let _ = c.write_all(b"HTTP/1.0 200 OK\r\nConnection: close\r\n\r\n");
        let _ = c.write_all(&vec![b'a'; 2 << 20]);
    });
    for port in [announced, unannounced] {
        let env = Env::new();
        let url = format!("http://127.0.0.1:{port}/big.bin");
        let ctx = context(&env, &url);
        let out = build(&env, &ctx, &["--max-download-size", "1M"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert!(err.contains(&url), "{err}");
        assert!(
            err.contains("larger than the bound of 1.0 MiB")
                || err.contains("larger than the bound of 1 MiB"),
            "{err}"
        );
        assert!(err.contains("--max-download-size"), "{err}");
        // Within the bound it works.
        let out = build(&env, &ctx, &["--max-download-size", "3M"]);
        assert_success(&out, "build within the bound");
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `openssl s_server -WWW` serving `dir` on a free port with `ca`'s server certificate.
fn https_server(dir: &std::path::Path, ca: &hoist_testutil::TestCa) -> (Killed, u16) {
    std::fs::write(dir.join("cert.pem"), &ca.cert_pem).unwrap();
    std::fs::write(dir.join("key.pem"), &ca.key_pem).unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("openssl")
        .args(["s_server", "-quiet", "-WWW", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-cert", "cert.pem", "-key", "key.pem"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_server");
    let server = Killed(child);
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "s_server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (server, port)
}

#[test]
fn https_downloads_trust_the_ca_flag_and_show_progress() {
    let env = Env::new();
    let www = env.path("www");
    std::fs::create_dir_all(&www).unwrap();
    // Large enough for progress lines (more than 4 MiB).
    let mut body = Vec::new();
    while body.len() < 5 << 20 {
        body.extend_from_slice(b"hoist https download test payload\n");
    }
    std::fs::write(www.join("payload.txt"), &body).unwrap();
    let ca = hoist_testutil::TestCa::new();
    let ca_file = env.path("ca.pem");
    std::fs::write(&ca_file, &ca.ca_pem).unwrap();
    let (_server, port) = https_server(&www, &ca);
    let url = format!("https://127.0.0.1:{port}/payload.txt");
    let ctx = context(&env, &url);

    let out = build(&env, &ctx, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "an unknown CA must fail: {err}");
    assert!(err.contains(&url), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");

    let out = build(
        &env,
        &ctx,
        &[
            "--progress",
            "plain",
            "--ca-cert",
            ca_file.to_str().unwrap(),
        ],
    );
    assert_success(&out, "build with --ca-cert");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.lines()
            .any(|l| l.starts_with("download ") && l.contains("done in")),
        "a progress summary of the download: {err}"
    );
    assert!(layout_contains(
        &env.path("oci"),
        b"hoist https download test payload"
    ));

    // --insecure-registry for that host skips verification.
    std::fs::remove_dir_all(env.path("oci")).unwrap();
    let host = format!("127.0.0.1:{port}");
    let out = build(&env, &ctx, &["--insecure-registry", &host]);
    assert_success(&out, "build with --insecure-registry");
}
