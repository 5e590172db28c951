//! What a person sees while images move: progress of long transfers (periodic lines
//! without a terminal, bars under tmux, JSON events), and which host served a pull
//! when mirrors are configured. Real registries on loopback.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use hoist_testutil::{make_layout, Registry};

/// Incompressible bytes (xorshift), so the gzip layer is as large as the data.
fn noise(n: usize) -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut v = Vec::with_capacity(n + 8);
    while v.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(n);
    v
}

/// An OCI layout with one layer of `mib` MiB of noise.
fn big_layout(dir: &Path, mib: usize) -> PathBuf {
    let data = noise(mib << 20);
    make_layout(dir, "v1", &[&[("big.bin", &data)]]).dir
}

fn stderr_of(env: &Env, args: &[&str]) -> String {
    let out = env.hoist().args(args).output().unwrap();
    assert_success(&out, &format!("hoist {}", args.join(" ")));
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn long_transfers_print_periodic_lines_without_a_terminal() {
    let reg = Registry::plain();
    let env = Env::new();
    let layout = big_layout(&env.path("big"), 24);
    let dest = format!("{}/big/app:v1", reg.addr());
    let err = stderr_of(
        &env,
        &["push", &format!("oci:{}:v1", layout.display()), &dest],
    );
    // Quarter lines of the ~24 MiB layer (noise grows a little under gzip), then
    // its summary.
    let push: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("push sha256:"))
        .collect();
    let pct = |l: &str| -> Option<u64> {
        let (_, rest) = l.rsplit_once(" (")?;
        rest.split_once("%)")?.0.parse().ok()
    };
    let quarters: Vec<u64> = push.iter().filter_map(|l| pct(l)).collect();
    for q in [25u64, 50, 75] {
        assert!(
            quarters.iter().any(|p| *p >= q && *p < q + 25),
            "no line past {q}%:\n{err}"
        );
    }
    assert!(
        push[0].contains(" MiB / ") && push[0].contains("/s ETA"),
        "{err}"
    );
    assert!(push.last().unwrap().contains(" MiB done in "), "{err}");
    assert!(
        !err.contains("\x1b["),
        "no escapes without a terminal:\n{err}"
    );

    // Pull into a fresh cache: the download is reported the same way, and the host.
    let env2 = Env::new();
    let err = stderr_of(&env2, &["pull", &dest]);
    assert!(
        err.lines()
            .any(|l| l.starts_with("pull sha256:") && l.contains("%) ")),
        "{err}"
    );
    assert!(err.contains(&format!("from {}", reg.addr())), "{err}");

    // Copy to a local archive; JSON mode gives one event per line.
    let out = env2.path("copy.tar");
    let err = stderr_of(
        &env2,
        &[
            "copy",
            "--progress",
            "json",
            &format!("oci:{}:v1", layout.display()),
            &format!("oci-archive:{}", out.display()),
        ],
    );
    let events: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "transfer" && e["direction"] == "copy"),
        "{err}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "transfer_done" && e["bytes"].as_u64() > Some(24 << 20)),
        "{err}"
    );
}

#[test]
fn a_terminal_shows_a_bar_under_tmux() {
    let reg = Registry::plain();
    let env = Env::new();
    let layout = big_layout(&env.path("big"), 48);
    let sock = env.path("tmux.sock");
    let record = env.path("screen.raw");
    let script = env.path("run.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nunset CI\nexport HOIST_CACHE_DIR={cache}\n{bin} push oci:{layout}:v1 {reg}/tty/app:v1\necho EXIT=$?\nsleep 60\n",
            cache = env.path("cache").display(),
            bin = hoist_bin().display(),
            layout = layout.display(),
            reg = reg.addr(),
        ),
    )
    .unwrap();
    let tmux = |args: &[&str]| {
        let mut c = Command::new("tmux");
        c.arg("-S").arg(&sock).args(args);
        c
    };
    run(&mut tmux(&[
        "new-session",
        "-d",
        "-x",
        "160",
        "-y",
        "40",
        "sh",
    ]));
    // Everything the program writes to the terminal, bar redraws included.
    run(&mut tmux(&[
        "pipe-pane",
        "-o",
        &format!("cat > {}", record.display()),
    ]));
    run(&mut tmux(&[
        "send-keys",
        &format!("sh {}", script.display()),
        "Enter",
    ]));
    let start = Instant::now();
    let mut screen = String::new();
    while start.elapsed() < Duration::from_secs(120) {
        screen = run(&mut tmux(&["capture-pane", "-p"]));
        if screen.contains("EXIT=") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = tmux(&["kill-server"]).output();
    assert!(screen.contains("EXIT=0"), "{screen}");
    let raw = String::from_utf8_lossy(&std::fs::read(&record).unwrap()).into_owned();
    // An indicatif bar: `push sha256:… [=====>   ] 26.00 MiB/50.62 MiB 119.79 MiB/s ETA 0s`.
    assert!(
        raw.contains("push sha256:") && raw.contains(" [=") && raw.contains("MiB/s ETA"),
        "no bar drawn:\n{raw}"
    );
    assert!(screen.contains(" MiB done in "), "{screen}");
}

/// A loopback `host:port` where nothing listens.
fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap().to_string();
    drop(l);
    a
}

#[test]
fn pulls_say_which_mirror_served_them() {
    let mirror = Registry::plain();
    let env = Env::new();
    let layout = big_layout(&env.path("small"), 1);
    let upstream = closed_port();
    stderr_of(
        &env,
        &[
            "push",
            &format!("oci:{}:v1", layout.display()),
            &format!("{}/team/app:v1", mirror.addr()),
        ],
    );
    // hosts.toml names the mirror of a registry that cannot be reached.
    let certs = env.path("certs.d");
    std::fs::create_dir_all(certs.join(&upstream)).unwrap();
    std::fs::write(
        certs.join(&upstream).join("hosts.toml"),
        format!(
            "server = \"http://{upstream}\"\n\n[host.\"http://{}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            mirror.addr()
        ),
    )
    .unwrap();
    let env2 = Env::new();
    let err = stderr_of(
        &env2,
        &[
            "pull",
            "--registry-config",
            certs.to_str().unwrap(),
            &format!("{upstream}/team/app:v1"),
        ],
    );
    assert!(
        err.contains(&format!("from mirror {}", mirror.addr())),
        "{err}"
    );
    assert!(!err.contains("retrying"), "the upstream was tried:\n{err}");

    // --registry-mirror REGISTRY=URL: a mirror without the image, the upstream has it.
    let upstream = Registry::plain();
    let empty = Registry::plain();
    stderr_of(
        &env,
        &[
            "push",
            &format!("oci:{}:v1", layout.display()),
            &format!("{}/team/app:v1", upstream.addr()),
        ],
    );
    let err = stderr_of(
        &Env::new(),
        &[
            "pull",
            "--registry-mirror",
            &format!("{}=http://{}", upstream.addr(), empty.addr()),
            &format!("{}/team/app:v1", upstream.addr()),
        ],
    );
    assert!(err.contains(&format!("from {}:", upstream.addr())), "{err}");
}
