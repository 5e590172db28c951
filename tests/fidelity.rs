//! End-to-end tests of BuildKit rules the conformance suite found hoist getting wrong,
//! each written from BuildKit's (and runc's) documented behaviour rather than from a
//! suite case: how users and groups are resolved, the group list of a RUN, cache mounts
//! with an owner, tmpfs and default mounts, runc's mount points, ARGs across stages.
//! Runs as root (CI) and as an unprivileged user.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use common::*;

/// One entry of the built file system.
#[derive(Debug, Clone)]
struct Item {
    dir: bool,
    mode: u32,
    owner: (u64, u64),
    data: String,
}

fn context(env: &Env, name: &str, dockerfile: &str, files: &[(&str, &str)]) -> PathBuf {
    let ctx = env.path(name);
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    for (p, body) in files {
        fs::write(ctx.join(p), body).unwrap();
    }
    ctx
}

fn from_busybox(alias: &str) -> String {
    format!("FROM oci:{}:latest{alias}\n", busybox_base().display())
}

/// Build `ctx` and return its final file system (`type=tar`), by path without `./`.
fn build_tree(env: &Env, ctx: &Path) -> BTreeMap<String, Item> {
    let out = ctx.with_extension("tar");
    env.ok(&[
        "build",
        "--progress",
        "plain",
        "-o",
        &format!("type=tar,dest={}", out.display()),
        ctx.to_str().unwrap(),
    ]);
    let mut ar = tar::Archive::new(fs::File::open(&out).unwrap());
    let mut tree = BTreeMap::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let path = path
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_string();
        let mut data = String::new();
        if h.entry_type().is_file() {
            e.read_to_string(&mut data).unwrap_or_default();
        }
        tree.insert(
            path,
            Item {
                dir: h.entry_type().is_dir(),
                mode: h.mode().unwrap() & 0o7777,
                owner: (h.uid().unwrap(), h.gid().unwrap()),
                data,
            },
        );
    }
    tree
}

fn get<'a>(tree: &'a BTreeMap<String, Item>, p: &str) -> &'a Item {
    tree.get(p)
        .unwrap_or_else(|| panic!("{p} is not in the image: {:?}", tree.keys()))
}

/// `COPY --chown` and the directories `WORKDIR` makes under `USER` resolve names in the
/// image's `/etc/passwd` and `/etc/group` and never fail: an unknown user (or no passwd
/// file) is root, an unknown group keeps the user's gid, a named user its passwd gid.
#[test]
fn chown_and_workdir_owners_resolve_names_without_failing() {
    let env = Env::new();
    let ctx = context(
        &env,
        "chown",
        &(from_busybox("")
            + "COPY --chown=nosuchuser f /a\n\
               COPY --chown=app:nosuchgroup f /b\n\
               COPY --chown=4000:nosuchgroup f /c\n\
               COPY --chown=nobody f /d\n\
               COPY --chown=4000:staff f /e\n\
               COPY --chown=root:app f /g\n"),
        &[("f", "x")],
    );
    let t = build_tree(&env, &ctx);
    for (p, owner) in [
        ("a", (0, 0)),
        ("b", (1000, 1000)),
        ("c", (4000, 4000)),
        ("d", (65534, 65534)),
        ("e", (4000, 50)),
        ("g", (0, 1000)),
    ] {
        assert_eq!(get(&t, p).owner, owner, "/{p}");
    }

    // A scratch stage has no passwd file at all; then one is copied in.
    let ctx = context(
        &env,
        "workdir",
        &(from_busybox(" AS bb")
            + "FROM scratch\n\
               USER nosuchuser\nWORKDIR /w/name\n\
               USER 4000\nWORKDIR /w/uid\n\
               USER 4000:nosuchgroup\nWORKDIR /w/uid-badgroup\n\
               COPY --from=bb /etc/passwd /etc/group /etc/\n\
               USER app\nWORKDIR /w/app\n\
               USER app:staff\nWORKDIR /w/app-staff\n"),
        &[],
    );
    let t = build_tree(&env, &ctx);
    for (p, owner) in [
        ("w", (0, 0)),
        ("w/name", (0, 0)),
        ("w/uid", (4000, 4000)),
        ("w/uid-badgroup", (4000, 4000)),
        ("w/app", (1000, 1000)),
        ("w/app-staff", (1000, 50)),
    ] {
        let i = get(&t, p);
        assert!(i.dir, "/{p}");
        assert_eq!(i.owner, owner, "/{p}");
    }
}

/// RUN under `USER` does fail on a name the image does not know (runc's GetExecUser).
#[test]
fn run_fails_for_unknown_user_and_group_names() {
    let env = Env::new();
    for (user, text) in [
        ("nosuchuser", "unable to find user nosuchuser"),
        ("app:nosuchgroup", "unable to find group nosuchgroup"),
    ] {
        let ctx = context(
            &env,
            &format!("u-{}", user.replace(':', "-")),
            &(from_busybox("") + &format!("USER {user}\nRUN true\n")),
            &[],
        );
        let err = env.fails(&["build", "--progress", "plain", ctx.to_str().unwrap()]);
        assert!(err.contains(text), "{user}: {err}");
    }
}

/// The group list of a RUN is what BuildKit hands runc: the primary gid first, then every
/// group of `/etc/group` that lists the user by name (only when no group is given).
#[test]
fn run_groups_hold_the_primary_gid_and_the_users_groups() {
    let env = Env::new();
    let groups = "root:x:0:\nwheel:x:10:root,app\napp:x:1000:\nstaff:x:50:app\n";
    let show = "grep ^Groups: /proc/self/status";
    let ctx = context(
        &env,
        "groups",
        &(from_busybox("")
            + &format!(
                "COPY group /etc/group\n\
                 RUN {show} > /tmp/default\n\
                 USER app\nRUN {show} > /tmp/app\n\
                 USER 4242\nRUN {show} > /tmp/uid\n\
                 USER 4242:4343\nRUN {show} > /tmp/uid-gid\n\
                 USER app:staff\nRUN {show} > /tmp/app-staff\n"
            )),
        &[("group", groups)],
    );
    let t = build_tree(&env, &ctx);
    let list = |p: &str| -> Vec<u32> {
        let d = &get(&t, p).data;
        d.trim_start_matches("Groups:")
            .split_whitespace()
            .map(|g| g.parse().unwrap())
            .collect()
    };
    // The kernel lists them sorted.
    assert_eq!(list("tmp/default"), vec![0, 10]);
    assert_eq!(list("tmp/app"), vec![10, 50, 1000]);
    assert_eq!(list("tmp/uid"), vec![0]);
    assert_eq!(list("tmp/uid-gid"), vec![4343]);
    assert_eq!(list("tmp/app-staff"), vec![50]);
}

/// `--mount=type=cache` with `uid`, `gid` or `mode` starts as a directory with that owner
/// and mode (umask 0), and is another cache than the same target without them.
#[test]
fn cache_mounts_start_with_their_owner_and_mode() {
    let env = Env::new();
    let owned = "--mount=type=cache,target=/c,uid=123,gid=456,mode=0750";
    let ctx = context(
        &env,
        "cache",
        &(from_busybox("")
            + &format!(
                "RUN {owned} stat -c '%u:%g %a' /c > /owned && touch /c/seeded\n\
                 RUN --mount=type=cache,target=/c stat -c '%u:%g %a' /c > /plain && ls /c > /plain-ls\n\
                 RUN {owned} ls /c > /owned-ls\n\
                 RUN --mount=type=cache,target=/m,mode=0777 stat -c '%u:%g %a' /m > /mode-only\n"
            )),
        &[],
    );
    let t = build_tree(&env, &ctx);
    assert_eq!(get(&t, "owned").data, "123:456 750\n");
    assert_eq!(get(&t, "plain").data, "0:0 755\n");
    assert_eq!(get(&t, "plain-ls").data, "");
    assert_eq!(get(&t, "owned-ls").data, "seeded\n");
    assert_eq!(get(&t, "mode-only").data, "0:0 777\n");
    assert!(
        !t.contains_key("c") && !t.contains_key("m"),
        "mount points removed"
    );
}

/// A tmpfs mount is BuildKit's (`nosuid`, its size) and one at `/dev/shm` takes the place
/// of the default `/dev/shm` instead of being stacked on it.
#[test]
fn tmpfs_mounts_replace_the_default_dev_shm() {
    let env = Env::new();
    let ctx = context(
        &env,
        "tmpfs",
        &(from_busybox("")
            + "RUN --mount=type=tmpfs,target=/dev/shm,size=1m grep ' /dev/shm ' /proc/mounts > /shm\n"),
        &[],
    );
    let t = build_tree(&env, &ctx);
    let shm = &get(&t, "shm").data;
    let lines: Vec<&str> = shm.lines().collect();
    assert_eq!(lines.len(), 1, "{shm}");
    let opts: Vec<&str> = lines[0].split(' ').nth(3).unwrap().split(',').collect();
    assert!(
        opts.contains(&"nosuid") && opts.contains(&"size=1024k"),
        "{shm}"
    );
    assert!(!opts.contains(&"noexec"), "{shm}");
    if is_root() {
        // (In a user namespace the kernel may add nodev on its own.)
        assert!(!opts.contains(&"nodev"), "{shm}");
    }
}

/// runc makes the mount points of /proc, /dev and /sys in the root file system and they
/// stay in the layer (BuildKit's layers have them); the mount points of `--mount`
/// targets and /etc/hosts, /etc/resolv.conf are removed when they stay empty.
#[test]
fn runc_mount_points_stay_and_mount_stubs_go() {
    let env = Env::new();
    let ctx = context(
        &env,
        "stubs",
        &(from_busybox(" AS bb")
            + "FROM scratch\n\
               COPY --from=bb /bin/busybox /bin/busybox\n\
               RUN --mount=type=tmpfs,target=/deep/tmp --mount=type=cache,target=/var/c [\"/bin/busybox\", \"true\"]\n"),
        &[],
    );
    let t = build_tree(&env, &ctx);
    for d in ["dev", "proc", "sys"] {
        let i = get(&t, d);
        assert!(i.dir && i.mode == 0o755 && i.owner == (0, 0), "/{d}: {i:?}");
    }
    let names: Vec<&String> = t.keys().collect();
    assert_eq!(
        names,
        vec!["bin", "bin/busybox", "dev", "proc", "sys"],
        "{t:?}"
    );
}

/// A stage built `FROM` another stage of the file keeps the ARGs that stage declared,
/// with their values, for its RUNs and its own expansions.
#[test]
fn a_stage_keeps_the_args_of_its_parent_stage() {
    let env = Env::new();
    let ctx = context(
        &env,
        "args",
        &(from_busybox(" AS base")
            + "ARG V=one\n\
               FROM base AS child\nARG V=\"$V-two\"\nRUN echo \"$V\" > /v\n\
               FROM child\nARG V\nRUN echo \"$V\" > /v2\n"),
        &[],
    );
    let t = build_tree(&env, &ctx);
    assert_eq!(get(&t, "v").data, "one-two\n");
    assert_eq!(get(&t, "v2").data, "one-two\n");
}
