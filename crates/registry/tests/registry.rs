//! Integration tests against real `docker-registry` processes (plain HTTP, htpasswd,
//! TLS with a test CA, bearer tokens) and `skopeo` as the independent client.

use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::Duration;

use hoist_image::{BlobStore, Descriptor, Platform, RawDocument, Source};
use hoist_registry::{
    AuthConfig, BlobOutcome, CaCert, Client, ClientConfig, Credential, Error, PullPolicy,
    PushOptions, Reference,
};
use hoist_testutil::{
    make_layout, random_layout, skopeo_pull_layout, skopeo_push_layout, LayoutSource, Registry,
};

fn config() -> ClientConfig {
    ClientConfig {
        auth: AuthConfig {
            anonymous: true,
            ..Default::default()
        },
        ca_certs: Vec::new(),
        certs_dirs: Vec::new(),
        hosts_dirs: Vec::new(),
        retry_delay: Duration::from_millis(50),
        retries: 2,
        ..Default::default()
    }
}

fn with_creds(mut c: ClientConfig, reg: &Registry, user: &str, pass: &str) -> ClientConfig {
    c.auth.explicit.insert(
        reg.addr(),
        Credential::Basic {
            username: user.into(),
            password: pass.into(),
        },
    );
    c
}

fn r(s: &str) -> Reference {
    Reference::parse(s).unwrap()
}

fn small_image(dir: &std::path::Path) -> hoist_testutil::LayoutImage {
    make_layout(
        dir,
        "v1",
        &[
            &[("etc/hello.txt", b"hello from layer one\n")],
            &[
                ("etc/second.txt", b"second layer\n"),
                ("bin/tool", &[7u8; 4096]),
            ],
            &[("data/big.bin", &vec![42u8; 300_000])],
        ],
    )
}

/// Pull, push, mount, re-push, multi-tag, skopeo round trips: the common scenario
/// run against each kind of registry.
fn scenario(
    reg: &Registry,
    client: &Client,
    skopeo_extra_dest: &[&str],
    skopeo_extra_src: &[&str],
) {
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let img = small_image(&layout);
    let addr = reg.addr();

    // An image pushed by skopeo is pulled by hoist.
    skopeo_push_layout(
        &layout,
        "v1",
        &format!("{addr}/base/src:v1"),
        skopeo_extra_dest,
    );
    let store = BlobStore::new(work.path().join("cache/blobs")).unwrap();
    let src_ref = r(&format!("{addr}/base/src:v1"));
    let pulled = client
        .pull(&src_ref, &Platform::host(), &store, PullPolicy::Always)
        .unwrap();
    assert!(pulled.from_registry);
    assert_eq!(pulled.image.manifest.layers.len(), 3);
    assert_eq!(pulled.blobs_downloaded, 4, "config + 3 layers");
    for l in &pulled.image.manifest.layers {
        assert!(store.has_descriptor(l));
    }
    // Cached: no registry needed for Missing / Never, and nothing downloaded twice.
    let again = client
        .pull(&src_ref, &Platform::host(), &store, PullPolicy::Missing)
        .unwrap();
    assert!(!again.from_registry);
    assert_eq!(again.digest, pulled.digest);
    let again = client
        .pull(&src_ref, &Platform::host(), &store, PullPolicy::Always)
        .unwrap();
    assert!(again.from_registry);
    assert_eq!(again.blobs_downloaded, 0);
    let by_digest = src_ref.with_digest(pulled.digest.clone());
    assert!(
        !client
            .pull(&by_digest, &Platform::host(), &store, PullPolicy::Never)
            .unwrap()
            .from_registry
    );

    // Push the pulled image to another repository: every blob is mounted.
    let dst = r(&format!("{addr}/app/dst:v1"));
    let rep = client
        .push(
            &pulled.source,
            std::slice::from_ref(&dst),
            &PushOptions {
                cache: Some(store.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(rep.mounted, 4, "{rep:?}");
    assert_eq!(rep.uploaded, 0, "{rep:?}");
    assert_eq!(rep.digest.as_ref(), Some(&pulled.digest));
    // Re-push: all blobs present, none uploaded twice (with and without the
    // manifest shortcut).
    let rep = client
        .push(
            &pulled.source,
            std::slice::from_ref(&dst),
            &PushOptions::default(),
        )
        .unwrap();
    assert_eq!(
        (rep.skipped, rep.uploaded, rep.mounted),
        (4, 0, 0),
        "{rep:?}"
    );
    let rep = client
        .push(
            &pulled.source,
            &[dst.clone(), dst.with_tag("v2").unwrap()],
            &PushOptions {
                always_check_blobs: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        (rep.skipped, rep.uploaded, rep.mounted),
        (4, 0, 0),
        "{rep:?}"
    );
    assert_eq!(rep.references.len(), 2);

    // A fresh push of a layout to a new repository, several tags at once.
    let fresh = Client::new(client.config().clone()).unwrap();
    let src = LayoutSource::open(&layout, Some("v1"));
    let tags = [
        r(&format!("{addr}/fresh/img:a")),
        r(&format!("{addr}/fresh/img:b")),
    ];
    let rep = fresh.push(&src, &tags, &PushOptions::default()).unwrap();
    assert_eq!(rep.uploaded, 4, "{rep:?}");
    assert_eq!(
        rep.uploaded_bytes,
        img.config.size + img.layers.iter().map(|l| l.size).sum::<u64>()
    );
    assert_eq!(rep.digest.as_ref(), Some(&img.manifest.digest));
    let mut listed = fresh.list_tags(&tags[0]).unwrap();
    listed.sort();
    assert_eq!(listed, vec!["a", "b"]);
    let head = fresh.head_manifest(&tags[1]).unwrap().unwrap();
    assert_eq!(head.digest, img.manifest.digest);
    assert!(fresh
        .head_manifest(&r(&format!("{addr}/fresh/img:nope")))
        .unwrap()
        .is_none());

    // An image pushed by hoist is pulled and unpacked by skopeo + umoci.
    let out = work.path().join("skopeo-out");
    skopeo_pull_layout(&format!("{addr}/fresh/img:b"), &out, "b", skopeo_extra_src);
    let rootfs = hoist_testutil::umoci_unpack(&out, "b", &work.path().join("bundle"));
    assert_eq!(
        std::fs::read(rootfs.join("etc/hello.txt")).unwrap(),
        b"hello from layer one\n"
    );
    assert_eq!(
        std::fs::read(rootfs.join("data/big.bin")).unwrap().len(),
        300_000
    );

    // Registry source as a Source: copy registry → registry (mount on the same registry).
    let rs = client.source(&tags[0]);
    let rep = client
        .push(
            &rs,
            &[r(&format!("{addr}/copy/img:c"))],
            &PushOptions::default(),
        )
        .unwrap();
    assert_eq!(rep.uploaded + rep.skipped, 0, "{rep:?}");
    assert_eq!(rep.mounted, 4, "{rep:?}");

    // Index push: an OCI index over the image, then pull through it by platform.
    let mut plat = img.manifest.clone();
    plat.platform = Some(Platform::host());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": hoist_image::media_type::OCI_INDEX,
        "manifests": [plat],
    });
    let index_doc = RawDocument::new(
        hoist_image::media_type::OCI_INDEX,
        serde_json::to_vec(&index).unwrap(),
    );
    let ir = r(&format!("{addr}/multi/img:idx"));
    let isrc = IndexSource {
        inner: &src,
        index: index_doc.clone(),
    };
    let rep = client
        .push(&isrc, std::slice::from_ref(&ir), &PushOptions::default())
        .unwrap();
    assert_eq!(rep.digest.as_ref(), Some(&index_doc.digest()));
    assert_eq!(rep.manifests, 2);
    let store2 = BlobStore::new(work.path().join("cache2/blobs")).unwrap();
    let p = client
        .pull(&ir, &Platform::host(), &store2, PullPolicy::Missing)
        .unwrap();
    assert_eq!(p.digest, img.manifest.digest);
    assert_eq!(p.root.digest, index_doc.digest());
    let other = Platform::parse("linux/s390x").unwrap();
    let err = client
        .pull(&ir, &other, &store2, PullPolicy::Always)
        .unwrap_err();
    assert!(err.to_string().contains("no image for platform"), "{err}");
    let insp = client.inspect(&ir, Some(&Platform::host())).unwrap();
    assert_eq!(insp.digest, index_doc.digest());
    assert_eq!(
        insp.image.unwrap().manifest_raw.digest(),
        img.manifest.digest
    );

    // Delete by digest.
    let del = r(&format!("{addr}/copy/img:c"));
    client.delete_manifest(&del, &img.manifest.digest).unwrap();
    assert!(client.head_manifest(&del).unwrap().is_none());
}

/// A source whose root is a given index over another source's manifest.
struct IndexSource<'a> {
    inner: &'a LayoutSource,
    index: RawDocument,
}

impl Source for IndexSource<'_> {
    fn name(&self) -> String {
        "index".into()
    }
    fn root(&self) -> hoist_image::Result<RawDocument> {
        Ok(self.index.clone())
    }
    fn manifest(&self, desc: &Descriptor) -> hoist_image::Result<RawDocument> {
        self.inner.manifest(desc)
    }
    fn blob(&self, desc: &Descriptor) -> hoist_image::Result<Box<dyn Read + Send + '_>> {
        self.inner.blob(desc)
    }
}

#[test]
fn plain_http_registry() {
    let reg = Registry::plain();
    let client = Client::new(config()).unwrap();
    scenario(&reg, &client, &[], &[]);
}

#[test]
fn chunked_uploads() {
    let reg = Registry::plain();
    let work = tempfile::tempdir().unwrap();
    let img = random_layout(work.path(), "v1", 2, 700_000, 7);
    let client = Client::new(ClientConfig {
        chunk_size: Some(256 << 10),
        ..config()
    })
    .unwrap();
    let src = LayoutSource::open(work.path(), Some("v1"));
    let dest = r(&format!("{}/chunked:v1", reg.addr()));
    let rep = client
        .push(&src, std::slice::from_ref(&dest), &PushOptions::default())
        .unwrap();
    assert_eq!(rep.uploaded, 3);
    let store = BlobStore::new(work.path().join("c/blobs")).unwrap();
    let p = client
        .pull(&dest, &Platform::host(), &store, PullPolicy::Always)
        .unwrap();
    assert_eq!(p.digest, img.manifest.digest);
}

#[test]
fn htpasswd_registry() {
    let reg = Registry::htpasswd("alice", "s3cret-pw");
    let client = Client::new(with_creds(config(), &reg, "alice", "s3cret-pw")).unwrap();
    let creds = "--dest-creds=alice:s3cret-pw";
    scenario(&reg, &client, &[creds], &["--src-creds=alice:s3cret-pw"]);

    // Wrong and missing credentials: clear errors without the secret.
    let bad = Client::new(with_creds(config(), &reg, "alice", "WRONG-pass-123")).unwrap();
    let err = bad
        .get_manifest(&r(&format!("{}/fresh/img:a", reg.addr())))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Unauthorized {
                had_credentials: true,
                ..
            }
        ),
        "{err:?}"
    );
    let msg = format!("{err} {err:?}");
    assert!(msg.contains("credentials refused"), "{msg}");
    assert!(!msg.contains("WRONG-pass-123"), "secret leaked: {msg}");
    let anon = Client::new(config()).unwrap();
    let err = anon
        .get_manifest(&r(&format!("{}/fresh/img:a", reg.addr())))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Unauthorized {
                had_credentials: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("hoist login"), "{err}");

    // login verifies, then writes the standard file; the file is then used.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.json");
    let err = anon
        .login(&reg.addr(), "alice", "nope", Some(&file))
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    assert!(!file.exists());
    anon.login(&reg.addr(), "alice", "s3cret-pw", Some(&file))
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert!(doc["auths"][reg.addr()]["auth"].is_string());
    let from_file = Client::new(ClientConfig {
        auth: AuthConfig {
            files: Some(vec![file.clone()]),
            ..Default::default()
        },
        ..config()
    })
    .unwrap();
    from_file
        .get_manifest(&r(&format!("{}/fresh/img:a", reg.addr())))
        .unwrap();
    assert!(hoist_registry::logout(&reg.addr(), Some(&file)).unwrap());
    let after = Client::new(ClientConfig {
        auth: AuthConfig {
            files: Some(vec![file]),
            ..Default::default()
        },
        ..config()
    })
    .unwrap();
    assert!(after
        .get_manifest(&r(&format!("{}/fresh/img:a", reg.addr())))
        .is_err());
}

#[test]
fn tls_registry_with_test_ca() {
    let reg = Registry::tls();
    let ca = reg.ca_pem().unwrap().to_string();
    let client = Client::new(ClientConfig {
        ca_certs: vec![CaCert::Pem(ca.clone())],
        ..config()
    })
    .unwrap();
    let cert_dir = reg.cert_dir();
    let d = format!("--dest-cert-dir={}", cert_dir.display());
    let s = format!("--src-cert-dir={}", cert_dir.display());
    scenario(&reg, &client, &[&d], &[&s]);

    // Docker's certs.d/<host:port>/ca.crt layout.
    let certsd = tempfile::tempdir().unwrap();
    let hostdir = certsd.path().join(reg.addr());
    std::fs::create_dir_all(&hostdir).unwrap();
    std::fs::write(hostdir.join("ca.crt"), &ca).unwrap();
    let c2 = Client::new(ClientConfig {
        certs_dirs: vec![certsd.path().to_path_buf()],
        ..config()
    })
    .unwrap();
    c2.get_manifest(&r(&format!("{}/fresh/img:a", reg.addr())))
        .unwrap();

    // Without the CA the registry is not trusted (and plain HTTP is not served).
    let c3 = Client::new(config()).unwrap();
    let err = c3
        .get_manifest(&r(&format!("{}/fresh/img:a", reg.addr())))
        .unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert!(!err.is_retryable(), "{err:?}");
    let chain = format!("{:?}", err);
    assert!(
        chain.contains("certificate") || chain.contains("Certificate"),
        "{chain}"
    );
    // --insecure-registry: certificate not verified.
    let c4 = Client::new(ClientConfig {
        insecure: vec![reg.addr()],
        ..config()
    })
    .unwrap();
    c4.get_manifest(&r(&format!("{}/fresh/img:a", reg.addr())))
        .unwrap();
    // LOCAL_CA_CERTIFICATE holding the PEM (read by ClientConfig::default()).
    std::env::set_var("LOCAL_CA_CERTIFICATE", &ca);
    let mut from_env = ClientConfig::default();
    std::env::remove_var("LOCAL_CA_CERTIFICATE");
    assert_eq!(from_env.ca_certs, vec![CaCert::Pem(ca.trim().to_string())]);
    from_env.auth.anonymous = true;
    Client::new(from_env)
        .unwrap()
        .get_manifest(&r(&format!("{}/fresh/img:a", reg.addr())))
        .unwrap();
    // A bad CA file is reported when the client is made.
    let err = Client::new(ClientConfig {
        ca_certs: vec![CaCert::Pem("not a certificate".into())],
        ..config()
    })
    .unwrap_err();
    assert!(err.to_string().contains("CA certificate"), "{err}");
}

#[test]
fn bearer_token_registry() {
    let reg = Registry::token("bob", "tok-pass");
    let client = Client::new(with_creds(config(), &reg, "bob", "tok-pass")).unwrap();
    scenario(
        &reg,
        &client,
        &["--dest-creds=bob:tok-pass"],
        &["--src-creds=bob:tok-pass"],
    );
    // Tokens are cached per scope: far fewer token requests than registry requests.
    let before = reg.token_server().unwrap().requests();
    let dest = r(&format!("{}/fresh/img:a", reg.addr()));
    for _ in 0..5 {
        client.get_manifest(&dest).unwrap();
    }
    assert_eq!(
        reg.token_server().unwrap().requests(),
        before,
        "cached token reused"
    );

    // OAuth2 identity (refresh) token.
    let mut c = config();
    c.auth.explicit.insert(
        reg.addr(),
        Credential::IdentityToken(hoist_testutil::TokenServer::REFRESH_TOKEN.into()),
    );
    Client::new(c).unwrap().get_manifest(&dest).unwrap();

    // Wrong password: clear error, no secret.
    let bad = Client::new(with_creds(config(), &reg, "bob", "bad-secret-xyz")).unwrap();
    let err = bad.get_manifest(&dest).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Unauthorized {
                had_credentials: true,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!format!("{err} {err:?}").contains("bad-secret-xyz"));
    // Anonymous: the token carries no access.
    let err = Client::new(config())
        .unwrap()
        .get_manifest(&dest)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Unauthorized {
                had_credentials: false,
                ..
            }
        ),
        "{err:?}"
    );
    // login through the token service.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("auth.json");
    assert!(Client::new(config())
        .unwrap()
        .login(&reg.addr(), "bob", "wrong", Some(&f))
        .is_err());
    Client::new(config())
        .unwrap()
        .login(&reg.addr(), "bob", "tok-pass", Some(&f))
        .unwrap();
}

#[test]
fn wrong_digest_from_server_is_rejected() {
    let reg = Registry::plain();
    let work = tempfile::tempdir().unwrap();
    let img = small_image(&work.path().join("l"));
    let client = Client::new(config()).unwrap();
    let dest = r(&format!("{}/corrupt:v1", reg.addr()));
    client
        .push(
            &LayoutSource::open(&img.dir, None),
            std::slice::from_ref(&dest),
            &PushOptions::default(),
        )
        .unwrap();
    // Corrupt the biggest layer in the registry's storage (same size).
    let layer = img.layers.iter().max_by_key(|l| l.size).unwrap();
    let p = reg.blob_data_path(&layer.digest);
    let mut bytes = std::fs::read(&p).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    std::fs::write(&p, &bytes).unwrap();
    let store = BlobStore::new(work.path().join("c/blobs")).unwrap();
    let err = client
        .pull(&dest, &Platform::host(), &store, PullPolicy::Always)
        .unwrap_err();
    assert!(err.to_string().contains("digest mismatch"), "{err}");
    assert!(
        !store.has(&layer.digest),
        "a corrupt blob must not enter the cache"
    );
    // A manifest fetched by a digest it does not have is rejected too.
    let wrong = dest.with_digest(layer.digest.clone());
    assert!(client.get_manifest(&wrong).is_err());
}

/// A source that signals when a blob upload is under way, then waits until the
/// test has killed the registry.
struct KillSwitch<'a> {
    inner: &'a LayoutSource,
    big: hoist_image::Digest,
    fired: AtomicBool,
    signal: Mutex<mpsc::Sender<()>>,
    ack: Mutex<mpsc::Receiver<()>>,
}

struct SlowReader<'a> {
    inner: Box<dyn Read + Send + 'a>,
    read: AtomicU64,
    ks: Option<&'a KillSwitch<'a>>,
}

impl Read for SlowReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let total = self.read.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        if let Some(ks) = self.ks {
            if total > 4 << 20 && !ks.fired.swap(true, Ordering::SeqCst) {
                ks.signal.lock().unwrap().send(()).unwrap();
                let _ = ks.ack.lock().unwrap().recv_timeout(Duration::from_secs(20));
            }
        }
        Ok(n)
    }
}

impl Source for KillSwitch<'_> {
    fn name(&self) -> String {
        "killswitch".into()
    }
    fn root(&self) -> hoist_image::Result<RawDocument> {
        self.inner.root()
    }
    fn manifest(&self, desc: &Descriptor) -> hoist_image::Result<RawDocument> {
        self.inner.manifest(desc)
    }
    fn blob(&self, desc: &Descriptor) -> hoist_image::Result<Box<dyn Read + Send + '_>> {
        Ok(Box::new(SlowReader {
            inner: self.inner.blob(desc)?,
            read: AtomicU64::new(0),
            ks: (desc.digest == self.big).then_some(self),
        }))
    }
}

fn killed_mid_push(restart: bool) {
    let mut reg = Registry::plain();
    let work = tempfile::tempdir().unwrap();
    let img = random_layout(work.path(), "v1", 2, 24 << 20, 99);
    let src = LayoutSource::open(work.path(), None);
    let (tx, rx) = mpsc::channel();
    let (ack_tx, ack_rx) = mpsc::channel();
    let ks = KillSwitch {
        inner: &src,
        big: img.layers[0].digest.clone(),
        fired: AtomicBool::new(false),
        signal: Mutex::new(tx),
        ack: Mutex::new(ack_rx),
    };
    let client = Client::new(ClientConfig {
        retries: if restart { 6 } else { 2 },
        retry_delay: Duration::from_millis(300),
        ..config()
    })
    .unwrap();
    let dest = r(&format!("{}/killed:v1", reg.addr()));
    let result = std::thread::scope(|s| {
        let h = s.spawn(|| client.push(&ks, std::slice::from_ref(&dest), &PushOptions::default()));
        rx.recv_timeout(Duration::from_secs(60))
            .expect("upload started");
        reg.kill();
        ack_tx.send(()).unwrap();
        if restart {
            std::thread::sleep(Duration::from_millis(200));
            reg.restart();
        }
        h.join().unwrap()
    });
    if !restart {
        reg.restart();
    }
    let tag = reg.tag_link_path("killed", "v1");
    eprintln!("push after a kill (restart={restart}): {result:?}");
    match result {
        Ok(rep) => {
            assert!(restart, "a push to a dead registry cannot succeed");
            assert!(tag.exists());
            // Complete and valid: pull verifies every blob.
            let store = BlobStore::new(work.path().join("c/blobs")).unwrap();
            let p = client
                .pull(&dest, &Platform::host(), &store, PullPolicy::Always)
                .unwrap();
            assert_eq!(p.digest, img.manifest.digest);
            assert_eq!(rep.digest.unwrap(), img.manifest.digest);
        }
        Err(e) => {
            assert!(!tag.exists(), "failed push left a tag: {e}");
            assert!(Client::new(config())
                .unwrap()
                .head_manifest(&dest)
                .unwrap()
                .is_none());
            // Retries spent: the last attempt's error is a transient one.
            let last = e.last_attempt();
            assert!(
                last.is_retryable() || matches!(last, Error::Transport { .. }),
                "{e:?}"
            );
        }
    }
}

#[test]
fn registry_killed_mid_push_then_restarted() {
    killed_mid_push(true);
}

#[test]
fn registry_killed_mid_push_fails_cleanly() {
    killed_mid_push(false);
}

#[test]
fn docker_hub_mirror_is_tried_first() {
    // The mirror holds library/hoisttest; Docker Hub itself is never contacted.
    let mirror = Registry::plain();
    let work = tempfile::tempdir().unwrap();
    let img = small_image(&work.path().join("l"));
    let client = Client::new(config()).unwrap();
    client
        .push(
            &LayoutSource::open(&img.dir, None),
            &[r(&format!("{}/library/hoisttest:v1", mirror.addr()))],
            &PushOptions::default(),
        )
        .unwrap();
    let c = Client::new(ClientConfig {
        mirrors: vec![format!("http://{}", mirror.addr())],
        ..config()
    })
    .unwrap();
    let store = BlobStore::new(work.path().join("c/blobs")).unwrap();
    let p = c
        .pull(
            &r("hoisttest:v1"),
            &Platform::host(),
            &store,
            PullPolicy::Always,
        )
        .unwrap();
    assert_eq!(p.digest, img.manifest.digest);
    assert_eq!(p.reference.to_string(), "docker.io/library/hoisttest:v1");
    assert_eq!(p.served_by.as_deref(), Some(mirror.addr().as_str()));
    assert!(p.from_mirror);
    assert_eq!(
        c.requests_sent("registry-1.docker.io"),
        0,
        "Docker Hub contacted"
    );
}

/// A loopback `host:port` where nothing listens (connections are refused).
fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    a.to_string()
}

/// A `hosts.toml` directory: `<dir>/<registry>/hosts.toml` naming `mirrors`.
fn hosts_dir(dir: &std::path::Path, registry: &str, mirrors: &[String]) -> std::path::PathBuf {
    let d = dir.join("certs.d");
    std::fs::create_dir_all(d.join(registry)).unwrap();
    let text: String = mirrors
        .iter()
        .map(|m| format!("[host.\"http://{m}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"))
        .collect();
    std::fs::write(d.join(registry).join("hosts.toml"), text).unwrap();
    d
}

#[test]
fn hosts_toml_mirror_serves_without_contacting_an_unreachable_upstream() {
    let mirror = Registry::plain();
    let upstream = closed_port();
    let work = tempfile::tempdir().unwrap();
    let img = small_image(&work.path().join("l"));
    Client::new(config())
        .unwrap()
        .push(
            &LayoutSource::open(&img.dir, None),
            &[r(&format!("{}/team/app:v1", mirror.addr()))],
            &PushOptions::default(),
        )
        .unwrap();
    // A dead mirror first: skipped after one refused connection.
    let dead = closed_port();
    let c = Client::new(ClientConfig {
        hosts_dirs: vec![hosts_dir(
            work.path(),
            &upstream,
            &[dead.clone(), mirror.addr()],
        )],
        retries: 4,
        retry_delay: Duration::from_millis(500),
        ..config()
    })
    .unwrap();
    let store = BlobStore::new(work.path().join("c/blobs")).unwrap();
    let p = c
        .pull(
            &r(&format!("{upstream}/team/app:v1")),
            &Platform::host(),
            &store,
            PullPolicy::Always,
        )
        .unwrap();
    assert_eq!(p.digest, img.manifest.digest);
    assert_eq!(p.served_by.as_deref(), Some(mirror.addr().as_str()));
    assert!(p.from_mirror);
    assert_eq!(c.requests_sent(&upstream), 0, "the upstream was contacted");
    assert_eq!(c.requests_sent(&dead), 1, "a dead mirror is tried once");
}

#[test]
fn mirror_without_the_image_falls_back_to_the_upstream_once() {
    let mirror = Registry::plain();
    let upstream = Registry::plain();
    let work = tempfile::tempdir().unwrap();
    let img = small_image(&work.path().join("l"));
    Client::new(config())
        .unwrap()
        .push(
            &LayoutSource::open(&img.dir, None),
            &[r(&format!("{}/team/app:v1", upstream.addr()))],
            &PushOptions::default(),
        )
        .unwrap();
    let c = Client::new(ClientConfig {
        mirrors: vec![format!("{}=http://{}", upstream.addr(), mirror.addr())],
        ..config()
    })
    .unwrap();
    let store = BlobStore::new(work.path().join("c/blobs")).unwrap();
    let p = c
        .pull(
            &r(&format!("{}/team/app:v1", upstream.addr())),
            &Platform::host(),
            &store,
            PullPolicy::Always,
        )
        .unwrap();
    assert_eq!(p.digest, img.manifest.digest);
    assert_eq!(p.served_by.as_deref(), Some(upstream.addr().as_str()));
    assert!(!p.from_mirror);
    assert!(p.blobs_downloaded >= 3, "{}", p.blobs_downloaded);
    // The mirror: one ping and one manifest lookup (404), not a try per blob.
    assert_eq!(c.requests_sent(&mirror.addr()), 2);
    assert!(c.requests_sent(&upstream.addr()) > p.blobs_downloaded as u64);
}

#[test]
fn upload_and_mount_primitives() {
    let reg = Registry::plain();
    let client = Client::new(config()).unwrap();
    let data = b"a blob of data".to_vec();
    let desc = Descriptor::new(
        "application/octet-stream",
        hoist_image::Digest::sha256(&data),
        data.len() as u64,
    );
    let a = r(&format!("{}/prim/a:x", reg.addr()));
    let b = r(&format!("{}/prim/b:x", reg.addr()));
    let open = || -> hoist_image::Result<Box<dyn Read + Send>> {
        Ok(Box::new(std::io::Cursor::new(data.clone())))
    };
    assert_eq!(
        client.upload_blob(&a, &desc, None, &open).unwrap(),
        BlobOutcome::Uploaded(14)
    );
    assert_eq!(
        client.upload_blob(&a, &desc, None, &open).unwrap(),
        BlobOutcome::Skipped
    );
    assert_eq!(client.head_blob(&a, &desc.digest).unwrap(), Some(14));
    assert_eq!(client.head_blob(&b, &desc.digest).unwrap(), None);
    assert!(client.mount_blob(&b, &desc.digest, "prim/a").unwrap());
    assert_eq!(client.head_blob(&b, &desc.digest).unwrap(), Some(14));
    let mut got = Vec::new();
    client
        .get_blob(&b, &desc)
        .unwrap()
        .read_to_end(&mut got)
        .unwrap();
    assert_eq!(got, data);
    // A wrong digest is refused by the registry with DIGEST_INVALID.
    let wrong = Descriptor::new("x", hoist_image::Digest::sha256(b"other"), 14);
    let err = client.upload_blob(&a, &wrong, None, &open).unwrap_err();
    assert!(
        err.codes()
            .contains(&hoist_registry::ErrorCode::DigestInvalid),
        "{err}"
    );
    assert!(!err.is_retryable());
    // Unknown manifests: MANIFEST_UNKNOWN, not found.
    let err = client
        .get_manifest(&r(&format!("{}/prim/a:missing", reg.addr())))
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(err.to_string().contains("MANIFEST_UNKNOWN"), "{err}");
    // Never-pulled image with --pull=never.
    let store = BlobStore::new(tempfile::tempdir().unwrap().path().join("b")).unwrap();
    let err = client
        .pull(&a, &Platform::host(), &store, PullPolicy::Never)
        .unwrap_err();
    assert!(matches!(err, Error::NotCached(_)), "{err:?}");
    // Referrers on a registry without the API: empty.
    assert!(client
        .referrers(&a, &desc.digest, None)
        .unwrap()
        .manifests
        .is_empty());
}

#[test]
fn two_clients_pull_into_one_cache_at_once() {
    let reg = Registry::plain();
    let work = tempfile::tempdir().unwrap();
    let img = random_layout(&work.path().join("l"), "v1", 3, 2 << 20, 5);
    let dest = r(&format!("{}/shared:v1", reg.addr()));
    Client::new(config())
        .unwrap()
        .push(
            &LayoutSource::open(&img.dir, None),
            std::slice::from_ref(&dest),
            &PushOptions::default(),
        )
        .unwrap();
    let cache = work.path().join("cache/blobs");
    let results: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let cache = cache.clone();
                let dest = dest.clone();
                s.spawn(move || {
                    // Separate clients and store handles, as two hoist processes would have.
                    let store = BlobStore::new(cache).unwrap();
                    Client::new(config()).unwrap().pull(
                        &dest,
                        &Platform::host(),
                        &store,
                        PullPolicy::Always,
                    )
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for res in results {
        assert_eq!(res.unwrap().digest, img.manifest.digest);
    }
    let store = BlobStore::new(&cache).unwrap();
    let names: Vec<_> = std::fs::read_dir(cache.join("sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| !n.to_string_lossy().starts_with(".tmp")),
        "{names:?}"
    );
    for l in &img.layers {
        assert!(store.has_descriptor(l));
    }
}

#[test]
fn copy_between_registries_streams_blobs() {
    let a = Registry::plain();
    let b = Registry::htpasswd("u", "p");
    let work = tempfile::tempdir().unwrap();
    let img = random_layout(&work.path().join("l"), "v1", 2, 3 << 20, 11);
    let client = Client::new(with_creds(config(), &b, "u", "p")).unwrap();
    let src_ref = r(&format!("{}/src:v1", a.addr()));
    client
        .push(
            &LayoutSource::open(&img.dir, None),
            std::slice::from_ref(&src_ref),
            &PushOptions::default(),
        )
        .unwrap();
    let dst = r(&format!("{}/dst:v1", b.addr()));
    let rep = client
        .push(
            &client.source(&src_ref),
            std::slice::from_ref(&dst),
            &PushOptions::default(),
        )
        .unwrap();
    assert_eq!(rep.uploaded, 3, "{rep:?}");
    assert_eq!(
        client.get_manifest(&dst).unwrap().digest(),
        img.manifest.digest
    );
}

/// A plain-HTTP front on loopback that answers `/v2/` and redirects every other
/// request to `target` over HTTPS (as registries with cloud storage redirect blobs).
fn redirecting_front(
    target: String,
    mut fail_first: Vec<&'static str>,
) -> (String, std::thread::JoinHandle<()>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let h = std::thread::spawn(move || {
        listener.set_nonblocking(false).unwrap();
        for conn in listener.incoming().take(64) {
            let Ok(mut conn) = conn else { break };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut first = String::new();
            if reader.read_line(&mut first).is_err() {
                continue;
            }
            loop {
                let mut l = String::new();
                if reader.read_line(&mut l).unwrap_or(0) == 0 || l == "\r\n" {
                    break;
                }
            }
            let path = first.split(' ').nth(1).unwrap_or("/").to_string();
            let resp = if path == "/v2/" {
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".to_string()
            } else if path == "/stop" {
                break;
            } else if !fail_first.is_empty() {
                let status = fail_first.remove(0);
                format!(
                    "HTTP/1.1 {status}\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
            } else {
                format!(
                    "HTTP/1.1 307 Temporary Redirect\r\nLocation: https://{target}{path}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
            };
            let _ = conn.write_all(resp.as_bytes());
        }
    });
    (addr, h)
}

#[test]
fn retries_429_and_5xx_and_follows_redirects_to_https() {
    let tls = Registry::tls();
    let work = tempfile::tempdir().unwrap();
    let img = small_image(&work.path().join("l"));
    let client = Client::new(ClientConfig {
        ca_certs: vec![CaCert::Pem(tls.ca_pem().unwrap().to_string())],
        ..config()
    })
    .unwrap();
    client
        .push(
            &LayoutSource::open(&img.dir, None),
            &[r(&format!("{}/redir:v1", tls.addr()))],
            &PushOptions::default(),
        )
        .unwrap();
    // The first two requests fail (429 with Retry-After: 1, then 503): retried.
    let (front, h) = redirecting_front(
        tls.addr(),
        vec!["429 Too Many Requests", "503 Service Unavailable"],
    );
    let t = std::time::Instant::now();
    let store = BlobStore::new(work.path().join("c/blobs")).unwrap();
    let p = client
        .pull(
            &r(&format!("{front}/redir:v1")),
            &Platform::host(),
            &store,
            PullPolicy::Always,
        )
        .unwrap();
    assert_eq!(p.digest, img.manifest.digest);
    assert_eq!(p.blobs_downloaded, 4);
    assert!(
        t.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    let _ = std::net::TcpStream::connect(&front).and_then(|mut c| {
        use std::io::Write;
        c.write_all(b"GET /stop HTTP/1.1\r\n\r\n")
    });
    h.join().unwrap();
}
