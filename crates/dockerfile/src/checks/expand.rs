//! Checks that need variables expanded as the build expands them: undefined variables and
//! FROM arguments, base names that the defaults leave invalid, platform flags, relative
//! WORKDIRs, COPY of ignored files, and JSON arguments (which depend on the shell a stage
//! inherits).

use std::collections::{BTreeMap, BTreeSet};

use super::rules::*;
use super::syntax::written_keyword;
use super::{suggest, Facts, Sink};
use crate::{
    CopySource, Dockerfile, GlobalScope, Instruction, InstructionKind, Platforms, ShellOrExec,
    StageScope,
};

/// What a later stage built on this one inherits.
#[derive(Clone)]
struct StageOut {
    /// The config env, or `None` when the base's env is unknown.
    env: Option<Vec<String>>,
    shell: bool,
}

pub(super) fn check(df: &Dockerfile, facts: &Facts, sink: &mut Sink) {
    let platforms = Platforms::host();
    default_args_in_from(df, &platforms, sink);
    let Ok(global) = GlobalScope::new(df, &facts.build_args, &platforms) else {
        return; // the build reports the error itself
    };
    let mut from_keys: Vec<String> = platforms.args().into_iter().map(|(k, _)| k).collect();
    for i in &df.global_args {
        if let InstructionKind::Arg { args } = &i.kind {
            from_keys.extend(args.iter().map(|a| a.name.clone()));
        }
    }
    let lex = global.lexer();
    let meta = global.env();
    let mut done: Vec<StageOut> = Vec::new();
    for (idx, stage) in df.stages.iter().enumerate() {
        let line = stage.from.span.start_line;
        let image = match lex.process(&stage.from.image, &meta) {
            Ok(r) => {
                undefined_from_args(&r.unmatched, &from_keys, line, sink);
                r.word
            }
            Err(_) => String::new(),
        };
        if let Some(p) = &stage.from.platform {
            if let Ok(r) = lex.process(p, &meta) {
                undefined_from_args(&r.unmatched, &from_keys, line, sink);
                platform_flag(stage.name.as_deref(), p, &r, &global, line, sink);
            }
        }
        let parent = df.stages[..idx].iter().rposition(|s| {
            s.name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(&image))
        });
        let base = match parent {
            Some(p) => done[p].clone(),
            None if image.eq_ignore_ascii_case("scratch") => StageOut {
                env: Some(Vec::new()),
                shell: false,
            },
            None => match facts.base_images.get(&idx) {
                Some(b) => StageOut {
                    env: Some(b.env.clone()),
                    shell: b.shell,
                },
                None => StageOut {
                    env: None,
                    shell: false,
                },
            },
        };
        done.push(stage_checks(
            &global,
            &stage.instructions,
            base,
            facts,
            sink,
        ));
    }
}

fn stage_checks(
    global: &GlobalScope,
    instructions: &[Instruction],
    base: StageOut,
    facts: &Facts,
    sink: &mut Sink,
) -> StageOut {
    let known = base.env.is_some();
    let mut scope = StageScope::new(global, base.env.as_deref().unwrap_or_default());
    let mut shell = base.shell;
    let mut workdir_set = false;
    for instr in instructions {
        let line = instr.span.start_line;
        let name = written_keyword(&instr.original);
        if known {
            undefined_vars(global, &scope, instr, sink);
        }
        match &instr.kind {
            InstructionKind::Shell { .. } => shell = true,
            InstructionKind::Cmd {
                cmd: ShellOrExec::Shell(_),
            }
            | InstructionKind::Entrypoint {
                cmd: ShellOrExec::Shell(_),
            } if !shell => sink.warn(
                &JSON_ARGS_RECOMMENDED,
                line,
                format!(
                    "JSON arguments recommended for {name} to prevent unintended behavior \
                         related to OS signals"
                ),
            ),
            _ => {}
        }
        let Ok(expanded) = scope.apply(instr) else {
            // The build reports the expansion error; later findings would be guesses.
            return StageOut { env: None, shell };
        };
        match &expanded.kind {
            InstructionKind::Workdir { path } => {
                if !workdir_set && !path.starts_with('/') {
                    sink.warn(
                        &WORKDIR_RELATIVE_PATH,
                        line,
                        format!(
                            "Relative workdir {path:?} can have unexpected results if the base \
                             image changes"
                        ),
                    );
                }
                workdir_set = true;
            }
            InstructionKind::Copy {
                sources,
                from: None,
                ..
            } => ignored_sources(facts, sources, "Copy", line, sink),
            InstructionKind::Add { sources, .. } => {
                ignored_sources(facts, sources, "Add", line, sink)
            }
            _ => {}
        }
    }
    StageOut {
        env: known.then(|| scope.config_env()),
        shell,
    }
}

fn undefined_from_args(
    unmatched: &BTreeSet<String>,
    keys: &[String],
    line: usize,
    sink: &mut Sink,
) {
    for arg in unmatched {
        if keys.contains(arg) {
            continue;
        }
        let mut msg = format!("FROM argument '{arg}' is not declared");
        if let Some(s) = suggest(arg, keys.iter().map(String::as_str)) {
            msg.push_str(&format!(" (did you mean {s}?)"));
        }
        sink.warn(&UNDEFINED_ARG_IN_FROM, line, msg);
    }
}

fn platform_flag(
    stage: Option<&str>,
    raw: &str,
    r: &crate::lex::ProcessResult,
    global: &GlobalScope,
    line: usize,
    sink: &mut Sink,
) {
    if r.matched.len() == 1
        && r.unmatched.is_empty()
        && r.matched.contains("TARGETPLATFORM")
        && global.get("TARGETPLATFORM") == Some(r.word.as_str())
    {
        sink.warn(
            &REDUNDANT_TARGET_PLATFORM,
            line,
            format!(
                "Setting platform to predefined {raw} in FROM is redundant as this is the \
                 default behavior"
            ),
        );
    }
    if r.matched.is_empty() && r.unmatched.is_empty() {
        let mut parts = r.word.split('/');
        let (Some(os), Some(arch)) = (parts.next(), parts.next()) else {
            return;
        };
        if os.is_empty() || arch.is_empty() {
            return;
        }
        let name = stage.unwrap_or_default();
        if name.contains(os) || name.contains(arch) {
            return;
        }
        sink.warn(
            &FROM_PLATFORM_FLAG_CONST_DISALLOWED,
            line,
            format!(
                "FROM --platform flag should not use constant value {:?}",
                r.word
            ),
        );
    }
}

/// `InvalidDefaultArgInFrom`: with no build args at all, does every FROM still name a valid
/// image?
fn default_args_in_from(df: &Dockerfile, platforms: &Platforms, sink: &mut Sink) {
    let Ok(defaults) = GlobalScope::new(df, &BTreeMap::new(), platforms) else {
        return;
    };
    let meta = defaults.env();
    for stage in &df.stages {
        let Ok(name) = defaults.lexer().process_word(&stage.from.image, &meta) else {
            return;
        };
        // The check is about ARG defaults: a FROM without a variable is checked when it
        // is resolved, and hoist's local transports (`oci:DIR:TAG`, …) are no registry
        // reference.
        if stage.from.image.contains('$') && !is_local_transport(&name) && !valid_reference(&name) {
            sink.warn(
                &INVALID_DEFAULT_ARG_IN_FROM,
                stage.from.span.start_line,
                format!(
                    "Default value for ARG {} results in empty or invalid base image name",
                    stage.from.image
                ),
            );
        }
    }
}

/// Whether `name` is one of hoist's local image transports rather than a registry reference.
fn is_local_transport(name: &str) -> bool {
    ["oci:", "oci-archive:", "docker-archive:", "oci-layout://"]
        .iter()
        .any(|p| name.starts_with(p))
}

/// The words of `instr` BuildKit expands with the stage environment (its `Expand`
/// methods), each reported once per unset variable not declared by a stage ARG.
fn undefined_vars(global: &GlobalScope, scope: &StageScope, instr: &Instruction, sink: &mut Sink) {
    let mut words: Vec<&str> = Vec::new();
    match &instr.kind {
        InstructionKind::Env { vars: kv } | InstructionKind::Label { labels: kv } => {
            for p in kv {
                words.push(&p.key);
                words.push(&p.value);
            }
        }
        InstructionKind::Add {
            sources,
            dest,
            chown,
            checksum,
            ..
        } => {
            words.extend(paths(sources));
            words.push(dest);
            words.extend(chown.as_deref());
            words.extend(checksum.as_deref());
        }
        InstructionKind::Copy {
            sources,
            dest,
            chown,
            ..
        } => {
            words.extend(paths(sources));
            words.push(dest);
            words.extend(chown.as_deref());
        }
        InstructionKind::Workdir { path } => words.push(path),
        InstructionKind::User { user } => words.push(user),
        InstructionKind::Stopsignal { signal } => words.push(signal),
        InstructionKind::Volume { volumes, .. } => words.extend(volumes.iter().map(String::as_str)),
        InstructionKind::Expose { ports } => words.extend(ports.iter().map(String::as_str)),
        InstructionKind::Arg { args } => {
            words.extend(args.iter().filter_map(|a| a.default.as_deref()))
        }
        _ => {}
    }
    let env = scope.run_env();
    let declared = scope.declared_args();
    let mut reported = BTreeSet::new();
    for w in words {
        let Ok(r) = global.lexer().process(w, &env) else {
            continue;
        };
        for var in r.unmatched {
            if declared.contains(&var) || !reported.insert(var.clone()) {
                continue;
            }
            let keys: Vec<&str> = env
                .iter()
                .map(|kv| kv.split_once('=').map_or(kv.as_str(), |(k, _)| k))
                .collect();
            let mut msg = format!("Usage of undefined variable '${var}'");
            if let Some(s) = suggest(&var, keys) {
                msg.push_str(&format!(" (did you mean ${s}?)"));
            }
            sink.warn(&UNDEFINED_VAR, instr.span.start_line, msg);
        }
    }
}

fn paths(sources: &[CopySource]) -> impl Iterator<Item = &str> {
    sources.iter().filter_map(|s| match s {
        CopySource::Path(p) => Some(p.as_str()),
        CopySource::Heredoc(_) => None,
    })
}

/// `CopyIgnoredFile`: a source the `.dockerignore` excludes (not checked when the ignore
/// file has `!` exceptions, as BuildKit does: a directory may be excluded and a file in it
/// included again).
fn ignored_sources(facts: &Facts, sources: &[CopySource], cmd: &str, line: usize, sink: &mut Sink) {
    let Some(m) = facts.ignore else { return };
    if m.has_exclusions() {
        return;
    }
    for src in paths(sources) {
        if src.contains("://") || src.starts_with("git@") {
            continue; // ADD of a URL or git repository
        }
        let clean = crate::ignore::clean_path(src);
        if clean == "." || clean == "/" {
            let all = m
                .patterns()
                .iter()
                .any(|p| matches!(p.as_str(), "*" | "**" | "**/*"));
            if !all {
                continue;
            }
        }
        if m.matches(&clean) {
            sink.warn(
                &COPY_IGNORED_FILE,
                line,
                format!("Attempting to {cmd} file {clean:?} that is excluded by .dockerignore"),
            );
        }
    }
}

/// Whether `s` parses as an image reference (distribution's `ParseNormalizedNamed`):
/// `[domain/]path[:tag][@digest]`, path components lower-case.
pub(super) fn valid_reference(s: &str) -> bool {
    if s.is_empty() {
        return false;
    }
    let (rest, digest) = match s.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (s, None),
    };
    if let Some(d) = digest {
        let Some((alg, hex)) = d.split_once(':') else {
            return false;
        };
        if alg.is_empty()
            || !alg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+._-".contains(c))
            || hex.len() < 32
            || !hex.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return false;
        }
    }
    let (name, tag) = match rest.rfind(':') {
        Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    if let Some(t) = tag {
        let ok = !t.is_empty()
            && t.len() <= 128
            && t.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !ok {
            return false;
        }
    }
    let mut comps: Vec<&str> = name.split('/').collect();
    if comps.len() > 1 {
        let first = comps[0];
        if first.contains('.') || first.contains(':') || first == "localhost" {
            let ok = first
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
            if !ok {
                return false;
            }
            comps.remove(0);
        }
    }
    !comps.is_empty() && comps.iter().all(|c| path_component(c))
}

fn path_component(c: &str) -> bool {
    // [a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*
    if c.is_empty() {
        return false;
    }
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}
