//! SSH sources for `RUN --mount=type=ssh`: an agent socket is used as is; private key
//! files (what `docker buildx build --ssh id=~/.ssh/id_ed25519` and oci-build-task's
//! `BUILDKIT_SSH` accept) are served by an `ssh-agent` started for the build and stopped
//! with it. The keys never enter the sandbox, only the agent socket does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// An `ssh-agent` holding some keys, killed (and its socket removed) on drop.
pub struct KeyAgent {
    child: Child,
    dir: tempfile::TempDir,
}

impl KeyAgent {
    /// The agent's socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("agent.sock")
    }

    /// Start an agent and add `keys` to it. `id` names the source in errors.
    pub fn start(id: &str, keys: &[PathBuf]) -> Result<KeyAgent> {
        let dir = tempfile::Builder::new()
            .prefix("hoist-ssh-")
            .tempdir()
            .map_err(|e| Error::io(std::env::temp_dir(), e))?;
        let sock = dir.path().join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                Error::Invalid(format!(
                    "--ssh {id}: a key file needs ssh-agent to serve it, which could not start \
                     ({e}); install openssh-client or pass an agent socket instead"
                ))
            })?;
        let mut agent = KeyAgent { child, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sock.exists() {
            if Instant::now() > deadline || agent.child.try_wait().ok().flatten().is_some() {
                return Err(Error::Invalid(format!(
                    "--ssh {id}: ssh-agent did not start"
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        for key in keys {
            agent.add(id, key)?;
        }
        Ok(agent)
    }

    fn add(&self, id: &str, key: &Path) -> Result<()> {
        // ssh-add refuses keys readable by others (CI inputs often are): add a private copy.
        let data = std::fs::read(key).map_err(|e| Error::io(key, e))?;
        let copy = self.dir.path().join("key");
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&copy)
                .map_err(|e| Error::io(&copy, e))?;
            f.write_all(&data).map_err(|e| Error::io(&copy, e))?;
        }
        let out = Command::new("ssh-add")
            .arg("-q")
            .arg(&copy)
            .env("SSH_AUTH_SOCK", self.socket())
            .env("SSH_ASKPASS_REQUIRE", "never")
            .env_remove("DISPLAY")
            .stdin(Stdio::null())
            .output();
        if let Err(e) = std::fs::remove_file(&copy) {
            tracing::warn!(path = %copy.display(), "copy of an ssh key not removed: {e}");
        }
        let out =
            out.map_err(|e| Error::Invalid(format!("--ssh {id}: cannot run ssh-add: {e}")))?;
        if !out.status.success() {
            return Err(Error::Invalid(format!(
                "--ssh {id}: {} is not a usable private key: {} (a key with a passphrase needs \
                 an agent: pass its socket, e.g. {id}=$SSH_AUTH_SOCK)",
                key.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }
}

impl Drop for KeyAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Turn `--ssh` sources into agent sockets: sockets stay, each id given key files gets its
/// own agent (returned: keep it alive for the build). Several key files for one id are
/// separated by commas in the path (`id=key1,key2`).
pub fn agent_sockets(
    sources: &BTreeMap<String, PathBuf>,
) -> Result<(BTreeMap<String, PathBuf>, Vec<KeyAgent>)> {
    use std::os::unix::fs::FileTypeExt;
    let mut out = BTreeMap::new();
    let mut agents = Vec::new();
    for (id, p) in sources {
        let parts: Vec<PathBuf> = p
            .to_string_lossy()
            .split(',')
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .collect();
        let is_socket = |p: &Path| {
            std::fs::metadata(p)
                .map(|m| m.file_type().is_socket())
                .unwrap_or(false)
        };
        if parts.len() == 1 && is_socket(&parts[0]) {
            out.insert(id.clone(), parts[0].clone());
            continue;
        }
        for k in &parts {
            match std::fs::metadata(k) {
                Ok(m) if m.is_file() => {}
                Ok(_) => {
                    return Err(Error::Invalid(format!(
                        "--ssh {id}: {} is neither an agent socket nor a key file",
                        k.display()
                    )))
                }
                Err(e) => return Err(Error::io(k, e)),
            }
        }
        let agent = KeyAgent::start(id, &parts)?;
        out.insert(id.clone(), agent.socket());
        agents.push(agent);
    }
    Ok((out, agents))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_are_served_by_an_agent_and_sockets_pass_through() {
        if Command::new("ssh-keygen").arg("-?").output().is_err() {
            eprintln!("ssh-keygen not installed: skipped");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let key = d.path().join("id");
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "hoist-test", "-f"])
            .arg(&key)
            .status()
            .unwrap();
        assert!(st.success());
        // World-readable, as files from a CI input often are.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (socks, agents) =
            agent_sockets(&BTreeMap::from([("git".to_string(), key.clone())])).unwrap();
        assert_eq!(agents.len(), 1);
        let listed = Command::new("ssh-add")
            .arg("-l")
            .env("SSH_AUTH_SOCK", &socks["git"])
            .output()
            .unwrap();
        let listed = String::from_utf8_lossy(&listed.stdout);
        assert!(
            listed.contains("hoist-test") && listed.contains("ED25519"),
            "{listed}"
        );
        // The agent's socket passes through as is.
        let (again, more) = agent_sockets(&socks).unwrap();
        assert!(more.is_empty());
        assert_eq!(again["git"], socks["git"]);
        let sock = socks["git"].clone();
        drop(agents);
        assert!(
            !sock.exists(),
            "the agent and its socket are gone with the build"
        );
        // Not a key.
        std::fs::write(d.path().join("junk"), "not a key").unwrap();
        let e = agent_sockets(&BTreeMap::from([("x".to_string(), d.path().join("junk"))]))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("not a usable private key"), "{e}");
    }
}
