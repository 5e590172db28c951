//! ARG/ENV scoping and expansion, as BuildKit's `dockerfile2llb` does it.
//!
//! * [`GlobalScope`] evaluates the ARGs before the first `FROM` ("meta args") in order, with
//!   build args overriding defaults and the automatic platform args (`TARGETPLATFORM`,
//!   `TARGETOS`, `TARGETARCH`, `TARGETVARIANT`, `BUILDPLATFORM`, `BUILDOS`, `BUILDARCH`,
//!   `BUILDVARIANT`) available; it expands `FROM` lines.
//! * [`StageScope`] follows one stage: the base image's environment, `ENV`, `ARG` (a global
//!   ARG is visible in a stage only once re-declared there), and expands each instruction's
//!   fields the way BuildKit does (never shell-form `RUN`/`CMD`/`ENTRYPOINT`, whose variables
//!   the shell expands at run time).

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{Diagnostic, Error};
use crate::lex::ShellLex;
use crate::model::*;
use crate::mount;

/// The `PATH` BuildKit gives a stage built `FROM scratch` (and images without `PATH`).
pub const DEFAULT_PATH_ENV: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Build args that BuildKit accepts without an `ARG` and passes to `RUN` only.
pub const PROXY_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// The build and target platforms, for the automatic platform args.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Platforms {
    /// Target OS (`linux`).
    pub target_os: String,
    /// Target architecture (`amd64`, `arm64`...).
    pub target_arch: String,
    /// Target variant (`v7`), may be empty.
    pub target_variant: String,
    /// Build OS.
    pub build_os: String,
    /// Build architecture.
    pub build_arch: String,
    /// Build variant, may be empty.
    pub build_variant: String,
}

fn format_platform(os: &str, arch: &str, variant: &str) -> String {
    if variant.is_empty() {
        format!("{os}/{arch}")
    } else {
        format!("{os}/{arch}/{variant}")
    }
}

impl Platforms {
    /// Both platforms set to `linux/<arch>` for the machine this runs on.
    pub fn host() -> Self {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platforms {
            target_os: "linux".into(),
            target_arch: arch.into(),
            target_variant: String::new(),
            build_os: "linux".into(),
            build_arch: arch.into(),
            build_variant: String::new(),
        }
    }

    /// The automatic args, sorted by name as BuildKit lists them.
    pub fn args(&self) -> Vec<(String, String)> {
        let mut v = vec![
            ("BUILDARCH".to_string(), self.build_arch.clone()),
            ("BUILDOS".to_string(), self.build_os.clone()),
            (
                "BUILDPLATFORM".to_string(),
                format_platform(&self.build_os, &self.build_arch, &self.build_variant),
            ),
            ("BUILDVARIANT".to_string(), self.build_variant.clone()),
            ("TARGETARCH".to_string(), self.target_arch.clone()),
            ("TARGETOS".to_string(), self.target_os.clone()),
            (
                "TARGETPLATFORM".to_string(),
                format_platform(&self.target_os, &self.target_arch, &self.target_variant),
            ),
            ("TARGETVARIANT".to_string(), self.target_variant.clone()),
        ];
        v.sort();
        v
    }
}

/// The largest environment (keys and values of every ARG and ENV in scope, in bytes:
/// 32 MiB). Each word is bounded by [`crate::lex::MAX_WORD_BYTES`]; this bounds their
/// sum, so many large variables cannot exhaust memory either. Linux refuses to exec with
/// more than a few MiB of environment anyway.
pub const MAX_ENV_BYTES: usize = 32 << 20;

fn env_too_large(bytes: usize) -> Option<String> {
    (bytes > MAX_ENV_BYTES).then(|| {
        format!(
            "the environment (ARG and ENV values in scope) would exceed {} MiB",
            MAX_ENV_BYTES >> 20
        )
    })
}

/// An ordered environment with BuildKit's add-or-replace semantics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct EnvList(Vec<(String, String)>);

impl EnvList {
    fn set(&mut self, k: &str, v: &str) {
        match self.0.iter_mut().find(|(key, _)| key == k) {
            Some(e) => e.1 = v.to_string(),
            None => self.0.push((k.to_string(), v.to_string())),
        }
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }
    fn lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
        move |k| self.get(k).map(str::to_string)
    }
    fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }
    fn bytes(&self) -> usize {
        self.0.iter().map(|(k, v)| k.len() + v.len() + 1).sum()
    }
}

fn diag_at(file: &str, span: Span, snippet: &str, message: String) -> Error {
    Error::single(Diagnostic {
        file: file.to_string(),
        line: span.start_line,
        column: span.column,
        end_line: span.end_line,
        snippet: snippet.to_string(),
        message,
        expected: None,
    })
}

/// The global (pre-`FROM`) scope of a build.
#[derive(Debug, Clone)]
pub struct GlobalScope {
    file: String,
    lex: ShellLex,
    build_args: BTreeMap<String, String>,
    meta: EnvList,
    declared: BTreeSet<String>,
}

impl GlobalScope {
    /// Evaluates the meta ARGs of `dockerfile` in order.
    ///
    /// `build_args` override defaults (and the automatic platform args); a meta ARG without a
    /// default and without a build arg stays unset.
    pub fn new(
        dockerfile: &Dockerfile,
        build_args: &BTreeMap<String, String>,
        platforms: &Platforms,
    ) -> Result<Self, Error> {
        Self::new_named(dockerfile, build_args, platforms, "Dockerfile")
    }

    /// Like [`GlobalScope::new`], naming the file `file` in diagnostics.
    pub fn new_named(
        dockerfile: &Dockerfile,
        build_args: &BTreeMap<String, String>,
        platforms: &Platforms,
        file: &str,
    ) -> Result<Self, Error> {
        let lex = ShellLex::new(dockerfile.escape());
        let mut meta = EnvList::default();
        for (k, v) in platforms.args() {
            let v = build_args.get(&k).cloned().unwrap_or(v);
            meta.set(&k, &v);
        }
        let file = file.to_string();
        let mut declared = BTreeSet::new();
        for instr in &dockerfile.global_args {
            let InstructionKind::Arg { args } = &instr.kind else {
                continue;
            };
            for a in args {
                declared.insert(a.name.clone());
                let value = match (build_args.get(&a.name), &a.default) {
                    (Some(v), _) => Some(v.clone()),
                    (None, Some(d)) => Some(
                        lex.process_word(d, &meta.lookup())
                            .map_err(|e| diag_at(&file, instr.span, d, e.to_string()))?,
                    ),
                    (None, None) => None,
                };
                if let Some(v) = value {
                    meta.set(&a.name, &v);
                    if let Some(m) = env_too_large(meta.bytes()) {
                        return Err(diag_at(&file, instr.span, &a.name, m));
                    }
                }
            }
        }
        Ok(GlobalScope {
            file,
            lex,
            build_args: build_args.clone(),
            meta,
            declared,
        })
    }

    /// Sets the file name used in diagnostics (default `Dockerfile`).
    pub fn with_file_name(mut self, file: &str) -> Self {
        self.file = file.to_string();
        self
    }

    /// The value of a meta arg (or automatic platform arg) as `FROM` lines see it.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.meta.get(key)
    }

    /// Every meta arg with a value, `K=V`, in definition order.
    pub fn env(&self) -> Vec<String> {
        self.meta.to_strings()
    }

    /// The build args given.
    pub fn build_args(&self) -> &BTreeMap<String, String> {
        &self.build_args
    }

    /// The lexer in use (escape character of the Dockerfile).
    pub fn lexer(&self) -> ShellLex {
        self.lex
    }

    /// Expands a stage's `FROM`: the base (image or stage name) and `--platform`.
    pub fn expand_from(&self, stage: &Stage) -> Result<(String, Option<String>), Error> {
        let from = &stage.from;
        let image = self
            .lex
            .process_word(&from.image, &self.meta.lookup())
            .map_err(|e| diag_at(&self.file, from.span, &from.image, e.to_string()))?;
        if image.is_empty() {
            return Err(diag_at(
                &self.file,
                from.span,
                &from.image,
                format!("base name ({}) should not be blank", from.image),
            ));
        }
        let platform = match &from.platform {
            None => None,
            Some(p) => {
                let v = self.lex.process_word(p, &self.meta.lookup()).map_err(|e| {
                    diag_at(
                        &self.file,
                        from.span,
                        p,
                        format!("failed to process arguments for platform: {e}"),
                    )
                })?;
                if v.is_empty() {
                    return Err(diag_at(
                        &self.file,
                        from.span,
                        p,
                        format!("empty platform value from expression {p}"),
                    ));
                }
                Some(v)
            }
        };
        Ok((image, platform))
    }

    /// Build args that no ARG consumed (BuildKit warns about them), given the stages that were
    /// built. Proxy args and `BUILDKIT_*` args never count as unused.
    pub fn unused_build_args<'a, 'g: 'a>(
        &self,
        stages: impl IntoIterator<Item = &'a StageScope<'g>>,
    ) -> Vec<String> {
        let mut used = self.declared.clone();
        for s in stages {
            used.extend(s.declared.iter().cloned());
        }
        for (k, _) in Platforms::default().args() {
            used.insert(k);
        }
        self.build_args
            .keys()
            .filter(|k| {
                !used.contains(*k)
                    && !PROXY_ARGS.contains(&k.as_str())
                    && !k.starts_with("BUILDKIT_")
            })
            .cloned()
            .collect()
    }
}

/// The scope of one stage while its instructions are applied in order.
#[derive(Debug, Clone)]
pub struct StageScope<'g> {
    global: &'g GlobalScope,
    state_env: EnvList,
    config_env: EnvList,
    args: Vec<(String, Option<String>)>,
    declared: BTreeSet<String>,
}

impl<'g> StageScope<'g> {
    /// A stage whose base image has the environment `base_image_env` (`K=V` entries from its
    /// config; pass [`DEFAULT_PATH_ENV`] for `scratch`).
    pub fn new(global: &'g GlobalScope, base_image_env: &[String]) -> Self {
        let mut env = EnvList::default();
        for e in base_image_env {
            let (k, v) = e.split_once('=').unwrap_or((e.as_str(), ""));
            env.set(k, v);
        }
        StageScope {
            global,
            config_env: env.clone(),
            state_env: env,
            args: Vec::new(),
            declared: BTreeSet::new(),
        }
    }

    fn err(&self, instr: &Instruction, snippet: &str, msg: String) -> Error {
        let mut e = diag_at(&self.global.file, instr.span, snippet, msg);
        let first_line = instr.original.split('\n').next().unwrap_or_default();
        if let Some(b) = first_line.find(snippet).filter(|_| !snippet.is_empty()) {
            e.diagnostics[0].column = instr.span.column + first_line[..b].chars().count();
        }
        e
    }

    /// Expands one word with the stage environment (BuildKit `ProcessWord`).
    pub fn expand_word(&self, word: &str) -> Result<String, crate::lex::LexError> {
        self.global.lex.process_word(word, &self.state_env.lookup())
    }

    fn pw(&self, instr: &Instruction, word: &str) -> Result<String, Error> {
        self.expand_word(word)
            .map_err(|e| self.err(instr, word, e.to_string()))
    }

    fn pw_opt(&self, instr: &Instruction, word: &Option<String>) -> Result<Option<String>, Error> {
        word.as_ref().map(|w| self.pw(instr, w)).transpose()
    }

    fn sources(
        &self,
        instr: &Instruction,
        sources: &[CopySource],
    ) -> Result<Vec<CopySource>, Error> {
        let mut raw = ShellLex::new('\\');
        raw.skip_process_quotes = true;
        sources
            .iter()
            .map(|s| match s {
                CopySource::Path(p) => Ok(CopySource::Path(self.pw(instr, p)?)),
                CopySource::Heredoc(h) => {
                    let mut h = h.clone();
                    let body = h.effective_content();
                    h.content = if h.expand {
                        raw.process_word(&body, &self.state_env.lookup())
                            .map_err(|e| self.err(instr, &h.token, e.to_string()))?
                    } else {
                        body
                    };
                    h.chomp = false;
                    Ok(CopySource::Heredoc(h))
                }
            })
            .collect()
    }

    /// Applies `instr` to the scope and returns it with every field BuildKit expands expanded:
    /// `ENV`/`LABEL` keys and values, `ADD`/`COPY` sources, destination, `--chown`,
    /// `--checksum` (ADD) and heredoc bodies (unless the delimiter is quoted), `WORKDIR`, `USER`,
    /// `VOLUME`, `STOPSIGNAL`, `EXPOSE` (with word splitting), `RUN --mount` values, `ARG`
    /// values (resolved: build arg, else expanded default, else the global value).
    ///
    /// `--chmod` of `ADD`/`COPY` is expanded too (BuildKit v0.32's `Expand` does).
    ///
    /// `RUN`, `CMD`, `ENTRYPOINT`, `SHELL`, `HEALTHCHECK`, `MAINTAINER`, `ONBUILD`,
    /// `COPY --from` and `--exclude` are returned as they are, as in BuildKit
    /// (whose `Expand` methods leave them alone).
    pub fn apply(&mut self, instr: &Instruction) -> Result<Instruction, Error> {
        let kind = match &instr.kind {
            InstructionKind::Env { vars } => {
                let mut out = Vec::with_capacity(vars.len());
                for kv in vars {
                    out.push(KeyValue {
                        key: self.pw(instr, &kv.key)?,
                        value: self.pw(instr, &kv.value)?,
                        legacy: kv.legacy,
                    });
                }
                for kv in &out {
                    self.state_env.set(&kv.key, &kv.value);
                    self.config_env.set(&kv.key, &kv.value);
                }
                InstructionKind::Env { vars: out }
            }
            InstructionKind::Label { labels } => {
                let mut out = Vec::with_capacity(labels.len());
                for kv in labels {
                    out.push(KeyValue {
                        key: self.pw(instr, &kv.key)?,
                        value: self.pw(instr, &kv.value)?,
                        legacy: kv.legacy,
                    });
                }
                InstructionKind::Label { labels: out }
            }
            InstructionKind::Add {
                sources,
                dest,
                json,
                chown,
                chmod,
                link,
                keep_git_dir,
                checksum,
                unpack,
                exclude,
            } => InstructionKind::Add {
                chown: self.pw_opt(instr, chown)?,
                chmod: self.pw_opt(instr, chmod)?,
                checksum: self.pw_opt(instr, checksum)?,
                sources: self.sources(instr, sources)?,
                dest: self.pw(instr, dest)?,
                json: *json,
                link: *link,
                keep_git_dir: *keep_git_dir,
                unpack: *unpack,
                exclude: exclude.clone(),
            },
            InstructionKind::Copy {
                sources,
                dest,
                json,
                from,
                chown,
                chmod,
                link,
                parents,
                exclude,
            } => InstructionKind::Copy {
                chown: self.pw_opt(instr, chown)?,
                chmod: self.pw_opt(instr, chmod)?,
                sources: self.sources(instr, sources)?,
                dest: self.pw(instr, dest)?,
                json: *json,
                from: from.clone(),
                link: *link,
                parents: *parents,
                exclude: exclude.clone(),
            },
            InstructionKind::Workdir { path } => InstructionKind::Workdir {
                path: self.pw(instr, path)?,
            },
            InstructionKind::User { user } => InstructionKind::User {
                user: self.pw(instr, user)?,
            },
            InstructionKind::Volume { volumes, json } => {
                let mut out = Vec::with_capacity(volumes.len());
                for v in volumes {
                    let e = self.pw(instr, v)?;
                    if e.is_empty() {
                        return Err(self.err(
                            instr,
                            v,
                            "VOLUME specified can not be an empty string".into(),
                        ));
                    }
                    out.push(e);
                }
                InstructionKind::Volume {
                    volumes: out,
                    json: *json,
                }
            }
            InstructionKind::Stopsignal { signal } => {
                let s = self.pw(instr, signal)?;
                if !valid_signal(&s) {
                    return Err(self.err(instr, signal, format!("Invalid signal: {s}")));
                }
                InstructionKind::Stopsignal { signal: s }
            }
            InstructionKind::Expose { ports } => {
                let mut out = Vec::new();
                for p in ports {
                    let words = self
                        .global
                        .lex
                        .process_words(p, &self.state_env.lookup())
                        .map_err(|e| self.err(instr, p, e.to_string()))?;
                    out.extend(words);
                }
                exposed_ports(&out).map_err(|e| self.err(instr, &ports.join(" "), e))?;
                InstructionKind::Expose { ports: out }
            }
            InstructionKind::Run {
                cmd,
                heredocs,
                mounts,
                network,
                security,
            } => {
                let mut out = Vec::with_capacity(mounts.len());
                for m in mounts {
                    let opts = mount::parse_mount(&m.spec, &mut |v| {
                        self.expand_word(v).map_err(|e| e.to_string())
                    })
                    .map_err(|e| self.err(instr, &m.spec, e))?;
                    out.push(Mount {
                        spec: m.spec.clone(),
                        options: Some(opts),
                    });
                }
                InstructionKind::Run {
                    cmd: cmd.clone(),
                    heredocs: heredocs.clone(),
                    mounts: out,
                    network: *network,
                    security: *security,
                }
            }
            InstructionKind::Arg { args } => {
                let mut out = Vec::with_capacity(args.len());
                for a in args {
                    let has_value = self.global.build_args.get(&a.name);
                    let mut value = None;
                    if let Some(v) = has_value {
                        value = Some(v.clone());
                    } else if let Some(d) = &a.default {
                        value = Some(self.pw(instr, d)?);
                    } else if let Some(g) = self.global.meta.get(&a.name) {
                        value = Some(g.to_string());
                    }
                    if let Some(v) = &value {
                        self.state_env.set(&a.name, v);
                    }
                    self.args.push((a.name.clone(), value.clone()));
                    self.declared.insert(a.name.clone());
                    out.push(ArgDef {
                        name: a.name.clone(),
                        default: value,
                    });
                }
                InstructionKind::Arg { args: out }
            }
            other => other.clone(),
        };
        if let Some(m) = env_too_large(self.state_env.bytes().max(self.config_env.bytes())) {
            return Err(self.err(instr, "", m));
        }
        Ok(Instruction {
            span: instr.span,
            original: instr.original.clone(),
            kind,
        })
    }

    /// The environment a `RUN` sees: base image env, `ENV`, ARGs in scope with their values
    /// (in BuildKit's order), then proxy build args not otherwise set.
    pub fn run_env(&self) -> Vec<String> {
        let mut env = self.state_env.clone();
        // BuildKit reads each proxy setting case-insensitively from the build args and sets
        // both spellings in the container.
        for pair in PROXY_ARGS.chunks(2) {
            let value = self
                .global
                .build_args
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(pair[0]))
                .map(|(_, v)| v);
            if let Some(v) = value {
                for k in pair {
                    if env.get(k).is_none() {
                        env.set(k, v);
                    }
                }
            }
        }
        env.to_strings()
    }

    /// The environment that goes into the image config: base image env and `ENV` only.
    pub fn config_env(&self) -> Vec<String> {
        self.config_env.to_strings()
    }

    /// The ARGs in scope as BuildKit lists them in a `RUN`'s history (`|N K=V ... cmd`):
    /// `K=V` in declaration order, duplicates merged, value as the RUN sees it.
    pub fn history_args(&self) -> Vec<String> {
        let mut out: Vec<(String, String)> = Vec::new();
        for (k, v) in &self.args {
            let v = self
                .state_env
                .get(k)
                .map(str::to_string)
                .unwrap_or_else(|| v.clone().unwrap_or_default());
            match out.iter_mut().find(|(key, _)| key == k) {
                Some(e) => e.1 = v,
                None => out.push((k.clone(), v)),
            }
        }
        out.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
    }

    /// Names declared by `ARG` in this stage so far.
    pub fn declared_args(&self) -> &BTreeSet<String> {
        &self.declared
    }
}

const SIGNALS: [&str; 34] = [
    "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL",
    "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP",
    "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
];

/// moby `signal.ParseSignal` on Linux: a non-zero number, or a name with or without `SIG`.
pub fn valid_signal(s: &str) -> bool {
    if let Ok(n) = s.parse::<i64>() {
        return n != 0;
    }
    let up = s.to_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    if SIGNALS.contains(&name) || name == "RTMIN" || name == "RTMAX" {
        return true;
    }
    if let Some(n) = name.strip_prefix("RTMIN+") {
        return matches!(n.parse::<u8>(), Ok(1..=15)) && !n.starts_with('0');
    }
    if let Some(n) = name.strip_prefix("RTMAX-") {
        return matches!(n.parse::<u8>(), Ok(1..=14)) && !n.starts_with('0');
    }
    false
}

/// The image-config keys (`80/tcp`) for `EXPOSE` arguments, as docker's `nat.ParsePortSpecs`
/// computes them: default protocol `tcp`, ranges expanded, protocols `tcp`, `udp`, `sctp`.
pub fn exposed_ports(specs: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for raw in specs {
        let container = raw.rsplit(':').next().unwrap_or(raw);
        let parts: Vec<&str> = container.split('/').collect();
        let (proto, port) = if container.is_empty() || parts[0].is_empty() {
            ("", "")
        } else if parts.len() == 1 {
            ("tcp", container)
        } else if parts[1].is_empty() {
            ("tcp", parts[0])
        } else {
            (parts[1], parts[0])
        };
        if port.is_empty() {
            return Err(format!("no port specified: {raw}<empty>"));
        }
        let parse = |s: &str| {
            s.parse::<u16>()
                .ok()
                .filter(|_| s.bytes().all(|b| b.is_ascii_digit()))
        };
        let (start, end) = match port.split_once('-') {
            None => {
                let p = parse(port).ok_or_else(|| format!("invalid containerPort: {port}"))?;
                (p, p)
            }
            Some((a, b)) => {
                let a = parse(a).ok_or_else(|| format!("invalid containerPort: {port}"))?;
                let b = parse(b).ok_or_else(|| format!("invalid containerPort: {port}"))?;
                if b < a {
                    return Err(format!("invalid containerPort: {port}"));
                }
                (a, b)
            }
        };
        let proto = proto.to_lowercase();
        if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
            return Err(format!("invalid proto: {proto}"));
        }
        for p in start..=end {
            let key = format!("{p}/{proto}");
            if !out.contains(&key) {
                out.push(key);
            }
        }
    }
    Ok(out)
}
