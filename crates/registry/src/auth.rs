//! Credentials: Docker's `config.json`, podman's `auth.json`, credential helpers,
//! and writing the standard file for `hoist login` / `hoist logout`.
//!
//! Lookup order for a registry (first file with an entry wins), as podman and
//! Docker combined do it:
//!
//! 1. credentials given explicitly in [`AuthConfig::explicit`];
//! 2. the files in [`AuthConfig::files`] if set, otherwise
//!    `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`,
//!    `~/.config/containers/auth.json`, `$DOCKER_CONFIG/config.json`
//!    (or `~/.docker/config.json`).
//!
//! In each file `credHelpers[host]` runs `docker-credential-<helper> get`, then
//! `auths` is searched (keys may be `host`, `https://host/v1/`, or `host/namespace`
//! for a repository-specific entry, longest match first), then `credsStore`.
//!
//! This is written here rather than taken from the `docker_credential` crate because
//! that crate reads only Docker's `config.json` and cannot write it: hoist also needs
//! podman's files and `$REGISTRY_AUTH_FILE`, namespace-scoped entries, OAuth2
//! identity tokens, and `login`/`logout` (including `store`/`erase` through helpers).

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::reference::{DOCKER_HUB, DOCKER_HUB_AUTH_KEY};
use crate::{Error, Result};

/// Credentials for one registry. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A user name and password (or personal access token).
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
    /// An OAuth2 refresh token (`identitytoken` in `config.json`).
    IdentityToken(String),
    /// A bearer token to send as is (`registrytoken`).
    RegistryToken(String),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Basic { username, .. } => {
                write!(f, "Basic({username}:<redacted>)")
            }
            Credential::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
            Credential::RegistryToken(_) => f.write_str("RegistryToken(<redacted>)"),
        }
    }
}

/// Where credentials come from.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// Credentials given on the command line, by registry host (`docker.io`, `localhost:5000`).
    pub explicit: BTreeMap<String, Credential>,
    /// Credential files to read, in order; `None` means the standard discovery.
    pub files: Option<Vec<PathBuf>>,
    /// Never read any file or run any helper (anonymous unless `explicit`).
    pub anonymous: bool,
}

impl AuthConfig {
    /// The files searched, in order (only those that exist are read).
    pub fn search_path(&self) -> Vec<PathBuf> {
        if let Some(f) = &self.files {
            return f.clone();
        }
        let mut out = Vec::new();
        if let Some(p) = env_path("REGISTRY_AUTH_FILE") {
            out.push(p);
        }
        if let Some(p) = env_path("XDG_RUNTIME_DIR") {
            out.push(p.join("containers/auth.json"));
        }
        if let Some(h) = home() {
            out.push(h.join(".config/containers/auth.json"));
        }
        out.push(docker_config_path());
        out
    }

    /// Find credentials for `registry` (and optionally a repository, for
    /// namespace-specific entries). `Ok(None)` means anonymous.
    pub fn lookup(&self, registry: &str, repository: Option<&str>) -> Result<Option<Credential>> {
        if let Some(c) = self.explicit.get(registry) {
            return Ok(Some(c.clone()));
        }
        if self.anonymous {
            return Ok(None);
        }
        for path in self.search_path() {
            let Some(doc) = read_json(&path)? else {
                continue;
            };
            if let Some(c) = lookup_in(&doc, &path, registry, repository)? {
                tracing::debug!(registry, file = %path.display(), "using stored credentials");
                return Ok(Some(c));
            }
        }
        Ok(None)
    }
}

fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn home() -> Option<PathBuf> {
    env_path("HOME")
}

/// Docker's config file: `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`.
pub fn docker_config_path() -> PathBuf {
    match env_path("DOCKER_CONFIG") {
        Some(d) => d.join("config.json"),
        None => home()
            .unwrap_or_else(|| PathBuf::from("/root"))
            .join(".docker/config.json"),
    }
}

/// The file `hoist login` writes by default: `$REGISTRY_AUTH_FILE` if set, else
/// Docker's config file.
pub fn default_login_file() -> PathBuf {
    env_path("REGISTRY_AUTH_FILE").unwrap_or_else(docker_config_path)
}

fn read_json(path: &Path) -> Result<Option<Value>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::Io {
                path: path.to_path_buf(),
                source: e,
            })
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Some(json!({})));
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Error::Credentials(format!("{}: invalid JSON: {e}", path.display())))
}

/// Normalise an `auths` key to `host[/path]`: drop the scheme and Docker's `/v1/` suffix.
fn normalize_key(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let k = k.trim_end_matches('/');
    let k = k
        .strip_suffix("/v1")
        .or_else(|| k.strip_suffix("/v2"))
        .unwrap_or(k);
    let (host, rest) = match k.split_once('/') {
        Some((h, r)) => (h, Some(r)),
        None => (k, None),
    };
    let host = match host {
        "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB,
        h => h,
    };
    match rest {
        Some(r) => format!("{host}/{r}"),
        None => host.to_string(),
    }
}

/// The server name a credential helper is asked about.
fn helper_server(registry: &str) -> &str {
    if registry == DOCKER_HUB {
        DOCKER_HUB_AUTH_KEY
    } else {
        registry
    }
}

fn lookup_in(
    doc: &Value,
    path: &Path,
    registry: &str,
    repository: Option<&str>,
) -> Result<Option<Credential>> {
    if let Some(helper) = doc
        .get("credHelpers")
        .and_then(Value::as_object)
        .and_then(|m| {
            m.iter()
                .find(|(k, _)| normalize_key(k) == registry)
                .map(|(_, v)| v)
        })
        .and_then(Value::as_str)
    {
        return helper_get(helper, helper_server(registry));
    }
    if let Some(auths) = doc.get("auths").and_then(Value::as_object) {
        let full = repository.map(|r| format!("{registry}/{r}"));
        let mut best: Option<(usize, &Value)> = None;
        for (k, v) in auths {
            let nk = normalize_key(k);
            let hit = nk == registry
                || full
                    .as_deref()
                    .is_some_and(|f| f == nk || f.starts_with(&format!("{nk}/")));
            if hit && best.is_none_or(|(len, _)| nk.len() > len) {
                best = Some((nk.len(), v));
            }
        }
        if let Some((_, entry)) = best {
            if let Some(c) = parse_entry(entry, path)? {
                return Ok(Some(c));
            }
        }
    }
    if let Some(store) = doc.get("credsStore").and_then(Value::as_str) {
        if !store.is_empty() {
            return helper_get(store, helper_server(registry));
        }
    }
    Ok(None)
}

fn parse_entry(entry: &Value, path: &Path) -> Result<Option<Credential>> {
    let s = |k: &str| {
        entry
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    if let Some(t) = s("identitytoken") {
        return Ok(Some(Credential::IdentityToken(t.to_string())));
    }
    if let Some(t) = s("registrytoken") {
        return Ok(Some(Credential::RegistryToken(t.to_string())));
    }
    if let Some(a) = s("auth") {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(a.trim())
            .map_err(|_| {
                Error::Credentials(format!("{}: an `auth` entry is not base64", path.display()))
            })?;
        let text = String::from_utf8(raw).map_err(|_| {
            Error::Credentials(format!("{}: an `auth` entry is not UTF-8", path.display()))
        })?;
        let (u, p) = text.split_once(':').ok_or_else(|| {
            Error::Credentials(format!(
                "{}: an `auth` entry is not user:password",
                path.display()
            ))
        })?;
        return Ok(Some(Credential::Basic {
            username: u.to_string(),
            password: p.to_string(),
        }));
    }
    if let (Some(u), Some(p)) = (s("username"), s("password")) {
        return Ok(Some(Credential::Basic {
            username: u.to_string(),
            password: p.to_string(),
        }));
    }
    Ok(None)
}

fn helper_program(helper: &str) -> Result<String> {
    if helper.is_empty()
        || !helper
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(Error::Credentials(format!(
            "invalid credential helper name {helper:?}"
        )));
    }
    Ok(format!("docker-credential-{helper}"))
}

fn run_helper(helper: &str, verb: &str, input: &[u8]) -> Result<(bool, Vec<u8>)> {
    let prog = helper_program(helper)?;
    let mut child = Command::new(&prog)
        .arg(verb)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Credentials(format!("running {prog}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input)
            .map_err(|e| Error::Credentials(format!("writing to {prog}: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Credentials(format!("running {prog}: {e}")))?;
    Ok((out.status.success(), out.stdout))
}

fn helper_get(helper: &str, server: &str) -> Result<Option<Credential>> {
    let (ok, stdout) = run_helper(helper, "get", server.as_bytes())?;
    if !ok {
        // Helpers answer "credentials not found in native keychain" with a failure.
        tracing::debug!(helper, server, "credential helper has no entry");
        return Ok(None);
    }
    #[derive(serde::Deserialize)]
    struct Out {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: String,
    }
    let o: Out = serde_json::from_slice(&stdout).map_err(|_| {
        Error::Credentials(format!(
            "docker-credential-{helper} returned something that is not credentials JSON"
        ))
    })?;
    if o.secret.is_empty() {
        return Ok(None);
    }
    if o.username == "<token>" {
        return Ok(Some(Credential::IdentityToken(o.secret)));
    }
    Ok(Some(Credential::Basic {
        username: o.username,
        password: o.secret,
    }))
}

fn helper_for<'a>(doc: &'a Value, registry: &str) -> Option<&'a str> {
    doc.get("credHelpers")
        .and_then(Value::as_object)
        .and_then(|m| {
            m.iter()
                .find(|(k, _)| normalize_key(k) == registry)
                .map(|(_, v)| v)
        })
        .and_then(Value::as_str)
        .or_else(|| doc.get("credsStore").and_then(Value::as_str))
        .filter(|s| !s.is_empty())
}

/// The key written for `registry` in `auths` (Docker Hub's legacy URL, else the host).
pub fn auth_key(registry: &str) -> String {
    if registry == DOCKER_HUB {
        DOCKER_HUB_AUTH_KEY.to_string()
    } else {
        registry.to_string()
    }
}

/// Store credentials for `registry` in `file` (Docker's format: `auths.<host>.auth` =
/// base64 of `user:password`), keeping everything else in the file. If the file names
/// a credential helper for that registry the helper stores them instead.
pub fn store_credentials(file: &Path, registry: &str, cred: &Credential) -> Result<()> {
    let mut doc = read_json(file)?.unwrap_or_else(|| json!({}));
    if !doc.is_object() {
        return Err(Error::Credentials(format!(
            "{}: not a JSON object",
            file.display()
        )));
    }
    if let Some(helper) = helper_for(&doc, registry).map(str::to_string) {
        let (user, secret) = match cred {
            Credential::Basic { username, password } => (username.as_str(), password.as_str()),
            Credential::IdentityToken(t) | Credential::RegistryToken(t) => ("<token>", t.as_str()),
        };
        let input = serde_json::to_vec(&json!({
            "ServerURL": helper_server(registry),
            "Username": user,
            "Secret": secret,
        }))
        .map_err(|e| Error::Credentials(e.to_string()))?;
        let (ok, _) = run_helper(&helper, "store", &input)?;
        if !ok {
            return Err(Error::Credentials(format!(
                "docker-credential-{helper} store failed"
            )));
        }
        return Ok(());
    }
    let obj = doc.as_object_mut().expect("checked above");
    let auths = obj
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    if !auths.is_object() {
        *auths = Value::Object(Map::new());
    }
    let auths = auths.as_object_mut().expect("just set");
    // Drop other spellings of the same registry so the new entry is the one found.
    auths.retain(|k, _| normalize_key(k) != registry);
    let entry = match cred {
        Credential::Basic { username, password } => json!({
            "auth": base64::engine::general_purpose::STANDARD
                .encode(format!("{username}:{password}")),
        }),
        Credential::IdentityToken(t) => json!({ "auth": "", "identitytoken": t }),
        Credential::RegistryToken(t) => json!({ "auth": "", "registrytoken": t }),
    };
    auths.insert(auth_key(registry), entry);
    write_json(file, &doc)
}

/// Remove stored credentials for `registry` from `file` (or its helper). Returns whether
/// anything was removed.
pub fn remove_credentials(file: &Path, registry: &str) -> Result<bool> {
    let Some(mut doc) = read_json(file)? else {
        return Ok(false);
    };
    if let Some(helper) = helper_for(&doc, registry).map(str::to_string) {
        let (ok, _) = run_helper(&helper, "erase", helper_server(registry).as_bytes())?;
        return Ok(ok);
    }
    let mut removed = false;
    if let Some(auths) = doc.get_mut("auths").and_then(Value::as_object_mut) {
        let before = auths.len();
        auths.retain(|k, _| normalize_key(k) != registry);
        removed = auths.len() != before;
    }
    if removed {
        write_json(file, &doc)?;
    }
    Ok(removed)
}

fn write_json(file: &Path, doc: &Value) -> Result<()> {
    let dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::Io {
        path: dir.to_path_buf(),
        source: e,
    })?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".hoist-auth-")
        .tempfile_in(dir)
        .map_err(|e| Error::Io {
            path: dir.to_path_buf(),
            source: e,
        })?;
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = tmp
            .as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600));
    }
    let mut bytes =
        serde_json::to_vec_pretty(doc).map_err(|e| Error::Credentials(e.to_string()))?;
    bytes.push(b'\n');
    tmp.write_all(&bytes).map_err(|e| Error::Io {
        path: file.to_path_buf(),
        source: e,
    })?;
    tmp.persist(file).map_err(|e| Error::Io {
        path: file.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(u: &str, p: &str) -> Credential {
        Credential::Basic {
            username: u.into(),
            password: p.into(),
        }
    }

    #[test]
    fn reads_docker_and_podman_files() {
        let dir = tempfile::tempdir().unwrap();
        let docker = dir.path().join("config.json");
        std::fs::write(
            &docker,
            r#"{"auths": {
                "https://index.docker.io/v1/": {"auth": "aHViOmh1YnBhc3M="},
                "localhost:5000": {"username": "u", "password": "p"},
                "localhost:5000/team": {"auth": "dGVhbTp0ZWFtcGFzcw=="},
                "tok.example:443": {"identitytoken": "refresh-me"}
            }}"#,
        )
        .unwrap();
        let podman = dir.path().join("auth.json");
        std::fs::write(&podman, r#"{"auths": {"quay.io": {"auth": "cTpx"}}}"#).unwrap();
        let cfg = AuthConfig {
            files: Some(vec![podman, docker]),
            ..Default::default()
        };
        assert_eq!(
            cfg.lookup("docker.io", Some("library/alpine")).unwrap(),
            Some(basic("hub", "hubpass"))
        );
        assert_eq!(
            cfg.lookup("localhost:5000", Some("app")).unwrap(),
            Some(basic("u", "p"))
        );
        assert_eq!(
            cfg.lookup("localhost:5000", Some("team/app")).unwrap(),
            Some(basic("team", "teampass"))
        );
        assert_eq!(cfg.lookup("quay.io", None).unwrap(), Some(basic("q", "q")));
        assert_eq!(
            cfg.lookup("tok.example:443", None).unwrap(),
            Some(Credential::IdentityToken("refresh-me".into()))
        );
        assert_eq!(cfg.lookup("other.example", None).unwrap(), None);
        // Secrets never show in Debug.
        let dbg = format!("{:?}", basic("hub", "hubpass"));
        assert!(!dbg.contains("hubpass"), "{dbg}");
    }

    #[test]
    fn store_and_remove_keep_other_fields() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("sub/config.json");
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(
            &f,
            r#"{"auths": {"a.example": {"auth": "eDp5"}}, "detachKeys": "ctrl-p"}"#,
        )
        .unwrap();
        store_credentials(&f, "docker.io", &basic("me", "s3cret")).unwrap();
        store_credentials(&f, "localhost:5000", &basic("x", "y")).unwrap();
        let doc: Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        assert_eq!(doc["detachKeys"], "ctrl-p");
        assert_eq!(
            doc["auths"]["https://index.docker.io/v1/"]["auth"],
            "bWU6czNjcmV0"
        );
        assert!(doc["auths"]["a.example"].is_object());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let cfg = AuthConfig {
            files: Some(vec![f.clone()]),
            ..Default::default()
        };
        assert_eq!(
            cfg.lookup("docker.io", None).unwrap(),
            Some(basic("me", "s3cret"))
        );
        assert!(remove_credentials(&f, "docker.io").unwrap());
        assert!(!remove_credentials(&f, "docker.io").unwrap());
        assert_eq!(cfg.lookup("docker.io", None).unwrap(), None);
        assert_eq!(
            cfg.lookup("localhost:5000", None).unwrap(),
            Some(basic("x", "y"))
        );
    }

    #[test]
    fn credential_helpers() {
        // A real helper program on PATH, answering like docker-credential-pass does.
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("docker-credential-hoisttest");
        let store = dir.path().join("stored");
        std::fs::write(
            &bin,
            format!(
                "#!/bin/sh\ncase \"$1\" in\n get) read s; if [ -f {0} ]; then cat {0}; else echo 'credentials not found' >&2; exit 1; fi;;\n store) cat > {0};;\n erase) rm -f {0};;\nesac\n",
                store.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let f = dir.path().join("config.json");
        std::fs::write(&f, r#"{"credHelpers": {"helped.example": "hoisttest"}}"#).unwrap();
        let path = format!(
            "{}:{}",
            dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        // Run the helper through PATH; set it for this process only.
        std::env::set_var("PATH", path);
        let cfg = AuthConfig {
            files: Some(vec![f.clone()]),
            ..Default::default()
        };
        assert_eq!(cfg.lookup("helped.example", None).unwrap(), None);
        store_credentials(&f, "helped.example", &basic("hu", "hp")).unwrap();
        assert_eq!(
            cfg.lookup("helped.example", None).unwrap(),
            Some(basic("hu", "hp"))
        );
        assert!(remove_credentials(&f, "helped.example").unwrap());
        assert_eq!(cfg.lookup("helped.example", None).unwrap(), None);
    }
}
