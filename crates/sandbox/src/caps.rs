//! What this host lets the sandbox do, detected once.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A range of subordinate ids from `/etc/subuid` or `/etc/subgid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    /// First host id of the range.
    pub start: u32,
    /// Number of ids.
    pub count: u32,
}

/// How container ids map to host ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IdMode {
    /// hoist runs as root: a user namespace with the identity mapping of every id
    /// (`0 0 4294967295`), so files keep their real ids and the layer needs no translation,
    /// while the sandbox's capabilities stay confined to its own namespaces.
    Root,
    /// An unprivileged user with subordinate ranges: container 0 is the user,
    /// container `1..=count` are the subordinate ids (set with `newuidmap`/`newgidmap`).
    SubIds {
        /// The user's uid.
        uid: u32,
        /// The user's gid.
        gid: u32,
        /// Subordinate uids.
        subuid: IdRange,
        /// Subordinate gids.
        subgid: IdRange,
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
    /// The highest container uid that exists (`None`: every id).
    pub fn max_uid(&self) -> Option<u32> {
        match self {
            IdMode::Root => None,
            IdMode::SubIds { subuid, .. } => Some(subuid.count),
            IdMode::Single { .. } => Some(0),
        }
    }

    /// The highest container gid that exists (`None`: every id).
    pub fn max_gid(&self) -> Option<u32> {
        match self {
            IdMode::Root => None,
            IdMode::SubIds { subgid, .. } => Some(subgid.count),
            IdMode::Single { .. } => Some(0),
        }
    }

    /// Whether supplementary groups can be set inside the sandbox.
    pub fn can_setgroups(&self) -> bool {
        !matches!(self, IdMode::Single { .. })
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
    /// The user's `/etc/subuid` range.
    pub subuid: Option<IdRange>,
    /// The user's `/etc/subgid` range.
    pub subgid: Option<IdRange>,
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
            return Err("user namespaces cannot be created on this host \
                        (check kernel.unprivileged_userns_clone / user.max_user_namespaces)"
                .to_string());
        }
        if self.is_root {
            return Ok(IdMode::Root);
        }
        match (self.subuid, self.subgid, &self.newuidmap, &self.newgidmap) {
            (Some(su), Some(sg), Some(_), Some(_)) => Ok(IdMode::SubIds {
                uid: self.uid,
                gid: self.gid,
                subuid: su,
                subgid: sg,
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
            "running as uid {} ({}); user namespaces: {}; overlayfs in a user namespace: {}",
            self.uid,
            if self.is_root { "root" } else { "unprivileged" },
            if self.userns { "yes" } else { "no" },
            if self.overlay {
                "yes"
            } else {
                "no (a snapshot differ is used instead: each RUN copies the root file system)"
            },
        );
        if !self.is_root {
            match (self.subuid, self.subgid) {
                (Some(u), Some(g)) => s.push_str(&format!(
                    "; subordinate ids: uids {}+{}, gids {}+{}",
                    u.start, u.count, g.start, g.count
                )),
                _ => s.push_str("; no subordinate id ranges"),
            }
        }
        for n in &self.notes {
            s.push_str("\n- ");
            s.push_str(n);
        }
        s
    }
}

/// Parse `/etc/subuid`-style content for `user` (by name or numeric uid). The first
/// matching line wins.
pub fn parse_subid(content: &str, user: Option<&str>, uid: u32) -> Option<IdRange> {
    let uid_s = uid.to_string();
    content.lines().find_map(|line| {
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
        (None, None)
    } else {
        (
            std::fs::read_to_string("/etc/subuid")
                .ok()
                .and_then(|c| parse_subid(&c, user.as_deref(), uid)),
            std::fs::read_to_string("/etc/subgid")
                .ok()
                .and_then(|c| parse_subid(&c, user.as_deref(), uid)),
        )
    };
    let newuidmap = find_program("newuidmap");
    let newgidmap = find_program("newgidmap");
    let probe = crate::fork::probe_userns_overlay();
    let mut notes = Vec::new();
    if !probe.userns {
        notes.push("user namespaces are not available: RUN steps cannot be executed".to_string());
    } else if !probe.overlay {
        notes.push(format!(
            "overlayfs cannot be mounted in a user namespace ({}): each RUN step copies \
             the whole root file system and diffs it afterwards, which is slower",
            probe.detail
        ));
    }
    if !is_root {
        let have_ranges = subuid.is_some() && subgid.is_some();
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
        }
    }
    Capabilities {
        is_root,
        uid,
        gid,
        user,
        userns: probe.userns,
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

    #[test]
    fn id_modes() {
        let mut c = Capabilities {
            is_root: false,
            uid: 1000,
            gid: 1000,
            user: Some("u".into()),
            userns: true,
            subuid: Some(IdRange {
                start: 100000,
                count: 65536,
            }),
            subgid: Some(IdRange {
                start: 100000,
                count: 65536,
            }),
            newuidmap: Some("/usr/bin/newuidmap".into()),
            newgidmap: Some("/usr/bin/newgidmap".into()),
            overlay: true,
            notes: vec![],
        };
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
        assert_eq!(c.id_mode(), Ok(IdMode::Root));
        c.userns = false;
        assert!(c.id_mode().is_err());
        assert!(!IdMode::Single { uid: 1, gid: 1 }.can_setgroups());
    }

    #[test]
    fn detect_on_this_host() {
        let c = detect();
        assert_eq!(c.is_root, c.uid == 0);
        assert!(!c.explain().is_empty());
    }
}
