//! A hostile registry on 127.0.0.1: it accepts connections and never answers. The
//! client must give up after its read timeout with a clear error, not hang.

use std::io::Read;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use hoist_registry::{Client, ClientConfig, Reference};

/// Accept every connection and keep it open, reading requests, never answering.
fn silent_server() -> (String, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    l.set_nonblocking(true).unwrap();
    let h = std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(60);
        let mut held = Vec::new();
        while Instant::now() < end {
            match l.accept() {
                Ok((mut s, _)) => {
                    let mut buf = [0u8; 4096];
                    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
                    let _ = s.read(&mut buf);
                    held.push(s);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
            if held.len() > 20 {
                break;
            }
        }
    });
    (addr, h)
}

#[test]
fn a_registry_that_never_answers_fails_with_a_clear_error() {
    let (addr, _server) = silent_server();
    let cfg = ClientConfig {
        insecure: vec![addr.clone()],
        read_timeout: Duration::from_secs(1),
        retries: 1,
        retry_delay: Duration::from_millis(10),
        ..ClientConfig::default()
    };
    let client = Client::new(cfg).unwrap();
    let r = Reference::parse(&format!("{addr}/hostile/img:latest")).unwrap();
    let started = Instant::now();
    let err = client.get_manifest(&r).unwrap_err().to_string();
    let took = started.elapsed();
    assert!(
        err.contains(&format!(
            "registry {addr} stopped responding (no data for 1s)"
        )),
        "{err}"
    );
    assert!(took < Duration::from_secs(20), "took {took:?}");
}
