//! End-to-end tests of `hoist assemble` (real registry, skopeo, umoci) and of
//! automatic builds (`hoist plan`, `hoist build` without a Dockerfile, the result run
//! under podman and asked over HTTP, or its stdout read).

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

/// An image of an OCI layout copied into podman's storage under a name of its own
/// (skopeo, independently of hoist), removed again on drop.
struct PodmanImage {
    name: String,
}

impl PodmanImage {
    fn load(env: &Env, layout: &Path, tag: &str) -> PodmanImage {
        let unique = env
            .dir
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_ascii_lowercase()
            .replace(|c: char| !c.is_ascii_alphanumeric(), "");
        let name = format!("localhost/hoist-e2e-{unique}:{tag}");
        run(Command::new("skopeo")
            .arg("copy")
            .arg("--quiet")
            .arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("containers-storage:{name}")));
        PodmanImage { name }
    }
}

impl Drop for PodmanImage {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["rmi", "--force", &self.name])
            .output();
    }
}

/// `podman ARGS…` with its output; panics with podman's stderr when it fails.
fn podman(args: &[&str]) -> String {
    let out = Command::new("podman").args(args).output().unwrap();
    assert_success(&out, &format!("podman {}", args.join(" ")));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Run image `layout:tag` under podman (as the user running the suite: rootful as root,
/// rootless otherwise), in a network namespace of its own (`--network=none`: loopback
/// only), and return what an HTTP GET of `http://127.0.0.1:8080/` answers inside that
/// namespace (curl entered into it with nsenter, through `podman unshare` when rootless).
fn podman_serve_and_get(env: &Env, layout: &Path, tag: &str) -> String {
    let image = PodmanImage::load(env, layout, tag);
    let id = podman(&["run", "--detach", "--network=none", &image.name]);
    let pid = podman(&["inspect", "--format", "{{.State.Pid}}", &id]);
    let mut curl = if is_root() {
        Command::new("nsenter")
    } else {
        let mut c = Command::new("podman");
        c.args(["unshare", "nsenter"]);
        c
    };
    curl.args(["-t", &pid, "-n", "curl", "-fsS", "http://127.0.0.1:8080/"]);
    let mut answer = String::new();
    for _ in 0..150 {
        let out = curl.output().unwrap();
        if out.status.success() {
            answer = String::from_utf8_lossy(&out.stdout).into_owned();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let logs = Command::new("podman").args(["logs", &id]).output().unwrap();
    let _ = Command::new("podman")
        .args(["rm", "--force", "--time", "0", &id])
        .output();
    assert!(
        !answer.is_empty(),
        "no HTTP answer from the container; its log:\n{}{}",
        String::from_utf8_lossy(&logs.stdout),
        String::from_utf8_lossy(&logs.stderr)
    );
    answer
}

/// Run image `layout:tag` under podman (`--network=none`) to completion; its stdout.
fn podman_stdout(env: &Env, layout: &Path, tag: &str) -> String {
    let image = PodmanImage::load(env, layout, tag);
    let out = Command::new("podman")
        .args(["run", "--rm", "--network=none", &image.name])
        .output()
        .unwrap();
    assert_success(&out, &format!("podman run {}", image.name));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn auto_build_of_a_static_site_answers_http() {
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
    let answer = podman_serve_and_get(&env, &tar, "1");
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
    assert_eq!(podman_serve_and_get(&env, &tar, "1"), "python says hi\n");
}

/// The Debian base with `hoist.toml` giving each of `kinds` that base and `setup`, and
/// the final stage (`runtime`, e.g. `go-runtime`) the busybox base.
fn debian_hoist_toml(debian: &Path, kinds: &[&str], setup: &str, runtime: Option<&str>) -> String {
    let mut t = String::from("[base]\n");
    for k in kinds {
        t.push_str(&format!("{k} = \"oci:{}:bookworm\"\n", debian.display()));
    }
    if let Some(r) = runtime {
        t.push_str(&format!(
            "{r} = \"oci:{}:latest\"\n",
            busybox_base().display()
        ));
    }
    t.push_str("[setup]\n");
    for k in kinds {
        t.push_str(&format!(
            "{k} = \"apt-get update && apt-get install -y --no-install-recommends {setup} && rm -rf /var/lib/apt/lists/*\"\n"
        ));
    }
    t
}

#[test]
fn auto_build_of_a_node_app_on_debian_answers_http() {
    let Some(debian) = debian_base() else {
        eprintln!("skipped: the Debian base needs root to make");
        return;
    };
    let env = Env::new();
    let app = env.path("node");
    fs::create_dir_all(&app).unwrap();
    fs::write(
        app.join("package.json"),
        r#"{"name":"hi","version":"1.0.0","scripts":{"start":"node server.js"}}"#,
    )
    .unwrap();
    // A lockfile with no dependencies: `npm ci` installs nothing and needs no registry.
    fs::write(
        app.join("package-lock.json"),
        r#"{"name":"hi","version":"1.0.0","lockfileVersion":3,"requires":true,"packages":{"":{"name":"hi","version":"1.0.0"}}}"#,
    )
    .unwrap();
    fs::write(
        app.join("server.js"),
        "require('http').createServer((q, r) => r.end('node says hi, ' + process.env.NODE_ENV + '\\n')).listen(8080, '0.0.0.0');\n",
    )
    .unwrap();
    fs::write(
        app.join("hoist.toml"),
        debian_hoist_toml(&debian, &["node"], "nodejs npm", None),
    )
    .unwrap();
    let plan = env.ok(&["plan", app.to_str().unwrap()]);
    assert!(plan.contains("npm ci --omit=dev"), "{plan}");
    let out = env.path("node-oci");
    env.ok(&[
        "build",
        app.to_str().unwrap(),
        "-t",
        "node:1",
        "-o",
        &format!("type=oci,dest={}", out.display()),
    ]);
    let cfg = skopeo_config(&format!("oci:{}:1", out.display()));
    assert_eq!(cfg["config"]["User"], "65534:65534");
    assert_eq!(
        podman_serve_and_get(&env, &out, "1"),
        "node says hi, production\n"
    );
}

#[test]
fn auto_build_of_a_go_app_on_debian_prints_its_output() {
    let Some(debian) = debian_base() else {
        eprintln!("skipped: the Debian base needs root to make");
        return;
    };
    let env = Env::new();
    let app = env.path("go");
    fs::create_dir_all(&app).unwrap();
    // Debian bookworm's golang-go is Go 1.19; no dependencies, so no module proxy.
    fs::write(app.join("go.mod"), "module example.com/hi\n\ngo 1.19\n").unwrap();
    fs::write(
        app.join("main.go"),
        "package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n)\n\nfunc main() {\n\tfmt.Printf(\"go says hi as %d\\n\", os.Getuid())\n}\n",
    )
    .unwrap();
    fs::write(
        app.join("hoist.toml"),
        debian_hoist_toml(&debian, &["go"], "golang-go", Some("go-runtime")),
    )
    .unwrap();
    let out = env.path("go-oci");
    env.ok(&[
        "build",
        app.to_str().unwrap(),
        "-t",
        "go:1",
        "-o",
        &format!("type=oci,dest={}", out.display()),
    ]);
    // The final stage is the busybox base plus one static binary: no Go toolchain.
    let cfg = skopeo_config(&format!("oci:{}:1", out.display()));
    assert_eq!(cfg["config"]["Entrypoint"][0], "/app");
    let root = umoci_unpack(&out, "1", &env.path("bundle"));
    assert!(!root.join("usr/lib/go").exists() && !root.join("usr/bin/go").exists());
    assert_eq!(podman_stdout(&env, &out, "1"), "go says hi as 65534\n");
}

#[test]
fn assemble_honours_compression_media_types_and_annotations_of_its_outputs() {
    let env = Env::new();
    let app = env.path("app");
    write_exe(&app, "#!/bin/sh\necho hi\n");
    let add = format!("{}:/app", app.display());
    let zstd = env.path("zstd");
    env.ok(&[
        "assemble",
        "--add",
        &add,
        "-t",
        "a:1",
        "-o",
        &format!(
            "type=oci,dest={},compression=zstd,compression-level=19,annotation.org.example.k=v",
            zstd.display()
        ),
    ]);
    let m: serde_json::Value =
        serde_json::from_slice(&skopeo_raw(&format!("oci:{}:1", zstd.display()))).unwrap();
    assert_eq!(
        m["layers"][0]["mediaType"], "application/vnd.oci.image.layer.v1.tar+zstd",
        "{m}"
    );
    assert_eq!(m["annotations"]["org.example.k"], "v", "{m}");

    let docker = env.path("docker");
    env.ok(&[
        "assemble",
        "--add",
        &add,
        "-t",
        "a:1",
        "-o",
        &format!("type=oci,dest={},oci-mediatypes=false", docker.display()),
    ]);
    // (skopeo's oci: transport lists OCI manifests only: read the layout's index.)
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(docker.join("index.json")).unwrap()).unwrap();
    assert_eq!(
        index["manifests"][0]["mediaType"], "application/vnd.docker.distribution.manifest.v2+json",
        "{index}"
    );
    let flag = env.path("flag");
    let by_flag = env.ok(&[
        "assemble",
        "--add",
        &add,
        "--docker-media-types",
        "-t",
        "a:1",
        "-o",
        &format!("type=oci,dest={}", flag.display()),
    ]);
    assert_eq!(
        index["manifests"][0]["digest"].as_str().unwrap(),
        by_flag.trim(),
        "oci-mediatypes=false is --docker-media-types"
    );

    for (outputs, expect) in [
        (
            vec!["type=oci,dest=A,force-compression=true"],
            "force-compression=true is not supported",
        ),
        (
            vec![
                "type=oci,dest=A,compression=zstd",
                "type=oci,dest=B,compression=gzip",
            ],
            "different compression",
        ),
        (
            vec!["type=oci,dest=A,annotation-index.k=v"],
            "multi-platform",
        ),
        (
            vec!["type=oci,dest=A,oci-mediatypes=false,annotation.k=v"],
            "no annotations",
        ),
    ] {
        let mut args = vec!["assemble".to_string(), "--add".into(), add.clone()];
        for o in &outputs {
            args.push("-o".into());
            args.push(
                o.replace("dest=A", &format!("dest={}", env.path("A").display()))
                    .replace("dest=B", &format!("dest={}", env.path("B").display())),
            );
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = env.fails(&args);
        assert!(err.contains(expect), "{outputs:?}: {err}");
        assert!(!env.path("A").exists() && !env.path("B").exists());
    }
}
