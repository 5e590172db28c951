//! Writing the helper's uid/gid maps from the parent.

use std::path::Path;
use std::process::Command;

use crate::caps::{Capabilities, IdMode, IdRange};
use crate::{Error, Result};

/// The `uid_map` and `gid_map` lines for a mode.
///
/// - `Root`: the identity of every id that exists in hoist's namespace (`0 0 4294967295`
///   on a host, e.g. `0 0 65536` as root of a container's user namespace);
/// - `SubIds`: container 0 is the user, then the subordinate ranges one after the other
///   (container ids `1..`), in `/etc/subuid` order;
/// - `Single`: container 0 is the user.
pub fn map_lines(mode: &IdMode) -> (String, String) {
    fn identity(r: &[IdRange]) -> String {
        r.iter()
            .map(|r| format!("{} {} {}\n", r.start, r.start, r.count))
            .collect()
    }
    fn subordinate(own: u32, r: &[IdRange]) -> String {
        let mut s = format!("0 {own} 1\n");
        let mut next: u64 = 1;
        for r in r {
            s.push_str(&format!("{next} {} {}\n", r.start, r.count));
            next += u64::from(r.count);
        }
        s
    }
    match mode {
        IdMode::Root { uids, gids, .. } => (identity(uids), identity(gids)),
        IdMode::SubIds {
            uid,
            gid,
            subuid,
            subgid,
        } => (subordinate(*uid, subuid), subordinate(*gid, subgid)),
        IdMode::Single { uid, gid } => (format!("0 {uid} 1\n"), format!("0 {gid} 1\n")),
    }
}

fn write(path: &str, content: &str) -> Result<()> {
    std::fs::write(path, content).map_err(|e| {
        Error::sys(
            format!(
                "write {:?} to {path}",
                content.trim_end().replace('\n', "; ")
            ),
            e,
        )
    })
}

fn run_tool(tool: &Path, pid: u32, lines: &str) -> Result<()> {
    let mut cmd = Command::new(tool);
    cmd.arg(pid.to_string());
    for l in lines.lines() {
        cmd.args(l.split_whitespace());
    }
    let out = cmd.output().map_err(|e| Error::io(tool, e))?;
    if !out.status.success() {
        return Err(Error::Unsupported(format!(
            "{} failed ({}): {}",
            tool.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Install the maps of process `pid`'s user namespace.
pub fn write_maps(pid: u32, mode: &IdMode, caps: &Capabilities) -> Result<()> {
    let (u, g) = map_lines(mode);
    match mode {
        IdMode::Root { .. } => {
            write(&format!("/proc/{pid}/uid_map"), &u)?;
            write(&format!("/proc/{pid}/gid_map"), &g)
        }
        IdMode::SubIds { .. } => {
            let (Some(nu), Some(ng)) = (&caps.newuidmap, &caps.newgidmap) else {
                return Err(Error::Unsupported("newuidmap/newgidmap not found".into()));
            };
            run_tool(nu, pid, &u)?;
            run_tool(ng, pid, &g)
        }
        IdMode::Single { .. } => {
            write(&format!("/proc/{pid}/setgroups"), "deny")?;
            write(&format!("/proc/{pid}/uid_map"), &u)?;
            write(&format!("/proc/{pid}/gid_map"), &g)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caps::IdRanges;

    #[test]
    fn lines() {
        let r = |start, count| IdRange { start, count };
        let (u, g) = map_lines(&IdMode::SubIds {
            uid: 1000,
            gid: 1001,
            subuid: IdRanges::truncated(&[r(100000, 65536)]).0,
            subgid: IdRanges::truncated(&[r(200000, 1000)]).0,
        });
        assert_eq!(u, "0 1000 1\n1 100000 65536\n");
        assert_eq!(g, "0 1001 1\n1 200000 1000\n");
        assert_eq!(map_lines(&IdMode::ROOT_FULL).0, "0 0 4294967295\n");
        // Several ranges: container ids continue where the previous range ended.
        let (u, _) = map_lines(&IdMode::SubIds {
            uid: 1000,
            gid: 1000,
            subuid: IdRanges::truncated(&[r(1, 999), r(1001, 64535), r(300000, 10)]).0,
            subgid: IdRanges::truncated(&[r(1, 999)]).0,
        });
        assert_eq!(u, "0 1000 1\n1 1 999\n1000 1001 64535\n65535 300000 10\n");
        assert_eq!(
            map_lines(&IdMode::Single { uid: 5, gid: 6 }),
            ("0 5 1\n".into(), "0 6 1\n".into())
        );
    }
}
