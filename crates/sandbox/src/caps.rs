//! What this host lets the sandbox do, detected once.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A range of ids: subordinate host ids from `/etc/subuid` or `/etc/subgid`, or (in
/// [`IdMode::Root`]) ids that exist in hoist's own user namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IdRange {
    /// First id of the range.
    pub start: u32,
    /// Number of ids.
    pub count: u32,
}

impl IdRange {
    /// One past the last id (as `u64`: a range may end at 2^32).
    pub fn end(&self) -> u64 {
        u64::from(self.start) + u64::from(self.count)
    }

    /// Whether `id` is in the range.
    pub fn contains(&self, id: u32) -> bool {
        id >= self.start && u64::from(id) < self.end()
    }
}

/// Up to [`IdRanges::CAPACITY`] id ranges stored inline, so that [`IdMode`] stays
/// `Copy`. Serialised as a list.
#[derive(Clone, Copy, Serialize, Deserialize)]
#[serde(into = "Vec<IdRange>", try_from = "Vec<IdRange>")]
pub struct IdRanges {
    len: u8,
    items: [IdRange; IdRanges::CAPACITY],
}

impl IdRanges {
    /// How many ranges fit (the kernel accepts 340 map lines; real maps have a few).
    pub const CAPACITY: usize = 16;

    /// No range.
    pub const EMPTY: IdRanges = IdRanges {
        len: 0,
        items: [IdRange { start: 0, count: 0 }; IdRanges::CAPACITY],
    };

    /// Every id (`0 .. 2^32-1`, what `0 0 4294967295` maps).
    pub const FULL: IdRanges = {
        let mut r = IdRanges::EMPTY;
        r.len = 1;
        r.items[0] = IdRange {
            start: 0,
            count: u32::MAX,
        };
        r
    };

    /// The first [`CAPACITY`](Self::CAPACITY) ranges of `ranges`, and whether some
    /// were left out.
    pub fn truncated(ranges: &[IdRange]) -> (IdRanges, bool) {
        let mut r = IdRanges::EMPTY;
        let n = ranges.len().min(Self::CAPACITY);
        r.items[..n].copy_from_slice(&ranges[..n]);
        r.len = n as u8;
        (r, ranges.len() > n)
    }

    /// The ranges.
    pub fn as_slice(&self) -> &[IdRange] {
        &self.items[..usize::from(self.len)]
    }

    /// The number of ids in all ranges.
    pub fn total(&self) -> u64 {
        self.iter().map(|r| u64::from(r.count)).sum()
    }

    /// Whether some range contains `id`.
    pub fn contains(&self, id: u32) -> bool {
        self.iter().any(|r| r.contains(id))
    }

    /// Whether these are all ids ([`IdRanges::FULL`]).
    pub fn is_full(&self) -> bool {
        *self == IdRanges::FULL
    }

    /// The highest id of any range (`None` when empty).
    pub fn max_id(&self) -> Option<u32> {
        self.iter()
            .filter(|r| r.count > 0)
            .map(|r| (r.end() - 1) as u32)
            .max()
    }
}

impl std::ops::Deref for IdRanges {
    type Target = [IdRange];
    fn deref(&self) -> &[IdRange] {
        self.as_slice()
    }
}

impl PartialEq for IdRanges {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for IdRanges {}

impl std::hash::Hash for IdRanges {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state)
    }
}

impl std::fmt::Debug for IdRanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl From<IdRanges> for Vec<IdRange> {
    fn from(r: IdRanges) -> Self {
        r.as_slice().to_vec()
    }
}

impl TryFrom<Vec<IdRange>> for IdRanges {
    type Error = String;
    fn try_from(v: Vec<IdRange>) -> Result<Self, String> {
        match IdRanges::truncated(&v) {
            (r, false) => Ok(r),
            (_, true) => Err(format!(
                "{} id ranges (at most {} are supported)",
                v.len(),
                IdRanges::CAPACITY
            )),
        }
    }
}

/// How container ids map to host ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IdMode {
    /// hoist runs as root: a user namespace with the identity mapping of every id that
    /// exists where hoist runs (`0 0 4294967295` on a host; in a container's user
    /// namespace, such as a Concourse task or rootless Podman, only the ids of that
    /// namespace, typically `0 0 65536`), so files keep their real ids and the layer
    /// needs no translation, while the sandbox's capabilities stay confined to its own
    /// namespaces.
    Root {
        /// The uids that exist (identity-mapped), one range per line of hoist's own
        /// `uid_map`, sorted.
        uids: IdRanges,
        /// The gids that exist (identity-mapped).
        gids: IdRanges,
        /// Whether hoist's namespace allows `setgroups` (not after
        /// `unshare --map-root-user`, whose `deny` every child namespace inherits).
        setgroups: bool,
    },
    /// An unprivileged user with subordinate ranges: container 0 is the user,
    /// container `1..` are the subordinate ids, assigned consecutively over the ranges
    /// in `/etc/subuid` order (set with `newuidmap`/`newgidmap`).
    SubIds {
        /// The user's uid.
        uid: u32,
        /// The user's gid.
        gid: u32,
        /// Subordinate uids (host ids), in file order.
        subuid: IdRanges,
        /// Subordinate gids (host ids), in file order.
        subgid: IdRanges,
    },
    /// An unprivileged user without ranges: only container 0 exists (mapped to the
    /// user) and `setgroups` is denied.
    Single {
        /// The user's uid.
        uid: u32,
        /// The user's gid.
        gid: u32,
    },
}

impl IdMode {
    /// Root on a host where every id exists: the mapping `0 0 4294967295`.
    pub const ROOT_FULL: IdMode = IdMode::Root {
        uids: IdRanges::FULL,
        gids: IdRanges::FULL,
        setgroups: true,
    };

    /// The highest container uid that exists (`None`: every id).
    pub fn max_uid(&self) -> Option<u32> {
        match self {
            IdMode::Root { uids, .. } => (!uids.is_full()).then(|| uids.max_id().unwrap_or(0)),
            IdMode::SubIds { subuid, .. } => Some(subuid.total().min(u64::from(u32::MAX)) as u32),
            IdMode::Single { .. } => Some(0),
        }
    }

    /// The highest container gid that exists (`None`: every id).
    pub fn max_gid(&self) -> Option<u32> {
        match self {
            IdMode::Root { gids, .. } => (!gids.is_full()).then(|| gids.max_id().unwrap_or(0)),
            IdMode::SubIds { subgid, .. } => Some(subgid.total().min(u64::from(u32::MAX)) as u32),
            IdMode::Single { .. } => Some(0),
        }
    }

    /// Whether container uid `id` exists in the sandbox.
    pub fn uid_exists(&self, id: u32) -> bool {
        match self {
            IdMode::Root { uids, .. } => uids.contains(id),
            _ => self.max_uid().is_none_or(|m| id <= m),
        }
    }

    /// Whether container gid `id` exists in the sandbox.
    pub fn gid_exists(&self, id: u32) -> bool {
        match self {
            IdMode::Root { gids, .. } => gids.contains(id),
            _ => self.max_gid().is_none_or(|m| id <= m),
        }
    }

    /// Whether container ids are host ids (hoist runs as root): layers can be diffed
    /// and trees removed without entering a user namespace.
    pub fn is_root(&self) -> bool {
        matches!(self, IdMode::Root { .. })
    }

    /// Whether supplementary groups can be set inside the sandbox.
    pub fn can_setgroups(&self) -> bool {
        match self {
            IdMode::Root { setgroups, .. } => *setgroups,
            IdMode::SubIds { .. } => true,
            IdMode::Single { .. } => false,
        }
    }
}

/// What the host allows, with a human explanation of what will not work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Running as uid 0.
    pub is_root: bool,
    /// The effective uid and gid.
    pub uid: u32,
    /// The effective gid.
    pub gid: u32,
    /// The user name (from `/etc/passwd`), if any.
    pub user: Option<String>,
    /// Unprivileged (or root) user namespaces can be created.
    pub userns: bool,
    /// Why user namespaces cannot be created (when `userns` is false).
    pub userns_failure: Option<UsernsFailure>,
    /// The uids that exist in hoist's own user namespace (from `/proc/self/uid_map`),
    /// one range per map line, sorted: [`IdRanges::FULL`] on a host.
    pub own_uids: Vec<IdRange>,
    /// The gids that exist in hoist's own user namespace (`/proc/self/gid_map`).
    pub own_gids: Vec<IdRange>,
    /// `/proc/self/setgroups` is not `deny`.
    pub setgroups: bool,
    /// The user's `/etc/subuid` ranges, every matching line in file order.
    pub subuid: Vec<IdRange>,
    /// The user's `/etc/subgid` ranges, in file order.
    pub subgid: Vec<IdRange>,
    /// Path of `newuidmap`.
    pub newuidmap: Option<PathBuf>,
    /// Path of `newgidmap`.
    pub newgidmap: Option<PathBuf>,
    /// overlayfs with `userxattr` can be mounted inside a user namespace.
    pub overlay: bool,
    /// Things that will not work or work differently, one sentence each.
    pub notes: Vec<String>,
}

impl Capabilities {
    /// The id mapping the sandbox uses, or why none is possible.
    pub fn id_mode(&self) -> Result<IdMode, String> {
        if !self.userns {
            return Err(self.userns_failure.clone().unwrap_or_default().explain());
        }
        if self.is_root {
            let own = |r: &[IdRange]| {
                if r.is_empty() {
                    IdRanges::FULL
                } else {
                    IdRanges::truncated(r).0
                }
            };
            return Ok(IdMode::Root {
                uids: own(&self.own_uids),
                gids: own(&self.own_gids),
                setgroups: self.setgroups,
            });
        }
        let subuid = usable_subids(&self.subuid, self.uid);
        let subgid = usable_subids(&self.subgid, self.gid);
        match (
            subuid.is_empty() || subgid.is_empty(),
            &self.newuidmap,
            &self.newgidmap,
        ) {
            (false, Some(_), Some(_)) => Ok(IdMode::SubIds {
                uid: self.uid,
                gid: self.gid,
                subuid: IdRanges::truncated(&subuid).0,
                subgid: IdRanges::truncated(&subgid).0,
            }),
            _ => Ok(IdMode::Single {
                uid: self.uid,
                gid: self.gid,
            }),
        }
    }

    /// A paragraph for `hoist info` and error messages.
    pub fn explain(&self) -> String {
        let mut s = format!(
            "running as uid {} ({}); user namespaces: ",
            self.uid,
            if self.is_root { "root" } else { "unprivileged" },
        );
        match (&self.userns_failure, self.userns) {
            (_, true) => s.push_str(&format!(
                "yes; overlayfs in a user namespace: {}",
                if self.overlay {
                    "yes"
                } else {
                    "no (a snapshot differ is used instead: each RUN copies the root file \
                     system)"
                }
            )),
            (Some(f), false) => s.push_str(&format!(
                "no ({}), so RUN steps cannot be executed",
                f.failed_call()
            )),
            (None, false) => s.push_str("no, so RUN steps cannot be executed"),
        }
        if self.is_root {
            let full = |r: &[IdRange]| r.is_empty() || r == IdRanges::FULL.as_slice();
            if !full(&self.own_uids) || !full(&self.own_gids) {
                s.push_str(&format!(
                    "; hoist's user namespace has only uids {} and gids {} (the only ids that \
                     exist in the sandbox)",
                    show_ids(&self.own_uids),
                    show_ids(&self.own_gids)
                ));
            }
        } else if self.subuid.is_empty() || self.subgid.is_empty() {
            s.push_str("; no subordinate id ranges");
        } else {
            let show = |r: &[IdRange]| {
                r.iter()
                    .map(|r| format!("{}+{}", r.start, r.count))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            s.push_str(&format!(
                "; subordinate ids: uids {}, gids {}",
                show(&self.subuid),
                show(&self.subgid)
            ));
        }
        for n in &self.notes {
            s.push_str("\n- ");
            s.push_str(n);
        }
        s
    }
}

/// `0-65535` or `0, 2-9`.
pub(crate) fn show_ids(r: &[IdRange]) -> String {
    let mut spans: Vec<(u64, u64)> = Vec::new();
    for r in r.iter().filter(|r| r.count > 0) {
        match spans.last_mut() {
            Some(last) if last.1 == u64::from(r.start) => last.1 = r.end(),
            _ => spans.push((u64::from(r.start), r.end())),
        }
    }
    spans
        .iter()
        .map(|&(s, e)| match e - s {
            1 => s.to_string(),
            _ => format!("{s}-{}", e - 1),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why user namespaces cannot be created, with what was found on the way: the failed
/// call and its errno, and the sysctls that commonly forbid them.
/// [`UsernsFailure::explain`] turns it into a message naming the cause and the
/// workarounds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsernsFailure {
    /// What failed: `unshare(CLONE_NEWUSER)`, or writing the new namespace's maps.
    pub call: String,
    /// Its errno, if known.
    pub errno: Option<i32>,
    /// Running as uid 0 (the Debian and Ubuntu switches only restrict unprivileged users).
    pub is_root: bool,
    /// `/proc/sys/user/max_user_namespaces` (per user namespace).
    pub max_user_namespaces: Option<u64>,
    /// `/proc/sys/kernel/unprivileged_userns_clone` (Debian's kernels).
    pub unprivileged_userns_clone: Option<u64>,
    /// `/proc/sys/kernel/apparmor_restrict_unprivileged_userns` (Ubuntu 23.10+).
    pub apparmor_restrict_unprivileged_userns: Option<u64>,
}

/// The call the user namespace probe and the helper make first.
pub const UNSHARE_CALL: &str = "unshare(CLONE_NEWUSER)";

impl UsernsFailure {
    /// A failure of `call` with `errno`, with the sysctls read from `/proc/sys`.
    pub fn new(call: &str, errno: Option<i32>, is_root: bool) -> UsernsFailure {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .ok()
                .and_then(|s| s.trim().parse().ok())
        };
        UsernsFailure {
            call: call.to_string(),
            errno,
            is_root,
            max_user_namespaces: read("/proc/sys/user/max_user_namespaces"),
            unprivileged_userns_clone: read("/proc/sys/kernel/unprivileged_userns_clone"),
            apparmor_restrict_unprivileged_userns: read(
                "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
            ),
        }
    }

    /// `unshare(CLONE_NEWUSER) failed: Operation not permitted (os error 1)`.
    pub fn failed_call(&self) -> String {
        let call = if self.call.is_empty() {
            UNSHARE_CALL
        } else {
            &self.call
        };
        match self.errno {
            Some(e) => format!("{call} failed: {}", std::io::Error::from_raw_os_error(e)),
            None => format!("{call} failed"),
        }
    }

    /// The causes found, most likely first (empty when none is recognised).
    pub fn causes(&self) -> Vec<String> {
        let mut c = Vec::new();
        let unshare = self.call.is_empty() || self.call == UNSHARE_CALL;
        if self.max_user_namespaces == Some(0) {
            c.push(
                "user.max_user_namespaces is 0 (/proc/sys/user/max_user_namespaces): no user \
                 namespace may be created in this namespace"
                    .to_string(),
            );
        } else if self.errno == Some(libc::ENOSPC) {
            c.push(format!(
                "the user.max_user_namespaces limit{} of this or an enclosing user namespace \
                 is used up",
                self.max_user_namespaces
                    .map(|m| format!(" ({m} here)"))
                    .unwrap_or_default()
            ));
        }
        if !self.is_root && self.unprivileged_userns_clone == Some(0) {
            c.push(
                "kernel.unprivileged_userns_clone is 0 (/proc/sys/kernel/unprivileged_userns_clone, \
                 Debian's switch that forbids user namespaces to unprivileged users)"
                    .to_string(),
            );
        }
        if !self.is_root && self.apparmor_restrict_unprivileged_userns == Some(1) {
            c.push(
                "kernel.apparmor_restrict_unprivileged_userns is 1 \
                 (/proc/sys/kernel/apparmor_restrict_unprivileged_userns, Ubuntu 23.10 and \
                 later): AppArmor gives unprivileged programs without a profile allowing \
                 `userns` a user namespace without capabilities"
                    .to_string(),
            );
        }
        if self.errno == Some(libc::EUSERS) {
            c.push("the nesting limit of 32 user namespaces is reached".to_string());
        }
        if c.is_empty() && self.errno == Some(libc::EPERM) {
            if unshare {
                c.push(
                    "the call is denied, most likely by the seccomp profile of the container \
                     runtime (Docker, Podman, containerd, Concourse's Garden), which blocks \
                     unshare/clone with CLONE_NEWUSER in unprivileged containers (a chroot \
                     also causes EPERM)"
                        .to_string(),
                );
            } else if self.call.contains("map") {
                c.push(
                    "the kernel or a security module (AppArmor, SELinux) refused the id maps \
                     of the new namespace"
                        .to_string(),
                );
            }
        }
        c
    }

    /// The full message: what failed, why, and the workarounds.
    pub fn explain(&self) -> String {
        let mut s = format!("user namespaces cannot be created: {}", self.failed_call());
        let causes = self.causes();
        match causes.len() {
            0 => s.push_str(" (cause not recognised)"),
            1 => s.push_str(&format!(", because {}", causes[0])),
            _ => {
                s.push_str(", because:");
                for c in &causes {
                    s.push_str(&format!("\n  - {c}"));
                }
            }
        }
        s.push_str(".\nWorkarounds:");
        let mut w: Vec<String> = Vec::new();
        if self.apparmor_restrict_unprivileged_userns == Some(1) && !self.is_root {
            w.push(
                "on the host: `sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`, or \
                 an AppArmor profile for hoist that allows `userns,`"
                    .to_string(),
            );
        }
        w.push(
            "on the host (or as root of the container's user namespace): \
             `sysctl -w user.max_user_namespaces=15000` and, on Debian kernels, \
             `sysctl -w kernel.unprivileged_userns_clone=1`"
                .to_string(),
        );
        w.push(
            "in Concourse: set `privileged: true` on the task, or run the worker with a \
             container runtime that allows user namespaces"
                .to_string(),
        );
        w.push(
            "with Docker or Podman: `--security-opt seccomp=unconfined`, or a seccomp \
             profile that allows unshare and clone with CLONE_NEWUSER"
                .to_string(),
        );
        w.push("Dockerfiles without RUN instructions build without any namespace".to_string());
        for x in w {
            s.push_str("\n- ");
            s.push_str(&x);
        }
        s
    }
}

/// Parse `/etc/subuid`-style content for `user` (by name or numeric uid). The first
/// matching line wins; [`parse_subids`] returns all of them.
pub fn parse_subid(content: &str, user: Option<&str>, uid: u32) -> Option<IdRange> {
    parse_subids(content, user, uid).into_iter().next()
}

/// Every range of `user` (by name or numeric uid) in `/etc/subuid`-style content, in
/// file order (empty ranges skipped).
pub fn parse_subids(content: &str, user: Option<&str>, uid: u32) -> Vec<IdRange> {
    let uid_s = uid.to_string();
    content
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.starts_with('#') {
                return None;
            }
            let mut it = line.split(':');
            let (name, start, count) = (it.next()?, it.next()?, it.next()?);
            if Some(name) != user && name != uid_s {
                return None;
            }
            let start = start.trim().parse().ok()?;
            let count: u32 = count.trim().parse().ok()?;
            (count > 0).then_some(IdRange { start, count })
        })
        .collect()
}

/// The subordinate ranges that can be mapped together, in file order: the user's own
/// id (mapped to container 0) and ids already given by an earlier line are cut out,
/// because the kernel refuses overlapping map lines.
pub fn usable_subids(ranges: &[IdRange], own: u32) -> Vec<IdRange> {
    let mut taken = vec![IdRange {
        start: own,
        count: 1,
    }];
    let mut out = Vec::new();
    for r in ranges {
        let mut pieces = vec![(u64::from(r.start), r.end())];
        for t in &taken {
            let (ts, te) = (u64::from(t.start), t.end());
            pieces = pieces
                .into_iter()
                .flat_map(|(s, e)| {
                    if te <= s || e <= ts {
                        vec![(s, e)]
                    } else {
                        [(s, ts.max(s)), (te.min(e), e)]
                            .into_iter()
                            .filter(|(a, b)| a < b)
                            .collect()
                    }
                })
                .collect();
        }
        for (s, e) in pieces {
            let p = IdRange {
                start: s as u32,
                count: (e - s) as u32,
            };
            out.push(p);
            taken.push(p);
        }
        taken.push(*r);
    }
    out
}

/// The ids that exist in a user namespace, from its `/proc/PID/uid_map` (or `gid_map`)
/// text: the inside column (`inside outside count`) of every line, sorted. Root of
/// that namespace may identity-map exactly these in a child namespace: one child line
/// per line here, because the kernel refuses (EPERM) a child line that spans two
/// lines of its parent's map, even adjacent ones. Malformed and empty lines are
/// skipped.
pub fn existing_ids(map: &str) -> Vec<IdRange> {
    let mut v: Vec<IdRange> = map
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let start: u32 = it.next()?.parse().ok()?;
            let _outside: u32 = it.next()?.parse().ok()?;
            let count: u32 = it.next()?.parse().ok()?;
            (count > 0).then_some(IdRange { start, count })
        })
        .collect();
    v.sort_unstable_by_key(|r| r.start);
    v
}

/// The user name of `uid` from `/etc/passwd`.
pub fn user_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|l| {
        let mut it = l.split(':');
        let name = it.next()?;
        it.next()?;
        (it.next()?.parse::<u32>().ok()? == uid).then(|| name.to_string())
    })
}

/// Find an executable by name in the usual system directories and `PATH`.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .chain(
            ["/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin"]
                .iter()
                .map(PathBuf::from),
        )
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Detect the host's capabilities (probes user namespaces and overlayfs in a forked
/// child; takes a few milliseconds).
pub fn detect() -> Capabilities {
    let uid = crate::fork::geteuid();
    let gid = crate::fork::getegid();
    let is_root = uid == 0;
    let user = std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| user_name(&p, uid));
    let (subuid, subgid) = if is_root {
        (Vec::new(), Vec::new())
    } else {
        let read = |f: &str, id: u32| {
            std::fs::read_to_string(f)
                .map(|c| parse_subids(&c, user.as_deref(), id))
                .unwrap_or_default()
        };
        (read("/etc/subuid", uid), read("/etc/subgid", uid))
    };
    let own = |f: &str| {
        std::fs::read_to_string(f)
            .map(|m| existing_ids(&m))
            .ok()
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| IdRanges::FULL.to_vec())
    };
    let (own_uids, own_gids) = (own("/proc/self/uid_map"), own("/proc/self/gid_map"));
    let setgroups = std::fs::read_to_string("/proc/self/setgroups")
        .map(|s| s.trim() != "deny")
        .unwrap_or(true);
    let newuidmap = find_program("newuidmap");
    let newgidmap = find_program("newgidmap");
    let probe = crate::fork::probe_userns_overlay();
    let mut notes = Vec::new();
    let userns_failure = (!probe.userns).then(|| {
        UsernsFailure::new(
            if probe.failed_call.is_empty() {
                UNSHARE_CALL
            } else {
                &probe.failed_call
            },
            probe.errno,
            is_root,
        )
    });
    if userns_failure.is_none() && !probe.overlay {
        notes.push(format!(
            "overlayfs cannot be mounted in a user namespace ({}): each RUN step copies \
             the whole root file system and diffs it afterwards, which is slower",
            probe.detail
        ));
    }
    if is_root {
        for (what, r) in [("uids", &own_uids), ("gids", &own_gids)] {
            if r.len() > IdRanges::CAPACITY {
                notes.push(format!(
                    "hoist's user namespace has {} ranges of {what}: only the first {} \
                     exist in the sandbox",
                    r.len(),
                    IdRanges::CAPACITY
                ));
            }
        }
        if !setgroups {
            notes.push(
                "setgroups is denied in hoist's user namespace (/proc/self/setgroups): \
                 supplementary groups cannot be set in RUN steps"
                    .to_string(),
            );
        }
    } else {
        let have_ranges = !subuid.is_empty() && !subgid.is_empty();
        if !have_ranges {
            notes.push(format!(
                "no /etc/subuid and /etc/subgid ranges for {}: only uid/gid 0 exist inside the \
                 sandbox, so `chown` to other users, `USER` other than root, supplementary \
                 groups and tools that drop privileges (apt-get's _apt sandbox) will fail, and \
                 files of base images all belong to root; add \
                 e.g. `{}:100000:65536` to both files",
                user.as_deref().unwrap_or("this user"),
                user.as_deref().unwrap_or("USER"),
            ));
        } else if newuidmap.is_none() || newgidmap.is_none() {
            notes.push(
                "newuidmap/newgidmap are missing (install the `uidmap` package): only uid/gid 0 \
                 exist inside the sandbox"
                    .to_string(),
            );
        } else {
            for (what, r, own) in [("subuid", &subuid, uid), ("subgid", &subgid, gid)] {
                let n = usable_subids(r, own).len();
                if n > IdRanges::CAPACITY {
                    notes.push(format!(
                        "/etc/{what} has {n} ranges for this user: only the first {} are \
                         mapped",
                        IdRanges::CAPACITY
                    ));
                }
            }
        }
    }
    Capabilities {
        is_root,
        uid,
        gid,
        user,
        userns: probe.userns,
        userns_failure,
        own_uids,
        own_gids,
        setgroups,
        subuid,
        subgid,
        newuidmap,
        newgidmap,
        overlay: probe.overlay,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subid_lines() {
        let c = "# comment\nalice:100000:65536\n1001:300000:1000\nbob:200000:0\n";
        assert_eq!(
            parse_subid(c, Some("alice"), 1000),
            Some(IdRange {
                start: 100000,
                count: 65536
            })
        );
        assert_eq!(
            parse_subid(c, Some("carol"), 1001),
            Some(IdRange {
                start: 300000,
                count: 1000
            })
        );
        assert_eq!(parse_subid(c, Some("bob"), 1002), None);
        assert_eq!(parse_subid(c, None, 5), None);
    }

    fn caps() -> Capabilities {
        Capabilities {
            is_root: false,
            uid: 1000,
            gid: 1000,
            user: Some("u".into()),
            userns: true,
            userns_failure: None,
            own_uids: IdRanges::FULL.to_vec(),
            own_gids: IdRanges::FULL.to_vec(),
            setgroups: true,
            subuid: vec![IdRange {
                start: 100000,
                count: 65536,
            }],
            subgid: vec![IdRange {
                start: 100000,
                count: 65536,
            }],
            newuidmap: Some("/usr/bin/newuidmap".into()),
            newgidmap: Some("/usr/bin/newgidmap".into()),
            overlay: true,
            notes: vec![],
        }
    }

    #[test]
    fn id_modes() {
        let mut c = caps();
        assert!(matches!(c.id_mode(), Ok(IdMode::SubIds { .. })));
        c.newgidmap = None;
        assert_eq!(
            c.id_mode(),
            Ok(IdMode::Single {
                uid: 1000,
                gid: 1000
            })
        );
        c.is_root = true;
        assert_eq!(c.id_mode(), Ok(IdMode::ROOT_FULL));
        c.userns = false;
        assert!(c.id_mode().is_err());
        assert!(!IdMode::Single { uid: 1, gid: 1 }.can_setgroups());
    }

    fn r(start: u32, count: u32) -> IdRange {
        IdRange { start, count }
    }

    #[test]
    fn existing_ids_of_uid_maps() {
        // A host: every id, nothing to restrict.
        let full = existing_ids("         0          0 4294967295\n");
        assert_eq!(full, vec![r(0, u32::MAX)]);
        assert_eq!(full, IdRanges::FULL.to_vec());
        // Concourse, rootless Podman, Kubernetes: root of a 65536-id namespace.
        assert_eq!(
            existing_ids("         0     165536      65536\n"),
            vec![r(0, 65536)]
        );
        // hoist as root inside hoist's sandbox started by an unprivileged user with
        // subordinate ids: `0 1001 1` + `1 200000 65536`. Not merged into `0 0 65537`:
        // the kernel refuses a child line spanning two parent lines.
        assert_eq!(
            existing_ids("         0       1001          1\n         1     200000      65536\n"),
            vec![r(0, 1), r(1, 65536)]
        );
        // Several /etc/subuid lines, out of order, with a gap and junk.
        assert_eq!(
            existing_ids("1000 5000 10\n0 1000 1\n1 1 999\n2000 9 1\nbad line\n7 7 0\n"),
            vec![r(0, 1), r(1, 999), r(1000, 10), r(2000, 1)]
        );
        // Concourse's Garden: container 0 is host 4294967294, 1.. are host 1..
        let garden = existing_ids("0 4294967294 1\n1 1 4294967293\n");
        assert_eq!(garden, vec![r(0, 1), r(1, 4294967293)]);
        assert_eq!(IdRanges::truncated(&garden).0.max_id(), Some(4294967293));
        assert!(!IdRanges::truncated(&garden).0.is_full());
        assert!(existing_ids("").is_empty());
    }

    #[test]
    fn root_mode_maps_the_existing_ids() {
        let mut c = caps();
        c.is_root = true;
        c.uid = 0;
        c.gid = 0;
        c.own_uids = existing_ids("0 165536 65536\n");
        c.own_gids = existing_ids("0 1001 1\n1 200000 65536\n");
        let m = c.id_mode().unwrap();
        assert!(m.is_root());
        assert_eq!(m.max_uid(), Some(65535));
        assert_eq!(m.max_gid(), Some(65536));
        assert!(m.uid_exists(65535) && !m.uid_exists(65536));
        assert!(m.gid_exists(65536) && !m.gid_exists(65537));
        assert!(m.can_setgroups());
        assert_eq!(
            crate::idmap::map_lines(&m),
            ("0 0 65536\n".to_string(), "0 0 1\n1 1 65536\n".to_string())
        );
        assert!(
            c.explain().contains("uids 0-65535 and gids 0-65536"),
            "{}",
            c.explain()
        );
        // Gaps are honoured.
        c.own_uids = vec![r(0, 1), r(1000, 10)];
        let m = c.id_mode().unwrap();
        assert_eq!(m.max_uid(), Some(1009));
        assert!(m.uid_exists(0) && m.uid_exists(1005) && !m.uid_exists(1));
        assert_eq!(crate::idmap::map_lines(&m).0, "0 0 1\n1000 1000 10\n");
        // Full range: the mapping of a host, and no limit.
        c.own_uids = IdRanges::FULL.to_vec();
        c.own_gids = IdRanges::FULL.to_vec();
        assert_eq!(c.id_mode(), Ok(IdMode::ROOT_FULL));
        assert_eq!(IdMode::ROOT_FULL.max_uid(), None);
        assert!(IdMode::ROOT_FULL.uid_exists(u32::MAX - 1));
        assert!(!c.explain().contains("hoist's user namespace"));
        // `unshare --map-root-user`: one id, setgroups denied.
        c.own_uids = existing_ids("0 1000 1\n");
        c.own_gids = existing_ids("0 1000 1\n");
        c.setgroups = false;
        let m = c.id_mode().unwrap();
        assert_eq!((m.max_uid(), m.max_gid()), (Some(0), Some(0)));
        assert!(!m.can_setgroups());
        // IdMode stays small and Copy, and goes over the wire.
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<IdMode>(&json).unwrap(), m);
        assert!(std::mem::size_of::<IdMode>() <= 300);
    }

    #[test]
    fn several_subid_lines() {
        // The ranges of a container image that has only 65536 ids: all but the user's.
        let c = "hoist:1:999\nother:5:5\nhoist:1001:64535\n";
        let ranges = parse_subids(c, Some("hoist"), 1000);
        assert_eq!(ranges, vec![r(1, 999), r(1001, 64535)]);
        assert_eq!(parse_subid(c, Some("hoist"), 1000), Some(r(1, 999)));
        assert_eq!(usable_subids(&ranges, 1000), ranges);
        let mut caps = caps();
        caps.subuid = ranges.clone();
        caps.subgid = ranges;
        let m = caps.id_mode().unwrap();
        assert_eq!(m.max_uid(), Some(65534));
        assert_eq!(m.max_gid(), Some(65534));
        assert!(m.uid_exists(65534) && !m.uid_exists(65535));
        let (u, g) = crate::idmap::map_lines(&m);
        assert_eq!(u, "0 1000 1\n1 1 999\n1000 1001 64535\n");
        assert_eq!(g, u);
        assert!(caps.explain().contains("uids 1+999, 1001+64535"));
        // A user listed by name and by uid with the same range, and a range that
        // contains the user's own id: overlaps are cut out.
        let dup = "hoist:100000:65536\n1000:100000:65536\n";
        assert_eq!(
            usable_subids(&parse_subids(dup, Some("hoist"), 1000), 1000),
            vec![r(100000, 65536)]
        );
        assert_eq!(
            usable_subids(&[r(0, 2000), r(1500, 1000)], 1000),
            vec![r(0, 1000), r(1001, 999), r(2000, 500)]
        );
        // More ranges than fit: the first ones are used.
        let many: Vec<IdRange> = (0..40).map(|i| r(100000 + i * 10, 5)).collect();
        caps.subuid = many;
        let m = caps.id_mode().unwrap();
        assert_eq!(m.max_uid(), Some(5 * IdRanges::CAPACITY as u32));
    }

    #[test]
    fn no_userns_messages_name_the_cause_and_workarounds() {
        let base = UsernsFailure {
            call: UNSHARE_CALL.into(),
            errno: Some(libc::EPERM),
            is_root: false,
            max_user_namespaces: Some(15000),
            unprivileged_userns_clone: None,
            apparmor_restrict_unprivileged_userns: None,
        };
        let common = |m: &str| {
            for w in [
                "sysctl -w user.max_user_namespaces=15000",
                "kernel.unprivileged_userns_clone=1",
                "privileged: true",
                "--security-opt seccomp=unconfined",
                "CLONE_NEWUSER",
                "without RUN instructions",
            ] {
                assert!(m.contains(w), "{w:?} missing from:\n{m}");
            }
        };
        // seccomp (Docker, Concourse): EPERM with nothing else to blame.
        let m = base.explain();
        common(&m);
        assert!(
            m.contains("unshare(CLONE_NEWUSER) failed: Operation not permitted (os error 1)"),
            "{m}"
        );
        assert!(
            m.contains("seccomp profile of the container runtime"),
            "{m}"
        );
        // max_user_namespaces = 0: ENOSPC.
        let f = UsernsFailure {
            errno: Some(libc::ENOSPC),
            max_user_namespaces: Some(0),
            ..base.clone()
        };
        let m = f.explain();
        common(&m);
        assert!(m.contains("(os error 28)"), "{m}");
        assert!(m.contains("user.max_user_namespaces is 0"), "{m}");
        assert!(!m.contains("seccomp profile of"), "{m}");
        // Debian's switch, for unprivileged users only.
        let f = UsernsFailure {
            unprivileged_userns_clone: Some(0),
            ..base.clone()
        };
        assert!(f
            .explain()
            .contains("kernel.unprivileged_userns_clone is 0"));
        assert!(!f.explain().contains("seccomp profile of"));
        let f = UsernsFailure { is_root: true, ..f };
        assert!(!f.explain().contains("unprivileged_userns_clone is 0"));
        assert!(f.explain().contains("seccomp profile of"));
        // Ubuntu 24.04: unshare works, writing the map does not.
        let f = UsernsFailure {
            call: "writing the uid_map of a new user namespace".into(),
            apparmor_restrict_unprivileged_userns: Some(1),
            ..base.clone()
        };
        let m = f.explain();
        common(&m);
        assert!(
            m.contains("apparmor_restrict_unprivileged_userns is 1"),
            "{m}"
        );
        assert!(m.contains("apparmor_restrict_unprivileged_userns=0"), "{m}");
        // Several causes are all named; an unknown one says so.
        let f = UsernsFailure {
            max_user_namespaces: Some(0),
            unprivileged_userns_clone: Some(0),
            ..base.clone()
        };
        assert_eq!(f.causes().len(), 2);
        let f = UsernsFailure {
            errno: Some(libc::EINVAL),
            ..base.clone()
        };
        assert!(f.explain().contains("cause not recognised"));
        // Capabilities::id_mode gives the message.
        let mut c = caps();
        c.userns = false;
        c.userns_failure = Some(UsernsFailure {
            errno: Some(libc::ENOSPC),
            max_user_namespaces: Some(0),
            ..base
        });
        let e = c.id_mode().unwrap_err();
        assert!(e.contains("max_user_namespaces is 0"), "{e}");
    }

    #[test]
    fn detect_on_this_host() {
        let c = detect();
        assert_eq!(c.is_root, c.uid == 0);
        assert!(!c.explain().is_empty());
    }
}
