//! The typed Dockerfile model.
//!
//! Every string is stored **as written** (variables unexpanded, quotes kept where BuildKit keeps
//! them at parse time). [`StageScope::apply`](crate::StageScope::apply) returns a copy of an
//! instruction with every field BuildKit expands expanded.

use serde::{Deserialize, Serialize};

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dockerfile {
    /// Parser directives found at the top of the file.
    pub directives: Directives,
    /// `ARG` instructions before the first `FROM` (BuildKit's "meta args").
    pub global_args: Vec<Instruction>,
    /// The build stages, in order.
    pub stages: Vec<Stage>,
}

impl Dockerfile {
    /// The escape character in force (`\` unless `# escape=` says otherwise).
    pub fn escape(&self) -> char {
        self.directives.escape.unwrap_or('\\')
    }

    /// The stage called `name` (stage names are case-insensitive).
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        let name = name.to_ascii_lowercase();
        self.stages
            .iter()
            .find(|s| s.name.as_deref() == Some(name.as_str()))
    }

    /// The same model with every source location and original text cleared, for comparing
    /// models parsed from different texts.
    pub fn without_source_info(&self) -> Dockerfile {
        let mut d = self.clone();
        for a in &mut d.global_args {
            a.clear_source_info();
        }
        for s in &mut d.stages {
            s.span = Span::default();
            s.from.span = Span::default();
            s.from.original.clear();
            for i in &mut s.instructions {
                i.clear_source_info();
            }
        }
        d
    }
}

/// Parser directives (`# syntax=`, `# escape=`, `# check=`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directives {
    /// `# syntax=` (the frontend image; hoist always uses its own front end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syntax: Option<String>,
    /// `# escape=`: `\` or `` ` ``.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escape: Option<char>,
    /// `# check=` (lint configuration; recorded, not interpreted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
}

/// A source location: 1-based line range and the column of the first character.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    /// First line.
    pub start_line: usize,
    /// Last line (including continuation lines and heredoc bodies).
    pub end_line: usize,
    /// 1-based column of the instruction keyword.
    pub column: usize,
}

/// A build stage: a `FROM` line and the instructions up to the next one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    /// The stage name (`AS name`), lower-cased as BuildKit does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The `FROM` instruction.
    pub from: From,
    /// The instructions of the stage, `FROM` excluded.
    pub instructions: Vec<Instruction>,
    /// From the `FROM` line to the last instruction.
    pub span: Span,
}

/// A `FROM` instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct From {
    /// The base: an image reference, a stage name or `scratch`, unexpanded.
    pub image: String,
    /// `--platform=`, unexpanded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// `AS name` as written (see [`Stage::name`] for the lower-cased form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// Location of the `FROM` line.
    pub span: Span,
    /// The `FROM` line as written.
    pub original: String,
}

/// One instruction with its location and original text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instruction {
    /// Where it is.
    pub span: Span,
    /// The logical line as BuildKit sees it (continuations joined, comments dropped);
    /// heredoc bodies are not included.
    pub original: String,
    /// What it is.
    #[serde(flatten)]
    pub kind: InstructionKind,
}

impl Instruction {
    /// An instruction without source information (for building models in code).
    pub fn new(kind: InstructionKind) -> Self {
        Instruction {
            span: Span::default(),
            original: String::new(),
            kind,
        }
    }

    /// The upper-case keyword (`RUN`, `COPY`, ...).
    pub fn keyword(&self) -> &'static str {
        self.kind.keyword()
    }

    pub(crate) fn clear_source_info(&mut self) {
        self.span = Span::default();
        self.original.clear();
        if let InstructionKind::Onbuild {
            trigger: Some(trigger),
            ..
        } = &mut self.kind
        {
            trigger.clear_source_info();
        }
    }
}

/// Shell form (a string run by the shell) or exec form (a JSON array).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShellOrExec {
    /// `RUN echo hi`: run with the stage's `SHELL`.
    Shell(String),
    /// `RUN ["echo", "hi"]`.
    Exec(Vec<String>),
}

impl ShellOrExec {
    /// True for exec (JSON) form.
    pub fn is_exec(&self) -> bool {
        matches!(self, ShellOrExec::Exec(_))
    }
}

/// A here-document (`<<EOF ... EOF`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heredoc {
    /// The delimiter word as written on the instruction line, e.g. `<<-"EOF"`.
    pub token: String,
    /// The delimiter, quotes removed (`EOF`); for `COPY` it is also the file name.
    pub name: String,
    /// The body exactly as written, each line with its line ending, terminator excluded.
    pub content: String,
    /// `<<-`: leading tabs are stripped from the body (see [`Heredoc::effective_content`]).
    pub chomp: bool,
    /// False when any part of the delimiter is quoted: the body is not expanded.
    pub expand: bool,
    /// The file descriptor before `<<` (`3<<EOF`), 0 when absent.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub fd: u32,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

impl Heredoc {
    /// The body with leading tabs removed when `chomp` is set (BuildKit `ChompHeredocContent`).
    pub fn effective_content(&self) -> String {
        if !self.chomp {
            return self.content.clone();
        }
        let mut out = String::with_capacity(self.content.len());
        let mut at_line_start = true;
        for c in self.content.chars() {
            if at_line_start && c == '\t' {
                continue;
            }
            at_line_start = c == '\n';
            out.push(c);
        }
        out
    }
}

/// A `KEY=value` pair of `ENV` or `LABEL`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    /// The key as written.
    pub key: String,
    /// The value as written (quotes kept).
    pub value: String,
    /// Legacy form `ENV key value` (the value is the rest of the line).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub legacy: bool,
}

/// One `ARG` declaration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArgDef {
    /// The name.
    pub name: String,
    /// The default value as written, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

/// A source of `ADD` or `COPY`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CopySource {
    /// A path, glob or URL.
    Path(String),
    /// A file created from a heredoc (`COPY <<EOF /dest`); its name is the delimiter.
    Heredoc(Heredoc),
}

/// `RUN --network=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    /// The default network.
    Default,
    /// No network.
    None,
    /// The host's network.
    Host,
}

/// `RUN --security=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Security {
    /// The default sandbox.
    Sandbox,
    /// Insecure (privileged) mode.
    Insecure,
}

/// The type of a `RUN --mount`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MountType {
    /// `type=bind` (the default).
    Bind,
    /// `type=cache`.
    Cache,
    /// `type=tmpfs`.
    Tmpfs,
    /// `type=secret`.
    Secret,
    /// `type=ssh`.
    Ssh,
}

/// Cache mount sharing mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sharing {
    /// Concurrent writers share the cache (default).
    Shared,
    /// A new cache is created for concurrent writers.
    Private,
    /// Writers wait for each other.
    Locked,
}

/// A `RUN --mount=...` flag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// The flag value as written (`type=cache,target=/root/.cache`).
    pub spec: String,
    /// The typed options. `None` when the spec uses variables: BuildKit only interprets such a
    /// mount once variables are expanded, which [`StageScope::apply`](crate::StageScope::apply)
    /// does (its result always has `Some`).
    pub options: Option<MountOptions>,
}

/// The typed options of a mount, with BuildKit's defaults applied (`readonly` is true for
/// bind, secret and ssh mounts unless `rw` is given, false for cache and tmpfs).
///
/// BuildKit accepts every key on every type and ignores those that do not apply; so does this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountOptions {
    /// The mount type.
    #[serde(rename = "type")]
    pub kind: MountType,
    /// `target=`/`dst=`/`destination=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// `source=`/`src=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// `from=`: a stage name, index or image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Read-only.
    pub readonly: bool,
    /// `id=` (cache, secret, ssh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `sharing=` (cache).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharing: Option<Sharing>,
    /// `required` (secret, ssh).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
    /// `mode=` in octal (cache, secret, ssh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// `uid=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// `gid=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// `size=` in bytes (tmpfs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    /// `env=` (secret): expose the secret as this environment variable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
}

/// `HEALTHCHECK`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: disable the base image's check.
    None,
    /// `HEALTHCHECK [OPTIONS] CMD ...`.
    Cmd {
        /// The test command (shell form becomes `CMD-SHELL` in the image config).
        cmd: ShellOrExec,
        /// `--interval`, nanoseconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interval: Option<i64>,
        /// `--timeout`, nanoseconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout: Option<i64>,
        /// `--start-period`, nanoseconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start_period: Option<i64>,
        /// `--start-interval`, nanoseconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start_interval: Option<i64>,
        /// `--retries`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retries: Option<i64>,
    },
}

/// Every instruction but `FROM`, with its typed arguments and flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "instruction", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InstructionKind {
    /// `RUN`.
    Run {
        /// The command; `<<EOF` words stay in the shell string.
        cmd: ShellOrExec,
        /// Heredoc bodies, in the order of their delimiters.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        heredocs: Vec<Heredoc>,
        /// `--mount` flags.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        mounts: Vec<Mount>,
        /// `--network`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        network: Option<Network>,
        /// `--security`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        security: Option<Security>,
    },
    /// `CMD`.
    Cmd {
        /// The command.
        cmd: ShellOrExec,
    },
    /// `ENTRYPOINT`.
    Entrypoint {
        /// The command.
        cmd: ShellOrExec,
    },
    /// `SHELL` (always JSON).
    Shell {
        /// The shell and its arguments.
        shell: Vec<String>,
    },
    /// `LABEL`.
    Label {
        /// The labels.
        labels: Vec<KeyValue>,
    },
    /// `MAINTAINER` (deprecated).
    Maintainer {
        /// The author.
        maintainer: String,
    },
    /// `EXPOSE`: ports as written, sorted as BuildKit sorts them.
    Expose {
        /// `80`, `8080/udp`, `1000-2000/tcp`, `$PORT`...
        ports: Vec<String>,
    },
    /// `ENV`.
    Env {
        /// The variables.
        vars: Vec<KeyValue>,
    },
    /// `ARG`.
    Arg {
        /// The declarations.
        args: Vec<ArgDef>,
    },
    /// `ADD`.
    Add {
        /// Sources.
        sources: Vec<CopySource>,
        /// Destination.
        dest: String,
        /// Sources and destination were a JSON array.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        json: bool,
        /// `--chown`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        chown: Option<String>,
        /// `--chmod` (octal or symbolic, as written).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        chmod: Option<String>,
        /// `--link`.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        link: bool,
        /// `--keep-git-dir`.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        keep_git_dir: bool,
        /// `--checksum`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        checksum: Option<String>,
        /// `--unpack` (absent: BuildKit's default, unpack local archives).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unpack: Option<bool>,
        /// `--exclude` patterns.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        exclude: Vec<String>,
    },
    /// `COPY`.
    Copy {
        /// Sources.
        sources: Vec<CopySource>,
        /// Destination.
        dest: String,
        /// Sources and destination were a JSON array.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        json: bool,
        /// `--from` (stage name, stage index or image; never expanded, as in BuildKit).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
        /// `--chown`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        chown: Option<String>,
        /// `--chmod`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        chmod: Option<String>,
        /// `--link`.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        link: bool,
        /// `--parents`.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        parents: bool,
        /// `--exclude` patterns.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        exclude: Vec<String>,
    },
    /// `VOLUME`.
    Volume {
        /// Mount points.
        volumes: Vec<String>,
        /// Written as a JSON array.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        json: bool,
    },
    /// `USER`.
    User {
        /// `user[:group]`.
        user: String,
    },
    /// `WORKDIR`.
    Workdir {
        /// The path.
        path: String,
    },
    /// `ONBUILD`.
    Onbuild {
        /// What BuildKit stores in the image config's `OnBuild` list.
        expression: String,
        /// The trigger, parsed; `None` when it does not parse (BuildKit accepts such a trigger
        /// and reports it only when a child image runs it).
        trigger: Option<Box<Instruction>>,
    },
    /// `STOPSIGNAL`.
    Stopsignal {
        /// Signal name or number.
        signal: String,
    },
    /// `HEALTHCHECK`.
    Healthcheck {
        /// The check.
        check: Healthcheck,
    },
}

impl InstructionKind {
    /// The upper-case keyword.
    pub fn keyword(&self) -> &'static str {
        match self {
            InstructionKind::Run { .. } => "RUN",
            InstructionKind::Cmd { .. } => "CMD",
            InstructionKind::Entrypoint { .. } => "ENTRYPOINT",
            InstructionKind::Shell { .. } => "SHELL",
            InstructionKind::Label { .. } => "LABEL",
            InstructionKind::Maintainer { .. } => "MAINTAINER",
            InstructionKind::Expose { .. } => "EXPOSE",
            InstructionKind::Env { .. } => "ENV",
            InstructionKind::Arg { .. } => "ARG",
            InstructionKind::Add { .. } => "ADD",
            InstructionKind::Copy { .. } => "COPY",
            InstructionKind::Volume { .. } => "VOLUME",
            InstructionKind::User { .. } => "USER",
            InstructionKind::Workdir { .. } => "WORKDIR",
            InstructionKind::Onbuild { .. } => "ONBUILD",
            InstructionKind::Stopsignal { .. } => "STOPSIGNAL",
            InstructionKind::Healthcheck { .. } => "HEALTHCHECK",
        }
    }
}
