//! `/etc/passwd` and `/etc/group` lookups for `USER` and `--chown`, as Docker does them.

/// One `/etc/passwd` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home directory.
    pub home: String,
}

/// One `/etc/group` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    /// Group name.
    pub name: String,
    /// Group id.
    pub gid: u32,
    /// Member user names.
    pub members: Vec<String>,
}

/// Parse `/etc/passwd` content (malformed lines are skipped, as libc does).
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f.get(5).unwrap_or(&"").to_string(),
            })
        })
        .collect()
}

/// Parse `/etc/group` content.
pub fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 3 {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Why a user or group could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    /// A name not in `/etc/passwd`.
    #[error("unable to find user {0}: no matching entries in passwd file")]
    NoUser(String),
    /// A name not in `/etc/group`.
    #[error("unable to find group {0}: no matching entries in group file")]
    NoGroup(String),
    /// An empty or malformed spec.
    #[error("invalid user spec {0:?}")]
    Invalid(String),
}

fn numeric(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Resolve `--chown=USER[:GROUP]`: names through the image's files, numbers as they are.
/// A user without a group uses the same numeric id as the group (Docker's rule).
pub fn resolve_chown(
    spec: &str,
    passwd: &[PasswdEntry],
    group: &[GroupEntry],
) -> Result<(u32, u32), UserError> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if u.is_empty() {
        return Err(UserError::Invalid(spec.to_string()));
    }
    let uid = match numeric(u) {
        Some(n) => n,
        None => passwd
            .iter()
            .find(|p| p.name == u)
            .map(|p| p.uid)
            .ok_or_else(|| UserError::NoUser(u.to_string()))?,
    };
    let gid = match g {
        None => uid,
        Some("") => return Err(UserError::Invalid(spec.to_string())),
        Some(g) => resolve_group(g, group)?,
    };
    Ok((uid, gid))
}

fn resolve_group(g: &str, group: &[GroupEntry]) -> Result<u32, UserError> {
    match numeric(g) {
        Some(n) => Ok(n),
        None => group
            .iter()
            .find(|e| e.name == g)
            .map(|e| e.gid)
            .ok_or_else(|| UserError::NoGroup(g.to_string())),
    }
}

/// The identity a process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// Home directory (for `HOME` when unset).
    pub home: String,
}

/// Resolve `USER` for a RUN step as runc/libcontainer does: a name must exist; a
/// numeric uid need not (then gid 0, home `/`); the primary group comes from passwd
/// unless given; supplementary groups are those listing the user by name.
pub fn resolve_exec_user(
    spec: &str,
    passwd: &[PasswdEntry],
    group: &[GroupEntry],
) -> Result<ExecUser, UserError> {
    let spec = if spec.is_empty() { "0" } else { spec };
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let entry = match numeric(u) {
        Some(n) => passwd.iter().find(|p| p.uid == n).cloned(),
        None => Some(
            passwd
                .iter()
                .find(|p| p.name == u)
                .cloned()
                .ok_or_else(|| UserError::NoUser(u.to_string()))?,
        ),
    };
    let uid = numeric(u).unwrap_or_else(|| entry.as_ref().map(|e| e.uid).unwrap_or(0));
    let gid = match g {
        Some(g) if !g.is_empty() => resolve_group(g, group)?,
        _ => entry.as_ref().map(|e| e.gid).unwrap_or(0),
    };
    let groups = match (&entry, g) {
        (Some(e), None) => {
            let mut v: Vec<u32> = group
                .iter()
                .filter(|gr| gr.members.iter().any(|m| m == &e.name))
                .map(|gr| gr.gid)
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        }
        _ => Vec::new(),
    };
    Ok(ExecUser {
        uid,
        gid,
        groups,
        home: entry
            .map(|e| e.home)
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "/".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str =
        "root:x:0:0:root:/root:/bin/sh\n# c\napp:x:1000:1001::/home/app:/bin/sh\nbad line\n";
    const GROUP: &str = "root:x:0:\nstaff:x:50:app,other\napp:x:1001:\n";

    #[test]
    fn chown_rules() {
        let p = parse_passwd(PASSWD);
        let g = parse_group(GROUP);
        assert_eq!(resolve_chown("app", &p, &g).unwrap(), (1000, 1000));
        assert_eq!(resolve_chown("app:staff", &p, &g).unwrap(), (1000, 50));
        assert_eq!(resolve_chown("10:20", &p, &g).unwrap(), (10, 20));
        assert_eq!(resolve_chown("10", &p, &g).unwrap(), (10, 10));
        assert_eq!(
            resolve_chown("nobody", &p, &g).unwrap_err(),
            UserError::NoUser("nobody".into())
        );
        assert!(resolve_chown("app:nogroup", &p, &g).is_err());
    }

    #[test]
    fn exec_user_rules() {
        let p = parse_passwd(PASSWD);
        let g = parse_group(GROUP);
        let u = resolve_exec_user("app", &p, &g).unwrap();
        assert_eq!((u.uid, u.gid, u.groups.clone()), (1000, 1001, vec![50]));
        assert_eq!(u.home, "/home/app");
        let u = resolve_exec_user("4242", &p, &g).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (4242, 0, "/"));
        let u = resolve_exec_user("1000:0", &p, &g).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 0));
        assert!(resolve_exec_user("ghost", &p, &g).is_err());
    }
}
