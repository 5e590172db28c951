//! Runs `examples/assemble.rs` (an image assembled without a Dockerfile) and checks
//! its output with independent tools: `skopeo inspect` and `umoci unpack`.

mod formats_util;

use std::path::{Path, PathBuf};
use std::process::Command;

use formats_util::{cmd, run, s, umoci_image};

/// The example binary, built on demand (`cargo test` builds examples; `--test` does not).
fn example() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe.parent().unwrap().parent().unwrap();
    let bin = target.join("examples").join("assemble");
    let status = Command::new(env!("CARGO"))
        .args(["build", "-p", "hoist-image", "--example", "assemble"])
        .status()
        .unwrap();
    assert!(status.success(), "building the example");
    assert!(bin.exists(), "{} missing", bin.display());
    bin
}

fn inspect(layout: &Path) -> serde_json::Value {
    let r = format!("oci:{}:latest", s(layout));
    serde_json::from_str(&run(&mut cmd("skopeo", &["inspect", "--config", &r]))).unwrap()
}

#[test]
fn example_assembles_on_scratch_and_on_a_layout() {
    let t = tempfile::tempdir().unwrap();
    let app = t.path().join("app.sh");
    std::fs::write(&app, "#!/bin/sh\necho assembled\n").unwrap();
    let bin = example();

    // On scratch.
    let out = t.path().join("scratch-out");
    run(Command::new(&bin).args(["scratch", s(&app), "/usr/local/bin/app", s(&out)]));
    let cfg = inspect(&out);
    assert_eq!(cfg["config"]["Entrypoint"][0], "/usr/local/bin/app");
    assert_eq!(cfg["rootfs"]["diff_ids"].as_array().unwrap().len(), 1);
    assert_eq!(cfg["created"], "1970-01-01T00:00:00Z");
    let bundle = t.path().join("bundle1");
    run(&mut cmd(
        "umoci",
        &[
            "unpack",
            "--rootless",
            "--image",
            &format!("{}:latest", s(&out)),
            s(&bundle),
        ],
    ));
    let f = bundle.join("rootfs/usr/local/bin/app");
    assert_eq!(
        std::fs::read_to_string(&f).unwrap(),
        "#!/bin/sh\necho assembled\n"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
        0o755
    );

    // Reproducible: a second run gives the same digest.
    let out2 = t.path().join("scratch-out2");
    let d1 = run(Command::new(&bin).args(["scratch", s(&app), "/usr/local/bin/app", s(&out2)]));
    let d0 = run(Command::new(&bin).args([
        "scratch",
        s(&app),
        "/usr/local/bin/app",
        s(&t.path().join("o3")),
    ]));
    assert_eq!(d0, d1);

    // On a base made by umoci: its two layers, then ours; its files stay.
    let base = umoci_image(t.path());
    let out = t.path().join("based-out");
    run(Command::new(&bin).args([s(&base), s(&app), "/app", s(&out)]));
    let cfg = inspect(&out);
    assert_eq!(cfg["rootfs"]["diff_ids"].as_array().unwrap().len(), 3);
    assert_eq!(cfg["config"]["Entrypoint"][0], "/app");
    assert!(
        cfg["config"]["Cmd"].is_null(),
        "ENTRYPOINT clears the base's CMD"
    );
    let bundle = t.path().join("bundle2");
    run(&mut cmd(
        "umoci",
        &[
            "unpack",
            "--rootless",
            "--image",
            &format!("{}:latest", s(&out)),
            s(&bundle),
        ],
    ));
    assert!(bundle.join("rootfs/bin/busybox").exists());
    assert_eq!(
        std::fs::read_to_string(bundle.join("rootfs/etc/second")).unwrap(),
        "second\n"
    );
    assert!(bundle.join("rootfs/app").exists());
}
