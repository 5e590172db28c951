//! Integration tests of the sandbox with real namespaces, overlayfs and a busybox root.
//!
//! They pass as root (how CI runs them) and as an unprivileged user with subordinate
//! id ranges: `unprivileged_user_runs_the_suite` re-runs the portable tests as the
//! `hoisttest` user through `runuser` when that user exists (see
//! `tests/run-unprivileged.sh`, which creates it).

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use hoist_image::layer::{LayerDescriptor, MtimePolicy, WriteOptions};
use hoist_sandbox::{
    CacheSharing, ExitStatus, MountSpec, Network, OutputStream, RunSpec, Sandbox, SandboxConfig,
    SecretSource,
};

const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn helper_exe() -> PathBuf {
    // Under `run-unprivileged.sh` the binaries are copied next to each other.
    if let Ok(p) = std::env::var("HOIST_SANDBOX_HELPER") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_BIN_EXE_hoist-sandbox-helper"))
}

/// Copy a program that will be executed, in a child process: a write descriptor held by
/// this (multi-threaded) test process could leak into a concurrently forked child and make
/// the exec fail with "Text file busy" (ETXTBSY).
fn copy_executable(src: &Path, dst: &Path) {
    let st = std::process::Command::new("cp")
        .arg(src)
        .arg(dst)
        .status()
        .unwrap();
    assert!(st.success(), "cp {} {}", src.display(), dst.display());
}

/// Build a minimal root file system from the static busybox: one symlink per applet,
/// `/etc/passwd` and `/etc/group`.
fn busybox_rootfs(dir: &Path) {
    for d in [
        "bin", "sbin", "usr/bin", "usr/sbin", "etc", "tmp", "root", "var", "home", "dev", "proc",
        "sys",
    ] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::set_permissions(dir.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    copy_executable(Path::new("/bin/busybox"), &dir.join("bin/busybox"));
    std::fs::set_permissions(
        dir.join("bin/busybox"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let out = std::process::Command::new("/bin/busybox")
        .arg("--list-full")
        .output()
        .expect("busybox-static is installed");
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let p = dir.join(line);
        if line == "bin/busybox" || p.exists() || std::fs::symlink_metadata(&p).is_ok() {
            continue;
        }
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink("/bin/busybox", &p).unwrap();
    }
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n\
         nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("etc/group"),
        "root:x:0:\nwheel:x:10:user\nuser:x:1000:\nnogroup:x:65534:\n",
    )
    .unwrap();
}

struct Env {
    tmp: tempfile::TempDir,
    sb: Sandbox,
    base: PathBuf,
}

impl Drop for Env {
    fn drop(&mut self) {
        // Files made inside the sandbox may belong to subordinate ids: remove them
        // through the sandbox (inside its user namespace), as the engine must.
        if let Err(e) = self.sb.remove_tree(self.tmp.path()) {
            eprintln!("could not remove {}: {e}", self.tmp.path().display());
        }
    }
}

fn setup() -> Env {
    let mut b = tempfile::Builder::new();
    b.prefix("hoist-sbtest-");
    let tmp = match std::env::var_os("HOIST_TEST_TMP") {
        Some(dir) => b.tempdir_in(dir),
        None => b.tempdir(),
    }
    .unwrap();
    let base = tmp.path().join("base");
    busybox_rootfs(&base);
    let sb = Sandbox::new(SandboxConfig {
        state_dir: tmp.path().join("state"),
        helper_exe: helper_exe(),
    })
    .unwrap();
    Env { tmp, sb, base }
}

struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    lines: Vec<(OutputStream, String)>,
    upper: PathBuf,
}

impl Env {
    fn spec(&self, script: &str) -> RunSpec {
        let dirs = self.sb.create_run_dirs().unwrap();
        let mut s = RunSpec::new(
            vec![self.base.clone()],
            dirs.upper,
            dirs.work,
            vec!["/bin/sh".into(), "-c".into(), script.into()],
        );
        s.env = vec![PATH.into(), "HOME=/root".into()];
        s
    }

    fn run(&self, spec: &RunSpec) -> Output {
        let mut stdout = String::new();
        let mut stderr = String::new();
        let mut lines = Vec::new();
        let status = self
            .sb
            .run(spec, &mut |s, l| {
                let l = String::from_utf8_lossy(l).to_string();
                match s {
                    OutputStream::Stdout => stdout.push_str(&l),
                    OutputStream::Stderr => stderr.push_str(&l),
                }
                lines.push((s, l));
            })
            .unwrap();
        Output {
            status,
            stdout,
            stderr,
            lines,
            upper: spec.upper_dir.clone(),
        }
    }

    fn sh(&self, script: &str) -> Output {
        self.run(&self.spec(script))
    }

    fn layer(&self, upper: &Path) -> (LayerDescriptor, BTreeMap<String, TarEntry>) {
        let blobs = self.tmp.path().join("blobs");
        let opts = WriteOptions {
            mtime: MtimePolicy::Preserve,
            source_date_epoch: Some(1_000_000),
            ..Default::default()
        };
        let d = self.sb.diff_layer(upper, &blobs, &opts).unwrap();
        let entries = read_layer(&blobs.join("sha256").join(d.digest.hex()));
        (d, entries)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct TarEntry {
    kind: u8,
    uid: u64,
    gid: u64,
    mode: u32,
    link: Option<String>,
    data: Vec<u8>,
    mtime: u64,
    xattrs: BTreeMap<String, Vec<u8>>,
}

fn read_layer(blob: &Path) -> BTreeMap<String, TarEntry> {
    let f = std::fs::File::open(blob).unwrap();
    let mut a = tar::Archive::new(flate2::read::MultiGzDecoder::new(f));
    let mut out = BTreeMap::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().to_string();
        let h = e.header().clone();
        let mut xattrs = BTreeMap::new();
        if let Some(pax) = e.pax_extensions().unwrap() {
            for x in pax {
                let x = x.unwrap();
                if let Some(k) = x.key().unwrap().strip_prefix("SCHILY.xattr.") {
                    xattrs.insert(k.to_string(), x.value_bytes().to_vec());
                }
            }
        }
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.insert(
            path.trim_end_matches('/').to_string(),
            TarEntry {
                kind: h.entry_type().as_byte(),
                uid: h.uid().unwrap(),
                gid: h.gid().unwrap(),
                mode: h.mode().unwrap(),
                link: h
                    .link_name()
                    .unwrap()
                    .map(|l| l.to_string_lossy().to_string()),
                data,
                mtime: h.mtime().unwrap(),
                xattrs,
            },
        );
    }
    out
}

fn is_root() -> bool {
    hoist_sandbox::capabilities().is_root
}

// ---------------------------------------------------------------------------------
// Portable tests: run as root and (through the runner below) as an unprivileged user.
// ---------------------------------------------------------------------------------

#[test]
fn output_is_streamed_by_line_and_exit_code_reported() {
    let env = setup();
    let o = env.sh("echo one; echo two >&2; printf 'three\\nfour'; exit 3");
    assert_eq!(o.status.code, Some(3));
    assert!(!o.status.success());
    assert_eq!(o.stdout, "one\nthree\nfour");
    assert_eq!(o.stderr, "two\n");
    assert!(o
        .lines
        .contains(&(OutputStream::Stdout, "three\n".to_string())));
    assert!(o
        .lines
        .contains(&(OutputStream::Stdout, "four".to_string())));
    let o = env.sh("kill -9 $$");
    assert_eq!(o.status.signal, Some(9));
    assert_eq!(o.status.code, None);
}

#[test]
fn sandbox_cannot_see_host_files_processes_or_credentials() {
    let env = setup();
    let marker = env.tmp.path().join("host-secret");
    std::fs::write(&marker, "secret").unwrap();
    let state = env.sb.config().state_dir.clone();
    let script = format!(
        "test -e {m} && echo SEES_MARKER; test -e {s} && echo SEES_STATE; \
         test -e /work && echo SEES_WORK; ls /; echo pid=$$; \
         ls /proc | grep -c '^[0-9]'; env; echo \
         cat /proc/1/environ | tr '\\0' '\\n'; hostname",
        m = marker.display(),
        s = state.display()
    );
    let o = env.sh(&script);
    assert!(o.status.success(), "{}", o.stderr);
    assert!(!o.stdout.contains("SEES_"), "{}", o.stdout);
    // The shell is pid 2 (after the sandbox's init), and only a handful of pids exist.
    assert!(o.stdout.contains("pid=2\n"), "{}", o.stdout);
    let npids: usize = o
        .stdout
        .lines()
        .find_map(|l| l.parse().ok())
        .expect("pid count");
    assert!(npids <= 4, "{npids} processes visible:\n{}", o.stdout);
    let host_pid = std::process::id();
    let o2 = env.sh(&format!(
        "test -e /proc/{host_pid} && echo SEES_HOST_PID; true"
    ));
    assert!(!o2.stdout.contains("SEES_HOST_PID"));
    // Nothing of the test's environment (CARGO_*, the host PATH, ...) leaks in.
    assert!(!o.stdout.contains("CARGO"), "{}", o.stdout);
    assert!(o.stdout.contains("HOME=/root"));
    // Only stdin/stdout/stderr are open in the command (ls adds its own fd 3).
    let mut fds = env.spec("");
    fds.argv = vec!["/bin/ls".into(), "/proc/self/fd".into()];
    assert_eq!(env.run(&fds).stdout, "0\n1\n2\n3\n");
    assert!(o.stdout.trim_end().ends_with("hoist"));
    // The root listing is the image's.
    for d in ["bin", "etc", "proc", "dev", "tmp"] {
        assert!(
            o.stdout.lines().any(|l| l == d),
            "{d} missing: {}",
            o.stdout
        );
    }
    assert!(!o.stdout.lines().any(|l| l == "work" || l == "boot"));
}

#[test]
fn dev_proc_and_etc_files_are_set_up() {
    let env = setup();
    let mut spec = env.spec(
        "echo x > /dev/null && head -c 4 /dev/zero | wc -c && head -c 4 /dev/urandom | wc -c \
         && ls /dev/pts/ptmx && test -d /dev/shm && cat /etc/hostname && cat /etc/hosts \
         && test -e /proc/self/status && echo ok",
    );
    spec.hostname = "builder".into();
    spec.extra_hosts = vec![("db.local".into(), "10.1.2.3".into())];
    let o = env.run(&spec);
    assert!(o.status.success(), "{}", o.stderr);
    assert!(o.stdout.contains("builder\n"));
    assert!(o.stdout.contains("10.1.2.3\tdb.local"));
    assert!(o.stdout.ends_with("ok\n"));
    // The mount points made for /dev, /proc and /etc/{hosts,...} leave no trace.
    let (_, entries) = env.layer(&o.upper);
    assert!(entries.is_empty(), "{entries:#?}");
}

#[test]
fn user_groups_workdir_and_env() {
    let env = setup();
    let mut spec = env.spec("id -u; id -g; id -G; pwd; echo $FOO; touch f; ls -n f");
    spec.uid = 1000;
    spec.gid = 1000;
    spec.groups = vec![10];
    spec.cwd = "/home/user/work/dir".into();
    spec.env.push("FOO=bar baz".into());
    let o = env.run(&spec);
    assert!(o.status.success(), "{}", o.stderr);
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(
        &lines[..5],
        &["1000", "1000", "1000 10", "/home/user/work/dir", "bar baz"]
    );
    assert!(
        lines[5].contains(" 1000 ") && lines[5].contains("1000"),
        "{}",
        lines[5]
    );
    let (_, entries) = env.layer(&o.upper);
    let f = &entries["home/user/work/dir/f"];
    assert_eq!((f.uid, f.gid), (1000, 1000));
    // The missing parts of the working directory belong to the user.
    assert_eq!(entries["home/user/work"].uid, 1000);
    assert_eq!(entries["home"].uid, 0);
}

#[test]
fn missing_executable_is_an_error() {
    let env = setup();
    let mut spec = env.spec("");
    spec.argv = vec!["no-such-program".into()];
    let err = env.sb.run(&spec, &mut |_, _| {}).unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");
}

#[test]
fn layer_diff_has_changes_whiteouts_opaque_dirs_hardlinks_and_container_owners() {
    let env = setup();
    hoist_sandbox::fork::lsetxattr(&env.base.join("etc/group"), b"user.test", b"yes").unwrap();
    let o = env.sh(
        "echo hi > /new && chown 1:2 /new && ln /new /new2 && rm /bin/ls && mkdir -p /etc/x \
         && rm -rf /root && mkdir /root && touch /root/f && echo v >> /etc/passwd \
         && chmod 600 /etc/group",
    );
    assert!(o.status.success(), "{}", o.stderr);
    let (d, e) = env.layer(&o.upper);
    assert!(d.size > 0);
    let names: Vec<&str> = e.keys().map(|s| s.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "bin",
            "bin/.wh.ls",
            "etc",
            "etc/group",
            "etc/passwd",
            "etc/x",
            "new",
            "new2",
            "root",
            "root/.wh..wh..opq",
            "root/f"
        ],
        "{e:#?}"
    );
    // Owners are the container's ids, whoever runs hoist.
    assert_eq!((e["new"].uid, e["new"].gid), (1, 2));
    assert_eq!((e["etc/passwd"].uid, e["root/f"].uid), (0, 0));
    assert_eq!(e["new"].data, b"hi\n");
    assert_eq!(e["new2"].kind, b'1');
    assert_eq!(e["new2"].link.as_deref(), Some("new"));
    assert!(String::from_utf8_lossy(&e["etc/passwd"].data).ends_with("v\n"));
    // xattrs survive copy-up; overlay's own are not written.
    assert_eq!(e["etc/group"].mode & 0o7777, 0o600);
    assert_eq!(
        e["etc/group"].xattrs.get("user.test").map(|v| v.as_slice()),
        Some(&b"yes"[..])
    );
    assert!(e
        .values()
        .all(|x| x.xattrs.keys().all(|k| !k.contains("overlay"))));
    // mtimes are clamped to SOURCE_DATE_EPOCH.
    assert!(e.values().all(|x| x.mtime <= 1_000_000));
}

#[test]
fn a_trivial_run_leaves_an_empty_layer_and_no_mounts_or_processes() {
    let env = setup();
    // A duration unique to this test process, so concurrent runs do not see each other.
    let secs = 200_000 + std::process::id();
    let o = env.sh(&format!("sleep {secs} & sleep {secs} & true"));
    assert!(o.status.success());
    let (_, e) = env.layer(&o.upper);
    assert!(e.is_empty(), "{e:#?}");
    // The background sleeps died with the pid namespace.
    let mut sleeping = 0;
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(c) = std::fs::read(p.path().join("cmdline")) {
            if c == format!("sleep\0{secs}\0").as_bytes() {
                sleeping += 1;
            }
        }
    }
    assert_eq!(sleeping, 0, "background processes survived the RUN");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(env.tmp.path().to_str().unwrap()));
    let run_base = o.upper.parent().unwrap().to_path_buf();
    env.sb.remove_tree(&run_base).unwrap();
    assert!(!run_base.exists());
}

#[test]
fn run_mounts_bind_tmpfs_secrets_cache_and_ssh() {
    let env = setup();
    let ctx = env.tmp.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("input.txt"), "from context\n").unwrap();
    let cache = env.tmp.path().join("cache");
    let sock_path = env.tmp.path().join("agent.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
    let mut spec = env.spec(
        "cat /ctx/input.txt; touch /ctx/x 2>/dev/null && echo CTX_WRITABLE; \
         echo t > /scratch/t && cat /scratch/t; cat /run/secrets/token; echo; \
         stat -c %a /run/secrets/token; echo env=$API_KEY; \
         echo $(cat /var/cache/app/count 2>/dev/null)x > /var/cache/app/count; \
         test -S /ssh/agent && echo sock=$SSH_AUTH_SOCK; echo done",
    );
    spec.mounts = vec![
        MountSpec::Bind {
            src: ctx.clone(),
            target: "/ctx".into(),
            readonly: true,
        },
        MountSpec::Tmpfs {
            target: "/scratch".into(),
            size: Some(1 << 20),
        },
        MountSpec::SecretFile {
            source: SecretSource::Bytes(b"hunter2".to_vec()),
            target: "/run/secrets/token".into(),
            mode: 0o400,
            uid: 0,
            gid: 0,
        },
        MountSpec::SecretEnv {
            name: "API_KEY".into(),
            value: "k-123".into(),
        },
        MountSpec::Cache {
            src: cache.clone(),
            target: "/var/cache/app".into(),
            sharing: CacheSharing::Locked,
            readonly: false,
            owner: None,
        },
        MountSpec::Ssh {
            sock: sock_path.clone(),
            target: "/ssh/agent".into(),
        },
    ];
    let o = env.run(&spec);
    assert!(o.status.success(), "{}", o.stderr);
    assert!(o.stdout.contains("from context\n"));
    assert!(!o.stdout.contains("CTX_WRITABLE"));
    assert!(
        o.stdout.contains("t\nhunter2\n400\nenv=k-123\n"),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains("sock=/ssh/agent\n"), "{}", o.stdout);
    assert!(o.stdout.ends_with("done\n"));
    assert!(!ctx.join("x").exists());
    // The cache persists across runs.
    assert_eq!(std::fs::read_to_string(cache.join("count")).unwrap(), "x\n");
    let o2 = env.run(&RunSpec {
        upper_dir: env.sb.create_run_dirs().unwrap().upper,
        work_dir: env.sb.create_run_dirs().unwrap().work,
        ..spec.clone()
    });
    assert!(o2.status.success(), "{}", o2.stderr);
    assert_eq!(
        std::fs::read_to_string(cache.join("count")).unwrap(),
        "xx\n"
    );
    // Neither the secret nor any mount point is in the layer.
    let (_, e) = env.layer(&o.upper);
    assert!(e.is_empty(), "{e:#?}");
    let all = walk_bytes(&o.upper);
    assert!(!all.windows(7).any(|w| w == b"hunter2"));
}

fn walk_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let m = e.metadata().unwrap();
        if m.is_dir() {
            out.extend(walk_bytes(&e.path()));
        } else if m.is_file() {
            out.extend(std::fs::read(e.path()).unwrap_or_default());
        }
    }
    out
}

#[test]
fn private_cache_in_use_gets_a_fresh_instance() {
    let env = setup();
    let cache = env.tmp.path().join("pcache");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::write(cache.join("mark"), "m").unwrap();
    let mut spec = env.spec("ls /c");
    spec.mounts = vec![MountSpec::Cache {
        src: cache.clone(),
        target: "/c".into(),
        sharing: CacheSharing::Private,
        readonly: false,
        owner: None,
    }];
    assert_eq!(env.run(&spec).stdout, "mark\n");
    // Hold the lock as another build would: the run gets an empty instance.
    let f = std::fs::File::open(&cache).unwrap();
    hoist_sandbox::fork::flock(std::os::fd::AsRawFd::as_raw_fd(&f), true, false).unwrap();
    let mut spec2 = env.spec("ls /c | wc -l");
    spec2.mounts = spec.mounts.clone();
    assert_eq!(env.run(&spec2).stdout.trim(), "0");
}

#[test]
fn network_none_has_only_loopback() {
    let env = setup();
    let mut spec =
        env.spec("ip -o link show | cut -d: -f2; ip -o addr show lo | grep -c 127.0.0.1");
    spec.network = Network::None;
    let o = env.run(&spec);
    assert!(o.status.success(), "{}", o.stderr);
    let ifaces: Vec<&str> = o.stdout.lines().map(|l| l.trim()).collect();
    assert_eq!(ifaces, vec!["lo", "1"], "{}", o.stdout);
    let mut up = env.spec("ip -o link show lo");
    up.network = Network::None;
    assert!(env.run(&up).stdout.contains("UP"));
}

#[test]
fn unpacked_layers_stack_with_whiteouts_and_opaque_dirs() {
    use hoist_image::layer::{write_layer_blob, Entry};
    let env = setup();
    // A layer that deletes /bin/ls, makes /etc opaque with one file, and adds /opt/a.
    let blobs = env.tmp.path().join("in-blobs");
    let mut entries = vec![
        Entry::dir("bin"),
        Entry::file_bytes("bin/.wh.ls", Vec::new()),
        Entry::dir("etc"),
        Entry::file_bytes("etc/.wh..wh..opq", Vec::new()),
        Entry::file_bytes("etc/only", b"o\n".to_vec()),
        Entry::dir("opt"),
        Entry::file_bytes("opt/a", b"a\n".to_vec()),
    ];
    let mut owned = Entry::file_bytes("opt/owned", b"x".to_vec());
    owned.uid = 7;
    owned.gid = 8;
    entries.push(owned);
    let opts = WriteOptions {
        ownership: hoist_image::layer::Ownership::Preserve,
        ..Default::default()
    };
    let d = write_layer_blob(&blobs, entries, &opts).unwrap();
    let lower = env.tmp.path().join("layer1");
    env.sb
        .unpack_layer(
            &blobs.join("sha256").join(d.digest.hex()),
            &d.media_type,
            &lower,
            &hoist_sandbox::UnpackCheck {
                index: Some(0),
                diff_id: Some(d.diff_id.clone()),
                max_size: None,
            },
        )
        .unwrap();
    let dirs = env.sb.create_run_dirs().unwrap();
    let mut spec = RunSpec::new(
        vec![env.base.clone(), lower.clone()],
        dirs.upper,
        dirs.work,
        vec![
            "/bin/busybox".into(),
            "sh".into(),
            "-c".into(),
            "test -e /bin/ls && echo HAS_LS; ls /etc; cat /opt/a; stat -c %u:%g /opt/owned".into(),
        ],
    );
    spec.env = vec![PATH.into()];
    let o = env.run(&spec);
    assert!(o.status.success(), "{}", o.stderr);
    assert_eq!(o.stdout, "hostname\nhosts\nonly\nresolv.conf\na\n7:8\n");
    env.sb.remove_tree(&lower).unwrap();
    assert!(!lower.exists());
}

#[test]
fn snapshot_differ_gives_the_same_layer_as_overlay() {
    let mut env = setup();
    hoist_sandbox::fork::lsetxattr(&env.base.join("etc/group"), b"user.test", b"yes").unwrap();
    let script =
        "chmod 600 /etc/group && echo hi > /new && chown 1:2 /new && ln /new /new2 && rm /bin/ls \
                  && mkdir -p /etc/x/y && rm -rf /root && mkdir /root && touch /root/f \
                  && echo v >> /etc/passwd && chmod 700 /home && rm -rf /var \
                  && ln -s /new /usr/link && mkdir /tmp/t && rmdir /tmp/t";
    assert!(env.sb.uses_overlay());
    let a = env.sh(script);
    assert!(a.status.success(), "{}", a.stderr);
    env.sb.use_snapshot_differ(true);
    assert!(!env.sb.uses_overlay());
    let b = env.sh(script);
    assert!(b.status.success(), "{}", b.stderr);
    let (da, ea) = env.layer(&a.upper);
    let (db, eb) = env.layer(&b.upper);
    assert_eq!(ea, eb);
    assert_eq!(da.diff_id, db.diff_id);
    assert_eq!(da.digest, db.digest);
    assert!(
        ea.contains_key(".wh.var") && ea.contains_key("root/.wh..wh..opq"),
        "{ea:#?}"
    );
}

#[test]
fn many_lower_dirs_with_long_odd_paths() {
    let env = setup();
    let mut lowers = vec![env.base.clone()];
    for i in 0..150 {
        let d = env
            .tmp
            .path()
            .join("layers:with,odd chars")
            .join(format!("{i:0>64}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(format!("f{i}")), format!("{i}\n")).unwrap();
        // A later layer overrides an earlier one.
        std::fs::write(d.join("top"), format!("{i}\n")).unwrap();
        lowers.push(d);
    }
    let mut spec = env.spec("cat /f0 /f149 /top");
    spec.lower_dirs = lowers;
    let o = env.run(&spec);
    assert!(o.status.success(), "{}", o.stderr);
    assert_eq!(o.stdout, "0\n149\n149\n");
}

#[test]
fn another_stage_is_mounted_read_only_from_its_layers() {
    let env = setup();
    let l1 = env.tmp.path().join("stage-l1");
    let l2 = env.tmp.path().join("stage-l2");
    std::fs::create_dir_all(l1.join("out")).unwrap();
    std::fs::create_dir_all(l2.join("out")).unwrap();
    std::fs::write(l1.join("out/a"), "a1\n").unwrap();
    std::fs::write(l1.join("out/b"), "b1\n").unwrap();
    std::fs::write(l2.join("out/a"), "a2\n").unwrap();
    let mut spec = env.spec(
        "cat /from/out/a /from/out/b /one/out/b; touch /from/x 2>/dev/null || echo RO; \
         touch /one/x 2>/dev/null || echo RO",
    );
    spec.mounts = vec![
        MountSpec::Layers {
            lowers: vec![l1.clone(), l2.clone()],
            target: "/from".into(),
        },
        MountSpec::Layers {
            lowers: vec![l1.clone()],
            target: "/one".into(),
        },
    ];
    let o = env.run(&spec);
    assert_eq!(o.stdout, "a2\nb1\nb1\nRO\nRO\n", "{}", o.stderr);
    let (_, e) = env.layer(&o.upper);
    assert!(e.is_empty(), "{e:#?}");
}

#[test]
fn stale_state_from_killed_builds_is_removed() {
    let env = setup();
    let state = env.sb.config().state_dir.clone();
    // A run dir of a pid that cannot exist, with a mode-0 dir as overlay leaves.
    let stale = state.join("run-999999999-0");
    std::fs::create_dir_all(stale.join("work/ovl/work")).unwrap();
    std::fs::set_permissions(
        stale.join("work/ovl/work"),
        std::fs::Permissions::from_mode(0o0),
    )
    .unwrap();
    let live = env.sb.create_run_dirs().unwrap();
    let sb2 = Sandbox::new(SandboxConfig {
        state_dir: state.clone(),
        helper_exe: helper_exe(),
    })
    .unwrap();
    assert!(!stale.exists());
    assert!(live.upper.exists(), "a live build's dirs must stay");
    assert_eq!(sb2.remove_stale().unwrap(), 0);
}

#[test]
fn secret_from_a_host_file() {
    let env = setup();
    let src = env.tmp.path().join("secret.txt");
    std::fs::write(&src, "from-file").unwrap();
    let mut spec = env.spec("cat /run/secrets/s; stat -c '%u:%g %a' /run/secrets/s");
    spec.mounts = vec![MountSpec::SecretFile {
        source: SecretSource::Path(src),
        target: "/run/secrets/s".into(),
        mode: 0o440,
        uid: 1000,
        gid: 10,
    }];
    let o = env.run(&spec);
    assert_eq!(o.stdout, "from-file1000:10 440\n", "{}", o.stderr);
}

#[test]
fn capabilities_are_explained() {
    let c = hoist_sandbox::capabilities();
    let text = c.explain();
    assert!(text.contains(&format!("uid {}", c.uid)));
    if !c.is_root {
        assert!(text.contains("subordinate ids") || text.contains("no subordinate"));
    }
}

/// End-to-end with a real distribution: `apt-get` (which drops to the `_apt` user),
/// `useradd` and `chown`. Needs a Debian root file system and the Debian mirror:
///
/// ```sh
/// debootstrap --variant=minbase bookworm /tmp/hoist-sbdeb http://deb.debian.org/debian
/// HOIST_DEBIAN_ROOTFS=/tmp/hoist-sbdeb cargo test -p hoist-sandbox --test sandbox \
///     -- --ignored --exact debian_apt_get_and_chown --nocapture
/// ```
///
/// As root it packs the root file system as a layer, runs the steps, then runs them
/// again as `hoisttest` (when that user exists) from the same layer blob.
#[test]
#[ignore = "needs HOIST_DEBIAN_ROOTFS (a debootstrap) and the Debian mirror"]
fn debian_apt_get_and_chown() {
    use hoist_image::layer::{walk, write_layer_blob, Ownership, WalkOptions};
    let blob = match std::env::var("HOIST_DEBIAN_BLOB") {
        Ok(b) => PathBuf::from(b),
        Err(_) => {
            let rootfs = PathBuf::from(
                std::env::var("HOIST_DEBIAN_ROOTFS").expect("HOIST_DEBIAN_ROOTFS is set"),
            );
            let dir = PathBuf::from("/tmp/hoist-debian-blobs");
            let walk_opts = WalkOptions {
                include_root: false,
                ..Default::default()
            };
            let entries = walk(&rootfs, "", &walk_opts, &|_, _| true).unwrap();
            let opts = WriteOptions {
                ownership: Ownership::Preserve,
                ..Default::default()
            };
            let d = write_layer_blob(&dir, entries, &opts).unwrap();
            let blob = dir.join("sha256").join(d.digest.hex());
            for p in [dir.clone(), dir.join("sha256")] {
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
            std::fs::set_permissions(&blob, std::fs::Permissions::from_mode(0o644)).unwrap();
            blob
        }
    };
    let env = setup();
    let lower = env.tmp.path().join("debian");
    let t = std::time::Instant::now();
    env.sb
        .unpack_layer(
            &blob,
            hoist_image::media_type::OCI_LAYER_GZIP,
            &lower,
            &Default::default(),
        )
        .unwrap();
    println!("unpacked the Debian layer in {:?}", t.elapsed());
    let mut spec = env.spec(
        "apt-get update -qq && apt-get install -y -qq --no-install-recommends hello >/dev/null \
         && hello && useradd -m bob && touch /home/bob/f && chown bob:bob /home/bob/f \
         && ls -ln /home/bob/f && su bob -c 'id -u'",
    );
    spec.lower_dirs = vec![lower.clone()];
    spec.env.push("DEBIAN_FRONTEND=noninteractive".into());
    let t = std::time::Instant::now();
    let o = env.run(&spec);
    println!(
        "as uid {} ({:?}) in {:?}:\n{}\n{}",
        env.sb.capabilities().uid,
        env.sb.id_mode(),
        t.elapsed(),
        o.stdout,
        o.stderr
    );
    assert!(o.status.success(), "{}", o.stderr);
    assert!(o.stdout.contains("Hello, world!"));
    assert!(o.stdout.contains(" 1000 1000 "), "{}", o.stdout);
    let (d, e) = env.layer(&o.upper);
    println!("layer {} ({} entries, {} bytes)", d.digest, e.len(), d.size);
    assert!(e.contains_key("usr/bin/hello"));
    assert_eq!((e["home/bob/f"].uid, e["home/bob/f"].gid), (1000, 1000));
    env.sb.remove_tree(&lower).unwrap();
    if is_root() && user_exists("hoisttest") {
        let out = std::process::Command::new("runuser")
            .args(["-u", "hoisttest", "--", "env", "TMPDIR=/tmp"])
            .arg(format!("HOIST_DEBIAN_BLOB={}", blob.display()))
            .arg(format!("HOIST_SANDBOX_HELPER={}", helper_exe().display()))
            .arg(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "debian_apt_get_and_chown",
                "--nocapture",
            ])
            .current_dir("/tmp")
            .output()
            .unwrap();
        println!("{}", String::from_utf8_lossy(&out.stdout));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

// ---------------------------------------------------------------------------------
// Nested user namespaces: hoist as root of a container's namespace (Concourse, rootless
// Podman, Kubernetes), and a namespace where no user namespace may be created.
// ---------------------------------------------------------------------------------

/// Copies of the test binary and the helper in a world-readable directory, so that a
/// child running as another host uid (a subordinate id) can execute them.
fn public_binaries() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("hoist-sbnested-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let test_bin = dir.path().join("sandbox-tests");
    let helper = dir.path().join("hoist-sandbox-helper");
    copy_executable(&std::env::current_exe().unwrap(), &test_bin);
    copy_executable(&helper_exe(), &helper);
    for p in [&test_bin, &helper] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    (dir, test_bin, helper)
}

fn ns_of(pid: &str) -> PathBuf {
    std::fs::read_link(format!("/proc/{pid}/ns/user")).unwrap_or_default()
}

/// Run the ignored test `child` of this binary as root of a new user namespace with
/// the given map lines (`inside outside count`): as root they are written directly,
/// otherwise with `newuidmap`/`newgidmap` (within the user's ranges).
/// A holder process creates the namespace (`unshare --user`, waiting on its stdin);
/// once it is mapped, the test enters it with `nsenter --user`, which makes it uid 0
/// there with its capabilities.
fn run_as_root_of_small_userns(uid_map: &[[u32; 3]], gid_map: &[[u32; 3]], child: &str) -> String {
    let (_dir, test_bin, helper) = public_binaries();
    let mut holder = std::process::Command::new("unshare")
        .args(["--user", "--", "/bin/sh", "-c", "read go"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("unshare (util-linux)");
    let pid = holder.id().to_string();
    let start = std::time::Instant::now();
    while ns_of(&pid) == ns_of("self") {
        assert!(
            start.elapsed().as_secs() < 10,
            "unshare --user did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    for (file, tool, map) in [
        ("uid_map", "newuidmap", uid_map),
        ("gid_map", "newgidmap", gid_map),
    ] {
        let nums: Vec<String> = map.iter().flatten().map(|n| n.to_string()).collect();
        if is_root() {
            let text: String = nums.chunks(3).map(|l| l.join(" ") + "\n").collect();
            std::fs::write(format!("/proc/{pid}/{file}"), text).unwrap();
        } else {
            let st = std::process::Command::new(tool)
                .arg(&pid)
                .args(&nums)
                .status()
                .unwrap();
            assert!(st.success(), "{tool} {nums:?} failed");
        }
    }
    // The highest id that exists in the namespace.
    let max = uid_map.iter().map(|l| l[0] + l[2] - 1).max().unwrap();
    let out = std::process::Command::new("nsenter")
        .args(["--user", "--target", &pid, "--"])
        .arg(&test_bin)
        .args([
            "--exact",
            child,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("HOIST_SANDBOX_HELPER", &helper)
        .env("HOIST_NESTED_CHILD", max.to_string())
        .env("TMPDIR", "/tmp")
        .current_dir("/tmp")
        .output()
        .expect("nsenter (util-linux)");
    drop(holder.stdin.take());
    holder.wait().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}\n{stderr}");
    assert!(
        out.status.success() && stdout.contains("test result: ok. 1 passed"),
        "nested {child} failed:\n{stdout}\n{stderr}"
    );
    stdout
}

/// hoist as root of a user namespace that maps only 65536 ids: the sandbox maps the
/// identity of those ids, where `0 0 4294967295` would fail with EPERM. As root the
/// namespace is `0 100000 65536` (Concourse, Kubernetes, rootless Podman); as an
/// unprivileged user it is what hoist's own sandbox gives a nested hoist:
/// `0 UID 1` + `1 SUBUID 65536`.
#[test]
fn root_of_a_userns_with_65536_ids() {
    let c = hoist_sandbox::capabilities();
    let (uid_map, gid_map) = if c.is_root {
        (vec![[0, 100_000, 65536]], vec![[0, 100_000, 65536]])
    } else {
        let big =
            |r: &[hoist_sandbox::IdRange]| r.iter().find(|r| r.count >= 65536).map(|r| r.start);
        match (big(&c.subuid), big(&c.subgid), &c.newuidmap, &c.newgidmap) {
            (Some(u), Some(g), Some(_), Some(_)) if c.userns => (
                vec![[0, c.uid, 1], [1, u, 65536]],
                vec![[0, c.gid, 1], [1, g, 65536]],
            ),
            _ => {
                println!("SKIPPED: needs root or a subordinate range of 65536 ids and newuidmap");
                return;
            }
        }
    };
    let out = run_as_root_of_small_userns(&uid_map, &gid_map, "child_root_of_a_small_userns");
    assert!(out.contains("nested sandbox ok"), "{out}");
}

/// Not run by itself: the child side of `root_of_a_userns_with_65536_ids`.
#[test]
#[ignore = "started by root_of_a_userns_with_65536_ids"]
fn child_root_of_a_small_userns() {
    let Some(max) = std::env::var("HOIST_NESTED_CHILD")
        .ok()
        .and_then(|m| m.parse::<u32>().ok())
    else {
        return;
    };
    let c = hoist_sandbox::capabilities();
    assert!(c.is_root && c.userns, "{}", c.explain());
    // One range per line of this namespace's map, together 0..=max.
    for own in [&c.own_uids, &c.own_gids] {
        assert_eq!(own[0].start, 0, "{own:?}");
        assert!(own.windows(2).all(|w| w[0].end() == u64::from(w[1].start)));
        assert_eq!(
            own.iter().map(|r| u64::from(r.count)).sum::<u64>(),
            u64::from(max) + 1
        );
    }
    let env = setup();
    let mode = env.sb.id_mode();
    assert!(mode.is_root(), "{mode:?}");
    assert_eq!((mode.max_uid(), mode.max_gid()), (Some(max), Some(max)));
    let range = format!("uids 0-{max}");
    assert!(env.sb.capabilities().explain().contains(&range));
    let o = env.sh(&format!(
        "cat /proc/self/uid_map; echo --; cat /proc/self/gid_map; echo --; touch /a /b /c; \
         chown {max}:{max} /a && chown 1000:10 /b && echo CHOWNED; \
         chown {} /c 2>/dev/null || echo NO_NEXT",
        max + 1
    ));
    assert!(o.status.success(), "{}", o.stderr);
    // The sandbox's maps are the identity of this namespace's lines.
    let maps: Vec<Vec<Vec<u32>>> = o
        .stdout
        .split("--\n")
        .take(2)
        .map(|m| {
            m.lines()
                .map(|l| l.split_whitespace().map(|n| n.parse().unwrap()).collect())
                .collect()
        })
        .collect();
    for (map, own) in maps.iter().zip([&c.own_uids, &c.own_gids]) {
        let want: Vec<Vec<u32>> = own
            .iter()
            .map(|r| vec![r.start, r.start, r.count])
            .collect();
        assert_eq!(map, &want, "{}", o.stdout);
    }
    assert!(o.stdout.contains("CHOWNED\nNO_NEXT\n"), "{}", o.stdout);
    let (_, e) = env.layer(&o.upper);
    assert_eq!((e["a"].uid, e["a"].gid), (max.into(), max.into()));
    assert_eq!((e["b"].uid, e["b"].gid), (1000, 10));
    assert_eq!((e["c"].uid, e["c"].gid), (0, 0));
    // The highest id works as a RUN user; the next one is refused up front.
    let mut spec = env.spec("id -u; id -g");
    spec.uid = max;
    spec.gid = max;
    assert_eq!(env.run(&spec).stdout, format!("{max}\n{max}\n"));
    let mut spec = env.spec("true");
    spec.uid = max + 1;
    let err = env.sb.run(&spec, &mut |_, _| {}).unwrap_err().to_string();
    assert!(err.contains("does not exist in this sandbox"), "{err}");
    assert!(err.contains(&range), "{err}");
    unpack_owner_outside_the_sandbox(&env);
    println!("nested sandbox ok");
}

/// Unpack a layer with a file of uid 70000: it keeps its owner where that id exists,
/// and otherwise fails saying which ids exist, whatever the id mode.
fn unpack_owner_outside_the_sandbox(env: &Env) {
    use hoist_image::layer::{write_layer_blob, Entry, Ownership};
    let blobs = env.tmp.path().join("owner-blobs");
    let mut f = Entry::file_bytes("far", b"x".to_vec());
    f.uid = 70000;
    f.gid = 70000;
    let mut near = Entry::file_bytes("near", b"x".to_vec());
    near.uid = 65535;
    near.gid = 65535;
    let opts = WriteOptions {
        ownership: Ownership::Preserve,
        ..Default::default()
    };
    let near_d = write_layer_blob(&blobs, vec![near], &opts).unwrap();
    let far_d = write_layer_blob(&blobs, vec![f], &opts).unwrap();
    let blob = |d: &LayerDescriptor| blobs.join("sha256").join(d.digest.hex());
    let mode = env.sb.id_mode();
    let dest = env.tmp.path().join("owner-near");
    if mode.uid_exists(65535) && mode.gid_exists(65535) {
        env.sb
            .unpack_layer(
                &blob(&near_d),
                &near_d.media_type,
                &dest,
                &Default::default(),
            )
            .unwrap();
        let mut spec = env.spec("stat -c %u:%g /near");
        spec.lower_dirs = vec![env.base.clone(), dest.clone()];
        assert_eq!(env.run(&spec).stdout, "65535:65535\n");
    }
    let dest = env.tmp.path().join("owner-far");
    let r = env
        .sb
        .unpack_layer(&blob(&far_d), &far_d.media_type, &dest, &Default::default());
    if mode.uid_exists(70000) && mode.gid_exists(70000) {
        r.unwrap();
        // Seen from the host: 70000 itself as root; as a user with subordinate ranges,
        // the host id that container id 70000 maps to (0 is the user, 1.. the ranges).
        let host = match &mode {
            hoist_sandbox::IdMode::SubIds { subuid, .. } => {
                let mut next: u64 = 1;
                let mut host = None;
                for r in subuid.iter() {
                    if (next..next + u64::from(r.count)).contains(&70000) {
                        host = Some(u64::from(r.start) + 70000 - next);
                    }
                    next += u64::from(r.count);
                }
                host.expect("70000 is mapped") as u32
            }
            _ => 70000,
        };
        assert_eq!(
            std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(dest.join("far")).unwrap()),
            host
        );
    } else {
        let err = r.unwrap_err().to_string();
        assert!(err.contains("layer entry \"far\": chown"), "{err}");
        assert!(
            err.contains("does not exist in this sandbox (uids 0-"),
            "{err}"
        );
    }
}

#[test]
fn layer_with_an_owner_outside_the_sandbox_ids() {
    let env = setup();
    if matches!(env.sb.id_mode(), hoist_sandbox::IdMode::Single { .. }) {
        return;
    }
    unpack_owner_outside_the_sandbox(&env);
}

/// In a user namespace whose `user.max_user_namespaces` is 0 (a per-namespace sysctl
/// its root may set), the sandbox refuses to start and says why.
#[test]
fn no_user_namespaces_is_explained() {
    if !hoist_sandbox::capabilities().userns {
        println!("SKIPPED: no user namespaces at all here");
        return;
    }
    let (_dir, test_bin, helper) = public_binaries();
    let out = std::process::Command::new("unshare")
        .args(["--user", "--map-root-user", "--", "/bin/sh", "-c"])
        .arg(r#"echo 0 > /proc/sys/user/max_user_namespaces && exec "$@""#)
        .arg("sh")
        .arg(&test_bin)
        .args([
            "--exact",
            "child_without_user_namespaces",
            "--ignored",
            "--nocapture",
        ])
        .env("HOIST_SANDBOX_HELPER", &helper)
        .env("HOIST_NESTED_CHILD", "1")
        .env("TMPDIR", "/tmp")
        .current_dir("/tmp")
        .output()
        .expect("unshare (util-linux)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}\n{stderr}");
    assert!(
        out.status.success() && stdout.contains("test result: ok. 1 passed"),
        "{stdout}\n{stderr}"
    );
    assert!(stdout.contains("no-userns message ok"), "{stdout}");
}

/// Not run by itself: the child side of `no_user_namespaces_is_explained`.
#[test]
#[ignore = "started by no_user_namespaces_is_explained"]
fn child_without_user_namespaces() {
    if std::env::var_os("HOIST_NESTED_CHILD").is_none() {
        return;
    }
    assert_eq!(
        std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
            .unwrap()
            .trim(),
        "0"
    );
    let c = hoist_sandbox::capabilities();
    assert!(!c.userns);
    assert!(
        c.explain().contains(
            "user namespaces: no (unshare(CLONE_NEWUSER) failed: No space left on device"
        ),
        "{}",
        c.explain()
    );
    let tmp = tempfile::tempdir().unwrap();
    let err = Sandbox::new(SandboxConfig {
        state_dir: tmp.path().join("state"),
        helper_exe: helper_exe(),
    })
    .unwrap_err()
    .to_string();
    println!("{err}");
    for want in [
        "unshare(CLONE_NEWUSER) failed: No space left on device (os error 28)",
        "user.max_user_namespaces is 0",
        "sysctl -w user.max_user_namespaces=15000",
        "kernel.unprivileged_userns_clone=1",
        "`privileged: true`",
        "--security-opt seccomp=unconfined",
        "without RUN instructions",
    ] {
        assert!(err.contains(want), "{want:?} missing from:\n{err}");
    }
    println!("no-userns message ok");
}

// ---------------------------------------------------------------------------------
// The unprivileged runner.
// ---------------------------------------------------------------------------------

/// The tests above that must also pass as an unprivileged user.
const PORTABLE: &[&str] = &[
    "output_is_streamed_by_line_and_exit_code_reported",
    "sandbox_cannot_see_host_files_processes_or_credentials",
    "dev_proc_and_etc_files_are_set_up",
    "user_groups_workdir_and_env",
    "missing_executable_is_an_error",
    "layer_diff_has_changes_whiteouts_opaque_dirs_hardlinks_and_container_owners",
    "a_trivial_run_leaves_an_empty_layer_and_no_mounts_or_processes",
    "run_mounts_bind_tmpfs_secrets_cache_and_ssh",
    "private_cache_in_use_gets_a_fresh_instance",
    "network_none_has_only_loopback",
    "unpacked_layers_stack_with_whiteouts_and_opaque_dirs",
    "snapshot_differ_gives_the_same_layer_as_overlay",
    "capabilities_are_explained",
    "single_mapping_explains_what_does_not_work",
    "killing_hoist_kills_the_sandbox",
    "stale_state_from_killed_builds_is_removed",
    "secret_from_a_host_file",
    "many_lower_dirs_with_long_odd_paths",
    "another_stage_is_mounted_read_only_from_its_layers",
    "root_of_a_userns_with_65536_ids",
    "layer_with_an_owner_outside_the_sandbox_ids",
    "no_user_namespaces_is_explained",
];

/// The tests that must pass with the single-id fallback (no subordinate ranges).
const SINGLE: &[&str] = &[
    "output_is_streamed_by_line_and_exit_code_reported",
    "sandbox_cannot_see_host_files_processes_or_credentials",
    "missing_executable_is_an_error",
    "a_trivial_run_leaves_an_empty_layer_and_no_mounts_or_processes",
    "network_none_has_only_loopback",
    "single_mapping_explains_what_does_not_work",
    "capabilities_are_explained",
    "stale_state_from_killed_builds_is_removed",
    "no_user_namespaces_is_explained",
];

#[test]
fn single_mapping_explains_what_does_not_work() {
    let env = setup();
    let single = matches!(env.sb.id_mode(), hoist_sandbox::IdMode::Single { .. });
    // The runner sets this for the user without ranges, so the test cannot pass vacuously.
    if std::env::var("HOIST_EXPECT_SINGLE").is_ok() {
        assert!(
            single,
            "expected the single mapping: {}",
            env.sb.capabilities().explain()
        );
    }
    if !single {
        return;
    }
    let c = env.sb.capabilities();
    assert!(
        c.notes.iter().any(|n| n.contains("/etc/subuid")),
        "{:?}",
        c.notes
    );
    let o = env.sh("id -u; touch /f; chown 1:1 /f || echo CHOWN_FAILED");
    assert_eq!(o.stdout, "0\nCHOWN_FAILED\n", "{}", o.stderr);
    let mut spec = env.spec("true");
    spec.uid = 1000;
    let err = env.sb.run(&spec, &mut |_, _| {}).unwrap_err();
    assert!(err.to_string().contains("/etc/subuid"), "{err}");
}

fn user_exists(name: &str) -> bool {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd.lines().any(|l| l.starts_with(&format!("{name}:")))
}

/// Run `tests` of this binary as `user` through `runuser`; `false` when skipped.
fn run_as(user: &str, tests: &[&str], single: bool) -> bool {
    if !user_exists(user) {
        println!(
            "SKIPPED running {} tests as {user:?}: the user does not exist \
             (create it with crates/sandbox/tests/run-unprivileged.sh)",
            tests.len()
        );
        return false;
    }
    // Both binaries where the user can execute them.
    let (_dir, test_bin, helper) = public_binaries();
    let out = std::process::Command::new("runuser")
        .args(["-u", user, "--", "env"])
        .arg(format!("HOIST_SANDBOX_HELPER={}", helper.display()))
        .arg("TMPDIR=/tmp")
        .args(single.then_some("HOIST_EXPECT_SINGLE=1"))
        .arg(&test_bin)
        .arg("--exact")
        .arg("--test-threads=2")
        .args(tests)
        .current_dir("/tmp")
        .output()
        .expect("runuser");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("as {user}:\n{stdout}\n{stderr}");
    assert!(
        out.status.success(),
        "run as {user} failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(&format!("test result: ok. {} passed", tests.len())),
        "{stdout}"
    );
    true
}

#[test]
fn unprivileged_user_runs_the_suite() {
    if !is_root() {
        // Already unprivileged: the tests above are running as this user.
        return;
    }
    // With /etc/subuid and /etc/subgid ranges: everything.
    if run_as("hoisttest", PORTABLE, false) {
        println!("unprivileged suite passed as hoisttest");
    }
    // Without ranges: the single-id fallback.
    if run_as("hoisttest-nosub", SINGLE, true) {
        println!("single-mapping suite passed as hoisttest-nosub");
    }
}

/// Not run by itself: the child side of `killing_hoist_kills_the_sandbox`.
#[test]
#[ignore = "started by killing_hoist_kills_the_sandbox"]
fn child_runs_a_long_command() {
    let env = setup();
    let secs = std::env::var("HOIST_TEST_SLEEP").unwrap_or_else(|_| "1001".into());
    let o = env.sh(&format!("sleep {secs}"));
    panic!("sleep ended: {:?}", o.status);
}

fn count_sleeps(secs: u32) -> usize {
    let want = format!("sleep\0{secs}\0");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|p| std::fs::read(p.path().join("cmdline")).is_ok_and(|c| c == want.as_bytes()))
        .count()
}

#[test]
fn killing_hoist_kills_the_sandbox() {
    let secs = 300_000 + std::process::id();
    // The killed children cannot clean up: give them a directory we remove.
    let outer = tempfile::Builder::new()
        .prefix("hoist-sbkill-")
        .tempdir()
        .unwrap();
    for sig in [libc::SIGKILL, libc::SIGINT] {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_runs_a_long_command",
                "--ignored",
                "--nocapture",
            ])
            .env("HOIST_SANDBOX_HELPER", helper_exe())
            .env("HOIST_TEST_SLEEP", secs.to_string())
            .env("HOIST_TEST_TMP", outer.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        while count_sleeps(secs) == 0 {
            assert!(start.elapsed().as_secs() < 20, "the sandbox did not start");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // Ctrl-C reaches the whole foreground process group; SIGKILL only hoist.
        // SAFETY: plain kill(2) of our own child.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(child.id() as i32, sig)
        };
        child.wait().unwrap();
        let start = std::time::Instant::now();
        while count_sleeps(secs) > 0 {
            assert!(
                start.elapsed().as_secs() < 5,
                "sandboxed process survived signal {sig}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    // No mount survives; the run directories left behind are removed by the next
    // Sandbox on the same state dir.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(outer.path().to_str().unwrap()));
    for child in std::fs::read_dir(outer.path()).unwrap().flatten() {
        let state = child.path().join("state");
        let runs = |p: &Path| {
            std::fs::read_dir(p)
                .unwrap()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("run-"))
                .count()
        };
        assert_eq!(runs(&state), 1, "the killed build left its run dir");
        let sb = Sandbox::new(SandboxConfig {
            state_dir: state.clone(),
            helper_exe: helper_exe(),
        })
        .unwrap();
        assert_eq!(runs(&state), 0);
        sb.remove_tree(&child.path()).unwrap();
    }
}
