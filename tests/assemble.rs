//! End-to-end tests of `hoist assemble` (real registry, skopeo, umoci) and of
//! automatic builds (`hoist plan`, `hoist build` without a Dockerfile, the result run
//! and asked over HTTP).

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;
use hoist_testutil::{skopeo_push_layout, Registry};

fn write_exe(p: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    fs::write(p, body).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn assemble_pushes_onto_a_registry_base_without_downloading_it() {
    let reg = Registry::plain();
    let env = Env::new();
    let host = reg.addr();
    skopeo_push_layout(&busybox_base(), "latest", &format!("{host}/base:1"), &[]);
    let app = env.path("app.sh");
    write_exe(&app, "#!/bin/sh\necho assembled\n");
    let out = env
        .hoist()
        .args([
            "assemble",
            "--base",
            &format!("{host}/base:1"),
            "--insecure-registry",
            &host,
        ])
        .arg("--add")
        .arg(format!("{}:/usr/local/bin/app,mode=0755", app.display()))
        .args(["--entrypoint", "[\"/usr/local/bin/app\"]", "--label", "k=v"])
        .args(["-t", &format!("{host}/app:1"), "--push"])
        .output()
        .unwrap();
    assert_success(&out, "hoist assemble --push");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("1 mounted") || err.contains("already present"),
        "{err}"
    );
    assert!(
        err.contains("1 blobs uploaded") || err.contains("2 blobs uploaded"),
        "only our layer and config: {err}"
    );
    let digest = String::from_utf8_lossy(&out.stdout).trim().to_string();

    // The base's layer never reached the local cache.
    let base_manifest: serde_json::Value =
        serde_json::from_slice(&skopeo_raw(&format!("docker://{host}/base:1"))).unwrap();
    let base_layer = base_manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let hex = base_layer.trim_start_matches("sha256:");
    assert!(
        !env.path("cache/blobs/sha256").join(hex).exists(),
        "base layer downloaded"
    );

    // The pushed image: the base's layer, then ours; its digest is what was printed.
    let r = format!("docker://{host}/app:1");
    let raw = skopeo_raw(&r);
    assert_eq!(sha256_of(&raw), digest);
    let m: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(m["layers"].as_array().unwrap().len(), 2);
    assert_eq!(m["layers"][0]["digest"], base_layer.as_str());
    let cfg = skopeo_config(&r);
    assert_eq!(cfg["config"]["Entrypoint"][0], "/usr/local/bin/app");
    assert_eq!(cfg["config"]["Labels"]["k"], "v");

    // Reproducible: the same assembly again gives the same digest.
    let again = env.ok(&[
        "assemble",
        "--base",
        &format!("{host}/base:1"),
        "--insecure-registry",
        &host,
        "--add",
        &format!("{}:/usr/local/bin/app,mode=0755", app.display()),
        "--entrypoint",
        "[\"/usr/local/bin/app\"]",
        "--label",
        "k=v",
        "-t",
        &format!("{host}/app:2"),
        "--push",
    ]);
    assert_eq!(again.trim(), digest);
}

#[test]
fn assemble_on_a_layout_runs_under_umoci_and_multi_platform_makes_an_index() {
    let env = Env::new();
    let a = env.path("amd64-app");
    let b = env.path("arm64-app");
    write_exe(&a, "amd64\n");
    write_exe(&b, "arm64\n");
    let out = env.path("multi");
    env.ok(&[
        "assemble",
        "--add",
        &format!("linux/amd64={}:/app", a.display()),
        "--add",
        &format!("linux/arm64={}:/app", b.display()),
        "--entrypoint",
        "/app",
        "-t",
        "multi:1",
        "-o",
        &format!("type=oci,dest={}", out.display()),
    ]);
    let idx: serde_json::Value =
        serde_json::from_slice(&skopeo_raw(&format!("oci:{}:1", out.display()))).unwrap();
    let ms = idx["manifests"].as_array().unwrap();
    assert_eq!(ms.len(), 2, "{idx}");
    assert_eq!(ms[1]["platform"]["architecture"], "arm64");

    // On a local base, from a spec file, one layer for two groups.
    let dir = env.path("spec");
    fs::create_dir_all(dir.join("www")).unwrap();
    fs::write(dir.join("www/index.html"), "hi\n").unwrap();
    write_exe(&dir.join("run"), "#!/bin/sh\necho run\n");
    fs::write(
        dir.join("image.toml"),
        format!(
            "base = \"oci:{}:latest\"\none_layer = true\nentrypoint = [\"/run\"]\nuser = \"65534\"\nexpose = [\"8080\"]\n\
             env = {{ MODE = \"prod\" }}\n[[add]]\nsrc = \"run\"\ndest = \"/run\"\n[[add]]\nsrc = \"www\"\ndest = \"/srv/www\"\nowner = \"65534:65534\"\n",
            busybox_base().display()
        ),
    )
    .unwrap();
    let out = env.path("spec-out");
    env.ok(&[
        "assemble",
        "-f",
        dir.join("image.toml").to_str().unwrap(),
        "-t",
        "spec:1",
        "-o",
        &format!("type=oci,dest={}", out.display()),
    ]);
    let cfg = skopeo_config(&format!("oci:{}:1", out.display()));
    assert_eq!(
        cfg["rootfs"]["diff_ids"].as_array().unwrap().len(),
        2,
        "base + one layer"
    );
    assert_eq!(cfg["config"]["User"], "65534");
    assert!(cfg["config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e == "MODE=prod"));
    let root = umoci_unpack(&out, "1", &env.path("bundle"));
    assert_eq!(
        fs::read_to_string(root.join("srv/www/index.html")).unwrap(),
        "hi\n"
    );
    assert!(root.join("bin/busybox").exists());

    // Bad input: a clear error.
    let err = env.fails(&["assemble", "--add", "nocolon", "-o", "type=oci,dest=x"]);
    assert!(err.contains("SRC:DEST"), "{err}");
    let err = env.fails(&[
        "assemble",
        "--add",
        "/nonexistent/x:/x",
        "-o",
        &format!("type=oci,dest={}", env.path("y").display()),
    ]);
    assert!(err.contains("/nonexistent/x"), "{err}");
    assert!(!env.path("y").exists());
}

#[test]
fn plan_prints_a_dockerfile_and_unknown_apps_get_a_clear_error() {
    let env = Env::new();
    let site = env.path("site");
    fs::create_dir_all(site.join("public")).unwrap();
    fs::write(site.join("public/index.html"), "x").unwrap();
    let df = env.ok(&["plan", site.to_str().unwrap()]);
    assert!(df.contains("COPY public/ /srv/www/"), "{df}");
    assert!(df.contains("# found public/index.html"), "{df}");
    // The plan parses as a Dockerfile.
    fs::write(site.join("Dockerfile"), &df).unwrap();
    env.ok(&[
        "dockerfile",
        "check",
        "-f",
        site.join("Dockerfile").to_str().unwrap(),
    ]);
    let empty = env.path("empty");
    fs::create_dir_all(&empty).unwrap();
    fs::write(empty.join("README"), "x").unwrap();
    let err = env.fails(&["build", empty.to_str().unwrap(), "-o", "type=oci,dest=x"]);
    assert!(
        err.contains("looked for") && err.contains("package.json"),
        "{err}"
    );
}

/// Run an image's entrypoint + cmd as its config says (user, env, working directory) in
/// its unpacked root file system, in a private network namespace, and return what an
/// HTTP GET of `http://127.0.0.1:8080/` answers there. `podman run` cannot start
/// containers on the machines this suite runs on (runc's setrlimit is refused), so the
/// runner is chroot + unshare; the image is unpacked by umoci, independently of hoist.
fn serve_and_get(env: &Env, layout: &Path, tag: &str) -> String {
    let cfg = skopeo_config(&format!("oci:{}:{tag}", layout.display()));
    let c = &cfg["config"];
    let root = umoci_unpack(layout, tag, &env.path("bundle"));
    let mut argv: Vec<String> = Vec::new();
    for k in ["Entrypoint", "Cmd"] {
        if let Some(a) = c[k].as_array() {
            argv.extend(a.iter().map(|v| v.as_str().unwrap().to_string()));
        }
    }
    let user = c["User"].as_str().unwrap_or("0:0");
    let user = if user.contains(':') {
        user.to_string()
    } else {
        format!("{user}:{user}")
    };
    let wd = c["WorkingDir"]
        .as_str()
        .filter(|w| !w.is_empty())
        .unwrap_or("/");
    let envs: Vec<String> = c["Env"]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    let q = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let script = format!(
        "ip link set lo up\n\
         env -i {envs} chroot --userspec={user} {root} /bin/sh -c 'cd \"$0\" && exec \"$@\"' {wd} {argv} > {log} 2>&1 &\n\
         pid=$!\n\
         for i in $(seq 150); do curl -fsS http://127.0.0.1:8080/ && break; sleep 0.2; done\n\
         kill $pid\n",
        envs = envs.iter().map(|e| q(e)).collect::<Vec<_>>().join(" "),
        root = q(root.to_str().unwrap()),
        wd = q(wd),
        argv = argv.iter().map(|a| q(a)).collect::<Vec<_>>().join(" "),
        log = q(env.path("server.log").to_str().unwrap()),
    );
    let out = Command::new("unshare")
        .args(["-n", "sh", "-c", &script])
        .output()
        .unwrap();
    let answer = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        !answer.is_empty(),
        "no HTTP answer; server log: {}; {}",
        fs::read_to_string(env.path("server.log")).unwrap_or_default(),
        String::from_utf8_lossy(&out.stderr)
    );
    answer
}

#[test]
fn auto_build_of_a_static_site_answers_http() {
    if !is_root() {
        eprintln!("skipped: running the image needs root (chroot, unshare)");
        return;
    }
    let env = Env::new();
    let site = env.path("site");
    fs::create_dir_all(&site).unwrap();
    fs::write(site.join("index.html"), "<h1>auto static</h1>\n").unwrap();
    let tar = env.path("site-oci");
    env.ok(&[
        "build",
        site.to_str().unwrap(),
        "--base-image",
        &format!("static=oci:{}:latest", busybox_base().display()),
        "-t",
        "site:1",
        "-o",
        &format!("type=oci,dest={}", tar.display()),
    ]);
    let cfg = skopeo_config(&format!("oci:{}:1", tar.display()));
    assert_eq!(cfg["config"]["User"], "65534:65534");
    let answer = serve_and_get(&env, &tar, "1");
    assert_eq!(answer, "<h1>auto static</h1>\n");
}

#[test]
fn auto_build_of_a_python_app_on_debian_answers_http() {
    let Some(debian) = debian_base() else {
        eprintln!("skipped: the Debian base needs root to make");
        return;
    };
    let env = Env::new();
    let app = env.path("py");
    fs::create_dir_all(&app).unwrap();
    fs::write(app.join("requirements.txt"), "").unwrap();
    fs::write(
        app.join("app.py"),
        "import http.server\nclass H(http.server.BaseHTTPRequestHandler):\n    def do_GET(self):\n        self.send_response(200); self.end_headers(); self.wfile.write(b'python says hi\\n')\nhttp.server.HTTPServer(('0.0.0.0', 8080), H).serve_forever()\n",
    )
    .unwrap();
    fs::write(
        app.join("hoist.toml"),
        format!(
            "[base]\npython = \"oci:{}:bookworm\"\n[setup]\npython = \"apt-get update && apt-get install -y --no-install-recommends python3 python3-pip && rm -rf /var/lib/apt/lists/*\"\n",
            debian.display()
        ),
    )
    .unwrap();
    let tar = env.path("py-oci");
    env.ok(&[
        "build",
        app.to_str().unwrap(),
        "-t",
        "py:1",
        "-o",
        &format!("type=oci,dest={}", tar.display()),
    ]);
    assert_eq!(serve_and_get(&env, &tar, "1"), "python says hi\n");
}
