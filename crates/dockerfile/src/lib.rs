//! A Dockerfile front end that means what BuildKit means.
//!
//! `hoist-dockerfile` parses every Dockerfile that BuildKit (the engine behind
//! `docker build`) accepts, into a typed model, and reproduces BuildKit's variable expansion
//! and `ARG`/`ENV` scoping so a build engine never re-implements those rules. It is a pure
//! library: no I/O, no dependency on the rest of hoist.
//!
//! # API at a glance
//!
//! | item | what it does |
//! | --- | --- |
//! | [`parse`]`(text, file) -> Result<`[`Dockerfile`]`, `[`Error`]`>` | the whole file |
//! | [`parse_instruction`]`(text)` | one instruction, e.g. an `ONBUILD` trigger from an image config |
//! | [`Dockerfile`] `{ directives, global_args, stages }` | the model; `Display`/[`Dockerfile::render`] print it back |
//! | [`Stage`] `{ name, from, instructions, span }` | a stage; [`From`] holds the unexpanded image and `--platform` |
//! | [`Instruction`] `{ span, original, kind }` | one instruction; [`InstructionKind`] has typed flags |
//! | [`lex::ShellLex`] | BuildKit's expansion: `process_word`, `process_words` |
//! | [`GlobalScope`] | meta ARGs, build args, platform args; `expand_from` |
//! | [`StageScope`] | per stage: `apply(&Instruction)` expands what BuildKit expands; `run_env`, `config_env`, `history_args` |
//! | [`ignore`] | `.dockerignore`: `parse_ignore_file`, `Matcher::matches`, `Matcher::may_reinclude_children` |
//!
//! [`Error`] holds one or more [`Diagnostic`]s, each with file, line, column, the offending
//! text and what was expected; it displays as
//! `Dockerfile:12:5: unknown instruction "FOO" (expected one of ADD, ARG, ...)`.
//!
//! # Limits on hostile input
//!
//! Dockerfiles come from untrusted pull requests, so every unbounded quantity has a bound
//! generous for real files, and exceeding it is a [`Diagnostic`] naming file and line,
//! never a crash: `${…}` nesting ([`lex::MAX_NESTING`], 64), one expanded word
//! ([`lex::MAX_WORD_BYTES`], 16 MiB), the ARG/ENV environment of a scope
//! ([`scope::MAX_ENV_BYTES`], 32 MiB), the number of stages ([`MAX_STAGES`], 256).
//! Displayed errors quote at most [`error::MAX_SHOWN_CHARS`] characters of the offending
//! line and at most [`error::MAX_SHOWN_DIAGNOSTICS`] problems; [`error::decode`] turns
//! bytes into text, naming line and column of invalid UTF-8. See docs/security.md.
//!
//! # Example
//!
//! ```
//! use std::collections::BTreeMap;
//! use hoist_dockerfile::{parse, GlobalScope, InstructionKind, Platforms, StageScope, DEFAULT_PATH_ENV};
//!
//! let text = "ARG BASE=alpine\nFROM ${BASE}:3.20 AS build\nARG BASE\nENV DIR=/src\nWORKDIR $DIR/$BASE\nRUN echo $DIR\n";
//! let df = parse(text, "Dockerfile").unwrap();
//! let build_args = BTreeMap::new();
//! let global = GlobalScope::new(&df, &build_args, &Platforms::host()).unwrap();
//! let stage = &df.stages[0];
//! assert_eq!(global.expand_from(stage).unwrap().0, "alpine:3.20");
//!
//! let mut scope = StageScope::new(&global, &[DEFAULT_PATH_ENV.to_string()]);
//! let mut expanded = Vec::new();
//! for instr in &stage.instructions {
//!     expanded.push(scope.apply(instr).unwrap());
//! }
//! assert!(matches!(&expanded[2].kind, InstructionKind::Workdir { path } if path == "/src/alpine"));
//! // shell-form RUN is left to the shell
//! assert_eq!(expanded[3].to_string(), "RUN echo $DIR");
//! assert!(scope.run_env().contains(&"BASE=alpine".to_string()));
//! assert!(!scope.config_env().iter().any(|e| e.starts_with("BASE=")));
//! ```
//!
//! # What "the same thing as BuildKit" covers
//!
//! * Parser directives `syntax`, `escape` (`\` or `` ` ``), `check`, case-insensitive, only
//!   at the top of the file before any instruction, blank line or other comment.
//! * Line continuations (comment and blank lines inside are skipped), CRLF, a trailing escape
//!   at end of file; shell form vs JSON (exec) form, and the fallback to shell form when the
//!   JSON is invalid (a JSON array of non-strings is an error).
//! * Heredocs on `RUN`, `COPY`, `ADD` (shell form only, also as `ONBUILD` triggers): `<<EOF`,
//!   `<<-EOF`, quoted delimiters (no expansion), several per instruction, `COPY <<EOF /path`.
//! * Every instruction and flag, with BuildKit's error messages (`Unknown flag: x`,
//!   `Duplicate flag specified: x`, `Missing a value on flag: x`, ...).
//! * Expansion: which instructions are expanded, with which environment (see
//!   [`StageScope::apply`]); `ENV` expands every pair with the environment from before the
//!   instruction; `ARG` defaults see earlier ARGs and ENV; `COPY --from` is never expanded.
//! * `ONBUILD`: `ONBUILD`, `FROM` and `MAINTAINER` triggers are errors; any other trigger is
//!   kept as BuildKit keeps it (its `expression`) and parsed when possible.
//!
//! * Build checks ([`checks`]): BuildKit's rules with its names, messages and URLs,
//!   `# check=skip=…;error=true`, as a pure function of the model and facts a build knows.
//!
//! Known limits: empty continuation lines are not reported (see [`checks`]); a value ending in the escape character can only be rendered as
//! the last instruction of a file, which is also the only place BuildKit's syntax allows it.
//!
//! # JSON schema (`hoist dockerfile parse --json`)
//!
//! The model serializes with serde. Optional fields are omitted when absent; booleans that
//! are false and empty lists are omitted where marked in the type docs.
//!
//! ```text
//! Dockerfile   { "directives": {"syntax"?, "escape"?, "check"?},
//!                "global_args": [Instruction],          // ARG instructions before FROM
//!                "stages": [Stage] }
//! Stage        { "name"?: string (lower-case), "from": From, "instructions": [Instruction], "span": Span }
//! From         { "image": string, "platform"?: string, "alias"?: string, "span": Span, "original": string }
//! Span         { "start_line": n, "end_line": n, "column": n }   // 1-based
//! Instruction  { "span": Span, "original": string, "instruction": KEYWORD, ...fields of the kind }
//!   RUN        cmd: Cmd, heredocs?: [Heredoc], mounts?: [Mount], network?: "default"|"none"|"host",
//!              security?: "sandbox"|"insecure"
//!   CMD, ENTRYPOINT  cmd: Cmd
//!   SHELL      shell: [string]
//!   LABEL      labels: [KeyValue]          ENV  vars: [KeyValue]
//!   MAINTAINER maintainer: string          EXPOSE  ports: [string] (sorted)
//!   ARG        args: [{"name", "default"?}]
//!   ADD        sources: [Source], dest, json?, chown?, chmod?, link?, keep_git_dir?, checksum?,
//!              unpack?: bool, exclude?: [string]
//!   COPY       sources: [Source], dest, json?, from?, chown?, chmod?, link?, parents?, exclude?
//!   VOLUME     volumes: [string], json?    USER  user    WORKDIR  path    STOPSIGNAL  signal
//!   ONBUILD    expression: string (as stored in the image config), trigger: Instruction | null
//!   HEALTHCHECK check: {"type": "none"} | {"type": "cmd", "cmd": Cmd, "interval"?, "timeout"?,
//!              "start_period"?, "start_interval"? (nanoseconds), "retries"?}
//! Cmd          {"shell": string} | {"exec": [string]}
//! KeyValue     {"key", "value", "legacy"?: true}    // legacy = `ENV key value`
//! Source       {"path": string} | {"heredoc": Heredoc}
//! Heredoc      {"token": "<<-\"EOF\"", "name": "EOF", "content": string, "chomp": bool, "expand": bool, "fd"?: n}
//! Mount        {"spec": string, "options": null | {"type": "bind"|"cache"|"tmpfs"|"secret"|"ssh",
//!              "target"?, "source"?, "from"?, "readonly": bool, "id"?, "sharing"?: "shared"|"private"|"locked",
//!              "required"?, "mode"?, "uid"?, "gid"?, "size"?, "env"?}}
//! ```
//!
//! Strings are stored as written: variables unexpanded and, where BuildKit keeps them at
//! parse time (ENV, LABEL, ARG values), quotes too. [`StageScope::apply`] gives the expanded
//! form.

pub mod checks;
pub mod error;
pub mod ignore;
pub mod lex;
pub mod model;
mod mount;
mod parse;
mod render;
pub mod scope;

pub use error::{Diagnostic, Error, Result};
pub use lex::{EnvLookup, LexError, ShellLex};
pub use model::*;
pub use parse::{edit_distance, INSTRUCTIONS, MAX_STAGES};
pub use scope::{
    exposed_ports, valid_signal, GlobalScope, Platforms, StageScope, DEFAULT_PATH_ENV, PROXY_ARGS,
};

/// Parses a Dockerfile. `file` names it in diagnostics.
///
/// Parsing continues after an error in one instruction, so the error lists every broken
/// instruction; an unterminated heredoc or a bad directive stops it.
pub fn parse(text: &str, file: &str) -> Result<Dockerfile> {
    parse::parse_dockerfile(text, file)
}

/// Parses a single instruction, such as an `ONBUILD` trigger stored in a base image's config
/// (which may carry heredoc bodies on the following lines).
pub fn parse_instruction(text: &str) -> Result<Instruction> {
    parse::parse_single(text, "ONBUILD")
}

/// Parses and returns the diagnostics only (what `hoist dockerfile check` prints).
pub fn check(text: &str, file: &str) -> Vec<Diagnostic> {
    match parse(text, file) {
        Ok(_) => Vec::new(),
        Err(e) => e.diagnostics,
    }
}

/// Parses and serializes the model as pretty JSON (what `hoist dockerfile parse --json` prints).
pub fn parse_to_json(text: &str, file: &str) -> Result<String> {
    let df = parse(text, file)?;
    Ok(serde_json::to_string_pretty(&df).unwrap_or_default())
}

#[cfg(test)]
mod bounds {
    //! Hostile Dockerfiles end in a clear error naming file and line, never a crash.
    use super::*;

    fn expand_all(text: &str) -> std::result::Result<(), Error> {
        let df = parse(text, "Dockerfile")?;
        let g = GlobalScope::new(&df, &Default::default(), &Platforms::host())?;
        for st in &df.stages {
            let mut s = StageScope::new(&g, &[scope::DEFAULT_PATH_ENV.to_string()]);
            for i in &st.instructions {
                s.apply(i)?;
            }
        }
        Ok(())
    }

    #[test]
    fn deep_nesting_is_an_error() {
        let n = 10_000;
        let word = format!("{}x{}", "${A:-".repeat(n), "}".repeat(n));
        let err = expand_all(&format!("FROM scratch\nENV B={word}\n")).unwrap_err();
        let shown = err.to_string();
        assert!(shown.starts_with("Dockerfile:2:"), "{shown}");
        assert!(shown.contains("nest deeper than"), "{shown}");
        assert!(shown.len() < 1000);
        // Real nesting still works.
        let ok = format!("{}x{}", "${A:-".repeat(20), "}".repeat(20));
        expand_all(&format!("FROM scratch\nENV B={ok}\n")).unwrap();
    }

    #[test]
    fn doubling_variables_are_bounded() {
        let lines: String = (0..30).map(|_| "ENV A=$A$A\n").collect();
        let err = expand_all(&format!("FROM scratch\nENV A=0123456789abcdef\n{lines}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("would exceed 16 MiB"), "{err}");
        // 16 bytes doubled: 2^20 * 16 = 16 MiB after 20 lines; line 2 + 21 fails.
        assert!(err.starts_with("Dockerfile:23:"), "{err}");
        // Many large variables: the environment is bounded.
        let big: String = (0..20).map(|i| format!("ENV V{i}=$A\n")).collect();
        let doubling: String = (0..19).map(|_| "ENV A=$A$A\n").collect();
        let err = expand_all(&format!(
            "FROM scratch\nENV A=0123456789abcdef\n{doubling}{big}"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("environment"), "{err}");
        // Global ARGs too.
        let args: String = (0..30).map(|_| "ARG A=$A$A\n").collect();
        let err = expand_all(&format!("ARG A=0123456789abcdef\n{args}FROM scratch\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("would exceed"), "{err}");
        // Replacement is bounded as well.
        let err = expand_all(
            "FROM scratch\nENV A=0123456789abcdef\nENV A=${A//?/$A}\nENV A=${A//?/$A}\nENV A=${A//?/$A}\nENV A=${A//?/$A}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("would exceed"), "{err}");
    }

    #[test]
    fn stage_count_is_bounded() {
        let chain = |n: usize| {
            let mut t = String::from("FROM scratch AS s0\n");
            for i in 1..n {
                t.push_str(&format!("FROM s{} AS s{i}\n", i - 1));
            }
            t
        };
        parse(&chain(MAX_STAGES), "Dockerfile").unwrap();
        let err = parse(&chain(2_000), "Dockerfile").unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("Dockerfile:{}:", MAX_STAGES + 1))
                && err.contains("too many build stages: 2000"),
            "{err}"
        );
    }
}
