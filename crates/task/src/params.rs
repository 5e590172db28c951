//! The task's params, read from the environment as Concourse passes them.
//!
//! Every param of oci-build-task is understood with the same meaning; hoist's own
//! params start with `HOIST_`. Parsing is strict: a misspelt or malformed param fails the
//! task before anything is built, and every problem is reported at once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hoist_engine::options::{PullPolicy, Secret};
use hoist_image::Platform;
use hoist_registry::{CaCert, Credential};

use crate::files;

/// One problem with one param.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    /// The param (environment variable) at fault.
    pub param: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl std::fmt::Display for ParamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.param, self.message)
    }
}

/// Every problem found in the params.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamErrors(pub Vec<ParamError>);

impl std::fmt::Display for ParamErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.as_slice() {
            [one] => write!(f, "bad task param {one}"),
            many => {
                write!(f, "{} bad task params:", many.len())?;
                for e in many {
                    write!(f, "\n  {e}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ParamErrors {}

/// Where the image a `IMAGE_ARG_*` param names comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageArg {
    /// The file or directory given.
    pub path: PathBuf,
    /// The value the build arg gets: a hoist image reference (`docker-archive:…`,
    /// `oci-archive:…`, `oci:…`) that `FROM` reads directly.
    pub reference: String,
}

/// The task's configuration, validated.
#[derive(Debug, Clone)]
pub struct TaskParams {
    /// The task's working directory: inputs and outputs are relative to it.
    pub workdir: PathBuf,
    /// `CONTEXT` (default `.`).
    pub context: PathBuf,
    /// `DOCKERFILE` (default `$CONTEXT/Dockerfile`).
    pub dockerfile: Option<PathBuf>,
    /// `TARGET` or the content of `TARGET_FILE`.
    pub target: Option<String>,
    /// `ADDITIONAL_TARGETS`.
    pub additional_targets: Vec<String>,
    /// `BUILD_ARG_*`, `BUILD_ARGS_FILE` and the `IMAGE_ARG_*` references.
    pub build_args: BTreeMap<String, String>,
    /// `LABEL_*` and `LABELS_FILE`.
    pub labels: BTreeMap<String, String>,
    /// `IMAGE_ARG_*`: build arg name → image.
    pub image_args: BTreeMap<String, ImageArg>,
    /// `IMAGE_PLATFORM` (comma-separated; several make an image index, which needs
    /// `OUTPUT_OCI`). Empty: the worker's platform.
    pub platforms: Vec<Platform>,
    /// `OUTPUT_OCI`.
    pub output_oci: bool,
    /// `UNPACK_ROOTFS`.
    pub unpack_rootfs: bool,
    /// `UNSAFE_FILES` (`skip`, the default, or `keep`): device nodes and setuid/setgid
    /// files in `rootfs/`.
    pub unsafe_files: hoist_engine::output::UnsafeFiles,
    /// `REGISTRY_MIRRORS`.
    pub registry_mirrors: Vec<String>,
    /// `HOIST_INSECURE_REGISTRIES`.
    pub insecure_registries: Vec<String>,
    /// `BUILDKIT_SECRET_*`, `BUILDKIT_SECRETTEXT_*`, `HOIST_SECRET_FILE_*`,
    /// `HOIST_SECRET_TEXT_*`.
    pub secrets: Vec<Secret>,
    /// `BUILDKIT_SSH`: id → key file or agent socket.
    pub ssh: BTreeMap<String, PathBuf>,
    /// `BUILDKIT_ADD_HOSTS`.
    pub add_hosts: Vec<(String, String)>,
    /// `DEBUG`.
    pub debug: bool,
    /// `LOCAL_CA_CERTIFICATE`.
    pub ca_certs: Vec<CaCert>,
    /// `DOCKER_USERNAME` + `DOCKER_PASSWORD` + `DOCKER_REGISTRY`: registry → credential.
    pub credentials: BTreeMap<String, Credential>,
    /// `HOIST_REGISTRY_AUTH`: a docker `config.json` document with `auths`.
    pub auth_json: Option<String>,
    /// `HOIST_BUILD_FILE`: several images from one file.
    pub build_file: Option<PathBuf>,
    /// `HOIST_CACHE_DIR`, else `./cache` when that directory exists.
    pub cache_dir: Option<PathBuf>,
    /// `HOIST_CACHE_MAX_SIZE` (default 10 GiB).
    pub cache_max_bytes: u64,
    /// `HOIST_TAGS`: names recorded in `image.tar` (`docker load` tags).
    pub tags: Vec<String>,
    /// `HOIST_PULL`.
    pub pull: PullPolicy,
    /// `HOIST_NO_CACHE`.
    pub no_cache: bool,
    /// `SOURCE_DATE_EPOCH`.
    pub source_date_epoch: Option<i64>,
    /// `CACHE_FROM`: `--cache-from` specs, one a line (or separated by spaces).
    pub cache_from: Vec<hoist_engine::remote_cache::CacheImport>,
    /// `CACHE_TO`: `--cache-to` specs, likewise.
    pub cache_to: Vec<hoist_engine::remote_cache::CacheExport>,
}

/// The default bound of the task cache.
pub const DEFAULT_CACHE_MAX_BYTES: u64 = 10 << 30;

const EXACT: &[&str] = &[
    "CONTEXT",
    "DOCKERFILE",
    "TARGET",
    "TARGET_FILE",
    "ADDITIONAL_TARGETS",
    "BUILD_ARGS_FILE",
    "LABELS_FILE",
    "IMAGE_PLATFORM",
    "OUTPUT_OCI",
    "UNPACK_ROOTFS",
    "UNSAFE_FILES",
    "REGISTRY_MIRRORS",
    "BUILDKIT_SSH",
    "BUILDKIT_ADD_HOSTS",
    "DEBUG",
    "LOCAL_CA_CERTIFICATE",
    "DOCKER_USERNAME",
    "DOCKER_PASSWORD",
    "DOCKER_REGISTRY",
    "SOURCE_DATE_EPOCH",
    "HOIST_BUILD_FILE",
    "HOIST_CACHE_DIR",
    "HOIST_CACHE_MAX_SIZE",
    "HOIST_TAGS",
    "HOIST_PULL",
    "HOIST_NO_CACHE",
    "CACHE_FROM",
    "CACHE_TO",
    "HOIST_INSECURE_REGISTRIES",
    "HOIST_REGISTRY_AUTH",
    "HOIST_LOG",
    "HOIST_PROGRESS",
];

const PREFIXES: &[&str] = &[
    "BUILD_ARG_",
    "LABEL_",
    "IMAGE_ARG_",
    "BUILDKIT_SECRET_",
    "BUILDKIT_SECRETTEXT_",
    "HOIST_SECRET_FILE_",
    "HOIST_SECRET_TEXT_",
];

/// Names that look like a misspelt param, with the param meant.
fn misspelling(name: &str) -> Option<String> {
    if EXACT.contains(&name)
        || PREFIXES
            .iter()
            .any(|p| name.starts_with(p) && name.len() > p.len())
    {
        return None;
    }
    // Plural prefixes and prefixes without a name.
    for (wrong, right) in [
        ("BUILD_ARGS_", "BUILD_ARG_"),
        ("LABELS_", "LABEL_"),
        ("IMAGE_ARGS_", "IMAGE_ARG_"),
        ("BUILDKIT_SECRETS_", "BUILDKIT_SECRET_"),
        ("BUILDKIT_SECRET_TEXT_", "BUILDKIT_SECRETTEXT_"),
        ("HOIST_SECRETS_", "HOIST_SECRET_FILE_"),
    ] {
        if let Some(rest) = name.strip_prefix(wrong) {
            return Some(format!("{right}{rest}"));
        }
    }
    for p in PREFIXES {
        if name == *p || name == p.trim_end_matches('_') {
            return Some(format!("{p}<NAME>"));
        }
    }
    // hoist's and BuildKit's namespaces are ours: anything else there is unknown.
    let reserved = name.starts_with("HOIST_") || name.starts_with("BUILDKIT_");
    if name.len() >= 6 {
        if let Some(k) = EXACT.iter().find(|k| k.starts_with(name)) {
            return Some(k.to_string());
        }
    }
    let best = EXACT
        .iter()
        .map(|k| (hoist_dockerfile::edit_distance(name, k), *k))
        .min()
        .filter(|(d, k)| reserved || (name.len() >= 6 && *d <= 2 && *d < k.len() / 3 + 1));
    match best {
        Some((_, k)) => Some(k.to_string()),
        None if reserved => Some("a known param".into()),
        None => None,
    }
}

struct Collector {
    errors: Vec<ParamError>,
}

impl Collector {
    fn err(&mut self, param: &str, message: impl Into<String>) {
        self.errors.push(ParamError {
            param: param.to_string(),
            message: message.into(),
        });
    }
}

/// Parse a boolean param the way Concourse users write them.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "" | "false" | "0" | "no" | "off" => Some(false),
        "true" | "1" | "yes" | "on" => Some(true),
        _ => None,
    }
}

/// A comma-separated platform list (`linux/amd64,linux/arm64`), duplicates dropped.
pub fn parse_platforms(s: &str) -> Result<Vec<Platform>, String> {
    hoist_engine::buildfile::parse_platforms(s)
}

/// What several platforms need from the other params: an image index only fits the OCI
/// layout (`OUTPUT_OCI`), never `image.tar`, and `rootfs/` is the worker's own platform,
/// which must be among them.
pub fn check_platforms(
    platforms: &[Platform],
    output_oci: bool,
    unpack_rootfs: bool,
) -> Result<(), String> {
    if platforms.len() < 2 {
        return Ok(());
    }
    let list = platforms
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(",");
    if !output_oci {
        return Err(format!(
            "{list}: several platforms make an image index, which only the OCI layout \
             output holds: set OUTPUT_OCI=true (image.tar, a docker-archive, holds one \
             platform)"
        ));
    }
    let host = Platform::host();
    if unpack_rootfs && !platforms.iter().any(|p| host.matches(p)) {
        return Err(format!(
            "{list}: UNPACK_ROOTFS unpacks the worker's platform ({host}), which is not \
             among them"
        ));
    }
    Ok(())
}

fn split_list(v: &str) -> Vec<String> {
    v.split(|c: char| c == ',' || c.is_whitespace())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

impl TaskParams {
    /// Read the params from an environment (`std::env::vars()` in the binary) for a task
    /// running in `workdir`.
    pub fn from_env(
        env: &BTreeMap<String, String>,
        workdir: &Path,
    ) -> Result<TaskParams, ParamErrors> {
        let mut c = Collector { errors: Vec::new() };
        for name in env.keys() {
            if let Some(meant) = misspelling(name) {
                c.err(name, format!("unknown param (did you mean {meant}?)"));
            }
        }
        let get = |k: &str| env.get(k).map(|s| s.as_str()).filter(|s| !s.is_empty());
        let path = |v: &str| {
            let p = Path::new(v);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                workdir.join(p)
            }
        };
        let bool_param = |c: &mut Collector, k: &str| match env.get(k) {
            None => false,
            Some(v) => parse_bool(v).unwrap_or_else(|| {
                c.err(k, format!("expected true or false, got {v:?}"));
                false
            }),
        };
        let output_oci = bool_param(&mut c, "OUTPUT_OCI");
        let unpack_rootfs = bool_param(&mut c, "UNPACK_ROOTFS");
        let debug = bool_param(&mut c, "DEBUG");
        let unsafe_files = match get("UNSAFE_FILES") {
            None => hoist_engine::output::UnsafeFiles::default(),
            Some(v) => hoist_engine::output::UnsafeFiles::parse(v).unwrap_or_else(|e| {
                c.err("UNSAFE_FILES", e.to_string());
                Default::default()
            }),
        };
        let no_cache = bool_param(&mut c, "HOIST_NO_CACHE");
        let (cache_from, cache_to) =
            crate::cache_params::parse(get("CACHE_FROM"), get("CACHE_TO"), workdir, &mut |k, m| {
                c.err(k, m)
            });

        let build_file = get("HOIST_BUILD_FILE").map(path);
        if let Some(f) = &build_file {
            if !f.is_file() {
                c.err("HOIST_BUILD_FILE", format!("{} is not a file", f.display()));
            }
            for k in [
                "CONTEXT",
                "DOCKERFILE",
                "TARGET",
                "TARGET_FILE",
                "ADDITIONAL_TARGETS",
            ] {
                if get(k).is_some() {
                    c.err(
                        k,
                        "cannot be combined with HOIST_BUILD_FILE (set it per image in the build file)",
                    );
                }
            }
        }

        let context = path(get("CONTEXT").unwrap_or("."));
        if build_file.is_none() && !context.is_dir() {
            c.err(
                "CONTEXT",
                format!(
                    "{} is not a directory (is the input missing?)",
                    context.display()
                ),
            );
        }
        let dockerfile = get("DOCKERFILE").map(path);
        if let Some(d) = &dockerfile {
            if !d.is_file() {
                c.err("DOCKERFILE", format!("{} is not a file", d.display()));
            }
        }
        let mut target = get("TARGET").map(str::to_string);
        if let Some(f) = get("TARGET_FILE") {
            let p = path(f);
            match std::fs::read_to_string(&p) {
                Ok(t) if !t.trim().is_empty() => {
                    if target.is_some() {
                        c.err("TARGET_FILE", "set both TARGET and TARGET_FILE; use one");
                    }
                    target = Some(t.trim().to_string());
                }
                Ok(_) => c.err("TARGET_FILE", format!("{} is empty", p.display())),
                Err(e) => c.err("TARGET_FILE", format!("cannot read {}: {e}", p.display())),
            }
        }
        let additional_targets = get("ADDITIONAL_TARGETS")
            .map(split_list)
            .unwrap_or_default();
        for t in &additional_targets {
            if t == "image" || t == "cache" || t.contains('/') {
                c.err(
                    "ADDITIONAL_TARGETS",
                    format!("target {t:?} cannot be an output directory name"),
                );
            }
        }

        let mut build_args = BTreeMap::new();
        if let Some(f) = get("BUILD_ARGS_FILE") {
            match files::read_kv_file(&path(f)) {
                Ok(m) => build_args.extend(m),
                Err(e) => c.err("BUILD_ARGS_FILE", e),
            }
        }
        let mut labels = BTreeMap::new();
        if let Some(f) = get("LABELS_FILE") {
            match files::read_kv_file(&path(f)) {
                Ok(m) => labels.extend(m),
                Err(e) => c.err("LABELS_FILE", e),
            }
        }
        let mut image_args = BTreeMap::new();
        let mut secrets: Vec<Secret> = Vec::new();
        for (k, v) in env {
            if let Some(name) = k.strip_prefix("BUILD_ARG_").filter(|n| !n.is_empty()) {
                build_args.insert(name.to_string(), v.clone());
            } else if let Some(name) = k.strip_prefix("LABEL_").filter(|n| !n.is_empty()) {
                labels.insert(name.to_string(), v.clone());
            } else if let Some(name) = k.strip_prefix("IMAGE_ARG_").filter(|n| !n.is_empty()) {
                if v.is_empty() {
                    c.err(
                        k,
                        "empty: expected the path of an image (docker-archive or OCI layout)",
                    );
                    continue;
                }
                match files::image_reference(&path(v)) {
                    Ok(reference) => {
                        image_args.insert(
                            name.to_string(),
                            ImageArg {
                                path: path(v),
                                reference,
                            },
                        );
                    }
                    Err(e) => c.err(k, e),
                }
            } else if let Some(id) = k
                .strip_prefix("BUILDKIT_SECRETTEXT_")
                .or_else(|| k.strip_prefix("HOIST_SECRET_TEXT_"))
                .filter(|n| !n.is_empty())
            {
                secrets.push(Secret {
                    id: id.to_string(),
                    value: v.clone().into_bytes(),
                });
            } else if let Some(id) = k
                .strip_prefix("BUILDKIT_SECRET_")
                .or_else(|| k.strip_prefix("HOIST_SECRET_FILE_"))
                .filter(|n| !n.is_empty())
            {
                let p = path(v);
                match std::fs::read(&p) {
                    Ok(value) => secrets.push(Secret {
                        id: id.to_string(),
                        value,
                    }),
                    Err(e) => c.err(k, format!("cannot read secret file {}: {e}", p.display())),
                }
            }
        }
        {
            let mut seen = std::collections::BTreeSet::new();
            for s in &secrets {
                if !seen.insert(s.id.clone()) {
                    c.err(
                        &format!("BUILDKIT_SECRET_{}", s.id),
                        "secret id given twice (as a file and as text)",
                    );
                }
            }
        }
        for (name, a) in &image_args {
            if build_args.contains_key(name) {
                c.err(
                    &format!("IMAGE_ARG_{name}"),
                    format!("build arg {name} is also set by BUILD_ARG_{name} or BUILD_ARGS_FILE"),
                );
            }
            build_args.insert(name.clone(), a.reference.clone());
        }

        let platforms = match get("IMAGE_PLATFORM").map(parse_platforms) {
            None => Vec::new(),
            Some(Ok(list)) => list,
            Some(Err(e)) => {
                c.err("IMAGE_PLATFORM", e);
                Vec::new()
            }
        };
        if let Err(e) = check_platforms(&platforms, output_oci, unpack_rootfs) {
            c.err("IMAGE_PLATFORM", e);
        }

        let registry_mirrors = get("REGISTRY_MIRRORS").map(split_list).unwrap_or_default();
        for m in &registry_mirrors {
            let host = m
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .trim_end_matches('/');
            if host.is_empty() || host.contains(' ') || host.contains('@') {
                c.err("REGISTRY_MIRRORS", format!("{m:?} is not a registry host"));
            }
        }
        let insecure_registries = get("HOIST_INSECURE_REGISTRIES")
            .map(split_list)
            .unwrap_or_default();

        // BuildKit's --ssh syntax: ID=SOCKET or ID=KEY[,KEY…]; several ids separated by
        // commas too (an item without '=' is one more key of the previous id).
        let mut ssh: BTreeMap<String, PathBuf> = BTreeMap::new();
        if let Some(v) = get("BUILDKIT_SSH") {
            let mut current: Option<String> = None;
            for item in split_list(v) {
                let (id, p) = match item.split_once('=') {
                    Some((id, p)) => (id.to_string(), p.to_string()),
                    None => (
                        current.clone().unwrap_or_else(|| "default".to_string()),
                        item.clone(),
                    ),
                };
                if id.is_empty() || p.is_empty() {
                    c.err("BUILDKIT_SSH", format!("{item:?}: expected ID=PATH"));
                    continue;
                }
                let p = path(&p);
                if !p.exists() {
                    c.err(
                        "BUILDKIT_SSH",
                        format!(
                            "{id}: {} does not exist (expected a private key file or an agent socket)",
                            p.display()
                        ),
                    );
                    continue;
                }
                let entry = ssh.entry(id.clone()).or_default();
                let joined = if entry.as_os_str().is_empty() {
                    p.display().to_string()
                } else {
                    format!("{},{}", entry.display(), p.display())
                };
                *entry = PathBuf::from(joined);
                current = Some(id);
            }
        }

        let mut add_hosts = Vec::new();
        if let Some(v) = get("BUILDKIT_ADD_HOSTS") {
            for item in split_list(v) {
                match hoist_engine::options::parse_add_host(&item) {
                    Ok(h) => add_hosts.push(h),
                    Err(e) => c.err("BUILDKIT_ADD_HOSTS", e),
                }
            }
        }

        let mut ca_certs = Vec::new();
        if let Some(v) = get("LOCAL_CA_CERTIFICATE") {
            let v = v.trim();
            let cert = if v.contains("-----BEGIN") {
                CaCert::Pem(v.to_string())
            } else {
                CaCert::File(path(v))
            };
            if let Err(e) = hoist_registry::validate_ca(&cert) {
                c.err(
                    "LOCAL_CA_CERTIFICATE",
                    format!("expected PEM certificates (or the path of a PEM file): {e}"),
                );
            } else {
                ca_certs.push(cert);
            }
        }

        let mut credentials = BTreeMap::new();
        let trio = [
            ("DOCKER_USERNAME", get("DOCKER_USERNAME")),
            ("DOCKER_PASSWORD", get("DOCKER_PASSWORD")),
            ("DOCKER_REGISTRY", get("DOCKER_REGISTRY")),
        ];
        match trio {
            [(_, Some(u)), (_, Some(p)), (_, Some(r))] => {
                match hoist_registry::normalize_registry(r) {
                    Ok(host) => {
                        credentials.insert(
                            host,
                            Credential::Basic {
                                username: u.to_string(),
                                password: p.to_string(),
                            },
                        );
                    }
                    Err(e) => c.err("DOCKER_REGISTRY", e.to_string()),
                }
            }
            [(_, None), (_, None), (_, None)] => {}
            _ => {
                let missing: Vec<&str> = trio
                    .iter()
                    .filter(|(_, v)| v.is_none())
                    .map(|(k, _)| *k)
                    .collect();
                c.err(
                    missing[0],
                    format!(
                        "registry credentials need DOCKER_USERNAME, DOCKER_PASSWORD and \
                         DOCKER_REGISTRY together; missing {}",
                        missing.join(", ")
                    ),
                );
            }
        }
        let auth_json = get("HOIST_REGISTRY_AUTH").map(str::to_string);
        if let Some(j) = &auth_json {
            match serde_json::from_str::<serde_json::Value>(j) {
                Ok(v) if v.get("auths").is_some_and(|a| a.is_object()) => {}
                _ => c.err(
                    "HOIST_REGISTRY_AUTH",
                    "expected a docker config.json document: {\"auths\": {\"HOST\": {\"auth\": \"BASE64(user:password)\"}}}",
                ),
            }
        }

        let cache_dir = match get("HOIST_CACHE_DIR") {
            Some(d) => Some(path(d)),
            None => Some(workdir.join("cache")).filter(|d| d.is_dir()),
        };
        let cache_max_bytes = match get("HOIST_CACHE_MAX_SIZE") {
            None => DEFAULT_CACHE_MAX_BYTES,
            Some(v) => match hoist_cache::parse_size(v) {
                Ok(n) => n,
                Err(e) => {
                    c.err("HOIST_CACHE_MAX_SIZE", e.to_string());
                    DEFAULT_CACHE_MAX_BYTES
                }
            },
        };
        let tags = get("HOIST_TAGS").map(split_list).unwrap_or_default();
        let pull = match get("HOIST_PULL").unwrap_or("missing") {
            "missing" | "false" => PullPolicy::Missing,
            "always" | "true" => PullPolicy::Always,
            "never" => PullPolicy::Never,
            other => {
                c.err(
                    "HOIST_PULL",
                    format!("expected missing, always or never, got {other:?}"),
                );
                PullPolicy::Missing
            }
        };
        let source_date_epoch = match get("SOURCE_DATE_EPOCH") {
            None => None,
            Some(v) => match v.trim().parse::<i64>() {
                Ok(n) if n >= 0 => Some(n),
                _ => {
                    c.err(
                        "SOURCE_DATE_EPOCH",
                        format!("expected seconds since 1970, got {v:?}"),
                    );
                    None
                }
            },
        };
        if let Some(v) = get("HOIST_PROGRESS") {
            if !["auto", "plain", "tty", "json", "quiet"].contains(&v) {
                c.err(
                    "HOIST_PROGRESS",
                    format!("expected auto, plain, tty, json or quiet, got {v:?}"),
                );
            }
        }

        if !c.errors.is_empty() {
            return Err(ParamErrors(c.errors));
        }
        Ok(TaskParams {
            workdir: workdir.to_path_buf(),
            context,
            dockerfile,
            target,
            additional_targets,
            build_args,
            labels,
            image_args,
            platforms,
            output_oci,
            unpack_rootfs,
            unsafe_files,
            registry_mirrors,
            insecure_registries,
            secrets,
            ssh,
            add_hosts,
            debug,
            ca_certs,
            credentials,
            auth_json,
            build_file,
            cache_dir,
            cache_max_bytes,
            tags,
            pull,
            no_cache,
            source_date_epoch,
            cache_from,
            cache_to,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn misspellings_are_caught_but_foreign_vars_pass() {
        for (name, meant) in [
            ("DOCKERFIEL", "DOCKERFILE"),
            ("CONTEXTS", "CONTEXT"),
            ("UNPACK_ROOTF", "UNPACK_ROOTFS"),
            ("OUTPUT_OCl", "OUTPUT_OCI"),
            ("BUILD_ARGS_foo", "BUILD_ARG_foo"),
            ("LABELS_a", "LABEL_a"),
            ("BUILD_ARG_", "BUILD_ARG_<NAME>"),
            ("ADDITIONAL_TARGET", "ADDITIONAL_TARGETS"),
            ("BUILDKIT_ADD_HOST", "BUILDKIT_ADD_HOSTS"),
            ("HOIST_CACHE_MAX", "HOIST_CACHE_MAX_SIZE"),
        ] {
            assert_eq!(misspelling(name).as_deref(), Some(meant), "{name}");
        }
        for ok in [
            "PATH",
            "HOME",
            "HOSTNAME",
            "TERM",
            "USER",
            "LANG",
            "SHLVL",
            "BUILD_ARG_x",
            "LABEL_org.opencontainers.image.title",
            "BUILDKIT_SECRETTEXT_token",
            "DOCKER_CONFIG",
            "REGISTRY_AUTH_FILE",
            "DEBIAN_FRONTEND",
            "TMPDIR",
        ] {
            assert_eq!(misspelling(ok), None, "{ok}");
        }
    }

    #[test]
    fn bools() {
        assert_eq!(parse_bool("TRUE"), Some(true));
        assert_eq!(parse_bool(""), Some(false));
        assert_eq!(parse_bool("ture"), None);
    }

    #[test]
    fn all_problems_are_reported_at_once() {
        let d = tempfile::tempdir().unwrap();
        let e = TaskParams::from_env(
            &env(&[
                ("OUTPUT_OCI", "ja"),
                ("CONTEXT", "missing"),
                ("BUILDKIT_ADD_HOSTS", "db=not-an-ip"),
                ("IMAGE_PLATFORM", "linux"),
                ("DOCKER_USERNAME", "u"),
            ]),
            d.path(),
        )
        .unwrap_err();
        let params: Vec<&str> = e.0.iter().map(|e| e.param.as_str()).collect();
        for p in [
            "OUTPUT_OCI",
            "CONTEXT",
            "BUILDKIT_ADD_HOSTS",
            "IMAGE_PLATFORM",
            "DOCKER_PASSWORD",
        ] {
            assert!(params.contains(&p), "{p} not in {e}");
        }
    }

    #[test]
    fn defaults_and_prefixes() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::create_dir(d.path().join("cache")).unwrap();
        let p = TaskParams::from_env(
            &env(&[
                ("BUILD_ARG_a", "1"),
                ("LABEL_l", "v"),
                ("BUILDKIT_SECRETTEXT_tok", "s3cret"),
                ("ADDITIONAL_TARGETS", "one, two"),
                ("BUILDKIT_ADD_HOSTS", "a=1.2.3.4,b=::1"),
                ("UNPACK_ROOTFS", "true"),
            ]),
            d.path(),
        )
        .unwrap();
        assert_eq!(p.context, d.path().join("."));
        assert_eq!(p.build_args["a"], "1");
        assert_eq!(p.labels["l"], "v");
        assert_eq!(p.secrets[0].id, "tok");
        assert_eq!(p.additional_targets, ["one", "two"]);
        assert_eq!(p.add_hosts.len(), 2);
        assert!(p.unpack_rootfs && !p.output_oci);
        assert_eq!(p.cache_dir, Some(d.path().join("cache")));
        assert_eq!(p.cache_max_bytes, DEFAULT_CACHE_MAX_BYTES);
    }

    #[test]
    fn platform_lists() {
        let l = parse_platforms("linux/amd64, linux/arm64,linux/amd64").unwrap();
        assert_eq!(l.len(), 2);
        assert!(parse_platforms("linux/amd64,linux").is_err());
        assert!(parse_platforms(" , ").is_err());
        assert!(check_platforms(&l[..1], false, true).is_ok());
        let e = check_platforms(&l, false, false).unwrap_err();
        assert!(e.contains("OUTPUT_OCI=true"), "{e}");
        assert!(check_platforms(&l, true, false).is_ok());
        let foreign = parse_platforms("linux/s390x,linux/riscv64").unwrap();
        let e = check_platforms(&foreign, true, true).unwrap_err();
        assert!(e.contains("UNPACK_ROOTFS"), "{e}");
    }
}
