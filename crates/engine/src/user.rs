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

/// A number as Go's `strconv.ParseInt(s, 10, 32)` reads it (an optional sign, then
/// digits, within `i32`): what BuildKit's LLB `WithUser` takes for an id. Negative values
/// are treated as names (they name no valid owner).
fn chown_number(s: &str) -> Option<u32> {
    let digits = s.strip_prefix('+').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits
        .parse::<i64>()
        .ok()
        .filter(|n| *n <= i64::from(i32::MAX))
        .map(|n| n as u32)
}

/// An id as BuildKit's `parseUID` reads one: `root` is 0, else a number.
fn chown_id(s: &str) -> Option<u32> {
    if s == "root" {
        return Some(0);
    }
    chown_number(s)
}

/// Whether `--chown=SPEC` (or a `USER` for WORKDIR) can be resolved without reading the
/// image's `/etc/passwd` and `/etc/group`: every part is `root` or a number.
pub fn chown_needs_lookup(spec: &str) -> bool {
    spec.splitn(2, ':').any(|p| chown_id(p).is_none())
}

/// Resolve `--chown=USER[:GROUP]` (and the owner WORKDIR gives the directories it
/// creates under `USER`) as BuildKit's file operations do (LLB `WithUser` and the
/// solver's `readUser`), which never fail on an unknown name:
///
/// - the user part is `root` (0), a number (then it is the group too), or a name looked
///   up in `/etc/passwd` (its uid and primary gid); a name without an entry, or an image
///   without the file, gives 0:0;
/// - the group part is `root`, a number, or a name looked up in `/etc/group`; a name
///   without an entry leaves the group the user part gave.
pub fn resolve_chown(spec: &str, passwd: &[PasswdEntry], group: &[GroupEntry]) -> (u32, u32) {
    let mut parts = spec.splitn(2, ':');
    let u = parts.next().unwrap_or_default();
    let (uid, mut gid) = match chown_id(u) {
        Some(n) => (n, n),
        None => passwd
            .iter()
            .find(|p| p.name == u)
            .map(|p| (p.uid, p.gid))
            .unwrap_or((0, 0)),
    };
    if let Some(g) = parts.next() {
        match chown_id(g) {
            Some(n) => gid = n,
            None => {
                if let Some(e) = group.iter().find(|e| e.name == g) {
                    gid = e.gid;
                }
            }
        }
    }
    (uid, gid)
}

/// A user or group id as runc's `user.GetExecUser` reads it (`strconv.Atoi`): a number
/// (`Ok(Some)`), a name (`Ok(None)`), or out of range (`Err`).
fn exec_number(s: &str) -> Result<Option<u32>, ()> {
    if s.is_empty() {
        return Ok(None);
    }
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    match s.parse::<i64>() {
        Ok(n) if (0..=i64::from(i32::MAX)).contains(&n) => Ok(Some(n as u32)),
        _ => Err(()),
    }
}

/// The identity a process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// The process's group list (`setgroups`): the primary group first, then the
    /// supplementary groups, as BuildKit hands them to runc.
    pub groups: Vec<u32>,
    /// Home directory (for `HOME` when unset).
    pub home: String,
}

/// Resolve `USER` for a RUN step as BuildKit's executor (`oci.GetUser`) and runc do:
///
/// - empty: root (0:0);
/// - `UID:GID` with both parts numeric (or `root`): taken as they are, no lookup, no
///   supplementary groups;
/// - otherwise `user.GetExecUser`: the user part is a uid or a name in `/etc/passwd`
///   (a name must exist; a uid need not, then its group is 0); the group part, if
///   given, is a gid or a name in `/etc/group` (a name must exist); without a group
///   part a user found in passwd gets its primary group and, as supplementary groups,
///   every group that lists its name;
/// - the primary group is always in the group list (first, unless already there).
///
/// `HOME` is runc's: the home of the passwd entry with the resulting uid, else `/`.
pub fn resolve_exec_user(
    spec: &str,
    passwd: &[PasswdEntry],
    group: &[GroupEntry],
) -> Result<ExecUser, UserError> {
    let (uid, gid, mut groups) = exec_ids(spec, passwd, group)?;
    if !groups.contains(&gid) {
        groups.insert(0, gid);
    }
    let home = passwd
        .iter()
        .find(|p| p.uid == uid)
        .map(|p| p.home.clone())
        .unwrap_or_else(|| "/".into());
    Ok(ExecUser {
        uid,
        gid,
        groups,
        home,
    })
}

fn exec_ids(
    spec: &str,
    passwd: &[PasswdEntry],
    group: &[GroupEntry],
) -> Result<(u32, u32, Vec<u32>), UserError> {
    if spec.is_empty() {
        // No USER is uid 0, looked up like `USER 0`; if that fails, plain 0:0.
        return Ok(exec_ids("0", passwd, group).unwrap_or((0, 0, Vec::new())));
    }
    // BuildKit's fast path: both ids given, nothing is looked up.
    if let Some((u, g)) = spec.split_once(':') {
        if let (Some(u), Some(g)) = (exec_fast_id(u), exec_fast_id(g)) {
            return Ok((u, g, Vec::new()));
        }
    }
    let mut fields = spec.split(':');
    let user_arg = fields.next().unwrap_or_default();
    let group_arg = fields.next().unwrap_or_default();
    let range = |_| UserError::Invalid(spec.to_string());
    let uid_arg = exec_number(user_arg).map_err(range)?;
    let gid_arg = exec_number(group_arg).map_err(range)?;

    let found = if user_arg.is_empty() {
        passwd.iter().find(|p| p.uid == 0)
    } else {
        match uid_arg {
            Some(n) => passwd.iter().find(|p| p.uid == n),
            None => passwd.iter().find(|p| p.name == user_arg),
        }
    };
    let (uid, mut gid) = match (found, uid_arg) {
        (Some(e), _) => (e.uid, e.gid),
        (None, Some(n)) => (n, 0),
        (None, None) if user_arg.is_empty() => (0, 0),
        (None, None) => return Err(UserError::NoUser(user_arg.to_string())),
    };
    let mut groups = Vec::new();
    if !group_arg.is_empty() {
        let g = match gid_arg {
            Some(n) => group.iter().find(|g| g.gid == n),
            None => group.iter().find(|g| g.name == group_arg),
        };
        gid = match (g, gid_arg) {
            (Some(g), _) => g.gid,
            (None, Some(n)) => n,
            (None, None) => return Err(UserError::NoGroup(group_arg.to_string())),
        };
    } else if let Some(e) = found {
        groups = group
            .iter()
            .filter(|g| g.members.iter().any(|m| m == &e.name))
            .map(|g| g.gid)
            .collect();
    }
    Ok((uid, gid, groups))
}

/// An id of BuildKit's `ParseUIDGID` fast path: `root` or an unsigned 32-bit number.
fn exec_fast_id(s: &str) -> Option<u32> {
    if s == "root" {
        return Some(0);
    }
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n# c\napp:x:1000:1001::/home/app:/bin/sh\n\
                          daemon:x:1:1:daemon:/usr/sbin:/bin/false\nbad line\n";
    const GROUP: &str = "root:x:0:\nwheel:x:10:root\nstaff:x:50:app,other\napp:x:1001:\n\
                         extra:x:60:app\n";

    fn files() -> (Vec<PasswdEntry>, Vec<GroupEntry>) {
        (parse_passwd(PASSWD), parse_group(GROUP))
    }

    // COPY --chown / WORKDIR owner: BuildKit's readUser never fails on a name.
    #[test]
    fn chown_names_come_from_the_image_files() {
        let (p, g) = files();
        // A named user takes its passwd uid and primary gid.
        assert_eq!(resolve_chown("app", &p, &g), (1000, 1001));
        assert_eq!(resolve_chown("app:staff", &p, &g), (1000, 50));
        assert_eq!(resolve_chown("app:0", &p, &g), (1000, 0));
        // A number is the uid and, without a group part, the gid too.
        assert_eq!(resolve_chown("10", &p, &g), (10, 10));
        assert_eq!(resolve_chown("10:20", &p, &g), (10, 20));
        assert_eq!(resolve_chown("10:staff", &p, &g), (10, 50));
        assert_eq!(resolve_chown("root:root", &[], &[]), (0, 0));
        assert_eq!(resolve_chown("4242:root", &[], &[]), (4242, 0));
    }

    #[test]
    fn chown_unknown_names_map_to_root_or_keep_the_group() {
        let (p, g) = files();
        assert_eq!(resolve_chown("ghost", &p, &g), (0, 0));
        // No /etc/passwd at all (a scratch image): the same.
        assert_eq!(resolve_chown("ghost", &[], &[]), (0, 0));
        assert_eq!(resolve_chown("app", &[], &[]), (0, 0));
        // An unknown group keeps the gid the user part gave.
        assert_eq!(resolve_chown("1000:nogroup", &p, &g), (1000, 1000));
        assert_eq!(resolve_chown("app:nogroup", &p, &g), (1000, 1001));
        assert_eq!(resolve_chown("ghost:staff", &p, &g), (0, 50));
        // Go's ParseInt(s, 10, 32): beyond i32 is not a number, so a name.
        assert_eq!(resolve_chown("3000000000", &p, &g), (0, 0));
        assert_eq!(resolve_chown("+7", &p, &g), (7, 7));
    }

    #[test]
    fn chown_lookup_is_needed_only_for_names() {
        assert!(!chown_needs_lookup("0"));
        assert!(!chown_needs_lookup("10:20"));
        assert!(!chown_needs_lookup("root:root"));
        assert!(chown_needs_lookup("app"));
        assert!(chown_needs_lookup("10:staff"));
    }

    // RUN: BuildKit's oci.GetUser + runc's GetExecUser + ensureAdditionalGids.
    #[test]
    fn exec_user_puts_the_primary_group_first() {
        let (p, g) = files();
        // No USER is uid 0; root by name or by uid: its gid, then every group listing
        // "root".
        for spec in ["", "root", "0"] {
            let u = resolve_exec_user(spec, &p, &g).unwrap();
            assert_eq!(
                (u.uid, u.gid, u.groups.clone()),
                (0, 0, vec![0, 10]),
                "{spec}"
            );
        }
        let u = resolve_exec_user("app", &p, &g).unwrap();
        assert_eq!(
            (u.uid, u.gid, u.groups.clone()),
            (1000, 1001, vec![1001, 50, 60])
        );
        assert_eq!(u.home, "/home/app");
        let u = resolve_exec_user("daemon", &p, &g).unwrap();
        assert_eq!((u.uid, u.gid, u.groups), (1, 1, vec![1]));
    }

    #[test]
    fn exec_user_numeric_ids() {
        let (p, g) = files();
        // A uid without an entry: group 0, home /.
        let u = resolve_exec_user("4242", &p, &g).unwrap();
        assert_eq!(
            (u.uid, u.gid, u.groups, u.home.as_str()),
            (4242, 0, vec![0], "/")
        );
        // Both ids given: no lookup at all (no supplementary groups), HOME still by uid.
        let u = resolve_exec_user("1000:1000", &p, &g).unwrap();
        assert_eq!(
            (u.uid, u.gid, u.groups, u.home.as_str()),
            (1000, 1000, vec![1000], "/home/app")
        );
        let u = resolve_exec_user("root:root", &[], &[]).unwrap();
        assert_eq!((u.uid, u.gid, u.groups), (0, 0, vec![0]));
        // An explicit group replaces the primary one and drops supplementary groups.
        let u = resolve_exec_user("app:staff", &p, &g).unwrap();
        assert_eq!((u.uid, u.gid, u.groups), (1000, 50, vec![50]));
        let u = resolve_exec_user("4242:777", &p, &g).unwrap();
        assert_eq!((u.uid, u.gid), (4242, 777));
    }

    #[test]
    fn exec_user_names_must_exist() {
        let (p, g) = files();
        assert_eq!(
            resolve_exec_user("ghost", &p, &g).unwrap_err(),
            UserError::NoUser("ghost".into())
        );
        // Without /etc/passwd even root is a name that cannot be found (a uid is fine).
        assert!(resolve_exec_user("root", &[], &[]).is_err());
        let u = resolve_exec_user("", &[], &[]).unwrap();
        assert_eq!(
            (u.uid, u.gid, u.groups, u.home.as_str()),
            (0, 0, vec![0], "/")
        );
        assert_eq!(
            resolve_exec_user("app:nogroup", &p, &g).unwrap_err(),
            UserError::NoGroup("nogroup".into())
        );
        assert!(resolve_exec_user("99999999999", &p, &g).is_err());
    }
}
