//! Test support for hoist: real `docker-registry` processes (plain, htpasswd, TLS,
//! bearer token), test images written as OCI layouts without hoist, and `skopeo`.
//!
//! - [`Registry`]: starts `/usr/bin/docker-registry serve` on a free loopback port
//!   with its storage in a temp dir; [`Registry::kill`] / [`Registry::restart`] for
//!   failure tests; killed on drop.
//! - [`TokenServer`]: a small token issuer for the registry's `auth: token` mode
//!   (ES256 JWTs with an `x5c` chain the registry trusts).
//! - [`make_layout`] / [`random_layout`]: OCI layouts written directly (tar + gzip);
//!   [`LayoutSource`]: such a layout as an [`hoist_image::Source`].
//! - [`skopeo`]: run `skopeo` with arguments, failing the test on error.
//!
//! ```no_run
//! let reg = hoist_testutil::Registry::plain();
//! let dir = tempfile::tempdir().unwrap();
//! let img = hoist_testutil::make_layout(dir.path(), "v1", &[&[("hello.txt", b"hi")]]);
//! hoist_testutil::skopeo_push_layout(dir.path(), "v1", &format!("{}/hello:v1", reg.addr()), &[]);
//! # let _ = img;
//! ```

#![deny(missing_docs)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hoist_image::{Descriptor, Digest, RawDocument, Source};

/// The registry binary (Debian's `docker-registry` package).
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// Whether the tools the registry tests need are installed.
pub fn have_registry() -> bool {
    Path::new(REGISTRY_BIN).exists()
}

/// A CA and a server certificate for `localhost` / `127.0.0.1`, made with rcgen.
#[derive(Debug, Clone)]
pub struct TestCa {
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// The server certificate, PEM.
    pub cert_pem: String,
    /// The server key, PEM.
    pub key_pem: String,
}

impl TestCa {
    /// Make a fresh CA and a server certificate signed by it.
    pub fn new() -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "hoist test CA");
        let ca = ca_params.self_signed(&ca_key).expect("CA cert");
        let key = KeyPair::generate().expect("server key");
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        params
            .subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().expect("ip")));
        let cert = params.signed_by(&key, &ca, &ca_key).expect("server cert");
        TestCa {
            ca_pem: ca.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}

/// How a [`Registry`] authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryAuth {
    /// No authentication.
    None,
    /// htpasswd (bcrypt) basic auth with one user.
    Htpasswd {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
    /// Bearer tokens from a [`TokenServer`].
    Token,
}

/// A running `docker-registry`. Killed on drop.
pub struct Registry {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    tls: Option<TestCa>,
    auth: RegistryAuth,
    token: Option<TokenServer>,
    log: Arc<std::sync::Mutex<Vec<String>>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("port", &self.port)
            .field("auth", &self.auth)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Registry {
    /// Plain HTTP, no auth.
    pub fn plain() -> Registry {
        Registry::start(RegistryAuth::None, None)
    }

    /// Plain HTTP with htpasswd basic auth.
    pub fn htpasswd(user: &str, password: &str) -> Registry {
        Registry::start(
            RegistryAuth::Htpasswd {
                user: user.into(),
                password: password.into(),
            },
            None,
        )
    }

    /// TLS with a CA made for the test (see [`Registry::ca_pem`]), no auth.
    pub fn tls() -> Registry {
        Registry::start(RegistryAuth::None, Some(TestCa::new()))
    }

    /// Plain HTTP with the bearer token flow: a [`TokenServer`] that grants every
    /// requested action to `user`/`password` (and to the refresh token
    /// [`TokenServer::REFRESH_TOKEN`]), and nothing to anonymous requests.
    pub fn token(user: &str, password: &str) -> Registry {
        Registry::start_with_token(TokenServer::start(user, password), None)
    }

    /// Like [`Registry::token`], but anonymous requests may pull.
    pub fn token_anonymous_pull(user: &str, password: &str) -> Registry {
        let t = TokenServer::start(user, password);
        t.set_anonymous_pull(true);
        Registry::start_with_token(t, None)
    }

    fn start_with_token(token: TokenServer, tls: Option<TestCa>) -> Registry {
        let mut r = Registry::prepare(RegistryAuth::Token, tls);
        let bundle = r.dir.path().join("token-root.pem");
        std::fs::write(&bundle, &token.cert_pem).expect("write bundle");
        r.env.extend([
            ("REGISTRY_AUTH_TOKEN_REALM".into(), token.realm()),
            (
                "REGISTRY_AUTH_TOKEN_SERVICE".into(),
                TokenServer::SERVICE.into(),
            ),
            (
                "REGISTRY_AUTH_TOKEN_ISSUER".into(),
                TokenServer::ISSUER.into(),
            ),
            (
                "REGISTRY_AUTH_TOKEN_ROOTCERTBUNDLE".into(),
                bundle.display().to_string(),
            ),
        ]);
        r.token = Some(token);
        r.spawn("127.0.0.1:0");
        r
    }

    /// Start with the given auth and optional TLS.
    pub fn start(auth: RegistryAuth, tls: Option<TestCa>) -> Registry {
        let mut r = Registry::prepare(auth, tls);
        r.spawn("127.0.0.1:0");
        r
    }

    fn prepare(auth: RegistryAuth, tls: Option<TestCa>) -> Registry {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).expect("storage dir");
        std::fs::write(dir.path().join("config.yml"), "version: 0.1\n").expect("config");
        let mut env: Vec<(String, String)> = vec![
            (
                "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY".into(),
                storage.display().to_string(),
            ),
            ("REGISTRY_STORAGE_DELETE_ENABLED".into(), "true".into()),
            ("REGISTRY_HTTP_SECRET".into(), "hoist-test-secret".into()),
            ("REGISTRY_LOG_LEVEL".into(), "info".into()),
            ("REGISTRY_LOG_ACCESSLOG_DISABLED".into(), "true".into()),
        ];
        if let RegistryAuth::Htpasswd { user, password } = &auth {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .expect("run htpasswd (apache2-utils)");
            assert!(out.status.success(), "htpasswd failed");
            let p = dir.path().join("htpasswd");
            std::fs::write(&p, &out.stdout).expect("write htpasswd");
            env.push(("REGISTRY_AUTH_HTPASSWD_REALM".into(), "hoist-test".into()));
            env.push((
                "REGISTRY_AUTH_HTPASSWD_PATH".into(),
                p.display().to_string(),
            ));
        }
        if let Some(ca) = &tls {
            let c = dir.path().join("cert.pem");
            let k = dir.path().join("key.pem");
            std::fs::write(&c, &ca.cert_pem).expect("cert");
            std::fs::write(&k, &ca.key_pem).expect("key");
            env.push((
                "REGISTRY_HTTP_TLS_CERTIFICATE".into(),
                c.display().to_string(),
            ));
            env.push(("REGISTRY_HTTP_TLS_KEY".into(), k.display().to_string()));
        }
        Registry {
            child: None,
            port: 0,
            dir,
            env,
            tls,
            auth,
            token: None,
            log: Arc::new(std::sync::Mutex::new(Vec::new())),
        }
    }

    fn spawn(&mut self, addr: &str) {
        let mut cmd = Command::new(REGISTRY_BIN);
        cmd.arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .env("REGISTRY_HTTP_ADDR", addr)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start docker-registry");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        let log = self.log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(i) = line.find("listening on ") {
                    let rest = &line[i + "listening on ".len()..];
                    let addr: String = rest
                        .chars()
                        .take_while(|c| !c.is_whitespace() && *c != '"' && *c != ',')
                        .collect();
                    if let Some(port) = addr.rsplit(':').next().and_then(|p| p.parse::<u16>().ok())
                    {
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(port);
                        }
                    }
                }
                log.lock().expect("log").push(line);
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(p) => p,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "docker-registry did not start; log:\n{}",
                    self.log.lock().expect("log").join("\n")
                );
            }
        };
        self.port = port;
        self.child = Some(child);
        // The log line comes just before accept(); wait until connections succeed.
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT` or `https://…`.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr())
    }

    /// The CA certificate (PEM) that signed a TLS registry's certificate.
    pub fn ca_pem(&self) -> Option<&str> {
        self.tls.as_ref().map(|t| t.ca_pem.as_str())
    }

    /// Write the CA certificate as `DIR/ca.crt` (a `certs.d`/`--cert-dir` layout) and
    /// return DIR.
    pub fn cert_dir(&self) -> PathBuf {
        let d = self.dir.path().join("certs");
        std::fs::create_dir_all(&d).expect("certs dir");
        std::fs::write(d.join("ca.crt"), self.ca_pem().expect("TLS registry")).expect("ca.crt");
        d
    }

    /// The auth mode.
    pub fn auth(&self) -> &RegistryAuth {
        &self.auth
    }

    /// The token server of a [`Registry::token`] registry.
    pub fn token_server(&self) -> Option<&TokenServer> {
        self.token.as_ref()
    }

    /// The storage root directory.
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// Where the registry stores a blob's content.
    pub fn blob_data_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.storage()
            .join("docker/registry/v2/blobs")
            .join(digest.algorithm().as_str())
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// Where the registry stores a tag's current link (exists iff the tag exists).
    pub fn tag_link_path(&self, repo: &str, tag: &str) -> PathBuf {
        self.storage()
            .join("docker/registry/v2/repositories")
            .join(repo)
            .join("_manifests/tags")
            .join(tag)
            .join("current/link")
    }

    /// The registry's log so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("log").join("\n")
    }

    /// Kill the process now (for mid-push failure tests).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Start again on the same port and storage (after [`Registry::kill`]).
    pub fn restart(&mut self) {
        self.kill();
        let addr = self.addr();
        // The port may linger briefly; retry binding for a few seconds.
        for _ in 0..50 {
            if std::net::TcpListener::bind(&addr).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.spawn(&addr);
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A token issuer for the registry's `auth: token` mode: signs ES256 JWTs with a
/// key whose self-signed certificate is the registry's root bundle, and sends it as
/// the `x5c` chain.
pub struct TokenServer {
    server: Arc<tiny_http::Server>,
    port: u16,
    /// The signing certificate (PEM), to give the registry as its root bundle.
    pub cert_pem: String,
    requests: Arc<AtomicUsize>,
    anonymous_pull: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for TokenServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenServer")
            .field("port", &self.port)
            .finish()
    }
}

impl TokenServer {
    /// The `service` the registry expects.
    pub const SERVICE: &'static str = "hoist-test-registry";
    /// The `iss` the registry expects.
    pub const ISSUER: &'static str = "hoist-test-issuer";
    /// A refresh token (OAuth2 identity token) the server accepts.
    pub const REFRESH_TOKEN: &'static str = "hoist-test-refresh-token";

    /// Start on a free loopback port.
    pub fn start(user: &str, password: &str) -> TokenServer {
        use rcgen::{CertificateParams, KeyPair};
        let key = KeyPair::generate().expect("token key");
        let mut params = CertificateParams::new(vec!["token-issuer".to_string()]).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "hoist token issuer");
        let cert = params.self_signed(&key).expect("token cert");
        let signer = ring::signature::EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &key.serialize_der(),
            &ring::rand::SystemRandom::new(),
        )
        .expect("ring key");
        let x5c = base64::engine::general_purpose::STANDARD.encode(cert.der());
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("token server"));
        let port = server.server_addr().to_ip().expect("ip addr").port();
        let requests = Arc::new(AtomicUsize::new(0));
        let anonymous_pull = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        let (srv, reqs, anon) = (server.clone(), requests.clone(), anonymous_pull.clone());
        let thread = std::thread::spawn(move || {
            for mut req in srv.incoming_requests() {
                reqs.fetch_add(1, Ordering::SeqCst);
                let mut body = String::new();
                let _ = req.as_reader().take(1 << 16).read_to_string(&mut body);
                let url = req.url().to_string();
                let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
                let mut params: Vec<(String, String)> = parse_form(query);
                params.extend(parse_form(&body));
                let auth = req
                    .headers()
                    .iter()
                    .find(|h| h.field.equiv("Authorization"))
                    .map(|h| h.value.as_str().to_string());
                let get = |k: &str| {
                    params
                        .iter()
                        .find(|(kk, _)| kk == k)
                        .map(|(_, v)| v.clone())
                };
                let authed = match auth {
                    Some(a) if a == basic => Some(true),
                    Some(_) => Some(false),
                    None => None,
                };
                let refresh_ok = get("grant_type").as_deref() == Some("refresh_token")
                    && get("refresh_token").as_deref() == Some(Self::REFRESH_TOKEN);
                let refresh_bad =
                    get("grant_type").as_deref() == Some("refresh_token") && !refresh_ok;
                if authed == Some(false) || refresh_bad {
                    let _ = req.respond(
                        tiny_http::Response::from_string("{\"details\":\"invalid credentials\"}")
                            .with_status_code(401),
                    );
                    continue;
                }
                let full = authed == Some(true) || refresh_ok;
                let mut access = Vec::new();
                for (k, v) in &params {
                    if k != "scope" {
                        continue;
                    }
                    for s in v.split(' ') {
                        let parts: Vec<&str> = s.split(':').collect();
                        if parts.len() < 3 || parts[0] != "repository" {
                            continue;
                        }
                        let name = parts[1..parts.len() - 1].join(":");
                        let wanted: Vec<&str> = parts[parts.len() - 1].split(',').collect();
                        let granted: Vec<&str> = if full {
                            wanted
                        } else if anon.load(Ordering::SeqCst) {
                            wanted.into_iter().filter(|a| *a == "pull").collect()
                        } else {
                            Vec::new()
                        };
                        access.push(serde_json::json!({"type": "repository", "name": name, "actions": granted}));
                    }
                }
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .expect("clock")
                    .as_secs();
                let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [x5c]});
                let claims = serde_json::json!({
                    "iss": Self::ISSUER,
                    "sub": if full { "tester" } else { "" },
                    "aud": Self::SERVICE,
                    "exp": now + 300,
                    "nbf": now - 10,
                    "iat": now,
                    "jti": format!("{now}-{}", reqs.load(Ordering::SeqCst)),
                    "access": access,
                });
                let b64 = |v: &serde_json::Value| {
                    base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .encode(serde_json::to_vec(v).expect("json"))
                };
                let signing_input = format!("{}.{}", b64(&header), b64(&claims));
                let sig = signer
                    .sign(&ring::rand::SystemRandom::new(), signing_input.as_bytes())
                    .expect("sign");
                let jwt = format!(
                    "{signing_input}.{}",
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig.as_ref())
                );
                let mut resp =
                    serde_json::json!({"token": jwt, "access_token": jwt, "expires_in": 300});
                if refresh_ok {
                    resp["refresh_token"] = Self::REFRESH_TOKEN.into();
                }
                let _ = req.respond(
                    tiny_http::Response::from_string(resp.to_string()).with_header(
                        "Content-Type: application/json"
                            .parse::<tiny_http::Header>()
                            .expect("header"),
                    ),
                );
            }
        });
        TokenServer {
            server,
            port,
            cert_pem: cert.pem(),
            requests,
            anonymous_pull,
            thread: Some(thread),
        }
    }

    /// The realm URL.
    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    /// How many token requests were served.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Whether anonymous requests get pull access.
    pub fn set_anonymous_pull(&self, yes: bool) {
        self.anonymous_pull.store(yes, Ordering::SeqCst);
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn parse_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match h {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What [`make_layout`] wrote.
#[derive(Debug, Clone)]
pub struct LayoutImage {
    /// The layout directory.
    pub dir: PathBuf,
    /// The tag (`org.opencontainers.image.ref.name`).
    pub tag: String,
    /// The manifest's descriptor.
    pub manifest: Descriptor,
    /// The config's descriptor.
    pub config: Descriptor,
    /// The layers' descriptors.
    pub layers: Vec<Descriptor>,
}

fn write_blob(dir: &Path, bytes: &[u8]) -> Digest {
    let d = Digest::sha256(bytes);
    let p = dir.join("blobs/sha256").join(d.hex());
    std::fs::create_dir_all(p.parent().expect("parent")).expect("blobs dir");
    std::fs::write(&p, bytes).expect("write blob");
    d
}

fn finish_layout(dir: &Path, tag: &str, layers: Vec<(Descriptor, Digest)>) -> LayoutImage {
    let diff_ids: Vec<String> = layers.iter().map(|(_, d)| d.to_string()).collect();
    let config = serde_json::json!({
        "architecture": hoist_image::Platform::host().architecture,
        "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": layers.iter().map(|_| serde_json::json!({"created_by": "hoist-testutil"})).collect::<Vec<_>>(),
    });
    let config_bytes = serde_json::to_vec(&config).expect("json");
    let config_desc = Descriptor::new(
        hoist_image::media_type::OCI_CONFIG,
        write_blob(dir, &config_bytes),
        config_bytes.len() as u64,
    );
    let layer_descs: Vec<Descriptor> = layers.into_iter().map(|(d, _)| d).collect();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": hoist_image::media_type::OCI_MANIFEST,
        "config": config_desc,
        "layers": layer_descs,
    });
    let mbytes = serde_json::to_vec(&manifest).expect("json");
    let mdesc = Descriptor::new(
        hoist_image::media_type::OCI_MANIFEST,
        write_blob(dir, &mbytes),
        mbytes.len() as u64,
    );
    let mut entry = mdesc.clone();
    entry.annotations = Some(BTreeMap::from([(
        "org.opencontainers.image.ref.name".to_string(),
        tag.to_string(),
    )]));
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": hoist_image::media_type::OCI_INDEX,
        "manifests": [entry],
    });
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&index).expect("json"),
    )
    .expect("index.json");
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
        .expect("oci-layout");
    LayoutImage {
        dir: dir.to_path_buf(),
        tag: tag.to_string(),
        manifest: mdesc,
        config: config_desc,
        layers: layer_descs,
    }
}

fn gzip_layer(dir: &Path, tar_bytes: &[u8]) -> (Descriptor, Digest) {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(tar_bytes).expect("gzip");
    let gz = gz.finish().expect("gzip");
    let diff_id = Digest::sha256(tar_bytes);
    let d = write_blob(dir, &gz);
    (
        Descriptor::new(hoist_image::media_type::OCI_LAYER_GZIP, d, gz.len() as u64),
        diff_id,
    )
}

/// Write a single-image OCI layout at `dir` tagged `tag`: one gzip layer per entry of
/// `layers`, each a list of `(path, content)` regular files.
pub fn make_layout(dir: &Path, tag: &str, layers: &[&[(&str, &[u8])]]) -> LayoutImage {
    let mut out = Vec::new();
    for files in layers {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in *files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(0);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, name, *data).expect("tar entry");
        }
        let tar_bytes = b.into_inner().expect("tar");
        out.push(gzip_layer(dir, &tar_bytes));
    }
    finish_layout(dir, tag, out)
}

/// Write an OCI layout of `layers` layers, each holding one file of about
/// `layer_size` bytes of pseudo-random (incompressible) data from `seed`. The layers
/// are plain `tar` (`application/vnd.oci.image.layer.v1.tar`): random data does not
/// compress, and tests should not spend their time in gzip.
pub fn random_layout(
    dir: &Path,
    tag: &str,
    layers: usize,
    layer_size: usize,
    seed: u64,
) -> LayoutImage {
    let mut out = Vec::new();
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for i in 0..layers {
        let mut data = vec![0u8; layer_size];
        for chunk in data.chunks_mut(8) {
            // xorshift64*
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let v = state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        b.append_data(&mut h, format!("layer{i}.bin"), &data[..])
            .expect("tar");
        let tar_bytes = b.into_inner().expect("tar");
        // Store as an uncompressed tar layer: random data does not compress and the
        // test should not spend its time in gzip.
        let d = write_blob(dir, &tar_bytes);
        out.push((
            Descriptor::new(
                hoist_image::media_type::OCI_LAYER_TAR,
                d.clone(),
                tar_bytes.len() as u64,
            ),
            d,
        ));
    }
    finish_layout(dir, tag, out)
}

/// An OCI layout directory as an image [`Source`] whose root is the manifest tagged
/// `tag` (or the only one), read without any hoist code beyond the core types.
#[derive(Debug, Clone)]
pub struct LayoutSource {
    dir: PathBuf,
    root: Descriptor,
}

impl LayoutSource {
    /// Open `dir`, selecting the index entry tagged `tag` (or the first if `None`).
    pub fn open(dir: &Path, tag: Option<&str>) -> LayoutSource {
        let index: hoist_image::Index =
            serde_json::from_slice(&std::fs::read(dir.join("index.json")).expect("index.json"))
                .expect("index");
        let root = index
            .manifests
            .iter()
            .find(|m| tag.is_none() || m.annotation("org.opencontainers.image.ref.name") == tag)
            .expect("tag in layout")
            .clone();
        LayoutSource {
            dir: dir.to_path_buf(),
            root,
        }
    }

    fn path(&self, d: &Digest) -> PathBuf {
        self.dir
            .join("blobs")
            .join(d.algorithm().as_str())
            .join(d.hex())
    }
}

impl Source for LayoutSource {
    fn name(&self) -> String {
        format!("oci:{}", self.dir.display())
    }
    fn root(&self) -> hoist_image::Result<RawDocument> {
        self.manifest(&self.root.clone())
    }
    fn manifest(&self, desc: &Descriptor) -> hoist_image::Result<RawDocument> {
        let p = self.path(&desc.digest);
        let bytes = std::fs::read(&p).map_err(|e| hoist_image::Error::io(p, e))?;
        Ok(RawDocument::new(desc.media_type.clone(), bytes))
    }
    fn blob(&self, desc: &Descriptor) -> hoist_image::Result<Box<dyn Read + Send + '_>> {
        let p = self.path(&desc.digest);
        Ok(Box::new(
            std::fs::File::open(&p).map_err(|e| hoist_image::Error::io(p, e))?,
        ))
    }
}

/// Run `skopeo ARGS`; panics with its output on failure. Returns stdout.
pub fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Push an OCI layout with skopeo: `skopeo copy oci:DIR:TAG docker://DEST`, plus
/// `extra` arguments (`--dest-creds`, `--dest-cert-dir`). TLS verification is off
/// unless `extra` has `--dest-cert-dir`.
pub fn skopeo_push_layout(dir: &Path, tag: &str, dest: &str, extra: &[&str]) {
    let src = format!("oci:{}:{tag}", dir.display());
    let dst = format!("docker://{dest}");
    let mut args = vec!["copy", "--quiet"];
    if !extra.iter().any(|a| a.starts_with("--dest-cert-dir")) {
        args.push("--dest-tls-verify=false");
    }
    args.extend_from_slice(extra);
    args.push(&src);
    args.push(&dst);
    skopeo(&args);
}

/// Pull with skopeo into an OCI layout: `skopeo copy docker://SRC oci:DIR:TAG`.
pub fn skopeo_pull_layout(src: &str, dir: &Path, tag: &str, extra: &[&str]) {
    let s = format!("docker://{src}");
    let d = format!("oci:{}:{tag}", dir.display());
    let mut args = vec!["copy", "--quiet"];
    if !extra.iter().any(|a| a.starts_with("--src-cert-dir")) {
        args.push("--src-tls-verify=false");
    }
    args.extend_from_slice(extra);
    args.push(&s);
    args.push(&d);
    skopeo(&args);
}

/// Unpack an OCI layout's image with `umoci` into `bundle` (rootless); returns the rootfs.
pub fn umoci_unpack(layout: &Path, tag: &str, bundle: &Path) -> PathBuf {
    let image = format!("{}:{tag}", layout.display());
    let out = Command::new("umoci")
        .args(["unpack", "--rootless", "--image", &image])
        .arg(bundle)
        .output()
        .expect("run umoci");
    assert!(
        out.status.success(),
        "umoci unpack failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    bundle.join("rootfs")
}
