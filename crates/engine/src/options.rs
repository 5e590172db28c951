//! Build options: everything `hoist build` can be told, validated.

use std::collections::BTreeMap;
use std::path::PathBuf;

use hoist_image::Platform;

use crate::error::{Error, Result};
use crate::output::OutputSpec;

/// When to contact the registry for a base image (`--pull`).
pub use hoist_registry::PullPolicy;

/// A secret for `RUN --mount=type=secret`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    /// The id RUN refers to.
    pub id: String,
    /// The value.
    pub value: Vec<u8>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Secret({}, <{} bytes redacted>)",
            self.id,
            self.value.len()
        )
    }
}

impl Secret {
    /// Parse `--secret id=ID[,src=FILE|,env=VAR]` (also `type=file|env`, `source=`,
    /// `required=`). With neither src nor env, the env var named `ID` or, failing that,
    /// a file named `ID` is used, as buildx does.
    pub fn parse(spec: &str) -> Result<Secret> {
        let mut id = None;
        let mut src = None;
        let mut env = None;
        let mut ty = None;
        for field in spec.split(',') {
            let (k, v) = field.split_once('=').ok_or_else(|| {
                Error::Invalid(format!("--secret {spec:?}: {field:?} is not KEY=VALUE"))
            })?;
            match k {
                "id" => id = Some(v.to_string()),
                "src" | "source" => src = Some(v.to_string()),
                "env" => env = Some(v.to_string()),
                "type" => ty = Some(v.to_string()),
                other => {
                    return Err(Error::Invalid(format!(
                        "--secret {spec:?}: unknown key {other:?}"
                    )))
                }
            }
        }
        let id = id.ok_or_else(|| Error::Invalid(format!("--secret {spec:?}: missing id=")))?;
        match ty.as_deref() {
            Some("env") if src.is_some() && env.is_none() => env = src.take(),
            None | Some("file") | Some("env") => {}
            Some(other) => {
                return Err(Error::Invalid(format!(
                    "--secret {spec:?}: unknown type {other:?} (expected file or env)"
                )))
            }
        }
        let value = if let Some(path) = src {
            std::fs::read(&path).map_err(|e| Error::io(path, e))?
        } else {
            let var = env.unwrap_or_else(|| id.clone());
            match std::env::var_os(&var) {
                Some(v) => v.into_encoded_bytes(),
                None => {
                    return Err(Error::Invalid(format!(
                        "--secret id={id}: environment variable {var} is not set"
                    )))
                }
            }
        };
        Ok(Secret { id, value })
    }
}

/// Where a named build context (`--build-context NAME=VALUE`) comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamedContext {
    /// A local directory.
    Dir(PathBuf),
    /// An image: `oci:`, `oci-archive:`, `docker-archive:` or `docker-image://REF`.
    Image(String),
}

impl NamedContext {
    /// Parse the VALUE of `--build-context NAME=VALUE`.
    pub fn parse(value: &str) -> NamedContext {
        for p in ["oci:", "oci-archive:", "docker-archive:", "oci-layout://"] {
            if value.starts_with(p) {
                let v = value.replacen("oci-layout://", "oci:", 1);
                return NamedContext::Image(v);
            }
        }
        if let Some(r) = value.strip_prefix("docker-image://") {
            return NamedContext::Image(format!("docker://{r}"));
        }
        NamedContext::Dir(PathBuf::from(value))
    }
}

/// Everything a build needs to know.
///
/// Paths are absolute: [`BuildOptions::new`] makes the context absolute, and [`crate::build`]
/// (like every build entry point) works on [`BuildOptions::absolute`], so a relative
/// path a caller sets later is taken relative to the process's current directory once,
/// before anything runs (RUN steps change directory; a relative bind-mount source or
/// cache directory would otherwise point somewhere else).
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The context directory.
    pub context: PathBuf,
    /// The Dockerfile (default `CONTEXT/Dockerfile`); `-` reads standard input.
    pub dockerfile: Option<PathBuf>,
    /// `--build-arg` values.
    pub build_args: BTreeMap<String, String>,
    /// `--target`.
    pub target: Option<String>,
    /// `--platform`: empty builds for the host; several build one image each, under an
    /// image index (see [`crate::build_images`]).
    pub platforms: Vec<Platform>,
    /// `-t` names.
    pub tags: Vec<String>,
    /// `--output` specs.
    pub outputs: Vec<OutputSpec>,
    /// `--label` values added to the final image.
    pub labels: BTreeMap<String, String>,
    /// Labels added only where neither the Dockerfile nor `--label` set them (provenance).
    pub default_labels: BTreeMap<String, String>,
    /// `--build-context` values.
    pub named_contexts: BTreeMap<String, NamedContext>,
    /// `--secret` values.
    pub secrets: Vec<Secret>,
    /// `--ssh` agent sockets by id.
    pub ssh: BTreeMap<String, PathBuf>,
    /// `--add-host` entries (host, ip).
    pub add_hosts: Vec<(String, String)>,
    /// `--network` default for RUN.
    pub network: Option<String>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// At most this many steps run at once (`--jobs`; `None`: one per CPU core).
    /// The result does not depend on it.
    pub jobs: Option<usize>,
    /// `--pull`.
    pub pull: PullPolicy,
    /// hoist's cache directory (blobs, unpacked layers, step cache).
    pub cache_dir: PathBuf,
    /// Keep the cache directory under this many bytes: after a successful build, evict
    /// least recently used entries until it fits ([`crate::gc::prune()`]; skipped while
    /// other builds use the cache). A bound smaller than the image just built evicts
    /// parts of it too: [`crate::BuildResult::built`] reads from the cache.
    pub cache_max_bytes: Option<u64>,
    /// `SOURCE_DATE_EPOCH` (from the environment or a build arg).
    pub source_date_epoch: Option<i64>,
    /// `--iidfile`.
    pub iidfile: Option<PathBuf>,
    /// `--metadata-file`.
    pub metadata_file: Option<PathBuf>,
    /// Registry client settings (credentials, CAs, insecure hosts, mirrors).
    pub registry: hoist_registry::ClientConfig,
    /// Bounds of `ADD https://…` downloads (`--max-download-size`, `--download-timeout`).
    pub download: crate::download::DownloadOptions,
    /// `--cache-from`: caches to reuse steps from (see [`crate::remote_cache`]).
    pub cache_from: Vec<crate::remote_cache::CacheImport>,
    /// `--cache-to`: where to export this build's steps.
    pub cache_to: Vec<crate::remote_cache::CacheExport>,
    /// `--provenance`, `--sbom`, `--attest`: attestations attached to every image (see
    /// [`crate::attestations`]).
    pub attest: hoist_attest::options::AttestOptions,
}

impl BuildOptions {
    /// How many steps may run at once: `jobs`, or the number of CPU cores.
    pub fn effective_jobs(&self) -> usize {
        self.jobs
            .filter(|j| *j > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// Options for building `context` with defaults for everything else.
    /// The context is made absolute against the current directory (see [`absolute`]).
    pub fn new(context: impl Into<PathBuf>) -> BuildOptions {
        let context = context.into();
        BuildOptions {
            context: absolute(&context),
            dockerfile: None,
            build_args: BTreeMap::new(),
            target: None,
            platforms: Vec::new(),
            tags: Vec::new(),
            outputs: Vec::new(),
            labels: BTreeMap::new(),
            default_labels: BTreeMap::new(),
            named_contexts: BTreeMap::new(),
            secrets: Vec::new(),
            ssh: BTreeMap::new(),
            add_hosts: Vec::new(),
            network: None,
            no_cache: false,
            jobs: None,
            pull: PullPolicy::default(),
            cache_dir: default_cache_dir(),
            cache_max_bytes: None,
            source_date_epoch: None,
            iidfile: None,
            metadata_file: None,
            registry: hoist_registry::ClientConfig::default(),
            download: crate::download::DownloadOptions::default(),
            cache_from: Vec::new(),
            cache_to: Vec::new(),
            attest: Default::default(),
        }
    }
}

impl BuildOptions {
    /// These options with every path made absolute against the current directory: the
    /// context, the Dockerfile (unless `-`), `--output` destinations (unless `-`), the cache
    /// directory, `--iidfile`, `--metadata-file`, directory build contexts and ssh sockets
    /// or key files. Every build entry point calls this first.
    pub fn absolute(&self) -> BuildOptions {
        let mut o = self.clone();
        o.context = absolute(&o.context);
        if let Some(d) = &o.dockerfile {
            if d.as_os_str() != "-" {
                o.dockerfile = Some(absolute(d));
            }
        }
        for spec in &mut o.outputs {
            spec.output.make_absolute();
        }
        o.cache_dir = absolute(&o.cache_dir);
        o.iidfile = o.iidfile.as_deref().map(absolute);
        o.metadata_file = o.metadata_file.as_deref().map(absolute);
        crate::remote_cache::spec::make_absolute(&mut o.cache_from, &mut o.cache_to);
        for c in o.named_contexts.values_mut() {
            if let NamedContext::Dir(d) = c {
                *d = absolute(d);
            }
        }
        for v in o.ssh.values_mut() {
            // ID=KEY[,KEY…]: each key file on its own.
            let parts: Vec<String> = v
                .to_string_lossy()
                .split(',')
                .map(|p| absolute(std::path::Path::new(p)).display().to_string())
                .collect();
            *v = PathBuf::from(parts.join(","));
        }
        o
    }

    /// The platforms to build, in order, duplicates dropped: [`BuildOptions::platforms`],
    /// or the host's when none was given.
    pub fn target_platforms(&self) -> Vec<Platform> {
        let mut out: Vec<Platform> = Vec::new();
        for p in &self.platforms {
            if !out.iter().any(|q| q.matches(p) && p.matches(q)) {
                out.push(p.clone());
            }
        }
        if out.is_empty() {
            out.push(Platform::host());
        }
        out
    }
}

/// One extra host entry as `docker build --add-host` and BuildKit's `add-hosts` take it:
/// `HOST=IP` or `HOST:IP` (the first `=`, else the first `:`), an IPv6 address optionally
/// in brackets (`db=[2001:db8::1]`). Returns (host, ip).
pub fn parse_add_host(s: &str) -> std::result::Result<(String, String), String> {
    let split = match s.split_once('=') {
        Some(p) => Some(p),
        None => s.split_once(':'),
    };
    let bad = || format!("{s:?}: expected HOST=IP (e.g. db.local=10.0.0.5)");
    let (host, ip) = split.ok_or_else(bad)?;
    let host = host.trim();
    let ip = ip.trim().trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(bad());
    }
    ip.parse::<std::net::IpAddr>().map_err(|_| {
        format!("{s:?}: {ip:?} is not an IP address (expected HOST=IP, e.g. db.local=10.0.0.5)")
    })?;
    Ok((host.to_string(), ip.to_string()))
}

/// `path` made absolute against the current directory, without touching the file system
/// (no symlink is resolved; `std::path::absolute`). An empty path and a path the current
/// directory cannot be found for are returned unchanged.
pub fn absolute(path: &std::path::Path) -> PathBuf {
    if path.as_os_str().is_empty() || path.is_absolute() {
        return path.to_path_buf();
    }
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// `$HOIST_CACHE_DIR`, else `$XDG_CACHE_HOME/hoist`, else `~/.cache/hoist`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("HOIST_CACHE_DIR") {
        return d.into();
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("hoist");
    }
    if let Some(h) = std::env::var_os("HOME") {
        return PathBuf::from(h).join(".cache/hoist");
    }
    std::env::temp_dir().join("hoist-cache")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_becomes_absolute() {
        let mut o = BuildOptions::new("ctx");
        assert!(o.context.is_absolute());
        o.context = "ctx".into();
        o.dockerfile = Some("df".into());
        o.cache_dir = "cache".into();
        o.iidfile = Some("iid".into());
        o.metadata_file = Some("meta.json".into());
        o.outputs
            .push(OutputSpec::parse("type=oci,dest=out/layout").unwrap());
        o.outputs.push(OutputSpec::parse("-").unwrap());
        o.named_contexts
            .insert("src".into(), NamedContext::Dir("src".into()));
        o.ssh.insert("k".into(), "a.key,b.key".into());
        let a = o.absolute();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(a.context, cwd.join("ctx"));
        assert_eq!(a.dockerfile, Some(cwd.join("df")));
        assert_eq!(a.cache_dir, cwd.join("cache"));
        assert_eq!(a.iidfile, Some(cwd.join("iid")));
        assert_eq!(a.metadata_file, Some(cwd.join("meta.json")));
        assert_eq!(
            a.outputs[0].output,
            crate::output::Output::OciLayout {
                dest: cwd.join("out/layout")
            }
        );
        assert_eq!(
            a.outputs[1].output,
            crate::output::Output::Tar { dest: "-".into() }
        );
        assert_eq!(a.named_contexts["src"], NamedContext::Dir(cwd.join("src")));
        assert_eq!(
            a.ssh["k"],
            PathBuf::from(format!(
                "{},{}",
                cwd.join("a.key").display(),
                cwd.join("b.key").display()
            ))
        );
        let mut stdin = BuildOptions::new("/c");
        stdin.dockerfile = Some("-".into());
        assert_eq!(stdin.absolute().dockerfile, Some("-".into()));
    }

    #[test]
    fn add_host_forms() {
        let ok = |s: &str| parse_add_host(s).unwrap();
        assert_eq!(ok("db=10.0.0.5"), ("db".into(), "10.0.0.5".into()));
        assert_eq!(ok("db:10.0.0.5"), ("db".into(), "10.0.0.5".into()));
        assert_eq!(ok("v6=[2001:db8::1]"), ("v6".into(), "2001:db8::1".into()));
        assert_eq!(ok("v6=::1"), ("v6".into(), "::1".into()));
        for bad in ["db", "=1.2.3.4", "db=notanip", "db=", "a b=1.2.3.4"] {
            assert!(parse_add_host(bad).is_err(), "{bad}");
        }
    }
}
