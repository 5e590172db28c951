//! The Concourse task image (the repository's `Dockerfile`), built by hoist itself, then
//! used the way Concourse uses it: `hoist task` (through oci-build-task's `build` entry
//! point) runs inside the image, here in hoist's own RUN sandbox, which nests the task's
//! RUN sandbox in it. Checked with skopeo, umoci and tar. The suite runs as root and
//! again as an unprivileged user (scripts/test-unprivileged.sh).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::*;

/// The task image's recipe, for runs from a copy of the repository that lacks it.
const DOCKERFILE: &str = include_str!("../Dockerfile");
const DOCKERIGNORE: &str = include_str!("../.dockerignore");

/// The build context of the task image: the repository when it is there (so its
/// `.dockerignore` is exercised), else a directory holding just the recipe (the
/// unprivileged run works from a partial copy; `--target prebuilt` reads nothing else).
fn image_context(env: &Env) -> PathBuf {
    let repo = repo();
    if repo.join("Dockerfile").is_file() && repo.join("Cargo.toml").is_file() {
        return repo;
    }
    let dir = env.path("recipe");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), DOCKERFILE).unwrap();
    std::fs::write(dir.join(".dockerignore"), DOCKERIGNORE).unwrap();
    eprintln!(
        "{} has no Dockerfile: building from a copy of the recipe",
        repo.display()
    );
    dir
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
}

/// What `COPY . .` in the `compile` stage gets: the repository through its
/// `.dockerignore`. It must hold everything cargo needs and nothing big.
#[test]
fn dockerignore_keeps_the_compile_context_small() {
    let repo = repo();
    if !repo.join("Cargo.toml").is_file() || !repo.join(".dockerignore").is_file() {
        eprintln!(
            "skipping: {} is not a full checkout (unprivileged run from a copy)",
            repo.display()
        );
        return;
    }
    let env = Env::new();
    let df = env.path("probe/Dockerfile");
    // No Dockerfile.dockerignore next to it: the context's .dockerignore applies.
    write(&df, "FROM scratch\nCOPY . /\n");
    let out = env.path("context");
    let t = Instant::now();
    env.ok(&[
        "build",
        "-f",
        df.to_str().unwrap(),
        "-o",
        &format!("type=local,dest={}", out.display()),
        repo.to_str().unwrap(),
    ]);
    let took = t.elapsed();
    let size = run(Command::new("du").arg("-sk").arg(&out));
    let kib: u64 = size.split_whitespace().next().unwrap().parse().unwrap();
    eprintln!("compile context: {kib} KiB, copied in {took:?}");
    for gone in ["target", ".git", "fuzz", "Dockerfile", ".dockerignore"] {
        assert!(!out.join(gone).exists(), "{gone} is in the context");
    }
    for kept in [
        "Cargo.toml",
        "Cargo.lock",
        "bin/hoist/Cargo.toml",
        "fixtures/hello",
    ] {
        assert!(
            out.join(kept).exists(),
            "{kept} is missing from the context"
        );
    }
    assert!(
        kib < 50 * 1024,
        "the context is {kib} KiB: .dockerignore misses something big"
    );
    assert!(took.as_secs() < 60, "copying the context took {took:?}");

    // Every target of every workspace member (tests and benches included: cargo reads
    // their paths) is in the context, and the lock file matches the manifests.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let meta = run(Command::new(cargo)
        .args([
            "metadata",
            "--no-deps",
            "--offline",
            "--locked",
            "--format-version",
            "1",
        ])
        .current_dir(&out));
    let meta: serde_json::Value = serde_json::from_str(&meta).unwrap();
    let root = out.canonicalize().unwrap();
    let mut targets = 0;
    for pkg in meta["packages"].as_array().unwrap() {
        for t in pkg["targets"].as_array().unwrap() {
            let src = PathBuf::from(t["src_path"].as_str().unwrap());
            assert!(
                src.starts_with(&root),
                "{} is outside the context",
                src.display()
            );
            assert!(
                src.is_file(),
                "{} is missing from the context",
                src.display()
            );
            targets += 1;
        }
    }
    assert!(targets > 10, "only {targets} targets in the workspace?");
}

/// The inner build: `FROM ${base}` given as an IMAGE_ARG (an OCI layout in the context),
/// a COPY, and a RUN that needs the full id range (chown to ids other than root).
const FIXTURE_DOCKERFILE: &str = r#"ARG base
FROM ${base}
COPY hello.txt /hello.txt
RUN echo "ran as $(id -u)" > /ran.txt && cat /hello.txt >> /ran.txt && chown 1234:2345 /ran.txt
ENV FROM_FIXTURE=yes
LABEL fixture=task-image
"#;

/// Runs the task image's `build` (oci-build-task's entry point) as Concourse would: as
/// root with a task cache (`cache/`, here a cache mount), and as the image's non-root
/// user `hoist` (newuidmap with its subordinate ranges). Exports both output dirs.
const OUTER_DOCKERFILE: &str = r#"ARG task_image
FROM ${task_image} AS task
COPY task /work
RUN --mount=type=cache,target=/work/cache \
    cd /work && mkdir -p image && env CONTEXT=src IMAGE_ARG_base=busybox UNPACK_ROOTFS=true build
COPY --chown=hoist:hoist task /home/hoist/work
USER hoist
RUN cd /home/hoist/work && mkdir -p image && env CONTEXT=src IMAGE_ARG_base=busybox UNPACK_ROOTFS=true build

FROM scratch
COPY --from=task /work/image /as-root
COPY --from=task /home/hoist/work/image /as-hoist
"#;

#[test]
fn task_image_builds_and_runs_hoist_task_inside() {
    let Some(debian) = debian_base() else {
        eprintln!(
            "skipping: no Debian base image (debootstrap needs root; run the suite as root first)"
        );
        return;
    };
    let env = Env::new();

    // a. The image, with the binary under test (compiled outside: the `prebuilt` stage).
    let bin_dir = env.path("hoist-binary");
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::fs::copy(hoist_bin(), bin_dir.join("hoist")).unwrap();
    let context = image_context(&env);
    let layout = env.path("task-image");
    let t = Instant::now();
    env.ok(&[
        "build",
        "--target",
        "prebuilt",
        "--build-context",
        &format!("hoist-binary={}", bin_dir.display()),
        "--build-arg",
        &format!("BASE_IMAGE=oci:{}:bookworm", debian.display()),
        "-o",
        &format!("type=oci,dest={}", layout.display()),
        context.to_str().unwrap(),
    ]);
    eprintln!("task image built in {:?}", t.elapsed());

    // b. What is in it.
    let image_ref = format!("oci:{}:latest", layout.display());
    let info = skopeo_inspect(&image_ref);
    assert_eq!(
        info["Labels"]["org.opencontainers.image.title"], "hoist",
        "{info}"
    );
    for l in [
        "org.opencontainers.image.description",
        "org.opencontainers.image.source",
    ] {
        assert!(info["Labels"][l].is_string(), "no label {l}: {info}");
    }
    let image_env: Vec<&str> = info["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(image_env.contains(&"HOIST_PROGRESS=plain"), "{image_env:?}");

    let t = Instant::now();
    let rootfs = umoci_unpack(&layout, "latest", &env.path("bundle"));
    eprintln!("unpacked with umoci in {:?}", t.elapsed());
    let hoist = rootfs.join("usr/local/bin/hoist");
    assert_eq!(
        std::fs::metadata(&hoist).unwrap().len(),
        std::fs::metadata(hoist_bin()).unwrap().len(),
        "/usr/local/bin/hoist is not the binary under test"
    );
    assert_eq!(mode(&hoist) & 0o111, 0o111, "hoist is not executable");
    let build = rootfs.join("usr/local/bin/build");
    assert_eq!(read(&build), "#!/bin/sh\nexec hoist task \"$@\"\n");
    assert_eq!(mode(&build) & 0o111, 0o111, "build is not executable");
    for f in ["etc/subuid", "etc/subgid"] {
        assert_eq!(
            read(&rootfs.join(f)),
            "hoist:1:999\nhoist:1001:64535\n",
            "/{f}"
        );
    }
    assert!(
        read(&rootfs.join("etc/passwd")).contains("\nhoist:x:1000:1000:"),
        "no user hoist (1000:1000) in /etc/passwd"
    );
    for tool in ["usr/bin/newuidmap", "usr/bin/newgidmap"] {
        assert_eq!(
            mode(&rootfs.join(tool)) & 0o4000,
            0o4000,
            "/{tool} is not setuid"
        );
    }
    assert!(rootfs.join("usr/bin/ssh-agent").is_file(), "no ssh-agent");
    assert!(
        rootfs.join("etc/ssl/certs/ca-certificates.crt").is_file(),
        "no CA certificates"
    );
    assert!(
        !rootfs.join("var/lib/apt/lists").exists()
            || std::fs::read_dir(rootfs.join("var/lib/apt/lists"))
                .unwrap()
                .filter_map(|e| e.ok())
                .all(|e| e.file_name() == "partial" || e.file_name() == "lock"),
        "apt lists left in the image"
    );

    eprintln!("image checked");

    // c. `hoist task` inside the image, in hoist's sandbox (nested user namespaces).
    let ctx = env.path("outer");
    write(&ctx.join("Dockerfile"), OUTER_DOCKERFILE);
    write(&ctx.join("task/src/Dockerfile"), FIXTURE_DOCKERFILE);
    write(&ctx.join("task/src/hello.txt"), "hello from the fixture\n");
    run(Command::new("cp")
        .arg("-a")
        .arg(busybox_base())
        .arg(ctx.join("task/busybox")));
    let out = env.path("out");
    let t = Instant::now();
    let log = {
        let o = env
            .hoist()
            .args([
                "build",
                "--progress",
                "plain",
                "--build-arg",
                &format!("task_image={image_ref}"),
                "-o",
                &format!("type=local,dest={}", out.display()),
            ])
            .arg(&ctx)
            .output()
            .unwrap();
        assert_success(&o, "hoist build (hoist task inside the task image)");
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    eprintln!(
        "hoist task ran inside the image (twice) in {:?}",
        t.elapsed()
    );
    if log.contains("overlayfs cannot be mounted") {
        eprintln!(
            "note: the inner sandbox fell back to copying (no overlayfs in the nested namespace)"
        );
    }

    for who in ["as-root", "as-hoist"] {
        let dir = out.join(who);
        let tar = dir.join("image.tar");
        let archive = format!("docker-archive:{}", tar.display());
        let info = skopeo_inspect(&archive);
        assert_eq!(info["Labels"]["fixture"], "task-image", "{who}: {info}");
        assert!(
            info["Env"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e == "FROM_FIXTURE=yes"),
            "{who}: {info}"
        );
        // manifest-digest: the manifest image.tar carries (and is pushed under);
        // digest: its config.
        let x = env.path(&format!("x-{who}"));
        std::fs::create_dir_all(&x).unwrap();
        run(Command::new("tar").arg("-xf").arg(&tar).arg("-C").arg(&x));
        let index: serde_json::Value = serde_json::from_str(&read(&x.join("index.json"))).unwrap();
        let manifest_digest = read(&dir.join("manifest-digest"));
        assert_eq!(
            manifest_digest.trim(),
            index["manifests"][0]["digest"].as_str().unwrap(),
            "{who}: manifest-digest"
        );
        let blob = x
            .join("blobs/sha256")
            .join(manifest_digest.trim().trim_start_matches("sha256:"));
        assert_eq!(
            sha256_file(&blob),
            manifest_digest.trim(),
            "{who}: manifest blob"
        );
        let manifest: serde_json::Value = serde_json::from_str(&read(&blob)).unwrap();
        assert_eq!(
            read(&dir.join("digest")).trim(),
            manifest["config"]["digest"].as_str().unwrap(),
            "{who}: digest"
        );
        assert_eq!(
            read(&dir.join("rootfs/ran.txt")),
            "ran as 0\nhello from the fixture\n",
            "{who}: the RUN's file"
        );
        assert!(
            dir.join("rootfs/bin/busybox").is_file(),
            "{who}: no busybox in rootfs/"
        );
        let metadata: serde_json::Value =
            serde_json::from_str(&read(&dir.join("metadata.json"))).unwrap();
        assert!(
            metadata["env"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e == "FROM_FIXTURE=yes"),
            "{who}: {metadata}"
        );

        // The RUN's layer kept the chown: the nested sandbox mapped more than one id.
        let m: serde_json::Value = serde_json::from_str(&read(&x.join("manifest.json"))).unwrap();
        let last = m[0]["Layers"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .as_str()
            .unwrap();
        let listing = run(Command::new("tar")
            .args(["-tvzf"])
            .arg(x.join(last))
            .arg("--numeric-owner"));
        let line = listing
            .lines()
            .find(|l| l.ends_with(" ran.txt"))
            .unwrap_or_else(|| panic!("{who}: no ran.txt in the RUN layer:\n{listing}"));
        assert!(line.contains(" 1234/2345 "), "{who}: {line}");
    }
}

/// The `prebuilt-tools` target: a Makefile that builds two images with `hoist build` (one
/// docker-archive, one unpacked root file system), run with make as the image's
/// unprivileged user `hoist`, inside hoist's own sandbox.
const MAKE_OUTER_DOCKERFILE: &str = r#"ARG task_image
FROM ${task_image} AS make
COPY --chown=hoist:hoist work /home/hoist/work
USER hoist
RUN cd /home/hoist/work && make release OUT=out && jq --version > out/jq-version \
 && git --version > out/git-version && bash -c 'echo "bash $BASH_VERSION"' > out/bash-version \
 && id -u > out/uid

FROM scratch
COPY --from=make /home/hoist/work/out /
"#;

const MAKEFILE: &str = "OUT ?= out\n\
export HOIST_CACHE_DIR ?= $(CURDIR)/.hoist-cache\n\
release: $(OUT)/one.tar $(OUT)/two-rootfs\n\
$(OUT)/one.tar:\n\
\thoist build -t one:1 --build-arg base=oci:busybox:latest -o type=docker,dest=$@ one\n\
$(OUT)/two-rootfs:\n\
\thoist build --build-arg base=oci:busybox:latest -o type=local,dest=$@ two\n";

#[test]
fn tools_image_runs_a_makefile_that_calls_hoist_build() {
    let Some(debian) = debian_base() else {
        eprintln!(
            "skipping: no Debian base image (debootstrap needs root; run the suite as root first)"
        );
        return;
    };
    let env = Env::new();
    let bin_dir = env.path("hoist-binary");
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::fs::copy(hoist_bin(), bin_dir.join("hoist")).unwrap();
    let layout = env.path("tools-image");
    env.ok(&[
        "build",
        "--target",
        "prebuilt-tools",
        "--build-context",
        &format!("hoist-binary={}", bin_dir.display()),
        "--build-arg",
        &format!("BASE_IMAGE=oci:{}:bookworm", debian.display()),
        "-o",
        &format!("type=oci,dest={}", layout.display()),
        image_context(&env).to_str().unwrap(),
    ]);
    let ctx = env.path("outer");
    write(&ctx.join("Dockerfile"), MAKE_OUTER_DOCKERFILE);
    let work = ctx.join("work");
    write(&work.join("Makefile"), MAKEFILE);
    // The base, relative to make's working directory: oci:busybox.
    run(Command::new("cp")
        .arg("-a")
        .arg(busybox_base())
        .arg(work.join("busybox")));
    for (name, body) in [
        ("one", "ARG base\nFROM ${base}\nRUN echo one > /one\n"),
        (
            "two",
            "ARG base\nFROM ${base}\nRUN echo two > /two && chown 1234:2345 /two\n",
        ),
    ] {
        write(&work.join(name).join("Dockerfile"), body);
    }
    let out = env.path("out");
    let o = env
        .hoist()
        .args([
            "build",
            "--progress",
            "plain",
            "--build-arg",
            &format!("task_image=oci:{}:latest", layout.display()),
            "-o",
            &format!("type=local,dest={}", out.display()),
        ])
        .arg(&ctx)
        .output()
        .unwrap();
    assert_success(&o, "make release inside the tools image");
    assert!(read(&out.join("jq-version")).starts_with("jq-"));
    assert!(read(&out.join("git-version")).starts_with("git version "));
    assert!(read(&out.join("bash-version")).starts_with("bash 5."));
    assert_eq!(
        read(&out.join("uid")),
        "1000\n",
        "make ran as the image's user hoist"
    );
    let info = skopeo_inspect(&format!("docker-archive:{}", out.join("one.tar").display()));
    assert!(!info["Layers"].as_array().unwrap().is_empty(), "{info}");
    assert_eq!(read(&out.join("two-rootfs/two")), "two\n");
    assert!(out.join("two-rootfs/bin/busybox").is_file());
}
