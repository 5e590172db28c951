//! `hoist task` run exactly as Concourse runs a task: a working directory holding the
//! inputs and the declared (empty) output directories, params as environment variables
//! and nothing else in the environment, no terminal. Outputs are read back with
//! independent tools (skopeo, umoci, tar). The suite runs as root and again as an
//! unprivileged user (scripts/test-unprivileged.sh).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A Concourse-like task working directory.
struct Task {
    env: Env,
    work: PathBuf,
}

impl Task {
    fn new(outputs: &[&str]) -> Task {
        let env = Env::new();
        let work = env.path("work");
        std::fs::create_dir_all(&work).unwrap();
        std::fs::create_dir_all(env.path("tmp")).unwrap();
        for o in outputs {
            std::fs::create_dir_all(work.join(o)).unwrap();
        }
        Task { env, work }
    }

    /// An input directory with files (`path`, content).
    fn input(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = self.work.join(name);
        for (p, c) in files {
            let f = dir.join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(&f, c).unwrap();
        }
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// The busybox base as an input (an OCI layout, as a registry-image `get` with
    /// `format: oci-layout` would hand it over).
    fn busybox_input(&self, name: &str) -> PathBuf {
        let dir = self.work.join(name);
        run(Command::new("cp").arg("-a").arg(busybox_base()).arg(&dir));
        dir
    }

    fn command(&self, params: &[(&str, &str)]) -> Command {
        let mut c = Command::new(hoist_bin());
        c.arg("task");
        self.setup(&mut c, params);
        c
    }

    /// Run `hoist task` through a shell snippet (`$HOIST` is the binary).
    fn shell(&self, snippet: &str, params: &[(&str, &str)]) -> Output {
        let mut c = Command::new("sh");
        c.arg("-c").arg(snippet).env("HOIST", hoist_bin());
        self.setup(&mut c, params);
        c.env("HOIST", hoist_bin());
        c.output().unwrap()
    }

    fn setup(&self, c: &mut Command, params: &[(&str, &str)]) {
        c.current_dir(&self.work)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", std::env::var_os("HOME").unwrap_or_default())
            .env("TMPDIR", self.env.path("tmp"))
            .stdin(Stdio::null());
        for (k, v) in params {
            c.env(k, v);
        }
    }

    fn run(&self, params: &[(&str, &str)]) -> Output {
        self.command(params).output().unwrap()
    }

    fn ok(&self, params: &[(&str, &str)]) -> String {
        let out = self.run(params);
        assert_success(&out, &format!("hoist task {params:?}"));
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.work.join(rel)
    }
}

fn archive_ref(p: &Path) -> String {
    format!("docker-archive:{}", p.display())
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// One member of a tar file, as text.
fn tar_member(tar: &Path, member: &str) -> String {
    run(Command::new("tar").arg("-xOf").arg(tar).arg(member))
}

/// The manifest digest recorded in a docker-archive's index.json (Docker 25 layout).
fn archive_index_digest(tar: &Path) -> String {
    let out = tar_member(tar, "index.json");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["manifests"][0]["digest"].as_str().unwrap().to_string()
}

fn label(reference: &str, key: &str) -> Option<String> {
    skopeo_config(reference)["config"]["Labels"][key]
        .as_str()
        .map(str::to_string)
}

const APP_DOCKERFILE: &str = r#"ARG base_image
FROM ${base_image}
ARG greeting
ARG from_file
ARG from_yaml=unset
COPY hello.txt /app/hello.txt
RUN echo "$greeting $from_file $from_yaml" > /app/args.txt && chown 1000:1000 /app/args.txt
ENV APP_MODE=production
WORKDIR /app
USER app
LABEL in.dockerfile=yes
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /app/hello.txt"]
"#;

#[test]
fn oci_build_task_params_produce_its_outputs() {
    let t = Task::new(&["image"]);
    t.busybox_input("busybox");
    t.input(
        "src",
        &[
            ("Dockerfile", APP_DOCKERFILE),
            ("hello.txt", "hello from the task\n"),
            ("build-args.yml", "from_yaml: yes-yaml\n"),
            ("labels.txt", "from.labels.file=1\n\nsecond=two\n"),
        ],
    );
    std::fs::write(t.path("args.env"), "from_file=from-the-file\n").unwrap();
    let log = t.ok(&[
        ("CONTEXT", "src"),
        ("IMAGE_ARG_base_image", "busybox"),
        ("BUILD_ARG_greeting", "hi"),
        ("BUILD_ARGS_FILE", "args.env"),
        ("LABEL_team", "core"),
        ("LABELS_FILE", "src/labels.txt"),
        ("UNPACK_ROOTFS", "true"),
        ("OUTPUT_OCI", "true"),
    ]);
    assert!(
        !log.contains("\x1b["),
        "no terminal escapes without a TTY:\n{log}"
    );

    // image.tar: a docker-archive skopeo reads, with the labels and config.
    let tar = t.path("image/image.tar");
    let r = archive_ref(&tar);
    let cfg = skopeo_config(&r);
    let labels = &cfg["config"]["Labels"];
    assert_eq!(labels["team"], "core");
    assert_eq!(labels["from.labels.file"], "1");
    assert_eq!(labels["second"], "two");
    assert_eq!(labels["in.dockerfile"], "yes");
    assert_eq!(cfg["config"]["User"], "app");
    let raw: serde_json::Value = serde_json::from_slice(&skopeo_raw(&r)).unwrap();
    // digest: the config digest, as oci-build-task writes it (no newline).
    let digest = read(&t.path("image/digest"));
    assert_eq!(digest, raw["config"]["digest"].as_str().unwrap());
    // manifest-digest: the manifest the archive carries (and is pushed under).
    let manifest_digest = read(&t.path("image/manifest-digest"));
    assert_eq!(manifest_digest, archive_index_digest(&tar));
    assert_ne!(manifest_digest, digest);

    // image/: an OCI layout umoci unpacks, with the single-image marker.
    let layout = t.path("image/image");
    let index: serde_json::Value = serde_json::from_str(&read(&layout.join("index.json"))).unwrap();
    let oci_digest = index["manifests"][0]["digest"].as_str().unwrap();
    assert_eq!(read(&layout.join("single-image-digest")), oci_digest);
    let oci_cfg = skopeo_config(&format!("oci:{}:latest", layout.display()));
    assert_eq!(oci_cfg, cfg, "same config in both outputs");
    let unpacked = umoci_unpack(&layout, "latest", &t.env.path("umoci"));
    assert_eq!(
        read(&unpacked.join("app/args.txt")),
        "hi from-the-file unset\n"
    );
    assert_eq!(
        read(&unpacked.join("app/hello.txt")),
        "hello from the task\n"
    );

    // rootfs/ + metadata.json (Concourse's image format).
    let rootfs = t.path("image/rootfs");
    assert_eq!(
        read(&rootfs.join("app/args.txt")),
        "hi from-the-file unset\n"
    );
    assert!(rootfs.join("bin/busybox").is_file());
    let meta: serde_json::Value =
        serde_json::from_str(&read(&t.path("image/metadata.json"))).unwrap();
    assert_eq!(meta["user"], "app");
    assert!(meta["env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e == "APP_MODE=production"));
    assert_eq!(meta["entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(meta["cmd"], serde_json::json!(["cat /app/hello.txt"]));

    // A YAML build args file works too, and a second run gives the same image.
    let t2 = Task::new(&["image"]);
    t2.busybox_input("busybox");
    run(Command::new("cp")
        .arg("-a")
        .arg(t.path("src"))
        .arg(t2.path("src")));
    t2.ok(&[
        ("CONTEXT", "src"),
        ("IMAGE_ARG_base_image", "busybox/"),
        ("BUILD_ARG_greeting", "hi"),
        ("BUILD_ARG_from_file", "from-the-file"),
        ("BUILD_ARGS_FILE", "src/build-args.yml"),
        ("DOCKERFILE", "src/Dockerfile"),
    ]);
    let args = tar_member(&t2.path("image/image.tar"), "index.json");
    assert!(args.contains("sha256:"));
    assert!(!t2.path("image/rootfs").exists() && !t2.path("image/image").exists());
    let unpacked2 = t2.env.path("rootfs2");
    std::fs::create_dir_all(&unpacked2).unwrap();
    run(Command::new("skopeo").args([
        "copy",
        &archive_ref(&t2.path("image/image.tar")),
        &format!("oci:{}:x", t2.env.path("copy").display()),
    ]));
    let r2 = umoci_unpack(&t2.env.path("copy"), "x", &unpacked2.join("b"));
    assert_eq!(
        read(&r2.join("app/args.txt")),
        "hi from-the-file yes-yaml\n"
    );
}

const MULTI_TARGET: &str = r#"ARG base_image
FROM ${base_image} AS base
RUN cat /proc/sys/kernel/random/uuid > /stamp
ENV PATH=/usr/bin:/bin

FROM base AS additional-target
LABEL target=additional-target
USER app
COPY Dockerfile /Dockerfile.banana

FROM base AS final-target
LABEL target=final-target
COPY Dockerfile /Dockerfile.orange

FROM base AS unused
RUN exit 1
"#;

#[test]
fn additional_targets_target_file_and_shared_stages() {
    let t = Task::new(&["image", "additional-target"]);
    t.busybox_input("busybox");
    t.input(
        "src",
        &[("Dockerfile", MULTI_TARGET), ("target", "final-target\n")],
    );
    let out = t.ok(&[
        ("CONTEXT", "src"),
        ("IMAGE_ARG_base_image", "busybox"),
        ("ADDITIONAL_TARGETS", "additional-target"),
        ("TARGET_FILE", "src/target"),
        ("UNPACK_ROOTFS", "1"),
    ]);
    let main = archive_ref(&t.path("image/image.tar"));
    let extra = archive_ref(&t.path("additional-target/image.tar"));
    assert_eq!(
        label(&main, "target").as_deref(),
        Some("final-target"),
        "{out}"
    );
    assert_eq!(
        label(&extra, "target").as_deref(),
        Some("additional-target")
    );
    for (dir, r) in [("image", &main), ("additional-target", &extra)] {
        let raw: serde_json::Value = serde_json::from_slice(&skopeo_raw(r)).unwrap();
        assert_eq!(
            read(&t.path(&format!("{dir}/digest"))),
            raw["config"]["digest"].as_str().unwrap()
        );
    }
    // The shared stage was built once: the same stamp in both images.
    let a = read(&t.path("image/rootfs/stamp"));
    let b = read(&t.path("additional-target/rootfs/stamp"));
    assert_eq!(a, b);
    assert!(t.path("image/rootfs/Dockerfile.orange").is_file());
    assert!(t
        .path("additional-target/rootfs/Dockerfile.banana")
        .is_file());
    let meta: serde_json::Value =
        serde_json::from_str(&read(&t.path("additional-target/metadata.json"))).unwrap();
    assert_eq!(meta["user"], "app");
    assert_eq!(meta["env"], serde_json::json!(["PATH=/usr/bin:/bin"]));

    // No output directory declared: the image is still built, nothing is written.
    let t = Task::new(&[]);
    t.busybox_input("busybox");
    t.input("src", &[("Dockerfile", MULTI_TARGET)]);
    let log = t.ok(&[
        ("CONTEXT", "src"),
        ("IMAGE_ARG_base_image", "busybox"),
        ("TARGET", "final-target"),
    ]);
    assert!(log.contains("no output directory"), "{log}");
    assert!(!t.path("image").exists());
}

#[test]
fn bad_params_fail_before_building_and_name_every_problem() {
    let t = Task::new(&["image"]);
    t.input(
        "src",
        &[("Dockerfile", "FROM scratch\nCOPY Dockerfile /\n")],
    );
    std::fs::write(t.path("args"), "GOOD=1\nthis line is wrong\n").unwrap();
    let out = t.run(&[
        ("CONTEXT", "src"),
        ("DOCKERFIEL", "src/Dockerfile"),
        ("OUTPUT_OCI", "maybe"),
        ("BUILD_ARGS_FILE", "args"),
        ("BUILDKIT_ADD_HOSTS", "db"),
        ("IMAGE_ARG_base", "missing-input/image.tar"),
        ("BUILD_ARGS_X", "1"),
        ("DOCKER_USERNAME", "me"),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "DOCKERFIEL: unknown param (did you mean DOCKERFILE?)",
        "OUTPUT_OCI: expected true or false, got \"maybe\"",
        "BUILD_ARGS_FILE:",
        "args:2: expected KEY=VALUE",
        "BUILDKIT_ADD_HOSTS:",
        "IMAGE_ARG_base:",
        "BUILD_ARGS_X: unknown param (did you mean BUILD_ARG_X?)",
        "DOCKER_PASSWORD",
    ] {
        assert!(err.contains(needle), "{needle:?} missing from:\n{err}");
    }
    assert_eq!(std::fs::read_dir(t.path("image")).unwrap().count(), 0);

    // A Dockerfile error names the file and line, and nothing is written.
    t.input("bad", &[("Dockerfile", "FROM scratch\nCOPY\n")]);
    let out = t.run(&[("CONTEXT", "bad")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Dockerfile:2"), "{err}");
    assert_eq!(std::fs::read_dir(t.path("image")).unwrap().count(), 0);
}

/// A RUN line checking a file's content by its sha256 (the value itself must not appear
/// in the Dockerfile, which is recorded in the image's history).
fn check_sha(file: &str, value: &str) -> String {
    use sha2::Digest;
    let h = hex::encode(sha2::Sha256::digest(value.as_bytes()));
    format!("sha256sum {file} | grep -q ^{h}")
}

#[test]
fn secrets_ssh_and_extra_hosts_reach_run_but_never_the_image() {
    let t = Task::new(&["image"]);
    t.busybox_input("busybox");
    let dockerfile = format!(
        "ARG base\nFROM ${{base}}\n\
         RUN --mount=type=secret,id=token {}\n\
         RUN --mount=type=secret,id=file_secret,target=/s {}\n\
         RUN --mount=type=secret,id=hoist_named {}\n\
         RUN --mount=type=ssh,id=agent test -S \"$SSH_AUTH_SOCK\"\n\
         RUN --mount=type=ssh,id=deploykey test -S \"$SSH_AUTH_SOCK\"\n\
         RUN grep -q \"db.internal\" /etc/hosts && grep db.internal /etc/hosts | cut -c1-3 > /hosts-ok\n",
        check_sha("/run/secrets/token", "text-secret-value"),
        check_sha("/s", "file-secret-value"),
        check_sha("/run/secrets/hoist_named", "hoist-secret-value"),
    );
    t.input("src", &[("Dockerfile", &dockerfile)]);
    std::fs::write(t.path("secret.txt"), "file-secret-value").unwrap();
    // A private key file (world-readable, as a CI input), served through an agent.
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(t.path("deploy_key")));
    run(Command::new("chmod").arg("644").arg(t.path("deploy_key")));
    // An ssh agent socket, as BUILDKIT_SSH=id=SOCKET.
    // (In the system temp dir: a socket path must stay under 108 bytes.)
    let sock_dir = tempfile::Builder::new()
        .prefix("hoist-agent-")
        .tempdir()
        .unwrap();
    let sock = sock_dir.path().join("agent.sock");
    let mut agent = Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&sock)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !sock.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let sock_s = sock.display().to_string();
    let out = t.run(&[
        ("CONTEXT", "src"),
        ("IMAGE_ARG_base", "busybox"),
        ("BUILDKIT_SECRETTEXT_token", "text-secret-value"),
        ("BUILDKIT_SECRET_file_secret", "secret.txt"),
        ("HOIST_SECRET_TEXT_hoist_named", "hoist-secret-value"),
        (
            "BUILDKIT_SSH",
            &format!("agent={sock_s},deploykey=deploy_key"),
        ),
        ("BUILDKIT_ADD_HOSTS", "db.internal=10.9.8.7"),
        ("OUTPUT_OCI", "true"),
    ]);
    let _ = agent.kill();
    let _ = agent.wait();
    assert_success(&out, "hoist task with secrets");
    let layout = t.path("image/image");
    for secret in [
        "text-secret-value",
        "file-secret-value",
        "hoist-secret-value",
        "10.9.8.7",
        "db.internal 10",
    ] {
        assert!(
            !layout_contains(&layout, secret.as_bytes()),
            "{secret} leaked into the image"
        );
    }
    // The extra host resolved inside RUN (the file holds the address's first digits);
    // /etc/hosts itself is not part of the image.
    let rootfs = t.env.path("unpacked");
    let r = umoci_unpack(&layout, "latest", &rootfs);
    assert_eq!(read(&r.join("hosts-ok")), "10.\n");
}

const CACHED: &str = r#"ARG base
FROM ${base}
ARG n=1
COPY input.txt /input.txt
# Stands for real work (compiling, installing): a few seconds and a few MiB of output.
RUN sleep 4 && dd if=/dev/urandom of=/random.bin bs=1M count=8 2>/dev/null && sha256sum /random.bin > /sum
RUN --mount=type=cache,target=/cache echo "run $n" >> /cache/runs && cp /cache/runs /runs-seen
"#;

fn timed(t: &Task, params: &[(&str, &str)]) -> Duration {
    let start = Instant::now();
    t.ok(params);
    start.elapsed()
}

#[test]
fn cache_directory_survives_runs_and_keeps_cache_mounts() {
    let t = Task::new(&["image", "cache"]);
    t.busybox_input("busybox");
    t.input("src", &[("Dockerfile", CACHED), ("input.txt", "v1\n")]);
    let params = [("CONTEXT", "src"), ("IMAGE_ARG_base", "busybox")];
    let first = timed(&t, &params);
    let digest1 = read(&t.path("image/manifest-digest"));
    // Concourse gives the next run fresh outputs and the same cache.
    std::fs::remove_dir_all(t.path("image")).unwrap();
    std::fs::create_dir(t.path("image")).unwrap();
    let second = timed(&t, &params);
    let digest2 = read(&t.path("image/manifest-digest"));
    assert_eq!(
        digest1, digest2,
        "an unchanged context gives the same image"
    );
    eprintln!("first run {first:?}, cached run {second:?}");
    assert!(
        second * 5 <= first,
        "the cached run should be at least 5x faster: first {first:?}, second {second:?}"
    );
    // RUN --mount=type=cache contents persist in cache/ between runs (busted RUN step).
    std::fs::remove_dir_all(t.path("image")).unwrap();
    std::fs::create_dir(t.path("image")).unwrap();
    t.ok(&[
        ("CONTEXT", "src"),
        ("IMAGE_ARG_base", "busybox"),
        ("UNPACK_ROOTFS", "true"),
        ("BUILD_ARG_n", "2"),
    ]);
    assert_eq!(read(&t.path("image/rootfs/runs-seen")), "run 1\nrun 2\n");
}

/// Disk usage of a tree in bytes (allocated blocks, hard links once), measured with du.
fn du_bytes(p: &Path) -> u64 {
    let out = run(Command::new("du").arg("-s").arg("-B1").arg(p));
    out.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn cache_stays_under_its_bound() {
    let t = Task::new(&["image", "cache"]);
    t.busybox_input("busybox");
    let bound: u64 = 40 << 20;
    for i in 0..4 {
        t.input(
            "src",
            &[
                (
                    "Dockerfile",
                    "ARG base\nFROM ${base}\nCOPY input.txt /\nRUN dd if=/dev/urandom of=/r bs=1M count=12 2>/dev/null\n",
                ),
                ("input.txt", &format!("round {i}\n")),
            ],
        );
        t.ok(&[
            ("CONTEXT", "src"),
            ("IMAGE_ARG_base", "busybox"),
            ("HOIST_CACHE_MAX_SIZE", "40MiB"),
        ]);
        let used = du_bytes(&t.path("cache"));
        assert!(
            used <= bound,
            "round {i}: cache uses {used} bytes, over its {bound}-byte bound"
        );
    }
    // The newest image is still cached: an unchanged rerun is a full cache hit.
    let log = t.ok(&[
        ("CONTEXT", "src"),
        ("IMAGE_ARG_base", "busybox"),
        ("HOIST_CACHE_MAX_SIZE", "40MiB"),
    ]);
    assert!(log.contains("CACHED"), "{log}");
}

#[test]
fn build_file_builds_several_images_with_shared_stages() {
    let t = Task::new(&["api", "worker-image", "tools"]);
    t.busybox_input("busybox");
    t.input(
        "repo",
        &[
            (
                "services/Dockerfile",
                r#"ARG base
FROM ${base} AS common
RUN cat /proc/sys/kernel/random/uuid > /common-stamp

FROM common AS api
ARG SERVICE
RUN echo "$SERVICE" > /service
LABEL service=api

FROM common AS worker
ARG SERVICE
RUN echo "$SERVICE" > /service
LABEL service=worker
"#,
            ),
            (
                "tools/Dockerfile",
                "FROM scratch\nCOPY tool.sh /tool.sh\nLABEL service=tools\n",
            ),
            ("tools/tool.sh", "#!/bin/sh\necho tool\n"),
            (
                "hoist.toml",
                r#"[defaults]
context = "services"
labels = { "org.opencontainers.image.vendor" = "Example" }

[images.api]
target = "api"
args = { SERVICE = "api-service" }
tags = ["registry.example.com/api:1.0"]

[images.worker]
target = "worker"
args = { SERVICE = "worker-service" }
output = "worker-image"

[images.tools]
context = "tools"
"#,
            ),
        ],
    );
    let busybox = t.path("busybox").display().to_string();
    let out = t.command(&[
        ("HOIST_BUILD_FILE", "repo/hoist.toml"),
        ("BUILD_ARG_base", &format!("oci:{busybox}")),
        ("UNPACK_ROOTFS", "true"),
    ]);
    let mut out = out;
    let o = out.output().unwrap();
    assert_success(&o, "hoist task with a build file");
    let stdout = String::from_utf8_lossy(&o.stdout);
    for name in ["api", "worker", "tools"] {
        assert!(stdout.contains(&format!("{name}: sha256:")), "{stdout}");
    }
    let api = archive_ref(&t.path("api/image.tar"));
    let worker = archive_ref(&t.path("worker-image/image.tar"));
    let tools = archive_ref(&t.path("tools/image.tar"));
    assert_eq!(label(&api, "service").as_deref(), Some("api"));
    assert_eq!(label(&worker, "service").as_deref(), Some("worker"));
    assert_eq!(label(&tools, "service").as_deref(), Some("tools"));
    assert_eq!(
        label(&api, "org.opencontainers.image.vendor").as_deref(),
        Some("Example")
    );
    assert_eq!(read(&t.path("api/rootfs/service")), "api-service\n");
    assert_eq!(
        read(&t.path("worker-image/rootfs/service")),
        "worker-service\n"
    );
    // The common stage ran once for both images.
    assert_eq!(
        read(&t.path("api/rootfs/common-stamp")),
        read(&t.path("worker-image/rootfs/common-stamp"))
    );
    // The api image carries its tag for docker load.
    let manifest = tar_member(&t.path("api/image.tar"), "manifest.json");
    assert!(
        manifest.contains("registry.example.com/api:1.0"),
        "{manifest}"
    );
    // Build-file mistakes are reported with the file and line.
    std::fs::write(
        t.path("repo/bad.toml"),
        "[images.api]\ncontext = \"services\"\ntraget = \"api\"\n",
    )
    .unwrap();
    let o = t.run(&[("HOIST_BUILD_FILE", "repo/bad.toml")]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bad.toml:3") && err.contains("traget"),
        "{err}"
    );
}

#[test]
fn without_user_namespaces_run_says_what_is_missing_and_copy_only_builds_work() {
    let t = Task::new(&["image"]);
    t.busybox_input("busybox");
    t.input(
        "copy-only",
        &[
            ("Dockerfile", "FROM scratch\nCOPY a.txt /a.txt\n"),
            ("a.txt", "a\n"),
        ],
    );
    t.input(
        "with-run",
        &[("Dockerfile", "ARG base\nFROM ${base}\nRUN echo hi > /hi\n")],
    );
    // A user namespace whose processes may not create user namespaces: what a worker with
    // user.max_user_namespaces=0 looks like from inside.
    let probe = Command::new("unshare")
        .args(["--user", "--map-root-user", "true"])
        .output()
        .unwrap();
    if !probe.status.success() {
        eprintln!("cannot create a user namespace here: skipped");
        return;
    }
    let jail = "echo 0 > /proc/sys/user/max_user_namespaces && exec \"$HOIST\" task";
    let out = t.shell(
        &format!("exec unshare --user --map-root-user sh -c '{jail}'"),
        &[("CONTEXT", "copy-only")],
    );
    assert_success(&out, "a COPY-only build without user namespaces");
    assert!(t.path("image/image.tar").is_file());
    std::fs::remove_dir_all(t.path("image")).unwrap();
    std::fs::create_dir(t.path("image")).unwrap();
    let out = t.shell(
        &format!("exec unshare --user --map-root-user sh -c '{jail}'"),
        &[("CONTEXT", "with-run"), ("IMAGE_ARG_base", "busybox")],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("max_user_namespaces"),
        "the cause is named:\n{err}"
    );
    assert!(
        err.contains("privileged"),
        "the Concourse workaround is given:\n{err}"
    );
    assert_eq!(std::fs::read_dir(t.path("image")).unwrap().count(), 0);
}

/// Base64 (standard alphabet, padded), for a docker config.json `auth` entry.
fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn registry_params_ca_credentials_mirrors_and_platform() {
    use hoist_testutil::{Registry, RegistryAuth, TestCa};
    if !hoist_testutil::have_registry() {
        eprintln!("docker-registry not installed: skipped");
        return;
    }
    // A private registry with TLS (test CA) and htpasswd holds the base image.
    let reg = Registry::start(
        RegistryAuth::Htpasswd {
            user: "ci".into(),
            password: "s3cret".into(),
        },
        Some(TestCa::new()),
    );
    let t = Task::new(&["image"]);
    let certs = t.env.path("certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::write(certs.join("ca.crt"), reg.ca_pem().unwrap()).unwrap();
    let base_ref = format!("{}/base/busybox:1", reg.addr());
    hoist_testutil::skopeo_push_layout(
        &busybox_base(),
        "latest",
        &base_ref,
        &[
            "--dest-creds",
            "ci:s3cret",
            &format!("--dest-cert-dir={}", certs.display()),
        ],
    );
    t.input(
        "src",
        &[(
            "Dockerfile",
            &format!("FROM {base_ref}\nRUN echo built > /built\n"),
        )],
    );
    let ca = reg.ca_pem().unwrap().to_string();
    let creds = [
        ("DOCKER_REGISTRY", reg.addr()),
        ("DOCKER_USERNAME", "ci".to_string()),
        ("DOCKER_PASSWORD", "s3cret".to_string()),
    ];
    // Without the CA the pull is refused; without credentials too.
    let out = t.run(&[("CONTEXT", "src")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(err.contains("certificate"), "{err}");
    let out = t.run(&[("CONTEXT", "src"), ("LOCAL_CA_CERTIFICATE", &ca)]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        err.contains("401") || err.contains("unauthorized") || err.contains("credential"),
        "{err}"
    );
    // LOCAL_CA_CERTIFICATE + DOCKER_* credentials: the build works, with DEBUG logs.
    let mut params: Vec<(&str, &str)> = vec![
        ("CONTEXT", "src"),
        ("LOCAL_CA_CERTIFICATE", &ca),
        ("DEBUG", "true"),
        ("HOIST_TAGS", "example.com/app:ci"),
    ];
    params.extend(creds.iter().map(|(k, v)| (*k, v.as_str())));
    let log = t.ok(&params);
    assert!(log.contains("DEBUG"), "DEBUG=true gives debug logs:\n{log}");
    let md = read(&t.path("image/manifest-digest"));
    let built: serde_json::Value = serde_json::from_str(&tar_member(
        &t.path("image/image.tar"),
        &format!("blobs/sha256/{}", md.trim_start_matches("sha256:")),
    ))
    .unwrap();
    let base: serde_json::Value = serde_json::from_slice(&skopeo_raw(&format!(
        "oci:{}:latest",
        busybox_base().display()
    )))
    .unwrap();
    assert_eq!(built["layers"].as_array().unwrap().len(), 2);
    assert_eq!(
        built["layers"][0]["digest"], base["layers"][0]["digest"],
        "the base layer is reused as is"
    );
    let manifest = tar_member(&t.path("image/image.tar"), "manifest.json");
    assert!(manifest.contains("example.com/app:ci"), "{manifest}");
    // The same with credentials as a docker config document, from a fresh cache.
    let t2 = Task::new(&["image"]);
    run(Command::new("cp")
        .arg("-a")
        .arg(t.path("src"))
        .arg(t2.path("src")));
    let auth = format!(
        "{{\"auths\": {{\"{}\": {{\"auth\": \"{}\"}}}}}}",
        reg.addr(),
        base64(b"ci:s3cret")
    );
    t2.ok(&[
        ("CONTEXT", "src"),
        ("LOCAL_CA_CERTIFICATE", &ca),
        ("HOIST_REGISTRY_AUTH", &auth),
    ]);
    assert!(t2.path("image/image.tar").is_file());

    // REGISTRY_MIRRORS: Docker Hub images come from the mirror (never from the internet).
    let mirror = Registry::plain();
    hoist_testutil::skopeo_push_layout(
        &busybox_base(),
        "latest",
        &format!("{}/library/mirrored:1", mirror.addr()),
        // Anonymous: skopeo would otherwise read the runner's auth files.
        &["--dest-no-creds"],
    );
    let t3 = Task::new(&["image"]);
    t3.input(
        "src",
        &[("Dockerfile", "FROM mirrored:1\nLABEL from=mirror\n")],
    );
    t3.ok(&[("CONTEXT", "src"), ("REGISTRY_MIRRORS", &mirror.addr())]);
    let r = archive_ref(&t3.path("image/image.tar"));
    assert_eq!(label(&r, "from").as_deref(), Some("mirror"));

    // IMAGE_PLATFORM: the image is for that platform.
    let t4 = Task::new(&["image"]);
    t4.input(
        "src",
        &[("Dockerfile", "FROM scratch\nCOPY Dockerfile /\n")],
    );
    t4.ok(&[("CONTEXT", "src"), ("IMAGE_PLATFORM", "linux/arm64")]);
    let cfg = skopeo_config(&archive_ref(&t4.path("image/image.tar")));
    assert_eq!(cfg["architecture"], "arm64");
    assert_eq!(cfg["os"], "linux");
}

/// `IMAGE_PLATFORM` with several platforms and `OUTPUT_OCI`, as oci-build-task documents
/// it: `image/image/` is an OCI layout holding an index (what registry-image's `put`
/// pushes as a multi-arch tag), `digest` names the index, `rootfs/` is the worker's
/// platform; without `OUTPUT_OCI` the params are refused before anything is built.
#[test]
fn several_platforms_write_an_index_layout() {
    let t = Task::new(&["image"]);
    t.busybox_input("busybox");
    t.input(
        "src",
        &[(
            "Dockerfile",
            "ARG base\n\
             FROM --platform=$BUILDPLATFORM ${base} AS build\n\
             ARG TARGETPLATFORM\n\
             RUN echo \"for $TARGETPLATFORM\" > /out.txt\n\
             FROM scratch\n\
             COPY --from=build /out.txt /\n",
        )],
    );
    let refused = t.run(&[
        ("CONTEXT", "src"),
        ("IMAGE_ARG_base", "busybox"),
        ("IMAGE_PLATFORM", "linux/amd64,linux/arm64"),
    ]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("IMAGE_PLATFORM:"), "{err}");
    assert!(err.contains("OUTPUT_OCI=true"), "{err}");
    assert_eq!(std::fs::read_dir(t.path("image")).unwrap().count(), 0);

    t.ok(&[
        ("CONTEXT", "src"),
        ("IMAGE_ARG_base", "busybox"),
        ("IMAGE_PLATFORM", "linux/amd64, linux/arm64"),
        ("OUTPUT_OCI", "true"),
        ("UNPACK_ROOTFS", "true"),
    ]);
    assert!(!t.path("image/image.tar").exists());
    assert!(!t.path("image/image/single-image-digest").exists());
    let layout = format!("oci:{}:latest", t.path("image/image").display());
    let raw = skopeo_raw(&layout);
    let index: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    let archs: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(archs, ["amd64", "arm64"]);
    assert_eq!(read(&t.path("image/digest")), sha256_of(&raw));
    assert_eq!(read(&t.path("image/manifest-digest")), sha256_of(&raw));
    // Every platform's blobs are there and check out.
    run(Command::new("skopeo")
        .args(["copy", "--all", "-q"])
        .arg(&layout)
        .arg(format!("oci:{}:copy", t.env.path("copy").display())));
    // rootfs/ is the worker's platform.
    let host = match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "amd64",
    };
    assert_eq!(
        read(&t.path("image/rootfs/out.txt")).trim(),
        format!("for linux/{host}")
    );
    assert!(t.path("image/metadata.json").is_file());
}

/// Whether any file under `dir` (decompressed when gzip) contains `needle`.
fn tree_contains(dir: &Path, needle: &[u8]) -> bool {
    use std::io::Read;
    std::fs::read_dir(dir).unwrap().any(|e| {
        let p = e.unwrap().path();
        if p.is_dir() {
            return tree_contains(&p, needle);
        }
        let raw = std::fs::read(&p).unwrap();
        let mut data = raw.clone();
        if raw.starts_with(&[0x1f, 0x8b]) {
            data.clear();
            let _ = flate2::read::MultiGzDecoder::new(&raw[..]).read_to_end(&mut data);
        }
        data.windows(needle.len()).any(|w| w == needle)
    })
}

#[test]
fn context_symlinks_stay_inside_the_context_in_task_mode() {
    let t = Task::new(&["image"]);
    let host = t.env.path("host");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("secret.txt"), "HOST-SECRET-task-91c2").unwrap();
    let src = t.input(
        "src",
        &[("Dockerfile", "FROM scratch\nCOPY el/secret.txt /x\n")],
    );
    std::os::unix::fs::symlink(&host, src.join("el")).unwrap();
    // Where the link leads inside the context: an in-context stand-in.
    let inside = src.join(host.strip_prefix("/").unwrap());
    std::fs::create_dir_all(&inside).unwrap();
    std::fs::write(inside.join("secret.txt"), "in-context-task").unwrap();
    t.ok(&[("CONTEXT", "src")]);
    let unpacked = t.env.path("unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    run(Command::new("tar")
        .arg("-xf")
        .arg(t.path("image/image.tar"))
        .arg("-C")
        .arg(&unpacked));
    assert!(tree_contains(&unpacked, b"in-context-task"));
    assert!(!tree_contains(&unpacked, b"HOST-SECRET-task-91c2"));
}
