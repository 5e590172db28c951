//! Writing the helper's uid/gid maps from the parent.

use std::path::Path;
use std::process::Command;

use crate::caps::{Capabilities, IdMode};
use crate::{Error, Result};

/// The `uid_map` and `gid_map` lines for a mode.
pub fn map_lines(mode: &IdMode) -> (String, String) {
    match mode {
        IdMode::Root => (
            "0 0 4294967295\n".to_string(),
            "0 0 4294967295\n".to_string(),
        ),
        IdMode::SubIds {
            uid,
            gid,
            subuid,
            subgid,
        } => (
            format!("0 {uid} 1\n1 {} {}\n", subuid.start, subuid.count),
            format!("0 {gid} 1\n1 {} {}\n", subgid.start, subgid.count),
        ),
        IdMode::Single { uid, gid } => (format!("0 {uid} 1\n"), format!("0 {gid} 1\n")),
    }
}

fn write(path: &str, content: &str) -> Result<()> {
    std::fs::write(path, content).map_err(|e| Error::io(Path::new(path), e))
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
        IdMode::Root => {
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
    use crate::caps::IdRange;

    #[test]
    fn lines() {
        let (u, g) = map_lines(&IdMode::SubIds {
            uid: 1000,
            gid: 1001,
            subuid: IdRange {
                start: 100000,
                count: 65536,
            },
            subgid: IdRange {
                start: 200000,
                count: 1000,
            },
        });
        assert_eq!(u, "0 1000 1\n1 100000 65536\n");
        assert_eq!(g, "0 1001 1\n1 200000 1000\n");
        assert_eq!(map_lines(&IdMode::Root).0, "0 0 4294967295\n");
    }
}
